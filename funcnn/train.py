"""The training loop: ``train`` composes forward, loss, backward and an optimizer update.

``train`` is a pure function of its arguments: it never modifies ``params``, ``X`` or
``y``; with an int ``seed`` the same call gives the same params and history bit for bit.
The data are validated once, up front; the loop then calls the trusting private
functions of :mod:`funcnn.network`.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import losses as _losses
from . import metrics
from . import optimizers as _optimizers
from .validation import SeedLike, as_rng, check_number, check_sample_weight, check_X
from .layers import check_spec
from .network import (Params, Spec, _backward_plan, _checked_X, _forward, _forward_plan, _l2_value, _layer_params,
                      _run_backward, _run_forward, check_params)

History = Dict[str, List[float]]
Callback = Callable[[int, Params, History], Any]

MONITOR_MODES = {"loss": "min", "val_loss": "min", "accuracy": "max", "val_accuracy": "max"}


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
    check_number(es["patience"], "early_stopping['patience']", low=1, integer=True)
    check_number(es["min_delta"], "early_stopping['min_delta']", low=0.0)
    if not isinstance(es["restore_best"], bool):
        raise TypeError(f"early_stopping['restore_best'] must be True or False, got {es['restore_best']!r}")
    return es


def _improved(es: Dict[str, Any], value: float, best: Optional[float]) -> bool:
    if best is None:
        return True
    if MONITOR_MODES[es["monitor"]] == "min":
        return value < best - es["min_delta"]
    return value > best + es["min_delta"]


def _rng_from_state(state: Dict[str, Any]) -> np.random.Generator:
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


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


def train(spec: Spec, params: Params, X: Any, y: Any, *, loss: str, optimizer: Dict[str, Any], epochs: int,
          batch_size: Optional[int] = None, l2: float = 0.0,
          validation_data: Optional[Tuple[Any, Any]] = None, seed: SeedLike = 0,
          sample_weight: Any = None, early_stopping: Any = None,
          callbacks: Optional[Sequence[Callback]] = None, progress: bool = True,
          checkpoint: Optional[str] = None,
          checkpoint_metadata: Optional[Dict[str, Any]] = None) -> Tuple[Params, History]:
    """Minimise ``loss + l2/2 sum ||W||^2`` over (X, y) with ``optimizer`` for ``epochs`` epochs.

    Minibatches are drawn from a fresh permutation every epoch (from ``seed``); the last,
    partial batch is used. ``batch_size=None`` is full-batch gradient descent (no shuffle).
    ``early_stopping`` — an int patience or a dict with ``monitor`` ("val_loss" by default
    when there is validation data, else "loss"), ``patience`` (10), ``min_delta`` (0) and
    ``restore_best`` (True). ``callbacks`` are called as ``cb(epoch, params, history)``
    after each epoch (epoch counts from 1); a callback returning ``True`` stops training.
    ``checkpoint`` — a path where the whole training state is saved after every epoch;
    if it already holds a checkpoint of this run, training resumes from it (the
    ``params`` argument is then ignored; ``epochs`` is the total).
    ``checkpoint_metadata`` — extra metadata stored in the checkpoint (e.g. a scaler),
    so the checkpoint is a complete model file for ``load`` and ``funcnn predict``.

    Returns ``(params, history)``; history holds per-epoch lists ``loss`` (mean over the
    epoch's minibatches of the objective, L2 included), ``accuracy`` (classification: the
    fraction of training samples the minibatch outputs classified correctly during the
    epoch) and, with validation data, ``val_loss`` and ``val_accuracy`` at the epoch's end.
    """
    loss_fn = _losses.get(loss)
    check_spec(spec)
    n_in, n_out, dtype = check_params(spec, params)
    optimizer = _optimizers.validate(optimizer)
    epochs = check_number(epochs, "epochs", low=0, integer=True)
    if batch_size is not None:
        batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
    l2 = float(check_number(l2, "l2", low=0.0))
    X = _checked_X(X, dtype, n_in)
    n = X.shape[0]
    y = _losses.check_targets(loss, y, n, n_out, dtype)
    w = check_sample_weight(sample_weight, n, dtype)
    classification = _losses.is_classification(loss)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        X_val = _checked_X(validation_data[0], dtype, n_in, name="validation_data X")
        y_val = _losses.check_targets(loss, validation_data[1], X_val.shape[0], n_out, dtype, name="validation_data y")
    es = _check_early_stopping(early_stopping, validation_data is not None)
    callbacks = list(callbacks or [])
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be a function (epoch, params, history), got {type(cb).__name__}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")

    rng = as_rng(seed)
    history: History = {"loss": []}
    if classification:
        history["accuracy"] = []
    if validation_data is not None:
        history["val_loss"] = []
        if classification:
            history["val_accuracy"] = []
    state = _optimizers.init_state(optimizer, params)
    run = {"epoch": 0, "best_value": None, "best_params": None, "wait": 0, "stopped": False}
    config = {"loss": loss, "optimizer": optimizer, "batch_size": batch_size, "l2": l2,
              "n_samples": n, "n_features": n_in, "dtype": str(dtype)}
    if checkpoint_metadata is not None and checkpoint is None:
        raise ValueError("checkpoint_metadata needs checkpoint=PATH")
    if checkpoint_metadata is not None and not isinstance(checkpoint_metadata, dict):
        raise TypeError(f"checkpoint_metadata must be a dict, got {type(checkpoint_metadata).__name__}")
    if checkpoint is not None:
        if callable(optimizer["lr"]):
            raise TypeError("checkpoint needs a learning rate that can be saved: a number or a "
                            "funcnn.schedules dict, not a function")
        resumed = _load_training_state(checkpoint, spec, config)
        if resumed is not None:
            params, state, history, run = (resumed["params"], resumed["opt_state"], resumed["history"],
                                           resumed["run"])
            rng = _rng_from_state(resumed["rng_state"])

    bar = _progress(epochs, min(run["epoch"], epochs), progress)
    fast_loss = _losses.CORES[loss]  # the targets were checked above, once
    ws = None  # the hot loop's buffers, made when the first epoch starts
    try:
        while run["epoch"] < epochs and not run["stopped"]:
            epoch = run["epoch"] + 1
            if ws is None:
                ws = _workspace(spec, params, state, optimizer, n_in, n_out, y, w, batch_size, n)
            # ``params`` is a fresh dict of fresh arrays every epoch: what callbacks, early
            # stopping and the caller get is never touched again by this loop.
            params, epoch_loss, correct = _run_epoch(spec, ws, optimizer, X, y, w, fast_loss, l2, batch_size,
                                                     rng, classification, epoch)
            history["loss"].append(epoch_loss)
            if classification:
                history["accuracy"].append(correct / n)
            if validation_data is not None:
                out_val = _forward(spec, params, X_val, False, None)[0]
                history["val_loss"].append(fast_loss(out_val, y_val, None)[0]
                                           + (_l2_value(params, l2) if l2 else 0.0))
                if classification:
                    pred = _losses.DECISION[loss](out_val)
                    history["val_accuracy"].append(float(np.mean(pred == y_val)))
            run["epoch"] = epoch
            if es is not None:
                value = history[es["monitor"]][-1]
                if _improved(es, value, run["best_value"]):
                    run.update(best_value=value, best_params=params, best_epoch=epoch, wait=0)
                else:
                    run["wait"] += 1
                    run["stopped"] = run["wait"] >= es["patience"]
            for cb in callbacks:
                if cb(epoch, params, history) is True:
                    run["stopped"] = True
            if checkpoint is not None:
                _save_training_state(checkpoint, spec, params, config, _export_state(ws), rng, history, run,
                                     checkpoint_metadata or {})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items()})
            elif progress:
                print(_log_line(epoch, epochs, history), file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    if es is not None and es["restore_best"] and run["best_params"] is not None:
        params = run["best_params"]
    return params, history


def _save_training_state(path, spec, params, config, opt_state, rng, history, run, metadata) -> None:
    from .checkpoint import save
    save(path, spec, params, **metadata, loss=config["loss"],
         training_state={"config": config, "opt_state": opt_state, "rng_state": rng.bit_generator.state,
                         "history": history, "run": run})


def _load_training_state(path, spec, config) -> Optional[Dict[str, Any]]:
    """The saved state of this run at ``path``, None if there is no file; refuse a different run."""
    import json
    from .checkpoint import load
    if not os.path.exists(path):
        return None
    saved = load(path)
    ts = saved.get("training_state")
    if not isinstance(ts, dict):
        raise ValueError(f"{path}: holds a model without training state; refusing to overwrite it "
                         "(choose another checkpoint path)")
    if saved["spec"] != json.loads(json.dumps(spec)):
        raise ValueError(f"{path}: holds a checkpoint of a different spec ({saved['spec']}); refusing to "
                         "resume or overwrite it (delete it or choose another path)")
    wanted = json.loads(json.dumps(config))
    diffs = [k for k in wanted if ts["config"].get(k) != wanted[k]]
    if diffs:
        details = "; ".join(f"{k}: saved {ts['config'].get(k)!r}, now {wanted[k]!r}" for k in diffs)
        raise ValueError(f"{path}: holds a checkpoint of a different run ({details}); refusing to resume "
                         "or overwrite it (delete it or choose another path)")
    return {"params": saved["params"], "opt_state": ts["opt_state"], "rng_state": ts["rng_state"],
            "history": ts["history"], "run": ts["run"]}


# --------------------------------------------------------------------------- the hot loop
#
# ``train`` validates everything once; the epoch loop then works on buffers it allocated
# itself (a "workspace", a plain dict), so the only arrays allocated per minibatch are the
# layers' activations and caches:
#
# * params, grads, the optimizer's slots and one scratch array are each a single flat,
#   contiguous buffer; every parameter array is a view into it. Backward writes the
#   gradients straight into the grads buffer, and the optimizer step is one in-place call
#   on the flat arrays (``optimizers._update_inplace``: ``update``'s arithmetic; for adam
#   up to rounding, with scaled slots between the epoch boundaries).
# * each minibatch is gathered from the epoch's permutation into one reused batch buffer:
#   the data set is never copied, and the batch is still in cache when the first layer
#   multiplies it.
# * at the end of each epoch the params are copied out into fresh arrays; those copies are
#   what the rest of ``train`` (history, callbacks, early stopping, checkpoints) sees.

_ALIGN = 64  # bytes: every parameter starts on its own cache line


def _aligned_zeros(size: int, dtype: np.dtype) -> np.ndarray:
    raw = np.zeros(size + _ALIGN // dtype.itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % _ALIGN) // dtype.itemsize
    return raw[skip:skip + size]


def _workspace(spec, params, state, optimizer, n_in, n_out, y, w, batch_size, n) -> Dict[str, Any]:
    """Flat buffers for params, grads, slots and scratch, filled from ``params`` and ``state``."""
    dtype = params[next(iter(params))].dtype
    keys = list(params)
    per_line = _ALIGN // dtype.itemsize
    offsets, size = [], 0
    for k in keys:
        offsets.append(size)
        size += -(-params[k].size // per_line) * per_line  # padded to whole cache lines; pads stay 0

    def views(flat):
        return {k: flat[o:o + params[k].size].reshape(params[k].shape) for k, o in zip(keys, offsets)}

    slot_names = _optimizers.OPTIMIZERS[optimizer["name"]]["slots"](optimizer)
    step = _optimizers._check_state(optimizer, params, state)  # what update() checked on every call
    ws: Dict[str, Any] = {"keys": keys, "step": step, "slot_names": slot_names}
    ws["P"], ws["G"], ws["T"] = (_aligned_zeros(size, dtype) for _ in range(3))
    ws["slots"] = tuple(_aligned_zeros(size, dtype) for _ in slot_names)
    ws["p"], ws["g"], ws["t"] = views(ws["P"]), views(ws["G"]), views(ws["T"])
    ws["s"] = tuple(views(flat) for flat in ws["slots"])
    for k in keys:
        ws["p"][k][...] = params[k]
        for name, v in zip(slot_names, ws["s"]):
            v[k][...] = state[name][k]
    layer_params = _layer_params(spec, ws["p"])
    ws["forward"] = _forward_plan(spec, layer_params)
    ws["backward"] = _backward_plan(spec, layer_params, _layer_params(spec, ws["g"]))
    ws["l2_keys"] = [k for k in keys if k.startswith("W_")]
    if batch_size is not None and batch_size < n:
        ws["xb"] = np.empty((batch_size, n_in), dtype=dtype)
        ws["yb"] = np.empty((batch_size,) + y.shape[1:], dtype=y.dtype)
        ws["wb"] = None if w is None else np.empty(batch_size, dtype=w.dtype)
    return ws


def _export_params(ws) -> Params:
    """The current params as a new dict of new arrays."""
    return {k: ws["p"][k].copy() for k in ws["keys"]}


def _export_state(ws) -> Dict[str, Any]:
    """The optimizer state, as :func:`funcnn.optimizers.update` would have returned it (fresh arrays)."""
    return {"step": ws["step"], **{name: {k: v[k].copy() for k in ws["keys"]}
                                   for name, v in zip(ws["slot_names"], ws["s"])}}


def _run_epoch(spec, ws, optimizer, X, y, w, loss_fn, l2, batch_size, rng, classification, epoch):
    """One pass over the data, updating ``ws``; returns (params copy, mean batch objective, n correct)."""
    n = X.shape[0]
    full = batch_size is None or batch_size >= n
    if not full:
        perm = rng.permutation(n)
    n_batches = 1 if full else -(-n // batch_size)
    forward, backward, p, g_views, t_views = ws["forward"], ws["backward"], ws["p"], ws["g"], ws["t"]
    P, G, T, slots = ws["P"], ws["G"], ws["T"], ws["slots"]
    xbuf, ybuf, wbuf = ws.get("xb"), ws.get("yb"), ws.get("wb")
    update, count_nonzero, take, isfinite = _optimizers._update_inplace, np.count_nonzero, np.take, math.isfinite
    total, correct = 0.0, 0
    _optimizers._slots_to_inplace(optimizer, slots)  # and back at the end: see optimizers._update_inplace
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, by value
        for b in range(n_batches):
            if full:
                xb, yb, wb = X, y, w
            else:
                idx = perm[b * batch_size:(b + 1) * batch_size]
                m = idx.shape[0]
                # mode="clip": the indices are valid, and "raise" would gather via a temporary
                xb = take(X, idx, axis=0, out=xbuf[:m], mode="clip")
                yb = take(y, idx, axis=0, out=ybuf[:m], mode="clip")
                wb = None if w is None else take(w, idx, out=wbuf[:m], mode="clip")
            output, caches = _run_forward(forward, xb, True, rng)
            value, grad_output = loss_fn(output, yb, wb)
            _run_backward(backward, caches, grad_output)
            if l2:
                value += _l2_value(p, l2)
                for k in ws["l2_keys"]:
                    np.multiply(p[k], l2, out=t_views[k])
                    g_views[k] += t_views[k]
            if not isfinite(value):
                raise FloatingPointError(f"training diverged at epoch {epoch} (batch {b + 1} of {n_batches}): "
                                         f"the loss is {value}; try a smaller learning rate")
            if classification:
                pred = output.argmax(axis=1) if output.shape[1] > 1 else (output[:, 0] > 0)
                correct += int(count_nonzero(pred == yb))
            update(optimizer, ws["step"], P, G, slots, T)
            ws["step"] += 1
            total += value
    _optimizers._slots_from_inplace(optimizer, slots)
    params = _export_params(ws)
    bad = [k for k, v in params.items() if not np.isfinite(v).all()]
    if bad:
        raise FloatingPointError(f"training diverged at epoch {epoch}: params {bad} are no longer finite; "
                                 "try a smaller learning rate")
    return params, total / n_batches, correct


def evaluate(spec: Spec, params: Params, X: Any, y: Any, *, loss: str,
             sample_weight: Any = None) -> Dict[str, float]:
    """Scores on (X, y): ``loss`` and ``accuracy`` for classification; ``loss``, ``mse``, ``r2`` for regression."""
    _losses.get(loss)
    check_spec(spec)
    n_in, n_out, dtype = check_params(spec, params)
    X = check_X(X, dtype, n_in)
    y = _losses.check_targets(loss, y, X.shape[0], n_out, dtype)
    w = check_sample_weight(sample_weight, X.shape[0], dtype)
    output = _forward(spec, params, X, False, None)[0]
    return metrics.scores(loss, output, y, w)
