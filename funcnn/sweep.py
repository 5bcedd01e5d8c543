"""Hyperparameter search: trials are plain dicts, a sweep is a list of result dicts.

A *trial* is a dict of settings, e.g. ``{"hidden": (64, 32), "lr": 0.01, "l2": 1e-3}``;
:func:`grid` and :func:`random_samples` make lists of them. :func:`sweep` trains one
network per trial (in parallel with joblib), scores it on the validation data and returns
one result dict per trial, best first::

    from funcnn.sweep import grid, sweep, best

    results = sweep(X_tr, y_tr, validation_data=(X_va, y_va), loss="softmax_cross_entropy",
                    trials=grid(l2=np.logspace(-2, 2, 10)),
                    base={"hidden": (48, 32), "activation": "sigmoid", "optimizer": "sgd",
                          "lr": 0.2, "momentum": 0.9, "epochs": 1000},
                    n_jobs=2)
    top = best(results)            # top["trial"]["l2"], top["score"], top["params"], top["spec"]

(funcnn's ``l2`` adds ``l2/2 * sum(W**2)`` to the mean loss; a penalty written
``lambda/(2N) * sum(W**2)`` with N training samples, as in some tutorials, is ``l2 = lambda/N``.)
The best validation score is an optimistic estimate of the chosen network's quality,
since the validation data chose it: report a separate test set.

Trial keys (``base`` holds the defaults every trial shares; a trial's own keys win):

* network: ``hidden`` (a width or a tuple of widths), ``activation`` (a layer type name
  such as ``"relu"``, or an activation layer dict), ``dropout`` (a rate after every hidden
  activation), ``n_outputs`` — built with :func:`funcnn.layers.mlp` — or a complete ``spec`` instead.
  ``spec`` and those keys are alternatives: a trial that gives one replaces what ``base``
  gave of the other; giving both in one dict is an error.
* optimizer: ``optimizer`` (``"sgd"``, ``"rmsprop"``, ``"adam"`` — the default — or an
  optimizer dict from :mod:`funcnn.optimizers`), ``lr``, and that optimizer's other
  hyperparameters (``momentum``, ``nesterov``, ``decay``, ``eps``, ``beta1``, ``beta2``,
  ``weight_decay``), which are passed to its constructor (or replace the dict's entries).
* training, passed to :func:`funcnn.train.train`: ``epochs``, ``batch_size``, ``l2``,
  ``early_stopping``, ``seed``.

Keys are checked before anything runs (an unknown key is a ``ValueError`` naming it and
the trial). Values are checked by each trial: a bad value, like a diverging learning rate,
fails only its own trial, whose result then carries the error.

Seeds — common random numbers: every trial uses the same seed, ``trial["seed"]`` if it has
one, else the sweep's ``seed`` (0 by default). That seed initialises the params
(``init_params(spec, n_inputs, seed=s)``) and drives ``train`` (``seed=s``: minibatch order,
dropout masks), so two trials differ only by their settings — as GridSearchCV scores every
candidate on the same folds. (A seed derived from each trial's grid position would make the
ranking partly a ranking of initialisations.) ``repeats=r`` runs every trial with the seeds
``s, s+1, ..., s+r-1`` — the same seeds for every trial — and reports the mean score with
its spread (``score_std``, ``score_min``, ``score_max``, and the per-seed ``scores``); the
ranking uses the mean.

Determinism: nothing depends on global state or on the order in which workers finish, and
each run uses the same number of BLAS threads (``blas_threads``), so ``n_jobs=2``
returns bit for bit the results of ``n_jobs=1``. (OpenBLAS does give different last
bits for some matrix shapes with 1 and with 2 threads; to redo a trial by hand bit for bit,
run it inside ``threadpoolctl.threadpool_limits(1)``.)

Parallelism: the trials run through ``joblib.Parallel(n_jobs, backend)``. Each trial limits
BLAS to ``blas_threads`` threads (1 by default, via threadpoolctl, which comes with
scikit-learn), so two workers on a two-core machine do not fight over the cores; the sweep
parallelises over trials, not inside them. Because a trial is a plain function of plain
data (arrays, dicts, strings — all picklable), the same call runs on a cluster through
joblib's Dask or Ray backends, with no change to funcnn::

    import joblib
    from dask.distributed import Client
    client = Client("scheduler-address:8786")          # or Client() for a local cluster
    with joblib.parallel_config(backend="dask"):
        results = sweep(X, y, validation_data=(Xv, yv), trials=trials, loss=..., n_jobs=-1)

    from ray.util.joblib import register_ray
    register_ray()                                     # after ray.init(address=...)
    with joblib.parallel_config(backend="ray"):
        results = sweep(X, y, validation_data=(Xv, yv), trials=trials, loss=..., n_jobs=-1)

(``backend="dask"`` can also be passed to :func:`sweep` directly. Pass ``n_jobs=-1`` or
``None``: ``n_jobs=1`` always runs the trials one after another in this process.)
"""
from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import numbers
import time
import traceback as _traceback
import zlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import losses as _losses
from . import datasets
from .metrics import scores
from . import optimizers as _optimizers
from .validation import check_dtype, check_number, check_sample_weight, check_X
from .layers import check_spec, mlp
from .network import forward, init_params
from .train import train

Trial = Dict[str, Any]
Result = Dict[str, Any]

__all__ = ["grid", "random_samples", "sweep", "best", "TRIAL_KEYS"]

NETWORK_KEYS = ("hidden", "activation", "dropout", "n_outputs")
OPTIMIZER_HYPERPARAMETERS = tuple(sorted({k for entry in _optimizers.OPTIMIZERS.values() for k in entry["defaults"]}))
TRAIN_KEYS = ("epochs", "batch_size", "l2", "early_stopping", "seed")
TRIAL_KEYS = frozenset(("spec",) + NETWORK_KEYS + ("optimizer", "lr") + OPTIMIZER_HYPERPARAMETERS + TRAIN_KEYS)


# score name -> (which losses it applies to, metrics dict from evaluate() -> score, higher is better)
SCORES: Dict[str, Tuple[str, Callable[[Dict[str, float]], float]]] = {
    "accuracy": ("classification", lambda m: m["accuracy"]),
    "r2": ("regression", lambda m: m["r2"]),
    "neg_mse": ("regression", lambda m: -m["mse"]),
    "neg_loss": ("any", lambda m: -m["loss"]),
}
KEEP_PARAMS = ("best", "all", "none")
DISTRIBUTIONS = ("uniform", "log", "int")


# --------------------------------------------------------------------------- trial lists

def _plain(value: Any) -> Any:
    """NumPy scalars → Python scalars (so trials print and serialise cleanly); others as is."""
    return value.item() if isinstance(value, np.generic) else value


def _axis_values(name: str, values: Any) -> List[Any]:
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise TypeError(f"grid axis {name!r} must be a list of values, got {values!r}; "
                        f"for a single value write {name}=[{values!r}]")
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(f"grid axis {name!r} must be 1-D, got an array of shape {values.shape}")
    out = [_plain(v) for v in values]
    if not out:
        raise ValueError(f"grid axis {name!r} is empty: the grid would have no trials")
    return out


def grid(**axes: Sequence[Any]) -> List[Trial]:
    """The Cartesian product of named value lists, as a list of trial dicts.

    The order is ``itertools.product``'s over the axes in the order given: the first axis
    varies slowest, the last fastest. ``grid(a=[1, 2], b=["x", "y"])`` →
    ``[{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]``.
    NumPy scalars become Python scalars; ``grid()`` is ``[{}]`` (one trial: the base).
    """
    names = list(axes)
    values = [_axis_values(name, axes[name]) for name in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _check_distribution(name: str, axis: Any) -> Tuple[str, Any]:
    """Classify one random_samples axis: ("choice", values) or (kind, (lo, hi))."""
    if isinstance(axis, tuple):
        if len(axis) != 3 or axis[0] not in DISTRIBUTIONS:
            raise ValueError(f"random_samples axis {name!r}: a tuple must be a distribution "
                             f"('uniform', lo, hi), ('log', lo, hi) or ('int', lo, hi), got {axis!r}; "
                             "give the choices as a list")
        kind, lo, hi = axis
        integer = kind == "int"
        for bound, what in ((lo, "lo"), (hi, "hi")):
            check_number(bound, f"random_samples axis {name!r}: {what}", integer=integer)
        if lo > hi:
            raise ValueError(f"random_samples axis {name!r}: lo must be <= hi, got {axis!r}")
        if kind == "log" and lo <= 0:
            raise ValueError(f"random_samples axis {name!r}: a 'log' range needs 0 < lo, got {axis!r}")
        return kind, (lo, hi)
    return "choice", _axis_values(name, axis)


def _axis_rng(seed: int, name: str) -> np.random.Generator:
    # One stream per axis name: adding or reordering axes leaves the other axes' values alone.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def random_samples(n: int, seed: int, /, **axes: Any) -> List[Trial]:
    """``n`` trial dicts, each axis drawn independently; the same ``seed`` gives the same list.

    An axis is a list of choices (drawn uniformly, with replacement; the elements are
    returned as they are, so tuples stay tuples), or a distribution: ``("uniform", lo, hi)``,
    ``("log", lo, hi)`` (log-uniform, ``0 < lo``) or ``("int", lo, hi)`` (integers ``lo..hi``
    inclusive). Each axis has its own random stream keyed by ``seed`` and the axis name, so
    adding an axis does not change the others, and the first ``k`` of ``n`` samples are the
    ``k`` samples ``random_samples(k, seed, ...)`` gives. ``n`` and ``seed`` are positional,
    so an axis may be called ``seed``::

        random_samples(20, 0, lr=("log", 1e-4, 1e-1), hidden=[(32,), (64,), (64, 32)])
    """
    n = check_number(n, "random_samples: n", low=1, integer=True)
    seed = check_number(seed, "random_samples: seed", low=0, integer=True)
    columns: Dict[str, List[Any]] = {}
    for name, axis in axes.items():
        kind, arg = _check_distribution(name, axis)
        rng = _axis_rng(seed, name)
        if kind == "choice":
            columns[name] = [arg[i] for i in rng.integers(0, len(arg), size=n)]
        elif kind == "int":
            columns[name] = [int(v) for v in rng.integers(arg[0], arg[1], size=n, endpoint=True)]
        elif kind == "uniform":
            columns[name] = [float(v) for v in rng.uniform(arg[0], arg[1], size=n)]
        else:  # log
            lo, hi = math.log(arg[0]), math.log(arg[1])
            columns[name] = [min(max(float(math.exp(v)), arg[0]), arg[1]) for v in rng.uniform(lo, hi, size=n)]
    return [{name: columns[name][i] for name in axes} for i in range(n)]


# --------------------------------------------------------------------------- networks

# --------------------------------------------------------------------------- trial settings

def _check_keys(settings: Any, where: str) -> None:
    if not isinstance(settings, dict):
        raise TypeError(f"{where} must be a dict of settings, got {type(settings).__name__}")
    unknown = [k for k in settings if k not in TRIAL_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}" + (f" (and {unknown[1:]})" if unknown[1:] else "")
                         + f"; known keys: {sorted(TRIAL_KEYS)}")
    shaping = [k for k in NETWORK_KEYS if k in settings]
    if "spec" in settings and shaping:
        raise ValueError(f"{where}: 'spec' and {shaping} are alternatives; give a full spec or the "
                         "keys that build one, not both")


def _merge(base: Trial, trial: Trial) -> Trial:
    """``{**base, **trial}``, where a trial's ``spec`` replaces base's network keys and vice versa."""
    merged = dict(base)
    if "spec" in trial:
        for k in NETWORK_KEYS:
            merged.pop(k, None)
    elif any(k in trial for k in NETWORK_KEYS):
        merged.pop("spec", None)
    merged.update(trial)
    return merged


def _run_seeds(settings: Trial, seed: int, repeats: int) -> List[int]:
    """The seeds a trial runs with: ``s, s+1, ..., s+repeats-1`` from ``s = trial["seed"]`` or the sweep's."""
    first = settings["seed"] if "seed" in settings else seed
    if isinstance(first, (bool, np.bool_)) or not isinstance(first, numbers.Integral) or first < 0:
        return [first] * repeats  # _run_trial reports the bad seed as the trial's error
    return [int(first) + r for r in range(repeats)]


def _build_optimizer(settings: Trial) -> Dict[str, Any]:
    extra = {k: settings[k] for k in OPTIMIZER_HYPERPARAMETERS + ("lr",) if k in settings}
    return _optimizers.by_name(settings.get("optimizer", "adam"), **extra)


def _build_spec(settings: Trial, n_outputs: int) -> List[Dict[str, Any]]:
    if "spec" in settings:
        check_spec(settings["spec"])
        return settings["spec"]
    kwargs = {k: settings[k] for k in NETWORK_KEYS if k in settings}
    kwargs.setdefault("n_outputs", n_outputs)
    return mlp(**kwargs)


@contextlib.contextmanager
def _blas_threads(n: Optional[int]):
    """Limit BLAS/OpenMP thread pools to ``n`` threads inside the block (no-op for None)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=n):
        yield


def _run_trial(index: int, settings: Trial, seed: int, X: np.ndarray, y: Any, validation_data: Tuple[Any, Any],
               loss: str, n_outputs: int, dtype: np.dtype, score: Union[str, Callable], sample_weight: Any,
               blas_threads: Optional[int]) -> Result:
    """Train and score one trial; never raises (an Exception becomes the result's "error")."""
    start = time.perf_counter()
    result: Result = {"index": index, "trial": settings, "seed": seed, "score": float("nan"),
                      "score_name": score if isinstance(score, str) else getattr(score, "__name__", "score"),
                      "val_loss": float("nan"), "metrics": None, "history": None, "params": None,
                      "spec": None, "optimizer": None, "error": None, "traceback": None, "seconds": 0.0}
    try:
        with _blas_threads(blas_threads):
            spec = result["spec"] = _build_spec(settings, n_outputs)
            optimizer = result["optimizer"] = _build_optimizer(settings)
            seed = result["seed"] = check_number(seed, f"trials[{index}]['seed']", low=0, integer=True)
            params = init_params(spec, X.shape[1], seed=seed, dtype=dtype)
            params, history = train(spec, params, X, y, loss=loss, optimizer=optimizer,
                                    epochs=settings["epochs"], batch_size=settings.get("batch_size"),
                                    l2=settings.get("l2", 0.0), validation_data=validation_data, seed=seed,
                                    sample_weight=sample_weight, early_stopping=settings.get("early_stopping"),
                                    progress=False)
            X_val, y_val = validation_data
            output = forward(spec, params, X_val)[0]
            metrics = scores(loss, output, _losses.check_targets(loss, y_val, X_val.shape[0], output.shape[1],
                                                            output.dtype, name="validation_data y"))
            if callable(score):
                value = float(score(y_val, _losses.decision(loss)(output)))
            else:
                value = float(SCORES[score][1](metrics))
        result.update(params=params, history=history, metrics=metrics, val_loss=float(metrics["loss"]),
                      score=value)
    except Exception as exc:  # a trial's failure is its result, not the sweep's
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = _traceback.format_exc()
    result["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- repeats

def _combine(runs: List[Result]) -> Result:
    """One trial's result from its runs (one per seed): mean and spread of the score.

    ``score`` and ``val_loss`` are the means over the runs, ``metrics`` the mean of each
    metric; ``scores``/``seeds`` list the runs; ``params``, ``history`` and ``seed`` are the
    first run's (the sweep's seed). A trial fails when any of its runs fails (the first
    failure's error).
    """
    first = runs[0]
    result = dict(first)
    result["seeds"] = [r["seed"] for r in runs]
    result["seconds"] = float(sum(r["seconds"] for r in runs))
    failed = [r for r in runs if r["error"] is not None]
    if failed:
        result.update(error=failed[0]["error"], traceback=failed[0]["traceback"], score=float("nan"),
                      scores=[r["score"] for r in runs], score_std=float("nan"), score_min=float("nan"),
                      score_max=float("nan"), val_loss=float("nan"), params=None)
        return result
    values = np.array([r["score"] for r in runs], dtype=np.float64)
    result.update(score=float(values.mean()), scores=values.tolist(), score_std=float(values.std()),
                  score_min=float(values.min()), score_max=float(values.max()),
                  val_loss=float(np.mean([r["val_loss"] for r in runs])),
                  metrics={k: float(np.mean([r["metrics"][k] for r in runs])) for k in first["metrics"]})
    return result


# --------------------------------------------------------------------------- ranking

def _rank(result: Result) -> Tuple[int, float, int]:
    """Sort key, best first: successes by score (NaN scores after finite ones), then index."""
    if result.get("error") is not None:
        return (2, 0.0, result["index"])
    s = result["score"]
    if s is None or not np.isfinite(s):
        return (1, 0.0, result["index"])
    return (0, -s, result["index"])


def best(results: Sequence[Result]) -> Result:
    """The best successful result: highest score, lowest trial index among ties.

    Works on any list of sweep results, sorted or not. ``ValueError`` if every trial failed
    (the message quotes the first error).
    """
    ok = [r for r in results if r.get("error") is None]
    if not ok:
        if not results:
            raise ValueError("best(): no results")
        first = min(results, key=lambda r: r["index"])
        raise ValueError(f"best(): all {len(results)} trials failed; trial {first['index']}: {first['error']}")
    return min(ok, key=_rank)


# --------------------------------------------------------------------------- the sweep

def sweep(X: Any, y: Any, *, validation_data: Tuple[Any, Any], trials: Sequence[Trial], loss: str,
          base: Optional[Trial] = None, n_jobs: Optional[int] = 1, seed: int = 0, epochs: Optional[int] = None,
          score: Union[str, Callable[[Any, Any], float]] = "auto", backend: Any = None,
          keep_params: str = "best", dtype: Any = np.float32, sample_weight: Any = None,
          blas_threads: Optional[int] = 1, verbose: int = 0, repeats: int = 1, log: Any = None,
          resume: bool = False) -> List[Result]:
    """Train one network per trial on (X, y), score each on ``validation_data``; best first.

    ``trials`` — a list of setting dicts (see the module docstring for the keys), e.g. from
    :func:`grid` or :func:`random_samples`; ``base`` — settings shared by all trials (a
    trial's own keys win). Network keys default to :func:`funcnn.layers.mlp`'s defaults with
    ``n_outputs`` from the loss and the labels (classes for ``softmax_cross_entropy``, 1 for
    ``binary_cross_entropy``, y's columns for ``mean_squared_error``); the optimizer to
    ``adam`` with its default ``lr``. ``epochs`` is the default for trials that set none (a
    trial or ``base`` must set it if this is None).

    Each trial runs ``init_params(spec, n_features, seed=s, dtype=dtype)``, then
    ``train(..., validation_data=validation_data, seed=s, progress=False)``, then scores the
    trained network on the validation data (the numbers :func:`funcnn.train.evaluate` gives).
    ``s`` is the trial's ``seed`` key if it has one, else ``seed`` — the same for every trial
    (common random numbers). ``repeats`` runs each trial with the seeds ``s .. s+repeats-1``
    and scores it by the mean over them (the spread is reported too).
    ``score`` (higher is better, always on the validation data): ``"auto"`` — ``"accuracy"``
    for the cross-entropies, ``"r2"`` for ``mean_squared_error``; or ``"accuracy"``, ``"r2"``,
    ``"neg_mse"``, ``"neg_loss"`` (minus the validation loss), or a function
    ``score(y_val, predict(spec, params, X_val))`` (picklable when ``n_jobs != 1``).

    ``n_jobs`` and ``backend`` go to ``joblib.Parallel`` (``None`` for either defers to an
    enclosing ``joblib.parallel_config``). Each trial limits BLAS to ``blas_threads``
    threads; ``None`` leaves the thread pools alone and gives up the bit-for-bit equality
    of serial and parallel runs where BLAS results depend on the thread count.
    ``keep_params``: ``"best"`` keeps the trained params only in the best result (the others
    hold ``None``; as results arrive, the parent drops every params dict but the leader's),
    ``"all"`` keeps every trial's, ``"none"`` none. ``verbose`` is joblib's verbosity.
    ``sample_weight`` weights the training samples of every trial.

    Returns a list with one dict per trial, sorted best first (score descending, trial
    index breaking ties; successful trials with a NaN score next; failed trials last)::

        {"index": i,               # position in `trials`
         "trial": {...},           # the settings used: base merged with trials[i]
         "seed": s,                # the int seed of init_params and train (the first run's)
         "seeds": [s, ...],        # one per repeat: s, s+1, ...
         "score": float,           # the mean over the repeats; NaN if the trial failed
         "score_name": "accuracy", # which score: "accuracy", "r2" (R², regression), "neg_mse", ...
         "scores": [float, ...],   # one per seed
         "score_std": float, "score_min": float, "score_max": float,   # their spread (std: ddof=0)
         "val_loss": float,        # the loss on validation_data, without the L2 term (mean over repeats)
         "metrics": {...},         # as evaluate() on validation_data: "loss", "accuracy" | "mse", "r2" (means)
         "history": {...},         # train()'s per-epoch history (its val_loss includes L2), first seed
         "params": {...} | None,   # trained params of the first seed (see keep_params)
         "spec": [...], "optimizer": {...},
         "error": None | "FloatingPointError: training diverged at epoch 3 ...",   # any repeat's
         "traceback": None | str,
         "seconds": float}         # wall time of the trial's runs in their workers

    ``sorted(results, key=lambda r: r["index"])`` restores the trials' order, e.g. to plot
    a validation curve. No argument is modified.

    **Finished trials are kept.** Results are collected as they finish (in any order). If the
    parallel backend itself fails — a Dask worker or scheduler lost, a joblib worker killed —
    every trial that finished keeps its result, and each trial that did not gets a result with
    ``"lost": True`` and ``error = "lost: <the backend's error>"`` (every result has ``"lost"``).
    ``log=PATH`` writes the finished trials (every entry above but ``params``) as JSON lines,
    rewritten atomically after each trial, so a killed sweep leaves a complete file of what
    finished; with ``resume=True`` the trials already in ``log`` with the same settings and
    seeds are not run again (their results come from the file, ``params`` None) and the rest run.
    """
    import joblib

    _losses.get(loss)
    classification = _losses.is_classification(loss)
    dtype = check_dtype(dtype)

    # --- the sweep's own arguments: errors here stop everything, before any training
    if isinstance(trials, dict):
        raise TypeError("trials must be a list of setting dicts, got a dict; "
                        "use grid(**axes) to make the product of value lists")
    if isinstance(trials, (str, bytes)) or not isinstance(trials, Iterable):
        raise TypeError(f"trials must be a list of setting dicts, got {type(trials).__name__}")
    trials = list(trials)
    if not trials:
        raise ValueError("trials is empty: give at least one trial (grid() gives [{}], the base alone)")
    base = {} if base is None else base
    _check_keys(base, "base")
    for i, trial in enumerate(trials):
        _check_keys(trial, f"trials[{i}]")
    if n_jobs is not None:
        if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral):
            raise TypeError(f"n_jobs must be an int (1 for serial, -1 for all CPUs) or None, got {n_jobs!r}")
        if n_jobs == 0:
            raise ValueError("n_jobs must not be 0: use 1 for serial, k > 1 for k workers, -1 for all CPUs")
        n_jobs = int(n_jobs)
    seed = check_number(seed, "seed", low=0, integer=True)
    repeats = check_number(repeats, "repeats", low=1, integer=True)
    if epochs is not None:
        epochs = check_number(epochs, "epochs", low=0, integer=True)
    if isinstance(score, str):
        if score == "auto":
            score = "accuracy" if classification else "r2"
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; known: ['auto'] + {sorted(SCORES)}, or a function "
                             "score(y_true, y_pred)")
        applies = SCORES[score][0]
        if applies != "any" and (applies == "classification") != classification:
            raise ValueError(f"score {score!r} needs a {applies} loss, got loss={loss!r}")
    elif not callable(score):
        raise TypeError(f"score must be a score name or a function score(y_true, y_pred), got {score!r}")
    if keep_params not in KEEP_PARAMS:
        raise ValueError(f"keep_params must be one of {list(KEEP_PARAMS)}, got {keep_params!r}")
    if blas_threads is not None:
        blas_threads = check_number(blas_threads, "blas_threads", low=1, integer=True)

    # --- the data: checked and converted once here, shared by every trial
    X = check_X(X, dtype)
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a pair (X_val, y_val)")
    X_val = check_X(validation_data[0], dtype, X.shape[1], name="validation_data X")
    y_val = validation_data[1]
    n_outputs = datasets.n_outputs(loss, y, y_val)
    _losses.check_targets(loss, y, X.shape[0], n_outputs, dtype)
    _losses.check_targets(loss, y_val, X_val.shape[0], n_outputs, dtype, name="validation_data y")
    sample_weight = check_sample_weight(sample_weight, X.shape[0], dtype)

    settings = []
    for i, trial in enumerate(trials):
        merged = _merge(base, trial)
        if "epochs" not in merged:
            if epochs is None:
                raise ValueError(f"trials[{i}] has no 'epochs': set it in the trial, in base, or sweep(epochs=...)")
            merged["epochs"] = epochs
        settings.append(merged)

    if not isinstance(resume, (bool, np.bool_)):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if resume and log is None:
        raise ValueError("resume=True needs log=PATH (the file of the trials already done)")
    if log is not None:
        log = _check_log(log)
    done = _read_log(log, settings, seed, repeats) if resume else {}
    todo = [i for i in range(len(settings)) if i not in done]

    tasks = (joblib.delayed(_run_trial)(i, settings[i], run_seed, X, y, (X_val, y_val), loss, n_outputs, dtype,
                                        score, sample_weight, blas_threads)
             for i in todo for run_seed in _run_seeds(settings[i], seed, repeats))
    # one trial per task: a trial is long, and a batch of them lost with a worker would lose them all
    parallel_kwargs: Dict[str, Any] = {"verbose": verbose, "batch_size": 1}
    if n_jobs is not None:
        parallel_kwargs["n_jobs"] = n_jobs
    if backend is not None:
        parallel_kwargs["backend"] = backend
    parallel = None
    accepts = inspect.signature(joblib.Parallel).parameters
    if "return_as" in accepts:
        # unordered: a trial's result is kept the moment it finishes, whatever runs before it
        for mode in ("generator_unordered", "generator"):
            try:
                parallel = joblib.Parallel(**parallel_kwargs, return_as=mode)
                break
            except ValueError:  # a backend without generators (Ray's): the results come as one list
                parallel = None
    if parallel is None:
        parallel = joblib.Parallel(**parallel_kwargs)

    results: List[Result] = list(done.values())
    leader: Optional[Result] = None
    pending: Dict[int, List[Result]] = {}
    # The parent's own pools are limited too: that covers n_jobs=1 and thread-based backends.
    with _blas_threads(blas_threads):
        try:
            if todo:
                for run in parallel(tasks):
                    runs = pending.setdefault(run["index"], [])
                    runs.append(run)
                    if len(runs) < repeats:
                        continue
                    del pending[run["index"]]
                    order = _run_seeds(settings[run["index"]], seed, repeats)
                    runs.sort(key=lambda r: order.index(r["seed"]) if r["seed"] in order else 0)
                    result = _combine(runs)
                    result["lost"] = False
                    if keep_params == "none":
                        result["params"] = None
                    elif keep_params == "best" and result["error"] is None:
                        if leader is None or _rank(result) < _rank(leader):
                            if leader is not None:
                                leader["params"] = None
                            leader = result
                        else:
                            result["params"] = None
                    results.append(result)
                    if log is not None:
                        _write_log(log, results)
        except Exception as exc:  # the backend failed (a lost worker or scheduler): keep what finished
            finished = {r["index"] for r in results}
            reason = " ".join(f"lost: {type(exc).__name__}: {exc}".split())  # one line
            for i in todo:
                if i not in finished:
                    results.append(_lost_result(i, settings[i], _run_seeds(settings[i], seed, repeats), reason,
                                                score))
    results.sort(key=_rank)
    return results


# --------------------------------------------------------------------------- keeping results

_LOG_KEYS = ("index", "trial", "seed", "seeds", "score", "score_name", "scores", "score_std", "score_min",
             "score_max", "val_loss", "metrics", "history", "spec", "optimizer", "error", "traceback", "seconds")


def _check_log(log: Any) -> str:
    """The results file's path, checked before anything runs (its directory exists, it is not one)."""
    import os
    path = os.fspath(log)
    if not isinstance(path, str):
        raise TypeError(f"log must be a path (str or os.PathLike), got {type(log).__name__}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"log {path}: no such directory {directory}")
    if os.path.isdir(path):
        raise ValueError(f"log {path}: is a directory")
    return path


def _key(settings: Trial, seeds: Sequence[Any]) -> str:
    """What identifies a trial in a results file: its settings and seeds, JSON-normal."""
    import json
    from .checkpoint import plain
    return json.dumps({"trial": plain(settings, "trial"), "seeds": plain(list(seeds), "seeds")}, sort_keys=True,
                      allow_nan=True, default=str)


def _write_log(path: str, results: Sequence[Result]) -> None:
    """Every finished trial as one JSON line (no params), in trial order; an atomic rewrite."""
    import json
    from .checkpoint import atomic_write, plain
    lines = []
    for r in sorted(results, key=lambda r: r["index"]):
        if r.get("lost"):
            continue
        entry = {k: r.get(k) for k in _LOG_KEYS}
        entry["key"] = _key(r["trial"], r.get("seeds") or [r["seed"]])
        lines.append(json.dumps(plain(entry, "result"), allow_nan=True, default=str))
    text = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    atomic_write(path, lambda fh: fh.write(text))


def _read_log(path: str, settings: Sequence[Trial], seed: int, repeats: int) -> Dict[int, Result]:
    """The results in ``path`` of trials whose index, settings and seeds match this sweep's (none if no file)."""
    import json
    import os
    if not os.path.exists(path):
        return {}
    done: Dict[int, Result] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                i = entry["index"]
                ok = isinstance(i, int) and 0 <= i < len(settings)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {number} is not a sweep result ({type(exc).__name__}: {exc}); "
                                 "it is not a file sweep(log=...) wrote") from None
            if ok and entry.get("key") == _key(settings[i], _run_seeds(settings[i], seed, repeats)):
                result = {k: entry.get(k) for k in _LOG_KEYS}
                result.update(trial=settings[i], params=None, lost=False, resumed=True)
                done[i] = result
    return done


def _lost_result(index: int, settings: Trial, seeds: List[Any], reason: str, score: Any) -> Result:
    nan = float("nan")
    return {"index": index, "trial": settings, "seed": seeds[0], "seeds": seeds, "score": nan,
            "score_name": score if isinstance(score, str) else getattr(score, "__name__", "score"),
            "scores": [nan] * len(seeds), "score_std": nan, "score_min": nan, "score_max": nan, "val_loss": nan,
            "metrics": None, "history": None, "params": None, "spec": None, "optimizer": None, "error": reason,
            "traceback": None, "seconds": 0.0, "lost": True}
    results.sort(key=_rank)
    return results
