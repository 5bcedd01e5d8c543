"""Smoke tests of the experiment scripts in scripts/: each runs end to end in --quick mode.

The numbers of a quick run mean nothing (a few epochs on subsets); these tests only keep
the scripts working: arguments, data splits, sweeps, training, figures, the printed table
and the dict that ``main`` returns. The Fashion-MNIST script reads a tiny IDX directory
written here, so the test runs without the real data set.
"""
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import funcnn as F

from funcnn.datasets import write_idx

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def load_script(name):
    """Import scripts/<name>.py as a module (the scripts are files, not a package)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(SCRIPTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_args(out_dir, *extra):
    return ["--quick", "--out-dir", str(out_dir), *([] if HAVE_MATPLOTLIB else ["--no-plots"]), *extra]


def assert_pngs(out_dir, names):
    if not HAVE_MATPLOTLIB:
        return
    for name in names:
        path = os.path.join(out_dir, name)
        assert os.path.isfile(path), f"missing figure {name}"
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"


def is_fraction(x):
    return isinstance(x, float) and 0.0 <= x <= 1.0


def test_moons_quick(tmp_path, capsys):
    result = load_script("moons").main(quick_args(tmp_path, "--n-jobs", "1"))
    p1, p2 = result["seed_000"], result["seed_004"]
    assert p1["seed_error"] == 36.8
    assert all(0.0 <= e <= 100.0 for e in p1["errors"] + p1["seed_setup_errors"])
    assert p1["n_train"] == p1["n_test"] == 400
    assert is_fraction(p2["accuracy"]) and is_fraction(p2["seed_setup_accuracy"])
    assert math.isclose(p2["logloss_log10"], p2["logloss"] / math.log(10))
    assert p2["seed_accuracy"] is None  # tutorial 004 prints no result
    out = capsys.readouterr().out
    assert "36.8" in out and "not printed" in out
    assert_pngs(tmp_path, ["moons_000_learning_curves.png", "moons_000_decision_boundary.png",
                           "moons_004_learning_curves.png", "moons_004_decision_boundary.png",
                           "moons_004_seed_setup_learning_curves.png",
                           "moons_004_seed_setup_decision_boundary.png"])


def test_moons_004_split_is_the_tutorials():
    X_train, X_test, y_train, y_test = load_script("moons").moons_004()
    assert X_train.shape == (900, 2) and X_test.shape == (100, 2)
    assert set(np.unique(y_train)) == {0, 1}


def test_digits_quick(tmp_path, capsys):
    result = load_script("digits_l2_sweep").main(quick_args(tmp_path, "--n-jobs", "1"))
    a, b = result["a"], result["b"]
    assert a["lambda"] in list(np.logspace(-2, 2, 3))
    assert math.isclose(a["l2"], a["lambda"] / 721)  # λ/(2N) ΣW² on a summed loss ↔ l2 = λ/N on the mean
    assert is_fraction(a["test_accuracy"]) and all(is_fraction(t) for t in a["test_accuracies"])
    assert is_fraction(b["test_accuracy"]) and b["epochs"] >= 1
    assert all(is_fraction(v) for v in b["svm"].values())
    assert "0.9596" in capsys.readouterr().out
    assert_pngs(tmp_path, ["digits_a_validation_curve.png", "digits_a_learning_curves.png",
                           "digits_b_validation_curve.png", "digits_b_learning_curves.png"])


def test_digits_splits_are_the_tutorials():
    X_train, y_train, X_val, y_val, X_test, y_test = load_script("digits_l2_sweep").load_splits()
    assert (len(X_train), len(X_val), len(X_test)) == (721, 482, 594)
    assert X_train.max() == 16  # raw pixels, as the tutorial feeds them


def write_tiny_mnist(directory, n_train=600, n_test=200, seed=0):
    """MNIST-format files of random 28x28 images whose brightest column band encodes the label."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, :, 2 * label + 4:2 * label + 6] = 250
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return directory


def test_fashion_quick_on_tiny_idx(tmp_path, capsys):
    data_dir = write_tiny_mnist(str(tmp_path / "mnist"))
    out_dir = tmp_path / "figs"
    result = load_script("fashion_mnist").main(
        quick_args(out_dir, "--data-dir", data_dir, "--epochs", "3", "--seed-epochs", "1", "--threads", "1"))
    assert result["n_train"] == 500  # 600 minus a sixth held out for validation
    assert result["ours"]["epochs"] == 3 and result["tutorial"]["epochs"] == 1
    for r in (result["tutorial"], result["ours"]):
        assert is_fraction(r["test_accuracy"]) and is_fraction(r["val_accuracy"]) and r["train_seconds"] > 0
    assert result["ours"]["test_accuracy"] > 0.5  # the label is written into the pixels: easy
    out = capsys.readouterr().out
    assert "0.8833" in out and "test acc" in out
    assert_pngs(out_dir, ["fashion_tutorial_learning_curves.png", "fashion_ours_learning_curves.png",
                          "fashion_ours_confusion_matrix.png"])


def test_fashion_missing_data_exits_1_with_install_hint(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        load_script("fashion_mnist").main(["--quick", "--no-plots", "--data-dir", str(tmp_path / "nothing")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err


@pytest.mark.parametrize("name", ["moons", "digits_l2_sweep", "fashion_mnist", "cnn_mnist", "resnet_fashion"])
def test_script_runs_from_any_directory(name, tmp_path):
    """`python scripts/x.py --help` works from elsewhere, funcnn installed or not."""
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, f"{name}.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--out-dir" in proc.stdout


def figure_hashes():
    import hashlib
    directory = os.path.join(SCRIPTS, "figures")
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory))}


def test_quick_runs_never_write_the_tracked_figures(tmp_path, monkeypatch, capsys):
    """Issue 10: `moons.py --quick` overwrote the README's figures in scripts/figures."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))      # where --quick's own directory goes
    before = figure_hashes()
    load_script("moons").main(["--quick", "--n-jobs", "1"] + ([] if HAVE_MATPLOTLIB else ["--no-plots"]))
    assert figure_hashes() == before
    out = capsys.readouterr().out
    assert "--quick: figures go to " + str(tmp_path) in out
    made = [d for d in os.listdir(tmp_path) if d.startswith("funcnn-quick-figures-")]
    assert len(made) == 1
    assert_pngs(os.path.join(tmp_path, made[0]), ["moons_000_learning_curves.png", "moons_004_decision_boundary.png"])


def test_cnn_quick_on_tiny_idx(tmp_path, capsys):
    data_dir = write_tiny_mnist(str(tmp_path / "mnist"))
    out_dir = tmp_path / "figs"
    result = load_script("cnn_mnist").main(quick_args(out_dir, "--data-dir", data_dir, "--mnist-dir", data_dir,
                                                      "--epochs", "2", "--threads", "1", "--flips",
                                                      "--label-smoothing", "0.1"))
    for tag in ("fashion", "mnist"):
        r = result[tag]
        assert r["epochs"] == 2 and r["n_train"] == 500 and r["train_seconds"] > 0
        assert is_fraction(r["test_accuracy"]) and is_fraction(r["val_accuracy"])
    assert result["fashion"]["test_accuracy"] > 0.3  # the label is written into the pixels
    out = capsys.readouterr().out
    assert "Fashion-MNIST" in out and "MNIST" in out and "test acc" in out
    assert_pngs(out_dir, ["cnn_fashion_learning_curves.png", "cnn_fashion_confusion_matrix.png",
                          "cnn_mnist_learning_curves.png", "cnn_mnist_confusion_matrix.png"])


def test_cnn_spec_file_is_the_scripts_network():
    import json
    with open(os.path.join(SCRIPTS, "specs", "cnn_fashion.json")) as fh:
        assert json.load(fh) == load_script("cnn_mnist").cnn_spec()


def test_resnet_quick_on_tiny_idx(tmp_path, capsys):
    data_dir = write_tiny_mnist(str(tmp_path / "mnist"))
    out_dir = tmp_path / "figs"
    model = tmp_path / "resnet.npz"
    script = load_script("resnet_fashion")
    # the default: augmented, label smoothing, the refit on training + validation (no validation scores)
    result = script.main(quick_args(out_dir, "--data-dir", data_dir, "--epochs", "2", "--save", str(model)))
    assert result["epochs"] == 2 and result["train_seconds"] > 0 and result["best_epoch"] == 2
    assert result["val_accuracy"] is None and is_fraction(result["test_accuracy"])
    assert result["n_params"] == 151690
    saved = F.load(str(model))
    assert saved["spec"] == script.resnet_spec()
    assert "test acc" in capsys.readouterr().out
    assert_pngs(out_dir, ["resnet_fashion_learning_curves.png", "resnet_fashion_confusion_matrix.png"])
    # selection runs: the best validation epoch is kept, through train (no augmentation) or the augmented loop
    plain = script.main(quick_args(out_dir, "--data-dir", data_dir, "--epochs", "2", "--no-refit", "--no-augment"))
    assert is_fraction(plain["val_accuracy"]) and 1 <= plain["best_epoch"] <= 2 and is_fraction(plain["test_accuracy"])
    flips = script.main(quick_args(out_dir, "--data-dir", data_dir, "--epochs", "2", "--no-refit", "--shift", "0",
                                   "--label-smoothing", "0"))
    assert is_fraction(flips["val_accuracy"]) and 1 <= flips["best_epoch"] <= 2
    assert_pngs(out_dir, ["resnet_fashion_selection_curves.png"])


def test_resnet_spec_file_and_benchmark_task_are_the_scripts_network():
    import json
    resnet = load_script("resnet_fashion")
    with open(os.path.join(SCRIPTS, "specs", "resnet_fashion.json")) as fh:
        assert json.load(fh) == resnet.resnet_spec()
    bench = load_script("benchmark")
    # the benchmark feeds NHWC images, so its network is the script's without the first reshape
    assert bench.build_funcnn(F, bench.make_task("fashion-resnet")["layers"]) == resnet.resnet_spec()[1:]


@pytest.mark.parametrize("args, message", [(["--shift", "-1"], "--shift: expected 0 to 8"),
                                           (["--label-smoothing", "1"], "--label-smoothing: expected")])
def test_resnet_bad_options_are_refused_before_loading(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        load_script("resnet_fashion").main(["--quick", "--no-plots", "--data-dir", str(tmp_path / "none"), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_resnet_bad_save_path_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        load_script("resnet_fashion").main(["--quick", "--no-plots", "--save", str(tmp_path / "no" / "dir" / "m.npz")])
    assert info.value.code == 2 and "--save:" in capsys.readouterr().err


def test_cnn_missing_fashion_data_exits_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        load_script("cnn_mnist").main(["--quick", "--no-plots", "--data-dir", str(tmp_path / "nothing")])
    assert info.value.code == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


# --------------------------------------------------------------------------- benchmark
#
# The benchmark's workers are subprocesses; these runs limit them to funcnn (plus the NumPy
# GEMM worker), on synthetic data of Fashion-MNIST's shape, so they need neither torch,
# JAX nor the data set and take a few seconds.

def run_benchmark(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, "benchmark.py"), "--quick", "--frameworks", "funcnn",
                           "--synthetic", "--n-train", "2000", "--latency-calls", "40", "--predicts", "1", *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_benchmark_quick_funcnn_only(tmp_path):
    out = run_benchmark("--json", str(tmp_path / "bench.json"))
    for text in ("seconds / epoch", "% of the GEMM roofline", "GEMM roofline: ", "Predict latency",
                 "1 row: median (µs)", "peak RSS while training", "BLAS (threadpoolctl"):
        assert text in out, text
    import json
    with open(tmp_path / "bench.json") as fh:
        data = json.load(fh)
    workers = data["main"]["workers"]
    assert set(workers) == {"funcnn", "gemm"}
    assert len(workers["funcnn"]["epochs"]) == 2 and all(t > 0 for t in workers["funcnn"]["epochs"])
    assert len(workers["funcnn"]["latency"]) == 40
    # the worker imported this tree's funcnn, whatever is installed
    tree = os.path.realpath(os.path.dirname(SCRIPTS))
    assert os.path.realpath(workers["funcnn"]["ready"]["funcnn_file"]).startswith(tree)


def test_benchmark_unsets_forced_blas_kernels_in_workers_only():
    forced = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "262144"}
    out = run_benchmark("--latency", env_extra=forced)
    assert "This process: OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=262144; workers: neither set." in out
    out = run_benchmark("--latency", "--forced-kernels", env_extra=forced)
    assert "workers: OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=262144." in out


def test_benchmark_tasks_and_gemm_shapes():
    bench = load_script("benchmark")
    task = bench.make_task("fashion-mlp", hidden=[64, 32], batch=32)
    assert task["layers"] == [["dense", 64], ["relu"], ["dense", 32], ["relu"], ["dense", 10]]
    assert bench.net_name(task) == "784-64-32-10" and task["batch"] == 32
    assert bench.dense_sizes(bench.make_task("fashion-cnn")["layers"], [28, 28, 1]) is None
    shapes = bench.gemm_shapes(300, 128, [784, 64, 10])
    # two full batches and one of 44 rows; no input gradient for the first layer
    assert ("forward", 128, 784, 64, 2, False, False) in shapes
    assert ("input grad", 44, 10, 64, 1, False, True) in shapes
    assert not any(kind == "input grad" and k == 64 and n == 784 for kind, m, k, n, *_ in shapes)


def test_benchmark_skips_a_framework_that_is_not_installed(monkeypatch):
    import argparse
    bench = load_script("benchmark")
    monkeypatch.setitem(bench.REQUIRES, "jax", ("no_such_module_for_funcnn_bench",))
    notes = []
    cols = bench.columns(["funcnn", "jax"], argparse.Namespace(compare=None, optimizer_share=False),
                         lambda s: None, notes)
    assert [c["id"] for c in cols] == ["funcnn", "gemm"]
    assert notes == ["JAX-jit + optax skipped: no_such_module_for_funcnn_bench not installed."]


def test_benchmark_help_runs_from_any_directory(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, "benchmark.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--frameworks", "--latency", "--scaling", "--compare", "--forced-kernels"):
        assert option in proc.stdout


@pytest.mark.parametrize("synthetic", [False, True])
def test_make_large_dataset_quick(tmp_path, synthetic):
    """--quick writes 5000 rows as X.npy (uint8, (n, 784)) + y.npy (int64): a data directory funcnn reads
    memory-mapped. Fashion-MNIST rows come from a tiny IDX directory written here; a missing one falls
    back to synthetic images."""
    from funcnn import datasets as D
    source = write_tiny_mnist(str(tmp_path / "mnist"), n_train=300, n_test=100)
    out = tmp_path / "big"
    extra = ["--source-dir", str(tmp_path / "nothing")] if synthetic else ["--source-dir", source]
    result = load_script("make_large_dataset").main(["--quick", "--out", str(out), *extra])
    assert result["rows"] == 5000 and result["kind"] == ("synthetic" if synthetic else "fashion-mnist")
    X, y = D.load(str(out))
    assert X.dtype == np.uint8 and X.shape == (5000, 784) and isinstance(X, np.memmap)
    assert y.dtype == np.int64 and set(np.unique(y)) <= set(range(10)) and len(np.unique(y)) == 10
    assert result["x_bytes"] == X.nbytes + 128  # the .npy header
    assert len(np.unique(X[:200], axis=0)) == 200  # replicated rows differ (shifts, jitter)
    again = load_script("make_large_dataset").main(["--quick", "--out", str(tmp_path / "again"), *extra])
    assert again["rows"] == 5000
    assert (out / "X.npy").read_bytes() == (tmp_path / "again" / "X.npy").read_bytes()  # same seed, same bytes


def test_resnet_augment_flips_and_shifts_within_two_pixels():
    augment = load_script("resnet_fashion").augment
    rng = np.random.default_rng(0)
    images = np.zeros((40, 28, 28), np.float32)
    images[:, 2:26, 2:26] = rng.random((40, 24, 24))  # a 2-pixel empty border: shifts lose nothing
    out = augment(images.reshape(40, 784), np.random.default_rng(1)).reshape(40, 28, 28)
    for img, aug in zip(images, out):
        found = [(f, dy, dx) for f in (False, True) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(np.roll((img[:, ::-1] if f else img), (dy, dx), axis=(0, 1)), aug)]
        assert found, "not a flip and shift of its image"
    assert not np.array_equal(out, images)


def test_train_augmented_without_augmentation_is_train_bit_for_bit():
    """The scripts' augmented loop is train's epochs: with an identity augmentation it gives
    train's params and history, and keep_best returns the epoch with the best validation accuracy."""
    common = load_script("_common")
    from funcnn import layers as L
    from funcnn.optimizers import adam
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((120, 6)), rng.integers(0, 3, 120)
    spec = [L.dense(8), L.relu(), L.dense(3)]
    params = F.init_params(spec, 6, seed=1)
    kw = dict(loss="softmax_cross_entropy", optimizer=adam(1e-2), epochs=4, batch_size=32)
    want, hist = F.train(spec, params, X, y, validation_data=(X[:40], y[:40]), seed=3, progress=False, **kw)
    got, h = common.train_augmented(spec, params, X, y, augment=lambda a, r: a, rng=None, seed=3,
                                    validation_data=(X[:40], y[:40]), **kw)
    assert all(np.array_equal(want[k], got[k]) for k in want)
    assert h["loss"] == hist["loss"] and h["val_accuracy"] == hist["val_accuracy"]
    best, h2 = common.train_augmented(spec, params, X, y, augment=lambda a, r: a, rng=None, seed=3,
                                      validation_data=(X[:40], y[:40]), keep_best=True, **kw)
    first_best = int(np.argmax(h2["val_accuracy"])) + 1
    again, _ = common.train_augmented(spec, params, X, y, augment=lambda a, r: a, rng=None, seed=3,
                                      validation_data=(X[:40], y[:40]), **{**kw, "epochs": first_best})
    assert all(np.array_equal(best[k], again[k]) for k in best)


def test_train_augmented_trains_on_each_epochs_draw_and_keeps_the_first_of_equal_epochs():
    common = load_script("_common")
    from funcnn import layers as L
    from funcnn.optimizers import sgd
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 2, 64)
    spec = [L.dense(4), L.relu(), L.dense(2)]
    params = F.init_params(spec, 5, seed=0)
    kw = dict(loss="softmax_cross_entropy", batch_size=16, seed=2)
    calls = []

    def doubled(a, r):
        calls.append(r)
        return a * 2.0
    got, _ = common.train_augmented(spec, params, X, y, augment=doubled, rng="the rng", optimizer=sgd(0.1),
                                    epochs=3, **kw)
    want, _ = F.train(spec, params, X * 2.0, y, optimizer=sgd(0.1), epochs=3, progress=False, **kw)
    assert calls == ["the rng"] * 3 and all(np.array_equal(want[k], got[k]) for k in want)
    # a tiny rate: one validation sample scores the same every epoch, so every epoch ties with the first
    best, h = common.train_augmented(spec, params, X, y, augment=lambda a, r: a, rng=None, optimizer=sgd(1e-9),
                                     epochs=3, validation_data=(X[:1], y[:1]), keep_best=True, **kw)
    first, _ = common.train_augmented(spec, params, X, y, augment=lambda a, r: a, rng=None, optimizer=sgd(1e-9),
                                      epochs=1, **kw)
    assert len(set(h["val_accuracy"])) == 1
    assert all(np.array_equal(best[k], first[k]) for k in best)


def test_resnet_refit_trains_on_training_and_validation_rows_and_selection_keeps_the_best_epoch(tmp_path,
                                                                                               monkeypatch):
    from funcnn.train import evaluate
    script = load_script("resnet_fashion")
    asked, draws = [], []
    real = script._common.train_augmented

    def spy(*args, **kwargs):
        asked.append((kwargs["validation_data"] is not None, kwargs["keep_best"], kwargs["loss"]))
        probe = np.random.default_rng(0).random((8, 784)).astype(np.float32)
        draws.append(np.array_equal(kwargs["augment"](probe, np.random.default_rng(5)),
                                    script.augment(probe, np.random.default_rng(5), script.SHIFT)))
        return real(*args, **kwargs)
    monkeypatch.setattr(script._common, "train_augmented", spy)
    data = script.load(write_tiny_mnist(str(tmp_path / "mnist")), True)
    X_train, _, X_val, y_val = data[:4]
    refit = script.run(data, 1, refit=True)
    assert refit["n_train"] == len(X_train) + len(X_val) and refit["val_accuracy"] is None
    chosen = script.run(data, 3, refit=False)
    assert chosen["n_train"] == len(X_train)
    kept = evaluate(chosen["spec"], chosen["params"], X_val, y_val, loss=script.LOSS)["accuracy"]
    assert kept == chosen["val_accuracy"] == chosen["history"]["val_accuracy"][chosen["best_epoch"] - 1]
    smoothed = {"name": script.LOSS, "label_smoothing": script.SMOOTHING}
    # selection keeps the best epoch (a refit has no validation); both train the smoothed loss
    assert asked == [(False, True, smoothed), (True, True, smoothed)]
    assert draws == [True, True]  # the default run's augmentation is the default shift


def test_resnet_augment_flips_a_random_half_and_shifts_by_at_most_its_shift():
    augment = load_script("resnet_fashion").augment
    rng = np.random.default_rng(0)
    images = np.zeros((200, 28, 28), np.float32)
    images[:, 2:26, 2:26] = rng.random((200, 24, 24))
    flat = images.reshape(200, 784)
    only = augment(flat, np.random.default_rng(1), 0).reshape(200, 28, 28)
    flipped = np.array([np.array_equal(a, i[:, ::-1]) for a, i in zip(only, images)])
    same = np.array([np.array_equal(a, i) for a, i in zip(only, images)])
    assert np.all(flipped ^ same) and 70 < flipped.sum() < 130  # shift 0: flips only, about half
    one = augment(flat, np.random.default_rng(2), 1).reshape(200, 28, 28)
    moves = set()
    for img, aug in zip(images, one):
        found = [(dy, dx) for f in (False, True) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(np.roll(img[:, ::-1] if f else img, (dy, dx), axis=(0, 1)), aug)]
        assert found and max(max(abs(dy), abs(dx)) for dy, dx in found) <= 1
        moves.update(found)
    assert moves == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
