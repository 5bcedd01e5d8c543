"""Sweeps on a live Dask cluster give exactly the results of n_jobs=1.

The tests start their own ``dask.distributed.LocalCluster`` (2 worker processes, 1 thread each,
localhost only) and stop it, and, for ``funcnn sweep --scheduler``, real ``dask scheduler`` and
``dask worker`` processes, stopped (SIGTERM, then SIGKILL after 15 s) by a finalizer; they are skipped only where the optional ``funcnn[dask]`` extra is
not installed (CI installs it).
"""
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from funcnn import sweep as S

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")


@contextlib.contextmanager
def _environ_restored():
    """os.environ as it was, afterwards: a LocalCluster's nannies write their workers' settings
    (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_, ...) into this process's
    environment, where every later test's subprocess would inherit them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
    with _environ_restored():
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as lc:
            with Client(lc, timeout="60s") as client:
                yield client


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X[:600], y[:600], X[600:900], y[600:900]


def _strip(results):
    return [{k: r[k] for k in ("index", "trial", "seed", "score", "val_loss", "error")} for r in results]


def test_localcluster_sweep_equals_serial(cluster, digits):
    X, y, Xv, yv = digits
    kw = dict(validation_data=(Xv, yv), loss="softmax_cross_entropy",
              trials=S.grid(l2=[0.0, 1e-3, 1e-2], hidden=[(16,), (32,)]),
              base={"epochs": 3, "batch_size": 64, "lr": 1e-2}, seed=5, keep_params="all")
    serial = S.sweep(X, y, n_jobs=1, **kw)
    with joblib.parallel_config(backend="dask"):
        remote = S.sweep(X, y, n_jobs=-1, **kw)
    assert _strip(remote) == _strip(serial)
    for a, b in zip(remote, serial):
        for k in a["params"]:
            assert a["params"][k].tobytes() == b["params"][k].tobytes()
    # the work really ran on the cluster's worker processes
    assert len(cluster.scheduler_info()["workers"]) == 2


# --- funcnn sweep --scheduler against real `dask scheduler` / `dask worker` processes --------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 90  # seconds for the scheduler to write its file and the workers to register


def _env():
    """The scheduler, the workers and the CLI import this checkout's funcnn (trials are pickled by reference)."""
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}


def _stop(procs):
    """SIGTERM every process group we started, then SIGKILL what is left after a bounded wait."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, request):
    """A `dask scheduler` on localhost (a free port chosen by the scheduler itself, no dashboard) and
    two `dask worker` processes (1 process, 1 thread each); stopped by the finalizer whatever happens."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    procs = []
    request.addfinalizer(lambda: _stop(procs))
    log = open(folder / "dask.log", "wb")
    request.addfinalizer(log.close)

    def start(*args):
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=folder, env=_env(), stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))

    start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
          str(scheduler_file))
    deadline = time.monotonic() + START_TIMEOUT
    while not scheduler_file.exists() or not scheduler_file.read_text().strip():
        if procs[0].poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"dask scheduler did not start: {(folder / 'dask.log').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written in one go; let it be complete
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        start("worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1",
              "--local-directory", str(folder))
    from distributed import Client
    with Client(address, timeout="60s", set_as_default=False) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT)
    return address


def _cli(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "funcnn", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc


def _result_lines(stdout):
    """The sweep's table: every trial's line and the best one (not the lines naming where it ran)."""
    return [line for line in stdout.splitlines() if "validation" in line]


def test_cli_sweep_on_scheduler_equals_serial(scheduler):
    sweep_args = ["sweep", "--data", "digits", "--hidden", "16", "--hidden", "32", "--l2", "0", "1e-3",
                  "--epochs", "3", "--batch-size", "64", "--seed", "1"]
    serial = _cli(*sweep_args, "--n-jobs", "1")
    assert serial.returncode == 0, serial.stderr
    remote = _cli(*sweep_args, "--scheduler", scheduler, "--scheduler-timeout", "60")
    assert remote.returncode == 0, remote.stderr
    assert f"dask scheduler {scheduler}: 2 workers, 2 threads" in remote.stdout
    lines = _result_lines(remote.stdout)
    assert len(lines) == 5 and lines[-1].startswith("best: ")
    assert lines == _result_lines(serial.stdout)


def test_cli_sweep_unreachable_scheduler_is_one_line_exit_1():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    proc = _cli("sweep", "--scheduler", f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "2", timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - start < 60
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"funcnn sweep: error: --scheduler tcp://127.0.0.1:{port}: cannot reach a Dask "
                                "scheduler within 2 s")
    assert "Traceback" not in proc.stderr
