"""Sweeps on a live Dask cluster give exactly the results of n_jobs=1.

The tests start their own ``dask.distributed.LocalCluster`` (2 worker processes, 1 thread each,
localhost only) and stop it; they are skipped only where the optional ``funcnn[dask]`` extra is
not installed (CI installs it).
"""
import logging

import pytest

from funcnn import sweep as S

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
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
