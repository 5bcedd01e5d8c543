"""
# A character-level transformer

A language model reads a stretch of text and predicts, at every position, the next
character. This one is a small causal transformer — token embedding, learned positions,
pre-norm residual blocks of self-attention and of an MLP — written as a spec like any other
funcnn network, and trained on bytes of text with the four pure functions.

The text comes from disk: Debian's `fortune-mod` data (`/usr/share/games/fortunes`) when it
is installed; **otherwise the Markdown sources of this documentation**, which every build has.
The build trains for a few hundred steps of a tiny model, so the samples at the end are
far from fluent; `scripts/char_transformer.py` in the repository trains a larger one.
"""

import glob
import os

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn import layers as L
from funcnn.sequence import sample

# %%
# ## Text as bytes
#
# UTF-8 bytes are the vocabulary (256 ids), so any text works and nothing needs a tokenizer.
# The split is by position: the first 90 % to train on, the rest to validate.

files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(f))
source = "Debian's fortunes"
if not files:
    # the documentation builds each tutorial in its own directory, docs/tutorials_src
    files = sorted(glob.glob(os.path.join("..", "**", "*.md"), recursive=True))
    source = "the documentation's Markdown files (fallback: no fortunes installed)"
text = b"".join(open(f, "rb").read() for f in files)[:400_000]
ids = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
cut = int(0.9 * ids.size)
train_ids, val_ids = ids[:cut], ids[cut:]
print(f"{source}: {ids.size} bytes; train {train_ids.size}, validation {val_ids.size}")
print(text[:200].decode("utf-8", "replace"))

# %%
# ## The model is a spec
#
# `embedding(256, d)` maps ids `(n, T)` to vectors `(n, T, d)`; `positional(T)` adds a learned
# vector per position. Each block is two residual blocks, `x + attention(layer_norm(x))` and
# `x + mlp(layer_norm(x))`; `causal=True` lets position t attend to positions ≤ t only. The
# final dense layer gives 256 logits per position.

T, d, heads = 32, 48, 4
spec = [L.embedding(256, d), L.positional(T)]
for _ in range(2):
    spec.append({"type": "residual", "body": [L.layer_norm(), L.attention(heads, causal=True)]})
    spec.append({"type": "residual", "body": [L.layer_norm(), L.dense(4 * d), L.gelu("tanh"), L.dense(d)]})
spec += [L.layer_norm(), L.dense(256)]

params = F.init_params(spec, (T,), seed=0)
print(f"{sum(a.size for a in params.values())} parameters in {len(params)} arrays, e.g.",
      [k for k in params][:8])

# %%
# ## Training: windows of text, next-byte targets
#
# Each step draws a batch of windows; the target of position t is the byte at t + 1.
# `softmax_cross_entropy` on `(n, T, 256)` logits and `(n, T)` labels is the mean over all
# n·T positions. The loss is in nats; divided by log 2 it is bits per character.

def windows(data, starts):
    X = np.stack([data[s:s + T] for s in starts])
    y = np.stack([data[s + 1:s + T + 1] for s in starts])
    return X, y


rng = np.random.default_rng(1)
X_val, y_val = windows(val_ids, rng.integers(0, val_ids.size - T - 1, 256))
opt = F.adam(lr=3e-3)
state = F.init_state(opt, params)
steps, batch, log = 300, 32, {"step": [], "train": [], "val": []}
for step in range(1, steps + 1):
    X, y = windows(train_ids, rng.integers(0, train_ids.size - T - 1, batch))
    loss, grads = F.value_and_grad(spec, params, X, y, loss="softmax_cross_entropy")
    params, state = F.update(opt, params, grads, state)
    if step % 50 == 0:
        val = F.evaluate(spec, params, X_val, y_val, loss="softmax_cross_entropy")["loss"]
        log["step"].append(step)
        log["train"].append(loss / np.log(2))
        log["val"].append(val / np.log(2))
        print(f"step {step:4d}  train {loss / np.log(2):.3f}  validation {val / np.log(2):.3f} bits/char")

# %%
# A baseline puts the numbers in context: the bigram model (the next byte's frequency given
# this byte, add-one smoothed, counted on the training text).

counts = np.ones((256, 256))
np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)
p_next = counts / counts.sum(axis=1, keepdims=True)
bigram = -np.mean(np.log2(p_next[val_ids[:-1], val_ids[1:]]))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(log["step"], log["train"], "o-", label="training batch")
ax.plot(log["step"], log["val"], "o-", label="validation")
ax.axhline(bigram, color="grey", linestyle=":", label=f"bigram baseline ({bigram:.2f})")
ax.set_xlabel("step")
ax.set_ylabel("bits per character")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## Sampling
#
# `funcnn.sequence.sample` feeds the last `T` ids, divides the last position's logits by the
# temperature and draws the next id; the same seed gives the same text.

prompt = np.frombuffer(b"The ", dtype=np.uint8).astype(np.int64)
out = sample(spec, params, prompt, 200, temperature=0.8, seed=0)
print(bytes(np.asarray(out, dtype=np.uint8).tolist()).decode("utf-8", "replace"))

# %%
# Everything else carries over: `save`/`load` the spec and params, check gradients with
# `funcnn.gradcheck` (in float64), or train from the command line with
# `funcnn train --data text:FILE --spec scripts/specs/char_transformer.json`.
