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
    and refuses a file carrying object arrays.

``.pkl`` / ``.pickle`` (for files you trust only)
    A pickled plain dict ``{"format", "version", "spec", "params", "metadata"}`` of builtins
    and NumPy arrays. ``load`` resolves only the NumPy names that arrays need, which turns
    most foreign pickles away before they run, but pickle is not a safe format: unpickling
    data from an untrusted source can run arbitrary code. Prefer ``.npz``.

Metadata may be any nesting of dicts (str keys), lists and tuples of ``str``, ``int`` (of any
size), ``float`` (NaN and inf included), ``bool``, ``None``, ``np.ndarray`` (not of object
dtype) and NumPy scalars. Both formats return the same thing: tuples come back as lists,
NumPy integer/float/bool scalars as ``int``/``float``/``bool``, and two references to one
array as two equal arrays. Floats and ints round-trip exactly; arrays come back bit-identical
(dtype, shape, bytes).

Writes are atomic: everything is validated first, the file is written to a temporary file in
the same directory, flushed to disk, and then renamed over ``path``. An error at any point
leaves a previous file at ``path`` byte-identical and removes the temporary file.
"""
from __future__ import annotations

import errno
import io
import json
import numbers
import os
import pickle
import secrets
import stat
import struct
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .layers import check_spec
from .network import check_params

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "funcnn"
VERSION = 1  # the newest checkpoint format this module writes and reads
NPZ_EXTENSIONS = (".npz",)
PICKLE_EXTENSIONS = (".pkl", ".pickle")
HEADER = "__funcnn__"  # name of the JSON member in an .npz checkpoint
RESERVED = ("spec", "params")  # keys load() puts next to the metadata
_MARKERS = ("__array__", "__dict__")  # single-key JSON dicts with these keys are ours
_ALLOWED_TYPES = ("dict (str keys), list, tuple, str, int, float, bool, None, "
                  "np.ndarray (not of object dtype) or a NumPy scalar")


class _NotOurs(Exception):
    """Internal: the file is not a funcnn checkpoint; the message says why."""


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
    """``"npz"`` or ``"pickle"`` from the extension; anything else is a ValueError."""
    ext = os.path.splitext(path)[1].lower()
    if ext in NPZ_EXTENSIONS:
        return "npz"
    if ext in PICKLE_EXTENSIONS:
        return "pickle"
    known = ", ".join(NPZ_EXTENSIONS + PICKLE_EXTENSIONS)
    raise ValueError(f"{path}: unknown checkpoint extension {ext or '(none)'!r}; use one of {known} "
                     "(.npz is the safe default)")


# --- metadata → plain data ------------------------------------------------------------

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


def _plain_metadata(metadata: Dict[str, Any], arrays: Optional[List[np.ndarray]]) -> Dict[str, Any]:
    """Check and convert every metadata entry (see :func:`_plain`)."""
    reserved = [k for k in metadata if k in RESERVED]
    if reserved:
        raise ValueError(f"metadata name(s) {reserved} are reserved: load() returns the spec and "
                         "params under those keys")
    return {k: _plain(v, k, arrays, set()) for k, v in metadata.items()}


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


# --- atomic write ---------------------------------------------------------------------

def _open_temp(directory: str, name: str) -> Tuple[int, str]:
    """Create a new, empty temporary file next to the target: ``(fd, path)``.

    Like ``tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")``, except
    that the mode is 0o666 filtered by the umask (mkstemp's 0o600 would end up on the
    checkpoint after the rename).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
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


def _atomic_write(path: str, write: Callable[[io.BufferedWriter], None]) -> None:
    """Run ``write(file)`` on a temporary file, then rename it onto ``path``; on any error
    remove the temporary file and leave ``path`` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "cannot save checkpoint: no such directory", directory)
    fd, tmp = _open_temp(directory, os.path.basename(path))
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


def _write_npz(fh: io.BufferedWriter, members: List[Tuple[str, np.ndarray]]) -> None:
    """Write ``members`` as an uncompressed .npz (what ``np.savez`` writes), without pickle."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in members:
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


# --- save -----------------------------------------------------------------------------

def save(path: PathLike, spec: List[Dict[str, Any]], params: Dict[str, np.ndarray],
         **metadata: Any) -> str:
    """Write ``spec``, ``params`` and ``metadata`` to ``path`` (.npz, or .pkl/.pickle) atomically."""
    path = _fspath(path)
    kind = _kind(path)
    # Everything is checked before the disk is touched.
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
        _atomic_write(path, lambda fh: _write_npz(fh, members))
    else:
        content = {"format": FORMAT, "version": VERSION, "spec": plain_spec,
                   "params": {k: np.asarray(v) for k, v in params.items()},
                   "metadata": _plain_metadata(metadata, None)}
        # Protocol 4: arrays pickle via _reconstruct, and load back writable.
        _atomic_write(path, lambda fh: pickle.dump(content, fh, protocol=4))
    return path


# --- load -----------------------------------------------------------------------------

def _read_npz(fh: io.BufferedReader) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """``(header, params, meta arrays)`` from an open .npz; raises _NotOurs."""
    try:
        zf = zipfile.ZipFile(fh, mode="r")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error, NotImplementedError) as exc:
        # A damaged central directory can surface as any of these.
        raise _NotOurs(f"not a zip/.npz file ({exc})") from None
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
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                # Truncation and corruption surface as any of these from zipfile/zlib.
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


def _restricted_find_class(module: str, name: str) -> Any:
    """Refuse any global but the NumPy ones arrays need (so foreign pickles run no code)."""
    if (module, name) not in _PICKLE_GLOBALS:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a funcnn checkpoint never does")
    return getattr(__import__(module, fromlist=[name]), name)


def _read_pickle(fh: io.BufferedReader) -> Dict[str, Any]:
    """The dict a .pkl checkpoint holds; raises _NotOurs."""
    # The pure-Python unpickler looks find_class up on the instance, so it can be restricted
    # without defining a subclass (the C one's attribute is read-only). It is slower per
    # opcode, but an array's data is a single opcode.
    unpickler = pickle._Unpickler(fh)  # type: ignore[attr-defined]
    unpickler.find_class = _restricted_find_class
    try:
        content = unpickler.load()
    except Exception as exc:  # a foreign or damaged pickle can fail in many ways
        raise _NotOurs(f"not a readable funcnn pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise _NotOurs(f"it unpickles to a {type(content).__name__} without format {FORMAT!r}")
    return content


def _check_tree(node: Any, where: str) -> None:
    """A pickled metadata tree may hold only what save() would have written."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise _NotOurs(f"{where} has a non-str key {k!r}")
            _check_tree(v, f"{where}[{k!r}]")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_tree(v, f"{where}[{i}]")
    elif isinstance(node, np.ndarray):
        if node.dtype.hasobject:
            raise _NotOurs(f"{where} is an object array")
    elif not (node is None or type(node) in (bool, int, float, str)):
        raise _NotOurs(f"{where} has type {type(node).__name__}")


def load(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save`: ``{"spec": ..., "params": ..., **metadata}``."""
    path = _fspath(path)
    kind = _kind(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", path)
    try:
        # Read fully through a file we close here: nothing is memory-mapped or left open.
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise _NotOurs("the file is empty")
            if kind == "npz":
                header, params, meta_arrays = _read_npz(fh)
            else:
                header = _read_pickle(fh)
                params, meta_arrays = header.get("params"), {}
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise _NotOurs(f"its header does not say format {FORMAT!r}")
        version = header.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _NotOurs(f"bad format version {version!r}")
        if version <= VERSION:  # a newer file's layout is unknown: decode nothing, report below
            spec, metadata = header.get("spec"), header.get("metadata")
            if not isinstance(metadata, dict):
                raise _NotOurs("its metadata is not a dict")
            if kind == "npz":
                metadata = {k: _from_json(v, meta_arrays, k) for k, v in metadata.items()}
            else:
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
        check_params(spec, params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint's params do not fit its spec: {exc}") from None
    reserved = [k for k in metadata if k in RESERVED]
    if reserved:
        raise ValueError(f"{path}: not a funcnn checkpoint: metadata uses reserved name(s) {reserved}")
    return {"spec": spec, "params": params, **metadata}


# --- TEMPORARY minimal training-state I/O (replaced by the ckpt branch) -------------------

def check_path(path):
    path = _fspath(path)
    _kind(path)
    return path


def check_metadata(metadata, reserved_extra=()):
    bad = [k for k in metadata if k in RESERVED or k in reserved_extra]
    if bad:
        raise ValueError(f"metadata name(s) {bad} are reserved")
    _plain_metadata(metadata, [])


def data_digest(*arrays):
    import hashlib
    if all(a is None for a in arrays):
        return None
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_training_state(path, spec, params, *, config, training_state, metadata):
    save(path, spec, params, **metadata, loss=config["loss"],
         training_state={"config": config, **training_state})


def load_training_state(path, spec, config):
    if not os.path.exists(path):
        return None
    saved = load(path)
    ts = saved.get("training_state")
    if not isinstance(ts, dict):
        raise ValueError(f"{path}: holds a model without training state; refusing to overwrite it "
                         "(choose another checkpoint path)")
    if saved["spec"] != json.loads(json.dumps(spec)):
        raise ValueError(f"{path}: holds a checkpoint of a different spec ({saved['spec']}); refusing to "
                         "resume or overwrite it (delete it or choose another path)")
    wanted = json.loads(json.dumps(config))
    diffs = [k for k in wanted if ts["config"].get(k) != wanted[k]]
    if diffs:
        details = "; ".join(f"{k}: saved {ts['config'].get(k)!r}, now {wanted[k]!r}" for k in diffs)
        raise ValueError(f"{path}: holds a checkpoint of a different run ({details}); refusing to resume "
                         "or overwrite it (delete it or choose another path)")
    return {"params": saved["params"], "training_state": ts}
