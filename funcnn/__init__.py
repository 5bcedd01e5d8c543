"""funcnn: neural networks in NumPy, as data plus pure functions.

A network is a list of layer specs and a flat dict of arrays::

    spec = [dense(64), relu(), dense(10)]
    params = init_params(spec, n_inputs=64, seed=0)
    loss, grads = value_and_grad(spec, params, X, y, loss="softmax_cross_entropy")
    params, state = update(adam(1e-3), params, grads, init_state(adam(1e-3), params))

See ``../shared/API.md`` (the contract) and the README.
"""
from .network import (backward, forward, init_params, param_keys, predict, predict_proba,
                      value_and_grad)
from . import layers, losses
from .layers import dense, dropout, identity, leaky_relu, relu, sigmoid, softmax, tanh

__version__ = "0.1.0"

__all__ = [
    "init_params", "forward", "backward", "value_and_grad", "predict_proba", "predict",
    "param_keys", "layers", "losses",
    "dense", "dropout", "identity", "leaky_relu", "relu", "sigmoid", "softmax", "tanh",
]
