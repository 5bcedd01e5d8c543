"""
# Checkpoints and bit-exact resume

`funcnn.save(path, spec, params, **metadata)` writes one file; `funcnn.load(path)` gives
back the spec, the params — bit for bit — and the metadata. `train(..., checkpoint=path)`
goes further: after every epoch it saves the *whole training state* (params, optimizer
state, random-generator state, epoch, history), and a run restarted with the same
arguments resumes from it and ends exactly where an uninterrupted run ends.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import funcnn as F
from funcnn.datasets import apply_scaler, fit_scaler, load_train_test

X_train, X_test, y_train, y_test = load_train_test("digits", test_size=0.25, seed=0)
scaler = fit_scaler(X_train)
X_train, X_test = apply_scaler(scaler, X_train), apply_scaler(scaler, X_test)
spec = [F.dense(64), F.relu(), F.dropout(0.1), F.dense(10)]
opt = F.adam(lr=3e-3)
workdir = tempfile.mkdtemp()

# %%
# ## Save and load a model
#
# `.npz` is the default format: the arrays as arrays, the spec and metadata as JSON,
# read back with `allow_pickle=False` (safe for files from elsewhere). The scaler, a
# plain dict, travels with the model.

params = F.init_params(spec, n_inputs=64, seed=0)
params, history = F.train(spec, params, X_train, y_train, loss="softmax_cross_entropy",
                          optimizer=opt, epochs=5, batch_size=32, progress=False)
path = os.path.join(workdir, "model.npz")
F.save(path, spec, params, scaler=scaler, classes=list(range(10)))
model = F.load(path)
print(sorted(model))
print(all(np.array_equal(model["params"][k], params[k]) for k in params))

# %%
# Writes are atomic: the file is written next to its target, flushed to disk and renamed
# over it, so a crash mid-save leaves the previous file intact.
#
# ## A run that crashes
#
# Here a callback plays the power cut: it raises after epoch 4 of 10. The checkpoint on
# disk then holds the state at the end of epoch 4.

ckpt = os.path.join(workdir, "run.npz")


def power_cut(epoch, params, history):
    if epoch == 4:
        raise RuntimeError("power cut after epoch 4")


p0 = F.init_params(spec, n_inputs=64, seed=0)
kwargs = dict(loss="softmax_cross_entropy", optimizer=opt, epochs=10, batch_size=32, seed=1,
              validation_data=(X_test, y_test), progress=False)
try:
    F.train(spec, p0, X_train, y_train, checkpoint=ckpt, callbacks=[power_cut], **kwargs)
except RuntimeError as exc:
    print(exc)

# %%
# ## Resume
#
# The same call again (without the power cut) finds the checkpoint, checks that it
# belongs to this run — same spec, loss, optimizer, data, seed — and continues from
# epoch 5. `epochs` is the total.

resumed, h_resumed = F.train(spec, p0, X_train, y_train, checkpoint=ckpt, **kwargs)
straight, h_straight = F.train(spec, p0, X_train, y_train, **kwargs)

print("params identical: ", all(np.array_equal(resumed[k], straight[k]) for k in straight))
print("history identical:", h_resumed == h_straight)

# %%

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, 11), h_straight["val_loss"], "o-", label="uninterrupted")
ax.plot(range(1, 11), h_resumed["val_loss"], "x", markersize=10, label="crashed at 4, resumed")
ax.axvline(4.5, color="grey", linestyle=":")
ax.set_xlabel("epoch")
ax.set_ylabel("validation loss")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## A checkpoint of another run is refused
#
# Resuming with a different learning rate would silently mix two runs; funcnn refuses
# and names each difference, leaving the file untouched.

try:
    F.train(spec, p0, X_train, y_train, checkpoint=ckpt, **{**kwargs, "optimizer": F.adam(lr=1e-2)})
except ValueError as exc:
    print(str(exc)[:300])

# %%
# On the command line, `funcnn train --checkpoint run.npz ...` does the same: rerun the
# command after Ctrl-C and it prints `resumed from epoch N`.
