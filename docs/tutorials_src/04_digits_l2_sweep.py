"""
# Digits: an L2 sweep and its validation curve

How strongly to penalise large weights is a choice made on data the network was not
trained on. This tutorial sweeps the L2 coefficient of a one-hidden-layer ReLU network on
scikit-learn's digits, draws the validation curve, picks λ on the validation split and
only then looks at the test split — once.

funcnn's `l2` adds `l2/2 · Σ‖W‖²` (over weight matrices, not biases) to the *mean* loss,
so its gradient adds `l2 · W` to each weight's gradient.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import load, split
from funcnn.sweep import best, grid, sweep

# %%
# ## Three splits
#
# Train (to fit), validation (to choose λ), test (to report). Raw pixels 0–16, scaled
# to [0, 1].

X, y = load("digits")
X = X / 16.0
X_rest, X_test, y_rest, y_test = split(X, y, test_size=0.33, seed=0)
X_train, X_val, y_train, y_val = split(X_rest, y_rest, test_size=0.4, seed=0)
print(len(X_train), len(X_val), len(X_test))

# %%
# ## One sweep call
#
# A *trial* is a dict of settings; `grid` makes the list of them and `base` holds what
# all trials share. `sweep` trains one network per trial, scores it on
# `validation_data` and returns the results best first. Every trial uses the same seed
# (common random numbers), so two trials differ only by their λ. (The build trains for
# 60 epochs to stay fast.)

lambdas = np.logspace(-5, -1, 9)
results = sweep(X_train, y_train, validation_data=(X_val, y_val), loss="softmax_cross_entropy",
                trials=grid(l2=lambdas),
                base={"hidden": (256,), "activation": "relu", "optimizer": "adam",
                      "lr": 3e-3, "epochs": 60, "batch_size": 64})
for r in sorted(results, key=lambda r: r["trial"]["l2"]):
    print(f"l2 = {r['trial']['l2']:.1e}   validation accuracy {r['score']:.4f}   "
          f"validation loss {r['val_loss']:.4f}")

# %%
# ## The validation curve
#
# Too much penalty under-fits: the weights are held near zero and the validation score
# falls. As the penalty shrinks, the curve levels off — and with fewer images or longer
# training, it falls again on the left as the network over-fits the 721 training images.
# `funcnn.plot.validation_curve` draws it (on a log axis for a geometric grid).

by_l2 = sorted(results, key=lambda r: r["trial"]["l2"])
out = tempfile.mkdtemp()
path = F.plot.validation_curve([r["trial"]["l2"] for r in by_l2], [r["score"] for r in by_l2],
                               os.path.join(out, "validation_curve.png"), param_name="l2")
fig, ax = plt.subplots(figsize=(6, 4))
ax.imshow(plt.imread(path))
ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# ## Choose on validation, report on test
#
# The best result holds the trained params and spec. Its validation score chose it, so
# it is an optimistic estimate; the test split gives the honest one.

top = best(results)
test_accuracy = np.mean(F.predict(top["spec"], top["params"], X_test, loss="softmax_cross_entropy") == y_test)
print(f"chosen l2 = {top['trial']['l2']:.1e}: validation {top['score']:.4f}, test {test_accuracy:.4f}")

# %%
# The history of every trial is there too: the chosen network's learning curves.

h = top["history"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(h["loss"], label="training objective (with L2)")
ax.plot(h["val_loss"], label="validation objective")
ax.set_xlabel("epoch")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## Going further
#
# * `repeats=5` runs every trial over five seeds and ranks by the mean score (with
#   `score_std`, `score_min`, `score_max`): one initialisation can swing the accuracy
#   by half a percent on 480 validation images.
# * `n_jobs=2` runs trials in parallel through joblib with the very same results; the
#   [Dask tutorial](08_dask_sweep.md) sends them to a cluster.
# * `scripts/digits_l2_sweep.py` in the repository reproduces the original tutorial's
#   splits and its 48-32 sigmoid network (1000 full-batch epochs of SGD with momentum, λ
#   on its scale) and adds a better network chosen on validation.
