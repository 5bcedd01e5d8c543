"""funcnn.parallel: image layers run per part of the samples, on threads inside workers(); the
parts depend on n alone, so the bits do not depend on the threads."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import funcnn as F
from funcnn import conv as C
from funcnn import layers as L
from funcnn import network, parallel
from conftest import assert_tree_equal, frozen


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.mark.parametrize("n, sizes", [(1, [1]), (31, [31]), (32, [16, 16]), (47, [24, 23]), (64, [16] * 4),
                                      (128, [32] * 4), (130, [33, 33, 32, 32]), (1000, [250] * 4)])
def test_parts_depend_on_n_alone(n, sizes):
    bounds = parallel.parts(n)
    assert [b - a for a, b in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b == a2 for (_, b), (a2, _) in zip(bounds, bounds[1:]))


def test_map_parts_keeps_the_order_and_uses_two_threads_inside_workers():
    import time
    seen = []

    def fn(a, b):
        seen.append(threading.get_ident())
        time.sleep(0.02)  # long enough for the worker to claim its group before the caller would
        return (a, b)
    assert parallel.map_parts(fn, 128) == parallel.parts(128)
    assert set(seen) == {threading.get_ident()} and parallel.active_workers() == 1
    seen.clear()
    with threadpool_limits(2, user_api="blas"):
        with parallel.workers() as w:
            assert w == 2 == parallel.active_workers()
            assert _blas_threads() and set(_blas_threads()) == {1}  # BLAS yields its threads to the parts
            assert parallel.map_parts(fn, 128) == parallel.parts(128)
            with parallel.workers() as inner:  # nested: the same setting
                assert inner == 2 and set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}  # restored at the outermost exit
    assert len(set(seen)) == 2
    assert parallel.active_workers() == 1


_LATE_BLAS = """
import json
from threadpoolctl import threadpool_info, threadpool_limits
from funcnn import parallel
def blas():
    return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
with threadpool_limits(2, user_api="blas"):
    with parallel.workers():
        before = blas()
    import scipy.linalg  # SciPy's own OpenBLAS arrives after workers() first looked
    with threadpool_limits(2, user_api="blas"):
        loaded = blas()
        with parallel.workers():
            inside = blas()
        after = blas()
print(json.dumps({"before": before, "loaded": loaded, "inside": inside, "after": after}))
"""


def test_workers_limit_a_blas_loaded_after_their_first_use():
    # in a fresh process: in this one SciPy's BLAS is loaded already
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _LATE_BLAS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    # the precondition: a second BLAS came, at 2 threads
    assert len(got["before"]) == 1 and [t for _, t in got["loaded"]] == [2, 2], got
    assert [t for _, t in got["inside"]] == [1, 1], got
    assert got["after"] == got["loaded"], got  # restored at the exit


def test_workers_restore_blas_after_an_exception_and_respect_one_blas_thread():
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(RuntimeError):
            with parallel.workers():
                raise RuntimeError("boom")
        assert set(_blas_threads()) == {2} and parallel.active_workers() == 1
    with threadpool_limits(1, user_api="blas"):  # e.g. a sweep's trial: no threads of ours either
        with parallel.workers() as w:
            assert w == 1
            seen = set()
            parallel.map_parts(lambda a, b: seen.add(threading.get_ident()), 128)
            assert seen == {threading.get_ident()}
    with parallel.workers(enabled=False) as w:
        assert w == 1


def _image_ops(n, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = frozen(rng.normal(size=(n, 9, 8, 3)).astype(dtype))
    W = frozen(rng.normal(size=(3, 2, 3, 5)).astype(dtype))
    b = frozen(rng.normal(size=5).astype(dtype))
    out = {}
    for keep in (True, False):
        y, cols = C.conv2d_forward(x, W, b, (2, 1), ((1, 1), (0, 1)), keep_cols=keep)
        g = frozen(rng.normal(size=y.shape).astype(dtype))
        out[f"conv{keep}"] = (y, C.conv2d_backward(cols, None if keep else x, x.shape, W, g, (2, 1),
                                                   ((1, 1), (0, 1)), True))
    gamma, beta = frozen(rng.normal(size=3).astype(dtype)), frozen(rng.normal(size=3).astype(dtype))
    for training in (True, False):
        y, cache = C.batch_norm_forward(x, gamma, beta, 1e-5, training, beta, np.abs(gamma))
        g = frozen(rng.normal(size=y.shape).astype(dtype))
        out[f"bn{training}"] = (y, {k: v for k, v in cache.items() if k != "training"},
                                C.batch_norm_backward(cache, gamma, g))
    for size, stride in (((2, 2), (2, 2)), ((3, 2), (1, 2))):
        y, which = C.max_pool_forward(x, size, stride)
        g = frozen(rng.normal(size=y.shape).astype(dtype))
        out[f"max{size}{stride}"] = (y, which, C.max_pool_backward(which, g, x.shape, size, stride))
        ya = C.avg_pool_forward(x, size, stride)
        out[f"avg{size}{stride}"] = (ya, C.avg_pool_backward(g, x.shape, size, stride))
    return out


@pytest.mark.parametrize("n", [20, 64, 130])
def test_image_ops_have_the_same_bits_on_threads_and_sequentially(n, monkeypatch):
    monkeypatch.setattr(parallel, "PART_BYTES", 0)  # these small batches' batch norm runs per part too
    sequential = _image_ops(n)
    with threadpool_limits(2, user_api="blas"), parallel.workers() as w:
        assert w == 2
        threaded = _image_ops(n)
    assert_tree_equal(threaded, sequential)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_parts_are_the_arithmetic(dtype):
    """A batch of 4 parts: outputs are the parts' outputs side by side, and the kernel and bias
    gradients are the parts' gradients summed in order, bit for bit."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 7, 7, 2)).astype(dtype)
    W, b = rng.normal(size=(3, 3, 2, 4)).astype(dtype), rng.normal(size=4).astype(dtype)
    y, cols = C.conv2d_forward(x, W, b, (1, 1), ((1, 1), (1, 1)))
    g = rng.normal(size=y.shape).astype(dtype)
    dx, dW, db = C.conv2d_backward(cols, None, x.shape, W, g, (1, 1), ((1, 1), (1, 1)), True)
    pieces = [C.conv2d_forward(x[a:z], W, b, (1, 1), ((1, 1), (1, 1))) for a, z in parallel.parts(64)]
    assert len(pieces) == 4
    assert_tree_equal(y, np.concatenate([p[0] for p in pieces]))
    grads = [C.conv2d_backward(p[1], None, (z - a,) + x.shape[1:], W, g[a:z], (1, 1), ((1, 1), (1, 1)), True)
             for p, (a, z) in zip(pieces, parallel.parts(64))]
    assert_tree_equal(dx, np.concatenate([gr[0] for gr in grads]))
    assert_tree_equal(dW, ((grads[0][1] + grads[1][1]) + grads[2][1]) + grads[3][1])
    assert_tree_equal(db, ((grads[0][2] + grads[1][2]) + grads[2][2]) + grads[3][2])
    # and it is the kernel gradient: the one-GEMM sum over all samples, to rounding
    whole = (cols.reshape(-1, 18).T @ g.reshape(-1, 4)).reshape(W.shape)
    np.testing.assert_allclose(dW, whole, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_sums_the_parts_in_order(dtype, monkeypatch):
    """Batch norm's statistics and parameter gradients are the parts' column sums added in order,
    bit for bit; its elementwise passes are the parts' side by side."""
    monkeypatch.setattr(parallel, "PART_BYTES", 64 * 5 * 4 * 3 * np.dtype(dtype).itemsize)  # exactly this batch
    rng = np.random.default_rng(2)
    x = rng.normal(loc=3.0, size=(64, 5, 4, 3)).astype(dtype)
    gamma, beta = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
    y, cache = C.batch_norm_forward(x, gamma, beta, 1e-5, True, beta, gamma)
    bounds = parallel.parts(64)
    assert len(bounds) == 4
    ones = [np.ones(x[a:z].size // 3, dtype=dtype) for a, z in bounds]
    mean = (((ones[0] @ x[0:16].reshape(-1, 3) + ones[1] @ x[16:32].reshape(-1, 3))
             + ones[2] @ x[32:48].reshape(-1, 3)) + ones[3] @ x[48:64].reshape(-1, 3)) / (x.size // 3)
    assert_tree_equal(cache["mean"], mean)
    xc = x - mean
    # a part's sums of squares: einsum over its rows of (width x channels), then the width's channel groups
    rows = [xc[a:z].reshape(-1, 4 * 3) for a, z in bounds]
    sq = [np.einsum("ij,ij->j", r, r).reshape(4, 3).sum(axis=0) for r in rows]
    assert_tree_equal(cache["var"], (((sq[0] + sq[1]) + sq[2]) + sq[3]) / (x.size // 3))
    g = rng.normal(size=x.shape).astype(dtype)
    dx, dgamma, dbeta = C.batch_norm_backward(cache, gamma, g)
    gs = [ones[i] @ g[a:z].reshape(-1, 3) for i, (a, z) in enumerate(bounds)]
    assert_tree_equal(dbeta, ((gs[0] + gs[1]) + gs[2]) + gs[3])
    # and they are the statistics and gradients: the whole-batch formulas, to rounding
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache["var"], x.reshape(-1, 3).var(axis=0), **tol)
    xhat = (x - x.reshape(-1, 3).mean(axis=0)) / np.sqrt(x.reshape(-1, 3).var(axis=0) + 1e-5)
    np.testing.assert_allclose(dgamma, (g * xhat).reshape(-1, 3).sum(axis=0), **tol)
    np.testing.assert_allclose(y, gamma * xhat + beta, **tol)


def test_batch_norm_below_the_part_size_is_one_call_on_the_whole_batch(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    gamma, beta = np.ones(6, np.float32), np.zeros(6, np.float32)
    calls = []
    real = parallel.map_parts
    monkeypatch.setattr(parallel, "map_parts", lambda fn, n: calls.append(n) or real(fn, n))
    y, cache = C.batch_norm_forward(x, gamma, beta, 1e-5, True, beta, gamma)
    C.batch_norm_backward(cache, gamma, y)
    assert calls == []
    assert_tree_equal(cache["mean"], np.ones(64, np.float32) @ x / 64)
    monkeypatch.setattr(parallel, "PART_BYTES", x.nbytes)
    C.batch_norm_backward(cache, gamma, y)
    assert calls == [64, 64]


def test_relu_on_a_large_batch_runs_per_part_with_the_same_values(monkeypatch):
    calls = []
    real = parallel.map_parts
    monkeypatch.setattr(parallel, "map_parts", lambda fn, n: calls.append(n) or real(fn, n))
    rng = np.random.default_rng(4)
    relu = L.LAYERS["relu"]
    for shape, parted in (((64, 8, 8, 64), True), ((64, 8, 8, 63), False)):  # 1 MiB and just below
        x = frozen(rng.normal(size=shape).astype(np.float32))
        g = frozen(rng.normal(size=shape).astype(np.float32))
        calls.clear()
        with threadpool_limits(2, user_api="blas"), parallel.workers():
            y, cache = relu["forward"](L.relu(), {}, x, True, None, None)
            dx, _ = relu["backward"](L.relu(), {}, cache, g, True, None)
        assert calls == ([64, 64] if parted else [])
        assert_tree_equal(y, np.maximum(x, 0))
        assert_tree_equal(dx, g * (x > 0))  # as before the parts: g times the mask (so -0.0 where g < 0)


def test_train_and_predict_of_a_cnn_use_the_workers_and_restore_blas(monkeypatch):
    spec = [L.conv2d(4, 3, padding="same"), L.relu(), L.max_pool(2), L.flatten(), L.dense(3)]
    assert network.uses_parts(spec) and not network.uses_parts(L.mlp([4], n_outputs=3))
    params = F.init_params(spec, (8, 8, 1), seed=0)
    rng = np.random.default_rng(2)
    X, y = frozen(rng.normal(size=(96, 8, 8, 1)).astype(np.float32)), rng.integers(0, 3, 96)
    seen = []
    real = parallel.map_parts

    def spy(fn, n):
        seen.append((parallel.active_workers(), tuple(_blas_threads())))
        return real(fn, n)
    monkeypatch.setattr(C, "map_parts", spy)
    with threadpool_limits(2, user_api="blas"):
        trained, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.optimizers.adam(1e-2),
                             epochs=1, batch_size=32, progress=False)
        assert seen and all(w == 2 and set(blas) == {1} for w, blas in seen)
        assert set(_blas_threads()) == {2}
        seen.clear()
        labels = F.predict(spec, trained, X, loss="softmax_cross_entropy")
        assert seen and all(w == 2 for w, _ in seen) and set(_blas_threads()) == {2}
    seen.clear()
    with threadpool_limits(1, user_api="blas"):  # the same bits with no threads at all
        assert_tree_equal(F.predict(spec, trained, X, loss="softmax_cross_entropy"), labels)
        again, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.optimizers.adam(1e-2),
                           epochs=1, batch_size=32, progress=False)
    assert all(w == 1 for w, _ in seen)
    assert_tree_equal(again, trained)


def test_dense_networks_leave_blas_alone(monkeypatch):
    """No image layer: train and predict never enter the workers, BLAS keeps its threads."""
    spec = L.mlp([8], n_outputs=3)
    params = F.init_params(spec, 5, seed=0)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(200, 5)).astype(np.float32), rng.integers(0, 3, 200)
    seen = []
    real = network.run_forward

    def spy(*args, **kwargs):
        seen.append((parallel.active_workers(), tuple(_blas_threads())))
        return real(*args, **kwargs)
    monkeypatch.setattr(network, "run_forward", spy)
    with threadpool_limits(2, user_api="blas"):
        trained, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.optimizers.sgd(0.1),
                             epochs=1, batch_size=64, progress=False)
        F.predict(spec, trained, X, loss="softmax_cross_entropy")
    assert seen and all(w == 1 and set(blas) == {2} for w, blas in seen)


def test_public_functions_of_a_cnn_run_with_trains_blas_threads(monkeypatch):
    """forward, backward, value_and_grad and predict of an image network enter the workers (BLAS
    at one thread, as inside train), so a hand-written loop of them has train's bits whatever
    BLAS would round differently with two threads."""
    spec = [L.conv2d(4, 3, padding="same"), L.max_pool(2), L.flatten(), L.dense(3)]
    params = F.init_params(spec, (8, 8, 1), seed=0)
    X = frozen(np.random.default_rng(4).normal(size=(40, 8, 8, 1)).astype(np.float32))
    seen = []
    for name in ("run_forward", "run_backward", "objective"):
        real = getattr(network, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen.append((_name, tuple(_blas_threads())))
            return _real(*args, **kwargs)
        monkeypatch.setattr(network, name, spy)
    with threadpool_limits(2, user_api="blas"):
        out, cache = F.forward(spec, params, X[:1])
        F.backward(spec, params, cache, np.ones_like(out))
        F.value_and_grad(spec, params, X, np.zeros(40, int), loss="softmax_cross_entropy")
        F.predict(spec, params, X[:1], loss="softmax_cross_entropy")
        assert set(_blas_threads()) == {2}
    assert {n for n, _ in seen} == {"run_forward", "run_backward", "objective"}
    assert all(set(blas) == {1} for _, blas in seen)


def _predict_in_child(args):
    spec, params, X = args
    return F.predict(spec, params, X, loss="softmax_cross_entropy")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork (POSIX)")
def test_a_forked_child_makes_its_own_threads():
    """After the parent used the workers, a fork-started child (no threads inherited) still
    predicts, on threads of its own, with the parent's bits."""
    import multiprocessing
    spec = [L.conv2d(4, 3, padding="same"), L.max_pool(2), L.flatten(), L.dense(3)]
    params = F.init_params(spec, (8, 8, 1), seed=0)
    X = np.random.default_rng(5).normal(size=(64, 8, 8, 1)).astype(np.float32)
    with threadpool_limits(2, user_api="blas"):
        here = F.predict(spec, params, X, loss="softmax_cross_entropy")  # the parent's pool exists now
        with multiprocessing.get_context("fork").Pool(1) as pool:
            there = pool.apply_async(_predict_in_child, ((spec, params, X),)).get(timeout=120)
    assert_tree_equal(there, here)


def test_the_caller_runs_the_groups_no_worker_has_started(monkeypatch):
    """A queued group that no worker takes (all busy, or none yet) is run by the caller: map_parts
    never only waits, so it cannot deadlock, and a late worker costs nothing. The bits are the
    same whoever runs a part."""
    import queue
    seen = []

    def fn(a, b):
        seen.append(threading.get_ident())
        return np.arange(a, b, dtype=np.float64) * 1.5
    with threadpool_limits(2, user_api="blas"), parallel.workers():
        expected = parallel.map_parts(fn, 128)
        monkeypatch.setitem(parallel._state, "pool", queue.SimpleQueue())  # a queue no thread reads
        seen.clear()
        result = []
        caller = threading.Thread(target=lambda: result.append(parallel.map_parts(fn, 128)), daemon=True)
        caller.start()
        caller.join(timeout=60)  # a caller that only waited would never return: fail, don't hang
        assert result, "map_parts waited for a group no worker will take"
        got = result[0]
    assert set(seen) == {caller.ident}
    assert_tree_equal(got, expected)


def test_an_error_in_a_part_waits_for_the_others_and_propagates():
    import time
    finished = []

    def fn(a, b):
        if a == 0:
            raise ValueError("part 0 failed")
        time.sleep(0.05)
        finished.append(a)
    with threadpool_limits(2, user_api="blas"), parallel.workers():
        with pytest.raises(ValueError, match="part 0 failed"):
            parallel.map_parts(fn, 64)
        assert sorted(finished) == [16, 48]  # the worker's parts (1 and 3) ended before the raise
