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
Every optimizer also takes ``clip_norm`` (gradient clipping by global norm, as
``torch.nn.utils.clip_grad_norm_`` before the step; see :func:`clip_factor`), stored in its
dict only when set.

Each optimizer is one rule per array (``OPTIMIZERS[name]["rule"]``) in NumPy's out= idiom:
``update`` applies it to every array with fresh output arrays (plus one scratch array each);
``funcnn.train`` applies the very same rule to all parameters at once, concatenated into one
flat buffer, in place (:func:`apply_rule`). Elementwise arithmetic rounds each element alike
either way, so the two agree bit for bit.
"""
from __future__ import annotations

import fnmatch
import inspect
import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .layers import is_trainable_key
from .validation import check_finite, check_number
from . import schedules
from .schedules import LearningRate

Optimizer = Dict[str, Any]
Params = Dict[str, np.ndarray]
State = Dict[str, Any]

__all__ = ["sgd", "rmsprop", "adam", "by_name", "validate", "init_state", "update", "OPTIMIZERS", "CONSTRUCTORS", "apply_rule", "slot_names", "check_state", "clip_factor", "OPTIONAL",
           "chain", "clip_by_global_norm", "add_decayed_weights", "freeze", "accumulate_gradients", "ema",
           "TRANSFORMS", "apply_step", "observe", "current_lr", "averaged_params", "mask_keys", "scalar_names",
           "is_general", "base_of"]

# Keys every optimizer may carry besides its own: ``clip_norm`` (gradient clipping by global
# norm; absent or None = off). Constructors store it only when it is set, so the dicts of
# runs without clipping are unchanged.
OPTIONAL: Dict[str, Any] = {"clip_norm": None}


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


def check_state(opt: Optimizer, params: Params, state: Any) -> int:
    """Validate ``state`` (from :func:`init_state` or :func:`update`) against ``opt`` and ``params``; return the step."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (from init_state), got {type(state).__name__}")
    slots = slot_names(opt)
    expected = {"step", *slots, *scalar_names(opt)}
    if state.keys() != expected:
        missing = sorted(expected - state.keys())
        extra = sorted(state.keys() - expected, key=str)
        parts = ([f"missing key(s) {missing}"] if missing else []) + \
                ([f"unexpected key(s) {extra}"] if extra else [])
        raise ValueError(f"state does not fit optimizer {opt['name']!r}: {' and '.join(parts)}; "
                         f"expected keys {sorted(expected)} (create it with init_state)")
    step = schedules.check_step(state["step"], "state['step']")
    if "micro" in expected:
        every = _parts(opt)["every"]
        check_number(state["micro"], "state['micro']", low=0, high=every - 1, integer=True)
    if "plateau" in expected:
        schedules.check_plateau_state(state["plateau"])
    trainable = {k: p for k, p in params.items() if is_trainable_key(k)}
    for slot in slots:
        _check_like(trainable, state[slot], f"state[{slot!r}]")
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
    if name == "chain":
        _parts(optimizer)
        return optimizer
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer name {name!r}; expected one of {sorted(OPTIMIZERS)}"
                         + (" (a transform: put it in optimizers.chain([...]))" if name in TRANSFORMS else ""))
    entry = OPTIMIZERS[name]
    expected = {"lr", *entry["defaults"]}
    given = set(optimizer) - {"name"} - set(OPTIONAL)
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
    _check_clip_norm(optimizer.get("clip_norm"), name)
    entry["check"](optimizer)
    return optimizer


def _check_clip_norm(value: Any, name: str) -> Any:
    if value is not None:
        check_number(value, f"{name}: clip_norm", low=0.0, low_open=True)
    return value


def _with_clip(opt: Optimizer, clip_norm: Any) -> Optimizer:
    """``opt`` with ``clip_norm`` stored (when not None), validated."""
    if clip_norm is not None:
        opt["clip_norm"] = float(check_number(clip_norm, f"{opt['name']}: clip_norm", low=0.0, low_open=True))
    return validate(opt)


def sgd(lr: LearningRate, momentum: float = 0.0, nesterov: bool = False,
        clip_norm: Optional[float] = None) -> Optimizer:
    """Stochastic gradient descent (torch.optim.SGD, dampening 0).

    b_t = momentum * b_{t-1} + g;  d = g + momentum * b_t if nesterov else b_t;  p -= lr * d
    (without momentum: p -= lr * g). ``clip_norm``: see :func:`clip_factor`.

    Args:
        lr: the learning rate: a number, a schedule dict (:mod:`funcnn.schedules`) or a function of the step.
        momentum: in [0, 1).
        nesterov: Nesterov momentum.
        clip_norm: clip the gradients' global norm to this (None: off).

    Returns:
        The optimizer dict.

    Examples:
        >>> sgd(0.1, momentum=0.9)
        {'name': 'sgd', 'lr': 0.1, 'momentum': 0.9, 'nesterov': False}
    """
    opt = validate({"name": "sgd", "lr": _check_lr(lr, "sgd"),
                    "momentum": _unit(momentum, "sgd: momentum"), "nesterov": nesterov})
    opt["nesterov"] = bool(nesterov)  # a np.bool_ would not survive json.dumps
    return _with_clip(opt, clip_norm)


def rmsprop(lr: LearningRate, decay: float = 0.9, eps: float = 1e-8, clip_norm: Optional[float] = None) -> Optimizer:
    """RMSprop (torch.optim.RMSprop with alpha=decay, not centered).

    s_t = decay * s_{t-1} + (1 - decay) * g**2;  p -= lr * g / (sqrt(s_t) + eps).
    ``clip_norm``: see :func:`clip_factor`.

    Args:
        lr: the learning rate (a number, a schedule dict or a function of the step).
        decay: the squares' moving-average factor (torch's ``alpha``).
        eps: added to the root for stability.
        clip_norm: clip the gradients' global norm to this (None: off).

    Returns:
        The optimizer dict.
    """
    return _with_clip({"name": "rmsprop", "lr": _check_lr(lr, "rmsprop"),
                       "decay": _unit(decay, "rmsprop: decay"),
                       "eps": float(check_number(eps, "rmsprop: eps", low=0.0, low_open=True))}, clip_norm)


def adam(lr: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
         weight_decay: float = 0.0, clip_norm: Optional[float] = None) -> Optimizer:
    """Adam, with decoupled weight decay (torch.optim.AdamW; torch.optim.Adam when weight_decay=0).

    p *= 1 - lr*wd;  m_t = b1 m + (1-b1) g;  v_t = b2 v + (1-b2) g**2;
    p -= lr / (1-b1**t) * m_t / (sqrt(v_t) / sqrt(1-b2**t) + eps).  ``clip_norm``: see :func:`clip_factor`.

    Args:
        lr: the learning rate (a number, a schedule dict or a function of the step).
        beta1: the first moment's factor.
        beta2: the second moment's factor.
        eps: added to the root for stability.
        weight_decay: decoupled weight decay (AdamW); 0 is Adam.
        clip_norm: clip the gradients' global norm to this (None: off).

    Returns:
        The optimizer dict.

    Examples:
        >>> adam(1e-3)["name"], adam(1e-3, clip_norm=1.0)["clip_norm"]
        ('adam', 1.0)
    """
    return _with_clip({"name": "adam", "lr": _check_lr(lr, "adam"),
                       "beta1": _unit(beta1, "adam: beta1"), "beta2": _unit(beta2, "adam: beta2"),
                       "eps": float(check_number(eps, "adam: eps", low=0.0, low_open=True)),
                       "weight_decay": float(check_number(weight_decay, "adam: weight_decay", low=0.0))},
                      clip_norm)


# --------------------------------------------------------------------------- update rules
#
# One rule per optimizer, for one array (JAX's example_libraries/optimizers.py style):
# ``rule(opt, lr, t, p, g, slots, out) -> (new_p, new_slots)`` for the step ``t`` (1-based),
# written in NumPy's out= idiom. ``out = (p_out, slots_out, scratch)``: ``p_out`` and each of
# ``slots_out`` may be the very arrays ``p`` and ``slots`` (an in-place step: ``funcnn.train``
# runs the rule once per minibatch on every parameter concatenated into one flat buffer);
# ``scratch`` is a separate array of p's shape. :func:`update` passes fresh arrays. Scalars
# are Python floats on purpose: NumPy keeps the array dtype for them, so float32 stays float32.
# Elementwise IEEE arithmetic rounds each element alike whatever the array, so one flat call
# gives the bits of one call per array.

def _sgd_rule(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
              slots: Tuple[np.ndarray, ...], out) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    p_out, slots_out, tmp = out
    if not slots:
        np.multiply(g, -lr, out=tmp)
        return np.add(p, tmp, out=p_out), ()
    (buf,), (new_buf,) = slots, slots_out
    mu = float(opt["momentum"])
    # A zero buffer makes the first step mu*0 + g == g exactly, torch's clone(grad).
    np.multiply(buf, mu, out=new_buf)
    new_buf += g
    if opt["nesterov"]:
        np.multiply(new_buf, mu, out=tmp)
        tmp += g
        tmp *= -lr
    else:
        np.multiply(new_buf, -lr, out=tmp)
    return np.add(p, tmp, out=p_out), (new_buf,)


def _rmsprop_rule(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
                  slots: Tuple[np.ndarray, ...], out) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    p_out, (new_sq,), tmp = out
    (sq,) = slots
    decay = float(opt["decay"])
    np.multiply(sq, decay, out=new_sq)
    np.multiply(g, 1.0 - decay, out=tmp)
    tmp *= g
    new_sq += tmp
    np.sqrt(new_sq, out=tmp)
    tmp += float(opt["eps"])
    np.divide(g, tmp, out=tmp)
    tmp *= -lr
    return np.add(p, tmp, out=p_out), (new_sq,)


def _adam_rule(opt: Optimizer, lr: float, t: int, p: np.ndarray, g: np.ndarray,
               slots: Tuple[np.ndarray, ...], out) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    p_out, (new_m, new_v), tmp = out
    m, v = slots
    b1, b2, eps = float(opt["beta1"]), float(opt["beta2"]), float(opt["eps"])
    wd = float(opt["weight_decay"])
    # b1 m + (1-b1) g (optax's and JAX's form; torch's lerp m + (1-b1)(g - m) is the same number
    # up to rounding and costs a three-array pass more), then b2 v + (1-b2) g**2.
    np.multiply(m, b1, out=new_m)
    np.multiply(g, 1.0 - b1, out=tmp)
    new_m += tmp
    np.square(g, out=tmp)
    tmp *= 1.0 - b2
    np.multiply(v, b2, out=new_v)
    new_v += tmp
    c1 = 1.0 - b1 ** t
    c2_sqrt = (1.0 - b2 ** t) ** 0.5
    # torch: m / (sqrt(v)/c2_sqrt + eps) * lr/c1, which equals
    # m / (sqrt(v) + eps*c2_sqrt) * (lr*c2_sqrt/c1): the same number, one pass fewer.
    np.sqrt(new_v, out=tmp)
    tmp += eps * c2_sqrt
    np.divide(new_m, tmp, out=tmp)
    tmp *= -(lr * c2_sqrt / c1)
    if wd:
        # AdamW decays the old parameters before adding the Adam step.
        np.multiply(p, 1.0 - lr * wd, out=p_out)
        p_out += tmp
        return p_out, (new_m, new_v)
    return np.add(p, tmp, out=p_out), (new_m, new_v)


OPTIMIZERS: Dict[str, Dict[str, Any]] = {
    "sgd": {
        "defaults": {"momentum": 0.0, "nesterov": False},
        "check": _check_sgd,
        # sgd keeps a velocity only when it uses one
        "slots": lambda opt: ("momentum",) if opt["momentum"] else (),
        "rule": _sgd_rule,
    },
    "rmsprop": {
        "defaults": {"decay": 0.9, "eps": 1e-8},
        "check": _check_rmsprop,
        "slots": lambda opt: ("square_avg",),
        "rule": _rmsprop_rule,
    },
    "adam": {
        "defaults": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
        "check": _check_adam,
        "slots": lambda opt: ("m", "v"),
        "rule": _adam_rule,
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
    allowed = set(OPTIMIZERS[optimizer]["defaults"]) | {"lr"} | set(OPTIONAL)
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
    """The state before the first update: ``{"step": 0, slot: {key: zeros_like(params[key])}}``.

    Args:
        optimizer: an optimizer dict.
        params: the params dict (only its trainable keys get slots).

    Returns:
        The state dict.

    Examples:
        >>> import numpy as np
        >>> state = init_state(adam(), {"W_0": np.ones((2, 2))})
        >>> state["step"], sorted(state)
        (0, ['m', 'step', 'v'])
    """
    validate(optimizer)
    _check_params(params)
    state: State = {"step": 0}
    for slot in slot_names(optimizer):
        if slot == "ema":  # the average starts at the initial params
            state[slot] = {key: p.copy() for key, p in params.items() if is_trainable_key(key)}
        else:
            state[slot] = {key: np.zeros_like(p) for key, p in params.items() if is_trainable_key(key)}
    if "micro" in scalar_names(optimizer):
        state["micro"] = 0
    if "plateau" in scalar_names(optimizer):
        state["plateau"] = schedules.init_plateau()
    return state


def slot_names(optimizer: Optimizer) -> Tuple[str, ...]:
    """The state's per-array slots, in the order the rule takes them (``("m", "v")`` for adam).

    A chain has its base optimizer's slots, then ``"acc"`` (accumulate_gradients) and ``"ema"`` (ema).
    """
    if optimizer["name"] != "chain":
        return tuple(OPTIMIZERS[optimizer["name"]]["slots"](optimizer))
    parts = _parts(optimizer)
    return slot_names(parts["base"]) + (("acc",) if parts["every"] > 1 else ()) + \
        (("ema",) if parts["ema"] is not None else ())


def scalar_names(optimizer: Optimizer) -> Tuple[str, ...]:
    """The state's entries besides ``"step"`` that are not per-array slots: ``"micro"`` (minibatches
    accumulated since the last update, with accumulate_gradients) and ``"plateau"`` (a
    reduce_on_plateau rate's state)."""
    parts = _parts(optimizer)
    return (("micro",) if parts["every"] > 1 else ()) + \
        (("plateau",) if schedules.is_plateau(parts["base"]["lr"]) else ())


def is_general(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` needs :func:`apply_step` (a chain, or a reduce_on_plateau rate) rather
    than the bare rule (:func:`apply_rule` after clipping)."""
    return optimizer["name"] == "chain" or schedules.is_plateau(optimizer["lr"])


def apply_rule(optimizer: Optimizer, step: int, p: np.ndarray, g: np.ndarray, slots: Tuple[np.ndarray, ...],
               out=None) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """The optimizer's rule for the update after ``step`` earlier ones, on one array (or one flat buffer).

    ``out = (p_out, slots_out, scratch)`` as the rules take it (in place when they are ``p`` and
    ``slots``); None allocates new arrays. Trusting: the caller validated the optimizer and
    the arrays. Run it under ``np.errstate(over="ignore", invalid="ignore")`` (update and train
    do): non-finite values are the caller's to report.
    """
    lr = optimizer["lr"]
    if type(lr) is not float:  # a schedule or a function of the step; a float was checked by validate()
        lr = schedules.resolve_lr(lr, step)  # once per step: a callable may count its calls
    if out is None:
        out = (np.empty_like(p), tuple(np.empty_like(p) for _ in slots), np.empty_like(p))
    return OPTIMIZERS[optimizer["name"]]["rule"](optimizer, lr, step + 1, p, g, slots, out)


def clip_factor(grads: Mapping[str, np.ndarray], clip_norm: Optional[float]) -> float:
    """The factor gradient clipping by global norm multiplies every gradient by (1.0 when off).

    ``norm = sqrt(sum of g**2 over every array of grads)``, summed in float64, array by array in
    sorted key order (so any dict order, and ``funcnn.train``'s flat buffer, give the same bits);
    the factor is ``min(1, clip_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_``.
    :func:`update` and ``funcnn.train`` both scale with ``g * factor`` (skipped when it is 1.0).
    A non-finite norm gives a non-finite factor (the step then diverges, and train reports it).
    """
    if clip_norm is None:
        return 1.0
    total = 0.0
    for key in sorted(grads):
        g = grads[key]
        total += float(np.add.reduce(np.square(g, dtype=np.float64), axis=None))
    norm = math.sqrt(total) if math.isfinite(total) else total
    return min(1.0, float(clip_norm) / (norm + 1e-6))


def update(optimizer: Optimizer, params: Params, grads: Params, state: State) -> Tuple[Params, State]:
    """One optimizer step: ``(new_params, new_state)``, with ``new_state["step"] = state["step"] + 1``.

    The learning rate is ``lr`` evaluated at ``state["step"]``. With ``clip_norm`` in the
    optimizer, every gradient is first multiplied by :func:`clip_factor`. No argument is modified.
    Params must be finite (NaN/inf are refused, key and position named). Non-finite
    gradients are not checked for (that would cost a pass over every array); they
    propagate into the parameters without warnings, and ``train`` reports the non-finite
    loss that produced them.

    Args:
        optimizer: an optimizer dict.
        params: the params dict.
        grads: gradients keyed like the trainable params (as :func:`funcnn.backward` returns them).
        state: the optimizer state (from :func:`init_state` or the previous update).

    Returns:
        ``(new_params, new_state)``; entries without a gradient (batch norm's running statistics)
        are carried over unchanged.

    Examples:
        >>> import numpy as np
        >>> opt = sgd(0.5)
        >>> params = {"W_0": np.array([1.0, 2.0])}
        >>> new, state = update(opt, params, {"W_0": np.array([1.0, -1.0])}, init_state(opt, params))
        >>> new["W_0"].tolist(), state["step"], params["W_0"].tolist()
        ([0.5, 2.5], 1, [1.0, 2.0])
    """
    validate(optimizer)
    _check_params(params)
    check_finite(params, "params")
    trainable = {k: p for k, p in params.items() if is_trainable_key(k)}
    _check_like(trainable, grads, "grads")
    step = check_state(optimizer, params, state)
    names = slot_names(optimizer)
    if is_general(optimizer):
        # apply_step works in place: on fresh copies here, on train's flat buffers there
        new_params = {k: p.copy() for k, p in params.items()}
        new_state = {k: ({key: a.copy() for key, a in v.items()} if k in names else
                         (dict(v) if isinstance(v, dict) else v)) for k, v in state.items()}
        with np.errstate(over="ignore", invalid="ignore"):
            apply_step(optimizer, new_state, {k: new_params[k] for k in trainable}, grads)
        return new_params, new_state
    new_params: Params = dict(params)  # a layer's running state is carried over as it is
    new_slots: Dict[str, Params] = {slot: {} for slot in names}
    with np.errstate(over="ignore", invalid="ignore"):
        factor = clip_factor(grads, optimizer.get("clip_norm"))
        for key, p in trainable.items():
            g = grads[key] if factor == 1.0 else np.multiply(grads[key], factor)
            new_p, new_arrays = apply_rule(optimizer, step, p, g, tuple(state[slot][key] for slot in names))
            new_params[key] = new_p
            for slot, arr in zip(names, new_arrays):
                new_slots[slot][key] = arr
    return new_params, {"step": step + 1, **new_slots}


# --------------------------------------------------------------------------- transforms (optax's chain, as data)
#
# ``chain([...])`` is a dict holding a list of transform dicts around exactly one base optimizer
# (sgd, rmsprop or adam), in optax's manner but as data (JSON, checkpointable):
#
#     chain([clip_by_global_norm(1.0), adam(1e-3), add_decayed_weights(1e-2, mask="W*")])
#
# One update (:func:`apply_step`), in this order whatever the list order (each kind has one place):
#
# 1. ``accumulate_gradients(k)`` (optax's MultiSteps): the gradients are summed over k calls; the
#    k-th call goes on with their mean ``acc / k``, the others stop here (no step is counted);
# 2. ``clip_by_global_norm(c)``: gradients times :func:`clip_factor` (over the keys not frozen);
# 3. ``add_decayed_weights(wd, mask)``: the keys the mask matches are multiplied by ``1 - lr * wd``
#    (decoupled decay, torch.optim.AdamW's first line, with the base's rate of this step);
# 4. the base optimizer's rule, on every key not frozen;
# 5. ``freeze(mask)``: matching keys keep their params and slots (no transform touches them);
# 6. ``ema(decay)``: ``ema = decay * ema + (1 - decay) * params`` after the step (state["ema"], which
#    starts at the initial params); :func:`averaged_params` gives the params with it.
#
# A mask is None (every trainable key), an fnmatch pattern or a list of them, matched against the
# params keys: "W*" (every weight matrix and kernel: W_0, W_2.body.0, Wq_3), "*.body.*" (inside
# residual bodies), "b_*". A mask that matches no key is a ValueError (a typo would do nothing).

TRANSFORMS: Dict[str, Dict[str, Any]] = {}


def _check_mask(mask: Any, where: str) -> Any:
    if mask is None:
        return None
    if isinstance(mask, str):
        return mask
    if isinstance(mask, (list, tuple)) and mask and all(isinstance(m, str) for m in mask):
        return list(mask)
    raise TypeError(f"{where}: mask must be None, an fnmatch pattern (str) or a non-empty list of them, got {mask!r}")


def mask_keys(mask: Any, keys: Sequence[str], where: str = "mask") -> List[str]:
    """The keys (in their order) that ``mask`` matches: all for None, else any of its fnmatch patterns."""
    if mask is None:
        return list(keys)
    patterns = [mask] if isinstance(mask, str) else list(mask)
    hit = [k for k in keys if any(fnmatch.fnmatchcase(k, pat) for pat in patterns)]
    if not hit:
        raise ValueError(f"{where} {mask!r} matches none of the params keys {list(keys)[:8]}"
                         + (" ..." if len(keys) > 8 else ""))
    return hit


def clip_by_global_norm(max_norm: float) -> Dict[str, Any]:
    """Scale every gradient by ``min(1, max_norm / (norm + 1e-6))`` (torch ``clip_grad_norm_``; :func:`clip_factor`)."""
    return {"name": "clip_by_global_norm",
            "max_norm": float(check_number(max_norm, "clip_by_global_norm: max_norm", low=0.0, low_open=True))}


def add_decayed_weights(weight_decay: float, mask: Any = None) -> Dict[str, Any]:
    """Decoupled weight decay on the keys ``mask`` matches: ``p *= 1 - lr * weight_decay`` before the step."""
    return {"name": "add_decayed_weights",
            "weight_decay": float(check_number(weight_decay, "add_decayed_weights: weight_decay", low=0.0)),
            "mask": _check_mask(mask, "add_decayed_weights")}


def freeze(mask: Any) -> Dict[str, Any]:
    """The keys ``mask`` matches are not trained: their params and optimizer slots stay as they are."""
    if mask is None:
        raise ValueError("freeze: mask=None would freeze every array; name the keys to freeze")
    return {"name": "freeze", "mask": _check_mask(mask, "freeze")}


def accumulate_gradients(every: int) -> Dict[str, Any]:
    """Update once every ``every`` calls with the mean of their gradients (optax ``MultiSteps``)."""
    return {"name": "accumulate_gradients",
            "every": check_number(every, "accumulate_gradients: every", low=1, integer=True)}


def ema(decay: float) -> Dict[str, Any]:
    """Keep ``ema = decay * ema + (1 - decay) * params`` after every step (``state["ema"]``)."""
    return {"name": "ema", "decay": float(check_number(decay, "ema: decay", low=0.0, high=1.0, high_open=True))}


TRANSFORMS.update({
    "clip_by_global_norm": {"make": clip_by_global_norm, "keys": ("max_norm",)},
    "add_decayed_weights": {"make": add_decayed_weights, "keys": ("weight_decay", "mask")},
    "freeze": {"make": freeze, "keys": ("mask",)},
    "accumulate_gradients": {"make": accumulate_gradients, "keys": ("every",)},
    "ema": {"make": ema, "keys": ("decay",)},
})
_ONCE = ("clip_by_global_norm", "accumulate_gradients", "ema")


def chain(transforms: Sequence[Any]) -> Optimizer:
    """An optimizer made of transforms around one base optimizer (see the section comment above)."""
    if not isinstance(transforms, (list, tuple)):
        raise TypeError(f"chain: transforms must be a list of dicts, got {type(transforms).__name__}")
    opt = {"name": "chain", "transforms": [dict(t) if isinstance(t, dict) else t for t in transforms]}
    _parts(opt)
    return opt


def _parts(optimizer: Optimizer) -> Dict[str, Any]:
    """A chain (or a plain optimizer) as ``{"base", "every", "clip", "decays", "freeze", "ema"}``; checked."""
    if optimizer.get("name") != "chain":
        return {"base": optimizer, "every": 1, "clip": optimizer.get("clip_norm"), "decays": [], "freeze": [],
                "ema": None}
    if set(optimizer) != {"name", "transforms"}:
        raise ValueError(f"chain: expected exactly the keys ['name', 'transforms'], got {sorted(optimizer, key=str)}")
    items = optimizer["transforms"]
    if not isinstance(items, list):
        raise TypeError(f"chain: 'transforms' must be a list, got {type(items).__name__}")
    parts: Dict[str, Any] = {"base": None, "every": 1, "clip": None, "decays": [], "freeze": [], "ema": None}
    seen: List[str] = []
    for i, t in enumerate(items):
        where = f"chain transform {i}"
        if not isinstance(t, dict):
            raise TypeError(f"{where}: must be a dict, got {type(t).__name__}")
        name = t.get("name")
        if name in OPTIMIZERS:
            if parts["base"] is not None:
                raise ValueError(f"{where}: a second optimizer ({name!r}); a chain has exactly one of {sorted(OPTIMIZERS)}")
            try:
                parts["base"] = validate(t)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{where}: {exc}") from None
            if t.get("clip_norm") is not None:
                raise ValueError(f"{where}: clip_norm inside a chain; use clip_by_global_norm in the chain instead")
            continue
        if name not in TRANSFORMS:
            raise ValueError(f"{where}: unknown name {name!r}; expected an optimizer {sorted(OPTIMIZERS)} or a "
                             f"transform {sorted(TRANSFORMS)}")
        entry = TRANSFORMS[name]
        if set(t) - {"name"} != set(entry["keys"]):
            raise ValueError(f"{where} ({name}): expected exactly the keys {sorted(entry['keys'])} besides 'name', "
                             f"got {sorted(set(t) - {'name'}, key=str)}")
        if name in _ONCE and name in seen:
            raise ValueError(f"{where}: {name} appears twice")
        seen.append(name)
        try:
            entry["make"](**{k: t[k] for k in entry["keys"]})
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if name == "accumulate_gradients":
            parts["every"] = int(t["every"])
        elif name == "clip_by_global_norm":
            parts["clip"] = float(t["max_norm"])
        elif name == "add_decayed_weights":
            parts["decays"].append((float(t["weight_decay"]), t["mask"]))
        elif name == "freeze":
            parts["freeze"].append(t["mask"])
        else:
            parts["ema"] = float(t["decay"])
    if parts["base"] is None:
        raise ValueError(f"chain: no optimizer among the transforms; add one of {sorted(OPTIMIZERS)}")
    if parts["decays"] and parts["base"].get("weight_decay"):
        raise ValueError("chain: both adam(weight_decay=...) and add_decayed_weights; keep one (the transform "
                         "takes a mask)")
    return parts


def base_of(optimizer: Optimizer) -> Optimizer:
    """The base optimizer (sgd, rmsprop or adam dict) of a chain; a plain optimizer itself."""
    return _parts(optimizer)["base"]


def current_lr(optimizer: Optimizer, state: State) -> float:
    """The learning rate of the next update: the base's ``lr`` at ``state["step"]`` (times a plateau's scale)."""
    base = _parts(optimizer)["base"]
    step = schedules.check_step(state["step"], "state['step']")
    if schedules.is_plateau(base["lr"]):
        return schedules.plateau_lr(base["lr"], step, schedules.check_plateau_state(state["plateau"]))
    return schedules.resolve_lr(base["lr"], step)


def observe(optimizer: Optimizer, state: State, value: Any) -> State:
    """The state after one monitored ``value`` (a new dict; ``state`` is not modified).

    Feeds a reduce_on_plateau rate (``state["plateau"]``, :func:`funcnn.schedules.observe_plateau`);
    ``funcnn.train`` calls it once per epoch with ``history[monitor][-1]``, after validation. A
    hand-written loop does the same: ``state = observe(opt, state, val_loss)``. Without a plateau
    rate the state is returned as it is.
    """
    base = _parts(validate(optimizer))["base"]
    if not schedules.is_plateau(base["lr"]):
        return state
    plateau = schedules.check_plateau_state(state.get("plateau") if isinstance(state, dict) else None)
    return {**state, "plateau": schedules.observe_plateau(base["lr"], plateau, value, state["step"])}


def averaged_params(optimizer: Optimizer, params: Params, state: State) -> Params:
    """``params`` with every trainable array replaced by its exponential moving average (``state["ema"]``)."""
    if _parts(validate(optimizer))["ema"] is None:
        raise ValueError("averaged_params needs an optimizer with an ema transform: chain([..., ema(0.999)])")
    check_state(optimizer, params, state)
    return {k: (state["ema"][k].copy() if k in state["ema"] else p) for k, p in params.items()}


def apply_step(optimizer: Optimizer, state: State, params: Params, grads: Params,
               flat: Optional[Dict[str, Any]] = None) -> bool:
    """One update of a chain (or of a reduce_on_plateau optimizer) IN PLACE: ``params`` (the trainable
    arrays), the slot arrays and the scalars of ``state`` are overwritten; ``grads`` is read only,
    unless ``flat`` is given. Returns whether a step was made (False while gradients accumulate).

    ``flat`` (``funcnn.train``'s buffers): ``{"P", "G", "T", "slots": {name: flat array}}``, every
    array of ``params``, ``grads`` and the state's slots a view into them; the rule, accumulation,
    clipping and the average then run on the flat arrays (elementwise: the same bits as per key).
    :func:`update` calls this on fresh copies. Trusting: the caller validated everything.
    """
    parts = _parts(optimizer)
    base, keys = parts["base"], list(params)
    names = slot_names(base)
    frozen = set()
    for mask in parts["freeze"]:
        frozen.update(mask_keys(mask, keys, "freeze: mask"))
    every = parts["every"]
    if every > 1:
        if flat is not None:
            acc = flat["slots"]["acc"]
            acc += flat["G"]
        else:
            for k in keys:
                state["acc"][k] += grads[k]
        state["micro"] += 1
        if state["micro"] < every:
            return False
        state["micro"] = 0
        if flat is not None:
            np.divide(acc, float(every), out=flat["G"])
            acc.fill(0)
        else:
            grads = {k: np.divide(state["acc"][k], float(every)) for k in keys}
            for k in keys:
                state["acc"][k].fill(0)
    live = [k for k in keys if k not in frozen]
    factor = clip_factor({k: grads[k] for k in live}, parts["clip"])
    if factor != 1.0:
        if flat is not None:
            flat["G"] *= factor
        else:
            grads = {k: np.multiply(g, factor) for k, g in grads.items()}
    step = state["step"]
    lr = current_lr(optimizer, state)
    rule_opt = {**base, "lr": lr}
    stash = {k: (params[k].copy(), [state[n][k].copy() for n in names]) for k in frozen} if flat is not None else {}
    for wd, mask in parts["decays"]:
        for k in mask_keys(mask, keys, "add_decayed_weights: mask"):
            if k not in frozen:
                np.multiply(params[k], 1.0 - lr * wd, out=params[k])
    if flat is not None:
        slots = tuple(flat["slots"][n] for n in names)
        apply_rule(rule_opt, step, flat["P"], flat["G"], slots, (flat["P"], slots, flat["T"]))
        for k, (p_old, s_old) in stash.items():  # frozen: as they were
            params[k][...] = p_old
            for n, a in zip(names, s_old):
                state[n][k][...] = a
    else:
        for k in live:
            slots = tuple(state[n][k] for n in names)
            apply_rule(rule_opt, step, params[k], grads[k], slots, (params[k], slots, np.empty_like(params[k])))
    if parts["ema"] is not None:
        d = parts["ema"]
        if flat is not None:
            avg = flat["slots"]["ema"]
            avg *= d
            np.multiply(flat["P"], 1.0 - d, out=flat["T"])
            avg += flat["T"]
        else:
            for k in keys:
                avg = state["ema"][k]
                avg *= d
                avg += np.multiply(params[k], 1.0 - d)
    state["step"] = step + 1
    return True
