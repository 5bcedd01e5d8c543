"""The examples in the docstrings (rendered in the API reference) run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["funcnn.metrics", "funcnn.gradcheck", "funcnn.plot", "funcnn.parallel", "funcnn.validation",
           "funcnn.conv", "funcnn.estimators", "funcnn.datasets",
           "funcnn.checkpoint", "funcnn.network", "funcnn.losses", "funcnn.optimizers",
           "funcnn.schedules", "funcnn.layers", "funcnn.train", "funcnn.cli"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed"
