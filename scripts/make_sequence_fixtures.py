"""Regenerate tests/data/torch_sequence.npz: PyTorch's numbers (float64) for funcnn's sequence layers.

    python scripts/make_sequence_fixtures.py [--out PATH]

tests/test_sequence.py compares funcnn against the file without torch, and where torch is
installed rebuilds the arrays in memory with :func:`build` and checks the stored file is
current. funcnn is not imported here: each case names its spec as the JSON funcnn reads and its
params by funcnn's documented keys (``E_0``, ``Wq_2.body.1``, ...), computed by torch modules:

* ``embedding``: ``nn.Embedding`` (repeated ids): output and ``dE`` for a given grad_output;
* ``positional``: ``[embedding, positional]``: ``E[ids] + P[:T]``, with T < max_len;
* ``layer_norm_*``: ``nn.LayerNorm`` on (n, T, d) and on (n, d): output, dx, dgamma, dbeta;
* ``attention_*``: ``nn.MultiheadAttention(d, h, batch_first=True)`` with an upper-triangular
  boolean mask (causal) or none, h = 1, 2, 4 and T = 1; its ``in_proj_weight`` is
  ``[Wq; Wk; Wv]`` transposed, ``out_proj.weight`` is ``Wo`` transposed: output, dx, every grad;
* ``loss_*``: ``F.cross_entropy`` on (n, T, k) logits flattened to positions, unweighted (mean)
  and with (n, T) weights holding zeros (``sum(w l) / sum(w)``): value and d value / d logits;
* ``chain``: ``[embedding, positional, layer_norm, attention(causal), layer_norm, dense, gelu,
  dense]``, value and gradients of the position-weighted loss with l2 on the W matrices;
* ``block``: a pre-norm transformer, ``[embedding, positional, residual[layer_norm,
  attention(causal)], residual[layer_norm, dense, gelu, dense], layer_norm, dense]``: value and
  gradients of the weighted loss with l2.

Array keys: ``<case>/<field>`` (``X``, ``G`` grad_output, ``Y`` output, ``dX``, ``params/<key>``,
``grads/<key>``, ``value``); ``cases`` is the JSON description, ``{"torch": version, case: {...}}``
(the layout of tests/data/torch_blocks.npz). Byte-for-byte reproducible.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "torch_sequence.npz")
sys.path.insert(0, HERE)
from make_torch_fixtures import to_bytes  # noqa: E402  (the deterministic .npz writer)

def _torch():
    import torch
    torch.set_default_dtype(torch.float64)
    return torch


def t64(a, grad=False):
    torch = _torch()
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def np64(t) -> np.ndarray:
    return t.detach().numpy().astype(np.float64).copy()


def attention_params(rng, d, prefix="", path="0"):
    p = {f"{n}_{path}": rng.uniform(-0.6, 0.6, (d, d)) for n in ("Wq", "Wk", "Wv", "Wo")}
    p.update({f"{n}_{path}": rng.normal(0, 0.3, d) for n in ("bq", "bk", "bv", "bo")})
    return p


def torch_mha(ts, d, h, path):
    """An nn.MultiheadAttention holding funcnn's arrays ``ts`` (tensors keyed as funcnn's params)."""
    torch = _torch()
    m = torch.nn.MultiheadAttention(d, h, batch_first=True, bias=True)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.cat([ts[f"Wq_{path}"].T, ts[f"Wk_{path}"].T, ts[f"Wv_{path}"].T], 0))
        m.in_proj_bias.copy_(torch.cat([ts[f"bq_{path}"], ts[f"bk_{path}"], ts[f"bv_{path}"]]))
        m.out_proj.weight.copy_(ts[f"Wo_{path}"].T)
        m.out_proj.bias.copy_(ts[f"bo_{path}"])
    return m


def mha_apply(x, ts, d, h, causal, path):
    """torch's attention on x with the grads flowing to ``ts`` (functional, so autograd reaches them)."""
    torch = _torch()
    F = torch.nn.functional
    T = x.shape[1]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    W_in = torch.cat([ts[f"Wq_{path}"].T, ts[f"Wk_{path}"].T, ts[f"Wv_{path}"].T], 0)
    b_in = torch.cat([ts[f"bq_{path}"], ts[f"bk_{path}"], ts[f"bv_{path}"]])
    # F.multi_head_attention_forward is nn.MultiheadAttention's arithmetic; it takes (T, n, d)
    y, _ = F.multi_head_attention_forward(
        x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), d, h, W_in, b_in, None, None, False, 0.0,
        ts[f"Wo_{path}"].T, ts[f"bo_{path}"], training=False, need_weights=False, attn_mask=mask)
    return y.transpose(0, 1)


def layer_norm(x, ts, path, eps=1e-5):
    torch = _torch()
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), ts[f"gamma_{path}"], ts[f"beta_{path}"], eps)


def linear(x, ts, path):
    return x @ ts[f"W_{path}"] + ts[f"b_{path}"]


def grads(ts) -> Dict[str, np.ndarray]:
    return {f"grads/{k}": np64(t.grad) for k, t in ts.items()}


def seq_loss(out, y, w):
    torch = _torch()
    F = torch.nn.functional
    k = out.shape[-1]
    flat = F.cross_entropy(out.reshape(-1, k), torch.tensor(y.reshape(-1)), reduction="none")
    if w is None:
        return flat.mean()
    wt = t64(w.reshape(-1))
    return (flat * wt).sum() / wt.sum()


class Fixture:
    def __init__(self, version):
        self.arrays: Dict[str, np.ndarray] = {}
        self.meta: Dict[str, Any] = {"torch": version}

    def add(self, case, meta, arrays):
        assert case not in self.meta and case != "torch"
        self.meta[case] = meta
        for k, a in arrays.items():
            a = np.asarray(a)
            assert a.dtype in (np.float64, np.int64), (case, k, a.dtype)
            self.arrays[f"{case}/{k}"] = a.copy(order="C")

    def result(self):
        return {"cases": np.array(json.dumps(self.meta, sort_keys=True)), **self.arrays}


def case_embedding(fx):
    torch = _torch()
    rng = np.random.default_rng(1)
    V, d = 11, 4
    X = rng.integers(0, V, (3, 6)).astype(np.int64)
    X[1, :3] = X[0, 0]  # repeated ids accumulate
    E = rng.normal(size=(V, d))
    G = rng.normal(size=(3, 6, d))
    emb = torch.nn.Embedding(V, d)
    with torch.no_grad():
        emb.weight.copy_(t64(E))
    Y = emb(torch.tensor(X))
    Y.backward(t64(G))
    fx.add("embedding", {"kind": "layer", "spec": [{"type": "embedding", "vocab": V, "dim": d}]},
           {"X": X, "G": G, "Y": np64(Y), "params/E_0": E, "grads/E_0": np64(emb.weight.grad)})


def case_positional(fx):
    torch = _torch()
    rng = np.random.default_rng(2)
    V, d, L, T = 9, 4, 7, 5
    X = rng.integers(0, V, (2, T)).astype(np.int64)
    ts = {"E_0": t64(rng.normal(size=(V, d)), True), "P_1": t64(rng.normal(size=(L, d)), True)}
    G = rng.normal(size=(2, T, d))
    Y = torch.nn.functional.embedding(torch.tensor(X), ts["E_0"]) + ts["P_1"][:T]
    Y.backward(t64(G))
    fx.add("positional", {"kind": "layer", "spec": [{"type": "embedding", "vocab": V, "dim": d},
                                                    {"type": "positional", "max_len": L}]},
           {"X": X, "G": G, "Y": np64(Y), **{f"params/{k}": np64(t) for k, t in ts.items()}, **grads(ts)})


def case_layer_norm(fx):
    torch = _torch()
    for case, shape, eps in (("layer_norm_seq", (3, 5, 6), 1e-5), ("layer_norm_flat", (4, 7), 1e-3)):
        rng = np.random.default_rng(3 + len(shape))
        d = shape[-1]
        X = rng.normal(size=shape) * 3 + 1
        G = rng.normal(size=shape)
        ln = torch.nn.LayerNorm(d, eps=eps)
        with torch.no_grad():
            ln.weight.copy_(t64(rng.normal(1, 0.5, d)))
            ln.bias.copy_(t64(rng.normal(0, 0.5, d)))
        x = t64(X, True)
        Y = ln(x)
        Y.backward(t64(G))
        fx.add(case, {"kind": "layer", "spec": [{"type": "layer_norm", "eps": eps}]},
               {"X": X, "G": G, "Y": np64(Y), "dX": np64(x.grad), "params/gamma_0": np64(ln.weight),
                "params/beta_0": np64(ln.bias), "grads/gamma_0": np64(ln.weight.grad),
                "grads/beta_0": np64(ln.bias.grad)})


def case_attention(fx):
    torch = _torch()
    for i, (h, causal, T) in enumerate(((1, False, 5), (1, True, 5), (2, False, 6), (4, True, 6), (2, True, 1),
                                        (2, False, 1), (4, False, 3))):
        rng = np.random.default_rng(10 + i)
        n, d = 3, 8
        X = rng.normal(size=(n, T, d))
        G = rng.normal(size=(n, T, d))
        p = attention_params(rng, d)
        ts = {k: t64(v, True) for k, v in p.items()}
        x = t64(X, True)
        Y = mha_apply(x, ts, d, h, causal, "0")
        # the functional call is nn.MultiheadAttention's arithmetic: check it against the module
        m = torch_mha(ts, d, h, "0")
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
        Ym, _ = m(x, x, x, attn_mask=mask, need_weights=False)
        assert torch.allclose(Y, Ym, rtol=1e-12, atol=1e-12)
        Y.backward(t64(G))
        case = f"attention_h{h}_{'causal' if causal else 'full'}_T{T}"
        fx.add(case, {"kind": "layer", "spec": [{"type": "attention", "heads": h, "causal": causal}]},
               {"X": X, "G": G, "Y": np64(Y), "dX": np64(x.grad), **{f"params/{k}": v for k, v in p.items()},
                **grads(ts)})


def case_loss(fx):
    rng = np.random.default_rng(20)
    n, T, k = 3, 4, 5
    out = rng.normal(size=(n, T, k)) * 3
    y = rng.integers(0, k, (n, T)).astype(np.int64)
    w = rng.uniform(0.5, 2, (n, T))
    w[0, 3] = w[2, 2:] = 0  # padding positions
    for case, weights in (("loss_mean", None), ("loss_weighted", w)):
        o = t64(out, True)
        value = seq_loss(o, y, weights)
        value.backward()
        arrays = {"output": out, "y": y, "value": np64(value), "grad": np64(o.grad)}
        if weights is not None:
            arrays["w"] = weights
        fx.add(case, {"kind": "loss", "loss": "softmax_cross_entropy"}, arrays)


def _model_data(rng, n, T, V):
    X = rng.integers(0, V, (n, T)).astype(np.int64)
    y = rng.integers(0, V, (n, T)).astype(np.int64)
    w = np.ones((n, T))
    w[1, T - 2:] = 0
    w[2, T - 1] = 0
    return X, y, w


def case_chain(fx):
    torch = _torch()
    rng = np.random.default_rng(30)
    V, d, L, T, n, hidden, l2 = 7, 8, 6, 5, 3, 10, 0.01
    spec = [{"type": "embedding", "vocab": V, "dim": d}, {"type": "positional", "max_len": L},
            {"type": "layer_norm"}, {"type": "attention", "heads": 2, "causal": True}, {"type": "layer_norm"},
            {"type": "dense", "units": hidden}, {"type": "gelu"}, {"type": "dense", "units": V}]
    p = {"E_0": rng.normal(size=(V, d)), "P_1": rng.normal(0, 0.3, (L, d)),
         "gamma_2": rng.normal(1, 0.2, d), "beta_2": rng.normal(0, 0.2, d), **attention_params(rng, d, path="3"),
         "gamma_4": rng.normal(1, 0.2, d), "beta_4": rng.normal(0, 0.2, d),
         "W_5": rng.uniform(-0.5, 0.5, (d, hidden)), "b_5": rng.normal(0, 0.1, hidden),
         "W_7": rng.uniform(-0.5, 0.5, (hidden, V)), "b_7": rng.normal(0, 0.1, V)}
    X, y, w = _model_data(rng, n, T, V)
    ts = {k: t64(v, True) for k, v in p.items()}
    F = torch.nn.functional
    x = F.embedding(torch.tensor(X), ts["E_0"]) + ts["P_1"][:T]
    x = layer_norm(x, ts, "2")
    x = mha_apply(x, ts, d, 2, True, "3")
    x = layer_norm(x, ts, "4")
    x = linear(F.gelu(linear(x, ts, "5")), ts, "7")
    value = seq_loss(x, y, w) + l2 / 2 * sum((t ** 2).sum() for k, t in ts.items() if k[0] == "W")
    value.backward()
    fx.add("chain", {"kind": "model", "spec": spec, "loss": "softmax_cross_entropy", "l2": l2},
           {"X": X, "y": y, "w": w, "value": np64(value), **{f"params/{k}": v for k, v in p.items()}, **grads(ts)})


def case_block(fx):
    torch = _torch()
    rng = np.random.default_rng(40)
    V, d, L, T, n, hidden, l2 = 7, 8, 6, 6, 3, 16, 0.01
    spec = [{"type": "embedding", "vocab": V, "dim": d}, {"type": "positional", "max_len": L},
            {"type": "residual", "body": [{"type": "layer_norm"}, {"type": "attention", "heads": 2, "causal": True}]},
            {"type": "residual", "body": [{"type": "layer_norm"}, {"type": "dense", "units": hidden},
                                          {"type": "gelu"}, {"type": "dense", "units": d}]},
            {"type": "layer_norm"}, {"type": "dense", "units": V}]
    p = {"E_0": rng.normal(size=(V, d)), "P_1": rng.normal(0, 0.3, (L, d)),
         "gamma_2.body.0": rng.normal(1, 0.2, d), "beta_2.body.0": rng.normal(0, 0.2, d),
         **attention_params(rng, d, path="2.body.1"),
         "gamma_3.body.0": rng.normal(1, 0.2, d), "beta_3.body.0": rng.normal(0, 0.2, d),
         "W_3.body.1": rng.uniform(-0.5, 0.5, (d, hidden)), "b_3.body.1": rng.normal(0, 0.1, hidden),
         "W_3.body.3": rng.uniform(-0.5, 0.5, (hidden, d)), "b_3.body.3": rng.normal(0, 0.1, d),
         "gamma_4": rng.normal(1, 0.2, d), "beta_4": rng.normal(0, 0.2, d),
         "W_5": rng.uniform(-0.5, 0.5, (d, V)), "b_5": rng.normal(0, 0.1, V)}
    X, y, w = _model_data(rng, n, T, V)
    ts = {k: t64(v, True) for k, v in p.items()}
    F = torch.nn.functional
    x = F.embedding(torch.tensor(X), ts["E_0"]) + ts["P_1"][:T]
    x = x + mha_apply(layer_norm(x, ts, "2.body.0"), ts, d, 2, True, "2.body.1")
    x = x + linear(F.gelu(linear(layer_norm(x, ts, "3.body.0"), ts, "3.body.1")), ts, "3.body.3")
    x = linear(layer_norm(x, ts, "4"), ts, "5")
    value = seq_loss(x, y, w) + l2 / 2 * sum((t ** 2).sum() for k, t in ts.items() if k[0] == "W")
    value.backward()
    fx.add("block", {"kind": "model", "spec": spec, "loss": "softmax_cross_entropy", "l2": l2},
           {"X": X, "y": y, "w": w, "value": np64(value), **{f"params/{k}": v for k, v in p.items()}, **grads(ts)})


CASES = (case_embedding, case_positional, case_layer_norm, case_attention, case_loss, case_chain, case_block)


def build() -> Dict[str, np.ndarray]:
    torch = _torch()
    fx = Fixture(torch.__version__.split("+")[0])
    for make in CASES:
        make(fx)
    return fx.result()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT, help="where to write (default: tests/data/torch_sequence.npz)")
    args = parser.parse_args(argv)
    torch = _torch()
    torch.set_num_threads(1)
    data = to_bytes(build())
    path = os.path.abspath(args.out)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(data)} bytes")


if __name__ == "__main__":
    sys.exit(main())
