"""Regenerate tests/data/torch_blocks.npz: residual and parallel blocks computed by PyTorch (float64).

An independent reference for funcnn's blocks (API §9): a small interpreter below evaluates a
funcnn spec with ``torch.nn.functional`` on funcnn's params (NHWC outside, NCHW inside the
convolutions), and autograd gives the gradients. Stored per case: the spec, X, y, the params,
the training-mode loss value (with L2) and its gradient for every trainable key, the output in
training and inference mode, and the running statistics after the training-mode pass.

    python scripts/make_block_fixtures.py          # writes tests/data/torch_blocks.npz
"""
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "torch_blocks.npz")


def conv(f, k, stride=1, padding="same"):
    return {"type": "conv2d", "filters": f, "kernel": k, "stride": stride, "padding": padding}


def bn(momentum=0.9):
    return {"type": "batch_norm", "momentum": momentum, "eps": 1e-5}


def dense(u):
    return {"type": "dense", "units": u}


def act(name):
    return {"type": name}


CASES = {
    # a small ResNet: basic blocks, a strided projection shortcut (1x1 conv + batch norm), global mean pool
    "resnet": {
        "n_inputs": [8, 8, 2], "n": 6, "k": 3, "l2": 1e-2,
        "spec": [conv(4, 3), bn(), act("relu"),
                 {"type": "residual", "body": [conv(4, 3), bn(), act("relu"), conv(4, 3), bn(0.8)]},
                 act("relu"),
                 {"type": "residual", "body": [conv(6, 3, 2), bn(), act("relu"), conv(6, 3), bn()],
                  "shortcut": [conv(6, 1, 2, "valid"), bn()]},
                 act("relu"), {"type": "global_pool", "mode": "mean"}, dense(3)],
    },
    # nesting two deep, parallel concat (with an identity branch) and sum
    "nested": {
        "n_inputs": [5], "n": 7, "k": 3, "l2": 1e-3,
        "spec": [dense(6), act("tanh"),
                 {"type": "residual", "body": [dense(6), act("tanh"),
                                               {"type": "residual", "body": [dense(6), act("relu"), dense(6)]}]},
                 {"type": "parallel", "merge": "concat",
                  "branches": [[dense(4)], [dense(3), act("sigmoid")], []]},
                 {"type": "parallel", "merge": "sum",
                  "branches": [[dense(5)], [dense(5), act("relu"), {"type": "residual", "body": [dense(5)],
                                                                  "shortcut": [dense(5)]}]]},
                 dense(3)],
    },
    # image branches concatenated along channels, a residual inside a branch, global max pool
    "branches": {
        "n_inputs": [6, 6, 2], "n": 5, "k": 3, "l2": 0.0,
        "spec": [{"type": "parallel", "merge": "concat",
                  "branches": [[conv(3, 1, 1, "valid")],
                               [conv(2, 3), bn(), act("relu"),
                                {"type": "residual", "body": [conv(2, 3), bn()]}],
                               [{"type": "avg_pool", "size": 3, "stride": 1}, {"type": "reshape", "shape": [4, 4, 2]},
                                conv(2, 3, 1, 2)]]},
                 act("relu"), {"type": "global_pool", "mode": "max"}, dense(3)],
    },
}


def _same(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def run(torch, spec, P, x, training, prefix="", state=None):
    """The network ``spec`` on ``x`` (NHWC), params ``P`` keyed as funcnn keys them."""
    Fn = torch.nn.functional
    for i, layer in enumerate(spec):
        path, t = f"{prefix}{i}", layer["type"]
        if t == "dense":
            x = x @ P[f"W_{path}"] + P[f"b_{path}"]
        elif t == "conv2d":
            kh, kw = _pair(layer["kernel"])
            sh, sw = _pair(layer.get("stride", 1))
            pad = layer.get("padding", "valid")
            z = x.permute(0, 3, 1, 2)
            if pad == "same":
                (t0, b0), (l0, r0) = _same(z.shape[2], kh, sh), _same(z.shape[3], kw, sw)
                z = Fn.pad(z, (l0, r0, t0, b0))
            elif pad != "valid":
                z = Fn.pad(z, (pad, pad, pad, pad))
            z = Fn.conv2d(z, P[f"W_{path}"].permute(3, 2, 0, 1), P[f"b_{path}"], stride=(sh, sw))
            x = z.permute(0, 2, 3, 1)
        elif t == "batch_norm":
            c = x.shape[-1]
            rm, rv = P[f"running_mean_{path}"].clone(), P[f"running_var_{path}"].clone()
            z = x.reshape(-1, c)
            if training:
                mean, var = z.mean(0), z.var(0, unbiased=False)
                m = layer.get("momentum", 0.9)
                state[f"running_mean_{path}"] = (m * rm + (1 - m) * mean).detach()
                state[f"running_var_{path}"] = (m * rv + (1 - m) * var).detach()
            else:
                mean, var = rm, rv
            z = (z - mean) / torch.sqrt(var + layer.get("eps", 1e-5)) * P[f"gamma_{path}"] + P[f"beta_{path}"]
            x = z.reshape(x.shape)
        elif t in ("max_pool", "avg_pool"):
            size = _pair(layer["size"])
            stride = _pair(layer.get("stride", layer["size"]))
            fn = Fn.max_pool2d if t == "max_pool" else Fn.avg_pool2d
            x = fn(x.permute(0, 3, 1, 2), size, stride).permute(0, 2, 3, 1)
        elif t == "reshape":
            x = x.reshape((x.shape[0],) + tuple(layer["shape"]))
        elif t == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif t == "relu":
            x = torch.relu(x)
        elif t == "tanh":
            x = torch.tanh(x)
        elif t == "sigmoid":
            x = torch.sigmoid(x)
        elif t == "global_pool":
            axes = tuple(range(1, x.ndim - 1))
            x = x.mean(axes) if layer.get("mode", "mean") == "mean" else x.amax(axes)
        elif t == "residual":
            body = run(torch, layer["body"], P, x, training, f"{path}.body.", state)
            short = run(torch, layer["shortcut"], P, x, training, f"{path}.shortcut.", state) \
                if layer.get("shortcut") else x
            x = body + short
        elif t == "parallel":
            outs = [run(torch, b, P, x, training, f"{path}.{j}.", state) for j, b in enumerate(layer["branches"])]
            x = torch.cat(outs, dim=-1) if layer.get("merge", "concat") == "concat" else sum(outs)
        else:
            raise ValueError(f"no reference for {t!r}")
    return x


def build():
    import torch
    sys.path.insert(0, os.path.join(HERE, ".."))
    import funcnn as F
    torch.set_default_dtype(torch.float64)
    arrays, meta = {}, {"torch": torch.__version__}
    for name, case in CASES.items():
        rng = np.random.default_rng(len(name))
        spec, shape = case["spec"], tuple(case["n_inputs"])
        params = F.init_params(spec, shape if len(shape) > 1 else shape[0], seed=1, dtype=np.float64)
        for k in params:  # generic values: no zero biases (a ReLU kink), no unit gammas
            if k.startswith(("b_", "beta_")):
                params[k] = rng.normal(0, 0.3, params[k].shape)
            elif k.startswith("gamma_"):
                params[k] = rng.uniform(0.5, 1.5, params[k].shape)
            elif k.startswith("running_mean_"):
                params[k] = rng.normal(0, 0.2, params[k].shape)
            elif k.startswith("running_var_"):
                params[k] = rng.uniform(0.5, 2.0, params[k].shape)
        X = rng.normal(size=(case["n"],) + shape)
        y = rng.integers(0, case["k"], case["n"])
        P = {k: torch.tensor(v, requires_grad=not k.startswith("running_")) for k, v in params.items()}
        xt = torch.tensor(X, requires_grad=True)
        state = {}
        out = run(torch, spec, P, xt, True, "", state)
        value = torch.nn.functional.cross_entropy(out, torch.tensor(y))
        value = value + case["l2"] / 2 * sum((P[k] ** 2).sum() for k in P if k.startswith("W_"))
        value.backward()
        with torch.no_grad():
            out_eval = run(torch, spec, P, torch.tensor(X), False)
        meta[name] = {"spec": spec, "n_inputs": case["n_inputs"], "l2": case["l2"]}
        arrays[f"{name}/X"], arrays[f"{name}/y"] = X, y
        arrays[f"{name}/value"] = np.array(value.item())
        arrays[f"{name}/output_train"] = out.detach().numpy()
        arrays[f"{name}/output_eval"] = out_eval.numpy()
        arrays[f"{name}/dX"] = xt.grad.numpy()
        for k, v in params.items():
            arrays[f"{name}/params/{k}"] = v
            if not k.startswith("running_"):
                arrays[f"{name}/grads/{k}"] = P[k].grad.numpy()
        for k, v in state.items():
            arrays[f"{name}/state/{k}"] = v.numpy()
    arrays["cases"] = np.array(json.dumps(meta))
    return arrays


if __name__ == "__main__":
    data = build()
    np.savez_compressed(OUT, **data)
    print(f"wrote {os.path.relpath(OUT)}: {len(data)} arrays, {os.path.getsize(OUT) / 1024:.0f} KB")
