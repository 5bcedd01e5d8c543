"""
# The training step, spelled out

A funcnn network is two pieces of plain data — a **spec** (a list of layer dicts) and
**params** (a flat dict of arrays) — and training is four pure functions applied in a loop:

| step | call | math |
|---|---|---|
| forward | `output, cache = forward(spec, params, X)` | `h = relu(X W₀ + b₀)`, `z = h W₂ + b₂` |
| loss | `loss, g = softmax_cross_entropy(z, y)` | `L = mean_i −log softmax(zᵢ)[yᵢ]`, `g = ∂L/∂z = (softmax(z) − onehot(y)) / n` |
| backward | `grads = backward(spec, params, cache, g)` | `∂L/∂W₂ = hᵀ g`, `∂L/∂h = g W₂ᵀ`, … (the chain rule, layer by layer, last to first) |
| update | `params, state = update(opt, params, grads, state)` | SGD: `W ← W − lr · ∂L/∂W` |

This tutorial writes that loop by hand on scikit-learn's digits, then shows that
`funcnn.train` is exactly this loop — bit for bit.
"""

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import apply_scaler, fit_scaler, load_train_test

# %%
# ## Data
#
# 8×8 images of handwritten digits, flattened to 64 features; labels are the integers 0–9.
# The scaler is a plain dict of the training split's mean and standard deviation.

X_train, X_test, y_train, y_test = load_train_test("digits", test_size=0.25, seed=0)
scaler = fit_scaler(X_train)
X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
print(X_train.shape, X_test.shape, np.bincount(y_train))

# %%
# ## A network is data
#
# The spec is a list of dicts; `init_params` returns a dict of arrays whose keys name
# the layer that owns them: `W_0` and `b_0` belong to the dense layer at position 0.

spec = [F.dense(32), F.relu(), F.dense(10)]
params = F.init_params(spec, n_inputs=64, seed=0)
print(spec)
print({key: value.shape for key, value in params.items()})

# %%
# ## One step, piece by piece
#
# `forward` returns the output (the logits `z`, shape `(n, 10)`) and a *cache* — the
# intermediate values the backward pass needs. The loss function returns the loss and
# its gradient with respect to the output; `backward` turns that into one gradient per
# params key, with the same shapes.

output, cache = F.forward(spec, params, X_train)
loss, grad_output = F.losses.softmax_cross_entropy(output, y_train)
grads = F.backward(spec, params, cache, grad_output)
print(f"initial loss {loss:.4f} (chance level: log 10 = {np.log(10):.4f})")
print({key: g.shape for key, g in grads.items()})

# %%
# Nothing was modified: `params` is the same dict of the same arrays. `update` returns
# *new* params and a new optimizer state.

opt = F.optimizers.sgd(lr=0.5)
state = F.init_state(opt, params)
new_params, state = F.update(opt, params, grads, state)
print("W_0 moved by", float(np.abs(new_params["W_0"] - params["W_0"]).max()))

# %%
# ## The loop
#
# Repeat the four calls. With full-batch gradient descent every step sees all the
# training data; the loss falls as the gradient says it should.

params = F.init_params(spec, n_inputs=64, seed=0)
state = F.init_state(opt, params)
losses = []
for step in range(100):
    output, cache = F.forward(spec, params, X_train)
    loss, grad_output = F.losses.softmax_cross_entropy(output, y_train)
    grads = F.backward(spec, params, cache, grad_output)
    params, state = F.update(opt, params, grads, state)
    losses.append(loss)

accuracy = np.mean(F.predict(spec, params, X_test, loss="softmax_cross_entropy") == y_test)
print(f"loss after 100 steps {losses[-1]:.4f}, test accuracy {accuracy:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(losses)
ax.set_xlabel("step")
ax.set_ylabel("training loss (softmax cross-entropy)")
ax.set_yscale("log")
ax.set_title("Full-batch gradient descent on digits")
fig.tight_layout()
plt.show()

# %%
# ## `train` is this loop
#
# `value_and_grad` is forward + loss + backward in one call, and `train` composes
# `value_and_grad` and `update`. Full-batch `train` for 100 epochs gives the very same
# bits as the loop above — not approximately, exactly:

params0 = F.init_params(spec, n_inputs=64, seed=0)
trained, history = F.train(spec, params0, X_train, y_train, loss="softmax_cross_entropy",
                           optimizer=opt, epochs=100, progress=False)
print(all(np.array_equal(trained[k], params[k]) for k in params))
print(history["loss"][-1] == losses[-1])

# %%
# With minibatches (`batch_size=32`), `train` draws one permutation per epoch from its
# seed's generator and then, inside `value_and_grad`, the dropout masks; the
# [purity and composition guide](../guide/purity.md) writes out that loop too.
#
# ## What to try
#
# * Replace `sgd(lr=0.5)` by `F.optimizers.adam(lr=1e-2)` and compare the curves.
# * Add `F.dropout(0.2)` after the ReLU: `forward(..., training=True, seed=step)` then
#   draws a fresh mask each step, and `training=False` (the default) turns it off.
