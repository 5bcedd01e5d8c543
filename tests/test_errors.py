"""Bad input (API.md §6): one table, each case a clear ValueError/TypeError naming what and where."""
import numpy as np
import pytest

import funcnn as F

SPEC = [F.dense(4), F.relu(), F.dense(3)]
P = F.init_params(SPEC, 2, seed=0)
X = np.zeros((3, 2))
Y = np.array([0, 1, 2])
CE = "softmax_cross_entropy"
BIN_SPEC = [F.dense(4), F.relu(), F.dense(1)]
BIN_P = F.init_params(BIN_SPEC, 2, seed=0)


def vg(**kw):
    args = dict(spec=SPEC, params=P, X=X, y=Y, loss=CE)
    args.update(kw)
    spec, params, x, y = args.pop("spec"), args.pop("params"), args.pop("X"), args.pop("y")
    return lambda: F.value_and_grad(spec, params, x, y, **args)


def init(spec, n=2, **kw):
    return lambda: F.init_params(spec, n, **kw)


CASES = [
    # (id, callable, exception, message regex)
    ("unknown layer type", init([F.dense(3), {"type": "relux"}]), ValueError, r"spec\[1\].*unknown layer type 'relux'"),
    ("missing type", init([{"units": 3}]), ValueError, r"spec\[0\].*missing 'type'"),
    ("unknown key", init([{"type": "dense", "units": 3, "unit": 4}]), ValueError, r"spec\[0\].*unknown key.*'unit'"),
    ("key on activation", init([F.dense(3), {"type": "relu", "alpha": 1}]), ValueError, r"spec\[1\].*'alpha'"),
    ("missing units", init([{"type": "dense"}]), ValueError, r"spec\[0\].*needs 'units'"),
    ("zero units", init([F.dense(0)]), ValueError, r"spec\[0\].*'units'.*got 0"),
    ("negative units", init([F.dense(3), F.relu(), F.dense(-2)]), ValueError, r"spec\[2\].*'units'.*got -2"),
    ("fractional units", init([F.dense(2.5)]), TypeError, r"spec\[0\].*'units'.*2.5"),
    ("bool units", init([F.dense(True)]), TypeError, r"spec\[0\].*'units'"),
    ("dropout rate 1", init([F.dense(3), F.dropout(1.0)]), ValueError, r"spec\[1\].*'rate'.*\[0, 1\)"),
    ("dropout rate negative", init([F.dense(3), F.dropout(-0.1)]), ValueError, r"spec\[1\].*'rate'"),
    ("dropout without rate", init([F.dense(3), {"type": "dropout"}]), ValueError, r"spec\[1\].*'rate'"),
    ("dropout rate string", init([F.dense(3), F.dropout("0.5")]), TypeError, r"spec\[1\].*'rate'"),
    ("unknown init", init([F.dense(3, init="xavier")]), ValueError, r"spec\[0\].*unknown init 'xavier'"),
    ("std without normal", init([{"type": "dense", "units": 3, "std": 0.1}]), ValueError, r"spec\[0\].*'std'"),
    ("negative leaky alpha", init([F.dense(3), F.leaky_relu(-1)]), ValueError, r"spec\[1\].*'alpha'"),
    ("n_inputs zero", init(SPEC, 0), ValueError, r"n_inputs"),
    ("n_inputs float", init(SPEC, 2.0), TypeError, r"n_inputs"),
    ("spec not a list", init({"type": "dense", "units": 3}), TypeError, r"spec must be a list"),
    ("spec of strings", init(["dense"]), TypeError, r"spec\[0\].*must be a dict"),
    ("empty spec", init([]), ValueError, r"spec is empty"),
    ("no dense layer", init([F.relu()]), ValueError, r"no layer with parameters"),
    ("bad dtype", init(SPEC, dtype=np.int32), ValueError, r"dtype"),
    ("bad seed", init(SPEC, seed="x"), TypeError, r"seed"),
    ("wrong feature count", vg(X=np.zeros((3, 5))), ValueError, r"X has 5 features but the network expects 2"),
    ("1-D X", vg(X=np.zeros(2)), ValueError, r"X must be 2-D"),
    ("empty X", vg(X=np.zeros((0, 2)), y=np.zeros(0, int)), ValueError, r"X is empty"),
    ("NaN in X", vg(X=np.array([[0, 1], [np.nan, 0], [0, 0]])), ValueError, r"NaN or inf.*row 1, column 0"),
    ("inf in X", vg(X=np.array([[0, 1], [0, 0], [0, np.inf]])), ValueError, r"NaN or inf.*row 2, column 1"),
    ("string X", vg(X=np.array([["a", "b"]] * 3)), TypeError, r"X must hold numbers"),
    ("params missing key", vg(params={k: v for k, v in P.items() if k != "b_2"}), ValueError, r"missing key.*'b_2'"),
    ("params extra key", vg(params={**P, "W_9": P["W_0"]}), ValueError, r"'W_9'.*does not define"),
    ("params wrong shape", vg(params={**P, "W_2": np.zeros((4, 4), np.float32)}), ValueError,
     r"params\['W_2'\] has shape \(4, 4\), expected \(4, 3\)"),
    ("params mixed dtype", vg(params={**P, "b_0": P["b_0"].astype(np.float64)}), TypeError, r"params\['b_0'\].*dtype"),
    ("params not arrays", vg(params={**P, "b_0": [0.0] * 4}), TypeError, r"params\['b_0'\] must be a NumPy array"),
    ("params not a dict", vg(params=[P]), TypeError, r"params must be a dict"),
    ("label out of range", vg(y=np.array([0, 3, 1])), ValueError, r"y\[1\] = 3 is out of range.*0\.\.2"),
    ("negative label", vg(y=np.array([0, -1, 1])), ValueError, r"y\[1\] = -1 is out of range"),
    ("fractional label", vg(y=np.array([0, 1.5, 1])), ValueError, r"whole-number.*index 1"),
    ("string labels", vg(y=np.array(["a", "b", "c"])), TypeError, r"integer labels"),
    ("binary label 2", vg(spec=BIN_SPEC, params=BIN_P, y=np.array([0, 2, 1]), loss="binary_cross_entropy"),
     ValueError, r"y\[1\] = 2 is out of range.*0\.\.1"),
    ("binary with 3 outputs", vg(y=np.array([0, 1, 1]), loss="binary_cross_entropy"), ValueError, r"multi-label: y must be an \(n, k\).*softmax_cross_entropy"),
    ("length mismatch", vg(y=np.array([0, 1])), ValueError, r"y has 2 rows but X has 3 samples"),
    ("2-D labels", vg(y=np.zeros((3, 2), int)), ValueError, r"1-D"),
    ("negative sample_weight", vg(sample_weight=[1, -1, 1]), ValueError, r"sample_weight must be non-negative.*index 1"),
    ("mis-sized sample_weight", vg(sample_weight=[1, 1]), ValueError, r"sample_weight must have shape \(3,\)"),
    ("zero sample_weight", vg(sample_weight=[0, 0, 0]), ValueError, r"sums to zero"),
    ("NaN sample_weight", vg(sample_weight=[1, np.nan, 1]), ValueError, r"sample_weight contains NaN"),
    ("MSE wrong shape", vg(y=np.zeros((3, 2)), loss="mean_squared_error"), ValueError, r"y must have shape \(3, 3\)"),
    ("MSE NaN target", vg(y=np.full((3, 3), np.nan), loss="mean_squared_error"), ValueError, r"NaN"),
    ("unknown loss", vg(loss="cross_entropy"), ValueError, r"unknown loss 'cross_entropy'.*softmax_cross_entropy"),
    ("loss not a string", vg(loss=len), TypeError, r"loss must be a loss name"),
    ("negative l2", vg(l2=-0.1), ValueError, r"l2 must be in"),
    ("training not bool", vg(training="yes"), TypeError, r"training must be True or False"),
    ("predict_proba MSE", lambda: F.predict_proba(SPEC, P, X, loss="mean_squared_error"), ValueError, r"regression"),
    ("predict unknown loss", lambda: F.predict(SPEC, P, X, loss="hinge"), ValueError, r"unknown loss 'hinge'"),
    ("predict_proba unknown loss", lambda: F.predict_proba(SPEC, P, X, loss="hinge"), ValueError, r"unknown loss"),
    ("backward bad cache", lambda: F.backward(SPEC, P, {"layers": []}, np.zeros((3, 3), np.float32)), ValueError,
     r"cache"),
    ("backward wrong grad shape", lambda: F.backward(SPEC, P, F.forward(SPEC, P, X)[1], np.zeros((3, 2), np.float32)),
     ValueError, r"grad_output has shape \(3, 2\), expected \(3, 3\)"),
    ("backward wrong grad dtype", lambda: F.backward(SPEC, P, F.forward(SPEC, P, X)[1], np.zeros((3, 3))),
     TypeError, r"grad_output has dtype float64, expected float32"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case):
    _, fn, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        fn()


# --- validation facts are memoised by the spec's content, never by identity ---------------

def test_spec_key_tells_types_apart():
    from funcnn.layers import spec_key
    keys = {spec_key([{"type": "dense", "units": u}]) for u in (1, True, 1.0)}
    assert len(keys) == 3 and None not in keys
    assert spec_key([{"type": "dense", "units": np.int64(3)}]) is None  # not a plain value: no memo
    assert spec_key([{"type": "reshape", "shape": [2, 2]}]) != spec_key([{"type": "reshape", "shape": [2, 2.0]}])
    assert spec_key("dense") is None and spec_key([["dense"]]) is None


@pytest.mark.parametrize("bad, exc, msg", [
    (True, TypeError, r"spec\[0\].*'units'"), (4.0, TypeError, r"spec\[0\].*'units'"),
    (0, ValueError, r"spec\[0\].*'units'.*got 0")])
def test_a_spec_mutated_after_a_valid_call_is_checked_again(bad, exc, msg):
    spec = [F.dense(4), F.relu(), F.dense(3)]
    params = F.init_params(spec, 2, seed=0)
    F.predict(spec, params, X, loss=CE)  # valid: its facts are memoised
    spec[0]["units"] = bad
    with pytest.raises(exc, match=msg):
        F.predict(spec, params, X, loss=CE)
    with pytest.raises(exc, match=msg):
        F.layers.check_spec(spec)


def test_params_mutated_after_a_valid_call_are_checked_again():
    spec = [F.dense(4), F.relu(), F.dense(3)]
    params = dict(F.init_params(spec, 2, seed=0))
    F.predict(spec, params, X, loss=CE)
    params["W_2"] = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"params\['W_2'\] has shape \(5, 3\), expected \(4, 3\)"):
        F.predict(spec, params, X, loss=CE)
    params["W_2"] = np.zeros((4, 3), np.float32)
    params["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"key\(s\) \['extra'\]"):
        F.predict(spec, params, X, loss=CE)
    del params["extra"], params["b_2"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['b_2'\]"):
        F.predict(spec, params, X, loss=CE)


def test_the_memo_stays_bounded():
    from funcnn import layers, network
    for units in range(1, 200):
        spec = [F.dense(units), F.relu(), F.dense(2)]
        F.predict(spec, F.init_params(spec, 2, seed=0), X, loss=CE)
    assert len(layers._VALID_SPECS) <= 64 and len(network._KEYS) <= 64 and len(network._LAYOUTS) <= 64
