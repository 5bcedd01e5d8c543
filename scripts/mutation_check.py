#!/usr/bin/env python
"""Mutation check: perturb each operation by 1 % and count how many the test suite catches.

Every layer's forward result and backward results (and its ``macs``/``scratch`` counts, which
get one added), every loss core's value and gradient
and every optimizer rule's step live in one registry entry each (``funcnn.layers.LAYERS``,
``funcnn.losses.CORES``, ``funcnn.optimizers.OPTIMIZERS[name]["rule"]``), and so does each layer
type's ONNX and torch export (``funcnn.export.EXPORTERS``: its output times 1.01; plus one wrong
NHWC -> NCHW transpose, ``export:layout:nchw``). For each, this
script runs the test suite in a fresh process with that one entry wrapped so that its
result is multiplied by 1.01 (for a rule: the step ``new_p - p``), and reports whether any
test failed. A mutation the suite does not catch is a hole in the tests.

    python scripts/mutation_check.py              # every mutation, the whole suite each (-x)
    python scripts/mutation_check.py --list       # the mutations only
    python scripts/mutation_check.py --only relu  # those whose name contains "relu"

``feature:...`` mutations perturb the training-control helpers (class and positive weights, key
masks, decoupled decay, the weight average, gradient accumulation, the plateau's patience).

Exit status 0 when every mutation is caught, 1 otherwise. Registries are read after the
import, so new layers, losses and optimizers are covered without editing this file.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FACTOR = 1.01
# Run first: the tests that compare arithmetic with references; then every other test file.
FIRST = ["tests/test_torch_reference.py", "tests/test_reference_fixtures.py", "tests/test_gradients.py",
         "tests/test_losses.py", "tests/test_optimizers.py", "tests/test_layers.py", "tests/test_blocks.py",
         "tests/test_sequence.py", "tests/test_training_control.py"]

# Training-control helpers perturbed by name (see _perturb_feature in the plugin below).
FEATURES = ("pos_weight", "class_weight", "balanced", "mask", "decay", "ema", "accumulate", "plateau")

EXPORT_TESTS = "tests/test_export.py"

# The pytest plugin each run loads: it wraps one registry entry, named by FUNCNN_MUTATION.
PLUGIN = r'''
import os

import numpy as np

FACTOR = float(os.environ["FUNCNN_MUTATION_FACTOR"])


def _scale(a, source=None):
    """a * FACTOR, in place (a is the function's own array or the caller's out buffer, which the
    contract says it fills), except when a is its input passed through, which it may not write."""
    if a is None:
        return None
    if a is source:
        return np.multiply(a, FACTOR, dtype=a.dtype)
    np.multiply(a, FACTOR, out=a)
    return a


def pytest_configure(config):
    from funcnn import layers, losses, optimizers
    kind, name, part = os.environ["FUNCNN_MUTATION"].split(":")
    if kind == "layer":
        entry = layers.LAYERS[name]
        real = entry[part]
        if part == "forward":
            def wrapped(layer, p, x, training, rng, out=None):
                y, cache = real(layer, p, x, training, rng, out)
                return _scale(y, x if out is not x else None), cache
        else:
            def wrapped(layer, p, cache, g, need_dx, out=None):
                dx, grads = real(layer, p, cache, g, need_dx, out)
                owned_g = out is not None and out.get("dx") is g
                return _scale(dx, None if owned_g else g), {k: _scale(v) for k, v in grads.items()}
        entry[part] = wrapped
    elif kind == "cost":  # a layer's multiply-adds or scratch count (ints): one more
        entry = layers.LAYERS[name]
        real_cost = entry[part]
        entry[part] = lambda layer, in_shape, out_shape: real_cost(layer, in_shape, out_shape) + 1
    elif kind == "loss":
        real = losses.CORES[name]

        def wrapped(output, target, w, out=None, **options):
            value, grad = real(output, target, w, out, **options)
            return (value * FACTOR, grad) if part == "value" else (value, _scale(grad))
        losses.CORES[name] = wrapped
    elif kind == "feature":
        _perturb_feature(name)
    elif kind == "export":
        _mutate_export(name, part)
    else:
        real = optimizers.OPTIMIZERS[name]["rule"]

        def wrapped(opt, lr, t, p, g, slots, out):
            old = p.copy()
            new_p, new_slots = real(opt, lr, t, p, g, slots, out)
            step = np.subtract(new_p, old)
            np.add(old, _scale(step), out=new_p)
            return new_p, new_slots
        optimizers.OPTIMIZERS[name]["rule"] = wrapped


def _perturb_feature(name):
    # training control (funcnn.losses' weights, funcnn.optimizers' chains, schedules' plateau): one
    # helper each, wrapped at its module global so every caller sees the perturbed value
    from funcnn import losses, optimizers, schedules
    if name in ("pos_weight", "class_weight"):
        attr = "_pos_weights" if name == "pos_weight" else "_class_weights"
        real = getattr(losses, attr)
        setattr(losses, attr, lambda *a, **k: real(*a, **k) * FACTOR)
    elif name == "balanced":
        real = losses.balanced_class_weight
        losses.balanced_class_weight = lambda *a, **k: [v * FACTOR for v in real(*a, **k)]
    elif name == "mask":  # a mask that misses the last key it should match
        real = optimizers.mask_keys
        optimizers.mask_keys = lambda mask, keys, where="mask": (lambda hit: hit[:-1] if mask is not None
                                                                 and len(hit) > 1 else hit)(real(mask, keys, where))
    elif name in ("decay", "ema", "accumulate"):
        real = optimizers._parts

        def parts(opt):
            got = dict(real(opt))
            if name == "decay":
                got["decays"] = [(wd * FACTOR, m) for wd, m in got["decays"]]
            elif name == "ema" and got["ema"] is not None:
                got["ema"] = got["ema"] * FACTOR
            elif name == "accumulate" and got["every"] > 1:
                got["every"] += 1
            return got
        optimizers._parts = parts
    elif name == "plateau":  # waits one epoch longer than it should
        real = schedules.observe_plateau
        schedules.observe_plateau = lambda s, state, value, step: real({**s, "patience": s["patience"] + 1},
                                                                       state, value, step)
    else:
        raise ValueError(f"unknown feature mutation {name!r}")


def _mutate_export(name, part):
    from funcnn import export
    if name == "layout":  # a wrong transpose into NCHW: height and width swapped
        def to_cf(g, x):
            tensor, shape, cf = x
            if cf or len(shape) != 3:
                return x
            return export._op(g, "Transpose", [tensor], perm=[0, 3, 2, 1]), shape, True
        export._to_cf = to_cf
    elif part == "onnx":  # the layer's ONNX output times FACTOR
        real = export.EXPORTERS[name]["onnx"]

        def wrapped(g, layer, own, x, path, params):
            tensor, shape, cf = real(g, layer, own, x, path, params)
            return export._op(g, "Mul", [tensor, export._const(g, FACTOR, "mutation")]), shape, cf
        export.EXPORTERS[name]["onnx"] = wrapped
    else:  # the layer's torch module's output times FACTOR
        real = export.EXPORTERS[name]["torch"]

        def wrapped(*args):
            module, shape, cf = real(*args)
            module.register_forward_hook(lambda m, inputs, output: output * FACTOR)
            return module, shape, cf
        export.EXPORTERS[name]["torch"] = wrapped
'''


def mutations():
    sys.path.insert(0, REPO)
    from funcnn import export, layers, losses, optimizers
    out = [f"layer:{k}:{part}" for k in layers.LAYERS for part in ("forward", "backward")]
    out += [f"cost:{k}:{part}" for k, entry in layers.LAYERS.items() for part in ("macs", "scratch")
            if entry[part] is not layers.entry.__kwdefaults__[part]]  # the footprint facts (funcnn.footprint)
    out += [f"loss:{k}:{part}" for k in losses.CORES for part in ("value", "grad")]
    out += [f"optimizer:{k}:step" for k in optimizers.OPTIMIZERS]
    out += [f"feature:{k}:value" for k in FEATURES]
    out += [f"export:{k}:{to}" for k in export.exportable_types() for to in ("onnx", "torch")]
    out += ["export:layout:nchw"]
    return out


def run_one(mutation: str, plugin_dir: str, pytest_args) -> tuple:
    env = dict(os.environ, FUNCNN_MUTATION=mutation, FUNCNN_MUTATION_FACTOR=str(FACTOR),
               PYTHONPATH=os.pathsep.join([plugin_dir, REPO, os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    if mutation.startswith("export:") and EXPORT_TESTS in pytest_args:  # the tests that check exports first
        pytest_args = [EXPORT_TESTS] + [a for a in pytest_args if a != EXPORT_TESTS]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "funcnn_mutation",
                           "-p", "no:cacheprovider", *pytest_args],
                          cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = [line.split(" ")[1] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    if proc.returncode == 0:
        return False, "", seconds
    if proc.returncode not in (1,):  # errors (collection, usage): report them as such
        return True, f"pytest exit {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}", seconds
    return True, failed[0] if failed else "(failed)", seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", default=None, help="run the mutations whose name contains this")
    rest = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "tests", "test_*.py")))
    parser.add_argument("pytest_args", nargs="*", default=FIRST + [p for p in rest if p not in FIRST],
                        help="what pytest runs for each mutation (default: the whole suite, the files that "
                             "check arithmetic first, so a caught mutation stops early)")
    args = parser.parse_args(argv)
    todo = [m for m in mutations() if args.only is None or args.only in m]
    if args.list:
        print("\n".join(todo))
        return 0
    survived = []
    with tempfile.TemporaryDirectory() as plugin_dir:
        with open(os.path.join(plugin_dir, "funcnn_mutation.py"), "w") as fh:
            fh.write(PLUGIN)
        for m in todo:
            caught, by, seconds = run_one(m, plugin_dir, args.pytest_args)
            print(f"{'caught  ' if caught else 'SURVIVED'} {m:40s} {seconds:6.1f} s  {by}", flush=True)
            if not caught:
                survived.append(m)
    print(f"\n{len(todo) - len(survived)} of {len(todo)} mutations caught (each result scaled by {FACTOR})")
    if survived:
        print("survived: " + ", ".join(survived))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
