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
* ``elementwise``: ``y`` has ``x``'s shape and ``forward`` may write it into ``out=x``;
* ``macs(layer, in_shape, out_shape) -> int``: multiply-adds per sample (0 by default, for
  elementwise and reshaping layers); ``scratch(layer, in_shape, out_shape) -> int``: elements per
  sample the layer allocates besides its output (a convolution's padded input and im2col
  columns). :mod:`funcnn.footprint` sums them into ``funcnn.summary`` and the memory budget;
* ``by_parts``: the layer runs per part of the samples (:mod:`funcnn.parallel`): on threads
  inside ``parallel.workers()``, which ``train``, inference and the public forward/backward
  functions enter for networks with such a layer (:func:`funcnn.network.uses_parts`); the same
  bits either way.

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

from . import conv as _conv
from .parallel import map_large
from . import sequence as _seq
from .validation import check_number

Layer = Dict[str, Any]
Params = Dict[str, np.ndarray]
Shape = Tuple[int, ...]

# Activations before which a weight layer gets He init by default (Glorot otherwise): ReLU and
# its smooth or leaky variants, which pass positive inputs through.
RELU_FAMILY = frozenset({"relu", "leaky_relu", "elu", "gelu", "softplus"})

# Params keys of non-trainable arrays (a layer's ``state``) start with this.
STATE_PREFIX = "running_"


def is_trainable_key(key: str) -> bool:
    """Whether the params entry ``key`` is moved by gradients (not a layer's running state)."""
    return not key.startswith(STATE_PREFIX)


def _fail(where: str, msg: str, exc: type = ValueError) -> None:
    raise exc(f"{where}: {msg}")


def check_keys(layer: Layer, where: str, allowed: frozenset) -> None:
    for key in layer:  # a loop, not set algebra: this runs on every call of every public function
        if key != "type" and key not in allowed:
            extra = sorted((k for k in layer if k != "type" and k not in allowed), key=str)
            _fail(where, f"unknown key(s) {extra} for a {layer['type']!r} layer; allowed: {sorted(allowed)}")


def out_buffer(out: Optional[Dict[str, np.ndarray]], name: str) -> Optional[np.ndarray]:
    """The buffer ``out[name]`` a caller gave a layer function, or None."""
    return None if out is None else out.get(name)


# --- constructors: plain dicts --------------------------------------------------------

def dense(units: int, init: Optional[str] = None, std: Optional[float] = None) -> Layer:
    """``{"type": "dense", "units": units}``: ``y = x @ W + b``, W of shape (n_in, units).

    Args:
        units: the output width.
        init: ``"glorot"``, ``"he"`` or ``"normal"``; None: He before a ReLU-family activation, else Glorot.
        std: the standard deviation of ``"normal"``.

    Examples:
        >>> dense(128)
        {'type': 'dense', 'units': 128}
    """
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


def gelu(approximate: str = "none") -> Layer:
    """GELU, ``x * Phi(x)``: exact (erf) by default, as torch; ``approximate="tanh"`` for the tanh form."""
    return {"type": "gelu"} if approximate == "none" else {"type": "gelu", "approximate": approximate}


def elu(alpha: float = 1.0) -> Layer:
    return {"type": "elu"} if alpha == 1.0 else {"type": "elu", "alpha": alpha}


def softplus() -> Layer:
    return {"type": "softplus"}


def reshape(shape: Sequence[int]) -> Layer:
    """``{"type": "reshape", "shape": [28, 28, 1]}``: each sample to ``shape`` (C order; one entry may be -1)."""
    return {"type": "reshape", "shape": [int(d) for d in shape]}


def flatten() -> Layer:
    """``{"type": "flatten"}``: each sample to a flat vector, in C order (NHWC → ``(n, h*w*c)``)."""
    return {"type": "flatten"}


def conv2d(filters: int, kernel: Union[int, Sequence[int]] = 3, stride: Union[int, Sequence[int]] = 1,
           padding: Union[str, int] = "valid", init: Optional[str] = None, std: Optional[float] = None) -> Layer:
    """``{"type": "conv2d", "filters": F, "kernel": k, "stride": 1, "padding": "valid"}`` (NHWC, W (kh, kw, c_in, F)).

    Args:
        filters: output channels F.
        kernel: k or ``[kh, kw]``.
        stride: s or ``[sh, sw]``.
        padding: ``"valid"``, ``"same"`` (JAX/TensorFlow SAME) or an int on all four sides.
        init: as for :func:`dense` (fan-in ``kh·kw·c_in``).
        std: the standard deviation of ``"normal"``.

    Examples:
        >>> conv2d(32, kernel=3, padding="same")
        {'type': 'conv2d', 'filters': 32, 'kernel': 3, 'stride': 1, 'padding': 'same'}
    """
    layer: Layer = {"type": "conv2d", "filters": filters, "kernel": _plain(kernel), "stride": _plain(stride),
                    "padding": padding}
    if init is not None:
        layer["init"] = init
    if std is not None:
        layer["std"] = std
    return layer


def max_pool(size: Union[int, Sequence[int]] = 2, stride: Union[int, Sequence[int], None] = None) -> Layer:
    """``{"type": "max_pool", "size": 2}`` (stride defaults to size; no padding; partial windows dropped)."""
    layer: Layer = {"type": "max_pool", "size": _plain(size)}
    if stride is not None:
        layer["stride"] = _plain(stride)
    return layer


def avg_pool(size: Union[int, Sequence[int]] = 2, stride: Union[int, Sequence[int], None] = None) -> Layer:
    """``{"type": "avg_pool", "size": 2}`` (stride defaults to size; no padding; partial windows dropped)."""
    layer: Layer = {"type": "avg_pool", "size": _plain(size)}
    if stride is not None:
        layer["stride"] = _plain(stride)
    return layer


def batch_norm(momentum: float = 0.9, eps: float = 1e-5) -> Layer:
    """``{"type": "batch_norm", "momentum": 0.9, "eps": 1e-5}``: over the last axis, with running statistics."""
    return {"type": "batch_norm", "momentum": momentum, "eps": eps}


def _plain(v: Any) -> Any:
    """An int, or a list of ints (JSON-friendly) for a pair given as a tuple."""
    return list(v) if isinstance(v, tuple) else v


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
    """Softmax over the last axis, shifted by its maximum so exp never overflows. ``out`` may be ``x``."""
    z = np.subtract(x, np.maximum.reduce(x, axis=-1, keepdims=True), out=out)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=-1, keepdims=True)
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
    check_keys(layer, where, frozenset({"units", "init", "std"}))
    check_positive_int(layer, "units", where)
    check_init(layer, where)


def _dense_shape(layer: Layer, in_shape: Shape, where: str):
    # on the last axis of any rank, as torch.nn.Linear: (n, T, d) -> (n, T, units)
    units = int(layer["units"])
    return {"W": (in_shape[-1], units), "b": (units,)}, tuple(in_shape[:-1]) + (units,)


def _dense_macs(layer, in_shape, out_shape) -> int:
    """Multiply-adds per sample: ``n_in * units`` per position (every leading axis of a sample)."""
    return int(np.prod(in_shape, dtype=np.int64)) * int(out_shape[-1])


def _dense_init(layer, in_shape, rng, dtype, before_relu):
    (W_shape, b_shape) = _dense_shape(layer, in_shape, "dense")[0].values()
    return {"W": init_weight(layer, W_shape[0], W_shape[1], W_shape, rng, dtype, before_relu),
            "b": np.zeros(b_shape, dtype=dtype)}


def _dense_forward(layer, p, x, training, rng, out=None):
    y = np.matmul(x, p["W"], out=out)
    y += p["b"]
    return y, x


def _dense_backward(layer, p, x, g, need_dx, out=None):
    if x.ndim > 2:  # leading axes are rows: 2-D views (no copy for contiguous arrays)
        x, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    else:
        g2 = g
    grads = {"W": np.matmul(x.T, g2, out=out_buffer(out, "W")),
             "b": np.add.reduce(g2, axis=0, out=out_buffer(out, "b"))}  # g.sum(axis=0), minus the wrapper
    dx = np.matmul(g, p["W"].T, out=out_buffer(out, "dx")) if need_dx else None
    return dx, grads


# --- activations ----------------------------------------------------------------------

def _no_keys(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset())


def _same_shape(layer, in_shape, where):
    return {}, tuple(in_shape)


def _no_params(layer, in_shape, rng, dtype, before_relu):
    return {}


# A read-only block of zeros per dtype for positive_part (allocating fresh zeros per call would
# cost page faults on large arrays; a block is reused, and bounded).
_ZERO_BLOCK = 1 << 16
_ZEROS: Dict[np.dtype, np.ndarray] = {}


def positive_part(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``max(x, 0)`` elementwise (NaN stays NaN), into ``out`` when given (which may be ``x``)."""
    # NumPy vectorises maximum's array-array loop, not the array-scalar one: against a reused
    # block of zeros it runs several times faster.
    if out is None:
        out = np.empty_like(x)
    if x.dtype.kind != "f" or not (x.flags.c_contiguous and out.flags.c_contiguous):
        return np.maximum(x, 0, out=out)
    zeros = _ZEROS.get(x.dtype)
    if zeros is None:
        zeros = np.zeros(_ZERO_BLOCK, x.dtype)
        zeros.flags.writeable = False
        _ZEROS[x.dtype] = zeros
    xf, of = x.reshape(-1), out.reshape(-1)
    for start in range(0, xf.shape[0], _ZERO_BLOCK):
        stop = min(start + _ZERO_BLOCK, xf.shape[0])
        np.maximum(xf[start:stop], zeros[:stop - start], out=of[start:stop])
    return out


def _relu_forward(layer, p, x, training, rng, out=None):
    # large batches (image layers) per part of the samples, on both cores inside parallel.workers()
    y = np.empty_like(x) if out is None else out
    map_large(lambda a, z: positive_part(x[a:z], out=y[a:z]), x)
    return y, y


def _relu_backward(layer, p, y, g, need_dx, out=None):
    # d relu / dx = 1 where the output is positive (0 at x == 0, as in PyTorch).
    dx = out_buffer(out, "dx")
    dx = np.empty_like(g) if dx is None else dx
    map_large(lambda a, z: np.multiply(g[a:z], y[a:z] > 0, out=dx[a:z]), g)
    return dx, {}


def _alpha_check(default: float) -> Callable[[Layer, str], None]:
    """The check of a layer whose one key is an optional non-negative ``alpha`` (leaky_relu, elu)."""
    def check(layer: Layer, where: str) -> None:
        check_keys(layer, where, frozenset({"alpha"}))
        alpha = layer.get("alpha", default)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha < 0:
            _fail(where, f"'alpha' must be a non-negative number, got {alpha!r}")
    return check


_leaky_check = _alpha_check(0.01)


def _leaky_forward(layer, p, x, training, rng, out=None):
    slope = np.where(x > 0, 1, layer.get("alpha", 0.01)).astype(x.dtype)  # before out (maybe x) is written
    return np.multiply(x, slope, out=out), slope


def _scale_backward(layer, p, scale, g, need_dx, out=None):  # leaky_relu's slope, dropout's mask
    if scale is None:
        return g, {}
    return np.multiply(g, scale, out=out_buffer(out, "dx")), {}


def _sigmoid_forward(layer, p, x, training, rng, out=None):
    y = stable_sigmoid(x, out=out)
    return y, y


def _sigmoid_backward(layer, p, y, g, need_dx, out=None):
    dx = np.multiply(g, y, out=out_buffer(out, "dx"))
    dx *= 1 - y
    return dx, {}


def _tanh_forward(layer, p, x, training, rng, out=None):
    y = np.tanh(x, out=out)
    return y, y


def _tanh_backward(layer, p, y, g, need_dx, out=None):
    d = y * y
    np.subtract(1, d, out=d)
    return np.multiply(g, d, out=out_buffer(out, "dx")), {}


def _identity_forward(layer, p, x, training, rng, out=None):
    return x, None


def _identity_backward(layer, p, cache, g, need_dx, out=None):
    return g, {}


def _softmax_forward(layer, p, x, training, rng, out=None):
    y = stable_softmax(x, out=out)
    return y, y


def _softmax_backward(layer, p, y, g, need_dx, out=None):
    # Jacobian-vector product of softmax: y * (g - <g, y>) along the last axis.
    dot = np.add.reduce(g * y, axis=-1, keepdims=True)
    dx = np.subtract(g, dot, out=out_buffer(out, "dx"))
    dx *= y
    return dx, {}


# --- dropout --------------------------------------------------------------------------

def _dropout_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"rate"}))
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


# --- more activations -----------------------------------------------------------------
#
# Each caches its derivative (a new array, so ``cache`` is None) and may therefore write its
# output into its input, like leaky_relu; the backward pass is ``g * derivative``.

GELU_FORMS = ("none", "tanh")


def choice_check(key: str, choices: Sequence[str], default: str) -> Callable[[Layer, str], None]:
    """The check of a layer whose one key is an optional ``key`` among ``choices`` (gelu, global_pool)."""
    def check(layer: Layer, where: str) -> None:
        check_keys(layer, where, frozenset({key}))
        value = layer.get(key, default)
        if value not in choices:
            _fail(where, f"{key!r} must be one of {list(choices)}, got {value!r}")
    return check


_gelu_check = choice_check("approximate", GELU_FORMS, "none")


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


def _gelu_forward(layer, p, x, training, rng, out=None):
    if layer.get("approximate", "none") == "tanh":
        # 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)  (torch's approximate="tanh")
        x2 = np.multiply(x, x)
        u = np.multiply(x2, 0.044715)
        u += 1.0
        u *= x
        u *= _SQRT_2_OVER_PI
        t = np.tanh(u, out=u)
        # derivative: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        x2 *= 3 * 0.044715
        x2 += 1.0
        x2 *= _SQRT_2_OVER_PI * 0.5
        x2 *= x
        sech2 = np.multiply(t, t)
        np.subtract(1.0, sech2, out=sech2)
        x2 *= sech2
        np.add(t, 1.0, out=sech2)
        sech2 *= 0.5            # 0.5 (1 + t): the "cdf"
        x2 += sech2
        y = np.multiply(x, sech2, out=out)
        return y, x2
    from scipy.special import erf  # scipy comes with scikit-learn
    cdf = np.multiply(x, float(1.0 / np.sqrt(2.0)))
    erf(cdf, out=cdf)
    cdf += 1.0
    cdf *= 0.5                  # Phi(x) = 0.5 (1 + erf(x / sqrt 2))
    d = np.multiply(x, x)
    d *= -0.5
    np.exp(d, out=d)
    d *= _INV_SQRT_2PI          # phi(x)
    d *= x
    d += cdf                    # d gelu / dx = Phi(x) + x phi(x)
    y = np.multiply(x, cdf, out=out)
    return y, d


_elu_check = _alpha_check(1.0)


def _elu_forward(layer, p, x, training, rng, out=None):
    alpha = float(layer.get("alpha", 1.0))
    neg = np.minimum(x, 0)
    slope = np.exp(neg)
    slope *= alpha
    np.copyto(slope, 1, where=x > 0)  # d elu / dx: 1 for x > 0, alpha exp(x) otherwise (before out is written)
    np.expm1(neg, out=neg)
    neg *= alpha
    y = positive_part(x, out=out)     # x for x > 0 (plus alpha expm1(0) = 0), alpha (e^x - 1) otherwise
    y += neg
    return y, slope


def _softplus_forward(layer, p, x, training, rng, out=None):
    # log(1 + e^x) = max(x, 0) + log1p(exp(-|x|)): exp never overflows. Its derivative is sigmoid(x).
    slope = stable_sigmoid(x)
    t = np.abs(x)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    y = positive_part(x, out=out)
    y += t
    return y, slope


# --- reshape, flatten -----------------------------------------------------------------

def _reshape_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"shape"}))
    shape = layer.get("shape")
    if not isinstance(shape, (list, tuple)) or len(shape) == 0:
        _fail(where, f"'shape' must be a non-empty list of positive ints (one may be -1), got {shape!r}",
              TypeError if "shape" in layer and not isinstance(shape, (list, tuple)) else ValueError)
    for d in shape:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            _fail(where, f"'shape' must hold ints, got {shape!r}", TypeError)
        if d < 1 and d != -1:
            _fail(where, f"'shape' entries must be positive (or one -1), got {shape!r}")
    if sum(1 for d in shape if d == -1) > 1:
        _fail(where, f"'shape' may have at most one -1, got {shape!r}")


def _reshape_target(layer: Layer, in_shape: Shape, where: str) -> Shape:
    size = int(np.prod(in_shape))
    shape = [int(d) for d in layer["shape"]]
    known = int(np.prod([d for d in shape if d != -1]))
    if -1 in shape:
        if size % known:
            _fail(where, f"cannot reshape samples of shape {tuple(in_shape)} ({size} values) to {layer['shape']}")
        shape[shape.index(-1)] = size // known
    elif known != size:
        _fail(where, f"cannot reshape samples of shape {tuple(in_shape)} ({size} values) to {tuple(shape)} "
                     f"({known} values)")
    return tuple(shape)


def _reshape_shape(layer, in_shape, where):
    return {}, _reshape_target(layer, in_shape, where)


def _flatten_shape(layer, in_shape, where):
    return {}, (int(np.prod(in_shape)),)


def _reshape_to(x: np.ndarray, shape: Shape, out: Optional[np.ndarray]) -> np.ndarray:
    y = x.reshape(shape)  # a view of x when x is contiguous
    if out is None:
        return y
    out[...] = y
    return out


def _reshape_forward(layer, p, x, training, rng, out=None):
    target = _reshape_target(layer, x.shape[1:], "reshape")
    return _reshape_to(x, (x.shape[0],) + target, out), x.shape


def _flatten_forward(layer, p, x, training, rng, out=None):
    return _reshape_to(x, (x.shape[0], -1), out), x.shape


def _unreshape_backward(layer, p, x_shape, g, need_dx, out=None):
    return _reshape_to(g, x_shape, out_buffer(out, "dx")), {}


# --- conv2d ---------------------------------------------------------------------------

def check_pair(layer: Layer, key: str, where: str, default: Any = None) -> Tuple[int, int]:
    """A positive int or a list of two of them, as ``(a, b)`` (``default`` when the key is absent)."""
    value = layer.get(key, default)
    if value is None:
        _fail(where, f"a {layer['type']} layer needs {key!r} (a positive int or [a, b])")
    items = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) for v in items):
        _fail(where, f"{key!r} must be a positive int or a list of two positive ints, got {value!r}",
              TypeError if len(items) == 2 else ValueError)
    if any(v < 1 for v in items):
        _fail(where, f"{key!r} must be a positive int or a list of two positive ints, got {value!r}")
    return int(items[0]), int(items[1])


def _conv_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"filters", "kernel", "stride", "padding", "init", "std"}))
    check_positive_int(layer, "filters", where)
    check_pair(layer, "kernel", where)
    check_pair(layer, "stride", where, 1)
    padding = layer.get("padding", "valid")
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            _fail(where, f"'padding' must be 'valid', 'same' or a non-negative int, got {padding!r}")
    elif isinstance(padding, (bool, np.bool_)) or not isinstance(padding, numbers.Integral):
        _fail(where, f"'padding' must be 'valid', 'same' or a non-negative int, got {padding!r}", TypeError)
    elif padding < 0:
        _fail(where, f"'padding' must be 'valid', 'same' or a non-negative int, got {padding!r}")
    check_init(layer, where)


def _image_shape(layer: Layer, in_shape: Shape, where: str) -> Shape:
    if len(in_shape) != 3:
        _fail(where, f"a {layer['type']} layer takes images (n_samples, height, width, channels), but its input "
                     f"has per-sample shape {tuple(in_shape)}; put a reshape layer before it, e.g. "
                     '{"type": "reshape", "shape": [28, 28, 1]}')
    return tuple(in_shape)


def _conv_geometry(layer: Layer, in_shape: Shape):
    kernel = check_pair(layer, "kernel", "conv2d")
    stride = check_pair(layer, "stride", "conv2d", 1)
    (ho, wo), pads = _conv.conv_geometry(in_shape[:2], kernel, stride, layer.get("padding", "valid"))
    return kernel, stride, pads, (ho, wo)


def _conv_shape(layer, in_shape, where):
    h, w, c = _image_shape(layer, in_shape, where)
    kernel, stride, pads, (ho, wo) = _conv_geometry(layer, in_shape)
    if ho < 1 or wo < 1:
        _fail(where, f"kernel {list(kernel)} does not fit inputs of {h}x{w} with padding {layer.get('padding', 'valid')!r}")
    padding = layer.get("padding", "valid")
    if not isinstance(padding, str) and padding > max(h, w):
        # PyTorch accepts any padding; beyond the image's own size most outputs see only zeros, and a
        # padding of thousands (a hostile file) asks for gigabytes per sample
        _fail(where, f"padding {padding} is larger than the {h}x{w} input itself: most outputs would see only "
                     f"zeros (a padded sample of {(h + 2 * padding) * (w + 2 * padding) * c} values); use at most "
                     f"{max(h, w)}")
    f = int(layer["filters"])
    return {"W": (kernel[0], kernel[1], c, f), "b": (f,)}, (ho, wo, f)


def _conv_macs(layer, in_shape, out_shape) -> int:
    """Multiply-adds per sample: ``ho * wo * filters * kh * kw * c_in``."""
    kernel = check_pair(layer, "kernel", "conv2d")
    return int(np.prod(out_shape, dtype=np.int64)) * kernel[0] * kernel[1] * int(in_shape[-1])


def _conv_scratch(layer, in_shape, out_shape) -> int:
    """Elements per sample besides the output: the padded input (when padded) and one sample's im2col columns."""
    h, w, c = in_shape
    kernel, _, ((t, b), (l, r)), (ho, wo) = _conv_geometry(layer, in_shape)
    padded = (h + t + b) * (w + l + r) * c if (t or b or l or r) else 0
    return padded + ho * wo * kernel[0] * kernel[1] * c


def _conv_init(layer, in_shape, rng, dtype, before_relu):
    own, _ = _conv_shape(layer, in_shape, "conv2d")
    kh, kw, c, f = own["W"]
    return {"W": init_weight(layer, kh * kw * c, kh * kw * f, own["W"], rng, dtype, before_relu),
            "b": np.zeros(own["b"], dtype=dtype)}


def _conv_forward(layer, p, x, training, rng, out=None):
    _, stride, pads, _ = _conv_geometry(layer, x.shape[1:])
    y, cols = _conv.conv2d_forward(x, p["W"], p["b"], stride, pads, keep_cols=training, out=out)
    # training: the im2col columns (a new array) for the backward pass; otherwise, or when they
    # would be too large to keep, x itself, from which the backward pass makes them again
    return y, (cols, x if cols is None else None, x.shape, stride, pads)


def _conv_backward(layer, p, cache, g, need_dx, out=None):
    cols, x, x_shape, stride, pads = cache
    dx, dW, db = _conv.conv2d_backward(cols, x, x_shape, p["W"], g, stride, pads, need_dx, out)
    return dx, {"W": dW, "b": db}


# --- pooling --------------------------------------------------------------------------

def _pool_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"size", "stride"}))
    check_pair(layer, "size", where)
    if "stride" in layer:
        check_pair(layer, "stride", where)


def _pool_params(layer: Layer) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    size = check_pair(layer, "size", layer["type"])
    return size, check_pair(layer, "stride", layer["type"], list(size))


def _pool_shape(layer, in_shape, where):
    h, w, c = _image_shape(layer, in_shape, where)
    size, stride = _pool_params(layer)
    ho, wo = _conv.pool_geometry((h, w), size, stride)
    if ho < 1 or wo < 1:
        _fail(where, f"pooling window {list(size)} does not fit inputs of {h}x{w}")
    return {}, (ho, wo, c)


def _max_pool_scratch(layer, in_shape, out_shape) -> int:
    """The argmax index per output element (counted as one element each)."""
    return int(np.prod(out_shape, dtype=np.int64))


def _max_pool_forward(layer, p, x, training, rng, out=None):
    size, stride = _pool_params(layer)
    y, which = _conv.max_pool_forward(x, size, stride, out=out)
    return y, (which, x.shape)


def _max_pool_backward(layer, p, cache, g, need_dx, out=None):
    which, x_shape = cache
    size, stride = _pool_params(layer)
    return _conv.max_pool_backward(which, g, x_shape, size, stride, out=out_buffer(out, "dx")), {}


def _avg_pool_forward(layer, p, x, training, rng, out=None):
    size, stride = _pool_params(layer)
    return _conv.avg_pool_forward(x, size, stride, out=out), x.shape


def _avg_pool_backward(layer, p, x_shape, g, need_dx, out=None):
    size, stride = _pool_params(layer)
    return _conv.avg_pool_backward(g, x_shape, size, stride, out=out_buffer(out, "dx")), {}


# --- batch norm -----------------------------------------------------------------------

def _bn_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"momentum", "eps"}))
    momentum = layer.get("momentum", 0.9)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        _fail(where, f"'momentum' must be a number in [0, 1], got {momentum!r}")
    eps = layer.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) or eps <= 0:
        _fail(where, f"'eps' must be a positive number, got {eps!r}")


def _bn_shape(layer, in_shape, where):
    c = (int(in_shape[-1]),)
    return {"gamma": c, "beta": c, "running_mean": c, "running_var": c}, tuple(in_shape)


def _bn_init(layer, in_shape, rng, dtype, before_relu):
    c = int(in_shape[-1])
    return {"gamma": np.ones(c, dtype=dtype), "beta": np.zeros(c, dtype=dtype),
            "running_mean": np.zeros(c, dtype=dtype), "running_var": np.ones(c, dtype=dtype)}


def _bn_forward(layer, p, x, training, rng, out=None):
    return _conv.batch_norm_forward(x, p["gamma"], p["beta"], float(layer.get("eps", 1e-5)), training,
                                    p["running_mean"], p["running_var"], out=out)


def _bn_backward(layer, p, cache, g, need_dx, out=None):
    dx, dgamma, dbeta = _conv.batch_norm_backward(cache, p["gamma"], g, out)
    return dx, {"gamma": dgamma, "beta": dbeta}


def _bn_new_state(layer, p, cache):
    if not cache["training"]:
        return {}
    momentum = float(layer.get("momentum", 0.9))
    return {"running_mean": _conv.batch_norm_running(p["running_mean"], cache["mean"], momentum),
            "running_var": _conv.batch_norm_running(p["running_var"], cache["var"], momentum)}


# --- global pooling -------------------------------------------------------------------

GLOBAL_POOL_MODES = ("mean", "max")


_global_pool_check = choice_check("mode", GLOBAL_POOL_MODES, "mean")


def _global_pool_shape(layer, in_shape, where):
    if len(in_shape) < 2:
        _fail(where, f"a global_pool layer reduces every axis but the first and the last, so its input needs "
                     f"per-sample rank 2 or more ((n, h, w, c) or (n, T, d)); got per-sample shape {tuple(in_shape)}")
    return {}, (int(in_shape[-1]),)


def _global_pool_forward(layer, p, x, training, rng, out=None):
    # (n, ..., c) -> (n, m, c): the m positions of a channel, reduced over axis 1
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    if layer.get("mode", "mean") == "mean":
        return np.mean(rows, axis=1, out=out), x.shape
    which = np.argmax(rows, axis=1)  # the first maximum gets the gradient, as max_pool
    y = np.take_along_axis(rows, which[:, None, :], axis=1)[:, 0, :]
    if out is not None:
        out[...] = y
        y = out
    return y, (x.shape, which)


def _global_pool_backward(layer, p, cache, g, need_dx, out=None):
    if layer.get("mode", "mean") == "mean":
        x_shape = cache
        m = int(np.prod(x_shape[1:-1]))
        dx = out_buffer(out, "dx")
        dx = np.empty(x_shape, dtype=g.dtype) if dx is None else dx
        np.multiply(g.reshape(g.shape[0], *([1] * (len(x_shape) - 2)), g.shape[1]), 1.0 / m,
                    out=dx, casting="same_kind")
        return dx, {}
    x_shape, which = cache
    dx = out_buffer(out, "dx")
    dx = np.zeros(x_shape, dtype=g.dtype) if dx is None else dx
    if out is not None:
        dx[...] = 0
    rows = dx.reshape(x_shape[0], -1, x_shape[-1])
    np.put_along_axis(rows, which[:, None, :], g[:, None, :], axis=1)
    return dx, {}


# --- sequences: embedding, positional, layer norm, attention ---------------------------
#
# The arithmetic lives in funcnn.sequence; these entries check specs, give shapes and init.

def embedding(vocab: int, dim: int) -> Layer:
    """``{"type": "embedding", "vocab": V, "dim": d}``: token ids (n, T) → rows of ``E`` (V, d), (n, T, d)."""
    return {"type": "embedding", "vocab": vocab, "dim": dim}


def positional(max_len: int) -> Layer:
    """``{"type": "positional", "max_len": L}``: ``x + P[:T]`` with a learned ``P`` (L, d)."""
    return {"type": "positional", "max_len": max_len}


def layer_norm(eps: float = 1e-5) -> Layer:
    """``{"type": "layer_norm", "eps": 1e-5}``: normalise the last axis, then ``* gamma + beta``."""
    return {"type": "layer_norm", "eps": eps}


def attention(heads: int, causal: bool = False) -> Layer:
    """``{"type": "attention", "heads": h, "causal": False}``: multi-head self-attention on (n, T, d)."""
    return {"type": "attention", "heads": heads, "causal": causal}


def _check_std(layer: Layer, where: str) -> None:
    if "std" in layer:
        std = layer["std"]
        if isinstance(std, bool) or not isinstance(std, numbers.Real) or not np.isfinite(std) or std <= 0:
            _fail(where, f"'std' must be a positive number, got {std!r}")


def _check_eps(layer: Layer, where: str) -> None:
    eps = layer.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) or eps <= 0:
        _fail(where, f"'eps' must be a positive number, got {eps!r}")


def _sequence_shape(layer: Layer, in_shape: Shape, where: str) -> Tuple[int, int]:
    if len(in_shape) != 2:
        _fail(where, f"a {layer['type']} layer takes sequences (n_samples, T, d), but its input has per-sample "
                     f"shape {tuple(in_shape)}" + ("; token ids (n, T) go through an embedding layer first"
                                                   if len(in_shape) == 1 else ""))
    return int(in_shape[0]), int(in_shape[1])


def _embedding_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"vocab", "dim", "std"}))
    check_positive_int(layer, "vocab", where)
    check_positive_int(layer, "dim", where)
    _check_std(layer, where)


def _embedding_shape(layer, in_shape, where):
    if len(in_shape) != 1:
        _fail(where, f"an embedding layer takes token ids (n_samples, T), but its input has per-sample shape "
                     f"{tuple(in_shape)}; n_inputs is (T,) for tokens")
    V, d = int(layer["vocab"]), int(layer["dim"])
    return {"E": (V, d)}, (int(in_shape[0]), d)


def _embedding_init(layer, in_shape, rng, dtype, before_relu):
    # N(0, 1) as torch.nn.Embedding (or N(0, std**2) with "std"), drawn in float64
    V, d = int(layer["vocab"]), int(layer["dim"])
    return {"E": rng.normal(0.0, float(layer.get("std", 1.0)), size=(V, d)).astype(dtype)}


def _embedding_forward(layer, p, x, training, rng, out=None):
    _seq.check_ids(x, int(layer["vocab"]))
    return _seq.embedding_forward(p["E"], x, out=out), x


def _embedding_backward(layer, p, ids, g, need_dx, out=None):
    return None, {"E": _seq.embedding_backward(ids, g, int(layer["vocab"]), out=out_buffer(out, "E"))}


def _positional_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"max_len", "std"}))
    check_positive_int(layer, "max_len", where)
    _check_std(layer, where)


def _positional_shape(layer, in_shape, where):
    T, d = _sequence_shape(layer, in_shape, where)
    L = int(layer["max_len"])
    if T > L:
        _fail(where, f"sequences of length T = {T} are longer than the positional layer's max_len = {L}")
    return {"P": (L, d)}, (T, d)


def _positional_init(layer, in_shape, rng, dtype, before_relu):
    # N(0, 0.02**2) (GPT-2's choice for learned positions; "std" to change it), drawn in float64
    d = int(in_shape[-1])
    return {"P": rng.normal(0.0, float(layer.get("std", 0.02)), size=(int(layer["max_len"]), d)).astype(dtype)}


def _positional_forward(layer, p, x, training, rng, out=None):
    if x.shape[1] > p["P"].shape[0]:
        _fail("positional", f"sequences of length T = {x.shape[1]} are longer than max_len = {p['P'].shape[0]}")
    return _seq.positional_forward(x, p["P"], out=out), None


def _positional_backward(layer, p, cache, g, need_dx, out=None):
    return g, {"P": _seq.positional_backward(g, int(layer["max_len"]), out=out_buffer(out, "P"))}


def _ln_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"eps"}))
    _check_eps(layer, where)


def _ln_shape(layer, in_shape, where):
    c = (int(in_shape[-1]),)
    return {"gamma": c, "beta": c}, tuple(in_shape)


def _ln_init(layer, in_shape, rng, dtype, before_relu):
    c = int(in_shape[-1])
    return {"gamma": np.ones(c, dtype=dtype), "beta": np.zeros(c, dtype=dtype)}


def _ln_forward(layer, p, x, training, rng, out=None):
    return _seq.layer_norm_forward(x, p["gamma"], p["beta"], float(layer.get("eps", 1e-5)), out=out)


def _ln_backward(layer, p, cache, g, need_dx, out=None):
    dx, dgamma, dbeta = _seq.layer_norm_backward(cache, p["gamma"], g, out)
    return dx, {"gamma": dgamma, "beta": dbeta}


# Layers whose input is a sequence (n, T, d): a dense layer before them fixes d alone, not the input's shape.
SEQUENCE_LAYERS = frozenset({"positional", "attention"})

ATTENTION_PARAMS = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")


def _attention_check(layer: Layer, where: str) -> None:
    check_keys(layer, where, frozenset({"heads", "causal"}))
    check_positive_int(layer, "heads", where)
    causal = layer.get("causal", False)
    if not isinstance(causal, (bool, np.bool_)):
        _fail(where, f"'causal' must be true or false, got {causal!r}", TypeError)


def _attention_shape(layer, in_shape, where):
    T, d = _sequence_shape(layer, in_shape, where)
    h = int(layer["heads"])
    if d % h:
        _fail(where, f"the model width d = {d} is not divisible by heads = {h} (each head takes d / heads features)")
    return {**{name: (d, d) for name in ATTENTION_PARAMS[:4]}, **{name: (d,) for name in ATTENTION_PARAMS[4:]}}, (T, d)


def _attention_init(layer, in_shape, rng, dtype, before_relu):
    # torch.nn.MultiheadAttention's: its (3d, d) in-projection Xavier-uniform (bound sqrt(6 / 4d)),
    # the out-projection U(+-1/sqrt(d)) (nn.Linear's default), every bias 0. Drawn in float64.
    d = int(in_shape[-1])
    a_in, a_out = np.sqrt(6.0 / (4 * d)), 1.0 / np.sqrt(d)
    p = {name: rng.uniform(-a_in, a_in, size=(d, d)).astype(dtype) for name in ("Wq", "Wk", "Wv")}
    p["Wo"] = rng.uniform(-a_out, a_out, size=(d, d)).astype(dtype)
    p.update({name: np.zeros(d, dtype=dtype) for name in ATTENTION_PARAMS[4:]})
    return p


def _attention_macs(layer, in_shape, out_shape) -> int:
    """Multiply-adds per sample: the four (d, d) projections at T positions, q kᵀ and A v (T² d each)."""
    T, d = int(in_shape[0]), int(in_shape[1])
    return 4 * T * d * d + 2 * T * T * d


def _attention_scratch(layer, in_shape, out_shape) -> int:
    """Elements per sample besides the output: q, k, v (twice: projected, then split by head), the
    merged heads and the (h, T, T) attention weights the cache keeps."""
    T, d = int(in_shape[0]), int(in_shape[1])
    return 7 * T * d + int(layer["heads"]) * T * T


def _ln_scratch(layer, in_shape, out_shape) -> int:
    """The normalised input and one 1/std per position (what the cache keeps)."""
    return int(np.prod(in_shape, dtype=np.int64)) + int(np.prod(in_shape[:-1], dtype=np.int64))


def _attention_forward(layer, p, x, training, rng, out=None):
    return _seq.attention_forward(x, p, int(layer["heads"]), bool(layer.get("causal", False)), out=out)


def _attention_backward(layer, p, cache, g, need_dx, out=None):
    return _seq.attention_backward(cache, p, g, need_dx, out)


def _no_cost(layer, in_shape, out_shape) -> int:
    return 0


def entry(check, shape, init, forward, backward, *, trainable=(), state=(), new_state=None, cache=None,
          elementwise=False, activation=False, by_parts=False, children=None, macs=_no_cost,
          scratch=_no_cost) -> Dict[str, Any]:
    """A registry entry of :data:`LAYERS` (the functions and facts the module docstring lists)."""
    assert all(name.startswith(STATE_PREFIX) for name in state)
    assert all("_" not in name for name in trainable)  # a key is "{name}_{path}": the name has no "_"
    return {"check": check, "shape": shape, "init": init, "forward": forward, "backward": backward,
            "trainable": tuple(trainable), "state": tuple(state), "new_state": new_state, "cache": cache,
            "elementwise": elementwise, "activation": activation, "by_parts": by_parts, "children": children,
            "macs": macs, "scratch": scratch}


LAYERS: Dict[str, Dict[str, Any]] = {
    "dense": entry(_dense_check, _dense_shape, _dense_init, _dense_forward, _dense_backward,
                    trainable=("W", "b"), cache="x", macs=_dense_macs),
    "relu": entry(_no_keys, _same_shape, _no_params, _relu_forward, _relu_backward,
                   cache="y", elementwise=True, activation=True),
    "leaky_relu": entry(_leaky_check, _same_shape, _no_params, _leaky_forward, _scale_backward,
                         elementwise=True, activation=True),
    "sigmoid": entry(_no_keys, _same_shape, _no_params, _sigmoid_forward, _sigmoid_backward,
                      cache="y", elementwise=True, activation=True),
    "tanh": entry(_no_keys, _same_shape, _no_params, _tanh_forward, _tanh_backward,
                   cache="y", elementwise=True, activation=True),
    "identity": entry(_no_keys, _same_shape, _no_params, _identity_forward, _identity_backward,
                       elementwise=True, activation=True),
    "softmax": entry(_no_keys, _same_shape, _no_params, _softmax_forward, _softmax_backward,
                      cache="y", elementwise=True),
    "dropout": entry(_dropout_check, _same_shape, _no_params, _dropout_forward, _scale_backward,
                      elementwise=True),
    "gelu": entry(_gelu_check, _same_shape, _no_params, _gelu_forward, _scale_backward,
                   elementwise=True, activation=True),
    "elu": entry(_elu_check, _same_shape, _no_params, _elu_forward, _scale_backward,
                  elementwise=True, activation=True),
    "softplus": entry(_no_keys, _same_shape, _no_params, _softplus_forward, _scale_backward,
                       elementwise=True, activation=True),
    # reshape/flatten return a view of their input (the forward loop sees the shared memory)
    "reshape": entry(_reshape_check, _reshape_shape, _no_params, _reshape_forward, _unreshape_backward),
    "flatten": entry(_no_keys, _flatten_shape, _no_params, _flatten_forward, _unreshape_backward),
    # by_parts: runs per part of the samples, on threads inside funcnn.parallel.workers()
    "conv2d": entry(_conv_check, _conv_shape, _conv_init, _conv_forward, _conv_backward, trainable=("W", "b"),
                     cache="x", by_parts=True, macs=_conv_macs, scratch=_conv_scratch),
    "max_pool": entry(_pool_check, _pool_shape, _no_params, _max_pool_forward, _max_pool_backward, by_parts=True,
                      scratch=_max_pool_scratch),
    "avg_pool": entry(_pool_check, _pool_shape, _no_params, _avg_pool_forward, _avg_pool_backward, by_parts=True),
    # caches x - mean (a new array), so it may normalise in place
    "batch_norm": entry(_bn_check, _bn_shape, _bn_init, _bn_forward, _bn_backward, trainable=("gamma", "beta"),
                         state=("running_mean", "running_var"), new_state=_bn_new_state, elementwise=True),
    "global_pool": entry(_global_pool_check, _global_pool_shape, _no_params, _global_pool_forward,
                         _global_pool_backward),
    # sequences (funcnn.sequence): token ids (n, T) → (n, T, d); the others on (n, T, d)
    "embedding": entry(_embedding_check, _embedding_shape, _embedding_init, _embedding_forward,
                        _embedding_backward, trainable=("E",), cache="x"),
    "positional": entry(_positional_check, _positional_shape, _positional_init, _positional_forward,
                         _positional_backward, trainable=("P",), elementwise=True),
    # caches xhat (a new array), so it may normalise in place
    "layer_norm": entry(_ln_check, _ln_shape, _ln_init, _ln_forward, _ln_backward, trainable=("gamma", "beta"),
                         elementwise=True, scratch=_ln_scratch),
    "attention": entry(_attention_check, _attention_shape, _attention_init, _attention_forward,
                        _attention_backward, trainable=ATTENTION_PARAMS, cache="x", macs=_attention_macs,
                        scratch=_attention_scratch),
}

# Layers that :func:`funcnn.network.init_params` looks through when it asks which activation a
# dense or conv layer feeds (He init before a ReLU-family activation): dropout, batch norm,
# pooling and reshapes do not change which nonlinearity comes next (max pooling commutes with
# a ReLU; batch norm rescales, and the ReLU after it still halves the variance).
INIT_TRANSPARENT = frozenset({"dropout", "batch_norm", "layer_norm", "max_pool", "avg_pool", "global_pool",
                              "flatten", "reshape"})


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _frozen(v: Any) -> Any:
    """A hashable, type-tagged copy of a spec value: plain values, lists/tuples of them, layer dicts
    and lists of layer dicts (blocks); raises TypeError for anything else."""
    t = type(v)
    if t in _PLAIN:
        return (t, v)
    if t is list or t is tuple:
        return (t, tuple(_frozen(e) for e in v))
    if t is dict:
        return (t, tuple((k, _frozen(e)) for k, e in v.items()))
    raise TypeError(t)


def spec_key(spec: Any) -> Optional[Tuple[Any, ...]]:
    """A hashable value that determines ``spec`` whole, types included (``1``, ``True`` and ``1.0``
    differ), or None when a value is not a plain str/int/float/bool/None, a list of them, or
    (in a block) a list of layer dicts.

    The key under which facts derived from a spec alone (validity, shapes, keys) are memoised:
    a spec is a list of mutable dicts, so nothing is kept by identity, only by content.
    """
    if type(spec) is not list and type(spec) is not tuple:
        return None
    parts: List[Any] = []
    for layer in spec:
        if type(layer) is not dict:
            return None
        for k, v in layer.items():
            t = type(v)
            if t not in _PLAIN:
                if t is not list and t is not tuple:
                    return None
                try:
                    v = tuple(_frozen(e) for e in v)
                except TypeError:
                    return None
            parts.append((k, t, v))
        parts.append(None)  # the end of a layer
    return tuple(parts)


def remember(memo: Dict[Any, Any], key: Any, value: Any, size: int = 64) -> Any:
    """``memo[key] = value``, dropping the oldest entries beyond ``size``; returns ``value``."""
    while len(memo) >= size:
        memo.pop(next(iter(memo)), None)
    memo[key] = value
    return value


# Keys (spec_key) of specs that passed check_spec: a predict call validates its spec again, and
# the full check of a 5-layer spec costs 4-5x its key.
_VALID_SPECS: Dict[Tuple[Any, ...], bool] = {}


def check_spec(spec: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming the layer index and key if ``spec`` is not valid."""
    key = spec_key(spec)
    if key is not None and key in _VALID_SPECS:
        return
    _check_spec(spec)
    if key is not None:
        remember(_VALID_SPECS, key, True)


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, (list, tuple)):
        raise TypeError(f"spec must be a list of layer dicts, got {type(spec).__name__}")
    if len(spec) == 0:
        raise ValueError("spec is empty: a network needs at least one layer with parameters")
    check_layers(spec, "spec")
    if not any(has_params(layer) for layer in spec):
        raise ValueError("spec has no layer with parameters (dense, conv2d, batch_norm): a network needs at least one")


def check_layers(layers: Any, where: str) -> None:
    """Check each layer dict of the list ``layers`` (a spec, or a block's inner list named ``where``,
    e.g. ``"spec[2].body"``): its type and, through its entry's ``check``, its keys (a block checks its lists)."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"{where} must be a list of layer dicts, got {type(layers).__name__}")
    for i, layer in enumerate(layers):
        at = f"{where}[{i}]"
        if not isinstance(layer, dict):
            raise TypeError(f"{at}: each layer must be a dict, got {type(layer).__name__}")
        if "type" not in layer:
            raise ValueError(f"{at}: missing 'type'; known types: {sorted(LAYERS)}")
        kind = layer["type"]
        if not isinstance(kind, str) or kind not in LAYERS:
            raise ValueError(f"{at}: unknown layer type {kind!r}; known types: {sorted(LAYERS)}")
        LAYERS[kind]["check"](layer, f"{at} ({kind})")


def has_params(layer: Layer) -> bool:
    """Whether ``layer`` owns trainable arrays, itself or (a block) in a layer inside it."""
    entry = LAYERS[layer["type"]]
    if entry["trainable"]:
        return True
    return entry["children"] is not None and any(has_params(inner) for _, sub in entry["children"](layer)
                                                 for inner in sub)


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

    Args:
        hidden: a width or a sequence of widths.
        activation: a layer type name or an activation layer dict.
        dropout: the rate after each hidden activation (0: none).
        n_outputs: the output layer's width.

    Returns:
        The spec, a list of layer dicts.

    Examples:
        >>> mlp(hidden=(16,), dropout=0.1, n_outputs=3)
        [{'type': 'dense', 'units': 16}, {'type': 'relu'}, {'type': 'dropout', 'rate': 0.1}, {'type': 'dense', 'units': 3}]
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


from . import blocks as _blocks  # noqa: E402  (registers the block types; blocks.py uses the names above)

LAYERS.update(_blocks.BLOCKS)
