"""Losses: ``fn(output, y, sample_weight=None) -> (value, grad_output)``.

``value`` is a Python float; ``grad_output`` is d value / d output with the shape and
dtype of ``output``. "Mean over samples" is ``sum(w * l) / sum(w)`` with sample
weights ``w`` (all ones by default). Every loss is stable for any finite logits.

Classification: ``softmax_cross_entropy`` (option ``label_smoothing``), ``binary_cross_entropy``.
Regression (mean over samples *and* outputs): ``mean_squared_error``, ``mean_absolute_error``,
``huber`` (option ``delta``, default 1.0). A loss with options is written
``{"name": "huber", "delta": 0.5}`` wherever a loss name is accepted (see :data:`OPTIONS`).

Registries, in the manner of scikit-learn's ``neural_network/_base.py``:

* :data:`LOSSES` — name → loss function;
* :data:`PROBA` — name → ``output -> probabilities`` (absent for regression);
* :data:`DECISION` — name → ``output -> predictions`` (labels, or the outputs).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .validation import check_labels, check_number, check_sample_weight
from .layers import stable_sigmoid, stable_softmax

LossResult = Tuple[float, np.ndarray]


def _check_output(output: Any, name: str) -> np.ndarray:
    if not isinstance(output, np.ndarray) or output.dtype.kind != "f":
        raise TypeError(f"{name}: output must be a float ndarray, got {type(output).__name__}"
                        + (f" of dtype {output.dtype}" if isinstance(output, np.ndarray) else ""))
    if name == "softmax_cross_entropy" and output.ndim == 3 and output.shape[0] and output.shape[1]:
        return output  # sequences: (n, T, k) logits, one distribution per position
    if output.ndim != 2 or output.shape[0] == 0:
        raise ValueError(f"{name}: output must be 2-D (n_samples, n_outputs) and non-empty, got shape {output.shape}"
                         + ("" if name != "softmax_cross_entropy" else " (or (n, T, k) for sequences)"))
    return output


def _labels_softmax(y: Any, n: int, k: int, dtype: np.dtype) -> np.ndarray:
    return check_labels(y, n, k)


def _labels_binary(y: Any, n: int, k: int, dtype: np.dtype) -> np.ndarray:
    return check_labels(y, n, 2, context="(binary_cross_entropy takes 0/1 labels)")


def _regression_targets(y: Any, n: int, k: int, dtype: np.dtype, name: str = "mean_squared_error") -> np.ndarray:
    target = np.asarray(y)
    if target.dtype == object or not (np.issubdtype(target.dtype, np.number) or target.dtype == bool):
        raise TypeError(f"{name}: y must hold numbers, got dtype {target.dtype}")
    if target.ndim == 1 and k == 1:
        target = target[:, None]
    if target.shape != (n, k):
        raise ValueError(f"{name}: y must have shape {(n, k)} to match the output"
                         + (" (or (n,) for one output)" if k == 1 else "") + f", got {np.shape(y)}")
    target = target.astype(dtype, copy=False)
    if not np.isfinite(target).all():
        raise ValueError(f"{name}: y contains NaN or inf")
    return target


def _public(name: str, output: Any, y: Any, sample_weight: Any, options: Dict[str, Any]) -> LossResult:
    """What every public loss does: check the output, the targets and the weights, then run the core."""
    output = _check_output(output, name)
    n, k = output.shape[0], output.shape[-1]
    check_outputs(name, k)
    if output.ndim == 3:
        target = sequence_labels(y, output.shape[:2], k)
    else:
        target = TARGETS[name](y, n, k, output.dtype)
    w = check_sample_weight(sample_weight, n, output.dtype, shape=weight_shape(name, target))
    return CORES[name](output, target, w, **options)


def sequence_labels(y: Any, shape: Tuple[int, int], k: int, name: str = "y") -> np.ndarray:
    """Integer labels of shape ``(n, T)`` in ``0..k-1`` for sequence outputs (n, T, k), as intp;
    an id out of range is named by sample and position."""
    arr = np.asarray(y)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (one label per sample and position) to match "
                         f"outputs of shape {tuple(shape) + (k,)}, got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            bad = np.argwhere(~np.isfinite(arr) | (arr != np.round(arr)))[0]
            raise ValueError(f"{name} must hold whole-number labels, got {arr[tuple(bad)].item()!r} at sample "
                             f"{int(bad[0])}, position {int(bad[1])}")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        bad = np.argwhere((arr < 0) | (arr >= k))[0]
        raise ValueError(f"{name} at sample {int(bad[0])}, position {int(bad[1])} is {arr[tuple(bad)].item()!r}: "
                         f"labels must be in 0..{k - 1} for a network with {k} outputs")
    return arr.astype(np.intp, copy=False)


def weight_shape(loss: Any, target: np.ndarray) -> Optional[Tuple[int, ...]]:
    """The shape ``sample_weight`` takes with these checked targets: ``(n, T)`` (one weight per
    position, 0 drops a padding position) for sequence labels, else None (the default ``(n,)``)."""
    if resolve(loss)[0] == "softmax_cross_entropy" and target.ndim == 2:
        return target.shape
    return None


def softmax_cross_entropy(output: np.ndarray, y: Any, sample_weight: Any = None, *,
                          label_smoothing: float = 0.0) -> LossResult:
    """Mean of ``-log softmax(output)[i, y_i]``; output (n, k) logits, y (n,) ints in 0..k-1.

    ``label_smoothing`` ε (torch's ``cross_entropy(label_smoothing=ε)``): the target is
    ``(1 - ε) onehot(y) + ε / k``, i.e. the loss is ``(1 - ε) (-log p_y) + ε mean_j (-log p_j)``.

    Args:
        output: the network's output: logits ``(n, k)``.
        y: the targets: integer labels ``0..k-1``.
        sample_weight: optional weights ``(n,)``: the mean is ``Σ w·l / Σ w``.
        label_smoothing: ε in [0, 1].

    Returns:
        ``(value, grad_output)``: the loss as a float and ∂value/∂output, ``output``'s shape and dtype.

    Examples:
        >>> import numpy as np
        >>> value, grad = softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
        >>> round(value, 4), grad.tolist()
        (0.6931, [[0.5, -0.5]])
    """
    return _public("softmax_cross_entropy", output, y, sample_weight,
                   {"label_smoothing": _check_smoothing(label_smoothing)})


def binary_cross_entropy(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean log loss of ``sigmoid(output)``; output (n, 1) logits, y (n,) or (n, 1) in {0, 1}.

    Args:
        output: the network's output: logits ``(n, 1)``.
        y: the targets: 0/1, ``(n,)`` or ``(n, 1)``.
        sample_weight: optional weights ``(n,)``: the mean is ``Σ w·l / Σ w``.

    Returns:
        ``(value, grad_output)``: the loss as a float and ∂value/∂output, ``output``'s shape and dtype.

    Examples:
        >>> import numpy as np
        >>> value, grad = binary_cross_entropy(np.array([[0.0], [0.0]]), np.array([0, 1]))
        >>> round(value, 4), grad.ravel().tolist()
        (0.6931, [0.25, -0.25])
    """
    return _public("binary_cross_entropy", output, y, sample_weight, {})


def mean_squared_error(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean over samples and outputs of ``(output - y)**2``; y (n, k), or (n,) when k == 1.

    Args:
        output: the network's output ``(n, k)``.
        y: the targets ``(n, k)``, or ``(n,)`` when k = 1.
        sample_weight: optional weights ``(n,)``: the mean is ``Σ w·l / Σ w``.

    Returns:
        ``(value, grad_output)``: the loss as a float and ∂value/∂output, ``output``'s shape and dtype.

    Examples:
        >>> import numpy as np
        >>> value, grad = mean_squared_error(np.array([[1.0], [3.0]]), np.array([0.0, 3.0]))
        >>> value, grad.ravel().tolist()
        (0.5, [1.0, 0.0])
    """
    return _public("mean_squared_error", output, y, sample_weight, {})


def mean_absolute_error(output: np.ndarray, y: Any, sample_weight: Any = None) -> LossResult:
    """Mean over samples and outputs of ``|output - y|`` (torch.nn.L1Loss; gradient sign(output - y), 0 at 0).

    Args:
        output: the network's output ``(n, k)``.
        y: the targets ``(n, k)``, or ``(n,)`` when k = 1.
        sample_weight: optional weights ``(n,)``: the mean is ``Σ w·l / Σ w``.

    Returns:
        ``(value, grad_output)``: the loss as a float and ∂value/∂output, ``output``'s shape and dtype.
    """
    return _public("mean_absolute_error", output, y, sample_weight, {})


def huber(output: np.ndarray, y: Any, sample_weight: Any = None, *, delta: float = 1.0) -> LossResult:
    """Mean over samples and outputs of the Huber loss of ``d = output - y`` (torch.nn.HuberLoss):
    ``d**2 / 2`` where ``|d| < delta``, else ``delta * (|d| - delta / 2)``.

    Args:
        output: the network's output ``(n, k)``.
        y: the targets ``(n, k)``, or ``(n,)`` when k = 1.
        sample_weight: optional weights ``(n,)``: the mean is ``Σ w·l / Σ w``.
        delta: where the loss turns from quadratic to linear (> 0).

    Returns:
        ``(value, grad_output)``: the loss as a float and ∂value/∂output, ``output``'s shape and dtype.
    """
    return _public("huber", output, y, sample_weight, {"delta": _check_delta(delta)})


# --- the cores ---------------------------------------------------------------------------
#
# ``core(output, target, w, out=None) -> (value, grad)`` with ``output`` a float (n, k) array,
# ``target`` as :func:`check_targets` returns it (intp labels for the cross-entropies, an
# (n, k) array of output's dtype for the squared error) and ``w`` None or checked weights of
# output's dtype. ``out`` receives the gradient (an (n, k) buffer of output's dtype, never
# ``output`` itself); None allocates it. The public functions above validate and call these;
# ``funcnn.train`` validates its data once and calls them on every minibatch: one arithmetic.

def _weights(w: Optional[np.ndarray], n: int) -> Tuple[float, Optional[np.ndarray]]:
    """``(total, w / total)``: the divisor of "mean over samples" (n, or sum(w) in float64)."""
    if w is None:
        return float(n), None
    total = float(np.add.reduce(w, dtype=np.float64))
    if not total > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    # w / total in float64 (total may exceed float32's range), rounded back to w's dtype.
    return total, np.divide(w, total, dtype=np.float64).astype(w.dtype, copy=False)


def _reduce(per_sample: np.ndarray, wn: Optional[np.ndarray], total: float) -> float:
    if wn is None:
        return float(np.add.reduce(per_sample, dtype=np.float64) / total)
    return float(np.add.reduce(per_sample * wn, dtype=np.float64))


def _scale_rows(grad: np.ndarray, wn: Optional[np.ndarray], total: float, factor: float = 1.0) -> None:
    if wn is None:
        grad *= factor / total
    else:
        grad *= (wn * factor)[:, None] if factor != 1.0 else wn[:, None]


def _softmax_cross_entropy(output: np.ndarray, labels: np.ndarray, w: Optional[np.ndarray],
                           out: Optional[np.ndarray] = None, label_smoothing: float = 0.0) -> LossResult:
    if output.ndim == 3:
        # sequences: the mean over all n*T positions, i.e. the loss of the flattened positions
        # (torch's cross_entropy on (n*T, k)); weights (n, T) weight positions
        value, grad = _softmax_cross_entropy(
            output.reshape(-1, output.shape[-1]), labels.reshape(-1), None if w is None else w.reshape(-1),
            None if out is None else out.reshape(-1, out.shape[-1]), label_smoothing)
        return value, grad.reshape(output.shape)
    n, k = output.shape
    total, wn = _weights(w, n)
    flat = np.arange(0, n * k, k)  # index of (i, labels[i]) in the flattened (n, k) array
    flat += labels
    if out is None:
        out = np.empty((n, k), dtype=output.dtype)  # C order: flat indexing below relies on it
    z = np.subtract(output, np.maximum.reduce(output, axis=1, keepdims=True), out=out)
    zf = z.reshape(-1)  # a view: z is C-contiguous
    picked = zf[flat]
    eps = float(label_smoothing)
    if eps:
        # target (1 - eps) onehot + eps / k: -sum_j t_j log p_j = lse - (1 - eps) z_y - eps mean_j z_j
        picked *= 1.0 - eps
        picked += np.add.reduce(z, axis=1) * (eps / k)
    # -log softmax[y] = log(sum exp(z)) - z[y]; z <= 0 so exp never overflows, and the sum
    # is >= 1 so the log is finite. One exp serves both the value and the gradient.
    np.exp(z, out=z)
    sum_exp = np.add.reduce(z, axis=1)
    per_sample = np.log(sum_exp)
    per_sample -= picked
    value = _reduce(per_sample, wn, total)
    z /= sum_exp[:, None]
    if eps:
        z -= eps / k
        zf[flat] -= 1.0 - eps
    else:
        zf[flat] -= 1
    _scale_rows(z, wn, total)
    return value, z


def _binary_cross_entropy(output: np.ndarray, labels: np.ndarray, w: Optional[np.ndarray],
                          out: Optional[np.ndarray] = None) -> LossResult:
    total, wn = _weights(w, output.shape[0])
    z = output[:, 0]
    t = labels.astype(output.dtype)
    # log(1 + exp(z)) - t z, written as max(z, 0) - t z + log1p(exp(-|z|)): never overflows.
    per_sample = np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z)))
    value = _reduce(per_sample, wn, total)
    grad = stable_sigmoid(output, out=out)
    grad[:, 0] -= t
    _scale_rows(grad, wn, total)
    return value, grad


def _mean_squared_error(output: np.ndarray, target: np.ndarray, w: Optional[np.ndarray],
                        out: Optional[np.ndarray] = None) -> LossResult:
    n, k = output.shape
    total, wn = _weights(w, n)
    diff = np.subtract(output, target, out=out)
    per_sample = np.add.reduce(diff * diff, axis=1) / k
    value = _reduce(per_sample, wn, total)
    _scale_rows(diff, wn, total, 2.0 / k)
    return value, diff


def _mean_absolute_error(output: np.ndarray, target: np.ndarray, w: Optional[np.ndarray],
                         out: Optional[np.ndarray] = None) -> LossResult:
    n, k = output.shape
    total, wn = _weights(w, n)
    diff = np.subtract(output, target, out=out)
    per_sample = np.add.reduce(np.abs(diff), axis=1) / k
    value = _reduce(per_sample, wn, total)
    np.sign(diff, out=diff)
    _scale_rows(diff, wn, total, 1.0 / k)
    return value, diff


def _huber(output: np.ndarray, target: np.ndarray, w: Optional[np.ndarray], out: Optional[np.ndarray] = None,
           delta: float = 1.0) -> LossResult:
    n, k = output.shape
    total, wn = _weights(w, n)
    delta = float(delta)
    diff = np.subtract(output, target, out=out)
    a = np.abs(diff)
    q = np.minimum(a, delta)
    # q (|d| - q / 2) with q = min(|d|, delta): d**2 / 2 inside, delta (|d| - delta / 2) outside
    q *= -0.5
    a += q
    q *= -2.0
    a *= q
    per_sample = np.add.reduce(a, axis=1) / k
    value = _reduce(per_sample, wn, total)
    np.clip(diff, -delta, delta, out=diff)  # d inside, ±delta outside
    _scale_rows(diff, wn, total, 1.0 / k)
    return value, diff


def _check_delta(value: Any, where: str = "huber: delta") -> float:
    return float(check_number(value, where, low=0.0, low_open=True))


def _check_smoothing(value: Any, where: str = "softmax_cross_entropy: label_smoothing") -> float:
    return float(check_number(value, where, low=0.0, high=1.0))


def _binary_proba(output: np.ndarray) -> np.ndarray:
    p1 = stable_sigmoid(output[:, 0])
    return np.stack([1 - p1, p1], axis=1)


LOSSES: Dict[str, Callable[..., LossResult]] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
}

# name → its core (see above), for callers that validated their targets once with check_targets.
CORES: Dict[str, Callable[..., LossResult]] = {
    "softmax_cross_entropy": _softmax_cross_entropy,
    "binary_cross_entropy": _binary_cross_entropy,
    "mean_squared_error": _mean_squared_error,
    "mean_absolute_error": _mean_absolute_error,
    "huber": _huber,
}

# name → ``targets(y, n, n_outputs, dtype) -> checked target`` (what the core takes): intp labels
# for the cross-entropies, an (n, k) array of the output's dtype for regression losses.
TARGETS: Dict[str, Callable[..., np.ndarray]] = {
    "softmax_cross_entropy": _labels_softmax,
    "binary_cross_entropy": _labels_binary,
    "mean_squared_error": _regression_targets,
    "mean_absolute_error": functools.partial(_regression_targets, name="mean_absolute_error"),
    "huber": functools.partial(_regression_targets, name="huber"),
}

PROBA: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax_cross_entropy": stable_softmax,
    "binary_cross_entropy": _binary_proba,
}

DECISION: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax_cross_entropy": lambda out: out.argmax(axis=-1),  # (n,) labels, (n, T) for sequences
    # sigmoid(z) > 0.5 exactly when z > 0, as scikit-learn's MLPClassifier decides.
    "binary_cross_entropy": lambda out: (out[:, 0] > 0).astype(np.intp),
    "mean_squared_error": lambda out: out,
    "mean_absolute_error": lambda out: out,
    "huber": lambda out: out,
}


# name → {option: (default, check(value, where) -> value)}: the keyword options a loss takes.
# ``loss=`` arguments take a name, or a dict ``{"name": ..., **options}`` (JSON, like a layer spec).
OPTIONS: Dict[str, Dict[str, Tuple[Any, Callable[[Any, str], Any]]]] = {
    "softmax_cross_entropy": {"label_smoothing": (0.0, _check_smoothing)},
    "binary_cross_entropy": {},
    "mean_squared_error": {},
    "mean_absolute_error": {},
    "huber": {"delta": (1.0, _check_delta)},
}


def resolve(loss: Any) -> Tuple[str, Dict[str, Any]]:
    """``(name, options)`` of a loss given as a name or as ``{"name": ..., **options}``; checked."""
    if type(loss) is str and loss in LOSSES:  # the common case, once per minibatch in train
        return loss, {}
    if isinstance(loss, dict):
        name = loss.get("name")
        options = {k: v for k, v in loss.items() if k != "name"}
    else:
        name, options = loss, {}
    if not isinstance(name, str):
        raise TypeError(f"loss must be a loss name (str) or a dict {{'name': ..., **options}}, got {loss!r}; "
                        f"known: {sorted(LOSSES)}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    allowed = OPTIONS[name]
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"loss {name!r}: unknown option(s) {unknown}; allowed: {sorted(allowed) or 'none'}")
    return name, {k: allowed[k][1](v, f"loss {name!r}: {k}") for k, v in options.items()}


def get(loss: Any) -> Callable[..., LossResult]:
    """The loss function named by ``loss`` (a name or a dict with options), options bound."""
    name, options = resolve(loss)
    return functools.partial(LOSSES[name], **options) if options else LOSSES[name]


def core(loss: Any) -> Callable[..., LossResult]:
    """The core of ``loss`` (an entry of :data:`CORES`), options bound: ``core(output, target, w, out=None)``."""
    name, options = resolve(loss)
    return functools.partial(CORES[name], **options) if options else CORES[name]


def decision(loss: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``output -> predictions`` (labels, or the outputs) for ``loss``."""
    return DECISION[resolve(loss)[0]]


def proba(loss: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``output -> probabilities`` for a classification ``loss`` (ValueError for a regression loss)."""
    name = resolve(loss)[0]
    if name not in PROBA:
        raise ValueError(f"predict_proba needs a classification loss; {name!r} is a regression loss, use predict")
    return PROBA[name]


def check_outputs(loss: Any, n_outputs: Optional[int]) -> None:
    """ValueError unless a network with ``n_outputs`` outputs suits ``loss`` (None: not known yet)."""
    loss = resolve(loss)[0]
    if n_outputs is None:
        return
    if loss == "binary_cross_entropy" and n_outputs != 1:
        raise ValueError(f"binary_cross_entropy needs a network with 1 output (a logit), this one has {n_outputs}; "
                         "use softmax_cross_entropy for several classes")
    if loss == "softmax_cross_entropy" and n_outputs < 2:
        raise ValueError("softmax_cross_entropy needs a network with at least 2 outputs (one per class), this "
                         "one has 1: its loss would be 0 whatever the data; use binary_cross_entropy for 2 "
                         "classes with one output")


def is_classification(loss: Any) -> bool:
    """True for the losses whose predictions are class labels."""
    return resolve(loss)[0] in PROBA


def chance_level(loss: Any, n_outputs: int) -> Optional[float]:
    """The loss of an uninformed classifier (uniform probabilities): ``log k`` for softmax
    cross-entropy over k classes, ``log 2`` for binary cross-entropy; None for regression losses,
    whose scale depends on the targets."""
    name = resolve(loss)[0]
    if name == "softmax_cross_entropy":
        return math.log(n_outputs)
    if name == "binary_cross_entropy":
        return math.log(2.0)
    return None


def check_targets(loss: Any, y: Any, n: int, n_out: int, dtype: np.dtype, name: str = "y",
                  out_shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """Targets checked once for ``loss``: intp labels (n,) or an (n, n_out) array of ``dtype``.

    Callers that validate their data once (``train``, ``evaluate``, ``sweep``) pass the result
    to the loss cores in :data:`CORES` on every minibatch. Nothing of the size of an output
    matrix is allocated (a huge data set's labels are checked in place).
    """
    loss_name = resolve(loss)[0]
    if not hasattr(y, "__len__"):
        raise TypeError(f"{name} must be array-like, got {type(y).__name__}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} rows but X has {n} samples")
    check_outputs(loss_name, n_out)
    if out_shape is not None and len(out_shape) > 1:  # one sample's output is (T, k): sequences
        if loss_name != "softmax_cross_entropy" or len(out_shape) != 2:
            raise ValueError(f"{loss_name} takes outputs (n_samples, n_outputs), this network's are "
                             f"(n_samples, {', '.join(map(str, out_shape))}); softmax_cross_entropy takes "
                             "sequence outputs (n, T, k), or flatten/pool the network's output first")
        return sequence_labels(y, (n, int(out_shape[0])), int(out_shape[1]), name)
    try:
        return TARGETS[loss_name](y, n, n_out, dtype)
    except (ValueError, TypeError) as exc:
        raise type(exc)(str(exc).replace("y", name, 1) if name != "y" else str(exc)) from None
