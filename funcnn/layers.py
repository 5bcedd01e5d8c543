"""Layer types: a registry of plain functions, one small group per type.

A layer spec is a JSON-serialisable dict such as ``{"type": "dense", "units": 128}``.
Each entry of :data:`LAYERS` describes one type with plain functions and a few facts:

* ``check(layer, where)`` validates the spec's keys and values;
* ``shape(layer, in_shape, where) -> (param_shapes, out_shape)``: the shapes of the
  layer's arrays and of its output, for one sample of shape ``in_shape`` (a tuple);
* ``init(layer, in_shape, rng, dtype, before_relu) -> params`` makes the layer's arrays;
* ``forward(layer, p, x, training, rng, out=None) -> (y, cache)``;
* ``backward(layer, p, cache, g, need_dx, out=None) -> (dx, grads)``, where ``g`` is
  d loss / d y, ``dx`` is d loss / d x (``None`` when ``need_dx`` is false) and ``grads``
  holds the gradients of the layer's trainable arrays;
* ``trainable``: the names of the arrays gradients move (``("W", "b")`` for dense);
* ``state``: the names of arrays the layer owns that no gradient moves (batch norm's
  ``running_mean``/``running_var``; each starts with :data:`STATE_PREFIX`). They live in
  params like the others (so checkpoints and ``predict`` have them), get no gradient, no
  optimizer slot and no weight decay; ``new_state(layer, p, cache) -> {name: array}``
  gives their values after a training-mode forward pass (see ``funcnn.network.new_state``);
* ``cache``: which of its arrays the forward's cache holds on to: ``"x"`` (its input),
  ``"y"`` (its output) or ``None`` (neither). The network decides from this alone which
  arrays a layer may overwrite (:func:`funcnn.network.forward_plan`);
* ``elementwise``: ``y`` has ``x``'s shape and ``forward`` may write it into ``out=x``.

**Buffers.** Every ``forward``/``backward`` computes its result once, in NumPy's ``out=``
idiom: with ``out=None`` it allocates (the pure use), given buffers it writes into them
and allocates nothing else of that size. ``out`` may be the input itself (``x`` for an
elementwise forward, ``g`` for ``backward``'s ``"dx"``) when the caller owns that array;
``backward``'s ``out`` is a dict that may hold ``"dx"`` and one buffer per trainable name.
The results are the same bits either way (tests/test_buffers.py checks every entry).
Functions never modify their arguments except those buffers.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .validation import check_number

Layer = Dict[str, Any]
Params = Dict[str, np.ndarray]
Shape = Tuple[int, ...]

RELU_FAMILY = frozenset({"relu", "leaky_relu"})

# Params keys of non-trainable arrays (a layer's ``state``) start with this.
STATE_PREFIX = "running_"


def is_trainable_key(key: str) -> bool:
    """Whether the params entry ``key`` is moved by gradients (not a layer's running state)."""
    return not key.startswith(STATE_PREFIX)


def _fail(where: str, msg: str, exc: type = ValueError) -> None:
    raise exc(f"{where}: {msg}")


def _check_keys(layer: Layer, where: str, allowed: frozenset) -> None:
    for key in layer:  # a loop, not set algebra: this runs on every call of every public function
        if key != "type" and key not in allowed:
            extra = sorted((k for k in layer if k != "type" and k not in allowed), key=str)
            _fail(where, f"unknown key(s) {extra} for a {layer['type']!r} layer; allowed: {sorted(allowed)}")


def _out(out: Optional[Dict[str, np.ndarray]], name: str) -> Optional[np.ndarray]:
    return None if out is None else out.get(name)


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

def stable_sigmoid(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|. ``out`` may be ``x``."""
    e = np.exp(-np.abs(x))
    neg = x < 0  # before out (possibly x) is written
    out = np.add(e, 1.0, out=out)
    np.divide(1.0, out, out=out)
    # For x < 0, sigmoid(x) = e / (1 + e) = e * out: exact where 1 - out would cancel.
    np.multiply(out, e, out=out, where=neg)
    return out


def stable_softmax(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp never overflows. ``out`` may be ``x``."""
    z = np.subtract(x, np.maximum.reduce(x, axis=1, keepdims=True), out=out)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=1, keepdims=True)
    return z


# --- dense ----------------------------------------------------------------------------

INITS: Dict[str, Callable[[Layer, int, int, Shape, np.random.Generator], np.ndarray]] = {
    # Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
    "glorot": lambda layer, fan_in, fan_out, shape, rng: rng.uniform(
        -np.sqrt(6.0 / (fan_in + fan_out)), np.sqrt(6.0 / (fan_in + fan_out)), size=shape),
    # He/Kaiming normal: N(0, 2 / fan_in), the variance-preserving choice before a ReLU.
    "he": lambda layer, fan_in, fan_out, shape, rng: rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape),
    # Plain normal with a chosen std (default 0.01).
    "normal": lambda layer, fan_in, fan_out, shape, rng: rng.normal(0.0, layer.get("std", 0.01), size=shape),
}


def check_init(layer: Layer, where: str) -> None:
    """The ``init``/``std`` keys of a layer that owns a weight array."""
    init = layer.get("init")
    if init is not None and init not in INITS:
        _fail(where, f"unknown init {init!r}; known: {sorted(INITS)}")
    if "std" in layer:
        if layer.get("init") != "normal":
            _fail(where, "'std' applies only with init='normal'")
        std = layer["std"]
        if isinstance(std, bool) or not isinstance(std, numbers.Real) or not np.isfinite(std) or std <= 0:
            _fail(where, f"'std' must be a positive number, got {std!r}")


def init_weight(layer: Layer, fan_in: int, fan_out: int, shape: Shape, rng: np.random.Generator,
                dtype: np.dtype, before_relu: bool) -> np.ndarray:
    """A weight array by the layer's ``init`` (default He before ReLU-family, else Glorot).

    Drawn in float64 and rounded, so float32 and float64 params from one seed agree.
    """
    scheme = layer.get("init") or ("he" if before_relu else "glorot")
    return INITS[scheme](layer, fan_in, fan_out, shape, rng).astype(dtype)


def check_positive_int(layer: Layer, key: str, where: str) -> int:
    if key not in layer:
        _fail(where, f"a {layer['type']} layer needs {key!r} (a positive int)")
    value = layer[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        _fail(where, f"{key!r} must be a positive int, got {value!r}", TypeError)
    if value < 1:
        _fail(where, f"{key!r} must be a positive int, got {value!r}")
    return int(value)


def _dense_check(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset({"units", "init", "std"}))
    check_positive_int(layer, "units", where)
    check_init(layer, where)


def _dense_shape(layer: Layer, in_shape: Shape, where: str):
    if len(in_shape) != 1:
        _fail(where, f"a dense layer takes flat inputs (n_samples, n_features), but its input has "
                     f"per-sample shape {tuple(in_shape)}; put a flatten layer before it")
    units = int(layer["units"])
    return {"W": (in_shape[0], units), "b": (units,)}, (units,)


def _dense_init(layer, in_shape, rng, dtype, before_relu):
    (W_shape, b_shape) = _dense_shape(layer, in_shape, "dense")[0].values()
    return {"W": init_weight(layer, W_shape[0], W_shape[1], W_shape, rng, dtype, before_relu),
            "b": np.zeros(b_shape, dtype=dtype)}


def _dense_forward(layer, p, x, training, rng, out=None):
    y = np.matmul(x, p["W"], out=out)
    y += p["b"]
    return y, x


def _dense_backward(layer, p, x, g, need_dx, out=None):
    grads = {"W": np.matmul(x.T, g, out=_out(out, "W")),
             "b": np.add.reduce(g, axis=0, out=_out(out, "b"))}  # g.sum(axis=0), minus the wrapper
    dx = np.matmul(g, p["W"].T, out=_out(out, "dx")) if need_dx else None
    return dx, grads


# --- activations ----------------------------------------------------------------------

def _no_keys(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset())


def _same_shape(layer, in_shape, where):
    return {}, tuple(in_shape)


def _no_params(layer, in_shape, rng, dtype, before_relu):
    return {}


def _relu_forward(layer, p, x, training, rng, out=None):
    y = np.maximum(x, 0, out=out)
    return y, y


def _relu_backward(layer, p, y, g, need_dx, out=None):
    # d relu / dx = 1 where the output is positive (0 at x == 0, as in PyTorch).
    return np.multiply(g, y > 0, out=_out(out, "dx")), {}


def _leaky_check(layer: Layer, where: str) -> None:
    _check_keys(layer, where, frozenset({"alpha"}))
    alpha = layer.get("alpha", 0.01)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha < 0:
        _fail(where, f"'alpha' must be a non-negative number, got {alpha!r}")


def _leaky_forward(layer, p, x, training, rng, out=None):
    slope = np.where(x > 0, 1, layer.get("alpha", 0.01)).astype(x.dtype)  # before out (maybe x) is written
    return np.multiply(x, slope, out=out), slope


def _scale_backward(layer, p, scale, g, need_dx, out=None):  # leaky_relu's slope, dropout's mask
    if scale is None:
        return g, {}
    return np.multiply(g, scale, out=_out(out, "dx")), {}


def _sigmoid_forward(layer, p, x, training, rng, out=None):
    y = stable_sigmoid(x, out=out)
    return y, y


def _sigmoid_backward(layer, p, y, g, need_dx, out=None):
    dx = np.multiply(g, y, out=_out(out, "dx"))
    dx *= 1 - y
    return dx, {}


def _tanh_forward(layer, p, x, training, rng, out=None):
    y = np.tanh(x, out=out)
    return y, y


def _tanh_backward(layer, p, y, g, need_dx, out=None):
    d = y * y
    np.subtract(1, d, out=d)
    return np.multiply(g, d, out=_out(out, "dx")), {}


def _identity_forward(layer, p, x, training, rng, out=None):
    return x, None


def _identity_backward(layer, p, cache, g, need_dx, out=None):
    return g, {}


def _softmax_forward(layer, p, x, training, rng, out=None):
    y = stable_softmax(x, out=out)
    return y, y


def _softmax_backward(layer, p, y, g, need_dx, out=None):
    # Jacobian-vector product of softmax: y * (g - <g, y>) row by row.
    dot = np.add.reduce(g * y, axis=1, keepdims=True)
    dx = np.subtract(g, dot, out=_out(out, "dx"))
    dx *= y
    return dx, {}


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


def _dropout_forward(layer, p, x, training, rng, out=None):
    rate = float(layer["rate"])
    if not training or rate == 0.0:
        return x, None
    # Inverted dropout: keep with probability 1 - rate and scale by 1 / (1 - rate), so
    # nothing changes at inference time. The mask is drawn in x's shape and dtype from rng.
    mask = rng.random(x.shape, dtype=x.dtype) >= rate
    scale = (mask * (1.0 / (1.0 - rate))).astype(x.dtype, copy=False)
    return np.multiply(x, scale, out=out), scale


def _entry(check, shape, init, forward, backward, *, trainable=(), state=(), new_state=None, cache=None,
           elementwise=False, activation=False) -> Dict[str, Any]:
    assert all(name.startswith(STATE_PREFIX) for name in state)
    return {"check": check, "shape": shape, "init": init, "forward": forward, "backward": backward,
            "trainable": tuple(trainable), "state": tuple(state), "new_state": new_state, "cache": cache,
            "elementwise": elementwise, "activation": activation}


LAYERS: Dict[str, Dict[str, Any]] = {
    "dense": _entry(_dense_check, _dense_shape, _dense_init, _dense_forward, _dense_backward,
                    trainable=("W", "b"), cache="x"),
    "relu": _entry(_no_keys, _same_shape, _no_params, _relu_forward, _relu_backward,
                   cache="y", elementwise=True, activation=True),
    "leaky_relu": _entry(_leaky_check, _same_shape, _no_params, _leaky_forward, _scale_backward,
                         elementwise=True, activation=True),
    "sigmoid": _entry(_no_keys, _same_shape, _no_params, _sigmoid_forward, _sigmoid_backward,
                      cache="y", elementwise=True, activation=True),
    "tanh": _entry(_no_keys, _same_shape, _no_params, _tanh_forward, _tanh_backward,
                   cache="y", elementwise=True, activation=True),
    "identity": _entry(_no_keys, _same_shape, _no_params, _identity_forward, _identity_backward,
                       elementwise=True, activation=True),
    "softmax": _entry(_no_keys, _same_shape, _no_params, _softmax_forward, _softmax_backward,
                      cache="y", elementwise=True),
    "dropout": _entry(_dropout_check, _same_shape, _no_params, _dropout_forward, _scale_backward,
                      elementwise=True),
}


def check_spec(spec: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming the layer index and key if ``spec`` is not valid."""
    if not isinstance(spec, (list, tuple)):
        raise TypeError(f"spec must be a list of layer dicts, got {type(spec).__name__}")
    if len(spec) == 0:
        raise ValueError("spec is empty: a network needs at least one layer with parameters")
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
    if not any(LAYERS[layer["type"]]["trainable"] for layer in spec):
        raise ValueError("spec has no dense layer (no layer with parameters): a network needs at least one")


# Layer types that :func:`mlp` (and the command line) accept as the hidden activation.
ACTIVATIONS = tuple(sorted(kind for kind, entry in LAYERS.items() if entry["activation"]))


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
