"""ConstantBaseline: exact composite, per-channel values, errors."""

from __future__ import annotations

import pytest
import torch

from captum_cf.baselines import Baseline, ConstantBaseline


def test_reference_is_the_constant_with_input_dtype(device):
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64).to(device)
    ref = ConstantBaseline(0.25)(x)
    assert ref.dtype == torch.float64 and ref.shape == x.shape and ref.device == device
    assert torch.equal(ref, torch.full_like(x, 0.25))


def test_per_channel_value(device):
    x = torch.rand(1, 3, 2, 2).to(device)
    ref = ConstantBaseline([0.1, 0.5, 0.9]).reference(x)
    assert ref.device == device
    for c, v in enumerate([0.1, 0.5, 0.9]):
        assert torch.equal(ref[:, c], torch.full((1, 2, 2), v, device=device))
    ref_t = ConstantBaseline(torch.tensor([0.1, 0.5, 0.9]))(x)
    assert torch.equal(ref, ref_t)


def test_fill_is_bit_exact_with_binary_keep(device):
    x = torch.rand(3, 2, 6, 6).to(device)
    keep = (torch.rand(3, 1, 6, 6) > 0.5).float().to(device)
    out = ConstantBaseline(0.7).fill(x, keep)
    assert out.device == device
    k = keep.expand_as(x).bool()
    assert torch.equal(out[k], x[k])
    assert torch.equal(out[~k], torch.full_like(out[~k], 0.7))


def test_fill_with_soft_keep_interpolates(device):
    x = torch.rand(1, 1, 3, 3).to(device)
    keep = torch.full((1, 1, 3, 3), 0.25, device=device)
    out = ConstantBaseline(1.0).fill(x, keep)
    torch.testing.assert_close(out, 0.25 * x + 0.75)


def test_fill_accepts_bool_keep(device):
    x = torch.rand(1, 1, 4, 4).to(device)
    keep = torch.zeros(1, 1, 4, 4, dtype=torch.bool, device=device)
    keep[..., :2] = True
    out = ConstantBaseline(0.0).fill(x, keep)
    assert out.device == device
    assert torch.equal(out[..., :2], x[..., :2]) and bool((out[..., 2:] == 0).all())


def test_is_a_callable_baseline(device):
    b = ConstantBaseline(0.0)
    assert isinstance(b, Baseline) and not b.needs_target
    x = torch.rand(1, 1, 2, 2).to(device)
    assert torch.equal(b(x), b.reference(x))
    assert "0.0" in repr(b)


@pytest.mark.parametrize(
    "value, err, match",
    [
        (float("nan"), ValueError, "value must be finite"),
        (float("inf"), ValueError, "value must be finite"),
        ([[0.1, 0.2]], ValueError, "shape"),
        ("grey", TypeError, "value must be"),
        (True, TypeError, "value must be"),
    ],
)
def test_bad_value(value, err, match):
    with pytest.raises(err, match=match):
        ConstantBaseline(value)


def test_channel_count_mismatch():
    with pytest.raises(ValueError, match="3 channel values but inputs have 1"):
        ConstantBaseline([0.1, 0.2, 0.3])(torch.rand(1, 1, 2, 2))
    # handed to Captum as its (1, ...) reference, the message still names the whole batch
    from captum_cf.attr import IntegratedGradients

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"inputs have 1 channels .*shape \(2, 1, 2, 2\)"):
        IntegratedGradients(model).attribute(torch.rand(2, 1, 2, 2), target=0,
                                             baselines=ConstantBaseline([0.1, 0.2, 0.3]))
    value = ConstantBaseline([0.1, 0.2]).captum_value(torch.rand(3, 2, 2, 2))
    assert value.shape == (1, 2, 2, 2)  # Captum's one broadcast row


@pytest.mark.parametrize(
    "inputs, match",
    [
        (torch.tensor(0.5), "inputs must have a batch dimension"),
        (torch.rand(0, 3), "inputs is empty"),
        (torch.full((1, 1, 2, 2), float("nan")), "inputs contains NaN"),
    ],
)
def test_bad_inputs(inputs, match):
    with pytest.raises(ValueError, match=match):
        ConstantBaseline(0.0)(inputs)


@pytest.mark.parametrize(
    "keep, match",
    [
        (torch.ones(1, 1, 3, 3), "keep must have shape broadcastable"),
        (torch.ones(4, 4), "keep must have shape broadcastable"),
        (torch.full((1, 1, 4, 4), 2.0), r"keep must lie in \[0, 1\]"),
        (torch.full((1, 1, 4, 4), float("nan")), "keep contains NaN"),
    ],
)
def test_bad_keep(keep, match):
    with pytest.raises(ValueError, match=match):
        ConstantBaseline(0.0).fill(torch.rand(1, 1, 4, 4), keep)


def test_captum_value_on_integer_inputs_is_exact() -> None:
    """Token ids: a whole constant goes to Captum as an int (ids stay integers, as with
    baselines=0); per-channel values are never truncated to the ids' dtype."""
    ids = torch.randint(0, 5, (2, 3, 4))
    assert ConstantBaseline(0.0).captum_value(ids) == 0
    assert isinstance(ConstantBaseline(0.0).captum_value(ids), int)
    assert isinstance(ConstantBaseline(0.0).captum_value(ids.float()), float)
    assert ConstantBaseline(0.5).captum_value(ids) == 0.5
    whole = ConstantBaseline([0, 1, 2]).captum_value(ids)
    assert whole.dtype == torch.int64 and whole[0, :, 0].tolist() == [0, 1, 2]
    half = ConstantBaseline([0.5, 1, 2]).captum_value(ids)
    assert half.is_floating_point() and half[0, :, 0].tolist() == [0.5, 1.0, 2.0]
