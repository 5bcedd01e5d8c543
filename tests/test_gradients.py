"""Analytic gradients against central finite differences, in float64."""
import numpy as np
import pytest

import funcnn as F
from funcnn.gradcheck import check_gradients, gradient_errors, numerical_gradient, relative_error

TOL = 1e-6
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax"]


def _data(rng, n=9, d=4):
    X = rng.normal(size=(n, d))
    return X


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "mean_squared_error"])
def test_every_layer_and_loss(rng, act, loss):
    k = {"softmax_cross_entropy": 3, "binary_cross_entropy": 1, "mean_squared_error": 2}[loss]
    spec = [F.dense(6), {"type": act}, F.dense(5), F.tanh(), F.dense(k)]
    params = F.init_params(spec, 4, seed=1, dtype=np.float64)
    # non-zero biases so every code path of the bias gradient is exercised
    params = {key: v + (0.1 * rng.normal(size=v.shape) if key.startswith("b_") else 0) for key, v in params.items()}
    X = _data(rng)
    y = {"softmax_cross_entropy": rng.integers(0, 3, 9), "binary_cross_entropy": rng.integers(0, 2, 9),
         "mean_squared_error": rng.normal(size=(9, 2))}[loss]
    err = check_gradients(spec, params, X, y, loss=loss)
    assert err < TOL, err


def test_l2_and_sample_weight(rng):
    spec = [F.dense(7), F.sigmoid(), F.dense(3)]
    params = F.init_params(spec, 5, seed=2, dtype=np.float64)
    X, y, w = rng.normal(size=(11, 5)), rng.integers(0, 3, 11), rng.uniform(0, 2, 11)
    for kwargs in ({"l2": 0.3}, {"sample_weight": w}, {"l2": 0.05, "sample_weight": w}):
        errs = gradient_errors(spec, params, X, y, loss="softmax_cross_entropy", **kwargs)
        assert max(errs.values()) < TOL, (kwargs, errs)
    for loss, yy in (("binary_cross_entropy", rng.integers(0, 2, 11)), ("mean_squared_error", rng.normal(size=11))):
        spec1 = spec[:-1] + [F.dense(1)]
        p1 = F.init_params(spec1, 5, seed=3, dtype=np.float64)
        assert check_gradients(spec1, p1, X, yy, loss=loss, l2=0.2, sample_weight=w) < TOL


def test_dropout_at_fixed_seed(rng):
    spec = [F.dense(8), F.relu(), F.dropout(0.4), F.dense(6), F.leaky_relu(0.1), F.dropout(0.25), F.dense(3)]
    params = F.init_params(spec, 4, seed=4, dtype=np.float64)
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    assert check_gradients(spec, params, X, y, loss="softmax_cross_entropy", seed=7) < TOL
    # the masks are really active: training and inference outputs differ
    out_train, _ = F.forward(spec, params, X, training=True, seed=7)
    out_eval, _ = F.forward(spec, params, X)
    assert not np.allclose(out_train, out_eval)


def test_backward_against_numerical_input_independent(rng):
    """backward() with an arbitrary grad_output equals the derivative of <output, G>."""
    spec = [F.dense(5), F.softmax(), F.dense(4), F.sigmoid(), F.dense(3)]
    params = F.init_params(spec, 3, seed=5, dtype=np.float64)
    X, G = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    _, cache = F.forward(spec, params, X)
    grads = F.backward(spec, params, cache, G)
    for key in params:
        num = numerical_gradient(lambda v: float((F.forward(spec, {**params, key: v}, X)[0] * G).sum()), params[key])
        assert relative_error(grads[key], num) < TOL, key


def test_gradcheck_detects_a_wrong_gradient(rng, monkeypatch):
    """The checker itself can fail: break the dense backward and it must notice."""
    from funcnn import layers
    spec = [F.dense(4), F.tanh(), F.dense(2)]
    params = F.init_params(spec, 3, seed=6, dtype=np.float64)
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
    assert check_gradients(spec, params, X, y, loss="softmax_cross_entropy") < TOL
    good = layers.LAYERS["dense"]["backward"]

    def wrong(layer, p, x, g, need_dx, out=None):  # seed 000's bug: a mean instead of a sum for b
        dx, grads = good(layer, p, x, g, need_dx, out)
        return dx, {"W": grads["W"], "b": grads["b"] / x.shape[0]}
    monkeypatch.setitem(layers.LAYERS["dense"], "backward", wrong)
    assert check_gradients(spec, params, X, y, loss="softmax_cross_entropy") > 1e-2


def test_gradcheck_refuses_float32():
    spec = [F.dense(2)]
    params = F.init_params(spec, 3, seed=0)
    with pytest.raises(ValueError, match="float64"):
        check_gradients(spec, params, np.zeros((2, 3)), [0, 1], loss="softmax_cross_entropy")
