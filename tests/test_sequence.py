"""Sequences and tokens (embedding, positional, layer_norm, attention, the sequence loss).

* against PyTorch float64 numbers frozen in tests/data/torch_sequence.npz (made by
  scripts/make_sequence_fixtures.py; no torch needed), and where torch imports, the file is
  rebuilt in memory and checked current;
* central finite differences in float64; purity (read-only inputs, same seed same bits);
  ``train`` = the composition of the public functions, bit for bit; checkpoint/resume;
* every error the contract names (ids outside the vocabulary, T > max_len, d % heads, float
  tokens, labels or weights of the wrong shape).
"""
import importlib.util
import json
import os

import numpy as np
import pytest

import funcnn as F
from funcnn import gradcheck, layers as L, losses as LS, network, sequence as S
from funcnn.train import new_run, train_epoch
from conftest import assert_tree_equal, frozen

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_PATH = os.path.join(HERE, "data", "torch_sequence.npz")
with np.load(DATA_PATH, allow_pickle=False) as _npz:
    DATA = {k: _npz[k] for k in _npz.files}
META = json.loads(str(DATA["cases"]))
CASES = sorted(k for k in META if k != "torch")
CE = "softmax_cross_entropy"
RTOL = 1e-11


def field(case, name):
    return DATA[f"{case}/{name}"]


def group(prefix):
    return {k[len(prefix) + 1:]: v for k, v in DATA.items() if k.startswith(prefix + "/")}


def close(got, expected, what, rtol=RTOL):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * max(scale, 1e-300), err_msg=what)


def close_grads(grads, expected, what, rtol=RTOL):
    """Every gradient to ``rtol``; the key bias's, which is 0 in exact arithmetic (q.bk shifts a query's
    scores over every key by one constant, which softmax ignores), to rounding: both below 1e-12."""
    assert list(grads) == list(expected), (list(grads), list(expected))
    for k in expected:
        if k.startswith("bk_"):
            assert np.abs(grads[k]).max() < 1e-12 and np.abs(expected[k]).max() < 1e-12, (what, k)
        else:
            close(grads[k], expected[k], f"{what}: grads[{k!r}]", rtol)


def kind_cases(kind):
    return [c for c in CASES if META[c]["kind"] == kind]


def test_fixture_has_every_case():
    assert {META[c]["spec"][-1]["type"] for c in kind_cases("layer")} == {"embedding", "positional", "layer_norm",
                                                                          "attention"}
    att = [META[c]["spec"][0] for c in CASES if c.startswith("attention")]
    assert {(a["heads"] > 1, a["causal"]) for a in att} == {(False, False), (False, True), (True, False), (True, True)}
    assert {field(c, "X").shape[1] for c in CASES if c.startswith("attention")} >= {1}
    assert {"chain", "block", "loss_mean", "loss_weighted"} <= set(CASES)


# --------------------------------------------------------------------------- frozen torch numbers

@pytest.mark.parametrize("case", kind_cases("layer"))
def test_layer_against_torch(case):
    """Output (public forward), and the gradients (public backward; the input gradient from the registry entry)."""
    spec = META[case]["spec"]
    params, X, G = group(f"{case}/params"), field(case, "X"), field(case, "G")
    Y, cache = F.forward(spec, params, X)
    close(Y, field(case, "Y"), f"{case}: output")
    close_grads(F.backward(spec, params, cache, G), group(f"{case}/grads"), case)
    if f"{case}/dX" in DATA:  # one float-input layer: its entry's input gradient
        layer = spec[0]
        entry = L.LAYERS[layer["type"]]
        p = {k.rsplit("_", 1)[0]: v for k, v in params.items()}  # "Wq_0" -> "Wq"
        y, c = entry["forward"](layer, p, X, False, None)
        dx, _ = entry["backward"](layer, p, c, G, True)
        close(dx, field(case, "dX"), f"{case}: dX")


@pytest.mark.parametrize("case", kind_cases("loss"))
def test_sequence_loss_against_torch(case):
    w = DATA.get(f"{case}/w")
    value, grad = LS.softmax_cross_entropy(field(case, "output"), field(case, "y"), w)
    close(value, field(case, "value"), f"{case}: value")
    close(grad, field(case, "grad"), f"{case}: grad")


@pytest.mark.parametrize("case", kind_cases("model"))
def test_model_against_torch(case):
    """value_and_grad of a whole model with (n, T) position weights (zeros for padding) and l2."""
    meta = META[case]
    params = group(f"{case}/params")
    value, grads = F.value_and_grad(meta["spec"], params, field(case, "X"), field(case, "y"), loss=meta["loss"],
                                    l2=meta["l2"], sample_weight=field(case, "w"))
    close(value, field(case, "value"), f"{case}: value")
    assert list(grads) == list(params)
    close_grads(grads, group(f"{case}/grads"), case, rtol=1e-10)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the live twin needs torch; "
                    "the frozen tests above cover the same numbers")
def test_fixture_is_current_with_torch():
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
    import make_sequence_fixtures as M
    fresh = M.build()
    assert set(fresh) == set(DATA)
    for k, v in fresh.items():
        if k == "cases":
            assert {c: m for c, m in json.loads(str(v)).items() if c != "torch"} == \
                {c: m for c, m in META.items() if c != "torch"}
        else:
            np.testing.assert_allclose(v, DATA[k], rtol=1e-12, atol=1e-14, err_msg=k)


# --------------------------------------------------------------------------- finite differences

def _lm(V=6, d=8, T=5, heads=2, causal=True, block=True):
    body = [L.layer_norm(), L.attention(heads, causal)]
    mid = [{"type": "residual", "body": body},
           {"type": "residual", "body": [L.layer_norm(), L.dense(10), L.gelu(), L.dense(d)]}] if block else body
    return [L.embedding(V, d), L.positional(T + 2), *mid, L.layer_norm(), L.dense(V)]


def _tokens(rng, n, T, V):
    return rng.integers(0, V, (n, T)), rng.integers(0, V, (n, T))


@pytest.mark.parametrize("heads,causal,T", [(1, False, 4), (2, True, 5), (4, True, 1), (2, False, 3)])
def test_finite_differences(heads, causal, T):
    rng = np.random.default_rng(heads * 10 + T)
    V = 6
    spec = _lm(V, 8, T, heads, causal)
    params = F.init_params(spec, (T,), seed=3, dtype=np.float64)
    params = {k: v + rng.normal(0, 0.1, v.shape) for k, v in params.items()}  # biases and norms off their init
    X, y = _tokens(rng, 3, T, V)
    w = rng.uniform(0, 1, (3, T))
    w[1, -1] = 0
    errors = gradcheck.gradient_errors(spec, params, X, y, loss=CE, l2=0.05, sample_weight=w)
    for k, e in errors.items():
        if k.startswith("bk_"):
            # q.bk adds one constant to a query's scores over every key: softmax ignores it, its gradient is 0
            _, g = F.value_and_grad(spec, params, X, y, loss=CE, l2=0.05, sample_weight=w)
            assert np.abs(g[k]).max() < 1e-12
        else:
            assert e < 1e-6, (k, e)


def test_finite_differences_through_attention_input():
    """Float sequences in: dense on the last axis of (n, T, d), attention's input gradient, dropout."""
    rng = np.random.default_rng(7)
    spec = [L.dense(8), L.attention(2), L.dropout(0.3), L.layer_norm(), L.dense(3)]
    params = F.init_params(spec, (4, 5), seed=1, dtype=np.float64)
    X = rng.normal(size=(3, 4, 5))
    y = rng.integers(0, 3, (3, 4))
    errors = gradcheck.gradient_errors(spec, params, X, y, loss=CE, seed=2)
    assert max(e for k, e in errors.items() if not k.startswith("bk_")) < 1e-6, errors


# --------------------------------------------------------------------------- the arithmetic

def test_dense_on_sequences_is_dense_per_position():
    rng = np.random.default_rng(0)
    spec = [L.dense(6), L.tanh(), L.dense(3), L.softmax()]
    p = F.init_params(spec, 4, seed=0, dtype=np.float64)
    X = rng.normal(size=(5, 7, 4))
    y3 = F.forward(spec, p, X)[0]
    y2 = F.forward(spec, p, X.reshape(-1, 4))[0]
    assert y3.shape == (5, 7, 3)
    np.testing.assert_array_equal(y3.reshape(-1, 3), y2)


def test_masked_softmax_is_stable_and_causal():
    s = np.array([[[1e4, -1e4, 3e4], [5.0, 1e30, -1e30], [0.0, 0.0, 0.0]]])
    A = S.masked_softmax(s, S.causal_mask(3))
    assert np.isfinite(A).all()
    np.testing.assert_array_equal(A[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(A[0, 1], [0, 1, 0])
    np.testing.assert_allclose(A[0, 2], [1 / 3] * 3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 8)) * 1e3  # huge scores
    spec = [L.attention(2, causal=True), L.dense(2)]
    p = F.init_params(spec, (5, 8), seed=0, dtype=np.float64)
    assert np.isfinite(F.forward(spec, p, x)[0]).all()


def test_causal_attention_ignores_the_future():
    rng = np.random.default_rng(2)
    spec = _lm(block=True)
    p = F.init_params(spec, (5,), seed=0, dtype=np.float64)
    X = rng.integers(0, 6, (2, 5))
    Z = X.copy()
    Z[:, 3:] = (Z[:, 3:] + 1) % 6
    a, b = F.forward(spec, p, X)[0], F.forward(spec, p, Z)[0]
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_embedding_backward_accumulates_repeated_ids():
    ids = np.array([[0, 2, 2], [2, 0, 1]])
    g = np.arange(18, dtype=np.float64).reshape(2, 3, 3)
    dE = S.embedding_backward(ids, g, 4)
    expected = np.zeros((4, 3))
    for i in range(2):
        for t in range(3):
            expected[ids[i, t]] += g[i, t]
    np.testing.assert_array_equal(dE, expected)


def test_layer_norm_hand_computed():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    y, _ = S.layer_norm_forward(x, np.array([1.0, 2.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 0.0]), 0.0)
    mu, sd = 3.0, np.sqrt(((x - 3.0) ** 2).mean())
    np.testing.assert_allclose(y, [[(1 - mu) / sd, 2 * (2 - mu) / sd, 1.0, (6 - mu) / sd]], rtol=1e-14)


def test_l2_applies_to_weight_matrices_only():
    spec = _lm()
    p = F.init_params(spec, (5,), seed=0, dtype=np.float64)
    keys = set(network.l2_keys(p))
    assert keys == {k for k in p if k.split("_")[0] in ("W", "Wq", "Wk", "Wv", "Wo")}
    assert any(k.startswith("Wq_") for k in keys) and not any(k.startswith(("E_", "P_", "b", "gamma", "beta"))
                                                             for k in keys)


def test_init_follows_torch():
    p = F.init_params([L.embedding(50, 32), L.attention(4)], (3,), seed=0, dtype=np.float64)
    assert abs(p["E_0"].std() - 1.0) < 0.05  # nn.Embedding: N(0, 1)
    bound = np.sqrt(6 / (4 * 32))  # the (3d, d) in-projection, Xavier-uniform
    for k in ("Wq_1", "Wk_1", "Wv_1"):
        assert np.abs(p[k]).max() <= bound and np.abs(p[k]).max() > 0.9 * bound
    assert np.abs(p["Wo_1"]).max() <= 1 / np.sqrt(32)
    assert all(not p[f"{b}_1"].any() for b in ("bq", "bk", "bv", "bo"))


def test_predict_on_sequences():
    spec = _lm()
    p = F.init_params(spec, (5,), seed=0)
    X = np.random.default_rng(0).integers(0, 6, (4, 5))
    proba = F.predict_proba(spec, p, X, loss=CE)
    assert proba.shape == (4, 5, 6) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(-1), 1, rtol=1e-6)
    np.testing.assert_array_equal(F.predict(spec, p, X, loss=CE), proba.argmax(-1))
    scores = F.evaluate(spec, p, X, X, loss=CE)
    assert 0 <= scores["accuracy"] <= 1


def test_token_ids_stay_integers_and_float32_trains():
    spec = _lm()
    p = F.init_params(spec, (5,), seed=0)
    X, y = _tokens(np.random.default_rng(0), 6, 5, 6)
    out, cache = F.forward(spec, p, X.astype(np.int32))
    assert out.dtype == np.float32 and cache["layers"][0].dtype == np.int32
    params, hist = F.train(spec, p, X, y, loss=CE, optimizer=F.adam(1e-2), epochs=3, batch_size=4, progress=False)
    assert all(v.dtype == np.float32 for v in params.values()) and len(hist["loss"]) == 3


def test_sample_is_pure_and_greedy_is_argmax():
    spec = _lm(V=6, T=5)
    p = F.init_params(spec, (5,), seed=0, dtype=np.float64)
    prompt = frozen(np.array([1, 2, 3]))
    a = S.sample(spec, p, prompt, 10, temperature=1.0, seed=4)
    b = S.sample(spec, p, prompt, 10, temperature=1.0, seed=4)
    assert a.shape == (13,) and (a[:3] == prompt).all() and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    g = S.sample(spec, p, prompt, 3, temperature=0.0)
    for i in range(3):
        window = g[max(0, 3 + i - 7):3 + i][-7:]
        assert g[3 + i] == F.forward(spec, p, window[None])[0][0, -1].argmax()


# --------------------------------------------------------------------------- purity, composition, resume

def test_purity_read_only_inputs_and_same_bits():
    spec = _lm()
    rng = np.random.default_rng(0)
    X, y = (frozen(a) for a in _tokens(rng, 6, 5, 6))
    w = frozen(rng.uniform(0, 1, (6, 5)))
    p = frozen(F.init_params(spec, (5,), seed=0, dtype=np.float64))
    before = {k: v.copy() for k, v in p.items()}
    out, cache = F.forward(spec, p, X, training=True, seed=1)
    F.backward(spec, p, frozen(cache), frozen(np.ones_like(out)))
    v1 = F.value_and_grad(spec, p, X, y, loss=CE, sample_weight=w, seed=1)
    v2 = F.value_and_grad(spec, p, X, y, loss=CE, sample_weight=w, seed=1)
    assert_tree_equal(v1, v2)
    r1 = F.train(spec, p, X, y, loss=CE, optimizer=F.adam(1e-2), epochs=2, batch_size=4, sample_weight=w,
                 progress=False, validation_data=(X, y))
    r2 = F.train(spec, p, X, y, loss=CE, optimizer=F.adam(1e-2), epochs=2, batch_size=4, sample_weight=w,
                 progress=False, validation_data=(X, y))
    assert_tree_equal(r1, r2)
    F.predict(spec, p, X, loss=CE)
    assert_tree_equal(p, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_batch_train_is_value_and_grad_plus_update(dtype):
    spec = _lm()
    rng = np.random.default_rng(1)
    X, y = _tokens(rng, 6, 5, 6)
    w = rng.uniform(0, 1, (6, 5)).astype(dtype)
    p0 = F.init_params(spec, (5,), seed=2, dtype=dtype)
    opt = F.adam(1e-2)
    got, _ = F.train(spec, p0, X, y, loss=CE, optimizer=opt, epochs=4, l2=1e-2, sample_weight=w, progress=False)
    params, state = p0, F.init_state(opt, p0)
    for _ in range(4):
        _, g = F.value_and_grad(spec, params, X, y, loss=CE, l2=1e-2, sample_weight=w, seed=np.random.default_rng(0))
        params, state = F.update(opt, params, g, state)
    assert_tree_equal(got, params)


def test_minibatch_train_is_the_documented_loop():
    spec = _lm()
    spec.insert(2, L.dropout(0.2))
    rng = np.random.default_rng(1)
    X, y = _tokens(rng, 10, 5, 6)
    p0 = F.init_params(spec, (5,), seed=2, dtype=np.float64)
    opt = F.sgd(0.1, momentum=0.9)
    got, hist = F.train(spec, p0, X, y, loss=CE, optimizer=opt, epochs=3, batch_size=4, seed=5, progress=False)
    r = np.random.default_rng(5)
    params, state = p0, F.init_state(opt, p0)
    for _ in range(3):
        perm = r.permutation(10)
        for b in range(0, 10, 4):
            idx = perm[b:b + 4]
            _, g = F.value_and_grad(spec, params, X[idx], y[idx], loss=CE, seed=r)
            params, state = F.update(opt, params, g, state)
    assert_tree_equal(got, params)
    run = new_run(spec, p0, opt, seed=5)
    for _ in range(3):
        run = train_epoch(spec, run, X, y, loss=CE, optimizer=opt, batch_size=4)
    assert_tree_equal(run["params"], got)


def test_checkpoint_resume_is_bit_exact(tmp_path):
    spec = _lm()
    rng = np.random.default_rng(3)
    X, y = _tokens(rng, 12, 5, 6)
    Xv, yv = _tokens(rng, 4, 5, 6)
    p0 = F.init_params(spec, (5,), seed=1)

    def run(epochs, **kw):
        return F.train(spec, p0, X, y, loss=CE, optimizer=F.adam(3e-3), epochs=epochs, batch_size=5,
                       validation_data=(Xv, yv), seed=7, progress=False, **kw)
    full = run(4)
    path = str(tmp_path / "lm.npz")
    run(2, checkpoint=path)
    assert_tree_equal(run(4, checkpoint=path), full)
    model = F.load(path)
    assert model["spec"] == spec
    np.testing.assert_array_equal(F.predict(model["spec"], model["params"], Xv, loss=CE),
                                  F.predict(spec, full[0], Xv, loss=CE))


# --------------------------------------------------------------------------- errors

def test_id_outside_the_vocabulary_names_sample_and_position():
    spec = _lm(V=6)
    p = F.init_params(spec, (5,), seed=0)
    X = np.zeros((3, 5), dtype=np.int64)
    X[2, 4] = 6
    with pytest.raises(ValueError, match=r"token id 6 at sample 2, position 4 .*\[0, 6\)"):
        F.predict(spec, p, X, loss=CE)
    X[2, 4] = -1
    with pytest.raises(ValueError, match=r"token id -1 at sample 2, position 4"):
        F.train(spec, p, X, X * 0, loss=CE, optimizer=F.adam(), epochs=1, progress=False)


def test_float_tokens_are_refused():
    spec = _lm()
    p = F.init_params(spec, (5,), seed=0)
    X = np.zeros((2, 5))
    for call in (lambda: F.forward(spec, p, X), lambda: F.predict(spec, p, X, loss=CE),
                 lambda: F.value_and_grad(spec, p, X, X.astype(int), loss=CE),
                 lambda: F.train(spec, p, X, X.astype(int), loss=CE, optimizer=F.adam(), epochs=1, progress=False),
                 lambda: F.train(spec, p, X.astype(int), X.astype(int), loss=CE, optimizer=F.adam(), epochs=1,
                                 progress=False, validation_data=(X, X.astype(int)))):
        with pytest.raises(TypeError, match="integer token ids"):
            call()


def test_sequence_longer_than_max_len():
    spec = _lm(T=5)  # positional max_len = 7
    p = F.init_params(spec, (5,), seed=0)
    with pytest.raises(ValueError, match=r"spec\[1\] \(positional\).*T = 8.*max_len = 7"):
        F.predict(spec, p, np.zeros((2, 8), dtype=int), loss=CE)
    with pytest.raises(ValueError, match="T = 9.*max_len = 7"):
        F.init_params(spec, (9,), seed=0)


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"spec\[2\].*d = 10 is not divisible by heads = 4"):
        F.init_params([L.embedding(5, 10), L.positional(8), L.attention(4), L.dense(5)], (6,))
    with pytest.raises(ValueError, match=r"spec\[2\]\.body\[1\].*d = 10 is not divisible by heads = 3"):
        F.init_params([L.embedding(5, 10), L.positional(8), {"type": "residual", "body": [L.layer_norm(),
                       L.attention(3)]}, L.dense(5)], (6,))


@pytest.mark.parametrize("layer,match", [
    ({"type": "attention", "heads": 0}, "'heads' must be a positive int"),
    ({"type": "attention", "heads": 2, "causal": "yes"}, "'causal' must be true or false"),
    ({"type": "attention", "heads": 2, "mask": True}, "unknown key"),
    ({"type": "embedding", "vocab": 5}, "needs 'dim'"),
    ({"type": "embedding", "vocab": 5, "dim": 4, "std": -1}, "'std' must be a positive number"),
    ({"type": "positional"}, "needs 'max_len'"),
    ({"type": "layer_norm", "eps": 0}, "'eps' must be a positive number"),
])
def test_bad_layer_specs(layer, match):
    with pytest.raises((ValueError, TypeError), match=match):
        L.check_spec([layer, L.dense(2)])


def test_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"embedding layer takes token ids \(n_samples, T\).*\(5, 4\)"):
        F.init_params([L.embedding(5, 4), L.dense(2)], (5, 4))
    with pytest.raises(ValueError, match=r"attention layer takes sequences.*embedding layer first"):
        F.init_params([L.attention(2), L.dense(2)], (6,))


def test_labels_and_weights_of_the_wrong_shape():
    spec = _lm()
    p = F.init_params(spec, (5,), seed=0)
    X, y = _tokens(np.random.default_rng(0), 4, 5, 6)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 5\) .* got \(4,\)"):
        F.value_and_grad(spec, p, X, y[:, 0], loss=CE)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 5\)"):
        F.train(spec, p, X, y[:, :4], loss=CE, optimizer=F.adam(), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"validation_data y must have shape \(2, 5\)"):
        F.train(spec, p, X, y, loss=CE, optimizer=F.adam(), epochs=1, progress=False,
                validation_data=(X[:2], y[:2, 0]))
    bad = y.copy()
    bad[3, 1] = 6
    with pytest.raises(ValueError, match=r"y at sample 3, position 1 is 6"):
        F.value_and_grad(spec, p, X, bad, loss=CE)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4, 5\)"):
        F.value_and_grad(spec, p, X, y, loss=CE, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="mean_squared_error takes outputs"):
        F.value_and_grad(spec, p, X, np.zeros((4, 5, 6)), loss="mean_squared_error")
    with pytest.raises(ValueError, match=r"y must have shape \(3, 4\)"):
        LS.softmax_cross_entropy(np.zeros((3, 4, 5)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        F.value_and_grad(spec, p, X, y, loss=CE, sample_weight=np.zeros((4, 5)))


# --------------------------------------------------------------------------- the scripts

SCRIPTS = os.path.join(os.path.dirname(HERE), "scripts")


def _script(name):
    import importlib.util as iu
    import sys
    if SCRIPTS not in sys.path:
        sys.path.insert(0, SCRIPTS)
    spec = iu.spec_from_file_location(name, os.path.join(SCRIPTS, f"{name}.py"))
    module = iu.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def corpus(tmp_path):
    """A real text (this repository's README, repeated to the script's minimum size)."""
    with open(os.path.join(os.path.dirname(HERE), "README.md"), "rb") as fh:
        text = fh.read()
    path = tmp_path / "corpus.txt"
    path.write_bytes(text * (1 + 20_000 // len(text)))
    return str(path)


def test_spec_file_is_the_scripts_transformer():
    ct = _script("char_transformer")
    with open(os.path.join(SCRIPTS, "specs", "char_transformer.json")) as fh:
        assert json.load(fh) == ct.transformer_spec()
    L.check_spec(ct.transformer_spec())


def test_char_transformer_quick_matches_torch_and_saves_a_sampleable_model(corpus, tmp_path, capsys):
    ct = _script("char_transformer")
    model = str(tmp_path / "lm.npz")
    args = ["--quick", "--no-plots", "--save", model] + ([] if importlib.util.find_spec("torch") else ["--no-torch"])
    assert ct.main([corpus] + args) == 0
    out = capsys.readouterr().out
    assert "bigram" in out and "--- sample" in out
    if importlib.util.find_spec("torch"):
        line = next(l for l in out.splitlines() if l.startswith("funcnn vs PyTorch"))
        assert abs(float(line.split("loss ")[1].split(" %")[0])) < 0.5  # 12 steps from the same weights
    assert _script("sample_text").main([model, "--prompt", "Fun", "--n", "5", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    _script("sample_text").main([model, "--prompt", "Fun", "--n", "5", "--seed", "3"])
    assert capsys.readouterr().out == first and first.startswith("Fun")


def test_char_transformer_bench_mode(corpus, capsys):
    ct = _script("char_transformer")
    assert ct.main([corpus, "--quick", "--bench", "funcnn"]) == 0
    times = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step_seconds"]
    assert len(times) == 9 and all(t > 0 for t in times)


def test_baselines_hand_computed():
    ct = _script("char_transformer")
    train, val = np.array([97, 98, 97, 98]), np.array([97, 98])
    uni, bi = ct.baselines(train, val, np.array([97, 98]))
    assert uni == pytest.approx(1.0)  # (2 + 1) / (4 + 2) = 1/2 each: 1 bit
    assert bi == pytest.approx(-np.log2(3 / 4))  # a -> b twice in 2 a's: (2 + 1) / (2 + 2)


def test_cli_trains_a_language_model_on_a_text_file(tmp_path, capsys):
    from funcnn import cli
    ct = _script("char_transformer")
    with open(os.path.join(os.path.dirname(HERE), "README.md"), "rb") as fh:
        (tmp_path / "t.txt").write_bytes(fh.read()[:4000])
    spec_path = tmp_path / "lm.json"
    spec_path.write_text(json.dumps(ct.transformer_spec(256, 8, 2, 1, 16)))
    out = str(tmp_path / "lm.npz")
    args = ["train", "--data", f"text:{tmp_path / 't.txt'}", "--spec", str(spec_path), "--epochs", "2",
            "--out", out, "--no-plot", "--quiet"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "windows of 16 bytes" in text and "bits/char" in text
    model = F.load(out)
    assert model["data"]["context"] == 16 and len(model["history"]["loss"]) == 2
    ids = S.sample(model["spec"], model["params"], np.array([70, 117]), 4, seed=0)
    assert ids.shape == (6,) and ids.max() < 256
    assert cli.main(["sweep", "--data", f"text:{tmp_path / 't.txt'}"]) != 0
    assert "funcnn sweep takes tabular data" in capsys.readouterr().err
    assert cli.main(["evaluate", out, "--data", "digits"]) != 0
    assert "language model trained on text" in capsys.readouterr().err
    assert cli.main(["train", "--data", f"text:{tmp_path / 'none.txt'}", "--spec", str(spec_path), "--no-plot"]) != 0
    assert "no such file" in capsys.readouterr().err
    spec_path.write_text(json.dumps([L.embedding(100, 8), L.dense(100)]))
    assert cli.main(["train", "--data", f"text:{tmp_path / 't.txt'}", "--spec", str(spec_path), "--no-plot",
                     "--context", "8"]) != 0
    assert "vocab 256" in capsys.readouterr().err
