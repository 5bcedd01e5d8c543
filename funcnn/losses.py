"""Losses: ``fn(output, y, sample_weight=None) -> (value, grad_output)``.

``value`` is a Python float; ``grad_output`` is d value / d output with the shape and
dtype of ``output``. "Mean over samples" is ``sum(w * l) / sum(w)`` with sample
weights ``w`` (all ones by default). Every loss is stable for any finite logits.

Registries, in the manner of scikit-learn's ``neural_network/_base.py``:

* :data:`LOSSES` — name → loss function;
* :data:`PROBA` — name → ``output -> probabilities`` (absent for regression);
* :data:`DECISION` — name → ``output -> predictions`` (labels, or the outputs).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .validation import check_labels, check_sample_weight
from .layers import stable_sigmoid, stable_softmax

LossResult = Tuple[float, np.ndarray]


def _check_output(output: Any, name: str) -> np.ndarray:
    if not isinstance(output, np.ndarray) or output.dtype.kind != "f":
        raise TypeError(f"{name}: output must be a float ndarray, got {type(output).__name__}"
                        + (f" of dtype {output.dtype}" if isinstance(output, np.ndarray) else ""))
    if output.ndim != 2 or output.shape[0] == 0:
        raise ValueError(f"{name}: output must be 2-D (n_samples, n_outputs) and non-empty, got shape {output.shape}")
    return output


def softmax_cross_entropy(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean of ``-log softmax(output)[i, y_i]``; output (n, k) logits, y (n,) ints in 0..k-1."""
    output = _check_output(output, "softmax_cross_entropy")
    n, k = output.shape
    labels = check_labels(y, n, k)
    w = check_sample_weight(sample_weight, n, output.dtype)
    return _softmax_cross_entropy(output, labels, w)


def binary_cross_entropy(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean log loss of ``sigmoid(output)``; output (n, 1) logits, y (n,) or (n, 1) in {0, 1}."""
    output = _check_output(output, "binary_cross_entropy")
    n, k = output.shape
    if k != 1:
        raise ValueError(f"binary_cross_entropy: the network must have 1 output (a logit), got {k}; "
                         "use softmax_cross_entropy for several classes")
    labels = check_labels(y, n, 2, context="(binary_cross_entropy takes 0/1 labels)")
    w = check_sample_weight(sample_weight, n, output.dtype)
    return _binary_cross_entropy(output, labels, w)


def mean_squared_error(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean over samples and outputs of ``(output - y)**2``; y (n, k), or (n,) when k == 1."""
    output = _check_output(output, "mean_squared_error")
    n, k = output.shape
    target = np.asarray(y)
    if target.dtype == object or not (np.issubdtype(target.dtype, np.number) or target.dtype == bool):
        raise TypeError(f"mean_squared_error: y must hold numbers, got dtype {target.dtype}")
    if target.ndim == 1 and k == 1:
        target = target[:, None]
    if target.shape != (n, k):
        raise ValueError(f"mean_squared_error: y must have shape {(n, k)} to match the output"
                         + (" (or (n,) for one output)" if k == 1 else "") + f", got {np.shape(y)}")
    target = target.astype(output.dtype, copy=False)
    if not np.isfinite(target).all():
        raise ValueError("mean_squared_error: y contains NaN or inf")
    w = check_sample_weight(sample_weight, n, output.dtype)
    return _mean_squared_error(output, target, w)


# --- the trusting versions ------------------------------------------------------------
#
# ``fn(output, target, w)`` with ``output`` a float (n, k) array, ``target`` already checked
# (intp labels for the cross-entropies, an (n, k) array of output's dtype for the squared
# error) and ``w`` None or checked weights of output's dtype. ``funcnn.train`` validates
# its data once and calls these on every minibatch; the public functions above validate
# and then call them, so both give the same numbers bit for bit.

def _total(w: Optional[np.ndarray], n: int) -> float:
    """The divisor of "mean over samples": n, or sum(w)."""
    if w is None:
        return float(n)
    total = float(w.sum())
    if not total > 0:  # possible for a minibatch of zero-weight samples
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    return total


def _reduce(per_sample: np.ndarray, w: Optional[np.ndarray], total: float) -> float:
    return float(np.add.reduce(per_sample if w is None else per_sample * w, dtype=np.float64) / total)


def _softmax_cross_entropy(output: np.ndarray, labels: np.ndarray, w: Optional[np.ndarray]) -> LossResult:
    n, k = output.shape
    total = _total(w, n)
    flat = np.arange(0, n * k, k)  # index of (i, labels[i]) in the flattened (n, k) array
    flat += labels
    # (np.maximum.reduce and np.add.reduce are what .max() and .sum() run, minus the wrappers.)
    z = np.subtract(output, np.maximum.reduce(output, axis=1, keepdims=True), order="C")
    zf = z.reshape(-1)  # a view: z is C-contiguous
    picked = zf[flat]
    # -log softmax[y] = log(sum exp(z)) - z[y]; z <= 0 so exp never overflows, and the sum
    # is >= 1 so the log is finite. One exp serves both the value and the gradient.
    np.exp(z, out=z)
    sum_exp = np.add.reduce(z, axis=1)
    per_sample = np.log(sum_exp)
    per_sample -= picked
    value = _reduce(per_sample, w, total)
    z /= sum_exp[:, None]
    zf[flat] -= 1
    z *= (1.0 / total) if w is None else (w / total)[:, None]
    return value, z


def _binary_cross_entropy(output: np.ndarray, labels: np.ndarray, w: Optional[np.ndarray]) -> LossResult:
    total = _total(w, output.shape[0])
    z = output[:, 0]
    t = labels.astype(output.dtype)
    # log(1 + exp(z)) - t z, written as max(z, 0) - t z + log1p(exp(-|z|)): never overflows.
    per_sample = np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z)))
    value = _reduce(per_sample, w, total)
    grad = stable_sigmoid(output)
    grad[:, 0] -= t
    grad *= (1.0 / total) if w is None else (w / total)[:, None]
    return value, grad


def _mean_squared_error(output: np.ndarray, target: np.ndarray, w: Optional[np.ndarray]) -> LossResult:
    n, k = output.shape
    total = _total(w, n)
    diff = output - target
    per_sample = (diff * diff).mean(axis=1)
    value = _reduce(per_sample, w, total)
    diff *= (2.0 / (k * total)) if w is None else (w * (2.0 / (k * total)))[:, None]
    return value, diff


def _binary_proba(output: np.ndarray) -> np.ndarray:
    p1 = stable_sigmoid(output[:, 0])
    return np.stack([1 - p1, p1], axis=1)


LOSSES: Dict[str, Callable[..., LossResult]] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "mean_squared_error": mean_squared_error,
}

# name → the trusting version, for callers that validated their targets once
# (see :func:`check_targets` for what they must be).
CORES: Dict[str, Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], LossResult]] = {
    "softmax_cross_entropy": _softmax_cross_entropy,
    "binary_cross_entropy": _binary_cross_entropy,
    "mean_squared_error": _mean_squared_error,
}

PROBA: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax_cross_entropy": stable_softmax,
    "binary_cross_entropy": _binary_proba,
}

DECISION: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax_cross_entropy": lambda out: out.argmax(axis=1),
    # sigmoid(z) > 0.5 exactly when z > 0, as scikit-learn's MLPClassifier decides.
    "binary_cross_entropy": lambda out: (out[:, 0] > 0).astype(np.intp),
    "mean_squared_error": lambda out: out,
}


def get(loss: Any) -> Callable[..., LossResult]:
    """The loss function registered under ``loss`` (ValueError listing the known names)."""
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a loss name (str), got {type(loss).__name__}; known: {sorted(LOSSES)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {sorted(LOSSES)}")
    return LOSSES[loss]


def is_classification(loss: str) -> bool:
    """True for the losses whose predictions are class labels."""
    get(loss)
    return loss in PROBA


def check_targets(loss: str, y: Any, n: int, n_out: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Targets checked once, by the loss itself on a zero output: intp labels (n,) or an (n, n_out) array.

    Callers that validate their data once (``train``, ``evaluate``, ``sweep``) pass the result
    to the loss cores in :data:`CORES` on every minibatch.
    """
    fn = get(loss)
    if not hasattr(y, "__len__"):
        raise TypeError(f"{name} must be array-like, got {type(y).__name__}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} rows but X has {n} samples")
    try:
        fn(np.zeros((n, n_out), dtype=dtype), y)
    except (ValueError, TypeError) as exc:
        raise type(exc)(str(exc).replace("y", name, 1) if name != "y" else str(exc)) from None
    if is_classification(loss):
        arr = np.asarray(y)
        return (arr.reshape(-1) if arr.ndim == 2 else arr).astype(np.intp)
    arr = np.asarray(y, dtype=dtype)
    return arr.reshape(n, n_out)
