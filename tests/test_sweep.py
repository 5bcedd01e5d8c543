"""funcnn.sweep: trial lists, the sweep's results, determinism across n_jobs, failures, errors."""
import copy
import math

import joblib
import numpy as np
import pytest

from conftest import assert_tree_equal, frozen
from funcnn.network import init_params, predict
from funcnn.optimizers import adam, sgd
from funcnn.layers import mlp as make_spec
from funcnn.sweep import best, grid, random_samples, sweep
from funcnn.train import evaluate, train

LOSS = "softmax_cross_entropy"


@pytest.fixture(scope="module")
def data():
    """Small standardised digits split: 300 train, 150 validation."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[:300], y[:300], X[300:450], y[300:450]


def one_blas_thread():
    """The sweep runs trials with one BLAS thread; OpenBLAS's last bits can depend on the count."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return threadpoolctl.threadpool_limits(1)


def small_sweep(data, trials, **kwargs):
    X, y, Xv, yv = data
    kwargs.setdefault("base", {"hidden": (16,), "optimizer": "sgd", "lr": 0.1, "batch_size": 64})
    kwargs.setdefault("epochs", 4)
    return sweep(X, y, validation_data=(Xv, yv), trials=trials, loss=LOSS, **kwargs)


# --------------------------------------------------------------------------- grid / random_samples

def test_grid_order_counts_and_plain_values():
    g = grid(a=[1, 2], b=["x", "y", "z"])
    assert len(g) == 6
    assert g == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                 {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert grid(b=["x", "y"], a=[1, 2])[1] == {"b": "x", "a": 2}      # keyword order = nesting order
    lam = grid(l2=np.logspace(-2, 2, 10))
    assert len(lam) == 10 and all(type(t["l2"]) is float for t in lam)
    assert [t["l2"] for t in lam] == np.logspace(-2, 2, 10).tolist()
    assert grid(hidden=[(16,), (32, 16)]) == [{"hidden": (16,)}, {"hidden": (32, 16)}]
    assert grid() == [{}]
    assert grid(a=range(3)) == grid(a=[0, 1, 2])
    with pytest.raises(TypeError, match="activation"):
        grid(activation="relu")                       # a string is not a list of strings
    with pytest.raises(ValueError, match="'lr' is empty"):
        grid(lr=[])


def test_random_samples_deterministic_and_in_range():
    axes = dict(lr=("log", 1e-4, 1e-1), momentum=("uniform", 0.5, 0.99), width=("int", 8, 12),
                hidden=[(16,), (32, 16)], activation=["relu", "tanh"])
    a = random_samples(50, 7, **axes)
    assert len(a) == 50 and all(list(t) == list(axes) for t in a)
    assert a == random_samples(50, 7, **axes)                           # same seed, same trials
    assert a != random_samples(50, 8, **axes)
    assert random_samples(10, 7, **axes) == a[:10]                      # prefixes agree
    assert all(1e-4 <= t["lr"] <= 1e-1 and 0.5 <= t["momentum"] <= 0.99 for t in a)
    assert {t["width"] for t in a} == {8, 9, 10, 11, 12}                # ints, inclusive
    assert {t["hidden"] for t in a} == {(16,), (32, 16)}                # tuples stay tuples
    assert all(type(t["lr"]) is float and type(t["width"]) is int for t in a)
    logs = np.log10([t["lr"] for t in a])
    assert logs.min() < -3 and logs.max() > -2                          # spread over decades
    # Each axis has its own stream: adding an axis leaves the others alone.
    fewer = random_samples(50, 7, lr=axes["lr"])
    assert [t["lr"] for t in fewer] == [t["lr"] for t in a]
    # n and seed are positional, so "seed" can be an axis
    assert {t["seed"] for t in random_samples(20, 0, seed=[1, 2])} == {1, 2}


@pytest.mark.parametrize("axis, exc", [(("log", 0.0, 1.0), ValueError), (("uniform", 2.0, 1.0), ValueError),
                                       (("relu", "tanh"), ValueError), (("int", 1.5, 3), TypeError),
                                       ("relu", TypeError), ([], ValueError)])
def test_random_samples_bad_axes(axis, exc):
    with pytest.raises(exc, match="'x'"):
        random_samples(3, 0, x=axis)


def test_make_spec():
    assert make_spec((32, 16), "tanh", 0.25, 3) == [
        {"type": "dense", "units": 32}, {"type": "tanh"}, {"type": "dropout", "rate": 0.25},
        {"type": "dense", "units": 16}, {"type": "tanh"}, {"type": "dropout", "rate": 0.25},
        {"type": "dense", "units": 3}]
    assert make_spec(8) == [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 10}]
    assert make_spec((), n_outputs=2) == [{"type": "dense", "units": 2}]
    assert make_spec([np.int64(4)], {"type": "leaky_relu", "alpha": 0.1}, n_outputs=1)[1] == \
        {"type": "leaky_relu", "alpha": 0.1}
    with pytest.raises(ValueError, match="activation"):
        make_spec(activation="softmax")
    with pytest.raises(ValueError, match="dropout"):
        make_spec(dropout=1.0)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        make_spec((8, 0))


# --------------------------------------------------------------------------- determinism across n_jobs

def test_serial_and_parallel_results_identical(data):
    trials = grid(lr=[0.05, 0.2, 1e6], dropout=[0.0, 0.2])              # dropout: RNG in training too
    serial = small_sweep(data, trials, n_jobs=1, keep_params="all")
    assert [r["index"] for r in serial[-2:]] == [4, 5]                  # the two lr=1e6 trials fail
    # loky processes; threads; n_jobs=None deferring to an enclosing parallel_config (as for Dask or Ray)
    for kwargs, config in (({"n_jobs": 2}, {}), ({"n_jobs": 2, "backend": "threading"}, {}),
                           ({"n_jobs": None}, {"backend": "threading", "n_jobs": 2})):
        with joblib.parallel_config(**config):
            par = small_sweep(data, trials, keep_params="all", **kwargs)
        assert [r["index"] for r in par] == [r["index"] for r in serial]
        for a, b in zip(serial, par):
            for key in ("trial", "seed", "score", "val_loss", "metrics", "history", "params", "spec",
                        "optimizer", "error"):
                assert_tree_equal(a[key], b[key])


def test_every_trial_uses_the_sweep_seed_common_random_numbers(data):
    """Issue 10: trial i's seed came from its grid position, so the ranking was partly noise."""
    res = small_sweep(data, grid(lr=[0.05, 0.1]) + [{"seed": 5}], seed=3, epochs=1)
    seeds = {r["index"]: r["seed"] for r in res}
    assert seeds == {0: 3, 1: 3, 2: 5}                      # a trial's own seed still wins
    assert {r["seed"] for r in small_sweep(data, grid(lr=[0.05, 0.1]), epochs=1)} == {0}   # default seed 0


def test_a_configuration_scores_the_same_whatever_the_grid(data):
    """The same settings score the same in any sweep: identical trials tie, positions do not matter."""
    twins = small_sweep(data, grid(l2=[0.0, 0.0, 0.0]), base={"hidden": (16,), "lr": 0.1, "dropout": 0.2})
    assert len({r["score"] for r in twins}) == 1 and len({r["val_loss"] for r in twins}) == 1
    a = {r["trial"]["lr"]: r["score"] for r in small_sweep(data, grid(lr=[0.05, 0.1]))}
    b = {r["trial"]["lr"]: r["score"] for r in small_sweep(data, grid(lr=[0.1, 0.2, 0.3]))}
    assert a[0.1] == b[0.1]


def test_repeats_report_mean_and_spread_over_common_seeds(data):
    trials = grid(lr=[0.05, 0.2])
    res = small_sweep(data, trials, repeats=3, seed=7, keep_params="all")
    singles = [small_sweep(data, trials, seed=7 + r, keep_params="all") for r in range(3)]
    for r in res:
        assert r["seeds"] == [7, 8, 9] and r["seed"] == 7 and r["score_name"] == "accuracy"
        per_seed = [next(x for x in single if x["index"] == r["index"]) for single in singles]
        assert r["scores"] == [x["score"] for x in per_seed]        # each seed's run, as a sweep with that seed
        assert r["score"] == pytest.approx(np.mean(r["scores"]))
        assert r["score_std"] == pytest.approx(np.std(r["scores"]))
        assert (r["score_min"], r["score_max"]) == (min(r["scores"]), max(r["scores"]))
        assert_tree_equal(r["params"], per_seed[0]["params"])       # the first seed's network
    assert res[0]["score"] >= res[1]["score"]                       # ranked by the mean
    one = small_sweep(data, trials)[0]
    assert one["scores"] == [one["score"]] and one["score_std"] == 0.0 and one["seeds"] == [0]
    with pytest.raises(ValueError, match="repeats"):
        small_sweep(data, trials, repeats=0)


def test_repeats_serial_and_parallel_identical(data):
    trials = grid(lr=[0.05, 0.2, 1e6], dropout=[0.2])
    serial = small_sweep(data, trials, repeats=2, n_jobs=1, keep_params="all")
    par = small_sweep(data, trials, repeats=2, n_jobs=2, keep_params="all")
    assert serial[-1]["error"] is not None and np.isnan(serial[-1]["score"])
    for a, b in zip(serial, par):
        for key in ("index", "seeds", "score", "scores", "score_std", "val_loss", "metrics", "history", "params",
                    "error"):
            assert_tree_equal(a[key], b[key])


def test_regression_score_is_named_r2(data):
    X, _, Xv, _ = data
    res = sweep(X, X[:, 0] * 2.0, validation_data=(Xv, Xv[:, 0] * 2.0), trials=grid(lr=[0.01]),
                loss="mean_squared_error", base={"hidden": (8,)}, epochs=2)
    assert res[0]["score_name"] == "r2" and res[0]["score"] == res[0]["metrics"]["r2"]


def test_best_params_reproduce_score_and_training(data):
    X, y, Xv, yv = data
    res = small_sweep(data, grid(lr=[0.01, 0.1], hidden=[(8,), (16,)]), n_jobs=1)
    top = best(res)
    assert top is res[0] and top["error"] is None and top["score_name"] == "accuracy"
    assert [r["params"] is not None for r in res] == [True, False, False, False]   # keep_params="best"
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True)
    with one_blas_thread():
        assert np.mean(predict(top["spec"], top["params"], Xv, loss=LOSS) == yv) == top["score"]
        assert evaluate(top["spec"], top["params"], Xv, yv, loss=LOSS) == top["metrics"]
    assert top["score"] == top["history"]["val_accuracy"][-1] == top["metrics"]["accuracy"]
    assert top["val_loss"] == top["metrics"]["loss"]
    # The result says everything needed to redo the trial by hand, bit for bit.
    p0 = init_params(top["spec"], X.shape[1], seed=top["seed"])
    with one_blas_thread():
        params, history = train(top["spec"], p0, X, y, loss=LOSS, optimizer=top["optimizer"],
                                epochs=top["trial"]["epochs"], batch_size=top["trial"]["batch_size"],
                                validation_data=(Xv, yv), seed=top["seed"], progress=False)
    assert_tree_equal(params, top["params"])
    assert_tree_equal(history, top["history"])
    assert top["optimizer"] == sgd(top["trial"]["lr"]) and top["seconds"] > 0


def test_ties_broken_by_trial_index(data):
    res = small_sweep(data, [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}], base={"hidden": (8,), "seed": 1},
                      keep_params="all")
    assert len({r["score"] for r in res}) == 1
    assert [r["index"] for r in res] == [0, 1, 2] and best(res)["index"] == 0


# --------------------------------------------------------------------------- failures

def test_failing_trials_are_reported_not_fatal(data):
    X, y, Xv, yv = data
    spec = make_spec((16,), "relu", n_outputs=10)
    with pytest.raises(FloatingPointError):                             # the failure is real
        train(spec, init_params(spec, X.shape[1], seed=0), X, y, loss=LOSS, optimizer=sgd(1e6), epochs=4,
              batch_size=64, progress=False)
    trials = [{"lr": 1e6}, {"lr": 0.1}, {"dropout": 1.5}, {"optimizer": "adam", "momentum": 0.9},
              {"lr": -1.0}, {"optimizer": "nadam"}, {"seed": -2}, {"lr": 0.05}]
    res = small_sweep(data, trials, n_jobs=2)
    assert [r["index"] for r in res[:2]] in ([1, 7], [7, 1])
    failed = {r["index"]: r for r in res[2:]}
    assert sorted(failed) == [0, 2, 3, 4, 5, 6]
    assert failed[0]["error"].startswith("FloatingPointError: training diverged")
    assert failed[2]["error"].startswith("ValueError:") and "dropout" in failed[2]["error"]
    assert failed[3]["error"].startswith("ValueError:") and "momentum" in failed[3]["error"]
    assert "lr" in failed[4]["error"] and "nadam" in failed[5]["error"] and "seed" in failed[6]["error"]
    for r in failed.values():
        assert math.isnan(r["score"]) and r["params"] is None and r["history"] is None
        assert "Traceback" in r["traceback"]
    assert best(res)["index"] in (1, 7) and best(res) is res[0]
    with pytest.raises(ValueError, match="all 2 trials failed; trial 0: FloatingPointError"):
        best(small_sweep(data, [{"lr": 1e6}, {"lr": 2e6}]))


# --------------------------------------------------------------------------- argument errors

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"trials": [{"lr": 0.1}, {"lrr": 0.1}]}, ValueError, r"trials\[1\]: unknown key 'lrr'"),
    ({"trials": [{}], "base": {"hidden": (8,), "epoch": 3}}, ValueError, "base: unknown key 'epoch'"),
    ({"trials": []}, ValueError, "trials is empty"),
    ({"trials": {"lr": [0.1, 0.2]}}, TypeError, "grid"),
    ({"trials": [0.1]}, TypeError, r"trials\[0\] must be a dict"),
    ({"trials": [{}], "n_jobs": 0}, ValueError, "n_jobs"),
    ({"trials": [{}], "n_jobs": 1.5}, TypeError, "n_jobs"),
    ({"trials": [{}], "n_jobs": True}, TypeError, "n_jobs"),
    ({"trials": [{"spec": make_spec(8), "hidden": (4,)}]}, ValueError, "alternatives"),
    ({"trials": [{}], "epochs": None}, ValueError, r"trials\[0\] has no 'epochs'"),
    ({"trials": [{}], "score": "r2"}, ValueError, "regression"),
    ({"trials": [{}], "score": "f1"}, ValueError, "unknown score"),
    ({"trials": [{}], "keep_params": "some"}, ValueError, "keep_params"),
    ({"trials": [{}], "seed": -1}, ValueError, "seed"),
])
def test_bad_arguments(data, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        small_sweep(data, **kwargs)


def test_bad_data_fails_before_training(data):
    X, y, Xv, yv = data
    with pytest.raises(ValueError, match="validation_data X has 10 features"):
        sweep(X, y, validation_data=(Xv[:, :10], yv), trials=[{}], loss=LOSS, epochs=1)
    Xn = X.copy()
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sweep(Xn, y, validation_data=(Xv, yv), trials=[{}], loss=LOSS, epochs=1)
    with pytest.raises(ValueError):
        sweep(X, y[:-1], validation_data=(Xv, yv), trials=[{}], loss=LOSS, epochs=1)
    with pytest.raises(ValueError, match="sample_weight"):
        sweep(X, y, validation_data=(Xv, yv), trials=[{}], loss=LOSS, epochs=1, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="unknown loss"):
        sweep(X, y, validation_data=(Xv, yv), trials=[{}], loss="hinge", epochs=1)
    weighted = sweep(X, y, validation_data=(Xv, yv), trials=[{}], loss=LOSS, epochs=1,
                     sample_weight=np.linspace(0.5, 1.5, len(y)))
    assert weighted[0]["error"] is None


# --------------------------------------------------------------------------- purity, settings, scores

def test_read_only_inputs_and_unmodified_arguments(data):
    X, y, Xv, yv = frozen(data)
    trials = [{"hidden": (8,), "lr": 0.1, "early_stopping": {"patience": 2}}, {"hidden": [8], "lr": 0.2}]
    base = {"optimizer": "sgd", "momentum": 0.5, "epochs": 3}
    saved = copy.deepcopy((trials, base))
    res = sweep(X, y, validation_data=(Xv, yv), trials=trials, base=base, loss=LOSS, keep_params="all")
    assert all(r["error"] is None for r in res)
    assert (trials, base) == saved
    for arr, orig in zip((X, y, Xv, yv), data):
        assert not arr.flags.writeable and np.array_equal(arr, orig)


def test_seed_002_lambda_sweep_is_one_call(data):
    X, y, Xv, yv = data
    res = sweep(X, y, validation_data=(Xv, yv), trials=grid(l2=np.logspace(-2, 2, 10)),
                base={"hidden": (48, 32), "activation": "sigmoid", "optimizer": "sgd", "lr": 0.2,
                      "momentum": 0.9, "epochs": 3}, loss="softmax_cross_entropy")
    assert len(res) == 10 and all(r["error"] is None for r in res)
    top = best(res)
    assert top["spec"] == make_spec((48, 32), "sigmoid", n_outputs=10)
    assert top["optimizer"] == sgd(0.2, momentum=0.9)
    curve = sorted(res, key=lambda r: r["index"])
    assert [r["trial"]["l2"] for r in curve] == np.logspace(-2, 2, 10).tolist()


def test_optimizer_dicts_specs_and_other_scores(data):
    X, y, Xv, yv = data
    spec = make_spec((8,), "tanh", n_outputs=10)
    res = small_sweep(data, [{"optimizer": adam(1e-2), "lr": 0.05, "beta1": 0.8}, {"spec": spec}],
                      score="neg_loss", keep_params="all")
    by_index = {r["index"]: r for r in res}
    assert by_index[0]["optimizer"] == adam(0.05, beta1=0.8)
    assert by_index[1]["spec"] is spec or by_index[1]["spec"] == spec
    assert "hidden" not in by_index[1]["trial"]                         # the trial's spec replaced base's keys
    assert all(r["score"] == -r["val_loss"] and r["score_name"] == "neg_loss" for r in res)
    # regression: R² by default; a callable score on predictions
    yr = (X[:, :2] * [1.0, -0.5]).sum(axis=1, keepdims=True)
    yrv = (Xv[:, :2] * [1.0, -0.5]).sum(axis=1, keepdims=True)
    reg = sweep(X, yr, validation_data=(Xv, yrv), trials=grid(lr=[0.01, 0.05]), loss="mean_squared_error",
                base={"hidden": (8,), "optimizer": "adam"}, epochs=5, keep_params="all")
    assert {r["score_name"] for r in reg} == {"r2"} and all(r["score"] == r["metrics"]["r2"] for r in reg)
    with one_blas_thread():
        for r in reg:                                                   # the numbers evaluate() gives
            ev = evaluate(r["spec"], r["params"], Xv, yrv, loss="mean_squared_error")
            assert ev["loss"] == r["metrics"]["loss"] == r["metrics"]["mse"]
            assert ev["r2"] == pytest.approx(r["metrics"]["r2"], rel=1e-6)
    assert best(reg)["spec"][-1] == {"type": "dense", "units": 1}

    def neg_mae(y_true, y_pred):
        return -float(np.mean(np.abs(y_true - y_pred)))

    mae = sweep(X, yr, validation_data=(Xv, yrv), trials=[{}], loss="mean_squared_error", epochs=2,
                score=neg_mae, keep_params="all")
    assert mae[0]["score_name"] == "neg_mae"
    with one_blas_thread():
        pred = predict(mae[0]["spec"], mae[0]["params"], Xv, loss="mean_squared_error")
    assert mae[0]["score"] == neg_mae(yrv, pred)


def test_keep_params_modes(data):
    trials = grid(lr=[0.05, 0.1, 0.2])
    assert all(r["params"] is not None for r in small_sweep(data, trials, keep_params="all", epochs=1))
    assert all(r["params"] is None for r in small_sweep(data, trials, keep_params="none", epochs=1))


def test_workers_run_trials_with_one_blas_thread(data):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not threadpoolctl.threadpool_info():
        pytest.skip("no BLAS/OpenMP thread pool found")

    def max_threads(y_true, y_pred):        # runs inside the trial, in the worker
        import threadpoolctl
        return float(max(info["num_threads"] for info in threadpoolctl.threadpool_info()))

    res = small_sweep(data, [{}, {}], n_jobs=2, epochs=1, score=max_threads)
    assert [r["score"] for r in res] == [1.0, 1.0]
