"""
# Residual networks

A residual block computes `shortcut(x) + body(x)`, the shortcut being the identity unless
given: the block only has to learn a *correction* to its input, and the gradient reaches
early layers through the identity path undiminished. That is what lets ResNets train at
depths where a plain chain stalls.

In funcnn a block is one more layer dict — it holds lists of layer dicts — so a residual
network is still plain data:

```python
{"type": "residual", "body": [...], "shortcut": [...]}         # shortcut optional: identity
{"type": "parallel", "branches": [[...], [...]], "merge": "concat"}  # or "sum"
{"type": "global_pool", "mode": "mean"}                        # (n, h, w, c) -> (n, c)
```
"""

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import apply_scaler, fit_scaler, load_train_test
from funcnn.gradcheck import check_gradients
from funcnn.network import walk

# %%
# ## Keys are paths
#
# A layer's path is its position: `"3"` at the top level; inside the block at index 1,
# body layer `j` is `"1.body.j"`. A layer owns `"{name}_{path}"`, so every key says where
# its array lives. (A plain chain keeps its keys: `W_0`, `b_3`.)

block = {"type": "residual", "body": [F.dense(16), F.relu(), F.dense(16)]}
spec = [F.dense(16), block, F.relu(), F.dense(10)]
params = F.init_params(spec, n_inputs=64, seed=0)
for path, layer in walk(spec):
    print(f"{path:10s} {layer['type']}")
print({key: value.shape for key, value in params.items()})

# %%
# The gradient of a block is the sum of its paths' gradients, and the finite-difference
# check holds for blocks as for any layer:

rng = np.random.default_rng(0)
small = [F.dense(4), {"type": "residual", "body": [F.dense(4), F.tanh(), F.dense(4)]}, F.dense(3)]
p64 = F.init_params(small, n_inputs=5, seed=0, dtype=np.float64)
print(check_gradients(small, p64, rng.normal(size=(6, 5)), rng.integers(0, 3, 6),
                      loss="softmax_cross_entropy") < 1e-7)

# %%
# ## Deep and plain against deep and residual
#
# Twelve hidden layers of 32 sigmoid units, on the digits: as a plain chain, and as six
# residual blocks of two layers each. The same optimizer, the same seed, the same number of
# weights.

X_train, X_test, y_train, y_test = load_train_test("digits", test_size=0.25, seed=0)
scaler = fit_scaler(X_train)
X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)

plain = [F.dense(32)] + [layer for _ in range(12) for layer in (F.sigmoid(), F.dense(32))] + [F.dense(10)]
resnet = [F.dense(32)] + [{"type": "residual", "body": [F.sigmoid(), F.dense(32), F.sigmoid(), F.dense(32)]}
                          for _ in range(6)] + [F.dense(10)]
curves = {}
for name, net in (("plain, 12 layers", plain), ("residual, 6 blocks of 2", resnet)):
    p = F.init_params(net, n_inputs=64, seed=0)
    p, h = F.train(net, p, X_train, y_train, loss="softmax_cross_entropy", optimizer=F.sgd(lr=0.1, momentum=0.9),
                   epochs=20, batch_size=64, validation_data=(X_test, y_test), progress=False)
    curves[name] = h
    print(f"{name}: {len(p)} arrays, {sum(a.size for a in p.values())} weights, "
          f"test accuracy {h['val_accuracy'][-1]:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, h in curves.items():
    ax.plot(range(1, 21), h["loss"], label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## A small convolutional ResNet
#
# The digits as 8×8 images: a convolution, a residual block of two convolutions with batch
# norm, a downsampling block whose shortcut is a strided 1×1 convolution (so both paths
# give one shape), global average pooling and a dense layer. `funcnn.network.shapes` gives
# each top-level layer's arrays and output shape.

conv_block = {"type": "residual", "body": [F.conv2d(16, kernel=3, padding="same"), F.batch_norm(), F.relu(),
                                            F.conv2d(16, kernel=3, padding="same"), F.batch_norm()]}
down_block = {"type": "residual",
              "body": [F.conv2d(32, kernel=3, stride=2, padding="same"), F.batch_norm(), F.relu(),
                       F.conv2d(32, kernel=3, padding="same"), F.batch_norm()],
              "shortcut": [F.conv2d(32, kernel=1, stride=2), F.batch_norm()]}
cnn = [F.reshape([8, 8, 1]), F.conv2d(16, kernel=3, padding="same"), F.relu(),
       conv_block, F.relu(), down_block, F.relu(), {"type": "global_pool", "mode": "mean"}, F.dense(10)]
for i, (arrays, out_shape) in enumerate(F.network.shapes(cnn, (64,))):
    print(i, cnn[i]["type"], "->", out_shape)

p = F.init_params(cnn, n_inputs=64, seed=0)
p, h = F.train(cnn, p, X_train, y_train, loss="softmax_cross_entropy", optimizer=F.adam(lr=3e-3),
               epochs=6, batch_size=64, validation_data=(X_test, y_test), progress=False)
print(f"test accuracy {h['val_accuracy'][-1]:.3f}")
print(sorted(k for k in p if k.startswith("W_5.")))

# %%
# Everything that takes a spec takes a nested one: `save`/`load`, checkpoints and resume,
# the estimators' `spec=`, and `funcnn train --spec FILE` (the repository's
# `scripts/specs/resnet_fashion.json` is a ResNet for Fashion-MNIST, trained by
# `scripts/resnet_fashion.py`).
