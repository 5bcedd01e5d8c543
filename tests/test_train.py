"""train() and evaluate(): determinism, purity, history, early stopping, divergence, bad arguments."""
import numpy as np
import pytest

import funcnn as F
from funcnn import optimizers as O
from funcnn.train import evaluate, train
from conftest import assert_tree_equal, frozen

CE = "softmax_cross_entropy"
SPEC = [F.dense(32), F.relu(), F.dropout(0.1), F.dense(10)]


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[:1000], y[:1000], X[1000:1400], y[1000:1400]


def run(data, **kw):
    X, y, Xv, yv = data
    args = dict(loss=CE, optimizer=O.adam(1e-2), epochs=3, batch_size=64, validation_data=(Xv, yv),
                seed=0, progress=False)
    args.update(kw)
    spec = args.pop("spec", SPEC)
    params = args.pop("params", None) or F.init_params(spec, 64, seed=0)
    return train(spec, params, X, y, **args)


@pytest.mark.parametrize("opt", [O.sgd(0.1), O.sgd(0.05, momentum=0.9), O.sgd(0.05, momentum=0.9, nesterov=True),
                                 O.rmsprop(1e-2), O.adam(1e-2), O.adam(1e-2, weight_decay=0.01)],
                         ids=["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_every_optimizer_lowers_the_loss_on_digits(data, opt):
    X, y, Xv, yv = data
    params = F.init_params(SPEC, 64, seed=1)
    before = evaluate(SPEC, params, Xv, yv, loss=CE)
    params, history = run(data, optimizer=opt, epochs=5, params=params)
    after = evaluate(SPEC, params, Xv, yv, loss=CE)
    assert history["loss"][-1] < history["loss"][0]
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] > 0.85


def test_history_keys_and_lengths(data):
    _, h = run(data, epochs=4, l2=0.01)
    assert list(h) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 4 and all(isinstance(x, float) for x in v) for v in h.values())
    _, h = run(data, epochs=2, validation_data=None)
    assert list(h) == ["loss", "accuracy"]


def test_loss_is_mean_of_batch_objectives_with_l2(data):
    """With lr = 0 nothing moves: the epoch loss equals the full objective, L2 term included."""
    X, y, Xv, yv = data
    spec = [F.dense(16), F.tanh(), F.dense(10)]
    params = F.init_params(spec, 64, seed=0, dtype=np.float64)
    _, h = train(spec, params, X, y, loss=CE, optimizer=O.sgd(0.0), epochs=1, l2=0.3, progress=False,
                 validation_data=(Xv, yv))
    full, _ = F.value_and_grad(spec, params, X, y, loss=CE, l2=0.3, training=False)
    assert h["loss"][0] == pytest.approx(full, rel=1e-12)
    val, _ = F.value_and_grad(spec, params, Xv, yv, loss=CE, l2=0.3, training=False)
    assert h["val_loss"][0] == pytest.approx(val, rel=1e-12)
    acc = np.mean(F.predict(spec, params, X, loss=CE) == y)
    assert h["accuracy"][0] == pytest.approx(acc)


def test_full_batch_equals_manual_gradient_descent(data):
    X, y, _, _ = data
    spec = [F.dense(8), F.sigmoid(), F.dense(10)]
    p0 = F.init_params(spec, 64, seed=3, dtype=np.float64)
    p, _ = train(spec, p0, X, y, loss=CE, optimizer=O.sgd(0.5), epochs=3, progress=False)
    q = p0
    for _ in range(3):
        _, g = F.value_and_grad(spec, q, X, y, loss=CE)
        q = {k: q[k] - 0.5 * g[k] for k in q}
    for k in p:
        np.testing.assert_allclose(p[k], q[k], rtol=1e-12, atol=1e-14)
    # a batch larger than n is one batch too
    r, _ = train(spec, p0, X, y, loss=CE, optimizer=O.sgd(0.5), epochs=3, batch_size=10_000, progress=False)
    assert_tree_equal(r, p)


def test_last_partial_batch_is_used(data):
    """n = 10, batch 4: three updates per epoch (4 + 4 + 2), seen through the optimizer step count."""
    X, y, _, _ = data
    steps = []
    spec = [F.dense(10)]
    params = F.init_params(spec, 64, seed=0)
    opt = O.sgd(lambda step: steps.append(step) or 0.01)
    train(spec, params, X[:10], y[:10], loss=CE, optimizer=opt, epochs=2, batch_size=4, progress=False)
    assert steps == [0, 1, 2, 3, 4, 5]


def test_deterministic_for_a_seed_and_different_for_another(data):
    a = run(data, seed=5)
    b = run(data, seed=5)
    c = run(data, seed=6)
    assert_tree_equal(a, b)
    assert not np.array_equal(a[0]["W_0"], c[0]["W_0"])


def test_pure_on_readonly_inputs(data):
    X, y, Xv, yv = (frozen(a) for a in data)
    params = frozen(F.init_params(SPEC, 64, seed=0))
    before = frozen(params)
    w = frozen(np.linspace(0.5, 1.5, len(y)))
    out = train(SPEC, params, X, y, loss=CE, optimizer=O.adam(1e-2), epochs=2, batch_size=50,
                validation_data=(Xv, yv), sample_weight=w, progress=False)
    assert_tree_equal(params, before)
    assert_tree_equal(X, data[0])
    assert all(not np.shares_memory(out[0][k], params[k]) for k in params)
    assert_tree_equal(out, train(SPEC, params, X, y, loss=CE, optimizer=O.adam(1e-2), epochs=2, batch_size=50,
                                 validation_data=(Xv, yv), sample_weight=w, progress=False))


def test_generator_seed_is_advanced(data):
    g = np.random.default_rng(0)
    a, _ = run(data, seed=g, epochs=1)
    b, _ = run(data, seed=g, epochs=1)
    assert not np.array_equal(a["W_0"], b["W_0"])


def test_epochs_zero_returns_params_unchanged(data):
    params = F.init_params(SPEC, 64, seed=0)
    p, h = run(data, epochs=0, params=params)
    assert_tree_equal(p, params)
    assert h == {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}


def test_early_stopping_restores_the_best_epoch(data):
    seen = {}

    def remember(epoch, params, history):
        seen[epoch] = params
    # A large learning rate makes the validation loss bounce, so patience runs out.
    params, h = run(data, optimizer=O.sgd(0.3, momentum=0.9), epochs=60, early_stopping={"patience": 3},
                    callbacks=[remember])
    n = len(h["val_loss"])
    best = int(np.argmin(h["val_loss"])) + 1
    assert n < 60 and n == best + 3
    assert_tree_equal(params, seen[best])
    # restore_best=False keeps the last params
    params, h = run(data, optimizer=O.sgd(0.3, momentum=0.9), epochs=60,
                    early_stopping={"patience": 3, "restore_best": False}, callbacks=[remember])
    assert_tree_equal(params, seen[len(h["loss"])])


def test_callback_can_stop(data):
    calls = []
    _, h = run(data, epochs=10, callbacks=[lambda e, p, h: calls.append(e) or e == 2])
    assert calls == [1, 2] and len(h["loss"]) == 2


def test_divergence_raises_naming_the_epoch(data):
    X, y, _, _ = data
    spec = [F.dense(32), F.relu(), F.dense(10)]
    with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+"):
        train(spec, F.init_params(spec, 64, seed=0), X * 1e3, y, loss=CE, optimizer=O.sgd(1e6), epochs=20,
              progress=False)


def test_mse_and_binary(data):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    t = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    spec = [F.dense(16), F.tanh(), F.dense(1)]
    p, h = train(spec, F.init_params(spec, 3, seed=0), X, t, loss="mean_squared_error",
                 optimizer=O.adam(1e-2), epochs=30, batch_size=32, progress=False)
    assert "accuracy" not in h and h["loss"][-1] < 0.05 * h["loss"][0]
    scores = evaluate(spec, p, X, t, loss="mean_squared_error")
    assert set(scores) == {"loss", "mse", "r2"} and scores["r2"] > 0.95
    yb = (t > 0).astype(int)
    p, h = train(spec, F.init_params(spec, 3, seed=0), X, yb, loss="binary_cross_entropy",
                 optimizer=O.adam(1e-2), epochs=30, batch_size=32, progress=False)
    assert evaluate(spec, p, X, yb, loss="binary_cross_entropy")["accuracy"] > 0.95


def test_progress_output(data, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    run(data, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "val_accuracy" in err
    monkeypatch.undo()
    run(data, epochs=2, progress=False)
    assert capsys.readouterr().err == ""


BAD = [
    ({"epochs": -1}, ValueError, "epochs"),
    ({"epochs": 2.5}, TypeError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"l2": -1.0}, ValueError, "l2"),
    ({"loss": "hinge"}, ValueError, "unknown loss"),
    ({"optimizer": {"name": "adamax", "lr": 0.1}}, ValueError, "adamax"),
    ({"optimizer": O.sgd(0.1) | {"lr": -1.0}}, ValueError, "lr"),
    ({"validation_data": (np.zeros((3, 5)), [0, 1, 2])}, ValueError, "validation_data X has 5 features"),
    ({"validation_data": (np.zeros((3, 64)), [0, 1, 12])}, ValueError, "out of range"),
    ({"validation_data": np.zeros((3, 64))}, TypeError, "pair"),
    ({"early_stopping": {"patience": 0}}, ValueError, "patience"),
    ({"early_stopping": {"monitor": "val_loss"}, "validation_data": None}, ValueError, "no validation_data"),
    ({"early_stopping": {"patience": 2, "wait": 1}}, ValueError, "unknown key"),
    ({"callbacks": [1]}, TypeError, r"callbacks\[0\]"),
    ({"sample_weight": [1.0]}, ValueError, "sample_weight"),
    ({"progress": "yes"}, TypeError, "progress"),
]


@pytest.mark.parametrize("kw,exc,pattern", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_arguments(data, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        run(data, **kw)


def test_bad_labels(data):
    X, y, _, _ = data
    with pytest.raises(ValueError, match=r"y has 999 rows but X has 1000"):
        train(SPEC, F.init_params(SPEC, 64, seed=0), X, y[:-1], loss=CE, optimizer=O.sgd(0.1), epochs=1)
    with pytest.raises(ValueError, match=r"y\[0\] = 10 is out of range"):
        train(SPEC, F.init_params(SPEC, 64, seed=0), X, y + 10, loss=CE, optimizer=O.sgd(0.1), epochs=1)
