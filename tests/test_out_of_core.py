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
    assert_tree_equal(network.infer(spec, params, Xf, chunk=chunk), whole)
    np.testing.assert_array_equal(F.predict(spec, params, Xf, loss=CE), whole.argmax(axis=1))


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
