"""Optimizers as data plus two pure functions.

An optimizer is a plain dict of hyperparameters (``adam(1e-3)`` → ``{"name": "adam",
"lr": 0.001, ...}``) and its running state is another plain dict::

    state = init_state(opt, params)                          # {"step": 0, "m": {...}, "v": {...}}
    params, state = update(opt, params, grads, state)       # new dicts, new arrays

``state["step"]`` counts the updates done so far; the slot entries (``"momentum"`` for sgd
with momentum, ``"square_avg"`` for rmsprop, ``"m"`` and ``"v"`` for adam) are dicts keyed
like ``params`` holding arrays of the same shape and dtype. Nothing is modified in place:
``update`` returns new dicts and new arrays, so old states stay valid (resumable,
comparable, safe to share).

The arithmetic is PyTorch's, update for update: ``torch.optim.SGD`` (dampening 0, optional
Nesterov), ``torch.optim.RMSprop`` (``alpha`` = ``decay``, not centered, no momentum) and
``torch.optim.Adam``; ``weight_decay`` in ``adam`` is the decoupled one of
``torch.optim.AdamW``. ``lr`` may be a number, a schedule from ``funcnn.schedules`` or a
callable of the step; it is evaluated at ``state["step"]`` before the step is counted.

Each update allocates only the arrays it returns plus at most one scratch array per
parameter, and works with ``out=`` on those, because the optimizer runs once per minibatch
over every weight and extra elementwise passes are pure memory traffic.
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Dict, Mapping, Tuple

import numpy as np

from .validation import check_number
from . import schedules
from .schedules import LearningRate

Optimizer = Dict[str, Any]
Params = Dict[str, np.ndarray]
State = Dict[str, Any]

__all__ = ["sgd", "rmsprop", "adam", "by_name", "validate", "init_state", "update", "OPTIMIZERS", "CONSTRUCTORS"]


# --------------------------------------------------------------------------- validation helpers

def _check_lr(lr: Any, name: str) -> LearningRate:
    if isinstance(lr, dict):
        return schedules.validate(lr)
    if callable(lr):
        return lr  # checked when called, by schedules.resolve_lr
    if isinstance(lr, numbers.Real) and not isinstance(lr, (bool, np.bool_)):
        return float(check_number(lr, f"{name}: lr", low=0.0))
    raise TypeError(f"{name}: lr must be a number, a schedule dict or a callable of the step, "
                    f"got {lr!r}")


def _unit(value: Any, what: str) -> float:
    """A float in [0, 1)."""
    return float(check_number(value, what, low=0.0, high=1.0, high_open=True))


def _check_sgd(opt: Mapping[str, Any]) -> None:
    momentum = _unit(opt["momentum"], "sgd: momentum")
    if not isinstance(opt["nesterov"], (bool, np.bool_)):
        raise TypeError(f"sgd: nesterov must be a bool, got {opt['nesterov']!r}")
    if opt["nesterov"] and momentum == 0.0:
        # torch.optim.SGD refuses this too: Nesterov with no momentum is plain SGD in disguise.
        raise ValueError("sgd: nesterov=True requires momentum > 0, got momentum=0.0")


def _check_rmsprop(opt: Mapping[str, Any]) -> None:
    _unit(opt["decay"], "rmsprop: decay")
    check_number(opt["eps"], "rmsprop: eps", low=0.0, low_open=True)


def _check_adam(opt: Mapping[str, Any]) -> None:
    _unit(opt["beta1"], "adam: beta1")
    _unit(opt["beta2"], "adam: beta2")
    check_number(opt["eps"], "adam: eps", low=0.0, low_open=True)
    check_number(opt["weight_decay"], "adam: weight_decay", low=0.0)


def _check_params(params: Any) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    for key, p in params.items():
        if not isinstance(key, str):
            raise TypeError(f"params keys must be str, got {key!r}")
        if not isinstance(p, np.ndarray):
            raise TypeError(f"params[{key!r}] must be a numpy array, got {type(p).__name__}")
        if not np.issubdtype(p.dtype, np.floating):
            raise TypeError(f"params[{key!r}] must have a floating dtype, got {p.dtype}")


def _check_like(params: Params, other: Any, what: str) -> None:
    """``other`` (the grads, or one state slot) has exactly the keys, shapes and dtypes of ``params``."""
    if not isinstance(other, dict):
        raise TypeError(f"{what} must be a dict of arrays keyed like params, got {type(other).__name__}")
    if other.keys() != params.keys():
        missing = sorted(params.keys() - other.keys())
        extra = sorted(other.keys() - params.keys(), key=str)
        parts = ([f"missing key(s) {missing}"] if missing else []) + \
                ([f"unexpected key(s) {extra}"] if extra else [])
        raise ValueError(f"{what} does not match params: {' and '.join(parts)}")
    for key, p in params.items():
        a = other[key]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{what}[{key!r}] must be a numpy array, got {type(a).__name__}")
        if a.shape != p.shape:
            raise ValueError(f"{what}[{key!r}] has shape {a.shape}, expected {p.shape} (the shape of params[{key!r}])")
        if a.dtype != p.dtype:
            raise ValueError(f"{what}[{key!r}] has dtype {a.dtype}, expected {p.dtype} (the dtype of params[{key!r}])")


def _check_state(opt: Optimizer, params: Params, state: Any) -> int:
    """Validate ``state`` against ``opt`` and ``params``; return the step as an int."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (from init_state), got {type(state).__name__}")
    slots = OPTIMIZERS[opt["name"]]["slots"](opt)
    expected = {"step", *slots}
    if state.keys() != expected:
        missing = sorted(expected - state.keys())
        extra = sorted(state.keys() - expected, key=str)
        parts = ([f"missing key(s) {missing}"] if missing else []) + \
                ([f"unexpected key(s) {extra}"] if extra else [])
        raise ValueError(f"state does not fit optimizer {opt['name']!r}: {' and '.join(parts)}; "
                         f"expected keys {sorted(expected)} (create it with init_state)")
    step = schedules.check_step(state["step"], "state['step']")
    for slot in slots:
        _check_like(params, state[slot], f"state[{slot!r}]")
    return step


# --------------------------------------------------------------------------- constructors

def validate(optimizer: Any) -> Optimizer:
    """Check an optimizer dict (name, keys, hyperparameters) and return it unchanged, else raise.

    ``ValueError`` for an unknown name, a missing or unknown key or an out-of-range value;
    ``TypeError`` for a value of the wrong type.
    """
    if not isinstance(optimizer, dict):
        raise TypeError(f"an optimizer must be a dict (e.g. funcnn.optimizers.adam()), "
                        f"got {type(optimizer).__name__}")
    name = optimizer.get("name")
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer name {name!r}; expected one of {sorted(OPTIMIZERS)}")
    entry = OPTIMIZERS[name]
    expected = {"lr", *entry["defaults"]}
    given = set(optimizer) - {"name"}
    if given != expected:
        parts = []
        if expected - given:
            missing = sorted(expected - given)
            hint = ", ".join(f"{k}={entry['defaults'][k]!r}" for k in missing if k in entry["defaults"])
            parts.append(f"missing key(s) {missing}" + (f" (the defaults are {hint})" if hint else ""))
        if given - expected:
            parts.append(f"unknown key(s) {sorted(given - expected, key=str)}")
        raise ValueError(f"optimizer {name!r}: {' and '.join(parts)}; expected exactly "
                         f"{sorted(expected)} besides 'name'")
    _check_lr(optimizer["lr"], name)
    entry["check"](optimizer)
    return optimizer


def sgd(lr: LearningRate, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent (torch.optim.SGD, dampening 0).

    b_t = momentum * b_{t-1} + g;  d = g + momentum * b_t if nesterov else b_t;  p -= lr * d
    (without momentum: p -= lr * g).
    """
    opt = validate({"name": "sgd", "lr": _check_lr(lr, "sgd"),
                    "momentum": _unit(momentum, "sgd: momentum"), "nesterov": nesterov})
    opt["nesterov"] = bool(nesterov)  # a np.bool_ would not survive json.dumps
    return opt


def rmsprop(lr: LearningRate, decay: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSprop (torch.optim.RMSprop with alpha=decay, not centered).

    s_t = decay * s_{t-1} + (1 - decay) * g**2;  p -= lr * g / (sqrt(s_t) + eps)
    """
    return validate({"name": "rmsprop", "lr": _check_lr(lr, "rmsprop"),
                     "decay": _unit(decay, "rmsprop: decay"),
                     "eps": float(check_number(eps, "rmsprop: eps", low=0.0, low_open=True))})


def adam(lr: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
         weight_decay: float = 0.0) -> Optimizer:
    """Adam, with decoupled weight decay (torch.optim.AdamW; torch.optim.Adam when weight_decay=0).

    p *= 1 - lr*wd;  m_t = b1 m + (1-b1) g;  v_t = b2 v + (1-b2) g**2;
    p -= lr / (1-b1**t) * m_t / (sqrt(v_t) / sqrt(1-b2**t) + eps)
    """
    return validate({"name": "adam", "lr": _check_lr(lr, "adam"),
                     "beta1": _unit(beta1, "adam: beta1"), "beta2": _unit(beta2, "adam: beta2"),
                     "eps": float(check_number(eps, "adam: eps", low=0.0, low_open=True)),
                     "weight_decay": float(check_number(weight_decay, "adam: weight_decay", low=0.0))})


# --------------------------------------------------------------------------- update rules
#
# Each rule maps (hyperparameters, lr, t, p, g, slot arrays) to (new p, new slot arrays)
# for one parameter array. Scalars are Python floats on purpose: NumPy keeps the array
# dtype for them, so float32 parameters are updated in float32.

def _sgd_step(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
              slots: Tuple[np.ndarray, ...]) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    if not slots:
        out = np.multiply(g, -lr, out=np.empty_like(p))
        return np.add(out, p, out=out), ()
    (buf,) = slots
    mu = float(opt["momentum"])
    # A zero buffer makes the first step mu*0 + g == g exactly, torch's clone(grad).
    new_buf = np.multiply(buf, mu, out=np.empty_like(p))
    new_buf += g
    if opt["nesterov"]:
        out = np.multiply(new_buf, mu, out=np.empty_like(p))
        out += g
        out *= -lr
    else:
        out = np.multiply(new_buf, -lr, out=np.empty_like(p))
    out += p
    return out, (new_buf,)


def _rmsprop_step(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
                  slots: Tuple[np.ndarray, ...]) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    (sq,) = slots
    decay = float(opt["decay"])
    new_sq = np.multiply(sq, decay, out=np.empty_like(p))
    out = np.multiply(g, 1.0 - decay, out=np.empty_like(p))   # scratch, becomes the new p
    out *= g
    new_sq += out
    np.sqrt(new_sq, out=out)
    out += float(opt["eps"])
    np.divide(g, out, out=out)
    out *= -lr
    out += p
    return out, (new_sq,)


def _adam_step(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
               slots: Tuple[np.ndarray, ...]) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    m, v = slots
    b1, b2, eps = float(opt["beta1"]), float(opt["beta2"]), float(opt["eps"])
    wd = float(opt["weight_decay"])
    # m + (1-b1)(g - m) is torch's exp_avg.lerp_(grad, 1-b1), and needs no temporary.
    new_m = np.subtract(g, m, out=np.empty_like(p))
    new_m *= 1.0 - b1
    new_m += m
    new_v = np.multiply(v, b2, out=np.empty_like(p))
    out = np.multiply(g, 1.0 - b2, out=np.empty_like(p))       # scratch, becomes the new p
    out *= g
    new_v += out
    c1 = 1.0 - b1 ** t
    c2_sqrt = (1.0 - b2 ** t) ** 0.5
    # torch: m / (sqrt(v)/c2_sqrt + eps) * lr/c1, which equals
    # m / (sqrt(v) + eps*c2_sqrt) * (lr*c2_sqrt/c1): the same number, one pass fewer.
    np.sqrt(new_v, out=out)
    out += eps * c2_sqrt
    np.divide(new_m, out, out=out)
    out *= -(lr * c2_sqrt / c1)
    if wd:
        # AdamW decays the old parameters before adding the Adam step.
        new_p = np.multiply(p, 1.0 - lr * wd, out=np.empty_like(p))
        new_p += out
        return new_p, (new_m, new_v)
    out += p
    return out, (new_m, new_v)


# --------------------------------------------------------------------------- in place, for train
#
# ``funcnn.train`` keeps params, grads and slots of all layers in single flat buffers that
# it owns and runs one of these per minibatch: a handful of passes over one big array
# instead of a handful per parameter array, and no allocation. ``p`` and the slot arrays
# are updated in place; ``g`` (train's own gradient buffer, not needed afterwards) and
# ``tmp`` are scratch.
#
# sgd and rmsprop do the operations of ``update``, in the same order: the same bits.
# adam keeps its slots scaled while it trains, m / (1 - beta1) and v / (1 - beta2), so
# that both moving averages are a multiply and an add (m <- beta1 m + g, v <- beta2 v + g**2)
# and the scales fold into the step's constants: 10 passes over 4 arrays instead of 12
# over 5. It is the same update up to rounding (tests/test_performance_guard.py), and
# deterministic. ``_slots_to_inplace``/``_slots_from_inplace`` convert the slots, in place,
# between the two forms; train converts at every epoch boundary, so the state it saves in
# checkpoints is the plain one, and a resumed run repeats the uninterrupted one bit for bit.

def _sgd_step_inplace(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
                      slots: Tuple[np.ndarray, ...], tmp: np.ndarray) -> None:
    if not slots:
        g *= -lr
        p += g
        return
    (buf,) = slots
    mu = float(opt["momentum"])
    buf *= mu
    buf += g
    if opt["nesterov"]:
        np.multiply(buf, mu, out=tmp)
        tmp += g
        tmp *= -lr
        p += tmp
    else:
        np.multiply(buf, -lr, out=g)
        p += g


def _rmsprop_step_inplace(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
                          slots: Tuple[np.ndarray, ...], tmp: np.ndarray) -> None:
    (sq,) = slots
    decay = float(opt["decay"])
    sq *= decay
    np.multiply(g, 1.0 - decay, out=tmp)
    tmp *= g
    sq += tmp
    np.sqrt(sq, out=tmp)
    tmp += float(opt["eps"])
    np.divide(g, tmp, out=tmp)
    tmp *= -lr
    p += tmp


def _adam_scales(opt: Optimizer) -> Tuple[float, float]:
    return 1.0 - float(opt["beta1"]), 1.0 - float(opt["beta2"])


def _adam_step_inplace(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
                       slots: Tuple[np.ndarray, ...], tmp: np.ndarray) -> None:
    m, v = slots  # scaled: m / (1 - b1) and v / (1 - b2)
    b1, b2, eps = float(opt["beta1"]), float(opt["beta2"]), float(opt["eps"])
    wd = float(opt["weight_decay"])
    m *= b1
    m += g
    np.multiply(g, g, out=g)
    v *= b2
    v += g
    # The step of update(), lr/c1 * m_true / (sqrt(v_true)/sqrt(c2) + eps), with
    # m_true = (1-b1) m and v_true = (1-b2) v, is
    # lr*sqrt(c2)*(1-b1)/(c1*sqrt(1-b2)) * m / (sqrt(v) + eps*sqrt(c2)/sqrt(1-b2)).
    c1 = 1.0 - b1 ** t
    c2_sqrt = (1.0 - b2 ** t) ** 0.5
    k = (1.0 - b2) ** 0.5
    np.sqrt(v, out=g)
    g += eps * c2_sqrt / k
    np.divide(m, g, out=g)
    g *= -(lr * c2_sqrt * (1.0 - b1) / (c1 * k))
    if wd:
        p *= 1.0 - lr * wd  # AdamW decays the old parameters before adding the Adam step
    p += g


OPTIMIZERS: Dict[str, Dict[str, Any]] = {
    "sgd": {
        "defaults": {"momentum": 0.0, "nesterov": False},
        "check": _check_sgd,
        # sgd keeps a velocity only when it uses one
        "slots": lambda opt: ("momentum",) if opt["momentum"] else (),
        "step": _sgd_step,
        "step_inplace": _sgd_step_inplace,
        "inplace_scales": lambda opt: None,  # the slots are kept as they are
    },
    "rmsprop": {
        "defaults": {"decay": 0.9, "eps": 1e-8},
        "check": _check_rmsprop,
        "slots": lambda opt: ("square_avg",),
        "step": _rmsprop_step,
        "step_inplace": _rmsprop_step_inplace,
        "inplace_scales": lambda opt: None,
    },
    "adam": {
        "defaults": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
        "check": _check_adam,
        "slots": lambda opt: ("m", "v"),
        "step": _adam_step,
        "step_inplace": _adam_step_inplace,
        "inplace_scales": _adam_scales,  # step_inplace works on slot / scale
    },
}


CONSTRUCTORS: Dict[str, Callable[..., Optimizer]] = {"sgd": sgd, "rmsprop": rmsprop, "adam": adam}


def by_name(optimizer: Any, **hyperparameters: Any) -> Optimizer:
    """An optimizer from a name (``"adam"``) or a dict, with hyperparameters set or replaced.

    ``by_name("sgd", lr=0.1, momentum=0.9)`` is ``sgd(0.1, momentum=0.9)``; a dict gets the
    given entries replaced and is validated. A hyperparameter the optimizer does not have
    is a ``ValueError`` naming it.
    """
    if isinstance(optimizer, dict):
        return validate({**optimizer, **hyperparameters})
    if not isinstance(optimizer, str) or optimizer not in CONSTRUCTORS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {sorted(CONSTRUCTORS)} "
                         "(or pass an optimizer dict)")
    allowed = set(OPTIMIZERS[optimizer]["defaults"]) | {"lr"}
    wrong = sorted(set(hyperparameters) - allowed)
    if wrong:
        raise ValueError(f"{wrong} do(es) not apply to optimizer {optimizer!r}; its hyperparameters are "
                         f"{sorted(allowed)}")
    if "lr" not in hyperparameters and \
            inspect.signature(CONSTRUCTORS[optimizer]).parameters["lr"].default is inspect.Parameter.empty:
        raise ValueError(f"optimizer {optimizer!r} needs a learning rate: set 'lr'")
    return CONSTRUCTORS[optimizer](**hyperparameters)


# --------------------------------------------------------------------------- public

def init_state(optimizer: Optimizer, params: Params) -> State:
    """The state before the first update: ``{"step": 0, slot: {key: zeros_like(params[key])}}``."""
    validate(optimizer)
    _check_params(params)
    slots = OPTIMIZERS[optimizer["name"]]["slots"](optimizer)
    state: State = {"step": 0}
    for slot in slots:
        state[slot] = {key: np.zeros_like(p) for key, p in params.items()}
    return state


def update(optimizer: Optimizer, params: Params, grads: Params, state: State) -> Tuple[Params, State]:
    """One optimizer step: ``(new_params, new_state)``, with ``new_state["step"] = state["step"] + 1``.

    The learning rate is ``lr`` evaluated at ``state["step"]``. No argument is modified.
    Non-finite gradients are not checked for (that would cost a pass over every array);
    they propagate into the parameters without warnings, and ``train`` reports the
    non-finite loss that produced them.
    """
    validate(optimizer)
    _check_params(params)
    _check_like(params, grads, "grads")
    step = _check_state(optimizer, params, state)
    lr = schedules.resolve_lr(optimizer["lr"], step)
    entry = OPTIMIZERS[optimizer["name"]]
    slots = entry["slots"](optimizer)
    rule: Callable = entry["step"]
    t = step + 1

    new_params: Params = {}
    new_slots: Dict[str, Params] = {slot: {} for slot in slots}
    with np.errstate(over="ignore", invalid="ignore"):
        for key, p in params.items():
            new_p, new_arrays = rule(optimizer, lr, t, p, grads[key],
                                     tuple(state[slot][key] for slot in slots))
            new_params[key] = new_p
            for slot, arr in zip(slots, new_arrays):
                new_slots[slot][key] = arr
    return new_params, {"step": t, **new_slots}


def _update_inplace(optimizer: Optimizer, step: int, p: np.ndarray, g: np.ndarray,
                    slots: Tuple[np.ndarray, ...], tmp: np.ndarray) -> None:
    """One :func:`update` step done in place on arrays the caller owns, for ``funcnn.train``.

    ``p``, ``g``, ``tmp`` and each of ``slots`` (in the order of the optimizer's slot names,
    in the form :func:`_slots_to_inplace` makes) are arrays of one shape and dtype,
    typically every parameter concatenated into one flat buffer. ``p`` and ``slots`` are
    updated for the step after ``step``; ``g`` and ``tmp`` are overwritten. Nothing is
    validated: the caller checked the optimizer and the arrays once. Like :func:`update`,
    call it under ``np.errstate(over="ignore", invalid="ignore")`` (train's loop runs in one):
    non-finite values are the caller's to report.
    """
    lr = optimizer["lr"]
    if type(lr) is not float:  # a schedule or a function of the step; a float was checked by validate()
        lr = schedules.resolve_lr(lr, step)  # once per step: a callable may count its calls
    OPTIMIZERS[optimizer["name"]]["step_inplace"](optimizer, lr, step + 1, p, g, slots, tmp)


def _slots_to_inplace(optimizer: Optimizer, slots: Tuple[np.ndarray, ...]) -> None:
    """Turn slot arrays as ``update`` keeps them into the form ``_update_inplace`` uses (in place)."""
    scales = OPTIMIZERS[optimizer["name"]]["inplace_scales"](optimizer)
    if scales is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            for arr, scale in zip(slots, scales):
                arr /= scale


def _slots_from_inplace(optimizer: Optimizer, slots: Tuple[np.ndarray, ...]) -> None:
    """The inverse of :func:`_slots_to_inplace` (up to rounding), in place."""
    scales = OPTIMIZERS[optimizer["name"]]["inplace_scales"](optimizer)
    if scales is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            for arr, scale in zip(slots, scales):
                arr *= scale
