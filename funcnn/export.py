"""Deployment and exchange: a network as an ONNX model, as a PyTorch module, and back.

* :func:`to_onnx` writes an ONNX model with one input ``"input"`` (one sample's shape, a
  dynamic batch axis) and one output ``"output"``: ``forward(spec, params, X)[0]`` in
  inference mode, for ONNX Runtime or any other ONNX consumer.
* :func:`to_torch` returns a ``torch.nn.Module`` computing the same output, with PyTorch's
  layouts inside (``Linear.weight`` is ``W.T``, conv kernels OIHW on NCHW images) and NHWC at
  its edges, as funcnn; :func:`from_torch` turns such a module, or its ``state_dict``, back into
  a params dict. The round trip gives the same bits.

Both walk the spec through one registry, :data:`EXPORTERS`: per layer type, the ONNX nodes
it becomes (``"onnx"``), the torch module it becomes (``"torch"``) and how its arrays map to
that module's state (``"to_torch"``, ``"from_torch"``). Blocks (residual, parallel) are walked
recursively: a residual is an ``Add`` of body and shortcut, a parallel block a ``Concat`` on the
last axis or a sum of its branches. Image tensors stay NCHW between consecutive convolution and
pooling layers and are transposed back to NHWC only where a layer needs it (``"layout"``).

The ONNX graph computes funcnn's arithmetic op for op where it matters: batch norm in
inference is ``(x - running_mean) * (gamma / sqrt(running_var + eps)) + beta``; "same" padding
is explicit (JAX/TensorFlow SAME: any odd extra row/column at the bottom/right); pooling drops
partial windows; ``softplus`` and ``elu`` use log1p/expm1 forms that stay accurate near 0;
``gelu`` is the erf form (or the tanh form) spelled out in primitive ops; dropout is the
identity. A layer type without an exporter is a ``ValueError`` naming its path before any file
is written; the file is written atomically (:func:`funcnn.checkpoint.atomic_write`).

``onnx`` and ``torch`` are optional: ``pip install 'funcnn[export]'`` installs onnx,
onnxruntime and safetensors; this module imports them only when a function needs them.
"""
from __future__ import annotations

import functools
import importlib
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .conv import conv_geometry
from .layers import LAYERS, check_pair, check_spec
from .network import as_shape, check_params, children, walk

Spec = List[Dict[str, Any]]
Params = Dict[str, np.ndarray]
Shape = Tuple[int, ...]

DEFAULT_OPSET = 17  # ONNX Runtime 1.14 and later run it
MIN_OPSET = 13      # Softmax normalises one axis from here on (before, it flattened the trailing axes)
INPUT, OUTPUT = "input", "output"


# --- the layers' arrays, and the checks -----------------------------------------------

def _names(layer: Dict[str, Any]) -> Tuple[str, ...]:
    entry = LAYERS[layer["type"]]
    return tuple(entry["trainable"]) + tuple(entry["state"])


def _own(layer: Dict[str, Any], path: str, params: Params) -> Dict[str, np.ndarray]:
    """The arrays the layer at ``path`` owns: ``{"W": params["W_<path>"], ...}``."""
    return {name: params[f"{name}_{path}"] for name in _names(layer)}


def check_exportable(spec: Spec, to: str = "onnx") -> None:
    """Raise ValueError naming the first layer (by path and type) that :data:`EXPORTERS` cannot export ``to``."""
    for path, layer in walk(spec):
        kind = layer["type"]
        if kind not in EXPORTERS or EXPORTERS[kind].get(to) is None:
            known = exportable_types(to)
            target = "ONNX" if to == "onnx" else "PyTorch"
            raise ValueError(f"spec path {path} ({kind}): a {kind!r} layer cannot be exported to {target}; "
                             f"exportable layer types: {known}")


def _checked(spec: Spec, params: Params, input_shape: Any, to: str) -> Tuple[Shape, np.dtype]:
    """Validate ``spec``, ``params`` (finite) and the input shape: ``(per-sample input shape, dtype)``."""
    check_spec(spec)
    check_exportable(spec, to)
    n_in, _, dtype = check_params(spec, params)
    if input_shape is not None:
        shape = as_shape(input_shape, "input_shape")
        check_params(spec, params, shape)
    elif n_in is None and spec[0]["type"] == "reshape" and -1 not in spec[0]["shape"]:
        shape = (math.prod(spec[0]["shape"]),)  # a network on flat rows (a CNN that starts with a reshape)
    elif n_in is None:
        raise ValueError("the params do not fix the input's shape (the network starts with a conv2d layer, say, or "
                         "a layer on sequences); pass input_shape=, one sample's shape, e.g. (28, 28, 1) or (T, d)")
    else:
        shape = as_shape(n_in)
    return shape, np.dtype(dtype)


def _out_shape(layer: Dict[str, Any], shape: Shape, path: str) -> Shape:
    return tuple(LAYERS[layer["type"]]["shape"](layer, shape, f"spec path {path} ({layer['type']})")[1])


# --- layouts --------------------------------------------------------------------------
#
# A value flowing through the graph is (tensor, per-sample funcnn shape, channels_first).
# channels_first only ever holds for images (a per-sample shape of rank 3) and means the
# tensor is NCHW; everything else is funcnn's layout.

def _is_image(shape: Shape) -> bool:
    return len(shape) == 3


def _wants(layer: Dict[str, Any], shape: Shape) -> str:
    """``"cf"``, ``"cl"`` or ``"any"``: the layout the layer's exporter needs for images."""
    want = EXPORTERS[layer["type"]]["layout"]
    return want(shape) if callable(want) else want


def _common(values: Sequence[Tuple[Any, Shape, bool]]) -> bool:
    """Whether values meeting in a block are added/concatenated channels first (all are NCHW images)."""
    return all(cf for _, _, cf in values)


# --- ONNX -----------------------------------------------------------------------------

def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"funcnn.export needs the {module.split('.')[0]!r} package ({exc}); "
                          f"install it with: pip install 'funcnn[export]'") from None


def _op(g: Dict[str, Any], op: str, inputs: Sequence[str], **attrs: Any) -> str:
    """Append one node; its output's name."""
    helper = g["onnx"].helper
    g["count"] += 1
    out = f"{op.lower()}_{g['count']}"
    g["nodes"].append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
    return out


def _const(g: Dict[str, Any], value: Any, hint: str, dtype: Any = None) -> str:
    """An initializer holding ``value`` (in the graph's float dtype unless ``dtype`` is given)."""
    arr = np.asarray(value, dtype=g["dtype"] if dtype is None else dtype)
    g["count"] += 1
    name = f"{hint}_{g['count']}"
    g["inits"].append(g["onnx"].numpy_helper.from_array(np.ascontiguousarray(arr), name))
    return name


def _to_cl(g, x):
    name, shape, cf = x
    return (_op(g, "Transpose", [name], perm=[0, 2, 3, 1]), shape, False) if cf else x


def _to_cf(g, x):
    name, shape, cf = x
    if cf or not _is_image(shape):
        return x
    return _op(g, "Transpose", [name], perm=[0, 3, 1, 2]), shape, True


def _to(g, x, cf: bool):
    return _to_cf(g, x) if cf else _to_cl(g, x)


def _onnx_chain(g, spec: Spec, params: Params, x, prefix: str):
    for i, layer in enumerate(spec):
        path = f"{prefix}{i}"
        want = _wants(layer, x[1])
        if want == "cf":
            x = _to_cf(g, x)
        elif want == "cl":
            x = _to_cl(g, x)
        x = EXPORTERS[layer["type"]]["onnx"](g, layer, _own(layer, path, params), x, path, params)
    return x


def _unary(op: str, **attrs):
    def emit(g, layer, own, x, path, params):
        return _op(g, op, [x[0]], **attrs), x[1], x[2]
    return emit


def _onnx_identity(g, layer, own, x, path, params):
    return x


def _onnx_dense(g, layer, own, x, path, params):
    y = _op(g, "MatMul", [x[0], _const(g, own["W"], f"W_{path}")])
    return _op(g, "Add", [y, _const(g, own["b"], f"b_{path}")]), _out_shape(layer, x[1], path), False


def _onnx_leaky(g, layer, own, x, path, params):
    # x * (1 if x > 0 else alpha), as funcnn (LeakyRelu's alpha attribute is a float32, even on doubles)
    positive = _op(g, "Greater", [x[0], _const(g, 0.0, "zero")])
    slope = _op(g, "Where", [positive, _const(g, 1.0, "one"), _const(g, float(layer.get("alpha", 0.01)), "alpha")])
    return _op(g, "Mul", [x[0], slope]), x[1], x[2]


def _log1p(g, e: str) -> str:
    """log(1 + e) for e >= 0, accurate for small e: log(u) * e / (u - 1) with u = 1 + e (Goldberg),
    e where u == 1 (no 0/0 is ever computed)."""
    one = _const(g, 1.0, "one")
    u = _op(g, "Add", [e, one])
    exact = _op(g, "Equal", [u, one])
    ratio = _op(g, "Div", [_op(g, "Mul", [_op(g, "Log", [u]), e]),
                           _op(g, "Where", [exact, one, _op(g, "Sub", [u, one])])])
    return _op(g, "Where", [exact, e, ratio])


def _expm1(g, v: str) -> str:
    """exp(v) - 1 for v <= 0, accurate near 0: (u - 1) * v / log(u) with u = exp(v) (Kahan); v where
    u == 1; u - 1 below -1 (no cancellation there). No 0/0 and no log(0) is ever computed."""
    one = _const(g, 1.0, "one")
    u = _op(g, "Exp", [v])
    um1 = _op(g, "Sub", [u, one])
    far = _op(g, "Less", [v, _const(g, -1.0, "minus_one")])
    exact = _op(g, "Equal", [u, one])
    log_u = _op(g, "Log", [_op(g, "Where", [_op(g, "Or", [far, exact]), _const(g, 0.5, "half"), u])])
    kahan = _op(g, "Div", [_op(g, "Mul", [um1, v]), log_u])
    return _op(g, "Where", [far, um1, _op(g, "Where", [exact, v, kahan])])


def _onnx_sigmoid(g, layer, own, x, path, params):
    # as funcnn's stable_sigmoid: e = exp(-|x|); 1 / (1 + e), times e where x < 0 (exact for very negative x)
    e = _op(g, "Exp", [_op(g, "Neg", [_op(g, "Abs", [x[0]])])])
    s = _op(g, "Reciprocal", [_op(g, "Add", [e, _const(g, 1.0, "one")])])
    negative = _op(g, "Less", [x[0], _const(g, 0.0, "zero")])
    return _op(g, "Where", [negative, _op(g, "Mul", [s, e]), s]), x[1], x[2]


def _onnx_softplus(g, layer, own, x, path, params):
    # max(x, 0) + log1p(exp(-|x|)), as funcnn: exp never overflows
    e = _op(g, "Exp", [_op(g, "Neg", [_op(g, "Abs", [x[0]])])])
    return _op(g, "Add", [_op(g, "Relu", [x[0]]), _log1p(g, e)]), x[1], x[2]


def _onnx_elu(g, layer, own, x, path, params):
    # max(x, 0) + alpha * expm1(min(x, 0)), as funcnn
    neg = _op(g, "Min", [x[0], _const(g, 0.0, "zero")])
    scaled = _op(g, "Mul", [_expm1(g, neg), _const(g, float(layer.get("alpha", 1.0)), "alpha")])
    return _op(g, "Add", [_op(g, "Relu", [x[0]]), scaled]), x[1], x[2]


def _onnx_gelu(g, layer, own, x, path, params):
    xs = x[0]
    if layer.get("approximate", "none") == "tanh":
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in funcnn's order of operations
        u = _op(g, "Mul", [_op(g, "Mul", [xs, xs]), _const(g, 0.044715, "c")])
        u = _op(g, "Mul", [_op(g, "Add", [u, _const(g, 1.0, "one")]), xs])
        t = _op(g, "Tanh", [_op(g, "Mul", [u, _const(g, math.sqrt(2.0 / math.pi), "sqrt_2_over_pi")])])
    else:
        # x Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2))
        t = _op(g, "Erf", [_op(g, "Mul", [xs, _const(g, 1.0 / math.sqrt(2.0), "inv_sqrt2")])])
    cdf = _op(g, "Mul", [_op(g, "Add", [t, _const(g, 1.0, "one")]), _const(g, 0.5, "half")])
    return _op(g, "Mul", [xs, cdf]), x[1], x[2]


# funcnn's softmax (layers.stable_softmax) normalises axis 1 of its input: the features of (n, k)
# rows, and so here too for inputs of higher rank (the test of an image softmax tells if that changes)
SOFTMAX_AXIS = -1


def _onnx_softmax(g, layer, own, x, path, params):
    return _op(g, "Softmax", [x[0]], axis=SOFTMAX_AXIS), x[1], False


def _onnx_reshape(g, layer, own, x, path, params):
    shape = _out_shape(layer, x[1], path)
    # 0: the batch axis is copied from the input (any batch size)
    y = _op(g, "Reshape", [x[0], _const(g, [0, *shape], "shape", np.int64)])
    return y, shape, False


def _onnx_flatten(g, layer, own, x, path, params):
    return _op(g, "Flatten", [x[0]], axis=1), _out_shape(layer, x[1], path), False


def _onnx_conv(g, layer, own, x, path, params):
    kernel = check_pair(layer, "kernel", path)
    stride = check_pair(layer, "stride", path, 1)
    _, ((top, bottom), (left, right)) = conv_geometry(x[1][:2], kernel, stride, layer.get("padding", "valid"))
    W = np.transpose(own["W"], (3, 2, 0, 1))  # (kh, kw, c_in, F) -> OIHW
    y = _op(g, "Conv", [x[0], _const(g, W, f"W_{path}"), _const(g, own["b"], f"b_{path}")],
            kernel_shape=list(kernel), strides=list(stride), pads=[top, left, bottom, right])
    return y, _out_shape(layer, x[1], path), True


def _pool(op: str):
    def emit(g, layer, own, x, path, params):
        size = check_pair(layer, "size", path)
        stride = check_pair(layer, "stride", path, list(size))
        # no pads, floor mode: partial windows are dropped
        y = _op(g, op, [x[0]], kernel_shape=list(size), strides=list(stride))
        return y, _out_shape(layer, x[1], path), True
    return emit


def _bn_scale(layer: Dict[str, Any], own: Dict[str, np.ndarray]) -> np.ndarray:
    """``gamma / sqrt(running_var + eps)``, in funcnn's order of operations and dtype."""
    inv_std = np.add(own["running_var"], float(layer.get("eps", 1e-5)))
    np.sqrt(inv_std, out=inv_std)
    np.divide(1.0, inv_std, out=inv_std)
    return own["gamma"] * inv_std


def _onnx_batch_norm(g, layer, own, x, path, params):
    vec = (lambda v: v.reshape(-1, 1, 1)) if x[2] else (lambda v: v)  # per channel, on axis 1 of NCHW
    y = _op(g, "Sub", [x[0], _const(g, vec(own["running_mean"]), f"running_mean_{path}")])
    y = _op(g, "Mul", [y, _const(g, vec(_bn_scale(layer, own)), f"scale_{path}")])
    return _op(g, "Add", [y, _const(g, vec(own["beta"]), f"beta_{path}")]), x[1], x[2]


# --- sequences (API §10)

def _onnx_embedding(g, layer, own, x, path, params):
    # token ids (int64) index the rows of E
    return _op(g, "Gather", [_const(g, own["E"], f"E_{path}"), x[0]], axis=0), _out_shape(layer, x[1], path), False


def _onnx_positional(g, layer, own, x, path, params):
    # x + P[:T]; T is fixed by the model's input shape
    T = x[1][0]
    return _op(g, "Add", [x[0], _const(g, own["P"][:T], f"P_{path}")]), x[1], False


def _onnx_layer_norm(g, layer, own, x, path, params):
    # (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased variance), in primitive ops
    mean = _reduce(g, "ReduceMean", x[0], [-1], keepdims=1)
    xc = _op(g, "Sub", [x[0], mean])
    var = _reduce(g, "ReduceMean", _op(g, "Mul", [xc, xc]), [-1], keepdims=1)
    std = _op(g, "Sqrt", [_op(g, "Add", [var, _const(g, float(layer.get("eps", 1e-5)), "eps")])])
    y = _op(g, "Mul", [_op(g, "Div", [xc, std]), _const(g, own["gamma"], f"gamma_{path}")])
    return _op(g, "Add", [y, _const(g, own["beta"], f"beta_{path}")]), x[1], False


def _onnx_attention(g, layer, own, x, path, params):
    T, d = x[1]
    h = int(layer["heads"])
    dh = d // h

    def heads(name: str, perm: List[int]) -> str:  # (n, T, d) -> (n, h, T, dh), or (n, h, dh, T) for keys
        y = _op(g, "Add", [_op(g, "MatMul", [x[0], _const(g, own[f"W{name}"], f"W{name}_{path}")]),
                           _const(g, own[f"b{name}"], f"b{name}_{path}")])
        return _op(g, "Transpose", [_op(g, "Reshape", [y, _const(g, [0, 0, h, dh], "shape", np.int64)])], perm=perm)
    q, k, v = heads("q", [0, 2, 1, 3]), heads("k", [0, 2, 3, 1]), heads("v", [0, 2, 1, 3])
    scores = _op(g, "Div", [_op(g, "MatMul", [q, k]), _const(g, math.sqrt(dh), "sqrt_dh")])
    if layer.get("causal", False):  # keys after the query masked out
        mask = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -np.inf, 0.0)
        scores = _op(g, "Add", [scores, _const(g, mask, "causal_mask")])
    ctx = _op(g, "MatMul", [_op(g, "Softmax", [scores], axis=-1), v])
    ctx = _op(g, "Reshape", [_op(g, "Transpose", [ctx], perm=[0, 2, 1, 3]), _const(g, [0, 0, d], "shape", np.int64)])
    y = _op(g, "Add", [_op(g, "MatMul", [ctx, _const(g, own["Wo"], f"Wo_{path}")]), _const(g, own["bo"], f"bo_{path}")])
    return y, x[1], False


def _reduce(g, op: str, x: str, axes: List[int], keepdims: int = 0) -> str:
    if g["opset"] >= 18:  # the axes became an input
        return _op(g, op, [x, _const(g, axes, "axes", np.int64)], keepdims=keepdims)
    return _op(g, op, [x], axes=axes, keepdims=keepdims)


def _onnx_global_pool(g, layer, own, x, path, params):
    name, shape, cf = x
    out = _out_shape(layer, shape, path)
    axes = [2, 3] if cf else list(range(1, len(shape)))
    if not axes:
        return x[0], out, False
    return _reduce(g, "ReduceMean" if layer.get("mode", "mean") == "mean" else "ReduceMax", name, axes), out, False


def _onnx_residual(g, layer, own, x, path, params):
    body = _onnx_chain(g, layer["body"], params, x, f"{path}.body.")
    short = _onnx_chain(g, layer.get("shortcut") or [], params, x, f"{path}.shortcut.")
    cf = _common([body, short])
    body, short = _to(g, body, cf), _to(g, short, cf)
    return _op(g, "Add", [short[0], body[0]]), body[1], cf


def _onnx_parallel(g, layer, own, x, path, params):
    outs = [_onnx_chain(g, branch, params, x, f"{path}.{b}.") for b, branch in enumerate(layer["branches"])]
    cf = _common(outs)
    outs = [_to(g, o, cf) for o in outs]
    if layer.get("merge", "concat") == "sum":
        y = outs[0][0]
        for o in outs[1:]:
            y = _op(g, "Add", [y, o[0]])
        return y, outs[0][1], cf
    shape = outs[0][1][:-1] + (sum(o[1][-1] for o in outs),)
    return _op(g, "Concat", [o[0] for o in outs], axis=1 if cf else -1), shape, cf


def onnx_model(spec: Spec, params: Params, *, opset: Optional[int] = None, input_shape: Any = None) -> Any:
    """The ``onnx.ModelProto`` :func:`to_onnx` writes (checked by ``onnx.checker``), without writing it."""
    in_shape, dtype = _checked(spec, params, input_shape, "onnx")
    opset = _check_opset(opset)
    onnx = _import("onnx")
    _import("onnx.numpy_helper")
    g: Dict[str, Any] = {"onnx": onnx, "nodes": [], "inits": [], "count": 0, "dtype": dtype, "opset": opset}
    x = _onnx_chain(g, spec, params, (INPUT, in_shape, False), "")
    x = _to_cl(g, x)
    g["nodes"].append(onnx.helper.make_node("Identity", [x[0]], [OUTPUT], name=OUTPUT))
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    in_elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.int64)) if takes_tokens(spec) else elem
    graph = onnx.helper.make_graph(
        g["nodes"], "funcnn",
        [onnx.helper.make_tensor_value_info(INPUT, in_elem, ["batch", *in_shape])],
        [onnx.helper.make_tensor_value_info(OUTPUT, elem, ["batch", *x[1]])], g["inits"])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="funcnn", doc_string="forward(spec, params, X)[0], inference mode")
    # the oldest IR version that has this opset, so older runtimes read the file too
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model, full_check=True)
    return model


def takes_tokens(spec: Spec) -> bool:
    """Whether the network's input is token ids (its first layer, looking into blocks, is an embedding)."""
    layer = spec[0]
    while children(layer):
        sub = children(layer)[0][1]
        if not sub:
            return False
        layer = sub[0]
    return layer["type"] == "embedding"


def _check_opset(opset: Any) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {opset!r}")
    newest = _import("onnx").defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be between {MIN_OPSET} and {newest} (this onnx package's newest), got {opset}")
    return int(opset)


def _check_target(path: Any) -> str:
    """A path an export can be written to (its directory exists; it is not a directory), before any work."""
    from .checkpoint import check_write_target
    return check_write_target(path, "model")


def to_onnx(spec: Spec, params: Params, path: Any, *, opset: Optional[int] = None, input_shape: Any = None) -> str:
    """Write ``spec``/``params`` as an ONNX model at ``path``: input ``"input"`` ``(batch, *input shape)``,
    output ``"output"`` = ``forward(spec, params, X)[0]`` (inference mode). Returns the path.

    ``opset`` defaults to :data:`DEFAULT_OPSET`; ``input_shape`` (one sample's shape) is needed only
    when the params do not fix it (a network starting with conv2d; one starting with a reshape takes
    flat rows by default). Everything is
    checked and the model built before the file is written, atomically.
    """
    from .checkpoint import atomic_write
    path = _check_target(path)
    data = onnx_model(spec, params, opset=opset, input_shape=input_shape).SerializeToString()
    return atomic_write(path, lambda fh: fh.write(data))


# --- PyTorch --------------------------------------------------------------------------

def _torch():
    return _import("torch")


def _permute(x, to: Optional[str]):
    if to == "cf":
        return x.permute(0, 3, 1, 2)
    if to == "cl":
        return x.permute(0, 2, 3, 1)
    return x


@functools.lru_cache(maxsize=None)
def _torch_classes() -> Dict[str, type]:
    """The few module classes the export needs, defined once, when torch is first needed."""
    torch = _torch()
    nn = torch.nn

    class Chain(nn.Sequential):
        """Layers in order (child ``i`` is spec layer ``i``); ``moves[i]`` permutes NHWC/NCHW before layer
        ``i`` (``moves[-1]``: after the last), so image tensors stay NCHW between convolutions."""

        def __init__(self, modules, moves):
            super().__init__(*modules)
            self.moves = list(moves)

        def forward(self, x):
            for module, move in zip(self, self.moves):
                x = module(_permute(x, move))
            return _permute(x, self.moves[-1])

    class Residual(nn.Module):
        """``shortcut(x) + body(x)`` (no shortcut: the identity)."""

        def __init__(self, body, shortcut):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.shortcut(x) + self.body(x)

    class Parallel(nn.ModuleList):
        """Every branch on the same input; outputs concatenated on ``dim`` or summed (``dim`` None)."""

        def __init__(self, branches, dim):
            super().__init__(branches)
            self.dim = dim

        def forward(self, x):
            outs = [branch(x) for branch in self]
            if self.dim is not None:
                return torch.cat(outs, dim=self.dim)
            y = outs[0]
            for o in outs[1:]:
                y = y + o
            return y

    class Conv2d(nn.Conv2d):
        """A convolution with explicit zero padding (left, right, top, bottom), SAME's odd extra after."""

        def __init__(self, *args, pads=(0, 0, 0, 0), **kwargs):
            super().__init__(*args, **kwargs)
            self.pads = tuple(pads)

        def forward(self, x):
            return super().forward(nn.functional.pad(x, self.pads) if any(self.pads) else x)

    class Reshape(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape((x.shape[0],) + self.shape)

    class LastAxisBatchNorm(nn.BatchNorm1d):
        """Batch norm over the last axis of ``(n, T, d)`` (BatchNorm1d normalises axis 1)."""

        def forward(self, x):
            return super().forward(x.transpose(1, 2)).transpose(1, 2)

    class GlobalPool(nn.Module):
        def __init__(self, mode, dims):
            super().__init__()
            self.mode, self.dims = mode, tuple(dims)

        def forward(self, x):
            if not self.dims:
                return x
            return x.mean(dim=self.dims) if self.mode == "mean" else x.amax(dim=self.dims)

    class Positional(nn.Module):
        """``x + weight[:T]``: a learned position embedding (``weight`` is funcnn's ``P``)."""

        def __init__(self, max_len, dim, dtype):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(max_len, dim, dtype=dtype))

        def forward(self, x):
            return x + self.weight[:x.shape[1]]

    class SelfAttention(nn.MultiheadAttention):
        """``MultiheadAttention(x, x, x)`` (batch first), with the causal mask when asked."""

        def __init__(self, dim, heads, causal, dtype):
            super().__init__(dim, heads, batch_first=True, dtype=dtype)
            self.causal = bool(causal)

        def forward(self, x):
            T = x.shape[1]
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if self.causal else None
            return super().forward(x, x, x, attn_mask=mask, need_weights=False)[0]

    return {"Chain": Chain, "Residual": Residual, "Parallel": Parallel, "Conv2d": Conv2d, "Reshape": Reshape,
            "LastAxisBatchNorm": LastAxisBatchNorm, "GlobalPool": GlobalPool, "Positional": Positional,
            "SelfAttention": SelfAttention}


def _torch_chain(spec: Spec, params: Params, shape: Shape, cf: bool, prefix: str, dtype):
    """``(Chain module, output shape, output channels_first)`` for layers on inputs of ``shape``."""
    modules, moves = [], []
    for i, layer in enumerate(spec):
        path = f"{prefix}{i}"
        want = _wants(layer, shape)
        move = None
        if _is_image(shape) and want == "cf" and not cf:
            move, cf = "cf", True
        elif cf and want == "cl":
            move, cf = "cl", False
        module, shape, cf = EXPORTERS[layer["type"]]["torch"](layer, params, shape, cf, path, dtype)
        modules.append(module)
        moves.append(move)
    moves.append(None)
    return _torch_classes()["Chain"](modules, moves), shape, cf


def _end_layout(chain, cf: bool, target: bool) -> None:
    """Make ``chain`` end channels first iff ``target``."""
    if cf != target:
        chain.moves[-1] = "cf" if target else "cl"


def _leaf(build: Callable[..., Any]):
    """A torch builder from ``build(layer, in_shape, out_shape, cf, dtype) -> module`` for a leaf layer;
    the output's layout is channels first iff the layer consumes and keeps an NCHW image."""
    def builder(layer, params, shape, cf, path, dtype):
        out = _out_shape(layer, shape, path)
        module = build(layer, shape, out, cf, dtype)
        out_cf = cf and _is_image(out) and _wants(layer, shape) != "cl"
        return module, out, out_cf
    return builder


def _t(module_name: str, *args, **kwargs):
    """``torch.nn.<module_name>(*args, **kwargs)``, as a leaf builder."""
    return _leaf(lambda layer, shape, out, cf, dtype: getattr(_torch().nn, module_name)(*args, **kwargs))


def _torch_dense(layer, shape, out, cf, dtype):
    return _torch().nn.Linear(shape[-1], out[-1], dtype=dtype)


def _torch_conv(layer, shape, out, cf, dtype):
    kernel = check_pair(layer, "kernel", "conv2d")
    stride = check_pair(layer, "stride", "conv2d", 1)
    _, ((top, bottom), (left, right)) = conv_geometry(shape[:2], kernel, stride, layer.get("padding", "valid"))
    return _torch_classes()["Conv2d"](shape[2], out[2], kernel, stride=stride, pads=(left, right, top, bottom),
                                      dtype=dtype)


def _torch_pool(name: str):
    def build(layer, shape, out, cf, dtype):
        size = check_pair(layer, "size", layer["type"])
        return getattr(_torch().nn, name)(size, stride=check_pair(layer, "stride", layer["type"], list(size)))
    return build


def _torch_batch_norm(layer, shape, out, cf, dtype):
    nn = _torch().nn
    kind = {1: nn.BatchNorm1d, 2: _torch_classes()["LastAxisBatchNorm"], 3: nn.BatchNorm2d}.get(len(shape))
    if kind is None:
        raise ValueError(f"batch norm on inputs of per-sample shape {shape} has no PyTorch module")
    # torch's momentum weighs the batch; funcnn's (Flax's) weighs the running statistic
    return kind(shape[-1], eps=float(layer.get("eps", 1e-5)), momentum=1.0 - float(layer.get("momentum", 0.9)),
                dtype=dtype)


def _torch_global_pool(layer, shape, out, cf, dtype):
    dims = (2, 3) if cf else tuple(range(1, len(shape)))
    return _torch_classes()["GlobalPool"](layer.get("mode", "mean"), dims)


def _torch_residual(layer, params, shape, cf, path, dtype):
    body, out, body_cf = _torch_chain(layer["body"], params, shape, cf, f"{path}.body.", dtype)
    short, _, short_cf = _torch_chain(layer.get("shortcut") or [], params, shape, cf, f"{path}.shortcut.", dtype)
    target = body_cf and short_cf
    _end_layout(body, body_cf, target)
    _end_layout(short, short_cf, target)
    return _torch_classes()["Residual"](body, short), out, target


def _torch_parallel(layer, params, shape, cf, path, dtype):
    built = [_torch_chain(branch, params, shape, cf, f"{path}.{b}.", dtype)
             for b, branch in enumerate(layer["branches"])]
    target = all(c for _, _, c in built)
    for chain, _, c in built:
        _end_layout(chain, c, target)
    concat = layer.get("merge", "concat") != "sum"
    out = built[0][1]
    if concat:
        out = out[:-1] + (sum(o[-1] for _, o, _ in built),)
    return (_torch_classes()["Parallel"]([c for c, _, _ in built], (1 if target else -1) if concat else None),
            out, target)


def _module_state(spec: Spec, params: Params, prefix: str = "") -> Dict[str, np.ndarray]:
    """The torch state (``{"<path>.<torch name>": array}``) of every leaf layer, by :data:`EXPORTERS`."""
    state = {}
    for path, layer in walk(spec, prefix):
        if children(layer) is None and _names(layer):
            for name, arr in EXPORTERS[layer["type"]]["to_torch"](_own(layer, path, params)).items():
                state[f"{path}.{name}"] = arr
    return state


def to_torch(spec: Spec, params: Params, *, input_shape: Any = None) -> Any:
    """A ``torch.nn.Module`` (in eval mode) computing ``forward(spec, params, X)[0]`` on NHWC ``X``.

    Child ``i`` is spec layer ``i`` (a block's children are ``body``/``shortcut`` or its branches),
    so its ``state_dict`` keys are funcnn's paths: ``"0.weight"`` is ``W_0.T``, ``"2.body.0.weight"``
    the OIHW kernel of ``W_2.body.0``. ``input_shape`` as for :func:`to_onnx`.
    """
    in_shape, dtype = _checked(spec, params, input_shape, "torch")
    torch = _torch()
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]
    with torch.no_grad():
        module, _, cf = _torch_chain(spec, params, in_shape, False, "", tdtype)
    _end_layout(module, cf, False)
    state = module.state_dict()
    ours = _module_state(spec, params)
    state.update({k: torch.from_numpy(np.array(v, copy=True)) for k, v in ours.items()})
    module.load_state_dict(state, strict=True)
    return module.eval()


def _as_numpy(value: Any, key: str) -> np.ndarray:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    raise TypeError(f"state_dict[{key!r}] must be a tensor, got {type(value).__name__}")


def from_torch(spec: Spec, module_or_state_dict: Any) -> Params:
    """The params dict of ``spec`` from a module :func:`to_torch` built (or one with the same
    ``state_dict`` keys), or from its ``state_dict``; layouts converted back (``W = weight.T``,
    kernels HWIO). Missing or unexpected keys are a ValueError naming them."""
    check_spec(spec)
    check_exportable(spec, "torch")
    torch = _torch()
    if isinstance(module_or_state_dict, torch.nn.Module):
        state = module_or_state_dict.state_dict()
    elif isinstance(module_or_state_dict, Mapping):
        state = dict(module_or_state_dict)
    else:
        raise TypeError(f"from_torch takes a torch.nn.Module or a state_dict, got {type(module_or_state_dict).__name__}")
    params: Params = {}
    used = set()
    for path, layer in walk(spec):
        if children(layer) is not None or not _names(layer):
            continue
        entry = EXPORTERS[layer["type"]]
        sub = {}
        for name in entry["torch_names"]:
            key = f"{path}.{name}"
            if key not in state:
                raise ValueError(f"spec path {path} ({layer['type']}): the state_dict has no {key!r} "
                                 f"(keys: {sorted(state)[:12]}{' ...' if len(state) > 12 else ''})")
            sub[name] = _as_numpy(state[key], key)
            used.add(key)
        used.update(f"{path}.{name}" for name in entry.get("torch_ignored", ()))
        arrays = entry["from_torch"](sub)
        for name in _names(layer):  # funcnn's order: trainable arrays, then state
            params[f"{name}_{path}"] = np.ascontiguousarray(arrays[name])
    extra = sorted(k for k in state if k not in used)
    if extra:
        raise ValueError(f"the state_dict has key(s) {extra[:12]} that spec does not define")
    check_params(spec, params)
    return params


# --- the registry ---------------------------------------------------------------------

def _image_layout(want: str) -> Callable[[Shape], str]:
    return lambda shape: want if _is_image(shape) else "cl"


_ACT = {"layout": "any"}
_BN_NAMES = ("weight", "bias", "running_mean", "running_var")

EXPORTERS: Dict[str, Dict[str, Any]] = {
    # "layout": what the layer needs its image input as ("cf": NCHW, "cl": NHWC, "any"; or a function
    # of the per-sample input shape); "onnx": (graph, layer, own arrays, value, path, params) -> value;
    # "torch": (layer, params, shape, channels_first, path, dtype) -> (module, shape, channels_first);
    # "to_torch"/"from_torch": own arrays <-> that module's state (names "torch_names").
    "dense": {"layout": "cl", "onnx": _onnx_dense, "torch": _leaf(_torch_dense),
              "torch_names": ("weight", "bias"),
              "to_torch": lambda p: {"weight": p["W"].T, "bias": p["b"]},
              "from_torch": lambda s: {"W": s["weight"].T, "b": s["bias"]}},
    "relu": {**_ACT, "onnx": _unary("Relu"), "torch": _t("ReLU")},
    "leaky_relu": {**_ACT, "onnx": _onnx_leaky,
                   "torch": _leaf(lambda layer, *a: _torch().nn.LeakyReLU(float(layer.get("alpha", 0.01))))},
    "sigmoid": {**_ACT, "onnx": _onnx_sigmoid, "torch": _t("Sigmoid")},
    "tanh": {**_ACT, "onnx": _unary("Tanh"), "torch": _t("Tanh")},
    "identity": {**_ACT, "onnx": _onnx_identity, "torch": _t("Identity")},
    "dropout": {**_ACT, "onnx": _onnx_identity,  # inference mode: the identity
                "torch": _leaf(lambda layer, *a: _torch().nn.Dropout(float(layer["rate"])))},
    "softmax": {"layout": "cl", "onnx": _onnx_softmax, "torch": _t("Softmax", dim=SOFTMAX_AXIS)},
    "gelu": {**_ACT, "onnx": _onnx_gelu,
             "torch": _leaf(lambda layer, *a: _torch().nn.GELU(approximate=layer.get("approximate", "none")))},
    "elu": {**_ACT, "onnx": _onnx_elu,
            "torch": _leaf(lambda layer, *a: _torch().nn.ELU(float(layer.get("alpha", 1.0))))},
    "softplus": {**_ACT, "onnx": _onnx_softplus, "torch": _t("Softplus")},
    "reshape": {"layout": "cl", "onnx": _onnx_reshape,
                "torch": _leaf(lambda layer, shape, out, cf, dtype: _torch_classes()["Reshape"](out))},
    "flatten": {"layout": "cl", "onnx": _onnx_flatten, "torch": _t("Flatten", 1)},
    "conv2d": {"layout": "cf", "onnx": _onnx_conv, "torch": _leaf(_torch_conv),
               "torch_names": ("weight", "bias"),
               "to_torch": lambda p: {"weight": np.transpose(p["W"], (3, 2, 0, 1)), "bias": p["b"]},
               "from_torch": lambda s: {"W": np.transpose(s["weight"], (2, 3, 1, 0)), "b": s["bias"]}},
    "max_pool": {"layout": "cf", "onnx": _pool("MaxPool"), "torch": _leaf(_torch_pool("MaxPool2d"))},
    "avg_pool": {"layout": "cf", "onnx": _pool("AveragePool"), "torch": _leaf(_torch_pool("AvgPool2d"))},
    # images channels first (BatchNorm2d normalises axis 1); the ONNX nodes broadcast either way
    "batch_norm": {"layout": _image_layout("cf"), "onnx": _onnx_batch_norm, "torch": _leaf(_torch_batch_norm),
                   "torch_names": _BN_NAMES, "torch_ignored": ("num_batches_tracked",),
                   "to_torch": lambda p: {"weight": p["gamma"], "bias": p["beta"],
                                          "running_mean": p["running_mean"], "running_var": p["running_var"]},
                   "from_torch": lambda s: {"gamma": s["weight"], "beta": s["bias"],
                                            "running_mean": s["running_mean"], "running_var": s["running_var"]}},
    # sequences (API §10)
    "embedding": {"layout": "cl", "onnx": _onnx_embedding, "torch_names": ("weight",),
                  "torch": _leaf(lambda layer, shape, out, cf, dtype: _torch().nn.Embedding(
                      int(layer["vocab"]), int(layer["dim"]), dtype=dtype)),
                  "to_torch": lambda p: {"weight": p["E"]}, "from_torch": lambda s: {"E": s["weight"]}},
    "positional": {"layout": "cl", "onnx": _onnx_positional, "torch_names": ("weight",),
                   "torch": _leaf(lambda layer, shape, out, cf, dtype: _torch_classes()["Positional"](
                       int(layer["max_len"]), shape[-1], dtype)),
                   "to_torch": lambda p: {"weight": p["P"]}, "from_torch": lambda s: {"P": s["weight"]}},
    "layer_norm": {"layout": "cl", "onnx": _onnx_layer_norm, "torch_names": ("weight", "bias"),
                   "torch": _leaf(lambda layer, shape, out, cf, dtype: _torch().nn.LayerNorm(
                       shape[-1], eps=float(layer.get("eps", 1e-5)), dtype=dtype)),
                   "to_torch": lambda p: {"weight": p["gamma"], "bias": p["beta"]},
                   "from_torch": lambda s: {"gamma": s["weight"], "beta": s["bias"]}},
    # torch's in-projection is the three W's transposed and stacked
    "attention": {"layout": "cl", "onnx": _onnx_attention,
                  "torch_names": ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"),
                  "torch": _leaf(lambda layer, shape, out, cf, dtype: _torch_classes()["SelfAttention"](
                      shape[-1], int(layer["heads"]), layer.get("causal", False), dtype)),
                  "to_torch": lambda p: {"in_proj_weight": np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T]),
                                         "in_proj_bias": np.concatenate([p["bq"], p["bk"], p["bv"]]),
                                         "out_proj.weight": p["Wo"].T, "out_proj.bias": p["bo"]},
                  "from_torch": lambda s: dict(zip(("Wq", "Wk", "Wv"), (w.T for w in np.split(s["in_proj_weight"], 3))),
                                               **dict(zip(("bq", "bk", "bv"), np.split(s["in_proj_bias"], 3))),
                                               Wo=s["out_proj.weight"].T, bo=s["out_proj.bias"])},
    # blocks (API §9)
    "global_pool": {**_ACT, "onnx": _onnx_global_pool, "torch": _leaf(_torch_global_pool)},
    "residual": {**_ACT, "onnx": _onnx_residual, "torch": _torch_residual},
    "parallel": {**_ACT, "onnx": _onnx_parallel, "torch": _torch_parallel},
}


def exportable_types(to: str = "onnx") -> List[str]:
    """The layer types :data:`EXPORTERS` exports ``to`` ("onnx" or "torch") that funcnn also knows."""
    return sorted(k for k, e in EXPORTERS.items() if e.get(to) is not None and k in LAYERS)
