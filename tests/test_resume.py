"""train(..., checkpoint=path): bit-exact resume, refusal of foreign checkpoints, SIGKILL recovery."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import funcnn as F
from funcnn import optimizers as O
from conftest import assert_tree_equal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = [F.dense(24), F.relu(), F.dropout(0.2), F.dense(10)]
CE = "softmax_cross_entropy"


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X[:600], y[:600], X[600:800], y[600:800]


def run(data, epochs, **kw):
    X, y, Xv, yv = data
    args = dict(loss=CE, optimizer=O.adam(3e-3), epochs=epochs, batch_size=50, validation_data=(Xv, yv),
                seed=7, progress=False)
    args.update(kw)
    return F.train(SPEC, F.init_params(SPEC, 64, seed=1), X, y, **args)


@pytest.mark.parametrize("ext", [".npz", ".pkl"])
def test_two_plus_two_equals_four(data, tmp_path, ext):
    path = str(tmp_path / f"ck{ext}")
    full = run(data, 4)
    first = run(data, 2, checkpoint=path)
    assert F.load(path)["training_state"]["run"]["epoch"] == 2
    resumed = run(data, 4, checkpoint=path)
    assert_tree_equal(resumed, full)
    assert not np.array_equal(first[0]["W_0"], full[0]["W_0"])
    # the checkpoint is a normal model file
    model = F.load(path)
    assert_tree_equal(model["params"], full[0])
    assert model["loss"] == CE and model["spec"] == SPEC


def test_resume_with_early_stopping_state(data, tmp_path):
    path = str(tmp_path / "ck.npz")
    kw = dict(optimizer=O.sgd(0.5, momentum=0.9), early_stopping={"patience": 2})
    full = run(data, 12, **kw)
    run(data, 3, checkpoint=path, **kw)
    assert_tree_equal(run(data, 12, checkpoint=path, **kw), full)


def test_finished_checkpoint_returns_its_result(data, tmp_path):
    path = str(tmp_path / "ck.npz")
    a = run(data, 3, checkpoint=path)
    assert_tree_equal(run(data, 3, checkpoint=path), a)


@pytest.mark.parametrize("change,pattern", [
    ({"spec": [F.dense(10)]}, "different spec"),
    ({"loss": "mean_squared_error"}, "different run.*loss"),
    ({"optimizer": O.sgd(0.1)}, "different run.*optimizer"),
    ({"batch_size": 20}, "different run.*batch_size"),
])
def test_different_run_is_refused_and_file_kept(data, tmp_path, change, pattern):
    path = str(tmp_path / "ck.npz")
    run(data, 1, checkpoint=path)
    before = open(path, "rb").read()
    X, y, Xv, yv = data
    spec = change.pop("spec", SPEC)
    args = dict(loss=CE, optimizer=O.adam(3e-3), epochs=2, batch_size=50, seed=7, progress=False,
                validation_data=(Xv, yv))
    args.update(change)
    y_arg = y
    if args["loss"] == "mean_squared_error":
        y_arg, args["validation_data"] = X[:, :10], (Xv, Xv[:, :10])
    with pytest.raises(ValueError, match=pattern):
        F.train(spec, F.init_params(spec, 64, seed=1), X, y_arg, checkpoint=path, **args)
    assert open(path, "rb").read() == before


def test_plain_model_file_is_not_overwritten(data, tmp_path):
    path = str(tmp_path / "model.npz")
    F.save(path, SPEC, F.init_params(SPEC, 64, seed=0), loss=CE)
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="without training state"):
        run(data, 2, checkpoint=path)
    assert open(path, "rb").read() == before


def test_callable_lr_cannot_be_checkpointed(data, tmp_path):
    with pytest.raises(TypeError, match="learning rate that can be saved"):
        run(data, 1, optimizer=O.sgd(lambda step: 0.1), checkpoint=str(tmp_path / "c.npz"))


KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import numpy as np, funcnn as F
    from funcnn import optimizers as O
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True); X = X / 16.0
    spec = {spec!r}
    def die(epoch, params, history):
        if epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no atexit: a real crash
    F.train(spec, F.init_params(spec, 64, seed=1), X[:600], y[:600], loss="softmax_cross_entropy",
            optimizer=O.adam(3e-3), epochs=5, batch_size=50, validation_data=(X[600:800], y[600:800]),
            seed=7, progress=False, checkpoint={path!r}, callbacks=[die])
""")


def test_sigkill_then_resume_equals_uninterrupted(data, tmp_path):
    path = str(tmp_path / "ck.npz")
    proc = subprocess.run([sys.executable, "-c", KILLED.format(root=ROOT, spec=SPEC, path=path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert F.load(path)["training_state"]["run"]["epoch"] == 2   # the last completed save
    assert [f for f in os.listdir(tmp_path) if f != "ck.npz"] == []  # no stray temporary file
    assert_tree_equal(run(data, 5, checkpoint=path), run(data, 5))
