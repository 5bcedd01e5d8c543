"""Issue 10: real data end to end through the command line (in-process, in a temp dir).

Every CSV is written here: string labels, the label first, an integer regression target,
labels 1..k, a semicolon delimiter, a pandas index column, a feature-only file for
predict. Each fault listed under the issue's "Why" that belongs to datasets / CLI /
sweep / plot / the package has a test here that fails on the code before the issue.
"""
import csv
import hashlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import funcnn as F
from funcnn import cli, datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_MODULE = sys.modules["funcnn.train"]
FAST = ["--epochs", "40", "--lr", "0.01", "--hidden", "16", "--no-plot", "--quiet", "--validation-split", "0"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:          # argparse: status 2
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out, err


def fails(capsys, *argv, status=1):
    code, out, err = run(capsys, *argv)
    assert code == status, (out, err)
    assert "Traceback" not in err
    if status == 1:
        assert len(err.strip().splitlines()) == 1, err
    return out, err


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def iris():
    from sklearn.datasets import load_iris
    bunch = load_iris()
    return bunch.data, np.array(bunch.target_names)[bunch.target], [n.replace(" (cm)", "") for n in bunch.feature_names]


def read_predictions(text):
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


def first_number(text, after):
    return float(text.split(after)[1].split()[0])


# --------------------------------------------------------------------------- labels

def test_string_labels_train_and_predict_original_labels(capsys):
    """Before: 'cannot parse 'setosa' as a finite number (labels must be numbers ...)'."""
    X, names, features = iris()
    write_csv("iris.csv", features + ["species"], [list(x) + [s] for x, s in zip(X, names)])
    out, _ = ok(capsys, "train", "--data", "iris.csv", *FAST)
    assert "label column 'species'" in out and "task classification" in out
    assert first_number(out, "test accuracy ") > 0.8
    model = F.load("model.npz")
    assert model["classes"].tolist() == ["setosa", "versicolor", "virginica"]
    assert model["spec"][-1]["units"] == 3
    # a feature-only file: the original labels come back, under the label column's name
    write_csv("new.csv", features, [list(x) for x in X[::10]])
    out, err = ok(capsys, "predict", "model.npz", "--data", "new.csv")
    header, rows = read_predictions(out)
    assert header == ["species"] and len(rows) == 15
    assert {r[0] for r in rows} <= {"setosa", "versicolor", "virginica"}
    assert sum(r[0] == s for r, s in zip(rows, names[::10])) >= 12
    assert err == ""                                    # no labels in the file: no score
    out, _ = ok(capsys, "predict", "model.npz", "--data", "new.csv", "--proba")
    header, rows = read_predictions(out)
    assert header == ["setosa", "versicolor", "virginica"]
    assert all(abs(sum(map(float, r)) - 1) < 1e-6 for r in rows)
    # the labelled file: its label column is recognised and used for a score (stderr)
    out, err = ok(capsys, "predict", "model.npz", "--data", "iris.csv", "--split", "all", "--output", "p.csv")
    assert "accuracy" in err and first_number(err, "accuracy ") > 0.8
    header, rows = read_predictions(open("p.csv").read())
    assert header == ["species"] and len(rows) == 150
    out, _ = ok(capsys, "evaluate", "model.npz", "--data", "iris.csv", "--split", "all")
    assert first_number(out, "accuracy ") > 0.8


def test_label_first_is_found_by_name_or_as_the_only_text_column(capsys):
    """Before: a label in the first column silently became a regression on the last feature."""
    X, names, features = iris()
    write_csv("named.csv", ["class"] + features, [[s] + list(x) for x, s in zip(X, names)])
    out, _ = ok(capsys, "train", "--data", "named.csv", *FAST)
    assert "label column 'class'" in out and "softmax_cross_entropy" in out
    write_csv("bare.csv", None, [[s] + list(x) for x, s in zip(X, names)])     # no header at all
    out, _ = ok(capsys, "train", "--data", "bare.csv", *FAST, "--out", "bare.npz")
    assert "label column 0" in out and "softmax_cross_entropy" in out
    assert F.load("bare.npz")["params"]["W_0"].shape[0] == 4
    # numeric labels first, by --label-column NAME and INDEX
    codes = np.searchsorted(["setosa", "versicolor", "virginica"], names)
    write_csv("num.csv", ["kind"] + features, [[c] + list(x) for x, c in zip(X, codes)])
    for column in ("kind", "0"):
        out, _ = ok(capsys, "train", "--data", "num.csv", "--label-column", column, *FAST, "--out", "n.npz")
        assert "label column 'kind'" in out and "softmax_cross_entropy" in out


def test_labels_1_to_k_give_k_outputs(capsys):
    """Before: labels 1..3 gave a network with 4 outputs."""
    X, names, _ = iris()
    y = np.searchsorted(["setosa", "versicolor", "virginica"], names) + 1
    np.savez("d.npz", X=X, y=y)
    ok(capsys, "train", "--data", "d.npz", *FAST)
    model = F.load("model.npz")
    assert model["spec"][-1]["units"] == 3 and model["classes"].tolist() == [1, 2, 3]
    out, _ = ok(capsys, "predict", "model.npz", "--data", "d.npz", "--split", "all")
    assert {r[0] for r in read_predictions(out)[1]} <= {"1", "2", "3"}
    codes, classes = datasets.encode_labels([3, 1, 2, 1])
    assert codes.tolist() == [2, 0, 1, 0] and classes.tolist() == [1, 2, 3]


@pytest.mark.parametrize("labels, classes", [
    (["b", "a", "b"], ["a", "b"]),
    ([True, False, True], [False, True]),
    (np.array([10, 30, 20]), [10, 20, 30]),
    ((2.5, 1.5, 2.5), [1.5, 2.5]),
])
def test_encode_decode_any_labels(labels, classes):
    codes, found = datasets.encode_labels(labels)
    assert found.tolist() == classes
    assert datasets.decode_labels(codes, found).tolist() == list(labels)
    again, _ = datasets.encode_labels(labels, classes=found)
    assert again.tolist() == codes.tolist()


def test_npz_with_text_or_boolean_labels(capsys):
    """Before: "y must hold numbers, got dtype <U3"."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    np.savez("text.npz", X=X, y=np.where(X[:, 0] > 0, "pos", "neg"))
    np.savez("bool.npz", X=X, y=X[:, 1] > 0)
    assert datasets.load("text.npz")[1].dtype.kind == "U" and datasets.load("bool.npz")[1].dtype == bool
    out, _ = ok(capsys, "train", "--data", "text.npz", *FAST)
    assert "binary_cross_entropy" in out and F.load("model.npz")["classes"].tolist() == ["neg", "pos"]
    ok(capsys, "train", "--data", "bool.npz", *FAST, "--out", "b.npz")
    out, _ = ok(capsys, "predict", "b.npz", "--data", "bool.npz", "--split", "all")
    assert {r[0] for r in read_predictions(out)[1]} <= {"False", "True"}


def test_encode_pandas_series_and_unknown_labels():
    pd = pytest.importorskip("pandas")
    codes, classes = datasets.encode_labels(pd.Series(["dog", "cat", "dog"]))
    assert codes.tolist() == [1, 0, 1] and classes.tolist() == ["cat", "dog"]
    codes, classes = datasets.encode_labels(pd.Series(pd.Categorical(["x", "y", "x"])))
    assert classes.tolist() == ["x", "y"]
    assert datasets.encode_labels(["a", "c", "b"], classes=["c", "b", "a"])[0].tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="'cow'.*not one of the 2 known classes"):
        datasets.encode_labels(["cow"], classes=np.array(["cat", "dog"]))
    with pytest.raises(TypeError, match="mixes label types"):
        datasets.encode_labels(np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="missing label"):
        datasets.encode_labels(pd.Series(["a", None]))


def test_one_hot_targets_refused_with_a_hint(capsys):
    """Before: an error without a hint."""
    y = np.eye(3)[np.arange(30) % 3]
    np.savez("onehot.npz", X=np.random.default_rng(0).normal(size=(30, 2)), y=y)
    _, err = fails(capsys, "train", "--data", "onehot.npz", *FAST)
    assert "y.argmax(axis=1)" in err and "one-hot" in err
    with pytest.raises(ValueError, match=r"y\.argmax\(axis=1\)"):
        datasets.encode_labels(y)
    with pytest.raises(ValueError, match=r"y\.argmax\(axis=1\)"):
        datasets.infer_task(y)


# --------------------------------------------------------------------------- the task

def sklearn_frame(name):
    import sklearn.datasets
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    return bunch.data, bunch.target


@pytest.mark.parametrize("name, task", [("diabetes", "regression"), ("iris", "classification"),
                                        ("wine", "classification"), ("digits", "classification"),
                                        ("breast_cancer", "classification")])
def test_auto_task_on_sklearn_datasets_written_to_csv(tmp_path, name, task):
    X, y = sklearn_frame(name)
    header = [f"f{j}" for j in range(X.shape[1])] + ["target"]
    # as np.savetxt writes it: diabetes' target is a float column of whole numbers
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",", header=",".join(header), comments="")
    X2, y2 = datasets.load_csv(tmp_path / "d.csv")
    assert X2.shape == X.shape
    assert datasets.infer_task(y2) == task


def test_integer_regression_target_is_trained_as_regression(capsys):
    """Before: diabetes as CSV became a 347-class classification with 'test accuracy 0.0000', exit 0."""
    X, y = sklearn_frame("diabetes")
    write_csv("diabetes.csv", [f"f{j}" for j in range(10)] + ["progression"],
              [list(x) + [int(t)] for x, t in zip(X, y)])
    out, _ = ok(capsys, "train", "--data", "diabetes.csv", "--epochs", "5", "--no-plot", "--quiet")
    assert "task regression" in out and "mean_squared_error" in out and "test r2" in out
    assert "accuracy" not in out
    assert F.load("model.npz")["classes"] is None
    out, _ = ok(capsys, "train", "--data", "diabetes.csv", "--task", "classification", "--epochs", "1",
                "--no-plot", "--quiet", "--out", "c.npz")     # the rule can be overridden
    assert "task classification (--task classification)" in out


@pytest.mark.parametrize("y, task", [
    (["a", "b"] * 20, "classification"),
    ([True, False] * 20, "classification"),
    (np.linspace(0, 1, 40), "regression"),
    (np.arange(40) % 5 + 1, "classification"),
    (np.arange(400), "regression"),
    (np.arange(400) % 20, "classification"),
    (np.arange(400) % 21, "regression"),
    (np.arange(900) % 30, "classification"),        # 30 <= sqrt(900)
])
def test_infer_task_rule(y, task):
    assert datasets.infer_task(y) == task


# --------------------------------------------------------------------------- CSV formats

def test_semicolon_csv_loads(capsys):
    """Before: "need at least 2 columns"."""
    X, names, features = iris()
    write_csv("semi.csv", features + ["species"], [list(x) + [s] for x, s in zip(X, names)], delimiter=";")
    out, _ = ok(capsys, "train", "--data", "semi.csv", *FAST)
    assert "delimiter ';'" in out and F.load("model.npz")["params"]["W_0"].shape[0] == 4
    out, _ = ok(capsys, "train", "--data", "semi.csv", "--delimiter", ";", *FAST, "--out", "m2.npz")
    tab = write_csv("tab.tsv", features + ["species"], [list(x) + [s] for x, s in zip(X, names)], delimiter="\t")
    ok(capsys, "train", "--data", tab, "--delimiter", "tab", *FAST, "--out", "m3.npz")


def test_pandas_index_column_is_not_a_feature(capsys):
    """Before: the index became a feature."""
    X, names, features = iris()
    write_csv("pd.csv", [""] + features + ["species"], [[i] + list(x) + [s] for i, (x, s) in enumerate(zip(X, names))])
    out, _ = ok(capsys, "train", "--data", "pd.csv", *FAST)
    assert "index column" in out and F.load("model.npz")["params"]["W_0"].shape[0] == 4
    write_csv("named.csv", ["Unnamed: 0"] + features + ["species"],
              [[i] + list(x) + [s] for i, (x, s) in enumerate(zip(X, names))])
    ok(capsys, "train", "--data", "named.csv", *FAST, "--out", "n.npz")
    assert F.load("n.npz")["params"]["W_0"].shape[0] == 4
    ok(capsys, "train", "--data", "named.csv", "--index-column", "none", *FAST, "--out", "k.npz")
    assert F.load("k.npz")["params"]["W_0"].shape[0] == 5               # kept on request
    # an "index" column that is not a row index (repeated values) is a feature
    table = datasets.read_csv(write_csv("notidx.csv", ["index", "a", "y"], [[1, 2, 0], [1, 3, 1]]))
    assert table["names"] == ["index", "a", "y"] and table["index_column"] is None


def test_default_label_rule_and_errors(tmp_path):
    path = write_csv(tmp_path / "xy.csv", ["x", "y", "label"], [[1, 2, "a"], [3, 4, "b"]])
    X, y, info = datasets.load_csv(path, return_info=True)
    assert info["label_name"] == "label" and info["feature_names"] == ["x", "y"] and y.tolist() == ["a", "b"]
    path = write_csv(tmp_path / "year.csv", ["f1", "2019", "label"], [[1, 2, "a"], [3, 4, "b"]])
    X, y, info = datasets.load_csv(path, return_info=True)       # a numeric column name is still a header
    assert info["feature_names"] == ["f1", "2019"] and X.tolist() == [[1, 2], [3, 4]]
    path = write_csv(tmp_path / "mixed.csv", ["a", "target"], [[1, "x"], [2, "3"]])
    with pytest.raises(ValueError, match="only numbers or only text"):
        datasets.load_csv(path)
    path = write_csv(tmp_path / "two_text.csv", ["a", "b", "c"], [[1, "x", "p"], [2, "y", "q"]])
    with pytest.raises(ValueError, match=r"column 2 \('b'\): cannot parse 'x'.*features must be numbers"):
        datasets.load_csv(path)


# --------------------------------------------------------------------------- predict on unlabelled data

def test_predict_feature_only_csv_npy_and_npz_without_y(capsys):
    """Before: "X has 3 features but the scaler expects 4"; .npy unsupported; an npz without y refused."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    write_csv("train.csv", ["a", "b", "c", "answer"], [list(x) + [t] for x, t in zip(X, y)])
    ok(capsys, "train", "--data", "train.csv", *FAST)
    new = X[:20]
    expected = None
    for name, write in (("new.csv", lambda p: write_csv(p, ["a", "b", "c"], new.tolist())),
                        ("bare.csv", lambda p: write_csv(p, None, new.tolist())),
                        ("reordered.csv", lambda p: write_csv(p, ["c", "a", "b"], new[:, [2, 0, 1]].tolist())),
                        ("new.npy", lambda p: np.save(p, new)),
                        ("new.npz", lambda p: np.savez(p, X=new))):
        write(name)
        out, err = ok(capsys, "predict", "model.npz", "--data", name)
        header, rows = read_predictions(out)
        assert header == ["answer"] and len(rows) == 20, name
        labels = [r[0] for r in rows]
        assert set(labels) <= {"yes", "no"}
        expected = expected or labels
        assert labels == expected, name
    assert np.mean(np.array(expected) == y[:20]) > 0.8
    ok(capsys, "predict", "model.npz", "--data", "new.npy", "--output", "p.npy")
    assert np.load("p.npy").tolist() == expected
    write_csv("wrong.csv", ["a", "b"], new[:, :2].tolist())
    _, err = fails(capsys, "predict", "model.npz", "--data", "wrong.csv")
    assert "2 columns" in err and "expects 3 feature columns" in err


def test_predict_regression_writes_a_header_and_scores_when_targets_present(capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    t = X @ [1.5, -2.0] + 0.25
    write_csv("r.csv", ["u", "v", "y"], [list(x) + [v] for x, v in zip(X, t)])
    ok(capsys, "train", "--data", "r.csv", "--epochs", "60", "--lr", "0.01", "--no-plot", "--quiet")
    out, err = ok(capsys, "predict", "model.npz", "--data", "r.csv", "--split", "all")
    header, rows = read_predictions(out)
    assert header == ["y"] and len(rows) == 300 and "r2" in err
    write_csv("u.csv", ["u", "v"], X[:5].tolist())
    out, err = ok(capsys, "predict", "model.npz", "--data", "u.csv")
    assert read_predictions(out)[0] == ["y"] and err == ""
    _, err = fails(capsys, "evaluate", "model.npz", "--data", "u.csv")
    assert "holds no labels" in err


# --------------------------------------------------------------------------- output paths, Ctrl-C, resume

@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: every path error must come before the first epoch."""
    def forbidden(*args, **kwargs):
        raise AssertionError("training started although an output path is bad")
    monkeypatch.setattr(TRAIN_MODULE, "train", forbidden)


def unwritable_directory(tmp_path):
    if os.geteuid() == 0:          # root writes anywhere a mode allows: sysfs refuses new files even to root
        return "/sys"
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return str(d)


@pytest.mark.parametrize("args, message", [
    (["--out", "nodir/m.npz"], "--out: cannot write checkpoint nodir/m.npz: no such directory"),
    (["--plot", "nodir/c.png"], "--plot nodir/c.png: no such directory"),
    (["--out", "model.h5"], ".h5"),
    (["--plot", "curves.txt"], "unknown extension '.txt'"),
    (["--checkpoint", "ck.json"], ".json"),
    (["--checkpoint", "nodir/ck.npz"], "--checkpoint"),
    (["--out", "same.npz", "--checkpoint", "same.npz"], "must be different"),
])
def test_bad_output_paths_fail_before_training(capsys, no_training, args, message):
    """Before: reported only after training (the model was lost), OSError with a traceback."""
    _, err = fails(capsys, "train", "--data", "iris", *args)
    assert message in err


def test_unwritable_directory_fails_before_training(capsys, no_training, tmp_path):
    d = unwritable_directory(tmp_path)
    _, err = fails(capsys, "train", "--data", "iris", "--out", os.path.join(d, "m.npz"))
    assert "--out" in err
    _, err = fails(capsys, "train", "--data", "iris", "--plot", os.path.join(d, "c.png"))
    assert "cannot write" in err


def test_predict_output_path_checked_first(capsys):
    ok(capsys, "train", "--data", "iris", *FAST)
    _, err = fails(capsys, "predict", "model.npz", "--data", "iris", "--output", "nodir/p.csv")
    assert "no such directory" in err
    _, err = fails(capsys, "predict", "model.npz", "--data", "iris", "--output", "p.xlsx")
    assert "unknown extension" in err


def test_oserror_while_saving_is_one_line(capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(F.checkpoint, "save", disk_full)
    _, err = fails(capsys, "train", "--data", "iris", *FAST)
    assert "No space left on device" in err


@pytest.mark.parametrize("checkpoint", [None, "ck.npz"])
def test_ctrl_c_says_how_to_resume(capsys, monkeypatch, checkpoint):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(TRAIN_MODULE, "train", interrupted)
    extra = [] if checkpoint is None else ["--checkpoint", checkpoint]
    _, err = fails(capsys, "train", "--data", "iris", *FAST, *extra, status=130)
    if checkpoint is None:
        assert "--checkpoint PATH" in err and "resum" in err
    else:
        assert "ck.npz" in err and "same command to resume" in err
    assert not os.path.exists("model.npz")


def test_resume_is_reported_and_other_data_refused(capsys):
    args = ["train", "--data", "iris", "--hidden", "8", "--no-plot", "--quiet", "--checkpoint", "ck.npz"]
    ok(capsys, *args, "--epochs", "2", "--out", "a.npz")
    out, _ = ok(capsys, *args, "--epochs", "4", "--out", "b.npz")
    assert "resumed from epoch 2" in out
    # a different --seed would move test rows into training: refused, file untouched
    before = hashlib.sha256(open("ck.npz", "rb").read()).hexdigest()
    _, err = fails(capsys, *args, "--epochs", "6", "--seed", "1", "--out", "c.npz")
    assert "ck.npz" in err and "seed" in err and not os.path.exists("c.npz")
    assert hashlib.sha256(open("ck.npz", "rb").read()).hexdigest() == before


# --------------------------------------------------------------------------- divergence

def test_diverging_adam_run_exits_1_without_a_model(capsys):
    """Before: Adam with lr 10 ran to loss ~5556, exit 0, model saved.

    Needs the core's funcnn.train.DivergenceWarning (issue 10's rule for train)."""
    _, err = fails(capsys, "train", "--optimizer", "adam", "--lr", "10", "--no-plot", "--quiet")
    assert "diverged" in err
    assert not os.path.exists("model.npz")


def test_diverging_full_batch_adam_run_exits_1_without_a_model(capsys):
    """The core's DivergenceWarning (final loss > 3x the first minibatch's) caught by the CLI, end to end."""
    _, err = fails(capsys, "train", "--optimizer", "adam", "--lr", "10", "--batch-size", "full", "--no-plot",
                   "--quiet")
    assert err.startswith("funcnn train: error: training diverged: ") and "no model was written" in err
    assert not os.path.exists("model.npz")


def test_a_divergence_warning_stops_the_cli(capsys, monkeypatch):
    """The CLI side of the rule, whatever train's threshold: the warning class is an error."""
    class DivergenceWarning(UserWarning):
        pass
    real_train = TRAIN_MODULE.train

    def diverging(*args, **kwargs):
        result = real_train(*args, **kwargs)
        warnings.warn("final training loss 5556 is far above the first epoch's 2.3", DivergenceWarning)
        warnings.warn("an unrelated warning", UserWarning)
        return result
    monkeypatch.setattr(TRAIN_MODULE, "DivergenceWarning", DivergenceWarning, raising=False)
    monkeypatch.setattr(TRAIN_MODULE, "train", diverging)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        _, err = fails(capsys, "train", "--data", "iris", *FAST)
    assert "training diverged: final training loss 5556" in err and not os.path.exists("model.npz")
    assert [str(w.message) for w in shown] == ["an unrelated warning"]      # others pass through


# --------------------------------------------------------------------------- numeric options

@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size: expected a positive integer or 'full'"),
    (["--hidden", "64,,32"], "--hidden: expected comma-separated layer widths"),
    (["--hidden", "64,"], "--hidden"),
    (["--epochs", "0"], "--epochs: expected a positive integer"),
    (["--test-size", "0"], "--test-size: expected a fraction in (0, 1)"),
    (["--delimiter", ";;"], "--delimiter"),
])
def test_numeric_options_validated_as_the_api(capsys, args, message):
    """Before: --batch-size 0 meant full batch, --hidden 64,,32 was accepted, --epochs 0 crashed in plotting."""
    _, err = fails(capsys, "train", *args, status=2)
    assert message in err


def test_full_batch_and_no_hidden_layer_are_explicit_words(capsys):
    ok(capsys, "train", "--data", "iris", "--batch-size", "full", "--hidden", "none", "--epochs", "3",
       "--no-plot", "--quiet")
    assert [layer["type"] for layer in F.load("model.npz")["spec"]] == ["dense"]


# --------------------------------------------------------------------------- sweeps

def test_sweep_command_names_the_metric_and_repeats(capsys):
    out, _ = ok(capsys, "sweep", "--data", "iris", "--l2", "0", "0.01", "--hidden", "8", "--epochs", "5",
                "--lr", "0.01", "--repeats", "2")
    assert "seeds (0, 1; the same for every trial)" in out
    assert out.count("validation accuracy") >= 3 and "±" in out and "(mean of 2 seeds)" in out
    out, _ = ok(capsys, "sweep", "--data", "diabetes", "--hidden", "8", "--epochs", "3", "--lr", "0.01")
    assert "validation r2" in out and "accuracy" not in out


def test_sweep_ranking_is_not_grid_position_noise(capsys):
    """Before: one configuration scored differently depending on its position in the grid."""
    def score(out, l2):
        line = next(line for line in out.splitlines() if f'"l2": {l2}' in line and "validation" in line)
        return line.split("validation accuracy ")[1]
    a, _ = ok(capsys, "sweep", "--data", "iris", "--l2", "0.001", "0.01", "--hidden", "8", "--epochs", "5",
              "--lr", "0.01")
    b, _ = ok(capsys, "sweep", "--data", "iris", "--l2", "0.01", "0.1", "0.3", "--hidden", "8", "--epochs", "5",
              "--lr", "0.01")
    assert score(a, 0.01) == score(b, 0.01)


# --------------------------------------------------------------------------- the package

def test_submodules_reachable_after_import_funcnn():
    """Before: F.plot and F.sweep raised AttributeError; matplotlib must stay unimported."""
    code = ("import sys, funcnn as F\n"
            "mods = [F.plot, F.sweep, F.metrics, F.datasets, F.checkpoint, F.network, F.layers, F.losses,\n"
            "        F.optimizers, F.schedules, F.gradcheck, F.validation, sys.modules['funcnn.train']]\n"
            "assert all(type(m).__name__ == 'module' for m in mods)\n"
            "assert 'matplotlib' not in sys.modules and 'joblib' not in sys.modules\n"
            "assert 'sklearn' not in sys.modules\n"
            "assert F.estimators.NeuralNetClassifier and 'sklearn' in sys.modules   # loaded on first use\n"
            "print('ok')\n")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_train_api_hints_argmax_for_one_hot_labels():
    spec = [F.dense(3)]
    params = F.init_params(spec, 2, seed=0)
    X = np.zeros((6, 2))
    with pytest.raises(ValueError, match=r"one-hot rows pass y\.argmax\(axis=1\)"):
        F.train(spec, params, X, np.eye(3)[[0, 1, 2, 0, 1, 2]], loss="softmax_cross_entropy",
                optimizer=F.sgd(0.1), epochs=1, progress=False)
