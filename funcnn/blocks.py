"""Blocks: layers that hold lists of layers, so networks that are not a chain are specs too.

``{"type": "residual", "body": [...], "shortcut": [...]}`` computes ``shortcut(x) + body(x)``
(no shortcut, or ``[]``: the identity); ``{"type": "parallel", "branches": [[...], ...],
"merge": "concat" | "sum"}`` feeds ``x`` to every branch and concatenates their outputs along
the last axis or adds them. They are the ``serial``/``FanOut``/``FanInSum``/``FanInConcat`` of
JAX's stax, as data.

Each block is one entry of :data:`funcnn.layers.LAYERS` with the same functions as any layer;
its ``forward``/``backward``/``shape``/``init``/``new_state`` run the network's own list
functions (:func:`funcnn.network.run_forward`, :func:`~funcnn.network.backward_chain`,
:func:`~funcnn.network.chain_shapes`, :func:`~funcnn.network.init_chain`,
:func:`~funcnn.network.chain_state`) on its inner lists — there is no second engine. A block
names the arrays of its inner layers by ``(name, path inside the block)`` pairs, e.g.
``("W", "body.0")``; the network prefixes the block's own path, so the params key is
``W_2.body.0`` for the first body layer of the block at position 2 (branch ``b``'s layer ``j``:
``W_2.b.j``). The gradient of a block's input is the sum of its paths' gradients.

Draw order (init and dropout masks): body before shortcut, branches in order.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import layers as _layers
from . import network as _network

Layer = Dict[str, Any]


def _base(where: str) -> str:
    """``"spec[2]"`` of ``"spec[2] (residual)"``: how the block's lists are named in errors."""
    return where.rsplit(" (", 1)[0]


def _fail(where: str, msg: str, exc: type = ValueError) -> None:
    raise exc(f"{where}: {msg}")


def _prefixed(label: str, own: Dict[Any, Any]) -> Dict[Tuple[str, str], Any]:
    return {_network.under(label, pair): v for pair, v in own.items()}


def _init(lists):
    """A block's ``init``: each inner list's arrays in turn (``lists(layer)`` order), all fed the
    block's input; the layers near a list's end see what follows the block (``before_relu``)."""
    def init(layer: Layer, in_shape, rng, dtype, before_relu):
        out: Dict[Tuple[str, str], np.ndarray] = {}
        for label, sub in lists(layer):
            out.update(_prefixed(label, _network.init_chain(sub, in_shape, rng, dtype, before_relu)))
        return out
    return init


# --- residual -------------------------------------------------------------------------

def _residual_lists(layer: Layer) -> List[Tuple[str, List[Layer]]]:
    return [("body", layer["body"]), ("shortcut", layer.get("shortcut") or [])]


def _residual_check(layer: Layer, where: str) -> None:
    _layers.check_keys(layer, where, frozenset({"body", "shortcut"}))
    if "body" not in layer:
        _fail(where, "a residual block needs 'body', a non-empty list of layers (and optionally 'shortcut'; "
                     "without one the shortcut is the identity)")
    body, shortcut = layer["body"], layer.get("shortcut", [])
    if not isinstance(body, list):
        _fail(where, f"'body' must be a list of layer dicts, got {type(body).__name__}", TypeError)
    if not body:
        _fail(where, "'body' is empty: a residual block needs at least one layer in its body")
    if shortcut is not None and not isinstance(shortcut, list):
        _fail(where, f"'shortcut' must be a list of layer dicts (or [] for the identity), got "
                     f"{type(shortcut).__name__}", TypeError)
    _layers.check_layers(body, f"{_base(where)}.body")
    _layers.check_layers(shortcut or [], f"{_base(where)}.shortcut")


def _residual_shape(layer: Layer, in_shape, where: str):
    base = _base(where)
    body, shortcut = layer["body"], layer.get("shortcut") or []
    own_b, out_b = _network.chain_shapes(body, in_shape, f"{base}.body")
    own_s, out_s = _network.chain_shapes(shortcut, in_shape, f"{base}.shortcut")
    if out_b != out_s:
        what = "shortcut's" if shortcut else "identity shortcut's (the block's input)"
        _fail(where, f"the body's output has per-sample shape {out_b} but the {what} has {out_s}: they are "
                     "added, so they must have one shape" + ("" if shortcut else
                     "; give the block a 'shortcut' that maps its input to the body's shape, e.g. a 1x1 conv2d "
                     "with the body's stride and filters, or a dense layer")
              + f" (block input {tuple(in_shape)})")
    return {**_prefixed("body", own_b), **_prefixed("shortcut", own_s)}, out_b


def _residual_forward(layer: Layer, p, x, training, rng, out=None):
    yb, cb = _network.run_forward(layer["body"], p["body"], x, training, rng)
    shortcut = layer.get("shortcut") or []
    if shortcut:
        ys, cs = _network.run_forward(shortcut, p["shortcut"], x, training, rng)
    else:
        ys, cs = x, []
    return np.add(yb, ys, out=out), (cb, cs)


def _residual_backward(layer: Layer, p, cache, g, need_dx, out=None):
    cb, cs = cache
    shortcut = layer.get("shortcut") or []
    # g reaches both paths, so neither may overwrite it
    dxb, gb = _network.backward_chain(layer["body"], p["body"], cb, g, g_is_scratch=False, need_dx=need_dx,
                                      grads_out=None if out is None else out.get("body"))
    grads = _prefixed("body", gb)
    if shortcut:
        dxs, gs = _network.backward_chain(shortcut, p["shortcut"], cs, g, g_is_scratch=False, need_dx=need_dx,
                                          grads_out=None if out is None else out.get("shortcut"))
        grads.update(_prefixed("shortcut", gs))
    else:
        dxs = g
    dx = np.add(dxb, dxs, out=_layers.out_buffer(out, "dx")) if need_dx else None
    return dx, grads


def _residual_state(layer: Layer, p, cache):
    cb, cs = cache
    out = _prefixed("body", _network.chain_state(layer["body"], p["body"], cb))
    if cs:
        out.update(_prefixed("shortcut", _network.chain_state(layer["shortcut"], p["shortcut"], cs)))
    return out


# --- parallel -------------------------------------------------------------------------

MERGES = ("concat", "sum")


def _parallel_lists(layer: Layer) -> List[Tuple[str, List[Layer]]]:
    return [(str(b), branch) for b, branch in enumerate(layer["branches"])]


def _parallel_check(layer: Layer, where: str) -> None:
    _layers.check_keys(layer, where, frozenset({"branches", "merge"}))
    if "branches" not in layer:
        _fail(where, "a parallel block needs 'branches', a non-empty list of layer lists "
                     "(an empty list [] is an identity branch)")
    branches = layer["branches"]
    if not isinstance(branches, list):
        _fail(where, f"'branches' must be a list of layer lists, got {type(branches).__name__}", TypeError)
    if not branches:
        _fail(where, "'branches' is empty: a parallel block needs at least one branch")
    merge = layer.get("merge", "concat")
    if merge not in MERGES:
        _fail(where, f"'merge' must be one of {list(MERGES)}, got {merge!r}")
    for b, branch in enumerate(branches):
        if not isinstance(branch, list):
            _fail(where, f"branches[{b}] must be a list of layer dicts, got {type(branch).__name__}", TypeError)
        _layers.check_layers(branch, f"{_base(where)}.branches[{b}]")


def _merged_shape(layer: Layer, outs: List[Tuple[int, ...]], where: str) -> Tuple[int, ...]:
    if layer.get("merge", "concat") == "sum":
        for b, shape in enumerate(outs[1:], 1):
            if shape != outs[0]:
                _fail(where, f"merge 'sum' adds the branches' outputs, so they must have one shape, but branch 0 "
                             f"gives per-sample shape {outs[0]} and branch {b} gives {shape}")
        return outs[0]
    for b, shape in enumerate(outs[1:], 1):
        if shape[:-1] != outs[0][:-1]:
            _fail(where, f"merge 'concat' joins the branches' outputs along the last axis, so the other axes must "
                         f"agree, but branch 0 gives per-sample shape {outs[0]} and branch {b} gives {shape}")
    return outs[0][:-1] + (sum(shape[-1] for shape in outs),)


def _parallel_shape(layer: Layer, in_shape, where: str):
    base, own, outs = _base(where), {}, []
    for label, branch in _parallel_lists(layer):
        own_b, out_b = _network.chain_shapes(branch, in_shape, f"{base}.branches[{label}]")
        own.update(_prefixed(label, own_b))
        outs.append(out_b)
    return own, _merged_shape(layer, outs, where)


def _parallel_forward(layer: Layer, p, x, training, rng, out=None):
    ys, caches = [], []
    for (label, branch), pb in zip(_parallel_lists(layer), p.values()):
        y, c = _network.run_forward(branch, pb, x, training, rng)
        ys.append(y)
        caches.append(c)
    if layer.get("merge", "concat") == "sum":
        total = np.add(ys[0], ys[1], out=out) if len(ys) > 1 else np.array(ys[0], copy=True)
        for y in ys[2:]:
            total += y
        return total, (caches, None)
    widths = [y.shape[-1] for y in ys]
    return np.concatenate(ys, axis=-1, out=out), (caches, widths)


def _parallel_backward(layer: Layer, p, cache, g, need_dx, out=None):
    caches, widths = cache
    grads: Dict[Tuple[str, str], np.ndarray] = {}
    dx: Optional[np.ndarray] = None
    buffer = _layers.out_buffer(out, "dx")
    start = 0
    for (label, branch), pb, cb in zip(_parallel_lists(layer), p.values(), caches):
        if widths is None:
            gb = g  # sum: every branch gets g (none may overwrite it)
        else:
            gb = np.ascontiguousarray(g[..., start:start + widths[int(label)]])  # concat: the branch's columns
            start += widths[int(label)]
        dxb, own = _network.backward_chain(branch, pb, cb, gb, g_is_scratch=False, need_dx=need_dx,
                                           grads_out=None if out is None else out.get(label))
        grads.update(_prefixed(label, own))
        if need_dx:
            if dx is None:
                dx = np.empty_like(dxb) if buffer is None else buffer
                dx[...] = dxb
            else:
                dx += dxb
    return dx, grads


def _parallel_state(layer: Layer, p, cache):
    caches, _ = cache
    out: Dict[Tuple[str, str], np.ndarray] = {}
    for (label, branch), pb, cb in zip(_parallel_lists(layer), p.values(), caches):
        out.update(_prefixed(label, _network.chain_state(branch, pb, cb)))
    return out


BLOCKS: Dict[str, Dict[str, Any]] = {
    "residual": _layers.entry(_residual_check, _residual_shape, _init(_residual_lists), _residual_forward,
                              _residual_backward, new_state=_residual_state, children=_residual_lists),
    "parallel": _layers.entry(_parallel_check, _parallel_shape, _init(_parallel_lists), _parallel_forward,
                              _parallel_backward, new_state=_parallel_state, children=_parallel_lists),
}
