"""No silent wrong answers: the fault cases of the library core (each failed before the fix)."""
import os
import warnings

import numpy as np
import pytest

import funcnn as F
from funcnn import optimizers as O
from funcnn.train import DivergenceWarning
from conftest import assert_tree_equal

CE = "softmax_cross_entropy"
SPEC = [F.dense(8), F.relu(), F.dense(3)]


def _data(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X[:, :3].argmax(axis=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_params_are_refused_by_every_reader(bad, tmp_path):
    X, y = _data()
    params = F.init_params(SPEC, 4, seed=0)
    params["W_2"] = params["W_2"].copy()
    params["W_2"][1, 2] = bad
    pattern = r"params\['W_2'\] contains NaN or inf \(first at row 1, column 2\)"
    calls = [
        lambda: F.predict(SPEC, params, X, loss=CE),             # was: label 0 for every row
        lambda: F.predict_proba(SPEC, params, X, loss=CE),
        lambda: F.forward(SPEC, params, X),
        lambda: F.value_and_grad(SPEC, params, X, y, loss=CE),
        lambda: F.backward(SPEC, params, F.forward(SPEC, F.init_params(SPEC, 4, seed=0), X)[1], np.ones((120, 3), np.float32)),
        lambda: F.update(O.adam(), params, {k: np.zeros_like(v) for k, v in params.items()},
                         F.init_state(O.adam(), params)),
        lambda: F.train(SPEC, params, X, y, loss=CE, optimizer=O.sgd(0.1), epochs=1, progress=False),
        lambda: F.evaluate(SPEC, params, X, y, loss=CE),
        lambda: F.save(str(tmp_path / "m.npz"), SPEC, params),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(ValueError, match=pattern):
            call()
    assert not os.path.exists(tmp_path / "m.npz")


def test_overflow_on_finite_input_raises_instead_of_nan_probabilities():
    spec = [F.dense(4), F.relu(), F.dense(3)]
    params = F.init_params(spec, 2, seed=0)
    X = np.array([[3e38, 3e38], [1.0, 2.0]])
    with pytest.raises(FloatingPointError, match="overflow in float32"):
        F.predict_proba(spec, params, X, loss=CE)
    with pytest.raises(FloatingPointError, match="row 0"):
        F.predict(spec, params, X, loss=CE)  # was: label 0
    F.predict(spec, {k: v.astype(np.float64) for k, v in params.items()}, X, loss=CE)  # fine in float64


def test_huge_sample_weights_are_summed_in_float64():
    X, y = _data(400)
    w = np.full(400, 1e38)  # float32 sums of these overflow to inf (was: loss 0.0, nothing learnt)
    p, h = F.train(SPEC, F.init_params(SPEC, 4, seed=0), X, y, loss=CE, optimizer=O.adam(1e-2), epochs=10,
                   batch_size=32, sample_weight=w, progress=False)
    ref, h_ref = F.train(SPEC, F.init_params(SPEC, 4, seed=0), X, y, loss=CE, optimizer=O.adam(1e-2), epochs=10,
                         batch_size=32, progress=False)
    assert h["loss"][-1] < 0.7 * h["loss"][0]
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-5)


def test_softmax_cross_entropy_needs_two_outputs():
    X, y = _data()
    spec = [F.dense(1)]
    with pytest.raises(ValueError, match="at least 2 outputs"):
        F.train(spec, F.init_params(spec, 4, seed=0), X, y > 0, loss=CE, optimizer=O.sgd(0.1), epochs=1)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        F.losses.softmax_cross_entropy(np.zeros((3, 1)), [0, 0, 0])


def test_a_diverging_run_warns():
    X, y = _data(400)
    with pytest.warns(DivergenceWarning, match="training diverged"):
        F.train(SPEC, F.init_params(SPEC, 4, seed=0), X * 10, y, loss=CE, optimizer=O.adam(10.0), epochs=5,
                batch_size=32, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.train(SPEC, F.init_params(SPEC, 4, seed=0), X, y, loss=CE, optimizer=O.adam(1e-2), epochs=5,
                batch_size=32, progress=False)


def test_divergence_rule():
    from funcnn.train import diverged
    assert diverged([5.0, 4.0], 3.0)                      # ended above 1.25 x the start
    assert diverged([2.8e5, 3.2, 3.0], 3.1)               # blew up, never recovered
    assert not diverged([2.8e5, 0.5, 0.1], 3.1)           # blew up, then learnt
    assert not diverged([3.0, 3.2], 3.0)                  # slow, not diverged
    assert not diverged([], 3.0) and not diverged([1.0], None)


def test_regression_scores_on_one_sample():
    spec = [F.dense(1)]
    params = F.init_params(spec, 4, seed=0)
    scores = F.evaluate(spec, params, np.ones((1, 4)), [0.5], loss="mean_squared_error")
    assert np.isfinite(scores["loss"]) and np.isnan(scores["r2"])


@pytest.mark.parametrize("metadata,path,pattern", [
    ({"loss": "x"}, "ck.npz", "reserved"),
    ({"training_state": 1}, "ck.npz", "reserved"),
    ({"spec": []}, "ck.npz", "reserved"),
    ({"scaler": object()}, "ck.npz", "object"),
    (None, "ck.h5", "extension"),
    (None, "nodir/ck.npz", "no such directory"),
])
def test_checkpoint_path_and_metadata_are_checked_before_the_first_epoch(tmp_path, metadata, path, pattern):
    X, y = _data()
    epochs = []
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=pattern):
        F.train(SPEC, F.init_params(SPEC, 4, seed=0), X, y, loss=CE, optimizer=O.sgd(0.1), epochs=2,
                checkpoint=str(tmp_path / path), checkpoint_metadata=metadata, progress=False,
                callbacks=[lambda e, p, h: epochs.append(e)])
    assert epochs == []


def test_numpy_scalars_in_spec_and_optimizer_resume(tmp_path):
    X, y = _data()
    spec = [{"type": "dense", "units": np.int64(8)}, F.relu(), {"type": "dense", "units": np.int32(3)}]
    opt = {**O.adam(1e-2), "beta1": np.float64(0.9)}
    kw = dict(loss=CE, optimizer=opt, batch_size=np.int64(32), seed=1, progress=False)
    path = str(tmp_path / "ck.npz")
    full = F.train(spec, F.init_params(spec, 4, seed=0), X, y, epochs=4, **kw)
    F.train(spec, F.init_params(spec, 4, seed=0), X, y, epochs=2, checkpoint=path, **kw)
    assert_tree_equal(F.train(spec, F.init_params(spec, 4, seed=0), X, y, epochs=4, checkpoint=path, **kw), full)


@pytest.mark.parametrize("change,pattern", [
    ({"validation_data": "add"}, "validation"),
    ({"seed": 2}, "seed"),
    ({"sample_weight": "add"}, "sample_weight"),
    ({"early_stopping": 3}, "early_stopping"),
    ({"data": "other"}, "data"),
])
def test_resuming_a_different_run_is_refused(tmp_path, change, pattern):
    X, y = _data()
    path = str(tmp_path / "ck.npz")
    kw = dict(loss=CE, optimizer=O.adam(1e-2), batch_size=32, seed=1, progress=False)
    F.train(SPEC, F.init_params(SPEC, 4, seed=0), X, y, epochs=1, checkpoint=path, **kw)
    before = open(path, "rb").read()
    if "validation_data" in change:
        kw["validation_data"] = (X[:10], y[:10])
    if "seed" in change:
        kw["seed"] = change["seed"]
    if "sample_weight" in change:
        kw["sample_weight"] = np.ones(len(y))
    if "early_stopping" in change:
        kw["early_stopping"] = change["early_stopping"]
    Xr = X + 1.0 if "data" in change else X
    with pytest.raises(ValueError, match=pattern) as info:
        F.train(SPEC, F.init_params(SPEC, 4, seed=0), Xr, y, epochs=3, checkpoint=path, **kw)
    assert path in str(info.value)
    assert open(path, "rb").read() == before


def test_divergence_floor_for_classifiers():
    from funcnn.train import divergence_floor, diverged
    assert divergence_floor("softmax_cross_entropy", 10) == pytest.approx(0.1 * np.log(10))
    assert divergence_floor("binary_cross_entropy", 1) == pytest.approx(0.1 * np.log(2))
    assert divergence_floor("mean_squared_error", 3) == 0.0
    assert not diverged([3.47e-4], 1.25e-5, floor=0.23)   # a well-fit model: tiny, noisy losses
    assert diverged([0.5], 0.01, floor=0.23)              # real damage above a tenth of chance
    assert diverged([3.47e-4], 1.25e-5)                    # regression: no floor, the relative rule


def test_training_a_fitted_classifier_on_does_not_warn():
    """Before: continuing a converged digits model for one epoch warned (first batch 1e-5, epoch 3e-4)."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    spec = F.layers.mlp([64], n_outputs=10)
    params, h = F.train(spec, F.init_params(spec, 64, seed=0), X, y, loss="softmax_cross_entropy",
                        optimizer=F.optimizers.adam(3e-3), epochs=60, batch_size=32, seed=0, progress=False)
    assert h["loss"][-1] < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        for seed in range(5):
            params, _ = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.optimizers.adam(3e-3),
                                epochs=1, batch_size=32, seed=seed, progress=False)
