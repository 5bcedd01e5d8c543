"""Layer types: a registry of plain functions, one small group per type.

A layer spec is a JSON-serialisable dict such as ``{"type": "dense", "units": 128}``.
Each entry of :data:`LAYERS` describes one type with four plain functions:

* ``check(layer, where) -> None`` validates the spec's keys and values;
* ``init(layer, n_in, rng, dtype, before_relu) -> (params, n_out)`` makes the
  layer's own arrays (``{"W": ..., "b": ...}`` for dense, ``{}`` otherwise);
* ``forward(layer, p, x, training, rng) -> (y, cache)``;
* ``backward(layer, p, cache, g, need_dx) -> (dx, grads)``, where ``g`` is
  d loss / d y and ``dx`` is d loss / d x (``None`` when ``need_dx`` is false).

Types that own parameters also have an entry in :data:`BACKWARD_INTO`:
``backward_into(layer, p, cache, g, need_dx, out) -> dx`` writes the gradients into the
arrays of the dict ``out`` (keyed like ``p``) instead of allocating them, with the same
bits as ``backward``; ``funcnn.train`` uses it with buffers it owns.

The network code loops over a spec and looks types up here; it never branches on
type names. Forward/backward functions never modify their arguments; they may
write into arrays they allocated themselves.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .validation import check_number

Layer = Dict[str, Any]
Params = Dict[str, np.ndarray]

RELU_FAMILY = frozenset({"relu", "leaky_relu"})


def _fail(where: str, msg: str, exc: type = ValueError) -> None:
    raise exc(f"{where}: {msg}")


def _check_keys(layer: Layer, where: str, allowed: frozenset) -> None:
    extra = sorted(set(layer) - allowed - {"type"})
    if extra:
        _fail(where, f"unknown key(s) {extra} for a {layer['type']!r} layer; allowed: {sorted(allowed)}")


# --- constructors: plain dicts --------------------------------------------------------

def dense(units: int, init: Optional[str] = None, std: Optional[float] = None) -> Layer:
    """``{"type": "dense", "units": units}``: ``y = x @ W + b``, W of shape (n_in, units)."""
    layer: Layer = {"type": "dense", "units": units}
    if init is not None:
        layer["init"] = init
    if std is not None:
        layer["std"] = std
    return layer


def relu() -> Layer:
    return {"type": "relu"}


def leaky_relu(alpha: float = 0.01) -> Layer:
    return {"type": "leaky_relu", "alpha": alpha}


def sigmoid() -> Layer:
    return {"type": "sigmoid"}


def tanh() -> Layer:
    return {"type": "tanh"}


def identity() -> Layer:
    return {"type": "identity"}


def softmax() -> Layer:
    return {"type": "softmax"}


def dropout(rate: float) -> Layer:
    return {"type": "dropout", "rate": rate}


# --- numerics shared with the losses --------------------------------------------------

def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|."""
    e = np.exp(-np.abs(x))
    out = 1.0 / (1.0 + e)
    # For x < 0, sigmoid(x) = e / (1 + e) = e * out: exact where 1 - out would cancel.
    np.multiply(out, e, out=out, where=x < 0)
    return out


def stable_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    z = x - x.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


# --- dense ----------------------------------------------------------------------------

INITS: Dict[str, Callable[[Layer, int, int, np.random.Generator], np.ndarray]] = {
    # Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
    "glorot": lambda layer, n_in, n_out, rng: rng.uniform(
        -np.sqrt(6.0 / (n_in + n_out)), np.sqrt(6.0 / (n_in + n_out)), size=(n_in, n_out)),
    # He/Kaiming normal: N(0, 2 / fan_in), the variance-preserving choice before a ReLU.
    "he": lambda layer, n_in, n_out, rng: rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out)),
    # Plain normal with a chosen std (default 0.01).
    "normal": lambda layer, n_in, n_out, rng: rng.normal(0.0, layer.get("std", 0.01), size=(n_in, n_out)),
}


def _dense_check(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset({"units", "init", "std"}))
    if "units" not in layer:
        _fail(where, "a dense layer needs 'units' (a positive int)")
    units = layer["units"]
    if isinstance(units, (bool, np.bool_)) or not isinstance(units, numbers.Integral):
        _fail(where, f"'units' must be a positive int, got {units!r}", TypeError)
    if units < 1:
        _fail(where, f"'units' must be a positive int, got {units!r}")
    init = layer.get("init")
    if init is not None and init not in INITS:
        _fail(where, f"unknown init {init!r}; known: {sorted(INITS)}")
    if "std" in layer:
        if layer.get("init") != "normal":
            _fail(where, "'std' applies only with init='normal'")
        std = layer["std"]
        if isinstance(std, bool) or not isinstance(std, numbers.Real) or not np.isfinite(std) or std <= 0:
            _fail(where, f"'std' must be a positive number, got {std!r}")


def _dense_init(layer: Layer, n_in: int, rng: np.random.Generator, dtype: np.dtype,
                before_relu: bool) -> Tuple[Params, int]:
    n_out = int(layer["units"])
    scheme = layer.get("init") or ("he" if before_relu else "glorot")
    # Draw in float64 and round, so float32 and float64 params from one seed agree.
    W = INITS[scheme](layer, n_in, n_out, rng).astype(dtype)
    return {"W": W, "b": np.zeros(n_out, dtype=dtype)}, n_out


def _dense_forward(layer, p, x, training, rng):
    y = x @ p["W"]
    y += p["b"]
    return y, x


def _dense_backward(layer, p, x, g, need_dx):
    grads = {"W": x.T @ g, "b": g.sum(axis=0)}
    return (g @ p["W"].T if need_dx else None), grads


def _dense_backward_into(layer, p, x, g, need_dx, out):
    # The same products as _dense_backward, written into the caller's buffers ``out``
    # (funcnn.train's preallocated gradient arrays): no allocation, the same bits.
    np.matmul(x.T, g, out=out["W"])
    np.add.reduce(g, axis=0, out=out["b"])  # what g.sum(axis=0) runs, without the wrappers
    return g @ p["W"].T if need_dx else None


# --- activations ----------------------------------------------------------------------

def _no_keys(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset())


def _no_params(layer, n_in, rng, dtype, before_relu):
    return {}, n_in


def _relu_forward(layer, p, x, training, rng):
    y = np.maximum(x, 0)
    return y, y


def _relu_backward(layer, p, y, g, need_dx):
    # d relu / dx = 1 where the output is positive (0 at x == 0, as in PyTorch).
    return g * (y > 0), {}


def _leaky_check(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset({"alpha"}))
    alpha = layer.get("alpha", 0.01)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha < 0:
        _fail(where, f"'alpha' must be a non-negative number, got {alpha!r}")


def _leaky_forward(layer, p, x, training, rng):
    slope = np.where(x > 0, 1, layer.get("alpha", 0.01)).astype(x.dtype)
    return x * slope, slope


def _leaky_backward(layer, p, slope, g, need_dx):
    return g * slope, {}


def _sigmoid_forward(layer, p, x, training, rng):
    y = stable_sigmoid(x)
    return y, y


def _sigmoid_backward(layer, p, y, g, need_dx):
    return g * y * (1 - y), {}


def _tanh_forward(layer, p, x, training, rng):
    y = np.tanh(x)
    return y, y


def _tanh_backward(layer, p, y, g, need_dx):
    return g * (1 - y * y), {}


def _identity_forward(layer, p, x, training, rng):
    return x, None


def _identity_backward(layer, p, cache, g, need_dx):
    return g, {}


def _softmax_forward(layer, p, x, training, rng):
    y = stable_softmax(x)
    return y, y


def _softmax_backward(layer, p, y, g, need_dx):
    # Jacobian-vector product of softmax: y * (g - <g, y>) row by row.
    return y * (g - (g * y).sum(axis=1, keepdims=True)), {}


# --- dropout --------------------------------------------------------------------------

def _dropout_check(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset({"rate"}))
    if "rate" not in layer:
        _fail(where, "a dropout layer needs 'rate' in [0, 1)")
    rate = layer["rate"]
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        _fail(where, f"'rate' must be a number in [0, 1), got {rate!r}", TypeError)
    if not (0 <= rate < 1):
        _fail(where, f"'rate' must be in [0, 1), got {rate!r}")


def _dropout_forward(layer, p, x, training, rng):
    rate = float(layer["rate"])
    if not training or rate == 0.0:
        return x, None
    # Inverted dropout: keep with probability 1 - rate and scale by 1 / (1 - rate),
    # so nothing changes at inference time.
    mask = rng.random(x.shape, dtype=x.dtype) >= rate
    scale = (mask * (1.0 / (1.0 - rate))).astype(x.dtype, copy=False)
    return x * scale, scale


def _dropout_backward(layer, p, scale, g, need_dx):
    return (g if scale is None else g * scale), {}


LAYERS: Dict[str, Dict[str, Callable]] = {
    "dense": {"check": _dense_check, "init": _dense_init,
              "forward": _dense_forward, "backward": _dense_backward},
    "relu": {"check": _no_keys, "init": _no_params,
             "forward": _relu_forward, "backward": _relu_backward},
    "leaky_relu": {"check": _leaky_check, "init": _no_params,
                   "forward": _leaky_forward, "backward": _leaky_backward},
    "sigmoid": {"check": _no_keys, "init": _no_params,
                "forward": _sigmoid_forward, "backward": _sigmoid_backward},
    "tanh": {"check": _no_keys, "init": _no_params,
             "forward": _tanh_forward, "backward": _tanh_backward},
    "identity": {"check": _no_keys, "init": _no_params,
                 "forward": _identity_forward, "backward": _identity_backward},
    "softmax": {"check": _no_keys, "init": _no_params,
                "forward": _softmax_forward, "backward": _softmax_backward},
    "dropout": {"check": _dropout_check, "init": _no_params,
                "forward": _dropout_forward, "backward": _dropout_backward},
}

# Layer types that own parameters, and the names of those parameters.
PARAM_NAMES: Dict[str, Tuple[str, ...]] = {"dense": ("W", "b")}

# Layer types that own parameters → their ``backward_into`` (see the module docstring).
BACKWARD_INTO: Dict[str, Callable] = {"dense": _dense_backward_into}


# --- in-place variants ----------------------------------------------------------------
#
# The same arithmetic as the plain functions (the same bits), overwriting an input that the
# caller knows to be a scratch array: nobody else holds it and no cache refers to it.
# ``forward_inplace(layer, p, x, training, rng)`` may overwrite ``x`` (the network uses it on
# the fresh output of a dense layer); ``backward_inplace(layer, p, cache, g, need_dx)`` may
# overwrite ``g`` (a gradient the network computed itself). Each saves an allocation and a
# trip through memory per layer and minibatch.

def _relu_forward_inplace(layer, p, x, training, rng):
    np.maximum(x, 0, out=x)
    return x, x


def _relu_backward_inplace(layer, p, y, g, need_dx):
    np.multiply(g, y > 0, out=g)
    return g, {}


def _leaky_forward_inplace(layer, p, x, training, rng):
    slope = np.where(x > 0, 1, layer.get("alpha", 0.01)).astype(x.dtype)
    x *= slope
    return x, slope


def _scale_backward_inplace(layer, p, scale, g, need_dx):  # leaky_relu's slope, dropout's mask
    if scale is not None:
        g *= scale
    return g, {}


def _tanh_forward_inplace(layer, p, x, training, rng):
    np.tanh(x, out=x)
    return x, x


def _tanh_backward_inplace(layer, p, y, g, need_dx):
    d = y * y
    np.subtract(1, d, out=d)
    g *= d
    return g, {}


def _sigmoid_backward_inplace(layer, p, y, g, need_dx):
    g *= y
    g *= 1 - y
    return g, {}


FORWARD_INPLACE: Dict[str, Callable] = {
    "relu": _relu_forward_inplace, "leaky_relu": _leaky_forward_inplace, "tanh": _tanh_forward_inplace,
}
BACKWARD_INPLACE: Dict[str, Callable] = {
    "relu": _relu_backward_inplace, "leaky_relu": _scale_backward_inplace, "tanh": _tanh_backward_inplace,
    "sigmoid": _sigmoid_backward_inplace, "dropout": _scale_backward_inplace,
}
# Layer types whose forward output is a new array that their cache does not hold.
FRESH_OUTPUT = frozenset({"dense"})


def check_spec(spec: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming the layer index and key if ``spec`` is not valid."""
    if not isinstance(spec, (list, tuple)):
        raise TypeError(f"spec must be a list of layer dicts, got {type(spec).__name__}")
    if len(spec) == 0:
        raise ValueError("spec is empty: a network needs at least one dense layer")
    for i, layer in enumerate(spec):
        where = f"spec[{i}]"
        if not isinstance(layer, dict):
            raise TypeError(f"{where}: each layer must be a dict, got {type(layer).__name__}")
        if "type" not in layer:
            raise ValueError(f"{where}: missing 'type'; known types: {sorted(LAYERS)}")
        kind = layer["type"]
        if not isinstance(kind, str) or kind not in LAYERS:
            raise ValueError(f"{where}: unknown layer type {kind!r}; known types: {sorted(LAYERS)}")
        LAYERS[kind]["check"](layer, f"{where} ({kind})")
    if not any(layer["type"] in PARAM_NAMES for layer in spec):
        raise ValueError("spec has no dense layer: a network needs at least one")


# Layer types that :func:`mlp` (and the command line) accept as the hidden activation.
ACTIVATIONS = tuple(sorted(set(LAYERS) - {"dense", "dropout", "softmax"}))


def mlp(hidden: Union[int, Sequence[int]] = (64,), activation: Union[str, Dict[str, Any]] = "relu",
              dropout: float = 0.0, n_outputs: int = 10) -> List[Dict[str, Any]]:
    """An MLP spec: ``dense(h), activation[, dropout]`` per hidden width, then ``dense(n_outputs)``.

    ``hidden`` is a width or a sequence of widths (``()`` gives a linear model);
    ``activation`` a layer type name (one of :data:`ACTIVATIONS`) or an activation layer
    dict such as ``{"type": "leaky_relu", "alpha": 0.1}``; a dropout layer with rate
    ``dropout`` follows each hidden activation when ``dropout > 0``. The output layer has no
    activation (the network outputs logits, as the losses expect).
    """
    if isinstance(hidden, (numbers.Integral, np.integer)) and not isinstance(hidden, (bool, np.bool_)):
        widths = [hidden]
    elif isinstance(hidden, (str, bytes, dict)) or not isinstance(hidden, Iterable):
        raise TypeError(f"hidden must be a width or a sequence of widths, got {hidden!r}")
    else:
        widths = list(hidden)
    for i, w in enumerate(widths):
        check_number(w, f"hidden[{i}]", low=1, integer=True)
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {list(ACTIVATIONS)}")
        act = {"type": activation}
    elif isinstance(activation, dict):
        if activation.get("type") not in ACTIVATIONS:
            raise ValueError(f"activation must be an activation layer, one of {list(ACTIVATIONS)}; "
                             f"got {activation!r}")
        act = dict(activation)
    else:
        raise TypeError(f"activation must be a layer type name or a layer dict, got {activation!r}")
    rate = float(check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True))
    n_outputs = check_number(n_outputs, "n_outputs", low=1, integer=True)
    spec: List[Dict[str, Any]] = []
    for w in widths:
        spec.append({"type": "dense", "units": int(w)})
        spec.append(dict(act))
        if rate > 0:
            spec.append({"type": "dropout", "rate": rate})
    spec.append({"type": "dense", "units": int(n_outputs)})
    check_spec(spec)
    return spec
