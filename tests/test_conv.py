"""Image layers (conv2d, max_pool, avg_pool, batch_norm, reshape, flatten): values against
direct NumPy definitions, gradients against finite differences (float64), buffers, the in-place
rule, init, errors, running statistics, train/checkpoint/resume with them."""
import itertools

import numpy as np
import pytest

import funcnn as F
from funcnn import conv as C
from funcnn import layers as L
from funcnn import optimizers as O
from funcnn.gradcheck import gradient_errors
from funcnn.train import new_run, train, train_epoch
from conftest import assert_tree_equal, frozen

TOL = 1e-6
CE = "softmax_cross_entropy"


# --------------------------------------------------------------------------- direct definitions

def naive_conv(x, W, b, stride, padding):
    """y[n, r, c, f] = b[f] + sum_{i,j,k} xp[n, r*sh+i, c*sw+j, k] W[i, j, k, f], loop by loop."""
    kh, kw, _, f = W.shape
    sh, sw = stride
    n, h, w, _ = x.shape
    if padding == "same":
        ho, wo = -(-h // sh), -(-w // sw)
        ph, pw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - w, 0)
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    else:
        p = 0 if padding == "valid" else padding
        pads = ((p, p), (p, p))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    y = np.zeros((n, ho, wo, f))
    for r in range(ho):
        for c in range(wo):
            patch = xp[:, r * sh:r * sh + kh, c * sw:c * sw + kw, :]
            y[:, r, c, :] = np.einsum("nijk,ijkf->nf", patch, W) + b
    return y


def naive_pool(x, size, stride, kind):
    ph, pw = size
    sh, sw = stride
    n, h, w, c = x.shape
    ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    y = np.zeros((n, ho, wo, c))
    for r in range(ho):
        for q in range(wo):
            win = x[:, r * sh:r * sh + ph, q * sw:q * sw + pw, :]
            y[:, r, q, :] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


KERNELS = [1, 2, 3, [2, 3]]
STRIDES = [1, 2, [2, 1]]
PADDINGS = ["valid", "same", 0, 1, 2]


@pytest.mark.parametrize("kernel,stride,padding", list(itertools.product(KERNELS, STRIDES, PADDINGS)))
def test_conv_forward_is_the_cross_correlation(kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3))
    spec = [L.conv2d(4, kernel, stride, padding)]
    params = F.init_params(spec, (5, 6, 3), seed=1, dtype=np.float64)
    params["b_0"] = rng.normal(size=4)
    y, _ = F.forward(spec, params, x)
    expected = naive_conv(x, params["W_0"], params["b_0"], L.check_pair(spec[0], "stride", "", 1), padding)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_same_padding_is_jax_tensorflow_same():
    # output ceil(n / s); an odd total padding puts the extra row/column at the bottom/right
    assert C.same_padding(5, 2, 1) == (5, 0, 1)
    assert C.same_padding(5, 3, 2) == (3, 1, 1)
    assert C.same_padding(6, 3, 2) == (3, 0, 1)
    assert C.same_padding(6, 1, 2) == (3, 0, 0)
    assert C.same_padding(7, 4, 3) == (3, 1, 2)
    assert C.conv_geometry((5, 6), (2, 3), (1, 2), "same") == ((5, 3), ((0, 1), (0, 1)))
    assert C.conv_geometry((5, 6), (3, 3), (1, 1), 2) == ((7, 8), ((2, 2), (2, 2)))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,size,stride", [((4, 6), (2, 2), (2, 2)),   # tiles the input
                                                ((5, 7), (2, 2), (2, 2)),   # partial windows dropped
                                                ((5, 7), (3, 3), (1, 1)),   # overlapping
                                                ((5, 7), (2, 3), (1, 2)),
                                                ((6, 6), (2, 2), (3, 3))])  # gaps between windows
def test_pool_forward(kind, shape, size, stride):
    x = np.random.default_rng(1).normal(size=(2,) + shape + (3,))
    spec = [{"type": f"{kind}_pool", "size": list(size), "stride": list(stride)}, L.flatten(), L.dense(2)]
    params = F.init_params(spec, shape + (3,), seed=0, dtype=np.float64)
    _, cache = F.forward(spec, params, x)
    y, _ = L.LAYERS[f"{kind}_pool"]["forward"](spec[0], {}, x, False, None)
    np.testing.assert_allclose(y, naive_pool(x, size, stride, kind), rtol=1e-13)


@pytest.mark.parametrize("training", [True, False])
def test_conv_in_chunks_when_the_columns_are_large(monkeypatch, training):
    """Above conv.COLS_BYTES the columns are made chunk by chunk of samples (and not kept): the
    same outputs, and gradients equal to rounding (the kernel gradient is summed chunk by chunk)."""
    rng = np.random.default_rng(2)
    spec = [L.conv2d(3, 3, 2, "same"), L.relu(), L.conv2d(2, 2, 1, 1), L.flatten()]
    params = F.init_params(spec, (7, 6, 2), seed=0, dtype=np.float64)
    x = rng.normal(size=(10, 7, 6, 2))
    y0, c0 = F.forward(spec, params, x, training=training)
    G = rng.normal(size=y0.shape)
    g0 = F.backward(spec, params, c0, G)
    monkeypatch.setattr(C, "COLS_BYTES", 3 * 4 * 3 * 9 * 2 * 8)  # 3 samples of the first conv's columns
    y1, c1 = F.forward(spec, params, x, training=training)
    assert c1["layers"][0][0] is None and c1["layers"][0][1] is x
    np.testing.assert_array_equal(y1, y0)
    g1 = F.backward(spec, params, c1, G)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-13, atol=1e-13)


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    y, which = C.max_pool_forward(x, (2, 2), (2, 2))
    assert y.ravel().tolist() == [3.0, 3.0]
    dx = C.max_pool_backward(which, np.ones_like(y), x.shape, (2, 2), (2, 2))
    assert dx.reshape(2, 4).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]
    # all equal: the window's top-left; overlapping windows add up
    x = np.zeros((1, 3, 3, 1))
    y, which = C.max_pool_forward(x, (2, 2), (1, 1))
    dx = C.max_pool_backward(which, np.ones_like(y), x.shape, (2, 2), (1, 1))
    assert dx.reshape(3, 3).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]


# --------------------------------------------------------------------------- finite differences

def _errors(spec, n_inputs, X, y, loss, **kw):
    params = F.init_params(spec, n_inputs, seed=3, dtype=np.float64)
    rng = np.random.default_rng(4)
    params = {k: v + 0.1 * rng.normal(size=v.shape) if k.startswith(("b_", "beta_")) else v for k, v in params.items()}
    return gradient_errors(spec, params, X, y, loss=loss, **kw)


@pytest.mark.parametrize("kernel,stride,padding", list(itertools.product(KERNELS, STRIDES, PADDINGS)))
def test_conv_gradients_fed_from_a_reshape(kernel, stride, padding):
    """[dense, reshape, conv2d, flatten]: the dense layer's gradients carry the conv's input gradient."""
    rng = np.random.default_rng(5)
    spec = [L.dense(60), L.reshape([5, 6, 2]), L.conv2d(2, kernel, stride, padding), L.flatten()]
    out = F.forward(spec, F.init_params(spec, 2, seed=0, dtype=np.float64), np.zeros((1, 2)))[0].shape[1]
    errs = _errors(spec, 2, rng.normal(size=(3, 2)), rng.normal(size=(3, out)), "mean_squared_error")
    assert max(errs.values()) < TOL, errs


def test_conv_chain_and_image_input_gradients():
    rng = np.random.default_rng(6)
    spec = [L.conv2d(3, [3, 2], 1, "same"), L.tanh(), L.conv2d(2, 2, 2, 1), L.elu(), L.conv2d(2, 3, [1, 2], "valid"),
            L.flatten(), L.dense(3)]
    errs = _errors(spec, (6, 7, 2), rng.normal(size=(4, 6, 7, 2)), rng.integers(0, 3, 4), CE, l2=0.05)
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("image,size,stride", [((4, 6, 2), 2, None), ((5, 7, 2), 2, None), ((5, 7, 2), 3, 1),
                                               ((5, 7, 2), [2, 3], [1, 2]), ((6, 6, 2), 2, 3)])
def test_pool_gradients(kind, image, size, stride):
    rng = np.random.default_rng(7)
    layer = {"type": kind, "size": size} if stride is None else {"type": kind, "size": size, "stride": stride}
    spec = [L.dense(int(np.prod(image))), L.reshape(list(image)), layer, L.flatten(), L.dense(2)]
    errs = _errors(spec, 3, rng.normal(size=(3, 3)), rng.normal(size=(3, 2)), "mean_squared_error")
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(training):
    rng = np.random.default_rng(8)
    flat = [L.dense(4), L.batch_norm(momentum=0.8, eps=1e-3), L.tanh(), L.dense(3)]
    image = [L.dense(24), L.reshape([3, 4, 2]), L.batch_norm(), L.relu(), L.conv2d(2, 2), L.batch_norm(0.5, 0.1),
             L.flatten(), L.dense(3)]
    for spec in (flat, image):
        params = F.init_params(spec, 3, seed=1, dtype=np.float64)
        # non-default gamma, beta and running statistics
        params = {k: (rng.uniform(0.5, 1.5, v.shape) if k.startswith(("gamma", "running_var")) else
                      rng.normal(size=v.shape) * 0.3 if k.startswith(("beta", "running_mean")) else v)
                  for k, v in params.items()}
        errs = gradient_errors(spec, params, rng.normal(size=(6, 3)), rng.integers(0, 3, 6), loss=CE,
                               training=training)
        # in training mode a bias right before a batch norm has no effect: its gradient is 0
        errs = {k: e for k, e in errs.items() if not (training and k in ("b_0", "b_4"))}
        assert max(errs.values()) < TOL, (training, errs)


def test_whole_cnn_gradients_with_dropout():
    rng = np.random.default_rng(9)
    spec = [L.reshape([6, 6, 1]), L.conv2d(3, 3, padding="same"), L.batch_norm(), L.relu(), L.max_pool(2),
            L.conv2d(4, 2), L.gelu(), L.avg_pool(2), L.flatten(), L.dropout(0.3), L.dense(3)]
    errs = _errors(spec, 36, rng.normal(size=(5, 36)), rng.integers(0, 3, 5), CE, l2=0.01, seed=2)
    errs.pop("b_1")  # before a batch norm in training mode: no gradient
    assert max(errs.values()) < TOL, errs


# --------------------------------------------------------------------------- buffers and purity

NEW_LAYERS = {
    "reshape": ([L.reshape([3, 2, 2])], (12,)),
    "flatten": ([L.flatten()], (3, 4, 2)),
    "conv2d": ([L.conv2d(3, 2, [1, 2], "same")], (5, 6, 2)),
    "conv2d_valid": ([L.conv2d(2, 3, 1, "valid")], (5, 6, 2)),
    "max_pool": ([L.max_pool(2)], (4, 6, 3)),
    "max_pool_overlap": ([L.max_pool(3, 1)], (5, 7, 3)),
    "avg_pool": ([L.avg_pool(2)], (4, 6, 3)),
    "avg_pool_partial": ([L.avg_pool([2, 3], [1, 2])], (5, 7, 3)),
    "batch_norm": ([L.batch_norm(0.7)], (4, 5, 3)),
    "batch_norm_flat": ([L.batch_norm()], (6,)),
    "gelu": ([L.gelu()], (7,)),
    "gelu_tanh": ([L.gelu("tanh")], (7,)),
    "elu": ([L.elu(0.5)], (7,)),
    "softplus": ([L.softplus()], (7,)),
}


@pytest.mark.parametrize("name", sorted(NEW_LAYERS))
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_with_and_without_buffers(name, training, dtype):
    """forward/backward with out=None on read-only inputs, and with buffers (in place on the
    input/gradient where the entry allows it): identical bits, inputs untouched."""
    spec, shape = NEW_LAYERS[name]
    layer = spec[0]
    entry = L.LAYERS[layer["type"]]
    rng = np.random.default_rng(0)
    own = entry["init"](layer, shape, np.random.default_rng(1), np.dtype(dtype), False)
    p = frozen({k: v + rng.normal(size=v.shape).astype(dtype) * 0.1 for k, v in own.items()})
    x = frozen(rng.normal(size=(4,) + shape).astype(dtype))
    y0, cache0 = entry["forward"](layer, p, x, training, None)
    assert y0.dtype == dtype
    g = frozen(rng.normal(size=y0.shape).astype(dtype))
    dx0, grads0 = entry["backward"](layer, p, cache0, g, True)
    assert dx0.shape == x.shape and dx0.dtype == dtype
    assert set(grads0) == set(entry["trainable"])
    state0 = entry["new_state"](layer, p, cache0) if entry["new_state"] else {}

    xb = x.copy()
    out = xb if entry["elementwise"] else np.full(y0.shape, np.nan, dtype=dtype)
    y1, cache1 = entry["forward"](layer, p, xb, training, None, out)
    assert y1 is out
    assert_tree_equal(y1, y0)
    gb = g.copy()
    bufs = {name: np.full(p[name].shape, np.nan, dtype=dtype) for name in entry["trainable"]}
    bufs["dx"] = gb if entry["elementwise"] else np.full(x.shape, np.nan, dtype=dtype)
    dx1, grads1 = entry["backward"](layer, p, cache1, gb, True, dict(bufs))
    assert dx1 is bufs["dx"]
    assert_tree_equal(dx1, dx0)
    for k in grads0:
        assert grads1[k] is bufs[k]
        assert_tree_equal(grads1[k], grads0[k])
    if entry["new_state"]:
        assert_tree_equal(entry["new_state"](layer, p, cache1), state0)
        assert set(state0) == (set(entry["state"]) if training else set())


def test_registry_entries_are_honest():
    """cache/elementwise drive the in-place rule: check what each new entry's forward really does."""
    rng = np.random.default_rng(0)
    for name, (spec, shape) in NEW_LAYERS.items():
        layer = spec[0]
        entry = L.LAYERS[layer["type"]]
        p = entry["init"](layer, shape, np.random.default_rng(1), np.dtype(np.float32), False)
        x = rng.normal(size=(3,) + shape).astype(np.float32)
        holds_x = holds_y = False
        for training in (True, False):
            y, cache = entry["forward"](layer, p, x, training, None)
            held = [a for a in _arrays(cache)]
            holds_x |= any(np.may_share_memory(a, x) for a in held)
            holds_y |= any(np.may_share_memory(a, y) for a in held)
        assert (entry["cache"] == "x") == holds_x, name
        assert (entry["cache"] == "y") == holds_y, name
        assert entry["elementwise"] == (y.shape == x.shape and layer["type"] not in ("reshape", "flatten")), name


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays(v)


def test_a_view_of_a_cached_output_is_not_overwritten():
    """sigmoid caches its output; flatten returns a view of it; dropout after it must not write
    into it (the gradient would then be wrong), and backward must not write into grad_output."""
    rng = np.random.default_rng(1)
    spec = [L.dense(12), L.sigmoid(), L.reshape([3, 4]), L.flatten(), L.dropout(0.5), L.dense(3)]
    params = F.init_params(spec, 4, seed=0, dtype=np.float64)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    assert max(gradient_errors(spec, params, X, y, loss=CE, seed=3).values()) < TOL
    out, cache = F.forward(spec, params, X, training=True, seed=3)
    h = 1 / (1 + np.exp(-(X @ params["W_0"] + params["b_0"])))
    np.testing.assert_allclose(cache["layers"][1], h, rtol=1e-13)
    # backward through views of a read-only grad_output
    spec2 = [L.dense(12), L.relu(), L.reshape([3, 4]), L.flatten()]
    p2 = F.init_params(spec2, 4, seed=0)
    out, cache = F.forward(spec2, p2, X)
    G = frozen(np.ones_like(out))
    F.backward(spec2, p2, cache, G)
    assert_tree_equal(G, np.ones_like(out))


def test_pure_and_readonly_with_image_layers():
    rng = np.random.default_rng(2)
    spec = [L.reshape([5, 5, 1]), L.conv2d(2, 3, padding="same"), L.batch_norm(), L.relu(), L.max_pool(2),
            L.flatten(), L.dropout(0.2), L.dense(3)]
    params = frozen(F.init_params(spec, 25, seed=0))
    X, y = frozen(rng.normal(size=(6, 25))), frozen(rng.integers(0, 3, 6))
    before = frozen(params)
    r1 = F.value_and_grad(spec, params, X, y, loss=CE, l2=0.1, seed=4)
    r2 = F.value_and_grad(spec, params, X, y, loss=CE, l2=0.1, seed=4)
    assert_tree_equal(r1, r2)
    assert set(r1[1]) == {k for k in params if not k.startswith("running_")}
    o1, c1 = F.forward(spec, params, X, training=True, seed=4)
    g1 = F.backward(spec, params, frozen(c1), frozen(np.ones_like(o1)))
    assert_tree_equal(g1, F.backward(spec, params, F.forward(spec, params, X, training=True, seed=4)[1],
                                     np.ones_like(o1)))
    assert_tree_equal(params, before)


@pytest.mark.filterwarnings("ignore::funcnn.train.DivergenceWarning")  # 5 samples, 2 epochs: noise
def test_float32_stays_float32_through_image_layers():
    rng = np.random.default_rng(3)
    spec = [L.reshape([6, 6, 1]), L.conv2d(2, 3, padding="same"), L.batch_norm(), L.gelu(), L.avg_pool(2),
            L.conv2d(2, 2), L.elu(), L.max_pool(2), L.flatten(), L.softplus(), L.dense(3)]
    params = F.init_params(spec, 36, seed=0)
    X = rng.normal(size=(5, 36))  # float64 data
    out, cache = F.forward(spec, params, X, training=True, seed=0)
    assert out.dtype == np.float32
    assert all(a.dtype == np.float32 for c in cache["layers"] for a in _arrays(c) if a.dtype.kind == "f")
    assert all(v.dtype == np.float32 for v in cache["state"].values())
    grads = F.backward(spec, params, cache, np.ones_like(out))
    assert all(g.dtype == np.float32 for g in grads.values())
    trained, _ = train(spec, params, X, rng.integers(0, 3, 5), loss=CE, optimizer=O.adam(1e-2), epochs=2,
                       batch_size=2, progress=False)
    assert all(v.dtype == np.float32 for v in trained.values())


# --------------------------------------------------------------------------- shapes, init, errors

def test_init_params_shapes_from_a_tuple_or_flat_inputs_with_reshape():
    spec = [L.conv2d(8, 3, padding="same"), L.relu(), L.max_pool(2), L.conv2d(4, [2, 3], 2), L.batch_norm(),
            L.flatten(), L.dense(10)]
    params = F.init_params(spec, (28, 28, 1), seed=0)
    assert {k: v.shape for k, v in params.items()} == {
        "W_0": (3, 3, 1, 8), "b_0": (8,), "W_3": (2, 3, 8, 4), "b_3": (4,), "gamma_4": (4,), "beta_4": (4,),
        "running_mean_4": (4,), "running_var_4": (4,), "W_6": (7 * 6 * 4, 10), "b_6": (10,)}
    assert F.param_keys(spec) == list(params)
    flat = F.init_params([L.reshape([28, 28, 1])] + spec, 784, seed=0)
    assert [v.shape for v in flat.values()] == [v.shape for v in params.values()]
    assert not params["running_mean_4"].any() and (params["running_var_4"] == 1).all()
    assert (params["gamma_4"] == 1).all() and not params["beta_4"].any()
    X = np.random.default_rng(0).normal(size=(3, 28, 28, 1))
    assert F.predict(spec, params, X, loss=CE).shape == (3,)
    assert F.predict([L.reshape([28, 28, 1])] + spec, flat, X.reshape(3, 784), loss=CE).shape == (3,)


def test_conv_init_is_he_or_glorot_with_conv_fan_in():
    def W(spec):
        return F.init_params(spec, (30, 30, 16), seed=5, dtype=np.float64)["W_0"]
    fan_in, fan_out = 3 * 3 * 16, 3 * 3 * 64
    he = W([L.conv2d(64, 3, init="he")])
    assert he.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.03)
    glorot = W([L.conv2d(64, 3, init="glorot")])
    assert np.abs(glorot).max() <= np.sqrt(6 / (fan_in + fan_out))
    assert glorot.std() == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.03)
    np.testing.assert_array_equal(W([L.conv2d(64, 3), L.relu()]), he)
    # batch norm, pooling, dropout and reshapes between a conv and its activation are looked through
    for between in ([L.batch_norm()], [L.max_pool(2)], [L.avg_pool(2), L.dropout(0.1)], [L.flatten()]):
        np.testing.assert_array_equal(W([L.conv2d(64, 3)] + between + [L.relu()]), he)
    for act in ("gelu", "elu", "softplus", "leaky_relu"):
        np.testing.assert_array_equal(W([L.conv2d(64, 3), L.batch_norm(), {"type": act}]), he)
    np.testing.assert_array_equal(W([L.conv2d(64, 3), L.max_pool(2), L.tanh()]), glorot)
    np.testing.assert_array_equal(W([L.conv2d(64, 3)]), glorot)


@pytest.mark.parametrize("spec,n_inputs,match", [
    ([L.conv2d(2, 3), L.flatten(), L.dense(2)], 784, r"spec\[0\] \(conv2d\).*images.*reshape"),
    ([L.reshape([28, 28]), L.conv2d(2, 3)], 784, r"spec\[1\] \(conv2d\).*images"),
    ([L.reshape([28, 27, 1]), L.dense(2)], 784, r"spec\[0\] \(reshape\).*784.*756"),
    ([L.conv2d(2, 5), L.dense(2)], (4, 4, 1), r"spec\[0\] \(conv2d\): kernel \[5, 5\] does not fit inputs of 4x4"),
    ([L.max_pool(3), L.flatten(), L.dense(2)], (2, 5, 1), r"spec\[0\] \(max_pool\): pooling window \[3, 3\]"),
    ([{"type": "conv2d", "kernel": 3}, L.dense(2)], (5, 5, 1), r"spec\[0\] \(conv2d\).*'filters'"),
    ([{"type": "conv2d", "filters": 2}, L.dense(2)], (5, 5, 1), r"spec\[0\] \(conv2d\).*'kernel'"),
    ([L.conv2d(2, 3, padding="full"), L.dense(2)], (5, 5, 1), r"spec\[0\] \(conv2d\).*'padding'.*'full'"),
    ([L.conv2d(2, 3, padding=-1), L.dense(2)], (5, 5, 1), r"'padding'.*-1"),
    ([L.conv2d(2, [3, 3, 3]), L.dense(2)], (5, 5, 1), r"'kernel'.*two positive ints"),
    ([L.conv2d(2, 3, stride=0), L.dense(2)], (5, 5, 1), r"'stride'.*positive"),
    ([{"type": "conv2d", "filters": 2, "kernel": 3, "strides": 2}, L.dense(2)], (5, 5, 1), r"unknown key.*strides"),
    ([{"type": "max_pool"}, L.dense(2)], (5, 5, 1), r"spec\[0\] \(max_pool\).*'size'"),
    ([L.batch_norm(momentum=1.5), L.dense(2)], 3, r"spec\[0\] \(batch_norm\).*'momentum'"),
    ([L.batch_norm(eps=0), L.dense(2)], 3, r"spec\[0\] \(batch_norm\).*'eps'"),
    ([{"type": "reshape", "shape": [2, -1, -1]}, L.dense(2)], 4, r"spec\[0\] \(reshape\).*one -1"),
    ([{"type": "gelu", "approximate": "sigmoid"}, L.dense(2)], 4, r"spec\[0\] \(gelu\).*'approximate'"),
    ([L.elu(-1.0), L.dense(2)], 4, r"spec\[0\] \(elu\).*'alpha'"),
])
def test_errors_name_the_layer_and_key(spec, n_inputs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        F.init_params(spec, n_inputs, seed=0)


def test_wrong_params_and_input_shapes_are_refused():
    spec = [L.conv2d(4, 3), L.batch_norm(), L.flatten(), L.dense(2)]
    params = F.init_params(spec, (6, 6, 2), seed=0)
    X = np.zeros((3, 6, 6, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"params\['W_0'\] has shape \(3, 3, 2, 4\), expected \(3, 3, 3, 4\)"):
        F.forward(spec, params, np.zeros((3, 6, 6, 3)))
    with pytest.raises(ValueError, match=r"spec\[0\] \(conv2d\).*images"):
        F.forward(spec, params, np.zeros((3, 72)))
    bad = {**params, "running_var_1": np.ones(5, dtype=np.float32)}
    with pytest.raises(ValueError, match=r"running_var_1"):
        F.forward(spec, bad, X)
    with pytest.raises(ValueError, match=r"missing key.*running_mean_1"):
        F.forward(spec, {k: v for k, v in params.items() if k != "running_mean_1"}, X)
    nan = {**params, "running_mean_1": np.full(4, np.nan, dtype=np.float32)}
    with pytest.raises(ValueError, match=r"running_mean_1"):
        F.predict(spec, nan, X, loss=CE)


def test_layer_constructors_are_plain_json_dicts():
    import json
    spec = [L.reshape((28, 28, 1)), L.conv2d(8, (3, 2), (1, 2), "same"), L.max_pool((2, 2)), L.avg_pool(2, (1, 1)),
            L.batch_norm(), L.flatten(), L.gelu("tanh"), L.elu(0.5), L.softplus()]
    assert json.loads(json.dumps(spec)) == spec
    assert spec[1] == {"type": "conv2d", "filters": 8, "kernel": [3, 2], "stride": [1, 2], "padding": "same"}
    assert L.max_pool(2) == {"type": "max_pool", "size": 2}
    assert L.batch_norm() == {"type": "batch_norm", "momentum": 0.9, "eps": 1e-5}
    assert L.gelu() == {"type": "gelu"} and L.elu() == {"type": "elu"}
    for kind in ("gelu", "elu", "softplus"):
        assert kind in L.ACTIVATIONS
    assert L.mlp([4], "gelu", n_outputs=2)[1] == {"type": "gelu"}


# --------------------------------------------------------------------------- batch norm conventions

def test_batch_norm_running_statistics_convention():
    rng = np.random.default_rng(4)
    spec = [L.reshape([2, 3, 4]), L.batch_norm(momentum=0.8, eps=1e-3), L.flatten(), L.dense(2)]
    params = F.init_params(spec, 24, seed=0, dtype=np.float64)
    params["running_mean_1"] = rng.normal(size=4)
    params["running_var_1"] = rng.uniform(0.5, 2, 4)
    X = rng.normal(size=(5, 24)) * 3 + 1
    h = X.reshape(5 * 2 * 3, 4)
    mean, var = h.mean(axis=0), h.var(axis=0)  # the biased variance
    out, cache = F.forward(spec, params, X, training=True)
    np.testing.assert_allclose(cache["state"]["running_mean_1"], 0.8 * params["running_mean_1"] + 0.2 * mean, rtol=1e-13)
    np.testing.assert_allclose(cache["state"]["running_var_1"], 0.8 * params["running_var_1"] + 0.2 * var, rtol=1e-13)
    xhat = (h - mean) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(out, xhat.reshape(5, 24) @ params["W_3"] + params["b_3"], rtol=1e-12)
    # inference: the running statistics, and no new state
    out, cache = F.forward(spec, params, X)
    xhat = (h - params["running_mean_1"]) / np.sqrt(params["running_var_1"] + 1e-3)
    np.testing.assert_allclose(out, xhat.reshape(5, 24) @ params["W_3"] + params["b_3"], rtol=1e-12)
    assert cache["state"] == {}
    # a fresh network predicts (running mean 0, variance 1)
    fresh = F.init_params(spec, 24, seed=0, dtype=np.float64)
    np.testing.assert_allclose(F.forward(spec, fresh, X)[0], X / np.sqrt(1 + 1e-3) @ fresh["W_3"] + fresh["b_3"],
                               rtol=1e-12)


def test_running_state_no_gradient_no_weight_decay_carried_by_update():
    rng = np.random.default_rng(5)
    spec = [L.dense(4), L.batch_norm(), L.relu(), L.dense(2)]
    params = F.init_params(spec, 3, seed=0)
    params["running_mean_1"] = rng.normal(size=4).astype(np.float32)
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    _, grads = F.value_and_grad(spec, params, X, y, loss=CE, l2=0.5)
    assert set(grads) == {"W_0", "b_0", "gamma_1", "beta_1", "W_3", "b_3"}
    opt = O.adam(0.1, weight_decay=0.5)
    state = F.init_state(opt, params)
    assert set(state["m"]) == set(grads)
    new, _ = F.update(opt, params, grads, state)
    assert new["running_mean_1"] is params["running_mean_1"] and new["running_var_1"] is params["running_var_1"]
    # l2 penalises W_* only (dense and conv kernels), never gamma/beta/running stats
    v0, _ = F.value_and_grad(spec, params, X, y, loss=CE)
    big = {**params, "gamma_1": params["gamma_1"] * 1.0, "running_var_1": params["running_var_1"] * 9}
    v1, _ = F.value_and_grad(spec, big, X, y, loss=CE, l2=0.5)
    assert v1 == pytest.approx(v0 + 0.25 * sum(float((params[k].astype(np.float64) ** 2).sum()) for k in ("W_0", "W_3")),
                               rel=1e-6)


def _hand_loop(spec, params, X, y, opt, epochs, batch_size, seed, l2=0.0):
    """The loop of public functions docs/guide/purity.md documents (no dropout): value_and_grad, update,
    then the running statistics of the step's forward pass."""
    rng = np.random.default_rng(seed)
    state = F.init_state(opt, params)
    n = X.shape[0]
    for _ in range(epochs):
        perm = rng.permutation(n)
        for b in range(-(-n // batch_size)):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            _, grads = F.value_and_grad(spec, params, X[idx], y[idx], loss=CE, l2=l2)
            _, cache = F.forward(spec, params, X[idx], training=True)
            new, state = F.update(opt, params, grads, state)
            params = {**new, **cache["state"]}
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, batch", [(20, 8), (90, 40)])
def test_train_is_the_hand_written_loop_bit_for_bit(dtype, n, batch):
    """Also with minibatches of 2 parts (40 and 10 samples: funcnn.parallel), which train runs on
    two threads and the public functions one after the other."""
    rng = np.random.default_rng(6)
    spec = [L.reshape([6, 6, 1]), L.conv2d(3, 3, padding="same"), L.batch_norm(), L.relu(), L.max_pool(2),
            L.conv2d(4, 2, padding=1), L.batch_norm(0.5), L.elu(), L.avg_pool(2), L.flatten(), L.dense(3)]
    params = F.init_params(spec, 36, seed=0, dtype=dtype)
    X, y = rng.normal(size=(n, 36)).astype(dtype), rng.integers(0, 3, n)
    for opt in (O.adam(1e-2), O.sgd(0.05, momentum=0.9, clip_norm=0.5)):
        got, _ = train(spec, params, X, y, loss=CE, optimizer=opt, epochs=2, batch_size=batch, l2=1e-3, seed=3,
                       progress=False)
        expected = _hand_loop(spec, params, X, y, opt, 2, batch, 3, l2=1e-3)
        assert_tree_equal(got, expected)
        assert not np.array_equal(got["running_mean_2"], params["running_mean_2"])


# --------------------------------------------------------------------------- checkpoints

CNN = [L.reshape([8, 8, 1]), L.conv2d(4, 3, padding="same"), L.batch_norm(), L.relu(), L.max_pool(2),
       L.conv2d(6, 3, [1, 2], 1), L.batch_norm(), L.gelu(), L.flatten(), L.dropout(0.2), L.dense(3)]


def _cnn_data(n=40):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 64)).astype(np.float32)
    return X, (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)


@pytest.mark.parametrize("ext", ["npz", "pkl"])
def test_checkpoint_round_trip_with_conv_and_batch_norm(tmp_path, ext):
    X, y = _cnn_data()
    params, _ = train(CNN, F.init_params(CNN, 64, seed=0), X, y, loss=CE, optimizer=O.adam(1e-2), epochs=2,
                      batch_size=16, progress=False)
    path = str(tmp_path / f"cnn.{ext}")
    F.save(path, CNN, params, loss=CE)
    loaded = F.load(path)
    assert loaded["spec"] == CNN
    assert_tree_equal(loaded["params"], params)
    np.testing.assert_array_equal(F.predict(loaded["spec"], loaded["params"], X, loss=CE),
                                  F.predict(CNN, params, X, loss=CE))


@pytest.mark.parametrize("n_inputs", [64, (8, 8, 1)])
def test_bit_exact_resume_with_conv_and_batch_norm(tmp_path, n_inputs):
    X, y = _cnn_data()
    spec = CNN if n_inputs == 64 else CNN[1:]
    Xs = X if n_inputs == 64 else X.reshape(-1, 8, 8, 1)
    params = F.init_params(spec, n_inputs, seed=0)
    kw = dict(loss=CE, optimizer=O.adam(1e-2, clip_norm=1.0), batch_size=16, seed=5, progress=False,
              validation_data=(Xs[:10], y[:10]))
    full, hist_full = train(spec, params, Xs, y, epochs=4, **kw)
    path = str(tmp_path / "run.npz")
    train(spec, params, Xs, y, epochs=2, checkpoint=path, **kw)
    resumed, hist = train(spec, params, Xs, y, epochs=4, checkpoint=path, **kw)
    assert_tree_equal(resumed, full)
    assert hist == hist_full
    # and the run API: new_run + train_epoch
    run = new_run(spec, params, kw["optimizer"], seed=5)
    for _ in range(4):
        run = train_epoch(spec, run, Xs, y, loss=CE, optimizer=kw["optimizer"], batch_size=16)
    plain, _ = train(spec, params, Xs, y, epochs=4, loss=CE, optimizer=kw["optimizer"], batch_size=16, seed=5,
                     progress=False)
    assert_tree_equal(run["params"], plain)


@pytest.mark.parametrize("chunk", [256, 700, 1000])
def test_chunked_inference_of_a_cnn(monkeypatch, chunk):
    """predict/evaluate run in chunks of rows, and conv2d in chunks of samples above COLS_BYTES
    (every chunk one GEMM height, the last overlapping): the same outputs up to the rounding of
    GEMMs of another height, and bit for bit between runs with the same chunks."""
    from funcnn import network
    spec = [L.reshape([12, 12, 1]), L.conv2d(4, 3, padding="same"), L.batch_norm(), L.relu(), L.max_pool(2),
            L.conv2d(6, 3), L.relu(), L.flatten(), L.dense(5)]
    params = F.init_params(spec, 144, seed=0)
    X = np.random.default_rng(0).random((1500, 144)).astype(np.float32)
    whole = network.infer(spec, params, X, chunk=10 ** 9)
    np.testing.assert_allclose(network.infer(spec, params, X, chunk=chunk), whole, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(C, "COLS_BYTES", 300 * 144 * 9 * 4)  # conv chunks of 300 samples, overlapping at the end
    small = network.infer(spec, params, X, chunk=chunk)
    np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-5)
    assert_tree_equal(network.infer(spec, params, X, chunk=chunk), small)


def test_default_inference_chunks_count_the_widest_layer_output(monkeypatch):
    """Without a chunk, inference sizes its chunks by the widest array a pass makes, not by the
    input alone: a 28x28x1 image grows to 28x28x16 after the first convolution, so 600 images run
    in chunks of MIN_CHUNK rows (sized by the input, 8 MB would hold 2675 images: one chunk of
    134 MB activations). A dense network keeps input-sized chunks; the output is the same."""
    from funcnn import network
    spec = [L.conv2d(16, 3, padding="same"), L.relu(), L.max_pool(2), L.flatten(), L.dense(3)]
    assert network.widest_row(spec, (28, 28, 1)) == 28 * 28 * 16
    mlp = L.mlp([8], n_outputs=3)
    assert network.widest_row(mlp, (784,)) == 784
    params = F.init_params(spec, (28, 28, 1), seed=0)
    X = frozen(np.random.default_rng(0).random((600, 28, 28, 1)).astype(np.float32))
    heights = []
    real = network.run_forward

    def spy(spec_, lparams, part, *args, **kwargs):
        heights.append(part.shape[0])
        return real(spec_, lparams, part, *args, **kwargs)
    monkeypatch.setattr(network, "run_forward", spy)
    out = network.infer(spec, params, X)
    expected_chunk = max(network.MIN_CHUNK, network.INFERENCE_CHUNK_BYTES // (28 * 28 * 16 * 4))
    assert heights == [expected_chunk] * 3 and expected_chunk < 600
    assert_tree_equal(out, network.infer(spec, params, X, chunk=expected_chunk))
    heights.clear()
    mparams = F.init_params(mlp, 784, seed=0)
    network.infer(mlp, mparams, frozen(np.zeros((600, 784), np.float32)))
    assert heights == [600]  # 8 MB of 784-float rows: 2675 rows, one chunk
    heights.clear()
    F.predict(spec, params, X[:1], loss="softmax_cross_entropy")
    assert heights == [1]
