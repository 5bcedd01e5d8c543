"""Datasets: resolve a name or a path to ``(X, y)`` arrays, never touching the network.

Names are scikit-learn's bundled sets (``digits``, ``iris``, ``wine``, ``breast-cancer``,
``diabetes``), its 2-D generators (``moons``, ``circles``, ``blobs``) and MNIST-format
data on disk (``fashion-mnist``, ``mnist``). Paths are ``.npz``, ``.csv``/``.txt`` files
or a directory of MNIST IDX files. Everything here is a plain function of its arguments.
"""
from __future__ import annotations

import csv
import gzip
import os
import secrets
import zipfile
import zlib
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .validation import as_rng, check_number, check_X

PathLike = Union[str, "os.PathLike[str]"]
Arrays = Tuple[np.ndarray, np.ndarray]

DEFAULT_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class DatasetNotFoundError(ValueError, FileNotFoundError):
    """Neither a known dataset name nor an existing file (a ValueError and a FileNotFoundError)."""


# --------------------------------------------------------------------------- helpers

def _as_labels(y: Any, where: str, *, regression: bool = False) -> np.ndarray:
    """Labels as int64 when every value is a whole number (classification), else float64."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2):
        raise ValueError(f"{where}: y must be 1-D (or 2-D for several regression targets), got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{where}: y must hold numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise ValueError(f"{where}: y contains NaN or inf (first at flat index {i})")
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


def _atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a sibling temp file, then ``os.replace``: ``path`` is never half-written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        # "xb" (not mkstemp) so the file gets the usual umask-derived permissions
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


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
    _atomic_write(path, payload)
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


def load_csv(path: PathLike, *, label_column: Union[int, str] = -1, header: Optional[bool] = None,
             delimiter: Optional[str] = ",") -> Arrays:
    """Numeric CSV → X float64 (n, d) and y (int64 if whole numbers else float64) from ``label_column``.

    ``header=None`` auto-detects: the first row is a header when none of its cells is a number.
    ``delimiter=None`` splits on runs of whitespace. Line numbers in errors are the file's, 1-based.
    """
    path = os.fspath(path)
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header must be None (auto), True or False, got {header!r}")
    if isinstance(label_column, bool) or not isinstance(label_column, (int, np.integer, str)):
        raise TypeError(f"label_column must be an int index or a column name, got {label_column!r}")

    rows = []  # (line number, stripped cells), blank lines skipped
    with open(path, newline="", encoding="utf-8-sig") as fh:
        if delimiter is None:
            for number, line in enumerate(fh, start=1):
                cells = line.split()
                if cells:
                    rows.append((number, cells))
        else:
            reader = csv.reader(fh, delimiter=delimiter)
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells):
                    rows.append((reader.line_num, cells))
    if not rows:
        raise ValueError(f"{path}: empty file: no rows to load")

    first_line, first = rows[0]
    if header is None:
        header = all(_parse_float(c) is None for c in first)
    names = first if header else None
    data = rows[1:] if header else rows
    if not data:
        raise ValueError(f"{path}: no data rows after the header on line {first_line}")

    n_cols = len(first)
    for number, cells in data:
        if len(cells) != n_cols:
            raise ValueError(f"{path}: line {number} has {len(cells)} fields, expected {n_cols} "
                             f"(as on line {first_line})")
    if n_cols < 2:
        raise ValueError(f"{path}: need at least 2 columns (features and a label), got {n_cols}")

    if isinstance(label_column, str):
        if names is None:
            raise ValueError(f"{path}: label_column={label_column!r} is a name but the file has no header "
                             f"row (line {first_line} is data); pass header=True or an int index")
        matches = [i for i, name in enumerate(names) if name == label_column]
        if len(matches) != 1:
            problem = "no column" if not matches else f"{len(matches)} columns"
            raise ValueError(f"{path}: {problem} named {label_column!r}; header columns are {names}")
        label = matches[0]
    else:
        label = int(label_column)
        if not -n_cols <= label < n_cols:
            raise ValueError(f"{path}: label_column={label} is out of range for {n_cols} columns")
        label %= n_cols

    table = np.empty((len(data), n_cols), dtype=np.float64)
    for r, (number, cells) in enumerate(data):
        for c, cell in enumerate(cells):
            value = _parse_float(cell)
            if value is None or not np.isfinite(value):
                column = f"column {c + 1}" + (f" ({names[c]!r})" if names else "")
                why = "empty cell" if cell == "" else f"cannot parse {cell!r} as a finite number"
                hint = " (labels must be numbers: encode classes as 0..k-1)" if c == label else ""
                raise ValueError(f"{path}: line {number}, {column}: {why}{hint}")
            table[r, c] = value
    X = np.delete(table, label, axis=1)
    y = _as_labels(table[:, label], path)
    return X, y


# --------------------------------------------------------------------------- npz

def _load_npz(path: str) -> Arrays:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from exc
    with archive:
        keys = sorted(archive.files)
        missing = [k for k in ("X", "y") if k not in keys]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; the file has keys {keys}; "
                             f"expected 'X' (features) and 'y' (labels)")
        try:
            X, y = archive["X"], archive["y"]
        except ValueError as exc:  # object arrays need pickle, refused for safety
            raise ValueError(f"{path}: {exc} (object arrays are refused: store numeric arrays)") from exc
    return _check_pair(_as_features(X, path), _as_labels(y, path), path)


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
_FILE_SUFFIXES = (".npz", ".csv", ".txt")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _resolve(source: Any) -> Tuple[str, str]:
    """(kind, value): ("name", registry key) | ("npz"|"csv"|"dir", path). Names win over same-named files."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a dataset name or a path, got {type(source).__name__}")
    if isinstance(source, str) and _normalise(source) in DATASETS:
        return "name", _normalise(source)
    path = os.path.expanduser(os.fspath(source))
    if os.path.isdir(path):
        return "dir", path
    if os.path.isfile(path):
        suffix = os.path.splitext(path)[1].lower()
        if suffix == ".npz":
            return "npz", path
        if suffix in (".csv", ".txt"):
            return "csv", path
        raise ValueError(f"{path}: unsupported file type {suffix or '(no extension)'!r}; "
                         f"load reads {', '.join(_FILE_SUFFIXES)} files and MNIST directories")
    raise DatasetNotFoundError(
        f"{source!r} is neither a known dataset nor an existing file or directory; "
        f"known names: {', '.join(sorted(DATASETS))} (or a path to {', '.join(_FILE_SUFFIXES)} "
        f"or a directory of MNIST IDX files)")


def load(source: Union[str, PathLike], **options: Any) -> Arrays:
    """Name or path → (X (n, d), y (n,)); X float64 (float32 in [0, 1] for MNIST data), y int64 or float64.

    Generator options and defaults: moons n_samples=1000 noise=0.2 seed=0; circles n_samples=1000
    noise=0.1 factor=0.5 seed=0; blobs n_samples=1000 centers=3 n_features=2 cluster_std=1.0 seed=0.
    MNIST names take ``directory``; CSV paths take load_csv's options; directories take ``split``.
    """
    kind, value = _resolve(source)
    if kind == "name":
        return DATASETS[value](**options)
    if kind == "npz":
        _check_options(value, options, ())
        return _load_npz(value)
    if kind == "csv":
        _check_options(value, options, ("label_column", "header", "delimiter"))
        return load_csv(value, **options)
    _check_options(value, options, ("split",))
    return load_mnist(value, **options)


def _mnist_directory(source: Any, options: Mapping[str, Any]) -> Optional[str]:
    """The directory holding official MNIST train/test files for this source, else None."""
    kind, value = _resolve(source)
    if kind == "name" and value in _MNIST_NAMES:
        _check_options(value, options, ("directory",))
        return os.fspath(options.get("directory", DEFAULT_MNIST_DIR))
    if kind == "dir":
        _check_options(value, options, ())
        return value
    return None


def load_train_test(source: Union[str, PathLike], *, test_size: float = 0.25, seed: Any = 0,
                    stratify: Optional[bool] = None, **options: Any
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): MNIST's official split, else a seeded train_test_split.

    ``stratify=None`` stratifies integer labels when every class has at least two samples;
    for MNIST-format data ``test_size`` and ``seed`` do not apply (the files fix the split).
    """
    directory = _mnist_directory(source, options)
    if directory is not None:
        X_train, y_train = load_mnist(directory, split="train")
        X_test, y_test = load_mnist(directory, split="test")
        return X_train, X_test, y_train, y_test

    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        test_size = check_number(test_size, "test_size", low=1, integer=True)
    else:
        test_size = check_number(test_size, "test_size", low=0, high=1, low_open=True, high_open=True)
    X, y = load(source, **options)
    classification = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    if stratify is None:
        stratify = classification and np.unique(y, return_counts=True)[1].min() >= 2
    elif stratify and not classification:
        raise ValueError(f"stratify=True needs integer class labels, got y of dtype {y.dtype} shape {y.shape}")
    from sklearn.model_selection import train_test_split
    return tuple(train_test_split(X, y, test_size=test_size, random_state=_random_state(seed),
                                  stratify=y if stratify else None))


# --------------------------------------------------------------------------- scaling

def fit_scaler(X: Any) -> Dict[str, np.ndarray]:
    """Per-feature mean and std of X (n, d) → {"mean": (d,), "scale": (d,)} float64 (scale 1 where std is 0)."""
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
