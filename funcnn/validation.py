"""Input validation shared by the public functions.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
argument (and where relevant the layer index or key) and what was expected versus
what was received. Nothing here modifies its arguments.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np

SeedLike = Union[None, int, np.integer, np.random.Generator]
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_rng(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """An int (or None) makes a fresh Generator; a Generator is used (and advanced) as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None, an int or a np.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed}")
    return np.random.default_rng(int(seed))


def check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_X(X: Any, dtype: np.dtype, n_features: Optional[int] = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a 2-D finite array of ``dtype`` (a copy only when a conversion is needed)."""
    if isinstance(X, np.ndarray) and X.dtype == dtype:
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}, need at least one sample")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the network expects {n_features}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return arr


def check_labels(y: Any, n_samples: int, n_classes: int, name: str = "y",
                 context: Optional[str] = None) -> np.ndarray:
    """Integer class labels ``0..n_classes-1`` of length ``n_samples``, as an intp array."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_samples} samples")
    if arr.dtype == bool:
        arr = arr.astype(np.intp)
    elif np.issubdtype(arr.dtype, np.integer):
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        if (arr != np.round(arr)).any():
            i = int(np.flatnonzero(arr != np.round(arr))[0])
            raise ValueError(f"{name} must hold whole-number labels, got {arr[i].item()!r} at index {i}")
    else:
        raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        i = int(np.flatnonzero((arr < 0) | (arr >= n_classes))[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i].item()!r} is out of range: labels must be in 0..{n_classes - 1} "
            + (context or f"for a network with {n_classes} outputs"))
    return arr.astype(np.intp, copy=False)


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> Optional[np.ndarray]:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype == object or not np.issubdtype(w.dtype, np.number):
        raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}")
    w = w.astype(dtype, copy=False)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or inf")
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"sample_weight must be non-negative, got {w[i]!r} at index {i}")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    return w


def check_number(value: Any, name: str, *, low: float = -np.inf, high: float = np.inf,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    """A real (or integer) scalar within [low, high] (ends open as asked)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if not integer and not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")
    return int(value) if integer else value
