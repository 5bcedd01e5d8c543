"""Training control (issue 23): multi-label BCE, class weights, monitors, reduce-on-plateau, optimizer chains.

PyTorch's numbers are frozen in tests/data/torch_training_control.npz (made by
scripts/make_training_control_fixtures.py); the frozen tests need no torch. Where torch is
installed, test_fixture_is_current rebuilds the file in memory and compares.
"""
import importlib.util
import json
import os

import numpy as np
import pytest

import funcnn as F
from funcnn import losses as LS
from funcnn import optimizers as O
from funcnn import schedules as S
from conftest import assert_tree_equal

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_PATH = os.path.join(HERE, "data", "torch_training_control.npz")
SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "make_training_control_fixtures.py")
with np.load(DATA_PATH, allow_pickle=False) as _npz:
    DATA = {k: _npz[k] for k in _npz.files}
CASES = json.loads(str(DATA["cases"]))["cases"]
CE, BCE = "softmax_cross_entropy", "binary_cross_entropy"


def close(got, expected, rtol, what=""):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, what
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


# --------------------------------------------------------------------------- losses vs torch

@pytest.mark.parametrize("case", sorted(c for c in CASES if c.startswith("bce/")))
def test_bce_matches_torch(case):
    meta = CASES[case]
    z, t, w = DATA["bce/_shared/z"], DATA["bce/_shared/t"], DATA["bce/_shared/w"]
    options = {k: meta[k] for k in ("pos_weight", "class_weight") if meta.get(k) is not None}
    if "class_weight" in options:
        z, t = z[:, :1], t[:, 0]
    value, grad = LS.binary_cross_entropy(z, t, w if meta["weighted"] else None, **options)
    close(value, DATA[f"{case}/value"], 1e-12, case)
    close(grad, DATA[f"{case}/grad"], 1e-10, case)
    # the same through loss= dicts (value_and_grad's path: resolve + core)
    core_value, core_grad = LS.core({"name": BCE, **options})(z, LS.check_targets(BCE, t, len(t), z.shape[1], z.dtype),
                                                              w if meta["weighted"] else None)
    assert core_value == value and np.array_equal(core_grad, grad)


@pytest.mark.parametrize("case", sorted(c for c in CASES if c.startswith("ce/")))
def test_class_weighted_softmax_matches_torch(case):
    meta = CASES[case]
    z, y, w = DATA["ce/_shared/z"], DATA["ce/_shared/y"], DATA["ce/_shared/w"]
    value, grad = LS.softmax_cross_entropy(z, y, w if meta["weighted"] else None, class_weight=meta["class_weight"])
    close(value, DATA[f"{case}/value"], 1e-12, case)
    close(grad, DATA[f"{case}/grad"], 1e-10, case)


def test_multilabel_bce_by_hand_and_one_output_unchanged():
    z = np.array([[0.0, 2.0], [-1.0, 3.0]])
    t = np.array([[1, 0], [0, 1]])
    s = 1 / (1 + np.exp(-z))
    per = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    value, grad = LS.binary_cross_entropy(z, t)
    assert value == pytest.approx(per.mean(), rel=1e-14)
    np.testing.assert_allclose(grad, (s - t) / 4, rtol=1e-14)
    # pos_weight 3 on label 1: the positive (row 1) element weighs 3
    pv, pg = LS.binary_cross_entropy(z, t, pos_weight=[1.0, 3.0])
    scale = np.array([[1, 1], [1, 3]])
    assert pv == pytest.approx((per * scale).mean(), rel=1e-14)
    np.testing.assert_allclose(pg, (s - t) * scale / 4, rtol=1e-14)
    # one output: the (n, 1) arithmetic is the old one, bit for bit (pos_weight=None)
    z1 = np.array([[0.3], [-2.0], [5.0]])
    v1, g1 = LS.binary_cross_entropy(z1, [1, 0, 1])
    zz = z1[:, 0]
    old = np.maximum(zz, 0) - np.array([1.0, 0, 1]) * zz + np.log1p(np.exp(-np.abs(zz)))
    assert v1 == float(np.add.reduce(old, dtype=np.float64) / 3)


def test_multilabel_gradient_vs_finite_differences():
    rng = np.random.default_rng(0)
    spec = [F.dense(5), F.tanh(), F.dense(3)]
    params = F.init_params(spec, 4, seed=0, dtype=np.float64)
    X = rng.normal(size=(6, 4))
    Y = (rng.random((6, 3)) < 0.5).astype(int)
    loss = {"name": BCE, "pos_weight": [0.5, 2.0, 3.0]}
    err = F.gradcheck.check_gradients(spec, params, X, Y, loss=loss, sample_weight=rng.random(6) + 0.1)
    assert err < 1e-6


def test_multilabel_predict_shapes():
    rng = np.random.default_rng(1)
    spec = [F.dense(8), F.relu(), F.dense(3)]
    X = rng.normal(size=(40, 5))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0], axis=1).astype(int)
    params, history = F.train(spec, F.init_params(spec, 5, seed=0), X, Y, loss=BCE, optimizer=O.adam(0.05),
                              epochs=60, progress=False, validation_data=(X, Y))
    proba = F.predict_proba(spec, params, X, loss=BCE)
    pred = F.predict(spec, params, X, loss=BCE)
    assert proba.shape == (40, 3) and pred.shape == (40, 3) and set(np.unique(pred)) <= {0, 1}
    assert np.array_equal(pred, (proba > 0.5).astype(pred.dtype))
    from sklearn.metrics import accuracy_score
    # history's accuracy is scikit-learn's subset accuracy
    assert history["val_accuracy"][-1] == pytest.approx(accuracy_score(Y, pred))
    assert history["val_accuracy"][-1] > 0.8


def test_class_weight_balanced_equals_sklearn_sample_weights():
    from sklearn.utils.class_weight import compute_sample_weight
    rng = np.random.default_rng(2)
    y = np.array([0] * 30 + [1] * 6 + [2] * 4)
    X = rng.normal(size=(40, 3)) + y[:, None]
    spec = [F.dense(6), F.relu(), F.dense(3)]
    p0 = F.init_params(spec, 3, seed=0, dtype=np.float64)
    kw = dict(optimizer=O.sgd(0.1), epochs=5, batch_size=8, progress=False)
    a = F.train(spec, p0, X, y, loss={"name": CE, "class_weight": "balanced"}, **kw)
    b = F.train(spec, p0, X, y, loss=CE, sample_weight=compute_sample_weight("balanced", y), **kw)
    assert_tree_equal(a, b)
    # combined with sample_weight: sample_weight * class_weight[y]
    sw = rng.random(40) + 0.5
    cw = {0: 0.5, 2: 4.0}
    va, ga = LS.softmax_cross_entropy(np.ones((40, 3)) * X[:, :1], y, sw, class_weight=cw)
    w = sw * np.array([0.5, 1.0, 4.0])[y]
    vb, gb = LS.softmax_cross_entropy(np.ones((40, 3)) * X[:, :1], y, w)
    assert va == pytest.approx(vb, rel=1e-15) and np.allclose(ga, gb, rtol=1e-15, atol=0)
    # the balanced weights are scikit-learn's compute_class_weight
    from sklearn.utils.class_weight import compute_class_weight
    np.testing.assert_allclose(LS.balanced_class_weight(y, 3), compute_class_weight("balanced", classes=np.arange(3), y=y),
                               rtol=1e-15)


def test_class_weight_hand_computed_binary():
    z = np.array([[0.0], [1.0], [-1.0]])
    y = [0, 1, 1]
    value, _ = LS.binary_cross_entropy(z, y, class_weight={"1": 2.0})
    per = [np.log(2), np.log1p(np.exp(-1.0)), np.log1p(np.exp(1.0))]
    assert value == pytest.approx((per[0] + 2 * per[1] + 2 * per[2]) / 5, rel=1e-14)


# --------------------------------------------------------------------------- optimizer chains vs torch

def _adamw_inputs():
    params = {k[len("adamw/_shared/params/"):]: v for k, v in DATA.items() if k.startswith("adamw/_shared/params/")}
    steps = CASES["adamw/groups"]["steps"]
    grads = [{k: DATA[f"adamw/_shared/grads/{i}/{k}"] for k in params} for i in range(steps)]
    return params, grads


@pytest.mark.parametrize("case", ["adamw/groups", "adamw/groups_clip"])
def test_masked_adamw_matches_torch_parameter_groups(case):
    meta = CASES[case]
    params, grads = _adamw_inputs()
    b1, b2 = meta["betas"]
    parts = ([O.clip_by_global_norm(meta["clip"])] if meta["clip"] else []) + \
        [O.adam(meta["lr"], beta1=b1, beta2=b2, eps=meta["eps"]), O.add_decayed_weights(meta["weight_decay"], mask="W*")]
    opt = O.chain(parts)
    state = F.init_state(opt, params)
    for i, g in enumerate(grads):
        params, state = F.update(opt, params, g, state)
        for k in params:
            close(params[k], DATA[f"{case}/after/{i}/{k}"], 1e-10, f"{case} step {i} {k}")


def test_masked_decay_leaves_biases_and_batch_norm_untouched():
    params, grads = _adamw_inputs()
    decayed = O.chain([O.adam(0.05), O.add_decayed_weights(0.1, mask="W*")])
    plain = O.adam(0.05)
    pa, sa, pb, sb = params, F.init_state(decayed, params), params, F.init_state(plain, params)
    for g in grads:
        pa, sa = F.update(decayed, pa, g, sa)
        pb, sb = F.update(plain, pb, g, sb)
    for k in ("b_0", "gamma_1", "beta_1", "b_3"):
        assert np.array_equal(pa[k], pb[k]), k
    for k in ("W_0", "W_3"):
        assert not np.array_equal(pa[k], pb[k]), k
    # the unmasked transform is adam(weight_decay=...) bit for bit
    everything = O.chain([O.adam(0.05), O.add_decayed_weights(0.1)])
    builtin = O.adam(0.05, weight_decay=0.1)
    pa, sa, pb, sb = params, F.init_state(everything, params), params, F.init_state(builtin, params)
    for g in grads:
        pa, sa = F.update(everything, pa, g, sa)
        pb, sb = F.update(builtin, pb, g, sb)
    assert_tree_equal(pa, pb)


SPEC = [F.dense(6), F.relu(), {"type": "residual", "body": [F.dense(6), F.tanh()]}, F.dropout(0.1), F.dense(3)]


def _digits(n=120):
    from sklearn.datasets import load_digits
    X, y = load_digits(n_class=3, return_X_y=True)
    return X[:n, :16] / 16.0, y[:n]


CHAINS = {
    "decay_clip": O.chain([O.clip_by_global_norm(0.5), O.adam(1e-2), O.add_decayed_weights(1e-2, mask="W*")]),
    "freeze": O.chain([O.sgd(0.1, momentum=0.9), O.freeze("*.body.*")]),
    "accumulate": O.chain([O.accumulate_gradients(3), O.rmsprop(1e-2)]),
    "ema": O.chain([O.adam(1e-2), O.ema(0.9)]),
    "all": O.chain([O.accumulate_gradients(2), O.clip_by_global_norm(1.0), O.adam(S.cosine(1e-2, 20)),
                    O.add_decayed_weights(0.1, mask=["W*", "b_4"]), O.freeze("b_0"), O.ema(0.5)]),
    "plateau": O.adam(S.reduce_on_plateau(1e-2, patience=0, factor=0.5)),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_is_the_composition_for_chains(name, dtype):
    """train == a loop of value_and_grad + update (+ observe once per epoch), bit for bit."""
    opt = CHAINS[name]
    X, y = _digits()
    params = F.init_params(SPEC, 16, seed=3, dtype=dtype)
    got, history = F.train(SPEC, params, X, y, loss=CE, optimizer=opt, epochs=3, batch_size=32, seed=5,
                           progress=False, l2=1e-3)
    rng = np.random.default_rng(5)
    p, state = params, F.init_state(opt, params)
    Xd = X.astype(dtype)
    for _ in range(3):
        perm = rng.permutation(len(X))
        losses = []
        for b in range(0, len(X), 32):
            idx = perm[b:b + 32]
            value, grads = F.value_and_grad(SPEC, p, Xd[idx], y[idx], loss=CE, l2=1e-3, seed=rng)
            p, state = F.update(opt, p, grads, state)
            losses.append(value)
        state = O.observe(opt, state, sum(losses) / len(losses))  # train's epoch mean
    if "ema" in O.slot_names(opt):  # train returns the average (Keras's use_ema)
        p = O.averaged_params(opt, p, state)
    assert_tree_equal(got, p)


# --------------------------------------------------------------------------- accumulation and EMA by hand

def _grads_sequence(params, n, seed=0):
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(size=p.shape) for k, p in params.items()} for _ in range(n)]


def test_accumulation_is_one_step_on_the_mean_gradient():
    params = {"W_0": np.arange(6.0).reshape(2, 3), "b_0": np.ones(3)}
    grads = _grads_sequence(params, 6)
    opt = O.chain([O.accumulate_gradients(3), O.sgd(0.1, momentum=0.9)])
    base = O.sgd(0.1, momentum=0.9)
    p, state = params, F.init_state(opt, params)
    q, qs = params, F.init_state(base, params)
    for i, g in enumerate(grads):
        p, state = F.update(opt, p, g, state)
        if i % 3 < 2:
            assert state["micro"] == i % 3 + 1 and state["step"] == i // 3
        else:
            mean = {k: (grads[i - 2][k] + grads[i - 1][k] + grads[i][k]) / 3 for k in params}
            q, qs = F.update(base, q, mean, qs)
            assert state["micro"] == 0 and state["step"] == i // 3 + 1
            for k in params:
                np.testing.assert_allclose(p[k], q[k], rtol=1e-15, atol=1e-15)
                assert not state["acc"][k].any()


def test_ema_by_hand_loop():
    params = {"W_0": np.linspace(-1, 1, 6).reshape(2, 3), "b_0": np.zeros(3)}
    grads = _grads_sequence(params, 5, seed=1)
    opt = O.chain([O.adam(0.1), O.ema(0.8)])
    p, state = params, F.init_state(opt, params)
    avg = {k: v.copy() for k, v in params.items()}
    q, qs = params, F.init_state(O.adam(0.1), params)
    for g in grads:
        p, state = F.update(opt, p, g, state)
        q, qs = F.update(O.adam(0.1), q, g, qs)
        avg = {k: 0.8 * avg[k] + 0.2 * q[k] for k in avg}
    assert_tree_equal(p, q)  # the average does not steer the training
    for k in avg:
        np.testing.assert_allclose(state["ema"][k], avg[k], rtol=1e-14)
    assert_tree_equal(O.averaged_params(opt, p, state), {k: state["ema"][k] for k in p})


def test_freeze_keeps_params_and_slots():
    X, y = _digits()
    params = F.init_params(SPEC, 16, seed=0)
    opt = CHAINS["freeze"]
    got, _ = F.train(SPEC, params, X, y, loss=CE, optimizer=opt, epochs=2, batch_size=16, progress=False)
    assert np.array_equal(got["W_2.body.0"], params["W_2.body.0"]) and np.array_equal(got["b_2.body.0"], params["b_2.body.0"])
    assert not np.array_equal(got["W_0"], params["W_0"])


# --------------------------------------------------------------------------- reduce on plateau

@pytest.mark.parametrize("case", sorted(c for c in CASES if c.startswith("plateau/")))
def test_plateau_matches_torch(case):
    meta = dict(CASES[case])
    sign = meta.pop("sign")
    sched = S.reduce_on_plateau(meta.pop("lr"), **meta)
    opt = O.sgd(sched)
    state = F.init_state(opt, {"w": np.zeros(1)})
    lrs = []
    for v in DATA["plateau/_shared/values"]:
        lrs.append(O.current_lr(opt, state))
        state = O.observe(opt, state, sign * float(v))
        state = {**state, "step": state["step"] + 1}
    close(lrs, DATA[f"{case}/lrs"], 1e-13, case)
    assert len(set(lrs)) > 1  # the case does reduce


SPEC10 = SPEC[:-1] + [F.dense(10)]


def _run(data, epochs, **kw):
    X, y, Xv, yv = data
    args = dict(loss=CE, optimizer=O.adam(S.reduce_on_plateau(3e-2, patience=1, factor=0.5, threshold=0.05)), epochs=epochs,
                batch_size=32, validation_data=(Xv, yv), seed=7, progress=False)
    args.update(kw)
    return F.train(SPEC10, F.init_params(SPEC10, 16, seed=1), X, y, **args)


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X[:, :16] / 16.0
    return X[:300], y[:300], X[300:400], y[300:400]


RESUMABLE = {
    "plateau": {},
    "plateau_scorer_early_stopping": dict(early_stopping={"monitor": "f1_macro", "patience": 2},
                                         optimizer=O.chain([O.accumulate_gradients(2), O.adam(
                                             S.reduce_on_plateau(1e-2, patience=0, monitor="f1_macro", mode="max")),
                                             O.add_decayed_weights(1e-3, mask="W*"), O.ema(0.9)])),
    "class_weight": dict(loss={"name": CE, "class_weight": "balanced"}, early_stopping={"monitor": "val_accuracy"}),
}


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resume_mid_run_gives_the_uninterrupted_bits(data, tmp_path, name):
    kw = RESUMABLE[name]
    path = str(tmp_path / "ck.npz")
    full = _run(data, 9, **kw)
    _run(data, 4, checkpoint=path, **kw)
    resumed = _run(data, 9, checkpoint=path, **kw)
    assert_tree_equal(resumed, full)
    saved = F.load(path)["training_state"]["opt_state"]
    if "plateau" in name:
        assert saved["plateau"]["scale"] < 1.0  # the schedule did reduce, and the checkpoint carries it


def test_resume_with_other_options_is_refused(data, tmp_path):
    path = str(tmp_path / "ck.npz")
    _run(data, 2, checkpoint=path, loss={"name": CE, "class_weight": [1.0] * 9 + [2.0]})
    with pytest.raises(ValueError, match="loss_options"):
        _run(data, 4, checkpoint=path, loss={"name": CE, "class_weight": [1.0] * 10})
    with pytest.raises(ValueError, match="optimizer"):
        _run(data, 4, checkpoint=path, loss={"name": CE, "class_weight": [1.0] * 9 + [2.0]},
             optimizer=O.adam(S.reduce_on_plateau(1e-2, patience=2, factor=0.5)))


def test_plateau_reduces_in_train_and_train_epoch_agrees(data):
    from funcnn.train import new_run, train_epoch
    X, y = data[0], data[1]
    opt = O.sgd(S.reduce_on_plateau(0.5, patience=0, factor=0.5, threshold=0.5))
    params, history = F.train(SPEC10, F.init_params(SPEC10, 16, seed=1), X, y, loss=CE, optimizer=opt, epochs=4,
                              batch_size=64, seed=3, progress=False)
    run = new_run(SPEC10, F.init_params(SPEC10, 16, seed=1), opt, seed=3)
    for _ in range(4):
        run = train_epoch(SPEC10, run, X, y, loss=CE, optimizer=opt, batch_size=64)
    assert_tree_equal(run["params"], params)
    assert run["opt_state"]["plateau"]["scale"] < 1.0


# --------------------------------------------------------------------------- monitor anything

def test_monitor_callable_and_scorer_restore_best(data):
    X, y, Xv, yv = data
    from sklearn.metrics import f1_score

    def macro_f1(spec, params, X_val, y_val):
        return f1_score(y_val, F.predict(spec, params, X_val, loss=CE), average="macro")

    kw = dict(loss=CE, optimizer=O.adam(3e-2), epochs=12, batch_size=32, validation_data=(Xv, yv), seed=0,
              progress=False)
    p1, h1 = F.train(SPEC10, F.init_params(SPEC10, 16, seed=1), X, y, early_stopping={"monitor": macro_f1, "patience": 3}, **kw)
    p2, h2 = F.train(SPEC10, F.init_params(SPEC10, 16, seed=1), X, y, early_stopping={"monitor": "f1_macro", "patience": 3}, **kw)
    assert h1["val_macro_f1"] == h2["val_f1_macro"]  # the scorer and the hand-written callable agree
    assert "val_loss" in h1 and len(h1["val_loss"]) == len(h1["val_macro_f1"])
    best = int(np.argmax(h1["val_macro_f1"]))
    assert macro_f1(SPEC10, p1, Xv, yv) == h1["val_macro_f1"][best]  # the best params are restored
    assert_tree_equal(p1, p2)
    # a mode given explicitly wins over the inferred one
    _, h3 = F.train(SPEC10, F.init_params(SPEC10, 16, seed=1), X, y,
                    early_stopping={"monitor": "val_loss", "mode": "max", "patience": 1}, **kw)
    assert len(h3["loss"]) <= 3


BAD = [
    (lambda: LS.binary_cross_entropy(np.zeros((3, 2)), [0, 1, 1]), ValueError, r"multi-label: y must be an \(n, k\)"),
    (lambda: LS.binary_cross_entropy(np.zeros((2, 2)), [[0, 2], [1, 0]]), ValueError, r"y\[0, 1\] = 2"),
    (lambda: LS.binary_cross_entropy(np.zeros((2, 2)), np.eye(2), pos_weight=[1.0]), ValueError, "pos_weight has 1"),
    (lambda: LS.binary_cross_entropy(np.zeros((2, 1)), [0, 1], pos_weight=[-1.0]), ValueError, r"pos_weight\[0\]"),
    (lambda: LS.binary_cross_entropy(np.zeros((2, 1)), [0, 1], pos_weight="x"), TypeError, "pos_weight must be"),
    (lambda: LS.binary_cross_entropy(np.zeros((2, 2)), np.eye(2), class_weight=[1, 2]), ValueError, "use pos_weight|with pos_weight"),
    (lambda: LS.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], class_weight=[1, 2]), ValueError, "has 2 entries, expected 3"),
    (lambda: LS.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], class_weight={5: 1.0}), ValueError, "names class 5"),
    (lambda: LS.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], class_weight={"a": 1.0}), ValueError, "not a class index"),
    (lambda: LS.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], class_weight="balanced"), ValueError, "training labels"),
    (lambda: LS.resolve({"name": CE, "class_weight": "heavy"}), ValueError, "'balanced'"),
    (lambda: O.chain([O.adam(), O.sgd(0.1)]), ValueError, "a second optimizer"),
    (lambda: O.chain([O.ema(0.9)]), ValueError, "no optimizer"),
    (lambda: O.chain([O.adam(clip_norm=1.0)]), ValueError, "clip_by_global_norm"),
    (lambda: O.chain([O.adam(weight_decay=0.1), O.add_decayed_weights(0.1)]), ValueError, "keep one"),
    (lambda: O.chain([O.adam(), {"name": "ema", "decay": 1.5}]), ValueError, "chain transform 1: ema: decay"),
    (lambda: O.chain([O.adam(), {"name": "emma", "decay": 0.5}]), ValueError, "unknown name 'emma'"),
    (lambda: O.chain([O.adam(), {"name": "ema"}]), ValueError, r"expected exactly the keys \['decay'\]"),
    (lambda: O.chain([O.adam(), O.ema(0.5), O.ema(0.5)]), ValueError, "appears twice"),
    (lambda: O.chain("adam"), TypeError, "list of dicts"),
    (lambda: O.add_decayed_weights(0.1, mask=3), TypeError, "mask must be"),
    (lambda: O.freeze(None), ValueError, "freeze every array"),
    (lambda: O.accumulate_gradients(0), ValueError, "every"),
    (lambda: O.validate({"name": "ema", "decay": 0.5}), ValueError, "put it in optimizers.chain"),
    (lambda: F.update(O.chain([O.adam(), O.add_decayed_weights(0.1, mask="Wx*")]), {"W_0": np.ones(2)},
                      {"W_0": np.ones(2)}, F.init_state(O.adam(), {"W_0": np.ones(2)})), ValueError, "state does not fit|matches none"),
    (lambda: S.reduce_on_plateau(0.1, factor=1.0), ValueError, "factor"),
    (lambda: S.reduce_on_plateau(0.1, mode="down"), ValueError, "mode must be"),
    (lambda: S.reduce_on_plateau(0.1, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda: S.warmup(S.reduce_on_plateau(0.1), 3), ValueError, "cannot be reduce_on_plateau"),
    (lambda: S.value(S.reduce_on_plateau(0.1), 0), ValueError, "monitored values"),
    (lambda: O.observe(O.sgd(S.reduce_on_plateau(0.1)), {"step": 0}, 1.0), ValueError, "plateau"),
    (lambda: O.observe(O.sgd(S.reduce_on_plateau(0.1)), F.init_state(O.sgd(S.reduce_on_plateau(0.1)), {"w": np.ones(1)}),
                       float("nan")), ValueError, "monitored value"),
]


@pytest.mark.parametrize("make,exc,pattern", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_options_are_one_line_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        make()
    assert "\n" not in str(info.value)


TRAIN_BAD = [
    (dict(early_stopping={"monitor": "f1_mac"}), ValueError, "neither a history key"),
    (dict(early_stopping={"monitor": "val_loss"}, validation_data=None), ValueError, "no validation_data"),
    (dict(early_stopping={"monitor": "f1_macro"}, validation_data=None), ValueError, "no validation_data"),
    (dict(early_stopping={"monitor": lambda *a: 1.0}), ValueError, "give 'mode'"),
    (dict(early_stopping={"monitor": "loss", "mode": "up"}), ValueError, "'min', 'max'"),
    (dict(early_stopping={"monitor": 3}), TypeError, "history key"),
    (dict(early_stopping={"monitor": lambda *a: float("nan"), "mode": "max"}), ValueError, "finite number"),
    (dict(optimizer=O.adam(S.reduce_on_plateau(0.1, monitor="val_f1"))), ValueError, "neither a history key"),
    (dict(optimizer=O.chain([O.adam(), O.freeze("X*")])), ValueError, "matches none"),
    (dict(loss={"name": BCE, "class_weight": "balanced"}), ValueError, "multi-label"),
]


@pytest.mark.parametrize("kw,exc,pattern", TRAIN_BAD, ids=[str(i) for i in range(len(TRAIN_BAD))])
def test_bad_train_options_are_one_line_errors(data, kw, exc, pattern):
    X, y, Xv, yv = data
    if kw.get("loss", {}).get("name") == BCE if isinstance(kw.get("loss"), dict) else False:
        y = np.eye(10)[y][:, :3]
        yv = np.eye(10)[yv][:, :3]
        spec = SPEC[:-1] + [F.dense(3)]
    else:
        spec = SPEC[:-1] + [F.dense(10)]
    args = dict(loss=CE, optimizer=O.adam(), epochs=2, validation_data=(Xv, yv), progress=False)
    args.update(kw)
    with pytest.raises(exc, match=pattern) as info:
        F.train(spec, F.init_params(spec, 16, seed=0), X, y, **args)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the live twin needs torch; the frozen tests ran")
def test_fixture_is_current():
    spec = importlib.util.spec_from_file_location("make_training_control_fixtures", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = mod.build()
    assert sorted(built) == sorted(DATA)
    for k, v in built.items():
        assert np.array_equal(v, DATA[k]) if v.dtype.kind != "U" else str(v) == str(DATA[k]), k


# --------------------------------------------------------------------------- the scikit-learn adapter

def test_classifier_class_weight_is_sample_weight_times_class_weight():
    from sklearn.utils.class_weight import compute_sample_weight
    from funcnn.estimators import NeuralNetClassifier
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 4))
    y = np.where(X[:, 0] > 0.8, "rare", np.where(X[:, 1] > 0, "b", "a"))
    kw = dict(hidden=(6,), epochs=5, lr=1e-2, seed=0, batch_size=16)
    a = NeuralNetClassifier(class_weight="balanced", **kw).fit(X, y)
    b = NeuralNetClassifier(**kw).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    assert_tree_equal(a.params_, b.params_)
    sw = rng.random(60) + 0.5
    c = NeuralNetClassifier(class_weight={"rare": 5.0}, **kw).fit(X, y, sample_weight=sw)
    d = NeuralNetClassifier(**kw).fit(X, y, sample_weight=sw * compute_sample_weight({"rare": 5.0}, y))
    for k in c.params_:
        np.testing.assert_allclose(c.params_[k], d.params_[k], rtol=1e-12, atol=1e-14)
    assert c.loss_ == CE
    with pytest.raises(ValueError, match="not classes"):
        NeuralNetClassifier(class_weight={"zzz": 2.0}, **kw).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit"):
        NeuralNetClassifier(class_weight="balanced", **kw).partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="'balanced'"):
        NeuralNetClassifier(class_weight="even", **kw).fit(X, y)


def test_classifier_multilabel_indicator():
    from sklearn.datasets import make_multilabel_classification
    from funcnn.estimators import NeuralNetClassifier
    X, Y = make_multilabel_classification(n_samples=120, n_features=6, n_classes=4, random_state=0)
    X = X / X.max()
    clf = NeuralNetClassifier(hidden=(16,), epochs=80, lr=2e-2, seed=0,
                              early_stopping={"monitor": "f1_samples", "patience": 20}).fit(X, Y)
    assert clf.loss_ == BCE and list(clf.classes_) == [0, 1, 2, 3]
    pred, proba = clf.predict(X), clf.predict_proba(X)
    assert pred.shape == Y.shape and proba.shape == Y.shape
    assert np.array_equal(pred, (proba > 0.5).astype(pred.dtype))
    assert clf.score(X, Y) > 0.4  # subset accuracy, as MLPClassifier scores
    assert {"val_loss", "val_f1_samples"} <= set(clf.history_)
    with pytest.raises(ValueError, match="multi-label"):
        NeuralNetClassifier(class_weight="balanced", epochs=1).fit(X, Y)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        NeuralNetClassifier(epochs=1).fit(X, Y * 2)  # scikit-learn calls {0, 2} a label indicator; funcnn does not
    with pytest.raises(ValueError, match="label-indicator"):
        NeuralNetClassifier(epochs=1).fit(X, Y * np.arange(4))


# --------------------------------------------------------------------------- the command line

def _cli(*args, cwd):
    import subprocess
    import sys
    root = os.path.dirname(HERE)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "funcnn", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_class_weight(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    label = np.where(X[:, 0] > 1.0, "spam", "ham")
    with open(tmp_path / "mail.csv", "w") as f:
        f.write("a,b,c,label\n")
        for row, lab in zip(X, label):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{lab}\n")
    common = ("train", "--data", "mail.csv", "--epochs", "3", "--no-plot", "--quiet")
    proc = _cli(*common, "--class-weight", '{"spam": 5}', "--out", "a.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert F.load(str(tmp_path / "a.npz"))["class_weight"] == [1.0, 5.0]  # classes ham, spam
    proc = _cli(*common, "--class-weight", "balanced", "--out", "b.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ham, spam = F.load(str(tmp_path / "b.npz"))["class_weight"]
    assert spam > 2 * ham
    for bad, message in [('{"eggs": 2}', "not classes"), ("heavy", "expected 'balanced'"),
                         ('{"spam": -1}', ">= 0")]:
        proc = _cli(*common, "--class-weight", bad, cwd=tmp_path)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = _cli("train", "--data", "digits", "--task", "regression", "--epochs", "1", "--no-plot", "--quiet",
                "--class-weight", "balanced", cwd=tmp_path)
    assert proc.returncode != 0 and "applies to classification" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_several_label_columns_are_multi_label(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    with open(tmp_path / "tags.csv", "w") as f:
        f.write("a,b,c,d,sport,news,music\n")
        for row, tags in zip(X, Y):
            f.write(",".join(f"{v:.5f}" for v in row) + "," + ",".join(map(str, tags)) + "\n")
    proc = _cli("train", "--data", "tags.csv", "--label-column", "sport,news,music", "--epochs", "40",
                "--lr", "0.01", "--no-plot", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "multi-label" in proc.stdout and "binary_cross_entropy, 3 outputs" in proc.stdout
    model = F.load(str(tmp_path / "model.npz"))
    assert model["loss"] == BCE and list(model["classes"]) == ["sport", "news", "music"]
    ev = _cli("evaluate", "model.npz", "--data", "tags.csv", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert float(ev.stdout.split("accuracy ")[1].split()[0]) > 0.5  # subset accuracy on the test split
    pred = _cli("predict", "model.npz", "--data", "tags.csv", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    lines = pred.stdout.splitlines()
    assert lines[0] == "sport,news,music" and len(lines) == 61 and set("".join(lines[1:])) <= set("01,")
    proba = _cli("predict", "model.npz", "--data", "tags.csv", "--proba", cwd=tmp_path).stdout.splitlines()
    assert proba[0] == "sport,news,music" and all(0 <= float(v) <= 1 for v in proba[1].split(","))
    # another file: by header names; the labels, or none of them (predict only), or a clear refusal
    with open(tmp_path / "new.csv", "w") as f:
        f.write("d,news,c,b,a,music,sport\n")
        for row, tags in zip(X[:5], Y[:5]):
            f.write(f"{row[3]},{tags[1]},{row[2]},{row[1]},{row[0]},{tags[2]},{tags[0]}\n")
    ev = _cli("evaluate", "model.npz", "--data", "new.csv", cwd=tmp_path)
    assert ev.returncode == 0 and "accuracy" in ev.stdout, ev.stderr
    with open(tmp_path / "unlabelled.csv", "w") as f:
        f.write("a,b,c,d\n" + "".join(",".join(map(str, row)) + "\n" for row in X[:4]))
    out = _cli("predict", "model.npz", "--data", "unlabelled.csv", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "sport,news,music" and len(out.stdout.splitlines()) == 5
    with open(tmp_path / "partial.csv", "w") as f:
        f.write("a,b,c,d,sport\n" + "".join(",".join(map(str, row)) + ",1\n" for row in X[:4]))
    bad = _cli("evaluate", "model.npz", "--data", "partial.csv", cwd=tmp_path)
    assert bad.returncode != 0 and "needs all of its label columns" in bad.stderr and "Traceback" not in bad.stderr
    for extra, message in [(("--label-column", "sport,a"), "must hold 0/1"),
                           (("--label-column", "sport,news", "--class-weight", "balanced"), "multi-label"),
                           (("--label-column", "sport,sport"), "2 different columns"),
                           (("--label-column", "sport,news", "--task", "regression"), "multi-label")]:
        proc = _cli("train", "--data", "tags.csv", "--epochs", "1", "--no-plot", "--quiet", *extra, cwd=tmp_path)
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _readonly(tree):
    if isinstance(tree, dict):
        return {k: _readonly(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        tree = tree.copy()
        tree.flags.writeable = False
    return tree


def test_chain_functions_are_pure():
    params = _readonly({"W_0": np.arange(6.0).reshape(2, 3), "b_0": np.ones(3)})
    grads = _readonly(_grads_sequence(params, 1)[0])
    opt = CHAINS["all"]
    opt = O.chain([t if t["name"] != "freeze" else O.freeze("b_*") for t in opt["transforms"]])
    opt = O.chain(opt["transforms"][:2] + [O.adam(S.reduce_on_plateau(0.1, patience=0))] + opt["transforms"][3:])
    state = _readonly(F.init_state(opt, params))
    before = (params, grads, state)
    copies = [{k: (dict(v) if isinstance(v, dict) else v) for k, v in t.items()} for t in before]
    for _ in range(2):
        a = F.update(opt, params, grads, state)
        b = F.update(opt, params, grads, state)
        assert_tree_equal(a, b)  # same inputs, same bits
        p1, s1 = F.update(opt, *a[:1], grads, a[1])
    s2 = O.observe(opt, s1, 1.0)
    assert s2 is not s1 and s1["plateau"]["best"] is None and s2["plateau"]["best"] == 1.0
    O.averaged_params(opt, p1, s1)
    for got, copy in zip(before, copies):
        assert_tree_equal(got, copy)
