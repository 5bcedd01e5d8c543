"""Data larger than memory: train reads and converts one minibatch at a time, predict works in chunks."""
import tracemalloc

import numpy as np
import pytest

import funcnn as F
from funcnn import network
from conftest import assert_tree_equal

CE = "softmax_cross_entropy"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A uint8 'image' set on disk (X.npy, y.npy), opened memory-mapped."""
    rng = np.random.default_rng(0)
    n, d = 40_000, 784
    X = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    y = (X[:, :10].argmax(axis=1)).astype(np.int64)
    folder = tmp_path_factory.mktemp("big")
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    return folder, X, y


def _train(X, y, **kw):
    spec = [F.dense(16), F.relu(), F.dropout(0.1), F.dense(10)]
    params = F.init_params(spec, 784, seed=0)
    return F.train(spec, params, X, y, loss=CE, optimizer=F.optimizers.adam(1e-3), epochs=2, batch_size=256,
                   seed=3, progress=False, **kw)


def test_memory_mapped_uint8_trains_in_a_fraction_of_its_size(images):
    folder, _, _ = images
    X = np.load(folder / "X.npy", mmap_mode="r")
    y = np.load(folder / "y.npy")
    tracemalloc.start()
    try:
        _train(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.10 * X.nbytes, f"train allocated up to {peak / 1e6:.2f} MB for a {X.nbytes / 1e6:.0f} MB X"


def test_memory_mapped_equals_in_memory_bit_for_bit(images):
    folder, X_mem, y = images
    X_map = np.load(folder / "X.npy", mmap_mode="r")
    a = _train(X_map, y, validation_data=(X_map[:3000], y[:3000]))
    b = _train(X_mem, y, validation_data=(X_mem[:3000], y[:3000]))
    c = _train(X_mem.astype(np.float32), y, validation_data=(X_mem[:3000].astype(np.float32), y[:3000]))
    assert_tree_equal(a, b)
    assert_tree_equal(a, c)  # converting batch by batch is the conversion of the whole, row by row


def test_memory_mapped_float64_is_never_converted_whole(images, tmp_path):
    _, X, y = images
    path = tmp_path / "X64.npy"
    np.save(path, X[:20_000].astype(np.float64) / 255)
    X64 = np.load(path, mmap_mode="r")
    tracemalloc.start()
    try:
        _train(X64, y[:20_000])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.10 * X64.nbytes


@pytest.mark.parametrize("chunk", [256, 1000, 4096])
def test_chunked_inference_equals_unchunked(images, chunk):
    _, X, y = images
    spec = [F.dense(32), F.relu(), F.dense(10)]
    params = F.init_params(spec, 784, seed=1)
    Xf = X[:5000].astype(np.float32) / 255
    whole = network.infer(spec, params, Xf, chunk=10 ** 9)
    chunked = network.infer(spec, params, Xf, chunk=chunk)
    # the same up to the rounding of GEMMs of another height (OpenBLAS may choose its kernel by
    # the matrix height), and bit for bit between runs with the same chunks
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert_tree_equal(network.infer(spec, params, Xf, chunk=chunk), chunked)
    np.testing.assert_array_equal(F.predict(spec, params, Xf, loss=CE), network.infer(spec, params, Xf).argmax(axis=1))


def test_predict_on_a_memory_map_converts_chunk_by_chunk(images):
    folder, X, _ = images
    X_map = np.load(folder / "X.npy", mmap_mode="r")
    spec = [F.dense(8), F.relu(), F.dense(10)]
    params = F.init_params(spec, 784, seed=2)
    tracemalloc.start()
    try:
        pred = F.predict(spec, params, X_map, loss=CE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(pred, F.predict(spec, params, X.astype(np.float32), loss=CE))
    assert peak < 0.5 * X.nbytes


# --- data directories: X.npy (memory-mapped) + y.npy ---------------------------------------------

def _write_dir(folder, n, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.uint8, shape=(n, 784))
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, 10_000):
        part = rng.integers(0, 256, size=(min(10_000, n - start), 784), dtype=np.uint8)
        X[start:start + len(part)] = part
        y[start:start + len(part)] = part[:, :10].argmax(axis=1)
    X.flush()
    del X
    if labels:
        np.save(folder / "y.npy", y)
    return folder


def _is_memory_map(a):
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = a.base
    return False


def test_load_directory_memory_maps_x(tmp_path):
    from funcnn import datasets as D
    folder = _write_dir(tmp_path / "d", 3000)
    X, y = D.load(str(folder))
    assert X.dtype == np.uint8 and X.shape == (3000, 784) and _is_memory_map(X) and not X.flags.writeable
    assert y.dtype == np.int64 and y.shape == (3000,)
    X_tr, X_te, y_tr, y_te = D.load_train_test(folder, test_size=0.25)
    assert (len(X_tr), len(X_te)) == (2250, 750)  # the last quarter, in the files' order
    assert np.shares_memory(X_te, X) or _is_memory_map(X_te)
    np.testing.assert_array_equal(X_te, X[2250:])
    np.testing.assert_array_equal(y_te, y[2250:])
    assert D.directory_kind(folder) == "npy"


def test_directory_kinds_are_decided_by_the_files(tmp_path):
    from funcnn import datasets as D
    both = _write_dir(tmp_path / "both", 100)
    F.datasets.write_idx(both / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"both array files \(X.npy, y.npy\) and MNIST IDX files "
                                         r"\(train-images-idx3-ubyte.gz\)"):
        D.load(str(both))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a data directory: expected X.npy"):
        D.load(str(empty))
    no_y = _write_dir(tmp_path / "no_y", 100, labels=False)
    with pytest.raises(FileNotFoundError, match="no y.npy"):
        D.load(str(no_y))
    X, y = D.load_features(str(no_y), 784)
    assert y is None and _is_memory_map(X)


def _cli_main(*argv):
    from funcnn import cli
    return cli.main(list(argv))


def _train_peak(folder, tmp_path, name):
    """tracemalloc's peak while `funcnn train --data DIR` runs in this process (the CLI itself, not a subprocess)."""
    argv = ["train", "--data", str(folder), "--hidden", "32", "--epochs", "1", "--batch-size", "128", "--quiet",
            "--no-plot", "--out", str(tmp_path / f"{name}.npz")]
    tracemalloc.start()
    try:
        assert _cli_main(*argv) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak


def test_cli_train_on_a_directory_does_not_grow_with_x(tmp_path, capsys):
    _train_peak(_write_dir(tmp_path / "warm", 2000), tmp_path, "warm")  # imports and caches first
    small = _write_dir(tmp_path / "small", 20_000)
    large = _write_dir(tmp_path / "large", 80_000)
    x_small, x_large = 20_000 * 784, 80_000 * 784
    p_small = _train_peak(small, tmp_path, "small")
    p_large = _train_peak(large, tmp_path, "large")
    # 60 000 more rows of X (47 MB): the peak grows by their labels, codes and permutation only (about 30
    # bytes a row of 784); the rest is fixed (about 9 MB, mostly evaluate's 8 MB inference chunk)
    assert p_large - p_small < 0.05 * (x_large - x_small), (p_small, p_large)
    assert p_large < 0.20 * x_large, f"peak {p_large / 1e6:.1f} MB for a {x_large / 1e6:.0f} MB X"
    out = capsys.readouterr().out
    assert "memory-mapped; test part: its last 20000 rows" in out
    assert "features not standardised" in out


def test_cli_predict_and_evaluate_on_directories(tmp_path, capsys):
    folder = _write_dir(tmp_path / "d", 6000)
    model = str(tmp_path / "m.npz")
    assert _cli_main("train", "--data", str(folder), "--hidden", "16", "--epochs", "2", "--quiet", "--no-plot",
                     "--out", model) == 0
    out = capsys.readouterr().out
    test_accuracy = float(out.split("test accuracy ")[1].split()[0])
    saved = F.load(model)
    assert saved["scaler"] is None and saved["data"]["source"] == str(folder)
    # evaluate: the same source means its test part (the last 1500 rows)
    assert _cli_main("evaluate", model, "--data", str(folder)) == 0
    accuracy = float(capsys.readouterr().out.split("accuracy ")[1].split()[0])
    assert accuracy == pytest.approx(test_accuracy, abs=1e-4)
    assert accuracy == pytest.approx(saved["test_scores"]["accuracy"], abs=1e-6)
    # predict on a directory of X.npy alone (no labels), every row, to a .npy file
    X, y = F.datasets.load(str(folder))
    only_x = tmp_path / "only_x"
    only_x.mkdir()
    np.save(only_x / "X.npy", np.asarray(X[:2500]))
    assert _cli_main("predict", model, "--data", str(only_x), "--output", str(tmp_path / "p.npy")) == 0
    pred = np.load(tmp_path / "p.npy")
    np.testing.assert_array_equal(pred, F.predict(saved["spec"], saved["params"], X[:2500],
                                                  loss=saved["loss"]))


def test_cli_refuses_scaling_a_directory(tmp_path, capsys):
    folder = _write_dir(tmp_path / "d", 500)
    assert _cli_main("train", "--data", str(folder), "--scale", "--epochs", "1", "--quiet", "--no-plot",
                     "--out", str(tmp_path / "m.npz")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would copy X whole into memory" in err[0]
    assert not (tmp_path / "m.npz").exists()


def test_cli_scales_a_directory_chunk_by_chunk_for_a_standardised_model(tmp_path, capsys, monkeypatch):
    """A model trained with a scaler (in-memory data) predicts on an X.npy directory: the scaler is
    applied chunk by chunk, with the results of scaling the whole."""
    from funcnn import cli
    rng = np.random.default_rng(4)
    X = rng.normal(3.0, 2.0, size=(900, 20))
    y = (X[:, 0] > 3).astype(np.int64) + (X[:, 1] > 3)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = str(tmp_path / "m.npz")
    assert _cli_main("train", "--data", str(tmp_path / "d.npz"), "--hidden", "8", "--epochs", "3", "--quiet",
                     "--no-plot", "--out", model) == 0
    saved = F.load(model)
    assert saved["scaler"] is not None
    folder = tmp_path / "dir"
    folder.mkdir()
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    monkeypatch.setattr(cli, "SCALE_CHUNK_BYTES", 100 * 8 * 20)  # 100 rows a chunk: 9 chunks
    assert _cli_main("predict", model, "--data", str(folder), "--proba", "--output", str(tmp_path / "p.npy")) == 0
    whole = F.predict_proba(saved["spec"], saved["params"], F.datasets.apply_scaler(saved["scaler"], X),
                            loss=saved["loss"])
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), whole, rtol=1e-6, atol=1e-7)
    assert "holds labels: accuracy" in capsys.readouterr().err
