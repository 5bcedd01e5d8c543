"""Regenerate tests/data/torch_training_control.npz: PyTorch's numbers (float64) for training control.

    python scripts/make_training_control_fixtures.py [--out PATH]

tests/test_training_control.py compares funcnn against the file without torch and, where torch is
installed, rebuilds it in memory with :func:`build` and checks that the stored file is current.
funcnn is not imported here. Cases (arrays named ``<case>/<field>``, ``cases`` a JSON description):

* ``bce/<variant>``: ``BCEWithLogitsLoss`` per element (reduction "none"; ``pos_weight`` per label),
  averaged over the labels, then over the samples with sample weights (``sum(w l) / sum(w)``): value
  and gradient w.r.t. the logits, for (n, 3) multi-label logits and for one output with class weights;
* ``ce/<variant>``: ``cross_entropy(weight=class_weight)`` (samples weighted by ``class_weight[y]``,
  times sample weights): value and gradient;
* ``adamw/<variant>``: 6 steps of ``torch.optim.AdamW`` with two parameter groups (weight decay on
  the weight matrices only, 0 on biases and batch-norm gamma/beta), optionally after
  ``clip_grad_norm_``: the params after every step, from given gradients;
* ``plateau/<variant>``: the learning rate of ``ReduceLROnPlateau`` before each of 30 epochs fed a
  given sequence of monitored values.

The output is byte-for-byte reproducible (fixed seeds, fixed zip timestamps).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from typing import Any, Dict

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch_training_control.npz")

PARAM_SHAPES = {"W_0": (3, 4), "b_0": (4,), "gamma_1": (4,), "beta_1": (4,), "W_3": (4, 2), "b_3": (2,)}
DECAYED = ("W_0", "W_3")


def _torch():
    import torch
    return torch


def bce_cases(torch, cases, arrays) -> None:
    rng = np.random.default_rng(2300)
    z = rng.normal(size=(7, 3)) * 3
    t = (rng.random((7, 3)) < 0.5).astype(np.float64)
    w = rng.random(7) + 0.25
    pw = np.array([0.5, 2.0, 4.0])
    F = torch.nn.functional
    for name, use_pw, use_w in [("plain", False, False), ("pos_weight", True, False),
                                ("weighted", False, True), ("pos_weight_weighted", True, True)]:
        zt = torch.tensor(z, requires_grad=True)
        per = F.binary_cross_entropy_with_logits(zt, torch.tensor(t), reduction="none",
                                                 pos_weight=torch.tensor(pw) if use_pw else None).mean(dim=1)
        wt = torch.tensor(w if use_w else np.ones(7))
        value = (per * wt).sum() / wt.sum()
        value.backward()
        cases[f"bce/{name}"] = {"pos_weight": pw.tolist() if use_pw else None, "weighted": use_w}
        arrays[f"bce/{name}/value"] = np.array(value.item())
        arrays[f"bce/{name}/grad"] = zt.grad.numpy().copy()
    # one output, class weights {0: 0.5, 1: 3.0}: sample i weighs w_i * cw[y_i]
    cw = np.array([0.5, 3.0])
    y1 = t[:, 0]
    zt = torch.tensor(z[:, :1], requires_grad=True)
    per = F.binary_cross_entropy_with_logits(zt[:, 0], torch.tensor(y1), reduction="none")
    wt = torch.tensor(w * cw[y1.astype(int)])
    value = (per * wt).sum() / wt.sum()
    value.backward()
    cases["bce/class_weight"] = {"class_weight": cw.tolist(), "weighted": True}
    arrays["bce/class_weight/value"] = np.array(value.item())
    arrays["bce/class_weight/grad"] = zt.grad.numpy().copy()
    arrays["bce/_shared/z"], arrays["bce/_shared/t"], arrays["bce/_shared/w"] = z, t, w


def ce_cases(torch, cases, arrays) -> None:
    rng = np.random.default_rng(2301)
    z = rng.normal(size=(9, 4)) * 2
    y = rng.integers(0, 4, size=9)
    w = rng.random(9) + 0.25
    cw = np.array([1.0, 2.5, 0.5, 4.0])
    F = torch.nn.functional
    for name, use_w in [("class_weight", False), ("class_weight_weighted", True)]:
        zt = torch.tensor(z, requires_grad=True)
        if use_w:
            per = F.cross_entropy(zt, torch.tensor(y), reduction="none")
            wt = torch.tensor(w * cw[y])
            value = (per * wt).sum() / wt.sum()
        else:
            value = F.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(cw))  # torch's own weighted mean
        value.backward()
        cases[f"ce/{name}"] = {"class_weight": cw.tolist(), "weighted": use_w}
        arrays[f"ce/{name}/value"] = np.array(value.item())
        arrays[f"ce/{name}/grad"] = zt.grad.numpy().copy()
    arrays["ce/_shared/z"], arrays["ce/_shared/y"], arrays["ce/_shared/w"] = z, y, w


def adamw_cases(torch, cases, arrays) -> None:
    rng = np.random.default_rng(2302)
    params = {k: rng.normal(size=s) for k, s in PARAM_SHAPES.items()}
    steps = 6
    grads = [{k: rng.normal(size=s) * 2 for k, s in PARAM_SHAPES.items()} for _ in range(steps)]
    for k, v in params.items():
        arrays[f"adamw/_shared/params/{k}"] = v
    for i, g in enumerate(grads):
        for k, v in g.items():
            arrays[f"adamw/_shared/grads/{i}/{k}"] = v
    for name, clip in [("groups", None), ("groups_clip", 1.0)]:
        ts = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        opt = torch.optim.AdamW([{"params": [ts[k] for k in DECAYED], "weight_decay": 0.1},
                                 {"params": [ts[k] for k in ts if k not in DECAYED], "weight_decay": 0.0}],
                                lr=0.05, betas=(0.9, 0.99), eps=1e-8)
        for i, g in enumerate(grads):
            for k, v in ts.items():
                v.grad = torch.tensor(g[k])
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(list(ts.values()), clip)
            opt.step()
            for k, v in ts.items():
                arrays[f"adamw/{name}/after/{i}/{k}"] = v.detach().numpy().copy()
        cases[f"adamw/{name}"] = {"lr": 0.05, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1,
                                  "decayed": list(DECAYED), "clip": clip, "steps": steps}


def plateau_cases(torch, cases, arrays) -> None:
    rng = np.random.default_rng(2303)
    values = np.concatenate([np.linspace(1.0, 0.5, 8), 0.5 + 0.01 * rng.random(12), np.linspace(0.5, 0.2, 10)])
    arrays["plateau/_shared/values"] = values
    variants = {
        "min_rel": dict(mode="min", factor=0.5, patience=2, threshold=1e-4, threshold_mode="rel", cooldown=1,
                        min_lr=0.01),
        "min_abs": dict(mode="min", factor=0.3, patience=1, threshold=0.02, threshold_mode="abs", cooldown=0,
                        min_lr=0.0),
        "max_rel": dict(mode="max", factor=0.1, patience=0, threshold=0.01, threshold_mode="rel", cooldown=2,
                        min_lr=1e-4),
    }
    for name, kw in variants.items():
        w = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        lrs = []
        sign = -1.0 if kw["mode"] == "max" else 1.0
        for v in values:
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step(sign * float(v))
        cases[f"plateau/{name}"] = {"lr": 0.1, **kw, "sign": sign}
        arrays[f"plateau/{name}/lrs"] = np.array(lrs)


def build() -> Dict[str, np.ndarray]:
    torch = _torch()
    cases: Dict[str, Any] = {}
    arrays: Dict[str, np.ndarray] = {}
    for make in (bce_cases, ce_cases, adamw_cases, plateau_cases):
        make(torch, cases, arrays)
    return {"cases": np.array(json.dumps({"format": 1, "torch": torch.__version__.split("+")[0], "cases": cases},
                                         sort_keys=True)), **arrays}


def to_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
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
    parser.add_argument("--out", default=OUT, help="where to write (default: tests/data/torch_training_control.npz)")
    args = parser.parse_args(argv)
    _torch().set_num_threads(1)
    data = to_bytes(build())
    path = os.path.abspath(args.out)
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {len(data)} bytes")


if __name__ == "__main__":
    sys.exit(main())
