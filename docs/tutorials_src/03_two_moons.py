"""
# Two moons and a decision boundary

Two interleaving half circles are the smallest problem a linear model cannot solve and a
small network can. This tutorial trains a binary classifier on them — one output, the
logit of P(class 1), trained with `binary_cross_entropy` — and draws the boundary it
learned.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import load, split

# %%
# ## Data
#
# `funcnn.datasets.load("moons", ...)` is scikit-learn's `make_moons` with a seed.
# `split` is a stratified train/test split.

X, y = load("moons", n_samples=1000, noise=0.2, seed=0)
X_train, X_test, y_train, y_test = split(X, y, test_size=0.25, seed=0)
print(X_train.shape, np.bincount(y_train))

# %%
# ## A linear model first
#
# A single dense layer is logistic regression: its boundary is a straight line.

linear = [F.dense(1)]
p_lin = F.init_params(linear, n_inputs=2, seed=0)
p_lin, _ = F.train(linear, p_lin, X_train, y_train, loss="binary_cross_entropy",
                   optimizer=F.adam(lr=0.05), epochs=100, batch_size=64, progress=False)
acc_lin = np.mean(F.predict(linear, p_lin, X_test, loss="binary_cross_entropy") == y_test)
print(f"logistic regression: test accuracy {acc_lin:.3f}")

# %%
# ## A small network
#
# Two hidden layers of 16 ReLU units. `validation_data` adds `val_loss` and
# `val_accuracy` to the history.

spec = [F.dense(16), F.relu(), F.dense(16), F.relu(), F.dense(1)]
params = F.init_params(spec, n_inputs=2, seed=0)
params, history = F.train(spec, params, X_train, y_train, loss="binary_cross_entropy",
                          optimizer=F.adam(lr=0.01), epochs=100, batch_size=64,
                          validation_data=(X_test, y_test), progress=False)
acc = np.mean(F.predict(spec, params, X_test, loss="binary_cross_entropy") == y_test)
print(f"16-16 ReLU network: test accuracy {acc:.3f}")

# %%
# `predict_proba` gives two columns, `[1 − p, p]`, as scikit-learn's classifiers do.

print(F.predict_proba(spec, params, X_test[:3], loss="binary_cross_entropy").round(3))

# %%
# ## The decision boundaries
#
# `funcnn.plot.decision_boundary(predict_fn, X, y, path)` evaluates `predict_fn` on a
# grid and writes an image; `funcnn.plot.learning_curves(history, path)` plots the
# history. (funcnn's plots go straight to files and never touch pyplot's global state;
# here we read them back to show them on the page.)

out = tempfile.mkdtemp()
F.plot.decision_boundary(lambda Z: F.predict(linear, p_lin, Z, loss="binary_cross_entropy"),
                         X_test, y_test, os.path.join(out, "linear.png"), resolution=150)
F.plot.decision_boundary(lambda Z: F.predict(spec, params, Z, loss="binary_cross_entropy"),
                         X_test, y_test, os.path.join(out, "mlp.png"), resolution=150)

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, name, title in zip(axes, ("linear.png", "mlp.png"),
                           (f"dense(1): accuracy {acc_lin:.2f}", f"16-16 ReLU: accuracy {acc:.2f}")):
    ax.imshow(plt.imread(os.path.join(out, name)))
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %%

F.plot.learning_curves(history, os.path.join(out, "curves.png"), title="two moons, 16-16 ReLU")
fig, ax = plt.subplots(figsize=(6, 4))
ax.imshow(plt.imread(os.path.join(out, "curves.png")))
ax.axis("off")
fig.tight_layout()
plt.show()
