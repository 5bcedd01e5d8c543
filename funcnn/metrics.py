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
    """How many of ``labels``' units the loss's decision rule gets right: rows, or (sequences) positions;
    a multi-label row counts when every one of its labels is right (:func:`is_multilabel`).

    Args:
        loss: a classification loss name (its decision rule: argmax, or logit > 0 for binary).
        output: the network's output, ``(n, k)`` logits (``(n, 1)`` for binary, ``(n, T, k)`` for sequences).
        labels: integer labels ``(n,)``, ``(n, T)``, or a multi-label ``(n, k)`` 0/1 matrix.

    Returns:
        The count of correct units (divide by :func:`n_units`).

    Examples:
        >>> import numpy as np
        >>> correct("softmax_cross_entropy", np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
        1
    """
    return int(np.count_nonzero(_hits(_losses.decision(loss)(output), labels, is_multilabel(loss, labels))))


def is_multilabel(loss: Any, labels: np.ndarray) -> bool:
    """Whether ``labels`` is a multi-label indicator matrix: ``(n, k)`` targets of ``binary_cross_entropy``
    (2-D labels of ``softmax_cross_entropy`` are sequence positions)."""
    return np.ndim(labels) == 2 and _losses.resolve(loss)[0] == "binary_cross_entropy"


def n_units(loss: Any, labels: np.ndarray) -> int:
    """What accuracy is a fraction of: rows (multi-label rows too), or every position of a sequence batch."""
    return int(np.shape(labels)[0]) if is_multilabel(loss, labels) else int(np.size(labels))


def _hits(y_pred: Any, y_true: Any, multilabel: bool) -> np.ndarray:
    hit = np.asarray(y_true) == np.asarray(y_pred)
    return hit.all(axis=1) if multilabel else hit  # multi-label: scikit-learn's subset accuracy


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None, *,
             multilabel: bool = False) -> float:
    """Fraction (weighted: share of the weight) of ``y_pred == y_true``.

    Args:
        y_true: true labels ``(n,)``, or ``(n, T)`` for sequences (every position counts), or with
            ``multilabel`` an ``(n, k)`` indicator matrix (a row counts when all its labels are right,
            scikit-learn's subset accuracy).
        y_pred: predicted labels, the same shape.
        sample_weight: optional weights: per row, or per position for sequences.
        multilabel: read 2-D labels as label-indicator rows.

    Returns:
        ``count(hits) / count(units)``, or ``Σ w·hit / Σ w``.

    Examples:
        >>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
        0.75
        >>> accuracy([0, 1], [0, 0], sample_weight=[3.0, 1.0])
        0.75
        >>> accuracy([[1, 0], [1, 1]], [[1, 0], [0, 1]], multilabel=True)
        0.5
    """
    hit = _hits(y_pred, y_true, multilabel)
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
        return {"loss": value, "accuracy": accuracy(y, _losses.decision(loss)(output), sample_weight,
                                                    multilabel=is_multilabel(loss, y))}
    mse = value if _losses.resolve(loss)[0] == "mean_squared_error" else \
        float(_losses.CORES["mean_squared_error"](output, y, sample_weight)[0])
    return {"loss": value, "mse": mse, "r2": r2(y, output, sample_weight)}
