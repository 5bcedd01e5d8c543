"""The inference path needs NumPy alone (API §11): in a fresh venv holding numpy and nothing else
(no scikit-learn, SciPy, joblib, onnx, torch), ``import funcnn``, ``funcnn.load`` of an ``.npz`` and
``funcnn.predict``/``predict_proba`` work and give the same bits as here. The exact ``gelu`` is the one
layer that needs SciPy (its ``erf``), and its error says so.
"""
from __future__ import annotations

import json
import os
import subprocess
import venv

import numpy as np
import pytest

import funcnn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, sys
import numpy as np
for name in ("sklearn", "scipy", "joblib"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the venv is not numpy-only: {name} imports")
import funcnn
args = json.loads(sys.argv[1])
X = np.load(args["X"])
out = {}
for name, path in args["models"].items():
    model = funcnn.load(path)
    try:
        out[name] = [funcnn.predict(model["spec"], model["params"], X, loss=model["loss"]).tolist(),
                     funcnn.predict_proba(model["spec"], model["params"], X, loss=model["loss"]).tobytes().hex()]
    except ImportError as exc:
        out[name] = "ImportError: " + str(exc)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "scipy", "joblib", "onnx", "torch"))
print(json.dumps({"results": out, "heavy": heavy}))
'''


def _numpy_only_venv(root):
    """A venv without pip whose site-packages holds numpy (symlinked from this interpreter's) and a .pth
    pointing at this funcnn checkout: nothing else can be imported from it."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = os.path.join(root, "bin", "python")
    site = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    source = os.path.dirname(os.path.dirname(np.__file__))
    for entry in os.listdir(source):
        if entry == "numpy" or entry.startswith(("numpy.libs", "numpy-")):
            os.symlink(os.path.join(source, entry), os.path.join(site, entry))
    with open(os.path.join(site, "funcnn_checkout.pth"), "w") as fh:
        fh.write(REPO + "\n")
    return python


@pytest.mark.skipif(os.name != "posix", reason="the venv layout (bin/python) is POSIX's")
def test_predict_with_numpy_alone(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 36)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    specs = {
        "mlp": [{"type": "dense", "units": 8}, {"type": "elu"}, {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 3}],
        "cnn": [{"type": "reshape", "shape": [6, 6, 1]}, {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same"},
                {"type": "batch_norm"}, {"type": "relu"}, {"type": "max_pool", "size": 2},
                {"type": "residual", "body": [{"type": "conv2d", "filters": 3, "kernel": 1}, {"type": "tanh"}]},
                {"type": "global_pool"}, {"type": "dense", "units": 4}],
        "gelu": [{"type": "dense", "units": 5}, {"type": "gelu"}, {"type": "dense", "units": 2}],
    }
    models, expected = {}, {}
    for name, spec in specs.items():
        params = funcnn.init_params(spec, 36, seed=1)
        path = str(tmp_path / f"{name}.npz")
        funcnn.save(path, spec, params, loss="softmax_cross_entropy")
        models[name] = path
        expected[name] = [funcnn.predict(spec, params, X, loss="softmax_cross_entropy").tolist(),
                          funcnn.predict_proba(spec, params, X, loss="softmax_cross_entropy").tobytes().hex()]
    python = _numpy_only_venv(str(tmp_path / "venv"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([python, "-I", "-c", SCRIPT, json.dumps({"X": str(tmp_path / "X.npy"), "models": models})],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-500:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["results"]["mlp"] == expected["mlp"]  # the same labels and probability bits
    assert report["results"]["cnn"] == expected["cnn"]
    assert report["results"]["gelu"].startswith("ImportError") and "scipy" in report["results"]["gelu"]
