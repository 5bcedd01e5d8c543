"""Checkpoints: round trips in both formats, refusal of bad files, atomic writes, purity."""
import json
import os
import pickle
import stat
import struct
import zipfile

import numpy as np
import pytest

import funcnn as F
from funcnn import checkpoint
from funcnn.checkpoint import load, save
from conftest import frozen

SPEC = [F.dense(5), F.relu(), F.dropout(0.25), F.dense(3, init="normal", std=0.5), F.tanh(), F.dense(2)]
FORMATS = ["npz", "pkl", "pickle"]


def make_params(dtype=np.float32):
    params = F.init_params(SPEC, 4, seed=0, dtype=dtype)
    # Non-zero biases, so that every array carries real bits.
    return {k: (v + np.asarray(0.125, dtype) if k.startswith("b") else v) for k, v in params.items()}


def rich_metadata():
    """Everything metadata may hold, as passed to save()."""
    rng_state = np.random.default_rng(7).bit_generator.state  # PCG64: 128-bit ints
    return {
        "epoch": 3,
        "note": "hello, wörld",
        "strings": ["", "tail\x00", "\U0001F600", "quote\"back\\slash\n"],
        "flags": [True, False, None],
        "big": 2 ** 127 + 12345,
        "neg_big": -(2 ** 200),
        "floats": [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"), -float("inf")],
        "pair": (1, "two", (3.0, None)),
        "training_state": {
            "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.9},
            "opt_state": {"step": 3, "m": {"W_0": np.arange(6, dtype=np.float32).reshape(2, 3),
                                           "b_0": np.zeros(3, np.float64)}},
            "rng_state": rng_state,
            "history": {"loss": [2.5, 1.25, float("nan")], "val_loss": []},
            "best_params": None,
        },
        "arrays": [np.array([1, 2, 3], np.int64), np.array(True), np.array(["a", "bc"]),
                   np.array([[1.5, np.nan], [np.inf, -0.0]], np.float64),
                   np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
                   np.empty((0, 4), np.float32)],
        "empty": {},
    }


def expected(value):
    """What load() gives back for ``value``: tuples become lists, NumPy scalars Python ones."""
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    return value


def assert_tree_equal(a, b):
    """Same structure, same key order, same types; arrays bit-identical (dtype, shape, bytes)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tree_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape) and a.tobytes() == b.tobytes()
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b)  # NaN, -0.0: bit for bit
    else:
        assert a == b


def float_bits(values):
    return [struct.pack("<d", v) for v in values]


@pytest.fixture
def params():
    return make_params()


# --- round trips ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip(tmp_path, fmt, dtype):
    params, meta = make_params(dtype), rich_metadata()
    path = tmp_path / f"model.{fmt}"
    assert save(path, SPEC, params, **meta) == str(path)
    out = load(path)
    assert list(out) == ["spec", "params", *meta]
    assert out["spec"] == SPEC
    assert_tree_equal(out["params"], params)
    assert all(v.dtype == dtype for v in out["params"].values())
    assert_tree_equal({k: out[k] for k in meta}, expected(meta))
    assert float_bits(out["floats"]) == float_bits(meta["floats"])  # -0.0, subnormals, exactly
    assert type(out["big"]) is int and out["big"] == 2 ** 127 + 12345
    assert out["arrays"][4].flags.f_contiguous
    # Arrays come back as plain, writable, independent ndarrays (not memory-mapped).
    for arr in out["params"].values():
        assert type(arr) is np.ndarray and arr.flags.writeable


@pytest.mark.parametrize("fmt", FORMATS)
def test_rng_state_resumes_the_same_stream(tmp_path, fmt, params):
    rng = np.random.default_rng(123)
    rng.normal(size=10)
    save(tmp_path / f"c.{fmt}", SPEC, params, rng_state=rng.bit_generator.state)
    restored = np.random.default_rng()
    restored.bit_generator.state = load(tmp_path / f"c.{fmt}")["rng_state"]
    assert np.array_equal(restored.normal(size=5), rng.normal(size=5))


@pytest.mark.parametrize("fmt", FORMATS)
def test_numpy_scalars_become_python_scalars(tmp_path, fmt, params):
    save(tmp_path / f"c.{fmt}", SPEC, params, i=np.int64(-3), u=np.uint8(200), f=np.float32(0.1),
         d=np.float64(1 / 3), b=np.bool_(True), s=np.str_("x"), nested={"k": [np.int32(1)]})
    out = load(tmp_path / f"c.{fmt}")
    assert (type(out["i"]), out["i"]) == (int, -3)
    assert (type(out["u"]), out["u"]) == (int, 200)
    assert (type(out["f"]), out["f"]) == (float, float(np.float32(0.1)))
    assert (type(out["d"]), out["d"]) == (float, 1 / 3)
    assert out["b"] is True
    assert (type(out["s"]), out["s"]) == (str, "x")
    assert out["nested"] == {"k": [1]} and type(out["nested"]["k"][0]) is int


@pytest.mark.parametrize("fmt", FORMATS)
def test_dicts_that_look_like_markers_round_trip(tmp_path, fmt, params):
    meta = {"a": {"__array__": "meta/0"}, "b": {"__dict__": {"__array__": 1}}, "c": {"__array__": 1, "x": 2},
            "d": [{"__dict__": None}, np.ones(2)]}
    save(tmp_path / f"c.{fmt}", SPEC, params, **meta)
    out = load(tmp_path / f"c.{fmt}")
    assert_tree_equal({k: out[k] for k in meta}, meta)


def test_npz_is_plain_numpy_readable_without_pickle(tmp_path, params):
    path = tmp_path / "c.npz"
    save(path, SPEC, params, epoch=2, state={"m": np.ones(3), "step": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert npz.files == ["__funcnn__", "params/W_0", "params/b_0", "params/W_3", "params/b_3",
                             "params/W_5", "params/b_5", "meta/0"]
        header = json.loads(str(npz["__funcnn__"][()]))
        assert npz["__funcnn__"].shape == () and npz["__funcnn__"].dtype.kind == "U"
        np.testing.assert_array_equal(npz["params/W_0"], params["W_0"])
    assert header == {"format": "funcnn", "version": 1, "spec": SPEC,
                      "metadata": {"epoch": 2, "state": {"m": {"__array__": "meta/0"}, "step": 1}}}


@pytest.mark.parametrize("fmt", FORMATS)
def test_overwrite_and_params_key_order(tmp_path, fmt, params):
    path = tmp_path / f"c.{fmt}"
    save(path, SPEC, params, epoch=1)
    reordered = dict(reversed(list(params.items())))
    save(path, [dict(layer) for layer in SPEC], reordered, epoch=2)
    out = load(path)
    assert out["epoch"] == 2 and list(out["params"]) == list(reordered)


def test_extension_is_case_insensitive_and_spec_tuple_becomes_list(tmp_path, params):
    save(tmp_path / "C.NPZ", tuple(SPEC), params)
    assert load(tmp_path / "C.NPZ")["spec"] == SPEC


# --- what save refuses, before touching the disk ----------------------------------------

def snapshot(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


@pytest.fixture(params=FORMATS)
def previous(request, tmp_path, params):
    """A directory holding one valid checkpoint; yields its path."""
    path = tmp_path / f"model.{request.param}"
    save(path, SPEC, params, epoch=1, history={"loss": [1.0]})
    return path


BAD_SAVES = [
    # (description, args, kwargs, exception, message pattern)
    ("params holds a list", lambda p: (SPEC, {**p, "W_0": p["W_0"].tolist()}), {}, TypeError, r"params\['W_0'\].*NumPy array"),
    ("params lacks a key", lambda p: (SPEC, {k: v for k, v in p.items() if k != "b_3"}), {}, ValueError, "b_3"),
    ("params wrong shape", lambda p: (SPEC, {**p, "W_3": p["W_3"][:2]}), {}, ValueError, "W_3"),
    ("params is not a dict", lambda p: (SPEC, list(p.values())), {}, TypeError, "params must be a dict"),
    ("spec is invalid", lambda p: ([{"type": "dense", "units": 0}], p), {}, ValueError, r"spec\[0\]"),
    ("a lambda in metadata", lambda p: (SPEC, p), {"training_state": {"hooks": [1, lambda: 0]}},
     TypeError, r"training_state\['hooks'\]\[1\] has type function"),
    ("an object in metadata", lambda p: (SPEC, p), {"obj": object()}, TypeError, "obj has type object"),
    ("a set in metadata", lambda p: (SPEC, p), {"s": {1, 2}}, TypeError, "s has type set"),
    ("a non-str key", lambda p: (SPEC, p), {"h": {"ok": {3: "x"}}}, TypeError, r"h\['ok'\] has key 3 of type int"),
    ("an object array", lambda p: (SPEC, p), {"a": {"b": np.array([{}, None], dtype=object)}},
     TypeError, r"a\['b'\] is an array of dtype object"),
    ("a complex number", lambda p: (SPEC, p), {"z": 1j}, TypeError, "z has type complex"),
    ("a masked array", lambda p: (SPEC, p), {"m": np.ma.masked_array([1.0, 2.0], [0, 1])}, TypeError, "masked"),
]


@pytest.mark.parametrize("desc, args, kwargs, exc, match", BAD_SAVES, ids=[b[0] for b in BAD_SAVES])
def test_bad_save_is_refused_and_leaves_the_previous_file(previous, params, desc, args, kwargs, exc, match):
    before = snapshot(previous.parent)
    with pytest.raises(exc, match=match):
        save(previous, *args(params), **kwargs)
    assert snapshot(previous.parent) == before  # byte-identical, and no temporary file


def test_bad_save_to_a_new_path_creates_nothing(tmp_path, params):
    with pytest.raises(TypeError):
        save(tmp_path / "new.npz", SPEC, params, f=lambda: 0)
    assert os.listdir(tmp_path) == []


def test_metadata_cycle_is_refused(tmp_path, params):
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        save(tmp_path / "c.npz", SPEC, params, loop=loop)
    assert os.listdir(tmp_path) == []


def test_longdouble_is_refused_rather_than_rounded(tmp_path, params):
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is a plain double here")
    with pytest.raises(TypeError, match="longdouble|float128|np.asarray"):
        save(tmp_path / "c.npz", SPEC, params, x=np.longdouble(1) / 3)


def test_reserved_names(tmp_path, params):
    # spec/params can never be metadata: Python itself refuses the duplicate argument...
    with pytest.raises(TypeError):
        save(tmp_path / "c.npz", SPEC, params, **{"spec": 1})
    # ...and the metadata check refuses them too.
    with pytest.raises(ValueError, match="reserved"):
        checkpoint._plain_metadata({"params": 1}, [])


@pytest.mark.parametrize("name", ["model", "model.json", "model.npy", "model.npz.bak"])
def test_unknown_extension(tmp_path, params, name):
    with pytest.raises(ValueError, match=r"\.npz, \.pkl, \.pickle"):
        save(tmp_path / name, SPEC, params)
    with pytest.raises(ValueError, match="unknown checkpoint extension"):
        load(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_bad_path_types_and_missing_directory(tmp_path, params):
    with pytest.raises(TypeError, match="path"):
        save(123, SPEC, params)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        save(tmp_path / "nope" / "c.npz", SPEC, params)


# --- failures during the write ----------------------------------------------------------

def failing_replace(src, dst):
    raise OSError("simulated crash before the rename")


def test_failure_at_rename_keeps_previous(previous, params, monkeypatch):
    before = snapshot(previous.parent)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save(previous, SPEC, make_params(np.float64), epoch=99)
    monkeypatch.undo()
    assert snapshot(previous.parent) == before
    assert load(previous)["epoch"] == 1


def test_failure_midway_through_the_writer_keeps_previous(previous, params, monkeypatch):
    before = snapshot(previous.parent)

    def half_then_fail(fh):
        fh.write(b"PK\x03\x04 partial bytes")
        raise KeyboardInterrupt  # even an interrupt must not leave debris

    monkeypatch.setattr(checkpoint, "_write_npz", lambda fh, members: half_then_fail(fh))
    monkeypatch.setattr(pickle, "dump", lambda obj, fh, protocol: half_then_fail(fh))
    with pytest.raises(KeyboardInterrupt):
        save(previous, SPEC, params, epoch=99)
    monkeypatch.undo()
    assert snapshot(previous.parent) == before


def test_failure_in_fsync_keeps_previous(previous, params, monkeypatch):
    before = snapshot(previous.parent)

    def failing_fsync(fd):
        raise OSError("simulated disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        save(previous, SPEC, params, epoch=99)
    monkeypatch.undo()
    assert snapshot(previous.parent) == before


def test_failure_when_the_target_is_a_directory(tmp_path, params):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match=r"d\.npz: cannot write a checkpoint there: it is a directory"):
        save(tmp_path / "d.npz", SPEC, params)
    assert os.listdir(tmp_path) == ["d.npz"] and os.listdir(tmp_path / "d.npz") == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions(tmp_path, params):
    path = tmp_path / "c.npz"
    save(path, SPEC, params)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    os.chmod(path, 0o640)
    save(path, SPEC, params)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # an overwrite keeps the file's mode


# --- what load refuses ------------------------------------------------------------------

@pytest.fixture
def valid_npz(tmp_path, params):
    path = tmp_path / "valid.npz"
    save(path, SPEC, params, epoch=1, m=np.ones(2))
    return path


def rewrite_npz(path, members):
    """Write ``members`` ({name: array}) as an npz at ``path``, pickling allowed (a hostile writer)."""
    with open(path, "wb") as fh:
        np.savez(fh, **members)


def read_members(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def header_of(path):
    return json.loads(str(read_members(path)["__funcnn__"][()]))


def test_missing_file(tmp_path):
    for name in ["absent.npz", "absent.pkl"]:
        with pytest.raises(FileNotFoundError, match="absent"):
            load(tmp_path / name)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file(tmp_path, fmt):
    (tmp_path / f"e.{fmt}").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"e\.{fmt}: not a funcnn checkpoint: the file is empty"):
        load(tmp_path / f"e.{fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file(tmp_path, params, fmt):
    path = tmp_path / f"c.{fmt}"
    save(path, SPEC, params, history={"loss": [1.0, 0.5]})
    data = path.read_bytes()
    for cut in [len(data) // 2, len(data) - 1, 10]:
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"c\.\w+: not a funcnn checkpoint"):
            load(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_bytes(tmp_path, fmt):
    path = tmp_path / f"r.{fmt}"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="not a funcnn checkpoint"):
        load(path)


def test_corrupted_array_bytes_are_detected(valid_npz):
    # Flipping a byte in the middle of a params array: the zip CRC catches it.
    data = bytearray(valid_npz.read_bytes())
    start = data.index(b"params/W_3.npy")
    at = data.index(b"\n", data.index(b"{'descr'", start)) + 10  # inside W_3's data
    data[at] ^= 0xFF
    valid_npz.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a funcnn checkpoint.*W_3"):
        load(valid_npz)


def test_foreign_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.arange(3))
    with pytest.raises(ValueError, match=r"data\.npz: not a funcnn checkpoint: it has no '__funcnn__' member "
                                         r"\(members: \['X', 'y'\]\)"):
        load(path)


def test_zip_that_is_not_an_npz(tmp_path):
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"z\.npz: not a funcnn checkpoint: it has no '__funcnn__' member "
                                         r"\(members: \['readme.txt'\]\)"):
        load(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__funcnn__.npy", "not an array")
    with pytest.raises(ValueError, match="member '__funcnn__' is not a valid .npy array"):
        load(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__funcnn__.npy", "not an array")
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="member 'readme.txt' is not a NumPy .npy array"):
        load(path)


def test_extra_member_is_refused(valid_npz):
    members = read_members(valid_npz)
    rewrite_npz(valid_npz, {**members, "sneaky": np.zeros(1)})
    with pytest.raises(ValueError, match="unexpected member 'sneaky'"):
        load(valid_npz)


def test_newer_version(valid_npz):
    members = read_members(valid_npz)
    header = header_of(valid_npz)
    rewrite_npz(valid_npz, {**members, "__funcnn__": np.array(json.dumps({**header, "version": 999}))})
    with pytest.raises(ValueError, match=r"valid\.npz: checkpoint format version 999 is newer than this "
                                         r"funcnn reads \(version 1\)"):
        load(valid_npz)


@pytest.mark.parametrize("change, match", [
    ({"format": "other"}, "does not say format 'funcnn'"),
    ({"version": "1"}, "bad format version '1'"),
    ({"version": 0}, "bad format version 0"),
    ({"metadata": [1]}, "metadata is not a dict"),
    ({"metadata": {"m": {"__array__": "meta/7"}}}, r"refers to array member 'meta/7'"),
    ({"metadata": {"spec": 1}}, r"reserved name\(s\) \['spec'\]"),
])
def test_bad_header(valid_npz, change, match):
    members = read_members(valid_npz)
    rewrite_npz(valid_npz, {**members, "__funcnn__": np.array(json.dumps({**header_of(valid_npz), **change}))})
    with pytest.raises(ValueError, match=match):
        load(valid_npz)


def test_header_not_json(valid_npz):
    members = read_members(valid_npz)
    rewrite_npz(valid_npz, {**members, "__funcnn__": np.array("{not json")})
    with pytest.raises(ValueError, match="'__funcnn__' is not valid JSON"):
        load(valid_npz)
    rewrite_npz(valid_npz, {**members, "__funcnn__": np.zeros(3)})
    with pytest.raises(ValueError, match="'__funcnn__' is not a JSON string"):
        load(valid_npz)


def test_params_that_do_not_fit_the_spec(valid_npz):
    members = read_members(valid_npz)
    rewrite_npz(valid_npz, {**members, "params/W_3": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError, match=r"valid\.npz: the checkpoint's params do not fit its spec: "
                                         r"params\['W_3'\] has shape \(4, 3\), expected \(5, 3\)"):
        load(valid_npz)
    rewrite_npz(valid_npz, {k: v for k, v in members.items() if k != "params/b_5"})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['b_5'\]"):
        load(valid_npz)
    rewrite_npz(valid_npz, {**members, "params/b_0": members["params/b_0"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"params\['b_0'\] has dtype float64"):
        load(valid_npz)
    rewrite_npz(valid_npz, {**members, "params/W_9": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=r"key\(s\) \['W_9'\] that the spec does not define"):
        load(valid_npz)


def test_invalid_spec_in_file(valid_npz):
    members = read_members(valid_npz)
    header = {**header_of(valid_npz), "spec": [{"type": "conv2d"}]}
    rewrite_npz(valid_npz, {**members, "__funcnn__": np.array(json.dumps(header))})
    with pytest.raises(ValueError, match=r"valid\.npz: the checkpoint's spec is invalid: spec\[0\]: unknown "
                                         r"layer type 'conv2d'"):
        load(valid_npz)


@pytest.mark.parametrize("fmt", ["pkl", "pickle"])
def test_pickle_file_whose_params_do_not_fit(tmp_path, params, fmt):
    path = tmp_path / f"c.{fmt}"
    save(path, SPEC, params)
    content = pickle.loads(path.read_bytes())
    content["params"]["W_0"] = np.zeros((4, 9), np.float32)
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=r"checksum mismatch .*: the file is corrupt"):
        load(path)
    del content["checksum"]  # as a file written before checksums existed
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=r"params do not fit its spec: params\['W_0'\] has shape \(4, 9\)"):
        load(path)


@pytest.mark.parametrize("content, match", [
    ([1, 2, 3], "unpickles to a list"),
    ({"X": np.ones(3)}, "unpickles to a dict without format 'funcnn'"),
    ({"format": "funcnn", "version": 2, "spec": SPEC, "params": {}, "metadata": {}}, "version 2 is newer"),
    ({"format": "funcnn", "version": 1, "spec": SPEC, "params": {}, "metadata": {"x": {1: 2}}}, "non-str key 1"),
    ({"format": "funcnn", "version": 1, "spec": SPEC, "params": {}, "metadata": {"x": (1,)}}, "has type tuple"),
])
def test_foreign_pickles(tmp_path, content, match):
    path = tmp_path / "f.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=match):
        load(path)


# --- pickled objects are never unpickled -------------------------------------------------

def malicious_pickle(marker):
    """Pickle bytes that, when unpickled, call open(marker, "w") — creating the marker file."""
    return (b"cbuiltins\nopen\n(" + pickle.dumps(str(marker), protocol=0)[:-1] + b"Vw\ntR.")


def npz_with_raw_object_member(path, valid_members, payload):
    """An npz whose ``params/W_0`` member is a 0-d object array holding ``payload`` (pickle bytes)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in valid_members.items():
            with zf.open(name + ".npy", "w") as member:
                if name == "params/W_0":
                    np.lib.format.write_array_header_1_0(
                        member, {"descr": "|O", "fortran_order": False, "shape": ()})
                    member.write(payload)
                else:
                    np.lib.format.write_array(member, arr)


def test_malicious_pickle_is_really_malicious(tmp_path):
    # The positive control: the payload does run when something unpickles it.
    marker = tmp_path / "control"
    pickle.loads(malicious_pickle(marker))
    assert marker.exists()


def test_object_array_in_npz_is_refused_and_never_unpickled(tmp_path, valid_npz):
    marker = tmp_path / "PWNED"
    npz_with_raw_object_member(valid_npz, read_members(valid_npz), malicious_pickle(marker))
    with pytest.raises(ValueError, match=r"member 'params/W_0' is an object array.*refuses to unpickle"):
        load(valid_npz)
    assert not marker.exists()


def test_object_array_of_dicts_is_refused(valid_npz):
    members = read_members(valid_npz)
    rewrite_npz(valid_npz, {**members, "meta/0": np.array([{"a": 1}, {"b": 2}], dtype=object)})
    with pytest.raises(ValueError, match=r"valid\.npz: not a funcnn checkpoint: member 'meta/0' is an object array"):
        load(valid_npz)


def test_pickle_renamed_to_npz_is_not_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "renamed.npz"
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(ValueError, match="not a funcnn checkpoint: not a zip"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["pkl", "pickle"])
def test_pkl_loader_resolves_only_numpy_names(tmp_path, fmt):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil.{fmt}"
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(ValueError, match=r"not a funcnn checkpoint.*builtins\.open"):
        load(path)
    assert not marker.exists()


# --- purity ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_save_with_read_only_inputs_modifies_nothing(tmp_path, fmt):
    params, meta = frozen(make_params()), frozen(rich_metadata())
    spec = frozen(SPEC)
    before = (frozen(spec), frozen(params), frozen(meta))
    save(tmp_path / f"c.{fmt}", spec, params, **meta)
    assert_tree_equal((spec, params, meta), before)
    assert isinstance(meta["pair"], tuple)  # not converted in place
    out = load(tmp_path / f"c.{fmt}")
    assert_tree_equal(out["params"], params)
    out["params"]["W_0"][0, 0] = 42.0  # loaded arrays are the caller's own
    assert params["W_0"][0, 0] != 42.0


def test_load_twice_gives_independent_results(valid_npz):
    a, b = load(valid_npz), load(valid_npz)
    a["params"]["b_0"][:] = 7
    a["m"][:] = 7
    assert not np.shares_memory(a["params"]["b_0"], b["params"]["b_0"])
    assert b["m"].tolist() == [1.0, 1.0]


def test_load_closes_the_file(valid_npz, recwarn):
    import gc
    load(valid_npz)
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]
