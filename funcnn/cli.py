"""The ``funcnn`` command: ``train``, ``evaluate``, ``predict``, ``summary``, ``sweep`` and ``export``.

    funcnn train                                   # digits, 128-64 ReLU MLP, Adam; writes model.npz, curves.png
    funcnn train --data iris.csv                   # any CSV: label column, task, delimiter found by rule
    funcnn train --data moons --hidden 16,16 --epochs 200
    funcnn evaluate model.npz --data digits        # the held-out split the model was tested on
    funcnn predict model.npz --data new.csv        # a CSV of predicted labels, with a header
    funcnn export model.npz model.onnx             # ONNX (or model.safetensors), for other runtimes

Every command is a thin layer over the library: datasets → labels → scaler → train → save.
This is where files meet the library, so labels are encoded here (any labels: numbers,
text, booleans; classes in sorted order, stored in the model as ``classes``) and
predictions are decoded back to the original labels.

Rules (documented in the command-line guide, docs/guide/cli.md):

* the label column of a CSV: ``--label-column NAME|INDEX``; by default a column named
  target/label/class/y (case-insensitive), else the only non-numeric column, else the last;
* the task: ``--task auto`` calls text or boolean labels, and integers with at most
  max(20, √n) distinct values, a classification; numbers with fractions, and integers
  with more distinct values, a regression (``funcnn.datasets.infer_task``); ``--loss``
  implies the task;
* the delimiter is sniffed among , ; tab | (``--delimiter`` overrides); a row index column
  (an empty first header cell, or a first column named index / Unnamed: 0 holding distinct
  non-negative integers) is not a feature (``--index-column none`` keeps it);
* one-hot targets are refused with the hint ``y.argmax(axis=1)``;
* every output path (``--out``, ``--plot``, ``--checkpoint``, ``--output``) is checked before
  any training: known extension, existing and writable directory;
* a run that diverges (``FloatingPointError``, or ``funcnn.train.DivergenceWarning``: a final
  training loss far above the first) exits 1 and writes no model;
* ``--epochs`` must be at least 1 (``funcnn.train`` accepts 0; a 0-epoch command-line run
  would only save the initial params);
* a directory holding ``X.npy`` (+ ``y.npy``) is read memory-mapped and never copied whole: its
  test and validation parts are its last rows (views, the files' order), its features are used as
  stored (``--scale`` is refused), ``evaluate``/``predict`` work chunk by chunk;
* ``sweep --scheduler ADDRESS`` runs the trials on a running Dask scheduler (joblib's dask
  backend), refused in one line when distributed is missing or the scheduler, or a worker, is
  not there within ``--scheduler-timeout`` seconds.

* ``sweep --results FILE`` writes each finished trial as a JSON line (the file rewritten atomically
  after every trial); ``--resume`` skips the trials FILE already holds. When the parallel backend
  fails (a Dask worker or the scheduler lost), the finished trials are kept and printed, the
  others are reported lost, and the command exits 3;
* ``summary MODEL`` prints the model's layers: output shapes, parameters, multiply-adds and memory.

Argument errors exit with status 2 and an argparse message; data, model, path and
training errors exit with status 1 and a one-line ``funcnn COMMAND: error: ...`` message,
never a traceback; a sweep that lost trials exits 3 (see above); Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import importlib.util
import io
import json
import math
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .layers import ACTIVATIONS  # the hidden activations a CLI user can name

DEFAULT_LR = {"adam": 1e-3, "sgd": 0.1, "rmsprop": 1e-3}
DEFAULT_HIDDEN = [128, 64]
LOSS_CHOICES = ("auto", "softmax_cross_entropy", "binary_cross_entropy", "mean_squared_error")
TASK_CHOICES = ("auto", "classification", "regression")
PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
PREDICTION_EXTENSIONS = (".csv", ".txt", ".npy")


class CLIError(Exception):
    """A problem with the data, the model or a path named on the command line (exit status 1)."""


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


def _open_fraction(text: str) -> float:
    value = _fraction(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _sample_shape(text: str) -> Tuple[int, ...]:
    """One sample's shape: comma-separated positive ints such as 28,28,1."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected one sample's shape as positive ints such as 28,28,1, got {text!r}")
    return shape


def _widths(text: str) -> List[int]:
    """Comma-separated positive widths; 'none' for no hidden layer. Empty parts are refused."""
    if text.strip().lower() == "none":
        return []
    parts = text.split(",")
    if any(not part.strip() for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths such as 128,64 (or 'none'), "
                                         f"got {text!r} with an empty width")
    try:
        widths = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths such as 128,64, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return widths


def _batch_size(text: str) -> Optional[int]:
    """A positive batch size, or 'full' (full-batch gradient descent); 0 is refused as the API does."""
    if text.strip().lower() in ("full", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    return value


def _n_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a non-zero integer (1 serial, k workers, -1 all cores), got {text!r}")
    return value


def _column(text: str) -> Any:
    """A column name, or an int index when the text is an integer; comma-separated: a list of them
    (several label columns: multi-label targets)."""
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        if any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"an empty column in {text!r}")
        return [_column(p) for p in parts]
    try:
        return int(text)
    except ValueError:
        return text


def _class_weight(text: str) -> Any:
    """'balanced' or a JSON object {label: weight} with non-negative numbers."""
    if text.strip() == "balanced":
        return "balanced"
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'balanced' or a JSON object {{label: weight}}, got {text!r}") \
            from None
    if not isinstance(value, dict) or not value:
        raise argparse.ArgumentTypeError(f"expected 'balanced' or a non-empty JSON object {{label: weight}}, "
                                         f"got {text!r}")
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
            raise argparse.ArgumentTypeError(f"the weight of label {k!r} must be a finite number >= 0, got {v!r}")
    return value


def _class_weights(spec: Any, classes: np.ndarray, y_train: np.ndarray) -> List[float]:
    """One weight per class (in ``classes`` order) from --class-weight: 'balanced' on the training codes,
    or a {label: weight} object whose keys are the labels as the data file writes them."""
    from .losses import balanced_class_weight
    if spec == "balanced":
        try:
            return balanced_class_weight(y_train, classes.size)
        except ValueError as exc:
            raise CLIError(f"--class-weight balanced: {exc}") from None
    by_text = {str(c): i for i, c in enumerate(classes.tolist())}
    unknown = [k for k in spec if k not in by_text]
    if unknown:
        raise CLIError(f"--class-weight names label(s) {unknown} that are not classes of the data "
                       f"({_describe_classes(classes)})")
    weights = [1.0] * classes.size
    for k, v in spec.items():
        weights[by_text[k]] = float(v)
    return weights


def _delimiter(text: str) -> Optional[str]:
    named = {"auto": "auto", "tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
             "space": None, "whitespace": None}
    if text.lower() in named:
        return named[text.lower()]
    if len(text) != 1 or text in "\r\n\"":
        raise argparse.ArgumentTypeError(f"expected one character, 'tab', 'whitespace' or 'auto', got {text!r}")
    return text


class _NoIndexColumn:
    """``--index-column none`` (None itself means "not given")."""

    def __repr__(self) -> str:
        return "none"


NO_INDEX_COLUMN = _NoIndexColumn()


def _input_shape(text: str) -> Tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive ints separated by commas, e.g. 28,28,1; got {text!r}")
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints separated by commas, e.g. 28,28,1; got {text!r}")
    return dims


def _index_column(text: str) -> Any:
    if text.lower() == "none":
        return NO_INDEX_COLUMN
    return "auto" if text.lower() == "auto" else _column(text)


# --- the parser -----------------------------------------------------------------------

def _add_csv_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda value: value) if defaults else (lambda value: None)
    p.add_argument("--label-column", type=_column, default=None, metavar="NAME|INDEX",
                   help="CSV: the label column, by header name or 0-based index (negative from the end), or "
                        "several, comma-separated, of 0/1 values (multi-label: one output per column); "
                        "default: a column named target/label/class/y, else the only non-numeric column, "
                        "else the last")
    p.add_argument("--delimiter", type=_delimiter, default=d("auto"),
                   help="CSV: the field delimiter (a character, 'tab' or 'whitespace'); default: sniffed "
                        "among , ; tab |")
    p.add_argument("--index-column", type=_index_column, default=d("auto"), metavar="auto|none|NAME|INDEX",
                   help="CSV: a row-index column to drop; 'auto' (default) drops an unnamed first column or one "
                        "named index/Unnamed: 0 holding distinct non-negative integers; 'none' keeps every column")


def build_parser() -> argparse.ArgumentParser:
    """The ``funcnn`` command's argument parser, one sub-parser per command (the documentation's
    command-line reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="funcnn", description="Train and use small neural networks (NumPy).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network and save it", description=(
        "Train an MLP. With no arguments: scikit-learn's digits, standardised, a 128-64 ReLU "
        "network with Adam, 30 epochs; prints the test accuracy, writes model.npz and curves.png."))
    t.add_argument("--data", default="digits",
                   help="a dataset name (digits, iris, wine, breast-cancer, diabetes, moons, circles, blobs, "
                        "fashion-mnist, mnist), a .npz/.csv file, a directory of MNIST IDX files, or a directory "
                        "holding X.npy and y.npy (memory-mapped: larger than memory is fine; the last "
                        "--test-size rows are the test part, no standardisation), or text:FILE (a causal "
                        "language model on the file's bytes; needs --spec) (default: digits)")
    _add_csv_options(t)
    t.add_argument("--task", choices=TASK_CHOICES, default="auto",
                   help="auto (default): text/boolean labels and integers with at most max(20, sqrt(n)) "
                        "distinct values are classes, other numbers a regression target")
    t.add_argument("--test-size", type=_open_fraction, default=0.25, help="held-out test fraction (default 0.25)")
    t.add_argument("--validation-split", type=_fraction, default=0.1,
                   help="fraction of the training part used for validation curves (default 0.1; 0 for none)")
    t.add_argument("--context", type=_positive_int, default=None,
                   help="with --data text:FILE: the window length in bytes (default: the spec's positional max_len)")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--spec", help="a JSON file holding the layer spec (a list of dicts)")
    arch.add_argument("--hidden", type=_widths, default=None,
                      help="hidden layer widths (default 128,64; 'none' for no hidden layer)")
    t.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    t.add_argument("--dropout", type=_fraction, default=0.0, help="dropout rate after each hidden layer")
    t.add_argument("--loss", choices=LOSS_CHOICES, default="auto",
                   help="default: softmax CE for >2 classes, binary CE for 2, MSE for regression")
    t.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default="adam")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: adam 1e-3, sgd 0.1)")
    t.add_argument("--momentum", type=_fraction, default=0.9, help="sgd momentum (default 0.9)")
    t.add_argument("--epochs", type=_positive_int, default=30, help="epochs (at least 1; default 30)")
    t.add_argument("--batch-size", type=_batch_size, default=32, help="minibatch size, or 'full' (default 32)")
    t.add_argument("--l2", type=_non_negative_float, default=0.0, help="L2 penalty λ (adds λ/2 ||W||²)")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs; keep the best")
    t.add_argument("--class-weight", type=_class_weight, default=None, metavar="balanced|JSON",
                   help="classification: weigh each sample by its class: 'balanced' (n / (k * count), computed "
                        "on the training part) or a JSON object {label: weight} (missing labels weigh 1), "
                        "e.g. '{\"spam\": 5}'")
    t.add_argument("--seed", type=_non_negative_int, default=0)
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    scale = t.add_mutually_exclusive_group()
    scale.add_argument("--scale", dest="scale", action="store_const", const=True, default=None,
                       help="standardise the features (the default, except for X.npy directories, where it "
                            "is refused: it would copy X whole)")
    scale.add_argument("--no-scale", dest="scale", action="store_const", const=False,
                       help="do not standardise the features")
    t.add_argument("--out", default="model.npz", help="model file to write (.npz or .pkl; default model.npz)")
    t.add_argument("--plot", default="curves.png", help="learning-curve PNG (needs matplotlib; default curves.png)")
    t.add_argument("--no-plot", action="store_true", help="do not write the learning-curve PNG")
    t.add_argument("--checkpoint", default=None,
                   help="save the training state here after every epoch; resume from it if it exists")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    for name, helptext, func in (("evaluate", "score a saved model on labelled data", cmd_evaluate),
                                 ("predict", "write a saved model's predictions (original labels, CSV with a "
                                             "header)", cmd_predict)):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("model", help="a model file written by funcnn train (or funcnn.save)")
        p.add_argument("--data", required=True,
                       help="a dataset name, a .csv/.npz file" + (", a .npy file of features" if name == "predict"
                                                                  else "") + ", an MNIST directory or a directory "
                            "holding X.npy" + (" (y.npy optional)" if name == "predict" else " and y.npy")
                            + " (memory-mapped, read in chunks)")
        p.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                       help="'test': the held-out part the model was tested on (same data source); "
                            "'all': every row; 'auto' (default): 'test' for the training data source, else 'all'")
        _add_csv_options(p, defaults=False)
        if name == "predict":
            p.add_argument("--output", default=None, help="write predictions to this file (.csv or .npy) instead "
                                                          "of stdout")
            p.add_argument("--proba", action="store_true",
                           help="class probabilities, one column per class named by the class")
        p.set_defaults(func=func)

    m = sub.add_parser("summary", help="a saved model's layers: output shapes, parameters, multiply-adds, memory",
                       description="Per layer: path, type, output shape, parameters, multiply-adds and activation "
                                   "memory per sample; then the totals and the memory budget (funcnn.summary).")
    m.add_argument("model", help="a model file written by funcnn train (or funcnn.save)")
    m.add_argument("--input-shape", type=_sample_shape, default=None, metavar="D1,D2,...",
                   help="one sample's shape (e.g. 28,28,1), for a model whose file does not fix it")
    m.set_defaults(func=cmd_summary)

    s = sub.add_parser("sweep", help="hyper-parameter sweep scored on a validation split",
                       description="Grid search over l2, widths, dropout and learning rate; every trial uses the "
                                   "same seed (common random numbers), --repeats runs each over several seeds; "
                                   "trials run in parallel with joblib; prints the results best first.")
    s.add_argument("--data", default="digits")
    _add_csv_options(s)
    s.add_argument("--task", choices=TASK_CHOICES, default="auto")
    s.add_argument("--test-size", type=_open_fraction, default=0.25)
    s.add_argument("--validation-split", type=_open_fraction, default=0.25)
    s.add_argument("--hidden", type=_widths, action="append", default=None,
                   help="widths to try; repeat for several (default 128,64)")
    s.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    s.add_argument("--l2", type=_non_negative_float, nargs="+", default=[0.0])
    s.add_argument("--dropout", type=_fraction, nargs="+", default=[0.0])
    s.add_argument("--lr", type=_positive_float, nargs="+", default=None)
    s.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default="adam")
    s.add_argument("--epochs", type=_positive_int, default=30)
    s.add_argument("--batch-size", type=_batch_size, default=32)
    s.add_argument("--seed", type=_non_negative_int, default=0,
                   help="the seed of every trial (and of the data split); default 0")
    s.add_argument("--repeats", type=_positive_int, default=1,
                   help="run every trial with the seeds SEED..SEED+REPEATS-1; rank by the mean score")
    s.add_argument("--n-jobs", type=_n_jobs, default=None,
                   help="parallel trials (joblib; -1 for all cores; default 1, or -1 with --scheduler)")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the trials on a running Dask scheduler (e.g. tcp://10.0.0.5:8786) through joblib's "
                        "dask backend; needs dask.distributed: pip install 'funcnn[dask]'")
    s.add_argument("--scheduler-timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="give up when the scheduler cannot be reached, or has no worker, within this time "
                        "(default 30)")
    s.add_argument("--results", default=None, metavar="FILE",
                   help="write every finished trial's result here as JSON lines, rewritten (atomically) after "
                        "each trial, so an interrupted sweep keeps what finished")
    s.add_argument("--resume", action="store_true",
                   help="with --results: skip the trials the file already holds (same settings and seeds)")
    s.add_argument("--out", default=None, help="retrain the best trial on train+validation and save it here")
    s.add_argument("--plot", default=None, help="PNG of validation score against l2 (needs matplotlib)")
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser("export", help="write a saved model as ONNX (.onnx) or safetensors (.safetensors)",
                       description="Write a model file as an ONNX model (input 'input', output 'output': the "
                                   "network's outputs, logits for the cross-entropies; needs onnx: pip install "
                                   "'funcnn[export]') or as a .safetensors checkpoint (spec and metadata in its "
                                   "header). A model trained with a scaler takes standardised features in ONNX: "
                                   "the scaler stays in the model file's metadata.")
    e.add_argument("model", help="a model file written by funcnn train (or funcnn.save)")
    e.add_argument("out", help="the file to write: .onnx or .safetensors")
    e.add_argument("--opset", type=_positive_int, default=None, help="ONNX opset (default 17)")
    e.add_argument("--input-shape", type=_input_shape, default=None, metavar="D1,D2,...",
                   help="one sample's shape, e.g. 28,28,1, for a model whose params do not fix it (a network "
                        "that starts with conv2d); by default from the model")
    e.set_defaults(func=cmd_export)
    return parser


# --- output paths ---------------------------------------------------------------------

def _check_output(path: str, what: str, extensions: Sequence[str]) -> str:
    """Refuse, before any work, a path that cannot be written: unknown extension, missing or
    unwritable directory, or a directory in its place."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in extensions:
        raise CLIError(f"{what} {path}: unknown extension {ext or '(none)'!r}; use one of {', '.join(extensions)}")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path}: is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{what} {path}: no such directory {directory}")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".funcnn-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"{what} {path}: cannot write in {directory} ({exc.strerror or exc})") from None
    return path


def _check_model_path(path: str, what: str) -> str:
    """A model or checkpoint path, by funcnn.checkpoint.check_path: known extension (.npz, .pkl,
    .pickle), an existing, writable directory, a name the file system allows."""
    from .checkpoint import check_path
    try:
        check_path(path)
    except (ValueError, TypeError, OSError) as exc:
        raise CLIError(f"{what}: {_error_text(exc)}") from None
    return path


def _error_text(exc: BaseException) -> str:
    """One line: an OSError as "reason: filename" (without "[Errno 2]"), anything else as str()."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc).replace("\n", " ") or type(exc).__name__


def _can_plot() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


# --- data and labels ------------------------------------------------------------------

def _source_kind(source: str) -> str:
    from .datasets import DATASETS
    if source.strip().lower().replace("_", "-") in DATASETS:
        return "name"
    if os.path.isdir(source):
        return "dir"
    return os.path.splitext(source)[1].lower().lstrip(".") or "file"


def _csv_options(args: argparse.Namespace, source: str, saved: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """load()'s CSV options from the command line (None: not given), over those saved with the model."""
    given = {"label_column": args.label_column, "delimiter": args.delimiter, "index_column": args.index_column}
    is_csv = _source_kind(source) in ("csv", "txt", "tsv")
    if not is_csv:
        named = [f"--{k.replace('_', '-')}" for k, v in given.items()
                 if v is not None and not (k in ("delimiter", "index_column") and isinstance(v, str) and v == "auto")]
        if named:
            raise CLIError(f"{', '.join(named)} only apply to CSV files, not {source!r}")
        return {}
    options = {"label_column": None, "delimiter": "auto", "index_column": "auto"}
    options.update({k: v for k, v in (saved or {}).items() if k in options})
    options.update({k: v for k, v in given.items() if v is not None})
    if options["index_column"] is NO_INDEX_COLUMN:
        options["index_column"] = None
    return options


def _is_array_dir(source: str) -> bool:
    """A directory holding X.npy (+ y.npy): memory-mapped, split and read without copying X."""
    from .datasets import directory_kind
    return _source_kind(source) == "dir" and directory_kind(source) == "npy"


def _load_all(source: str, options: Dict[str, Any], test_size: float = 0.25):
    """``(X, y, info, official)``: the whole data set (labels as the file holds them), or, for
    MNIST-format data, ``official`` = the files' own (X_train, X_test, y_train, y_test); for an
    X.npy directory, ``official`` = the last ``test_size`` of the rows as the test part (views of
    the memory map, so X is never copied)."""
    from .datasets import load, load_csv, load_train_test
    kind = _source_kind(source)
    if kind in ("csv", "txt", "tsv") and os.path.isfile(source):
        X, y, info = load_csv(source, return_info=True, **options)
        return X, y, info, None
    if kind == "dir" or source.strip().lower().replace("_", "-") in ("fashion-mnist", "mnist"):
        official = load_train_test(source, test_size=test_size)
        return None, np.concatenate([official[2], official[3]]), {}, official
    X, y = load(source)
    return X, y, {}, None


def _decide_task(y: np.ndarray, task: str, loss: str) -> Tuple[str, str]:
    """(task, why): ``--loss`` implies the task, else ``--task``, else datasets.infer_task's rule."""
    from .datasets import infer_task
    if loss != "auto":
        implied = "regression" if loss == "mean_squared_error" else "classification"
        if task not in ("auto", implied):
            raise CLIError(f"--loss {loss} is a {implied} loss, but --task is {task}")
        return implied, f"--loss {loss}"
    if task != "auto":
        return task, f"--task {task}"
    found, reason = infer_task(y, return_reason=True)
    return found, f"auto: {reason}; override with --task"


def _classes_and_loss(y: np.ndarray, task: str, loss: str, label: str):
    """(classes or None, loss) for the whole data set's targets."""
    from .datasets import encode_labels, label_array
    if task == "regression":
        arr = label_array(y)
        if arr.dtype.kind not in "iuf":
            raise CLIError(f"{label} holds {'text' if arr.dtype.kind in 'US' else arr.dtype} values; a regression "
                           "needs numbers (use --task classification, or choose another --label-column)")
        return None, "mean_squared_error" if loss == "auto" else loss
    _, classes = encode_labels(y)
    k = classes.size
    if k < 2:
        raise CLIError(f"{label} holds a single class ({classes[0].item()!r}); a classifier needs at least 2")
    if loss == "binary_cross_entropy" and k != 2:
        raise CLIError(f"--loss binary_cross_entropy needs 2 classes, {label} holds {k}")
    if loss == "auto":
        loss = "binary_cross_entropy" if k == 2 else "softmax_cross_entropy"
    return classes, loss


def _multilabel(y: np.ndarray, info: Dict[str, Any], args: argparse.Namespace):
    """(task, why, classes, loss) for several label columns: 0/1 each, binary_cross_entropy with one
    output per column; ``classes`` are the columns' names (or their indices)."""
    loss = getattr(args, "loss", "auto")
    if args.task == "regression" or loss not in ("auto", "binary_cross_entropy"):
        raise CLIError("several label columns are multi-label classification (binary_cross_entropy, one output "
                       f"per column); got --task {args.task} --loss {loss}")
    names = info.get("label_name") or [str(i) for i in info.get("label_index", range(y.shape[1]))]
    for j, name in enumerate(names):
        column = y[:, j]
        if column.dtype.kind not in "biuf" or not np.isin(column, (0, 1)).all():
            bad = column[~np.isin(column, (0, 1))][0] if column.dtype.kind in "biuf" else column[0]
            raise CLIError(f"label column {name!r} holds {bad!r}: each of several label columns must hold 0/1 "
                           "(multi-label targets)")
    return "classification", "several label columns: multi-label", np.array([str(n) for n in names]), \
        "binary_cross_entropy"


def _split_data(X, y, task: str, test_size: float, seed: int):
    """The one train/test split of the command line: stratified for classes with >= 2 samples each."""
    from .datasets import split
    if task != "classification" or np.ndim(y) == 2:  # regression, or multi-label (no single class to stratify)
        return split(X, y, test_size=test_size, seed=seed, stratify=False)
    # Split the codes (any labels, even float classes, stratify the same way), then map back.
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    X_train, X_test, c_train, c_test = split(X, codes.reshape(-1), test_size=test_size, seed=seed,
                                             stratify=bool(counts.min() >= 2))
    return X_train, X_test, classes[c_train], classes[c_test]


def _targets(y: np.ndarray, classes: Optional[np.ndarray], where: str) -> np.ndarray:
    """Labels → the codes the network takes (classes), or float targets (regression)."""
    from .datasets import encode_labels
    if classes is None:
        return np.asarray(y, dtype=np.float64)
    if np.ndim(y) == 2:  # multi-label: the 0/1 columns are the codes
        return np.asarray(y).astype(np.intp)
    try:
        return encode_labels(y, classes=classes)[0]
    except ValueError as exc:
        raise CLIError(f"{where}: {exc}") from None


def _describe_classes(classes: np.ndarray) -> str:
    shown = ", ".join(str(c) for c in classes[:10].tolist())
    return shown + (f", ... ({classes.size} in all)" if classes.size > 10 else "")


def _prepare(args: argparse.Namespace) -> Dict[str, Any]:
    """Load, decide the task, encode the labels, split: everything train and sweep need."""
    options = _csv_options(args, args.data)
    X, y, info, official = _load_all(args.data, options, args.test_size)
    label = f"the label column {info['label_name']!r}" if info.get("label_name") else "the labels"
    if isinstance(info.get("label_index"), list):  # several CSV label columns (a 2-D y elsewhere: one-hot?)
        task, why, classes, loss = _multilabel(y, info, args)
    else:
        task, why = _decide_task(y, args.task, getattr(args, "loss", "auto"))
        classes, loss = _classes_and_loss(y, task, getattr(args, "loss", "auto"), label)
    if task == "classification" and args.task == "auto" and getattr(args, "loss", "auto") == "auto" \
            and np.ndim(y) == 1:
        n = len(y)
        if classes.dtype.kind in "US" and classes.size > n / 2:
            raise CLIError(f"{label} holds {classes.size} distinct text values in {n} rows: an identifier, not a "
                           "class label? Choose the label column with --label-column (or force --task classification)")
    if official is not None:
        X_train, X_test, y_train, y_test = official
        if _is_array_dir(args.data):
            print(f"data {args.data}: X.npy {X_train.shape[0] + X_test.shape[0]} x {X_train.shape[1]} "
                  f"{X_train.dtype}, memory-mapped; test part: its last {X_test.shape[0]} rows (the files' order)")
    else:
        X_train, X_test, y_train, y_test = _split_data(X, y, task, args.test_size, args.seed)
    where = info.get("label_name") or args.data
    y_train, y_test = _targets(y_train, classes, where), _targets(y_test, classes, where)
    data = {"source": args.data, "test_size": args.test_size, "seed": args.seed, "task": task,
            "csv": options or None, "label_name": info.get("label_name"), "label_index": info.get("label_index"),
            "feature_names": info.get("feature_names"), "n_features": int(X_train.shape[1])}
    if info:
        column = (f"label column {info['label_name']!r}" if info["label_name"] is not None
                  else f"label column {info['label_index']} (0-based)")
        sep = f"delimiter {info['delimiter']!r}" if info["delimiter"] is not None else "whitespace-separated"
        index = info.get("index_column")
        dropped = "" if index is None else (f"; index column {index!r} dropped" if index != ""
                                             else "; the unnamed index column dropped")
        print(f"csv {args.data}: {column}, {sep}{dropped}")
    print(f"task {task} ({why})" + ("" if classes is None else f": {_describe_classes(classes)}"))
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test, "classes": classes,
            "task": task, "loss": loss, "data": data}


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


def _train_module():
    """The module funcnn.train (the package attribute ``funcnn.train`` is the function)."""
    return importlib.import_module(".train", __package__)


def _train_checked(*args: Any, **kwargs: Any):
    """train(...) with its warnings recorded: a DivergenceWarning is an error (no model is written);
    other warnings are shown as usual."""
    module = _train_module()
    divergence = getattr(module, "DivergenceWarning", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = module.train(*args, **kwargs)
    diverged = [w for w in caught if divergence is not None and issubclass(w.category, divergence)]
    for w in caught:
        if w not in diverged:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if diverged:
        message = str(diverged[0].message)
        if not message.startswith("training diverged"):
            message = f"training diverged: {message}"
        raise CLIError(f"{message}; no model was written")
    return result


def _checkpoint_epoch(path: Optional[str], data: Dict[str, Any]) -> Optional[int]:
    """The epoch a checkpoint at ``path`` holds (None: no checkpoint to resume); refuses a checkpoint
    of other data (another source, seed, split or label encoding: its test rows would differ)."""
    if path is None or not os.path.exists(path):
        return None
    from .checkpoint import load
    try:
        saved = load(path)
        epoch = int(saved["training_state"]["run"]["epoch"])
    except (KeyError, TypeError, ValueError):
        return None  # not a checkpoint of a run: train itself refuses it with its own message
    before = saved.get("data")
    now = json.loads(json.dumps(data))
    if isinstance(before, dict):
        diffs = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        if diffs:
            details = "; ".join(f"{k}: saved {before.get(k)!r}, now {now.get(k)!r}" for k in diffs)
            raise CLIError(f"--checkpoint {path} is a run on other data ({details}); resuming would mix "
                           "test rows into training. Delete it or choose another --checkpoint path")
    return epoch


def _fit(args: argparse.Namespace, spec, params, X_train, y_train, *, loss: Any, optimizer, validation_data, early,
         metadata: Dict[str, Any]):
    """``train`` with the command's options: ``(params, history, seconds)``, or None after Ctrl-C
    (having said what was kept and how to resume)."""
    start = time.perf_counter()
    try:
        params, history = _train_checked(
            spec, params, X_train, y_train, loss=loss, optimizer=optimizer, epochs=args.epochs,
            batch_size=args.batch_size, l2=args.l2, validation_data=validation_data, seed=args.seed,
            early_stopping=early, progress=not args.quiet, checkpoint=args.checkpoint,
            checkpoint_metadata=None if args.checkpoint is None else metadata)
    except KeyboardInterrupt:
        if args.checkpoint is None:
            print("funcnn train: interrupted; nothing was saved. To make a run resumable, pass --checkpoint PATH "
                  "(e.g. --checkpoint run.npz): the state is saved after every epoch and the same command "
                  "resumes from it", file=sys.stderr)
        else:
            print(f"funcnn train: interrupted; {args.checkpoint} holds the last finished epoch: run the same "
                  "command to resume", file=sys.stderr)
        return None
    return params, history, time.perf_counter() - start


def _save_model(args: argparse.Namespace, spec, params, *, loss: str, metadata: Dict[str, Any], history, scores,
                optimizer, plot_path: Optional[str], note: str = "") -> None:
    """The trained model to ``--out`` (with its history, test scores, optimizer and l2), then its
    learning curves to ``plot_path`` (None: no plot)."""
    from .checkpoint import save
    save(args.out, spec, params, loss=loss, **metadata, history=history, test_scores=scores,
         optimizer=optimizer, l2=args.l2)
    print(f"wrote {args.out}{note}")
    if plot_path is not None:
        from . import plot
        plot.learning_curves(history, plot_path, title=f"{args.data}: {loss}")
        print(f"wrote {plot_path}")


# --- commands -------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import check_metadata
    from .datasets import apply_scaler, fit_scaler, n_outputs, tail_split
    from .layers import mlp
    from .network import init_params
    from .train import evaluate

    # Every output path first: a bad one must not cost a training run.
    _check_model_path(args.out, "--out")
    if args.checkpoint is not None:
        _check_model_path(args.checkpoint, "--checkpoint")
        if os.path.abspath(args.checkpoint) == os.path.abspath(args.out):
            raise CLIError("--checkpoint and --out must be different files")
    plot_path = None
    if not args.no_plot:
        _check_output(args.plot, "--plot", PLOT_EXTENSIONS)
        if _can_plot():
            plot_path = args.plot
        else:
            print("no plot: funcnn.plot needs matplotlib: pip install 'funcnn[plot]' (or pass --no-plot)")

    if args.data.startswith("text:"):
        return _train_text(args, plot_path)
    d = _prepare(args)
    X_train, X_test, y_train, y_test, loss, classes = (d["X_train"], d["X_test"], d["y_train"], d["y_test"],
                                                       d["loss"], d["classes"])
    array_dir = _is_array_dir(args.data)
    if array_dir and args.scale:
        raise CLIError(f"--scale: {args.data} is an X.npy directory, read memory-mapped one minibatch at a time; "
                       "standardising it would copy X whole into memory. Store X already scaled (e.g. float32 "
                       "pixels / 255), or train without --scale")
    scale = not array_dir if args.scale is None else args.scale
    scaler = fit_scaler(X_train) if scale else None
    if scaler is not None:
        X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
    elif array_dir:
        print(f"features not standardised (an X.npy directory is used as stored, {X_train.dtype})")
    validation_data = None
    if args.validation_split > 0:
        if array_dir:  # the last rows of the training part: views, as the test split
            X_train, X_val, y_train, y_val = tail_split(X_train, y_train, test_size=args.validation_split)
        else:
            X_train, X_val, y_train, y_val = _split_data(X_train, y_train, d["task"], args.validation_split,
                                                         args.seed)
        validation_data = (X_val, y_val)
    train_loss: Any = loss
    if args.class_weight is not None:
        if classes is None:
            raise CLIError("--class-weight applies to classification; this is a regression task")
        if np.ndim(y_train) == 2:
            raise CLIError("--class-weight applies to one label column; several label columns are multi-label")
        weights = _class_weights(args.class_weight, classes, y_train)
        train_loss = {"name": loss, "class_weight": weights}
        print("class weights: " + ", ".join(f"{c} {w:.4g}" for c, w in zip(classes.tolist(), weights)))
    n_out = classes.size if loss == "softmax_cross_entropy" or np.ndim(y_train) == 2 else n_outputs(loss, y_train)
    hidden = DEFAULT_HIDDEN if args.hidden is None else args.hidden
    spec = _read_spec(args.spec) if args.spec else mlp(hidden, args.activation, args.dropout, n_out)
    params = init_params(spec, X_train.shape[1], seed=args.seed, dtype=args.dtype)
    optimizer = _optimizer(args.optimizer, args.lr, args.momentum)
    early = None
    if args.early_stopping is not None:
        if validation_data is None:
            raise CLIError("--early-stopping needs a validation split (--validation-split > 0)")
        early = {"patience": args.early_stopping}
    data = d["data"]
    metadata = {"scaler": scaler, "data": data, "classes": classes}
    if args.class_weight is not None:
        metadata["class_weight"] = train_loss["class_weight"]
    # What the model file will hold, checked before the first epoch (save would refuse it after).
    check_metadata({**metadata, "optimizer": optimizer, "l2": args.l2}, reserved_extra=("loss", "training_state"))
    resumed = _checkpoint_epoch(args.checkpoint, data)
    print(f"data {args.data}: {X_train.shape[0]} train, {0 if validation_data is None else len(y_val)} "
          f"validation, {X_test.shape[0]} test samples, {X_train.shape[1]} features; loss {loss}, "
          f"{n_out} output{'s' if n_out != 1 else ''}")
    fitted = _fit(args, spec, params, X_train, y_train, loss=train_loss, optimizer=optimizer,
                  validation_data=validation_data, early=early, metadata=metadata)
    if fitted is None:
        return 130
    params, history, seconds = fitted
    if resumed is not None:
        print(f"resumed from epoch {resumed} ({args.checkpoint})")
    scores = evaluate(spec, params, X_test, y_test, loss=loss)
    summary = "  ".join(f"test {k} {v:.4f}" for k, v in scores.items())
    print(f"trained {len(history['loss'])} epochs in {seconds:.1f} s; {summary}")
    _save_model(args, spec, params, loss=loss, metadata=metadata, history=history, scores=scores,
                optimizer=optimizer, plot_path=plot_path)
    return 0


def _text_windows(path: str, context: int) -> Tuple[np.ndarray, np.ndarray]:
    """A text file's UTF-8 bytes (ids 0..255) cut into consecutive windows of ``context`` bytes:
    inputs (n, context) and targets, the same windows shifted by one byte."""
    try:
        with open(path, "rb") as fh:
            ids = np.frombuffer(fh.read(), dtype=np.uint8).astype(np.int64)
    except FileNotFoundError:
        raise CLIError(f"--data text:{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"--data text:{path} is a directory; give one text file") from None
    n = (ids.size - 1) // context
    if n < 10:
        raise CLIError(f"--data text:{path}: {ids.size} bytes make {n} windows of {context}; need at least 10")
    return ids[:n * context].reshape(n, context), ids[1:n * context + 1].reshape(n, context)


def _train_text(args: argparse.Namespace, plot_path: Optional[str]) -> int:
    """``funcnn train --data text:FILE --spec LM.json``: a causal language model on a text's bytes.

    Windows of ``--context`` bytes (default: the spec's positional ``max_len``), consecutive; the last
    ``--test-size`` of them test, the last ``--validation-split`` of the rest validate (by position,
    no shuffling across the split); each target is its window shifted by one byte.
    """
    from .network import init_params
    from .train import evaluate
    path = args.data[len("text:"):]
    if not args.spec:
        raise CLIError("--data text:FILE needs --spec: a JSON spec whose first layer is an embedding with vocab 256 "
                       "(e.g. scripts/specs/char_transformer.json)")
    spec = _read_spec(args.spec)
    first = spec[0]
    if first.get("type") != "embedding" or int(first.get("vocab", 0)) != 256:
        raise CLIError(f"--spec {args.spec}: text data are UTF-8 bytes (ids 0..255): the spec must start with "
                       f"an embedding of vocab 256, it starts with {json.dumps(first)}")
    lens = [int(l["max_len"]) for l in spec if l.get("type") == "positional"]
    context = args.context if args.context is not None else (lens[0] if lens else None)
    if context is None:
        raise CLIError("--data text:FILE: give --context (the spec has no positional layer to take it from)")
    X, y = _text_windows(path, context)
    n_test = max(1, int(round(args.test_size * len(X))))
    X_train, y_train, X_test, y_test = X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]
    validation_data = None
    if args.validation_split > 0:
        n_val = max(1, int(round(args.validation_split * len(X_train))))
        validation_data = (X_train[-n_val:], y_train[-n_val:])
        X_train, y_train = X_train[:-n_val], y_train[:-n_val]
    loss = "softmax_cross_entropy"
    params = init_params(spec, (context,), seed=args.seed, dtype=args.dtype)
    optimizer = _optimizer(args.optimizer, args.lr, args.momentum)
    early = None if args.early_stopping is None else {"patience": args.early_stopping}
    if early is not None and validation_data is None:
        raise CLIError("--early-stopping needs a validation split (--validation-split > 0)")
    data = {"source": args.data, "text": "utf-8 bytes", "context": context, "test_size": args.test_size,
            "validation_split": args.validation_split, "seed": args.seed}
    metadata = {"data": data}
    resumed = _checkpoint_epoch(args.checkpoint, data)
    print(f"data {args.data}: windows of {context} bytes: {len(X_train)} train, "
          f"{0 if validation_data is None else len(validation_data[0])} validation, {len(X_test)} test (by position)")
    fitted = _fit(args, spec, params, X_train, y_train, loss=loss, optimizer=optimizer,
                  validation_data=validation_data, early=early, metadata=metadata)
    if fitted is None:
        return 130
    params, history, seconds = fitted
    if resumed is not None:
        print(f"resumed from epoch {resumed} ({args.checkpoint})")
    scores = evaluate(spec, params, X_test, y_test, loss=loss)
    scores["bits_per_char"] = scores["loss"] / math.log(2.0)
    print(f"trained {len(history['loss'])} epochs in {seconds:.1f} s; test loss "
          f"{scores['loss']:.4f} ({scores['bits_per_char']:.3f} bits/char), accuracy {scores['accuracy']:.4f}")
    _save_model(args, spec, params, loss=loss, metadata=metadata, history=history, scores=scores,
                optimizer=optimizer, plot_path=plot_path,
                note="; sample from it with funcnn.sequence.sample (or scripts/sample_text.py)")
    return 0


def _load_model(path: str) -> Dict[str, Any]:
    from .checkpoint import load
    model = load(path)
    if "loss" not in model:
        raise CLIError(f"{path}: the model file does not record its loss; save it with loss=... in the metadata")
    if isinstance(model.get("data"), dict) and model["data"].get("text"):
        raise CLIError(f"{path} is a language model trained on text ({model['data'].get('source')}); evaluate and "
                       "predict read tabular data: sample from it with funcnn.sequence.sample or "
                       "scripts/sample_text.py")
    model["n_features"] = _n_features(path, model)
    classes = model.get("classes")
    model["classes"] = None if classes is None else np.asarray(classes)
    return model


def _n_features(path: str, model: Dict[str, Any]) -> int:
    """The flat input width a saved model takes: from its first dense layer's W, else (a spec that
    starts with a reshape, e.g. a CNN on flat rows) from what the training data had, else from
    the reshape's target shape."""
    import math
    from .network import check_params
    n = check_params(model["spec"], model["params"])[0]
    if n is None:
        n = (model.get("data") or {}).get("n_features")
    first = model["spec"][0]
    if n is None and first["type"] == "reshape" and -1 not in first["shape"]:
        n = math.prod(first["shape"])
    if isinstance(n, tuple):
        n = math.prod(n)
    if n is None:
        raise CLIError(f"{path}: cannot tell how many input features the model takes (its spec starts with a "
                       f"{first['type']!r} layer and the file records no training data)")
    return int(n)


def _model_data(model: Dict[str, Any], args: argparse.Namespace) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(X, labels or None) for evaluate/predict, as stored: :func:`_outputs` scales X chunk by
    chunk as the model's training data were (an X.npy directory stays memory-mapped).

    The labels are as the data hold them (original labels)."""
    from .datasets import load_features
    data = model.get("data") or {}
    source = args.data
    same_source = data.get("source") == source
    split = "test" if args.split == "auto" and same_source else "all" if args.split == "auto" else args.split
    if split == "test":
        if not same_source:
            raise CLIError(f"--split test needs the data the model was trained on ({data.get('source')!r}), "
                           f"got {source!r}; use --split all")
        options = _csv_options(args, source, data.get("csv"))
        X, y, _, official = _load_all(source, options, data.get("test_size", 0.25))
        task = data.get("task") or ("regression" if model["loss"] == "mean_squared_error" else "classification")
        if official is not None:
            X, y = official[1], official[3]
        else:
            X, y = _split_data(X, y, task, data["test_size"], data["seed"])[1::2]
    else:
        options = _csv_options(args, source, data.get("csv"))
        options.pop("label_column", None)  # the training file's label column need not be in this file
        X, y = load_features(source, model["n_features"], feature_names=data.get("feature_names"),
                             label_name=data.get("label_name"), label_index=data.get("label_index"),
                             label_column=args.label_column, **options)
    return X, y


#: evaluate/predict standardise (when the model has a scaler) this many bytes of float64 rows at a time.
SCALE_CHUNK_BYTES = 1 << 24


def _outputs(model: Dict[str, Any], X: np.ndarray) -> np.ndarray:
    """The network's inference-mode outputs on X, scaled by the model's scaler, in chunks of rows:
    neither the scaled X nor, for a memory map or another dtype, a converted X exists whole."""
    from .datasets import apply_scaler
    from .losses import check_outputs
    from .network import check_output, checked_input, infer
    spec, params, scaler = model["spec"], model["params"], model.get("scaler")
    X, n_out, _ = checked_input(spec, params, X, convert=False)
    check_outputs(model["loss"], n_out)
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite output is reported by check_output
        if scaler is None:
            out = infer(spec, params, X)  # chunked, converting chunk by chunk
        else:
            step = max(1, SCALE_CHUNK_BYTES // (8 * max(1, X.shape[1])))
            out = np.concatenate([infer(spec, params, apply_scaler(scaler, X[start:start + step]))
                                  for start in range(0, X.shape[0], step)])
    return check_output(spec, params, out)


def _label_codes(model: Dict[str, Any], y: np.ndarray, where: str) -> np.ndarray:
    if model["loss"] == "mean_squared_error":
        return np.asarray(y, dtype=np.float64)
    if model["classes"] is None:  # a model saved without classes: labels are the codes
        return y
    return _targets(y, model["classes"], where)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .losses import check_targets
    from .metrics import scores as metric_scores
    model = _load_model(args.model)
    X, y = _model_data(model, args)
    if y is None:
        raise CLIError(f"{args.data} holds no labels to evaluate against (only the {X.shape[1]} feature columns); "
                       "funcnn predict writes predictions for unlabelled data")
    output = _outputs(model, X)  # what funcnn.train.evaluate computes, with the scaler applied chunk by chunk
    codes = check_targets(model["loss"], _label_codes(model, y, args.data), X.shape[0], output.shape[1],
                          output.dtype)
    scores = metric_scores(model["loss"], output, codes)
    for k, v in scores.items():
        print(f"{k} {v:.6f}")
    return 0


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _prediction_table(model: Dict[str, Any], output: np.ndarray, proba: bool) -> Tuple[List[str], np.ndarray]:
    """(header, values (n, k)) of the predictions in original labels, or of class probabilities,
    from the network's outputs (:func:`_outputs`), as funcnn.predict / predict_proba make them."""
    from .datasets import decode_labels
    from .losses import decision, proba as to_proba
    loss, classes = model["loss"], model["classes"]
    data = model.get("data") or {}
    name = data.get("label_name") or ("label" if loss != "mean_squared_error" else "prediction")
    if proba:
        if loss == "mean_squared_error":
            raise CLIError("--proba needs a classifier; this model is a regression (mean_squared_error)")
        out = to_proba(loss)(output)
        names = [str(c) for c in (classes.tolist() if classes is not None else range(out.shape[1]))]
        return names, out
    out = decision(loss)(output)
    if loss == "mean_squared_error":
        out = out.reshape(len(out), -1)
        return ([name] if out.shape[1] == 1 else [f"{name}_{j}" for j in range(out.shape[1])]), out
    if out.ndim == 2:  # multi-label: a 0/1 column per label
        return [str(c) for c in (classes.tolist() if classes is not None else range(out.shape[1]))], out
    labels = decode_labels(out, classes) if classes is not None else out
    return [name], labels.reshape(-1, 1)


def _write_predictions(header: List[str], values: np.ndarray, path: Optional[str]) -> None:
    if path is not None and path.lower().endswith(".npy"):
        np.save(path, values[:, 0] if values.shape[1] == 1 else values)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_plain(v) for v in row] for row in values.tolist())
    if path is None:
        sys.stdout.write(buffer.getvalue())
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            fh.write(buffer.getvalue())


def _report_score(model: Dict[str, Any], output: np.ndarray, y: np.ndarray, source: str) -> None:
    """A score on stderr for data that hold labels (stdout stays the predictions)."""
    from .losses import decision
    from .metrics import r2
    loss = model["loss"]
    if loss == "mean_squared_error":
        out = output
        print(f"funcnn predict: {source} holds the targets: r2 {r2(np.asarray(y, dtype=np.float64), out):.4f} "
              f"on {len(y)} rows", file=sys.stderr)
        return
    try:
        codes = _label_codes(model, y, source)
    except CLIError as exc:
        print(f"funcnn predict: no score: {exc}", file=sys.stderr)
        return
    pred = decision(loss)(output)
    print(f"funcnn predict: {source} holds labels: accuracy {float(np.mean(pred == codes)):.4f} on {len(y)} rows",
          file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    if args.output is not None:
        _check_output(args.output, "--output", PREDICTION_EXTENSIONS)
    model = _load_model(args.model)
    if args.proba and model["loss"] == "mean_squared_error":
        raise CLIError("--proba needs a classifier; this model is a regression (mean_squared_error)")
    X, y = _model_data(model, args)
    output = _outputs(model, X)
    header, values = _prediction_table(model, output, args.proba)
    _write_predictions(header, values, args.output)
    if args.output is not None:
        print(f"wrote {len(values)} predictions to {args.output}")
    if y is not None:
        _report_score(model, output, y, args.data)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .checkpoint import load
    from .footprint import format_summary, summary
    model = load(args.model)
    if args.input_shape is not None:
        shape: Any = tuple(args.input_shape)
    else:
        try:
            shape = _n_features(args.model, model)
        except CLIError as exc:
            raise CLIError(f"{exc}; give one sample's shape with --input-shape, e.g. 28,28,1") from None
    dtype = next(iter(model["params"].values())).dtype
    print(format_summary(summary(model["spec"], shape, dtype=dtype)))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.resume and args.results is None:
        raise CLIError("--resume needs --results FILE (the file of the trials already done)")
    if args.results is not None:
        _check_output(args.results, "--results", (".jsonl", ".json", ".txt"))
    if args.out is not None:
        _check_model_path(args.out, "--out")
    if args.plot is not None:
        _check_output(args.plot, "--plot", PLOT_EXTENSIONS)
        if not _can_plot():
            raise CLIError("--plot needs matplotlib: pip install 'funcnn[plot]'")
    args.loss = "auto"
    n_jobs = args.n_jobs if args.n_jobs is not None else (-1 if args.scheduler else 1)
    with contextlib.ExitStack() as stack:
        if args.scheduler is not None:  # first: an unreachable scheduler must not cost the data loading
            stack.enter_context(_dask_scheduler(args.scheduler, args.scheduler_timeout))
        return _sweep(args, n_jobs)


@contextlib.contextmanager
def _dask_scheduler(address: str, timeout: float):
    """Inside: joblib's dask backend on a client of the Dask scheduler at ``address``; closed after.

    Refused (CLIError, one line) when dask.distributed is missing, or when the scheduler cannot
    be reached, or has no worker, within ``timeout`` seconds."""
    try:
        import joblib
        from distributed import Client
    except ImportError as exc:
        raise CLIError(f"--scheduler needs dask.distributed ({exc}): pip install 'funcnn[dask]'") from None
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        scheme, location = parse_address(address if "://" in address else f"tcp://{address}")
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise CLIError(f"--scheduler {address}: not a Dask scheduler address such as tcp://10.0.0.5:8786 "
                       f"({_error_text(exc)})") from None
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CLIError(f"--scheduler {address}: cannot reach a Dask scheduler within {timeout:g} s "
                       f"({_error_text(exc)})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise CLIError(f"--scheduler {address}: the scheduler has no worker after {timeout:g} s; start one "
                           f"with `dask worker {address}` ({_error_text(exc)})") from None
        workers = client.scheduler_info().get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        print(f"dask scheduler {client.scheduler.address}: {len(workers)} worker{'s' if len(workers) != 1 else ''}, "
              f"{threads} thread{'s' if threads != 1 else ''}")
        with client.as_current(), joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()


def _sweep(args: argparse.Namespace, n_jobs: int) -> int:
    from . import sweep
    from .checkpoint import save
    from .datasets import apply_scaler, fit_scaler, tail_split
    from .network import init_params
    from .train import evaluate

    if args.data.startswith("text:"):
        raise CLIError("--data text:FILE is for funcnn train (a language model); funcnn sweep takes tabular data")
    d = _prepare(args)
    X_train, X_test, y_train, y_test, loss, classes = (d["X_train"], d["X_test"], d["y_train"], d["y_test"],
                                                       d["loss"], d["classes"])
    array_dir = _is_array_dir(args.data)
    if array_dir:  # as train: the data as stored, the validation part the training part's last rows (views)
        scaler = None
        X_tr, X_val, y_tr, y_val = tail_split(X_train, y_train, test_size=args.validation_split)
    else:
        scaler = fit_scaler(X_train)
        X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
        X_tr, X_val, y_tr, y_val = _split_data(X_train, y_train, d["task"], args.validation_split, args.seed)
    lrs = args.lr or [DEFAULT_LR[args.optimizer]]
    hidden = [tuple(h) for h in (args.hidden or [DEFAULT_HIDDEN])]
    trials = sweep.grid(hidden=hidden, l2=args.l2, dropout=args.dropout, lr=lrs)
    base = {"activation": args.activation, "optimizer": args.optimizer, "epochs": args.epochs,
            "batch_size": args.batch_size}
    if loss == "softmax_cross_entropy":
        base["n_outputs"] = int(classes.size)
    print(f"{len(trials)} trials x {args.repeats} seed{'s' if args.repeats > 1 else ''} "
          f"({', '.join(str(args.seed + r) for r in range(args.repeats))}; the same for every trial); "
          f"every trial: {json.dumps(base)}")
    results = sweep.sweep(X_tr, y_tr, validation_data=(X_val, y_val), trials=trials, loss=loss, base=base,
                          n_jobs=n_jobs, seed=args.seed, repeats=args.repeats, log=args.results,
                          resume=args.resume)
    metric = results[0]["score_name"]
    lost = [r for r in results if r.get("lost")]
    resumed = sum(1 for r in results if r.get("resumed"))
    for r in results:
        if r["error"]:
            score = "failed: " + r["error"]
        elif args.repeats > 1:
            score = (f"validation {metric} {r['score']:.4f} ± {r['score_std']:.4f} "
                     f"(min {r['score_min']:.4f}, max {r['score_max']:.4f})")
        else:
            score = f"validation {metric} {r['score']:.4f}"
        print(f"{json.dumps(trials[r['index']], default=str)}  {score}")
    failed = sum(1 for r in results if r["error"] and not r.get("lost"))
    print(f"{len(results) - len(lost)} of {len(results)} trials finished"
          + (f" ({resumed} from {args.results})" if resumed else "")
          + (f", {failed} of them failed" if failed else "")
          + (f"; {len(lost)} lost ({lost[0]['error']})" if lost else "")
          + (f"; results in {args.results}" if args.results and os.path.exists(args.results) else ""))
    if lost and all(r["error"] for r in results):
        print("funcnn sweep: no trial finished; rerun with --results FILE --resume", file=sys.stderr)
        return 3
    best = sweep.best(results)
    print(f"best: {json.dumps(trials[best['index']], default=str)} validation {metric} {best['score']:.4f}"
          + (f" (mean of {args.repeats} seeds)" if args.repeats > 1 else ""))
    if lost:
        print(f"funcnn sweep: {len(lost)} trial{'s' if len(lost) != 1 else ''} lost: not retrained, not plotted; "
              + (f"rerun with --results {args.results} --resume to run only them" if args.results else
                 "rerun with --results FILE --resume to keep finished trials"), file=sys.stderr)
        return 3
    if args.plot and len(args.l2) > 1:
        from . import plot
        by_l2 = [r for r in results if not r["error"]]
        values = sorted({r["trial"]["l2"] for r in by_l2})
        scores = [max(r["score"] for r in by_l2 if r["trial"]["l2"] == v) for v in values]
        plot.validation_curve(values, scores, args.plot, param_name="λ (l2)", score_name=f"validation {metric}")
        print(f"wrote {args.plot}")
    if args.out:
        # Retrain the chosen configuration on train + validation, then test once.
        spec = best["spec"]
        if array_dir:  # X_tr, X_val are X_train's two parts in order: no concatenated copy
            X_all, y_all = X_train, y_train
        else:
            X_all, y_all = np.concatenate([X_tr, X_val]), np.concatenate([y_tr, y_val])
        params = init_params(spec, X_all.shape[1], seed=args.seed)
        trial = {**base, **best["trial"]}
        params, history = _train_checked(spec, params, X_all, y_all, loss=loss,
                                         optimizer=_optimizer(args.optimizer, trial.get("lr"), 0.9),
                                         epochs=args.epochs, batch_size=args.batch_size, l2=trial.get("l2", 0.0),
                                         seed=args.seed, progress=False)
        scores = evaluate(spec, params, X_test, y_test, loss=loss)
        print("  ".join(f"test {k} {v:.4f}" for k, v in scores.items()))
        save(args.out, spec, params, loss=loss, scaler=scaler, data=d["data"], classes=classes,
             history=history, test_scores=scores)
        print(f"wrote {args.out}")
    return 0


EXPORT_EXTENSIONS = (".onnx", ".safetensors")


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import load, save
    out = _check_output(args.out, "output", EXPORT_EXTENSIONS)
    if not os.path.isfile(args.model):
        raise CLIError(f"model {args.model}: no such file")
    if os.path.abspath(args.model) == os.path.abspath(out):
        raise CLIError(f"output {out}: is the model file itself; choose another path")
    model = load(args.model)
    spec, params = model["spec"], model["params"]
    if out.lower().endswith(".safetensors"):
        if args.opset is not None or args.input_shape is not None:
            raise CLIError("--opset and --input-shape apply to .onnx outputs only")
        save(out, spec, params, **{k: v for k, v in model.items() if k not in ("spec", "params")})
    else:
        from .export import to_onnx
        from .network import check_params
        shape = args.input_shape
        data = model.get("data") or {}
        n_features, context = data.get("n_features"), data.get("context")
        if shape is None and check_params(spec, params)[0] is None:
            if spec[0]["type"] == "reshape" and isinstance(n_features, int):
                shape = (n_features,)  # a network on flat rows, as it was trained
            elif spec[0]["type"] == "embedding" and isinstance(context, int):
                shape = (context,)  # a language model trained on windows of this many tokens
            elif spec[0]["type"] != "reshape" or -1 in spec[0]["shape"]:
                raise CLIError(f"{args.model}: the model's params do not fix its input's shape (it starts with "
                               f"a {spec[0]['type']!r} layer); pass --input-shape, e.g. 28,28,1")
        to_onnx(spec, params, out, opset=args.opset, input_shape=shape)
        if model.get("scaler") is not None:
            print("note: the model standardises its inputs; the ONNX graph takes standardised features "
                  "(the scaler is in the model file's metadata)", file=sys.stderr)
    print(f"wrote {out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one ``funcnn`` command, as the console script does.

    Args:
        argv: the arguments after ``funcnn`` (None: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 for a data, model, path or training error (one line on
        stderr), 130 on Ctrl-C; argument errors exit 2 from argparse.

    Examples:
        >>> main(["train", "--data", "iris", "--batch-size", "0"])
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `funcnn predict ... | head`: the reader left; no error message
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except (CLIError, ValueError, TypeError, OSError, FloatingPointError, ImportError) as exc:
        print(f"funcnn {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"funcnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
