#!/usr/bin/env python3
"""PyTorch on the same training workloads as `bench` (Sources/Bench): standalone, or as bench's server.

Optional: needs `pip install torch` (the CPU build is enough); nothing else in the package uses it.

Each workload trains an MLP with MSE and plain SGD (lr 0.01), float64, one thread. Batches are consecutive in
file order, the last of each pass smaller, wrapping around, as `bench` and `Trainer` take them. A step is
zero_grad, forward, loss, backward, optimizer step; a repetition times a fixed number of steps after a warm-up,
in wall seconds (time.perf_counter) and CPU seconds of the whole process (time.process_time).

Standalone (`make bench-torch`): a table of samples per wall-second and per CPU-second, median of the
repetitions, on a 1000-point disk data set of its own (points uniform in [0, 1]², label 1 inside the disk of
radius 1/sqrt(2 pi) centred at (0.5, 0.5), one-hot targets; the points differ from bench's, which does not
matter for speed).

    python3 scripts/bench_torch.py                 # table
    python3 scripts/bench_torch.py --json out.json # also write JSON (to a temporary name, then renamed)
    python3 scripts/bench_torch.py --scale 0.2     # fewer steps per repetition (quicker, noisier)

Server (`--serve`, what `bench` runs so that both are measured in the same run, repetition by repetition):
after importing torch it writes one line {"ready": true, "torch": VERSION, ...} (or {"ready": false, "error":
...} and exits 2 when torch cannot be imported); then it reads one JSON request per line on stdin and answers
each with one JSON line on stdout:

    {"data": {"inputs": [[x, y], ...], "targets": [[t0, t1], ...]}}
        -> {"ok": true, "count": N}       the training set for the workloads that follow (bench's own points)
    {"workload": KEY, "widths": [2, 25, ...], "activations": ["relu", ...], "batchSize": B,
     "learningRate": LR, "steps": N, "warmupSteps": M}
        -> {"workload": KEY, "steps": N, "samples": S, "wall": SECONDS, "cpu": SECONDS, "threadCPU": SECONDS,
            "loss": LAST, "maxRSSKiB": KIB}
           one timed repetition of N steps. The model of KEY is built (torch.manual_seed(1)) on its first request
           and kept, with its position in the data, across the requests for KEY; the M warm-up steps run before
           the timing starts (bench asks for them on the first repetition only).

Anything wrong with a request is answered {"error": MESSAGE}. End of input ends the server.
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import warnings

# (key, title, widths, activations after each hidden Linear, batch size, steps per repetition), standalone mode.
WORKLOADS = [
    ("seeds-b1", "2-25-25-25-2 batch 1", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 1, 1_000),
    ("seeds-b5", "2-25-25-25-2 batch 5", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 5, 1_000),
    ("seeds-b100", "2-25-25-25-2 batch 100", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 100, 1_000),
    ("seeds-b1000", "2-25-25-25-2 batch 1000", [2, 25, 25, 25, 2], ["relu", "tanh", "sigmoid"], 1000, 400),
    ("tanh256-b128", "2-256-256-256-2 tanh batch 128", [2, 256, 256, 256, 2], ["tanh"] * 3, 128, 200),
    ("tanh1024-b128", "2-1024-1024-1024-2 tanh batch 128", [2, 1024, 1024, 1024, 2], ["tanh"] * 3, 128, 20),
]
LEARNING_RATE = 0.01


def import_torch():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch works without NumPy
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed once, before any parallel work)
        pass
    torch.set_default_dtype(torch.float64)
    return torch


def disk_data(torch, count=1000, seed=1):
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    inside = ((points - 0.5) ** 2).sum(dim=1) < 1 / (2 * math.pi)
    targets = torch.zeros(count, 2, dtype=torch.float64)
    targets[inside, 1] = 1
    targets[~inside, 0] = 1
    return points, targets


def model_for(torch, widths, activations):
    kinds = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], dtype=torch.float64))
        if i < len(activations):
            layers.append(kinds[activations[i]]())
    return torch.nn.Sequential(*layers)


class TrainingLoop:
    """One workload's model, optimizer and position in the data, kept across repetitions."""

    def __init__(self, torch, widths, activations, batch_size, learning_rate, inputs, targets):
        torch.manual_seed(1)
        self.model = model_for(torch, widths, activations)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=learning_rate)
        self.loss_function = torch.nn.MSELoss()
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.position = 0
        self.loss = None

    def run(self, steps):
        """`steps` optimizer steps; returns the samples they took."""
        count = self.inputs.shape[0]
        samples = 0
        for _ in range(steps):
            end = min(self.position + self.batch_size, count)
            x, t = self.inputs[self.position:end], self.targets[self.position:end]
            self.position = 0 if end == count else end
            self.optimizer.zero_grad()
            self.loss = self.loss_function(self.model(x), t)
            self.loss.backward()
            self.optimizer.step()
            samples += x.shape[0]
        return samples

    def timed(self, steps):
        """(samples, wall seconds, process CPU seconds, thread CPU seconds) of `steps` steps."""
        wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
        samples = self.run(steps)
        return (samples, time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - thread)


def finite_or_name(x):
    """x, or "NaN" / "Infinity" / "-Infinity" (as the project's JSON writer spells what JSON cannot hold)."""
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def max_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def describe(torch):
    """What the server reports about itself in its ready line."""
    info = {"ready": True, "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "interopThreads": torch.get_num_interop_threads(),
            "dtype": "float64"}
    try:
        info["cpuCapability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        pass
    blas = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    if blas:
        info["blas"] = blas.group(1)
    return info


def serve():
    """The line protocol of the module docstring, on stdin and stdout."""
    output = sys.stdout

    def answer(document):
        output.write(json.dumps(document, allow_nan=False) + "\n")
        output.flush()

    try:
        torch = import_torch()
    except Exception as error:  # ImportError, or a broken installation
        answer({"ready": False, "error": f"cannot import torch: {error}"})
        return 2
    inputs, targets = disk_data(torch)
    loops = {}
    answer(describe(torch))
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if "data" in request:
                data = request["data"]
                inputs = torch.tensor(data["inputs"], dtype=torch.float64)
                targets = torch.tensor(data["targets"], dtype=torch.float64)
                if inputs.ndim != 2 or targets.ndim != 2 or inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
                    raise ValueError(f"data: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} do not match")
                loops.clear()
                answer({"ok": True, "count": inputs.shape[0]})
                continue
            key = request["workload"]
            loop = loops.get(key)
            if loop is None:
                widths = [int(w) for w in request["widths"]]
                if widths[0] != inputs.shape[1] or widths[-1] != targets.shape[1]:
                    raise ValueError(f"{key}: widths {widths} do not fit the data ({inputs.shape[1]} in, {targets.shape[1]} out)")
                loop = TrainingLoop(torch, widths, list(request["activations"]), int(request["batchSize"]),
                                    float(request.get("learningRate", LEARNING_RATE)), inputs, targets)
                loops[key] = loop
            warmup = int(request.get("warmupSteps", 0))
            if warmup > 0:
                loop.run(warmup)
            steps = int(request["steps"])
            if steps < 1:
                raise ValueError(f"{key}: steps must be at least 1, got {steps}")
            samples, wall, cpu, thread = loop.timed(steps)
            answer({"workload": key, "steps": steps, "samples": samples, "wall": wall, "cpu": cpu,
                    "threadCPU": thread, "loss": finite_or_name(loop.loss.item()), "maxRSSKiB": max_rss_kib()})
        except Exception as error:  # a bad request: say so and go on
            answer({"error": f"{type(error).__name__}: {error}"})
    return 0


def standalone(args):
    try:
        torch = import_torch()
    except ImportError:
        sys.exit("bench_torch.py: PyTorch is not installed (pip install torch)")
    inputs, targets = disk_data(torch)
    selected = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]

    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread, float64, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'workload':<36} {'samples/s (median)':>20} {'samples/CPU-s':>14}")
    results = []
    for key, title, widths, activations, batch_size, steps in selected:
        steps = max(1, int(steps * args.scale))
        loop = TrainingLoop(torch, widths, activations, batch_size, LEARNING_RATE, inputs, targets)
        loop.run(max(2, steps // 10))  # warm-up
        rates, cpu_rates = [], []
        for _ in range(args.repetitions):
            samples, wall, cpu, _ = loop.timed(steps)
            rates.append(samples / wall)
            cpu_rates.append(samples / cpu if cpu > 0 else math.inf)
        value, cpu_value = statistics.median(rates), statistics.median(cpu_rates)
        print(f"{title:<36} {value:>20,.0f} {cpu_value:>14,.0f}")
        results.append({"key": key, "title": title, "batch": batch_size, "samples_per_second": value,
                        "samples_per_cpu_second": cpu_value, "repetitions": rates, "cpu_repetitions": cpu_rates})

    if args.json:
        document = {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": "float64",
                    "load_average": os.getloadavg(), "workloads": results}
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as file:
            json.dump(document, file, indent=2)
            temporary = file.name
        os.replace(temporary, args.json)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="answer bench's requests on stdin (see the docstring)")
    parser.add_argument("--json", help="write the results as JSON to this file")
    parser.add_argument("--repetitions", type=int, default=3, help="timed repetitions per workload (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default steps per repetition")
    parser.add_argument("--only", help="comma-separated workload keys")
    args = parser.parse_args()
    if args.serve:
        return serve()
    return standalone(args)


if __name__ == "__main__":
    sys.exit(main())
