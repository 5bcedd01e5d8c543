"""``train`` is the composition of the public functions, bit for bit.

* full batch: ``train`` for k epochs == k steps of ``value_and_grad`` + ``update``, for every
  optimizer (constant lr and a schedule), every activation, with l2, float32 and float64;
* minibatches, shuffling, dropout and sample weights: a hand-written loop of the public
  functions in the order docs/guide/purity.md documents reproduces ``train``;
* ``train`` == ``new_run`` + k × ``train_epoch``.
"""
import numpy as np
import pytest

import funcnn as F
from funcnn import optimizers as O
from funcnn import schedules as S
from funcnn.train import new_run, train_epoch
from conftest import assert_tree_equal

CE = "softmax_cross_entropy"

OPTIMIZERS = {
    "sgd": O.sgd(0.1),
    "momentum": O.sgd(0.05, momentum=0.9),
    "nesterov": O.sgd(0.05, momentum=0.9, nesterov=True),
    "rmsprop": O.rmsprop(1e-2),
    "adam": O.adam(1e-2),
    "adamw": O.adam(1e-2, weight_decay=0.05),
    "adam-schedule": O.adam(S.warmup(S.cosine(2e-2, 10), 3)),
    "sgd-schedule": O.sgd(S.step_decay(0.1, 2, 0.5), momentum=0.5),
}
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "identity", "softmax"]


def _data(dtype=np.float64, n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, :k].argmax(axis=1) + (X[:, -1] > 1)) % k
    return X.astype(dtype), y


def _by_hand_full_batch(spec, params, X, y, opt, epochs, l2, loss=CE, seed=0, **kw):
    rng = np.random.default_rng(seed)
    state = F.init_state(opt, params)
    for _ in range(epochs):
        _, grads = F.value_and_grad(spec, params, X, y, loss=loss, l2=l2, seed=rng, **kw)
        params, state = F.update(opt, params, grads, state)
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_full_batch_train_is_value_and_grad_plus_update(opt, dtype):
    X, y = _data(dtype)
    spec = [F.dense(7), F.tanh(), F.dense(6), F.relu(), F.dense(3)]
    p0 = F.init_params(spec, 5, seed=1, dtype=dtype)
    got, _ = train(spec, p0, X, y, opt=OPTIMIZERS[opt], epochs=6, l2=1e-2)
    assert_tree_equal(got, _by_hand_full_batch(spec, p0, X, y, OPTIMIZERS[opt], 6, 1e-2))


def train(spec, p0, X, y, opt, epochs, l2=0.0, **kw):
    return F.train(spec, p0, X, y, loss=kw.pop("loss", CE), optimizer=opt, epochs=epochs, l2=l2, seed=0,
                   progress=False, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_full_batch_every_activation(act, dtype):
    X, y = _data(dtype)
    layer = {"type": act} if act != "leaky_relu" else {"type": act, "alpha": 0.1}
    spec = [F.dense(8), layer, F.dense(3)]
    p0 = F.init_params(spec, 5, seed=2, dtype=dtype)
    opt = O.adam(5e-2)
    got, _ = train(spec, p0, X, y, opt, 5, l2=1e-3)
    assert_tree_equal(got, _by_hand_full_batch(spec, p0, X, y, opt, 5, 1e-3))


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mean_squared_error"])
def test_full_batch_other_losses_with_weights_and_dropout(loss):
    X, y = _data(np.float32)
    rng = np.random.default_rng(3)
    target = (y > 0).astype(int) if loss == "binary_cross_entropy" else rng.normal(size=(60, 2))
    n_out = 1 if loss == "binary_cross_entropy" else 2
    spec = [F.dense(8), F.relu(), F.dropout(0.25), F.dense(n_out)]
    w = rng.uniform(0.1, 2.0, 60)
    p0 = F.init_params(spec, 5, seed=3)
    opt = O.rmsprop(1e-2)
    got, _ = train(spec, p0, X, target, opt, 4, l2=1e-2, loss=loss, sample_weight=w)
    assert_tree_equal(got, _by_hand_full_batch(spec, p0, X, target, opt, 4, 1e-2, loss=loss, sample_weight=w))


def _by_hand_minibatches(spec, params, X, y, opt, epochs, batch, l2, seed, w=None):
    """The documented order (docs/guide/purity.md): per epoch a permutation, then per batch the dropout masks."""
    rng = np.random.default_rng(seed)
    state = F.init_state(opt, params)
    n = len(y)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            wb = None if w is None else w[idx]
            if wb is not None and wb.sum() == 0:
                continue  # an all-zero-weight minibatch is skipped
            _, grads = F.value_and_grad(spec, params, X[idx], y[idx], loss=CE, l2=l2, sample_weight=wb, seed=rng)
            params, state = F.update(opt, params, grads, state)
    return params, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ["momentum", "adamw", "adam-schedule"])
def test_minibatches_shuffling_and_dropout_by_hand(opt, dtype):
    X, y = _data(dtype, n=70)
    spec = [F.dense(9), F.relu(), F.dropout(0.3), F.dense(6), F.sigmoid(), F.dropout(0.1), F.dense(3)]
    p0 = F.init_params(spec, 5, seed=4, dtype=dtype)
    got, _ = F.train(spec, p0, X, y, loss=CE, optimizer=OPTIMIZERS[opt], epochs=3, batch_size=16, l2=1e-3,
                     seed=11, progress=False)
    expected, _ = _by_hand_minibatches(spec, p0, X, y, OPTIMIZERS[opt], 3, 16, 1e-3, 11)
    assert_tree_equal(got, expected)


def test_zero_weight_minibatches_are_skipped_as_documented():
    X, y = _data(np.float64, n=64)
    w = np.ones(64)
    w[:40] = 0.0  # with batch 8 some batches are all-zero
    spec = [F.dense(6), F.relu(), F.dense(3)]
    p0 = F.init_params(spec, 5, seed=5, dtype=np.float64)
    got, history = F.train(spec, p0, X, y, loss=CE, optimizer=O.sgd(0.1, momentum=0.9), epochs=3, batch_size=8,
                           sample_weight=w, seed=2, progress=False)
    expected, _ = _by_hand_minibatches(spec, p0, X, y, O.sgd(0.1, momentum=0.9), 3, 8, 0.0, 2, w)
    assert_tree_equal(got, expected)
    assert all(np.isfinite(history["loss"]))


def test_train_is_new_run_plus_train_epochs():
    X, y = _data(np.float32, n=90)
    spec = [F.dense(8), F.tanh(), F.dropout(0.2), F.dense(3)]
    p0 = F.init_params(spec, 5, seed=6)
    opt = O.adam(1e-2)
    params, history = F.train(spec, p0, X, y, loss=CE, optimizer=opt, epochs=4, batch_size=20, l2=1e-3, seed=9,
                              progress=False)
    run = new_run(spec, p0, opt, seed=9)
    for _ in range(4):
        run = train_epoch(spec, run, X, y, loss=CE, optimizer=opt, batch_size=20, l2=1e-3)
    assert_tree_equal(run["params"], params)
    assert_tree_equal(run["history"], history)
    assert run["epoch"] == 4 and run["opt_state"]["step"] == 4 * 5
