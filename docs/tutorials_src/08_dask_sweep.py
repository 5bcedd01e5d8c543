"""
# Sweeps on Dask

A sweep's trials are independent, and each is a plain function of plain data (arrays,
dicts, strings), so they run anywhere joblib runs: on local processes, or on a Dask
cluster through joblib's `dask` backend — with the same results, bit for bit, as
`n_jobs=1`.

This page starts a small in-process Dask cluster so the build stays fast; on real
machines, start `dask scheduler` and `dask worker ADDRESS` (with funcnn installed on
each) and pass the scheduler's address to `Client`. Needs `pip install "funcnn[dask]"`.
"""

import joblib
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster

from funcnn.datasets import load, split
from funcnn.sweep import best, grid, sweep

X, y = load("digits")
X = X / 16.0
X_train, X_val, y_train, y_val = split(X, y, test_size=0.3, seed=0)

trials = grid(hidden=[(32,), (64,)], l2=[1e-4, 1e-3], lr=[3e-3, 1e-2])
base = {"epochs": 15, "batch_size": 64}
print(len(trials), "trials, e.g.", trials[0])

# %%
# ## On the cluster
#
# `joblib.parallel_config(backend="dask")` sends the trials to the client's cluster;
# `n_jobs=-1` lets the backend decide how many run at once.

with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
        Client(cluster) as client:
    print(client)
    with joblib.parallel_config(backend="dask"):
        on_dask = sweep(X_train, y_train, validation_data=(X_val, y_val), loss="softmax_cross_entropy",
                        trials=trials, base=base, n_jobs=-1)

for r in on_dask[:4]:
    print(f"{r['trial']}  validation accuracy {r['score']:.4f}")

by_index = sorted(on_dask, key=lambda r: r["index"])
labels = [f"{r['trial']['hidden'][0]} units, l2 {r['trial']['l2']:g}, lr {r['trial']['lr']:g}" for r in by_index]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.barh(labels, [r["score"] for r in by_index])
ax.set_xlim(0.9, 1.0)
ax.set_xlabel("validation accuracy")
ax.set_title("8 trials, run on the Dask cluster")
fig.tight_layout()
plt.show()

# %%
# ## The same results as one process
#
# Every trial uses the same seed and limits BLAS to one thread, so where and in which
# order trials run changes nothing:

here = sweep(X_train, y_train, validation_data=(X_val, y_val), loss="softmax_cross_entropy",
             trials=trials, base=base, n_jobs=1)
print([r["score"] for r in here] == [r["score"] for r in on_dask])
print(all(np.array_equal(best(here)["params"][k], best(on_dask)["params"][k]) for k in best(here)["params"]))

# %%
# ## From the command line
#
# `funcnn sweep --scheduler tcp://HOST:8786 --data digits --l2 1e-4 1e-3 --hidden 32 --hidden 64`
# does the same against a running scheduler and prints the results best first (see the
# [command-line guide](../guide/cli.md)). The data are shipped whole to the workers: a
# sweep is for data that fit in memory.
