"""Small helpers shared by the experiment scripts in this folder (not part of funcnn).

Importing this module makes ``import funcnn`` work when the scripts are run straight
from a checkout (``python scripts/moons.py``) without ``pip install -e .``: if funcnn is
not importable, the repository root (this folder's parent) is put on ``sys.path``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_OUT_DIR = os.path.join(HERE, "figures")

if importlib.util.find_spec("funcnn") is None:  # running from a checkout, not installed
    sys.path.insert(0, REPO_ROOT)


def base_parser(description: str, threads: Optional[int] = None) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every script has: --quick, --out-dir, --no-plots, --threads.

    ``threads`` is the script's default BLAS thread limit (None: leave the BLAS default).
    """
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds' smoke run on less data / fewer epochs (numbers are not meaningful)")
    parser.add_argument("--out-dir", default=None,
                        help="where the PNG figures go (default: scripts/figures; with --quick a new "
                             "temporary directory, so smoke runs never overwrite the tracked figures)")
    parser.add_argument("--no-plots", action="store_true", help="do not write any figure")
    parser.add_argument("--threads", type=int, default=threads,
                        help="limit BLAS threads in this process (default: %s)"
                             % ("BLAS's own" if threads is None else threads))
    return parser


def figure_dir(args: argparse.Namespace) -> str:
    """``--out-dir``, or its default: scripts/figures for full runs, a fresh temporary
    directory for ``--quick`` runs (chosen once per run and printed)."""
    if args.out_dir is None:
        if args.quick:
            args.out_dir = tempfile.mkdtemp(prefix="funcnn-quick-figures-")
            print(f"--quick: figures go to {args.out_dir} (not {DEFAULT_OUT_DIR}; choose with --out-dir)")
        else:
            args.out_dir = DEFAULT_OUT_DIR
    return args.out_dir


def figure_path(args: argparse.Namespace, name: str) -> Optional[str]:
    """``out_dir/name`` (the directory is created), or None when plots are off."""
    if args.no_plots:
        return None
    directory = figure_dir(args)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


@contextlib.contextmanager
def stopwatch() -> Iterator[Dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]`` is the block's wall time."""
    box = {"seconds": float("nan")}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


@contextlib.contextmanager
def blas_threads(n: Optional[int]) -> Iterator[None]:
    """Limit the BLAS thread pool to ``n`` threads inside the block (no-op for None)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # ships with scikit-learn
    with threadpool_limits(limits=n):
        yield


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table with left-aligned columns (what the scripts print at the end)."""
    cells: List[List[str]] = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else str(value)


def load_average() -> str:
    """The 1/5/15-minute load averages, for reports of timings on a shared machine."""
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "load average unavailable"


def train_augmented(spec, params, X, y, *, augment, rng, loss, optimizer, epochs: int, batch_size: int, seed: int,
                    validation_data=None, report=None, keep_best: bool = False):
    """``train``'s epochs, each on a fresh ``augment(X, rng)`` of the training images:
    ``funcnn.train.new_run``, then per epoch ``train_epoch`` (the steps ``train`` takes) and, with
    ``validation_data``, ``evaluate`` on it.

    Returns ``(params, history)``: the last epoch's params or, with ``keep_best``, those of the
    epoch with the best validation accuracy (the first of equals); ``history`` has ``loss`` and
    ``accuracy`` per epoch, and ``val_loss``/``val_accuracy`` with validation data.
    ``report(epoch, params, history)`` is called after every epoch.
    """
    from funcnn.train import evaluate, new_run, train_epoch
    state = new_run(spec, params, optimizer, seed=seed)
    keys = ("loss", "accuracy")
    history: Dict[str, List[float]] = {k: [] for k in keys + (("val_loss", "val_accuracy") if validation_data else ())}
    best = state["params"]
    for e in range(1, epochs + 1):
        state = train_epoch(spec, state, augment(X, rng), y, loss=loss, optimizer=optimizer, batch_size=batch_size)
        for k in keys:
            history[k].append(state["history"][k][-1])
        if validation_data:
            val = evaluate(spec, state["params"], *validation_data, loss=loss)
            for k in keys:
                history[f"val_{k}"].append(val[k])
            if val["accuracy"] > max(history["val_accuracy"][:-1], default=-1.0):
                best = state["params"]
        if report is not None:
            report(e, state["params"], history)
    return (best if keep_best and validation_data else state["params"]), history
