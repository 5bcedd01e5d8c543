"""Fault injection: hostile files, lost workers, killed saves, huge CSV fields, overflowing inputs.

Each test reproduces one finding of the fault campaign (issue 24) and fails on the code before
the fix: a 1.5 KB model whose conv padding asks for gigabytes, a deflate bomb as a data file,
forged .npy headers, a sweep whose worker dies, a save killed mid-write, a CSV field over
131 072 characters, float64 features that overflow float32. Kept small for CI: the bombs are
a few hundred KB compressed, the worker kills are triggered by the results file, not by timers.
"""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import funcnn as F
from funcnn import bounded, checkpoint, cli as C, datasets as D, footprint, network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOMB_BYTES = 64 << 20  # inflates to 64 MB from about 64 KB


def _env(**extra):
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


# --- helpers: hostile files ------------------------------------------------------------------

def _npy_header(shape, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _bomb_member(zf, name, n_bytes=BOMB_BYTES, shape=None):
    """A deflated .npy member of zeros: a header declaring ``shape`` (default: all of it, float64) + n_bytes."""
    with zf.open(name, "w", force_zip64=True) as fh:
        fh.write(_npy_header(shape if shape is not None else (n_bytes // 8,)))
        block = bytes(1 << 20)
        for _ in range(n_bytes // len(block)):
            fh.write(block)


def _data_bomb(path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        _bomb_member(zf, "X.npy")
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros(3, dtype=np.int64))
    return path


def _padding_model(path, padding=4000):
    """A valid 1.5 KB model: a reshape of flat rows, a conv2d with a huge padding, a max pool
    (~3 GB per row before the fix, 61 GiB for 300 rows)."""
    spec = [F.reshape([28, 28, 1]), F.conv2d(8, 3, padding=padding), F.max_pool(2)]
    params = {"W_1": np.zeros((3, 3, 1, 8), np.float32), "b_1": np.zeros(8, np.float32)}
    checkpoint.save(path, spec, params, loss="mean_squared_error", data={"n_features": 784})
    return path


def _peak_rss_delta(code):
    """``(baseline KB, growth KB, stderr)`` of max RSS around ``code`` run in a fresh interpreter (after import funcnn)."""
    script = ("import resource, sys, funcnn, funcnn.datasets, funcnn.checkpoint\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "err = ''\n"
              "try:\n"
              f"    {code}\n"
              "except Exception as exc:\n"
              "    err = f'{type(exc).__name__}: {exc}'\n"
              "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "print(base, peak - base)\n"
              "print(err)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    first, err = out.stdout.split("\n", 1)
    base, grown = (int(v) for v in first.split())
    return base, grown, err.strip()


# --- 1. a small model whose padding asks for gigabytes ----------------------------------------

def test_padding_bomb_model_is_refused_at_load(tmp_path):
    path = _padding_model(str(tmp_path / "pad.npz"))
    assert os.path.getsize(path) < 4000
    with pytest.raises(ValueError, match=r"pad\.npz.*spec\[1\] \(conv2d\): padding 4000 is larger than the 28x28"):
        F.load(path)


def test_padding_bomb_predict_is_one_line_exit_1(tmp_path, capsys):
    path = _padding_model(str(tmp_path / "pad.npz"))
    np.savetxt(tmp_path / "x.csv", np.zeros((300, 784)), delimiter=",")
    assert C.main(["predict", path, "--data", str(tmp_path / "x.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "padding 4000" in err[0] and "Traceback" not in err[0]


def test_init_params_refuses_a_sample_over_the_budget(monkeypatch):
    spec = [F.reshape([28, 28, 1]), F.conv2d(64, 3, padding=28), F.max_pool(80), F.flatten(), F.dense(2)]
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", "1M")
    with pytest.raises(ValueError, match=r"layer 1 \(conv2d\) on inputs of shape 784: inference of one sample "
                                         r"needs \d+ bytes .* over the memory budget of 1048576 bytes"):
        F.init_params(spec, 784, seed=0)
    with pytest.raises(ValueError, match=r"layer 0 \(dense\) .* owns 78,600,000 parameters"):
        F.init_params([F.dense(100_000)], 785)


def test_inference_chunks_stay_within_the_budget(monkeypatch):
    spec = [F.reshape([28, 28, 1]), F.conv2d(32, 3, padding="same"), F.relu(), F.max_pool(4), F.flatten(), F.dense(3)]
    params = F.init_params(spec, 784, seed=0)
    X = np.random.default_rng(0).random((300, 784)).astype(np.float32)
    whole = network.infer(spec, params, X, chunk=300)
    per = footprint.per_sample(spec, (784,), 4)["inference"]
    param_bytes = sum(v.nbytes for v in params.values())
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", str(param_bytes + per * 10 + per // 2))
    chunk = footprint.inference_chunk(spec, (784,), np.float32, network.INFERENCE_CHUNK_BYTES, network.MIN_CHUNK)
    assert chunk == 10  # not MIN_CHUNK (256): the budget wins
    # float32: chunks of 10 and of 300 rows take different GEMM kernels, which round differently
    np.testing.assert_allclose(network.infer(spec, params, X), whole, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", str(param_bytes + per // 2))
    with pytest.raises(ValueError, match=r"layer 2 \(relu\) .*output 28x28x32 per sample.*over the memory budget"):
        F.predict(spec, params, X, loss="softmax_cross_entropy")


def test_train_refuses_a_minibatch_over_the_budget(monkeypatch):
    spec = [F.dense(64), F.relu(), F.dense(2)]
    params = F.init_params(spec, 100, seed=0)
    X, y = np.zeros((500, 100), np.float32), np.zeros(500, int)
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", "400K")
    with pytest.raises(ValueError, match=r"train: .*training of 500 samples needs .*lower batch_size \(at most"):
        F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.sgd(0.1), epochs=1)
    F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.sgd(0.1), epochs=1, batch_size=32)


@pytest.mark.parametrize("text,expected", [("2G", 2 << 30), ("512M", 512 << 20), ("1000", 1000), ("1.5K", 1536)])
def test_budget_variable(monkeypatch, text, expected):
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", text)
    assert footprint.memory_budget() == expected
    assert footprint.memory_budget(budget=77) == 77


def test_budget_default_and_bad_values(monkeypatch):
    monkeypatch.delenv("FUNCNN_MEMORY_BUDGET", raising=False)
    assert footprint.memory_budget() == int(footprint.DEFAULT_FRACTION * footprint.physical_memory())
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", "50%")
    assert footprint.memory_budget() == footprint.physical_memory() // 2
    for bad in ("lots", "-1", "0"):
        monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", bad)
        with pytest.raises(ValueError, match="FUNCNN_MEMORY_BUDGET"):
            footprint.memory_budget()


# --- 2. data and model files that expand before they are refused -------------------------------

def test_deflate_bomb_data_file_is_refused_before_inflating(tmp_path):
    path = _data_bomb(str(tmp_path / "bomb.npz"))
    compressed = os.path.getsize(path)
    assert compressed < 2 << 20
    with pytest.raises(ValueError, match=r"bomb\.npz: member 'X\.npy' would expand from \d+ to \d+ bytes \(\d+x"):
        D.load(path)
    base, grown, err = _peak_rss_delta(f"funcnn.datasets.load({path!r})")
    assert "decompression bomb" in err
    assert grown * 1024 < 2 * compressed + (8 << 20), (base, grown, compressed)


def test_deflate_bomb_checkpoint_is_refused_naming_the_member(tmp_path):
    good = str(tmp_path / "good.npz")
    spec = [F.dense(2)]
    F.save(good, spec, F.init_params(spec, 3, seed=0), loss="softmax_cross_entropy")
    bad = str(tmp_path / "bad.npz")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "params/W_0.npy":
                _bomb_member(dst, info.filename)
            else:
                dst.writestr(info.filename, src.read(info))
    with pytest.raises(ValueError, match=r"bad\.npz: member 'params/W_0\.npy' would expand"):
        F.load(bad)


def test_forged_npy_header_is_refused_before_allocating(tmp_path):
    # a 100-byte member whose header declares 8 GB: numpy would allocate the 8 GB first
    path = str(tmp_path / "forged.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", _npy_header((1 << 20, 1024)) + bytes(100))
        zf.writestr("y.npy", _npy_header((3,), "<i8") + bytes(24))
    with pytest.raises(ValueError, match=r"forged\.npz: member 'X\.npy': declares an array of shape \(1048576, 1024\)"):
        D.load(path)
    npy = tmp_path / "forged.npy"
    npy.write_bytes(_npy_header((1000, 1000)) + bytes(80))
    with pytest.raises(ValueError, match=r"forged\.npy: declares an array of shape \(1000, 1000\) .* holds 80 bytes"):
        D.load_features(str(npy), 1000)
    folder = tmp_path / "dir"
    folder.mkdir()
    np.save(folder / "X.npy", np.zeros((3, 2)))
    (folder / "y.npy").write_bytes(_npy_header((1 << 31,), "<i8") + bytes(24))
    with pytest.raises(ValueError, match=r"y\.npy: declares an array of shape \(2147483648,\)"):
        D.load_npy_directory(str(folder))


def test_gzip_bomb_idx_file_is_refused(tmp_path):
    import gzip
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"\x00\x00\x08\x03" + (1000).to_bytes(4, "big") + (448).to_bytes(4, "big") * 2)
        block = bytes(1 << 20)
        for _ in range(BOMB_BYTES // len(block)):
            fh.write(block)
    with pytest.raises(ValueError, match=r"its IDX header declares \d+ bytes from \d+ of gzip data .*decompression "
                                         r"bomb .*refused before inflating it"):
        D.load_idx(str(path))
    liar = tmp_path / "t10k-images-idx3-ubyte.gz"  # a small declared size, then the bomb
    with gzip.open(liar, "wb", compresslevel=9) as fh:
        fh.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2)
        for _ in range(BOMB_BYTES // len(block)):
            fh.write(block)
    with pytest.raises(ValueError, match=r"gzip data expand past 57 bytes"):
        D.load_idx(str(liar))
    honest = tmp_path / "train-labels-idx1-ubyte.gz"
    D.write_idx(str(tmp_path / "labels"), np.arange(5, dtype=np.uint8))
    with gzip.open(honest, "wb") as fh:
        fh.write((tmp_path / "labels").read_bytes())
    assert D.load_idx(str(honest)).tolist() == [0, 1, 2, 3, 4]


def test_honest_compressed_files_still_load(tmp_path):
    rng = np.random.default_rng(0)
    X, y = (rng.random((200, 5)) * 10).round(1), rng.integers(0, 3, 200)
    np.savez_compressed(tmp_path / "ok.npz", X=X, y=y)
    X2, y2 = D.load(str(tmp_path / "ok.npz"))
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    sparse = np.zeros((2000, 1000))  # mostly zeros: compresses far beyond 200x, but small: accepted
    sparse[::97, ::13] = 1.0
    np.savez_compressed(tmp_path / "sparse.npz", X=sparse, y=np.zeros(2000, int))
    assert np.array_equal(D.load(str(tmp_path / "sparse.npz"))[0], sparse)


# --- 3. a sweep whose worker dies keeps its finished trials -------------------------------------

def _killer_score(flag_dir, log=None):
    """A score function that kills its worker process on its third call (one call per trial);
    with ``log``, only once the sweep has written the first two finished trials there (else the
    other worker's result may still be in flight when the pool dies)."""
    def score(y_true, y_pred):
        import os as _os
        import time as _time
        for k in range(100):
            try:
                _os.close(_os.open(_os.path.join(flag_dir, f"call-{k}"), _os.O_CREAT | _os.O_EXCL))
                break
            except FileExistsError:
                continue
        if k == 2:
            deadline = _time.monotonic() + 60
            while log is not None and _time.monotonic() < deadline:
                try:
                    with open(log) as fh:
                        if len(fh.readlines()) >= 2:
                            break
                except FileNotFoundError:
                    pass
                _time.sleep(0.05)
            _os._exit(1)  # the worker dies: joblib's loky backend raises TerminatedWorkerError
        return float((y_true == y_pred).mean())
    return score


def test_sweep_keeps_finished_trials_when_a_worker_dies_and_resumes(tmp_path, digits):
    X, y = digits
    X, y = X[:400], y[:400]
    kw = dict(validation_data=(X[300:], y[300:]), loss="softmax_cross_entropy",
              trials=F.sweep.grid(l2=[0.0, 1e-3, 1e-2, 1e-1, 1.0]), base={"epochs": 2, "hidden": (8,)})
    log = str(tmp_path / "results.jsonl")
    flags = tmp_path / "flags"
    flags.mkdir()
    results = F.sweep.sweep(X[:300], y[:300], n_jobs=2, backend="loky", score=_killer_score(str(flags), log),
                            log=log, **kw)
    lost = [r for r in results if r["lost"]]
    done = [r for r in results if not r["lost"]]
    assert len(results) == 5 and len(done) >= 2 and lost
    assert all(r["error"].startswith("lost: TerminatedWorkerError") and "\n" not in r["error"] for r in lost)
    with open(log) as fh:
        lines = [json.loads(line) for line in fh]
    assert sorted(e["index"] for e in lines) == sorted(r["index"] for r in done)
    # a rerun skips the finished trials and ends as one uninterrupted sweep
    def acc(y_true, y_pred):
        return float((y_true == y_pred).mean())
    resumed = F.sweep.sweep(X[:300], y[:300], n_jobs=1, score=acc, log=log, resume=True, **kw)
    fresh = F.sweep.sweep(X[:300], y[:300], n_jobs=1, score=acc, **kw)
    assert sum(1 for r in resumed if r.get("resumed")) == len(done)
    assert [(r["index"], r["score"]) for r in resumed] == [(r["index"], r["score"]) for r in fresh]
    assert not any(r["lost"] for r in resumed)
    with open(log) as fh:
        assert len(fh.readlines()) == 5


def test_sweep_resume_needs_a_log_and_refuses_a_foreign_file(tmp_path, digits):
    X, y = digits
    kw = dict(validation_data=(X[300:400], y[300:400]), loss="softmax_cross_entropy", trials=[{}],
              base={"epochs": 1})
    with pytest.raises(ValueError, match="resume=True needs log=PATH"):
        F.sweep.sweep(X[:300], y[:300], resume=True, **kw)
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes\.jsonl: line 1 is not a sweep result"):
        F.sweep.sweep(X[:300], y[:300], log=str(foreign), resume=True, **kw)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _start(args, folder, log):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=folder, env=_env(DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="error"),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=30)


def test_cli_sweep_survives_a_killed_dask_worker_and_resumes(tmp_path):
    """Two `dask worker` processes (a one-thread cluster would make joblib run the trials in the
    client itself); one is SIGKILLed once two trials have finished: the scheduler gives its trials
    to the other, the sweep completes, and --resume then has nothing left to run."""
    pytest.importorskip("distributed")
    log = open(tmp_path / "dask.log", "wb")
    procs = []
    try:
        sf = tmp_path / "scheduler.json"
        procs.append(_start(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(sf)], tmp_path, log))
        deadline = time.monotonic() + 90
        while not sf.exists() or not sf.read_text().strip():
            assert time.monotonic() < deadline and procs[0].poll() is None, "dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sf.read_text())["address"]
        workers = [_start(["dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                           "--host", "127.0.0.1", "--local-directory", str(tmp_path)], tmp_path, log) for _ in range(2)]
        procs += workers
        from distributed import Client
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        results = tmp_path / "results.jsonl"
        args = ["funcnn", "sweep", "--data", "digits", "--l2", "0", "1e-4", "1e-3", "1e-2", "0.1", "1",
                "--hidden", "16", "--epochs", "40", "--results", str(results)]
        run = subprocess.Popen([sys.executable, "-m", *args, "--scheduler", address, "--scheduler-timeout", "60"],
                               cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(run)
        deadline = time.monotonic() + 240
        while not (results.exists() and len(results.read_text().splitlines()) >= 2):  # two trials finished
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        os.killpg(workers[0].pid, signal.SIGKILL)  # one worker dies mid-sweep
        out, err = run.communicate(timeout=240)
        assert run.returncode == 0, (out, err)
        assert "6 of 6 trials finished" in out and "Traceback" not in err
        assert len(results.read_text().splitlines()) == 6
        again = subprocess.run([sys.executable, "-m", *args, "--resume"], cwd=tmp_path, env=_env(),
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"6 of 6 trials finished (6 from {results})" in again.stdout
        assert [line for line in again.stdout.splitlines() if "validation" in line] == \
            [line for line in out.splitlines() if "validation" in line]
    finally:
        _stop(procs)
        log.close()


# --- 4. CSV fields of any length ------------------------------------------------------------------

def test_csv_field_over_the_csv_limit_loads(tmp_path):
    path = tmp_path / "wide.csv"
    long_label = "x" * 200_000
    path.write_text(f"a,b,label\n1,2,{long_label}\n3,4,short\n5,6,short\n")
    before = csv.field_size_limit()
    X, y = D.load(str(path))
    assert X.shape == (3, 2) and y[0] == long_label
    assert csv.field_size_limit() == before  # not a global surprise


def test_csv_long_cell_in_an_error_is_cut(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1," + "z" * 200_000 + ",0\n3,4,1\n")
    with pytest.raises(ValueError) as info:
        D.load(str(path))
    assert "line 2, column 2 ('b')" in str(info.value) and "(200000 characters)" in str(info.value)
    assert len(str(info.value)) < 400


# --- 5. a killed save leaves no temporary file -----------------------------------------------------

def _temps(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_killed_save_temporary_is_removed_by_the_next_load(tmp_path):
    path = str(tmp_path / "model.npz")
    spec = [F.dense(2)]
    params = F.init_params(spec, 3, seed=0)
    F.save(path, spec, params, loss="softmax_cross_entropy")
    code = ("import time, funcnn.checkpoint as c\n"
            f"c.atomic_write({path!r}, lambda fh: (fh.write(b'partial'), fh.flush(), time.sleep(60)))\n")
    child = subprocess.Popen([sys.executable, "-c", code], env=_env())
    deadline = time.monotonic() + 60
    while not _temps(tmp_path):
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)  # killed between the temporary file's creation and its rename
    child.wait()
    assert len(_temps(tmp_path)) == 1
    loaded = F.load(path)  # the next load cleans up; the previous file is intact
    assert _temps(tmp_path) == []
    assert np.array_equal(loaded["params"]["W_0"], params["W_0"])


def test_temporary_of_an_unreaped_killed_writer_is_removed(tmp_path):
    path = str(tmp_path / "model.npz")
    spec = [F.dense(2)]
    F.save(path, spec, F.init_params(spec, 3, seed=0), loss="softmax_cross_entropy")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        directory, stem = checkpoint._temp_location(path)
        stale = os.path.join(directory, f".{stem}.{child.pid}.{'ab' * 6}.tmp")
        open(stale, "wb").close()
        F.load(path)
        assert os.path.exists(stale)  # its writer still runs: not touched
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        F.load(path)  # a zombie (killed, not reaped yet) will never finish its write
        assert not os.path.exists(stale)
    finally:
        child.kill()
        child.wait()


# --- 6. inputs that overflow the training dtype ----------------------------------------------------

def test_features_that_overflow_float32_are_named_before_training():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    X[7, 3] = 1e300
    y = (X[:, 0] > 0).astype(int)
    spec = [F.dense(4), F.relu(), F.dense(2)]
    params = F.init_params(spec, 4, seed=0)
    with pytest.raises(ValueError, match=r"X column 3 holds 1e\+300 \(row 7\), beyond the largest float32"):
        F.train(spec, params, X, y, loss="softmax_cross_entropy", optimizer=F.adam(), epochs=1)
    with pytest.raises(ValueError, match=r"validation_data X column 3 holds 1e\+300"):
        F.train(spec, params, X[:6], y[:6], loss="softmax_cross_entropy", optimizer=F.adam(), epochs=1,
                validation_data=(X, y))
    # float64 params take them
    F.value_and_grad(spec, F.init_params(spec, 4, seed=0, dtype=np.float64), X, y, loss="softmax_cross_entropy")


def test_bounded_reader_agrees_with_numpy(tmp_path):
    arrays = {"a": np.arange(12.0).reshape(3, 4), "b": np.array("text"), "c": np.zeros((0, 3), np.int8),
              "d": np.asfortranarray(np.arange(6).reshape(2, 3))}
    np.savez_compressed(tmp_path / "x.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        for info in zf.infolist():
            got = bounded.read_npz_member(zf, info, "x.npz")
            want = arrays[info.filename[:-4]]
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_forward_and_value_and_grad_refuse_a_batch_over_the_budget(monkeypatch):
    spec = [F.dense(64), F.relu(), F.dense(2)]
    params = F.init_params(spec, 100, seed=0)
    X, y = np.zeros((500, 100), np.float32), np.zeros(500, int)
    monkeypatch.setenv("FUNCNN_MEMORY_BUDGET", "400K")
    with pytest.raises(ValueError, match=r"forward: layer \d \(\w+\) .*training of 500 samples needs"):
        F.forward(spec, params, X)
    with pytest.raises(ValueError, match=r"value_and_grad: .*of 500 samples needs"):
        F.value_and_grad(spec, params, X, y, loss="softmax_cross_entropy")
    F.forward(spec, params, X[:32])
