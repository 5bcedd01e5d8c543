"""Datasets: resolve a name or a path to ``(X, y)`` arrays, never touching the network.

Names are scikit-learn's bundled sets (``digits``, ``iris``, ``wine``, ``breast-cancer``,
``diabetes``), its 2-D generators (``moons``, ``circles``, ``blobs``) and MNIST-format
data on disk (``fashion-mnist``, ``mnist``). Paths are ``.npz``, ``.csv``/``.txt`` files,
a directory of MNIST IDX files, or a directory holding ``X.npy`` and ``y.npy`` (data larger
than memory: X is opened memory-mapped, see :func:`load_npy_directory`); for
:func:`load_features`, also ``.npy`` feature files. Everything here is a plain function of
its arguments.

Labels are returned as the file holds them (numbers, strings, booleans). This is where
files and users meet the library, so this is where class labels are encoded for the pure
core, which takes integer labels ``0..k-1``: :func:`encode_labels` maps any labels to
codes in sorted order (scikit-learn's ``LabelEncoder`` convention) and returns the
classes; :func:`decode_labels` maps codes back. :func:`infer_task` is the documented rule
that tells classification labels from regression targets.
"""
from __future__ import annotations

import csv
import gzip
import math
import os
import zipfile
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import bounded as _bounded
from .checkpoint import atomic_write
from .validation import as_rng, check_number, check_X

PathLike = Union[str, "os.PathLike[str]"]
Arrays = Tuple[np.ndarray, np.ndarray]

DEFAULT_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Header names (case-insensitive) that make a CSV column the label, in priority order.
LABEL_NAMES = ("target", "label", "class", "y")
#: Header names (case-insensitive) of a first column that may be a row index (see :func:`read_csv`).
INDEX_NAMES = ("index", "unnamed: 0")
#: :func:`infer_task`: integer targets with at most ``max(MAX_CLASSES, sqrt(n))`` distinct values are classes.
MAX_CLASSES = 20
#: The delimiters :func:`read_csv` sniffs among.
DELIMITERS = ",;\t|"


class DatasetNotFoundError(ValueError, FileNotFoundError):
    """Neither a known dataset name nor an existing file (a ValueError and a FileNotFoundError)."""


# --------------------------------------------------------------------------- labels

def _is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA/NaT: a missing label."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def label_array(y: Any, name: str = "y") -> np.ndarray:
    """Labels as a plain NumPy array: from lists, tuples, arrays, pandas Series/Categorical.

    Object arrays of one kind get that kind's dtype (strings ``<U``, booleans, numbers);
    bytes become strings. Mixed kinds (``[1, "a"]``) are a ``TypeError``; a missing value
    (None, NaN, ``pd.NA``) is a ``ValueError`` naming its index. Nothing is encoded here.
    """
    if hasattr(y, "to_numpy") and not isinstance(y, np.ndarray):  # pandas Series / Index / DataFrame
        y = y.to_numpy()
    try:
        arr = np.asarray(y)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like: {exc}") from exc
    if arr.dtype.kind == "S":
        arr = arr.astype(str)
    if arr.dtype == object:
        values = arr.ravel().tolist()
        missing = [i for i, v in enumerate(values) if _is_missing(v)]
        if missing:
            raise ValueError(f"{name} has a missing label (None/NaN/NA) at flat index {missing[0]}")
        if all(isinstance(v, str) for v in values):
            arr = arr.astype(str)
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            arr = arr.astype(bool)
        elif all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                 for v in values):
            arr = np.array(values).reshape(arr.shape)
        else:
            kinds = sorted({type(v).__name__ for v in values})
            raise TypeError(f"{name} mixes label types {kinds}; give labels of one type "
                            "(e.g. all strings: np.asarray(y).astype(str))")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.dtype.kind not in "biufUS":
        raise TypeError(f"{name} must hold numbers, strings or booleans, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise ValueError(f"{name} contains NaN or inf (first at flat index {i})")
    return arr


def _looks_one_hot(arr: np.ndarray) -> bool:
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.dtype.kind not in "biuf":
        return False
    return bool(np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all())


def _one_hot_hint(arr: np.ndarray, name: str) -> str:
    return (f"{name} has shape {arr.shape}" + (" and looks one-hot encoded" if _looks_one_hot(arr) else "")
            + f"; class labels must be 1-D: pass {name}.argmax(axis=1) for one-hot rows")


def _class_labels_1d(y: Any, name: str) -> np.ndarray:
    arr = label_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        raise ValueError(_one_hot_hint(arr, name))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no labels to encode")
    return arr


def encode_labels(y: Any, classes: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """Any class labels → ``(codes, classes)``: int64 codes ``0..k-1`` and the k sorted classes.

    ``classes[codes]`` gives the labels back (see :func:`decode_labels`); the order is
    ``np.unique``'s, as scikit-learn's ``LabelEncoder``. Labels may be ints, strings or
    booleans, in a list, an array or a pandas Series. Labels ``1..3`` give codes ``0..2``
    (3 classes, not 4). One-hot ``(n, k)`` targets are refused with the hint
    ``y.argmax(axis=1)``. With ``classes`` (e.g. as a previous call returned them), the
    codes are positions in those classes, and a label that is not one of them is a
    ``ValueError`` naming it.

    Args:
        y: 1-D class labels (ints, strings or booleans; a list, an array or a pandas Series).
        classes: the known classes, or None to take the sorted distinct labels of ``y``.

    Returns:
        ``(codes, classes)``: int64 codes ``(n,)`` and the classes ``(k,)``.

    Examples:
        >>> codes, classes = encode_labels(["cat", "dog", "cat", "bird"])
        >>> codes.tolist(), classes.tolist()
        ([1, 2, 1, 0], ['bird', 'cat', 'dog'])
        >>> decode_labels(codes, classes).tolist()
        ['cat', 'dog', 'cat', 'bird']
    """
    arr = _class_labels_1d(y, "y")
    if classes is None:
        classes, codes = np.unique(arr, return_inverse=True)
        return codes.reshape(-1).astype(np.int64), classes
    known = label_array(classes, "classes")
    if known.ndim != 1 or known.size == 0:
        raise ValueError(f"classes must be a non-empty 1-D array, got shape {known.shape}")
    text = {arr.dtype.kind in "US", known.dtype.kind in "US"}
    codes = np.zeros(arr.shape[0], dtype=np.int64)
    found = np.zeros(arr.shape[0], dtype=bool)
    if len(text) == 1:  # both text or both numbers/booleans: comparable
        order = np.argsort(known, kind="stable")
        position = np.clip(np.searchsorted(known, arr, sorter=order), 0, known.size - 1)
        codes = order[position].astype(np.int64)
        found = known[codes] == arr
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        shown = ", ".join(repr(c) for c in known[:10].tolist()) + (", ..." if known.size > 10 else "")
        raise ValueError(f"label {arr[i].item()!r} (row {i}) is not one of the {known.size} known classes [{shown}]")
    return codes, known


def decode_labels(codes: Any, classes: Any) -> np.ndarray:
    """``classes[codes]``: the original labels of codes ``0..k-1`` (the inverse of :func:`encode_labels`)."""
    classes = label_array(classes, "classes")
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"classes must be a non-empty 1-D array, got shape {classes.shape}")
    codes = np.asarray(codes)
    if codes.dtype == bool or codes.dtype.kind not in "iu":
        if codes.dtype.kind == "f" and codes.size and np.isfinite(codes).all() and (codes == np.round(codes)).all():
            codes = codes.astype(np.int64)
        else:
            raise TypeError(f"codes must be integers 0..{classes.size - 1}, got dtype {codes.dtype}")
    bad = (codes < 0) | (codes >= classes.size)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"codes[{i}] = {codes.ravel()[i]} is out of range for {classes.size} classes")
    return classes[codes]


def class_limit(n_samples: int) -> int:
    """The most distinct integer values :func:`infer_task` still calls classes: ``max(MAX_CLASSES, isqrt(n))``."""
    return max(MAX_CLASSES, math.isqrt(int(n_samples)))


def infer_task(y: Any, *, return_reason: bool = False) -> Union[str, Tuple[str, str]]:
    """``"classification"`` or ``"regression"`` for the targets ``y``, by this rule:

    * text or booleans → classification;
    * numbers with a fractional part (``2.5``) → regression;
    * integers (or whole-number floats) → classification when there are at most
      ``max(20, √n)`` distinct values (:func:`class_limit`), else regression: iris (3 of
      150), wine (3), digits (10 of 1797), breast cancer (2) are classes; diabetes' target
      (214 distinct integers in 442 rows) is a regression;
    * a 2-D ``(n, k)`` target is a multi-output regression, except that a one-hot-looking
      one (0/1, one 1 per row) is refused with the hint ``y.argmax(axis=1)``.

    With ``return_reason=True`` returns ``(task, reason)``, the reason a short phrase.

    Examples:
        >>> infer_task(["setosa", "virginica"])
        'classification'
        >>> infer_task([0.5, 1.25, 3.0])
        'regression'
        >>> infer_task(list(range(3)) * 10, return_reason=True)
        ('classification', '3 distinct integer labels <= max(20, sqrt(n)) = 20')
    """
    arr = label_array(y, "y")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        if _looks_one_hot(arr):
            raise ValueError(_one_hot_hint(arr, "y"))
        if arr.dtype.kind in "US":
            raise ValueError(f"y has shape {arr.shape}: text labels must be 1-D")
        task, reason = "regression", f"{arr.shape[1]} target columns"
    elif arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"y must be 1-D (or 2-D for several regression targets), got shape {arr.shape}")
    elif arr.dtype.kind in "bUS":
        k = np.unique(arr).size
        task, reason = "classification", f"{'text' if arr.dtype.kind != 'b' else 'boolean'} labels, {k} classes"
    elif arr.dtype.kind == "f" and (arr != np.round(arr)).any():
        task, reason = "regression", "targets with fractional parts"
    else:
        k = np.unique(arr).size
        limit = class_limit(arr.size)
        if k <= limit:
            task, reason = "classification", f"{k} distinct integer labels <= max({MAX_CLASSES}, sqrt(n)) = {limit}"
        else:
            task, reason = "regression", f"{k} distinct integer values > max({MAX_CLASSES}, sqrt(n)) = {limit}"
    return (task, reason) if return_reason else task


def n_outputs(loss: str, y: Any, *more: Any) -> int:
    """The output width the targets need: the classes (max label + 1 over ``y`` and ``more``) for
    ``softmax_cross_entropy``, 1 for ``binary_cross_entropy``, y's columns for ``mean_squared_error``.

    Class labels must already be integer codes ``0..k-1`` (see :func:`encode_labels`).
    """
    if loss == "binary_cross_entropy":
        return 1
    if loss == "mean_squared_error":
        arr = np.asarray(y)
        return int(arr.shape[1]) if arr.ndim == 2 else 1
    top = -1
    for i, labels in enumerate((y,) + more):
        name = "y" if i == 0 else "validation_data y" if i == 1 else f"labels #{i}"
        arr = np.asarray(labels)
        if arr.dtype.kind not in "biuf" or arr.size == 0:
            hint = "; encode them first: codes, classes = funcnn.datasets.encode_labels(y)" if arr.size else ""
            raise TypeError(f"{name} must hold integer class labels 0..k-1, got dtype {arr.dtype}"
                            + (" (empty)" if arr.size == 0 else "") + hint)
        if arr.ndim == 2 and arr.shape[1] > 1:
            raise ValueError(_one_hot_hint(arr, name))
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        top = max(top, int(arr.max()))
    return max(top + 1, 1)


# --------------------------------------------------------------------------- helpers

def _as_labels(y: Any, where: str, *, regression: bool = False) -> np.ndarray:
    """Labels as the file holds them: int64 for whole numbers, float64 for other numbers
    (and for ``regression``), str for text, bool for booleans; 1-D, or 2-D for several targets."""
    arr = label_array(y, f"y ({where})")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2):
        raise ValueError(f"{where}: y must be 1-D (or 2-D for several regression targets), got shape {arr.shape}")
    if arr.dtype.kind in "bU":
        if regression:
            raise TypeError(f"{where}: regression targets must be numbers, got dtype {arr.dtype}")
        return arr
    if regression:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if arr.ndim == 1 and (arr == np.round(arr)).all() and np.abs(arr).max(initial=0) < 2 ** 62:
        return arr.astype(np.int64)
    return arr.astype(np.float64)


def _as_features(X: Any, where: str) -> np.ndarray:
    """A finite float64 (n, d) array; higher-rank samples (images) are flattened to rows."""
    arr = np.asarray(X)
    if arr.ndim < 2:
        raise ValueError(f"{where}: X must be at least 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    return check_X(arr, np.dtype(np.float64), name=f"X ({where})")


def _check_pair(X: np.ndarray, y: np.ndarray, where: str) -> Arrays:
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: X has {X.shape[0]} samples but y has {y.shape[0]} labels")
    return X, y


def _check_options(name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "no options"
        raise TypeError(f"dataset {name!r} got unexpected option(s) {', '.join(unknown)}; it accepts {accepted}")


def _random_state(seed: Any) -> Optional[int]:
    """scikit-learn wants an int; a Generator is advanced by one draw to make one."""
    if seed is None:
        return None
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2 ** 32))
    as_rng(seed)  # validates the type and sign with the shared message
    return int(seed)


# --------------------------------------------------------------------------- IDX files

_IDX_DTYPES: Dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


def _read_bytes(path: str) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic 1f 8b (whatever its name)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    # inflated piece by piece: the IDX header (the first bytes) declares the size, which must be an
    # honest expansion of the compressed bytes; nothing beyond the declared size is ever inflated
    ratio_limit = min(_bounded.memory_budget(), max(_bounded.SMALL_MEMBER, _bounded.MAX_EXPANSION * len(raw)))
    limit = ratio_limit
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip header
    parts, size, data, declared = [], 0, raw, None
    try:
        while data:
            piece = inflater.decompress(data, 1 << 16 if declared is None else 1 << 20)
            parts.append(piece)
            size += len(piece)
            if declared is None and size >= 4:
                head = b"".join(parts)
                ndim = head[3]
                if size >= 4 + 4 * ndim and head[2] in _IDX_DTYPES:
                    dims = np.frombuffer(head, dtype=">u4", count=ndim, offset=4)
                    declared = 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64)) * _IDX_DTYPES[head[2]].itemsize
                    if declared > ratio_limit:
                        raise ValueError(f"{path}: its IDX header declares {declared} bytes from {len(raw)} of gzip "
                                         f"data ({declared / max(1, len(raw)):.0f}x; at most {_bounded.MAX_EXPANSION}x "
                                         "is accepted): a decompression bomb or a damaged file; refused before "
                                         "inflating it")
                    limit = declared + 1  # one byte more tells load_idx that there are trailing bytes
            if size > limit:
                raise ValueError(f"{path}: the gzip data expand past {limit} bytes (from {len(raw)}): a "
                                 "decompression bomb or a damaged file; refused before inflating the rest")
            data = inflater.unconsumed_tail
            if inflater.eof:
                break
        if not inflater.eof and size <= limit - 1:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return b"".join(parts)


def load_idx(path: PathLike) -> np.ndarray:
    """Read an MNIST-format IDX file (raw or gzip) → array of its native dtype and shape."""
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file: magic number {data[:4].hex()} should start with 0000")
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {known}")
    if ndim < 1:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions; need at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes after the data"
        raise ValueError(
            f"{path}: IDX body size mismatch ({what}): shape {shape} of {dtype.str} needs "
            f"expected {expected} bytes, got {got}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # astype copies: the result is writable and in native byte order
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: Any) -> PathLike:
    """Write ``array`` (uint8/int8/int16/int32/float32/float64, ndim ≥ 1) as IDX; gzip if path ends in .gz."""
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise TypeError(
            f"write_idx: dtype {arr.dtype} has no IDX code; use one of uint8, int8, int16, int32, "
            f"float32, float64 (e.g. array.astype(np.uint8))")
    if arr.ndim < 1 or arr.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got shape {arr.shape}")
    if max(arr.shape) >= 2 ** 32:
        raise ValueError(f"write_idx: dimensions must be below 2**32, got shape {arr.shape}")
    code = _IDX_CODES[native]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    payload = head + body
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)  # mtime=0: reproducible bytes
    atomic_write(path, lambda fh: fh.write(payload))
    return path


# --------------------------------------------------------------------------- MNIST

_MNIST_HINT = (
    "On Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs Fashion-MNIST there "
    f"({DEFAULT_MNIST_DIR}), or pass a directory with MNIST IDX files.")


def _find_idx(directory: str, stem: str) -> Optional[str]:
    """The first existing spelling of an MNIST file: dash or dot before idx, raw or .gz."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_mnist(directory: PathLike = DEFAULT_MNIST_DIR, *, split: str = "train") -> Arrays:
    """MNIST-format IDX files → X float32 (n, rows*cols) in [0, 1], y int64 (n,)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = os.fspath(directory)
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [_find_idx(directory, stem) for stem in stems]
    if None in found:
        missing = [stem for stem, f in zip(stems, found) if f is None]
        where = "does not exist" if not os.path.isdir(directory) else f"lacks {', '.join(missing)} (with or without .gz)"
        raise FileNotFoundError(
            f"MNIST {split} split not found: directory {directory!r} {where}; expected files "
            f"{stems[0]}[.gz] and {stems[1]}[.gz]. {_MNIST_HINT}")
    images_path, labels_path = found
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(f"{images_path}: MNIST images must be uint8 with shape (n, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{labels_path}: MNIST labels must be 1-D integers, got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"image/label count mismatch: {images_path} holds {images.shape[0]} images "
                         f"but {labels_path} holds {labels.shape[0]} labels")
    X = np.divide(images.reshape(images.shape[0], -1), 255, dtype=np.float32)
    return X, labels.astype(np.int64)


# --------------------------------------------------------------------------- CSV

def _parse_float(cell: str) -> Optional[float]:
    try:
        return float(cell)
    except ValueError:
        return None


def _numbers(cells: Sequence[str]) -> Optional[np.ndarray]:
    """The cells as float64 when every one of them is a number (NaN/inf included), else None."""
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return None


def sniff_delimiter(sample: str) -> Optional[str]:
    """The delimiter of CSV text: ``csv.Sniffer`` among ``, ; tab |``; None (runs of whitespace)
    when none of those occurs in the first line but spaces separate several fields; else ``,``."""
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    if not any(c in lines[0] for c in DELIMITERS) and len(lines[0].split()) > 1:
        return None
    return ","


def _check_delimiter(delimiter: Any) -> None:
    if delimiter is None or delimiter == "auto":
        return
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be one character (e.g. ',', ';', '\\t', '|'), 'auto' or None "
                         f"(whitespace), got {delimiter!r}")


def _column_label(table: Mapping[str, Any], c: int) -> str:
    """"column 3 ('b')": the file's 1-based column number of table column ``c``, and its name."""
    dropped, names = table.get("index_position"), table["names"]
    number = c + 1 + (1 if dropped is not None and c >= dropped else 0)
    return f"column {number}" + (f" ({names[c]!r})" if names else "")


def read_csv(path: PathLike, *, header: Optional[bool] = None, delimiter: Optional[str] = "auto",
             index_column: Any = "auto") -> Dict[str, Any]:
    """Read a CSV file into its columns of text cells, without deciding what they mean.

    Returns ``{"path", "names", "columns", "lines", "delimiter", "index_column", ...}``: ``names``
    is the header (None without one), ``columns`` a list of tuples of stripped cells,
    ``lines`` the 1-based file line of each data row, ``index_column`` the name (or
    position) of the index column that was dropped, or None.

    * ``delimiter="auto"`` sniffs it among ``, ; tab |`` (:func:`sniff_delimiter`); None
      splits on runs of whitespace; or give the character.
    * ``header=None`` auto-detects: the first row is a header when none of its cells is a number,
      or when one of its cells is text above a number in the second row.
    * ``index_column="auto"`` drops a row index, which is not a feature: with a header, a first
      column whose header cell is empty (as pandas' ``to_csv`` writes the index), or a first
      column named ``index`` or ``Unnamed: 0`` (any case) holding distinct non-negative
      integers. None keeps every column; a name or position drops that column.
    Blank lines are skipped. Line numbers in errors are the file's, 1-based.
    """
    path = os.fspath(path)
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header must be None (auto), True or False, got {header!r}")
    _check_delimiter(delimiter)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    if delimiter == "auto":
        delimiter = sniff_delimiter(text[:65536])

    rows: List[Tuple[int, List[str]]] = []  # (line number, stripped cells), blank lines skipped
    if delimiter is None:
        for number, line in enumerate(text.splitlines(), start=1):
            cells = line.split()
            if cells:
                rows.append((number, cells))
    else:
        reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
        # csv's field limit (131072 characters by default) is process-wide: raised to the file's
        # length (no field is longer) while this file is read, then restored
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, len(text) + 1))
        try:
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells):
                    rows.append((reader.line_num, cells))
        except csv.Error as exc:  # e.g. another thread restored a lower limit meanwhile
            raise ValueError(f"{path}: line {reader.line_num + 1}: {exc}") from None
        finally:
            csv.field_size_limit(limit)
    if not rows:
        raise ValueError(f"{path}: empty file: no rows to load")

    first_line, first = rows[0]
    if header is None:
        text = [_parse_float(c) is None for c in first]
        below = rows[1][1] if len(rows) > 1 else []
        # text everywhere, or text above a number (a column name such as "2019" among the names is fine)
        header = all(text) or any(t and c < len(below) and _parse_float(below[c]) is not None
                                  for c, t in enumerate(text))
    names = list(first) if header else None
    data = rows[1:] if header else rows
    if not data:
        raise ValueError(f"{path}: no data rows after the header on line {first_line}")
    n_cols = len(first)
    for number, cells in data:
        if len(cells) != n_cols:
            hint = ""
            if delimiter != "," and any("," in c for c in cells):
                hint = f" (delimiter {delimiter!r}; decimal commas are not supported: pass --delimiter / delimiter=)"
            raise ValueError(f"{path}: line {number} has {len(cells)} fields, expected {n_cols} "
                             f"(as on line {first_line}){hint}")
    columns = list(zip(*(cells for _, cells in data)))
    lines = [number for number, _ in data]
    del rows, data

    dropped = None
    if index_column == "auto":
        if names is not None and n_cols > 1:
            first_name = names[0].strip().lower()
            if first_name == "":
                dropped = 0
            elif first_name in INDEX_NAMES:
                values = _numbers(columns[0])
                if (values is not None and np.isfinite(values).all() and (values == np.round(values)).all()
                        and (values >= 0).all() and np.unique(values).size == values.size):
                    dropped = 0
    elif index_column is not None and index_column is not False:
        dropped = _column_position(path, names, n_cols, index_column, "index_column")
    index_name = None
    if dropped is not None:
        index_name = names[dropped] if names is not None else dropped
        del columns[dropped]
        if names is not None:
            names = names[:dropped] + names[dropped + 1:]
    return {"path": path, "names": names, "columns": columns, "lines": lines, "delimiter": delimiter,
            "index_column": index_name, "index_position": dropped, "numbers": {}}


def _column_numbers(table: Mapping[str, Any], c: int) -> Optional[np.ndarray]:
    """:func:`_numbers` of table column ``c``, parsed once per table."""
    cache = table.setdefault("numbers", {}) if isinstance(table, dict) else {}
    if c not in cache:
        cache[c] = _numbers(table["columns"][c])
    return cache[c]


def _column_position(path: str, names: Optional[List[str]], n_cols: int, column: Any, what: str) -> int:
    """A column given by name (exact header text) or by index (negative counts from the end)."""
    if isinstance(column, bool) or not isinstance(column, (int, np.integer, str)):
        raise TypeError(f"{what} must be an int index or a column name, got {column!r}")
    if isinstance(column, str):
        if names is None:
            raise ValueError(f"{path}: {what}={column!r} is a name but the file has no header row "
                             f"(its first line is data); pass header=True or an int index")
        matches = [i for i, name in enumerate(names) if name == column]
        if not matches:  # then case-insensitively
            matches = [i for i, name in enumerate(names) if name.strip().lower() == column.strip().lower()]
        if len(matches) != 1:
            problem = "no column" if not matches else f"{len(matches)} columns"
            raise ValueError(f"{path}: {problem} named {column!r}; header columns are {names}")
        return matches[0]
    position = int(column)
    if not -n_cols <= position < n_cols:
        raise ValueError(f"{path}: {what}={position} is out of range for {n_cols} columns")
    return position % n_cols


def label_position(table: Mapping[str, Any], label_column: Any = None) -> int:
    """The label column of a :func:`read_csv` table (0-based, after the index column is dropped).

    ``label_column`` is a header name or an int index (negative from the end). None (the
    default rule): the column whose header is one of ``target``, ``label``, ``class``, ``y``
    (case-insensitive, in that priority); else the only column that is not numeric (features
    must be numbers, so text must be the label); else the last column.
    """
    names, columns, path = table["names"], table["columns"], table["path"]
    if label_column is not None:
        return _column_position(path, names, len(columns), label_column, "label_column")
    if names is not None:
        lowered = [name.strip().lower() for name in names]
        for wanted in LABEL_NAMES:
            if wanted in lowered:
                return lowered.index(wanted)
    text = [c for c in range(len(columns)) if _column_numbers(table, c) is None]
    if len(text) == 1:
        return text[0]
    return len(columns) - 1


def _cell_text(cell: str, limit: int = 60) -> str:
    """A cell for an error message: its repr, cut (with its length) when long."""
    return repr(cell) if len(cell) <= limit else f"{cell[:limit]!r}... ({len(cell)} characters)"


def _feature_matrix(table: Mapping[str, Any], positions: Sequence[int], label: Optional[int]) -> np.ndarray:
    """The columns at ``positions`` as a finite float64 (n, d) matrix; errors name line and column."""
    columns, path, lines = table["columns"], table["path"], table["lines"]
    X = np.empty((len(lines), len(positions)), dtype=np.float64)
    for j, c in enumerate(positions):
        values = _column_numbers(table, c)
        if values is not None and np.isfinite(values).all():
            X[:, j] = values
            continue
        for r, cell in enumerate(columns[c]):
            value = _parse_float(cell)
            if value is None or not np.isfinite(value):
                why = "empty cell" if cell == "" else f"cannot parse {_cell_text(cell)} as a finite number"
                hint = ""
                if value is None and cell != "":
                    hint = (" (features must be numbers" + ("" if label is None else
                            f"; the label is {_column_label(table, label)}: choose another with label_column=")
                            + ")")
                raise ValueError(f"{path}: line {lines[r]}, {_column_label(table, c)}: {why}{hint}")
    return X


def _label_vector(table: Mapping[str, Any], c: int) -> np.ndarray:
    """The label column: int64 for whole numbers, float64 for other numbers, else str (text labels)."""
    cells, path, lines = table["columns"][c], table["path"], table["lines"]
    where = f"{path}: " + "{line}" + f", {_column_label(table, c)}"
    values = _column_numbers(table, c)
    if values is not None:
        if not np.isfinite(values).all():
            r = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(where.format(line=f"line {lines[r]}")
                             + f": cannot parse {_cell_text(cells[r])} as a finite number (a missing label?)")
        return _as_labels(values, path)
    numeric = [r for r, cell in enumerate(cells) if _parse_float(cell) is not None]
    empty = [r for r, cell in enumerate(cells) if cell == ""]
    if empty:
        raise ValueError(where.format(line=f"line {lines[empty[0]]}") + ": empty cell (a missing label)")
    if numeric:
        text = next(r for r, cell in enumerate(cells) if _parse_float(cell) is None)
        raise ValueError(where.format(line=f"line {lines[text]}") + f": label {cells[text]!r} is text but "
                         f"line {lines[numeric[0]]} holds the number {cells[numeric[0]]!r}; a label column "
                         "must hold only numbers or only text")
    return np.array(cells, dtype=str)


def load_csv(path: PathLike, *, label_column: Union[None, int, str] = None, header: Optional[bool] = None,
             delimiter: Optional[str] = "auto", index_column: Any = "auto",
             return_info: bool = False) -> Union[Arrays, Tuple[np.ndarray, np.ndarray, Dict[str, Any]]]:
    """CSV → X float64 (n, d) and y from the label column (int64 for whole numbers, float64 for
    other numbers, str for text labels).

    The label column: ``label_column`` (a header name or an int index), or by default a column
    named ``target``/``label``/``class``/``y``, else the only non-numeric column, else the last
    (:func:`label_position`). ``header``, ``delimiter`` and ``index_column`` as in :func:`read_csv`
    (delimiter sniffed, header auto-detected, a row index column dropped). Every feature must be
    a finite number. ``return_info=True`` adds a dict ``{"label_name", "label_index",
    "feature_names", "delimiter", "index_column"}`` (names None without a header).

    Args:
        path: the CSV (or TSV, TXT) file.
        label_column: a header name or a column index (negative from the end); None: the rule above.
        header: True, False, or None to detect it.
        delimiter: a character, ``"tab"``, ``"whitespace"``, or ``"auto"`` to sniff it.
        index_column: ``"auto"``, None (keep every column), or a name or index to drop.
        return_info: also return the dict above.

    Returns:
        ``(X, y)``, or ``(X, y, info)`` with ``return_info=True``.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "pets.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("weight,height,species\\n4.0,25,cat\\n30.5,60,dog\\n")
        >>> X, y = load_csv(path)
        >>> X.tolist(), y.tolist()
        ([[4.0, 25.0], [30.5, 60.0]], ['cat', 'dog'])
    """
    table = read_csv(path, header=header, delimiter=delimiter, index_column=index_column)
    n_cols = len(table["columns"])
    if n_cols < 2:
        raise ValueError(f"{table['path']}: need at least 2 columns (features and a label), got {n_cols}"
                         + (" (after dropping the index column)" if table["index_column"] is not None else ""))
    label = label_position(table, label_column)
    features = [c for c in range(n_cols) if c != label]
    X = _feature_matrix(table, features, label)
    y = _label_vector(table, label)
    if not return_info:
        return X, y
    names = table["names"]
    info = {"label_name": None if names is None else names[label], "label_index": label,
            "feature_names": None if names is None else [names[c] for c in features],
            "delimiter": table["delimiter"], "index_column": table["index_column"]}
    return X, y, info


# --------------------------------------------------------------------------- npz and npy

def _read_npz(path: str) -> Dict[str, np.ndarray]:
    """``{"X": ..., "y": ..., "keys": [...]}`` of an .npz, each member checked before it is
    decompressed (:mod:`funcnn.bounded`: declared size, compression ratio, .npy header)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if os.path.isfile(path) and _is_npy(path):
            raise ValueError(f"{path}: not an .npz archive (it holds a single array: name it .npy)") from None
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from exc
    with zf:
        members = {info.filename[:-4] if info.filename.endswith(".npy") else info.filename: info
                   for info in zf.infolist()}
        out: Dict[str, Any] = {}
        for key in ("X", "y"):
            if key in members:
                try:
                    out[key] = _bounded.read_npz_member(zf, members[key], path)
                except ValueError as exc:
                    if "allow_pickle" in str(exc):  # object arrays need pickle, refused for safety
                        raise ValueError(f"{path}: {exc} (object arrays are refused: store numeric or "
                                         "string arrays)") from exc
                    raise
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                    raise ValueError(f"{path}: member {key!r} could not be read ({type(exc).__name__}: {exc})") from exc
        out["keys"] = sorted(members)
    return out


def _is_npy(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(6) == b"\x93NUMPY"


def _load_npz(path: str) -> Arrays:
    content = _read_npz(path)
    missing = [k for k in ("X", "y") if k not in content]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; the file has keys {content['keys']}; "
                         f"expected 'X' (features) and 'y' (labels)")
    return _check_pair(_as_features(content["X"], path), _as_labels(content["y"], path), path)


def _load_npy(path: str) -> np.ndarray:
    _bounded.check_npy_file(path)  # the header's shape fits the file and the budget, before any allocation
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path}: not an .npy array")
    return _as_features(arr, path)


# --------------------------------------------------------------------------- X.npy / y.npy directories

#: The files of an array directory: the features (opened memory-mapped) and the labels (optional for predict).
NPY_X, NPY_Y = "X.npy", "y.npy"


def directory_kind(directory: PathLike) -> str:
    """``"npy"`` for a directory holding ``X.npy`` (and usually ``y.npy``), ``"idx"`` for one holding
    MNIST IDX files; a directory holding both kinds, or neither, is a ``ValueError`` naming what it found."""
    directory = os.fspath(directory)
    arrays = [name for name in (NPY_X, NPY_Y) if os.path.isfile(os.path.join(directory, name))]
    idx = sorted(name for name in os.listdir(directory)
                 if "-idx" in name or ".idx" in name) if os.path.isdir(directory) else []
    if arrays and idx:
        raise ValueError(f"{directory}: holds both array files ({', '.join(arrays)}) and MNIST IDX files "
                         f"({', '.join(idx[:4])}{', ...' if len(idx) > 4 else ''}); a data directory must hold "
                         "one kind: move one of them elsewhere")
    if NPY_X in arrays:
        return "npy"
    if idx:
        return "idx"
    if arrays:  # y.npy alone
        raise ValueError(f"{directory}: holds {NPY_Y} but no {NPY_X}; an array data directory needs the "
                         f"features in {NPY_X} (and the labels in {NPY_Y})")
    raise ValueError(f"{directory}: not a data directory: expected {NPY_X} (+ {NPY_Y}), or MNIST IDX files "
                     "(train-images-idx3-ubyte[.gz], ...)")


def load_npy_directory(directory: PathLike, *, labels: str = "required"
                       ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(X, y)`` from ``directory/X.npy`` and ``directory/y.npy``: X **memory-mapped**, y in memory.

    X is ``np.load(..., mmap_mode="r")``: nothing is read until rows are used, its dtype is the
    file's (``uint8`` images stay ``uint8``), and samples of more than one axis are flattened
    to rows by a reshape, which is a view. ``funcnn.train`` reads and converts it one minibatch
    at a time, ``predict``/``evaluate`` one chunk at a time, so data larger than memory train.
    X is not scanned for NaN here (``train``/``evaluate`` check it chunk by chunk). y is loaded
    with ``allow_pickle=False`` and returned as :func:`load` returns labels. ``labels``:
    ``"required"`` (a missing ``y.npy`` is a ``FileNotFoundError``) or ``"optional"`` (y is
    then None).
    """
    if labels not in ("required", "optional"):
        raise ValueError(f"labels must be 'required' or 'optional', got {labels!r}")
    directory = os.fspath(directory)
    x_path, y_path = os.path.join(directory, NPY_X), os.path.join(directory, NPY_Y)
    try:
        if os.path.isfile(x_path):
            _bounded.check_npy_file(x_path, in_memory=False)  # memory-mapped: the header must match the file
        X = np.load(x_path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{x_path}: not a readable .npy array ({exc})") from exc
    if not isinstance(X, np.ndarray) or X.dtype == object or X.dtype.kind not in "biuf":
        raise ValueError(f"{x_path}: X must be a numeric array, got dtype {getattr(X, 'dtype', type(X).__name__)}")
    if X.ndim < 2:
        raise ValueError(f"{x_path}: X must be at least 2-D (n_samples, n_features), got shape {X.shape}")
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)  # a view of the memory map (C order)
    if not os.path.isfile(y_path):
        if labels == "optional":
            return X, None
        raise FileNotFoundError(f"{directory}: no {NPY_Y}: training and evaluating need labels ({NPY_Y} beside "
                                f"{NPY_X}); funcnn predict reads {NPY_X} alone")
    _bounded.check_npy_file(y_path)
    try:
        y = np.load(y_path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{y_path}: not a readable .npy array ({exc})") from exc
    return _check_pair(X, _as_labels(y, y_path), directory)


def tail_split(X: Any, y: Any, *, test_size: float = 0.25
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_test, y_train, y_test)`` in the data's own order: the **last** rows are the test part.

    The parts are slices, i.e. views (of a memory map too): nothing is copied. ``test_size`` is
    a fraction in (0, 1) (``ceil(test_size * n)`` rows, as scikit-learn counts them) or a number
    of rows. Use it for data stored in random order (``scripts/make_large_dataset.py`` writes
    them shuffled); :func:`split` shuffles and stratifies, which copies.

    Examples:
        >>> import numpy as np
        >>> X, y = np.arange(10).reshape(5, 2), np.arange(5)
        >>> X_train, X_test, y_train, y_test = tail_split(X, y, test_size=0.4)
        >>> y_test.tolist(), np.shares_memory(X_test, X)
        ([3, 4], True)
    """
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(check_number(test_size, "test_size", low=1, integer=True))
    else:
        test_size = check_number(test_size, "test_size", low=0, high=1, low_open=True, high_open=True)
        n_test = math.ceil(test_size * X.shape[0])
    n = X.shape[0]
    if y is not None and len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)} labels")
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves {n - n_test} of {n} rows for training and {n_test} for "
                         "testing; both parts need at least one row")
    cut = n - n_test
    return X[:cut], X[cut:], (None if y is None else y[:cut]), (None if y is None else y[cut:])


# --------------------------------------------------------------------------- registry

def _bundled(loader_name: str, regression: bool = False) -> Callable[..., Arrays]:
    """A loader for one of scikit-learn's bundled datasets (shipped with the package, no download)."""
    def load_bundled(**options: Any) -> Arrays:
        _check_options(loader_name, options, ())
        import sklearn.datasets
        X, y = getattr(sklearn.datasets, f"load_{loader_name}")(return_X_y=True)
        return _as_features(X, loader_name), _as_labels(y, loader_name, regression=regression)
    load_bundled.__doc__ = f"scikit-learn's bundled {loader_name} dataset."
    return load_bundled


def _n_samples(value: Any) -> int:
    return check_number(value, "n_samples", low=1, integer=True)


def _moons(*, n_samples: int = 1000, noise: float = 0.2, seed: Any = 0) -> Arrays:
    """Two interleaving half circles: X (n_samples, 2), y in {0, 1}."""
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=_n_samples(n_samples), noise=check_number(noise, "noise", low=0),
                      random_state=_random_state(seed))
    return X.astype(np.float64), y.astype(np.int64)


def _circles(*, n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: Any = 0) -> Arrays:
    """A small circle inside a large one: X (n_samples, 2), y in {0, 1}."""
    from sklearn.datasets import make_circles
    X, y = make_circles(n_samples=_n_samples(n_samples), noise=check_number(noise, "noise", low=0),
                        factor=check_number(factor, "factor", low=0, high=1, low_open=True, high_open=True),
                        random_state=_random_state(seed))
    return X.astype(np.float64), y.astype(np.int64)


def _blobs(*, n_samples: int = 1000, centers: Any = 3, n_features: int = 2, cluster_std: float = 1.0,
           noise: Optional[float] = None, seed: Any = 0) -> Arrays:
    """Isotropic Gaussian blobs: X (n_samples, n_features), y in 0..centers-1 (noise = cluster_std)."""
    from sklearn.datasets import make_blobs
    if noise is not None:  # accepted so every generator takes the same options
        cluster_std = noise
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        centers = check_number(centers, "centers", low=1, integer=True)
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2:
            raise ValueError(f"centers must be an int or a (k, n_features) array, got shape {centers.shape}")
        n_features = centers.shape[1]
    X, y = make_blobs(n_samples=_n_samples(n_samples), centers=centers,
                      n_features=check_number(n_features, "n_features", low=1, integer=True),
                      cluster_std=check_number(cluster_std, "cluster_std", low=0),
                      random_state=_random_state(seed))
    return X.astype(np.float64), y.astype(np.int64)


def _generator(fn: Callable[..., Arrays], name: str, allowed: Sequence[str]) -> Callable[..., Arrays]:
    def load_generated(**options: Any) -> Arrays:
        _check_options(name, options, allowed)
        return fn(**options)
    load_generated.__doc__ = fn.__doc__
    return load_generated


def _mnist_train(**options: Any) -> Arrays:
    """The training split of MNIST-format files in ``directory`` (default DEFAULT_MNIST_DIR)."""
    _check_options("mnist", options, ("directory",))
    return load_mnist(options.get("directory", DEFAULT_MNIST_DIR), split="train")


DATASETS: Dict[str, Callable[..., Arrays]] = {
    "digits": _bundled("digits"),
    "iris": _bundled("iris"),
    "wine": _bundled("wine"),
    "breast-cancer": _bundled("breast_cancer"),
    "diabetes": _bundled("diabetes", regression=True),
    "moons": _generator(_moons, "moons", ("n_samples", "noise", "seed")),
    "circles": _generator(_circles, "circles", ("n_samples", "noise", "factor", "seed")),
    "blobs": _generator(_blobs, "blobs", ("n_samples", "centers", "n_features", "cluster_std", "noise", "seed")),
    # Both names read MNIST-format files from `directory`; the default directory is where
    # Debian's dataset-fashion-mnist puts Fashion-MNIST, so pass directory= for digit MNIST.
    "fashion-mnist": _mnist_train,
    "mnist": _mnist_train,
}
_MNIST_NAMES = ("fashion-mnist", "mnist")
_FILE_SUFFIXES = (".npz", ".csv", ".tsv", ".txt")
_CSV_OPTIONS = ("label_column", "header", "delimiter", "index_column")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _resolve(source: Any) -> Tuple[str, str]:
    """(kind, value): ("name", registry key) | ("npz"|"npy"|"csv"|"dir", path). Names win over same-named files."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a dataset name or a path, got {type(source).__name__}")
    if isinstance(source, str) and _normalise(source) in DATASETS:
        return "name", _normalise(source)
    path = os.path.expanduser(os.fspath(source))
    if os.path.isdir(path):
        return "dir", path
    if os.path.isfile(path):
        suffix = os.path.splitext(path)[1].lower()
        if suffix in (".npz", ".npy"):
            return suffix[1:], path
        if suffix in (".csv", ".txt", ".tsv"):
            return "csv", path
        raise ValueError(f"{path}: unsupported file type {suffix or '(no extension)'!r}; "
                         f"load reads {', '.join(_FILE_SUFFIXES)} files and data directories (X.npy + y.npy, or MNIST "
                         "IDX files)")
    raise DatasetNotFoundError(
        f"{source!r} is neither a known dataset nor an existing file or directory; "
        f"known names: {', '.join(sorted(DATASETS))} (or a path to {', '.join(_FILE_SUFFIXES)} "
        f"or a directory holding X.npy + y.npy or MNIST IDX files)")


def load(source: Union[str, PathLike], **options: Any) -> Arrays:
    """Name or path → (X (n, d), y (n,)); X float64 (float32 in [0, 1] for MNIST data; for a
    directory holding ``X.npy`` and ``y.npy``, X memory-mapped in the file's dtype, see
    :func:`load_npy_directory`).

    y is returned as the data hold it: int64 for whole numbers, float64 for other numbers,
    str for text labels, bool for booleans (see :func:`encode_labels` for the codes the
    network takes). Generator options and defaults: moons n_samples=1000 noise=0.2 seed=0;
    circles n_samples=1000 noise=0.1 factor=0.5 seed=0; blobs n_samples=1000 centers=3
    n_features=2 cluster_std=1.0 seed=0. MNIST names take ``directory``; CSV paths take
    :func:`load_csv`'s options; directories take ``split``.

    Args:
        source: a dataset name (``digits``, ``iris``, ``wine``, ``breast-cancer``,
            ``diabetes``, ``moons``, ``circles``, ``blobs``, ``fashion-mnist``, ``mnist``) or a
            path (``.npz``, ``.csv``/``.tsv``/``.txt``, a directory of IDX files or of
            ``X.npy`` + ``y.npy``).
        **options: the source's options, as above; an unknown one is a ``ValueError``.

    Returns:
        ``(X, y)``.

    Examples:
        >>> X, y = load("moons", n_samples=100, noise=0.1, seed=0)
        >>> X.shape, y.dtype.name
        ((100, 2), 'int64')
    """
    kind, value = _resolve(source)
    if kind == "name":
        return DATASETS[value](**options)
    if kind == "npz":
        _check_options(value, options, ())
        return _load_npz(value)
    if kind == "npy":
        raise ValueError(f"{value}: an .npy file holds one array (features only); to train, save X and y "
                         "together with np.savez(path, X=X, y=y); to predict, see load_features")
    if kind == "csv":
        _check_options(value, options, _CSV_OPTIONS)
        return load_csv(value, **options)
    if directory_kind(value) == "npy":
        _check_options(value, options, ())
        return load_npy_directory(value)
    _check_options(value, options, ("split",))
    return load_mnist(value, **options)


def load_features(source: Union[str, PathLike], n_features: int, *, feature_names: Optional[Sequence[str]] = None,
                  label_name: Optional[str] = None, label_index: Optional[int] = None,
                  label_column: Union[None, int, str] = None, header: Optional[bool] = None,
                  delimiter: Optional[str] = "auto", index_column: Any = "auto"
                  ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Features to predict on, and the labels when the data hold them: ``(X (n, n_features), y or None)``.

    * ``.npy``: the features only (images are flattened to rows).
    * ``.npz``: ``X``, and ``y`` when the archive has it.
    * a directory holding ``X.npy`` (and ``y.npy``, optional here): X memory-mapped, as
      :func:`load_npy_directory`.
    * a dataset name or an MNIST directory: as :func:`load`.
    * CSV (delimiter sniffed, header auto-detected, a row index dropped, as :func:`read_csv`):

      1. ``label_column`` given: that column is the label, every other column a feature;
      2. else, when the file has a header naming every one of ``feature_names`` (the training
         file's feature columns): those columns, in that order; the column named
         ``label_name``, if present, is the label; other columns are ignored;
      3. else by count: ``n_features`` columns are all features (no label);
         ``n_features + 1`` hold a label too, at ``label_index`` (the training file's label
         position) or, without one, where :func:`label_position`'s default rule finds it.

    Anything else is a ``ValueError`` saying how many columns were found and expected.
    """
    n_features = check_number(n_features, "n_features", low=1, integer=True)
    kind, value = _resolve(source)
    y: Optional[np.ndarray] = None
    if kind == "npy":
        X = _load_npy(value)
    elif kind == "npz":
        content = _read_npz(value)
        if "X" not in content:
            raise ValueError(f"{value}: missing key X; the file has keys {content['keys']}; expected 'X' "
                             "(features) and optionally 'y' (labels)")
        X = _as_features(content["X"], value)
        if "y" in content:
            X, y = _check_pair(X, _as_labels(content["y"], value), value)
    elif kind == "csv":
        X, y = _csv_features(value, n_features, feature_names, label_name, label_index, label_column,
                             header, delimiter, index_column)
    elif kind == "dir" and directory_kind(value) == "npy":
        X, y = load_npy_directory(value, labels="optional")
    else:
        X, y = load(source)
    if X.shape[1] != n_features:
        raise ValueError(f"{value}: the data have {X.shape[1]} feature columns but the model expects {n_features}")
    return X, y


def _csv_features(path, n_features, feature_names, label_name, label_index, label_column, header, delimiter,
                  index_column) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    table = read_csv(path, header=header, delimiter=delimiter, index_column=index_column)
    names, n_cols = table["names"], len(table["columns"])
    if label_column is not None:
        label = label_position(table, label_column)
        return _feature_matrix(table, [c for c in range(n_cols) if c != label], label), _label_vector(table, label)
    if names is not None and feature_names and all(name in names for name in feature_names):
        positions = [names.index(name) for name in feature_names]
        label = names.index(label_name) if label_name is not None and label_name in names else None
        if label in positions:
            label = None
        X = _feature_matrix(table, positions, label)
        return X, None if label is None else _label_vector(table, label)
    if n_cols == n_features:
        return _feature_matrix(table, list(range(n_cols)), None), None
    if n_cols == n_features + 1:
        if label_index is not None and 0 <= label_index < n_cols:
            label = int(label_index)
        else:
            label = label_position(table)
        return _feature_matrix(table, [c for c in range(n_cols) if c != label], label), _label_vector(table, label)
    named = ""
    if names is not None and feature_names:
        absent = [name for name in feature_names if name not in names]
        named = f"; the header lacks the model's feature column(s) {absent[:5]}" + (" ..." if len(absent) > 5 else "")
    raise ValueError(f"{path}: {n_cols} columns" + (f" (after dropping the index column {table['index_column']!r})"
                     if table["index_column"] is not None else "")
                     + f", but the model expects {n_features} feature columns (or {n_features + 1} with the label)"
                     + named)


def _mnist_directory(source: Any, options: Mapping[str, Any]) -> Optional[str]:
    """The directory holding official MNIST train/test files for this source, else None."""
    kind, value = _resolve(source)
    if kind == "name" and value in _MNIST_NAMES:
        _check_options(value, options, ("directory",))
        return os.fspath(options.get("directory", DEFAULT_MNIST_DIR))
    if kind == "dir" and directory_kind(value) == "idx":
        _check_options(value, options, ())
        return value
    return None


def split(X: Any, y: Any, *, test_size: float = 0.25, seed: Any = 0, stratify: Optional[bool] = None
          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_test, y_train, y_test)``: scikit-learn's ``train_test_split`` with ``random_state=seed``.

    ``stratify=None`` stratifies when ``y`` holds class labels (:func:`infer_task`) and every
    class has at least two samples; True stratifies on ``y`` (integer, text or boolean labels;
    labels and their codes give the same split); False never. ``test_size`` is a fraction in (0, 1) or a number of samples.

    Examples:
        >>> X, y = load("iris")
        >>> X_train, X_test, y_train, y_test = split(X, y, test_size=0.2, seed=0)
        >>> len(X_train), len(X_test), sorted(set(y_test.tolist()))
        (120, 30, [0, 1, 2])
    """
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        test_size = check_number(test_size, "test_size", low=1, integer=True)
    else:
        test_size = check_number(test_size, "test_size", low=0, high=1, low_open=True, high_open=True)
    y_arr = label_array(y)
    if stratify is None:
        stratify = (y_arr.ndim == 1 and infer_task(y_arr) == "classification"
                    and np.unique(y_arr, return_counts=True)[1].min() >= 2)
    elif stratify and (y_arr.ndim != 1 or y_arr.dtype.kind == "f"):
        raise ValueError(f"stratify=True needs class labels (integers, text or booleans), got y of dtype "
                         f"{y_arr.dtype} shape {y_arr.shape}")
    from sklearn.model_selection import train_test_split
    return tuple(train_test_split(X, y, test_size=test_size, random_state=_random_state(seed),
                                  stratify=y_arr if stratify else None))


def load_train_test(source: Union[str, PathLike], *, test_size: float = 0.25, seed: Any = 0,
                    stratify: Optional[bool] = None, **options: Any
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): MNIST's official split; for a directory holding
    ``X.npy``/``y.npy``, :func:`tail_split` (the last ``test_size`` of the rows, views of the
    memory map: nothing is copied); else :func:`split` of :func:`load`.

    ``stratify=None`` stratifies class labels (:func:`infer_task`) when every class has at
    least two samples; for MNIST-format data ``test_size`` and ``seed`` do not apply (the
    files fix the split), for an ``X.npy`` directory ``seed`` and ``stratify`` do not (the
    files' order does). Labels come back as :func:`load` returns them.

    Args:
        source: a dataset name or path, as :func:`load` takes.
        test_size: a fraction in (0, 1) or a number of samples.
        seed: the split's seed (scikit-learn's ``random_state``).
        stratify: as in :func:`split`.
        **options: :func:`load`'s options for the source.

    Returns:
        ``(X_train, X_test, y_train, y_test)``.

    Examples:
        >>> X_train, X_test, y_train, y_test = load_train_test("digits", test_size=0.25, seed=0)
        >>> X_train.shape, X_test.shape
        ((1347, 64), (450, 64))
    """
    kind, value = _resolve(source)
    if kind == "dir" and directory_kind(value) == "npy":
        _check_options(value, options, ())
        X, y = load_npy_directory(value)
        return tail_split(X, y, test_size=test_size)
    directory = _mnist_directory(source, options)
    if directory is not None:
        X_train, y_train = load_mnist(directory, split="train")
        X_test, y_test = load_mnist(directory, split="test")
        return X_train, X_test, y_train, y_test
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        check_number(test_size, "test_size", low=1, integer=True)
    else:
        check_number(test_size, "test_size", low=0, high=1, low_open=True, high_open=True)
    X, y = load(source, **options)
    return split(X, y, test_size=test_size, seed=seed, stratify=stratify)


# --------------------------------------------------------------------------- scaling

def fit_scaler(X: Any) -> Dict[str, np.ndarray]:
    """Per-feature mean and std of X (n, d) → {"mean": (d,), "scale": (d,)} float64 (scale 1 where std is 0).

    A plain dict, so it is saved with a model (``funcnn.save(..., scaler=scaler)``) and
    applied to new data by :func:`apply_scaler` (as ``funcnn predict`` does).

    Examples:
        >>> import numpy as np
        >>> scaler = fit_scaler(np.array([[1.0, 10.0], [3.0, 10.0]]))
        >>> scaler["mean"].tolist(), scaler["scale"].tolist()
        ([2.0, 10.0], [1.0, 1.0])
        >>> apply_scaler(scaler, np.array([[3.0, 12.0]])).tolist()
        [[1.0, 2.0]]
    """
    from sklearn.preprocessing import StandardScaler
    X = check_X(X, np.dtype(np.float64))
    scaler = StandardScaler().fit(X)
    return {"mean": np.array(scaler.mean_, dtype=np.float64), "scale": np.array(scaler.scale_, dtype=np.float64)}


def apply_scaler(scaler: Mapping[str, Any], X: Any) -> np.ndarray:
    """(X - mean) / scale, a new array; float32 X stays float32, anything else becomes float64."""
    if not isinstance(scaler, Mapping) or not {"mean", "scale"} <= set(scaler):
        got = sorted(scaler) if isinstance(scaler, Mapping) else type(scaler).__name__
        raise ValueError(f"scaler must be a dict with keys 'mean' and 'scale' (from fit_scaler), got {got}")
    mean = np.asarray(scaler["mean"], dtype=np.float64)
    scale = np.asarray(scaler["scale"], dtype=np.float64)
    if mean.ndim != 1 or scale.shape != mean.shape:
        raise ValueError(f"scaler 'mean' and 'scale' must be 1-D of equal length, got {mean.shape} and {scale.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()) or (scale <= 0).any():
        raise ValueError("scaler 'mean' must be finite and 'scale' finite and positive")
    dtype = np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 else np.dtype(np.float64)
    X = check_X(X, dtype)
    if X.shape[1] != mean.shape[0]:
        raise ValueError(f"X has {X.shape[1]} features but the scaler expects {mean.shape[0]}")
    return ((X - mean) / scale).astype(dtype, copy=False)
