#!/usr/bin/env python3
"""A complete training engine in plain NumPy (float64), written to be read.

    python3 numpy_engine.py EXPERIMENT.json TRACE.json

It reads an experiment file (README, "Experiment files") with explicit data and explicit initial weights,
such as the files `compare export` writes, trains the network exactly as PyTorch would (README,
"Conventions"), and writes a version-2 trace (docs/trace-format.md): the evaluation after every epoch,
the tensors of the first K steps when the experiment asks for them (`"trace": {"steps": K}`), and the
parameters with the optimizer's state after every epoch when it asks for those (`"trace": {"epochParameters":
true}`). With it, `compare` can judge this engine against the others:

    compare run --engine numpy="python3 examples/engines/numpy_engine.py" --experiment EXPERIMENT.json

Reading order: the layers (each with its forward and backward pass side by side), the losses (each with its
value and its gradient), the optimizers (each with its update rule), then the training loop, which ties them
together. Reading the experiment and writing the trace come last; they are bookkeeping.

Shapes: a batch is a matrix with one example per row, `(rows, features)`. A linear layer's weight is
`(out, in)`, as in `torch.nn.Linear`.

Exit status: 0 on success, 2 on bad input (one line on stderr naming the file, the field and what was
expected).
"""

import json
import math
import os
import sys
import tempfile
import time

import numpy as np

PROGRAM = "numpy_engine.py"


# ---------------------------------------------------------------------------------------------------------
# Layers. Every layer has `forward(x) -> y`, which remembers what the backward pass will need, and
# `backward(dy) -> dx`, which turns ∂loss/∂y into ∂loss/∂x (and, for a linear layer, adds ∂loss/∂W and
# ∂loss/∂b into the parameters' gradients). This is the chain rule, one layer at a time.
# ---------------------------------------------------------------------------------------------------------

class Parameter:
    """A tensor the optimizer updates (`value`), with the gradient of the loss with respect to it (`grad`).

    `name` is the one the trace uses, e.g. "layers[0].weight".
    """

    def __init__(self, name, value):
        self.name = name
        self.value = value
        self.grad = np.zeros_like(value)


class Layer:
    """A layer without parameters (the activations)."""

    def parameters(self):
        return []


class Linear(Layer):
    """y = x·Wᵀ + b, with x (rows, in), W (out, in), b (out), y (rows, out).

    Backward, from dy = ∂loss/∂y (rows, out):
        ∂loss/∂W = dyᵀ·x      (out, in)   each weight W[j, k] is used by every row r: y[r, j] += W[j, k]·x[r, k]
        ∂loss/∂b = Σ_rows dy  (out)       the bias is added to every row
        ∂loss/∂x = dy·W       (rows, in)
    The parameter gradients are *added* (+=) into `grad`, as in PyTorch: they accumulate until zeroed.
    """

    def __init__(self, index, weight, bias):
        self.weight = Parameter(f"layers[{index}].weight", weight)
        self.bias = Parameter(f"layers[{index}].bias", bias)

    def parameters(self):
        return [self.weight, self.bias]

    def forward(self, x):
        self.x = x                                   # dW needs the input
        return x @ self.weight.value.T + self.bias.value

    def backward(self, dy):
        self.weight.grad += dy.T @ self.x
        self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.value


class ReLU(Layer):
    """y = x if x > 0 else 0;  dx = dy if x > 0 else 0 (the derivative at 0 is taken as 0)."""

    def forward(self, x):
        self.x = x
        return np.where(x <= 0, 0.0, x)             # written so that a NaN stays NaN, as torch.relu

    def backward(self, dy):
        return np.where(self.x > 0, dy, 0.0)


class LeakyReLU(Layer):
    """y = x if x > 0 else slope·x;  dx = dy if x > 0 else slope·dy."""

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, x * self.slope)

    def backward(self, dy):
        return np.where(self.x > 0, dy, dy * self.slope)


class Tanh(Layer):
    """y = tanh(x);  dx = dy·(1 − y²). The derivative is written in the output y, so y is kept."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e^−x);  dx = dy·(1 − y)·y. The derivative is written in the output y, so y is kept."""

    def forward(self, x):
        self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y) * self.y


# NumPy has no erf; math.erf applied to every element does it (slowly, but exactly).
erf = np.vectorize(math.erf, otypes=[np.float64])
SQRT_HALF = math.sqrt(0.5)                  # 1/√2
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)   # 1/√(2π)


class GELU(Layer):
    """Exact GELU: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)), Φ being the standard normal distribution function.

    dx = dy·(Φ(x) + x·φ(x)), with the normal density φ(x) = exp(−x²/2)/√(2π) (product rule: d/dx Φ = φ).
    Written as PyTorch's GELU(approximate='none') kernel writes it.
    """

    def forward(self, x):
        self.x = x
        return x * 0.5 * (1 + erf(x * SQRT_HALF))

    def backward(self, dy):
        x = self.x
        cdf = 0.5 * (1 + erf(x * SQRT_HALF))       # Φ(x)
        pdf = np.exp(-0.5 * x * x) * INV_SQRT_2PI   # φ(x)
        return dy * (cdf + x * pdf)


class Model:
    """The layers in order. `forward` keeps every layer's output and `backward` every layer's ∂loss/∂input,
    so that the trace can show them (docs/trace-format.md, "Steps")."""

    def __init__(self, layers):
        self.layers = layers

    def forward(self, x):
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            self.outputs.append(x)
        return x

    def backward(self, d_output):
        """From ∂loss/∂(network output), back through the layers in reverse order (the chain rule)."""
        self.d_inputs = [None] * len(self.layers)
        d = d_output
        for i in reversed(range(len(self.layers))):
            d = self.layers[i].backward(d)
            self.d_inputs[i] = d
        return d

    def parameters(self):
        """Weight then bias of each linear layer, in order."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self):
        """Gradients accumulate (+=) in backward; this is PyTorch's `optimizer.zero_grad()`."""
        for p in self.parameters():
            p.grad = np.zeros_like(p.value)


def build_model(layer_specs):
    """One Layer per entry of `model.layers`; a linear layer's parameters are named by its index there."""
    layers = []
    for index, spec in enumerate(layer_specs):
        kind = spec["type"]
        if kind == "linear":
            layers.append(Linear(index, spec["weight"].copy(), spec["bias"].copy()))
        elif kind == "relu":
            layers.append(ReLU())
        elif kind == "leakyRelu":
            layers.append(LeakyReLU(spec["slope"]))
        elif kind == "tanh":
            layers.append(Tanh())
        elif kind == "sigmoid":
            layers.append(Sigmoid())
        elif kind == "gelu":
            layers.append(GELU())
    return Model(layers)


# ---------------------------------------------------------------------------------------------------------
# Losses. Predictions p and targets t are (rows, columns); N = rows·columns. Every loss is a mean
# (PyTorch's reduction="mean"), so its gradient ∂loss/∂p is already divided by the count.
# ---------------------------------------------------------------------------------------------------------

class MSE:
    """Mean squared error (nn.MSELoss): Σ(p − t)²/N;  ∂/∂p = 2(p − t)/N."""

    @staticmethod
    def value(p, t):
        return np.sum((p - t) ** 2) / p.size

    @staticmethod
    def gradient(p, t):
        return (p - t) * (2 / p.size)


class MAE:
    """Mean absolute error (nn.L1Loss): Σ|p − t|/N;  ∂/∂p = sign(p − t)/N, with sign(0) = 0."""

    @staticmethod
    def value(p, t):
        return np.sum(np.abs(p - t)) / p.size

    @staticmethod
    def gradient(p, t):
        return np.sign(p - t) / p.size


class BCE:
    """Binary cross-entropy on probabilities (nn.BCELoss), the logs clamped at −100 so that p = 0 or 1 stays finite:
        −Σ[t·max(log p, −100) + (1 − t)·max(log(1 − p), −100)]/N
    ∂/∂p = (p − t) / (p·(1 − p)) / N, the denominator clamped at 1e−12.
    """

    @staticmethod
    def value(p, t):
        log_p = np.maximum(np.log(p), -100)
        log_1mp = np.maximum(np.log1p(-p), -100)   # log(1 − p), as ATen writes it
        return np.sum((t - 1) * log_1mp - t * log_p) / p.size

    @staticmethod
    def gradient(p, t):
        return (p - t) / np.maximum((1 - p) * p, 1e-12) / p.size


class CrossEntropy:
    """Cross-entropy on logits z (nn.CrossEntropyLoss). Row r's class c is the first argmax of its target row:
        ℓ_r = logsumexp(z_r) − z_r,c = −log softmax(z_r)_c,   loss = Σ_r ℓ_r / rows   (a mean over ROWS)
    ∂/∂z = (softmax(z) − onehot(c)) / rows.
    logsumexp is computed with the row's maximum m subtracted (log Σ e^(z − m) + m), which cannot overflow.
    """

    @staticmethod
    def _log_softmax(z):
        shifted = z - np.max(z, axis=1, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))

    @staticmethod
    def value(z, t):
        rows = np.arange(len(z))
        classes = np.argmax(t, axis=1)
        return np.sum(-CrossEntropy._log_softmax(z)[rows, classes]) / len(z)

    @staticmethod
    def gradient(z, t):
        rows = np.arange(len(z))
        classes = np.argmax(t, axis=1)
        g = np.exp(CrossEntropy._log_softmax(z)) / len(z)      # softmax / rows
        g[rows, classes] += -1 / len(z)                        # − onehot / rows
        return g


LOSSES = {"mse": MSE, "mae": MAE, "bce": BCE, "crossEntropy": CrossEntropy}


def accuracy(outputs, targets):
    """The fraction of rows classified right. Two or more outputs: the first argmax of the output row equals
    the first argmax of the target row (a NaN counts as the largest, as np.argmax has it). One output: the
    output and the target are on the same side of 0.5."""
    if outputs.shape[1] == 1:
        right = (outputs[:, 0] >= 0.5) == (targets[:, 0] >= 0.5)
    else:
        right = np.argmax(outputs, axis=1) == np.argmax(targets, axis=1)
    return int(np.sum(right)) / len(outputs)


# ---------------------------------------------------------------------------------------------------------
# Optimizers, PyTorch's conventions exactly. `step(parameters)` updates every parameter from its gradient;
# the state (momentum buffer, Adam's moments) is kept per parameter, by name.
# ---------------------------------------------------------------------------------------------------------

class SGD:
    """torch.optim.SGD. With weight decay λ, momentum μ, dampening τ, for each parameter p:
        g = ∇p + λp
        if μ ≠ 0:  b = g on the first step, else b = μb + (1 − τ)g      (the momentum buffer)
                   g = g + μb if nesterov else b
        p = p − lr·g
    (PyTorch's form v = μv + g; p −= lr·v, not Sutskever's v = μv − lr·g.)
    """

    def __init__(self, lr, momentum, dampening, nesterov, weight_decay):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buffers = {}                            # parameter name → momentum buffer b

    def step(self, parameters):
        for p in parameters:
            self.update(p)

    def decayed_gradient(self, p):
        """g = ∇p + λp (L2 weight decay folded into the gradient)."""
        if self.weight_decay != 0:
            return p.grad + self.weight_decay * p.value
        return p.grad

    def next_buffer(self, name, g):
        """b = g on the first step, then b = μb + (1 − τ)g."""
        if name not in self.buffers:
            return g.copy()
        return self.momentum * self.buffers[name] + (1 - self.dampening) * g

    def update(self, p):
        g = self.decayed_gradient(p)
        if self.momentum != 0:
            b = self.buffers[p.name] = self.next_buffer(p.name, g)
            g = g + self.momentum * b if self.nesterov else b
        p.value = p.value - self.lr * g

    def state(self, p):
        """The optimizer state of `p` for the trace: {"momentum": b} when there is momentum, and {} before the
        first update (the buffer is created by it)."""
        if self.momentum == 0 or p.name not in self.buffers:
            return {}
        return {"momentum": self.buffers[p.name]}


class Adam:
    """torch.optim.Adam (Kingma & Ba, with bias correction; weight decay added to the gradient, not AdamW).
    At step t = 1, 2, …, for each parameter p (m and v start at 0):
        g = ∇p + λp
        m = β1·m + (1 − β1)·g          (first moment: a running mean of g)
        v = β2·v + (1 − β2)·g²         (second moment: a running mean of g²)
        p = p − lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + ε)
    The factors 1/(1 − βᵗ) undo the bias of m and v towards their zero start (m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ)).
    """

    def __init__(self, lr, beta1, beta2, eps, weight_decay):
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = lr, beta1, beta2, eps, weight_decay
        self.t = 0
        self.m, self.v = {}, {}                      # parameter name → moment

    def step(self, parameters):
        self.t += 1
        for p in parameters:
            self.update(p)

    def decayed_gradient(self, p):
        """g = ∇p + λp."""
        if self.weight_decay != 0:
            return p.grad + self.weight_decay * p.value
        return p.grad

    def update(self, p):
        g = self.decayed_gradient(p)
        m = self.m[p.name] = self.beta1 * self.m.get(p.name, 0) + (1 - self.beta1) * g
        v = self.v[p.name] = self.beta2 * self.v.get(p.name, 0) + (1 - self.beta2) * g * g
        p.value = p.value - self.change(m, v)

    def change(self, m, v):
        """lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + ε), evaluated in the order torch.optim.Adam does."""
        step_size = self.lr / (1 - self.beta1 ** self.t)
        denominator = np.sqrt(v) / math.sqrt(1 - self.beta2 ** self.t) + self.eps
        return step_size * m / denominator

    def state(self, p):
        """{"m": m, "v": v} of `p`, for the trace; {} before the first update (m and v are still 0)."""
        if p.name not in self.m:
            return {}
        return {"m": self.m[p.name], "v": self.v[p.name]}


def make_optimizer(spec):
    if spec["type"] == "sgd":
        return SGD(spec["lr"], spec["momentum"], spec["dampening"], spec["nesterov"], spec["weightDecay"])
    return Adam(spec["lr"], spec["beta1"], spec["beta2"], spec["eps"], spec["weightDecay"])


# ---------------------------------------------------------------------------------------------------------
# Training: epoch 0 is an evaluation before any update; each epoch e ≥ 1 visits the train rows in its
# order, in mini-batches, one optimizer step per batch, then evaluates on the whole train and test sets.
# ---------------------------------------------------------------------------------------------------------

def epoch_order(experiment, epoch):
    """The train-row indices epoch `epoch` (1-based) visits, in order: `training.orders[epoch − 1]`, or
    file order (0, 1, …, n − 1) when the experiment has no orders (`"shuffle": false`)."""
    if experiment["orders"] is not None:
        return experiment["orders"][epoch - 1]
    return np.arange(len(experiment["train"]["inputs"]))


def batches(order, batch_size):
    """(batch number from 1, row indices): consecutive slices of `batch_size` rows of `order`; the last one
    is smaller when batch_size does not divide the row count."""
    for number, start in enumerate(range(0, len(order), batch_size), start=1):
        yield number, order[start:start + batch_size]


def evaluate(model, loss, data):
    """(loss, accuracy) over a whole set, one forward pass, no update."""
    outputs = model.forward(data["inputs"])
    return float(loss.value(outputs, data["targets"])), accuracy(outputs, data["targets"])


def evaluation(epoch, model, loss, optimizer, experiment):
    """The trace's entry for `epoch`: loss and accuracy on the whole train set and the whole test set, and,
    when the experiment asks for them (`"trace": {"epochParameters": true}`), the parameters and optimizer
    state these losses were computed with (taken here, so that they cannot be those of another moment)."""
    train_loss, train_accuracy = evaluate(model, loss, experiment["train"])
    test_loss, test_accuracy = evaluate(model, loss, experiment["test"])
    entry = {"epoch": epoch, "trainLoss": train_loss, "testLoss": test_loss,
             "trainAccuracy": train_accuracy, "testAccuracy": test_accuracy}
    if experiment["epochParameters"]:
        entry["parameters"] = checkpoint(model, optimizer)
    return entry


def checkpoint(model, optimizer):
    """Every parameter and its optimizer state now, under the names of docs/trace-format.md ("layers[0].weight",
    "layers[0].weight.m", …), converted at once: later updates change the arrays. Before the first update the
    optimizer has no state yet, so there are only the parameters."""
    tensors = {}
    for p in model.parameters():
        tensors[p.name] = json_ready(p.value)
        for suffix, tensor in optimizer.state(p).items():
            tensors[f"{p.name}.{suffix}"] = json_ready(tensor)
    return tensors


def train_step(model, loss, optimizer, x, y, recorder=None):
    """One mini-batch: zero the gradients, forward, loss; if the loss is finite, backward and one optimizer
    step. Returns the batch loss; a NaN or ±∞ loss means the caller stops (nothing was updated)."""
    model.zero_grad()
    output = model.forward(x)
    value = float(loss.value(output, y))
    if recorder:
        recorder.forward(model, value)
    if not math.isfinite(value):
        return value
    d_output = loss.gradient(output, y)              # ∂loss/∂(network output)
    model.backward(d_output)
    if recorder:
        recorder.backward(model, d_output)
    optimizer.step(model.parameters())
    if recorder:
        recorder.update(model, optimizer)
    return value


def train(experiment, recorder):
    """Trains the experiment's model; returns (model, epochs, divergence).

    `epochs` holds the evaluations 0 … E, or 0 … d − 1 when a batch loss of epoch d became NaN or ±∞;
    `divergence` is then {"epoch": d, "batch": b, "loss": …} (1-based), else None.
    """
    model = build_model(experiment["layers"])
    loss = LOSSES[experiment["loss"]]
    optimizer = make_optimizer(experiment["optimizer"])
    train_set = experiment["train"]
    epochs = [evaluation(0, model, loss, optimizer, experiment)]
    for epoch in range(1, experiment["epochs"] + 1):
        for batch, rows in batches(epoch_order(experiment, epoch), experiment["batchSize"]):
            recording = recorder.begin(epoch, batch)
            x, y = train_set["inputs"][rows], train_set["targets"][rows]
            value = train_step(model, loss, optimizer, x, y, recorder if recording else None)
            if not math.isfinite(value):
                return model, epochs, {"epoch": epoch, "batch": batch, "loss": value}
        epochs.append(evaluation(epoch, model, loss, optimizer, experiment))
    return model, epochs, None


class StepRecorder:
    """Keeps the tensors of the first `limit` optimizer steps, under the names of docs/trace-format.md."""

    def __init__(self, limit):
        self.limit = limit
        self.steps = []

    def begin(self, epoch, batch):
        """True (and a new entry) while fewer than `limit` steps are recorded."""
        if len(self.steps) >= self.limit:
            return False
        self.steps.append({"epoch": epoch, "batch": batch, "tensors": {}})
        return True

    def put(self, name, value):
        self.steps[-1]["tensors"][name] = json_ready(value)   # converted now: later steps change the arrays

    def forward(self, model, loss_value):
        for i, output in enumerate(model.outputs):
            self.put(f"layers[{i}].output", output)
        self.put("loss", loss_value)

    def backward(self, model, d_output):
        self.put("loss.dInput", d_output)
        for i, d_input in enumerate(model.d_inputs):
            self.put(f"layers[{i}].dInput", d_input)
        for i, layer in enumerate(model.layers):
            if isinstance(layer, Linear):
                self.put(f"layers[{i}].dWeight", layer.weight.grad)
                self.put(f"layers[{i}].dBias", layer.bias.grad)

    def update(self, model, optimizer):
        self.steps[-1]["tensors"].update(checkpoint(model, optimizer))   # the parameters and state after the step


def run(experiment):
    """Trains and returns the trace (a JSON-ready dict)."""
    recorder = StepRecorder(experiment["traceSteps"] or 0)
    start = time.perf_counter()
    with np.errstate(all="ignore"):    # overflow to ±∞ or NaN is expected in a diverging run: it is checked
        model, epochs, divergence = train(experiment, recorder)
    seconds = time.perf_counter() - start
    trace = {
        "format": "minidl-trace",
        "version": 2,
        "experiment": experiment["name"],
        "engine": engine_description(),
        "epochs": json_ready(epochs),
        "divergence": json_ready(divergence),
        "seconds": seconds,
        "initialParameters": {f"layers[{i}].{key}": json_ready(spec[key])
                              for i, spec in enumerate(experiment["layers"]) if spec["type"] == "linear"
                              for key in ("weight", "bias")},
        "parameters": [{"weight": json_ready(layer.weight.value), "bias": json_ready(layer.bias.value)}
                       for layer in model.layers if isinstance(layer, Linear)],
    }
    if experiment["traceSteps"] is not None:
        trace["steps"] = recorder.steps
    return trace


def engine_description():
    return f"numpy {np.__version__} float64 (examples/engines/numpy_engine.py)"


# ---------------------------------------------------------------------------------------------------------
# Writing the trace. JSON has no NaN or infinity: they are written as the strings "NaN", "Infinity",
# "-Infinity". Python's repr of a float round-trips exactly, and json uses it.
# ---------------------------------------------------------------------------------------------------------

def json_ready(value):
    """`value` with arrays as nested lists and non-finite floats as strings."""
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def write_atomically(path, text):
    """Writes a temporary file next to `path`, then renames it: a reader never sees half a trace."""
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".trace-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------------------
# Reading the experiment (README, "Experiment files"; docs/trace-format.md, "What the experiment file gives
# an engine"). Everything is checked before training starts, and a problem is reported as
# "<file>: <field>: <what was expected>".
# ---------------------------------------------------------------------------------------------------------

class BadInput(Exception):
    def __init__(self, file, field, message):
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


SGD_DEFAULTS = {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weightDecay": 0.0}
ADAM_DEFAULTS = {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0.0}
ACTIVATIONS = ["relu", "tanh", "sigmoid", "leakyRelu", "gelu"]
EXPORT_HINT = "export the experiment first with `compare export`, which writes everything out"


class ExperimentReader:
    """Typed access to the parsed JSON, each problem reported with its JSON path."""

    def __init__(self, file):
        self.file = file

    def fail(self, path, message):
        raise BadInput(self.file, path, message)

    @staticmethod
    def describe(value):
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return f'a string ("{value[:40]}")'
        return "an array" if isinstance(value, list) else "an object"

    def object(self, value, path, allowed):
        if not isinstance(value, dict):
            self.fail(path or "(top level)", f"expected an object, got {self.describe(value)}")
        for key in value:
            if key not in allowed:
                self.fail(join(path, key), f"unknown key; allowed: {', '.join(allowed)}")
        return value

    def number(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a number, got {self.describe(value)}")
        if not math.isfinite(value):
            self.fail(path, f"expected a finite number, got {value}")
        return float(value)

    def integer(self, value, path, minimum):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {self.describe(value)}")
        if value < minimum:
            self.fail(path, f"expected an integer ≥ {minimum}, got {value}")
        return value

    def boolean(self, value, path):
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {self.describe(value)}")
        return value

    def array(self, value, path):
        if not isinstance(value, list):
            self.fail(path, f"expected an array, got {self.describe(value)}")
        return value

    def vector(self, value, path, length=None):
        values = [self.number(item, f"{path}[{k}]") for k, item in enumerate(self.array(value, path))]
        if length is not None and len(values) != length:
            self.fail(path, f"expected {length} numbers, got {len(values)}")
        return np.array(values, dtype=np.float64)

    def matrix(self, value, path, rows=None, columns=None):
        """A non-empty array of rows of equal length, as a (rows, columns) float64 array."""
        lines = self.array(value, path)
        if not lines:
            self.fail(path, "expected at least one row, got an empty array")
        if rows is not None and len(lines) != rows:
            self.fail(path, f"expected {rows} rows, got {len(lines)}")
        width = columns if columns is not None else len(self.array(lines[0], f"{path}[0]"))
        return np.array([self.vector(line, f"{path}[{r}]", width) for r, line in enumerate(lines)],
                        dtype=np.float64).reshape(len(lines), width)


def join(path, key):
    return f"{path}.{key}" if path else key


def default_name(file):
    """"runs/torch-3.experiment.json" → "torch-3"."""
    name = os.path.basename(file)
    for suffix in (".experiment.json", ".json"):
        if name.endswith(suffix):
            return name[:-len(suffix)] or "experiment"
    return name or "experiment"


def parse_json(file):
    try:
        with open(file, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise BadInput(file, None, "cannot read the file: it does not exist")
    except IsADirectoryError:
        raise BadInput(file, None, "cannot read the file: it is a directory")
    except OSError as error:
        raise BadInput(file, None, f"cannot read the file: {error.strerror}")

    def refuse_constant(name):      # json accepts NaN and Infinity, which are not JSON
        raise ValueError(f"{name} is not a JSON value")

    def refuse_duplicates(pairs):
        keys = [key for key, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f'the key "{key}" appears twice in one object')
        return dict(pairs)

    try:
        return json.loads(text, parse_constant=refuse_constant, object_pairs_hook=refuse_duplicates)
    except ValueError as error:     # also UnicodeDecodeError
        raise BadInput(file, None, f"not valid JSON: {error}")


def read_experiment(file):
    """The experiment file as a dict of NumPy arrays and plain values, checked; raises BadInput."""
    read = ExperimentReader(file)
    root = read.object(parse_json(file), "",
                       ["name", "seed", "data", "model", "loss", "optimizer", "training", "trace"])
    experiment = {}

    name = root.get("name", default_name(file))
    if not isinstance(name, str) or not name:
        read.fail("name", f"expected a non-empty string, got {read.describe(name)}")
    experiment["name"] = name                        # "seed" is ignored: everything is explicit

    # data: explicit train and test sets only.
    if "data" not in root:
        read.fail("data", f"missing: this engine needs explicit data.train and data.test ({EXPORT_HINT})")
    data = root["data"]
    if isinstance(data, dict):
        for kind in ("disk", "xor"):
            if kind in data:
                read.fail(f"data.{kind}", "not supported by this engine: expected explicit data.train and "
                          f"data.test ({EXPORT_HINT})")
    read.object(data, "data", ["train", "test"])
    for part in ("train", "test"):
        if part not in data:
            read.fail(f"data.{part}", "missing: explicit data needs train and test")
        dataset = read.object(data[part], f"data.{part}", ["inputs", "targets"])
        for key in ("inputs", "targets"):
            if key not in dataset:
                read.fail(f"data.{part}.{key}", "missing: a data set needs inputs and targets")
        inputs = read.matrix(dataset["inputs"], f"data.{part}.inputs")
        targets = read.matrix(dataset["targets"], f"data.{part}.targets", rows=len(inputs))
        experiment[part] = {"inputs": inputs, "targets": targets}

    # model: linear layers with explicit weight and bias, and activations.
    if "model" not in root:
        read.fail("model", "missing: an experiment needs a model with layers")
    model = read.object(root["model"], "model", ["layers"])
    specs = read.array(model.get("layers"), "model.layers")
    layers, width, first_in, last_out = [], None, None, None
    for index, spec in enumerate(specs):
        path = f"model.layers[{index}]"
        if not isinstance(spec, dict) or "type" not in spec:
            read.fail(path, "expected an object with a \"type\"")
        kind = spec["type"]
        if kind == "linear":
            if "init" in spec:
                read.fail(f"{path}.init", f"not supported by this engine: expected explicit weight and bias "
                          f"({EXPORT_HINT})")
            read.object(spec, path, ["type", "in", "out", "weight", "bias"])
            for key in ("in", "out", "weight", "bias"):
                if key not in spec:
                    read.fail(f"{path}.{key}", "missing: this engine needs a linear layer's in, out and explicit "
                              f"weight and bias ({EXPORT_HINT})")
            n_in = read.integer(spec["in"], f"{path}.in", 1)
            n_out = read.integer(spec["out"], f"{path}.out", 1)
            if width is not None and n_in != width:
                read.fail(f"{path}.in", f"{n_in}, but the previous layer gives {width}")
            weight = read.matrix(spec["weight"], f"{path}.weight", rows=n_out, columns=n_in)
            bias = read.vector(spec["bias"], f"{path}.bias", n_out)
            layers.append({"type": "linear", "weight": weight, "bias": bias})
            width, last_out = n_out, n_out
            first_in = n_in if first_in is None else first_in
        elif kind == "leakyRelu":
            read.object(spec, path, ["type", "slope"])
            layers.append({"type": kind, "slope": read.number(spec.get("slope", 0.01), f"{path}.slope")})
        elif kind in ACTIVATIONS:
            read.object(spec, path, ["type"])
            layers.append({"type": kind})
        else:
            read.fail(f"{path}.type", f"unknown layer type {json.dumps(kind)}; allowed: linear, "
                      + ", ".join(ACTIVATIONS))
    if first_in is None:
        read.fail("model.layers", "expected at least one linear layer")
    for part in ("train", "test"):
        if experiment[part]["inputs"].shape[1] != first_in:
            read.fail(f"data.{part}.inputs", f"rows of {experiment[part]['inputs'].shape[1]} numbers, but the "
                      f"first linear layer takes {first_in}")
        if experiment[part]["targets"].shape[1] != last_out:
            read.fail(f"data.{part}.targets", f"rows of {experiment[part]['targets'].shape[1]} numbers, but "
                      f"the last linear layer gives {last_out}")
    experiment["layers"] = layers

    # loss
    loss = read.object(root.get("loss", {"type": "mse"}), "loss", ["type"])
    if loss.get("type") not in LOSSES:
        read.fail("loss.type", f"expected one of {', '.join(LOSSES)}, got {read.describe(loss.get('type'))}")
    experiment["loss"] = loss["type"]
    if loss["type"] == "bce":
        if layers[-1]["type"] != "sigmoid":
            read.fail("loss.type", "bce needs probabilities: the last layer must be sigmoid")
        for part in ("train", "test"):
            if not np.all((experiment[part]["targets"] >= 0) & (experiment[part]["targets"] <= 1)):
                read.fail(f"data.{part}.targets", "bce needs targets in [0, 1]")
    if loss["type"] == "crossEntropy" and last_out < 2:
        read.fail("loss.type", "crossEntropy needs at least two outputs")

    # optimizer, every omitted field taking PyTorch's default (lr: 0.1 for sgd, as the experiment format has it)
    optimizer = read.object(root.get("optimizer", {"type": "sgd"}), "optimizer", list(SGD_DEFAULTS) + ["type"]
                            + list(ADAM_DEFAULTS))
    kind = optimizer.get("type")
    if kind not in ("sgd", "adam"):
        read.fail("optimizer.type", f"expected sgd or adam, got {read.describe(kind)}")
    defaults = SGD_DEFAULTS if kind == "sgd" else ADAM_DEFAULTS
    read.object(optimizer, "optimizer", ["type"] + list(defaults))
    settings = {"type": kind}
    for key, default in defaults.items():
        value = optimizer.get(key, default)
        path = f"optimizer.{key}"
        settings[key] = read.boolean(value, path) if key == "nesterov" else read.number(value, path)
        if key != "dampening" and key != "nesterov" and settings[key] < 0:
            read.fail(path, f"expected a number ≥ 0, got {value}")
    if kind == "adam":
        for key in ("beta1", "beta2"):
            if not settings[key] < 1:
                read.fail(f"optimizer.{key}", f"expected 0 ≤ {key} < 1, got {settings[key]}")
    elif settings["nesterov"] and (settings["momentum"] <= 0 or settings["dampening"] != 0):
        read.fail("optimizer.nesterov", "nesterov momentum needs momentum > 0 and dampening = 0")
    experiment["optimizer"] = settings

    # training: epochs, batch size, and the order of the rows in every epoch
    training = read.object(root.get("training", {}), "training", ["epochs", "batchSize", "shuffle", "orders"])
    experiment["epochs"] = read.integer(training.get("epochs", 300), "training.epochs", 0)
    experiment["batchSize"] = read.integer(training.get("batchSize", 5), "training.batchSize", 1)
    shuffle = read.boolean(training.get("shuffle", True), "training.shuffle")
    experiment["orders"] = None
    count = len(experiment["train"]["inputs"])
    if "orders" in training:
        orders = read.array(training["orders"], "training.orders")
        if len(orders) != experiment["epochs"]:
            read.fail("training.orders", f"{len(orders)} orders for {experiment['epochs']} epochs; expected one "
                      "per epoch")
        for e, order in enumerate(orders):
            path = f"training.orders[{e}]"
            indices = [read.integer(i, f"{path}[{k}]", 0) for k, i in enumerate(read.array(order, path))]
            if sorted(indices) != list(range(count)):
                read.fail(path, f"expected a permutation of the {count} train-row indices 0 … {count - 1}")
        experiment["orders"] = [np.array(order, dtype=np.intp) for order in orders]
    elif shuffle:
        read.fail("training.shuffle", "true without training.orders, and this engine has no random generator: "
                  "export the experiment first with `compare export`, which writes the orders of every epoch")

    # trace: the tensors of the first K steps, and the parameters after every epoch
    experiment["traceSteps"] = None
    experiment["epochParameters"] = False
    if "trace" in root:
        trace = read.object(root["trace"], "trace", ["steps", "epochParameters"])
        experiment["traceSteps"] = read.integer(trace.get("steps", 0), "trace.steps", 0)
        experiment["epochParameters"] = read.boolean(trace.get("epochParameters", False), "trace.epochParameters")
    return experiment


def main(arguments=None):
    arguments = sys.argv[1:] if arguments is None else arguments
    if len(arguments) != 2:
        print(f"usage: {PROGRAM} EXPERIMENT.json TRACE.json", file=sys.stderr)
        return 2
    experiment_file, trace_file = arguments
    try:
        experiment = read_experiment(experiment_file)
    except BadInput as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    trace = run(experiment)
    try:
        write_atomically(trace_file, json.dumps(trace, allow_nan=False))
    except OSError as error:
        print(f"{PROGRAM}: {trace_file}: cannot write the trace: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
