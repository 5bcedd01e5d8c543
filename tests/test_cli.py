"""The funcnn command end to end, in a temp dir, as a subprocess."""
import os
import subprocess
import sys

import numpy as np
import pytest

import funcnn as F
from funcnn.datasets import write_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "funcnn", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_train_default_digits_then_evaluate_and_predict(tmp_path):
    out = cli("train", "--epochs", "8", cwd=tmp_path).stdout
    assert "test accuracy" in out
    acc = float(out.split("test accuracy ")[1].split()[0])
    assert acc > 0.93
    assert (tmp_path / "model.npz").stat().st_size > 0 and (tmp_path / "curves.png").stat().st_size > 0
    model = F.load(str(tmp_path / "model.npz"))
    assert model["loss"] == "softmax_cross_entropy" and model["data"]["source"] == "digits"
    ev = cli("evaluate", "model.npz", "--data", "digits", cwd=tmp_path).stdout
    assert float(ev.split("accuracy ")[1].split()[0]) == pytest.approx(acc, abs=1e-4)
    pred = cli("predict", "model.npz", "--data", "digits", cwd=tmp_path).stdout.split()
    assert pred[0] == "label" and len(pred) == 451 and set(pred[1:]) <= {str(i) for i in range(10)}
    pred_all = cli("predict", "model.npz", "--data", "digits", "--split", "all", cwd=tmp_path).stdout.split()
    assert len(pred_all) == 1 + 1797


def test_moons_binary_with_options(tmp_path):
    out = cli("train", "--data", "moons", "--hidden", "16,16", "--activation", "tanh", "--epochs", "60",
              "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "32", "--l2", "1e-4", "--dropout", "0.1",
              "--out", "m.pkl", "--no-plot", "--quiet", cwd=tmp_path).stdout
    assert "binary_cross_entropy" in out and float(out.split("test accuracy ")[1].split()[0]) > 0.9
    assert not (tmp_path / "curves.png").exists()
    saved = F.load(str(tmp_path / "m.pkl"))  # the model records how it was trained
    assert saved["l2"] == 1e-4 and saved["optimizer"]["name"] == "sgd" and len(saved["history"]["loss"]) == 60
    proba = cli("predict", "m.pkl", "--data", "moons", "--proba", cwd=tmp_path).stdout.splitlines()
    assert proba[0] == "0,1"                                  # one column per class, named by the class
    assert len(proba) == 251 and all(abs(sum(map(float, r.split(","))) - 1) < 1e-6 for r in proba[1:])


def test_csv_npz_regression_and_spec_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,label", comments="")
    (tmp_path / "spec.json").write_text('[{"type": "dense", "units": 8}, {"type": "relu"}, '
                                        '{"type": "dense", "units": 3}]')
    cli("train", "--data", "d.csv", "--spec", "spec.json", "--epochs", "5", "--no-plot", "--quiet", cwd=tmp_path)
    assert F.load(str(tmp_path / "model.npz"))["spec"][0] == {"type": "dense", "units": 8}
    np.savez(tmp_path / "r.npz", X=X, y=X @ [1.0, 2.0, 3.0] + 0.5)
    out = cli("train", "--data", "r.npz", "--epochs", "30", "--no-plot", "--quiet", cwd=tmp_path).stdout
    assert "mean_squared_error" in out and "test r2" in out
    cli("predict", "model.npz", "--data", "r.npz", "--output", "p.csv", cwd=tmp_path)
    assert np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1).shape == (30,)  # the held-out quarter
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "prediction"


def test_mnist_directory(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    for split, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n) % 3
        images = (rng.uniform(0, 60, size=(n, 6, 6)) + labels[:, None, None] * 60).astype(np.uint8)
        write_idx(str(d / f"{split}-images-idx3-ubyte.gz"), images)
        write_idx(str(d / f"{split}-labels-idx1-ubyte.gz"), labels.astype(np.uint8))
    out = cli("train", "--data", str(d), "--hidden", "16", "--epochs", "30", "--lr", "0.01", "--no-plot", "--quiet",
              cwd=tmp_path).stdout
    assert "20 test samples" in out and float(out.split("test accuracy ")[1].split()[0]) > 0.9


def test_checkpoint_resume_from_the_command_line(tmp_path):
    args = ["train", "--epochs", "3", "--no-plot", "--quiet", "--checkpoint", "ck.npz"]
    cli(*args[:2], "2", *args[3:], "--out", "a.npz", cwd=tmp_path)
    cli(*args, "--out", "b.npz", cwd=tmp_path)          # resumes at epoch 3
    cli("train", "--epochs", "3", "--no-plot", "--quiet", "--out", "c.npz", cwd=tmp_path)  # uninterrupted
    b, c = F.load(str(tmp_path / "b.npz")), F.load(str(tmp_path / "c.npz"))
    for k in c["params"]:
        np.testing.assert_array_equal(b["params"][k], c["params"][k])
    assert b["history"] == c["history"]
    ev = cli("evaluate", "ck.npz", "--data", "digits", cwd=tmp_path).stdout
    assert "accuracy" in ev


@pytest.mark.parametrize("args,pattern", [
    (["train", "--epochs", "-1"], "--epochs: expected a positive integer"),
    (["train", "--hidden", "12,x"], "--hidden: expected comma-separated"),
    (["train", "--lr", "0"], "--lr: expected a positive number"),
    (["train", "--dropout", "1.5"], "--dropout: expected a fraction"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--spec", "s.json", "--hidden", "3"], "not allowed with argument"),
    (["evaluate"], "the following arguments are required"),
    (["bogus"], "invalid choice"),
    ([], "the following arguments are required"),
])
def test_bad_arguments_exit_2_without_traceback(tmp_path, args, pattern):
    proc = cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and pattern in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,pattern", [
    (["train", "--data", "nosuch"], "'nosuch' is neither a known dataset"),
    (["train", "--spec", "missing.json"], "no such file"),
    (["evaluate", "missing.npz", "--data", "digits"], "missing.npz"),
    (["train", "--data", "digits", "--lr", "1e6", "--optimizer", "sgd", "--epochs", "50", "--quiet"], "diverged"),
])
def test_bad_data_exit_1_with_a_message(tmp_path, args, pattern):
    proc = cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and pattern in proc.stderr and "Traceback" not in proc.stderr


def test_sweep_command(tmp_path):
    out = cli("sweep", "--data", "iris", "--l2", "0", "0.01", "--hidden", "8", "--epochs", "5", "--lr", "0.01",
              "--n-jobs", "2", "--out", "best.npz", "--plot", "l2.png", cwd=tmp_path).stdout
    lines = out.splitlines()
    assert sum('"l2"' in line for line in lines) >= 3 and any(line.startswith("best:") for line in lines)
    assert "test accuracy" in out
    assert F.load(str(tmp_path / "best.npz"))["loss"] == "softmax_cross_entropy"
    assert (tmp_path / "l2.png").stat().st_size > 0
    bad = cli("sweep", "--l2", "-1", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--l2" in bad.stderr


def test_train_a_cnn_from_the_shipped_spec_on_idx_files(tmp_path):
    """`funcnn train --data <IDX dir> --spec scripts/specs/cnn_fashion.json`: the example CNN
    (reshape to 28x28x1, conv, batch norm, pooling) trains from the flat rows the loader gives."""
    rng = np.random.default_rng(0)
    data = tmp_path / "idx"
    data.mkdir()
    for prefix, n in (("train", 240), ("t10k", 60)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4:2 * label + 7, :] = 250  # the label as a bright band of rows
        write_idx(str(data / f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(str(data / f"{prefix}-labels-idx1-ubyte.gz"), labels)
    spec_path = os.path.join(ROOT, "scripts", "specs", "cnn_fashion.json")
    out = cli("train", "--data", str(data), "--spec", spec_path, "--epochs", "1", "--batch-size", "32",
              "--no-plot", "--quiet", cwd=tmp_path).stdout
    assert "trained 1 epochs" in out and "test accuracy" in out
    model = F.load(str(tmp_path / "model.npz"))
    assert [layer["type"] for layer in model["spec"]][:3] == ["reshape", "conv2d", "batch_norm"]
    assert model["params"]["W_1"].shape == (3, 3, 1, 32)
    assert model["params"]["running_var_2"].shape == (32,) and not (model["params"]["running_var_2"] == 1).all()
    ev = cli("evaluate", "model.npz", "--data", str(data), cwd=tmp_path).stdout
    assert "accuracy" in ev
    # predictions on a file of new flat rows: the CNN's input width comes from its training data
    # (its spec starts with a reshape; there was "n_features must be an int, got None")
    np.savetxt(tmp_path / "new.csv", rng.integers(0, 255, (7, 784)), delimiter=",", fmt="%d")
    pred = cli("predict", "model.npz", "--data", "new.csv", cwd=tmp_path).stdout.split()
    assert pred[0] == "label" and len(pred) == 8 and set(pred[1:]) <= {str(i) for i in range(10)}


def test_predict_with_a_model_whose_spec_starts_with_a_reshape_and_records_no_data(tmp_path):
    """A model saved from Python (no training-data metadata): the reshape's shape gives the width."""
    spec = [F.layers.reshape([4, 4, 1]), F.layers.conv2d(2, 3, padding="same"), F.layers.flatten(),
            F.layers.dense(3)]
    params = F.init_params(spec, 16, seed=0)
    F.save(str(tmp_path / "m.npz"), spec, params, loss="softmax_cross_entropy")
    np.savetxt(tmp_path / "x.csv", np.random.default_rng(1).random((5, 16)), delimiter=",")
    pred = cli("predict", "m.npz", "--data", "x.csv", cwd=tmp_path).stdout.split()
    assert pred[0] == "label" and len(pred) == 6
    spec[0] = F.layers.reshape([-1, 4, 1])  # the width cannot be told: a message, not a traceback
    F.save(str(tmp_path / "m2.npz"), spec, params, loss="softmax_cross_entropy")
    proc = cli("predict", "m2.npz", "--data", "x.csv", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "cannot tell how many input features" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sweep_scheduler_without_distributed_is_one_line_exit_1(monkeypatch, capsys):
    from funcnn import cli as C
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if funcnn[dask] were not installed
    assert C.main(["sweep", "--scheduler", "tcp://127.0.0.1:8786", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("funcnn sweep: error: --scheduler needs dask.distributed")
    assert "pip install 'funcnn[dask]'" in err[0]


def test_sweep_scheduler_bad_address_is_one_line_exit_1(capsys):
    pytest.importorskip("distributed")
    from funcnn import cli as C
    assert C.main(["sweep", "--scheduler", "localhost:87x", "--scheduler-timeout", "1", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Dask scheduler address" in err[0]


def test_train_the_shipped_resnet_spec_on_idx_files(tmp_path):
    """`funcnn train --spec scripts/specs/resnet_fashion.json`: a nested spec (residual blocks,
    a projection shortcut, global pooling) from a JSON file, trained, saved, evaluated, predicted."""
    rng = np.random.default_rng(1)
    data = tmp_path / "idx"
    data.mkdir()
    for prefix, n in (("train", 160), ("t10k", 40)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        write_idx(str(data / f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(str(data / f"{prefix}-labels-idx1-ubyte.gz"), labels)
    spec_path = os.path.join(ROOT, "scripts", "specs", "resnet_fashion.json")
    out = cli("train", "--data", str(data), "--spec", spec_path, "--epochs", "1", "--batch-size", "32",
              "--no-plot", "--quiet", cwd=tmp_path).stdout
    assert "trained 1 epochs" in out
    model = F.load(str(tmp_path / "model.npz"))
    assert model["spec"][7]["shortcut"][0] == {"type": "conv2d", "filters": 64, "kernel": 1, "stride": 2,
                                               "padding": 0}
    assert model["params"]["W_7.shortcut.0"].shape == (1, 1, 32, 64)
    assert not (model["params"]["running_var_5.body.1"] == 1).all()
    assert "accuracy" in cli("evaluate", "model.npz", "--data", str(data), cwd=tmp_path).stdout
    np.savetxt(tmp_path / "new.csv", rng.integers(0, 255, (3, 784)), delimiter=",", fmt="%d")
    pred = cli("predict", "model.npz", "--data", "new.csv", cwd=tmp_path).stdout.split()
    assert pred[0] == "label" and len(pred) == 4


def test_a_bad_nested_spec_file_is_one_line_naming_the_block(tmp_path):
    (tmp_path / "bad.json").write_text('[{"type": "dense", "units": 8}, {"type": "residual", "body": '
                                       '[{"type": "dense", "units": 4}]}, {"type": "dense", "units": 10}]')
    proc = cli("train", "--spec", "bad.json", "--epochs", "1", "--no-plot", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "spec[1] (residual)" in proc.stderr and "(4,)" in proc.stderr and "(8,)" in proc.stderr
