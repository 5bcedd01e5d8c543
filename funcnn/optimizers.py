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

import inspect
import math
import numbers
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from .layers import is_trainable_key
from .validation import check_finite, check_number
from . import schedules
from .schedules import LearningRate

Optimizer = Dict[str, Any]
Params = Dict[str, np.ndarray]
State = Dict[str, Any]

__all__ = ["sgd", "rmsprop", "adam", "by_name", "validate", "init_state", "update", "OPTIMIZERS", "CONSTRUCTORS", "apply_rule", "slot_names", "check_state", "clip_factor", "OPTIONAL"]

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
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer name {name!r}; expected one of {sorted(OPTIMIZERS)}")
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
    slots = OPTIMIZERS[optimizer["name"]]["slots"](optimizer)
    state: State = {"step": 0}
    for slot in slots:
        state[slot] = {key: np.zeros_like(p) for key, p in params.items() if is_trainable_key(key)}
    return state


def slot_names(optimizer: Optimizer) -> Tuple[str, ...]:
    """The state's per-array slots, in the order the rule takes them (``("m", "v")`` for adam)."""
    return tuple(OPTIMIZERS[optimizer["name"]]["slots"](optimizer))


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
