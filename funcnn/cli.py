"""The ``funcnn`` command: ``train``, ``evaluate``, ``predict`` and ``sweep``.

    funcnn train                                   # digits, 128-64 ReLU MLP, Adam; writes model.npz, curves.png
    funcnn train --data moons --hidden 16,16 --epochs 200
    funcnn evaluate model.npz --data digits        # the held-out split the model was tested on
    funcnn predict model.npz --data new.csv        # one prediction per line

Every command is a thin layer over the library: datasets → scaler → train → save.
Argument errors exit with status 2 and an argparse message; data or model errors exit
with status 1 and a one-line ``funcnn: error: ...`` message, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .layers import ACTIVATIONS  # the hidden activations a CLI user can name

DEFAULT_LR = {"adam": 1e-3, "sgd": 0.1, "rmsprop": 1e-3}
LOSS_CHOICES = ("auto", "softmax_cross_entropy", "binary_cross_entropy", "mean_squared_error")


class CLIError(Exception):
    """A problem with the data or the model named on the command line (exit status 1)."""


# --- argument types -------------------------------------------------------------------

def _int_at_least(low: int, what: str):
    """An argparse type for integers >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _widths(text: str) -> List[int]:
    try:
        widths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths such as 128,64, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return widths


def _batch_size(text: str) -> Optional[int]:
    if text.lower() in ("full", "none", "0"):
        return None
    return _positive_int(text)


# --- the parser -----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funcnn", description="Train and use small neural networks (NumPy).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network and save it", description=(
        "Train an MLP. With no arguments: scikit-learn's digits, standardised, a 128-64 ReLU "
        "network with Adam, 30 epochs; prints the test accuracy, writes model.npz and curves.png."))
    t.add_argument("--data", default="digits",
                   help="a dataset name (digits, iris, wine, breast-cancer, diabetes, moons, circles, blobs, "
                        "fashion-mnist, mnist) or a .npz/.csv file or a directory of MNIST IDX files "
                        "(default: digits)")
    t.add_argument("--test-size", type=_fraction, default=0.25, help="held-out test fraction (default 0.25)")
    t.add_argument("--validation-split", type=_fraction, default=0.1,
                   help="fraction of the training part used for validation curves (default 0.1; 0 for none)")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--spec", help="a JSON file holding the layer spec (a list of dicts)")
    arch.add_argument("--hidden", type=_widths, default=None, help="hidden layer widths (default 128,64)")
    t.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    t.add_argument("--dropout", type=_fraction, default=0.0, help="dropout rate after each hidden layer")
    t.add_argument("--loss", choices=LOSS_CHOICES, default="auto",
                   help="default: softmax CE for >2 classes, binary CE for 2, MSE for real targets")
    t.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default="adam")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: adam 1e-3, sgd 0.1)")
    t.add_argument("--momentum", type=_fraction, default=0.9, help="sgd momentum (default 0.9)")
    t.add_argument("--epochs", type=_non_negative_int, default=30)
    t.add_argument("--batch-size", type=_batch_size, default=32, help="minibatch size, or 'full' (default 32)")
    t.add_argument("--l2", type=_non_negative_float, default=0.0, help="L2 penalty λ (adds λ/2 ||W||²)")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs; keep the best")
    t.add_argument("--seed", type=_non_negative_int, default=0)
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--no-scale", action="store_true", help="do not standardise the features")
    t.add_argument("--out", default="model.npz", help="model file to write (.npz or .pkl; default model.npz)")
    t.add_argument("--plot", default="curves.png", help="learning-curve PNG (needs matplotlib; default curves.png)")
    t.add_argument("--no-plot", action="store_true", help="do not write the learning-curve PNG")
    t.add_argument("--checkpoint", default=None,
                   help="save the training state here after every epoch; resume from it if it exists")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    for name, helptext, func in (("evaluate", "score a saved model on data", cmd_evaluate),
                                 ("predict", "print a saved model's predictions", cmd_predict)):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("model", help="a model file written by funcnn train (or funcnn.save)")
        p.add_argument("--data", required=True, help="a dataset name or a .npz/.csv file or an MNIST directory")
        p.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                       help="'test': the held-out part the model was tested on (same data source); "
                            "'all': every row; 'auto' (default): 'test' for the training data source, else 'all'")
        if name == "predict":
            p.add_argument("--output", default=None, help="write predictions to this file (.csv or .npy)")
            p.add_argument("--proba", action="store_true", help="print class probabilities instead of labels")
        p.set_defaults(func=func)

    s = sub.add_parser("sweep", help="hyper-parameter sweep scored on a validation split",
                       description="Grid search over l2, widths, dropout and learning rate; trials run in "
                                   "parallel with joblib; prints the results best first.")
    s.add_argument("--data", default="digits")
    s.add_argument("--test-size", type=_fraction, default=0.25)
    s.add_argument("--validation-split", type=_fraction, default=0.25)
    s.add_argument("--hidden", type=_widths, action="append", default=None,
                   help="widths to try; repeat for several (default 128,64)")
    s.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    s.add_argument("--l2", type=_non_negative_float, nargs="+", default=[0.0])
    s.add_argument("--dropout", type=_fraction, nargs="+", default=[0.0])
    s.add_argument("--lr", type=_positive_float, nargs="+", default=None)
    s.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default="adam")
    s.add_argument("--epochs", type=_non_negative_int, default=30)
    s.add_argument("--batch-size", type=_batch_size, default=32)
    s.add_argument("--seed", type=_non_negative_int, default=0)
    s.add_argument("--n-jobs", type=int, default=1, help="parallel trials (joblib; -1 for all cores)")
    s.add_argument("--out", default=None, help="retrain the best trial on train+validation and save it here")
    s.add_argument("--plot", default=None, help="PNG of validation score against l2 (needs matplotlib)")
    s.set_defaults(func=cmd_sweep)
    return parser


# --- shared steps ---------------------------------------------------------------------

def _auto_loss(y: np.ndarray) -> str:
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return "binary_cross_entropy" if int(y.max()) <= 1 else "softmax_cross_entropy"
    return "mean_squared_error"


def _n_outputs(loss: str, y: np.ndarray) -> int:
    if loss == "softmax_cross_entropy":
        return int(y.max()) + 1
    if loss == "binary_cross_entropy":
        return 1
    return 1 if y.ndim == 1 else y.shape[1]


def _read_spec(path: str) -> List[Dict[str, Any]]:
    from .layers import check_spec
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise CLIError(f"--spec: no such file: {path}") from None
    except json.JSONDecodeError as exc:
        raise CLIError(f"--spec: {path} is not valid JSON: {exc}") from None
    check_spec(spec)
    return spec


def _optimizer(name: str, lr: Optional[float], momentum: float) -> Dict[str, Any]:
    from .optimizers import by_name
    lr = DEFAULT_LR[name] if lr is None else lr
    return by_name(name, lr=lr, momentum=momentum) if name == "sgd" else by_name(name, lr=lr)


def _split(X, y, fraction: float, seed: int, classification: bool):
    from sklearn.model_selection import train_test_split
    stratify = y if classification and np.unique(y, return_counts=True)[1].min() >= 2 else None
    return train_test_split(X, y, test_size=fraction, random_state=seed, stratify=stratify)


def _load_model(path: str) -> Dict[str, Any]:
    from .checkpoint import load
    model = load(path)
    if "loss" not in model:
        raise CLIError(f"{path}: the model file does not record its loss; save it with loss=... in the metadata")
    return model


def _model_data(model: Dict[str, Any], path: str, source: str, split: str):
    """(X, y) for evaluate/predict, scaled as the model's training data was."""
    from .datasets import apply_scaler, load, load_train_test
    data = model.get("data") or {}
    same_source = data.get("source") == source
    if split == "auto":
        split = "test" if same_source else "all"
    if split == "test":
        if not same_source:
            raise CLIError(f"--split test needs the data the model was trained on ({data.get('source')!r}), "
                           f"got {source!r}; use --split all")
        _, X, _, y = load_train_test(source, test_size=data["test_size"], seed=data["seed"])
    else:
        X, y = load(source)
    if model.get("scaler") is not None:
        X = apply_scaler(model["scaler"], X)
    return X, y


# --- commands -------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from . import losses, plot
    from .checkpoint import save
    from .datasets import apply_scaler, fit_scaler, load_train_test
    from .network import init_params
    from .layers import mlp
    from .train import evaluate, train

    X_train, X_test, y_train, y_test = load_train_test(args.data, test_size=args.test_size, seed=args.seed)
    loss = _auto_loss(y_train) if args.loss == "auto" else args.loss
    classification = losses.is_classification(loss)
    scaler = None if args.no_scale else fit_scaler(X_train)
    if scaler is not None:
        X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
    validation_data = None
    if args.validation_split > 0:
        X_train, X_val, y_train, y_val = _split(X_train, y_train, args.validation_split, args.seed, classification)
        validation_data = (X_val, y_val)
    n_out = _n_outputs(loss, y_train)
    spec = (_read_spec(args.spec) if args.spec
            else mlp(args.hidden or [128, 64], args.activation, args.dropout, n_out))
    params = init_params(spec, X_train.shape[1], seed=args.seed, dtype=args.dtype)
    optimizer = _optimizer(args.optimizer, args.lr, args.momentum)
    early = None
    if args.early_stopping is not None:
        if validation_data is None:
            raise CLIError("--early-stopping needs a validation split (--validation-split > 0)")
        early = {"patience": args.early_stopping}
    data = {"source": args.data, "test_size": args.test_size, "seed": args.seed}
    print(f"data {args.data}: {X_train.shape[0]} train, {0 if validation_data is None else len(y_val)} "
               f"validation, {X_test.shape[0]} test samples, {X_train.shape[1]} features; loss {loss}")
    start = time.perf_counter()
    params, history = train(spec, params, X_train, y_train, loss=loss, optimizer=optimizer, epochs=args.epochs,
                            batch_size=args.batch_size, l2=args.l2, validation_data=validation_data,
                            seed=args.seed, early_stopping=early, progress=not args.quiet,
                            checkpoint=args.checkpoint,
                            checkpoint_metadata=None if args.checkpoint is None else {"scaler": scaler, "data": data})
    seconds = time.perf_counter() - start
    scores = evaluate(spec, params, X_test, y_test, loss=loss)
    summary = "  ".join(f"test {k} {v:.4f}" for k, v in scores.items())
    print(f"trained {len(history['loss'])} epochs in {seconds:.1f} s; {summary}")
    save(args.out, spec, params, loss=loss, scaler=scaler, data=data, history=history, test_scores=scores,
         optimizer=optimizer, l2=args.l2)
    print(f"wrote {args.out}")
    if not args.no_plot:
        try:
            plot.learning_curves(history, args.plot, title=f"{args.data}: {loss}")
            print(f"wrote {args.plot}")
        except ImportError as exc:
            print(f"no plot: {exc}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train import evaluate
    model = _load_model(args.model)
    X, y = _model_data(model, args.model, args.data, args.split)
    scores = evaluate(model["spec"], model["params"], X, y, loss=model["loss"])
    for k, v in scores.items():
        print(f"{k} {v:.6f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .network import predict, predict_proba
    model = _load_model(args.model)
    X, _ = _model_data(model, args.model, args.data, args.split)
    fn = predict_proba if args.proba else predict
    out = fn(model["spec"], model["params"], X, loss=model["loss"])
    if args.output:
        if args.output.endswith(".npy"):
            np.save(args.output, out)
        else:
            np.savetxt(args.output, out.reshape(len(out), -1), delimiter=",", fmt="%.10g")
        print(f"wrote {len(out)} predictions to {args.output}")
    else:
        rows = out.reshape(len(out), -1)
        sys.stdout.write("".join(",".join(f"{v:.10g}" for v in row) + "\n" for row in rows))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import losses, plot, sweep
    from .checkpoint import save
    from .datasets import apply_scaler, fit_scaler, load_train_test
    from .network import init_params
    from .train import evaluate, train

    X_train, X_test, y_train, y_test = load_train_test(args.data, test_size=args.test_size, seed=args.seed)
    loss = _auto_loss(y_train)
    classification = losses.is_classification(loss)
    scaler = fit_scaler(X_train)
    X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
    X_tr, X_val, y_tr, y_val = _split(X_train, y_train, args.validation_split, args.seed, classification)
    lrs = args.lr or [DEFAULT_LR[args.optimizer]]
    trials = sweep.grid(hidden=[tuple(h) for h in (args.hidden or [[128, 64]])], l2=args.l2,
                        dropout=args.dropout, lr=lrs)
    base = {"activation": args.activation, "optimizer": args.optimizer, "epochs": args.epochs,
            "batch_size": args.batch_size}
    results = sweep.sweep(X_tr, y_tr, validation_data=(X_val, y_val), trials=trials, loss=loss, base=base,
                          n_jobs=args.n_jobs, seed=args.seed)
    for r in results:
        score = "failed: " + r["error"] if r["error"] else f"{r['score']:.4f}"
        print(f"{json.dumps({k: v for k, v in r['trial'].items()}, default=str)}  {score}")
    best = sweep.best(results)
    print(f"best: {json.dumps(best['trial'], default=str)} validation score {best['score']:.4f}")
    if args.plot and len(args.l2) > 1:
        by_l2 = [r for r in results if not r["error"]]
        values = sorted({r["trial"]["l2"] for r in by_l2})
        scores = [max(r["score"] for r in by_l2 if r["trial"]["l2"] == v) for v in values]
        plot.validation_curve(values, scores, args.plot, param_name="λ (l2)")
        print(f"wrote {args.plot}")
    if args.out:
        # Retrain the chosen configuration on train + validation, then test once.
        spec = best["spec"]
        X_all, y_all = np.concatenate([X_tr, X_val]), np.concatenate([y_tr, y_val])
        params = init_params(spec, X_all.shape[1], seed=args.seed)
        trial = {**base, **best["trial"]}
        params, history = train(spec, params, X_all, y_all, loss=loss,
                                optimizer=_optimizer(args.optimizer, trial.get("lr"), 0.9),
                                epochs=args.epochs, batch_size=args.batch_size, l2=trial.get("l2", 0.0),
                                seed=args.seed, progress=False)
        scores = evaluate(spec, params, X_test, y_test, loss=loss)
        print("  ".join(f"test {k} {v:.4f}" for k, v in scores.items()))
        save(args.out, spec, params, loss=loss, scaler=scaler,
             data={"source": args.data, "test_size": args.test_size, "seed": args.seed}, test_scores=scores)
        print(f"wrote {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, FloatingPointError, ImportError) as exc:
        print(f"funcnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
