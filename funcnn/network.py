"""The network: a spec (list of layer dicts) plus a flat params dict, and pure functions on them.

A layer at position ``i`` of the spec owns ``params[f"{name}_{i}"]`` for each of its array
names (``W_0``, ``b_0`` for a dense layer at 0). Composition is a loop over the spec; what
each layer does lives in :data:`funcnn.layers.LAYERS`.

There is one forward loop (:func:`run_forward`) and one backward loop (:func:`run_backward`).
The public functions validate their inputs and call them without buffers; ``funcnn.train``
validates its data once and calls the very same loops with gradient buffers it owns. Which
arrays a layer may overwrite is decided in those two loops and nowhere else: a layer may write
its output into its input when that input is an array the network made itself and no cache
holds on to; the backward pass overwrites only gradients that the network (or the loss) made.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import footprint as _footprint
from . import losses as _losses
from . import parallel as _parallel
from .layers import (INIT_TRANSPARENT, LAYERS, RELU_FAMILY, SEQUENCE_LAYERS, Shape, check_spec, has_params,
                     is_trainable_key, remember, spec_key)
from .validation import SeedLike, as_rng, check_dtype, check_finite, check_X

Spec = List[Dict[str, Any]]
Params = Dict[str, np.ndarray]
Cache = Dict[str, Any]
LayerParams = List[Dict[str, np.ndarray]]
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# Inference (predict, evaluate) runs in chunks of rows whose widest array (the converted input
# or any layer's output, blocks' inner layers included) holds about this many bytes, and at
# least MIN_CHUNK rows: memory stays bounded, and every chunk is a GEMM of the same height (the
# last one overlaps the one before), so the same rows give the same bits run after run (an
# unchunked pass may differ in the last bits: BLAS may pick its kernel by the matrix height).
# Counting the layers' outputs matters for image networks: a 28x28x16 convolution's output is
# 16x its input, and chunks sized by the input alone make arrays 16x larger, page-faulted anew
# for every chunk. A chunk is cut shorter (down to one row) when its footprint
# (funcnn.footprint: every layer's input + output + scratch) would exceed the memory budget.
INFERENCE_CHUNK_BYTES = 1 << 23
MIN_CHUNK = 256


# --- keys and shapes ------------------------------------------------------------------
#
# A layer's arrays are named by the layer entry (``"W"``, ``"b"``); a block's functions name
# the arrays of the layers inside it by ``(name, relative path)`` pairs (``("W", "body.0")``).
# The chain functions below place either at position ``i`` of their list (:func:`at`), and
# the public functions spell the result as the params key ``f"{name}_{path}"`` (:func:`key_name`).

def at(i: int, name: Any) -> Tuple[str, str]:
    """The ``(name, path)`` pair of array ``name`` of the layer at position ``i`` of a list:
    a leaf's ``"W"`` → ``("W", "i")``; a block's ``("W", "body.0")`` → ``("W", "i.body.0")``."""
    return (name, str(i)) if type(name) is str else (name[0], f"{i}.{name[1]}")


def under(label: str, pair: Tuple[str, str]) -> Tuple[str, str]:
    """``pair`` of a block's inner list ``label``: ``("W", "0")`` under ``"body"`` → ``("W", "body.0")``."""
    return (pair[0], f"{label}.{pair[1]}")


def key_name(pair: Tuple[str, str]) -> str:
    """The params key of a ``(name, path)`` pair: ``("W", "2.body.0")`` → ``"W_2.body.0"``."""
    return f"{pair[0]}_{pair[1]}"


def children(layer: Dict[str, Any]) -> Optional[List[Tuple[str, Spec]]]:
    """A block's inner lists as ``[(label, layers), ...]``; None for a leaf layer."""
    fn = LAYERS[layer["type"]]["children"]
    return None if fn is None else fn(layer)


def walk(spec: Spec, prefix: str = "") -> List[Tuple[str, Dict[str, Any]]]:
    """``(path, layer)`` for every layer of ``spec``, blocks and the layers inside them, depth first
    in spec order (a block before its inner layers): ``[("0", ...), ("1", residual), ("1.body.0", ...)]``.

    Examples:
        >>> import funcnn as F
        >>> [path for path, _ in walk([F.dense(4), {"type": "residual", "body": [F.dense(4), F.relu()]}])]
        ['0', '1', '1.body.0', '1.body.1']
    """
    out: List[Tuple[str, Dict[str, Any]]] = []
    for i, layer in enumerate(spec):
        path = f"{prefix}{i}"
        out.append((path, layer))
        for label, sub in children(layer) or ():
            out.extend(walk(sub, f"{path}.{label}."))
    return out


_LAYER_KEYS: Dict[Any, List[Tuple[str, str, str]]] = {}


def layer_keys(spec: Spec) -> List[Tuple[str, str, str]]:
    """``(layer path, array name, params key)`` for every array the spec defines, blocks included,
    in :func:`walk` order (per layer: its trainable arrays, then its state): ``("2.body.0", "W", "W_2.body.0")``."""
    key = spec_key(spec)
    facts = _LAYER_KEYS.get(key) if key is not None else None
    if facts is None:
        facts = [(path, name, f"{name}_{path}") for path, layer in walk(spec)
                 for name in LAYERS[layer["type"]]["trainable"] + LAYERS[layer["type"]]["state"]]
        if key is not None:
            remember(_LAYER_KEYS, key, facts)
    return facts


def trainable_keys(params: Params) -> List[str]:
    """The keys of ``params`` that gradients move (all but the layers' running state)."""
    return [k for k in params if is_trainable_key(k)]


def param_keys(spec: Spec) -> List[str]:
    """The keys a params dict for ``spec`` has, in layer order: ``["W_0", "b_0", ...]`` (paths in blocks).

    Examples:
        >>> import funcnn as F
        >>> F.param_keys([F.dense(4), {"type": "residual", "body": [F.dense(4)]}, F.dense(2)])
        ['W_0', 'b_0', 'W_1.body.0', 'b_1.body.0', 'W_2', 'b_2']
    """
    return [key for _, _, key in layer_keys(spec)]


def layer_params(spec: Spec, params: Params, prefix: str = "") -> LayerParams:
    """Per-layer views of ``params`` (or of grads, which lack the running state), nested like the spec:
    ``[{"W": ..., "b": ...}, {}, {"body": [{"W": ...}, ...], "shortcut": [...]}, ...]`` (a block's
    entry maps each inner list's label to that list's per-layer views)."""
    out: LayerParams = []
    for i, layer in enumerate(spec):
        path = f"{prefix}{i}"
        inner = children(layer)
        if inner is not None:
            out.append({label: layer_params(sub, params, f"{path}.{label}.") for label, sub in inner})
            continue
        entry = LAYERS[layer["type"]]
        own = {}
        for name in entry["trainable"] + entry["state"]:
            k = f"{name}_{path}"
            if k in params:
                own[name] = params[k]
        out.append(own)
    return out


def first_trainable(spec: Spec) -> Optional[int]:
    """Index of the first layer with parameters (a block counts when a layer inside it has some):
    no layer before it needs an input gradient. None when no layer of the list has any."""
    return next((i for i, layer in enumerate(spec) if has_params(layer)), None)


def as_shape(n_inputs: Any, name: str = "n_inputs") -> Shape:
    """An int (flat features) or a tuple of positive ints (one sample's shape) as a tuple."""
    dims = n_inputs if isinstance(n_inputs, (tuple, list)) else (n_inputs,)
    if len(dims) == 0:
        raise ValueError(f"{name} must be a positive int or a non-empty tuple of them, got {n_inputs!r}")
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{name} must be a positive int or a tuple of positive ints, got {n_inputs!r}")
        if d < 1:
            raise ValueError(f"{name} must be a positive int or a tuple of positive ints, got {n_inputs!r}")
    return tuple(int(d) for d in dims)


def shapes(spec: Spec, in_shape: Shape, prefix: str = "spec") -> List[Tuple[Dict[Any, Shape], Shape]]:
    """Per layer, ``(its arrays' shapes, its output's per-sample shape)`` for inputs of ``in_shape``
    (a block's arrays keyed by ``(name, relative path)``). ``prefix`` names the list in errors."""
    out = []
    shape = tuple(in_shape)
    for i, layer in enumerate(spec):
        own, shape = LAYERS[layer["type"]]["shape"](layer, shape, f"{prefix}[{i}] ({layer['type']})")
        out.append((own, tuple(shape)))
    return out


def chain_shapes(spec: Spec, in_shape: Shape, prefix: str) -> Tuple[Dict[Tuple[str, str], Shape], Shape]:
    """A list's arrays' shapes keyed by ``(name, path in the list)``, and its output's per-sample shape
    (``in_shape`` for an empty list: the identity). What a block's ``shape`` is made of."""
    own: Dict[Tuple[str, str], Shape] = {}
    shape = tuple(in_shape)
    for i, (layer_own, shape) in enumerate(shapes(spec, in_shape, prefix)):
        for name, s in layer_own.items():
            own[at(i, name)] = s
    return own, shape


def layer_shapes(spec: Spec, in_shape: Shape, prefix: str = "", where: str = "spec"
                 ) -> List[Tuple[str, Dict[str, Any], Shape, Shape]]:
    """``(path, layer, input shape, output shape)`` per sample for every layer, in :func:`walk` order."""
    out: List[Tuple[str, Dict[str, Any], Shape, Shape]] = []
    shape = tuple(in_shape)
    for i, (layer, (_, out_shape)) in enumerate(zip(spec, shapes(spec, shape, where))):
        path = f"{prefix}{i}"
        out.append((path, layer, shape, out_shape))
        for label, sub in children(layer) or ():
            out.extend(layer_shapes(sub, shape, f"{path}.{label}.", f"{where}[{i}].{label}"))
        shape = out_shape
    return out


def _input_key(spec: Spec) -> Optional[str]:
    """The key of the W whose rows fix the input width (a dense layer first, after elementwise layers), or None."""
    first = first_trainable(spec)
    if first is not None and spec[first]["type"] == "dense" \
            and all(LAYERS[l["type"]]["elementwise"] for l in spec[:first]) \
            and not any(l["type"] in SEQUENCE_LAYERS for _, l in walk(spec)):  # sequences: W fixes d, not (T, d)
        return f"W_{first}"
    return None


# Per spec_key: the input key and the expected keys; per (spec_key, input shape): every array's
# shape and the output width. check_params runs on every predict call; these facts depend on
# the spec's content alone.
_KEYS: Dict[Any, Tuple[Optional[str], List[str], frozenset]] = {}
_LAYOUTS: Dict[Any, Tuple[List[Tuple[int, str, Shape]], int]] = {}


def _spec_keys(spec: Spec, key: Any) -> Tuple[Optional[str], List[str], frozenset]:
    facts = _KEYS.get(key) if key is not None else None
    if facts is None:
        expected = param_keys(spec)
        facts = (_input_key(spec), expected, frozenset(expected))
        if key is not None:
            remember(_KEYS, key, facts)
    return facts


def _layout(spec: Spec, key: Any, in_shape: Shape) -> Tuple[List[Tuple[str, str, Shape]], int]:
    facts = _LAYOUTS.get((key, in_shape)) if key is not None else None
    if facts is None:
        per_layer = shapes(spec, in_shape)
        arrays = []
        for i, (own, _) in enumerate(per_layer):
            for name, shape in own.items():
                pair = at(i, name)
                arrays.append((_where(spec, pair[1]), key_name(pair), tuple(shape)))
        facts = (arrays, per_layer[-1][1][-1])
        if key is not None:
            remember(_LAYOUTS, (key, in_shape), facts)
    return facts


def _where(spec: Spec, path: str) -> str:
    """How errors name the layer at ``path``: ``"spec[2].body[0] (dense)"``, ``"spec[4].branches[1][0] (conv2d)"``."""
    parts = path.split(".")
    layers, where = spec, "spec"
    for j in range(0, len(parts), 2):
        layer = layers[int(parts[j])]
        where += f"[{parts[j]}]"
        if j + 1 < len(parts):
            label = parts[j + 1]
            where += f".branches[{label}]" if label.isdigit() else f".{label}"
            layers = dict(children(layer))[label]
    return f"{where} ({layer['type']})"


def check_params(spec: Spec, params: Any, n_inputs: Any = None, *, finite: bool = True
                 ) -> Tuple[Union[int, Shape, None], int, np.dtype]:
    """Check that ``params`` fits ``spec``; return ``(n_inputs, n_outputs, dtype)``.

    Keys, array types, one shared float dtype, and every shape for inputs of ``n_inputs``
    (an int or a per-sample shape; by default the one a leading dense layer implies);
    with ``finite`` also that every array is finite (NaN/inf named by key and position).
    ``n_inputs`` comes back as an int for flat inputs, a tuple for images, None when unknown.
    Assumes ``spec`` is valid (see :func:`funcnn.layers.check_spec`).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    key = spec_key(spec)
    first_W, expected, expected_set = _spec_keys(spec, key)
    if len(params) != len(expected) or not expected_set.issuperset(params):
        missing = [k for k in expected if k not in params]
        if missing:
            raise ValueError(f"params is missing key(s) {missing} required by the spec (expected keys {expected})")
        extra = sorted(set(params) - set(expected), key=str)
        raise ValueError(f"params has key(s) {extra} that the spec does not define (expected keys {expected})")
    dtype = None
    for k in expected:
        v = params[k]
        if type(v) is not np.ndarray and not isinstance(v, np.ndarray):
            raise TypeError(f"params[{k!r}] must be a NumPy array, got {type(v).__name__}")
        if v.dtype != dtype:
            if dtype is not None:
                raise TypeError(f"params[{k!r}] has dtype {v.dtype} but {expected[0]!r} has {dtype}: "
                                "all params must share one dtype")
            if v.dtype not in _FLOATS:
                raise TypeError(f"params[{k!r}] must be float32 or float64, got {v.dtype}")
            dtype = v.dtype
    if n_inputs is not None:
        in_shape = as_shape(n_inputs)
    else:
        W = None if first_W is None else params[first_W]
        in_shape = (W.shape[0],) if W is not None and W.ndim == 2 else None
    n_outputs = None
    if in_shape is not None:
        arrays, n_outputs = _layout(spec, key, in_shape)
        for where, k, shape in arrays:
            if params[k].shape != shape:
                raise ValueError(f"params[{k!r}] has shape {params[k].shape}, expected {shape} "
                                 f"for {where} on inputs of shape {in_shape}")
    if finite:
        check_finite(params, "params")
    n_in = None if in_shape is None else (in_shape[0] if len(in_shape) == 1 else in_shape)
    return n_in, n_outputs, np.dtype(dtype)


def _next_activation(spec: Spec, i: int) -> Optional[str]:
    """The type of the first layer after ``i`` that is not in :data:`funcnn.layers.INIT_TRANSPARENT`
    (dropout, batch norm, pooling, reshapes): the activation a dense or conv layer feeds; None
    when the list ends first."""
    for layer in spec[i + 1:]:
        if layer["type"] not in INIT_TRANSPARENT:
            return layer["type"]
    return None


def init_chain(spec: Spec, in_shape: Shape, rng: np.random.Generator, dtype: np.dtype, after_relu: bool,
               ) -> Dict[Tuple[str, str], np.ndarray]:
    """New arrays for the layers of a list, keyed by ``(name, path in the list)``, drawn layer by layer.

    ``after_relu``: whether what follows the list is a ReLU-family activation (for the default
    init of a weight layer near the list's end); a block passes its own context to its lists.
    """
    arrays: Dict[Tuple[str, str], np.ndarray] = {}
    shape = tuple(in_shape)
    for i, layer in enumerate(spec):
        entry = LAYERS[layer["type"]]
        nxt = _next_activation(spec, i)
        own = entry["init"](layer, shape, rng, dtype, after_relu if nxt is None else nxt in RELU_FAMILY)
        shape = tuple(entry["shape"](layer, shape, f"spec[{i}]")[1])
        for name, v in own.items():
            arrays[at(i, name)] = v
    return arrays


def init_params(spec: Spec, n_inputs: Any, *, seed: SeedLike = None, dtype: Any = np.float32) -> Params:
    """New params for ``spec`` on inputs of ``n_inputs`` features (or per-sample shape), by each layer's init.

    Arrays are drawn from ``seed`` in :func:`param_keys` order (blocks: body, then shortcut; branches in order).

    Args:
        spec: the layer specs, a list of dicts (blocks may nest).
        n_inputs: the number of features (an int), or one sample's shape (a tuple, e.g.
            ``(28, 28, 1)`` for images).
        seed: an int, a ``np.random.Generator`` (advanced), or None for fresh entropy.
        dtype: float32 (the default) or float64.

    Returns:
        The params dict: ``"{name}_{path}"`` → array, e.g. ``W_0`` ``(n_in, units)`` and ``b_0``
        ``(units,)`` for a dense layer at position 0.

    Examples:
        >>> import funcnn as F
        >>> params = F.init_params([F.dense(8), F.relu(), F.dense(3)], n_inputs=4, seed=0)
        >>> {k: v.shape for k, v in params.items()}
        {'W_0': (4, 8), 'b_0': (8,), 'W_2': (8, 3), 'b_2': (3,)}
    """
    check_spec(spec)
    shape = as_shape(n_inputs)
    dt = check_dtype(dtype)
    rng = as_rng(seed)
    shapes(spec, shape)  # every layer accepts its input: errors name the layer before anything is drawn
    _footprint.check_budget(spec, shape, dt)  # one sample must fit the memory budget
    return {key_name(pair): v for pair, v in init_chain(spec, shape, rng, dt, False).items()}


# --- the two loops --------------------------------------------------------------------

def run_forward(spec: Spec, lparams: LayerParams, X: np.ndarray, training: bool,
                rng: Optional[np.random.Generator], keep_cache: bool = True) -> Tuple[np.ndarray, List[Any]]:
    """``(output, per-layer caches)``; without ``keep_cache`` the caches are dropped as it goes.

    An elementwise layer writes its output into its input when that input is scratch: made
    by the network (not ``X``) and held by no cache. That is the whole in-place rule. A layer
    whose output shares memory with its input (a reshape's view) passes the input's status on.
    """
    caches: List[Any] = []
    x, scratch = X, False
    for layer, p in zip(spec, lparams):
        entry = LAYERS[layer["type"]]
        out = x if scratch and entry["elementwise"] and entry["cache"] != "x" else None
        y, cache = entry["forward"](layer, p, x, training, rng, out)
        if keep_cache:
            caches.append(cache)
        scratch = (scratch or not np.may_share_memory(y, x)) and entry["cache"] != "y"
        x = y
    return x, caches


def chain_state(spec: Spec, lparams: LayerParams, caches: Sequence[Any]) -> Dict[Tuple[str, str], np.ndarray]:
    """The running state of a list's layers after a training-mode pass, keyed by ``(name, path in the list)``."""
    out: Dict[Tuple[str, str], np.ndarray] = {}
    for i, (layer, p, cache) in enumerate(zip(spec, lparams, caches)):
        fn = LAYERS[layer["type"]]["new_state"]
        if fn is not None and cache is not None:
            for name, v in fn(layer, p, cache).items():
                out[at(i, name)] = v
    return out


def new_state(spec: Spec, lparams: LayerParams, caches: Sequence[Any]) -> Params:
    """The layers' running state after a training-mode forward pass, keyed like params (``{}`` for most nets).

    ``forward(..., training=True)`` returns it as ``cache["state"]``; ``train`` writes it into
    its params after each step: ``params = {**update(...)[0], **cache["state"]}``.
    """
    return {key_name(pair): v for pair, v in chain_state(spec, lparams, caches).items()}


def backward_chain(spec: Spec, lparams: LayerParams, caches: Sequence[Any], g: np.ndarray, *,
                   g_is_scratch: bool, grads_out: Optional[LayerParams] = None, need_dx: bool = False,
                   ) -> Tuple[Optional[np.ndarray], Dict[Tuple[str, str], np.ndarray]]:
    """Back-propagate ``g`` = d loss / d output through a list: ``(dx, grads keyed by (name, path in the list))``.

    With ``need_dx`` it goes down to the list's input and returns d loss / d input (a block's
    body needs it); otherwise it stops at the first layer with parameters and ``dx`` is None.
    ``grads_out[i]`` (optional) holds buffers for layer ``i``'s gradients, which are then written
    there. ``g_is_scratch``: the caller's ``g`` may be overwritten (it came from the loss); later
    gradients the loop made itself may always be.
    """
    stop = 0 if need_dx else first_trainable(spec)
    grads: Dict[Tuple[str, str], np.ndarray] = {}
    if stop is None:
        return None, grads
    scratch = g_is_scratch
    for i in range(len(spec) - 1, stop - 1, -1):
        layer = spec[i]
        entry = LAYERS[layer["type"]]
        out = dict(grads_out[i]) if grads_out is not None else {}
        if scratch and entry["elementwise"]:
            out["dx"] = g
        dx, own = entry["backward"](layer, lparams[i], caches[i], g, need_dx or i > stop, out or None)
        for name, v in own.items():
            grads[at(i, name)] = v
        if dx is not None:
            scratch = scratch or not np.may_share_memory(dx, g)  # a reshape's view of g is g
        g = dx
    return g, grads


def run_backward(spec: Spec, lparams: LayerParams, caches: Sequence[Any], g: np.ndarray, *,
                 g_is_scratch: bool, grads_out: Optional[LayerParams] = None) -> Params:
    """Back-propagate ``g`` = d loss / d output from the last layer down to the first with params.

    Returns the gradients keyed like params (``W_0``, ``W_2.body.0``, ...); see :func:`backward_chain`.
    """
    return {key_name(pair): v for pair, v in
            backward_chain(spec, lparams, caches, g, g_is_scratch=g_is_scratch, grads_out=grads_out)[1].items()}


def l2_keys(params: Params) -> List[str]:
    """The arrays ``l2`` penalises: every weight matrix, i.e. the keys whose name (before the first
    ``_``) starts with ``W``: dense and conv kernels ``W_*``, attention's ``Wq_*`` .. ``Wo_*``;
    never biases, norms, embeddings or positions."""
    return [k for k in params if k[:1] == "W" and "_" in k]


def l2_penalty(params: Params, l2: float) -> float:
    """``l2 / 2 * sum ||W||^2`` over :func:`l2_keys` (a Python float, accumulated in float64)."""
    return 0.5 * l2 * sum(float(np.vdot(params[k], params[k])) for k in l2_keys(params))


def add_l2_grad(grads: Params, params: Params, l2: float, scratch: Optional[Params] = None) -> None:
    """``grads[k] += l2 * params[k]`` for the penalised keys, in place on ``grads`` (the caller's own).

    ``scratch`` (keyed like params) receives ``l2 * params[k]`` instead of a temporary.
    """
    for k in l2_keys(params):
        t = np.multiply(params[k], l2, out=None if scratch is None else scratch[k])
        grads[k] += t


def objective(spec: Spec, lparams: LayerParams, params: Params, X: np.ndarray, target: np.ndarray,
              loss_core, l2: float, w: Optional[np.ndarray], training: bool, rng: Optional[np.random.Generator],
              grads_out: Optional[LayerParams] = None, l2_scratch: Optional[Params] = None,
              grad_buffer: Optional[np.ndarray] = None) -> Tuple[float, Params, np.ndarray]:
    """One step's arithmetic, shared by :func:`value_and_grad` and ``funcnn.train``.

    forward → loss core → backward → L2 term: ``(value, grads, output, caches)``. Inputs are
    trusted (checked by the caller); ``loss_core`` is an entry of :data:`funcnn.losses.CORES`.
    """
    output, caches = run_forward(spec, lparams, X, training, rng)
    value, g = loss_core(output, target, w, grad_buffer)
    grads = run_backward(spec, lparams, caches, g, g_is_scratch=True, grads_out=grads_out)
    if l2:
        value += l2_penalty(params, l2)
        add_l2_grad(grads, params, l2, l2_scratch)
    return value, grads, output, caches


# --- public functions -------------------------------------------------------------------

def _check_training(training: Any) -> bool:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    return bool(training)


def checked_input(spec: Spec, params: Params, X: Any, name: str = "X", *, finite_params: bool = True,
                  convert: bool = True) -> Tuple[np.ndarray, int, np.dtype]:
    """Validate ``params`` against ``spec`` and ``X``; return ``(X, n_outputs, dtype)``.

    ``X`` comes back in the params' dtype, or with ``convert=False`` as it is (a memory map
    too; :func:`infer` converts it chunk by chunk).
    """
    check_spec(spec)
    n_in, n_out, dtype = check_params(spec, params, finite=finite_params)
    # the input's shape from X when the params do not fix it: a network that starts with a layer
    # of no fixed input shape, or a dense layer on the last axis of sequences (n, T, d)
    if n_in is None or (isinstance(n_in, int) and getattr(X, "ndim", 2) > 2):
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
        if arr.ndim < 2:
            raise ValueError(f"{name} must have a sample axis and a per-sample shape, got shape {arr.shape}")
        _, n_out, dtype = check_params(spec, params, arr.shape[1:], finite=False)
        return check_X(arr, input_dtype(spec, arr, dtype, name), arr.shape[1:], name=name, convert=convert), \
            n_out, dtype
    return check_X(X, input_dtype(spec, X, dtype, name), n_in, name=name, convert=convert), n_out, dtype


def takes_tokens(spec: Spec) -> bool:
    """Whether the network's input is token ids (its first layer is an embedding)."""
    return bool(spec) and isinstance(spec[0], dict) and spec[0].get("type") == "embedding"


def input_dtype(spec: Spec, X: Any, dtype: np.dtype, name: str = "X") -> np.dtype:
    """The dtype the network's input takes: ``dtype`` (the params'), or for a token network X's own
    integer dtype (ids are never converted to float; float ids are a TypeError)."""
    if not takes_tokens(spec):
        return dtype
    kind = getattr(X, "dtype", None)
    if kind is None:
        kind = np.asarray(X).dtype
    if kind.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids (the network starts with an embedding), got dtype "
                        f"{kind}; pass integer ids, e.g. {name}.astype(np.int64)")
    return kind


def output_shape(spec: Spec, in_shape: Shape) -> Shape:
    """One sample's output shape for inputs of per-sample shape ``in_shape`` (``(k,)``, or ``(T, k)``)."""
    return tuple(shapes(spec, tuple(in_shape))[-1][1])


def check_output(spec: Spec, params: Params, output: np.ndarray) -> np.ndarray:
    """``output`` if finite; else name the non-finite param, or report an overflow on finite input."""
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(np.add.reduce(output, axis=None)):
            return output
    if np.isfinite(output).all():  # the sum overflowed, not the values
        return output
    check_finite(params, "params")
    row = int(np.argwhere(~np.isfinite(output))[0][0])
    raise FloatingPointError(
        f"the network's output is not finite (first at row {row}) although its inputs and params are: "
        f"an overflow in {output.dtype}; scale the inputs down, or use float64 params")


def forward(spec: Spec, params: Params, X: Any, *, training: bool = False,
            seed: SeedLike = None) -> Tuple[np.ndarray, Cache]:
    """Run the network: X (n, *input shape) → (output (n, n_outputs), cache for :func:`backward`).

    ``training=True`` turns dropout on; its masks come from ``seed``, layer by layer.

    Args:
        spec: the layer specs.
        params: the params dict for ``spec``.
        X: inputs ``(n, *input shape)``, converted to the params' dtype.
        training: training mode: dropout on, batch norm on batch statistics.
        seed: the dropout masks' seed (an int or a Generator), in training mode.

    Returns:
        ``(output, cache)``: the network's output and what :func:`backward` needs;
        ``cache["state"]`` holds batch norm's new running statistics in training mode.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> spec = [F.dense(3)]
        >>> params = F.init_params(spec, n_inputs=2, seed=0)
        >>> output, cache = F.forward(spec, params, np.ones((5, 2)))
        >>> output.shape, output.dtype.name
        ((5, 3), 'float32')
    """
    training = _check_training(training)
    X, _, dtype = checked_input(spec, params, X, finite_params=False)
    # the whole batch at once, caches kept: it must fit the memory budget (train checks its minibatches)
    _footprint.check_budget(spec, X.shape[1:], dtype, rows=X.shape[0], training=True, where="forward: ")
    rng = as_rng(seed) if training else None
    lparams = layer_params(spec, params)
    # image layers: inside the workers, as train, so BLAS runs the same threads (and bits) as there
    with np.errstate(over="ignore", invalid="ignore"), _parallel.workers(uses_parts(spec)):
        output, caches = run_forward(spec, lparams, X, training, rng)
    check_output(spec, params, output)
    return output, {"layers": caches, "output_shape": output.shape,
                    "state": new_state(spec, lparams, caches) if training else {}}


def backward(spec: Spec, params: Params, cache: Cache, grad_output: Any) -> Params:
    """Back-propagate ``grad_output`` = d loss / d output (n, n_outputs) → grads, keyed like params.

    Args:
        spec: the layer specs.
        params: the params dict the forward pass used.
        cache: the cache :func:`forward` returned.
        grad_output: ∂loss/∂output, the forward output's shape and the params' dtype (as a loss
            function returns it).

    Returns:
        The gradients: the trainable keys of ``params`` with their shapes and dtypes.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> spec = [F.dense(3)]
        >>> params = F.init_params(spec, n_inputs=2, seed=0)
        >>> output, cache = F.forward(spec, params, np.ones((5, 2)))
        >>> loss, g = F.losses.softmax_cross_entropy(output, np.array([0, 1, 2, 0, 1]))
        >>> {k: v.shape for k, v in F.backward(spec, params, cache, g).items()}
        {'W_0': (2, 3), 'b_0': (3,)}
    """
    check_spec(spec)
    _, _, dtype = check_params(spec, params)
    if not isinstance(cache, dict) or "layers" not in cache or len(cache["layers"]) != len(spec):
        raise ValueError("cache must be the cache that forward() returned for this spec")
    g = np.asarray(grad_output)
    if g.shape != tuple(cache["output_shape"]):
        raise ValueError(f"grad_output has shape {g.shape}, expected {tuple(cache['output_shape'])} "
                         "(the forward output's shape)")
    if g.dtype != dtype:
        raise TypeError(f"grad_output has dtype {g.dtype}, expected {dtype} (the params' dtype)")
    with _parallel.workers(uses_parts(spec)):
        grads = run_backward(spec, layer_params(spec, params), cache["layers"], g, g_is_scratch=False)
    return {k: grads[k] for k in trainable_keys(params)}  # the params' key order


def value_and_grad(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, l2: float = 0.0,
                   sample_weight: Any = None, training: bool = True,
                   seed: SeedLike = None) -> Tuple[float, Params]:
    """Loss value ``loss(forward(X), y) + l2/2 * sum ||W||^2`` and its gradient w.r.t. every param.

    Args:
        spec: the layer specs.
        params: the params dict.
        X: inputs ``(n, *input shape)``.
        y: targets: integer labels for the cross-entropies, values for regression.
        loss: a loss name, or ``{"name": ..., **options}``.
        l2: the coefficient of ``l2/2 · Σ‖W‖²`` over the weight arrays (not biases).
        sample_weight: optional weights ``(n,)``: the loss is ``Σ w·l / Σ w``.
        training: training mode (the default here: dropout on, batch statistics).
        seed: the dropout masks' seed.

    Returns:
        ``(value, grads)``: the objective as a float and its gradient, keyed like the trainable params.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> spec = [F.dense(3)]
        >>> params = F.init_params(spec, n_inputs=2, seed=0)
        >>> value, grads = F.value_and_grad(spec, params, np.ones((4, 2)), np.array([0, 1, 2, 1]),
        ...                                 loss="softmax_cross_entropy", l2=1e-3)
        >>> round(value, 4) > 0, sorted(grads)
        (True, ['W_0', 'b_0'])
    """
    from .validation import check_number, check_sample_weight
    _losses.get(loss)
    l2 = float(check_number(l2, "l2", low=0.0))
    training = _check_training(training)
    X, n_out, dtype = checked_input(spec, params, X)
    _footprint.check_budget(spec, X.shape[1:], dtype, rows=X.shape[0], training=True, where="value_and_grad: ")
    out_shape = output_shape(spec, X.shape[1:])
    target = _losses.check_targets(loss, y, X.shape[0], n_out, dtype, out_shape=out_shape)
    w = check_sample_weight(sample_weight, X.shape[0], dtype, shape=_losses.weight_shape(loss, target))
    rng = as_rng(seed) if training else None
    with _parallel.workers(uses_parts(spec)):
        value, grads, _, _ = objective(spec, layer_params(spec, params), params, X, target, _losses.core(loss), l2,
                                       w, training, rng)
    return value, {k: grads[k] for k in trainable_keys(params)}


def uses_parts(spec: Spec) -> bool:
    """Whether a layer of ``spec`` runs per part of the samples (conv2d, pooling): then ``train``,
    inference, ``forward``, ``backward`` and ``value_and_grad`` run inside :func:`funcnn.parallel.workers`."""
    for layer in spec:
        entry = LAYERS[layer["type"]]
        if entry["by_parts"] or (entry["children"] is not None
                                 and any(uses_parts(sub) for _, sub in entry["children"](layer))):
            return True
    return False


def widest_row(spec: Spec, in_shape: Shape) -> int:
    """Elements per sample of the widest array an inference pass makes: the input or a layer's output
    (:func:`funcnn.footprint.per_sample`, memoised by the spec's content)."""
    return _footprint.per_sample(spec, tuple(in_shape), 1)["widest"]


def infer(spec: Spec, params: Params, X: np.ndarray, chunk: Optional[int] = None,
          dtype: Optional[np.dtype] = None) -> np.ndarray:
    """The inference-mode output on trusted ``X``, ``chunk`` rows at a time, keeping no caches.

    Each chunk is converted to ``dtype`` (the params' by default) on its own, so an ``X`` of
    another dtype, or memory-mapped, is never copied whole. By default a chunk's widest array
    (:func:`widest_row`) holds about :data:`INFERENCE_CHUNK_BYTES`, with at least :data:`MIN_CHUNK` rows,
    unless the chunk's footprint would exceed the memory budget (:func:`funcnn.footprint.inference_chunk`;
    a network of which one sample exceeds it is a ValueError naming the layer).
    """
    lparams = layer_params(spec, params)
    dtype = next(iter(params.values())).dtype if dtype is None else np.dtype(dtype)
    n = X.shape[0]
    by_parts = uses_parts(spec)
    if chunk is None:
        # up to MIN_CHUNK rows of a dense network are one chunk: a one-row predict skips the footprint
        chunk = (_footprint.inference_chunk(spec, X.shape[1:], dtype, INFERENCE_CHUNK_BYTES, MIN_CHUNK)
                 if n > MIN_CHUNK or by_parts else n)

    if takes_tokens(spec):
        dtype = X.dtype  # ids stay integers

    def run(part):
        return run_forward(spec, lparams, part if part.dtype == dtype else part.astype(dtype), False, None,
                           keep_cache=False)[0]
    if n <= chunk and not by_parts:
        return run(X)  # one chunk of a dense network: the short path of a one-row predict
    with _parallel.workers(by_parts):
        if n <= chunk:
            return run(X)
        first = run(X[:chunk])
        out = np.empty((n,) + first.shape[1:], dtype=first.dtype)
        out[:chunk] = first
        for start in range(chunk, n, chunk):
            start = min(start, n - chunk)  # the last chunk overlaps: every GEMM has the same height
            out[start:start + chunk] = run(X[start:start + chunk])
        return out


def _output(spec: Spec, params: Params, X: Any, loss: str) -> np.ndarray:
    _losses.get(loss)
    X, n_out, _ = checked_input(spec, params, X, finite_params=False, convert=False)
    _losses.check_outputs(loss, n_out)
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite output is reported by check_output
        output = infer(spec, params, X)
    return check_output(spec, params, output)


def predict_proba(spec: Spec, params: Params, X: Any, *, loss: str) -> np.ndarray:
    """Class probabilities (n, n_classes): softmax of the logits, or [1 - p, p] for binary.

    Args:
        spec: the layer specs.
        params: the params dict.
        X: inputs ``(n, *input shape)``; any dtype (each chunk of rows is converted on its own).
        loss: the classification loss the network was trained with.

    Returns:
        Probabilities ``(n, k)``, each row summing to 1 (binary: 2 columns, as scikit-learn).

    Raises:
        ValueError: a regression loss.
    """
    to_proba = _losses.proba(loss)
    output = _output(spec, params, X, loss)
    return to_proba(output)


def predict(spec: Spec, params: Params, X: Any, *, loss: str) -> np.ndarray:
    """Class labels (n,) for the cross-entropies; the outputs (n, k) for mean_squared_error.

    Args:
        spec: the layer specs.
        params: the params dict.
        X: inputs ``(n, *input shape)``; any dtype (each chunk of rows is converted on its own).
        loss: the loss the network was trained with.

    Returns:
        Integer labels ``(n,)`` (argmax; binary: logit > 0), or the outputs for regression.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> spec = [F.dense(1)]
        >>> params = {"W_0": np.array([[1.0], [-1.0]], np.float32), "b_0": np.zeros(1, np.float32)}
        >>> F.predict(spec, params, np.array([[2.0, 1.0], [0.0, 3.0]]), loss="binary_cross_entropy").tolist()
        [1, 0]
    """
    output = _output(spec, params, X, loss)
    return _losses.decision(loss)(output)
