"""Array numerics of the sequence layers: embeddings, layer norm, multi-head self-attention.

Pure functions on NumPy arrays that know nothing about layer specs (``funcnn.layers`` wraps
them, as it wraps :mod:`funcnn.conv` for images). Layouts are fixed:

* token batches ``ids``: ``(n, T)`` integers; sequence batches ``x``: ``(n, T, d)``;
* an embedding table ``E``: ``(V, d)``; learned positions ``P``: ``(L, d)``;
* attention weights ``Wq, Wk, Wv, Wo``: ``(d, d)`` in funcnn's ``(n_in, n_out)`` layout,
  biases ``(d,)``; heads split the projected features in order (head ``j`` owns features
  ``j*dh .. (j+1)*dh - 1``, ``dh = d / h``), as ``torch.nn.MultiheadAttention`` does.

Attention is batched matrix products over ``(n*h, T, dh)``: no Python loop over samples, heads
or positions. Its softmax (:func:`masked_softmax`) adds a large finite negative number to the
scores a query may not see and subtracts each row's maximum, so exp never overflows, masked
entries become exactly 0 and no ``-inf`` or NaN appears. With a causal mask every row sees at
least its own position.

Every function follows NumPy's ``out=`` idiom where it returns an array of its input's size;
inputs are never modified.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["check_ids", "embedding_forward", "embedding_backward", "positional_forward", "positional_backward",
           "layer_norm_forward", "layer_norm_backward", "attention_forward", "attention_backward",
           "causal_mask", "masked_softmax", "sample"]


# --------------------------------------------------------------------------- embeddings

def check_ids(ids: np.ndarray, vocab: int, where: str = "embedding") -> None:
    """TypeError unless ``ids`` is an integer array; ValueError naming the sample and position of
    the first id outside ``[0, vocab)``."""
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        kind = ids.dtype if isinstance(ids, np.ndarray) else type(ids).__name__
        raise TypeError(f"{where}: token ids must be an integer array, got {kind}; pass integer ids "
                        "(e.g. X.astype(np.int64)), not floats")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        bad = np.argwhere((ids < 0) | (ids >= vocab))[0]
        at = f"sample {int(bad[0])}" + (f", position {int(bad[1])}" if ids.ndim > 1 else "")
        raise ValueError(f"{where}: token id {ids[tuple(bad)].item()} at {at} is outside the vocabulary "
                         f"[0, {vocab})")


def embedding_forward(E: np.ndarray, ids: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``E[ids]``: ids (n, T) ints → (n, T, d) (rows of the table, a new array or ``out``)."""
    return np.take(E, ids, axis=0, out=out, mode="clip")  # ids were checked; "clip" needs no buffer


def embedding_backward(ids: np.ndarray, g: np.ndarray, vocab: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """dE (V, d): ``dE[t] = sum of g at every position holding token t`` (a scatter-add).

    One ``np.bincount`` over the flat indices ``t * d + j``: 4x faster than ``np.add.at`` at a
    (2048, 64) batch, and it sums in float64 in position order, rounded once to g's dtype.
    """
    d = g.shape[-1]
    flat = np.multiply(ids.reshape(-1, 1), d, dtype=np.intp)
    flat = flat + np.arange(d, dtype=np.intp)
    sums = np.bincount(flat.reshape(-1), weights=g.reshape(-1), minlength=vocab * d).reshape(vocab, d)
    if out is None:
        return sums.astype(g.dtype, copy=False)
    np.copyto(out, sums, casting="same_kind")
    return out


def positional_forward(x: np.ndarray, P: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``x + P[:T]`` for x (n, T, d); ``out`` may be ``x``."""
    return np.add(x, P[:x.shape[1]], out=out)


def positional_backward(g: np.ndarray, max_len: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """dP (L, d): the sum of g over samples in rows 0..T-1, zeros after."""
    T = g.shape[1]
    dP = np.empty((max_len,) + g.shape[2:], dtype=g.dtype) if out is None else out
    np.add.reduce(g, axis=0, out=dP[:T])
    dP[T:] = 0
    return dP


# --------------------------------------------------------------------------- layer norm

def _rows(a: np.ndarray) -> np.ndarray:
    """``a`` as a 2-D (rows, last axis) view (a copy only when it is not contiguous)."""
    return a.reshape(-1, a.shape[-1])


def layer_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
                       out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the last axis (biased variance, as
    ``torch.nn.LayerNorm``); returns ``(y, cache)`` with the normalised ``xhat`` and ``1/std``.
    ``out`` may be ``x`` (the cache holds ``xhat``, a new array)."""
    mean = np.add.reduce(x, axis=-1, keepdims=True)
    mean /= x.shape[-1]
    xhat = np.subtract(x, mean)
    var = np.multiply(xhat, xhat)
    var = np.add.reduce(var, axis=-1, keepdims=True)
    var /= x.shape[-1]
    var += eps
    rstd = np.sqrt(var, out=var)
    np.divide(1.0, rstd, out=rstd)
    xhat *= rstd
    y = np.multiply(xhat, gamma, out=out)
    y += beta
    return y, {"xhat": xhat, "rstd": rstd}


def layer_norm_backward(cache: Dict[str, np.ndarray], gamma: np.ndarray, g: np.ndarray,
                        out: Optional[Dict[str, np.ndarray]] = None
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)``; ``dx = rstd (gh - mean(gh) - xhat mean(gh xhat))`` with ``gh = g gamma``.
    ``out`` may hold ``"dx"`` (which may be ``g``), ``"gamma"``, ``"beta"``."""
    out = out or {}
    xhat, rstd = cache["xhat"], cache["rstd"]
    g2, xh2 = _rows(g), _rows(xhat)
    dgamma = np.add.reduce(g2 * xh2, axis=0, out=out.get("gamma"))
    dbeta = np.add.reduce(g2, axis=0, out=out.get("beta"))
    gh = np.multiply(g, gamma)
    d = g.shape[-1]
    m1 = np.add.reduce(gh, axis=-1, keepdims=True)
    m1 /= d
    m2 = np.multiply(gh, xhat)
    m2 = np.add.reduce(m2, axis=-1, keepdims=True)
    m2 /= d
    gh -= m1
    dx = np.multiply(xhat, m2, out=out.get("dx"))  # may overwrite g: g is not read after this
    np.subtract(gh, dx, out=dx)
    dx *= rstd
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- attention

def causal_mask(T: int) -> np.ndarray:
    """(T, T) booleans, True where query ``i`` may see key ``j`` (``j <= i``)."""
    return np.tri(T, dtype=bool)


# Added to the scores a query may not see: finite in float32 and float64, so no -inf enters the
# arithmetic, and far enough below any real score that its exp underflows to exactly 0.
MASKED = -1e30


def masked_softmax(s: np.ndarray, mask: Optional[np.ndarray], out: Optional[np.ndarray] = None) -> np.ndarray:
    """Softmax over the last axis of ``s`` restricted to ``mask`` (broadcast; None: every key), 0 elsewhere.

    Masked scores get :data:`MASKED` added, then the row maximum is subtracted (exp never
    overflows) and exp sends the masked entries to exactly 0. A row must see at least one key
    (a causal row sees its own position). ``out`` may be ``s``.
    """
    if mask is None:
        z = np.subtract(s, np.maximum.reduce(s, axis=-1, keepdims=True), out=out)
    else:
        z = np.add(s, np.where(mask, 0, MASKED).astype(s.dtype), out=out)
        z -= np.maximum.reduce(z, axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=-1, keepdims=True)
    return z


def _split_heads(a2: np.ndarray, n: int, T: int, h: int) -> np.ndarray:
    """(n*T, d) → (n*h, T, dh), contiguous (head j: features j*dh .. (j+1)*dh - 1)."""
    d = a2.shape[-1]
    return np.ascontiguousarray(a2.reshape(n, T, h, d // h).transpose(0, 2, 1, 3)).reshape(n * h, T, d // h)


def _merge_heads(a: np.ndarray, n: int, h: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """(n*h, T, dh) → (n*T, h*dh), the inverse of :func:`_split_heads` (into ``out`` when given)."""
    _, T, dh = a.shape
    src = a.reshape(n, h, T, dh).transpose(0, 2, 1, 3)
    if out is None:
        return np.ascontiguousarray(src).reshape(n * T, h * dh)
    out.reshape(n, T, h, dh)[...] = src
    return out


def attention_forward(x: np.ndarray, p: Dict[str, np.ndarray], heads: int, causal: bool,
                      out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Multi-head self-attention, ``torch.nn.MultiheadAttention(d, h, batch_first=True)``'s arithmetic.

    x (n, T, d) → y (n, T, d): ``q, k, v = x Wq + bq, x Wk + bk, x Wv + bv`` split into heads;
    per head ``A = softmax(q kᵀ / sqrt(dh))`` (keys after the query masked when ``causal``),
    ``o = A v``; heads merged, ``y = o Wo + bo``. Returns ``(y, cache)``.
    """
    n, T, d = x.shape
    h = heads
    x2 = _rows(x)
    W = np.concatenate((p["Wq"], p["Wk"], p["Wv"]), axis=1)  # (d, 3d): one GEMM for q, k and v
    qkv = x2 @ W
    qkv[:, :d] += p["bq"]
    qkv[:, d:2 * d] += p["bk"]
    qkv[:, 2 * d:] += p["bv"]
    q, k, v = (_split_heads(qkv[:, i * d:(i + 1) * d], n, T, h) for i in range(3))
    scale = 1.0 / np.sqrt(d // h)
    s = np.matmul(q, k.transpose(0, 2, 1))  # (n*h, T, T)
    s *= scale
    mask = causal_mask(T) if causal else None
    A = masked_softmax(s, mask, out=s)
    o = _merge_heads(np.matmul(A, v), n, h)  # (n*T, d)
    y = np.matmul(o, p["Wo"], out=None if out is None else _rows(out))
    y += p["bo"]
    return y.reshape(n, T, d) if out is None else out, {"x": x, "q": q, "k": k, "v": v, "A": A, "o": o,
                                                         "scale": scale, "heads": h}


def attention_backward(cache: Dict[str, Any], p: Dict[str, np.ndarray], g: np.ndarray, need_dx: bool,
                       out: Optional[Dict[str, np.ndarray]] = None
                       ) -> Tuple[Optional[np.ndarray], Dict[str, np.ndarray]]:
    """``(dx, grads)`` of :func:`attention_forward` for ``g`` = d loss / d y (n, T, d).

    ``dS = A (dA - sum_keys(dA A))`` is the softmax's Jacobian-vector product; masked entries
    have ``A = 0`` and so get no gradient. ``out`` may hold ``"dx"`` and a buffer per param name.
    """
    out = out or {}
    x, q, k, v, A, o, scale, h = (cache[name] for name in ("x", "q", "k", "v", "A", "o", "scale", "heads"))
    n, T, d = x.shape
    g2, x2 = _rows(g), _rows(x)
    grads = {"Wo": np.matmul(o.T, g2, out=out.get("Wo")), "bo": np.add.reduce(g2, axis=0, out=out.get("bo"))}
    do = _split_heads(g2 @ p["Wo"].T, n, T, h)          # (n*h, T, dh)
    dA = np.matmul(do, v.transpose(0, 2, 1))            # (n*h, T, T)
    dv = np.matmul(A.transpose(0, 2, 1), do)
    t = np.multiply(dA, A)
    dA -= np.add.reduce(t, axis=-1, keepdims=True)
    dA *= A
    dA *= scale                                         # dS: d loss / d (q kᵀ)
    dq = np.matmul(dA, k)
    dk = np.matmul(dA.transpose(0, 2, 1), q)
    dqkv = np.empty((n * T, 3 * d), dtype=g.dtype)
    for i, part in enumerate((dq, dk, dv)):
        _merge_heads(part, n, h, out=dqkv[:, i * d:(i + 1) * d])
    for i, name in enumerate(("q", "k", "v")):
        part = dqkv[:, i * d:(i + 1) * d]
        grads["W" + name] = np.matmul(x2.T, part, out=out.get("W" + name))
        grads["b" + name] = np.add.reduce(part, axis=0, out=out.get("b" + name))
    dx = None
    if need_dx:
        W = np.concatenate((p["Wq"], p["Wk"], p["Wv"]), axis=1)
        dx_out = out.get("dx")
        dx2 = np.matmul(dqkv, W.T, out=None if dx_out is None else _rows(dx_out))
        dx = dx2.reshape(n, T, d) if dx_out is None else dx_out
    order = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")
    return dx, {name: grads[name] for name in order}


# --------------------------------------------------------------------------- generation

def _layer_dicts(node: Any):
    """Every layer dict in a spec, blocks' inner layers included (depth first)."""
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for v in node.values():
            if isinstance(v, (list, dict)):
                yield from _layer_dicts(v)
    elif isinstance(node, list):
        for item in node:
            yield from _layer_dicts(item)


def sample(spec, params, prompt: Any, n: int, *, temperature: float = 1.0, seed: Any = 0,
           context: Optional[int] = None) -> np.ndarray:
    """``n`` new token ids after ``prompt`` (1-D ids), drawn from a causal language model.

    At each step the network sees the last ``context`` ids (by default the positional layer's
    ``max_len``), its logits at the last position are divided by ``temperature`` and one id is
    drawn from their softmax with ``seed``'s generator (``temperature=0``: the argmax). Returns
    the prompt followed by the ``n`` ids (int64). Pure: the same seed gives the same ids.
    """
    from .network import forward
    from .validation import as_rng, check_number
    check_number(n, "n", low=0, integer=True)
    temperature = float(check_number(temperature, "temperature", low=0.0))
    ids = np.asarray(prompt)
    if ids.ndim != 1 or ids.shape[0] == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"prompt must be a non-empty 1-D array of integer ids, got {ids.dtype} of shape {ids.shape}")
    if context is None:
        lens = [int(layer["max_len"]) for layer in _layer_dicts(spec) if layer.get("type") == "positional"]
        if not lens:
            raise ValueError("the spec has no positional layer: pass context= (how many ids the network sees)")
        context = lens[0]
    context = check_number(context, "context", low=1, integer=True)
    rng = as_rng(seed)
    seq = list(ids.astype(np.int64))
    for _ in range(int(n)):
        window = np.asarray(seq[-context:], dtype=np.int64)[None, :]
        logits = forward(spec, params, window)[0][0, -1].astype(np.float64)
        if temperature == 0.0:
            nxt = int(np.argmax(logits))
        else:
            z = logits / temperature
            z -= z.max()
            prob = np.exp(z)
            prob /= prob.sum()
            nxt = int(rng.choice(prob.shape[0], p=prob))
        seq.append(nxt)
    return np.asarray(seq, dtype=np.int64)
