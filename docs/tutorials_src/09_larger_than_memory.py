"""
# Data larger than memory

`train` never converts or copies X as a whole: it gathers each minibatch and converts it
to the params' dtype on its own, and `predict`/`evaluate` work through chunks of rows. So
X can be a **memory map** of a file on disk, in its own compact dtype (`uint8` pixels),
and a data set larger than RAM trains with one batch's worth of memory.

The convention: a directory holding `X.npy` and `y.npy` is a data source
(`funcnn.datasets.load`, `load_train_test`, and `funcnn train --data DIR`). This page
writes a small one — the idea is the same at 100 GB.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import load, load_npy_directory, tail_split

# %%
# ## Write X.npy chunk by chunk
#
# `np.lib.format.open_memmap` creates the file at its final size and lets us fill it a
# chunk at a time: the whole array is never in memory. Here: 50 000 noisy copies of the
# digits as `uint8`, in random order (the test part will be the *last* rows, so the
# order must be random).

X_digits, y_digits = load("digits")
n, rng = 50_000, np.random.default_rng(0)
directory = tempfile.mkdtemp()
X_file = np.lib.format.open_memmap(os.path.join(directory, "X.npy"), mode="w+", dtype=np.uint8,
                                   shape=(n, 64))
y_all = np.empty(n, dtype=np.int64)
for start in range(0, n, 10_000):
    idx = rng.integers(0, len(X_digits), size=10_000)
    noisy = X_digits[idx] * 15 + rng.integers(0, 16, size=(10_000, 64))
    X_file[start:start + 10_000] = np.clip(noisy, 0, 255)
    y_all[start:start + 10_000] = y_digits[idx]
X_file.flush()
del X_file
np.save(os.path.join(directory, "y.npy"), y_all)
print(sorted(os.listdir(directory)), os.path.getsize(os.path.join(directory, "X.npy")) // 1024, "KiB")

# %%
# ## Open it memory-mapped
#
# `load_npy_directory` opens X with `mmap_mode="r"`: nothing is read until rows are
# used. `tail_split` (what `load_train_test(directory)` uses) makes the *last* rows the
# test part, as slices: views of the memory map, not copies. (`split` shuffles and
# stratifies, which would copy.)

X, y = load_npy_directory(directory)
print(type(X).__name__, X.dtype, X.shape)
X_train, X_test, y_train, y_test = tail_split(X, y, test_size=0.2)
print(X_train.shape, X_test.shape, "views of the file:", np.shares_memory(X_train, X))

# %%
# Reading a few rows reads only their pages of the file:

fig, axes = plt.subplots(1, 8, figsize=(8, 1.4))
for ax, row, label in zip(axes, X[-8:], y[-8:]):
    ax.imshow(row.reshape(8, 8), cmap="gray_r")
    ax.set_title(int(label), fontsize=8)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# ## Train on it
#
# The params are float32; each minibatch of `uint8` rows is gathered and converted on
# its own. (Standardising would copy X whole; here the network trains on the raw 0–255
# values, with a small learning rate.)

spec = [F.dense(64), F.relu(), F.dense(10)]
params = F.init_params(spec, n_inputs=64, seed=0)
params, history = F.train(spec, params, X_train, y_train, loss="softmax_cross_entropy",
                          optimizer=F.adam(lr=1e-3), epochs=2, batch_size=256, progress=False)
print(F.evaluate(spec, params, X_test, y_test, loss="softmax_cross_entropy"))

# %%
# ## The same from the command line
#
# `funcnn train --data DIR` reads the directory the same way: the test part is its last
# `--test-size` rows, the validation part the last `--validation-split` of the rest, and
# `--scale` is refused (it would copy X). `scripts/make_large_dataset.py --gigabytes 1.0
# --out DIR` in the repository writes a gigabyte-sized one from Fashion-MNIST; the
# [data guide](../guide/data.md) has the measurements of such a run.
