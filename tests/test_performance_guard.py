"""Guards for train's hot loop that do not time anything.

They fail if someone reintroduces what made the loop slow:

* a copy of the whole data set per epoch or per batch (tracemalloc peak during an epoch);
* a float64 array in a float32 run (every array entering or leaving a layer, the loss and
  the optimizer step is checked);
* per-batch validation of the labels;
* an in-place optimizer step on the flat buffers that drifts from the public ``update``
  (bit for bit, every optimizer), or a loop that mutates the params it has handed out.
"""
import tracemalloc

import numpy as np
import pytest

import funcnn as F
from funcnn import layers, losses, network
from funcnn import optimizers as O
from funcnn.train import train
from conftest import assert_tree_equal, optimizer_cases

CE = "softmax_cross_entropy"


def _data(n=20_000, d=100, k=10, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = (X[:, :k].argmax(axis=1)).astype(np.int64)
    return X, y


def test_no_dataset_copy_in_the_training_loop():
    """Peak extra memory during one full epoch stays far below the size of the data set.

    Any copy of X (a per-epoch shuffled copy, or a per-batch one) costs at least
    X.nbytes; the loop itself only needs the batch, the activations and the params.
    """
    X, y = _data()
    spec = [F.dense(32), F.relu(), F.dense(10)]
    params = F.init_params(spec, X.shape[1], seed=0)
    seen = {}

    def probe(epoch, p, history):
        if epoch == 1:  # the one-off validation and setup are behind us: measure epoch 2 alone
            seen["start"] = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        elif epoch == 2:
            seen["peak"] = tracemalloc.get_traced_memory()[1]

    tracemalloc.start()
    try:
        train(spec, params, X, y, loss=CE, optimizer=O.adam(1e-3), epochs=2, batch_size=64, seed=0,
              progress=False, callbacks=[probe])
    finally:
        tracemalloc.stop()
    extra = seen["peak"] - seen["start"]
    # batch (64 x 100 float32 = 25 kB) + activations + params and slots (~60 kB) + the permutation
    # (160 kB) + Python objects: a few hundred kB. X is 8 MB.
    assert extra < 0.1 * X.nbytes, f"epoch 2 allocated up to {extra / 1e6:.1f} MB for an {X.nbytes / 1e6:.0f} MB X"


def _wrap_checking(record, name, fn):
    def wrapped(*args):
        out = fn(*args)
        for a in list(args) + list(out if isinstance(out, tuple) else (out,)):
            for v in (a.values() if isinstance(a, dict) else [a]):
                if isinstance(v, np.ndarray):
                    record.append((name, v.dtype))
        return out
    return wrapped


@pytest.mark.parametrize("spec", [
    [F.dense(16), F.relu(), F.dropout(0.2), F.dense(8), F.tanh(), F.dense(3)],
    [F.dense(16), F.leaky_relu(0.1), F.dense(8), F.sigmoid(), F.dense(3)],
], ids=["relu-dropout-tanh", "leaky-sigmoid"])
@pytest.mark.parametrize("loss", [CE, "mean_squared_error"])
def test_float32_run_stays_float32(monkeypatch, spec, loss):
    """float64 inputs, sample weights and targets; float32 params: nothing in the loop is float64."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))                       # float64, converted once by train
    y = rng.integers(0, 3, 300) if loss == CE else rng.normal(size=(300, 3))
    w = rng.uniform(0.5, 1.5, 300)                      # float64 too
    seen = []
    for kind, entry in layers.LAYERS.items():
        for fn_name in ("forward", "backward"):
            monkeypatch.setitem(entry, fn_name, _wrap_checking(seen, f"{kind}.{fn_name}", entry[fn_name]))
    monkeypatch.setitem(losses.CORES, loss, _wrap_checking(seen, loss, losses.CORES[loss]))
    steps = []
    real_rule = O.OPTIMIZERS["adam"]["rule"]

    def rule(opt, lr, t, p, g, slots, out):
        steps.append([a.dtype for a in (p, g, *slots, out[0], *out[1], out[2])])
        return real_rule(opt, lr, t, p, g, slots, out)
    monkeypatch.setitem(O.OPTIMIZERS["adam"], "rule", rule)

    params = F.init_params(spec, 5, seed=0)
    out, history = train(spec, params, X, y, loss=loss, optimizer=O.adam(1e-2), epochs=2, batch_size=32,
                         l2=1e-3, sample_weight=w, validation_data=(X[:50], y[:50]), seed=0, progress=False)
    floats = {(name, dt) for name, dt in seen if dt.kind == "f"}
    assert floats and all(dt == np.float32 for _, dt in floats), sorted(str(f) for f in floats if f[1] != np.float32)
    assert {name.split(".")[-1] for name, _ in floats} >= {"forward", "backward"}
    assert len(steps) == 2 * 10 and all(dt == np.float32 for s in steps for dt in s)
    assert all(v.dtype == np.float32 for v in out.values())
    assert all(isinstance(v, float) for h in history.values() for v in h)


def test_labels_are_validated_once_not_per_batch(monkeypatch):
    from funcnn import validation as _checks
    calls = []
    real = _checks.check_labels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(losses, "check_labels", counting)
    X, y = _data(n=2000, d=10)
    spec = [F.dense(8), F.relu(), F.dense(10)]
    train(spec, F.init_params(spec, 10, seed=0), X, y, loss=CE, optimizer=O.sgd(0.1), epochs=3, batch_size=50,
          validation_data=(X[:100], y[:100]), progress=False)
    assert len(calls) == 2  # y and the validation y, up front: not once per each of the 120 batches


OPTS = optimizer_cases()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTS, ids=lambda o: f"{o['name']}-{sorted(o.items())!s:.60}")
def test_flat_inplace_step_is_update_bit_for_bit(opt, dtype):
    """train's step (the rule on one flat buffer, in place) follows update() bit for bit."""
    rng = np.random.default_rng(0)
    shapes = {"W_0": (37, 23), "b_0": (23,), "W_2": (23, 5), "b_2": (5,)}
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    flat = lambda d: np.concatenate([d[k].ravel() for k in shapes])  # noqa: E731
    P = flat(params)
    names = O.slot_names(opt)
    slots = tuple(np.zeros_like(P) for _ in names)
    tmp = np.empty_like(P)
    state = O.init_state(opt, params)
    for step in range(8):
        grads = {k: (rng.standard_normal(s) * 10.0 ** rng.integers(-3, 2, s)).astype(dtype)
                 for k, s in shapes.items()}
        grads["b_0"][step % 5] = 0.0
        params, state = O.update(opt, params, grads, state)
        O.apply_rule(opt, step, P, flat(grads), slots, (P, slots, tmp))
        assert flat(params).tobytes() == P.tobytes(), f"params differ at step {step}"
        for name, arr in zip(names, slots):
            assert flat(state[name]).tobytes() == arr.tobytes(), f"{name} differs at step {step}"


def test_adam_in_train_follows_update():
    """A whole train run with adam against the same minibatches through value_and_grad + update, bit for bit."""
    X, y = _data(n=300, d=6, k=3)
    spec = [F.dense(8), F.tanh(), F.dense(3)]
    p0 = F.init_params(spec, 6, seed=0, dtype=np.float64)
    opt = O.adam(1e-2)
    got, _ = train(spec, p0, X, y, loss=CE, optimizer=opt, epochs=3, batch_size=64, seed=7, progress=False)
    rng = np.random.default_rng(7)
    q, state = p0, O.init_state(opt, p0)
    for _ in range(3):
        perm = rng.permutation(300)
        for i in range(0, 300, 64):
            _, g = F.value_and_grad(spec, q, X[perm[i:i + 64]], y[perm[i:i + 64]], loss=CE, seed=rng)
            q, state = O.update(opt, q, g, state)
    assert_tree_equal(got, q)


def test_handed_out_params_are_never_mutated():
    """Callbacks get params that the loop (which updates its own buffers in place) never touches again."""
    X, y = _data(n=500, d=10)
    spec = [F.dense(8), F.relu(), F.dense(10)]
    got = []
    out, _ = train(spec, F.init_params(spec, 10, seed=0), X, y, loss=CE, optimizer=O.adam(1e-2), epochs=3,
                   batch_size=50, progress=False,
                   callbacks=[lambda e, p, h: got.append((p, {k: v.copy() for k, v in p.items()}))])
    for p, snapshot in got:
        assert_tree_equal(p, snapshot)
    assert not any(np.shares_memory(a, b) for (p, _), (q, _) in zip(got, got[1:]) for a, b in zip(p.values(), q.values()))
    assert_tree_equal(out, got[-1][1])


def test_backward_into_buffers_matches_backward():
    """The gradients written into train's buffers are the bits backward() returns."""
    rng = np.random.default_rng(3)
    spec = [F.dense(16), F.relu(), F.dense(8), F.tanh(), F.dense(4)]
    params = F.init_params(spec, 6, seed=0)
    X = rng.normal(size=(20, 6)).astype(np.float32)
    out, cache = F.forward(spec, params, X, training=True, seed=0)
    G = rng.normal(size=out.shape).astype(np.float32)
    expected = F.backward(spec, params, cache, G)
    bufs = {k: np.full_like(v, np.nan) for k, v in params.items()}
    got = network.run_backward(spec, network.layer_params(spec, params), cache["layers"], G.copy(),
                               g_is_scratch=True, grads_out=network.layer_params(spec, bufs))
    assert_tree_equal(bufs, expected)
    assert all(np.shares_memory(got[k], bufs[k]) for k in bufs)


@pytest.mark.parametrize("layout", ["C", "F", "transposed view", "strided"])
def test_fast_softmax_loss_handles_any_layout(layout):
    """The trusting softmax loss indexes a flattened array: any memory layout of the output works."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 7)) * 3
    y = rng.integers(0, 7, 40)
    ref = losses.softmax_cross_entropy(np.ascontiguousarray(base), y)
    out = {"C": np.ascontiguousarray(base), "F": np.asfortranarray(base), "transposed view": base.T.copy().T,
           "strided": np.repeat(base, 2, axis=1)[:, ::2]}[layout]
    value, grad = losses.softmax_cross_entropy(out, y)
    assert value == ref[0] and np.array_equal(grad, ref[1])


def test_validation_makes_no_dataset_sized_temporary():
    """train checks X once without an (n, d) scratch array (check_X's isfinite mask is n*d bytes)."""
    X, y = _data(n=20_000, d=400)
    spec = [F.dense(16), F.relu(), F.dense(10)]
    params = F.init_params(spec, X.shape[1], seed=0)
    tracemalloc.start()
    try:
        train(spec, params, X, y, loss=CE, optimizer=O.adam(1e-3), epochs=1, batch_size=256, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.15 * X.nbytes, f"train allocated up to {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.0f} MB X"


def test_bad_X_still_reported_by_check_X():
    X, y = _data(n=200, d=10)
    spec = [F.dense(4), F.relu(), F.dense(10)]
    params = F.init_params(spec, 10, seed=0)
    bad = X.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at row 7, column 3\)"):
        train(spec, params, bad, y, loss=CE, optimizer=O.sgd(0.1), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"validation_data X contains NaN or inf"):
        train(spec, params, X, y, loss=CE, optimizer=O.sgd(0.1), epochs=1, progress=False, validation_data=(bad, y))
    huge = X * np.float32(1e36)  # finite, but its sum overflows: the full check runs and accepts it
    train(spec, params, huge, y, loss=CE, optimizer=O.sgd(0.0), epochs=1, progress=False)
