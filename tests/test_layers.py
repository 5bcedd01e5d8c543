"""Layers: forward values by hand, init schemes and defaults, dtypes."""
import numpy as np
import pytest

import funcnn as F
from funcnn.layers import LAYERS


def _fwd(layer, x, training=False, seed=None):
    spec = [F.dense(x.shape[1]), layer]
    params = {"W_0": np.eye(x.shape[1], dtype=x.dtype), "b_0": np.zeros(x.shape[1], dtype=x.dtype)}
    return F.forward(spec, params, x, training=training, seed=seed)[0]


X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])


def test_activations_by_hand():
    np.testing.assert_array_equal(_fwd(F.relu(), X), [[0, 0, 0, 0.5, 3]])
    np.testing.assert_allclose(_fwd(F.leaky_relu(0.1), X), [[-0.2, -0.05, 0, 0.5, 3]])
    np.testing.assert_allclose(_fwd(F.sigmoid(), X), 1 / (1 + np.exp(-X)), rtol=1e-15)
    np.testing.assert_allclose(_fwd(F.tanh(), X), np.tanh(X))
    np.testing.assert_array_equal(_fwd(F.identity(), X), X)
    np.testing.assert_allclose(_fwd(F.softmax(), X), np.exp(X) / np.exp(X).sum(), rtol=1e-15)
    assert _fwd(F.leaky_relu(), X)[0, 0] == pytest.approx(-0.02)  # default alpha 0.01


def test_sigmoid_extreme_is_exact():
    out = _fwd(F.sigmoid(), np.array([[-800.0, -40.0, 40.0, 800.0]]))
    assert out[0, 0] == 0.0 and out[0, 1] == pytest.approx(np.exp(-40), rel=1e-12) and out[0, 3] == 1.0


def test_dropout_inverted_scaling_and_determinism():
    x = np.ones((200, 50))
    a = _fwd(F.dropout(0.3), x, training=True, seed=3)
    b = _fwd(F.dropout(0.3), x, training=True, seed=3)
    c = _fwd(F.dropout(0.3), x, training=True, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 1 / 0.7}
    assert abs((a == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(_fwd(F.dropout(0.3), x), x)  # inference: identity
    np.testing.assert_array_equal(_fwd(F.dropout(0.0), x, training=True, seed=1), x)


def test_dropout_generator_is_advanced():
    g = np.random.default_rng(0)
    x = np.ones((10, 10))
    assert not np.array_equal(_fwd(F.dropout(0.5), x, True, g), _fwd(F.dropout(0.5), x, True, g))


def test_init_schemes_statistics():
    n_in, n_out = 400, 300
    W = F.init_params([F.dense(n_out, init="glorot")], n_in, seed=0, dtype=np.float64)["W_0"]
    limit = np.sqrt(6 / (n_in + n_out))
    assert W.max() <= limit and W.min() >= -limit and W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    W = F.init_params([F.dense(n_out, init="he")], n_in, seed=0, dtype=np.float64)["W_0"]
    assert W.std() == pytest.approx(np.sqrt(2 / n_in), rel=0.02) and abs(W.mean()) < 0.002
    W = F.init_params([F.dense(n_out, init="normal", std=0.05)], n_in, seed=0, dtype=np.float64)["W_0"]
    assert W.std() == pytest.approx(0.05, rel=0.02)
    W = F.init_params([F.dense(n_out, init="normal")], n_in, seed=0, dtype=np.float64)["W_0"]
    assert W.std() == pytest.approx(0.01, rel=0.02)


def test_default_init_follows_the_activation():
    def W(spec):
        return F.init_params(spec, 300, seed=5, dtype=np.float64)["W_0"]
    he = W([F.dense(200, init="he")])
    glorot = W([F.dense(200, init="glorot")])
    np.testing.assert_array_equal(W([F.dense(200), F.relu()]), he)
    np.testing.assert_array_equal(W([F.dense(200), F.dropout(0.1), F.leaky_relu()]), he)
    np.testing.assert_array_equal(W([F.dense(200), F.tanh()]), glorot)
    np.testing.assert_array_equal(W([F.dense(200), F.sigmoid()]), glorot)
    np.testing.assert_array_equal(W([F.dense(200)]), glorot)


def test_api_example_shapes_and_biases():
    spec = [{"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 10}]
    params = F.init_params(spec, n_inputs=784, seed=0)
    assert {k: v.shape for k, v in params.items()} == {"W_0": (784, 128), "b_0": (128,), "W_3": (128, 10), "b_3": (10,)}
    assert all(v.dtype == np.float32 for v in params.values())
    assert not params["b_0"].any()


def test_float32_init_is_float64_init_rounded():
    spec = [F.dense(20), F.relu(), F.dense(3)]
    p32 = F.init_params(spec, 7, seed=9)
    p64 = F.init_params(spec, 7, seed=9, dtype=np.float64)
    for k in p32:
        np.testing.assert_array_equal(p32[k], p64[k].astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(dtype):
    spec = [F.dense(8), F.sigmoid(), F.dropout(0.2), F.dense(6), F.leaky_relu(), F.dense(3), F.softmax()]
    params = F.init_params(spec, 4, seed=0, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(5, 4))  # float64 input is converted
    out, cache = F.forward(spec, params, X, training=True, seed=0)
    assert out.dtype == dtype
    grads = F.backward(spec, params, cache, np.ones_like(out))
    assert all(g.dtype == dtype and g.shape == params[k].shape for k, g in grads.items())
    v, grads = F.value_and_grad(spec, params, X, [0, 1, 2, 0, 1], loss="softmax_cross_entropy", l2=0.1, seed=1)
    assert isinstance(v, float) and all(g.dtype == dtype for g in grads.values())


def test_registry_is_complete():
    assert set(LAYERS) >= {"dense", "relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax", "dropout"}
    for fns in LAYERS.values():
        assert set(fns) == {"check", "shape", "init", "forward", "backward", "trainable", "state", "new_state", "cache", "elementwise",
                            "activation", "by_parts", "children", "macs", "scratch"}


def test_predict_conventions():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 3))
    spec = [F.dense(1)]
    params = F.init_params(spec, 3, seed=0, dtype=np.float64)
    z = X @ params["W_0"][:, 0]
    proba = F.predict_proba(spec, params, X, loss="binary_cross_entropy")
    assert proba.shape == (6, 2)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)))
    np.testing.assert_array_equal(F.predict(spec, params, X, loss="binary_cross_entropy"), (z > 0).astype(int))
    np.testing.assert_allclose(F.predict(spec, params, X, loss="mean_squared_error"), z[:, None])
    with pytest.raises(ValueError, match="regression"):
        F.predict_proba(spec, params, X, loss="mean_squared_error")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5), (1, 65536), (70000,), (2, 300, 250), (4, 40, 40, 30)])
def test_positive_part_is_max_x_0_blocks_views_and_nan(shape, dtype):
    """positive_part (ReLU's, ELU's and softplus's max(x, 0)) against np.maximum: one block of
    zeros and several (the block is 65536 elements), strided views, in place, NaN and ±inf."""
    from funcnn.layers import positive_part
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.reshape(-1)[::997] = np.nan
    x.reshape(-1)[1::1009] = np.inf
    x.reshape(-1)[2::1013] = -np.inf
    want = np.maximum(x, 0)
    np.testing.assert_array_equal(positive_part(x), want)
    view = x[..., ::2]  # not contiguous: the scalar loop
    np.testing.assert_array_equal(positive_part(view), np.maximum(view, 0))
    y = x.copy()
    assert positive_part(y, out=y) is y
    np.testing.assert_array_equal(y, want)
    x.flags.writeable = False
    np.testing.assert_array_equal(positive_part(x), want)
