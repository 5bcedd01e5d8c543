"""
# Gradient checking

A backward pass is only as good as its agreement with the forward pass. The check is
the definition of a derivative: for every parameter θᵢ,

    ∂L/∂θᵢ ≈ (L(θ + ε eᵢ) − L(θ − ε eᵢ)) / 2ε

(central differences: the error shrinks like ε²). `funcnn.gradcheck` compares this
numerical gradient with `value_and_grad`'s analytic one as a relative error
`‖a − b‖ / (‖a‖ + ‖b‖)`. In float64 a correct gradient gives about 1e-9 or less; a
wrong one gives something near 1. funcnn's own tests run this check for every layer,
loss and block.
"""

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.gradcheck import check_gradients, gradient_errors, numerical_gradient

# %%
# ## A small network, in float64
#
# Checks need float64 params: in float32 the rounding error of the loss swamps the
# difference quotient. A few samples are enough.

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 5))
y = rng.integers(0, 3, size=8)
spec = [F.dense(6), F.tanh(), F.dense(4), F.relu(), F.dense(3)]
params = F.init_params(spec, n_inputs=5, seed=0, dtype=np.float64)

errors = gradient_errors(spec, params, X, y, loss="softmax_cross_entropy", l2=1e-2)
for key, err in errors.items():
    print(f"{key:4s} relative error {err:.1e}")

# %%
# `check_gradients` is the worst of those numbers — what a test asserts on.

print(check_gradients(spec, params, X, y, loss="softmax_cross_entropy") < 1e-7)

# %%
# ## By hand
#
# `numerical_gradient(f, x)` differentiates any scalar function of an array. Here it
# checks the gradient of the loss with respect to the network's *output*, which the
# loss function returns beside its value:

logits = rng.normal(size=(4, 3))
labels = np.array([0, 2, 1, 2])
value, grad = F.losses.softmax_cross_entropy(logits, labels)
numeric = numerical_gradient(lambda z: F.losses.softmax_cross_entropy(z, labels)[0], logits)
print(np.abs(numeric - grad).max())

# %%
# ## What a bug looks like
#
# Suppose the backward pass forgot the 1/n of the mean (a classic). The relative error
# jumps from rounding level to order one:

wrong = grad * logits.shape[0]
print(f"correct {F.gradcheck.relative_error(grad, numeric):.1e}   "
      f"buggy {F.gradcheck.relative_error(wrong, numeric):.1e}")

# %%
# ## Choosing ε
#
# Too large an ε measures curvature (truncation error ∝ ε²); too small an ε measures
# rounding (∝ 1/ε). In float64 the sweet spot is near 1e-5 to 1e-6, funcnn's default
# being 1e-6:

eps_values = np.logspace(-12, -1, 23)
worst = [check_gradients(spec, params, X, y, loss="softmax_cross_entropy", eps=eps) for eps in eps_values]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(eps_values, worst, "o-")
ax.set_xlabel("ε")
ax.set_ylabel("worst relative error")
ax.set_title("Central differences vs backward, float64")
fig.tight_layout()
plt.show()
