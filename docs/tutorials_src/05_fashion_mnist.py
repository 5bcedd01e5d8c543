"""
# Fashion-MNIST: an MLP and a CNN

Fashion-MNIST is 70 000 grey 28×28 images of clothes in 10 classes. This tutorial trains
a multilayer perceptron on the flat pixels and a small convolutional network on the
images, then compares their mistakes.

The files come from disk, never from the network: on Debian,
`apt-get install dataset-fashion-mnist` puts them in `/usr/share/datasets/fashion-mnist/`
(`funcnn.datasets.load_mnist(directory)` reads any copy of the four IDX files, `.gz` or
not). **When the files are not there, this page falls back to scikit-learn's 8×8 digits**
and says so below. The build trains on 3000 images for a few epochs, with a narrow CNN, to
stay fast: the accuracies here are far from what the full data give (see the
[performance page](../performance.md) for full runs).
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import DEFAULT_MNIST_DIR, load, load_mnist, split

# %%
# ## Data, or the fallback

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
try:
    X_all, y_all = load_mnist(DEFAULT_MNIST_DIR, split="train")   # (60000, 784) in [0, 1]
    X_test_all, y_test_all = load_mnist(DEFAULT_MNIST_DIR, split="test")
    side, source = 28, f"Fashion-MNIST from {DEFAULT_MNIST_DIR}"
    X_train, y_train = X_all[:3000], y_all[:3000]
    X_test, y_test = X_test_all[:1000], y_test_all[:1000]
except FileNotFoundError as exc:
    print(f"Fashion-MNIST not found ({exc}).\nFALLBACK: scikit-learn's 8x8 digits instead.")
    X, y = load("digits")
    X = (X / 16.0).astype(np.float32)
    side, source = 8, "scikit-learn's digits (fallback: Fashion-MNIST files not installed)"
    CLASSES = [str(d) for d in range(10)]
    X_train, X_test, y_train, y_test = split(X, y, test_size=0.3, seed=0)
print(f"data: {source}; train {X_train.shape}, test {X_test.shape}")

# %%

fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
for ax, image, label in zip(axes.ravel(), X_train, y_train):
    ax.imshow(image.reshape(side, side), cmap="gray_r")
    ax.set_title(CLASSES[label], fontsize=7)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# ## The MLP
#
# Flat rows in, logits out: 784-256-128-10 with ReLU and dropout, Adam.

mlp = [F.dense(256), F.relu(), F.dropout(0.2), F.dense(128), F.relu(), F.dense(10)]
p_mlp = F.init_params(mlp, n_inputs=side * side, seed=0)
p_mlp, h_mlp = F.train(mlp, p_mlp, X_train, y_train, loss="softmax_cross_entropy",
                       optimizer=F.adam(lr=1e-3), epochs=8, batch_size=64,
                       validation_data=(X_test, y_test), progress=False)
print(f"MLP: test accuracy {h_mlp['val_accuracy'][-1]:.3f}")

# %%
# ## The CNN
#
# Image batches are NHWC: `(n, height, width, channels)`. A spec that starts with
# `reshape` takes the flat rows and makes images of them. `conv2d` owns a kernel
# `W` of shape `(kh, kw, c_in, filters)`; `batch_norm` keeps its running statistics in
# the params dict (`running_mean_*`, `running_var_*`), which `train` updates and `predict`
# uses.

cnn = [F.reshape([side, side, 1]),
       F.conv2d(8, kernel=3, padding="same"), F.batch_norm(), F.relu(), F.max_pool(2),
       F.conv2d(16, kernel=3, padding="same"), F.batch_norm(), F.relu(), F.max_pool(2),
       F.flatten(), F.dense(64), F.relu(), F.dense(10)]
p_cnn = F.init_params(cnn, n_inputs=side * side, seed=0)
print({k: v.shape for k, v in p_cnn.items() if k.endswith("_1") or k.endswith("_5")})
p_cnn, h_cnn = F.train(cnn, p_cnn, X_train, y_train, loss="softmax_cross_entropy",
                       optimizer=F.adam(lr=2e-3), epochs=3, batch_size=64,
                       validation_data=(X_test, y_test), progress=False)
print(f"CNN: test accuracy {h_cnn['val_accuracy'][-1]:.3f}")

# %%
# ## Learning curves

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, h in (("MLP", h_mlp), ("CNN", h_cnn)):
    axes[0].plot(h["val_loss"], label=name)
    axes[1].plot(h["val_accuracy"], label=name)
axes[0].set_ylabel("test loss")
axes[1].set_ylabel("test accuracy")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## Where the CNN errs
#
# `funcnn.plot.confusion_matrix` draws scikit-learn's confusion matrix with the class
# names. On Fashion-MNIST, shirts, T-shirts, pullovers and coats are the hard ones.

pred = F.predict(cnn, p_cnn, X_test, loss="softmax_cross_entropy")
path = F.plot.confusion_matrix(y_test, pred, os.path.join(tempfile.mkdtemp(), "confusion.png"),
                               labels=CLASSES, figsize=(8, 6.5))
fig, ax = plt.subplots(figsize=(8, 6.5))
ax.imshow(plt.imread(path))
ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# ## The full runs
#
# `python scripts/fashion_mnist.py` and `python scripts/cnn_mnist.py` in the repository
# train on all 60 000 images (with a validation split for every choice); the command line
# trains the same CNN with
# `funcnn train --data fashion-mnist --spec scripts/specs/cnn_fashion.json`.
