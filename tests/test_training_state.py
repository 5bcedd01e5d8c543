"""Training-state checkpoints: save_training_state / load_training_state / data_digest."""
import os
import re
import tracemalloc

import numpy as np
import pytest

import funcnn as F
from funcnn import optimizers as O
from funcnn.checkpoint import data_digest, load, load_training_state, plain, save, save_training_state

SPEC = [F.dense(6), F.relu(), F.dense(3)]
CE = "softmax_cross_entropy"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    return X, y


def make_config(X, y, **changes):
    """A config as train() would build it."""
    config = {"loss": CE, "optimizer": O.adam(3e-3), "batch_size": 10, "l2": 0.0, "n_samples": X.shape[0],
              "n_features": X.shape[1], "dtype": "float32", "seed": 7, "sample_weight": None,
              "early_stopping": None, "validation": None, "data": data_digest(X, y)}
    config.update(changes)
    return config


def make_state(params, epoch=2):
    opt = O.adam(3e-3)
    state = O.init_state(opt, params)
    state = {**state, "step": 8, "m": {k: v + 1 for k, v in state["m"].items()}}
    rng = np.random.default_rng(7)
    rng.normal(size=3)
    return {"opt_state": state, "rng_state": rng.bit_generator.state,
            "history": {"loss": [1.5, float("nan")][:epoch], "accuracy": [0.25, 0.5][:epoch]},
            "run": {"epoch": epoch, "best_value": None, "best_params": None, "wait": 0, "stopped": False}}


@pytest.fixture
def params():
    return F.init_params(SPEC, 4, seed=1)


@pytest.fixture(params=["npz", "pkl"])
def saved(request, tmp_path, data, params):
    """A training checkpoint; yields (path, config)."""
    path = tmp_path / f"ck.{request.param}"
    config = make_config(*data)
    save_training_state(path, SPEC, params, config=config, training_state=make_state(params),
                        metadata={"scaler": {"mean": np.zeros(4)}})
    return path, config


def assert_same(a, b):
    """Bit-identical plain trees (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes())
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b)), (a, b)


# --- round trip ---------------------------------------------------------------------------

def test_round_trip(saved, params):
    path, config = saved
    resumed = load_training_state(path, SPEC, config)
    assert list(resumed) == ["params", "training_state"]
    assert_same(resumed["params"], params)
    assert_same(resumed["training_state"], plain(make_state(params)))
    # ...and the file is an ordinary model file
    model = load(path)
    assert model["loss"] == CE and model["spec"] == SPEC and model["scaler"]["mean"].shape == (4,)
    assert_same(model["training_state"]["config"], plain(config))
    restored = np.random.default_rng()
    restored.bit_generator.state = resumed["training_state"]["rng_state"]
    assert restored.normal() == np.random.default_rng(7).normal(size=4)[3]


def test_no_file_means_a_fresh_start(tmp_path, data):
    assert load_training_state(tmp_path / "absent.npz", SPEC, make_config(*data)) is None
    assert os.listdir(tmp_path) == []


def test_numpy_scalars_in_spec_and_config_resume(tmp_path, data):
    # np.int64 units used to write a checkpoint that could never be resumed (json.dumps failed).
    spec = [F.dense(np.int64(6)), F.leaky_relu(np.float32(0.25)), F.dense(np.int32(3))]
    params = F.init_params(spec, 4, seed=1)
    config = make_config(*data, batch_size=np.int64(10), l2=np.float32(1e-3), seed=np.uint32(7),
                         early_stopping={"patience": np.int16(3), "monitor": np.str_("loss")},
                         shape=(np.int64(40), 4))
    path = tmp_path / "ck.npz"
    save_training_state(path, spec, params, config=config, training_state=make_state(params))
    resumed = load_training_state(path, spec, config)
    assert_same(resumed["params"], params)
    assert load_training_state(path, plain(spec), plain(config)) is not None  # the plain forms match too


# --- refusals: another run ------------------------------------------------------------------

def refusal(path, spec, config):
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        load_training_state(path, spec, config)
    assert path.read_bytes() == before  # untouched
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def other_data(data):
    X, y = data
    X2 = X.copy()
    X2[17, 2] = np.nextafter(X2[17, 2], np.float32(np.inf))  # one ulp in one value
    return X2, y


CHANGES = [
    ("loss", lambda X, y: {"loss": "mean_squared_error"}, r"loss: saved 'softmax_cross_entropy', now 'mean_squared_error'"),
    ("seed", lambda X, y: {"seed": 8}, r"seed: saved 7, now 8"),
    ("optimizer", lambda X, y: {"optimizer": O.adam(1e-2)}, r"optimizer\['lr'\]: saved 0\.003, now 0\.01"),
    ("sample weights", lambda X, y: {"sample_weight": data_digest(np.ones(40))},
     r"sample_weight: saved None, now 'blake2b:[0-9a-f]+'"),
    ("early stopping", lambda X, y: {"early_stopping": {"monitor": "loss", "patience": 2}},
     r"early_stopping: saved None, now \{'monitor': 'loss', 'patience': 2\}"),
    ("data", lambda X, y: {"data": data_digest(*other_data((X, y)))},
     r"data: saved 'blake2b:[0-9a-f]+', now 'blake2b:[0-9a-f]+'"),
    ("validation added", lambda X, y: {"validation": data_digest(X[:5], y[:5])},
     r"validation: saved None, now 'blake2b:[0-9a-f]+'"),
    ("new config key", lambda X, y: {"clip": 1.0}, r"clip: saved \(absent\), now 1\.0"),
]


@pytest.mark.parametrize("desc, change, pattern", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_different_run_is_refused(saved, data, desc, change, pattern):
    path, config = saved
    message = refusal(path, SPEC, {**config, **change(*data)})
    assert re.search(r"holds a checkpoint of a different run \(.*" + pattern, message), message
    assert message.endswith("refusing to resume or overwrite it (delete it or choose another path)")


def test_validation_removed_is_refused(tmp_path, data, params):
    X, y = data
    path = tmp_path / "ck.npz"
    config = make_config(X, y, validation=data_digest(X[:5], y[:5]))
    save_training_state(path, SPEC, params, config=config, training_state=make_state(params))
    message = refusal(path, SPEC, {**config, "validation": None})
    assert re.search(r"validation: saved 'blake2b:[0-9a-f]+', now None", message), message


def test_a_removed_config_key_is_refused(saved):
    path, config = saved
    message = refusal(path, SPEC, {k: v for k, v in config.items() if k != "l2"})
    assert "l2: saved 0.0, now (absent)" in message


def test_every_difference_is_named(saved):
    path, config = saved
    message = refusal(path, SPEC, {**config, "seed": 9, "batch_size": 20, "l2": 0.5})
    assert "batch_size: saved 10, now 20; l2: saved 0.0, now 0.5; seed: saved 7, now 9" in message


def test_a_different_spec_is_refused(saved):
    path, config = saved
    spec = [F.dense(8), F.tanh(), F.dense(3), F.softmax()]
    message = refusal(path, spec, config)
    assert ("holds a checkpoint of a different spec (spec[0]['units']: saved 6, now 8; "
            "spec[1]['type']: saved 'relu', now 'tanh'; spec[3]: saved (absent), now {'type': 'softmax'})") in message


def test_a_different_spec_and_run(saved):
    path, config = saved
    message = refusal(path, [F.dense(7), F.relu(), F.dense(3)], {**config, "seed": 1})
    assert re.search(r"a different spec \(spec\[0\]\['units'\]: saved 6, now 7\) and of a different run "
                     r"\(seed: saved 7, now 1\)", message), message


def test_equal_values_in_other_forms_are_not_differences(saved):
    path, config = saved
    same = {**{k: config[k] for k in reversed(list(config))}, "batch_size": np.int64(10), "l2": np.float64(0.0)}
    assert load_training_state(path, tuple(SPEC), same) is not None


# --- refusals: not a training checkpoint ----------------------------------------------------

@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_a_plain_model_file_is_refused(tmp_path, data, params, fmt):
    path = tmp_path / f"model.{fmt}"
    save(path, SPEC, params, loss=CE)
    message = refusal(path, SPEC, make_config(*data))
    assert message == (f"{path}: holds a model without training state; refusing to overwrite it "
                       "(choose another checkpoint path)")


def malformed(ts_change):
    def build(params, config):
        ts = {"config": config, **make_state(params)}
        return ts_change(ts)
    return build


MALFORMED = [
    ("not a dict", lambda ts: [1, 2], r"'training_state' is a list, expected a dict"),
    ("no config", lambda ts: {k: v for k, v in ts.items() if k != "config"}, r"'training_state' has no 'config' entry"),
    ("config a list", lambda ts: {**ts, "config": [1]}, r"training_state\['config'\] is a list, expected a dict"),
    ("config without loss", lambda ts: {**ts, "config": {"seed": 7}}, r"training_state\['config'\] has no 'loss'"),
    ("no opt_state", lambda ts: {k: v for k, v in ts.items() if k != "opt_state"}, r"has no 'opt_state' entry"),
    ("no rng_state", lambda ts: {k: v for k, v in ts.items() if k != "rng_state"}, r"has no 'rng_state' entry"),
    ("no history", lambda ts: {k: v for k, v in ts.items() if k != "history"}, r"has no 'history' entry"),
    ("no run", lambda ts: {k: v for k, v in ts.items() if k != "run"}, r"has no 'run' entry"),
    ("step a str", lambda ts: {**ts, "opt_state": {**ts["opt_state"], "step": "8"}},
     r"training_state\['opt_state'\]\['step'\] is '8', expected an int >= 0"),
    ("slot missing a key", lambda ts: {**ts, "opt_state": {**ts["opt_state"], "m": {"W_0": ts["opt_state"]["m"]["W_0"]}}},
     r"training_state\['opt_state'\]\['m'\] has keys \['W_0'\], expected the params' keys"),
    ("slot wrong shape", lambda ts: {**ts, "opt_state": {**ts["opt_state"], "v": {**ts["opt_state"]["v"], "b_2": np.zeros(5, np.float32)}}},
     r"training_state\['opt_state'\]\['v'\]\['b_2'\] is an array of shape \(5,\) and dtype float32, expected shape \(3,\)"),
    ("bad bit generator", lambda ts: {**ts, "rng_state": {**ts["rng_state"], "bit_generator": "Mersenne"}},
     r"training_state\['rng_state'\]\['bit_generator'\] is 'Mersenne', expected the name of a NumPy bit generator"),
    ("bad rng state", lambda ts: {**ts, "rng_state": {"bit_generator": "PCG64", "state": {}}},
     r"training_state\['rng_state'\] is not a valid PCG64 state"),
    ("history not lists", lambda ts: {**ts, "history": {"loss": "1.5"}}, r"training_state\['history'\]\['loss'\] is not a list of numbers"),
    ("epoch missing", lambda ts: {**ts, "run": {"wait": 0}}, r"training_state\['run'\]\['epoch'\] is \(absent\), expected an int >= 0"),
    ("epoch negative", lambda ts: {**ts, "run": {**ts["run"], "epoch": -1}}, r"\['run'\]\['epoch'\] is -1"),
    ("stopped not bool", lambda ts: {**ts, "run": {**ts["run"], "stopped": 1}}, r"\['run'\]\['stopped'\] is 1, expected True or False"),
    ("best params wrong", lambda ts: {**ts, "run": {**ts["run"], "best_params": {"W_0": np.zeros(1)}}},
     r"training_state\['run'\]\['best_params'\] has keys \['W_0'\]"),
]


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
@pytest.mark.parametrize("desc, change, pattern", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_training_state_is_refused(tmp_path, data, params, fmt, desc, change, pattern):
    path = tmp_path / f"ck.{fmt}"
    config = make_config(*data)
    save(path, SPEC, params, loss=CE, training_state=malformed(change)(params, config))
    message = refusal(path, SPEC, config)
    assert re.search(rf"^{re.escape(str(path))}: malformed training state: .*{pattern}", message), message


def test_loss_metadata_disagreeing_with_the_config_is_malformed(tmp_path, data, params):
    path = tmp_path / "ck.npz"
    config = make_config(*data)
    save(path, SPEC, params, loss="mean_squared_error", training_state={"config": config, **make_state(params)})
    message = refusal(path, SPEC, config)
    assert "malformed training state: its 'loss' metadata ('mean_squared_error') differs" in message


def test_a_damaged_file_is_refused_by_load(tmp_path, data, params):
    path = tmp_path / "ck.npz"
    path.write_bytes(b"garbage")
    assert "not a funcnn checkpoint" in refusal(path, SPEC, make_config(*data))


# --- save_training_state refuses before writing ---------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"metadata": {"loss": "mse"}}, ValueError, r"\['loss'\] are reserved"),
    ({"metadata": {"training_state": 1}}, ValueError, r"\['training_state'\] are reserved"),
    ({"metadata": {"spec": 1}}, ValueError, r"\['spec'\] are reserved"),
    ({"metadata": {"f": print}}, TypeError, "f has type builtin_function_or_method"),
    ({"training_state": {"config": {}}}, ValueError, "must not hold 'config'"),
    ({"training_state": {"opt_state": {}}}, ValueError, "could not be resumed: 'training_state' has no 'rng_state'"),
    ({"config": {"seed": 1}}, ValueError, r"could not be resumed: training_state\['config'\] has no 'loss'"),
    ({"config": {"loss": CE, "lr": lambda step: 0.1}}, TypeError, r"training_state\['config'\]\['lr'\] has type function"),
    ({"config": [("loss", CE)]}, TypeError, "config must be a dict"),
])
def test_save_training_state_refusals_write_nothing(tmp_path, data, params, kwargs, exc, match):
    args = {"config": make_config(*data), "training_state": make_state(params), "metadata": None, **kwargs}
    with pytest.raises(exc, match=match):
        save_training_state(tmp_path / "ck.npz", SPEC, params, **args)
    assert os.listdir(tmp_path) == []


# --- data_digest --------------------------------------------------------------------------

def test_data_digest_basics(data):
    X, y = data
    d = data_digest(X, y)
    assert re.fullmatch(r"blake2b:[0-9a-f]{32}", d)
    assert data_digest(X.copy(), y.copy()) == d == data_digest(np.asfortranarray(X), list(y))
    assert data_digest(None) is None and data_digest() is None and data_digest(None, None) is None
    others = {data_digest(X), data_digest(X, None), data_digest(None, X), data_digest(y, X),
              data_digest(X.astype(np.float64), y), data_digest(X.reshape(20, 8), y), data_digest(*other_data(data)),
              data_digest(X[:-1], y[:-1]), data_digest(X, y.astype(np.int32)), d}
    assert len(others) == 10  # all different
    with pytest.raises(TypeError, match="Python objects"):
        data_digest(np.array([{}], dtype=object))


def test_data_digest_of_a_memory_map_reads_it_in_chunks(tmp_path):
    path = tmp_path / "X.dat"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(4096, 512))  # 16 MiB
    X[::7] = 1.5
    X.flush()
    X = np.load(path, mmap_mode="r")
    expected = data_digest(np.array(X))
    tracemalloc.start()
    try:
        digest = data_digest(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == expected
    assert peak < 4 * 2 ** 20, peak  # a few MiB at most, never the whole 16 MiB
