"""
# The command line on a CSV file

`funcnn train` trains a network on a file and saves it; `funcnn evaluate` scores a saved
model, `funcnn predict` writes its predictions with the original labels. Nothing to
write but a CSV. This page runs the commands in-process (`funcnn.cli.main` takes the
arguments as a list) so the build can show their output; in a shell you type the lines
after `$`.
"""

import contextlib
import os
import shlex
import sys
import tempfile

import matplotlib.pyplot as plt

from sklearn.datasets import load_iris

from funcnn.cli import main


work = tempfile.mkdtemp()  # every file of this page goes here


def funcnn(command):
    """Run `funcnn COMMAND` in `work`, as a shell would, showing what it prints."""
    print(f"$ funcnn {command}")
    here = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stderr(sys.stdout):
            code = main(shlex.split(command))
    finally:
        os.chdir(here)
    if code:
        print(f"(exit status {code})")


# %%
# ## A CSV with text labels
#
# The iris flowers, written the way spreadsheets write them: a header, a row-index
# column, the species as text.

iris = load_iris(as_frame=True)
frame = iris.frame.rename(columns={"target": "species"})
frame["species"] = iris.target_names[iris.target]
frame.to_csv(os.path.join(work, "iris.csv"))
print(open(os.path.join(work, "iris.csv")).read()[:300])

# %%
# ## Train
#
# The label column is found by a documented rule (a column named `target`, `label`,
# `class` or `y`; else the only non-numeric column; else the last — or say
# `--label-column species`); the unnamed index column is dropped; the task (classes or
# regression) is decided from the labels, and the command says why.

funcnn("train --data iris.csv --hidden 16 --epochs 200 --out iris.npz --plot curves.png --quiet")

# %%
# `curves.png`, the learning curves the command wrote:

fig, ax = plt.subplots(figsize=(6, 4))
ax.imshow(plt.imread(os.path.join(work, "curves.png")))
ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# ## Evaluate and predict
#
# The features are standardised with the scaler saved in the model. `predict` writes a
# CSV with the original labels; `--proba` one column per class.

funcnn("evaluate iris.npz --data iris.csv --split test")

# %%

new = frame.drop(columns="species").sample(5, random_state=1)
new.to_csv(os.path.join(work, "new_flowers.csv"), index=False)
print(frame.loc[new.index, "species"].tolist())
funcnn("predict iris.npz --data new_flowers.csv")
funcnn("predict iris.npz --data new_flowers.csv --proba")

# %%
# ## Mistakes are refused, with a reason
#
# A path that cannot be written, or an output format funcnn does not write, is refused
# *before* any work is done, with one line saying why (exit status 1 in a shell).

funcnn("train --data iris.csv --out no/such/dir/model.npz")
funcnn("predict iris.npz --data iris.csv --output predictions.xlsx")

# %%
# ## A network of your own
#
# `--spec FILE` takes any spec as JSON — a list of layer dicts, blocks included.

with open(os.path.join(work, "spec.json"), "w") as f:
    f.write('[{"type": "dense", "units": 32}, {"type": "tanh"}, {"type": "dense", "units": 3}]')
funcnn("train --data iris.csv --spec spec.json --epochs 100 --out tanh.npz --no-plot --quiet")

# %%
# Every command and option is on the [command-line page](../guide/cli.md), generated from
# the argument parser itself.
