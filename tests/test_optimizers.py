"""Tests for funcnn.optimizers.

* trajectories against straightforward re-implementations of the textbook formulas (1e-12),
* trajectories and slot states against torch.optim (float64, when torch is installed),
* dtype preservation, purity (read-only inputs, no aliasing, bit-identical reruns),
* bad input (one table of call / exception / message).
"""
import inspect
import json
import math
import warnings

import numpy as np
import pytest

from funcnn import optimizers as O
from funcnn import schedules as S

N_STEPS = 5


def _start(dtype=np.float64):
    rng = np.random.default_rng(0)
    params = {"W_0": rng.standard_normal((3, 2)).astype(dtype),
              "b_0": rng.standard_normal(2).astype(dtype)}
    # grads of varied scale and sign, including an exact zero, fixed in advance
    grads = [{k: (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-2, 2, p.shape)).astype(dtype)
              for k, p in params.items()} for _ in range(N_STEPS)]
    grads[1]["b_0"][0] = 0.0
    return params, grads


def _run(opt, params, grads):
    state = O.init_state(opt, params)
    trajectory = []
    for g in grads:
        params, state = O.update(opt, params, g, state)
        trajectory.append(params)
    return trajectory, state


# --------------------------------------------------------------------------- reference formulas
# Written independently of the library: plain expressions, one step at a time.

def ref_sgd(p, grads, lrs, momentum=0.0, nesterov=False):
    out, b = [], None
    for g, lr in zip(grads, lrs):
        if momentum:
            b = g if b is None else momentum * b + g
            d = g + momentum * b if nesterov else b
        else:
            d = g
        p = p - lr * d
        out.append(p)
    return out


def ref_rmsprop(p, grads, lrs, decay, eps):
    out, s = [], np.zeros_like(p)
    for g, lr in zip(grads, lrs):
        s = decay * s + (1 - decay) * g ** 2
        p = p - lr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def ref_adam(p, grads, lrs, beta1, beta2, eps, weight_decay=0.0):
    out, m, v = [], np.zeros_like(p), np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        p = p * (1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


LRS = {  # the lr argument, and its values at steps 0..N_STEPS-1 written out independently
    "const": (0.05, [0.05] * N_STEPS),
    "exponential": (S.exponential(0.1, 0.7), [0.1 * 0.7 ** t for t in range(N_STEPS)]),
    "warmup_cosine": (S.warmup(S.cosine(0.1, 4), 2),
                      [0.1 * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2 * min(1.0, (t + 1) / 2)
                       for t in range(N_STEPS)]),
    "callable": (lambda t: 0.2 / (t + 1), [0.2 / (t + 1) for t in range(N_STEPS)]),
}

CONFIGS = {  # name: (constructor(lr), reference(p, grads, lrs))
    "sgd": (lambda lr: O.sgd(lr), lambda p, g, l: ref_sgd(p, g, l)),
    "sgd_momentum": (lambda lr: O.sgd(lr, momentum=0.9), lambda p, g, l: ref_sgd(p, g, l, 0.9)),
    "sgd_nesterov": (lambda lr: O.sgd(lr, momentum=0.8, nesterov=True),
                     lambda p, g, l: ref_sgd(p, g, l, 0.8, True)),
    "rmsprop": (lambda lr: O.rmsprop(lr), lambda p, g, l: ref_rmsprop(p, g, l, 0.9, 1e-8)),
    "rmsprop_custom": (lambda lr: O.rmsprop(lr, decay=0.5, eps=1e-3),
                       lambda p, g, l: ref_rmsprop(p, g, l, 0.5, 1e-3)),
    "adam": (lambda lr: O.adam(lr), lambda p, g, l: ref_adam(p, g, l, 0.9, 0.999, 1e-8)),
    "adam_custom": (lambda lr: O.adam(lr, beta1=0.5, beta2=0.8, eps=1e-2),
                    lambda p, g, l: ref_adam(p, g, l, 0.5, 0.8, 1e-2)),
    "adamw": (lambda lr: O.adam(lr, weight_decay=0.1),
              lambda p, g, l: ref_adam(p, g, l, 0.9, 0.999, 1e-8, 0.1)),
}


@pytest.mark.parametrize("lr_name", sorted(LRS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_trajectory_matches_reference_formulas(config, lr_name):
    make, ref = CONFIGS[config]
    lr, lrs = LRS[lr_name]
    params, grads = _start()
    got, state = _run(make(lr), params, grads)
    assert state["step"] == N_STEPS
    for key in params:
        expected = ref(params[key], [g[key] for g in grads], lrs)
        for t in range(N_STEPS):
            np.testing.assert_allclose(got[t][key], expected[t], rtol=1e-12, atol=1e-12,
                                       err_msg=f"{config}, lr {lr_name}, {key}, step {t}")


def test_sgd_momentum_by_hand():
    # p0 = 1, g = 1 each step, lr = 0.1, mu = 0.9:
    # heavy ball:  b = 1, 1.9, 2.71        -> p = 0.9, 0.71, 0.439
    # nesterov:    d = 1.9, 2.71, 3.439    -> p = 0.81, 0.539, 0.1951
    p = {"w": np.array([1.0])}
    g = {"w": np.array([1.0])}
    for opt, expected in [(O.sgd(0.1, 0.9), [0.9, 0.71, 0.439]),
                          (O.sgd(0.1, 0.9, nesterov=True), [0.81, 0.539, 0.1951])]:
        q, state = p, O.init_state(opt, p)
        for e in expected:
            q, state = O.update(opt, q, g, state)
            np.testing.assert_allclose(q["w"], [e], rtol=1e-14)


def test_adam_first_step_moves_by_lr_times_sign():
    # m_hat = g and v_hat = g**2 after one step, so the step is lr * g / (|g| + eps)
    p = {"w": np.array([0.0, 0.0, 0.0])}
    g = {"w": np.array([3.0, -1e-3, 0.0])}
    new, state = O.update(O.adam(0.01), p, g, O.init_state(O.adam(0.01), p))
    np.testing.assert_allclose(new["w"], [-0.01 * 3 / (3 + 1e-8), 0.01 * 1e-3 / (1e-3 + 1e-8), 0.0],
                               rtol=1e-12)
    assert state["step"] == 1


def test_lr_is_evaluated_at_the_state_step():
    # starting from a state at step 3 the first update must use value(schedule, 3)
    sched = S.step_decay(1.0, step_size=3, gamma=0.5)
    opt = O.sgd(sched)
    p = {"w": np.array([0.0])}
    g = {"w": np.array([1.0])}
    new, state = O.update(opt, p, g, {"step": 3})
    assert new["w"][0] == -0.5 and state == {"step": 4}
    new, state = O.update(opt, p, g, {"step": 2})
    assert new["w"][0] == -1.0 and state == {"step": 3}


# --------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_float32_stays_float32(config):
    make, _ = CONFIGS[config]
    opt = make(S.exponential(0.1, 0.9))
    p64, grads64 = _start(np.float64)
    p32, grads32 = _start(np.float32)
    got32, state32 = _run(opt, p32, grads32)
    got64, _ = _run(opt, {k: v.astype(np.float64) for k, v in p32.items()},
                    [{k: v.astype(np.float64) for k, v in g.items()} for g in grads32])
    for t in range(N_STEPS):
        for key in p32:
            assert got32[t][key].dtype == np.float32
            np.testing.assert_allclose(got32[t][key], got64[t][key], rtol=1e-5, atol=1e-6)
    for slot, arrays in state32.items():
        if slot != "step":
            assert all(a.dtype == np.float32 for a in arrays.values())


def test_init_state_layout():
    params, _ = _start(np.float32)
    assert O.init_state(O.sgd(0.1), params) == {"step": 0}
    for opt, slots in [(O.sgd(0.1, 0.9), ["momentum"]), (O.rmsprop(0.1), ["square_avg"]),
                       (O.adam(), ["m", "v"])]:
        state = O.init_state(opt, params)
        assert sorted(state) == sorted(["step"] + slots) and state["step"] == 0
        for slot in slots:
            assert state[slot].keys() == params.keys()
            for k, a in state[slot].items():
                assert a.shape == params[k].shape and a.dtype == params[k].dtype
                assert not a.any() and not np.shares_memory(a, params[k])
        if len(slots) == 2:
            assert not np.shares_memory(state["m"]["W_0"], state["v"]["W_0"])


# --------------------------------------------------------------------------- against torch.optim

TORCH = {  # name: (our optimizer from lr, torch optimizer from (torch, tensors, lr), torch slot names)
    "sgd": (lambda lr: O.sgd(lr), lambda torch, ts, lr: torch.optim.SGD(ts, lr=lr), {}),
    "sgd_momentum": (lambda lr: O.sgd(lr, 0.9),
                     lambda torch, ts, lr: torch.optim.SGD(ts, lr=lr, momentum=0.9),
                     {"momentum": "momentum_buffer"}),
    "sgd_nesterov": (lambda lr: O.sgd(lr, 0.7, nesterov=True),
                     lambda torch, ts, lr: torch.optim.SGD(ts, lr=lr, momentum=0.7, nesterov=True),
                     {"momentum": "momentum_buffer"}),
    "rmsprop": (lambda lr: O.rmsprop(lr, decay=0.95, eps=1e-6),
                lambda torch, ts, lr: torch.optim.RMSprop(ts, lr=lr, alpha=0.95, eps=1e-6),
                {"square_avg": "square_avg"}),
    "adam": (lambda lr: O.adam(lr, beta1=0.8, beta2=0.99, eps=1e-7),
             lambda torch, ts, lr: torch.optim.Adam(ts, lr=lr, betas=(0.8, 0.99), eps=1e-7),
             {"m": "exp_avg", "v": "exp_avg_sq"}),
    "adamw": (lambda lr: O.adam(lr, weight_decay=0.05),
              lambda torch, ts, lr: torch.optim.AdamW(ts, lr=lr, weight_decay=0.05),
              {"m": "exp_avg", "v": "exp_avg_sq"}),
}


# Live comparison (skipped without torch). Its frozen twin, which always runs, is
# tests/test_torch_reference.py::test_optimizer[<name>-const] (lr 0.05) and
# [<name>-warmup_exponential] (warmup(exponential(0.1, 0.8), 3)): the same six configurations
# and schedule, 8 steps, params and slots after every step, from tests/data/torch_reference.npz.
@pytest.mark.parametrize("scheduled", [False, True], ids=["const_lr", "scheduled_lr"])
@pytest.mark.parametrize("name", sorted(TORCH))
def test_matches_torch_optim(name, scheduled):
    torch = pytest.importorskip("torch")
    make, make_torch, slot_names = TORCH[name]
    lr = S.warmup(S.exponential(0.1, 0.8), 3) if scheduled else 0.05
    opt = make(lr)
    params, grads = _start()
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    topt = make_torch(torch, list(tensors.values()), S.value(lr, 0) if scheduled else lr)
    state = O.init_state(opt, params)
    for t, g in enumerate(grads):
        params, state = O.update(opt, params, g, state)
        for group in topt.param_groups:  # torch's scheduler API also just sets this
            group["lr"] = S.value(lr, t) if scheduled else lr
        for k, tensor in tensors.items():
            tensor.grad = torch.tensor(g[k], dtype=torch.float64)
        topt.step()
        for k, tensor in tensors.items():
            np.testing.assert_allclose(params[k], tensor.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}: params[{k!r}] after step {t}")
            for ours, theirs in slot_names.items():
                np.testing.assert_allclose(state[ours][k], topt.state[tensor][theirs].numpy(),
                                           rtol=1e-10, atol=1e-14,
                                           err_msg=f"{name}: state[{ours!r}][{k!r}] after step {t}")


# --------------------------------------------------------------------------- purity

def _read_only(tree):
    if isinstance(tree, dict):
        return {k: _read_only(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        tree = tree.copy()
        tree.flags.writeable = False
    return tree


def _copy(tree):
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, dict) else (
        tree.copy() if isinstance(tree, np.ndarray) else tree)


def _arrays(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _arrays(v, f"{prefix}/{k}")
    elif isinstance(tree, np.ndarray):
        yield prefix, tree


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_update_is_pure(config):
    make, _ = CONFIGS[config]
    opt = make(S.warmup(0.1, 2))
    params, grads = _start(np.float32)
    # a state with non-zero slots, so that every code path reads real data
    _, state = _run(opt, params, grads[:2])
    params, grad, state = _read_only(params), _read_only(grads[2]), _read_only(state)
    opt_before = json.dumps(opt)
    before = _copy({"params": params, "grads": grad, "state": state})

    new_params, new_state = O.update(opt, params, grad, state)
    again_params, again_state = O.update(opt, params, grad, state)

    assert json.dumps(opt) == opt_before
    for (path, a), (_, b) in zip(_arrays({"params": params, "grads": grad, "state": state}),
                                 _arrays(before)):
        assert a.tobytes() == b.tobytes(), f"{path} was modified"
    outputs = list(_arrays({"params": new_params, "state": new_state}))
    for path, a in outputs:
        assert a.flags.writeable
        for in_path, b in _arrays({"params": params, "grads": grad, "state": state}):
            assert not np.shares_memory(a, b), f"output {path} aliases input {in_path}"
    for i, (path, a) in enumerate(outputs):
        for path2, b in outputs[i + 1:]:
            assert not np.shares_memory(a, b), f"outputs {path} and {path2} share memory"
    for (path, a), (_, b) in zip(outputs, _arrays({"params": again_params, "state": again_state})):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{path} differs between reruns"
    assert new_state["step"] == state["step"] + 1 and state["step"] == 2


def test_init_state_accepts_read_only_params():
    params = _read_only(_start()[0])
    state = O.init_state(O.adam(), params)
    assert all(a.flags.writeable for _, a in _arrays(state))


def test_non_finite_grads_pass_through_silently():
    # Checking finiteness would cost a pass per array; train reports the non-finite loss.
    params = {"w": np.array([1.0, 2.0, 3.0])}
    grads = {"w": np.array([np.nan, np.inf, 1.0])}
    for opt in (O.sgd(0.1, 0.9, nesterov=True), O.rmsprop(0.1), O.adam(0.1, weight_decay=0.1)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            new, _ = O.update(opt, params, grads, O.init_state(opt, params))
        assert not np.isfinite(new["w"][:2]).any() and np.isfinite(new["w"][2])


def test_empty_params_and_zero_dim_arrays():
    assert O.update(O.adam(), {}, {}, O.init_state(O.adam(), {})) == ({}, {"step": 1, "m": {}, "v": {}})
    p, g = {"s": np.array(2.0)}, {"s": np.array(1.0)}
    new, _ = O.update(O.sgd(0.5), p, g, O.init_state(O.sgd(0.5), p))
    assert isinstance(new["s"], np.ndarray) and new["s"].shape == () and new["s"] == 1.5


# --------------------------------------------------------------------------- data and registry

def test_optimizers_are_plain_json_data():
    assert O.adam() == {"name": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                        "weight_decay": 0.0}
    assert O.sgd(0.1) == {"name": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False}
    assert O.rmsprop(0.1) == {"name": "rmsprop", "lr": 0.1, "decay": 0.9, "eps": 1e-8}
    for opt in (O.sgd(np.float32(0.1), np.float64(0.5), np.bool_(True)), O.rmsprop(S.cosine(0.1, 10)),
                O.adam(S.warmup(0.01, 5), weight_decay=np.float64(1e-4))):
        assert json.loads(json.dumps(opt)) == opt
        assert O.validate(json.loads(json.dumps(opt))) == opt


def test_hand_written_dict_works_like_the_constructor():
    hand = {"name": "sgd", "lr": 0.1, "momentum": 0.5, "nesterov": True}
    params, grads = _start()
    a, _ = _run(hand, params, grads)
    b, _ = _run(O.sgd(0.1, 0.5, nesterov=True), params, grads)
    assert all(a[-1][k].tobytes() == b[-1][k].tobytes() for k in params)


def test_registry_defaults_match_the_constructors():
    constructors = {"sgd": O.sgd, "rmsprop": O.rmsprop, "adam": O.adam}
    assert set(O.OPTIMIZERS) == set(constructors)
    for name, fn in constructors.items():
        sig = {k: p.default for k, p in inspect.signature(fn).parameters.items() if k != "lr"}
        assert O.OPTIMIZERS[name]["defaults"] == sig


# --------------------------------------------------------------------------- bad input

def _p():
    return {"W": np.zeros((3, 2)), "b": np.zeros(2)}


def _upd(opt, params=None, grads=None, state=None):
    params = _p() if params is None else params
    grads = {k: np.ones_like(v) for k, v in params.items()} if grads is None else grads
    state = O.init_state(opt, params) if state is None else state
    return lambda: O.update(opt, params, grads, state)


def _adam_state(**changes):
    state = O.init_state(O.adam(), _p())
    state.update(changes)
    return state


BAD = [
    # constructors
    (lambda: O.sgd(-0.1), ValueError, r"sgd: lr must be in \[0\.0, inf\], got -0\.1"),
    (lambda: O.sgd("0.1"), TypeError, r"sgd: lr must be a number, a schedule dict or a callable"),
    (lambda: O.sgd(float("inf")), ValueError, r"sgd: lr must be finite"),
    (lambda: O.sgd(0.1, momentum=1.0), ValueError, r"sgd: momentum must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: O.sgd(0.1, momentum=-0.1), ValueError, r"sgd: momentum must be in \[0\.0, 1\.0\), got -0\.1"),
    (lambda: O.sgd(0.1, nesterov=True), ValueError, r"sgd: nesterov=True requires momentum > 0"),
    (lambda: O.sgd(0.1, 0.9, nesterov="yes"), TypeError, r"sgd: nesterov must be a bool, got 'yes'"),
    (lambda: O.rmsprop(0.1, decay=1.0), ValueError, r"rmsprop: decay must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: O.rmsprop(0.1, eps=0.0), ValueError, r"rmsprop: eps must be in \(0\.0, inf\], got 0\.0"),
    (lambda: O.adam(beta1=1.0), ValueError, r"adam: beta1 must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: O.adam(beta2=-0.5), ValueError, r"adam: beta2 must be in \[0\.0, 1\.0\), got -0\.5"),
    (lambda: O.adam(eps=-1e-8), ValueError, r"adam: eps must be in \(0\.0, inf\], got -1e-08"),
    (lambda: O.adam(weight_decay=-1e-4), ValueError, r"adam: weight_decay must be in \[0\.0, inf\], got -0\.0001"),
    (lambda: O.adam(lr={"name": "cosine", "lr": 0.1}), ValueError, r"schedule 'cosine': missing key\(s\)"),
    (lambda: O.adam(lr=S.cosine(0.1, 10) | {"total_steps": 0}), ValueError, r"cosine: total_steps must be in \[1, inf\]"),
    # hand-written dicts
    (lambda: O.validate("adam"), TypeError, r"an optimizer must be a dict .* got str"),
    (lambda: O.validate({"name": "adagrad", "lr": 0.1}), ValueError,
     r"unknown optimizer name 'adagrad'; expected one of \['adam', 'rmsprop', 'sgd'\]"),
    (lambda: O.validate({"lr": 0.1}), ValueError, r"unknown optimizer name None"),
    (lambda: O.validate({"name": "adam", "lr": 0.1}), ValueError,
     r"optimizer 'adam': missing key\(s\) \['beta1', 'beta2', 'eps', 'weight_decay'\] \(the defaults are beta1=0\.9"),
    (lambda: O.validate({"name": "rmsprop", "decay": 0.9, "eps": 1e-8}), ValueError,
     r"optimizer 'rmsprop': missing key\(s\) \['lr'\]; expected exactly"),
    (lambda: O.validate(O.adam() | {"amsgrad": True}), ValueError, r"optimizer 'adam': unknown key\(s\) \['amsgrad'\]"),
    (lambda: O.validate({"name": "sgd", "lr": 0.1, "momentum": 1.5, "nesterov": False}), ValueError,
     r"sgd: momentum must be in \[0\.0, 1\.0\), got 1\.5"),
    (lambda: O.init_state({"name": "sgd", "lr": -1, "momentum": 0.0, "nesterov": False}, _p()), ValueError,
     r"sgd: lr must be in \[0\.0, inf\], got -1"),
    (_upd({"name": "adam", "lr": 0.1, "beta1": 0.9, "beta2": 1.0, "eps": 1e-8, "weight_decay": 0.0},
          state={"step": 0}), ValueError, r"adam: beta2 must be in \[0\.0, 1\.0\), got 1\.0"),
    # params
    (lambda: O.init_state(O.adam(), [np.zeros(2)]), TypeError, r"params must be a dict of arrays, got list"),
    (lambda: O.init_state(O.adam(), {"W": [[1.0]]}), TypeError, r"params\['W'\] must be a numpy array, got list"),
    (lambda: O.init_state(O.adam(), {"W": np.zeros(2, dtype=int)}), TypeError,
     r"params\['W'\] must have a floating dtype, got int"),
    (lambda: O.init_state(O.adam(), {0: np.zeros(2)}), TypeError, r"params keys must be str, got 0"),
    # grads
    (_upd(O.sgd(0.1), grads={"W": np.ones((3, 2))}), ValueError,
     r"grads does not match params: missing key\(s\) \['b'\]"),
    (_upd(O.sgd(0.1), grads={"W": np.ones((3, 2)), "b": np.ones(2), "c": np.ones(1)}), ValueError,
     r"grads does not match params: unexpected key\(s\) \['c'\]"),
    (_upd(O.sgd(0.1), grads={"W": np.ones((2, 3)), "b": np.ones(2)}), ValueError,
     r"grads\['W'\] has shape \(2, 3\), expected \(3, 2\)"),
    (_upd(O.sgd(0.1), grads={"W": np.ones((3, 2), np.float32), "b": np.ones(2)}), ValueError,
     r"grads\['W'\] has dtype float32, expected float64"),
    (_upd(O.sgd(0.1), grads={"W": np.ones((3, 2)), "b": [1.0, 1.0]}), TypeError,
     r"grads\['b'\] must be a numpy array, got list"),
    (lambda: O.update(O.sgd(0.1), _p(), None, {"step": 0}), TypeError,
     r"grads must be a dict of arrays keyed like params, got NoneType"),
    # state
    (_upd(O.adam(), state={"step": 0}), ValueError,
     r"state does not fit optimizer 'adam': missing key\(s\) \['m', 'v'\]; expected keys \['m', 'step', 'v'\]"),
    (_upd(O.sgd(0.1), state=_adam_state()), ValueError,
     r"state does not fit optimizer 'sgd': unexpected key\(s\) \['m', 'v'\]"),
    (_upd(O.sgd(0.1, 0.9), state={"step": 0}), ValueError,
     r"state does not fit optimizer 'sgd': missing key\(s\) \['momentum'\]"),
    (_upd(O.adam(), state=_adam_state(v={"W": np.zeros((3, 2))})), ValueError,
     r"state\['v'\] does not match params: missing key\(s\) \['b'\]"),
    (_upd(O.adam(), state=_adam_state(m={"W": np.zeros((3, 3)), "b": np.zeros(2)})), ValueError,
     r"state\['m'\]\['W'\] has shape \(3, 3\), expected \(3, 2\)"),
    (_upd(O.adam(), state=_adam_state(m={"W": np.zeros((3, 2), np.float32), "b": np.zeros(2)})), ValueError,
     r"state\['m'\]\['W'\] has dtype float32, expected float64"),
    (_upd(O.adam(), state=_adam_state(step=-1)), ValueError, r"state\['step'\] must be in \[0, inf\], got -1"),
    (_upd(O.adam(), state=_adam_state(step=1.5)), TypeError, r"state\['step'\] must be an int, got 1\.5"),
    (_upd(O.adam(), state=[0]), TypeError, r"state must be a dict \(from init_state\), got list"),
    # learning rates resolved at update time
    (_upd(O.sgd(lambda t: -0.1), state={"step": 0}), ValueError,
     r"lr \(the value returned by .* at step 0\) must be in \[0\.0, inf\], got -0\.1"),
    (_upd(O.sgd(lambda t: float("nan")), state={"step": 0}), ValueError, r"must be finite"),
]


@pytest.mark.parametrize("call, exc, match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
