"""funcnn.estimators: scikit-learn's own estimator checks, and the adapters in scikit-learn's tools."""
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, make_blobs, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (check_fit_idempotent, check_regressor_data_not_an_array,
                                            check_regressors_int, check_sample_weight_equivalence_on_dense_data,
                                            check_supervised_y_2d, parametrize_with_checks)

import funcnn as F
from funcnn.estimators import NeuralNetClassifier, NeuralNetRegressor, expected_failed_checks
from funcnn.train import new_run, train_epoch
from conftest import assert_tree_equal

ROOT = os.path.join(os.path.dirname(__file__), "..")

# Small and fast: the checks fit a few hundred samples at most.
FAST = dict(hidden=(8,), epochs=20, lr=1e-2, seed=0)
CHECKED = [NeuralNetClassifier(**FAST), NeuralNetRegressor(**FAST),
           NeuralNetClassifier(**FAST, dtype="float32"), NeuralNetRegressor(**FAST, dtype="float32")]


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failed_checks_are_few_and_explained():
    for est in CHECKED:
        failed = expected_failed_checks(est)
        assert len(failed) <= 2
        assert all(name.startswith("check_") and len(reason) > 40 for name, reason in failed.items())
    # the defaults (float64, scikit-learn's precision) are expected to pass every check
    assert expected_failed_checks(NeuralNetClassifier()) == {}
    assert expected_failed_checks(NeuralNetRegressor()) == {}


# --------------------------------------------------------------------------- data

@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=100, n_features=5, n_targets=2, noise=0.1, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std(axis=0)


# --------------------------------------------------------------------------- scikit-learn's tools

def test_pipeline_in_grid_search(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(epochs=10, lr=1e-2, seed=0))
    search = GridSearchCV(pipe, {"neuralnetclassifier__hidden": [(4,), (16,)],
                                 "neuralnetclassifier__l2": [1e-4, 1e-1]}, cv=3)
    search.fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_score_ > 0.9
    clf = search.best_estimator_[-1]
    assert clf.hidden == search.best_params_["neuralnetclassifier__hidden"]
    assert search.score(X, y) > 0.9


def test_cross_val_score_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(hidden=(32,), epochs=20, seed=0))
    scores = cross_val_score(pipe, X, y, cv=5)
    assert scores.mean() >= 0.95, scores


def _readme_estimators_block():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## scikit-learn estimators\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def test_readme_pipeline_grid_search_example_runs(capsys):
    namespace = {}
    exec(compile(_readme_estimators_block(), "README.md", "exec"), namespace)
    assert namespace["accuracy"] > 0.95
    assert "test accuracy" in capsys.readouterr().out


# --------------------------------------------------------------------------- labels and shapes

@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array(["no", "yes"]),
                                    np.array([False, True]), np.array([-1, 5, 10]), np.array([1.0, 2.0, 3.0])],
                         ids=["strings", "binary-strings", "bools", "ints", "floats"])
def test_labels_round_trip(blobs, labels):
    X, y = blobs
    y = y % len(labels)
    target = labels[::-1][y]  # unsorted on purpose
    clf = NeuralNetClassifier(hidden=(16,), epochs=15, lr=1e-2, seed=0).fit(X, target)
    assert clf.classes_.tolist() == sorted(labels.tolist())
    assert clf.classes_.dtype == labels.dtype
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred.tolist()) <= set(labels.tolist())
    assert np.mean(pred == target) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    assert (clf.classes_[proba.argmax(axis=1)] == pred).all()
    assert clf.loss_ == ("binary_cross_entropy" if len(labels) == 2 else "softmax_cross_entropy")
    assert clf.spec_[-1] == {"type": "dense", "units": 1 if len(labels) == 2 else len(labels)}


def test_one_class_is_refused(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="1 class"):
        NeuralNetClassifier(**FAST).fit(X, ["a"] * len(X))


def test_regressor_outputs(regression):
    X, Y = regression
    one = NeuralNetRegressor(**FAST).fit(X, Y[:, 0])
    assert one.predict(X).shape == (len(X),) and one.spec_[-1]["units"] == 1
    two = NeuralNetRegressor(**FAST).fit(X, Y)
    assert two.predict(X).shape == (len(X), 2) and two.spec_[-1]["units"] == 2
    column = NeuralNetRegressor(**FAST).fit(X, Y[:, :1])
    assert column.predict(X).shape == (len(X), 1)
    np.testing.assert_array_equal(column.predict(X)[:, 0], one.predict(X))
    assert NeuralNetRegressor(hidden=(32,), epochs=50, lr=1e-2, seed=0).fit(X, Y).score(X, Y) > 0.9


def test_custom_spec(blobs):
    X, y = blobs
    spec = [F.dense(8), F.tanh(), F.dense(3)]
    clf = NeuralNetClassifier(spec=spec, epochs=10, lr=1e-2, seed=0).fit(X, y)
    assert clf.spec_ == spec and clf.spec_ is not spec
    with pytest.raises(ValueError, match="needs 1"):
        NeuralNetClassifier(spec=spec, **FAST).fit(X, y % 2)


# --------------------------------------------------------------------------- plain data

def test_fitted_state_is_funcnn_data(blobs, regression, tmp_path):
    X, y = blobs
    clf = NeuralNetClassifier(hidden=(16,), dropout=0.1, **{k: v for k, v in FAST.items() if k != "hidden"})
    clf.fit(X, y)
    assert isinstance(clf.spec_, list) and all(type(layer) is dict for layer in clf.spec_)
    assert type(clf.params_) is dict and all(type(v) is np.ndarray for v in clf.params_.values())
    assert set(clf.history_) == {"loss", "accuracy"} and len(clf.history_["loss"]) == FAST["epochs"]
    assert clf.n_features_in_ == X.shape[1]
    pred = clf.predict(X)
    np.testing.assert_array_equal(clf.classes_[F.predict(clf.spec_, clf.params_, X, loss=clf.loss_)], pred)
    np.testing.assert_array_equal(F.predict_proba(clf.spec_, clf.params_, X, loss=clf.loss_), clf.predict_proba(X))
    F.save(tmp_path / "clf.npz", clf.spec_, clf.params_, classes=clf.classes_)
    model = F.load(tmp_path / "clf.npz")
    np.testing.assert_array_equal(model["classes"][F.predict(model["spec"], model["params"], X, loss=clf.loss_)],
                                  pred)

    X, Y = regression
    reg = NeuralNetRegressor(**FAST).fit(X, Y[:, 0])
    np.testing.assert_array_equal(F.predict(reg.spec_, reg.params_, X, loss=reg.loss_)[:, 0], reg.predict(X))


def test_fit_is_init_params_plus_train(blobs):
    """The adapter adds nothing to the arithmetic: the same bits as the functional calls."""
    X, y = blobs
    clf = NeuralNetClassifier(hidden=(16,), dropout=0.2, optimizer="sgd", lr=0.05, epochs=5, batch_size=16,
                              l2=1e-3, seed=7).fit(X, y)
    spec = F.layers.mlp((16,), "relu", 0.2, 3)
    params = F.init_params(spec, X.shape[1], seed=7, dtype=np.float64)
    params, history = F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.sgd(0.05), epochs=5,
                              batch_size=16, l2=1e-3, seed=7, progress=False)
    assert clf.spec_ == spec
    assert_tree_equal(clf.params_, params)
    assert clf.history_ == history


def test_clone_and_pickle_give_identical_predictions(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(hidden=(16,), dropout=0.1, epochs=10, lr=1e-2, seed=3).fit(X, y)
    again = clone(clf).fit(X, y)
    assert not hasattr(clone(clf), "params_")
    assert_tree_equal(again.params_, clf.params_)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_seed(blobs):
    X, y = blobs
    none = NeuralNetClassifier(**{**FAST, "seed": None}).fit(X, y)
    zero = NeuralNetClassifier(**{**FAST, "seed": 0}).fit(X, y)
    assert none.seed_ == zero.seed_ == 0  # funcnn.train's default seed: reproducible
    assert_tree_equal(none.params_, zero.params_)
    drawn = NeuralNetClassifier(**{**FAST, "seed": np.random.default_rng(1)}).fit(X, y)
    again = NeuralNetClassifier(**{**FAST, "seed": drawn.seed_}).fit(X, y)
    assert_tree_equal(drawn.params_, again.params_)  # the drawn seed reproduces the fit
    other = NeuralNetClassifier(**{**FAST, "seed": np.random.default_rng(2)}).fit(X, y)
    assert other.seed_ != drawn.seed_
    with pytest.raises(TypeError, match="seed"):
        NeuralNetClassifier(**{**FAST, "seed": "0"}).fit(X, y)


TWICE = [check_fit_idempotent, check_supervised_y_2d, check_sample_weight_equivalence_on_dense_data]


@pytest.mark.parametrize("estimator, check",
                         [(NeuralNetClassifier(), c) for c in TWICE]
                         + [(NeuralNetRegressor(), c) for c in TWICE + [check_regressors_int,
                                                                       check_regressor_data_not_an_array]],
                         ids=lambda v: getattr(v, "__name__", type(v).__name__))
def test_default_instances_pass_the_checks_that_fit_twice(estimator, check):
    """seed=None (the default) gives reproducible fits, so the checks that compare two fits
    pass on default-constructed estimators too (set_random_state only sets random_state)."""
    check(type(estimator).__name__, estimator)


def test_early_stopping(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(hidden=(16,), epochs=500, lr=5e-2, early_stopping=True, seed=0).fit(X, y)
    assert set(clf.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(clf.history_["loss"]) < 500
    assert clf.score(X, y) > 0.9


def test_nothing_else_in_funcnn_imports_estimators():
    package = os.path.join(ROOT, "funcnn")
    for name in os.listdir(package):
        if name.endswith(".py") and name != "estimators.py":
            with open(os.path.join(package, name), encoding="utf-8") as f:
                assert "estimators" not in f.read(), name
    code = "import sys, funcnn, funcnn.cli, funcnn.sweep; assert 'funcnn.estimators' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- partial_fit

@pytest.mark.parametrize("kind", ["classifier", "binary", "regressor", "weighted"])
def test_partial_fit_k_times_is_fit_with_k_epochs(blobs, regression, kind):
    """Optimizer state and shuffling stream continue exactly: the same bits as fit(epochs=k)."""
    k = 4
    settings = dict(hidden=(16,), dropout=0.2, lr=1e-2, batch_size=16, seed=5)
    w = None
    if kind == "regressor":
        (X, y), est = regression, NeuralNetRegressor
    else:
        (X, y), est = blobs, NeuralNetClassifier
        y = np.array(["a", "b", "c"])[y % (2 if kind == "binary" else 3)]
        if kind == "weighted":
            w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    fitted = est(epochs=k, **settings).fit(X, y, sample_weight=w)
    stepped = est(**settings)
    extra = {"classes": np.unique(y)} if est is NeuralNetClassifier else {}
    for _ in range(k):
        stepped.partial_fit(X, y, sample_weight=w, **extra)
    assert stepped.run_["epoch"] == k
    assert_tree_equal(stepped.params_, fitted.params_)
    assert stepped.history_ == fitted.history_
    np.testing.assert_array_equal(stepped.predict(X), fitted.predict(X))


def test_partial_fit_after_fit_continues_the_run_exactly(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(**{**FAST, "epochs": 3}).fit(X, y)
    assert clf.run_["epoch"] == 3
    clf.partial_fit(X, y)
    longer = NeuralNetClassifier(**{**FAST, "epochs": 4}).fit(X, y)
    assert_tree_equal(clf.params_, longer.params_)
    assert clf.history_ == longer.history_


def test_fit_equals_train(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(**FAST).fit(X, y)
    params, history = F.train(clf.spec_, F.init_params(clf.spec_, X.shape[1], seed=clf.seed_, dtype=clf.dtype),
                              X, LabelEncoderForTest(y), loss=clf.loss_, optimizer=F.adam(FAST["lr"]),
                              epochs=clf.epochs, batch_size=clf.batch_size, l2=clf.l2, seed=clf.seed_,
                              progress=False)
    assert_tree_equal(clf.params_, params)


def test_partial_fit_after_an_early_stopped_fit_starts_a_run_from_the_fitted_params(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(**{**FAST, "early_stopping": True}).fit(X, y)
    assert clf.run_ is None  # train() returns params and history, not its optimizer state
    run = new_run(clf.spec_, clf.params_, F.adam(FAST["lr"]), seed=clf.seed_)
    run = train_epoch(clf.spec_, run, X, y, loss=clf.loss_, optimizer=F.adam(FAST["lr"]), batch_size=32, l2=1e-4)
    clf.partial_fit(X, y)
    assert_tree_equal(clf.params_, run["params"])
    assert clf.run_["epoch"] == 1


def LabelEncoderForTest(y):
    return np.unique(y, return_inverse=True)[1]


def test_partial_fit_state_is_plain_data(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    assert {"params", "opt_state", "rng_state", "epoch", "history"} <= set(clf.run_)
    restored = pickle.loads(pickle.dumps(clf))
    assert_tree_equal(restored.partial_fit(X, y).params_, clf.partial_fit(X, y).params_)


def test_partial_fit_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed"):
        NeuralNetClassifier(**FAST).partial_fit(X, y)
    clf = NeuralNetClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="unseen"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :2], y)


def test_a_cnn_spec_in_the_classifier():
    """A spec that starts with a reshape (a CNN on flat rows, whose input width W cannot tell):
    fit, predict with string labels, partial_fit and the output-count check all work (they
    asked the params for the output count without the input width, and got None)."""
    from funcnn import layers as L
    rng = np.random.default_rng(0)
    X = rng.random((120, 36)).astype(np.float32)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 120)]
    spec = [L.reshape([6, 6, 1]), L.conv2d(3, 3, padding="same"), L.relu(), L.max_pool(2), L.flatten(), L.dense(3)]
    clf = NeuralNetClassifier(spec=spec, epochs=3, batch_size=40, seed=0, dtype="float32").fit(X, y)
    assert set(clf.predict(X)) <= {"a", "b", "c"} and clf.params_["W_1"].shape == (3, 3, 1, 3)
    clf.partial_fit(X, y)
    assert 0 <= clf.score(X, y) <= 1
    with pytest.raises(ValueError, match="spec has 2 output.* needs 3"):
        NeuralNetClassifier(spec=spec[:-1] + [L.dense(2)], epochs=1).fit(X, y)
