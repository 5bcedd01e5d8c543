"""Sweeps on a local Ray instance (through joblib's ray backend) give exactly the results of n_jobs=1.

Skipped unless ``ray`` is installed. It is not in CI's install (``.[test,dask]``): ray is a
large download, and Dask is the tested cluster engine. On this project's machines (Python
3.11, 2 cores) ``pip install ray`` takes about 15 s and ``ray.init`` about 3 s; run this test
with ``pip install ray && python -m pytest tests/test_ray.py``.
"""
import os

import numpy as np
import pytest

from funcnn import sweep as S

ray = pytest.importorskip("ray")
joblib = pytest.importorskip("joblib")


@pytest.fixture(scope="module")
def ray_local():
    from ray.util.joblib import register_ray
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # The workers import this checkout's funcnn (the trials are pickled by reference).
    env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": env})
    register_ray()
    try:
        yield
    finally:
        ray.shutdown()


def _strip(results):
    return [{k: r[k] for k in ("index", "trial", "seed", "score", "val_loss", "error")} for r in results]


def test_ray_sweep_equals_serial(ray_local):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    kw = dict(validation_data=(X[600:900], y[600:900]), loss="softmax_cross_entropy",
              trials=S.grid(l2=[0.0, 1e-2], hidden=[(16,), (32,)]),
              base={"epochs": 3, "batch_size": 64, "lr": 1e-2}, seed=5, keep_params="all")
    serial = S.sweep(X[:600], y[:600], n_jobs=1, **kw)
    with joblib.parallel_config(backend="ray"):
        remote = S.sweep(X[:600], y[:600], n_jobs=-1, **kw)
    assert _strip(remote) == _strip(serial)
    for a, b in zip(remote, serial):
        for k in a["params"]:
            assert a["params"][k].tobytes() == b["params"][k].tobytes()
    assert np.isfinite([r["score"] for r in remote]).all()
