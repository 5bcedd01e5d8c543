"""Plots written straight to image files; matplotlib is optional and imported only when called.

Each function builds a ``matplotlib.figure.Figure`` (not pyplot), so nothing is registered in
global state, no GUI backend is touched (works headless) and nothing is left open: the figure
is drawn by the Agg canvas, saved to ``path`` and dropped. A PNG is ``figsize * dpi`` pixels.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .validation import check_number, check_X

PathLike = Union[str, "os.PathLike[str]"]
_MISSING = "funcnn.plot needs matplotlib: pip install 'funcnn[plot]'"


def _new_figure(figsize: Tuple[float, float], dpi: float) -> Any:
    """A detached Figure on an Agg canvas; raises ImportError with the install hint without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    if len(figsize) != 2:
        raise ValueError(f"figsize must be (width, height) in inches, got {figsize!r}")
    for value, name in zip(figsize, ("figsize width", "figsize height")):
        check_number(value, name, low=0, low_open=True)
    check_number(dpi, "dpi", low=0, low_open=True)
    fig = Figure(figsize=tuple(float(v) for v in figsize), dpi=dpi)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _save(fig: Any, path: PathLike, dpi: float) -> PathLike:
    """Save at exactly figsize*dpi pixels (no tight bbox); the format follows the extension, PNG if none."""
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    fig.savefig(path, dpi=dpi, format=suffix or "png")
    fig.clear()  # release artists now rather than at garbage collection
    return path


def _series(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def learning_curves(history: Mapping[str, Sequence[float]], path: PathLike, *, title: Optional[str] = None,
                    figsize: Tuple[float, float] = (6, 4), dpi: float = 100) -> PathLike:
    """Loss (and, when recorded, accuracy) per epoch from a ``train`` history dict → image at ``path``.

    Args:
        history: ``train``'s history: per-epoch lists ``loss`` and, when recorded,
            ``val_loss``, ``accuracy``, ``val_accuracy``.
        path: the image file to write.
        title: an optional title above the panels.
        figsize: the figure's (width, height) in inches.
        dpi: pixels per inch: a PNG is ``figsize * dpi`` pixels.

    Returns:
        ``path``, once the image is written (the format follows its extension, PNG if none).

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
        >>> learning_curves({"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]}, path) == path
        True
    """
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a dict of per-epoch lists, got {type(history).__name__}")
    panels = [(kind, [k for k in (kind, f"val_{kind}") if k in history]) for kind in ("loss", "accuracy")]
    panels = [(kind, keys) for kind, keys in panels if keys]
    if not panels:
        raise ValueError(f"history has none of 'loss', 'val_loss', 'accuracy', 'val_accuracy'; "
                         f"got keys {sorted(history)}")
    series = {key: _series(history[key], f"history[{key!r}]") for _, keys in panels for key in keys}

    fig = _new_figure(figsize, dpi)
    from matplotlib.ticker import MaxNLocator
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, keys) in zip(axes, panels):
        for key in keys:
            epochs = np.arange(1, series[key].size + 1)
            ax.plot(epochs, series[key], marker="o" if epochs.size <= 30 else None, markersize=3,
                    label="validation" if key.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # no "epoch 1.5"; labels that fit
        ax.set_ylabel(kind)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _looks_logarithmic(values: np.ndarray) -> bool:
    """Positive values spanning ≥ 2 decades, or a geometric grid (constant ratio ≥ 2, ≥ 3 points)."""
    if values.size < 2 or (values <= 0).any():
        return False
    if values.max() / values.min() >= 100:
        return True
    steps = np.diff(np.log(np.unique(values)))
    return bool(steps.size >= 2 and np.allclose(steps, steps[0], rtol=0.05) and steps[0] >= np.log(2))


def validation_curve(values: Sequence[float], scores: Any, path: PathLike, *, param_name: str = "λ",
                     score_name: str = "validation accuracy", log: Optional[bool] = None,
                     figsize: Tuple[float, float] = (6, 4), dpi: float = 100) -> PathLike:
    """Score vs hyperparameter; ``scores`` (n,) or (n, folds) → mean line with a ±1 std band.

    Args:
        values: the hyperparameter's values ``(n,)``.
        scores: one score per value ``(n,)``, or one per value and fold ``(n, folds)``.
        path: the image file to write.
        param_name: the x axis label.
        score_name: the y axis label.
        log: a log x axis; None decides (positive values spanning two decades, or a
            geometric grid).
        figsize: the figure's (width, height) in inches.
        dpi: pixels per inch: a PNG is ``figsize * dpi`` pixels.

    Returns:
        ``path``, once the image is written (the format follows its extension, PNG if none).
    """
    values = _series(values, "values")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[0] != values.size:
        raise ValueError(f"scores must have shape ({values.size},) or ({values.size}, n_folds) to match "
                         f"values, got {scores.shape}")
    if log is None:
        log = _looks_logarithmic(values)
    elif log and (values <= 0).any():
        raise ValueError(f"log=True needs positive values, got min {values.min()!r}")
    order = np.argsort(values, kind="stable")
    x = values[order]
    mean = scores[order] if scores.ndim == 1 else scores[order].mean(axis=1)

    fig = _new_figure(figsize, dpi)
    ax = fig.subplots()
    ax.plot(x, mean, marker="o", markersize=4)
    if scores.ndim == 2 and scores.shape[1] > 1:
        std = scores[order].std(axis=1)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(param_name)
    ax.set_ylabel(score_name)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _class_colormap(n_classes: int) -> Any:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    base = colormaps["tab10" if n_classes <= 10 else "tab20"]
    if n_classes > 20:
        return colormaps["viridis"].resampled(n_classes)
    return ListedColormap([base(i) for i in range(n_classes)])


def decision_boundary(predict_fn: Callable[[np.ndarray], Any], X: Any, y: Any, path: PathLike, *,
                      resolution: int = 200, figsize: Tuple[float, float] = (6, 4), dpi: float = 100) -> PathLike:
    """Regions of ``predict_fn`` ((m, 2) → (m,) labels) on a resolution² grid, with the samples X (n, 2).

    Args:
        predict_fn: maps an ``(m, 2)`` array of points to ``(m,)`` labels, e.g.
            ``lambda Z: funcnn.predict(spec, params, Z, loss=...)``.
        X: the samples to draw, ``(n, 2)``.
        y: their labels ``(n,)``.
        path: the image file to write.
        resolution: grid points per axis.
        figsize: the figure's (width, height) in inches.
        dpi: pixels per inch: a PNG is ``figsize * dpi`` pixels.

    Returns:
        ``path``, once the image is written (the format follows its extension, PNG if none).
    """
    X = check_X(X, np.dtype(np.float64))
    if X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs 2-D X with exactly 2 features, got shape {X.shape}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    resolution = check_number(resolution, "resolution", low=2, integer=True)

    low, high = X.min(axis=0), X.max(axis=0)
    margin = np.where(high > low, 0.05 * (high - low), 0.5)  # a constant feature still gets a visible band
    gx = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    gy = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    Z = np.asarray(predict_fn(grid))
    if Z.ndim == 2 and Z.shape[1] == 1:
        Z = Z[:, 0]
    if Z.shape != (grid.shape[0],):
        raise ValueError(f"predict_fn must map an (m, 2) array to (m,) labels: for m={grid.shape[0]} "
                         f"it returned shape {Z.shape}")

    # one colour per class seen in either the data or the predictions, in sorted order
    classes, codes = np.unique(np.concatenate([y, Z]), return_inverse=True)
    y_codes, z_codes = codes[:y.size], codes[y.size:].reshape(xx.shape)
    k = classes.size
    cmap = _class_colormap(k)

    fig = _new_figure(figsize, dpi)
    ax = fig.subplots()
    ax.contourf(xx, yy, z_codes, levels=np.arange(k + 1) - 0.5, cmap=cmap, vmin=-0.5, vmax=k - 0.5, alpha=0.35)
    ax.scatter(X[:, 0], X[:, 1], c=y_codes, cmap=cmap, vmin=-0.5, vmax=k - 0.5,
                        s=12, edgecolors="k", linewidths=0.3)
    if k <= 20:
        handles = [ax.plot([], [], "o", color=cmap(i), markeredgecolor="k", markeredgewidth=0.3)[0]
                   for i in range(k)]
        ax.legend(handles, [str(c) for c in classes], title="class", fontsize="small", loc="best")
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel("x₀")
    ax.set_ylabel("x₁")
    fig.tight_layout()
    return _save(fig, path, dpi)


def confusion_matrix(y_true: Any, y_pred: Any, path: PathLike, *, labels: Optional[Sequence[Any]] = None,
                     figsize: Tuple[float, float] = (6, 4), dpi: float = 100) -> PathLike:
    """Annotated heatmap of sklearn's confusion matrix C (k, k): C[i, j] = count of true i predicted j.

    ``labels``: the classes in the order of the rows, when y holds them (``labels=["cat", "dog"]``
    for string labels); or the display names of integer codes ``0..k-1`` (``labels=class_names``
    with ``y`` in ``0..k-1``, as a network predicts them). None: the sorted classes seen in y.

    Args:
        y_true: true labels ``(n,)``.
        y_pred: predicted labels ``(n,)``.
        path: the image file to write.
        labels: as above.
        figsize: the figure's (width, height) in inches.
        dpi: pixels per inch: a PNG is ``figsize * dpi`` pixels.

    Returns:
        ``path``, once the image is written (the format follows its extension, PNG if none).
    """
    from sklearn import metrics
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty 1-D arrays of equal length, "
                         f"got shapes {y_true.shape} and {y_pred.shape}")
    seen = np.unique(np.concatenate([y_true, y_pred]))
    if labels is None:
        names = values = seen
    else:
        names = np.asarray(labels)
        if names.ndim != 1 or names.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {names.shape}")
        if np.isin(seen, names).all():
            values = names                               # the classes themselves
        elif seen.dtype.kind in "iu" and seen.min() >= 0 and seen.max() < names.size:
            values = np.arange(names.size)               # names of the codes 0..k-1
        else:
            missing = seen[~np.isin(seen, names)]
            if seen.dtype.kind in "iu":
                missing = missing[(missing < 0) | (missing >= names.size)]
            raise ValueError(f"labels must be the classes in y or the names of codes 0..{names.size - 1}; "
                             f"y holds {missing[:5].tolist()}, which are neither")
    matrix = metrics.confusion_matrix(y_true, y_pred, labels=values)
    k = matrix.shape[0]

    fig = _new_figure(figsize, dpi)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(k)
    fontsize = max(4.0, min(10.0, 100.0 / k))  # keep numbers legible from 2 to ~30 classes
    long_names = max(len(str(n)) for n in names) > 3  # tilt long class names so they don't overlap
    ax.set_xticks(ticks, [str(n) for n in names], fontsize=fontsize,
                  rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(ticks, [str(n) for n in names], fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=fontsize,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    return _save(fig, path, dpi)
