"""Tests for funcnn.schedules: closed forms, torch.optim.lr_scheduler equivalents, bad input."""
import json
import math

import numpy as np
import pytest

from funcnn import schedules as S

STEPS = range(0, 40)


# --------------------------------------------------------------------------- closed forms

def test_constant():
    s = S.constant(0.3)
    assert s == {"name": "constant", "lr": 0.3}
    assert [S.value(s, t) for t in (0, 1, 1000)] == [0.3, 0.3, 0.3]


def test_step_decay_closed_form():
    s = S.step_decay(0.5, step_size=3, gamma=0.5)
    got = [S.value(s, t) for t in range(9)]
    assert got == [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125]


def test_step_decay_default_gamma():
    s = S.step_decay(1.0, step_size=2)
    assert S.value(s, 5) == pytest.approx(0.01, rel=1e-15)


def test_exponential_closed_form():
    s = S.exponential(0.2, gamma=0.9)
    for t in STEPS:
        assert S.value(s, t) == pytest.approx(0.2 * 0.9 ** t, rel=1e-15)


def test_cosine_closed_form_and_clamped_after_total():
    s = S.cosine(0.1, total_steps=10, min_lr=0.01)
    assert S.value(s, 0) == pytest.approx(0.1, rel=1e-15)
    assert S.value(s, 5) == pytest.approx(0.055, rel=1e-14)   # half-way: the midpoint
    assert S.value(s, 10) == pytest.approx(0.01, rel=1e-14)
    for t in range(11):
        expected = 0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2
        assert S.value(s, t) == pytest.approx(expected, rel=1e-14)
    # stays at min_lr afterwards instead of climbing back like torch's recursive form
    assert S.value(s, 11) == S.value(s, 10_000) == S.value(s, 10)


def test_warmup_of_a_number_is_linear_then_flat():
    s = S.warmup(0.4, warmup_steps=4)
    got = [S.value(s, t) for t in range(7)]
    np.testing.assert_allclose(got, [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4], rtol=1e-15)


def test_warmup_multiplies_the_inner_schedule_at_the_global_step():
    inner = S.exponential(1.0, 0.5)
    s = S.warmup(inner, warmup_steps=3)
    for t in range(8):
        expected = 0.5 ** t * ((t + 1) / 3 if t < 3 else 1.0)
        assert S.value(s, t) == pytest.approx(expected, rel=1e-15)


def test_schedules_are_json_data_and_roundtrip():
    for s in (S.constant(0.1), S.step_decay(0.1, 5), S.exponential(0.1, 0.99),
              S.cosine(0.1, 100, 0.001), S.warmup(S.cosine(0.1, 100), 10)):
        back = json.loads(json.dumps(s))
        assert back == s
        assert [S.value(back, t) for t in STEPS] == [S.value(s, t) for t in STEPS]


def test_numpy_scalars_are_stored_as_python_numbers():
    s = S.step_decay(np.float64(0.1), np.int64(3), np.float32(0.5))
    json.dumps(s)
    assert type(s["lr"]) is float and type(s["step_size"]) is int and type(s["gamma"]) is float


def test_value_is_pure():
    s = S.warmup(S.cosine(0.1, 10), 3)
    before = json.dumps(s)
    assert S.value(s, 4) == S.value(s, 4)
    assert json.dumps(s) == before


def test_numpy_integer_steps_are_accepted():
    s = S.exponential(1.0, 0.5)
    assert S.value(s, np.int64(3)) == S.value(s, np.array(3)) == 0.125


def test_resolve_lr_kinds():
    assert S.resolve_lr(0.1, 7) == 0.1
    assert S.resolve_lr(S.exponential(1.0, 0.5), 2) == 0.25
    assert S.resolve_lr(lambda t: 1.0 / (t + 1), 3) == 0.25
    assert type(S.resolve_lr(np.float32(0.5), 0)) is float


def test_registry_drives_evaluation():
    assert set(S.SCHEDULES) == {"constant", "step_decay", "exponential", "cosine", "warmup", "reduce_on_plateau"}
    s = S.cosine(0.1, 10)
    assert S.SCHEDULES["cosine"](s, 3) == S.value(s, 3)


# --------------------------------------------------------------------------- against torch

def _torch_lrs(make_scheduler, base_lr, n):
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=base_lr)
    sched = make_scheduler(torch, opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


# Live comparison (skipped without torch). Its frozen twin, which always runs, is
# tests/test_torch_reference.py::test_schedule[<id>] with the same six cases (and ids) and
# 21 steps, from tests/data/torch_reference.npz.
@pytest.mark.parametrize("ours, make", [
    (S.step_decay(0.1, 4, 0.3),
     lambda torch, o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.3)),
    (S.exponential(0.1, 0.93),
     lambda torch, o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.93)),
    (S.cosine(0.1, 25, 0.002),
     lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=25, eta_min=0.002)),
    (S.warmup(0.1, 6),
     lambda torch, o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 6, end_factor=1.0,
                                                        total_iters=5)),
    (S.warmup(S.exponential(0.1, 0.9), 5),
     lambda torch, o: torch.optim.lr_scheduler.ChainedScheduler([
         torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 5, total_iters=4),
         torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)])),
    (S.warmup(S.cosine(0.1, 20), 5),
     lambda torch, o: torch.optim.lr_scheduler.ChainedScheduler([
         torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 5, total_iters=4),
         torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20)])),
], ids=["StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LinearLR+ExponentialLR",
        "LinearLR+CosineAnnealingLR"])
def test_matches_torch_lr_scheduler(ours, make):
    n = 21  # cosine: torch's recursive form only agrees up to T_max
    expected = _torch_lrs(make, 0.1, n)
    got = [S.value(ours, t) for t in range(n)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)


# --------------------------------------------------------------------------- bad input

BAD = [
    (lambda: S.constant(-0.1), ValueError, r"constant: lr must be in \[0\.0, inf\], got -0\.1"),
    (lambda: S.constant("0.1"), TypeError, r"constant: lr must be a number, got '0\.1'"),
    (lambda: S.constant(float("nan")), ValueError, r"constant: lr must be finite"),
    (lambda: S.step_decay(0.1, 0), ValueError, r"step_decay: step_size must be in \[1, inf\], got 0"),
    (lambda: S.step_decay(0.1, 2.5), TypeError, r"step_decay: step_size must be an int, got 2\.5"),
    (lambda: S.step_decay(0.1, 2, gamma=0.0), ValueError, r"step_decay: gamma must be in \(0\.0, 1\.0\], got 0\.0"),
    (lambda: S.exponential(0.1, -0.5), ValueError, r"exponential: gamma must be in \(0\.0, 1\.0\], got -0\.5"),
    (lambda: S.exponential(0.1, 1.5), ValueError, r"exponential: gamma must be in \(0\.0, 1\.0\], got 1\.5"),
    (lambda: S.cosine(0.1, 0), ValueError, r"cosine: total_steps must be in \[1, inf\], got 0"),
    (lambda: S.cosine(0.1, 10, min_lr=-1e-3), ValueError, r"cosine: min_lr must be in \[0\.0, inf\]"),
    (lambda: S.cosine(0.1, 10, min_lr=0.2), ValueError, r"min_lr must be <= lr, got min_lr=0\.2 > lr=0\.1"),
    (lambda: S.warmup(0.1, 0), ValueError, r"warmup: warmup_steps must be in \[1, inf\], got 0"),
    (lambda: S.warmup(lambda t: 0.1, 3), TypeError, r"warmup: schedule_or_lr must be a number or a schedule dict"),
    (lambda: S.warmup({"name": "nope"}, 3), ValueError, r"unknown schedule name 'nope'"),
    (lambda: S.validate([("name", "constant")]), TypeError, r"a schedule must be a dict, got list"),
    (lambda: S.validate({"lr": 0.1}), ValueError, r"unknown schedule name None; expected one of \['constant'"),
    (lambda: S.validate({"name": "cosine", "lr": 0.1}), ValueError,
     r"schedule 'cosine': missing key\(s\) \['min_lr', 'total_steps'\]"),
    (lambda: S.validate({"name": "constant", "lr": 0.1, "gamma": 0.5}), ValueError,
     r"schedule 'constant': unknown key\(s\) \['gamma'\]; expected exactly \['lr'\]"),
    (lambda: S.validate({"name": "exponential", "lr": 0.1, "gamma": 2}), ValueError,
     r"exponential: gamma must be in"),
    (lambda: S.validate({"name": "warmup", "warmup_steps": 2, "schedule": {"name": "constant", "lr": -1}}),
     ValueError, r"constant: lr must be in \[0\.0, inf\], got -1"),
    (lambda: S.value(S.constant(0.1), -1), ValueError, r"step must be in \[0, inf\], got -1"),
    (lambda: S.value(S.constant(0.1), 1.0), TypeError, r"step must be an int, got 1\.0"),
    (lambda: S.value({"name": "step_decay", "lr": 0.1, "step_size": 0, "gamma": 0.1}, 3), ValueError,
     r"step_decay: step_size must be in \[1, inf\], got 0"),
    (lambda: S.resolve_lr("fast", 0), TypeError, r"lr must be a number, a schedule dict or a callable"),
    (lambda: S.resolve_lr(-0.5, 0), ValueError, r"lr must be in \[0\.0, inf\], got -0\.5"),
    (lambda: S.resolve_lr(lambda t: -1.0, 4), ValueError, r"lr \(the value returned by .* at step 4\) must be in"),
    (lambda: S.resolve_lr(lambda t: None, 0), TypeError, r"lr \(the value returned by .* at step 0\) must be a number"),
]


@pytest.mark.parametrize("call, exc, match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
