"""Training: the composition of the public pure functions, epoch after epoch.

One training step is :func:`funcnn.network.objective` (forward → loss → backward → L2 term,
exactly what :func:`funcnn.value_and_grad` computes) followed by the optimizer's rule
(:func:`funcnn.optimizers.apply_rule`, exactly what :func:`funcnn.update` applies). ``train``
runs those very functions; what it adds is buffers it owns: params, gradients and optimizer
slots each live in one flat array (every parameter a view into it), the backward pass writes
the gradients into those views, and the rule updates the flat arrays in place.

The order in which ``train`` draws from its generator (``seed``), so that a hand-written
loop of the public functions reproduces it bit for bit:

1. every epoch with minibatches starts with ``perm = rng.permutation(n)``; batch ``b`` is
   rows ``perm[b*B:(b+1)*B]`` (the last one partial); full batch (``batch_size=None`` or
   ``>= n``) draws no permutation and uses the rows in order;
2. each minibatch's forward pass draws its dropout masks from the same ``rng``, layer by
   layer (``rng.random(shape, dtype)`` per dropout layer), i.e.
   ``value_and_grad(spec, params, X[idx], y[idx], ..., seed=rng)``;
3. a minibatch whose sample weights are all zero is skipped: nothing is drawn for it, no
   update is made, and it does not count in the epoch's mean loss.

``train`` is pure: it never modifies ``params``, ``X`` or ``y``; with an int ``seed`` the
same call gives the same params and history bit for bit. A ``np.random.Generator`` seed is
advanced, as everywhere in NumPy.

A *run* (:func:`new_run`, :func:`train_epoch`) is the training state as plain data:
params, optimizer state, the generator's state, the epoch count and the history. ``train``
is ``new_run`` followed by ``epochs`` calls of ``train_epoch``, plus validation, early
stopping, callbacks and checkpoints.
"""
from __future__ import annotations

import math
import numbers
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import checkpoint as _checkpoint
from . import losses as _losses
from . import metrics as _metrics
from . import network as _network
from . import optimizers as _optimizers
from . import parallel as _parallel
from .layers import check_spec
from .network import Params, Spec
from . import footprint as _footprint
from .validation import SeedLike, as_rng, check_fits, check_number, check_sample_weight, check_X

History = Dict[str, List[float]]
Run = Dict[str, Any]
Callback = Callable[[int, Params, History], Any]

MONITOR_MODES = {"loss": "min", "val_loss": "min", "accuracy": "max", "val_accuracy": "max"}

# When ``train`` calls a run diverged (it warns with DivergenceWarning), with ``start`` the
# loss of its very first minibatch (the initial params) and ``end`` its last epoch's mean loss:
# * ``end > DIVERGENCE_FACTOR * start`` — it ended well above where it started; or
# * some epoch's mean loss exceeded ``BLOWUP_FACTOR * start`` and ``end > start / 2`` — it blew
#   up and never really recovered (Adam at lr 10 on digits: start 3.1, epoch 1 at 2.8e5, then
#   stuck near 3.1 predicting one class). A working run ends far below its start.
# Neither counts for a classifier whose last loss is at most DIVERGENCE_FLOOR x its chance
# level (log k): a well-fit model trained on shows tiny, noisy losses (first minibatch 1e-5,
# epoch 3e-4), which the relative rules alone would call divergence.
DIVERGENCE_FACTOR = 1.25
DIVERGENCE_FLOOR = 0.1
BLOWUP_FACTOR = 10.0


class DivergenceWarning(UserWarning):
    """The training loss ended far above where it started, or blew up and never recovered (:func:`diverged`)."""


# --------------------------------------------------------------------------- the run

def rng_from_state(state: Dict[str, Any]) -> np.random.Generator:
    """A Generator continuing from ``bit_generator.state`` (what runs and checkpoints store)."""
    if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str) \
            or not hasattr(np.random, state["bit_generator"]):
        raise ValueError(f"not a NumPy bit generator state: {state!r:.80}")
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def new_run(spec: Spec, params: Params, optimizer: Dict[str, Any], *, seed: SeedLike = 0) -> Run:
    """The state before the first epoch: ``{"params", "opt_state", "rng_state", "epoch": 0, "history": {}}``.

    A Generator ``seed`` is read, not advanced (its state is copied into the run).

    Args:
        spec: the layer specs.
        params: the initial params.
        optimizer: an optimizer dict.
        seed: an int or a Generator: the run's random stream.

    Returns:
        The run dict, plain data (it can be saved, pickled, sent to another process).
    """
    check_spec(spec)
    _network.check_params(spec, params)
    optimizer = _optimizers.validate(optimizer)
    rng = as_rng(seed)
    return {"params": params, "opt_state": _optimizers.init_state(optimizer, params),
            "rng_state": rng.bit_generator.state, "epoch": 0, "history": {}, "initial_loss": None}


def train_epoch(spec: Spec, run: Run, X: Any, y: Any, *, loss: str, optimizer: Dict[str, Any],
                batch_size: Optional[int] = None, l2: float = 0.0, sample_weight: Any = None) -> Run:
    """One epoch from ``run``: a new run dict (``epoch`` + 1, new params, state, history entries).

    ``train(..., epochs=k, seed=s)`` without validation, early stopping or callbacks equals
    ``new_run(..., seed=s)`` followed by ``k`` calls of ``train_epoch``, bit for bit.

    Args:
        spec: the layer specs.
        run: the dict :func:`new_run` or the previous ``train_epoch`` returned (not modified).
        X: inputs.
        y: targets.
        loss: the loss name.
        optimizer: the optimizer dict the run was made with.
        batch_size: the minibatch size; None is full batch.
        l2: the L2 coefficient.
        sample_weight: optional weights ``(n,)``.

    Returns:
        The next run dict.
    """
    if not isinstance(run, dict) or not {"params", "opt_state", "rng_state", "epoch", "history"} <= set(run):
        raise TypeError("run must be the dict new_run() or train_epoch() returned")
    data = _check_data(spec, run["params"], X, y, loss, optimizer, batch_size, l2, sample_weight)
    _optimizers.check_state(data["optimizer"], run["params"], run["opt_state"])
    rng = rng_from_state(run["rng_state"])
    ws = _workspace(spec, run["params"], run["opt_state"], data["optimizer"], data)
    history = {k: list(v) for k, v in run["history"].items()}
    initial = _epoch(spec, ws, data, rng, run["epoch"] + 1, history)
    return {"params": _export_params(ws), "opt_state": _export_state(ws), "rng_state": rng.bit_generator.state,
            "epoch": run["epoch"] + 1, "history": history,
            "initial_loss": run.get("initial_loss") if run.get("initial_loss") is not None else initial}


# --------------------------------------------------------------------------- checking the arguments

def _check_data(spec, params, X, y, loss, optimizer, batch_size, l2, sample_weight) -> Dict[str, Any]:
    """Everything one epoch needs, validated once: data (not converted: minibatches are), targets, settings."""
    _losses.get(loss)
    check_spec(spec)
    n_in, n_out, dtype = _network.check_params(spec, params)
    optimizer = _optimizers.validate(optimizer)
    if batch_size is not None:
        batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
    l2 = float(check_number(l2, "l2", low=0.0))
    if n_in is None or (isinstance(n_in, int) and getattr(X, "ndim", 2) > 2):  # as network.checked_input
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
        n_in, n_out, dtype = _network.check_params(spec, params, arr.shape[1:] if arr.ndim > 1 else None,
                                                   finite=False)
    X = check_X(X, _network.input_dtype(spec, X, dtype), n_in, convert=False)
    check_fits(X, dtype, "X")  # converted minibatch by minibatch: an overflow is named now, not as a divergence
    _losses.check_outputs(loss, n_out)
    n = X.shape[0]
    # a minibatch's caches must fit the memory budget: refused here, not by a MemoryError mid-epoch
    _footprint.check_budget(spec, X.shape[1:], dtype, rows=n if batch_size is None else min(batch_size, n),
                            training=True, where="train: ")
    out_shape = _network.output_shape(spec, X.shape[1:])
    y = _losses.check_targets(loss, y, n, n_out, dtype, out_shape=out_shape)
    w = check_sample_weight(sample_weight, n, dtype, shape=_losses.weight_shape(loss, y))
    return {"X": X, "y": y, "w": w, "n": n, "n_in": n_in, "n_out": n_out, "out_shape": out_shape,
            "spec": spec, "dtype": dtype, "loss": loss,
            "optimizer": optimizer, "batch_size": batch_size, "l2": l2,
            "classification": _losses.is_classification(loss)}


def _check_validation(validation_data, data) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a pair (X_val, y_val)")
    X_val = check_X(validation_data[0], _network.input_dtype(data["spec"], validation_data[0], data["dtype"],
                                                             "validation_data X"),
                    data["n_in"], name="validation_data X", convert=False)
    check_fits(X_val, data["dtype"], "validation_data X")
    y_val = _losses.check_targets(data["loss"], validation_data[1], X_val.shape[0], data["n_out"], data["dtype"],
                                  name="validation_data y", out_shape=data["out_shape"])
    return X_val, y_val


def _check_early_stopping(early_stopping: Any, has_validation: bool) -> Optional[Dict[str, Any]]:
    if early_stopping is None:
        return None
    if isinstance(early_stopping, numbers.Integral) and not isinstance(early_stopping, bool):
        early_stopping = {"patience": int(early_stopping)}
    if not isinstance(early_stopping, dict):
        raise TypeError("early_stopping must be None, an int (patience) or a dict "
                        f"{{'monitor', 'patience', 'min_delta', 'restore_best'}}, got {type(early_stopping).__name__}")
    unknown = sorted(set(early_stopping) - {"monitor", "patience", "min_delta", "restore_best"})
    if unknown:
        raise ValueError(f"early_stopping has unknown key(s) {unknown}; "
                         "allowed: monitor, patience, min_delta, restore_best")
    es = {"monitor": "val_loss" if has_validation else "loss", "patience": 10, "min_delta": 0.0,
          "restore_best": True, **early_stopping}
    if es["monitor"] not in MONITOR_MODES:
        raise ValueError(f"early_stopping['monitor'] must be one of {sorted(MONITOR_MODES)}, got {es['monitor']!r}")
    if es["monitor"].startswith("val_") and not has_validation:
        raise ValueError(f"early_stopping monitors {es['monitor']!r} but no validation_data was given")
    es["patience"] = check_number(es["patience"], "early_stopping['patience']", low=1, integer=True)
    es["min_delta"] = float(check_number(es["min_delta"], "early_stopping['min_delta']", low=0.0))
    if not isinstance(es["restore_best"], (bool, np.bool_)):
        raise TypeError(f"early_stopping['restore_best'] must be True or False, got {es['restore_best']!r}")
    es["restore_best"] = bool(es["restore_best"])
    return es


def _improved(es: Dict[str, Any], value: float, best: Optional[float]) -> bool:
    if best is None:
        return True
    if MONITOR_MODES[es["monitor"]] == "min":
        return value < best - es["min_delta"]
    return value > best + es["min_delta"]


def _log_line(epoch: int, epochs: int, history: History) -> str:
    metrics = "  ".join(f"{k} {v[-1]:.4f}" for k, v in history.items() if v)
    return f"epoch {epoch}/{epochs}  {metrics}"


def _progress(epochs: int, start: int, enabled: bool):
    """A tqdm bar over the epochs when tqdm is installed and progress is on, else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, initial=start, unit="epoch", leave=False, file=sys.stderr)


# --------------------------------------------------------------------------- train

def train(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, optimizer: Dict[str, Any], epochs: int,
          batch_size: Optional[int] = None, l2: float = 0.0,
          validation_data: Optional[Tuple[Any, Any]] = None, seed: SeedLike = 0,
          sample_weight: Any = None, early_stopping: Any = None,
          callbacks: Optional[Sequence[Callback]] = None, progress: bool = True,
          checkpoint: Optional[str] = None,
          checkpoint_metadata: Optional[Dict[str, Any]] = None) -> Tuple[Params, History]:
    """Minimise ``loss + l2/2 sum ||W||^2`` over (X, y) with ``optimizer`` for ``epochs`` epochs.

    Minibatches come from a fresh permutation every epoch (see the module docstring for
    the generator's order); the last, partial batch is used. ``batch_size=None`` is
    full-batch gradient descent (no shuffle). ``early_stopping`` — an int patience or a dict
    with ``monitor`` ("val_loss" by default when there is validation data, else "loss"),
    ``patience`` (10), ``min_delta`` (0) and ``restore_best`` (True). ``callbacks`` are
    called as ``cb(epoch, params, history)`` after each epoch (epoch counts from 1); a
    callback returning ``True`` stops training. ``checkpoint`` — a path where the whole
    training state is saved after every epoch; if it already holds a checkpoint of this
    run, training resumes from it (the ``params`` argument is then ignored; ``epochs`` is
    the total); a checkpoint of another run is refused, naming each difference.
    ``checkpoint_metadata`` — extra metadata stored in the checkpoint (e.g. a scaler), so
    the checkpoint is a complete model file for ``load`` and ``funcnn predict``.

    Returns ``(params, history)``; history holds per-epoch lists ``loss`` (mean over the
    epoch's minibatches of the objective, L2 included), ``accuracy`` (classification: the
    fraction of training samples the minibatch outputs classified correctly during the
    epoch) and, with validation data, ``val_loss`` and ``val_accuracy`` at the epoch's end.
    A non-finite loss raises ``FloatingPointError``; a run that diverged by the rule of
    :func:`diverged` warns (:class:`DivergenceWarning`).

    Args:
        spec: the layer specs.
        params: the initial params (not modified).
        X: inputs ``(n, *input shape)``, any dtype (a memory map too): converted batch by batch.
        y: targets: integer labels for the cross-entropies, values for regression.
        loss: a loss name or ``{"name": ..., **options}``.
        optimizer: an optimizer dict (:mod:`funcnn.optimizers`).
        epochs: the number of epochs (the total, when resuming from a checkpoint).
        batch_size: the minibatch size; None is full-batch gradient descent.
        l2: the coefficient of ``l2/2 · Σ‖W‖²``.
        validation_data: ``(X_val, y_val)``, scored after every epoch.
        seed: an int or a Generator: the minibatch order and the dropout masks.
        sample_weight: optional weights ``(n,)``.
        early_stopping: a patience, or a dict as above.
        callbacks: functions ``cb(epoch, params, history)``; returning True stops.
        progress: a progress bar (tqdm) or log lines on stderr.
        checkpoint: a path for the training state, saved after every epoch; resumed from.
        checkpoint_metadata: extra metadata for the checkpoint file.

    Returns:
        ``(params, history)``.

    Examples:
        >>> import numpy as np, funcnn as F
        >>> X = np.random.default_rng(0).normal(size=(64, 2)); y = (X[:, 0] > 0).astype(int)
        >>> spec = [F.dense(8), F.relu(), F.dense(2)]
        >>> params, history = F.train(spec, F.init_params(spec, 2, seed=0), X, y, loss="softmax_cross_entropy",
        ...                           optimizer=F.adam(1e-2), epochs=5, batch_size=16, progress=False)
        >>> sorted(history), len(history["loss"])
        (['accuracy', 'loss'], 5)
    """
    data = _check_data(spec, params, X, y, loss, optimizer, batch_size, l2, sample_weight)
    optimizer = data["optimizer"]
    epochs = check_number(epochs, "epochs", low=0, integer=True)
    val = _check_validation(validation_data, data)
    es = _check_early_stopping(early_stopping, val is not None)
    callbacks = list(callbacks or [])
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be a function (epoch, params, history), got {type(cb).__name__}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")

    rng = as_rng(seed)
    history: History = {"loss": []}
    if data["classification"]:
        history["accuracy"] = []
    if val is not None:
        history["val_loss"] = []
        if data["classification"]:
            history["val_accuracy"] = []
    state = _optimizers.init_state(optimizer, params)
    book = {"epoch": 0, "best_value": None, "best_params": None, "best_epoch": None, "wait": 0, "stopped": False,
            "initial_loss": None}
    if checkpoint is not None:
        checkpoint, config = _checkpoint_config(checkpoint, checkpoint_metadata, spec, data, val, es, seed)
        resumed = _checkpoint.load_training_state(checkpoint, spec, config)
        if resumed is not None:
            params, state, history, book, rng = _unpack(checkpoint, resumed, history)
    elif checkpoint_metadata is not None:
        raise ValueError("checkpoint_metadata needs checkpoint=PATH")

    bar = _progress(epochs, min(book["epoch"], epochs), progress)
    ws = None
    try:
        while book["epoch"] < epochs and not book["stopped"]:
            epoch = book["epoch"] + 1
            if ws is None:  # the buffers, made when the first epoch starts
                ws = _workspace(spec, params, state, optimizer, data)
            initial = _epoch(spec, ws, data, rng, epoch, history)
            if book["initial_loss"] is None:
                book["initial_loss"] = initial
            # ``params`` is a fresh dict of fresh arrays every epoch: what callbacks, early
            # stopping and the caller get is never touched again by this loop.
            params = _export_params(ws)
            if val is not None:
                _validate_epoch(spec, params, val, data, history)
            book["epoch"] = epoch
            _early_stopping_step(es, book, history, params, epoch)
            for cb in callbacks:
                if cb(epoch, params, history) is True:
                    book["stopped"] = True
            if checkpoint is not None:
                _checkpoint.save_training_state(
                    checkpoint, spec, params, config=config, metadata=checkpoint_metadata or {},
                    training_state={"opt_state": _export_state(ws), "rng_state": rng.bit_generator.state,
                                    "history": history, "run": book})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items()})
            elif progress:
                print(_log_line(epoch, epochs, history), file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    _warn_if_diverged(history, book, divergence_floor(loss, data["n_out"]))
    if es is not None and es["restore_best"] and book["best_params"] is not None:
        params = book["best_params"]
    return params, history


def _validate_epoch(spec, params, val, data, history) -> None:
    """``val_loss`` (the objective, L2 included, in inference mode) and ``val_accuracy``."""
    X_val, y_val = val
    scores = _metrics.scores(data["loss"], _network.infer(spec, params, X_val, dtype=data["dtype"]), y_val)
    history["val_loss"].append(scores["loss"] + (_network.l2_penalty(params, data["l2"]) if data["l2"] else 0.0))
    if data["classification"]:
        history["val_accuracy"].append(scores["accuracy"])


def _early_stopping_step(es, book, history, params, epoch) -> None:
    if es is None:
        return
    value = history[es["monitor"]][-1]
    if _improved(es, value, book["best_value"]):
        book.update(best_value=value, best_params=params, best_epoch=epoch, wait=0)
    else:
        book["wait"] += 1
        book["stopped"] = book["wait"] >= es["patience"]


def divergence_floor(loss: Any, n_outputs: int) -> float:
    """Losses at or below this never count as diverged: a tenth of the classifier's chance level
    (:func:`funcnn.losses.chance_level`), 0 for regression. A well-fit model's minibatch losses are
    tiny and noisy: the first batch may score 1e-5 and the epoch 3e-4 without anything amiss."""
    level = _losses.chance_level(loss, n_outputs)
    return 0.0 if level is None else DIVERGENCE_FLOOR * level


def diverged(losses: Sequence[float], start: Optional[float], floor: float = 0.0) -> bool:
    """Whether a run with epoch losses ``losses`` that started at ``start`` diverged (rule above;
    never when the last loss is at most ``floor``, see :func:`divergence_floor`)."""
    if not losses or start is None or not start > 0 or not losses[-1] > floor:
        return False
    end = losses[-1]
    return end > DIVERGENCE_FACTOR * start or (max(losses) > BLOWUP_FACTOR * start and end > start / 2)


def _warn_if_diverged(history: History, book: Dict[str, Any], floor: float) -> None:
    start = book.get("initial_loss")
    if diverged(history["loss"], start, floor):
        warnings.warn(f"training diverged: the loss went from {start:.4g} to {max(history['loss']):.4g} and ended "
                      f"at {history['loss'][-1]:.4g}; try a smaller learning rate", DivergenceWarning, stacklevel=3)


# --------------------------------------------------------------------------- checkpoints

def _checkpoint_config(path, metadata, spec, data, val, es, seed) -> Tuple[str, Dict[str, Any]]:
    """The checked path and what a resumed run must share with the saved one (refused otherwise)."""
    path = _checkpoint.check_path(path)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"checkpoint_metadata must be a dict, got {type(metadata).__name__}")
    _checkpoint.check_metadata(metadata or {}, reserved_extra=("loss", "training_state"))
    if callable(data["optimizer"]["lr"]):
        raise TypeError("checkpoint needs a learning rate that can be saved: a number or a "
                        "funcnn.schedules dict, not a function")
    config = {"loss": data["loss"], "optimizer": data["optimizer"], "batch_size": data["batch_size"],
              "l2": data["l2"], "n_samples": data["n"], "n_features": data["n_in"], "dtype": str(data["dtype"]),
              "seed": seed if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None,
              "sample_weight": _checkpoint.data_digest(data["w"]), "early_stopping": es,
              "validation_data": None if val is None else _checkpoint.data_digest(*val),
              "data": _checkpoint.data_digest(data["X"], data["y"])}
    return path, config


def _unpack(path, resumed, history) -> Tuple[Params, Dict[str, Any], History, Dict[str, Any], np.random.Generator]:
    ts = resumed["training_state"]
    try:
        rng = rng_from_state(ts["rng_state"])
        saved_history, book = ts["history"], dict(ts["run"])
        if set(saved_history) != set(history):
            raise ValueError(f"its history has {sorted(saved_history)}, this run records {sorted(history)}")
        book.setdefault("initial_loss", None)
        return resumed["params"], ts["opt_state"], saved_history, book, rng
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed training state ({type(exc).__name__}: {exc}); "
                         "delete it or choose another checkpoint path") from None


# --------------------------------------------------------------------------- the epoch
#
# The workspace is a plain dict of buffers that ``train`` owns: params, gradients, the
# optimizer's slots and one scratch array, each a single flat array padded so every
# parameter starts on a cache line, with per-key views into it; plus one reused buffer for
# the minibatch. Backward writes the gradients into the views (``grads_out``), the L2 term
# goes through the scratch views, and the optimizer's rule updates the flat arrays in place.

_ALIGN = 64  # bytes


def _aligned_zeros(size: int, dtype: np.dtype) -> np.ndarray:
    raw = np.zeros(size + _ALIGN // dtype.itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % _ALIGN) // dtype.itemsize
    return raw[skip:skip + size]


def _workspace(spec, params, state, optimizer, data) -> Dict[str, Any]:
    """Flat buffers for params, grads, slots and scratch, filled from ``params`` and ``state``.

    Only trainable arrays live in the flat buffers (the rule runs over all of them); a
    layer's running state is kept in arrays of its own, which each step overwrites.
    """
    dtype = data["dtype"]
    keys = list(params)
    flat_keys = _network.trainable_keys(params)
    per_line = _ALIGN // dtype.itemsize
    offsets, size = [], 0
    for k in flat_keys:
        offsets.append(size)
        size += -(-params[k].size // per_line) * per_line  # padded to whole cache lines; pads stay 0

    def views(flat):
        return {k: flat[o:o + params[k].size].reshape(params[k].shape) for k, o in zip(flat_keys, offsets)}

    names = _optimizers.slot_names(optimizer)
    ws: Dict[str, Any] = {"keys": keys, "flat_keys": flat_keys, "step": state["step"], "slot_names": names}
    ws["P"], ws["G"], ws["T"] = (_aligned_zeros(size, dtype) for _ in range(3))
    ws["slots"] = tuple(_aligned_zeros(size, dtype) for _ in names)
    ws["p"], ws["g"], ws["t"] = views(ws["P"]), views(ws["G"]), views(ws["T"])
    ws["s"] = tuple(views(flat) for flat in ws["slots"])
    for k in flat_keys:
        ws["p"][k][...] = params[k]
        for name, v in zip(names, ws["s"]):
            v[k][...] = state[name][k]
    for k in keys:
        if k not in ws["p"]:
            ws["p"][k] = params[k].copy()
    ws["p"] = {k: ws["p"][k] for k in keys}  # the params' order
    ws["lparams"] = _network.layer_params(spec, ws["p"])
    ws["lgrads"] = _network.layer_params(spec, ws["g"])
    ws["stateful"] = len(ws["flat_keys"]) < len(keys)  # any running state (batch norm) to set per step
    batch = data["n"] if data["batch_size"] is None else min(data["batch_size"], data["n"])
    X, y = data["X"], data["y"]
    # token ids stay integers (network.input_dtype); other inputs take the params' dtype
    ws["xb"] = np.empty((batch,) + X.shape[1:], dtype=_network.input_dtype(spec, X, dtype))
    ws["yb"] = np.empty((batch,) + y.shape[1:], dtype=y.dtype)
    ws["wb"] = None if data["w"] is None else np.empty((batch,) + data["w"].shape[1:], dtype=data["w"].dtype)
    ws["gb"] = np.empty((batch,) + data["out_shape"], dtype=dtype)  # the loss gradient
    return ws


def _export_params(ws) -> Params:
    """The current params as a new dict of new arrays."""
    return {k: ws["p"][k].copy() for k in ws["keys"]}


def _export_state(ws) -> Dict[str, Any]:
    """The optimizer state, as :func:`funcnn.optimizers.update` would have returned it (fresh arrays)."""
    return {"step": ws["step"], **{name: {k: v[k].copy() for k in ws["flat_keys"]}
                                   for name, v in zip(ws["slot_names"], ws["s"])}}


def gather(X: np.ndarray, idx: Optional[np.ndarray], out: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``X`` (all rows when None) in ``out``'s dtype, written into ``out[:m]``.

    Only those rows are read (a memory-mapped ``X`` stays on disk) and only they are
    converted, so a data set of another dtype is never copied whole.
    """
    m = X.shape[0] if idx is None else idx.shape[0]
    dest = out[:m]
    if idx is None:
        dest[...] = X
    elif X.dtype == out.dtype:
        X.take(idx, axis=0, out=dest, mode="clip")  # "clip": idx is valid; "raise" would buffer
    else:
        dest[...] = X.take(idx, axis=0, mode="clip")
    return dest


def _epoch(spec, ws, data, rng, epoch, history) -> Optional[float]:
    """One pass over the data, updating ``ws`` and appending to ``history``; returns the first batch's loss."""
    X, y, w, n, bs = data["X"], data["y"], data["w"], data["n"], data["batch_size"]
    full = bs is None or bs >= n
    perm = None if full else rng.permutation(n)
    n_batches = 1 if full else -(-n // bs)
    core, loss, l2, optimizer = _losses.core(data["loss"]), data["loss"], data["l2"], data["optimizer"]
    P, G, T, slots = ws["P"], ws["G"], ws["T"], ws["slots"]
    out = (P, slots, T)  # the rule updates params and slots in place
    total, counted, correct, first = 0.0, 0, 0, None
    # divergence is reported below, by value; image layers run their sample parts on threads
    with np.errstate(over="ignore", invalid="ignore"), _parallel.workers(_network.uses_parts(spec)):
        for b in range(n_batches):
            if full:  # the data as they are; forward never writes into its input
                xb = X if X.dtype == ws["xb"].dtype else gather(X, None, ws["xb"])
                yb, wb = y, w
            else:
                idx = perm[b * bs:(b + 1) * bs]
                wb = None if w is None else gather(w, idx, ws["wb"])
                if wb is not None and not np.add.reduce(wb, axis=None, dtype=np.float64) > 0:
                    continue  # all-zero weights: skipped (module docstring, point 3)
                xb = gather(X, idx, ws["xb"])
                yb = gather(y, idx, ws["yb"])
            value, _, output, caches = _network.objective(
                spec, ws["lparams"], ws["p"], xb, yb, core, l2, wb, True, rng, grads_out=ws["lgrads"],
                l2_scratch=ws["t"], grad_buffer=ws["gb"][:xb.shape[0]])
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged at epoch {epoch} (batch {b + 1} of {n_batches}): "
                                         f"the loss is {value}; try a smaller learning rate")
            if data["classification"]:
                correct += _metrics.correct(loss, output, yb)
            factor = _optimizers.clip_factor(ws["g"], optimizer.get("clip_norm"))
            if factor != 1.0:
                G *= factor  # update()'s g * factor, on the flat buffer (its padding stays 0)
            _optimizers.apply_rule(optimizer, ws["step"], P, G, slots, out)
            if ws["stateful"]:
                for k, v in _network.new_state(spec, ws["lparams"], caches).items():
                    ws["p"][k][...] = v  # running state: set after the step, as update() then cache["state"]
            ws["step"] += 1
            total += value
            counted += 1
            first = value if first is None else first
    if counted == 0:
        raise ValueError("every minibatch of this epoch has all-zero sample weights")
    bad = [k for k in ws["keys"] if not np.isfinite(ws["p"][k]).all()]
    if bad:
        raise FloatingPointError(f"training diverged at epoch {epoch}: params {bad} are no longer finite; "
                                 "try a smaller learning rate")
    history.setdefault("loss", []).append(total / counted)
    if data["classification"]:
        history.setdefault("accuracy", []).append(correct / y.size)  # per position for sequences
    return first


def evaluate(spec: Spec, params: Params, X: Any, y: Any, *, loss: str,
             sample_weight: Any = None) -> Dict[str, float]:
    """Scores on (X, y): ``loss`` and ``accuracy`` for classification; ``loss``, ``mse``, ``r2`` for regression.

    ``loss`` is the data's loss (no L2 term); the network runs in inference mode, in chunks of rows.

    Args:
        spec: the layer specs.
        params: the params dict.
        X: inputs (any dtype; converted chunk by chunk).
        y: targets.
        loss: the loss name.
        sample_weight: optional weights ``(n,)``.

    Returns:
        A dict of floats, as :func:`funcnn.metrics.scores`.
    """
    _losses.get(loss)
    X, n_out, dtype = _network.checked_input(spec, params, X, convert=False)
    _losses.check_outputs(loss, n_out)
    y = _losses.check_targets(loss, y, X.shape[0], n_out, dtype, out_shape=_network.output_shape(spec, X.shape[1:]))
    w = check_sample_weight(sample_weight, X.shape[0], dtype, shape=_losses.weight_shape(loss, y))
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite output is reported by check_output
        output = _network.infer(spec, params, X)
    output = _network.check_output(spec, params, output)
    return _metrics.scores(loss, output, y, w)
