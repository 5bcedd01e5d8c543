"""Checkpoints: one file holding a spec, its params and any metadata.

``save(path, spec, params, **metadata)`` writes; ``load(path)`` returns
``{"spec": spec, "params": params, **metadata}``. The format is chosen by the path's
extension (case-insensitive), never by the file's content, so a ``.npz`` file is never
unpickled whatever bytes it holds:

``.npz`` (the safe format, readable with ``np.load(path, allow_pickle=False)``)
    A zip of ``.npy`` members, as ``np.savez`` writes it:

    * ``params/<key>`` — one member per params array (``params/W_0``, ``params/b_0``, ...),
      in the params dict's order;
    * ``meta/<n>`` — one member per array found inside the metadata;
    * ``__funcnn__`` — a 0-d unicode array holding the JSON text
      ``{"format": "funcnn", "version": 1, "spec": [...], "metadata": {...}}``.
      In that JSON an array inside the metadata is the marker ``{"__array__": "meta/<n>"}``;
      a metadata dict whose only key is ``"__array__"`` or ``"__dict__"`` is wrapped as
      ``{"__dict__": {...}}`` so that it cannot be mistaken for a marker.

    Nothing in the file is pickled; ``load`` reads every member with ``allow_pickle=False``
    and refuses a file carrying object arrays. Every member is covered by the zip's CRC-32,
    which ``load`` checks: a damaged member is refused.

``.pkl`` / ``.pickle`` (for files you trust only)
    A pickled plain dict ``{"format", "version", "spec", "params", "metadata", "checksum"}``
    of builtins and NumPy arrays. ``checksum`` is ``"sha256:<hex>"`` over the JSON-normal
    spec and metadata and every array's dtype, shape and bytes (see :func:`_checksum`);
    ``load`` recomputes it and refuses a file whose checksum differs ("the file is
    corrupt"). Files written before the checksum existed (same version 1, no ``checksum``
    entry) still load, unverified. ``load`` resolves only the NumPy names that arrays
    need, which turns most foreign pickles away before they run, but pickle is not a safe
    format: unpickling data from an untrusted source can run arbitrary code. Prefer ``.npz``.
    As with any NumPy pickle, an array of non-native byte order (e.g. ``>f8``) comes back
    in native order, with the same values.

``.safetensors`` (the Hugging Face format; needs the ``safetensors`` package, ``funcnn[export]``)
    One tensor per params array (``params/<key>``) and per array found inside the metadata
    (``meta/<n>``), and in the header's ``__metadata__`` (a str -> str map) the entry
    ``"funcnn"``: the JSON text ``{"format": "funcnn", "version": 1, "spec", "metadata",
    "params": [keys in order], "meta_dtypes", "checksum"}``, the metadata encoded as for
    ``.npz``. A metadata array of a dtype safetensors has no name for (text labels, say) is
    stored as its raw bytes (``uint8``) and ``meta_dtypes`` records its dtype and shape.
    ``checksum`` is the ``.pkl`` format's sha256 over spec, metadata and every array;
    ``load`` recomputes it. Nothing is unpickled; any reader of the format
    (``safetensors.numpy.load_file``) reads the arrays. Arrays of non-native byte order come
    back in native order, with the same values.

Metadata may be any nesting of dicts (str keys), lists and tuples of ``str``, ``int`` (of any
size), ``float`` (NaN and inf included), ``bool``, ``None``, ``np.ndarray`` (not of object
dtype) and NumPy scalars. Both formats return the same thing: tuples come back as lists,
NumPy integer/float/bool/str scalars as ``int``/``float``/``bool``/``str``, and two references
to one array as two equal arrays (:func:`plain` gives that form without a file). Floats and
ints round-trip exactly; arrays come back bit-identical (dtype, shape, bytes).

Writes are atomic: everything is validated first (:func:`check_path`,
:func:`check_metadata`), the file is written to a temporary file in the same directory,
flushed to disk, and then renamed over ``path``. An error at any point leaves a previous
file at ``path`` byte-identical and removes the temporary file. A temporary file is named
``.{name}.{pid}.{token}.tmp`` (the name shortened, with a hash of it, when that would be
longer than the file system allows); one left by a writer that was killed (its pid no
longer runs, or is a zombie) is removed by the next save to the same path, and by the next
:func:`load` of it.

Loading is bounded (:mod:`funcnn.bounded`): every ``.npz`` member's declared size, compression
ratio and ``.npy`` header are checked before it is decompressed, and the network must fit the
memory budget for one sample (:func:`funcnn.footprint.check_budget`) when its input shape is known.

Training state (used by ``funcnn.train(..., checkpoint=path)``): :func:`save_training_state`
writes a normal model file whose metadata also holds ``loss`` and ``training_state``;
:func:`load_training_state` reads it back and refuses a file of another run, naming every
difference; :func:`data_digest` fingerprints the data sets for the run's config.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import numbers
import os
import pickle
import re
import secrets
import stat
import zipfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from . import bounded as _bounded
from . import footprint as _footprint
from .layers import check_spec, is_trainable_key
from .network import as_shape, check_params
from .schedules import check_plateau_state

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "funcnn"
VERSION = 1  # the newest checkpoint format this module writes and reads
NPZ_EXTENSIONS = (".npz",)
PICKLE_EXTENSIONS = (".pkl", ".pickle")
SAFETENSORS_EXTENSIONS = (".safetensors",)
SAFETENSORS_KEY = "funcnn"  # the __metadata__ entry of a .safetensors checkpoint holding its JSON header
# dtypes a .safetensors file names (anything else in metadata is stored as raw bytes)
_SAFETENSORS_DTYPES = frozenset(np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "uint16", "int32",
                                                     "uint32", "int64", "uint64", "float16", "float32",
                                                     "float64", "complex64"))
HEADER = "__funcnn__"  # name of the JSON member in an .npz checkpoint
RESERVED = ("spec", "params")  # keys load() puts next to the metadata
TRAINING_NAMES = ("loss", "training_state")  # metadata names save_training_state() fills in
TRAINING_STATE_ENTRIES = ("opt_state", "rng_state", "history", "run")  # required in a training state
_MARKERS = ("__array__", "__dict__")  # single-key JSON dicts with these keys are ours
_ALLOWED_TYPES = ("dict (str keys), list, tuple, str, int, float, bool, None, "
                  "np.ndarray (not of object dtype) or a NumPy scalar")
_PICKLE_KEYS = ("format", "version", "spec", "params", "metadata")  # every .pkl checkpoint has these
_CHECKSUM_TAG = b"funcnn checksum 1\n"
_CHUNK_BYTES = 1 << 20  # arrays are hashed this many bytes (whole rows) at a time
_TOKEN_HEX = 12  # hex digits of the random part of a temporary file's name
_PID_WIDTH = 10  # digits reserved for the pid when a temporary name must be shortened


class _NotOurs(Exception):
    """Internal: the file is not a funcnn checkpoint; the message says why."""


# --- plain data -----------------------------------------------------------------------

def _plain(value: Any, where: str, arrays: Optional[List[np.ndarray]], active: set) -> Any:
    """A JSON-able copy of ``value`` (npz: arrays go to ``arrays`` and become markers;
    pickle, ``arrays is None``: arrays stay). Raises TypeError naming ``where``."""
    # bool before int: bool is an int subclass, and np.bool_ is not a numbers.Integral.
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)  # any size: JSON and pickle both keep big ints exact
    if isinstance(value, (float, np.floating)):
        if isinstance(value, np.floating) and np.dtype(type(value)).itemsize > 8:
            # float(np.longdouble) would silently drop precision.
            raise TypeError(f"{where} is a {type(value).__name__}, which a Python float cannot hold "
                            "exactly; store it as an array (np.asarray(value))")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray):
        if isinstance(value, np.ma.MaskedArray):
            raise TypeError(f"{where} is a masked array, which a checkpoint cannot store; "
                            "save its .data and .mask as two arrays")
        arr = np.asarray(value)  # drops subclasses such as np.memmap / np.matrix; no copy
        if arr.dtype.hasobject:
            raise TypeError(f"{where} is an array of dtype {arr.dtype} (Python objects), which a "
                            f"checkpoint cannot store without pickle; allowed: {_ALLOWED_TYPES}")
        if arrays is None:
            return arr
        arrays.append(arr)
        return {"__array__": f"meta/{len(arrays) - 1}"}
    if isinstance(value, (dict, list, tuple)):
        # A container that contains itself would recurse forever.
        if id(value) in active:
            raise ValueError(f"{where} contains itself (a reference cycle); a checkpoint stores trees only")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                out = {}
                for k, v in value.items():
                    if not isinstance(k, str):
                        raise TypeError(f"{where} has key {k!r} of type {type(k).__name__}; "
                                        "dict keys in a checkpoint must be str")
                    k = str(k)  # np.str_ → str, also for the path in messages
                    out[k] = _plain(v, f"{where}[{k!r}]", arrays, active)
                if arrays is not None and len(out) == 1 and next(iter(out)) in _MARKERS:
                    out = {"__dict__": out}  # would read back as a marker otherwise
                return out
            return [_plain(v, f"{where}[{i}]", arrays, active) for i, v in enumerate(value)]
        finally:
            active.discard(id(value))
    raise TypeError(f"{where} has type {type(value).__name__}, which a checkpoint cannot store; "
                    f"allowed: {_ALLOWED_TYPES}")


def plain(obj: Any, name: str = "value") -> Any:
    """JSON-normal form of a spec or config (tuples → lists, NumPy scalars → Python), so saved and current compare.

    It is what a checkpoint stores and load() gives back: arrays are kept as they are, and
    what a checkpoint cannot store is a TypeError naming ``name``.
    """
    return _plain(obj, name, None, set())


def _equal(a: Any, b: Any) -> bool:
    """Equality of two plain trees: dicts ignore key order, NaN equals NaN, True is not 1,
    arrays must be bit-identical (dtype, shape, bytes)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_equal(a[k], b[k]) for k in a))
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    if value is _ABSENT:
        return "(absent)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_ABSENT = object()  # a key one side of a comparison lacks


def _differences(saved: Any, now: Any, where: str, out: List[str]) -> None:
    """Append ``"where: saved X, now Y"`` for every difference of two plain trees (dicts and
    the spec's list of layers are compared entry by entry)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        for k in list(now) + [k for k in saved if k not in now]:
            _differences(saved.get(k, _ABSENT), now.get(k, _ABSENT),
                         f"{where}[{k!r}]" if where else k, out)
        return
    if where == "spec" and isinstance(saved, list) and isinstance(now, list):
        for i in range(max(len(saved), len(now))):
            _differences(saved[i] if i < len(saved) else _ABSENT, now[i] if i < len(now) else _ABSENT,
                         f"spec[{i}]", out)
        return
    if saved is _ABSENT or now is _ABSENT or not _equal(saved, now):
        out.append(f"{where}: saved {_short(saved)}, now {_short(now)}")


def _list_differences(diffs: List[str], limit: int = 20) -> str:
    shown = "; ".join(diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


# --- paths ----------------------------------------------------------------------------

def _fspath(path: Any) -> str:
    """``path`` as a str; bytes paths and other types are refused."""
    try:
        p = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not isinstance(p, str):
        raise TypeError(f"path must be a str or os.PathLike of str, got {type(p).__name__}")
    return p


def _kind(path: str) -> str:
    """``"npz"``, ``"pickle"`` or ``"safetensors"`` from the extension; anything else is a ValueError."""
    ext = os.path.splitext(path)[1].lower()
    if ext in NPZ_EXTENSIONS:
        return "npz"
    if ext in PICKLE_EXTENSIONS:
        return "pickle"
    if ext in SAFETENSORS_EXTENSIONS:
        return "safetensors"
    known = ", ".join(NPZ_EXTENSIONS + PICKLE_EXTENSIONS + SAFETENSORS_EXTENSIONS)
    raise ValueError(f"{path}: unknown checkpoint extension {ext or '(none)'!r}; use one of {known} "
                     "(.npz is the safe default)")


def _name_max(directory: str) -> int:
    """The longest file name (in bytes) the file system at ``directory`` allows; 255 if unknown."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255
    return limit if isinstance(limit, int) and limit > 0 else 255


def _temp_stem(name: str, limit: int) -> str:
    """The part of a temporary file's name that stands for the target ``name``: the name
    itself, or, when ``.{name}.{pid}.{token}.tmp`` could exceed ``limit`` bytes, a prefix
    of it plus ``~`` and a hash of the whole name (so different targets still differ)."""
    overhead = len(f"...{'9' * _PID_WIDTH}{'f' * _TOKEN_HEX}.tmp")
    if len(os.fsencode(name)) + overhead <= limit:
        return name
    digest = hashlib.blake2b(os.fsencode(name), digest_size=8).hexdigest()
    budget = limit - overhead - 1 - len(digest)
    prefix = name
    while prefix and len(os.fsencode(prefix)) > budget:
        prefix = prefix[:-1]
    return f"{prefix}~{digest}"


def _file_target(path: str, what: str = "checkpoint") -> Tuple[str, str]:
    """The checks on a path to write that need no write: ``(directory, stem)``; raises
    ValueError (or FileNotFoundError for a missing directory) naming the path."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise FileNotFoundError(errno.ENOENT, f"cannot write {what} {path}: no such directory", directory)
    if not os.path.isdir(directory):
        raise ValueError(f"{path}: cannot write a {what} there: {directory} is not a directory")
    if os.path.isdir(path):
        raise ValueError(f"{path}: cannot write a {what} there: it is a directory")
    name = os.path.basename(os.path.abspath(path))
    limit = _name_max(directory)
    if len(os.fsencode(name)) > limit:
        raise ValueError(f"{path}: the file name is {len(os.fsencode(name))} bytes long; the file system "
                         f"at {directory} allows at most {limit}")
    return directory, _temp_stem(name, limit)


def check_write_target(path: PathLike, what: str = "file") -> str:
    """``path`` as a str, after the checks on a file to write that need no write (its directory
    exists and is one; the path is not a directory; the name fits the file system); raises
    TypeError, ValueError or FileNotFoundError naming the path. For writers other than :func:`save`."""
    path = _fspath(path)
    _file_target(path, what)
    return path


def _check_target(path: str) -> Tuple[str, str, str]:
    """:func:`_file_target` for a checkpoint: ``(kind, directory, stem)``, the extension checked first."""
    kind = _kind(path)
    return (kind,) + _file_target(path)


def check_path(path: PathLike) -> str:
    """Check that a checkpoint can be written at ``path`` before training, so a long run cannot fail at its first save.

    Known extension (ValueError listing them), existing directory (FileNotFoundError "no
    such directory"), not a directory itself, a name the file system allows, and a
    writable directory: a temporary file is created there and removed (an OS refusal is a
    ValueError with the path and the OS's reason). Returns the path as a str.
    """
    path = _fspath(path)
    _, directory, stem = _check_target(path)
    fd, tmp = _open_temp(path, directory, stem)
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError as exc:
        raise ValueError(f"{path}: cannot write a checkpoint in {directory}: could not remove the test "
                         f"file {tmp} ({exc.strerror or exc})") from None
    return path


# --- metadata -------------------------------------------------------------------------

def _check_names(metadata: Any, reserved_extra: Iterable[str] = ()) -> None:
    """``metadata`` is a dict with str keys none of which is reserved."""
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    bad_keys = [k for k in metadata if not isinstance(k, str)]
    if bad_keys:
        raise TypeError(f"metadata names must be str, got {bad_keys[:5]!r}")
    reserved = [k for k in metadata if k in RESERVED]
    if reserved:
        raise ValueError(f"metadata name(s) {reserved} are reserved: load() returns the spec and "
                         "params under those keys")
    extra = tuple(reserved_extra)
    taken = [k for k in metadata if k in extra]
    if taken:
        raise ValueError(f"metadata name(s) {taken} are reserved: the checkpoint stores its own "
                         f"{', '.join(repr(k) for k in extra)} under those names")


def _plain_metadata(metadata: Dict[str, Any], arrays: Optional[List[np.ndarray]],
                    reserved_extra: Iterable[str] = ()) -> Dict[str, Any]:
    """Check and convert every metadata entry (see :func:`_plain`)."""
    _check_names(metadata, reserved_extra)
    return {k: _plain(v, k, arrays, set()) for k, v in metadata.items()}


def check_metadata(metadata: Dict[str, Any], reserved_extra: Iterable[str] = ()) -> None:
    """Run save()'s own checks on ``metadata`` without writing anything, so bad metadata is refused before training.

    A dict with str keys; none of 'spec', 'params' or ``reserved_extra`` (pass
    :data:`TRAINING_NAMES` for a training checkpoint); values of storable types only.
    Raises ValueError (names) or TypeError (types).
    """
    _plain_metadata(metadata, [], reserved_extra)


def _from_json(node: Any, arrays: Dict[str, np.ndarray], where: str) -> Any:
    """Undo the npz encoding of :func:`_plain`: markers become the arrays they name."""
    if isinstance(node, dict):
        if len(node) == 1 and "__array__" in node:
            name = node["__array__"]
            if not isinstance(name, str) or name not in arrays:
                raise _NotOurs(f"metadata {where} refers to array member {name!r}, which the file lacks")
            return arrays[name]
        if len(node) == 1 and "__dict__" in node:
            inner = node["__dict__"]
            if not isinstance(inner, dict):
                raise _NotOurs(f"metadata {where} is a malformed wrapped dict")
            node = inner
        return {k: _from_json(v, arrays, f"{where}[{k!r}]") for k, v in node.items()}
    if isinstance(node, list):
        return [_from_json(v, arrays, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


# --- digests --------------------------------------------------------------------------

def _descr(dtype: np.dtype) -> str:
    """A dtype as text that tells byte order, fields and sizes apart."""
    return repr(np.lib.format.dtype_to_descr(dtype))


def _hash_array(h: Any, arr: np.ndarray) -> None:
    """Feed ``arr``'s dtype, shape and C-order bytes to ``h``, a few whole rows at a time, so
    that a memory-mapped array is read through once and never copied whole."""
    h.update(f"{_descr(arr.dtype)} {arr.shape}\n".encode("utf-8", "surrogatepass"))
    flat = arr.reshape(1) if arr.ndim == 0 else arr
    row_bytes = max(1, flat.itemsize * math.prod(flat.shape[1:]))
    rows = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, flat.shape[0], rows):
        h.update(np.ascontiguousarray(flat[start:start + rows]).tobytes())


def data_digest(*arrays: Any) -> Optional[str]:
    """Cheap, stable digest of data arrays for a training config, so a resume can tell it sees the same data.

    ``"blake2b:<hex>"`` over each array's dtype, shape and C-order bytes, read a few rows at
    a time (a memory-mapped array is never copied whole); None when every argument is None.
    """
    if all(a is None for a in arrays):
        return None
    h = hashlib.blake2b(digest_size=16)
    h.update(f"funcnn data {len(arrays)}\n".encode("ascii"))
    for i, a in enumerate(arrays):
        if a is None:
            h.update(b"None\n")
            continue
        arr = np.asarray(a)  # no copy for arrays and memory maps
        if arr.dtype.hasobject:
            raise TypeError(f"data_digest: argument {i} is an array of Python objects (dtype {arr.dtype}); "
                            "only numeric, bool and string arrays have a stable digest")
        _hash_array(h, arr)
    return "blake2b:" + h.hexdigest()


def _checksum(spec: Any, params: Any, metadata: Any) -> str:
    """``"sha256:<hex>"`` over the JSON-normal spec and metadata (arrays replaced by markers)
    and every params/metadata array's name, dtype, shape and bytes, in order."""
    arrays: List[np.ndarray] = []
    head = {"spec": _plain(spec, "spec", [], set()),
            "params": [[k, _descr(v.dtype), list(v.shape)] for k, v in params.items()],
            "metadata": {k: _plain(v, k, arrays, set()) for k, v in metadata.items()}}
    head["arrays"] = [[_descr(a.dtype), list(a.shape)] for a in arrays]
    h = hashlib.sha256(_CHECKSUM_TAG)
    h.update(json.dumps(head, allow_nan=True, ensure_ascii=True).encode("ascii"))
    for arr in [*params.values(), *arrays]:
        _hash_array(h, arr)
    return "sha256:" + h.hexdigest()


# --- atomic write ---------------------------------------------------------------------

def _temp_pattern(stem: str) -> "re.Pattern[str]":
    """Matches the temporary files of the target whose stem is ``stem``; group 1 is the pid."""
    return re.compile(re.escape(f".{stem}.") + rf"([0-9]{{1,{_PID_WIDTH}}})\.[0-9a-f]{{{_TOKEN_HEX}}}\.tmp")


def _pid_is_dead(pid: int) -> bool:
    """True only if no process ``pid`` runs (a process we may not signal is alive; a zombie, killed
    but not yet reaped by its parent, is dead: it will never finish its write)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # "pid (comm) state ...": the state follows the last ')'
            return fh.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _temp_location(path: str) -> Tuple[str, str]:
    """``(directory, stem)`` of the temporary files of ``path`` (see :func:`_temp_stem`)."""
    directory = os.path.dirname(os.path.abspath(path))
    return directory, _temp_stem(os.path.basename(os.path.abspath(path)), _name_max(directory))


def _remove_stale_temps(directory: str, stem: str) -> None:
    """Remove the temporary files of this target left by writers that no longer run (killed
    mid-save); best effort. POSIX only: elsewhere os.kill(pid, 0) does not just probe."""
    if os.name != "posix":
        return
    pattern = _temp_pattern(stem)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not _pid_is_dead(int(match.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            pass  # another writer removed it first, or it is not ours to remove


def _open_temp(path: str, directory: str, stem: str) -> Tuple[int, str]:
    """Create a new, empty temporary file ``.{stem}.{pid}.{token}.tmp`` next to the target:
    ``(fd, path)``; an OS refusal (read-only, permissions, ...) is a ValueError naming it.

    Like ``tempfile.mkstemp``, except that the mode is 0o666 filtered by the umask
    (mkstemp's 0o600 would end up on the checkpoint after the rename).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{stem}.{os.getpid()}.{secrets.token_hex(_TOKEN_HEX // 2)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise ValueError(f"{path}: cannot write a checkpoint in {directory}: "
                             f"{exc.strerror or exc}") from None
    raise FileExistsError(errno.EEXIST, "could not create a unique temporary file in", directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; not possible everywhere (e.g. Windows), so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, directory: str, stem: str, write: Callable[[io.BufferedWriter], None]) -> None:
    """Run ``write(file)`` on a temporary file, then rename it onto ``path``; on any error
    remove the temporary file and leave ``path`` as it was."""
    _remove_stale_temps(directory, stem)
    fd, tmp = _open_temp(path, directory, stem)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # Overwriting keeps the old file's permission bits (e.g. a private 0o600).
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def atomic_write(path: PathLike, write: Callable[[io.BufferedWriter], None]) -> str:
    """Write a file all or nothing: ``write(fh)`` fills a temporary file beside ``path``, which is
    fsynced and renamed onto ``path``; on any error ``path`` is left as it was and the temporary
    file removed (temporaries of killed writers are cleaned up on the next write). Used by
    :func:`save` and by ``funcnn.datasets.write_idx``.

    Args:
        path: the file to write.
        write: ``write(fh)`` writes the whole content to the binary file object ``fh``.

    Returns:
        ``path``.

    Examples:
        >>> import os, tempfile
        >>> path = atomic_write(os.path.join(tempfile.mkdtemp(), "notes.txt"), lambda fh: fh.write(b"hello"))
        >>> open(path, "rb").read()
        b'hello'
    """
    path = _fspath(path)
    directory, stem = _file_target(path, what="file")
    _atomic_write(path, directory, stem, write)
    return path


def _write_npz(fh: io.BufferedWriter, members: List[Tuple[str, np.ndarray]]) -> None:
    """Write ``members`` as an uncompressed .npz (what ``np.savez`` writes), without pickle."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in members:
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


# --- save -----------------------------------------------------------------------------

def _native_order(node: Any) -> Any:
    """``node`` with every array of non-native byte order (``>f8`` on a little-endian machine)
    converted to native order, as unpickling an array does anyway; the .pkl checksum is
    then over what load() gives back."""
    if isinstance(node, dict):
        return {k: _native_order(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_native_order(v) for v in node]
    if isinstance(node, np.ndarray) and not node.dtype.isnative:
        return node.astype(node.dtype.newbyteorder("="))
    return node


def save(path: PathLike, spec: List[Dict[str, Any]], params: Dict[str, np.ndarray],
         **metadata: Any) -> str:
    """Write ``spec``, ``params`` and ``metadata`` to ``path`` (.npz, .pkl/.pickle or .safetensors) atomically.

    Everything is checked before the disk is touched; the file is written beside ``path``,
    fsynced and renamed onto it, so an error leaves the previous file intact.

    Args:
        path: the file to write; its extension picks the format (``.npz``: arrays as arrays,
            the spec and metadata as JSON, safe to load; ``.safetensors``: the Hugging Face
            format, safe to load; ``.pkl``/``.pickle``: trusted files only).
        spec: the network's layer specs.
        params: the params dict (checked against ``spec``).
        **metadata: anything else to keep: dicts, lists, numbers, strings, arrays (a scaler,
            the classes, a history).

    Returns:
        ``path``.

    Examples:
        >>> import os, tempfile, numpy as np, funcnn as F
        >>> spec = [F.dense(2)]
        >>> params = F.init_params(spec, n_inputs=3, seed=0)
        >>> path = save(os.path.join(tempfile.mkdtemp(), "model.npz"), spec, params, classes=["no", "yes"])
        >>> model = load(path)
        >>> sorted(model), model["classes"], bool(np.array_equal(model["params"]["W_0"], params["W_0"]))
        (['classes', 'params', 'spec'], ['no', 'yes'], True)
    """
    path = _fspath(path)
    # Everything is checked before the disk is touched.
    kind, directory, stem = _check_target(path)
    check_spec(spec)
    check_params(spec, params)
    spec_arrays: List[np.ndarray] = []
    plain_spec = _plain(list(spec), "spec", spec_arrays, set())
    if spec_arrays:
        raise TypeError("spec must hold JSON values only, but it contains an array")
    if kind == "npz":
        arrays: List[np.ndarray] = []
        plain_meta = _plain_metadata(metadata, arrays)
        header = {"format": FORMAT, "version": VERSION, "spec": plain_spec, "metadata": plain_meta}
        # repr-based float output round-trips exactly; allow_nan keeps NaN/inf in histories.
        text = json.dumps(header, allow_nan=True, ensure_ascii=False)
        members = ([(HEADER, np.array(text))]
                   + [(f"params/{k}", np.asarray(v)) for k, v in params.items()]
                   + [(f"meta/{i}", a) for i, a in enumerate(arrays)])
        _atomic_write(path, directory, stem, lambda fh: _write_npz(fh, members))
    elif kind == "safetensors":
        data = _safetensors_bytes(plain_spec, params, metadata)
        _atomic_write(path, directory, stem, lambda fh: fh.write(data))
    else:
        plain_params = {k: np.asarray(v) for k, v in params.items()}
        plain_meta = _native_order(_plain_metadata(metadata, None))
        content = {"format": FORMAT, "version": VERSION, "spec": plain_spec, "params": plain_params,
                   "metadata": plain_meta, "checksum": _checksum(plain_spec, plain_params, plain_meta)}
        # Protocol 4: arrays pickle via _reconstruct, and load back writable.
        _atomic_write(path, directory, stem, lambda fh: pickle.dump(content, fh, protocol=4))
    return path


def _safetensors_module() -> Any:
    try:
        import safetensors.numpy
    except ImportError as exc:
        raise ImportError(f".safetensors files need the 'safetensors' package ({exc}); install it with: "
                          "pip install 'funcnn[export]'") from None
    return safetensors.numpy


def _safetensors_bytes(plain_spec: Any, params: Dict[str, np.ndarray], metadata: Dict[str, Any]) -> bytes:
    """The bytes of a .safetensors checkpoint (see the module docstring); every check comes first."""
    st = _safetensors_module()
    arrays: List[np.ndarray] = []
    plain_meta = _plain_metadata(metadata, arrays)
    plain_params = {k: np.ascontiguousarray(_native_order(np.asarray(v))) for k, v in params.items()}
    arrays = [np.ascontiguousarray(_native_order(a)) for a in arrays]
    meta_dtypes = {}
    tensors = {f"params/{k}": v for k, v in plain_params.items()}
    for i, a in enumerate(arrays):
        name = f"meta/{i}"
        if a.dtype in _SAFETENSORS_DTYPES:
            tensors[name] = a
        else:  # its bytes, reinterpreted on load
            meta_dtypes[name] = [np.lib.format.dtype_to_descr(a.dtype), list(a.shape)]
            tensors[name] = np.frombuffer(a.tobytes(), dtype=np.uint8).copy()
    header = {"format": FORMAT, "version": VERSION, "spec": plain_spec, "metadata": plain_meta,
              "params": list(plain_params), "meta_dtypes": meta_dtypes,
              "checksum": _checksum(plain_spec, plain_params, _from_json(plain_meta, dict(
                  (f"meta/{i}", a) for i, a in enumerate(arrays)), "metadata"))}
    return st.save(tensors, metadata={SAFETENSORS_KEY: json.dumps(header, allow_nan=True, ensure_ascii=False)})


def _read_safetensors(fh: io.BufferedReader) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """``(header, params, meta arrays)`` from an open .safetensors checkpoint; raises _NotOurs."""
    st = _safetensors_module()
    data = fh.read()
    if len(data) < 8:
        raise _NotOurs(f"it is {len(data)} bytes long, shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise _NotOurs(f"its header claims {size} bytes but the file holds {len(data) - 8} after the length: "
                       "truncated, or not a safetensors file")
    try:
        outer = json.loads(data[8:8 + size].decode("utf-8"))
    except ValueError as exc:
        raise _NotOurs(f"its safetensors header is not valid JSON ({exc})") from None
    meta = outer.get("__metadata__") if isinstance(outer, dict) else None
    if not isinstance(meta, dict) or SAFETENSORS_KEY not in meta:
        raise _NotOurs(f"its header's __metadata__ has no {SAFETENSORS_KEY!r} entry: a safetensors file, "
                       "but not one funcnn.save wrote (no spec)")
    try:
        header = json.loads(meta[SAFETENSORS_KEY])
    except (TypeError, ValueError) as exc:
        raise _NotOurs(f"its {SAFETENSORS_KEY!r} header entry is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _NotOurs(f"its {SAFETENSORS_KEY!r} header entry is not a JSON object")
    try:
        tensors = st.load(data)
    except Exception as exc:  # SafetensorError: offsets, sizes, dtypes
        raise _NotOurs(f"its tensors could not be read ({type(exc).__name__}: {exc})") from None
    keys, meta_dtypes = header.get("params"), header.get("meta_dtypes", {})
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not isinstance(meta_dtypes, dict):
        raise _NotOurs("its header's 'params' is not a list of keys")
    expected = {f"params/{k}" for k in keys}
    unexpected = sorted(k for k in tensors if k not in expected and not k.startswith("meta/"))
    missing = sorted(k for k in expected if k not in tensors)
    if unexpected or missing:
        raise _NotOurs(f"its tensors do not match its header (missing {missing[:5]}, unexpected {unexpected[:5]})")
    meta_arrays = {k: v for k, v in tensors.items() if k.startswith("meta/")}
    for name, info in meta_dtypes.items():
        try:
            descr, shape = info
            meta_arrays[name] = meta_arrays[name].view(np.lib.format.descr_to_dtype(descr)).reshape(shape)
        except Exception as exc:
            raise _NotOurs(f"tensor {name!r} does not match its recorded dtype/shape {info!r} ({exc})") from None
        if meta_arrays[name].dtype.hasobject:
            raise _NotOurs(f"tensor {name!r} claims an object dtype")
    return header, {k: tensors[f"params/{k}"] for k in keys}, meta_arrays


# --- load -----------------------------------------------------------------------------

def _read_npz(fh: io.BufferedReader, path: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """``(header, params, meta arrays)`` from an open .npz; raises _NotOurs."""
    try:
        zf = zipfile.ZipFile(fh, mode="r")
    except Exception as exc:  # a damaged central directory can surface as almost anything
        raise _NotOurs(f"not a zip/.npz file ({type(exc).__name__}: {exc})") from None
    with zf:
        infos = zf.infolist()
        names = [info.filename for info in infos]
        if HEADER + ".npy" not in names:
            shown = [n[:-4] if n.endswith(".npy") else n for n in names[:10]]
            raise _NotOurs(f"it has no {HEADER!r} member (members: {shown}"
                           f"{', ...' if len(names) > 10 else ''}); it is not a file funcnn.save wrote")
        if len(set(names)) != len(names):
            raise _NotOurs("it has duplicate members")
        # Check every member's name before reading any data.
        for name in names:
            if not name.endswith(".npy"):
                raise _NotOurs(f"member {name!r} is not a NumPy .npy array")
            key = name[:-4]
            if not (key == HEADER or key.startswith("params/") or key.startswith("meta/")):
                raise _NotOurs(f"unexpected member {key!r}")
        arrays: Dict[str, np.ndarray] = {}
        for info in infos:
            key = info.filename[:-4]
            # bounded: the declared sizes are checked before a byte is inflated or allocated
            _bounded.check_member(path, info)
            try:
                with zf.open(info) as member:
                    shape, _, dtype, header_bytes = _bounded.read_header(member)
            except Exception as exc:
                raise _NotOurs(f"member {key!r} is not a valid .npy array ({type(exc).__name__}: {exc})") from None
            _bounded.check_declared(f"{path}: member {info.filename!r}", shape, dtype, info.file_size - header_bytes)
            try:
                with zf.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    # numpy refused before unpickling anything; we never retry with pickle.
                    raise _NotOurs(f"member {key!r} is an object array (pickled Python objects); "
                                   "funcnn checkpoints never contain any and load refuses to "
                                   "unpickle them") from None
                raise _NotOurs(f"member {key!r} is not a valid .npy array ({exc})") from None
            except Exception as exc:
                # Truncation and corruption surface as BadZipFile (CRC), EOFError, OSError,
                # zlib/lzma errors (a damaged compression method), ...
                raise _NotOurs(f"member {key!r} could not be read ({type(exc).__name__}: {exc})") from None
    text = arrays.pop(HEADER)
    if text.shape != () or text.dtype.kind != "U":
        raise _NotOurs(f"member {HEADER!r} is not a JSON string (dtype {text.dtype}, shape {text.shape})")
    try:
        header = json.loads(str(text[()]))
    except ValueError as exc:
        raise _NotOurs(f"member {HEADER!r} is not valid JSON ({exc})") from None
    params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
    meta_arrays = {k: v for k, v in arrays.items() if k.startswith("meta/")}
    return header, params, meta_arrays


# The only globals a pickle we wrote refers to: NumPy's array and dtype reconstruction.
_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})


def _dtype_from_pickle(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``np.dtype(obj, align, copy)`` as a pickled dtype calls it, with the arguments a
    pickled dtype has (copy=True: the BUILD that follows must never touch NumPy's own dtypes)."""
    if not isinstance(obj, str) or not isinstance(align, bool) or copy is not True:
        raise pickle.UnpicklingError(f"a damaged dtype (arguments {obj!r}, {align!r}, {copy!r})")
    return np.dtype(obj, align, copy)


def _restricted_find_class(module: str, name: str) -> Any:
    """Refuse any global but the NumPy ones arrays need (so foreign pickles run no code)."""
    if (module, name) not in _PICKLE_GLOBALS:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a funcnn checkpoint never does")
    if (module, name) == ("numpy", "dtype"):
        return _dtype_from_pickle
    return getattr(__import__(module, fromlist=[name]), name)


def _rebuild_dtype(dtype: np.dtype) -> np.dtype:
    """A new dtype built from ``dtype``'s description alone (type string, fields, subarray);
    its pickled state equals ``dtype``'s exactly when that state is consistent."""
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_rebuild_dtype(base), shape))
    if dtype.names is not None:
        fields = [dtype.fields[name] for name in dtype.names]
        return np.dtype({"names": list(dtype.names), "formats": [_rebuild_dtype(f[0]) for f in fields],
                         "offsets": [f[1] for f in fields], "titles": [f[2] if len(f) > 2 else None for f in fields],
                         "itemsize": dtype.itemsize}, align=dtype.isalignedstruct)
    return np.dtype(dtype.str)


def _load_build(unpickler: Any) -> None:
    """The BUILD opcode for our unpickler: only arrays and dtypes get a state, and a dtype
    whose state differs from that of the dtype its own description builds (damaged flags,
    sizes, ...) is refused before any array uses it, so damaged bytes never give NumPy an
    inconsistent dtype (which can make it treat numbers as object pointers)."""
    stack = unpickler.stack
    state = stack.pop()
    inst = stack[-1]
    if type(inst) is np.ndarray:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)
                and not state[2].hasobject and isinstance(state[4], bytes)):
            raise pickle.UnpicklingError("a damaged array state")
        inst.__setstate__(state)
    elif isinstance(inst, np.dtype):
        inst.__setstate__(state)
        try:
            fresh = _rebuild_dtype(inst)
        except Exception:
            fresh = None
        if fresh is None or fresh.__reduce__() != inst.__reduce__():
            raise pickle.UnpicklingError(f"a damaged dtype state {state!r}")
    else:
        raise pickle.UnpicklingError(f"it sets the state of a {type(inst).__name__}, which a funcnn "
                                     "checkpoint never does")


_DISPATCH = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}  # type: ignore[attr-defined]


def _read_pickle(fh: io.BufferedReader) -> Dict[str, Any]:
    """The dict a .pkl checkpoint holds; raises _NotOurs."""
    # The pure-Python unpickler looks find_class up on the instance, so it can be restricted
    # without defining a subclass (the C one's attribute is read-only). It is slower per
    # opcode, but an array's data is a single opcode.
    unpickler = pickle._Unpickler(fh)  # type: ignore[attr-defined]
    unpickler.find_class = _restricted_find_class
    unpickler.dispatch = _DISPATCH  # load() looks the opcode table up on the instance
    try:
        content = unpickler.load()
    except Exception as exc:  # a foreign or damaged pickle can fail in many ways
        raise _NotOurs(f"not a readable funcnn pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise _NotOurs(f"it unpickles to a {type(content).__name__} without format {FORMAT!r}")
    unknown = [k for k in content if k not in _PICKLE_KEYS + ("checksum",)]
    if unknown:
        raise _NotOurs(f"it has unexpected entries {unknown!r}")
    return content


def _check_tree(node: Any, where: str, active: Optional[set] = None) -> None:
    """A pickled metadata tree may hold only what save() would have written."""
    active = set() if active is None else active
    if isinstance(node, (dict, list)):
        if id(node) in active:
            raise _NotOurs(f"{where} contains itself")
        active.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if isinstance(node, dict) and not isinstance(k, str):
                raise _NotOurs(f"{where} has a non-str key {k!r}")
            _check_tree(v, f"{where}[{k!r}]", active)
        active.discard(id(node))
    elif isinstance(node, np.ndarray):
        if node.dtype.hasobject:
            raise _NotOurs(f"{where} is an object array")
    elif not (node is None or type(node) in (bool, int, float, str)):
        raise _NotOurs(f"{where} has type {type(node).__name__}")


def _verify_checksum(path: str, content: Dict[str, Any], required: bool = False) -> None:
    """Recompute a .pkl (or .safetensors) file's checksum; a .pkl file without one (written before
    checksums) passes."""
    if "checksum" not in content:
        if required:
            raise ValueError(f"{path}: not a funcnn checkpoint: its header has no checksum")
        return
    stored = content["checksum"]
    try:
        actual = _checksum(content["spec"], content["params"], content["metadata"])
    except Exception as exc:  # a damaged file may not even have the shape a checksum needs
        actual = f"(cannot be computed: {type(exc).__name__}: {exc})"
    if stored != actual:
        raise ValueError(f"{path}: checksum mismatch (stored {_short(stored, 80)}, computed "
                         f"{_short(actual, 80)}): the file is corrupt")


def load(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save`: ``{"spec": ..., "params": ..., **metadata}``.

    Args:
        path: a file written by :func:`save` (or by ``train(checkpoint=...)``).

    Returns:
        A dict with ``"spec"``, ``"params"`` (arrays bit-identical to what was saved) and the
        metadata (tuples come back as lists).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an empty, truncated, foreign or newer-version file, naming it.
    """
    path = _fspath(path)
    kind = _kind(path)
    _remove_stale_temps(*_temp_location(path))  # what a save killed mid-write left beside the file
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", path)
    try:
        # Read fully through a file we close here: nothing is memory-mapped or left open.
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise _NotOurs("the file is empty")
            if kind == "npz":
                header, params, meta_arrays = _read_npz(fh, path)
            elif kind == "safetensors":
                header, params, meta_arrays = _read_safetensors(fh)
            else:
                header = _read_pickle(fh)
                params, meta_arrays = header.get("params"), {}
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise _NotOurs(f"its header does not say format {FORMAT!r}")
        version = header.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _NotOurs(f"bad format version {version!r}")
        if version <= VERSION:  # a newer file's layout is unknown: decode nothing, report below
            if kind == "pickle":
                missing = [k for k in _PICKLE_KEYS if k not in header]
                if missing:
                    raise _NotOurs(f"it lacks the entries {missing}")
                _verify_checksum(path, header)
            spec, metadata = header.get("spec"), header.get("metadata")
            if not isinstance(metadata, dict):
                raise _NotOurs("its metadata is not a dict")
            if kind != "pickle":
                metadata = {k: _from_json(v, meta_arrays, k) for k, v in metadata.items()}
            if kind == "safetensors":
                _verify_checksum(path, {**header, "params": params, "metadata": metadata}, required=True)
            if kind == "pickle":
                _check_tree(metadata, "metadata")
    except _NotOurs as exc:
        raise ValueError(f"{path}: not a funcnn checkpoint: {exc}") from None
    if version > VERSION:
        raise ValueError(f"{path}: checkpoint format version {version} is newer than this funcnn "
                         f"reads (version {VERSION}); upgrade funcnn to load it")
    try:
        check_spec(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint's spec is invalid: {exc}") from None
    if isinstance(params, dict) and any(not isinstance(v, np.ndarray) or v.dtype.hasobject
                                        for v in params.values()):
        raise ValueError(f"{path}: not a funcnn checkpoint: its params are not all numeric arrays")
    try:
        n_in, _, dtype = check_params(spec, params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint's params do not fit its spec: {exc}") from None
    if n_in is None and spec[0]["type"] == "reshape" and -1 not in spec[0]["shape"]:
        n_in = math.prod(spec[0]["shape"])  # a network on flat rows that starts with a reshape (a CNN)
    if n_in is not None:  # one sample must fit the memory budget (a padding of 4000 is refused here)
        try:
            _footprint.check_budget(spec, as_shape(n_in), dtype)
        except ValueError as exc:
            raise ValueError(f"{path}: the checkpoint's network does not fit: {exc}") from None
    reserved = [k for k in metadata if k in RESERVED]
    if reserved:
        raise ValueError(f"{path}: not a funcnn checkpoint: metadata uses reserved name(s) {reserved}")
    return {"spec": spec, "params": params, **metadata}


# --- training state -------------------------------------------------------------------

class _Malformed(Exception):
    """Internal: a training state lacks an entry or has one of the wrong type."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_like_params(value: Any, params: Dict[str, np.ndarray], where: str) -> None:
    """``value`` is a dict of arrays keyed, shaped and typed like ``params``."""
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is a {type(value).__name__}, expected a dict of arrays like the params")
    if set(value) != set(params):
        raise _Malformed(f"{where} has keys {sorted(value)}, expected the params' keys {sorted(params)}")
    for k, p in params.items():
        v = value[k]
        if not isinstance(v, np.ndarray) or v.shape != p.shape or v.dtype != p.dtype:
            got = (f"an array of shape {v.shape} and dtype {v.dtype}" if isinstance(v, np.ndarray)
                   else f"a {type(v).__name__}")
            raise _Malformed(f"{where}[{k!r}] is {got}, expected shape {p.shape} and dtype {p.dtype}")


def _check_training_state(ts: Any, params: Dict[str, np.ndarray]) -> None:
    """Raise _Malformed naming the first entry of a plain training state that is missing or
    ill-typed: config (dict with a str 'loss'), opt_state, rng_state, history and run."""
    if not isinstance(ts, dict):
        raise _Malformed(f"'training_state' is a {type(ts).__name__}, expected a dict")
    for name in ("config",) + TRAINING_STATE_ENTRIES:
        if name not in ts:
            raise _Malformed(f"'training_state' has no {name!r} entry")
        if not isinstance(ts[name], dict):
            raise _Malformed(f"training_state[{name!r}] is a {type(ts[name]).__name__}, expected a dict")
    if not isinstance(ts["config"].get("loss"), str):
        raise _Malformed("training_state['config'] has no 'loss' (the loss function's name)")
    opt = ts["opt_state"]
    if not _is_int(opt.get("step")) or opt["step"] < 0:
        raise _Malformed(f"training_state['opt_state']['step'] is {_short(opt.get('step', _ABSENT))}, "
                         "expected an int >= 0")
    trainable = {k: v for k, v in params.items() if is_trainable_key(k)}  # slots skip running state
    for slot, value in opt.items():
        if slot == "micro":  # the optimizer state's scalars (funcnn.optimizers.scalar_names)
            if not _is_int(value) or value < 0:
                raise _Malformed(f"training_state['opt_state']['micro'] is {_short(value)}, expected an int >= 0")
        elif slot == "plateau":
            try:
                check_plateau_state(value, "training_state['opt_state']['plateau']")
            except (TypeError, ValueError) as exc:
                raise _Malformed(str(exc)) from None
        elif slot != "step":
            _check_like_params(value, trainable, f"training_state['opt_state'][{slot!r}]")
    rng = ts["rng_state"]
    name = rng.get("bit_generator")
    bit_generator = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        raise _Malformed("training_state['rng_state']['bit_generator'] is "
                         f"{_short(rng.get('bit_generator', _ABSENT))}, expected the name of a NumPy bit "
                         "generator such as 'PCG64'")
    try:
        bit_generator().state = rng
    except Exception as exc:
        raise _Malformed(f"training_state['rng_state'] is not a valid {name} state ({exc})") from None
    for key, values in ts["history"].items():
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise _Malformed(f"training_state['history'][{key!r}] is not a list of numbers")
    run = ts["run"]
    if not _is_int(run.get("epoch")) or run["epoch"] < 0:
        raise _Malformed(f"training_state['run']['epoch'] is {_short(run.get('epoch', _ABSENT))}, "
                         "expected an int >= 0")
    checks = {"wait": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
              "best_epoch": (lambda v: v is None or (_is_int(v) and v >= 0), "None or an int >= 0"),
              "stopped": (lambda v: isinstance(v, bool), "True or False"),
              "best_value": (lambda v: v is None or _is_number(v), "None or a number")}
    for key, (ok, expected) in checks.items():
        if key in run and not ok(run[key]):
            raise _Malformed(f"training_state['run'][{key!r}] is {_short(run[key])}, expected {expected}")
    if run.get("best_params") is not None:
        _check_like_params(run["best_params"], params, "training_state['run']['best_params']")


def save_training_state(path: PathLike, spec: List[Dict[str, Any]], params: Dict[str, np.ndarray], *,
                        config: Dict[str, Any], training_state: Dict[str, Any],
                        metadata: Optional[Dict[str, Any]] = None) -> str:
    """Write a resumable training checkpoint that is also a normal model file (load() and predict work on it).

    Metadata: ``metadata``, ``loss=config["loss"]`` and ``training_state={"config": config,
    **training_state}``; ``training_state`` must hold :data:`TRAINING_STATE_ENTRIES`
    (opt_state, rng_state, history, run) and is checked as load_training_state() will
    check it, so every file written can be resumed. Returns the path as a str.
    """
    metadata = {} if metadata is None else metadata
    _check_names(metadata, TRAINING_NAMES)
    check_spec(spec)
    check_params(spec, params)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if not isinstance(training_state, dict):
        raise TypeError(f"training_state must be a dict, got {type(training_state).__name__}")
    if "config" in training_state:
        raise ValueError("training_state must not hold 'config': it is stored from the config argument")
    state = plain({"config": config, **training_state}, "training_state")
    try:
        _check_training_state(state, params)
    except _Malformed as exc:
        raise ValueError(f"cannot save a training state that could not be resumed: {exc}") from None
    return save(path, spec, params, **metadata, loss=config["loss"], training_state=state)


def load_training_state(path: PathLike, spec: List[Dict[str, Any]],
                        config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Read back this run's training state, refusing any file that is not a checkpoint of this very run.

    None if ``path`` does not exist; else ``{"params": ..., "training_state": {...}}`` (what
    save_training_state() got, without the config). A ValueError naming the file refuses a
    plain model file, a malformed training state (what is missing or ill-typed), and a
    file whose spec or config differs from ``spec``/``config`` (every difference, as
    ``key: saved X, now Y``, compared in their JSON-normal forms).
    """
    path = _fspath(path)
    check_spec(spec)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    now_spec = plain(list(spec), "spec")
    now_config = plain(config, "config")
    if not os.path.exists(path):
        return None
    saved = load(path)
    if "training_state" not in saved:
        raise ValueError(f"{path}: holds a model without training state; refusing to overwrite it "
                         "(choose another checkpoint path)")
    ts = saved["training_state"]
    try:
        _check_training_state(ts, saved["params"])
        if saved.get("loss") != ts["config"]["loss"]:
            raise _Malformed(f"its 'loss' metadata ({_short(saved.get('loss', _ABSENT))}) differs from "
                             f"training_state['config']['loss'] ({ts['config']['loss']!r})")
    except _Malformed as exc:
        raise ValueError(f"{path}: malformed training state: {exc}; refusing to resume or overwrite it "
                         "(delete it or choose another path)") from None
    spec_diffs: List[str] = []
    config_diffs: List[str] = []
    _differences(saved["spec"], now_spec, "spec", spec_diffs)
    _differences(ts["config"], now_config, "", config_diffs)
    if spec_diffs or config_diffs:
        parts = ([f"a different spec ({_list_differences(spec_diffs)})"] if spec_diffs else []) + \
                ([f"a different run ({_list_differences(config_diffs)})"] if config_diffs else [])
        raise ValueError(f"{path}: holds a checkpoint of {' and of '.join(parts)}; refusing to resume "
                         "or overwrite it (delete it or choose another path)")
    return {"params": saved["params"], "training_state": {k: v for k, v in ts.items() if k != "config"}}
