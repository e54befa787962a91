#!/usr/bin/env python3
"""The same engine as numpy_engine.py, with real PyTorch doing the math (float64, one thread).

    python3 torch_engine.py EXPERIMENT.json TRACE.json

The network is torch.nn (Linear, ReLU, Tanh, Sigmoid, LeakyReLU, GELU(approximate='none')), the losses are
torch.nn's (MSELoss, L1Loss, BCELoss, CrossEntropyLoss on the argmax of each target row), the optimizers are
torch.optim.SGD and torch.optim.Adam, and autograd computes every gradient. Evaluation runs under
torch.no_grad(). The tensors of the first steps (the experiment's `"trace": {"steps": K}`) come from forward
hooks, retain_grad() and the optimizer's own state (momentum_buffer, exp_avg, exp_avg_sq); so do the
parameters and state written with every epoch's evaluation (`"trace": {"epochParameters": true}`). The trace
is version 2 (docs/trace-format.md).

Reading the experiment file and writing the trace are numpy_engine.py's (same folder): both engines take the
same input and give the same kind of output (docs/trace-format.md); only the training differs.

Exit status: 0 on success, 2 on bad input or when PyTorch is not installed.
"""

import json
import math
import os
import sys
import time

PROGRAM = "torch_engine.py"

try:
    import torch
    from torch import nn
except ImportError:
    print(f"{PROGRAM}: PyTorch is not installed; install it with `pip install torch`", file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True   # leave no __pycache__ next to the examples
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import numpy_engine  # noqa: E402  (the experiment reader and the trace writer)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def build_model(layer_specs):
    """nn.Sequential of the experiment's layers, module i being model.layers[i]; linear layers get the
    file's weight and bias."""
    modules = []
    for spec in layer_specs:
        kind = spec["type"]
        if kind == "linear":
            out_features, in_features = spec["weight"].shape
            linear = nn.Linear(in_features, out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(spec["weight"]))
                linear.bias.copy_(torch.from_numpy(spec["bias"]))
            modules.append(linear)
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "leakyRelu":
            modules.append(nn.LeakyReLU(spec["slope"]))
        elif kind == "tanh":
            modules.append(nn.Tanh())
        elif kind == "sigmoid":
            modules.append(nn.Sigmoid())
        elif kind == "gelu":
            modules.append(nn.GELU(approximate="none"))
    return nn.Sequential(*modules)


def make_loss(kind):
    """loss(outputs, targets) → a 0-d tensor, every loss with reduction="mean"."""
    if kind == "mse":
        return nn.MSELoss()
    if kind == "mae":
        return nn.L1Loss()
    if kind == "bce":
        bce = nn.BCELoss()
        # BCELoss raises on a NaN probability; the other engines report the loss as NaN, and so does this one.
        return lambda outputs, targets: (bce(outputs, targets) if not torch.isnan(outputs).any()
                                         else torch.tensor(math.nan))
    cross_entropy = nn.CrossEntropyLoss()
    return lambda outputs, targets: cross_entropy(outputs, targets.argmax(dim=1))   # class = first argmax


def make_optimizer(spec, parameters):
    """foreach=False: the single-tensor kernels, whose order of operations the Reference engine documents."""
    if spec["type"] == "sgd":
        return torch.optim.SGD(parameters, lr=spec["lr"], momentum=spec["momentum"], dampening=spec["dampening"],
                               nesterov=spec["nesterov"], weight_decay=spec["weightDecay"], foreach=False)
    return torch.optim.Adam(parameters, lr=spec["lr"], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"],
                            weight_decay=spec["weightDecay"], foreach=False)


def accuracy(outputs, targets):
    """Argmax of the output row = argmax of the target row (≥ 2 outputs); same side of 0.5 (1 output)."""
    if outputs.shape[1] == 1:
        right = (outputs[:, 0] >= 0.5) == (targets[:, 0] >= 0.5)
    else:
        right = outputs.argmax(dim=1) == targets.argmax(dim=1)
    return int(right.sum().item()) / len(outputs)


def evaluation(epoch, model, loss, optimizer, sets, epoch_parameters):
    """Loss and accuracy on the whole train and test sets, without building a graph; with `epoch_parameters`
    (`"trace": {"epochParameters": true}`), also the parameters and optimizer state they were computed with."""
    entry = {"epoch": epoch}
    with torch.no_grad():
        for part in ("train", "test"):
            inputs, targets = sets[part]
            outputs = model(inputs)
            entry[f"{part}Loss"] = loss(outputs, targets).item()
            entry[f"{part}Accuracy"] = accuracy(outputs, targets)
    if epoch_parameters:
        entry["parameters"] = checkpoint(model, optimizer)
    return entry


def checkpoint(model, optimizer):
    """Every linear layer's weight and bias and their optimizer state now, under the names of
    docs/trace-format.md, as lists (copies: optimizer.step() changes the tensors in place). The state is
    created by the first step, so before it there are only the parameters."""
    tensors = {}
    for i, module in enumerate(model):
        if not isinstance(module, nn.Linear):
            continue
        for kind, parameter in (("weight", module.weight), ("bias", module.bias)):
            name = f"layers[{i}].{kind}"
            tensors[name] = parameter.tolist()
            state = optimizer.state.get(parameter, {})   # .get: looking must not create an entry
            if state.get("momentum_buffer") is not None:
                tensors[f"{name}.momentum"] = state["momentum_buffer"].tolist()
            if "exp_avg" in state:
                tensors[f"{name}.m"] = state["exp_avg"].tolist()
                tensors[f"{name}.v"] = state["exp_avg_sq"].tolist()
    return numpy_engine.json_ready(tensors)


class StepRecorder:
    """The tensors of the first `limit` steps (docs/trace-format.md, "Steps"), taken with forward hooks (each
    module's input and output; the inputs keep their gradient with retain_grad()), the parameters' .grad,
    and the optimizer's state after the step."""

    def __init__(self, model, limit):
        self.model, self.limit, self.steps, self.active = model, limit, [], False
        self.inputs, self.outputs = {}, {}
        for i, module in enumerate(model):
            module.register_forward_hook(self.hook(i))

    def hook(self, i):
        def keep(module, inputs, output):
            if self.active:
                inputs[0].retain_grad()              # a no-op for the batch itself, a leaf that requires grad
                self.inputs[i], self.outputs[i] = inputs[0], output
        return keep

    def begin(self, epoch, batch):
        self.active = len(self.steps) < self.limit
        if self.active:
            self.steps.append({"epoch": epoch, "batch": batch, "tensors": {}})
        return self.active

    def put(self, name, tensor):
        value = tensor.tolist() if isinstance(tensor, torch.Tensor) else tensor
        self.steps[-1]["tensors"][name] = numpy_engine.json_ready(value)

    def forward(self, loss_value):
        for i, output in self.outputs.items():
            self.put(f"layers[{i}].output", output)
        self.put("loss", loss_value)

    def backward(self):
        self.put("loss.dInput", self.outputs[len(self.model) - 1].grad)
        for i, module in enumerate(self.model):
            self.put(f"layers[{i}].dInput", self.inputs[i].grad)
            if isinstance(module, nn.Linear):
                self.put(f"layers[{i}].dWeight", module.weight.grad)
                self.put(f"layers[{i}].dBias", module.bias.grad)

    def update(self, optimizer):
        self.steps[-1]["tensors"].update(checkpoint(self.model, optimizer))   # the parameters and state after the step


def train(experiment, model, loss, optimizer, recorder):
    """Epoch 0 evaluates before any update; each epoch visits its order in batches of batchSize rows (the
    last one smaller), one optimizer step per batch, then evaluates. Returns (epochs, divergence)."""
    sets = {part: (torch.from_numpy(experiment[part]["inputs"]), torch.from_numpy(experiment[part]["targets"]))
            for part in ("train", "test")}
    train_inputs, train_targets = sets["train"]
    count, batch_size = len(train_inputs), experiment["batchSize"]
    epochs = [evaluation(0, model, loss, optimizer, sets, experiment["epochParameters"])]
    for epoch in range(1, experiment["epochs"] + 1):
        order = (torch.from_numpy(experiment["orders"][epoch - 1]) if experiment["orders"] is not None
                 else torch.arange(count))
        for batch, start in enumerate(range(0, count, batch_size), start=1):
            rows = order[start:start + batch_size]
            x, y = train_inputs[rows], train_targets[rows]
            recording = recorder.begin(epoch, batch)
            if recording:
                x.requires_grad_(True)               # so that layers[0].dInput is computed too
            optimizer.zero_grad()
            outputs = model(x)
            batch_loss = loss(outputs, y)
            value = batch_loss.item()
            if recording:
                outputs.retain_grad()
                recorder.forward(value)
            if not math.isfinite(value):
                return epochs, {"epoch": epoch, "batch": batch, "loss": value}
            batch_loss.backward()
            if recording:
                recorder.backward()
            optimizer.step()
            if recording:
                recorder.update(optimizer)
        recorder.active = False
        epochs.append(evaluation(epoch, model, loss, optimizer, sets, experiment["epochParameters"]))
    return epochs, None


def run(experiment):
    model = build_model(experiment["layers"])
    loss = make_loss(experiment["loss"])
    optimizer = make_optimizer(experiment["optimizer"], model.parameters())   # the first one imports torch._dynamo
    recorder = StepRecorder(model, experiment["traceSteps"] or 0)
    initial = {f"layers[{i}].{kind}": getattr(module, kind).tolist()
               for i, module in enumerate(model) if isinstance(module, nn.Linear) for kind in ("weight", "bias")}
    start = time.perf_counter()
    epochs, divergence = train(experiment, model, loss, optimizer, recorder)
    seconds = time.perf_counter() - start
    trace = {
        "format": "minidl-trace",
        "version": 2,
        "experiment": experiment["name"],
        "engine": f"torch {torch.__version__} float64, 1 thread (examples/engines/torch_engine.py)",
        "epochs": numpy_engine.json_ready(epochs),
        "divergence": numpy_engine.json_ready(divergence),
        "seconds": seconds,
        "initialParameters": initial,
        "parameters": numpy_engine.json_ready(
            [{"weight": module.weight.tolist(), "bias": module.bias.tolist()}
             for module in model if isinstance(module, nn.Linear)]),
    }
    if experiment["traceSteps"] is not None:
        trace["steps"] = recorder.steps
    return trace


def main(arguments):
    if len(arguments) != 2:
        print(f"usage: {PROGRAM} EXPERIMENT.json TRACE.json", file=sys.stderr)
        return 2
    experiment_file, trace_file = arguments
    try:
        experiment = numpy_engine.read_experiment(experiment_file)
    except numpy_engine.BadInput as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    trace = run(experiment)
    try:
        numpy_engine.write_atomically(trace_file, json.dumps(trace, allow_nan=False))
    except OSError as error:
        print(f"{PROGRAM}: {trace_file}: cannot write the trace: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
