"""funcnn against PyTorch's numbers frozen in tests/data/torch_reference.npz (float64).

The file is made by scripts/make_torch_fixtures.py (``python scripts/make_torch_fixtures.py``);
its ``cases`` member (JSON) says what each case is. The frozen tests below need no torch
and always run: forward outputs and loss values to rtol 1e-12, gradients, optimizer
trajectories and slot states to rtol 1e-10. Where torch is installed, the live tests at the
end rebuild the fixtures with the script's functions and check that the stored file is
current, and check dropout with funcnn's own mask against torch directly.

Only funcnn's public API is used. Tolerances: ``rtol`` elementwise, plus an absolute
``rtol * max|expected|`` so that entries that are tiny by cancellation (e.g. a gradient
summed over samples) are judged against the scale of their array.
"""
import importlib.util
import json
import os

import numpy as np
import pytest

import funcnn as F
from funcnn import layers as L
from funcnn import losses as LS
from funcnn import optimizers as O
from funcnn import schedules as S

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_PATH = os.path.join(HERE, "data", "torch_reference.npz")
SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "make_torch_fixtures.py")

with np.load(DATA_PATH, allow_pickle=False) as _npz:
    DATA = {k: _npz[k] for k in _npz.files}
META = json.loads(str(DATA["cases"]))
FAMILIES = META["families"]

FORWARD_RTOL = 1e-12
GRAD_RTOL = 1e-10


def cases(family):
    return sorted(FAMILIES.get(family, {}).get("cases", {}))


def case_meta(family, case):
    return FAMILIES[family]["cases"][case]


def field(family, case, name):
    return DATA[f"{family}/{case}/{name}"]


def group(prefix):
    """The arrays under ``prefix/`` as a dict keyed by the rest of their name, in file order."""
    return {k[len(prefix) + 1:]: v for k, v in DATA.items() if k.startswith(prefix + "/")}


def assert_close(got, expected, rtol, what):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    assert got.dtype == np.float64, f"{what}: dtype {got.dtype}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


# --------------------------------------------------------------------------- builders
# The fixture writes specs, optimizers and schedules as constructor calls, so that the
# file does not depend on how funcnn spells its dicts.

def build_spec(calls):
    """Layer dicts from constructor calls; the constructors' own defaults where a call omits a key."""
    return [getattr(L, name)(**kwargs) for name, kwargs in calls]


def build_lr(expr):
    """A number, or a schedule written ``[constructor, *args]`` (args may be schedules)."""
    if not isinstance(expr, list):
        return expr
    name, *args = expr
    return getattr(S, name)(*[build_lr(a) if isinstance(a, list) else a for a in args])


def build_optimizer(call, lr):
    name, kwargs = call
    return getattr(O, name)(lr, **kwargs)


# --------------------------------------------------------------------------- the file itself

CHECKED_FAMILIES = {"activation", "dropout", "loss", "value_and_grad", "optimizer", "schedule",
                    "conv2d", "pool", "batch_norm", "cnn"}


def test_fixture_families_are_all_checked():
    # A family added to the script must get a test here (and a test here needs its family).
    assert set(FAMILIES) == CHECKED_FAMILIES
    assert all(FAMILIES[f]["cases"] for f in FAMILIES)


def test_fixture_has_no_orphan_arrays():
    prefixes = {f"{family}/_shared/" for family in FAMILIES}
    prefixes |= {f"{family}/{case}/" for family in FAMILIES for case in cases(family)}
    orphans = [k for k in DATA if k != "cases" and not any(k.startswith(p) for p in prefixes)]
    assert not orphans


def test_fixture_is_small():
    assert os.path.getsize(DATA_PATH) < 500_000


# Fixtures of their own (blocks, sequences), each made by its script in scripts/: their cases
# hold funcnn specs as data.
OTHER_FIXTURES = ["torch_blocks.npz", "torch_sequence.npz"]


def _types_in_other_fixtures():
    from funcnn import network
    found = set()
    for name in OTHER_FIXTURES:
        path = os.path.join(os.path.dirname(DATA_PATH), name)
        if not os.path.exists(path):
            continue
        meta = json.loads(str(np.load(path)["cases"]))
        for case in meta.values():
            if isinstance(case, dict) and "spec" in case:
                found |= {layer["type"] for _, layer in network.walk(case["spec"])}
    return found


def test_fixture_covers_the_public_types():
    # every activation layer type, loss, optimizer and schedule funcnn documents
    activations = {case_meta("activation", c)["spec"][1][0] for c in cases("activation")}
    assert activations == {kind for kind, entry in L.LAYERS.items() if entry["activation"]} | {"softmax"}
    layer_types = {call[0] for family in FAMILIES.values() for meta in family["cases"].values()
                   for call in meta.get("spec", [])}
    layer_types |= _types_in_other_fixtures()
    assert layer_types == set(L.LAYERS)  # every layer type meets torch somewhere
    conv = [case_meta("conv2d", c)["spec"][2][1] for c in cases("conv2d")]
    combos = {(str(c["stride"]), str(c["padding"])) for c in conv}
    assert combos >= {(str(s), str(p)) for s in (1, 2, [1, 2]) for p in ("valid", "same", 1, 2)}
    assert {k for c in conv for k in (c["kernel"] if isinstance(c["kernel"], list) else [c["kernel"]])} >= {1, 2, 3}
    assert {case_meta("loss", c)["loss"] for c in cases("loss")} == set(LS.LOSSES)
    options = {(case_meta("loss", c)["loss"], k) for c in cases("loss") for k in case_meta("loss", c).get("options", {})}
    assert options == {(name, k) for name, opts in LS.OPTIONS.items() for k in opts}
    assert {case_meta("optimizer", c)["optimizer"][0] for c in cases("optimizer")
            if "clip_norm" in case_meta("optimizer", c)["optimizer"][1]} == {"sgd", "rmsprop", "adam"}
    assert {case_meta("value_and_grad", c)["loss"] for c in cases("value_and_grad")} == set(LS.LOSSES)
    assert {case_meta("optimizer", c)["optimizer"][0] for c in cases("optimizer")} == {"sgd", "rmsprop", "adam"}
    used = set()

    def names(expr):
        if isinstance(expr, list):
            used.add(expr[0])
            for a in expr[1:]:
                names(a)
    for c in cases("schedule"):
        names(case_meta("schedule", c)["schedule"])
    assert used == {"constant", "step_decay", "exponential", "cosine", "warmup"}


# --------------------------------------------------------------------------- frozen: layers

@pytest.mark.parametrize("case", cases("activation"))
def test_activation(case):
    """[dense(5), ACT, dense(3)]: forward output and the gradients backward() gives for a
    fixed grad_output, against torch autograd (ACT's backward sits between the two dense layers)."""
    spec = build_spec(case_meta("activation", case)["spec"])
    params = group(f"activation/{case}/params")
    out, cache = F.forward(spec, params, field("activation", case, "X"), training=False)
    assert_close(out, field("activation", case, "output"), FORWARD_RTOL, f"{case}: output")
    grads = F.backward(spec, params, cache, field("activation", case, "grad_output"))
    expected = group(f"activation/{case}/grads")
    assert list(grads) == list(params) == list(expected)
    for k in grads:
        assert_close(grads[k], expected[k], GRAD_RTOL, f"{case}: grads[{k!r}]")


def _dropout_run(case):
    """funcnn's [dense(5), dropout(r)] in training mode: (output, cache, kept mask).

    The mask is read off the output (the dense output has no zeros, checked), from the
    first seed, counting from the case's, whose mask keeps some units and drops some."""
    meta = case_meta("dropout", case)
    spec = build_spec(meta["spec"])
    params = group(f"dropout/{case}/params")
    X = field("dropout", case, "X")
    assert np.all(field("dropout", case, "hidden") != 0)
    for seed in range(meta["funcnn_seed"], meta["funcnn_seed"] + 50):
        out, cache = F.forward(spec, params, X, training=True, seed=seed)
        kept = out != 0
        if kept.any() and not kept.all():
            return spec, params, out, cache, kept
    raise AssertionError("no seed gave a mask with both kept and dropped units")


@pytest.mark.parametrize("case", cases("dropout"))
def test_dropout(case):
    """Inverted dropout: torch cannot be made to draw funcnn's mask, so the fixture holds
    torch's per-element values for a kept unit (h / (1 - r) and grad / (1 - r)); funcnn's
    output and gradients with its own mask must be exactly those where kept and 0 where dropped."""
    meta = case_meta("dropout", case)
    rate = meta["rate"]
    X, g = field("dropout", case, "X"), field("dropout", case, "grad_output")
    keep_out, keep_grad = field("dropout", case, "keep_output"), field("dropout", case, "keep_grad_hidden")
    # The premise, on the frozen numbers alone: torch with the fixed mask m is elementwise
    # "keep value where m, 0 elsewhere", forward and backward.
    m = field("dropout", case, "mask")
    assert m.dtype == bool and m.any() and not m.all()
    assert_close(field("dropout", case, "output"), np.where(m, keep_out, 0.0), FORWARD_RTOL, "torch premise: output")
    gh = np.where(m, keep_grad, 0.0)
    assert_close(field("dropout", case, "grads/W_0"), X.T @ gh, GRAD_RTOL, "torch premise: W_0")
    assert_close(field("dropout", case, "grads/b_0"), gh.sum(axis=0), GRAD_RTOL, "torch premise: b_0")

    spec, params, out, cache, kept = _dropout_run(case)
    # inference: dropout is the identity
    h, _ = F.forward(spec, params, X, training=False)
    assert_close(h, field("dropout", case, "hidden"), FORWARD_RTOL, "inference output")
    # training: torch's kept values where kept, exact zeros elsewhere; the inverted-dropout identity
    assert_close(out, np.where(kept, keep_out, 0.0), FORWARD_RTOL, "training output vs torch")
    assert_close(out, h * kept / (1 - rate), FORWARD_RTOL, "training output == h * mask / (1 - rate)")
    grads = F.backward(spec, params, cache, g)
    gh = np.where(kept, keep_grad, 0.0)
    assert list(grads) == list(params)
    assert_close(grads["W_0"], X.T @ gh, GRAD_RTOL, "grads['W_0']")
    assert_close(grads["b_0"], gh.sum(axis=0), GRAD_RTOL, "grads['b_0']")


# --------------------------------------------------------------------------- frozen: losses

@pytest.mark.parametrize("case", cases("loss"))
def test_loss(case):
    meta = case_meta("loss", case)
    fn = getattr(LS, meta["loss"])
    options = meta.get("options", {})
    output, y = field("loss", case, "output"), field("loss", case, "y")
    w = field("loss", case, "sample_weight") if meta["weighted"] else None
    targets = [y]
    if meta["loss"] == "binary_cross_entropy":
        targets.append(y[:, None])  # labels as (n,) or (n, 1)
    if options:  # the same through the {"name", **options} form every loss= argument takes
        core_value, core_grad = LS.get({"name": meta["loss"], **options})(output, y, w)
        assert_close(core_value, field("loss", case, "value"), FORWARD_RTOL, f"{case}: value via losses.get")
        assert_close(core_grad, field("loss", case, "grad_output"), GRAD_RTOL, f"{case}: grad via losses.get")
    for target in targets:
        value, grad = fn(output, target, sample_weight=w, **options)
        assert_close(value, field("loss", case, "value"), FORWARD_RTOL, f"{case}: value")
        assert_close(grad, field("loss", case, "grad_output"), GRAD_RTOL, f"{case}: grad_output")


@pytest.mark.parametrize("case", cases("value_and_grad"))
def test_value_and_grad(case):
    meta = case_meta("value_and_grad", case)
    spec = build_spec(meta["spec"])
    params = group(f"value_and_grad/{case}/params")
    w = field("value_and_grad", case, "sample_weight") if meta["weighted"] else None
    value, grads = F.value_and_grad(spec, params, field("value_and_grad", case, "X"),
                                    field("value_and_grad", case, "y"), loss=meta["loss"], l2=meta["l2"],
                                    sample_weight=w)
    assert_close(value, field("value_and_grad", case, "value"), FORWARD_RTOL, f"{case}: value")
    expected = group(f"value_and_grad/{case}/grads")
    assert list(grads) == list(params) == list(expected)
    for k in grads:
        assert_close(grads[k], expected[k], GRAD_RTOL, f"{case}: grads[{k!r}]")


# --------------------------------------------------------------------------- frozen: image layers

def assert_grads_close(grads, expected, what):
    """assert_close per key; a gradient that is zero up to rounding (a bias right before a batch
    norm in training mode: the normalisation cancels it) is judged against the largest gradient."""
    overall = max(float(np.abs(v).max()) for v in expected.values())
    for k in expected:
        if float(np.abs(expected[k]).max()) < 1e-12 * overall:
            np.testing.assert_allclose(grads[k], expected[k], rtol=0, atol=GRAD_RTOL * overall, err_msg=f"{what}[{k!r}]")
        else:
            assert_close(grads[k], expected[k], GRAD_RTOL, f"{what}[{k!r}]")


def _image_case(family, case):
    """(spec, params, X) of a case whose layer sits behind the family's shared dense + reshape."""
    spec = build_spec(case_meta(family, case)["spec"])
    params = {**group(f"{family}/_shared/params"), **group(f"{family}/{case}/params")}
    params = {k: params[k] for k in F.param_keys(spec)}  # the spec's key order
    return spec, params, field(family, "_shared", "X")


def _check_forward_backward(family, case, spec, params, X, prefix="", training=False):
    out, cache = F.forward(spec, params, X, training=training, seed=0)
    assert_close(out, field(family, case, f"{prefix}output"), FORWARD_RTOL, f"{case}: {prefix}output")
    grads = F.backward(spec, params, cache, field(family, case, f"{prefix}grad_output"))
    expected = group(f"{family}/{case}/{prefix}grads")
    assert set(grads) == set(expected) == {k for k in params if not k.startswith("running_")}
    assert_grads_close(grads, expected, f"{case}: {prefix}grads")
    return cache


@pytest.mark.parametrize("case", cases("conv2d"))
def test_conv2d(case):
    """[dense, reshape, conv2d, flatten]: output and gradients against torch's F.conv2d (NCHW/OIHW,
    SAME as an explicit F.pad); grads W_0/b_0 hold the conv's input gradient."""
    spec, params, X = _image_case("conv2d", case)
    assert list(F.forward(spec, params, X)[0].shape) == [X.shape[0], int(np.prod(case_meta("conv2d", case)["output_hw"])) * 2]
    _check_forward_backward("conv2d", case, spec, params, X)


@pytest.mark.parametrize("case", cases("pool"))
def test_pool(case):
    """[dense, reshape, max_pool|avg_pool, flatten] against F.max_pool2d/F.avg_pool2d, ties included."""
    spec, params, X = _image_case("pool", case)
    _check_forward_backward("pool", case, spec, params, X)


@pytest.mark.parametrize("case", cases("batch_norm"))
def test_batch_norm(case):
    """Training mode (batch statistics; new running statistics in cache["state"]) and inference
    mode (running statistics): outputs and gradients against F.batch_norm."""
    spec = build_spec(case_meta("batch_norm", case)["spec"])
    params = group(f"batch_norm/{case}/params")
    X = field("batch_norm", case, "X")
    cache = _check_forward_backward("batch_norm", case, spec, params, X, "train/", training=True)
    state = group(f"batch_norm/{case}/train/state")
    assert set(cache["state"]) == set(state) == {k for k in params if k.startswith("running_")}
    for k in state:
        assert_close(cache["state"][k], state[k], FORWARD_RTOL, f"{case}: state[{k!r}]")
    cache = _check_forward_backward("batch_norm", case, spec, params, X, "eval/", training=False)
    assert cache["state"] == {}


@pytest.mark.parametrize("case", cases("cnn"))
def test_cnn(case):
    """value_and_grad of a small CNN (conv, batch norm, relu, max pool, conv, gelu, avg pool, dense) with L2."""
    meta = case_meta("cnn", case)
    spec = build_spec(meta["spec"])
    params = group(f"cnn/{case}/params")
    X, y = field("cnn", case, "X"), field("cnn", case, "y")
    value, grads = F.value_and_grad(spec, params, X, y, loss=meta["loss"], l2=meta["l2"], seed=0)
    assert_close(value, field("cnn", case, "value"), FORWARD_RTOL, f"{case}: value")
    expected = group(f"cnn/{case}/grads")
    assert list(grads) == list(expected)
    assert_grads_close(grads, expected, f"{case}: grads")
    state = F.forward(spec, params, X, training=True, seed=0)[1]["state"]
    for k, v in group(f"cnn/{case}/state").items():
        assert_close(state[k], v, FORWARD_RTOL, f"{case}: state[{k!r}]")


# --------------------------------------------------------------------------- frozen: optimizers

@pytest.mark.parametrize("case", cases("optimizer"))
def test_optimizer(case):
    """8 updates from fixed gradients: params and slot states after every step against
    torch.optim (the scheduled cases also check the rate against torch.optim.lr_scheduler).
    The twin of tests/test_optimizers.py::test_matches_torch_optim."""
    meta = case_meta("optimizer", case)
    lr = build_lr(meta["lr"])
    opt = build_optimizer(meta["optimizer"], lr)
    params = group("optimizer/_shared/params")
    grads = group("optimizer/_shared/grads")
    lrs = field("optimizer", case, "lr")
    trajectory = group(f"optimizer/{case}/params")
    slots = meta["slots"]  # funcnn slot -> torch slot
    state = F.init_state(opt, params)
    assert set(state) == {"step", *slots}
    for t in range(meta["steps"]):
        expected_lr = S.value(lr, t) if isinstance(lr, dict) else lr
        assert_close(expected_lr, lrs[t], FORWARD_RTOL, f"{case}: lr at step {t}")
        params, state = F.update(opt, params, {k: g[t] for k, g in grads.items()}, state)
        assert state["step"] == t + 1
        for k in params:
            assert_close(params[k], trajectory[k][t], GRAD_RTOL, f"{case}: params[{k!r}] after step {t}")
            for ours, theirs in slots.items():
                assert_close(state[ours][k], field("optimizer", case, f"state/{theirs}/{k}")[t], GRAD_RTOL,
                             f"{case}: state[{ours!r}][{k!r}] after step {t}")


@pytest.mark.parametrize("case", cases("schedule"))
def test_schedule(case):
    """schedules.value at steps 0..20 against the rate torch.optim.lr_scheduler sets.
    The twin of tests/test_schedules.py::test_matches_torch_lr_scheduler."""
    meta = case_meta("schedule", case)
    schedule = build_lr(meta["schedule"])
    got = np.array([S.value(schedule, t) for t in range(meta["steps"])])
    assert_close(got, field("schedule", case, "lr"), FORWARD_RTOL, case)


# --------------------------------------------------------------------------- live, with torch

def _load_script():
    spec = importlib.util.spec_from_file_location("make_torch_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_live_fixture_is_current():
    """Rebuild every fixture with torch and compare with the stored file: a stale file (the
    script changed, or torch changed its numbers) fails here."""
    pytest.importorskip("torch")
    fresh = _load_script().build()
    assert list(fresh) == list(DATA), "the stored file has other arrays: rerun scripts/make_torch_fixtures.py"
    fresh_meta = json.loads(str(fresh["cases"]))
    assert {**fresh_meta, "torch": None} == {**META, "torch": None}, "case descriptions differ"
    for k, a in fresh.items():
        if k == "cases":
            continue
        b = DATA[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if a.dtype.kind == "f":
            assert_close(b, a, FORWARD_RTOL, k)
        else:
            np.testing.assert_array_equal(b, a, err_msg=k)


@pytest.mark.parametrize("case", cases("dropout"))
def test_live_dropout_with_funcnns_mask(case):
    """torch's dropout arithmetic with the mask funcnn drew, against funcnn directly."""
    pytest.importorskip("torch")
    script = _load_script()
    meta = case_meta("dropout", case)
    spec, params, out, cache, kept = _dropout_run(case)
    ts = {k: script.t64(v, grad=True) for k, v in params.items()}
    t_out = script.torch_dropout_with_mask(script.linear(script.t64(field("dropout", case, "X")), ts["W_0"], ts["b_0"]),
                                           kept, meta["rate"])
    g = field("dropout", case, "grad_output")
    t_out.backward(script.t64(g))
    assert_close(out, script.np64(t_out), FORWARD_RTOL, "output")
    grads = F.backward(spec, params, cache, g)
    for k in params:
        assert_close(grads[k], script.np64(ts[k].grad), GRAD_RTOL, f"grads[{k!r}]")
