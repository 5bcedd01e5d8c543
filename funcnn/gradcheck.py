"""Numerical gradient checks: central finite differences against :func:`funcnn.value_and_grad`.

    numerical_gradient(f, x)[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

Checks need float64 params: in float32 the rounding error of ``f`` swamps the
difference quotient.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np

from . import losses as _losses
from .validation import check_number
from .network import Params, Spec, check_params, value_and_grad
from .layers import check_spec


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of scalar ``f`` at ``x`` (any shape); ``x`` is not modified.

    ``grad[i] = (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps)``, computed in float64.

    Args:
        f: a function of one array returning a number.
        x: the point, an array of any shape.
        eps: the step.

    Returns:
        A float64 array of ``x``'s shape.

    Examples:
        >>> import numpy as np
        >>> g = numerical_gradient(lambda v: float(np.sum(v ** 2)), np.array([1.0, -2.0]))
        >>> np.allclose(g, [2.0, -4.0])
        True
    """
    x = np.array(x, dtype=np.float64)  # a private copy to perturb
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        f_plus = f(x.copy())
        flat[i] = orig - eps
        f_minus = f(x.copy())
        flat[i] = orig
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a|| + ||b||, tiny)``: 0 for equal arrays, ~1 for unrelated ones.

    Examples:
        >>> import numpy as np
        >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
        0.0
    """
    denom = max(float(np.linalg.norm(a)) + float(np.linalg.norm(b)), 1e-300)
    return float(np.linalg.norm(a - b)) / denom


def gradient_errors(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, l2: float = 0.0,
                    sample_weight: Any = None, training: bool = True, seed: Optional[int] = 0,
                    eps: float = 1e-6, keys: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """Relative error between analytic and numerical gradients, per params key.

    The analytic gradient is :func:`funcnn.value_and_grad`'s; the numerical one is
    :func:`numerical_gradient` of its loss value, one key at a time.

    Args:
        spec: the network's layer specs.
        params: float64 params (in float32, rounding swamps the difference quotient).
        X: inputs.
        y: targets.
        loss: the loss name.
        l2: the L2 coefficient, as in ``value_and_grad``.
        sample_weight: optional weights ``(n,)``.
        training: training mode (dropout on, batch statistics).
        seed: an int (or None without dropout), so that every evaluation sees the same dropout masks.
        eps: the finite-difference step.
        keys: the params keys to check (default: every trainable key).

    Returns:
        ``{key: relative error}``; about 1e-9 or less for a correct gradient in float64.

    Raises:
        ValueError: params that are not float64, or keys that are not in params.
        TypeError: a ``np.random.Generator`` seed.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> spec = [F.dense(3), F.tanh(), F.dense(2)]
        >>> params = F.init_params(spec, n_inputs=4, seed=0, dtype=np.float64)
        >>> X, y = np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 1, 1, 0, 1])
        >>> errors = gradient_errors(spec, params, X, y, loss="softmax_cross_entropy")
        >>> sorted(errors), max(errors.values()) < 1e-7
        (['W_0', 'W_2', 'b_0', 'b_2'], True)
    """
    _losses.get(loss)
    check_spec(spec)
    _, _, dtype = check_params(spec, params)
    if dtype != np.float64:
        raise ValueError(f"gradient checks need float64 params, got {dtype}; "
                         "use init_params(..., dtype=np.float64)")
    if isinstance(seed, np.random.Generator):
        raise TypeError("gradient checks need an int seed: a Generator would give each evaluation new dropout masks")
    check_number(eps, "eps", low=0.0, low_open=True)
    _, analytic = value_and_grad(spec, params, X, y, loss=loss, l2=l2, sample_weight=sample_weight,
                                 training=training, seed=seed)
    selected = list(analytic) if keys is None else list(keys)
    unknown = [k for k in selected if k not in params]
    if unknown:
        raise ValueError(f"keys {unknown} are not in params (have {list(params)})")
    errors = {}
    for key in selected:
        def f(value: np.ndarray, key: str = key) -> float:
            return value_and_grad(spec, {**params, key: value}, X, y, loss=loss, l2=l2,
                                  sample_weight=sample_weight, training=training, seed=seed)[0]
        errors[key] = relative_error(analytic[key], numerical_gradient(f, params[key], eps))
    return errors


def check_gradients(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, **kwargs: Any) -> float:
    """The worst relative error over all params of :func:`gradient_errors` (same arguments).

    Returns:
        ``max(gradient_errors(...).values())``: what a test asserts is small (say < 1e-7).
    """
    return max(gradient_errors(spec, params, X, y, loss=loss, **kwargs).values())
