"""funcnn against frozen outputs of an independent naive implementation
(tests/data/reference_core.npz, made by scripts/make_reference_fixtures.py)."""
import json
import os

import numpy as np
import pytest

import funcnn as F

DATA = np.load(os.path.join(os.path.dirname(__file__), "data", "reference_core.npz"), allow_pickle=False)
CASES = sorted({k.split("/")[0] for k in DATA.files})


@pytest.mark.parametrize("name", CASES)
def test_case(name):
    meta = json.loads(str(DATA[f"{name}/meta"]))
    params = {k.split("/")[-1]: DATA[k] for k in DATA.files if k.startswith(f"{name}/params/")}
    X, y = DATA[f"{name}/X"], DATA[f"{name}/y"]
    w = DATA[f"{name}/w"] if meta["weighted"] else None
    training = meta["dropout_seed"] is not None
    out, _ = F.forward(meta["spec"], params, X, training=training, seed=meta["dropout_seed"])
    np.testing.assert_allclose(out, DATA[f"{name}/output"], rtol=1e-12, atol=1e-12)
    value, grads = F.value_and_grad(meta["spec"], params, X, y, loss=meta["loss"], l2=meta["l2"],
                                    sample_weight=w, training=training, seed=meta["dropout_seed"])
    assert value == pytest.approx(float(DATA[f"{name}/value"]), rel=1e-12)
    assert list(grads) == list(params)
    for k in grads:
        np.testing.assert_allclose(grads[k], DATA[f"{name}/grads/{k}"], rtol=1e-10, atol=1e-12, err_msg=k)


def test_fixture_has_all_cases():
    assert len(CASES) == 5
