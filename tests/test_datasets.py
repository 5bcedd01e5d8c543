"""funcnn.datasets: every file is written by the test into tmp_path; nothing is downloaded."""
import gzip
import os

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from funcnn import datasets
from funcnn.datasets import (DATASETS, apply_scaler, fit_scaler, load, load_csv, load_idx, load_mnist,
                             load_train_test, write_idx)

IMAGES = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4) * 4
LABELS = np.array([0, 1, 2, 1, 0], dtype=np.uint8)


def idx_bytes(code, shape, body):
    """A hand-made IDX file: 00 00 code ndim, big-endian uint32 dims, then the body."""
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes() + body


def write_mnist_dir(directory, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(0)
    directory.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 3, 4), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 2).astype(np.uint8))
    return directory


# --------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_idx_round_trip_uint8(tmp_path, name):
    path = write_idx(tmp_path / name, IMAGES)
    out = load_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 3, 4)
    np.testing.assert_array_equal(out, IMAGES)
    assert out.flags.writeable
    assert (open(path, "rb").read(2) == b"\x1f\x8b") == name.endswith(".gz")


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64, ">f4", ">i2"])
def test_idx_round_trip_other_dtypes(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7.25).astype(dtype)
    out = load_idx(write_idx(tmp_path / "a.idx", arr))
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_idx_reads_hand_written_big_endian(tmp_path):
    body = np.array([1.5, -2.0, 3.25], dtype=">f4").tobytes()
    (tmp_path / "f.idx").write_bytes(idx_bytes(0x0D, (3,), body))
    np.testing.assert_array_equal(load_idx(tmp_path / "f.idx"), [1.5, -2.0, 3.25])
    body = np.array([[-300, 7]], dtype=">i2").tobytes()
    (tmp_path / "s.idx").write_bytes(idx_bytes(0x0B, (1, 2), body))
    np.testing.assert_array_equal(load_idx(tmp_path / "s.idx"), [[-300, 7]])


def test_idx_gzip_detected_by_magic_not_name(tmp_path):
    path = tmp_path / "labels-no-extension"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (5,), LABELS.tobytes())))
    np.testing.assert_array_equal(load_idx(path), LABELS)
    raw = tmp_path / "raw.gz"  # a .gz name on an uncompressed file still reads
    raw.write_bytes(idx_bytes(0x08, (5,), LABELS.tobytes()))
    np.testing.assert_array_equal(load_idx(raw), LABELS)


def test_idx_write_is_deterministic_and_leaves_no_temp_files(tmp_path):
    a = write_idx(tmp_path / "a.gz", IMAGES)
    b = write_idx(tmp_path / "b.gz", IMAGES)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert sorted(os.listdir(tmp_path)) == ["a.gz", "b.gz"]


@pytest.mark.parametrize("content, match", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", r"bad\.idx.*magic number 01000801"),
    (idx_bytes(0x0A, (1,), b"\x00"), r"bad\.idx.*unknown IDX dtype code 0x0A"),
    (idx_bytes(0x08, (), b""), r"bad\.idx.*0 dimensions"),
    (idx_bytes(0x08, (5, 3, 4), bytes(59)), r"bad\.idx.*truncated.*expected 60 bytes, got 59"),
    (idx_bytes(0x08, (5, 3, 4), bytes(61)), r"bad\.idx.*trailing.*expected 60 bytes, got 61"),
    (idx_bytes(0x0C, (2,), bytes(4)), r"bad\.idx.*expected 8 bytes, got 4"),
    (b"\x00\x00\x08\x03\x00\x00", r"bad\.idx.*truncated IDX header"),
    (b"\x00", r"bad\.idx.*shorter than"),
])
def test_idx_errors_name_the_file(tmp_path, content, match):
    (tmp_path / "bad.idx").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_idx(tmp_path / "bad.idx")


def test_idx_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(0x08, (5, 3, 4), IMAGES.tobytes()))
    (tmp_path / "cut.gz").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"cut\.gz.*gzip"):
        load_idx(tmp_path / "cut.gz")


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64 has no IDX code"):
        write_idx(tmp_path / "x.idx", np.arange(3))
    assert not os.listdir(tmp_path)


# --------------------------------------------------------------------------- MNIST

@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_written_files(tmp_path, gz):
    write_mnist_dir(tmp_path, gz=gz)
    X, y = load_mnist(tmp_path)
    assert X.shape == (5, 12) and X.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 0, 1, 0]
    assert 0.0 <= X.min() and X.max() <= 1.0
    raw = load_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    np.testing.assert_array_equal(X, raw.reshape(5, -1).astype(np.float32) / np.float32(255))
    X_test, y_test = load_mnist(tmp_path, split="test")
    assert X_test.shape == (3, 12) and y_test.shape == (3,)


def test_load_mnist_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*5 images.*train-labels-idx1-ubyte\.gz.*4"):
        load_mnist(tmp_path)


def test_load_mnist_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="validation")


MNIST_FILES = [os.path.join(datasets.DEFAULT_MNIST_DIR, f"{p}-{k}-ubyte.gz")
               for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]


@pytest.mark.skipif(not all(os.path.exists(f) for f in MNIST_FILES), reason="Fashion-MNIST not installed")
def test_installed_fashion_mnist_shapes():
    X, y = load_mnist()
    assert X.shape == (60000, 784) and X.dtype == np.float32
    assert y.shape == (60000,) and set(np.unique(y)) == set(range(10))


# --------------------------------------------------------------------------- CSV

def test_csv_without_header(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0\n3.5,-4,1\n\n5,6e1,2\n")
    X, y = load_csv(tmp_path / "d.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3.5, -4], [5, 60]])
    assert X.dtype == np.float64 and y.dtype == np.int64 and y.tolist() == [0, 1, 2]


def test_csv_header_autodetect_and_label_by_name(tmp_path):
    (tmp_path / "d.csv").write_text("label,a,b\n1,0.5,2\n0,1.5,3\n")
    X, y = load_csv(tmp_path / "d.csv", label_column="label")
    np.testing.assert_array_equal(X, [[0.5, 2], [1.5, 3]])
    assert y.tolist() == [1, 0]
    X0, y0 = load_csv(tmp_path / "d.csv", label_column=0)
    np.testing.assert_array_equal(X0, X)
    np.testing.assert_array_equal(y0, y)
    with pytest.raises(ValueError, match=r"no column named 'c'.*\['label', 'a', 'b'\]"):
        load_csv(tmp_path / "d.csv", label_column="c")


def test_csv_explicit_header_and_name_without_header(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,3\n4,5,6\n")
    X, y = load_csv(tmp_path / "d.csv", header=True)
    assert X.shape == (1, 2) and y.tolist() == [6]
    with pytest.raises(ValueError, match="no header row"):
        load_csv(tmp_path / "d.csv", label_column="3")


def test_csv_regression_labels_float_and_delimiters(tmp_path):
    (tmp_path / "d.txt").write_text("1 2  0.5\n3\t4 1.25\n")
    X, y = load_csv(tmp_path / "d.txt", delimiter=None)
    assert X.shape == (2, 2) and y.dtype == np.float64 and y.tolist() == [0.5, 1.25]
    (tmp_path / "s.csv").write_text("1;2;1\n3;4;0\n")
    assert load_csv(tmp_path / "s.csv", delimiter=";")[1].tolist() == [1, 0]


@pytest.mark.parametrize("text, match", [
    ("x,y,label\n1,2,0\n3,oops,1\n", r"bad\.csv: line 3, column 2 \('y'\): cannot parse 'oops'"),
    ("1,2,0\n\n3,,1\n", r"bad\.csv: line 3, column 2: empty cell"),
    ("1,2,0\n3,4,nan\n", r"line 2, column 3: cannot parse 'nan' as a finite number \(a missing label\?\)"),
    ("1,2,0\n3,4\n", r"bad\.csv: line 2 has 2 fields, expected 3"),
    ("", r"bad\.csv: empty file"),
    ("\n\n", r"bad\.csv: empty file"),
    ("a,b,c\n", r"bad\.csv: no data rows"),
    ("1\n2\n", r"at least 2 columns"),
])
def test_csv_errors(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_csv(tmp_path / "bad.csv")


def test_csv_label_column_out_of_range(tmp_path):
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="out of range for 2 columns"):
        load_csv(tmp_path / "d.csv", label_column=2)


# --------------------------------------------------------------------------- npz and paths

def test_npz_good_file_images_flattened(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((4, 2, 3), np.uint8), y=np.array([0.0, 1.0, 1.0, 0.0]))
    X, y = load(path)
    assert X.shape == (4, 6) and X.dtype == np.float64
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1, 0]
    X, y = load(str(path))
    assert X.shape == (4, 6)


def test_npz_regression_labels(tmp_path):
    np.savez(tmp_path / "r.npz", X=np.zeros((2, 1)), y=np.array([0.5, 2.0]))
    assert load(tmp_path / "r.npz")[1].dtype == np.float64


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"d\.npz: missing key\(s\) X.*\['features', 'y'\]"):
        load(tmp_path / "d.npz")


def test_npz_object_array_refused(tmp_path):
    np.savez(tmp_path / "o.npz", X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match=r"o\.npz.*[Oo]bject arrays"):
        load(tmp_path / "o.npz")


def test_npz_length_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match="3 samples but y has 2"):
        load(tmp_path / "m.npz")


def test_load_csv_and_directory_paths(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,1\n")
    assert load(tmp_path / "d.csv", label_column="y")[1].tolist() == [1]
    write_mnist_dir(tmp_path / "mn")
    assert load(tmp_path / "mn")[0].shape == (5, 12)
    assert load("fashion-mnist", directory=tmp_path / "mn")[0].shape == (5, 12)


def test_unsupported_extension_and_unknown_options(tmp_path):
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(ValueError, match=r"unsupported file type '\.json'"):
        load(tmp_path / "d.json")
    with pytest.raises(TypeError, match="unexpected option.*noise"):
        load("iris", noise=0.1)
    with pytest.raises(TypeError, match="unexpected option.*centers"):
        load("moons", centers=3)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="known names: .*digits.*moons") as info:
        load("no-such-dataset")
    assert isinstance(info.value, FileNotFoundError)  # also what a missing path usually raises
    for name in DATASETS:
        assert name in str(info.value)


# --------------------------------------------------------------------------- named sets

@pytest.mark.parametrize("name, X_shape, y_dtype, n_classes", [
    ("digits", (1797, 64), np.int64, 10),
    ("iris", (150, 4), np.int64, 3),
    ("wine", (178, 13), np.int64, 3),
    ("breast-cancer", (569, 30), np.int64, 2),
    ("breast_cancer", (569, 30), np.int64, 2),
    ("diabetes", (442, 10), np.float64, None),
    ("moons", (1000, 2), np.int64, 2),
    ("circles", (1000, 2), np.int64, 2),
    ("blobs", (1000, 2), np.int64, 3),
])
def test_named_datasets(name, X_shape, y_dtype, n_classes):
    X, y = load(name)
    assert X.shape == X_shape and X.dtype == np.float64
    assert y.shape == (X_shape[0],) and y.dtype == y_dtype
    if n_classes:
        assert np.unique(y).tolist() == list(range(n_classes))


@pytest.mark.parametrize("name", ["moons", "circles", "blobs"])
def test_generators_deterministic_per_seed(name):
    a = load(name, n_samples=50, seed=3)
    b = load(name, n_samples=50, seed=3)
    c = load(name, n_samples=50, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape[0] == 50


def test_generator_options():
    X, y = load("blobs", n_samples=60, centers=4, n_features=5, seed=1)
    assert X.shape == (60, 5) and np.unique(y).tolist() == [0, 1, 2, 3]
    quiet, labels = load("moons", n_samples=40, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(quiet[labels == 0], axis=1), 1.0)  # noiseless: on the unit circle
    with pytest.raises(ValueError, match="noise"):
        load("moons", noise=-1)
    with pytest.raises(TypeError, match="n_samples"):
        load("moons", n_samples=10.5)


def test_generator_accepts_numpy_generator():
    rng = np.random.default_rng(0)
    a = load("moons", n_samples=20, seed=rng)
    b = load("moons", n_samples=20, seed=rng)  # the generator advanced: a different draw
    assert not np.array_equal(a[0], b[0])


# --------------------------------------------------------------------------- train/test

def test_load_train_test_stratified_and_deterministic():
    X_tr, X_te, y_tr, y_te = load_train_test("iris", test_size=0.2, seed=1)
    assert X_tr.shape == (120, 4) and X_te.shape == (30, 4)
    assert np.bincount(y_te).tolist() == [10, 10, 10]  # stratified: exact class shares
    again = load_train_test("iris", test_size=0.2, seed=1)
    for a, b in zip((X_tr, X_te, y_tr, y_te), again):
        np.testing.assert_array_equal(a, b)
    other = load_train_test("iris", test_size=0.2, seed=2)
    assert not np.array_equal(X_te, other[1])


def test_load_train_test_regression_and_options():
    X_tr, X_te, y_tr, y_te = load_train_test("diabetes")
    assert X_tr.shape[0] + X_te.shape[0] == 442 and y_te.dtype == np.float64
    X_tr, X_te, _, _ = load_train_test("moons", n_samples=100, noise=0.1, test_size=0.3)
    assert (X_tr.shape[0], X_te.shape[0]) == (70, 30)
    with pytest.raises(ValueError, match="test_size"):
        load_train_test("iris", test_size=1.5)
    with pytest.raises(ValueError, match="stratify=True"):
        load_train_test("diabetes", stratify=True)


def test_load_train_test_mnist_official_split(tmp_path):
    write_mnist_dir(tmp_path, n_train=6, n_test=4)
    X_tr, X_te, y_tr, y_te = load_train_test(tmp_path)
    assert X_tr.shape == (6, 12) and X_te.shape == (4, 12)
    np.testing.assert_array_equal(X_te, load_mnist(tmp_path, split="test")[0])
    np.testing.assert_array_equal(y_tr, load_mnist(tmp_path)[1])
    named = load_train_test("mnist", directory=tmp_path)
    np.testing.assert_array_equal(named[1], X_te)


# --------------------------------------------------------------------------- scaler

def test_scaler_matches_sklearn_and_is_pure():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(50, 4))
    X[:, 2] = 7.0  # constant feature: scale 1, like StandardScaler
    X.flags.writeable = False
    before = X.copy()
    scaler = fit_scaler(X)
    assert set(scaler) == {"mean", "scale"}
    assert scaler["mean"].dtype == np.float64 and scaler["scale"].shape == (4,)
    out = apply_scaler(scaler, X)
    np.testing.assert_array_equal(out, StandardScaler().fit(before).transform(before))
    np.testing.assert_array_equal(X, before)
    assert out is not X and out.flags.writeable


def test_scaler_plain_data_and_errors():
    X = np.arange(12.0).reshape(4, 3)
    scaler = fit_scaler(X)
    as_lists = {k: v.tolist() for k, v in scaler.items()}  # e.g. after a JSON round trip
    np.testing.assert_array_equal(apply_scaler(as_lists, X), apply_scaler(scaler, X))
    assert apply_scaler(scaler, X.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="2 features but the scaler expects 3"):
        apply_scaler(scaler, X[:, :2])
    with pytest.raises(ValueError, match="'mean' and 'scale'"):
        apply_scaler({"mean": [0.0]}, X)
    with pytest.raises(ValueError, match="NaN"):
        fit_scaler([[1.0, np.nan]])
