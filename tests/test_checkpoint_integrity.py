"""Checkpoints: checksums and bit flips, NumPy scalars, temporary files, check_path/check_metadata."""
import errno
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import funcnn as F
from funcnn import checkpoint
from funcnn.checkpoint import check_metadata, check_path, load, plain, save

SMALL = [F.dense(3), F.tanh(), F.dense(2)]


def small_params(dtype=np.float32):
    params = F.init_params(SMALL, 2, seed=0, dtype=dtype)
    return {k: v + np.asarray(0.125, dtype) for k, v in params.items()}  # biases carry real bits too


def same_tree(a, b):
    """Same structure, key order and types; arrays bit-identical (dtype, shape, bytes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


# --- checksums: every single-bit flip is detected or harmless ---------------------------

def flip_outcomes(path, positions):
    """Flip each (byte, bit) of the file at ``path`` in turn and load it: the outcomes."""
    good = path.read_bytes()
    reference = load(path)
    outcomes = {"detected": 0, "identical": 0}
    for pos, bit in positions:
        damaged = bytearray(good)
        damaged[pos] ^= 1 << bit
        path.write_bytes(bytes(damaged))
        try:
            out = load(path)
        except ValueError as exc:
            assert str(path) in str(exc), exc
            outcomes["detected"] += 1
            continue
        # Anything but a ValueError (KeyError, RuntimeError, ...) fails the test right here.
        assert same_tree(out, reference), f"flipping bit {bit} of byte {pos} silently changed what load() returns"
        outcomes["identical"] += 1
    path.write_bytes(good)
    return outcomes


def array_regions(data, arrays):
    """Byte ranges of each array's data inside the file's bytes."""
    regions = []
    for arr in arrays:
        raw = arr.tobytes()
        start = data.index(raw)
        regions.append(range(start, start + len(raw)))
    return regions


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_every_bit_flip_in_the_array_data_is_detected(tmp_path, fmt):
    params, m = small_params(), np.arange(3.0)
    path = tmp_path / f"c.{fmt}"
    save(path, SMALL, params, epoch=1, m=m)
    regions = array_regions(path.read_bytes(), [*params.values(), m])
    positions = [(pos, bit) for region in regions for pos in region for bit in range(8)]
    assert len(positions) == 8 * (4 * 17 + 8 * 3)
    outcomes = flip_outcomes(path, positions)
    # Every flip of a weight's bits changes a weight: all of them must be refused.
    assert outcomes == {"detected": len(positions), "identical": 0}


def test_bit_flip_in_a_pkl_weight_names_the_checksum(tmp_path):
    path = tmp_path / "c.pkl"
    params = small_params()
    save(path, SMALL, params)
    data = bytearray(path.read_bytes())
    data[data.index(params["W_2"].tobytes()) + 5] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"c\.pkl: checksum mismatch \(stored 'sha256:[0-9a-f]{64}', computed "
                                         r"'sha256:[0-9a-f]{64}'\): the file is corrupt"):
        load(path)


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_bit_flips_anywhere_in_the_file_are_detected_or_harmless(tmp_path, fmt):
    # Structure, header, spec, metadata, checksum: one bit per byte, cycling through the bits.
    path = tmp_path / f"c.{fmt}"
    save(path, SMALL, small_params(), epoch=1, m=np.arange(3.0), history={"loss": [0.5, 0.25]})
    size = len(path.read_bytes())
    outcomes = flip_outcomes(path, [(pos, pos % 8) for pos in range(size)])
    assert outcomes["detected"] + outcomes["identical"] == size
    assert outcomes["detected"] > 0.8 * size


def test_damaged_dtype_state_is_refused_before_numpy_uses_it(tmp_path):
    # A dtype state ends with (..., elsize -1, alignment -1, flags 0); flags 1 (NPY_ITEM_REFCOUNT)
    # would make NumPy treat the float bits as object pointers.
    path = tmp_path / "c.pkl"
    save(path, SMALL, small_params())
    data = path.read_bytes()
    tail = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    assert data.count(tail) == 1  # one float32 dtype, shared by every array
    path.write_bytes(data.replace(tail, tail[:-2] + b"\x01t"))
    with pytest.raises(ValueError, match="not a funcnn checkpoint.*damaged dtype state"):
        load(path)


def test_pkl_without_checksum_from_an_older_funcnn_still_loads(tmp_path):
    path = tmp_path / "old.pkl"
    params = small_params()
    save(path, SMALL, params, epoch=4)
    content = pickle.loads(path.read_bytes())
    assert content["checksum"].startswith("sha256:")
    del content["checksum"]
    path.write_bytes(pickle.dumps(content, protocol=4))
    out = load(path)
    assert out["epoch"] == 4 and same_tree(out["params"], params)


def test_pkl_with_an_unexpected_entry_is_refused(tmp_path):
    path = tmp_path / "c.pkl"
    save(path, SMALL, small_params())
    content = pickle.loads(path.read_bytes())
    content["checksuM"] = content.pop("checksum")  # what a damaged key would look like
    path.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(ValueError, match=r"unexpected entries \['checksuM'\]"):
        load(path)


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_unusual_array_dtypes_round_trip(tmp_path, fmt):
    meta = {"struct": np.zeros(2, dtype=[("a", "<f4"), ("b", ">i8", (2,))]),
            "datetime": np.array(["2020-01-01"], dtype="M8[ns]"), "bytes": np.array([b"ab"]),
            "void": np.zeros(2, "V3"), "half": np.ones(2, np.float16), "complex": np.array([1 + 2j]),
            "big_endian": np.arange(3, dtype=">f8")}
    save(tmp_path / f"c.{fmt}", SMALL, small_params(), **meta)
    out = load(tmp_path / f"c.{fmt}")
    for k, v in meta.items():
        if k == "big_endian" and fmt == "pkl":  # unpickling gives native byte order, same values
            assert out[k].dtype == np.float64 and np.array_equal(out[k], v)
        else:
            assert same_tree(out[k], v), k


# --- NumPy scalars and plain() ------------------------------------------------------------

def test_plain_gives_what_load_returns():
    value = {"units": np.int64(8), "lr": np.float32(0.1), "flag": np.bool_(True), "name": np.str_("adam"),
             "shape": (np.int32(2), (3,)), "none": None, np.str_("k"): [np.uint8(7)]}
    out = plain(value)
    assert out == {"units": 8, "lr": float(np.float32(0.1)), "flag": True, "name": "adam",
                   "shape": [2, [3]], "none": None, "k": [7]}
    assert [type(v) for v in out.values()] == [int, float, bool, str, list, type(None), list]
    assert type(list(out)[-1]) is str and type(out["k"][0]) is int
    arr = np.arange(3)
    assert plain({"a": arr})["a"] is not None and np.array_equal(plain({"a": arr})["a"], arr)
    with pytest.raises(TypeError, match=r"config\['f'\] has type function"):
        plain({"f": lambda: 0}, "config")


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_numpy_scalars_in_the_spec(tmp_path, fmt):
    spec = [F.dense(np.int64(8)), F.leaky_relu(np.float32(0.5)), F.dense(np.int32(2))]
    params = F.init_params(spec, 3, seed=0)
    save(tmp_path / f"c.{fmt}", spec, params)
    out = load(tmp_path / f"c.{fmt}")
    assert out["spec"] == plain(spec) and type(out["spec"][0]["units"]) is int


# --- temporary files ----------------------------------------------------------------------

def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp_name(target, pid, token="0123456789ab"):
    return f".{target}.{pid}.{token}.tmp"


@pytest.mark.skipif(os.name != "posix", reason="pid probing with os.kill(pid, 0)")
@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_stale_temporary_file_of_a_dead_writer_is_removed(tmp_path, fmt):
    target = f"model.{fmt}"
    pid = dead_pid()
    stale = tmp_path / temp_name(target, pid)
    stale.write_bytes(b"PK half of a killed save")
    live = tmp_path / temp_name(target, os.getppid(), "aaaaaaaaaaaa")  # a running process
    live.write_bytes(b"being written")
    other = tmp_path / temp_name(f"other.{fmt}", pid)  # another target's: not this save's business
    other.write_bytes(b"x")
    unrelated = tmp_path / f".{target}.notapid.0123456789ab.tmp"
    unrelated.write_bytes(b"x")
    save(tmp_path / target, SMALL, small_params())
    assert not stale.exists()
    assert live.exists() and other.exists() and unrelated.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([target, live.name, other.name, unrelated.name])


def test_temporary_name_carries_the_pid(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save(tmp_path / "m.npz", SMALL, small_params())
    assert len(seen) == 1 and seen[0].startswith(f".m.npz.{os.getpid()}.") and seen[0].endswith(".tmp")


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_a_250_character_file_name(tmp_path, fmt):
    name = "m" * (250 - len(fmt) - 1) + "." + fmt
    assert len(name) == 250
    params = small_params()
    assert check_path(tmp_path / name) == str(tmp_path / name)
    save(tmp_path / name, SMALL, params, epoch=1)
    save(tmp_path / name, SMALL, params, epoch=2)  # an overwrite goes through a temporary file too
    assert load(tmp_path / name)["epoch"] == 2
    assert os.listdir(tmp_path) == [name]


def test_long_names_get_short_distinct_temporary_names():
    a, b = "a" * 246 + ".npz", "a" * 245 + "b.npz"
    stem_a, stem_b = checkpoint._temp_stem(a, 255), checkpoint._temp_stem(b, 255)
    assert stem_a != stem_b
    for stem in (stem_a, stem_b):
        longest = f".{stem}.{'9' * 10}.{'f' * 12}.tmp"
        assert len(longest.encode()) <= 255
    assert checkpoint._temp_stem("model.npz", 255) == "model.npz"
    # multi-byte characters are cut on character boundaries, counted in bytes
    stem = checkpoint._temp_stem("é" * 120 + ".npz", 255)
    assert len(f".{stem}.{'9' * 10}.{'f' * 12}.tmp".encode()) <= 255


@pytest.mark.skipif(os.name != "posix", reason="pid probing with os.kill(pid, 0)")
def test_stale_temporary_file_of_a_long_name_is_removed(tmp_path):
    name = "m" * 246 + ".pkl"
    stem = checkpoint._temp_stem(name, checkpoint._name_max(str(tmp_path)))
    stale = tmp_path / temp_name(stem, dead_pid())
    stale.write_bytes(b"x")
    save(tmp_path / name, SMALL, small_params())
    assert os.listdir(tmp_path) == [name]


def test_a_name_longer_than_the_file_system_allows(tmp_path):
    name = "m" * 300 + ".npz"
    with pytest.raises(ValueError, match="the file name is 304 bytes long; the file system at .* allows at most"):
        check_path(tmp_path / name)
    with pytest.raises(ValueError, match="304 bytes long"):
        save(tmp_path / name, SMALL, small_params())


# --- check_path ---------------------------------------------------------------------------

def test_check_path_accepts_a_writable_place_and_leaves_nothing(tmp_path):
    assert check_path(tmp_path / "model.npz") == str(tmp_path / "model.npz")
    assert check_path(str(tmp_path / "model.PKL")) == str(tmp_path / "model.PKL")
    assert os.listdir(tmp_path) == []
    save(tmp_path / "model.npz", SMALL, small_params())
    before = (tmp_path / "model.npz").read_bytes()
    assert check_path(tmp_path / "model.npz") == str(tmp_path / "model.npz")  # an existing file is fine
    assert (tmp_path / "model.npz").read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("name", ["model.h5", "model", "model.npz.bak"])
def test_check_path_unknown_extension(tmp_path, name):
    with pytest.raises(ValueError, match=rf"{name}: unknown checkpoint extension .*use one of \.npz, \.pkl, \.pickle"):
        check_path(tmp_path / name)


def test_check_path_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such directory.*nope"):
        check_path(tmp_path / "nope" / "model.npz")
    assert os.listdir(tmp_path) == []


def test_check_path_parent_is_a_file_or_target_is_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file is not a directory"):
        check_path(tmp_path / "file" / "model.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match=r"d\.npz: cannot write a checkpoint there: it is a directory"):
        check_path(tmp_path / "d.npz")


def test_check_path_and_save_report_an_unwritable_directory(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    pattern = rf"model\.npz: cannot write a checkpoint in {tmp_path}: Permission denied"
    with pytest.raises(ValueError, match=pattern):
        check_path(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=pattern):  # save says the same, with the same code
        save(tmp_path / "model.npz", SMALL, small_params())
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to read-only directories")
def test_check_path_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write a checkpoint in .*ro: Permission denied"):
            check_path(ro / "model.npz")
    finally:
        ro.chmod(0o755)


def test_check_path_type():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        check_path(42)


# --- check_metadata -----------------------------------------------------------------------

def test_check_metadata_accepts_what_save_accepts():
    assert check_metadata({"scaler": {"mean": np.zeros(3), "n": np.int64(3)}, "note": ("a", 1)}) is None
    assert check_metadata({}) is None


@pytest.mark.parametrize("metadata, reserved_extra, exc, match", [
    ({"spec": 1}, (), ValueError, r"metadata name\(s\) \['spec'\] are reserved"),
    ({"params": 1}, (), ValueError, r"\['params'\] are reserved"),
    ({"loss": "mse"}, checkpoint.TRAINING_NAMES, ValueError, r"\['loss'\] are reserved: the checkpoint stores its own"),
    ({"training_state": {}}, ("loss", "training_state"), ValueError, r"\['training_state'\] are reserved"),
    ({"f": lambda: 0}, (), TypeError, "f has type function"),
    ({"a": {"b": {1, 2}}}, (), TypeError, r"a\['b'\] has type set"),
    ({"a": np.array([None])}, (), TypeError, "dtype object"),
    ({1: 2}, (), TypeError, "metadata names must be str"),
    ([("a", 1)], (), TypeError, "metadata must be a dict"),
])
def test_check_metadata_refusals(tmp_path, metadata, reserved_extra, exc, match):
    with pytest.raises(exc, match=match):
        check_metadata(metadata, reserved_extra=reserved_extra)
    assert os.listdir(tmp_path) == []


def test_loss_is_ordinary_metadata_for_save(tmp_path):
    check_metadata({"loss": "mean_squared_error"})  # reserved only for training checkpoints
    save(tmp_path / "m.npz", SMALL, small_params(), loss="mean_squared_error")
    assert load(tmp_path / "m.npz")["loss"] == "mean_squared_error"
