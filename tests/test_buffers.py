"""Every registry entry in both modes: allocating (the pure use) and writing into buffers
(train's use, in place included) gives identical bits, on read-only inputs.

Layers (``LAYERS``), loss cores (``losses.CORES``) and optimizer rules (``OPTIMIZERS[...]["rule"]``)
are each implemented once; these tests pin that the out= path is that same arithmetic.
"""
import numpy as np
import pytest

import funcnn as F
from funcnn import layers, losses, network
from funcnn import optimizers as O
from conftest import frozen, optimizer_cases

# One example per layer type: (layer dict, one sample's input shape). Every type must have one.
EXAMPLES = {
    "dense": ({"type": "dense", "units": 5}, (7,)),
    "relu": ({"type": "relu"}, (6,)),
    "leaky_relu": ({"type": "leaky_relu", "alpha": 0.2}, (6,)),
    "sigmoid": ({"type": "sigmoid"}, (6,)),
    "tanh": ({"type": "tanh"}, (6,)),
    "identity": ({"type": "identity"}, (6,)),
    "softmax": ({"type": "softmax"}, (6,)),
    "dropout": ({"type": "dropout", "rate": 0.3}, (6,)),
}
EXAMPLES.update({
    "gelu": ({"type": "gelu"}, (6,)),
    "elu": ({"type": "elu", "alpha": 0.7}, (6,)),
    "softplus": ({"type": "softplus"}, (6,)),
    "reshape": ({"type": "reshape", "shape": [2, 3, 2]}, (12,)),
    "flatten": ({"type": "flatten"}, (3, 4, 2)),
    "conv2d": ({"type": "conv2d", "filters": 3, "kernel": [2, 3], "stride": [1, 2], "padding": "same"}, (5, 6, 2)),
    "max_pool": ({"type": "max_pool", "size": 3, "stride": 1}, (5, 6, 2)),
    "avg_pool": ({"type": "avg_pool", "size": 2}, (5, 6, 2)),
    "batch_norm": ({"type": "batch_norm", "momentum": 0.8}, (3, 4, 2)),
    "global_pool": ({"type": "global_pool", "mode": "max"}, (3, 4, 2)),
    "residual": ({"type": "residual", "body": [{"type": "dense", "units": 6}, {"type": "relu"},
                                               {"type": "dense", "units": 6}]}, (6,)),
    "parallel": ({"type": "parallel", "merge": "concat",
                  "branches": [[{"type": "dense", "units": 3}], [], [{"type": "batch_norm"}, {"type": "tanh"}]]},
                 (6,)),
})
EXAMPLES.update({  # sequences (funcnn.sequence); the embedding's input is token ids
    "embedding": ({"type": "embedding", "vocab": 5, "dim": 4}, (6,)),
    "positional": ({"type": "positional", "max_len": 7}, (5, 4)),
    "layer_norm": ({"type": "layer_norm", "eps": 1e-3}, (5, 4)),
    "attention": ({"type": "attention", "heads": 2, "causal": True}, (5, 4)),
})
EXAMPLES.update(getattr(layers, "BUFFER_EXAMPLES", {}))  # image layers may register theirs there too


def test_every_layer_type_has_an_example():
    assert set(EXAMPLES) >= set(layers.LAYERS), sorted(set(layers.LAYERS) - set(EXAMPLES))


def _bits(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_layer_forward_and_backward_with_and_without_buffers(kind, training, dtype):
    layer, in_shape = EXAMPLES[kind]
    entry = layers.LAYERS[kind]
    rng = np.random.default_rng(0)
    own = entry["init"](layer, in_shape, rng, np.dtype(dtype), False)
    if entry["children"] is None:  # a leaf: its arrays by name
        p, trainable = frozen(own), set(entry["trainable"])

        def nest(arrays):
            return dict(arrays)
    else:  # a block: its inner layers' arrays by (name, path), nested as the network passes them

        def nest(arrays):
            return network.layer_params([layer], {network.key_name(network.at(0, k)): v for k, v in arrays.items()})[0]
        p = frozen(nest(own))
        trainable = {k for k in own if layers.is_trainable_key(network.key_name(k))}
    x = frozen(rng.integers(0, layer["vocab"], (9,) + in_shape) if kind == "embedding"
               else rng.normal(size=(9,) + in_shape).astype(dtype) * 2)

    y1, c1 = entry["forward"](layer, p, x, training, np.random.default_rng(5))
    buf = np.full_like(y1, np.nan)
    y2, c2 = entry["forward"](layer, p, x, training, np.random.default_rng(5), buf)
    assert _bits(y1, y2)
    if y1 is not x:
        assert y2 is buf, f"{kind}: forward ignored its out buffer"
    if entry["elementwise"] and entry["cache"] != "x":
        xc = x.copy()
        y3, _ = entry["forward"](layer, p, xc, training, np.random.default_rng(5), xc)
        assert _bits(y1, y3), f"{kind}: in-place forward differs"

    cache = frozen(c1)
    g = frozen(rng.normal(size=y1.shape).astype(dtype))
    dx1, gr1 = entry["backward"](layer, p, cache, g, True)
    assert set(gr1) == trainable
    bufs = {name: np.full_like(own[name], np.nan) for name in trainable}
    out = nest(bufs)
    if dx1 is not g and dx1 is not None:  # None: no input gradient (token ids)
        out["dx"] = np.full_like(dx1, np.nan)
    dx2, gr2 = entry["backward"](layer, p, cache, g, True, out)
    assert _bits(dx1, dx2)
    for name in gr1:
        assert _bits(gr1[name], gr2[name]) and gr2[name] is bufs[name], f"{kind}: grads[{name!r}]"
    if dx1 is not g and dx1 is not None:
        assert dx2 is out["dx"]
    if entry["elementwise"]:
        gc = g.copy()
        dx3, _ = entry["backward"](layer, p, cache, gc, True, {"dx": gc})
        assert _bits(dx1, dx3), f"{kind}: in-place backward differs"


CASES = {
    "softmax_cross_entropy": lambda rng, n, k: rng.integers(0, k, n),
    "binary_cross_entropy": lambda rng, n, k: rng.integers(0, 2, n),
    "mean_squared_error": lambda rng, n, k: rng.normal(size=(n, k)),
}
CASES.update({
    "mean_absolute_error": lambda rng, n, k: rng.normal(size=(n, k)),
    "huber": lambda rng, n, k: rng.normal(size=(n, k)) * 3,
})
CASES.update(getattr(losses, "BUFFER_EXAMPLES", {}))


def test_every_loss_has_a_case():
    assert set(CASES) >= set(losses.CORES)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_core_with_and_without_buffer(name, dtype, weighted):
    rng = np.random.default_rng(1)
    n = 11
    k = 1 if name == "binary_cross_entropy" else 4
    output = frozen((rng.normal(size=(n, k)) * 5).astype(dtype))
    target = frozen(losses.check_targets(name, CASES[name](rng, n, k), n, k, np.dtype(dtype)))
    w = frozen(rng.uniform(0, 2, n).astype(dtype)) if weighted else None
    core = losses.CORES[name]
    v1, g1 = core(output, target, w)
    buf = np.full((n, k), np.nan, dtype=dtype)
    v2, g2 = core(output, target, w, buf)
    assert v1 == v2 and _bits(g1, g2) and g2 is buf
    # and the public function (validation + the same core) agrees
    v3, g3 = losses.LOSSES[name](output, target, w)
    assert v1 == v3 and _bits(g1, g3)


OPTS = optimizer_cases()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTS, ids=lambda o: f"{o['name']}-{sorted(o.items())!s:.50}")
def test_optimizer_rule_allocating_into_buffers_and_in_place(opt, dtype):
    rng = np.random.default_rng(2)
    names = O.slot_names(opt)
    p = frozen(rng.normal(size=(5, 3)).astype(dtype))
    g = frozen(rng.normal(size=(5, 3)).astype(dtype))
    slots = frozen(tuple(np.abs(rng.normal(size=(5, 3))).astype(dtype) for _ in names))
    with np.errstate(over="ignore", invalid="ignore"):
        p1, s1 = O.apply_rule(opt, 3, p, g, slots)
        out = (np.empty_like(p), tuple(np.empty_like(p) for _ in names), np.empty_like(p))
        p2, s2 = O.apply_rule(opt, 3, p, g, slots, out)
        pc, sc = p.copy(), tuple(s.copy() for s in slots)
        p3, s3 = O.apply_rule(opt, 3, pc, g, sc, (pc, sc, np.empty_like(p)))
    assert _bits(p1, p2) and _bits(p1, p3) and p2 is out[0] and p3 is pc
    for a, b, c in zip(s1, s2, s3):
        assert _bits(a, b) and _bits(a, c)


def test_network_loops_never_write_into_inputs_or_caches():
    """The in-place rule: X, params and every cached array survive a forward + backward untouched."""
    spec = [F.dense(8), F.leaky_relu(), F.dropout(0.2), F.identity(), F.dense(6), F.relu(), F.dense(5),
            F.tanh(), F.dense(4), F.sigmoid(), F.dense(3), F.softmax()]
    params = frozen(F.init_params(spec, 4, seed=0))
    X = frozen(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    out, cache = F.forward(spec, params, X, training=True, seed=1)
    snapshot = [None if c is None else c.copy() for c in cache["layers"]]
    grads = F.backward(spec, params, cache, np.ones_like(out))
    for before, after in zip(snapshot, cache["layers"]):
        assert _bits(before, after)
    lp = network.layer_params(spec, params)
    y2, caches = network.run_forward(spec, lp, X, True, np.random.default_rng(1))
    assert _bits(out, y2)
    assert set(grads) == set(params)
