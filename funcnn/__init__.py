"""funcnn: neural networks in NumPy, as data plus pure functions.

A network is a list of layer specs and a flat dict of arrays::

    spec = [dense(64), relu(), dense(10)]
    params = init_params(spec, n_inputs=64, seed=0)
    loss, grads = value_and_grad(spec, params, X, y, loss="softmax_cross_entropy")
    params, state = update(opt, params, grads, init_state(opt, params))

The documentation (docs/: guides, tutorials, the API reference) describes the contract and
every public function.
"""
# Every submodule of the API reference is an attribute after ``import funcnn`` (funcnn.plot imports
# matplotlib only when a plot is drawn; funcnn.sweep imports joblib only when a sweep runs).
# ``funcnn.train`` is the function; the module is ``sys.modules['funcnn.train']``.
from . import (bounded, checkpoint, datasets, footprint, gradcheck, layers, losses, metrics, network, optimizers,
               plot, schedules, sequence, sweep, validation)
from .checkpoint import load, save
from .footprint import summary
from .layers import (attention, avg_pool, batch_norm, conv2d, dense, dropout, elu, embedding, flatten, gelu,
                     identity, layer_norm, leaky_relu, max_pool, positional, relu, reshape, sigmoid, softmax,
                     softplus, tanh)
from .network import (backward, forward, init_params, param_keys, predict, predict_proba,
                      value_and_grad)
from .optimizers import adam, init_state, rmsprop, sgd, update
from .train import evaluate, train

__version__ = "0.1.0"


def __getattr__(name):
    """Any other submodule on first access (PEP 562), e.g. the scikit-learn adapters, which import
    scikit-learn and so are not imported by ``import funcnn`` itself."""
    import importlib
    import importlib.util
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # the contract (API.md §2)
    "init_params", "forward", "backward", "value_and_grad", "init_state", "update", "train",
    "predict_proba", "predict", "save", "load",
    # beyond it
    "evaluate", "param_keys", "summary", "sgd", "rmsprop", "adam",
    "dense", "dropout", "identity", "leaky_relu", "relu", "sigmoid", "softmax", "tanh",
    "conv2d", "max_pool", "avg_pool", "batch_norm", "reshape", "flatten", "gelu", "elu", "softplus",
    "embedding", "positional", "layer_norm", "attention",
    "layers", "losses", "optimizers", "schedules", "datasets", "gradcheck",
    "checkpoint", "metrics", "network", "plot", "sequence", "sweep", "validation", "footprint", "bounded",
]
