"""funcnn.export and the .safetensors format: random networks of every layer type run in ONNX Runtime
(and onnx's reference evaluator, for float64 ops ONNX Runtime lacks) against forward, PyTorch modules
out and back, safetensors files read by the safetensors package, and the command line.

CI installs onnx, onnxruntime and safetensors (the ``export`` extra) and torch, so nothing here skips there.
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import safetensors.numpy as stn

import funcnn
from funcnn import export
from funcnn.layers import LAYERS
from funcnn.network import walk

# Relative error allowed against forward (API §11): the largest difference over the largest output.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

ACTIVATIONS = [{"type": "relu"}, {"type": "leaky_relu", "alpha": 0.2}, {"type": "sigmoid"}, {"type": "tanh"},
               {"type": "identity"}, {"type": "softmax"}, {"type": "dropout", "rate": 0.3},
               {"type": "gelu"}, {"type": "gelu", "approximate": "tanh"}, {"type": "elu", "alpha": 0.7},
               {"type": "softplus"}]


def _randomise(spec, params, seed):
    """Non-trivial batch-norm arrays (running statistics, gamma, beta) so that they matter."""
    rng = np.random.default_rng(seed)
    out = dict(params)
    for k, v in params.items():
        if k.startswith(("running_mean", "beta", "b_")):
            out[k] = rng.normal(0, 0.5, v.shape).astype(v.dtype)
        elif k.startswith(("running_var", "gamma")):
            out[k] = rng.uniform(0.5, 2.0, v.shape).astype(v.dtype)
    return out


def _flat(n_hidden=7, n_out=4):
    return lambda act: [{"type": "dense", "units": n_hidden}, dict(act), {"type": "dense", "units": n_out},
                        dict(act)]


# (name, spec, one sample's shape, whether input_shape must be passed)
NETWORKS = [(f"mlp-{a['type']}{'-' + a['approximate'] if 'approximate' in a else ''}", _flat()(a), (5,), False)
            for a in ACTIVATIONS]
NETWORKS += [
    ("mlp-batch_norm", [{"type": "dense", "units": 6}, {"type": "batch_norm", "eps": 1e-3}, {"type": "relu"},
                        {"type": "dense", "units": 3}], (5,), False),
    ("cnn-reshape-same-stride2", [
        {"type": "reshape", "shape": [6, 7, 2]},
        {"type": "conv2d", "filters": 3, "kernel": [3, 2], "stride": 2, "padding": "same"},  # odd extra padding
        {"type": "batch_norm"}, {"type": "relu"},
        {"type": "max_pool", "size": 2},
        {"type": "conv2d", "filters": 4, "kernel": [2, 3], "padding": 1},
        {"type": "avg_pool", "size": [2, 1], "stride": 1},
        {"type": "tanh"}, {"type": "flatten"}, {"type": "dense", "units": 3}], (84,), False),
    ("cnn-conv-first", [
        {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"},
        {"type": "elu"},
        {"type": "max_pool", "size": 3, "stride": 2},  # partial windows dropped: 9x7 -> 4x3
        {"type": "batch_norm"},
        {"type": "conv2d", "filters": 2, "kernel": [2, 1], "stride": [1, 2]},
        {"type": "sigmoid"},
        {"type": "reshape", "shape": [-1, 2]}, {"type": "flatten"},
        {"type": "dense", "units": 5}, {"type": "softmax"}], (9, 7, 3), True),
    ("cnn-softmax-on-images", [  # softmax on (n, h, w, c): the axis funcnn normalises, whichever it is
        {"type": "reshape", "shape": [3, 4, 2]}, {"type": "softmax"},
        {"type": "conv2d", "filters": 2, "kernel": 2}, {"type": "softmax"}, {"type": "flatten"},
        {"type": "dense", "units": 2}], (24,), False),
    ("cnn-valid-avg-gelu", [
        {"type": "reshape", "shape": [8, 8, 1]},
        {"type": "conv2d", "filters": 3, "kernel": 3},
        {"type": "gelu"}, {"type": "avg_pool", "size": 2},
        {"type": "leaky_relu", "alpha": 0.1}, {"type": "softplus"},
        {"type": "flatten"}, {"type": "dense", "units": 2}], (64,), False),
]
NETWORKS += [
    ("residual-mlp", [{"type": "dense", "units": 6},
                      {"type": "residual", "body": [{"type": "dense", "units": 6}, {"type": "relu"},
                                                    {"type": "dense", "units": 6}]},
                      {"type": "residual", "body": [{"type": "tanh"}],
                       "shortcut": [{"type": "dense", "units": 6}]},
                      {"type": "dense", "units": 3}], (5,), False),
    ("resnet-parallel-global-pool", [
        {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"},
        {"type": "residual", "body": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"},
                                      {"type": "batch_norm"}, {"type": "relu"},
                                      {"type": "residual", "body": [
                                          {"type": "conv2d", "filters": 4, "kernel": 1}]}]},
        {"type": "parallel", "merge": "concat", "branches": [
            [{"type": "conv2d", "filters": 2, "kernel": 1}],
            [{"type": "max_pool", "size": 1}, {"type": "relu"}],
            [{"type": "flatten"}, {"type": "reshape", "shape": [6, 6, 4]}]]},
        {"type": "parallel", "merge": "sum", "branches": [
            [{"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": "same"}],
            [{"type": "avg_pool", "size": 2}, {"type": "conv2d", "filters": 3, "kernel": 1}]]},
        {"type": "global_pool", "mode": "mean"},
        {"type": "dense", "units": 3}], (6, 6, 2), True),
    ("parallel-identity-branch", [{"type": "dense", "units": 4},
                                  {"type": "parallel", "branches": [[], [{"type": "dense", "units": 3},
                                                                         {"type": "relu"}]]},
                                  {"type": "residual", "body": [{"type": "dense", "units": 7}], "shortcut": []},
                                  {"type": "dense", "units": 2}], (5,), False),
    ("global-max-residual-projection", [
        {"type": "reshape", "shape": [4, 4, 2]},
        {"type": "residual", "body": [{"type": "conv2d", "filters": 3, "kernel": 2, "stride": 2}],
         "shortcut": [{"type": "avg_pool", "size": 2}, {"type": "conv2d", "filters": 3, "kernel": 1}]},
        {"type": "global_pool", "mode": "max"}, {"type": "dense", "units": 2}], (32,), False),
]
if "attention" in LAYERS:  # the sequence layers (API §10)
    NETWORKS += [
        ("transformer-tokens", [
            {"type": "embedding", "vocab": 11, "dim": 8}, {"type": "positional", "max_len": 12},
            {"type": "residual", "body": [{"type": "layer_norm"}, {"type": "attention", "heads": 2, "causal": True}]},
            {"type": "residual", "body": [{"type": "layer_norm", "eps": 1e-3}, {"type": "dense", "units": 16},
                                          {"type": "gelu", "approximate": "tanh"}, {"type": "dense", "units": 8}]},
            {"type": "layer_norm"}, {"type": "dense", "units": 11}], (7,), True),
        ("attention-on-sequences", [
            {"type": "dense", "units": 8}, {"type": "attention", "heads": 4}, {"type": "relu"},
            {"type": "global_pool", "mode": "mean"}, {"type": "dense", "units": 3}], (5, 6), True),
    ]
VOCAB = 11  # token ids of the token networks are drawn from range(VOCAB)

BATCHES = (1, 13)


def _network(name, dtype=np.float32, seed=0):
    _, spec, shape, needs_shape = next(n for n in NETWORKS if n[0] == name)
    params = _randomise(spec, funcnn.init_params(spec, shape if len(shape) > 1 or export.takes_tokens(spec)
                                                 else shape[0], seed=seed,
                                                 dtype=dtype), seed)
    return spec, params, shape, (shape if needs_shape else None)


def _X(shape, n, dtype, seed=1, spec=None):
    rng = np.random.default_rng(seed)
    if spec is not None and export.takes_tokens(spec):
        return rng.integers(0, VOCAB, (n,) + tuple(shape))
    return rng.normal(0, 1.5, (n,) + tuple(shape)).astype(dtype)


def _rel(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _needs_reference(spec, dtype):
    """ONNX Runtime's CPU kernels lack Conv, AveragePool and Erf in float64: those run in onnx's reference evaluator."""
    kinds = {layer["type"] for _, layer in walk(spec)}
    return dtype == np.float64 and bool(kinds & {"conv2d", "avg_pool"} or
                                        any(l["type"] == "gelu" and l.get("approximate", "none") == "none"
                                            for _, l in walk(spec)))


def _run_onnx(path, spec, X):
    if _needs_reference(spec, X.dtype):
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(str(path)).run(None, {"input": X})[0]
    return _session(path).run(["output"], {"input": X})[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [n[0] for n in NETWORKS])
def test_onnx_matches_forward(tmp_path, name, dtype):
    spec, params, shape, input_shape = _network(name, dtype)
    path = tmp_path / "m.onnx"
    assert export.to_onnx(spec, params, path, input_shape=input_shape) == str(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and tuple(d.dim_value for d in dims[1:]) == tuple(shape)
    want_elem = onnx.TensorProto.INT64 if export.takes_tokens(spec) else onnx.helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype))
    assert model.graph.input[0].type.tensor_type.elem_type == want_elem
    for n in BATCHES:  # one model, two batch sizes
        X = _X(shape, n, dtype, spec=spec)
        want = funcnn.forward(spec, params, X)[0]
        got = _run_onnx(path, spec, X)
        rel = _rel(got, want)
        # onnx's reference evaluator computes Erf in float32 (and ONNX Runtime has no float64 Erf)
        assert rel <= (1e-6 if _needs_reference(spec, dtype) and "gelu" in name else RTOL[dtype]), f"{name}, batch {n}: relative error {rel:.3g}"


def test_every_layer_type_is_covered():
    """Each layer type funcnn knows is exported by some network above (and ONNX/torch both know it)."""
    used = {layer["type"] for _, spec, _, _ in NETWORKS for _, layer in walk(spec)}
    not_exportable = sorted(set(LAYERS) - set(export.exportable_types("onnx")))
    untested = sorted(set(LAYERS) - used)
    assert export.exportable_types("onnx") == export.exportable_types("torch")
    # sequence layers (API §10) arrive from another branch; until they have exporters they are refused
    assert untested == not_exportable, f"untested layer types {untested}, not exportable {not_exportable}"


def test_image_tensors_stay_nchw_between_image_layers(tmp_path):
    spec, params, _, _ = _network("cnn-reshape-same-stride2")
    model = export.onnx_model(spec, params)
    ops = [n.op_type for n in model.graph.node]
    # one transpose into NCHW before the first conv, one back before flatten: none around bn/relu/pools
    assert ops.count("Transpose") == 2, ops


def test_onnx_shape_inference_agrees_with_funcnn_shapes():
    spec, params, shape, input_shape = _network("cnn-conv-first")
    model = onnx.shape_inference.infer_shapes(export.onnx_model(spec, params, input_shape=input_shape),
                                              strict_mode=True)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [5]


@pytest.mark.parametrize("opset", [13, 17, 18, onnx.defs.onnx_opset_version()])
def test_opsets(tmp_path, opset):
    spec, params, shape, _ = _network("cnn-reshape-same-stride2")
    if "global_pool" in LAYERS:
        spec = spec[:-2] + [{"type": "global_pool", "mode": "max"}, {"type": "dense", "units": 3}]
        params = funcnn.init_params(spec, shape[0], seed=3)
    path = tmp_path / "m.onnx"
    export.to_onnx(spec, params, path, opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    X = _X(shape, 4, np.float32)
    assert _rel(_session(path).run(None, {"input": X})[0], funcnn.forward(spec, params, X)[0]) <= 1e-5


def test_activations_near_zero_and_far_out(tmp_path):
    """Every activation on inputs from -60 to 60 and near 0, elementwise to float32 rounding (no underflow to 0
    where funcnn keeps tiny values, no cancellation near 0 for elu and softplus)."""
    x = np.concatenate([np.linspace(-60, 60, 241), np.geomspace(1e-8, 1e-1, 40), -np.geomspace(1e-8, 1e-1, 40),
                        [0.0]]).astype(np.float32)[:, None]
    for act in ACTIVATIONS:
        spec = [dict(act), {"type": "dense", "units": 1}]
        params = {"W_1": np.ones((1, 1), np.float32), "b_1": np.zeros(1, np.float32)}
        path = tmp_path / "a.onnx"
        export.to_onnx(spec, params, path)
        got = _session(path).run(None, {"input": x})[0]
        want = funcnn.forward(spec, params, x)[0]
        if act["type"] == "gelu":  # 1 + erf (or tanh) cancels for x < 0: one ulp of erf/tanh near -1 is 6e-8
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=5e-7, err_msg=str(act))
        else:
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-37, err_msg=str(act))


# --- errors and file handling -----------------------------------------------------------

@pytest.fixture
def mystery_layer(monkeypatch):
    """A layer type funcnn knows but the exporters do not (as a new layer type would be)."""
    monkeypatch.setitem(LAYERS, "mystery", dict(LAYERS["identity"]))
    return [{"type": "dense", "units": 3}, {"type": "mystery"}, {"type": "dense", "units": 2}]


def test_unexportable_layer_is_refused_before_any_file(tmp_path, mystery_layer):
    spec = mystery_layer
    params = funcnn.init_params(spec, 4, seed=0)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"spec path 1 \(mystery\).*cannot be exported to ONNX"):
        export.to_onnx(spec, params, path)
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="mystery"):
        export.to_onnx(spec, params, path)
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.onnx"]
    with pytest.raises(ValueError, match=r"spec path 1 \(mystery\).*PyTorch"):
        export.to_torch(spec, params)


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    spec, params, _, _ = _network("mlp-relu")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", boom)
    with pytest.raises(RuntimeError):
        export.to_onnx(spec, params, path)
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.onnx"]


def test_bad_inputs_are_refused_with_clear_errors(tmp_path):
    spec, params, shape, input_shape = _network("cnn-conv-first")
    with pytest.raises(ValueError, match="pass input_shape="):
        export.to_onnx(spec, params, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"spec\[2\] \(max_pool\): pooling window \[3, 3\] does not fit"):
        export.to_onnx(spec, params, tmp_path / "m.onnx", input_shape=(2, 2, 3))  # the pooling does not fit
    with pytest.raises(FileNotFoundError, match="no such directory"):
        export.to_onnx(spec, params, tmp_path / "missing" / "m.onnx", input_shape=input_shape)
    with pytest.raises(ValueError, match="is a directory"):
        export.to_onnx(spec, params, tmp_path, input_shape=input_shape)
    with pytest.raises(ValueError, match="opset must be between 13"):
        export.to_onnx(spec, params, tmp_path / "m.onnx", input_shape=input_shape, opset=7)
    with pytest.raises(TypeError, match="opset must be an int"):
        export.to_onnx(spec, params, tmp_path / "m.onnx", input_shape=input_shape, opset="17")
    bad = dict(params)
    bad["W_0"] = bad["W_0"].copy()
    bad["W_0"][0, 0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="W_0"):
        export.to_onnx(spec, bad, tmp_path / "m.onnx", input_shape=input_shape)
    with pytest.raises(ValueError, match="missing key"):
        export.to_onnx(spec, {k: v for k, v in params.items() if k != "b_0"}, tmp_path / "m.onnx",
                       input_shape=input_shape)
    assert os.listdir(tmp_path) == []


def test_export_is_pure(tmp_path):
    """Read-only params pass through every export function, unchanged; the same input gives the same bytes."""
    spec, params, shape, input_shape = _network("cnn-conv-first")
    frozen = {k: v.copy() for k, v in params.items()}
    for v in frozen.values():
        v.flags.writeable = False
    before = copy.deepcopy(spec)
    export.to_onnx(spec, frozen, tmp_path / "a.onnx", input_shape=input_shape)
    export.to_onnx(spec, frozen, tmp_path / "b.onnx", input_shape=input_shape)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    torch = pytest.importorskip("torch")
    module = export.to_torch(spec, frozen, input_shape=input_shape)
    export.from_torch(spec, module)
    assert spec == before and all(np.array_equal(frozen[k], params[k]) for k in params)
    assert isinstance(module, torch.nn.Module)


# --- PyTorch --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [n[0] for n in NETWORKS])
def test_to_torch_matches_forward_and_round_trips(name, dtype):
    torch = pytest.importorskip("torch")
    spec, params, shape, input_shape = _network(name, dtype)
    module = export.to_torch(spec, params, input_shape=input_shape)
    assert not module.training
    for n in BATCHES:
        X = _X(shape, n, dtype, spec=spec)
        with torch.no_grad():
            got = module(torch.from_numpy(X)).numpy()
        assert _rel(got, funcnn.forward(spec, params, X)[0]) <= RTOL[dtype] * (10 if dtype == np.float64 else 1)
    for source in (module, module.state_dict()):
        back = export.from_torch(spec, source)
        assert list(back) == list(params)
        for k in params:
            assert back[k].dtype == params[k].dtype and back[k].shape == params[k].shape
            assert back[k].tobytes() == params[k].tobytes(), k
            assert back[k].flags.c_contiguous and back[k].flags.writeable


def test_torch_layouts_are_pytorchs():
    torch = pytest.importorskip("torch")
    spec, params, _, input_shape = _network("cnn-conv-first")
    state = export.to_torch(spec, params, input_shape=input_shape).state_dict()
    np.testing.assert_array_equal(state["0.weight"].numpy(), params["W_0"].transpose(3, 2, 0, 1))  # OIHW
    np.testing.assert_array_equal(state["8.weight"].numpy(), params["W_8"].T)  # Linear.weight is W.T
    np.testing.assert_array_equal(state["3.running_var"].numpy(), params["running_var_3"])
    assert isinstance(export.to_torch(spec, params, input_shape=input_shape)[0], torch.nn.Conv2d)


def test_from_torch_refuses_state_dicts_that_do_not_fit():
    pytest.importorskip("torch")
    spec, params, _, input_shape = _network("cnn-conv-first")
    state = export.to_torch(spec, params, input_shape=input_shape).state_dict()
    with pytest.raises(ValueError, match=r"spec path 8 \(dense\).*no '8.bias'"):
        export.from_torch(spec, {k: v for k, v in state.items() if k != "8.bias"})
    with pytest.raises(ValueError, match="'9.weight'"):
        export.from_torch(spec, {**state, "9.weight": state["8.weight"]})
    spec, params, _, _ = _network("mlp-batch_norm")
    state = export.to_torch(spec, params).state_dict()
    with pytest.raises(ValueError, match="W_3"):
        export.from_torch(spec, {**state, "3.weight": state["3.weight"][:, :3]})
    with pytest.raises(ValueError, match="running_var_1"):
        export.from_torch(spec, {**state, "1.running_var": state["1.running_var"][:2]})
    with pytest.raises(TypeError, match="torch.nn.Module or a state_dict"):
        export.from_torch(spec, [1, 2])


def test_from_torch_of_a_trained_torch_module():
    """A module trained in PyTorch comes back as params whose forward is the module's output."""
    torch = pytest.importorskip("torch")
    spec, params, shape, input_shape = _network("mlp-batch_norm")
    module = export.to_torch(spec, params).train()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    X = torch.from_numpy(_X(shape, 32, np.float32))
    for _ in range(3):
        opt.zero_grad()
        module(X).square().mean().backward()
        opt.step()
    module.eval()
    back = export.from_torch(spec, module)
    assert not np.array_equal(back["running_mean_1"], params["running_mean_1"])
    with torch.no_grad():
        want = module(X).numpy()
    assert _rel(funcnn.forward(spec, back, X.numpy())[0], want) <= 1e-5


# --- safetensors ----------------------------------------------------------------------

def test_safetensors_round_trip_and_foreign_readers(tmp_path):
    spec, params, _, _ = _network("cnn-conv-first", np.float64)
    meta = {"loss": "softmax_cross_entropy", "classes": np.array(["cat", "dog", "emu", "gnu", "yak"]),
            "history": {"loss": [1.5, float("nan")]}, "scaler": {"mean": np.arange(3.0), "n": 2 ** 70},
            "big_endian": np.arange(4, dtype=">i4"), "flag": True}
    path = tmp_path / "m.safetensors"
    funcnn.save(path, spec, params, **meta)
    back = funcnn.load(path)
    assert back["spec"] == spec and list(back["params"]) == list(params)
    for k, v in params.items():
        assert back["params"][k].dtype == v.dtype and back["params"][k].tobytes() == v.tobytes()
    assert back["classes"].dtype == meta["classes"].dtype and list(back["classes"]) == list(meta["classes"])
    assert back["scaler"]["n"] == 2 ** 70 and np.array_equal(back["scaler"]["mean"], np.arange(3.0))
    assert np.isnan(back["history"]["loss"][1]) and back["flag"] is True
    assert back["big_endian"].dtype == np.dtype("=i4") and list(back["big_endian"]) == [0, 1, 2, 3]
    # the safetensors package reads it: the arrays by key, the spec in the header
    arrays = stn.load_file(str(path))
    for k, v in params.items():
        assert arrays[f"params/{k}"].tobytes() == v.tobytes()
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as fh:
        header = json.loads(fh.metadata()["funcnn"])
    assert header["format"] == "funcnn" and header["spec"] == spec
    assert funcnn.predict(back["spec"], back["params"], _X((9, 7, 3), 2, np.float64),
                          loss="softmax_cross_entropy").shape == (2,)


def test_safetensors_bad_files_are_refused(tmp_path):
    spec, params, _, _ = _network("mlp-relu")
    good = tmp_path / "m.safetensors"
    funcnn.save(good, spec, params, loss="mean_squared_error")
    data = good.read_bytes()
    size = int.from_bytes(data[:8], "little")
    foreign = tmp_path / "foreign.safetensors"
    stn.save_file({"weight": np.ones((2, 2), np.float32)}, str(foreign), metadata={"format": "pt"})
    header = json.loads(data[8:8 + size])
    inner = json.loads(header["__metadata__"]["funcnn"])

    def with_inner(change):
        h = copy.deepcopy(header)
        new = copy.deepcopy(inner)
        change(new)
        h["__metadata__"]["funcnn"] = json.dumps(new)
        text = json.dumps(h).encode()
        text += b" " * (-len(text) % 8)
        return len(text).to_bytes(8, "little") + text + data[8 + size:]

    cases = {
        "truncated": (data[:-7], "could not be read"),
        "short": (data[:6], "shorter than a safetensors header"),
        "empty": (b"", "empty"),
        "header cut": (data[:8 + size // 2], "truncated"),
        "flipped data bit": (data[:-1] + bytes([data[-1] ^ 0x10]), "checksum mismatch"),
        "bad JSON": (data[:8] + b"x" + data[9:], "not valid JSON"),
        "bad inner JSON": (with_inner(lambda h: None).replace(b'"format', b'"form\\u', 1), "valid JSON"),
        "no spec": (with_inner(lambda h: h.pop("spec")), "spec is invalid|checksum"),
        "shape mismatch": (with_inner(lambda h: h["spec"].__setitem__(0, {"type": "dense", "units": 9})),
                           "checksum mismatch"),
        "missing tensor": (with_inner(lambda h: h["params"].append("W_9")), "missing"),
        "newer version": (with_inner(lambda h: h.__setitem__("version", 99)), "newer than this funcnn reads"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            funcnn.load(bad)
        assert str(bad) in str(info.value), name
    with pytest.raises(ValueError, match="no 'funcnn' entry.*not one funcnn.save wrote"):
        funcnn.load(foreign)


def test_safetensors_save_is_atomic_and_checked_first(tmp_path):
    spec, params, _, _ = _network("mlp-relu")
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"previous")
    with pytest.raises(TypeError, match="objects"):
        funcnn.save(path, spec, params, labels=np.array([object()]))
    with pytest.raises(ValueError, match="missing key"):
        funcnn.save(path, spec, {"W_0": params["W_0"]})
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.safetensors"]


# --- the command line -----------------------------------------------------------------

def test_cli_export(tmp_path, capsys):
    from funcnn.cli import main
    spec, params, shape, _ = _network("cnn-reshape-same-stride2")
    model = tmp_path / "model.npz"
    funcnn.save(model, spec, params, loss="softmax_cross_entropy")
    assert main(["export", str(model), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    X = _X(shape, 3, np.float32)
    assert _rel(_session(tmp_path / "m.onnx").run(None, {"input": X})[0], funcnn.forward(spec, params, X)[0]) <= 1e-5
    assert main(["export", str(model), str(tmp_path / "m.safetensors")]) == 0
    back = funcnn.load(tmp_path / "m.safetensors")
    assert back["loss"] == "softmax_cross_entropy" and all(
        back["params"][k].tobytes() == v.tobytes() for k, v in params.items())
    assert main(["export", str(tmp_path / "m.safetensors"), str(tmp_path / "again.onnx"), "--opset", "18"]) == 0
    capsys.readouterr()
    # a conv-first network needs its input shape
    spec2, params2, shape2, input_shape2 = _network("cnn-conv-first")
    funcnn.save(tmp_path / "conv.npz", spec2, params2)
    assert main(["export", str(tmp_path / "conv.npz"), str(tmp_path / "conv.onnx"), "--input-shape", "9,7,3"]) == 0
    X2 = _X(shape2, 2, np.float32)
    assert _rel(_session(tmp_path / "conv.onnx").run(None, {"input": X2})[0],
                funcnn.forward(spec2, params2, X2)[0]) <= 1e-5
    capsys.readouterr()
    errors = [
        (["export", str(tmp_path / "conv.npz"), str(tmp_path / "c2.onnx")], "pass --input-shape"),
        (["export", str(model), str(tmp_path / "m.txt")], "unknown extension '.txt'"),
        (["export", str(model), str(tmp_path / "nodir" / "m.onnx")], "no such directory"),
        (["export", str(tmp_path / "nope.npz"), str(tmp_path / "m2.onnx")], "no such file"),
        (["export", str(model), str(tmp_path / "m3.onnx"), "--opset", "99"], "opset must be between"),
        (["export", str(model), str(tmp_path / "m4.safetensors"), "--opset", "17"], "apply to .onnx outputs only"),
        (["export", str(tmp_path / "m.safetensors"), str(tmp_path / "m.safetensors")], "the model file itself"),
    ]
    before = sorted(os.listdir(tmp_path))
    for argv, message in errors:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("funcnn export: error: ") and message in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == before


def test_torch_state_dict_keys_are_funcnn_paths():
    pytest.importorskip("torch")
    spec, params, _, _ = _network("residual-mlp")
    state = export.to_torch(spec, params).state_dict()
    assert sorted(state) == sorted(k.split("_", 1)[1] + {"W": ".weight", "b": ".bias"}[k.split("_", 1)[0]]
                                   for k in params)
    np.testing.assert_array_equal(state["2.shortcut.0.weight"].numpy(), params["W_2.shortcut.0"].T)


def test_guide_examples_run(tmp_path, monkeypatch):
    """The Python examples of docs/guide/export.md run as written (in a scratch directory)."""
    import re
    pytest.importorskip("torch")
    guide = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "guide", "export.md")
    with open(guide) as fh:
        blocks = re.findall(r"```python\n(.*?)```", fh.read(), re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, guide, "exec"), namespace)
    assert sorted(os.listdir(tmp_path)) == ["digits.onnx", "model.safetensors"]


def test_safetensors_training_checkpoint_resumes_bit_for_bit(tmp_path):
    """train(..., checkpoint="x.safetensors") resumes as from an .npz: the same params and history as one run."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    spec = [{"type": "dense", "units": 6}, {"type": "batch_norm"}, {"type": "relu"}, {"type": "dense", "units": 3}]
    params = funcnn.init_params(spec, 5, seed=0)
    kw = dict(loss="softmax_cross_entropy", optimizer=funcnn.adam(1e-2), batch_size=16, seed=3)
    whole, history = funcnn.train(spec, params, X, y, epochs=4, **kw)
    path = tmp_path / "run.safetensors"
    funcnn.train(spec, params, X, y, epochs=2, checkpoint=path, **kw)
    resumed, history2 = funcnn.train(spec, params, X, y, epochs=4, checkpoint=path, **kw)
    assert history2 == history
    assert all(resumed[k].tobytes() == whole[k].tobytes() for k in whole)
