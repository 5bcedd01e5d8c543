"""Regenerate tests/data/reference_core.npz: outputs, losses and gradients of small networks
computed by an independent, deliberately naive implementation (pure Python floats and loops,
the chain rule written out element by element); funcnn is not imported.
tests/test_reference_fixtures.py compares funcnn against it.

    python scripts/make_reference_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "reference_core.npz")

ACT = {
    "relu": (lambda z: max(z, 0.0), lambda z, a: 1.0 if z > 0 else 0.0),
    "tanh": (math.tanh, lambda z, a: 1.0 - a * a),
    "sigmoid": (lambda z: 1.0 / (1.0 + math.exp(-z)), lambda z, a: a * (1.0 - a)),
    "identity": (lambda z: z, lambda z, a: 1.0),
    "leaky_relu": (lambda z: z if z > 0 else 0.2 * z, lambda z, a: 1.0 if z > 0 else 0.2),
}

CASES = {
    # name: (spec, loss, l2, weighted, dropout seed or None)
    "relu_tanh_softmax_ce": ([{"type": "dense", "units": 5}, {"type": "relu"}, {"type": "dense", "units": 4},
                              {"type": "tanh"}, {"type": "dense", "units": 3}], "softmax_cross_entropy", 0.1, False, None),
    "sigmoid_binary_ce": ([{"type": "dense", "units": 4}, {"type": "sigmoid"}, {"type": "dense", "units": 1}],
                          "binary_cross_entropy", 0.0, True, None),
    "leaky_mse": ([{"type": "dense", "units": 3}, {"type": "leaky_relu", "alpha": 0.2},
                   {"type": "dense", "units": 2}], "mean_squared_error", 0.05, True, None),
    "softmax_layer_identity_mse": ([{"type": "dense", "units": 4}, {"type": "softmax"}, {"type": "identity"},
                                    {"type": "dense", "units": 2}], "mean_squared_error", 0.0, False, None),
    "dropout_ce": ([{"type": "dense", "units": 6}, {"type": "relu"}, {"type": "dropout", "rate": 0.5},
                    {"type": "dense", "units": 3}], "softmax_cross_entropy", 0.0, False, 11),
}


def layer_forward(layer, Wb, rows, mask):
    """rows: list of lists. Returns (out rows, per-layer record for backward)."""
    t = layer["type"]
    if t == "dense":
        W, b = Wb
        out = [[sum(r[i] * W[i][j] for i in range(len(r))) + b[j] for j in range(len(b))] for r in rows]
        return out, rows
    if t == "softmax":
        out = []
        for r in rows:
            m = max(r)
            e = [math.exp(v - m) for v in r]
            s = sum(e)
            out.append([v / s for v in e])
        return out, out
    if t == "dropout":
        out = [[v * mk for v, mk in zip(r, mr)] for r, mr in zip(rows, mask)]
        return out, mask
    f, _ = ACT[t]
    out = [[f(v) for v in r] for r in rows]
    return out, (rows, out)


def layer_backward(layer, Wb, rec, g):
    t = layer["type"]
    if t == "dense":
        W, b = Wb
        x = rec
        gW = [[sum(x[n][i] * g[n][j] for n in range(len(x))) for j in range(len(b))] for i in range(len(W))]
        gb = [sum(g[n][j] for n in range(len(g))) for j in range(len(b))]
        gx = [[sum(g[n][j] * W[i][j] for j in range(len(b))) for i in range(len(W))] for n in range(len(g))]
        return gx, (gW, gb)
    if t == "softmax":
        out = rec
        gx = []
        for y, gr in zip(out, g):
            k = len(y)
            gx.append([sum(gr[j] * y[j] * ((1.0 if i == j else 0.0) - y[i]) for j in range(k)) for i in range(k)])
        return gx, None
    if t == "dropout":
        return [[v * mk for v, mk in zip(r, mr)] for r, mr in zip(g, rec)], None
    _, d = ACT[t]
    z, a = rec
    return [[gv * d(zv, av) for gv, zv, av in zip(gr, zr, ar)] for gr, zr, ar in zip(g, z, a)], None


def loss_and_grad(loss, out, y, w):
    n = len(out)
    tw = sum(w)
    if loss == "softmax_cross_entropy":
        value, grad = 0.0, []
        for r, label, wi in zip(out, y, w):
            m = max(r)
            lse = m + math.log(sum(math.exp(v - m) for v in r))
            value += wi * (lse - r[int(label)])
            p = [math.exp(v - lse) for v in r]
            grad.append([wi * (pj - (1.0 if j == int(label) else 0.0)) / tw for j, pj in enumerate(p)])
        return value / tw, grad
    if loss == "binary_cross_entropy":
        value, grad = 0.0, []
        for r, label, wi in zip(out, y, w):
            p = 1.0 / (1.0 + math.exp(-r[0]))
            value += -wi * (label * math.log(p) + (1 - label) * math.log(1 - p))
            grad.append([wi * (p - label) / tw])
        return value / tw, grad
    k = len(out[0])
    value = sum(wi * sum((o - t) ** 2 for o, t in zip(r, tr)) / k for r, tr, wi in zip(out, y, w)) / tw
    grad = [[wi * 2 * (o - t) / (k * tw) for o, t in zip(r, tr)] for r, tr, wi in zip(out, y, w)]
    return value, grad


def run_case(name, spec, loss, l2, weighted, dropout_seed, rng):
    n, d = 6, 3
    X = rng.normal(size=(n, d))
    params, n_in = {}, d
    for i, layer in enumerate(spec):
        if layer["type"] == "dense":
            params[f"W_{i}"] = rng.normal(size=(n_in, layer["units"])) * 0.8
            params[f"b_{i}"] = rng.normal(size=layer["units"]) * 0.3
            n_in = layer["units"]
    k = n_in
    y = {"softmax_cross_entropy": rng.integers(0, k, n).astype(float), "binary_cross_entropy":
         rng.integers(0, 2, n).astype(float), "mean_squared_error": rng.normal(size=(n, k))}[loss]
    w = rng.uniform(0.2, 2.0, n) if weighted else np.ones(n)
    # Dropout masks: the documented rule, kept with probability 1 - rate, from
    # np.random.default_rng(seed).random(shape) drawn in layer order, scaled by 1 / (1 - rate).
    drng = np.random.default_rng(dropout_seed) if dropout_seed is not None else None
    rows, recs = X.tolist(), []
    for i, layer in enumerate(spec):
        Wb = (params[f"W_{i}"].tolist(), params[f"b_{i}"].tolist()) if layer["type"] == "dense" else None
        mask = None
        if layer["type"] == "dropout":
            u = drng.random((n, len(rows[0])))
            mask = ((u >= layer["rate"]) / (1 - layer["rate"])).tolist()
        rows, rec = layer_forward(layer, Wb, rows, mask)
        recs.append(rec)
    output = np.array(rows)
    value, g = loss_and_grad(loss, rows, y.tolist(), w.tolist())
    value += 0.5 * l2 * sum(float((v ** 2).sum()) for key, v in params.items() if key.startswith("W_"))
    grads = {}
    for i in range(len(spec) - 1, -1, -1):
        layer = spec[i]
        Wb = (params[f"W_{i}"].tolist(), params[f"b_{i}"].tolist()) if layer["type"] == "dense" else None
        g, own = layer_backward(layer, Wb, recs[i], g)
        if own is not None:
            grads[f"W_{i}"] = np.array(own[0]) + l2 * params[f"W_{i}"]
            grads[f"b_{i}"] = np.array(own[1])
    out = {f"{name}/X": X, f"{name}/y": y, f"{name}/w": w, f"{name}/output": output,
           f"{name}/value": np.array(value),
           f"{name}/meta": np.array(json.dumps({"spec": spec, "loss": loss, "l2": l2, "weighted": weighted,
                                                "dropout_seed": dropout_seed}))}
    out.update({f"{name}/params/{k}": v for k, v in params.items()})
    out.update({f"{name}/grads/{k}": v for k, v in grads.items()})
    return out


def main():
    rng = np.random.default_rng(2026)
    arrays = {}
    for name, case in CASES.items():
        arrays.update(run_case(name, *case, rng))
    path = os.path.abspath(OUT)
    np.savez(path, **arrays)
    print(f"wrote {path}: {len(CASES)} cases, {len(arrays)} arrays", file=sys.stderr)


if __name__ == "__main__":
    main()
