"""The network: a spec (list of layer dicts) plus a flat params dict, and pure functions on them.

A dense layer at position ``i`` of the spec owns ``params["W_{i}"]`` (n_in, n_out) and
``params["b_{i}"]`` (n_out,). Composition is a loop over the spec; what each layer does
lives in :data:`funcnn.layers.LAYERS`.

The public functions validate everything and then call the private ``_forward`` /
``_backward`` / ``_value_and_grad``, which trust their inputs; ``funcnn.train`` checks
its data once and calls the private ones in the hot loop.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import losses as _losses
from .validation import SeedLike, as_rng, check_dtype, check_number, check_X
from .layers import (BACKWARD_INPLACE, BACKWARD_INTO, FORWARD_INPLACE, FRESH_OUTPUT, LAYERS, PARAM_NAMES,
                     RELU_FAMILY, check_spec)

Spec = List[Dict[str, Any]]
Params = Dict[str, np.ndarray]
Cache = Dict[str, Any]


def _checked_X(X: Any, dtype: np.dtype, n_in: int, name: str = "X") -> np.ndarray:
    """``check_X(X, dtype, n_in, name)``, without its (n, d) boolean temporary for the usual case.

    An array that already has the right dtype and shape is finite exactly when its sum is
    (a NaN or an inf anywhere makes the sum NaN or inf), and the sum needs no n x d scratch.
    Anything else, including a sum that overflows, goes through ``check_X``, which gives
    the same array back and the same errors.
    """
    if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] > 0
            and X.shape[1] == n_in):
        with np.errstate(over="ignore", invalid="ignore"):
            if math.isfinite(np.add.reduce(X, axis=None)):
                return X
    return check_X(X, dtype, n_in, name=name)


def param_keys(spec: Spec) -> List[str]:
    """The keys a params dict for ``spec`` has, in layer order: ``["W_0", "b_0", ...]``."""
    return [f"{name}_{i}" for i, layer in enumerate(spec) for name in PARAM_NAMES.get(layer["type"], ())]


def _layer_params(spec: Spec, params: Params) -> List[Dict[str, np.ndarray]]:
    return [{name: params[f"{name}_{i}"] for name in PARAM_NAMES.get(layer["type"], ())}
            for i, layer in enumerate(spec)]


def check_params(spec: Spec, params: Any) -> Tuple[int, int, np.dtype]:
    """Check that ``params`` fits ``spec``; return ``(n_inputs, n_outputs, dtype)``.

    Assumes ``spec`` is valid (see :func:`funcnn.layers.check_spec`).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    expected = param_keys(spec)
    missing = [k for k in expected if k not in params]
    if missing:
        raise ValueError(f"params is missing key(s) {missing} required by the spec (expected keys {expected})")
    extra = sorted(set(params) - set(expected), key=str)
    if extra:
        raise ValueError(f"params has key(s) {extra} that the spec does not define (expected keys {expected})")
    dtype = None
    for k in expected:
        v = params[k]
        if not isinstance(v, np.ndarray):
            raise TypeError(f"params[{k!r}] must be a NumPy array, got {type(v).__name__}")
        if v.dtype not in (np.float32, np.float64):
            raise TypeError(f"params[{k!r}] must be float32 or float64, got {v.dtype}")
        if dtype is None:
            dtype = v.dtype
        elif v.dtype != dtype:
            raise TypeError(f"params[{k!r}] has dtype {v.dtype} but {expected[0]!r} has {dtype}: "
                            "all params must share one dtype")
    first = expected[0]
    if params[first].ndim != 2:
        raise ValueError(f"params[{first!r}] must be 2-D (n_in, n_out), got shape {params[first].shape}")
    n_inputs = n = params[first].shape[0]
    for i, layer in enumerate(spec):
        if layer["type"] != "dense":
            continue
        units = int(layer["units"])
        for key, shape in ((f"W_{i}", (n, units)), (f"b_{i}", (units,))):
            if params[key].shape != shape:
                raise ValueError(f"params[{key!r}] has shape {params[key].shape}, expected {shape} "
                                 f"for spec[{i}] (dense, {units} units, {n} inputs)")
        n = units
    return n_inputs, n, np.dtype(dtype)


def _next_activation(spec: Spec, i: int) -> Optional[str]:
    """The type of the first non-dropout layer after ``i`` (what a dense layer feeds)."""
    for layer in spec[i + 1:]:
        if layer["type"] != "dropout":
            return layer["type"]
    return None


def init_params(spec: Spec, n_inputs: int, *, seed: SeedLike = None, dtype: Any = np.float32) -> Params:
    """New params for ``spec`` on inputs of width ``n_inputs``: W by the layer's init, b = 0."""
    check_spec(spec)
    n = check_number(n_inputs, "n_inputs", low=1, integer=True)
    dt = check_dtype(dtype)
    rng = as_rng(seed)
    params: Params = {}
    for i, layer in enumerate(spec):
        before_relu = _next_activation(spec, i) in RELU_FAMILY
        own, n = LAYERS[layer["type"]]["init"](layer, n, rng, dt, before_relu)
        params.update({f"{name}_{i}": v for name, v in own.items()})
    return params


def _forward(spec: Spec, params: Params, X: np.ndarray, training: bool,
             rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, Cache]:
    x, caches = _forward_layers(spec, _layer_params(spec, params), X, training, rng)
    return x, {"layers": caches, "output_shape": x.shape}


def _forward_layers(spec: Spec, layer_params: List[Dict[str, np.ndarray]], X: np.ndarray, training: bool,
                    rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, List[Any]]:
    """The loop of :func:`_forward` on per-layer params (see :func:`_layer_params`): (output, caches)."""
    return _run_forward(_forward_plan(spec, layer_params), X, training, rng)


def _forward_plan(spec: Spec, layer_params: List[Dict[str, np.ndarray]]) -> List[Tuple[Any, ...]]:
    """The forward pass as a list of ``(function, layer, params)`` calls, resolved once.

    An activation that follows a dense layer runs in place (``FORWARD_INPLACE``): its input
    is the dense layer's fresh output, which nothing else holds.
    """
    plan = []
    scratch = False  # is the input of this layer an array nobody else holds?
    for layer, p in zip(spec, layer_params):
        kind = layer["type"]
        fn = FORWARD_INPLACE[kind] if scratch and kind in FORWARD_INPLACE else LAYERS[kind]["forward"]
        plan.append((fn, layer, p))
        scratch = kind in FRESH_OUTPUT
    return plan


def _run_forward(plan: List[Tuple[Any, ...]], X: np.ndarray, training: bool,
                 rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, List[Any]]:
    caches = []
    x = X
    for fn, layer, p in plan:
        x, c = fn(layer, p, x, training, rng)
        caches.append(c)
    return x, caches


def _first_with_params(spec: Spec) -> int:
    return min(i for i, layer in enumerate(spec) if layer["type"] in PARAM_NAMES)


def _backward(spec: Spec, params: Params, cache: Cache, grad_output: np.ndarray,
              scratch: bool = False) -> Params:
    """Gradients keyed like ``params``. ``scratch``: ``grad_output`` is the caller's own
    temporary (e.g. fresh from the loss) and may be overwritten."""
    grads: Params = {}
    layer_params = _layer_params(spec, params)
    first_with_params = _first_with_params(spec)
    g = grad_output
    for i in range(len(spec) - 1, first_with_params - 1, -1):
        layer = spec[i]
        kind = layer["type"]
        # No layer before the first dense one needs d loss / d input: skip that product.
        fn = BACKWARD_INPLACE[kind] if scratch and kind in BACKWARD_INPLACE else LAYERS[kind]["backward"]
        dx, own = fn(layer, layer_params[i], cache["layers"][i], g, i > first_with_params)
        scratch = scratch or dx is not g  # a new array is this function's own
        g = dx
        grads.update({f"{name}_{i}": v for name, v in own.items()})
    return {k: grads[k] for k in params}  # the params' key order


def _backward_into(spec: Spec, layer_params: List[Dict[str, np.ndarray]], caches: List[Any],
                   grad_output: np.ndarray, layer_grads: List[Dict[str, np.ndarray]]) -> None:
    """:func:`_backward` writing into the caller's buffers: ``layer_grads[i]`` (keyed like
    ``layer_params[i]``) receives the gradients of layer ``i``'s params, with the same bits.
    ``grad_output`` is overwritten (train passes the loss's fresh gradient)."""
    _run_backward(_backward_plan(spec, layer_params, layer_grads), caches, grad_output)


def _backward_plan(spec: Spec, layer_params: List[Dict[str, np.ndarray]],
                   layer_grads: List[Dict[str, np.ndarray]]) -> List[Tuple[Any, ...]]:
    """The backward pass of :func:`_backward_into` as ``(function, layer, params, index, need_dx,
    grads_out)`` calls, resolved once: from the last layer down to the first dense one, whose
    input needs no gradient. The gradient flowing back is always the network's own array,
    so the activations overwrite it (``BACKWARD_INPLACE``)."""
    first = _first_with_params(spec)
    plan = []
    for i in range(len(spec) - 1, first - 1, -1):
        layer = spec[i]
        kind = layer["type"]
        if layer_grads[i]:
            plan.append((BACKWARD_INTO[kind], layer, layer_params[i], i, i > first, layer_grads[i]))
        else:
            fn = BACKWARD_INPLACE.get(kind) or LAYERS[kind]["backward"]
            plan.append((fn, layer, layer_params[i], i, i > first, None))
    return plan


def _run_backward(plan: List[Tuple[Any, ...]], caches: List[Any], g: np.ndarray) -> None:
    for fn, layer, p, i, need_dx, out in plan:
        if out is None:
            g = fn(layer, p, caches[i], g, need_dx)[0]
        else:
            g = fn(layer, p, caches[i], g, need_dx, out)


def _check_training(training: Any) -> bool:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    return bool(training)


def forward(spec: Spec, params: Params, X: Any, *, training: bool = False,
            seed: SeedLike = None) -> Tuple[np.ndarray, Cache]:
    """Run the network: X (n, n_inputs) → (output (n, n_outputs), cache for :func:`backward`).

    ``training=True`` turns dropout on; its masks come from ``seed``.
    """
    check_spec(spec)
    n_in, _, dtype = check_params(spec, params)
    training = _check_training(training)
    X = _checked_X(X, dtype, n_in)
    rng = as_rng(seed) if training else None
    return _forward(spec, params, X, training, rng)


def backward(spec: Spec, params: Params, cache: Cache, grad_output: Any) -> Params:
    """Back-propagate ``grad_output`` = d loss / d output (n, n_outputs) → grads, keyed like params."""
    check_spec(spec)
    _, n_out, dtype = check_params(spec, params)
    if not isinstance(cache, dict) or "layers" not in cache or len(cache["layers"]) != len(spec):
        raise ValueError("cache must be the cache that forward() returned for this spec")
    g = np.asarray(grad_output)
    if g.shape != tuple(cache["output_shape"]):
        raise ValueError(f"grad_output has shape {g.shape}, expected {tuple(cache['output_shape'])} "
                         "(the forward output's shape)")
    if g.dtype != dtype:
        raise TypeError(f"grad_output has dtype {g.dtype}, expected {dtype} (the params' dtype)")
    return _backward(spec, params, cache, g)


def _l2_value(params: Params, l2: float) -> float:
    return 0.5 * l2 * sum(float(np.vdot(v, v)) for k, v in params.items() if k.startswith("W_"))


def _value_and_grad(spec: Spec, params: Params, X: np.ndarray, y: Any, loss_fn, l2: float,
                    sample_weight: Any, training: bool,
                    rng: Optional[np.random.Generator]) -> Tuple[float, Params]:
    output, cache = _forward(spec, params, X, training, rng)
    value, g = loss_fn(output, y, sample_weight)
    grads = _backward(spec, params, cache, g, scratch=True)  # g is the loss's own new array
    if l2:
        value += _l2_value(params, l2)
        for k in grads:
            if k.startswith("W_"):
                # grads[k] is this function's own array, so updating it in place is safe.
                grads[k] += l2 * params[k]
    return value, grads


def value_and_grad(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, l2: float = 0.0,
                   sample_weight: Any = None, training: bool = True,
                   seed: SeedLike = None) -> Tuple[float, Params]:
    """Loss value ``loss(forward(X), y) + l2/2 * sum ||W||^2`` and its gradient w.r.t. every param."""
    loss_fn = _losses.get(loss)
    check_spec(spec)
    n_in, _, dtype = check_params(spec, params)
    l2 = check_number(l2, "l2", low=0.0)
    training = _check_training(training)
    X = _checked_X(X, dtype, n_in)
    _check_length(y, X.shape[0])
    rng = as_rng(seed) if training else None
    return _value_and_grad(spec, params, X, y, loss_fn, l2, sample_weight, training, rng)


def _check_length(y: Any, n: int, name: str = "y") -> None:
    if not hasattr(y, "__len__"):
        raise TypeError(f"{name} must be array-like, got {type(y).__name__}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} rows but X has {n} samples")


def _output(spec: Spec, params: Params, X: Any, loss: str) -> np.ndarray:
    _losses.get(loss)
    check_spec(spec)
    n_in, n_out, dtype = check_params(spec, params)
    if loss == "binary_cross_entropy" and n_out != 1:
        raise ValueError(f"binary_cross_entropy needs a network with 1 output (a logit), this one has {n_out}")
    X = _checked_X(X, dtype, n_in)
    return _forward(spec, params, X, False, None)[0]


def predict_proba(spec: Spec, params: Params, X: Any, *, loss: str) -> np.ndarray:
    """Class probabilities (n, n_classes): softmax of the logits, or [1 - p, p] for binary."""
    if isinstance(loss, str) and loss in _losses.LOSSES and loss not in _losses.PROBA:
        raise ValueError(f"predict_proba needs a classification loss; {loss!r} is a regression loss, use predict")
    output = _output(spec, params, X, loss)
    return _losses.PROBA[loss](output)


def predict(spec: Spec, params: Params, X: Any, *, loss: str) -> np.ndarray:
    """Class labels (n,) for the cross-entropies; the outputs (n, k) for mean_squared_error."""
    output = _output(spec, params, X, loss)
    return _losses.DECISION[loss](output)
