"""Scores of a network's output, in NumPy: the one home of every metric funcnn reports.

``train`` (its history), ``evaluate`` and ``sweep`` all score through :func:`scores`, so
the three agree bit for bit. Definitions are scikit-learn's (``accuracy_score``,
``mean_squared_error``, ``r2_score`` with ``multioutput="uniform_average"``), weighted
means included; the tests compare them with scikit-learn. Nothing here imports
scikit-learn: a fresh sweep worker would pay seconds for that import.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from . import losses as _losses

__all__ = ["accuracy", "correct", "r2", "scores"]


def correct(loss: str, output: np.ndarray, labels: np.ndarray) -> int:
    """How many rows of ``output`` the loss's decision rule classifies as ``labels`` says.

    Args:
        loss: a classification loss name (its decision rule: argmax, or logit > 0 for binary).
        output: the network's output, ``(n, k)`` logits (``(n, 1)`` for binary).
        labels: integer labels ``(n,)``.

    Returns:
        The count of correctly classified rows.

    Examples:
        >>> import numpy as np
        >>> correct("softmax_cross_entropy", np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
        1
    """
    return int(np.count_nonzero(_losses.decision(loss)(output) == labels))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """Fraction (weighted: share of the weight) of ``y_pred == y_true``.

    Args:
        y_true: true labels ``(n,)``, or ``(n, T)`` for sequences (every position counts).
        y_pred: predicted labels, the same shape.
        sample_weight: optional weights, the labels' shape.

    Returns:
        ``count(y_pred == y_true) / size``, or ``Σ w·[y_pred == y_true] / Σ w``.

    Examples:
        >>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
        0.75
        >>> accuracy([0, 1], [0, 0], sample_weight=[3.0, 1.0])
        0.75
    """
    hit = np.asarray(y_true) == np.asarray(y_pred)  # (n,), or (n, T) for sequences: every position counts
    if sample_weight is None:
        return float(np.count_nonzero(hit)) / hit.size
    w = np.asarray(sample_weight, dtype=np.float64)
    return float(np.dot(w.reshape(-1), hit.reshape(-1)) / w.sum())


def r2(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot, averaged over outputs.

    An output whose target is constant scores 1.0 when predicted exactly, else 0.0 (as
    scikit-learn). With fewer than two samples R² is undefined: NaN.

    Args:
        y_true: targets ``(n,)`` or ``(n, k)``.
        y_pred: predictions of the same shape (or any shape with as many values).
        sample_weight: optional weights ``(n,)``.

    Returns:
        R², the uniform average over the k outputs (scikit-learn's ``"uniform_average"``).

    Examples:
        >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        1.0
        >>> r2([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
        0.0
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    p = p.reshape(t.shape)
    if t.shape[0] < 2:
        return float("nan")
    w = np.ones(t.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ss_res = w @ (t - p) ** 2
    mean = (w @ t) / w.sum()
    ss_tot = w @ (t - mean) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        per_output = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(per_output.mean())


def scores(loss: str, output: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> Dict[str, float]:
    """``{"loss", "accuracy"}`` for classification, ``{"loss", "mse", "r2"}`` for regression.

    Args:
        loss: a loss name or ``{"name": ..., **options}`` dict.
        output: the network's output (inference mode).
        y: the targets, as :func:`funcnn.losses.check_targets` returns them.
        sample_weight: optional weights ``(n,)``.

    Returns:
        A dict of floats; ``"loss"`` is the loss value without any L2 term (the data's loss).

    Examples:
        >>> import numpy as np
        >>> s = scores("softmax_cross_entropy", np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 0]))
        >>> sorted(s), s["accuracy"]
        (['accuracy', 'loss'], 0.5)
    """
    value = float(_losses.core(loss)(output, y, sample_weight)[0])
    if _losses.is_classification(loss):
        return {"loss": value, "accuracy": accuracy(y, _losses.decision(loss)(output), sample_weight)}
    mse = value if _losses.resolve(loss)[0] == "mean_squared_error" else \
        float(_losses.CORES["mean_squared_error"](output, y, sample_weight)[0])
    return {"loss": value, "mse": mse, "r2": r2(y, output, sample_weight)}
