"""funcnn.summary: the per-layer table (shapes, parameters, multiply-adds, memory) agrees with
what init_params makes and what forward computes; the same arithmetic sizes inference chunks."""
import math

import numpy as np
import pytest

import funcnn as F
from funcnn import cli as C, footprint, network
from funcnn.layers import LAYERS

SPECS = {
    "mlp": ([F.dense(16), F.relu(), F.dropout(0.5), F.dense(3)], 7),
    "cnn": ([F.reshape([8, 8, 1]), F.conv2d(4, 3, padding=1), F.batch_norm(), F.relu(), F.max_pool(2),
             F.conv2d(6, [2, 3], stride=[1, 2], padding="same"), F.avg_pool(2), F.flatten(), F.dense(5)], 64),
    "image": ([F.conv2d(3, 2, stride=2), F.elu(), F.flatten(), F.dense(2)], (6, 5, 2)),
}


def _layer_outputs(spec, params, X):
    """Each top-level layer's output, from the public arrays and the network's own forward loop."""
    lparams = network.layer_params(spec, params)
    return [network.run_forward(spec[:i + 1], lparams[:i + 1], X, False, None)[0] for i in range(len(spec))]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_summary_counts_and_shapes_equal_params_and_forward(name):
    spec, n_inputs = SPECS[name]
    params = F.init_params(spec, n_inputs, seed=0)
    table = F.summary(spec, n_inputs)
    assert [r["path"] for r in table["rows"]] == [str(i) for i in range(len(spec))]
    assert table["totals"]["params"] == sum(v.size for v in params.values())
    assert table["totals"]["trainable_params"] == sum(v.size for k, v in params.items() if not k.startswith("running_"))
    assert table["totals"]["param_bytes"] == sum(v.nbytes for v in params.values())
    for row in table["rows"]:
        own = [v for k, v in params.items() if k.rsplit("_", 1)[1] == row["path"]]
        assert row["params"] == sum(v.size for v in own)
    shape = (n_inputs,) if isinstance(n_inputs, int) else n_inputs
    X = np.random.default_rng(0).random((3,) + shape).astype(np.float32)
    for row, out in zip(table["rows"], _layer_outputs(spec, params, X)):
        assert row["output_shape"] == out.shape[1:]
        assert row["activation_bytes"] == out[0].nbytes
    assert network.widest_row(spec, shape) == max([math.prod(shape)] + [r["activation_bytes"] // 4 for r in table["rows"]])


def test_multiply_adds_by_hand():
    spec = [F.reshape([8, 8, 1]), F.conv2d(4, 3, padding=1), F.relu(), F.flatten(), F.dense(10)]
    rows = F.summary(spec, 64)["rows"]
    assert rows[1]["macs"] == 8 * 8 * 4 * (3 * 3 * 1)  # ho * wo * filters * kh * kw * c_in
    assert rows[4]["macs"] == 256 * 10
    assert [r["macs"] for r in rows if r["type"] in ("reshape", "relu", "flatten")] == [0, 0, 0]
    assert F.summary(spec, 64)["totals"]["macs"] == 8 * 8 * 4 * 9 + 256 * 10
    strided = F.summary([F.conv2d(2, [2, 3], stride=[2, 1]), F.flatten(), F.dense(1)], (6, 7, 3))["rows"][0]
    assert strided["output_shape"] == (3, 5, 2) and strided["macs"] == 3 * 5 * 2 * 2 * 3 * 3


def test_every_layer_type_has_a_cost_fact():
    for kind, entry in LAYERS.items():
        assert callable(entry["macs"]) and callable(entry["scratch"]), kind


def test_memory_per_sample():
    spec = [F.dense(16), F.relu(), F.dense(3)]
    t = F.summary(spec, 7, dtype=np.float64)["totals"]
    assert t["inference_bytes"] == 8 * (16 + 16)  # the relu's input and output, the widest pair
    assert t["training_bytes"] == 8 * (7 + 16 + 16 + 3 + 2 * 16)
    assert F.summary(spec, 7)["totals"]["inference_bytes"] == 4 * 32


def test_format_summary():
    text = footprint.format_summary(F.summary(SPECS["cnn"][0], 64))
    lines = text.splitlines()
    assert lines[0] == "input shape (64), float32"
    assert any(line.split()[:6] == ["1", "conv2d", "(8,", "8,", "4)", "40"] for line in lines), text
    assert "params: " in text and "multiply-adds per sample: " in text and "memory per sample: inference" in text


@pytest.mark.parametrize("args,kwargs,exc,match", [
    (([F.dense(2)], 0), {}, ValueError, "n_inputs must be a positive int"),
    (([F.dense(2)], "3"), {}, TypeError, "n_inputs must be a positive int"),
    (("dense", 3), {}, TypeError, "spec must be a list of layer dicts"),
    (([{"type": "dense"}], 3), {}, ValueError, r"spec\[0\].*needs 'units'"),
    (([F.conv2d(2, 3), F.flatten(), F.dense(1)], 9), {}, ValueError, r"spec\[0\] \(conv2d\): a conv2d layer takes images"),
    (([F.dense(2)], 3), {"dtype": np.int32}, (TypeError, ValueError), "float32 or float64"),
])
def test_bad_options_are_one_line_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match) as info:
        F.summary(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_summary_command(tmp_path, capsys):
    spec, n = SPECS["cnn"]
    path = str(tmp_path / "m.npz")
    F.save(path, spec, F.init_params(spec, n, seed=0), loss="softmax_cross_entropy")
    assert C.main(["summary", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("input shape (64), float32") and "conv2d" in out
    image = str(tmp_path / "img.npz")
    ispec, ishape = SPECS["image"]
    F.save(image, ispec, F.init_params(ispec, ishape, seed=0), loss="softmax_cross_entropy")
    assert C.main(["summary", image]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--input-shape" in err[0]
    assert C.main(["summary", image, "--input-shape", "6,5,2"]) == 0
    assert "(6, 5, 2)" in capsys.readouterr().out
    assert C.main(["summary", str(tmp_path / "missing.npz")]) == 1
    assert "no such checkpoint file" in capsys.readouterr().err


def test_summary_is_exported_and_pure():
    spec = [F.dense(4), F.dense(2)]
    before = [dict(layer) for layer in spec]
    assert F.summary is footprint.summary and "summary" in F.__all__
    assert F.summary(spec, 3) == F.summary(spec, 3)
    assert spec == before


def test_nested_summary_rows_have_paths_and_block_shapes():
    spec = [F.dense(8),
            {"type": "residual", "body": [F.dense(8), F.relu(), F.dense(8)]},
            {"type": "parallel", "branches": [[F.dense(3)], [F.dense(5), F.tanh()]], "merge": "concat"},
            {"type": "residual", "body": [F.dense(4)], "shortcut": [F.dense(4)]},
            F.dense(2)]
    params = F.init_params(spec, 6, seed=0)
    table = F.summary(spec, 6)
    paths = [r["path"] for r in table["rows"]]
    assert paths == ["0", "1", "1.body.0", "1.body.1", "1.body.2", "2", "2.0.0", "2.1.0", "2.1.1",
                     "3", "3.body.0", "3.shortcut.0", "4"]
    rows = {r["path"]: r for r in table["rows"]}
    assert rows["2"]["output_shape"] == (8,) and rows["2"]["block"] and rows["2.1.0"]["output_shape"] == (5,)
    assert rows["3"]["output_shape"] == (4,) and rows["3.shortcut.0"]["depth"] == 1
    assert table["totals"]["params"] == sum(v.size for v in params.values())
    for path, row in rows.items():
        own = sum(v.size for k, v in params.items() if k.split("_", 1)[1] == path)
        inner = sum(v.size for k, v in params.items() if k.split("_", 1)[1].startswith(path + "."))
        assert row["params"] == (inner if row["block"] else own), path
    assert rows["1"]["macs"] == 2 * 8 * 8 and rows["2"]["macs"] == 8 * 3 + 8 * 5
    # block outputs equal forward's
    lparams = network.layer_params(spec, params)
    X = np.random.default_rng(1).random((2, 6)).astype(np.float32)
    for i, layer in enumerate(spec):
        out = network.run_forward(spec[:i + 1], lparams[:i + 1], X, False, None)[0]
        assert rows[str(i)]["output_shape"] == out.shape[1:]
    text = footprint.format_summary(table)
    assert "\n    1.body.0" not in text and "  1.body.0" in text  # inner layers indented once


def test_conv_and_pool_memory_by_hand():
    # conv2d on 6x6x2, kernel 3, padding 1, 4 filters: padded input 8x8x2, one sample's columns 6x6x(3x3x2)
    spec = [F.conv2d(4, 3, padding=1), F.max_pool(2), F.flatten(), F.dense(1)]
    facts = footprint.per_sample(spec, (6, 6, 2), 8)
    rows = footprint.layer_rows(spec, (6, 6, 2))
    assert rows[0]["scratch"] == 8 * 8 * 2 + 6 * 6 * 3 * 3 * 2
    assert rows[1]["scratch"] == 3 * 3 * 4  # the argmax index of every output
    assert facts["inference"] == 8 * (6 * 6 * 2 + 6 * 6 * 4 + 8 * 8 * 2 + 6 * 6 * 18)
    assert facts["inference_path"] == "0"
