#!/usr/bin/env python3
"""PyTorch on the same training workloads as `bench` (Sources/Bench), for checking the ratios it prints.

Optional: needs `pip install torch` (the CPU build is enough); nothing else in the package uses it.

Each workload trains an MLP on a 1000-point disk data set (points uniform in [0, 1]², label 1 inside the disk
of radius 1/sqrt(2 pi) centred at (0.5, 0.5), one-hot targets) with MSE and plain SGD (lr 0.01), float64, one
thread. Batches are consecutive in file order, the last of each pass smaller, wrapping around, as `bench` and
`Trainer` take them. A step is zero_grad, forward, loss, backward, optimizer step; throughput = samples /
seconds over a fixed number of steps after a warm-up, median of the repetitions. The data points themselves
differ from `bench`'s (a different generator), which does not matter for speed.

    python3 scripts/bench_torch.py                 # table
    python3 scripts/bench_torch.py --json out.json # also write JSON (to a temporary name, then renamed)
    python3 scripts/bench_torch.py --scale 0.2     # fewer steps per repetition (quicker, noisier)
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

# (key, title, widths, activations after each hidden Linear, batch size, steps per repetition)
WORKLOADS = [
    ("seeds-b1", "2-25-25-25-2 batch 1", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 1, 20_000),
    ("seeds-b5", "2-25-25-25-2 batch 5", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 5, 10_000),
    ("seeds-b100", "2-25-25-25-2 batch 100", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 100, 2_000),
    ("seeds-b1000", "2-25-25-25-2 batch 1000", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 1000, 400),
    ("tanh256-b128", "2-256-256-256-2 tanh batch 128", [2, 256, 256, 256, 2], ["tanh"] * 3, 128, 200),
    ("tanh1024-b128", "2-1024-1024-1024-2 tanh batch 128", [2, 1024, 1024, 1024, 2], ["tanh"] * 3, 128, 20),
]

# The issue's figures (PyTorch 2.15, CPU, one thread, float64), for comparison.
ISSUE_FIGURES = {
    "seeds-b1": 1_400, "seeds-b5": 7_900, "seeds-b100": 141_000, "seeds-b1000": 547_000,
    "tanh256-b128": 34_000, "tanh1024-b128": 2_100,
}


def disk_data(torch, count=1000, seed=1):
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    inside = ((points - 0.5) ** 2).sum(dim=1) < 1 / (2 * math.pi)
    targets = torch.zeros(count, 2, dtype=torch.float64)
    targets[inside, 1] = 1
    targets[~inside, 0] = 1
    return points, targets


def model_for(torch, widths, activations):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], dtype=torch.float64))
        if i < len(activations):
            layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[activations[i]]())
    return torch.nn.Sequential(*layers)


def throughput(torch, workload, inputs, targets, repetitions, scale):
    key, _, widths, activations, batch_size, steps = workload
    steps = max(1, int(steps * scale))
    torch.manual_seed(1)
    model = model_for(torch, widths, activations)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_function = torch.nn.MSELoss()
    count = inputs.shape[0]
    position = 0

    def run(n):
        nonlocal position
        samples = 0
        for _ in range(n):
            end = min(position + batch_size, count)
            x, t = inputs[position:end], targets[position:end]
            position = 0 if end == count else end
            optimizer.zero_grad()
            loss = loss_function(model(x), t)
            loss.backward()
            optimizer.step()
            samples += x.shape[0]
        return samples

    run(max(2, steps // 10))  # warm-up
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        samples = run(steps)
        rates.append(samples / (time.perf_counter() - start))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results as JSON to this file")
    parser.add_argument("--repetitions", type=int, default=3, help="timed repetitions per workload (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default steps per repetition")
    parser.add_argument("--only", help="comma-separated workload keys")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch works without NumPy
    try:
        import torch
    except ImportError:
        sys.exit("bench_torch.py: PyTorch is not installed (pip install torch)")
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    inputs, targets = disk_data(torch)
    selected = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]

    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread, float64, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'workload':<36} {'samples/s (median)':>20} {'issue figure':>14} {'ratio':>7}")
    results = []
    for workload in selected:
        rates = throughput(torch, workload, inputs, targets, args.repetitions, args.scale)
        value = statistics.median(rates)
        issue = ISSUE_FIGURES[workload[0]]
        print(f"{workload[1]:<36} {value:>20,.0f} {issue:>14,} {value / issue:>7.2f}")
        results.append({"key": workload[0], "title": workload[1], "batch": workload[4],
                        "samples_per_second": value, "repetitions": rates, "issue_figure": issue})

    if args.json:
        document = {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": "float64",
                    "load_average": os.getloadavg(), "workloads": results}
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as file:
            json.dump(document, file, indent=2)
            temporary = file.name
        os.replace(temporary, args.json)


if __name__ == "__main__":
    main()
