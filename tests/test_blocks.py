"""Blocks (residual, parallel) and global pooling: keys as paths, gradients, torch reference,
composition, checkpoints, purity and errors.

The torch reference is frozen in tests/data/torch_blocks.npz (regenerate with
``python scripts/make_block_fixtures.py``); the live twin rebuilds it when torch is installed.
"""
import importlib.util
import json
import os

import numpy as np
import pytest

import funcnn as F
from funcnn import layers as L
from funcnn import network
from funcnn import optimizers as O
from funcnn.train import new_run, train_epoch
from conftest import assert_tree_equal, frozen

CE = "softmax_cross_entropy"
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "data", "torch_blocks.npz")
SCRIPT = os.path.join(HERE, "..", "scripts", "make_block_fixtures.py")
DATA = np.load(FIXTURE)
META = json.loads(str(DATA["cases"]))
CASES = sorted(k for k in META if k != "torch")


def residual(body, shortcut=None):
    block = {"type": "residual", "body": body}
    if shortcut is not None:
        block["shortcut"] = shortcut
    return block


def parallel(branches, merge="concat"):
    return {"type": "parallel", "branches": branches, "merge": merge}


def generic(params, seed=0):
    """Params with no zero biases (a ReLU kink for finite differences) and no unit gammas."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in params.items():
        if k.startswith(("b_", "beta_")):
            v = rng.normal(0, 0.3, v.shape).astype(v.dtype)
        elif k.startswith("gamma_"):
            v = rng.uniform(0.5, 1.5, v.shape).astype(v.dtype)
        out[k] = v
    return out


# --- keys are paths ---------------------------------------------------------------------

def test_keys_are_paths_as_documented():
    spec = [L.reshape([8, 8, 1]), L.conv2d(4, 3, padding="same"), L.relu(),
            residual([L.conv2d(4, 3, padding="same"), L.batch_norm(), L.relu()], [L.conv2d(4, 1)]),
            parallel([[L.conv2d(2, 1)], [L.max_pool(1), residual([L.batch_norm()])]]),
            {"type": "global_pool", "mode": "mean"}, L.dense(3)]
    params = F.init_params(spec, 64, seed=0)
    assert list(params) == [
        "W_1", "b_1",
        "W_3.body.0", "b_3.body.0", "gamma_3.body.1", "beta_3.body.1", "running_mean_3.body.1",
        "running_var_3.body.1", "W_3.shortcut.0", "b_3.shortcut.0",
        "W_4.0.0", "b_4.0.0", "gamma_4.1.1.body.0", "beta_4.1.1.body.0", "running_mean_4.1.1.body.0",
        "running_var_4.1.1.body.0",
        "W_6", "b_6"]
    assert F.param_keys(spec) == list(params)
    assert params["W_3.body.0"].shape == (3, 3, 4, 4) and params["W_3.shortcut.0"].shape == (1, 1, 4, 4)
    assert params["W_6"].shape == (6, 3)  # the concat of 4 + 2 channels, globally pooled
    assert [p for p, _ in network.walk(spec)][:6] == ["0", "1", "2", "3", "3.body.0", "3.body.1"]


def test_chain_keys_are_unchanged():
    spec = [L.dense(4), L.relu(), L.dropout(0.1), L.dense(2)]
    assert list(F.init_params(spec, 3, seed=0)) == ["W_0", "b_0", "W_3", "b_3"]


def test_init_draws_in_key_order_and_he_before_relu_inside_blocks():
    spec = [L.dense(16), residual([L.dense(16), L.relu(), L.dense(16)]), L.relu(), L.dense(2)]
    p = F.init_params(spec, 16, seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    # W_0 feeds the residual block (not an activation): Glorot; inside the body, W before relu: He;
    # the body's last W feeds the relu after the block: He.
    a = np.sqrt(6 / 32)
    np.testing.assert_array_equal(p["W_0"], rng.uniform(-a, a, (16, 16)))
    np.testing.assert_array_equal(p["W_1.body.0"], rng.normal(0, np.sqrt(2 / 16), (16, 16)))
    np.testing.assert_array_equal(p["W_1.body.2"], rng.normal(0, np.sqrt(2 / 16), (16, 16)))


# --- against torch (frozen) -------------------------------------------------------------

def _case(name):
    meta = META[name]
    params = {k[len(f"{name}/params/"):]: DATA[k] for k in DATA.files if k.startswith(f"{name}/params/")}
    return meta["spec"], params, DATA[f"{name}/X"], DATA[f"{name}/y"], meta["l2"]


def assert_grads_close(got, expected, what):
    """Relative to the largest gradient of the network (a conv bias before batch norm has a true
    gradient of 0, computed as rounding noise of 1e-17 by both)."""
    scale = max(float(np.abs(v).max()) for v in expected.values())
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-11 * scale, err_msg=f"{what}: grads[{k!r}]")


@pytest.mark.parametrize("name", CASES)
def test_against_torch_value_grads_outputs_and_running_state(name):
    spec, params, X, y, l2 = _case(name)
    assert list(params) == F.param_keys(spec)
    value, grads = F.value_and_grad(spec, frozen(params), frozen(X), y, loss=CE, l2=l2, seed=0)
    np.testing.assert_allclose(value, DATA[f"{name}/value"], rtol=1e-12)
    expected = {k[len(f"{name}/grads/"):]: DATA[k] for k in DATA.files if k.startswith(f"{name}/grads/")}
    assert set(grads) == set(expected)
    assert_grads_close(grads, expected, name)
    out, cache = F.forward(spec, params, X, training=True, seed=0)
    np.testing.assert_allclose(out, DATA[f"{name}/output_train"], rtol=1e-12, atol=1e-13)
    state = {k[len(f"{name}/state/"):]: DATA[k] for k in DATA.files if k.startswith(f"{name}/state/")}
    assert set(cache["state"]) == set(state)
    for k, v in state.items():
        np.testing.assert_allclose(cache["state"][k], v, rtol=1e-12, atol=1e-15, err_msg=k)
    np.testing.assert_allclose(F.forward(spec, params, X)[0], DATA[f"{name}/output_eval"], rtol=1e-12, atol=1e-13)
    # the input gradient: backward through every layer, the sum over a block's paths
    g = np.zeros_like(out)
    g[np.arange(len(y)), y] = 1.0
    dX = _input_gradient(spec, params, X, y, l2)
    np.testing.assert_allclose(dX, DATA[f"{name}/dX"], rtol=1e-9, atol=1e-12 * np.abs(DATA[f"{name}/dX"]).max())


def _input_gradient(spec, params, X, y, l2):
    """d loss / d X through the network's own chain function (the public backward stops at the first params)."""
    out, cache = F.forward(spec, params, X, training=True, seed=0)
    _, g = F.losses.softmax_cross_entropy(out, y)
    dx, _ = network.backward_chain(spec, network.layer_params(spec, params), cache["layers"], g,
                                   g_is_scratch=False, need_dx=True)
    return dx


def test_live_fixture_is_current():
    """Rebuild the fixture with torch: a stale file (the script or torch changed) fails here."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("make_block_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.build()
    assert sorted(fresh) == sorted(DATA.files)
    assert {**json.loads(str(fresh["cases"])), "torch": None} == {**META, "torch": None}
    for k in DATA.files:
        if k != "cases":
            np.testing.assert_allclose(fresh[k], DATA[k], rtol=1e-12, atol=1e-15, err_msg=k)


# --- finite differences -------------------------------------------------------------------

SPECS = {
    "residual-identity": ([L.dense(5), L.tanh(), residual([L.dense(5), L.relu(), L.dense(5)]), L.dense(3)], 4),
    "residual-projection": ([L.dense(6), residual([L.dense(4), L.tanh()], [L.dense(4)]), L.sigmoid(), L.dense(3)], 4),
    "nested-two-deep": ([L.dense(5), residual([L.dense(5), residual([L.dense(5), L.elu(), L.dense(5)]), L.tanh()]),
                         parallel([[L.dense(3)], [], [L.dense(2), L.sigmoid()]]), L.dense(3)], 4),
    "parallel-sum": ([parallel([[L.dense(4)], [L.dense(4), L.tanh(), L.dense(4)]], "sum"), L.dense(3)], 5),
    "parallel-first": ([parallel([[L.dense(3), L.tanh()], [L.dense(2)]]), L.dense(3)], 5),
    "resnet": ([L.reshape([6, 6, 1]), L.conv2d(3, 3, padding="same"), L.batch_norm(), L.relu(),
                residual([L.conv2d(4, 3, stride=2, padding="same"), L.batch_norm(), L.relu(),
                          L.conv2d(4, 3, padding="same"), L.batch_norm()],
                         [L.conv2d(4, 1, stride=2), L.batch_norm()]),
                L.relu(), {"type": "global_pool"}, L.dense(3)], 36),
    "global-max": ([L.reshape([4, 4, 2]), L.conv2d(3, 2), {"type": "global_pool", "mode": "max"}, L.dense(3)], 32),
    "sequence-global-mean": ([L.reshape([4, 3]), {"type": "global_pool", "mode": "mean"}, L.dense(3)], 12),
}


def _before_batch_norm(spec):
    """Bias keys of layers followed by a batch norm: their true gradient is 0 (the batch mean is
    subtracted), so a relative error means nothing; they are checked to be ~0 instead."""
    keys = []
    for path, layer in network.walk(spec):
        for label, sub in network.children(layer) or ():
            keys += [f"b_{path}.{label}.{j}" for j in range(len(sub) - 1)
                     if sub[j]["type"] in ("dense", "conv2d") and sub[j + 1]["type"] == "batch_norm"]
    return keys + [f"b_{j}" for j in range(len(spec) - 1)
                   if spec[j]["type"] in ("dense", "conv2d") and spec[j + 1]["type"] == "batch_norm"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_gradients_against_finite_differences(name):
    spec, n_in = SPECS[name]
    params = generic(F.init_params(spec, n_in, seed=1, dtype=np.float64))
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(9, n_in)), rng.integers(0, 3, 9)
    flat = _before_batch_norm(spec)
    keys = [k for k in params if not k.startswith("running_") and k not in flat]
    errors = F.gradcheck.gradient_errors(spec, params, X, y, loss=CE, l2=1e-2, keys=keys)
    assert max(errors.values()) < 1e-6, errors
    _, grads = F.value_and_grad(spec, params, X, y, loss=CE, l2=1e-2)
    assert all(np.abs(grads[k]).max() < 1e-12 for k in flat)
    assert len(keys) + len(flat) == len(grads)


def test_a_block_gradient_is_the_sum_of_its_paths():
    """d out / d x of x + body(x) is the identity plus the body's: checked on the input gradient."""
    spec = [residual([L.dense(3)])]
    params = generic(F.init_params(spec, 3, seed=0, dtype=np.float64))
    X = np.random.default_rng(0).normal(size=(4, 3))
    out, cache = F.forward(spec, params, X, training=True)
    g = np.ones_like(out)
    dx, _ = network.backward_chain(spec, network.layer_params(spec, params), cache["layers"], g,
                                   g_is_scratch=False, need_dx=True)
    np.testing.assert_allclose(dx, g + g @ params["W_0.body.0"].T, rtol=1e-14)


# --- composition, checkpoints, purity ---------------------------------------------------

NESTED = [L.dense(8), L.relu(), residual([L.dense(8), L.relu(), L.dropout(0.3), L.dense(8)]),
          parallel([[L.dense(4), L.dropout(0.2)], [residual([L.dense(8), L.tanh()]), L.dense(3)]]),
          L.relu(), L.dense(3)]
CNN_BLOCKS = [L.reshape([6, 6, 1]), L.conv2d(3, 3, padding="same"), L.batch_norm(), L.relu(),
              residual([L.conv2d(3, 3, padding="same"), L.batch_norm(0.5), L.relu(), L.dropout(0.2),
                        L.conv2d(3, 3, padding="same"), L.batch_norm()]),
              L.relu(), residual([L.conv2d(4, 3, stride=2, padding="same"), L.batch_norm()],
                                 [L.conv2d(4, 1, stride=2), L.batch_norm()]),
              {"type": "global_pool"}, L.dense(3)]


def _data(n, d, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    return X, (X[:, :3].argmax(axis=1) + (X[:, -1] > 1)) % 3


def _hand_loop(spec, params, X, y, opt, epochs, batch_size, seed, l2):
    """The documented order: per epoch a permutation, per minibatch value_and_grad with the same
    generator (dropout masks), update, then the running statistics of that step's forward pass."""
    rng = np.random.default_rng(seed)
    state = F.init_state(opt, params)
    n = X.shape[0]
    for _ in range(epochs):
        perm = None if batch_size is None else rng.permutation(n)
        for b in range(1 if batch_size is None else -(-n // batch_size)):
            idx = slice(None) if perm is None else perm[b * batch_size:(b + 1) * batch_size]
            draw = rng.bit_generator.state
            _, grads = F.value_and_grad(spec, params, X[idx], y[idx], loss=CE, l2=l2, seed=rng)
            replay = np.random.default_rng()
            replay.bit_generator.state = draw
            _, cache = F.forward(spec, params, X[idx], training=True, seed=replay)  # the same masks
            new, state = F.update(opt, params, grads, state)
            params = {**new, **cache["state"]}
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("which", ["nested", "cnn"])
def test_train_is_the_composition_bit_for_bit(which, batch_size, dtype):
    spec, d = (NESTED, 5) if which == "nested" else (CNN_BLOCKS, 36)
    X, y = _data(50, d, dtype=dtype)
    p0 = F.init_params(spec, d, seed=0, dtype=dtype)
    for opt in (O.adam(1e-2), O.sgd(0.05, momentum=0.9)):
        got, _ = F.train(spec, p0, X, y, loss=CE, optimizer=opt, epochs=2, batch_size=batch_size, l2=1e-3,
                         seed=4, progress=False)
        assert_tree_equal(got, _hand_loop(spec, p0, X, y, opt, 2, batch_size, 4, 1e-3))
    if which == "cnn":
        assert not np.array_equal(got["running_mean_4.body.1"], p0["running_mean_4.body.1"])


@pytest.mark.parametrize("ext", ["npz", "pkl"])
def test_checkpoint_and_bit_exact_resume_of_a_nested_model(tmp_path, ext):
    X, y = _data(40, 36, seed=1, dtype=np.float32)
    p0 = F.init_params(CNN_BLOCKS, 36, seed=0)
    kw = dict(loss=CE, optimizer=O.adam(1e-2), batch_size=16, seed=5, progress=False,
              validation_data=(X[:10], y[:10]))
    full, hist_full = F.train(CNN_BLOCKS, p0, X, y, epochs=4, **kw)
    path = str(tmp_path / f"run.{ext}")
    F.train(CNN_BLOCKS, p0, X, y, epochs=2, checkpoint=path, **kw)
    resumed, hist = F.train(CNN_BLOCKS, p0, X, y, epochs=4, checkpoint=path, **kw)
    assert_tree_equal(resumed, full)
    assert hist == hist_full
    model = str(tmp_path / f"model.{ext}")
    F.save(model, CNN_BLOCKS, full, loss=CE)
    loaded = F.load(model)
    assert loaded["spec"] == CNN_BLOCKS
    assert_tree_equal(loaded["params"], full)
    np.testing.assert_array_equal(F.predict(loaded["spec"], loaded["params"], X, loss=CE),
                                  F.predict(CNN_BLOCKS, full, X, loss=CE))
    run = new_run(CNN_BLOCKS, p0, kw["optimizer"], seed=5)
    for _ in range(2):
        run = train_epoch(CNN_BLOCKS, run, X, y, loss=CE, optimizer=kw["optimizer"], batch_size=16)
    assert run["epoch"] == 2


def test_pure_read_only_inputs_and_same_bits():
    X, y = _data(30, 36, seed=2)
    params = frozen(F.init_params(CNN_BLOCKS, 36, seed=0, dtype=np.float64))
    Xf, yf = frozen(X), frozen(y)
    out1, cache = F.forward(CNN_BLOCKS, params, Xf, training=True, seed=1)
    grads = F.backward(CNN_BLOCKS, params, frozen(cache), frozen(np.ones_like(out1)))
    assert set(grads) == {k for k in params if not k.startswith("running_")}
    v1, g1 = F.value_and_grad(CNN_BLOCKS, params, Xf, yf, loss=CE, seed=3)
    v2, g2 = F.value_and_grad(CNN_BLOCKS, params, Xf, yf, loss=CE, seed=3)
    assert v1 == v2
    assert_tree_equal(g1, g2)
    p1, _ = F.train(CNN_BLOCKS, params, Xf, yf, loss=CE, optimizer=O.adam(1e-2), epochs=1, batch_size=8,
                    progress=False)
    p2, _ = F.train(CNN_BLOCKS, params, Xf, yf, loss=CE, optimizer=O.adam(1e-2), epochs=1, batch_size=8,
                    progress=False)
    assert_tree_equal(p1, p2)
    F.predict(CNN_BLOCKS, params, Xf, loss=CE)


def test_network_never_writes_into_inputs_or_caches_across_blocks():
    spec = [L.dense(6), L.relu(), residual([L.relu(), L.dense(6), L.sigmoid()]), L.tanh(),
            parallel([[L.relu()], [L.leaky_relu(0.1), L.dense(2)], []], "concat"), L.relu(), L.dense(3)]
    params = frozen(F.init_params(spec, 4, seed=0))
    X = frozen(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    out, cache = F.forward(spec, params, X, training=True)
    snapshot = [np.copy(a) for a in _arrays(cache["layers"])]
    F.backward(spec, params, cache, np.ones_like(out))
    for before, after in zip(snapshot, _arrays(cache["layers"])):
        assert_tree_equal(before, after)
    np.testing.assert_array_equal(F.forward(spec, params, X)[0], out)  # no dropout: train = eval output


def _arrays(node):
    if isinstance(node, np.ndarray):
        yield node
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _arrays(v)


def test_chunked_prediction_of_a_nested_cnn_is_consistent(monkeypatch):
    X, _ = _data(600, 36, seed=3, dtype=np.float32)
    params = F.init_params(CNN_BLOCKS, 36, seed=0)
    assert network.uses_parts(CNN_BLOCKS)  # the convolutions inside blocks run by parts
    whole = network.infer(CNN_BLOCKS, params, X, chunk=256)
    np.testing.assert_allclose(network.infer(CNN_BLOCKS, params, X, chunk=10 ** 9), whole, rtol=1e-5, atol=1e-6)
    assert network.widest_row(CNN_BLOCKS, (36,)) == 6 * 6 * 3  # inner outputs are counted too


# --- errors ---------------------------------------------------------------------------

ERRORS = [
    ([residual([L.dense(3)]), L.dense(2)], r"spec\[0\] \(residual\): the body's output has per-sample shape \(3,\) "
                                           r"but the identity shortcut's .* has \(5,\)"),
    ([residual([L.dense(3)], [L.dense(4)]), L.dense(2)], r"spec\[0\] \(residual\).*\(3,\).*\(4,\)"),
    ([L.dense(4), residual([L.dense(4), residual([L.dense(2)])])], r"spec\[1\]\.body\[1\] \(residual\)"),
    ([parallel([[L.dense(2)], [L.dense(3)]], "sum")], r"spec\[0\] \(parallel\): merge 'sum'.*branch 0 gives "
                                                      r"per-sample shape \(2,\) and branch 1 gives \(3,\)"),
    ([L.reshape([5, 1, 1]), L.conv2d(1, 1), L.reshape([1, 1, 5]), parallel([[L.conv2d(2, 1)], [L.reshape([5, 1, 1])]]),
      L.flatten(), L.dense(2)],
     r"spec\[3\] \(parallel\): merge 'concat'.*other axes must agree.*\(1, 1, 2\).*\(5, 1, 1\)"),
    ([parallel([]), L.dense(2)], r"spec\[0\] \(parallel\): 'branches' is empty"),
    ([{"type": "residual"}, L.dense(2)], r"spec\[0\] \(residual\): a residual block needs 'body'"),
    ([{"type": "residual", "body": []}, L.dense(2)], r"'body' is empty"),
    ([{"type": "residual", "body": [L.dense(5)], "shortcut": [], "skip": 1}], r"unknown key\(s\) \['skip'\]"),
    ([residual([L.dense(5), {"type": "dense", "unit": 5}])], r"spec\[0\]\.body\[1\] \(dense\): unknown key"),
    ([residual([L.dense(5), {"type": "dens"}])], r"spec\[0\]\.body\[1\]: unknown layer type 'dens'"),
    ([parallel([[L.dense(2)], [{"type": "conv2d", "filters": 2, "kernel": 3}]])],
     r"spec\[0\]\.branches\[1\]\[0\] \(conv2d\): a conv2d layer takes images"),
    ([parallel([[L.dense(2)]], "mean")], r"'merge' must be one of \['concat', 'sum'\]"),
    ([{"type": "global_pool", "mode": "min"}, L.dense(2)], r"'mode' must be one of \['mean', 'max'\]"),
    ([{"type": "global_pool"}, L.dense(2)], r"global_pool.*per-sample rank 2 or more"),
    ([residual([L.relu()]), L.relu()], r"no layer with parameters"),
]


@pytest.mark.parametrize("spec, match", ERRORS)
def test_bad_specs_name_the_block_path_and_shapes(spec, match):
    with pytest.raises(ValueError, match=match):
        F.init_params(spec, 5, seed=0)


@pytest.mark.parametrize("spec, exc", [
    ([{"type": "residual", "body": L.dense(2)}], TypeError),
    ([{"type": "residual", "body": [L.dense(2)], "shortcut": "identity"}], TypeError),
    ([{"type": "parallel", "branches": [L.dense(2)]}], TypeError),
    ([{"type": "parallel", "branches": "two"}], TypeError),
    ([residual([[L.dense(2)]])], TypeError),
])
def test_malformed_blocks_are_type_errors(spec, exc):
    with pytest.raises(exc, match=r"spec\[0\]"):
        F.layers.check_spec(spec)


def test_params_that_do_not_fit_a_nested_spec_name_the_path():
    spec = [L.dense(4), residual([L.dense(4), L.relu(), L.dense(4)])]
    params = F.init_params(spec, 3, seed=0)
    bad = {**params, "W_1.body.2": np.zeros((4, 5), np.float32)}
    with pytest.raises(ValueError, match=r"params\['W_1.body.2'\] has shape \(4, 5\), expected \(4, 4\) "
                                         r"for spec\[1\]\.body\[2\] \(dense\)"):
        F.predict(spec, bad, np.zeros((2, 3)), loss="mean_squared_error")
    missing = {k: v for k, v in params.items() if k != "b_1.body.0"}
    with pytest.raises(ValueError, match=r"missing key\(s\) \['b_1.body.0'\]"):
        F.forward(spec, missing, np.zeros((2, 3)))


def test_nested_spec_json_round_trip_and_memoised_check():
    spec = json.loads(json.dumps(CNN_BLOCKS))
    assert spec == CNN_BLOCKS and L.spec_key(spec) == L.spec_key(CNN_BLOCKS) is not None
    changed = json.loads(json.dumps(CNN_BLOCKS))
    changed[4]["body"][4]["filters"] = 5  # the body now ends with 5 channels, the identity has 3
    assert L.spec_key(changed) != L.spec_key(spec)
    with pytest.raises(ValueError, match="shortcut"):
        F.init_params(changed, 36)


def test_estimator_fits_a_nested_spec():
    from sklearn.datasets import load_digits
    from funcnn.estimators import NeuralNetClassifier
    X, y = load_digits(return_X_y=True)
    spec = [L.dense(32), L.relu(), residual([L.dense(32), L.relu(), L.dense(32)]), L.relu(),
            parallel([[L.dense(8)], [L.dense(8), L.tanh()]]), L.dense(10)]
    clf = NeuralNetClassifier(spec=spec, epochs=15, lr=1e-2, seed=0).fit(X[:1200] / 16, y[:1200])
    assert clf.score(X[1200:] / 16, y[1200:]) > 0.85
    assert "W_2.body.2" in clf.params_ and "W_4.1.0" in clf.params_
