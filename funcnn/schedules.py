"""Learning-rate schedules as data.

A schedule is a plain, JSON-serialisable dict such as
``{"name": "cosine", "lr": 0.1, "total_steps": 1000, "min_lr": 0.0}``; ``value(schedule,
step)`` evaluates it at ``step``, the number of optimizer updates already done (0 for the
first update). Nothing here keeps state: the step count lives in the optimizer state, so a
schedule can be saved in a checkpoint next to the spec and evaluated again after a resume.

Every schedule is also a formula of the step alone (the closed forms of the
``torch.optim.lr_scheduler`` classes counted in updates), so ``value`` is exact at any
step without replaying the ones before it.

Adding a schedule means adding a constructor (which validates its arguments), an entry in
``SCHEDULES`` (the formula) and one in ``_CONSTRUCTORS`` (used by ``validate`` to check
hand-written dicts with the same rules as the constructor).
"""
from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, Dict, Union

import numpy as np

from .validation import check_number

Schedule = Dict[str, Any]
LearningRate = Union[float, Schedule, Callable[[int], float]]

__all__ = ["constant", "step_decay", "exponential", "cosine", "warmup", "value", "validate",
           "resolve_lr", "SCHEDULES"]


# --------------------------------------------------------------------------- helpers

def _check_lr(lr: Any, name: str) -> float:
    # float() so that numpy scalars never end up in the dict: they would not survive
    # json.dumps, and a float64 scalar would upcast float32 arrays in the optimizers.
    return float(check_number(lr, name, low=0.0))


def check_step(step: Any, name: str = "step") -> int:
    """A non-negative integer step; a 0-d integer array (as read back from a file) is accepted."""
    if isinstance(step, np.ndarray) and step.ndim == 0 and np.issubdtype(step.dtype, np.integer):
        step = step.item()
    return check_number(step, name, low=0, integer=True)


# --------------------------------------------------------------------------- constructors

def constant(lr: float) -> Schedule:
    """``lr`` at every step."""
    return {"name": "constant", "lr": _check_lr(lr, "constant: lr")}


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """lr_t = lr * gamma ** (t // step_size)  (torch ``StepLR``, counted in updates).

    Examples:
        >>> s = step_decay(0.1, step_size=10, gamma=0.5)
        >>> value(s, 0), value(s, 10), value(s, 25)
        (0.1, 0.05, 0.025)
    """
    return {"name": "step_decay",
            "lr": _check_lr(lr, "step_decay: lr"),
            "step_size": check_number(step_size, "step_decay: step_size", low=1, integer=True),
            "gamma": float(check_number(gamma, "step_decay: gamma", low=0.0, high=1.0,
                                        low_open=True))}


def exponential(lr: float, gamma: float) -> Schedule:
    """lr_t = lr * gamma ** t  (torch ``ExponentialLR``, counted in updates).

    ``gamma`` must be in (0, 1]: this is a decay, and a growing rate would overflow.
    """
    return {"name": "exponential",
            "lr": _check_lr(lr, "exponential: lr"),
            "gamma": float(check_number(gamma, "exponential: gamma", low=0.0, high=1.0,
                                        low_open=True))}


def cosine(lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """lr_t = min_lr + (lr - min_lr) * (1 + cos(pi * min(t, T) / T)) / 2  (torch ``CosineAnnealingLR``).

    Unlike torch, the rate stays at ``min_lr`` after ``total_steps`` instead of rising again.

    Examples:
        >>> s = cosine(1.0, total_steps=10)
        >>> value(s, 0), round(value(s, 5), 6), value(s, 10), value(s, 50)
        (1.0, 0.5, 0.0, 0.0)
    """
    lr = _check_lr(lr, "cosine: lr")
    total_steps = check_number(total_steps, "cosine: total_steps", low=1, integer=True)
    min_lr = float(check_number(min_lr, "cosine: min_lr", low=0.0))
    if min_lr > lr:
        raise ValueError(f"cosine: min_lr must be <= lr, got min_lr={min_lr!r} > lr={lr!r}")
    return {"name": "cosine", "lr": lr, "total_steps": total_steps, "min_lr": min_lr}


def warmup(schedule_or_lr: Union[float, Schedule], warmup_steps: int) -> Schedule:
    """lr_t = inner(t) * min(1, (t + 1) / warmup_steps)  (linear warm-up, then ``inner``).

    ``schedule_or_lr`` is a number (a constant rate) or another schedule dict, which is
    evaluated at the same global step ``t`` (torch ``LinearLR(start_factor=1/w,
    total_iters=w-1)`` chained with the inner scheduler).

    Examples:
        >>> s = warmup(0.1, warmup_steps=4)
        >>> [round(value(s, t), 3) for t in range(6)]
        [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]
    """
    if isinstance(schedule_or_lr, dict):
        inner = validate(schedule_or_lr)
    elif isinstance(schedule_or_lr, numbers.Real) and not isinstance(schedule_or_lr, (bool, np.bool_)):
        inner = constant(schedule_or_lr)
    else:
        raise TypeError("warmup: schedule_or_lr must be a number or a schedule dict "
                        f"(callables cannot be stored as data), got {schedule_or_lr!r}")
    return {"name": "warmup", "schedule": inner,
            "warmup_steps": check_number(warmup_steps, "warmup: warmup_steps", low=1, integer=True)}


# --------------------------------------------------------------------------- formulas

def _constant(s: Schedule, step: int) -> float:
    return s["lr"]


def _step_decay(s: Schedule, step: int) -> float:
    return s["lr"] * s["gamma"] ** (step // s["step_size"])


def _exponential(s: Schedule, step: int) -> float:
    return s["lr"] * s["gamma"] ** step


def _cosine(s: Schedule, step: int) -> float:
    total = s["total_steps"]
    return s["min_lr"] + (s["lr"] - s["min_lr"]) * (1.0 + math.cos(math.pi * min(step, total) / total)) / 2.0


def _warmup(s: Schedule, step: int) -> float:
    inner = SCHEDULES[s["schedule"]["name"]](s["schedule"], step)
    n = s["warmup_steps"]
    return inner * (step + 1) / n if step < n else inner


SCHEDULES: Dict[str, Callable[[Schedule, int], float]] = {
    "constant": _constant,
    "step_decay": _step_decay,
    "exponential": _exponential,
    "cosine": _cosine,
    "warmup": _warmup,
}

_CONSTRUCTORS: Dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step_decay": step_decay,
    "exponential": exponential,
    "cosine": cosine,
    "warmup": lambda schedule, warmup_steps: warmup(schedule, warmup_steps),
}
# The dict keys of each schedule are its constructor's parameters (warmup stores its
# first argument under "schedule").
_KEYS = {name: tuple(inspect.signature(fn).parameters) for name, fn in _CONSTRUCTORS.items()}


# --------------------------------------------------------------------------- public

def validate(schedule: Any) -> Schedule:
    """Check a schedule dict (name, keys, values) and return it unchanged, else raise.

    Hand-written dicts get exactly the checks of the constructors: ``ValueError`` for an
    unknown name, a missing or unknown key or a bad value, ``TypeError`` for a wrong type.
    """
    if not isinstance(schedule, dict):
        raise TypeError(f"a schedule must be a dict, got {type(schedule).__name__}")
    name = schedule.get("name")
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"unknown schedule name {name!r}; expected one of {sorted(SCHEDULES)}")
    expected = set(_KEYS[name])
    given = set(schedule) - {"name"}
    if given != expected:
        problems = []
        if expected - given:
            problems.append(f"missing key(s) {sorted(expected - given)}")
        if given - expected:
            problems.append(f"unknown key(s) {sorted(given - expected, key=str)}")
        raise ValueError(f"schedule {name!r}: {' and '.join(problems)}; "
                         f"expected exactly {sorted(expected)} besides 'name'")
    _CONSTRUCTORS[name](**{k: schedule[k] for k in _KEYS[name]})  # raises on a bad value
    return schedule


def value(schedule: Schedule, step: int) -> float:
    """The learning rate of ``schedule`` for the update that follows ``step`` earlier ones."""
    validate(schedule)
    return float(SCHEDULES[schedule["name"]](schedule, check_step(step)))


def resolve_lr(lr: LearningRate, step: int) -> float:
    """The learning rate at ``step`` of a number, a schedule dict or a callable ``step -> lr``."""
    step = check_step(step)
    if isinstance(lr, dict):
        return value(lr, step)
    if callable(lr):
        got = lr(step)
        if isinstance(got, np.ndarray) and got.ndim == 0:
            got = got.item()
        return _check_lr(got, f"lr (the value returned by {getattr(lr, '__name__', lr)!s} at step {step})")
    if isinstance(lr, numbers.Real) and not isinstance(lr, (bool, np.bool_)):
        return _check_lr(lr, "lr")
    raise TypeError(f"lr must be a number, a schedule dict or a callable of the step, got {lr!r}")
