"""gelu, elu, softplus; huber and mean_absolute_error; label smoothing; gradient clipping by
global norm: values by hand, finite differences (float64), options, and clipping in train
bit-identical to value_and_grad + update."""
import numpy as np
import pytest
from scipy.special import erf

import funcnn as F
from funcnn import layers as L
from funcnn import losses as LS
from funcnn import optimizers as O
from funcnn.gradcheck import check_gradients, numerical_gradient, relative_error
from funcnn.train import evaluate, train
from conftest import assert_tree_equal

TOL = 1e-6
CE = "softmax_cross_entropy"
Z = np.array([[-40.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 25.0, 40.0]])


def _act(layer, z):
    spec = [L.dense(z.shape[1]), layer]
    params = {"W_0": np.eye(z.shape[1]), "b_0": np.zeros(z.shape[1])}
    return F.forward(spec, params, z)[0]


def test_activations_by_hand():
    np.testing.assert_allclose(_act(L.gelu(), Z), Z * 0.5 * (1 + erf(Z / np.sqrt(2))), rtol=1e-14, atol=1e-300)
    u = np.sqrt(2 / np.pi) * (Z + 0.044715 * Z ** 3)
    np.testing.assert_allclose(_act(L.gelu("tanh"), Z), 0.5 * Z * (1 + np.tanh(u)), rtol=1e-14)
    np.testing.assert_allclose(_act(L.elu(), Z), np.where(Z > 0, Z, np.expm1(Z)), rtol=1e-15)
    np.testing.assert_allclose(_act(L.elu(0.3), Z), np.where(Z > 0, Z, 0.3 * np.expm1(Z)), rtol=1e-15)
    sp = _act(L.softplus(), Z)
    np.testing.assert_allclose(sp, np.log1p(np.exp(Z)), rtol=1e-15)
    big = _act(L.softplus(), np.array([[800.0, -800.0]]))  # no overflow
    assert big[0, 0] == 800.0 and 0 <= big[0, 1] < 1e-300


@pytest.mark.parametrize("layer", [L.gelu(), L.gelu("tanh"), L.elu(), L.elu(0.3), L.softplus()],
                         ids=["gelu", "gelu_tanh", "elu", "elu_0.3", "softplus"])
@pytest.mark.parametrize("in_place", [False, True])
def test_activation_gradients(layer, in_place):
    rng = np.random.default_rng(0)
    # in_place: behind a dense layer the activation writes into the dense output
    spec = [L.dense(6), layer, L.dense(3)] if in_place else [L.reshape([4]), layer, L.dense(3)]
    params = F.init_params(spec, 4, seed=1, dtype=np.float64)
    X = rng.normal(size=(7, 4)) * 2
    assert check_gradients(spec, params, X, rng.integers(0, 3, 7), loss=CE) < TOL
    # backward for an arbitrary grad_output, also in inference mode
    _, cache = F.forward(spec, params, X)
    G = rng.normal(size=(7, 3))
    grads = F.backward(spec, params, cache, G)
    for key in params:
        num = numerical_gradient(lambda v: float((F.forward(spec, {**params, key: v}, X)[0] * G).sum()), params[key])
        assert relative_error(grads[key], num) < TOL, key


# --------------------------------------------------------------------------- losses

def test_regression_losses_by_hand():
    out = np.array([[0.0, 2.0], [1.0, -3.0], [0.25, 0.5]])
    y = np.array([[0.5, 0.0], [1.0, 0.0], [0.0, 0.0]])
    d = out - y
    v, g = LS.mean_absolute_error(out, y)
    assert v == pytest.approx(np.abs(d).mean())
    np.testing.assert_allclose(g, np.sign(d) / 6)
    for delta in (1.0, 0.3, 5.0):
        v, g = LS.huber(out, y, delta=delta)
        per = np.where(np.abs(d) < delta, 0.5 * d ** 2, delta * (np.abs(d) - 0.5 * delta))
        assert v == pytest.approx(per.mean(), rel=1e-15)
        np.testing.assert_allclose(g, np.clip(d, -delta, delta) / 6, rtol=1e-15)
    assert LS.huber(out, y)[0] == LS.get("huber")(out, y)[0] == LS.get({"name": "huber"})(out, y)[0]
    w = np.array([1.0, 0.0, 3.0])
    v, _ = LS.get({"name": "huber", "delta": 0.5})(out, y, w)
    per = np.where(np.abs(d) < 0.5, 0.5 * d ** 2, 0.5 * (np.abs(d) - 0.25)).mean(axis=1)
    assert v == pytest.approx((w * per).sum() / w.sum())


def test_label_smoothing_by_hand():
    rng = np.random.default_rng(1)
    out, y = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, 5)
    logp = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
    for eps in (0.0, 0.1, 1.0):
        t = (1 - eps) * np.eye(4)[y] + eps / 4
        v, g = LS.softmax_cross_entropy(out, y, label_smoothing=eps)
        assert v == pytest.approx(-(t * logp).sum(axis=1).mean(), rel=1e-13)
        np.testing.assert_allclose(g, (np.exp(logp) - t) / 5, rtol=1e-12, atol=1e-15)
    # 0 is the plain loss, bit for bit
    assert_tree_equal(LS.softmax_cross_entropy(out, y, label_smoothing=0.0), LS.softmax_cross_entropy(out, y))
    # stable for huge logits
    v, g = LS.get({"name": CE, "label_smoothing": 0.2})(out * 1e4, y)
    assert np.isfinite(v) and np.isfinite(g).all()


@pytest.mark.parametrize("loss", [{"name": "huber"}, {"name": "huber", "delta": 0.2}, {"name": "huber", "delta": 4.0},
                                  "mean_absolute_error", {"name": CE, "label_smoothing": 0.1},
                                  {"name": CE, "label_smoothing": 0.6}], ids=str)
def test_loss_gradients(loss):
    rng = np.random.default_rng(2)
    name = LS.resolve(loss)[0]
    spec = [L.dense(5), L.tanh(), L.dense(3)]
    params = F.init_params(spec, 4, seed=0, dtype=np.float64)
    X = rng.normal(size=(9, 4)) * 2
    y = rng.integers(0, 3, 9) if name == CE else rng.normal(size=(9, 3))
    w = rng.uniform(0.2, 2.0, 9)
    for kw in ({}, {"sample_weight": w, "l2": 0.1}):
        assert check_gradients(spec, params, X, y, loss=loss, **kw) < TOL, kw


def test_regression_losses_in_train_predict_evaluate():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(60, 1))
    y[:3] += 20  # outliers: where huber and MAE are the point
    spec = [L.dense(8), L.elu(), L.dense(1)]
    params = F.init_params(spec, 3, seed=0, dtype=np.float64)
    for loss in ("mean_absolute_error", "huber", {"name": "huber", "delta": 0.5}):
        trained, hist = train(spec, params, X, y, loss=loss, optimizer=O.adam(0.05), epochs=40, batch_size=20,
                              progress=False)
        assert hist["loss"][-1] < hist["loss"][0] and "accuracy" not in hist
        pred = F.predict(spec, trained, X, loss=loss)
        assert pred.shape == (60, 1)
        scores = evaluate(spec, trained, X, y, loss=loss)
        assert set(scores) == {"loss", "mse", "r2"}
        assert scores["mse"] == pytest.approx(float(((pred - y) ** 2).mean()), rel=1e-6)
        assert scores["loss"] == pytest.approx(LS.get(loss)(pred, y)[0], rel=1e-6)
        with pytest.raises(ValueError, match="regression"):
            F.predict_proba(spec, trained, X, loss=loss)


@pytest.mark.parametrize("loss,match", [({"name": "huber", "delta": 0}, r"delta"),
                                        ({"name": "huber", "delta": "1"}, r"delta"),
                                        ({"name": CE, "label_smoothing": 1.5}, r"label_smoothing"),
                                        ({"name": CE, "label_smoothing": -0.1}, r"label_smoothing"),
                                        ({"name": "mean_absolute_error", "delta": 1.0}, r"unknown option.*delta"),
                                        ({"name": CE, "smoothing": 0.1}, r"unknown option.*smoothing")])
def test_bad_loss_options(loss, match):
    spec = [L.dense(3)]
    params = F.init_params(spec, 2, seed=0)
    y = [0, 1] if LS.resolve(loss["name"])[0] == CE else np.zeros((2, 3))
    with pytest.raises((ValueError, TypeError), match=match):
        F.value_and_grad(spec, params, np.zeros((2, 2)), y, loss=loss)


def test_loss_registries_are_complete():
    assert set(LS.LOSSES) == set(LS.CORES) == set(LS.DECISION) == set(LS.OPTIONS)
    assert {"huber", "mean_absolute_error"} <= set(LS.LOSSES)
    assert not LS.is_classification("huber") and not LS.is_classification("mean_absolute_error")
    assert LS.OPTIONS["huber"]["delta"][0] == 1.0 and LS.OPTIONS[CE]["label_smoothing"][0] == 0.0


# --------------------------------------------------------------------------- gradient clipping

def test_clip_factor():
    g = {"b": np.array([3.0], dtype=np.float32), "a": np.array([[4.0]], dtype=np.float32)}
    assert O.clip_factor(g, None) == 1.0
    assert O.clip_factor(g, 10.0) == 1.0
    assert O.clip_factor(g, 1.0) == 1.0 / (5.0 + 1e-6)
    assert O.clip_factor(dict(reversed(list(g.items()))), 1.0) == O.clip_factor(g, 1.0)  # any dict order
    # float64 sums: float32 squares of 1e20 would overflow
    assert O.clip_factor({"a": np.full(4, 1e20, dtype=np.float32)}, 1.0) == pytest.approx(1 / 2e20, rel=1e-6)


def test_clip_norm_is_stored_only_when_set():
    assert "clip_norm" not in O.adam() and "clip_norm" not in O.sgd(0.1) and "clip_norm" not in O.rmsprop(0.1)
    assert O.adam(clip_norm=1)["clip_norm"] == 1.0
    assert O.sgd(0.1, clip_norm=2.0)["clip_norm"] == 2.0 and O.rmsprop(0.1, clip_norm=0.5)["clip_norm"] == 0.5
    assert O.by_name("adam", lr=0.1, clip_norm=3.0) == O.adam(0.1, clip_norm=3.0)
    assert O.validate({**O.adam(), "clip_norm": None}) is not None
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="clip_norm"):
            O.adam(clip_norm=bad)
    with pytest.raises(TypeError, match="clip_norm"):
        O.validate({**O.sgd(0.1), "clip_norm": "1"})


def test_update_clips_by_the_global_norm():
    rng = np.random.default_rng(4)
    params = {"W_0": rng.normal(size=(3, 2)), "b_0": rng.normal(size=2)}
    grads = {k: rng.normal(size=v.shape) * 10 for k, v in params.items()}
    norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
    opt = O.sgd(0.1, clip_norm=1.0)
    new, _ = F.update(opt, params, grads, F.init_state(opt, params))
    step = {k: params[k] - new[k] for k in params}
    assert np.sqrt(sum((s ** 2).sum() for s in step.values())) == pytest.approx(0.1 * 1.0 / (1 + 1e-6 / norm), rel=1e-9)
    for k in params:
        np.testing.assert_allclose(step[k], 0.1 * grads[k] / (norm + 1e-6), rtol=1e-12)
    small = {k: g * 1e-3 for k, g in grads.items()}  # below the threshold: untouched
    assert_tree_equal(F.update(opt, params, small, F.init_state(opt, params))[0],
                      F.update(O.sgd(0.1), params, small, F.init_state(O.sgd(0.1), params))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", [O.sgd(0.1, clip_norm=0.3), O.sgd(0.05, momentum=0.9, nesterov=True, clip_norm=0.2),
                                 O.rmsprop(0.01, clip_norm=0.5), O.adam(0.01, clip_norm=0.1),
                                 O.adam(0.01, weight_decay=0.1, clip_norm=0.05)], ids=lambda o: o["name"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_train_with_clipping_is_value_and_grad_plus_update(opt, dtype, batch_size):
    """train scales its flat gradient buffer by clip_factor, update scales each array: the same
    g * factor, so the params agree bit for bit."""
    rng = np.random.default_rng(5)
    spec = [L.dense(8), L.gelu(), L.batch_norm(), L.dense(3)]
    params = F.init_params(spec, 5, seed=0, dtype=dtype)
    X, y = rng.normal(size=(40, 5)).astype(dtype) * 3, rng.integers(0, 3, 40)
    got, _ = train(spec, params, X, y, loss=CE, optimizer=opt, epochs=3, batch_size=batch_size, l2=0.01, seed=2,
                   progress=False)
    g_rng = np.random.default_rng(2)
    p, state, clipped = params, F.init_state(opt, params), 0
    for _ in range(3):
        batches = [np.arange(40)] if batch_size is None else np.array_split(g_rng.permutation(40), [16, 32])
        for idx in batches:
            _, grads = F.value_and_grad(spec, p, X[idx], y[idx], loss=CE, l2=0.01)
            clipped += O.clip_factor(grads, opt["clip_norm"]) < 1.0
            _, cache = F.forward(spec, p, X[idx], training=True)
            p, state = F.update(opt, p, grads, state)
            p = {**p, **cache["state"]}
    assert clipped > 0
    assert_tree_equal(got, p)


@pytest.mark.parametrize("loss", [{"name": "huber", "delta": 0.4}, {"name": CE, "label_smoothing": 0.2}], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_options_same_bits_with_and_without_buffer(loss, dtype):
    from conftest import frozen
    rng = np.random.default_rng(6)
    name = LS.resolve(loss)[0]
    output = frozen((rng.normal(size=(7, 4)) * 3).astype(dtype))
    y = rng.integers(0, 4, 7) if name == CE else rng.normal(size=(7, 4))
    target = frozen(LS.check_targets(loss, y, 7, 4, np.dtype(dtype)))
    w = frozen(rng.uniform(0, 2, 7).astype(dtype))
    core = LS.core(loss)
    v1, g1 = core(output, target, w)
    buf = np.full((7, 4), np.nan, dtype=dtype)
    v2, g2 = core(output, target, w, buf)
    assert v1 == v2 and g2 is buf
    assert_tree_equal(g1, g2)
    assert_tree_equal((v1, g1), LS.get(loss)(output, y, w))
