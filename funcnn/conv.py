"""Array numerics of the image layers: convolution, pooling, batch normalization.

Pure functions on NumPy arrays that know nothing about layer specs (``funcnn.layers``
wraps them). Layouts are fixed (NHWC):

* images ``x``: ``(n, height, width, channels)``;
* convolution kernels ``W``: ``(kh, kw, c_in, filters)``, biases ``b``: ``(filters,)``;
* padding as ``((top, bottom), (left, right))``; strides as ``(sh, sw)``.

The convolution is the cross-correlation of ``torch.nn.functional.conv2d`` and
``jax.lax.conv_general_dilated``: ``y[n, r, c, f] = b[f] + sum_{i, j, k} xp[n, r*sh + i, c*sw + j, k]
* W[i, j, k, f]`` with ``xp`` the zero-padded input. It is one GEMM (im2col): the input's
``kh*kw`` shifted, strided views are copied side by side into a ``(n, ho, wo, kh, kw, c_in)``
array (one copy of a ``sliding_window_view`` of the padded input), which is multiplied with
``W`` seen as a ``(kh*kw*c_in, filters)`` matrix; above :data:`COLS_BYTES` of columns this
happens chunk of samples by chunk. The backward pass computes the kernel gradient as one GEMM
``cols.T @ g`` and the input gradient as one small GEMM per kernel offset, ``g @ W[i, j].T``,
added onto the strided slice of the input that offset read (no ``np.add.at``, no
columns-sized intermediate).

Pooling loops over the ``ph*pw`` offsets of a window the same way (strided slices, partial
windows dropped). Max pooling records which offset of each window held the first maximum
(row-major within the window), and its gradient goes there only, as in PyTorch.

Convolutions and poolings run per part of the samples (:func:`funcnn.parallel.map_parts`: four
parts of a 128-sample minibatch, one below 32 samples), on two threads inside
``funcnn.parallel.workers()``: each part's output and input gradient are slices of the
whole, and the kernel and bias gradients are the parts' sums, added in order. Batch norm's
statistics are over the whole batch: each part's column sums are added in order, and its
elementwise passes run per part.

Per-channel vectors (biases, batch-norm statistics) are tiled along the last two axes and
broadcast over those long rows: NumPy runs that several times faster than a broadcast over
rows of a few channels.

Every function follows NumPy's ``out=`` idiom: the result is written into ``out`` when it
is given (then nothing else of its size is allocated besides documented scratch), else
allocated. Inputs are never modified.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .parallel import map_large, map_parts, parts

Pair = Tuple[int, int]
Pads = Tuple[Pair, Pair]

__all__ = ["same_padding", "conv_geometry", "pool_geometry", "pad", "im2col",
           "conv2d_forward", "conv2d_backward", "conv2d_input_grad", "max_pool_forward", "max_pool_backward",
           "avg_pool_forward", "avg_pool_backward", "batch_norm_forward", "batch_norm_backward",
           "batch_norm_running"]


# --------------------------------------------------------------------------- geometry

def same_padding(n: int, k: int, s: int) -> Tuple[int, int, int]:
    """JAX/TensorFlow SAME along one axis: ``(out, before, after)`` with ``out = ceil(n / s)``
    and any odd extra row/column of padding after (bottom/right).

    Args:
        n: the input length along the axis.
        k: the kernel length.
        s: the stride.

    Returns:
        ``(out, before, after)``: the output length and the padding on each side.

    Examples:
        >>> same_padding(28, 3, 1)
        (28, 1, 1)
        >>> same_padding(28, 3, 2)
        (14, 0, 1)
    """
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def conv_geometry(hw: Pair, kernel: Pair, stride: Pair, padding: Any) -> Tuple[Pair, Pads]:
    """``((ho, wo), ((top, bottom), (left, right)))`` for ``padding`` "valid", "same" or an int.

    ``ho`` or ``wo`` may come out below 1 (the kernel does not fit); the caller reports that.

    Examples:
        >>> conv_geometry((28, 28), (3, 3), (1, 1), "valid")
        ((26, 26), ((0, 0), (0, 0)))
        >>> conv_geometry((28, 28), (5, 5), (2, 2), 2)
        ((14, 14), ((2, 2), (2, 2)))
    """
    out, pads = [], []
    for n, k, s in zip(hw, kernel, stride):
        if padding == "same":
            o, before, after = same_padding(n, k, s)
        else:
            p = 0 if padding == "valid" else int(padding)
            before = after = p
            o = (n + 2 * p - k) // s + 1 if n + 2 * p >= k else 0
        out.append(o)
        pads.append((before, after))
    return (out[0], out[1]), (pads[0], pads[1])


def pool_geometry(hw: Pair, size: Pair, stride: Pair) -> Pair:
    """Output height and width of a pooling without padding (partial windows dropped; 0 if none fits).

    Examples:
        >>> pool_geometry((7, 7), (2, 2), (2, 2))
        (3, 3)
    """
    return tuple((n - k) // s + 1 if n >= k else 0 for n, k, s in zip(hw, size, stride))  # type: ignore


def _window(offset: int, stride: int, count: int) -> slice:
    """The positions ``offset, offset + stride, ...`` (``count`` of them) along one axis."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


# --------------------------------------------------------------------------- im2col

def pad(x: np.ndarray, pads: Pads) -> np.ndarray:
    """``x`` zero-padded on height and width (``x`` itself when there is no padding)."""
    (t, b), (l, r) = pads
    if not (t or b or l or r):
        return x
    n, h, w, c = x.shape
    xp = np.zeros((n, h + t + b, w + l + r, c), dtype=x.dtype)
    xp[:, t:t + h, l:l + w, :] = x
    return xp


def im2col(x: np.ndarray, kernel: Pair, stride: Pair, pads: Pads, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The ``(n, ho, wo, kh, kw, c)`` columns of ``x``: ``cols[:, r, c, i, j] = xp[:, r*sh + i, c*sw + j]``.

    One copy of a strided view (``sliding_window_view``) of the padded input; ``out``
    (C-contiguous) receives it.
    """
    kh, kw = kernel
    sh, sw = stride
    n, h, w, c = x.shape
    (ho, wo), _ = _out_hw(x.shape, kernel, stride, pads)
    xp = pad(x, pads)
    if out is None:
        out = np.empty((n, ho, wo, kh, kw, c), dtype=x.dtype)
    if c == 1:
        # One channel (grey images): one slice copy per kernel offset is 3-5x faster than
        # copying the window view, whose innermost run would be a single element.
        for i in range(kh):
            for j in range(kw):
                out[:, :, :, i, j, :] = xp[:, _window(i, sh, ho), _window(j, sw, wo), :]
        return out
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (n, hp-kh+1, wp-kw+1, c, kh, kw)
    view = view[:, ::sh, ::sw][:, :ho, :wo].transpose(0, 1, 2, 4, 5, 3)
    np.copyto(out, view)
    return out


def _out_hw(x_shape, kernel, stride, pads) -> Tuple[Pair, Pair]:
    (t, b), (l, r) = pads
    hp, wp = x_shape[1] + t + b, x_shape[2] + l + r
    return ((hp - kernel[0]) // stride[0] + 1, (wp - kernel[1]) // stride[1] + 1), (hp, wp)


# --------------------------------------------------------------------------- conv2d

# The largest im2col array made at once (bytes). Above it (large batches, inference on a whole
# data set) the columns are made and multiplied chunk of samples by chunk, and not kept.
COLS_BYTES = 1 << 25


def _chunk_rows(n: int, per_sample: int) -> int:
    return max(1, min(n, COLS_BYTES // max(per_sample, 1)))


def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: Pair, pads: Pads, keep_cols: bool = True,
                   out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(y, cols)``: ``y`` ``(n, ho, wo, filters)`` and the im2col columns, which the backward pass
    reuses: returned when ``keep_cols`` and they fit in :data:`COLS_BYTES`, else None (then
    they are made chunk by chunk of samples in one reused buffer, here and in the backward pass).
    Runs per part of the samples (:func:`funcnn.parallel.map_parts`)."""
    kh, kw, c, f = W.shape
    (ho, wo), _ = _out_hw(x.shape, (kh, kw), stride, pads)
    n = x.shape[0]
    out, target = _c_buffer(out, (n, ho, wo, f), x.dtype)
    keep = keep_cols and _chunk_rows(n, ho * wo * kh * kw * c * x.dtype.itemsize) == n
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=x.dtype) if keep else None
    map_parts(lambda a, z: _conv2d_forward_part(x[a:z], W, b, stride, pads, out[a:z],
                                                None if cols is None else cols[a:z]), n)
    return _done(out, target), cols


def _conv2d_forward_part(x, W, b, stride, pads, y, cols) -> None:
    """The forward pass of samples ``x`` into ``y`` (C-contiguous); through ``cols`` when given, else
    chunk by chunk of samples (the last chunk overlapping: every GEMM has one height)."""
    kh, kw, c, f = W.shape
    k = kh * kw * c
    W2 = W.reshape(k, f)
    if cols is not None:
        im2col(x, (kh, kw), stride, pads, out=cols)
        np.matmul(cols.reshape(-1, k), W2, out=y.reshape(-1, f))
    else:
        n, ho, wo = y.shape[:3]
        step = _chunk_rows(n, ho * wo * k * x.dtype.itemsize)
        buf = np.empty((step, ho, wo, kh, kw, c), dtype=x.dtype)
        for start in range(0, n, step):
            start = min(start, n - step)
            cb = im2col(x[start:start + step], (kh, kw), stride, pads, out=buf)
            np.matmul(cb.reshape(-1, k), W2, out=y[start:start + step].reshape(-1, f))
    rows = _rows(y)
    rows += _tiled(b, rows)


def conv2d_backward(cols: Optional[np.ndarray], x: Optional[np.ndarray], x_shape: Tuple[int, ...], W: np.ndarray,
                    g: np.ndarray, stride: Pair, pads: Pads, need_dx: bool,
                    out: Optional[Dict[str, np.ndarray]] = None
                    ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """``(dx, dW, db)`` from the forward's columns (or, when it kept none, its input ``x``) and
    ``g`` = d loss / d y (``dx`` None without ``need_dx``).

    Per part of the samples (:func:`funcnn.parallel.map_parts`): that part's input gradient, and
    its kernel and bias gradients, summed over the parts in order. ``out`` may hold ``"dx"``,
    ``"W"`` and ``"b"`` buffers (C-contiguous).
    """
    out = out or {}
    kh, kw, c, f = W.shape
    n = g.shape[0]
    dx = None
    if need_dx:
        dx = out.get("dx")
        dx = np.empty(x_shape, dtype=g.dtype) if dx is None else dx
    bounds = parts(n)
    dW, db = out.get("W"), out.get("b")
    dW = np.empty((kh, kw, c, f), dtype=g.dtype) if dW is None else dW
    db = np.empty((f,), dtype=g.dtype) if db is None else db
    one = len(bounds) == 1

    def part(a, z):
        pW = dW if one else np.empty_like(dW)
        pb = db if one else np.empty_like(db)
        _conv2d_backward_part(None if cols is None else cols[a:z], None if x is None else x[a:z],
                              (z - a,) + tuple(x_shape[1:]), W, g[a:z], stride, pads,
                              None if dx is None else dx[a:z], pW, pb)
        return pW, pb
    results = map_parts(part, n)
    if not one:
        np.add(results[0][0], results[1][0], out=dW)
        np.add(results[0][1], results[1][1], out=db)
        for pW, pb in results[2:]:
            dW += pW
            db += pb
    return dx, dW, db


def _conv2d_backward_part(cols, x, x_shape, W, g, stride, pads, dx, dW, db) -> None:
    """The gradients of samples ``g`` into ``dW``, ``db`` (C-contiguous) and, unless None, ``dx``."""
    kh, kw, c, f = W.shape
    k = kh * kw * c
    n, ho, wo = g.shape[:3]
    g2 = g.reshape(n * ho * wo, f)
    dW2 = dW.reshape(k, f)
    if cols is not None:
        # cols.T @ g (not (g.T @ cols).T: with 2 OpenBLAS threads that shape can take 50x longer for small k)
        np.matmul(cols.reshape(-1, k).T, g2, out=dW2)
    else:
        step = _chunk_rows(n, ho * wo * k * g.dtype.itemsize)
        buf = np.empty((step, ho, wo, kh, kw, c), dtype=g.dtype)
        part = np.empty((k, f), dtype=g.dtype)
        for start in range(0, n, step):
            stop = min(n, start + step)
            cb = im2col(x[start:stop], (kh, kw), stride, pads, out=buf[:stop - start])
            gc = g[start:stop].reshape(-1, f)
            if start == 0:
                np.matmul(cb.reshape(-1, k).T, gc, out=dW2)
            else:
                np.matmul(cb.reshape(-1, k).T, gc, out=part)
                dW2 += part
    _column_sums(g2, out=db)
    if dx is not None:
        conv2d_input_grad(g, W, x_shape, stride, pads, out=dx)


def conv2d_input_grad(g: np.ndarray, W: np.ndarray, x_shape: Tuple[int, ...], stride: Pair, pads: Pads,
                      out: Optional[np.ndarray] = None) -> np.ndarray:
    """d loss / d x of the convolution: per kernel offset ``(i, j)``, the GEMM ``g @ W[i, j].T``
    ``(n*ho*wo, c_in)`` added onto the strided slice of the (padded) input it was read from.

    The same sums as ``col2im(g @ W.T)`` without the columns-sized intermediate: one
    ``(n*ho*wo, c_in)`` scratch array is reused for every offset.
    """
    n, ho, wo, f = g.shape
    kh, kw, c, _ = W.shape
    sh, sw = stride
    (t, b), (l, r) = pads
    h, w = x_shape[1], x_shape[2]
    padded = bool(t or b or l or r)
    if padded or out is None:
        dxp = np.zeros((n, h + t + b, w + l + r, c), dtype=g.dtype)
    else:
        dxp = out
        dxp.fill(0)
    g2 = g.reshape(n * ho * wo, f)
    part = np.empty((n * ho * wo, c), dtype=g.dtype)
    part4 = part.reshape(n, ho, wo, c)
    for i in range(kh):
        rows = _window(i, sh, ho)
        for j in range(kw):
            np.matmul(g2, W[i, j].T, out=part)
            dxp[:, rows, _window(j, sw, wo), :] += part4
    if not padded:
        return dxp
    inner = dxp[:, t:t + h, l:l + w, :]
    if out is None:
        return np.ascontiguousarray(inner)
    out[...] = inner
    return out


# --------------------------------------------------------------------------- pooling

def _pool_setup(x_shape, size, stride):
    ho, wo = pool_geometry((x_shape[1], x_shape[2]), size, stride)
    return ho, wo, [(i, j, _window(i, stride[0], ho), _window(j, stride[1], wo))
                    for i in range(size[0]) for j in range(size[1])]


def max_pool_forward(x: np.ndarray, size: Pair, stride: Pair, out: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """``(y, which)``: window maxima and, per output, the row-major index in its window of the
    first maximum (uint8 for windows up to 256 elements, else intp). Per part of the samples."""
    n, _, _, c = x.shape
    ho, wo, offsets = _pool_setup(x.shape, size, stride)
    if out is None:
        out = np.empty((n, ho, wo, c), dtype=x.dtype)
    itype = np.uint8 if size[0] * size[1] <= 256 else np.intp
    which = np.zeros((n, ho, wo, c), dtype=itype)
    map_parts(lambda a, z: _max_pool_part(x[a:z], offsets, out[a:z], which[a:z]), n)
    return out, which


def _max_pool_part(x, offsets, out, which) -> None:
    _, _, rows, cols_ = offsets[0]
    out[...] = x[:, rows, cols_, :]
    better = np.empty(out.shape, dtype=bool)
    step = np.empty(out.shape, dtype=which.dtype)
    for k, (_, _, rows, cols_) in enumerate(offsets[1:], start=1):
        s = x[:, rows, cols_, :]
        np.greater(s, out, out=better)  # strictly: ties keep the earlier offset
        np.maximum(out, s, out=out)
        # which = k where better, else unchanged: which += better * (k - which), in integers
        # (several times faster than np.copyto(which, k, where=better))
        np.subtract(k, which, out=step, dtype=which.dtype, casting="unsafe")
        step *= better
        which += step


def max_pool_backward(which: np.ndarray, g: np.ndarray, x_shape: Tuple[int, ...], size: Pair, stride: Pair,
                      out: Optional[np.ndarray] = None) -> np.ndarray:
    """d loss / d x: each output's gradient goes to the first maximum of its window. Per part of the samples."""
    _, _, offsets = _pool_setup(x_shape, size, stride)
    dx = _pool_grad_buffer(x_shape, g, size, stride, out)
    tiles = _tiles(x_shape, g.shape, size, stride)
    map_parts(lambda a, z: _max_pool_grad_part(which[a:z], g[a:z], offsets, tiles, dx[a:z]), g.shape[0])
    return dx


def _max_pool_grad_part(which, g, offsets, tiles, dx) -> None:
    hit = np.empty(g.shape, dtype=bool)
    part = None if tiles else np.empty_like(g)
    for k, (_, _, rows, cols_) in enumerate(offsets):
        np.equal(which, k, out=hit)
        if part is None:  # windows do not overlap: each position is written once
            np.multiply(g, hit, out=dx[:, rows, cols_, :])
        else:
            np.multiply(g, hit, out=part)
            dx[:, rows, cols_, :] += part


def _tiles(x_shape, y_shape, size, stride) -> bool:
    """Whether the windows tile the input exactly (no overlap, no gap, nothing dropped)."""
    return tuple(size) == tuple(stride) and x_shape[1] == y_shape[1] * size[0] and x_shape[2] == y_shape[2] * size[1]


def _pool_grad_buffer(x_shape, g, size, stride, out):
    """The input-gradient array: zeroed unless every position is written exactly once."""
    if _tiles(x_shape, g.shape, size, stride):
        return np.empty(x_shape, dtype=g.dtype) if out is None else out
    if out is None:
        return np.zeros(x_shape, dtype=g.dtype)
    out.fill(0)
    return out


def avg_pool_forward(x: np.ndarray, size: Pair, stride: Pair, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Window means (the sum of the ``ph*pw`` offsets' slices, divided by ``ph*pw``). Per part of the samples."""
    n, _, _, c = x.shape
    ho, wo, offsets = _pool_setup(x.shape, size, stride)
    if out is None:
        out = np.empty((n, ho, wo, c), dtype=x.dtype)
    map_parts(lambda a, z: _avg_pool_part(x[a:z], offsets, 1.0 / (size[0] * size[1]), out[a:z]), n)
    return out


def _avg_pool_part(x, offsets, scale, out) -> None:
    _, _, rows, cols_ = offsets[0]
    out[...] = x[:, rows, cols_, :]
    for _, _, rows, cols_ in offsets[1:]:
        out += x[:, rows, cols_, :]
    out *= scale


def avg_pool_backward(g: np.ndarray, x_shape: Tuple[int, ...], size: Pair, stride: Pair,
                      out: Optional[np.ndarray] = None) -> np.ndarray:
    """d loss / d x: each output's gradient spread evenly over its window. Per part of the samples."""
    _, _, offsets = _pool_setup(x_shape, size, stride)
    dx = _pool_grad_buffer(x_shape, g, size, stride, out)
    tiles = _tiles(x_shape, g.shape, size, stride)
    map_parts(lambda a, z: _avg_pool_grad_part(g[a:z], offsets, 1.0 / (size[0] * size[1]), tiles, dx[a:z]),
              g.shape[0])
    return dx


def _avg_pool_grad_part(g, offsets, scale, tiles, dx) -> None:
    part = np.multiply(g, scale)
    for _, _, rows, cols_ in offsets:
        if tiles:
            dx[:, rows, cols_, :] = part
        else:
            dx[:, rows, cols_, :] += part


# --------------------------------------------------------------------------- batch norm

def _column_sums(a2: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Sums over the rows of an ``(m, c)`` array: one BLAS matrix-vector product with ones
    (on tall, narrow arrays several times faster than ``np.add.reduce(a2, axis=0)``)."""
    return np.matmul(np.ones(a2.shape[0], dtype=a2.dtype), a2, out=out)


def _product_sums(a: np.ndarray, b: np.ndarray, c: int) -> np.ndarray:
    """Per-channel ``sum(a * b)`` of two ``_rows`` views of ``c`` channels: ``einsum`` multiplies and adds in
    one pass, with no product array (a multiply, then column sums, reads and writes that array too), then the
    row's channel groups are added."""
    sums = np.einsum("ij,ij->j", a, b)
    return sums.reshape(-1, c).sum(axis=0) if sums.shape[0] != c else sums


def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` (C-contiguous) seen as rows of its last two axes (its last axis when 2-D): per-channel
    vectors, tiled to that length with :func:`_tiled`, then broadcast over long rows, which NumPy
    runs several times faster than over rows of a few channels."""
    return a.reshape(-1, a.shape[-1] * (a.shape[-2] if a.ndim > 2 else 1))


def _tiled(v: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.tile(v, rows.shape[1] // v.shape[0])


def _c_buffer(out: Optional[np.ndarray], shape, dtype) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(where to compute, where to copy it afterwards)``: ``out`` itself when it is C-contiguous
    (the functions here reshape their results), else a new array, copied into ``out`` at the end."""
    if out is None:
        return np.empty(shape, dtype=dtype), None
    if out.flags.c_contiguous:
        return out, None
    return np.empty(shape, dtype=dtype), out


def _done(result: np.ndarray, target: Optional[np.ndarray]) -> np.ndarray:
    if target is None:
        return result
    target[...] = result
    return target


def _part_sums(fn, x: np.ndarray) -> np.ndarray:
    """``fn(start, stop)`` (a per-channel vector) summed over the parts of ``x``
    (:func:`funcnn.parallel.map_large`), in order."""
    sums = map_large(fn, x)
    total = sums[0]
    for s in sums[1:]:
        total += s
    return total


def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, training: bool,
                       running_mean: np.ndarray, running_var: np.ndarray, out: Optional[np.ndarray] = None
                       ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """``(y, cache)``: ``y = (x - mean) * (gamma / sqrt(var + eps)) + beta`` over the last axis.

    Training: ``mean`` and ``var`` are the batch's (over every axis but the last; the biased
    variance ``mean((x - mean)**2)``, as torch.nn.BatchNorm in training mode; the sums of ``x`` by
    BLAS, those of the squares by ``einsum``).
    Inference: the running statistics. From :data:`funcnn.parallel.PART_BYTES` of input on, every pass runs
    per part of the samples (:func:`funcnn.parallel.map_parts`) and the sums are the parts'
    sums added in order. ``out`` may be ``x`` itself (each part is read before it is written). The cache holds
    ``xc = x - mean`` (a new array), ``inv_std = 1 / sqrt(var + eps)``, the statistics used and
    the mode.
    """
    x = np.ascontiguousarray(x)
    c = x.shape[-1]
    m = x.size // c
    mean = _part_sums(lambda a, z: _column_sums(x[a:z].reshape(-1, c)), x) / m if training else running_mean
    xc = np.empty(x.shape, dtype=x.dtype)
    y, target = _c_buffer(out, x.shape, x.dtype)  # may be x: each part of x is read before it is written
    mean_t = _tiled(mean, _rows(x))

    def center(a, z):  # xc = x - mean; training: the sums of its squares
        xcr = np.subtract(_rows(x[a:z]), mean_t, out=_rows(xc[a:z]))
        if training:
            return _product_sums(xcr, xcr, c)
    if training:
        var = _part_sums(center, x) / m
    else:
        map_large(center, x)
        var = running_var
    inv_std = np.add(var, eps)
    np.sqrt(inv_std, out=inv_std)
    np.divide(1.0, inv_std, out=inv_std)
    scale_t, beta_t = _tiled(gamma * inv_std, _rows(x)), _tiled(beta, _rows(x))

    def normalize(a, z):
        yr = np.multiply(_rows(xc[a:z]), scale_t, out=_rows(y[a:z]))
        yr += beta_t
    map_large(normalize, x)
    return _done(y, target), {"xc": xc, "inv_std": inv_std, "mean": mean, "var": var, "training": bool(training)}


def batch_norm_backward(cache: Dict[str, Any], gamma: np.ndarray, g: np.ndarray,
                        out: Optional[Dict[str, np.ndarray]] = None
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)``. ``out`` may hold ``"dx"`` (which may be ``g`` itself), ``"gamma"``, ``"beta"``.

    With ``xhat = xc * inv_std``: ``dgamma = sum(g * xhat)``, ``dbeta = sum(g)``, and in training mode
    (the batch statistics depend on x) ``dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat))``;
    in inference mode ``dx = gamma * inv_std * g``. From :data:`funcnn.parallel.PART_BYTES` of ``g`` on, the
    sums and ``dx`` run per part of the samples, the sums added over the parts in order.
    """
    out = out or {}
    xc, inv_std = cache["xc"], cache["inv_std"]
    g = np.ascontiguousarray(g)
    c = g.shape[-1]
    m = g.size // c

    def sums(a, z):  # [sum(g * xc), sum(g)] of the part's rows, one (2, c) array
        both = np.empty((2, c), dtype=g.dtype)
        both[0] = _product_sums(_rows(g[a:z]), _rows(xc[a:z]), c)
        _column_sums(g[a:z].reshape(-1, c), out=both[1])
        return both
    total = _part_sums(sums, g)
    dgamma, dbeta = total[0] * inv_std, total[1].copy()
    scale = gamma * inv_std
    scale_t = _tiled(scale, _rows(g))
    training = cache["training"]
    if training:
        # dx = g * scale - (xc * (scale * inv_std * mean(g * xhat)) + scale * mean(g))
        slope_t, shift_t = _tiled(scale * inv_std * (dgamma / m), _rows(g)), _tiled(scale * (dbeta / m), _rows(g))
    dx, target = _c_buffer(out.get("dx"), g.shape, g.dtype)  # may be g: each part read before written

    def grad(a, z):
        gr, dxr = _rows(g[a:z]), _rows(dx[a:z])
        if training:
            tmp = np.multiply(_rows(xc[a:z]), slope_t)  # scratch
            tmp += shift_t
            np.multiply(gr, scale_t, out=dxr)
            dxr -= tmp
        else:
            np.multiply(gr, scale_t, out=dxr)
    map_large(grad, g)
    dx = _done(dx, target)
    if "gamma" in out:
        out["gamma"][...] = dgamma
        dgamma = out["gamma"]
    if "beta" in out:
        out["beta"][...] = dbeta
        dbeta = out["beta"]
    return dx, dgamma, dbeta


def batch_norm_running(running: np.ndarray, batch: np.ndarray, momentum: float) -> np.ndarray:
    """``momentum * running + (1 - momentum) * batch`` (a new array of ``running``'s dtype)."""
    new = np.multiply(running, momentum)
    new += np.multiply(batch, 1.0 - momentum)
    return new.astype(running.dtype, copy=False)
