"""funcnn.plot: each function writes a PNG of the asked pixel size; matplotlib stays optional."""
import struct
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from funcnn import plot  # noqa: E402


def png_size(path):
    """(width, height) from the IHDR chunk: 8-byte signature, 4-byte length, b'IHDR', then two uint32."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


HISTORY = {"loss": [1.0, 0.6, 0.4, 0.35], "val_loss": [1.1, 0.7, 0.5, 0.5],
           "accuracy": [0.5, 0.7, 0.8, 0.85], "val_accuracy": [0.45, 0.65, 0.75, 0.76]}


@pytest.mark.parametrize("history", [HISTORY, {"loss": [3.0, 2.0]}, {"loss": [1.0], "val_accuracy": [0.5]}])
def test_learning_curves(tmp_path, history):
    path = tmp_path / "lc.png"
    assert plot.learning_curves(history, path, title="training") == path
    assert path.stat().st_size > 0 and png_size(path) == (600, 400)


def test_learning_curves_custom_size_and_errors(tmp_path):
    path = plot.learning_curves(HISTORY, str(tmp_path / "big.png"), figsize=(4, 3), dpi=50)
    assert png_size(path) == (200, 150)
    with pytest.raises(ValueError, match="none of 'loss'"):
        plot.learning_curves({"lr": [0.1]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"history\['loss'\]"):
        plot.learning_curves({"loss": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="dpi"):
        plot.learning_curves(HISTORY, tmp_path / "x.png", dpi=0)


def test_validation_curve(tmp_path):
    values = np.logspace(-5, 0, 6)
    scores = [0.80, 0.82, 0.85, 0.86, 0.80, 0.6]
    path = plot.validation_curve(values, scores, tmp_path / "vc.png")
    assert png_size(path) == (600, 400) and path.stat().st_size > 0
    folds = np.random.default_rng(0).uniform(0.7, 0.9, size=(6, 5))
    assert png_size(plot.validation_curve(values, folds, tmp_path / "folds.png", log=False)) == (600, 400)
    with pytest.raises(ValueError, match="scores must have shape"):
        plot.validation_curve(values, scores[:3], tmp_path / "x.png")
    with pytest.raises(ValueError, match="positive"):
        plot.validation_curve([0.0, 1.0], [0.5, 0.6], tmp_path / "x.png", log=True)


@pytest.mark.parametrize("values, expected", [
    (np.logspace(-4, 0, 5), True),       # 4 decades
    ([1e-3, 1e-2, 1e-1], True),          # 2 decades
    ([1, 2, 4, 8, 16], True),            # geometric grid with ratio 2
    ([0.1, 0.2, 0.3, 0.4], False),       # arithmetic
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], False),
    ([0, 1e-3, 1], False),               # non-positive: no log axis
    ([5], False),
])
def test_log_axis_auto_detection(values, expected):
    assert plot._looks_logarithmic(np.asarray(values, dtype=float)) is expected


def test_decision_boundary(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    calls = []

    def predict(grid):
        calls.append(grid.shape)
        return (grid.sum(axis=1) > 0).astype(int)

    path = plot.decision_boundary(predict, X, y, tmp_path / "db.png", resolution=50)
    assert png_size(path) == (600, 400) and path.stat().st_size > 0
    assert calls == [(2500, 2)]
    three = plot.decision_boundary(lambda g: np.digitize(g[:, 0], [-0.5, 0.5]), X, np.arange(60) % 3,
                                   tmp_path / "three.png", resolution=20)
    assert png_size(three) == (600, 400)


def test_decision_boundary_errors(tmp_path):
    X = np.zeros((5, 3))
    with pytest.raises(ValueError, match="exactly 2 features"):
        plot.decision_boundary(lambda g: np.zeros(len(g)), X, np.zeros(5), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        plot.decision_boundary(lambda g: np.zeros(3), X[:, :2], np.zeros(5), tmp_path / "x.png", resolution=10)
    with pytest.raises(ValueError, match="y must have shape"):
        plot.decision_boundary(lambda g: np.zeros(len(g)), X[:, :2], np.zeros(4), tmp_path / "x.png")


def test_confusion_matrix(tmp_path):
    y_true = np.array([0, 1, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 2, 2, 2, 1, 0, 1])
    path = plot.confusion_matrix(y_true, y_pred, tmp_path / "cm.png")
    assert png_size(path) == (600, 400) and path.stat().st_size > 0
    named = plot.confusion_matrix(["cat", "dog"], ["dog", "dog"], tmp_path / "named.png",
                                  labels=["cat", "dog"], figsize=(3, 3), dpi=80)
    assert png_size(named) == (240, 240)
    with pytest.raises(ValueError, match="equal length"):
        plot.confusion_matrix([0, 1], [0], tmp_path / "x.png")


def test_confusion_matrix_names_for_integer_codes(tmp_path):
    """Issue 10: labels=names with y as codes 0..k-1 failed ("At least one label specified must be in y_true")."""
    names = ["T-shirt", "Trouser", "Pullover"]
    path = plot.confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), tmp_path / "cm.png", labels=names)
    assert path.stat().st_size > 0
    partial = plot.confusion_matrix(np.array([0, 0]), np.array([0, 1]), tmp_path / "p.png", labels=names)
    assert partial.stat().st_size > 0                      # classes absent from y still get their row
    with pytest.raises(ValueError, match=r"names of codes 0\.\.2; y holds \[5\]"):
        plot.confusion_matrix(np.array([0, 5]), np.array([0, 1]), tmp_path / "x.png", labels=names)


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    # None in sys.modules makes any import of matplotlib (and its submodules) fail
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"funcnn\.plot needs matplotlib: pip install 'funcnn\[plot\]'"):
        plot.learning_curves(HISTORY, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_module_imports_without_touching_pyplot():
    # building figures with matplotlib.figure.Figure keeps pyplot's global figure list out of it
    assert "plt" not in vars(plot) and "pyplot" not in vars(plot)
