"""Losses: hand-computed values, gradients, stability at extreme logits."""
import math
import warnings

import numpy as np
import pytest

import funcnn as F
from funcnn.losses import binary_cross_entropy, mean_squared_error, softmax_cross_entropy


def test_softmax_ce_by_hand():
    out = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    value, grad = softmax_cross_entropy(out, [2, 0])
    l0 = -(3 - math.log(math.e + math.e ** 2 + math.e ** 3))
    l1 = math.log(3)
    assert value == pytest.approx((l0 + l1) / 2, abs=1e-15)
    p0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(grad, np.array([p0 - [0, 0, 1], [1 / 3 - 1, 1 / 3, 1 / 3]]) / 2, atol=1e-15)


def test_binary_ce_by_hand():
    out = np.array([[0.0], [2.0]])
    value, grad = binary_cross_entropy(out, [1, 0], sample_weight=[1.0, 3.0])
    s2 = 1 / (1 + math.exp(-2))
    assert value == pytest.approx((math.log(2) + 3 * -math.log(1 - s2)) / 4, rel=1e-14)
    np.testing.assert_allclose(grad, [[(0.5 - 1) / 4], [3 * s2 / 4]], atol=1e-15)
    # y as (n, 1) is accepted too
    assert binary_cross_entropy(out, np.array([[1], [0]]), [1.0, 3.0])[0] == value


def test_mse_by_hand():
    out = np.array([[1.0, 2.0], [3.0, 5.0]])
    value, grad = mean_squared_error(out, [[0.0, 2.0], [3.0, 3.0]])
    assert value == pytest.approx((1 + 0 + 0 + 4) / 4)
    np.testing.assert_allclose(grad, 2 * np.array([[1.0, 0.0], [0.0, 2.0]]) / 4)
    # one output: y may be 1-D
    assert mean_squared_error(out[:, :1], [0.0, 3.0])[0] == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_finite_without_warnings(dtype):
    big = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            v, g = softmax_cross_entropy(big, [1, 2])
            assert np.isfinite(v) and np.isfinite(g).all() and g.dtype == dtype
            assert v == pytest.approx(2e4 / 2, rel=1e-6)  # first row costs 2e4, second 0
            vb, gb = binary_cross_entropy(big[:, :1], [0, 1])
            assert np.isfinite(vb) and np.isfinite(gb).all() and gb.dtype == dtype
            assert vb == pytest.approx(1e4, rel=1e-6)
            p = F.losses.PROBA["binary_cross_entropy"](big[:, :1])
            assert np.isfinite(p).all()


def test_losses_keep_dtype():
    for dtype in (np.float32, np.float64):
        out = np.ones((3, 2), dtype=dtype)
        assert softmax_cross_entropy(out, [0, 1, 1])[1].dtype == dtype
        assert mean_squared_error(out, np.zeros((3, 2)))[1].dtype == dtype
        assert binary_cross_entropy(out[:, :1], [0, 1, 1])[1].dtype == dtype


def test_sample_weight_equals_repetition():
    rng = np.random.default_rng(0)
    out, y = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    w = np.array([1, 2, 0, 3])
    rep = np.repeat(np.arange(4), w)
    for fn, yy, o in ((softmax_cross_entropy, y, out), (binary_cross_entropy, y % 2, out[:, :1]),
                      (mean_squared_error, out[::-1], out)):
        vw, _ = fn(o, yy, w)
        vr, _ = fn(o[rep], np.asarray(yy)[rep])
        assert vw == pytest.approx(vr, abs=1e-14)


from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

LOGITS = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 5)),
                elements=st.floats(-1e4, 1e4, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(LOGITS, st.data())
def test_property_softmax_ce_finite_and_consistent(logits, data):
    n, k = logits.shape
    y = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = softmax_cross_entropy(logits, y)
    assert np.isfinite(value) and value >= 0 and np.isfinite(grad).all()
    # each row of the gradient is (softmax - onehot) / n: sums to zero, entries in [-1/n, 1/n]
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-12)
    assert (grad <= 1 / n + 1e-15).all() and (grad >= -1 / n - 1e-15).all()
    # shifting every logit of a row leaves the loss unchanged
    assert softmax_cross_entropy(logits - 7.0, y)[0] == pytest.approx(value, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.just(1)), elements=st.floats(-1e4, 1e4)), st.data())
def test_property_binary_ce_matches_softmax_ce_of_two_logits(z, data):
    """BCE(z) == softmax CE on logits [0, z]: two formulations, one value."""
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(z), max_size=len(z))))
    vb, gb = binary_cross_entropy(z, y)
    vs, gs = softmax_cross_entropy(np.column_stack([np.zeros(len(z)), z[:, 0]]), y)
    assert vb == pytest.approx(vs, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(gb[:, 0], gs[:, 1], rtol=1e-9, atol=1e-15)
