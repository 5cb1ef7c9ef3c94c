"""The source document's worked example and the measurements that settle its
claims.

Chapter 5 and its Chinese edition both import this module, so the two pages
print numbers from one computation: a change here changes both, and nbval
re-checks both. Chapter 5 displays the code below with ``graves.show_source``
and checks it against ``graves.RMSprop``.
"""

import math

import numpy as np

import graves

# The document's worked example: Y = 2X, fitted from W = b = 0 (D8).
X = np.array([1, 2, 3, 4, 5])
Y = np.array([2, 4, 6, 8, 10])
EPOCHS = 100
# the document's defaults (D7)
DOC_DEFAULTS = dict(learning_rate=0.001, rho=0.9, epsilon=1e-8)
# Graves' published constants
ALEPH, BETH, GIMEL, DALETH = 0.95, 0.9, 1e-4, 1e-4


class DocumentRMSprop:
    """The algorithm of the document's class (uncentered RMSprop, eps inside
    the root), eq. doc-update."""

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-8):
        self.learning_rate, self.rho, self.epsilon = learning_rate, rho, epsilon
        # one moving average of the squared gradient per parameter: the only
        # state
        self.n = {}

    def update(self, params, grads):
        for name, grad in grads.items():
            n = self.rho * self.n.get(name, 0.0) + (1 - self.rho) * grad * grad
            self.n[name] = n
            step = self.learning_rate * grad / np.sqrt(n + self.epsilon)
            params[name] = params[name] - step


def train(optimizer, epochs=EPOCHS, every=10, quiet=False):
    """The document's loop on its example; returns the final params and the
    history.

    history["loss"][t] is the loss computed in epoch t+1, before that epoch's
    update; history["W"][t], history["b"][t] are the parameters after it.
    """
    params = {"W": 0.0, "b": 0.0}
    grads = {"W": 0.0, "b": 0.0}
    history = {"loss": [], "W": [], "b": []}
    for epoch in range(epochs):
        residual = params["W"] * X + params["b"] - Y
        loss = np.mean(residual**2)
        grads["W"] = np.mean(2 * residual * X)
        grads["b"] = np.mean(2 * residual)
        optimizer.update(params, grads)
        history["loss"].append(float(loss))
        for key in ("W", "b"):
            history[key].append(float(params[key]))
        if not quiet and epoch % every == 0:
            print(f"Epoch {epoch + 1}: loss = {loss:.4f}, "
                  f"W = {params['W']}, b = {params['b']}")
    return params, {key: np.array(values) for key, values in history.items()}


def loss_at(W, b):
    """Mean squared error of the example at parameters W, b (scalars or
    arrays of equal shape)."""
    W, b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
    return np.mean((W[..., None] * X + b[..., None] - Y) ** 2, axis=-1)


# What the prose of D4 and D6 computes, read literally (m1 = m2 = n for D4's
# two averages)
READINGS = ("code (D5)", "D6 literally", "D4 literally")


def first_step(grad, reading, lr=0.001, rho=0.9, eps=1e-8):
    """The first step from n = 0 under one reading of the document's update."""
    n = (1 - rho) * grad * grad  # the average after one step from zero
    if reading == "code (D5)":
        return lr * grad / math.sqrt(n + eps)
    if reading == "D6 literally":
        return grad / math.sqrt(lr / (n + eps))
    if reading == "D4 literally":
        return grad / (math.sqrt(lr) / (math.sqrt(n) * math.sqrt(n)))
    raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")


def centering_ratios(optimizer):
    """sqrt(n) / sqrt(n - g^2 + eps) per parameter, from a centered
    optimizer's state (D2)."""
    eps = optimizer.hyperparameters()["eps"]
    ratios = {}
    for key, state in optimizer.state.items():
        n, g, _ = (float(a) for a in state)
        ratios[key] = math.sqrt(n) / math.sqrt(n - g * g + eps)
    return ratios


# Tuning the learning rates (D10): a grid 1, 2, 5 x 10^k from 1e-4 to 10
GRID = [float(f"{m}e{k}") for k in range(-4, 1) for m in (1, 2, 5)] + [10.0]
MAKERS = {
    "document": lambda lr: DocumentRMSprop(learning_rate=lr),
    "Graves": lambda lr: graves.RMSpropGraves(lr=lr),
    "GD": lambda lr: graves.SGD(lr=lr),
    "heavy ball": lambda lr: graves.SGD(lr=lr, momentum=BETH),
}


def score(optimizer):
    """(largest loss over epochs 91-100, final loss, epoch where the loss
    first falls below 1e-2 or None)."""
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            _, hist = train(optimizer, quiet=True)
        except FloatingPointError:
            # graves refuses a non-finite gradient: the run diverged
            return math.inf, math.inf, None
        losses = loss_at(hist["W"], hist["b"])
    losses = np.where(np.isfinite(losses), losses, np.inf)
    below = np.flatnonzero(losses < 1e-2)
    first = int(below[0]) + 1 if below.size else None
    return float(losses[-10:].max()), float(losses[-1]), first


def tune():
    """Every optimizer of MAKERS at every learning rate of GRID: the scores,
    and each one's best rate.

    The best rate is the one with the smallest largest loss over epochs
    91-100.
    """
    scores = {name: [score(make(lr)) for lr in GRID]
              for name, make in MAKERS.items()}
    best = {name: GRID[int(np.argmin([s[0] for s in scores[name]]))]
            for name in MAKERS}
    return scores, best


def epochs_to_reach(optimizer, threshold=1e-2, max_epochs=5000):
    """Run the loop on until the loss after an update first falls below
    threshold: (epoch, history)."""
    _, hist = train(optimizer, epochs=max_epochs, quiet=True)
    losses = loss_at(hist["W"], hist["b"])
    if not (losses < threshold).any():
        raise ValueError(f"the loss stays at or above threshold={threshold} "
                         f"for max_epochs={max_epochs}")
    epoch = int(np.argmax(losses < threshold)) + 1
    return epoch, hist
