"""predict / predict_proba equal scikit-learn's MLPs given the same weights."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import funcnn as F

SK_TO_FUNCNN = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}


def _sk_with_weights(model, X, y, spec, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)  # only to set up classes and shapes; weights are replaced below
    dense = [i for i, layer in enumerate(spec) if layer["type"] == "dense"]
    model.coefs_ = [params[f"W_{i}"] for i in dense]
    model.intercepts_ = [params[f"b_{i}"] for i in dense]
    return model


def _spec(hidden, act, n_out):
    spec = []
    for h in hidden:
        spec += [F.dense(h), {"type": SK_TO_FUNCNN[act]}]
    return spec + [F.dense(n_out)]


@pytest.mark.parametrize("act", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_classifier(act, n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(40, 6))
    y = np.arange(40) % n_classes
    loss = "binary_cross_entropy" if n_classes == 2 else "softmax_cross_entropy"
    spec = _spec((8, 5), act, 1 if n_classes == 2 else n_classes)
    params = F.init_params(spec, 6, seed=3, dtype=np.float64)
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()}
    sk = _sk_with_weights(MLPClassifier(hidden_layer_sizes=(8, 5), activation=act, max_iter=1), X, y, spec, params)
    np.testing.assert_allclose(F.predict_proba(spec, params, X, loss=loss), sk.predict_proba(X), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(F.predict(spec, params, X, loss=loss), sk.predict(X))


@pytest.mark.parametrize("act", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor(act, n_targets):
    rng = np.random.default_rng(n_targets)
    X = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, n_targets)) if n_targets > 1 else rng.normal(size=30)
    spec = _spec((7,), act, n_targets)
    params = F.init_params(spec, 4, seed=1, dtype=np.float64)
    sk = _sk_with_weights(MLPRegressor(hidden_layer_sizes=(7,), activation=act, max_iter=1), X, y, spec, params)
    ours = F.predict(spec, params, X, loss="mean_squared_error")
    assert ours.shape == (30, n_targets)
    np.testing.assert_allclose(ours.reshape(sk.predict(X).shape), sk.predict(X), rtol=0, atol=1e-9)


def test_log_loss_matches_sklearn_metrics():
    """Our softmax / binary cross-entropy values equal sklearn.metrics.log_loss (natural log)."""
    from sklearn.metrics import log_loss, mean_squared_error
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 4)) * 3
    y = np.arange(20) % 4
    w = rng.uniform(0.1, 2, 20)
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert F.losses.softmax_cross_entropy(logits, y)[0] == pytest.approx(log_loss(y, proba), abs=1e-12)
    assert F.losses.softmax_cross_entropy(logits, y, w)[0] == pytest.approx(
        log_loss(y, proba, sample_weight=w), abs=1e-12)
    z = logits[:, :1]
    yb = y % 2
    pb = 1 / (1 + np.exp(-z[:, 0]))
    assert F.losses.binary_cross_entropy(z, yb, w)[0] == pytest.approx(log_loss(yb, pb, sample_weight=w), abs=1e-12)
    t = rng.normal(size=(20, 4))
    assert F.losses.mean_squared_error(logits, t, w)[0] == pytest.approx(
        mean_squared_error(t, logits, sample_weight=w), abs=1e-12)
