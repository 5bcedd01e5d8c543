"""Regenerate tests/data/torch_reference.npz: PyTorch's numbers (float64) for funcnn's tests.

    python scripts/make_torch_fixtures.py [--out PATH]

tests/test_torch_reference.py compares funcnn against the file without needing torch, and,
where torch is installed, rebuilds the fixtures in memory with :func:`build` and checks that
the stored file is current. funcnn is not imported here, so a bug in funcnn cannot leak into
its own reference values: specs, optimizers and schedules are written down as constructor
calls (``["leaky_relu", {"alpha": 0.1}]``, ``["warmup", ["cosine", 0.1, 8], 3]``) that the
test turns into funcnn objects, and learning-rate schedules come from
``torch.optim.lr_scheduler``.

Layout of the file (loadable with ``np.load(path, allow_pickle=False)``):

* ``cases``: a JSON string, ``{"format": 1, "torch": <version>, "families": {family:
  {"cases": {case: {...what the case is...}}}}}``;
* arrays named ``<family>/<case>/<field>`` (fields may contain more slashes, e.g.
  ``params/W_0``), and ``<family>/_shared/<field>`` for inputs shared by a family's cases.

Families (one ``family_*`` function each, registered in :data:`FAMILIES`):

* ``activation``: ``[dense(5), ACT, dense(3)]`` on 7x4 inputs: output, and autograd's
  gradients of W_0, b_0, W_2, b_2 for a given grad_output;
* ``dropout``: ``[dense(5), dropout(r)]``: torch's inverted dropout with a fixed keep-mask
  (ATen's ``input * mask * (1 / (1 - p))``; the script checks that this stand-in gives
  ``F.dropout``'s output and gradient bit for bit for the mask ``F.dropout`` drew), and its
  per-element values when every unit is kept, so the test can check funcnn's own random
  mask element by element;
* ``loss``: value and gradient w.r.t. the output of the three losses, with and without
  sample weights, moderate and large logits;
* ``value_and_grad``: a 2-hidden-layer network per loss with L2: value and gradients;
* ``optimizer``: 8 steps of torch.optim (SGD, momentum, Nesterov, RMSprop, Adam, AdamW) with
  a constant rate and two schedules: params and slot states after every step;
* ``schedule``: learning rates of torch.optim.lr_scheduler classes, step by step.

To add a family (conv2d, pooling, batch norm, more activations or losses, gradient
clipping, ...), write ``family_<name>(fx)`` calling ``fx.add(family, case, meta, arrays)``
per case, register it in :data:`FAMILIES` and teach tests/test_torch_reference.py to check
it (the test fails on a family it does not know). The output is byte-for-byte reproducible:
fixed seeds, and zip members written with a fixed timestamp.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from typing import Any, Callable, Dict, List

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch_reference.npz")
FORMAT = 1


class Fixture:
    """The arrays and the JSON description being built."""

    def __init__(self, torch_version: str):
        self.arrays: Dict[str, np.ndarray] = {}
        self.meta: Dict[str, Any] = {"format": FORMAT, "torch": torch_version, "families": {}}

    def add(self, family: str, case: str, meta: Dict[str, Any], arrays: Dict[str, Any]) -> None:
        cases = self.meta["families"].setdefault(family, {"cases": {}})["cases"]
        assert case not in cases and not case.startswith("_") and "/" not in case, (family, case)
        cases[case] = meta
        for field, a in arrays.items():
            self._put(f"{family}/{case}/{field}", a)

    def shared(self, family: str, arrays: Dict[str, Any]) -> None:
        for field, a in arrays.items():
            self._put(f"{family}/_shared/{field}", a)

    def _put(self, key: str, a: Any) -> None:
        assert key not in self.arrays, key
        a = np.asarray(a)
        assert a.dtype in (np.float64, np.int64, np.bool_), (key, a.dtype)
        self.arrays[key] = a.copy(order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)

    def result(self) -> Dict[str, np.ndarray]:
        return {"cases": np.array(json.dumps(self.meta, sort_keys=True)), **self.arrays}


# --------------------------------------------------------------------------- torch helpers

def _torch():
    import torch
    return torch


def t64(a: np.ndarray, grad: bool = False):
    torch = _torch()
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def np64(t) -> np.ndarray:
    return t.detach().numpy().astype(np.float64, copy=True)


def dense_params(rng: np.random.Generator, sizes: List[int], scale: float = 0.8) -> Dict[str, np.ndarray]:
    """W_i, b_i for dense layers at spec indices 0, 2, 4, ... (an activation between each)."""
    params = {}
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"W_{2 * j}"] = rng.normal(size=(n_in, n_out)) * scale
        params[f"b_{2 * j}"] = rng.normal(size=n_out) * 0.3
    return params


def linear(x, W, b):
    """funcnn's dense layer, x @ W + b with W (n_in, n_out), as torch's F.linear (weight (n_out, n_in))."""
    return _torch().nn.functional.linear(x, W.t(), b)


# --------------------------------------------------------------------------- activation

def torch_activation(name: str, kwargs: Dict[str, Any]) -> Callable:
    torch = _torch()
    TF = torch.nn.functional
    return {
        "relu": lambda z: TF.relu(z),
        "leaky_relu": lambda z: TF.leaky_relu(z, negative_slope=kwargs.get("alpha", 0.01)),
        "sigmoid": lambda z: torch.sigmoid(z),
        "tanh": lambda z: torch.tanh(z),
        "identity": lambda z: z,
        "softmax": lambda z: torch.softmax(z, dim=1),
    }[name]


ACTIVATIONS = {  # case: (funcnn layer constructor call, what torch runs)
    "relu": (["relu", {}], "torch.nn.functional.relu"),
    "leaky_relu": (["leaky_relu", {"alpha": 0.1}], "torch.nn.functional.leaky_relu(negative_slope=0.1)"),
    "leaky_relu_default": (["leaky_relu", {}], "torch.nn.functional.leaky_relu(negative_slope=0.01)"),
    "sigmoid": (["sigmoid", {}], "torch.sigmoid"),
    "tanh": (["tanh", {}], "torch.tanh"),
    "identity": (["identity", {}], "no-op"),
    "softmax": (["softmax", {}], "torch.softmax(dim=1)"),
}


def activation_inputs(seed: int):
    """7x4 inputs and weights whose pre-activations z = X @ W_0 + b_0 include small values of
    both signs (|z| ~ 1e-4, rows 0-1: the kink of relu/leaky relu, never exactly 0) and large
    ones (|z| up to about 30, rows 5-6: sigmoid/tanh saturate)."""
    rng = np.random.default_rng(seed)
    params = dense_params(rng, [4, 5, 3])
    params["b_0"] = rng.choice([-1.0, 1.0], size=5) * rng.uniform(1e-5, 3e-5, size=5)
    X = rng.normal(size=(7, 4)) * np.array([1e-4, 2e-4, 0.3, 1.0, 2.0, 1.0, 1.0])[:, None]
    for row, target in [(5, 12.0), (6, 30.0)]:  # the largest |z| of these rows, up to b_0
        X[row] *= target / np.abs(X[row] @ params["W_0"]).max()
    z = X @ params["W_0"] + params["b_0"]
    assert np.abs(z).min() > 1e-7 and (z[:2] > 0).any() and (z[:2] < 0).any(), z
    assert np.abs(z[:2]).max() < 1e-2 and 29 < np.abs(z).max() < 31, z
    grad_output = rng.normal(size=(7, 3))
    return X, params, grad_output


def family_activation(fx: Fixture) -> None:
    for j, (case, (layer, torch_expr)) in enumerate(ACTIVATIONS.items()):
        seed = 100 + j
        X, params, grad_output = activation_inputs(seed)
        ts = {k: t64(v, grad=True) for k, v in params.items()}
        act = torch_activation(layer[0], layer[1])
        out = linear(act(linear(t64(X), ts["W_0"], ts["b_0"])), ts["W_2"], ts["b_2"])
        out.backward(t64(grad_output))
        fx.add("activation", case,
               {"spec": [["dense", {"units": 5}], layer, ["dense", {"units": 3}]], "seed": seed,
                "torch": f"F.linear -> {torch_expr} -> F.linear; autograd with grad_output"},
               {"X": X, "grad_output": grad_output, "output": np64(out),
                **{f"params/{k}": v for k, v in params.items()},
                **{f"grads/{k}": np64(t.grad) for k, t in ts.items()}})


# --------------------------------------------------------------------------- dropout

def torch_dropout_with_mask(h, mask: np.ndarray, rate: float):
    """ATen's dropout arithmetic (native_dropout on CPU: input * mask * scale) with a given mask."""
    return h * t64(mask.astype(np.float64)) * (1.0 / (1.0 - rate))


def check_dropout_stand_in(h: np.ndarray, grad_output: np.ndarray, rate: float) -> None:
    """torch_dropout_with_mask is what torch.nn.functional.dropout computes: run the real op
    (its own random mask, read off the output), then the stand-in with that mask; both the
    output and the gradient must agree bit for bit."""
    torch = _torch()
    with torch.random.fork_rng():  # leave torch's global generator as it was
        torch.manual_seed(0)
        x = t64(h, grad=True)
        out = torch.nn.functional.dropout(x, p=rate, training=True)
    out.backward(t64(grad_output))
    mask = np64(out) != 0
    x2 = t64(h, grad=True)
    out2 = torch_dropout_with_mask(x2, mask, rate)
    out2.backward(t64(grad_output))
    assert np.array_equal(np64(out), np64(out2)) and np.array_equal(np64(x.grad), np64(x2.grad)), rate


def family_dropout(fx: Fixture) -> None:
    for j, rate in enumerate([0.2, 0.5]):
        seed = 200 + j
        rng = np.random.default_rng(seed)
        params = dense_params(rng, [4, 5])
        X = rng.normal(size=(7, 4))
        mask = rng.random((7, 5)) >= rate
        grad_output = rng.normal(size=(7, 5))
        arrays = {"X": X, "grad_output": grad_output, "mask": mask,
                  **{f"params/{k}": v for k, v in params.items()}}
        # with the fixed mask: forward and autograd's gradients of W_0, b_0
        ts = {k: t64(v, grad=True) for k, v in params.items()}
        h = linear(t64(X), ts["W_0"], ts["b_0"])
        out = torch_dropout_with_mask(h, mask, rate)
        out.backward(t64(grad_output))
        arrays.update({"hidden": np64(h), "output": np64(out),
                       **{f"grads/{k}": np64(t.grad) for k, t in ts.items()}})
        # every unit kept: the per-element output and d output / d hidden (times grad_output)
        hk = t64(np64(h), grad=True)
        out_keep = torch_dropout_with_mask(hk, np.ones((7, 5), dtype=bool), rate)
        out_keep.backward(t64(grad_output))
        arrays.update({"keep_output": np64(out_keep), "keep_grad_hidden": np64(hk.grad)})
        assert np.abs(arrays["hidden"]).min() > 1e-6  # so a dropped unit is exactly the zeros of the output
        check_dropout_stand_in(arrays["hidden"], grad_output, rate)
        fx.add("dropout", f"rate_{rate}",
               {"spec": [["dense", {"units": 5}], ["dropout", {"rate": rate}]], "rate": rate,
                "funcnn_seed": 7 + j, "seed": seed,
                "torch": "F.linear -> h * mask * (1 / (1 - rate)); autograd with grad_output"},
               arrays)


# --------------------------------------------------------------------------- losses

def torch_loss(loss: str, out, y: np.ndarray, w):
    """The loss value as funcnn defines it: per-sample losses, then sum(w * l) / sum(w)."""
    torch = _torch()
    TF = torch.nn.functional
    if loss == "softmax_cross_entropy":
        if w is None:
            return TF.cross_entropy(out, torch.tensor(y, dtype=torch.int64))
        per = TF.cross_entropy(out, torch.tensor(y, dtype=torch.int64), reduction="none")
    elif loss == "binary_cross_entropy":
        target = t64(np.asarray(y, dtype=np.float64).reshape(-1))
        if w is None:
            return TF.binary_cross_entropy_with_logits(out[:, 0], target)
        per = TF.binary_cross_entropy_with_logits(out[:, 0], target, reduction="none")
    else:
        target = t64(np.asarray(y, dtype=np.float64).reshape(out.shape))
        if w is None:
            return TF.mse_loss(out, target)
        per = TF.mse_loss(out, target, reduction="none").mean(dim=1)
    return (w * per).sum() / w.sum()


TORCH_LOSS_EXPR = {
    "softmax_cross_entropy": "F.cross_entropy (weighted: reduction='none', then sum(w*l)/sum(w))",
    "binary_cross_entropy": "F.binary_cross_entropy_with_logits on output[:, 0] (weighted: same)",
    "mean_squared_error": "F.mse_loss (weighted: reduction='none', mean over outputs, sum(w*l)/sum(w))",
}


def loss_inputs(loss: str, scale: float, rng: np.random.Generator, n: int = 6):
    k = {"softmax_cross_entropy": 4, "binary_cross_entropy": 1, "mean_squared_error": 3}[loss]
    output = rng.uniform(-1.0, 1.0, size=(n, k)) * scale
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, k, size=n)
        y[0] = output[0].argmax()  # right and wrong predictions, whatever the draw
        y[1] = output[1].argmin()
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=n)
        y[0], y[1] = int(output[0, 0] > 0), int(output[1, 0] < 0)
    else:
        y = rng.normal(size=(n, k))
    w = rng.uniform(0.2, 2.0, size=n)
    w[2] = 0.0  # a zero weight is allowed
    return output, y.astype(np.int64) if loss != "mean_squared_error" else y, w


def family_loss(fx: Fixture) -> None:
    seed = 300
    for loss in ["softmax_cross_entropy", "binary_cross_entropy", "mean_squared_error"]:
        for scale_name, scale in [("moderate", 3.0), ("large", 50.0), ("huge", 1e3)]:
            for weighted in [False, True]:
                seed += 1
                output, y, w = loss_inputs(loss, scale, np.random.default_rng(seed))
                case = f"{loss}_{scale_name}" + ("_weighted" if weighted else "")
                _add_loss_case(fx, case, loss, output, y, w if weighted else None, seed, scale)
    # mean_squared_error with one output and 1-D targets (y of shape (n,))
    seed += 1
    rng = np.random.default_rng(seed)
    output, y = rng.normal(size=(6, 1)) * 2, rng.normal(size=6)
    _add_loss_case(fx, "mean_squared_error_1d_target", "mean_squared_error", output, y, None, seed, 2.0)


def _add_loss_case(fx, case, loss, output, y, w, seed, scale):
    out = t64(output, grad=True)
    value = torch_loss(loss, out, y, None if w is None else t64(w))
    value.backward()
    arrays = {"output": output, "y": y, "value": np64(value), "grad_output": np64(out.grad)}
    if w is not None:
        arrays["sample_weight"] = w
    fx.add("loss", case, {"loss": loss, "weighted": w is not None, "seed": seed, "logit_scale": scale,
                          "torch": TORCH_LOSS_EXPR[loss]}, arrays)


# --------------------------------------------------------------------------- value_and_grad

VAG_CASES = {  # case: (loss, hidden activations, n_outputs, l2, weighted)
    "softmax_cross_entropy": ("softmax_cross_entropy", ["relu", "tanh"], 3, 0.1, False),
    "softmax_cross_entropy_weighted": ("softmax_cross_entropy", ["tanh", "leaky_relu"], 3, 0.03, True),
    "binary_cross_entropy": ("binary_cross_entropy", ["sigmoid", "relu"], 1, 0.1, False),
    "binary_cross_entropy_weighted": ("binary_cross_entropy", ["leaky_relu", "sigmoid"], 1, 0.2, True),
    "mean_squared_error": ("mean_squared_error", ["tanh", "identity"], 2, 0.1, False),
    "mean_squared_error_weighted": ("mean_squared_error", ["relu", "tanh"], 2, 0.05, True),
}


def family_value_and_grad(fx: Fixture) -> None:
    for j, (case, (loss, acts, k, l2, weighted)) in enumerate(VAG_CASES.items()):
        seed = 400 + j
        rng = np.random.default_rng(seed)
        n, d, sizes = 8, 4, [4, 6, 5, k]
        params = dense_params(rng, sizes)
        X = rng.normal(size=(n, d))
        if loss == "mean_squared_error":
            y = rng.normal(size=(n, k))
        else:
            y = rng.integers(0, max(k, 2), size=n).astype(np.int64)
        w = rng.uniform(0.2, 2.0, size=n) if weighted else None
        ts = {key: t64(v, grad=True) for key, v in params.items()}
        x = t64(X)
        for i, act in enumerate(acts):
            x = torch_activation(act, {})(linear(x, ts[f"W_{2 * i}"], ts[f"b_{2 * i}"]))
        out = linear(x, ts["W_4"], ts["b_4"])
        value = torch_loss(loss, out, y, None if w is None else t64(w))
        value = value + l2 / 2 * sum((t * t).sum() for key, t in ts.items() if key.startswith("W_"))
        value.backward()
        spec = []
        for i, act in enumerate(acts):
            spec += [["dense", {"units": sizes[i + 1]}], [act, {}]]
        spec.append(["dense", {"units": k}])
        arrays = {"X": X, "y": y, "value": np64(value), **{f"params/{key}": v for key, v in params.items()},
                  **{f"grads/{key}": np64(t.grad) for key, t in ts.items()}}
        if w is not None:
            arrays["sample_weight"] = w
        fx.add("value_and_grad", case,
               {"spec": spec, "loss": loss, "l2": l2, "weighted": weighted, "seed": seed,
                "torch": f"{TORCH_LOSS_EXPR[loss]} + l2/2 * sum(W**2) over W_*; autograd"}, arrays)


# --------------------------------------------------------------------------- schedules

def torch_scheduler(torch, opt, expr):
    """The torch.optim.lr_scheduler equivalent of a funcnn schedule written as a constructor call."""
    S = torch.optim.lr_scheduler
    name, *args = expr
    if name == "constant":
        return None  # no scheduler: the optimizer's lr throughout
    if name == "step_decay":
        _, step_size, gamma = args
        return S.StepLR(opt, step_size=step_size, gamma=gamma)
    if name == "exponential":
        return S.ExponentialLR(opt, gamma=args[1])
    if name == "cosine":
        _, total, *min_lr = args
        return S.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr[0] if min_lr else 0.0)
    if name == "warmup":
        inner, w = args
        linear_lr = S.LinearLR(opt, start_factor=1 / w, end_factor=1.0, total_iters=w - 1)
        if not isinstance(inner, list):
            return linear_lr
        # the chained product equals warmup's closed form only for multiplicative inner
        # schedules: cosine annealing to 0, not to a positive min_lr
        assert inner[0] != "cosine" or len(inner) < 4 or inner[3] == 0.0, inner
        return S.ChainedScheduler([linear_lr, torch_scheduler(torch, opt, inner)])
    raise ValueError(f"no torch scheduler for {expr!r}")


def base_lr(expr) -> float:
    return expr if not isinstance(expr, list) else base_lr(expr[1])


def max_steps(expr) -> int:
    """torch's recursive cosine leaves funcnn's closed form after T_max (it climbs back up)."""
    if not isinstance(expr, list):
        return 10 ** 9
    if expr[0] == "cosine":
        return expr[2] + 1
    return min([max_steps(a) for a in expr[1:] if isinstance(a, list)] + [10 ** 9])


def torch_lrs(expr, n: int) -> np.ndarray:
    """The learning rate torch uses for updates 0..n-1 (the scheduler steps after each update)."""
    torch = _torch()
    assert n <= max_steps(expr), (expr, n)
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=base_lr(expr))
    sched = torch_scheduler(torch, opt, expr)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return np.array(lrs, dtype=np.float64)


SCHEDULE_CASES = {  # the cases of tests/test_schedules.py::test_matches_torch_lr_scheduler, and more
    "constant": (["constant", 0.1], "none (torch.optim.SGD(lr=0.1) without a scheduler)"),
    "StepLR": (["step_decay", 0.1, 4, 0.3], "StepLR(step_size=4, gamma=0.3)"),
    "ExponentialLR": (["exponential", 0.1, 0.93], "ExponentialLR(gamma=0.93)"),
    "CosineAnnealingLR": (["cosine", 0.1, 25, 0.002], "CosineAnnealingLR(T_max=25, eta_min=0.002)"),
    "CosineAnnealingLR_to_end": (["cosine", 0.1, 20, 0.002], "CosineAnnealingLR(T_max=20, eta_min=0.002)"),
    "LinearLR": (["warmup", 0.1, 6], "LinearLR(start_factor=1/6, end_factor=1, total_iters=5)"),
    "LinearLR+ExponentialLR": (["warmup", ["exponential", 0.1, 0.9], 5],
                               "ChainedScheduler([LinearLR(start_factor=1/5, total_iters=4), ExponentialLR(gamma=0.9)])"),
    "LinearLR+CosineAnnealingLR": (["warmup", ["cosine", 0.1, 20], 5],
                                   "ChainedScheduler([LinearLR(start_factor=1/5, total_iters=4), CosineAnnealingLR(T_max=20)])"),
}


def family_schedule(fx: Fixture) -> None:
    n = 21
    for case, (expr, torch_expr) in SCHEDULE_CASES.items():
        fx.add("schedule", case, {"schedule": expr, "steps": n,
                                  "torch": torch_expr if expr[0] == "constant" else f"torch.optim.lr_scheduler.{torch_expr}"},
               {"lr": torch_lrs(expr, n)})


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = {  # case: (funcnn constructor call without lr, torch class, torch kwargs, funcnn slot -> torch slot)
    "sgd": (["sgd", {}], "SGD", {}, {}),
    "sgd_momentum": (["sgd", {"momentum": 0.9}], "SGD", {"momentum": 0.9}, {"momentum": "momentum_buffer"}),
    "sgd_nesterov": (["sgd", {"momentum": 0.7, "nesterov": True}], "SGD", {"momentum": 0.7, "nesterov": True},
                     {"momentum": "momentum_buffer"}),
    "rmsprop": (["rmsprop", {"decay": 0.95, "eps": 1e-6}], "RMSprop", {"alpha": 0.95, "eps": 1e-6},
                {"square_avg": "square_avg"}),
    "adam": (["adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-7}], "Adam", {"betas": [0.8, 0.99], "eps": 1e-7},
             {"m": "exp_avg", "v": "exp_avg_sq"}),
    "adamw": (["adam", {"weight_decay": 0.05}], "AdamW", {"weight_decay": 0.05}, {"m": "exp_avg", "v": "exp_avg_sq"}),
}

LEARNING_RATES = {  # name: a number or a schedule as a constructor call
    "const": 0.05,
    "warmup_exponential": ["warmup", ["exponential", 0.1, 0.8], 3],  # tests/test_optimizers.py's schedule
    "warmup_cosine": ["warmup", ["cosine", 0.1, 8], 3],
}

OPT_STEPS = 8


def optimizer_inputs(seed: int = 500):
    """Params of shapes (3, 4) and (4,), and 8 steps of gradients of varied scale and sign,
    with exact zeros (one at step 1, a whole row at step 4)."""
    rng = np.random.default_rng(seed)
    params = {"W_0": rng.normal(size=(3, 4)), "b_0": rng.normal(size=4)}
    grads = {k: rng.normal(size=(OPT_STEPS,) + p.shape) * 10.0 ** rng.integers(-2, 2, size=(OPT_STEPS,) + p.shape)
             for k, p in params.items()}
    grads["b_0"][1, 0] = 0.0
    grads["W_0"][4, 1, :] = 0.0
    return params, grads


def family_optimizer(fx: Fixture) -> None:
    torch = _torch()
    params, grads = optimizer_inputs()
    fx.shared("optimizer", {**{f"params/{k}": v for k, v in params.items()},
                            **{f"grads/{k}": v for k, v in grads.items()}})
    for opt_name, (ours, cls, kwargs, slots) in OPTIMIZERS.items():
        for lr_name, lr in LEARNING_RATES.items():
            ts = {k: t64(v, grad=True) for k, v in params.items()}
            torch_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
            opt = getattr(torch.optim, cls)(list(ts.values()), lr=base_lr(lr), foreach=False, **torch_kwargs)
            sched = torch_scheduler(torch, opt, lr) if isinstance(lr, list) else None
            lrs, traj = [], {k: [] for k in ts}
            states = {f"{slot}/{k}": [] for slot in slots.values() for k in ts}
            for t in range(OPT_STEPS):
                lrs.append(opt.param_groups[0]["lr"])
                for k, tensor in ts.items():
                    tensor.grad = t64(grads[k][t])
                opt.step()
                if sched is not None:
                    sched.step()
                for k, tensor in ts.items():
                    traj[k].append(np64(tensor))
                    for slot in slots.values():
                        states[f"{slot}/{k}"].append(np64(opt.state[tensor][slot]))
            steps = {int(opt.state[t]["step"]) for t in ts.values() if "step" in opt.state[t]}
            assert steps <= {OPT_STEPS}, steps  # torch.optim.SGD keeps no step count
            fx.add("optimizer", f"{opt_name}-{lr_name}",
                   {"optimizer": ours, "lr": lr, "steps": OPT_STEPS, "slots": slots,
                    "torch": f"torch.optim.{cls}(lr={lr_name}, foreach=False, **{json.dumps(kwargs, sort_keys=True)})"
                             + (" + torch.optim.lr_scheduler" if sched is not None else "")},
                   {"lr": np.array(lrs), **{f"params/{k}": np.stack(v) for k, v in traj.items()},
                    **{f"state/{k}": np.stack(v) for k, v in states.items()}})


# --------------------------------------------------------------------------- driver

FAMILIES: Dict[str, Callable[[Fixture], None]] = {
    "activation": family_activation,
    "dropout": family_dropout,
    "loss": family_loss,
    "value_and_grad": family_value_and_grad,
    "optimizer": family_optimizer,
    "schedule": family_schedule,
}


def build() -> Dict[str, np.ndarray]:
    """Every fixture array, keyed as in the file (``cases`` holds the JSON description)."""
    torch = _torch()
    fx = Fixture(torch.__version__.split("+")[0])
    for family in FAMILIES.values():
        family(fx)
    return fx.result()


def to_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """An .npz archive (deflated) with fixed member timestamps: the same arrays, the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, a in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT, help="where to write (default: tests/data/torch_reference.npz)")
    args = parser.parse_args(argv)
    torch = _torch()
    torch.set_num_threads(1)
    arrays = build()
    data = to_bytes(arrays)
    path = os.path.abspath(args.out)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    meta = json.loads(str(arrays["cases"]))
    print(f"wrote {path}: {len(data)} bytes, {len(arrays)} arrays, torch {meta['torch']}")
    for family, entry in meta["families"].items():
        print(f"  {family}: {len(entry['cases'])} cases: {', '.join(entry['cases'])}")


if __name__ == "__main__":
    sys.exit(main())
