"""Purity of the core: read-only inputs pass through, nothing is modified, same seed → same bits."""
import numpy as np
import pytest

import funcnn as F
from funcnn import gradcheck, losses
from conftest import assert_tree_equal, frozen

SPEC = [F.dense(6), F.relu(), F.dropout(0.3), F.dense(5), F.sigmoid(), F.dense(3)]


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    params = F.init_params(SPEC, 4, seed=0, dtype=np.float64)
    X, y, w = rng.normal(size=(8, 4)), rng.integers(0, 3, 8), rng.uniform(0.5, 1.5, 8)
    return frozen(params), frozen(X), frozen(y), frozen(w)


def test_init_params_is_deterministic():
    assert_tree_equal(F.init_params(SPEC, 4, seed=3), F.init_params(SPEC, 4, seed=3))
    a, b = F.init_params(SPEC, 4, seed=3), F.init_params(SPEC, 4, seed=4)
    assert not np.array_equal(a["W_0"], b["W_0"])
    g1, g2 = np.random.default_rng(1), np.random.default_rng(1)
    assert_tree_equal(F.init_params(SPEC, 4, seed=g1), F.init_params(SPEC, 4, seed=g2))


def test_forward_backward_readonly(setup):
    params, X, y, w = setup
    before = frozen(params)
    out1, cache1 = F.forward(SPEC, params, X, training=True, seed=5)
    out2, cache2 = F.forward(SPEC, params, X, training=True, seed=5)
    assert_tree_equal(out1, out2)
    G = frozen(np.ones_like(out1))
    g1 = F.backward(SPEC, params, frozen(cache1), G)
    g2 = F.backward(SPEC, params, cache2, G)
    assert_tree_equal(g1, g2)
    assert_tree_equal(params, before)
    assert_tree_equal(G, np.ones_like(out1))


def test_value_and_grad_readonly(setup):
    params, X, y, w = setup
    r1 = F.value_and_grad(SPEC, params, X, y, loss="softmax_cross_entropy", l2=0.1, sample_weight=w, seed=2)
    r2 = F.value_and_grad(SPEC, params, X, y, loss="softmax_cross_entropy", l2=0.1, sample_weight=w, seed=2)
    assert_tree_equal(r1, r2)
    r3 = F.value_and_grad(SPEC, params, X, y, loss="softmax_cross_entropy", l2=0.1, sample_weight=w, seed=3)
    assert r1[0] != r3[0]


def test_float32_params_with_float64_readonly_X(setup):
    _, X, y, _ = setup
    params = frozen(F.init_params(SPEC, 4, seed=0))
    v, g = F.value_and_grad(SPEC, params, X, y, loss="softmax_cross_entropy", seed=0)
    assert all(a.dtype == np.float32 for a in g.values())


def test_predict_readonly(setup):
    params, X, y, _ = setup
    for fn in (F.predict, F.predict_proba):
        assert_tree_equal(fn(SPEC, params, X, loss="softmax_cross_entropy"),
                          fn(SPEC, params, X, loss="softmax_cross_entropy"))
    spec1 = SPEC[:-1] + [F.dense(1)]
    p1 = frozen(F.init_params(spec1, 4, seed=0))
    F.predict(spec1, p1, X, loss="binary_cross_entropy")
    F.predict(spec1, p1, X, loss="mean_squared_error")


def test_losses_readonly(setup):
    _, X, y, w = setup
    out = frozen(np.random.default_rng(1).normal(size=(8, 3)))
    for name, fn in losses.LOSSES.items():
        o = out[:, :1] if name == "binary_cross_entropy" else out
        yy = {"softmax_cross_entropy": y, "binary_cross_entropy": frozen(y % 2)}.get(name, out * 0.5)
        assert_tree_equal(fn(o, yy, w), fn(o, yy, w))


def test_gradcheck_readonly(setup):
    params, X, y, w = setup
    before = frozen(params)
    assert gradcheck.check_gradients(SPEC, params, X, y, loss="softmax_cross_entropy", seed=1) < 1e-6
    assert_tree_equal(params, before)


def test_evaluate_readonly(setup):
    params, X, y, w = setup
    a = F.evaluate(SPEC, params, X, y, loss="softmax_cross_entropy", sample_weight=w)
    assert a == F.evaluate(SPEC, params, X, y, loss="softmax_cross_entropy", sample_weight=w)
    assert set(a) == {"loss", "accuracy"}
