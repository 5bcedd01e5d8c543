"""Input validation shared by the public functions.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
argument (and where relevant the layer index or key) and what was expected versus
what was received. Nothing here modifies its arguments.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

SeedLike = Union[None, int, np.integer, np.random.Generator]
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_rng(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """An int (or None) makes a fresh Generator; a Generator is used (and advanced) as is.

    Args:
        seed: None (fresh entropy), a non-negative int, or a ``np.random.Generator``.
        name: the argument's name, for error messages.

    Returns:
        A ``np.random.Generator``.

    Examples:
        >>> int(as_rng(0).integers(10)) == int(as_rng(0).integers(10))
        True
    """
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
    """``dtype`` as a ``np.dtype``, which must be float32 or float64 (else TypeError / ValueError)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _shape_text(shape: Tuple[int, ...]) -> str:
    return str(shape[0]) if len(shape) == 1 else str(tuple(shape))


def check_X(X: Any, dtype: np.dtype, n_features: Any = None, name: str = "X", *,
            convert: bool = True) -> np.ndarray:
    """``X`` as a finite ``(n_samples, *sample_shape)`` array of ``dtype`` (a copy only when converting).

    ``n_features``: an int (flat features; X must be 2-D), a tuple (one sample's shape) or
    None (2-D, any width). With ``convert=False`` a numeric array (a memory map too) comes
    back as it is, in its own dtype, checked without a copy of the whole: ``funcnn.train``
    converts it minibatch by minibatch (and checks first that its values fit: :func:`check_fits`;
    inference reports an overflow in its output instead).

    Args:
        X: the data: an array or anything ``np.asarray`` takes.
        dtype: the dtype to convert to.
        n_features: as above.
        name: the argument's name, for error messages.
        convert: False returns numeric arrays in their own dtype.

    Returns:
        The checked array.

    Raises:
        ValueError: wrong dimensions or feature count, NaN or inf (with its row and column).
        TypeError: non-numeric data.
    """
    if isinstance(X, np.ndarray) and (X.dtype == dtype or not convert) and X.dtype.kind in "fiub":
        arr = X  # with convert=False, whoever converts it checks that its values fit (check_fits)
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
        if convert:
            if arr.dtype != dtype:
                check_fits(arr, dtype, name)
            arr = arr.astype(dtype, copy=False)
    shape = None if n_features is None else (tuple(n_features) if isinstance(n_features, tuple)
                                             else (int(n_features),))
    ndim = 2 if shape is None else 1 + len(shape)
    if arr.ndim != ndim:
        want = "(n_samples, n_features)" if ndim == 2 else f"(n_samples, {', '.join(map(str, shape))})"
        raise ValueError(f"{name} must be {ndim}-D {want}, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}, need at least one sample")
    if shape is not None and arr.shape[1:] != shape:
        what = "features" if len(shape) == 1 else "per-sample shape"
        raise ValueError(f"{name} has {_shape_text(arr.shape[1:])} {what} but the network expects "
                         f"{_shape_text(shape)}")
    check_finite_array(arr, name)
    return arr


# Rows per chunk when an array is checked piece by piece (bounded scratch, memory maps welcome).
CHECK_CHUNK_BYTES = 1 << 24


_LARGEST = {np.dtype(np.float16): float(np.finfo(np.float16).max), np.dtype(np.float32): float(np.finfo(np.float32).max)}


def check_fits(arr: np.ndarray, dtype: np.dtype, name: str) -> None:
    """ValueError naming the first column whose finite values overflow ``dtype`` (float64 features
    near 1e300 become inf in float32), before anything is trained on them; chunk by chunk."""
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= np.dtype(dtype).itemsize or arr.size == 0:
        return
    top = _LARGEST.get(np.dtype(dtype))
    if top is None:
        return
    if arr.size <= 4096:  # one-row predicts: two reductions, no reshapes
        high, low = np.maximum.reduce(arr, axis=None), np.minimum.reduce(arr, axis=None)
        if not (high > top or low < -top):
            return
    flat_rows = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    step = max(1, CHECK_CHUNK_BYTES // max(1, flat_rows.shape[1] * arr.itemsize))
    for start in range(0, flat_rows.shape[0], step):
        part = flat_rows[start:start + step]
        high, low = np.maximum.reduce(part, axis=None), np.minimum.reduce(part, axis=None)
        if not (high > top or low < -top):
            continue  # NaN compares False: check_finite_array names it
        with np.errstate(invalid="ignore"):
            bad = np.argwhere(np.isfinite(part) & (np.abs(part) > top))
        if not bad.size:
            continue  # only inf: check_finite_array names it
        r, c = int(bad[0][0]), int(bad[0][1])
        where = f"column {c}" if arr.ndim <= 2 else f"position {np.unravel_index(c, arr.shape[1:])}"
        raise ValueError(f"{name} {where} holds {float(part[r, c])!r} (row {r + start}), beyond the largest "
                         f"{dtype} ({top:.4g}): it would overflow to inf in {dtype}; scale the features "
                         f"(e.g. --scale / funcnn.datasets.fit_scaler) or use float64 params")


def check_finite_array(arr: np.ndarray, name: str) -> None:
    """ValueError naming the first NaN/inf of ``arr`` (its row and column, or index); no n-sized temporary.

    A finite sum proves every element finite (a NaN or an inf anywhere makes it NaN or inf),
    so the usual case reads the array once, chunk by chunk, and allocates nothing large.
    """
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return
    if arr.size <= 4096 and np.isfinite(arr).all():  # small (one-row predicts): no errstate context to enter
        return
    flat_rows = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1) if arr.ndim else arr.reshape(1, 1)
    step = max(1, CHECK_CHUNK_BYTES // max(1, flat_rows.shape[1] * arr.itemsize))
    for start in range(0, flat_rows.shape[0], step):
        part = flat_rows[start:start + step]
        with np.errstate(over="ignore", invalid="ignore"):
            if math.isfinite(np.add.reduce(part, axis=None)):
                continue
        bad = np.argwhere(~np.isfinite(part))
        if bad.size:
            r, c = int(bad[0][0]) + start, int(bad[0][1])
            if arr.ndim == 1:
                where = f"index {r}"
            elif arr.ndim == 2:
                where = f"row {r}, column {c}"
            else:
                where = f"sample {r}, position {np.unravel_index(c, arr.shape[1:])}"
            raise ValueError(f"{name} contains NaN or inf (first at {where})")


def check_finite(arrays: Dict[str, np.ndarray], what: str = "params") -> None:
    """ValueError naming the key and position of the first NaN/inf among ``arrays``' values."""
    for key, arr in arrays.items():
        try:
            check_finite_array(arr, f"{what}[{key!r}]")
        except ValueError as exc:
            raise ValueError(f"{exc}: refusing non-finite {what}") from None


def check_labels(y: Any, n_samples: int, n_classes: int, name: str = "y",
                 context: Optional[str] = None) -> np.ndarray:
    """Integer class labels ``0..n_classes-1`` of length ``n_samples``, as an intp array.

    Whole-number floats are accepted; ``(n, 1)`` is flattened. The first bad label is named.

    Examples:
        >>> check_labels([0.0, 2.0, 1.0], 3, 3).tolist()
        [0, 2, 1]
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels, got shape {arr.shape}"
                         + (f"; for one-hot rows pass {name}.argmax(axis=1)" if arr.ndim == 2 else ""))
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


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype,
                        shape: Optional[Tuple[int, ...]] = None) -> Optional[np.ndarray]:
    """Weights ``(n_samples,)`` (or ``shape``: ``(n, T)`` per position) of ``dtype``: finite,
    non-negative, with a positive sum (None stays None)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype == object or not np.issubdtype(w.dtype, np.number):
        raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}")
    w = w.astype(dtype, copy=False)
    want = (n_samples,) if shape is None else tuple(shape)
    if w.shape != want:
        raise ValueError(f"sample_weight must have shape {want}"
                         + (" (one weight per sample and position)" if len(want) > 1 else "") + f", got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or inf")
    if (w < 0).any():
        i = np.unravel_index(int(np.flatnonzero(w < 0)[0]), w.shape)
        at = i[0] if len(i) == 1 else tuple(int(j) for j in i)
        raise ValueError(f"sample_weight must be non-negative, got {w[i]!r} at index {at}")
    if w.sum(dtype=np.float64) <= 0:  # float64: float32 weights near 1e38 would overflow the sum
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    return w


def check_number(value: Any, name: str, *, low: float = -np.inf, high: float = np.inf,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    """A real (or integer) scalar within [low, high] (ends open as asked).

    Args:
        value: the number to check.
        name: its name, for error messages.
        low: the lower bound.
        high: the upper bound.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        integer: require an integer (bools are refused either way).

    Returns:
        ``value`` (as an ``int`` when ``integer``).

    Examples:
        >>> check_number(0.5, "rate", low=0, high=1, high_open=True)
        0.5
        >>> check_number(1, "rate", low=0, high=1, high_open=True)
        Traceback (most recent call last):
        ...
        ValueError: rate must be in [0, 1), got 1
    """
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
