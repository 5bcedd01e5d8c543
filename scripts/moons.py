"""Two-moons experiments of tutorials 000 and 004, redone with funcnn.

Part 1 — tutorial 000 ("Basics of neural networks"): an MLP with two hidden layers of 5
ReLU units and a 2-class softmax on make_moons(noise=0.05), 2000 training and 2000 test
points, inputs min-max scaled to [-1, 1] on the training set. The tutorial reported a
36.8 % test error; its LinearLayer.backward is wrong (the gradient passed downstream is
``upstream @ (grad_B + grad_b)`` instead of ``upstream @ B``), so it never learnt the
moons. Here:

* "seed setup, correct gradients": the tutorial's own training setup (N(0, 1) weights and
  biases, plain SGD, lr 0.05, batch 200, 50 epochs) with funcnn's correct gradients;
* "ours": the same [5, 5, 2] network with He init and Adam (lr 0.01, batch 32, 100
  epochs) — must reach ≤ 1 % test error. It is run from 5 initialisation seeds and the
  worst of them is reported too. Learning curves use a separate 2000-point validation
  set (make_moons is free); nothing is selected on the test set.

The data: one make_moons(6000, noise=0.05) split by sklearn.model_selection.train_test_split
(stratified) into 2000 train / 2000 validation / 2000 test points; the tutorial drew its
2000 training and 2000 test points with two make_moons calls.

Part 2 — tutorial 004 ("Handmade Neural Network with Numpy"): make_moons(1000,
noise=0.2, random_state=100), train_test_split(test_size=0.1, random_state=42) exactly as
the tutorial, a 2-25-50-50-25-1 network of ReLUs with a sigmoid output unit (funcnn: a
logit output and ``binary_cross_entropy``). The post prints no result (it shows the code
only), so there is no number of the tutorial to beat; we print:

* "seed setup": its training setup — weights N(0, 0.1²), biases drawn from {0.01, ...,
  0.09}, full-batch gradient descent, lr 0.01, 10000 epochs — with funcnn's stable loss
  (the tutorial's ``negativelogloss`` uses log10, so the loss it would print is ours
  divided by ln 10; its gradients are the natural-log ones, so training is unaffected);
* "ours": the same architecture with He init, Adam (batch 32), early stopping (patience
  50, best epoch restored) on a validation split carved from the 900 training points
  (20 %, stratified); lr ∈ {0.001, 0.003} × l2 ∈ {0, 1e-4, 1e-3} chosen by one funcnn.sweep
  on the mean validation log loss over 3 inits; the chosen setting's seed-0 network is
  tested once on the tutorial's 100 test points.

Run (from the repository root)::

    python scripts/moons.py                 # ~1 min on 2 cores, figures in scripts/figures/
    python scripts/moons.py --quick --out-dir /tmp/figs   # smoke run, a few seconds

Last full run (2 shared cores, load average ~2; 51 s in all)::

    experiment                                  tutorial     tutorial's setup, funcnn   ours
    000 moons n0.05 [5,5,2]: test error %       36.8         11.50 (median of 5 inits)  0.00 (worst of 5 inits 0.00; 1.0 s/run)
    004 moons n0.2 25-50-50-25-1: test acc      not printed  0.97 (12 s)                0.98 (lr 0.001, l2 0.001, best epoch 526, 9.2 s; sweep 30 s)
    004 test log loss, nats [log10 as printed]  not printed  0.0632 [0.0274]            0.0583 [0.0253]
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (puts the repository on sys.path when funcnn is not installed)

import numpy as np  # noqa: E402

import funcnn  # noqa: E402
from funcnn import plot  # noqa: E402
from funcnn.layers import dense, relu  # noqa: E402
from funcnn.optimizers import adam, sgd  # noqa: E402
from funcnn.sweep import grid, sweep  # noqa: E402
from funcnn.train import evaluate, train  # noqa: E402

SEED_000_ERROR = 36.8  # % test error printed by tutorial 000 (the broken gradient)
SOFTMAX = "softmax_cross_entropy"
BINARY = "binary_cross_entropy"


# --------------------------------------------------------------------------- data

def moons_000(n_per_split: int, seed: int = 0):
    """2000/2000/2000 (train/validation/test) moons with noise 0.05, scaled to [-1, 1] on train."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler
    X, y = make_moons(3 * n_per_split, noise=0.05, random_state=seed)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=n_per_split, random_state=seed, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=n_per_split, random_state=seed,
                                                      stratify=y_rest)
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(X_train)  # the tutorial's scaling
    return (scaler.transform(X_train), y_train, scaler.transform(X_val), y_val,
            scaler.transform(X_test), y_test)


def moons_004():
    """The tutorial's data and split: 900 training and 100 test points, unscaled (as there)."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    X, y = make_moons(n_samples=1000, noise=0.2, random_state=100)
    return train_test_split(X, y, test_size=0.1, random_state=42)


# --------------------------------------------------------------------------- networks

def with_biases(params: Dict[str, np.ndarray], draw) -> Dict[str, np.ndarray]:
    """A new params dict whose biases are ``draw(shape)`` (the tutorials do not start them at 0)."""
    return {k: (np.asarray(draw(v.shape), dtype=v.dtype) if k.startswith("b_") else v) for k, v in params.items()}


def mlp(widths: List[int], n_out: int, init: Optional[str] = None, std: Optional[float] = None) -> List[Dict]:
    spec: List[Dict[str, Any]] = []
    for w in widths:
        spec += [dense(w, init=init, std=std), relu()]
    return spec + [dense(n_out, init=init, std=std)]


def error_percent(spec, params, X, y, loss) -> float:
    return 100.0 * (1.0 - evaluate(spec, params, X, y, loss=loss)["accuracy"])


# --------------------------------------------------------------------------- part 1

def part_000(args) -> Dict[str, Any]:
    n = 400 if args.quick else 2000
    seeds = [0] if args.quick else list(range(5))
    X_train, y_train, X_val, y_val, X_test, y_test = moons_000(n)

    # The tutorial's setup, correct gradients: N(0, 1) weights and biases, SGD 0.05, batch 200, 50 epochs.
    seed_spec = mlp([5, 5], 2, init="normal", std=1.0)
    seed_errors = []
    for s in seeds:
        rng = np.random.default_rng(s)
        params = with_biases(funcnn.init_params(seed_spec, 2, seed=s), lambda shape: rng.normal(0, 1, shape))
        params, _ = train(seed_spec, params, X_train, y_train, loss=SOFTMAX, optimizer=sgd(0.05),
                          epochs=5 if args.quick else 50, batch_size=200, seed=s, progress=False)
        seed_errors.append(error_percent(seed_spec, params, X_test, y_test, SOFTMAX))

    # Ours: He init, Adam 0.01, batch 32, 100 epochs (fixed in advance, not tuned on test).
    spec = mlp([5, 5], 2)
    errors, runs = [], []
    with _common.stopwatch() as clock:
        for s in seeds:
            params, history = train(spec, funcnn.init_params(spec, 2, seed=s), X_train, y_train, loss=SOFTMAX,
                                    optimizer=adam(0.01), epochs=10 if args.quick else 100, batch_size=32,
                                    validation_data=(X_val, y_val), seed=s, progress=False)
            errors.append(error_percent(spec, params, X_test, y_test, SOFTMAX))
            runs.append((params, history))
    params, history = runs[0]
    path = _common.figure_path(args, "moons_000_learning_curves.png")
    if path:
        plot.learning_curves(history, path, title="moons (noise 0.05), [5, 5, 2] ReLU, Adam")
    path = _common.figure_path(args, "moons_000_decision_boundary.png")
    if path:
        plot.decision_boundary(lambda G: funcnn.predict(spec, params, G, loss=SOFTMAX), X_test, y_test, path)
    return {"seed_error": SEED_000_ERROR,
            "seed_setup_error": float(np.median(seed_errors)), "seed_setup_errors": seed_errors,
            "error": errors[0], "errors": errors, "worst_error": max(errors),
            "seconds_per_run": clock["seconds"] / len(seeds), "n_train": len(X_train), "n_test": len(X_test)}


# --------------------------------------------------------------------------- part 2

def part_004(args) -> Dict[str, Any]:
    from sklearn.model_selection import train_test_split
    X_train, X_test, y_train, y_test = moons_004()
    widths = [25, 50, 50, 25]

    # The tutorial's setup: N(0, 0.1²) weights, biases in {0.01..0.09}, full batch, lr 0.01, 10000 epochs.
    seed_spec = mlp(widths, 1, init="normal", std=0.1)
    rng = np.random.default_rng(1105)  # the tutorial's init_layers(seed=1105) (which it never used)
    params = with_biases(funcnn.init_params(seed_spec, 2, seed=1105), lambda shape: rng.integers(1, 10, shape) / 100)
    with _common.stopwatch() as clock_seed:
        seed_params, seed_history = train(seed_spec, params, X_train, y_train, loss=BINARY, optimizer=sgd(0.01),
                                          epochs=200 if args.quick else 10000, seed=0, progress=False)
    seed_eval = evaluate(seed_spec, seed_params, X_test, y_test, loss=BINARY)

    # Ours: He init, Adam, batch 32, early stopping (patience 50, best epoch restored) on a validation
    # split of the training points; lr and l2 chosen by the mean validation log loss over 3 inits.
    X_fit, X_val, y_fit, y_val = train_test_split(X_train, y_train, test_size=0.2, random_state=0, stratify=y_train)
    seeds = [0] if args.quick else [0, 1, 2]
    trials = (grid(lr=[0.003], l2=[0.0, 1e-3], seed=seeds) if args.quick
              else grid(lr=[0.001, 0.003], l2=[0.0, 1e-4, 1e-3], seed=seeds))
    with _common.stopwatch() as clock:
        results = sweep(X_fit, y_fit, validation_data=(X_val, y_val), trials=trials, loss=BINARY, score="neg_loss",
                        base={"hidden": tuple(widths), "activation": "relu", "optimizer": "adam", "batch_size": 32,
                              "epochs": 20 if args.quick else 1000, "early_stopping": {"patience": 50}},
                        n_jobs=args.n_jobs, keep_params="all")
    failed = [r["error"] for r in results if r["error"]]
    if failed:
        raise RuntimeError(f"{len(failed)} sweep trial(s) failed; first: {failed[0]}")
    configs: Dict[Any, List[float]] = {}
    for r in results:
        configs.setdefault((r["trial"]["lr"], r["trial"]["l2"]), []).append(r["val_loss"])
    lr, l2 = min(configs, key=lambda c: (np.mean(configs[c]), c))
    chosen = next(r for r in results if (r["trial"]["lr"], r["trial"]["l2"], r["seed"]) == (lr, l2, seeds[0]))
    spec, params, history = chosen["spec"], chosen["params"], chosen["history"]
    ours = evaluate(spec, params, X_test, y_test, loss=BINARY)
    best_epoch = int(np.argmin(history["val_loss"])) + 1

    path = _common.figure_path(args, "moons_004_learning_curves.png")
    if path:
        plot.learning_curves(history, path, title="moons (noise 0.2), 25-50-50-25-1 ReLU, Adam")
    path = _common.figure_path(args, "moons_004_seed_setup_learning_curves.png")
    if path:
        plot.learning_curves(seed_history, path, title="tutorial 004's setup: full-batch GD, lr 0.01")
    path = _common.figure_path(args, "moons_004_decision_boundary.png")
    if path:
        plot.decision_boundary(lambda G: funcnn.predict(spec, params, G, loss=BINARY), X_train, y_train, path)
    path = _common.figure_path(args, "moons_004_seed_setup_decision_boundary.png")
    if path:
        plot.decision_boundary(lambda G: funcnn.predict(seed_spec, seed_params, G, loss=BINARY),
                               X_train, y_train, path)
    return {"seed_accuracy": None,  # the post prints nothing
            "seed_setup_accuracy": seed_eval["accuracy"], "seed_setup_logloss": seed_eval["loss"],
            "seed_setup_logloss_log10": seed_eval["loss"] / np.log(10), "seed_setup_seconds": clock_seed["seconds"],
            "accuracy": ours["accuracy"], "logloss": ours["loss"], "logloss_log10": ours["loss"] / np.log(10),
            "lr": lr, "l2": l2, "val_logloss": float(np.mean(configs[(lr, l2)])),
            "best_epoch": best_epoch, "epochs_run": len(history["loss"]), "sweep_seconds": clock["seconds"],
            "seconds": chosen["seconds"]}


# --------------------------------------------------------------------------- main

def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    # One BLAS thread: these matrices are tiny, and on a busy 2-core machine a second
    # thread makes them several times slower.
    parser = _common.base_parser(__doc__.split("\n\n")[0], threads=1)
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel trials in the 004 sweep (default 2)")
    args = parser.parse_args(argv)
    with _common.stopwatch() as total, _common.blas_threads(args.threads):
        p1 = part_000(args)
        p2 = part_004(args)
    rows = [
        ["000 moons n0.05 [5,5,2]: test error %", f"{p1['seed_error']:g}",
         f"{p1['seed_setup_error']:.2f} (seed setup, correct grads; median of {len(p1['seed_setup_errors'])})",
         f"{p1['error']:.2f} (worst of {len(p1['errors'])} inits {p1['worst_error']:.2f}; "
         f"{p1['seconds_per_run']:.1f} s/run)"],
        ["004 moons n0.2 25-50-50-25-1: test acc", "not printed",
         f"{p2['seed_setup_accuracy']:.2f} (seed setup, {p2['seed_setup_seconds']:.0f} s)",
         f"{p2['accuracy']:.2f} (lr {p2['lr']:g}, l2 {p2['l2']:g}, best epoch {p2['best_epoch']}, "
         f"{p2['seconds']:.1f} s; sweep {p2['sweep_seconds']:.0f} s)"],
        ["004 test log loss, nats [log10 as printed]", "not printed",
         f"{p2['seed_setup_logloss']:.4f} [{p2['seed_setup_logloss_log10']:.4f}]",
         f"{p2['logloss']:.4f} [{p2['logloss_log10']:.4f}]"],
    ]
    print(_common.table(rows, ["experiment", "tutorial", "tutorial's setup, funcnn", "ours"]))
    print(f"total {total['seconds']:.1f} s; {_common.load_average()}")
    return {"seed_000": p1, "seed_004": p2, "seconds": total["seconds"]}


if __name__ == "__main__":
    main()
