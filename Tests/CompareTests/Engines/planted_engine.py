#!/usr/bin/env python3
"""A test engine: examples/engines/numpy_engine.py with exactly one planted convention difference.

    python3 planted_engine.py VARIANT EXPERIMENT.json TRACE.json

It imports numpy_engine.py (three folders up, then examples/engines/), replaces the function or method
that holds one convention, and runs the engine's own main. numpy_engine.py itself knows nothing of this.
The tests use it to check that `compare` notices (and names) each kind of difference, and that a variant
that does not apply to an experiment (e.g. an SGD variant on an Adam experiment) changes nothing.
`none` changes nothing at all: its trace equals numpy_engine.py's bit for bit (but for `seconds` and `engine`).

Exit status: as numpy_engine.py; 2 for an unknown VARIANT (the message lists the known ones).
"""

import os
import sys

import numpy as np

sys.dont_write_bytecode = True   # leave no __pycache__ in examples/engines
HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "..", "examples", "engines")))
import numpy_engine as engine  # noqa: E402


def mse_mean_over_rows():
    """MSE value and gradient divided by rows instead of rows·columns."""
    engine.MSE.value = staticmethod(lambda p, t: np.sum((p - t) ** 2) / len(p))
    engine.MSE.gradient = staticmethod(lambda p, t: (p - t) * (2 / len(p)))


def mse_sum():
    """MSE with sum reduction: Σ(p − t)², gradient 2(p − t)."""
    engine.MSE.value = staticmethod(lambda p, t: np.sum((p - t) ** 2))
    engine.MSE.gradient = staticmethod(lambda p, t: (p - t) * 2)


def ce_sum():
    """Cross-entropy summed over rows: Σ_r ℓ_r, gradient softmax − onehot."""
    def value(z, t):
        return np.sum(-engine.CrossEntropy._log_softmax(z)[np.arange(len(z)), np.argmax(t, axis=1)])

    def gradient(z, t):
        g = np.exp(engine.CrossEntropy._log_softmax(z))
        g[np.arange(len(z)), np.argmax(t, axis=1)] += -1
        return g
    engine.CrossEntropy.value = staticmethod(value)
    engine.CrossEntropy.gradient = staticmethod(gradient)


def sgd_momentum_ema():
    """b₀ = 0 and b = μb + (1 − μ)g at every step, the first included (dampening ignored)."""
    def next_buffer(self, name, g):
        return self.momentum * self.buffers.get(name, 0) + (1 - self.momentum) * g
    engine.SGD.next_buffer = next_buffer


def sgd_dampening_first_step():
    """b₁ = (1 − τ)g instead of g."""
    original = engine.SGD.next_buffer

    def next_buffer(self, name, g):
        return (1 - self.dampening) * g if name not in self.buffers else original(self, name, g)
    engine.SGD.next_buffer = next_buffer


def sgd_weight_decay_after_momentum():
    """Momentum on the raw gradient (b₁ = ∇p, b = μb + (1 − τ)∇p), then p −= lr·(b + λp)."""
    def update(self, p):
        g = p.grad
        if self.momentum != 0:
            b = self.buffers[p.name] = self.next_buffer(p.name, g)
            g = g + self.momentum * b if self.nesterov else b
        p.value = p.value - self.lr * (g + self.weight_decay * p.value)
    engine.SGD.update = update


def nesterov_ignored():
    """Plain momentum even when nesterov is true."""
    original = engine.SGD.__init__

    def init(self, lr, momentum, dampening, nesterov, weight_decay):
        original(self, lr, momentum, dampening, False, weight_decay)
    engine.SGD.__init__ = init


def adam_eps_inside_sqrt():
    """p −= lr·m̂/√(v̂ + ε), with m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ)."""
    def change(self, m, v):
        m_hat = m / (1 - self.beta1 ** self.t)
        v_hat = v / (1 - self.beta2 ** self.t)
        return self.lr * m_hat / np.sqrt(v_hat + self.eps)
    engine.Adam.change = change


def adam_no_bias_correction():
    """p −= lr·m/(√v + ε)."""
    engine.Adam.change = lambda self, m, v: self.lr * m / (np.sqrt(v) + self.eps)


def adamw_decoupled():
    """torch.optim.AdamW: g = ∇p (no λp), and p ← p·(1 − lr·λ) before the Adam update."""
    original = engine.Adam.update

    def update(self, p):
        p.value = p.value * (1 - self.lr * self.weight_decay)
        original(self, p)
    engine.Adam.decayed_gradient = lambda self, p: p.grad
    engine.Adam.update = update


def drop_last_batch():
    """The last batch of each epoch is skipped when it has fewer than batchSize rows."""
    original = engine.batches

    def batches(order, batch_size):
        for number, rows in original(order, batch_size):
            if len(rows) == batch_size:
                yield number, rows
    engine.batches = batches


def orders_ignored():
    """File order every epoch, whatever training.orders says."""
    engine.epoch_order = lambda experiment, epoch: np.arange(len(experiment["train"]["inputs"]))


def gradients_not_zeroed():
    """Gradients are never zeroed: they accumulate across steps."""
    engine.Model.zero_grad = lambda self: None


def sigmoid_derivative_from_input():
    """Sigmoid backward dy·x(1 − x), x being the sigmoid's input (not its output)."""
    original = engine.Sigmoid.forward

    def forward(self, x):
        self.x = x
        return original(self, x)
    engine.Sigmoid.forward = forward
    engine.Sigmoid.backward = lambda self, dy: dy * (1 - self.x) * self.x


def tanh_derivative_from_input():
    """Tanh backward dy·(1 − x²), x being the tanh's input (not its output)."""
    original = engine.Tanh.forward

    def forward(self, x):
        self.x = x
        return original(self, x)
    engine.Tanh.forward = forward
    engine.Tanh.backward = lambda self, dy: dy * (1 - self.x * self.x)


def leaky_relu_derivative_no_slope():
    """LeakyReLU backward 0 (not slope·dy) where x ≤ 0."""
    engine.LeakyReLU.backward = lambda self, dy: np.where(self.x > 0, dy, 0.0)


def trace_starts_at_epoch_1():
    """Epoch 0 is not evaluated: the trace's epochs are 1 … E, labelled 1 … E."""
    original = engine.train

    def train(experiment, recorder):
        model, epochs, divergence = original(experiment, recorder)
        return model, epochs[1:], divergence
    engine.train = train


def metrics_before_update():
    """Entry e ≥ 1 holds the evaluation taken before epoch e's updates (entry 1 = entry 0, entry 2 = after
    epoch 1, …), labelled 0 … E: every evaluation is reported one epoch late. Only the metrics are late: an
    entry's "parameters" ("trace": {"epochParameters": true}) stay the ones after epoch e, so that the metrics
    no longer match the parameters written beside them, as in the referee's model of this convention."""
    original = engine.train
    metrics = ("trainLoss", "testLoss", "trainAccuracy", "testAccuracy")

    def train(experiment, recorder):
        model, epochs, divergence = original(experiment, recorder)
        late = [dict(epochs[e], **{key: epochs[max(e - 1, 0)][key] for key in metrics}) for e in range(len(epochs))]
        return model, late, divergence
    engine.train = train


def tanh_derivative_off_by_1_percent():
    """Tanh backward dy·(1 − y²)·1.01 (a bug outside the catalogue of conventions)."""
    engine.Tanh.backward = lambda self, dy: dy * (1 - self.y * self.y) * 1.01


def mse_gradient_over_rows():
    """MSE value right, gradient 2(p − t)/rows (rows instead of rows·columns)."""
    engine.MSE.gradient = staticmethod(lambda p, t: (p - t) * (2 / len(p)))


def relu_derivative_one_at_zero():
    """ReLU′(0) = 1 (PyTorch: 0): dx = dy where x ≥ 0. It matters only where an input is exactly 0."""
    engine.ReLU.backward = lambda self, dy: np.where(self.x >= 0, dy, 0.0)


def late_weight_decay():
    """L2 weight decay 10⁻³ added to SGD's gradient from epoch 250 on (or from the epoch the environment variable
    PLANTED_FROM_EPOCH gives): a bug that bites only late, past the horizon where free-running curves stop
    being compared."""
    start = int(os.environ.get("PLANTED_FROM_EPOCH", "250"))
    state = {"epoch": 0}
    original_order = engine.epoch_order

    def epoch_order(experiment, epoch):
        state["epoch"] = epoch
        return original_order(experiment, epoch)
    engine.epoch_order = epoch_order
    original = engine.SGD.decayed_gradient

    def decayed_gradient(self, p):
        g = original(self, p)
        return g + 1e-3 * p.value if state["epoch"] >= start else g
    engine.SGD.decayed_gradient = decayed_gradient


def mse_scaling_in_linear():
    """An equivalent reformulation: MSE's gradient without its 1/rows, and Linear's parameter gradients divided by
    the rows instead. Every update is PyTorch's; loss.dInput and every dInput are `rows` times PyTorch's."""
    engine.MSE.gradient = staticmethod(lambda p, t: (p - t) * (2 / p.shape[1]))

    def backward(self, dy):
        rows = len(dy)
        self.weight.grad += dy.T @ self.x / rows
        self.bias.grad += dy.sum(axis=0) / rows
        return dy @ self.weight.value
    engine.Linear.backward = backward


def none():
    """No change (a control)."""


VARIANTS = {function.__name__.replace("_", "-"): function for function in [
    mse_mean_over_rows, mse_sum, ce_sum, sgd_momentum_ema, sgd_dampening_first_step,
    sgd_weight_decay_after_momentum, nesterov_ignored, adam_eps_inside_sqrt, adam_no_bias_correction,
    adamw_decoupled, drop_last_batch, orders_ignored, gradients_not_zeroed, sigmoid_derivative_from_input,
    tanh_derivative_from_input, leaky_relu_derivative_no_slope, trace_starts_at_epoch_1, metrics_before_update,
    tanh_derivative_off_by_1_percent, mse_gradient_over_rows, relu_derivative_one_at_zero, late_weight_decay,
    mse_scaling_in_linear, none]}


def main(arguments):
    known = ", ".join(VARIANTS)
    if len(arguments) != 3:
        print(f"usage: planted_engine.py VARIANT EXPERIMENT.json TRACE.json (VARIANT: {known})", file=sys.stderr)
        return 2
    variant = arguments[0]
    if variant not in VARIANTS:
        print(f"planted_engine.py: unknown variant \"{variant}\"; known: {known}", file=sys.stderr)
        return 2
    VARIANTS[variant]()
    engine.PROGRAM = "planted_engine.py"
    description = engine.engine_description()
    engine.engine_description = lambda: f"{description}, planted: {variant}"
    return engine.main(arguments[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
