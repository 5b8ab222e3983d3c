"""captum_cf.attr.ShapleyValueSampling: Captum's numbers under a seed, efficiency with any fill."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from perturbation_helpers import (
    MASK,
    CountingConstant,
    LeftHalfLinear,
    MeanFill,
    TinyCNN,
    model_state,
    same_state,
)

from captum_cf.attr import NoiseTunnel, ShapleyValueSampling
from captum_cf.baselines import BlurBaseline, ConstantBaseline


@pytest.fixture
def x(device: torch.device) -> torch.Tensor:
    """Drawn on the CPU (the seeded global generator), then moved: the same numbers everywhere."""
    return torch.rand(2, 3, 8, 8).to(device)


@pytest.mark.parametrize("ppe", [1, 2, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_baseline_equals_captum_scalar_under_a_seed(x, ppe, value, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(target=1, feature_mask=MASK.to(x.device), n_samples=3, perturbations_per_eval=ppe)
    torch.manual_seed(7)
    expected = captum.attr.ShapleyValueSampling(model).attribute(x, baselines=value, **kw)
    torch.manual_seed(7)
    got = ShapleyValueSampling(model).attribute(x, baselines=ConstantBaseline(value), **kw)
    assert torch.equal(got, expected) and on_device(got)
    assert expected.abs().sum() > 0


def test_tensor_baselines_pass_straight_to_captum(x):
    model = TinyCNN().to(x.device)
    for baselines in (None, 0.6, torch.rand(1, 3, 8, 8).to(x.device)):
        kw = dict(
            baselines=baselines, target=0, feature_mask=MASK.to(x.device),
            n_samples=2, perturbations_per_eval=4
        )
        torch.manual_seed(1)
        expected = captum.attr.ShapleyValueSampling(model).attribute(x, **kw)
        torch.manual_seed(1)
        assert torch.equal(ShapleyValueSampling(model).attribute(x, **kw), expected)


def test_efficiency_holds_with_a_mask_conditional_fill(x, on_device):
    """Each permutation telescopes: the group values sum to f(x) - f(everything removed)."""
    model = TinyCNN().to(x.device)
    attr = ShapleyValueSampling(model).attribute(
        x, baselines=MeanFill(), target=2, feature_mask=MASK.to(x.device),
        n_samples=2, perturbations_per_eval=3
    )
    per_group = torch.stack(
        [attr[:, 0][MASK[0, 0].to(x.device).expand(2, 8, 8) == g].view(2, -1)[:, 0]
         for g in range(8)], 1
    )
    with torch.no_grad():
        gap = model(x)[:, 2] - model(torch.full_like(x, 0.5))[:, 2]  # MeanFill with nothing kept
    torch.testing.assert_close(per_group.sum(1), gap, atol=1e-5, rtol=1e-5)
    assert on_device(attr)


def test_one_fill_call_per_chunk(x):
    fill = CountingConstant(0.5)
    ShapleyValueSampling(TinyCNN().to(x.device)).attribute(
        x, baselines=fill, target=0, feature_mask=MASK.to(x.device),
        n_samples=2, perturbations_per_eval=3
    )
    # the all-absent evaluation, then per permutation 8 coalitions in chunks of 3 (2 images)
    assert fill.batch_sizes == [2, 6, 6, 4, 6, 6, 4]


def test_model_that_ignores_right_half_gets_zero_there(x, on_device):
    attr = ShapleyValueSampling(LeftHalfLinear().to(x.device)).attribute(
        x,
        baselines=BlurBaseline(1.0),
        target=0,
        feature_mask=MASK.to(x.device),
        n_samples=2,
        perturbations_per_eval=4,
    )
    assert attr[..., 4:].abs().max() < 1e-5
    assert attr[..., :4].abs().min() > 1e-3 and on_device(attr)


def test_noise_tunnel_equals_captum(x, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(
        nt_samples=2,
        stdevs=0.05,
        target=0,
        feature_mask=MASK.to(x.device),
        n_samples=2,
        perturbations_per_eval=4,
    )
    torch.manual_seed(2)
    expected = captum.attr.NoiseTunnel(captum.attr.ShapleyValueSampling(model)).attribute(
        x, baselines=0.1, **kw
    )
    torch.manual_seed(2)
    got = NoiseTunnel(ShapleyValueSampling(model)).attribute(
        x, baselines=ConstantBaseline(0.1), **kw
    )
    assert torch.equal(got, expected) and on_device(got)


def test_model_state_unchanged_and_bad_input(x):
    model = TinyCNN().to(x.device).train()
    before = model_state(model)
    ShapleyValueSampling(model).attribute(
        x, baselines=MeanFill(), target=0, feature_mask=MASK.to(x.device), n_samples=1
    )
    assert same_state(before, model_state(model))
    with pytest.raises(ValueError, match=r"baselines \(MeanFill\) works on images"):
        ShapleyValueSampling(model).attribute(
            torch.rand(2, 8, 8).to(x.device), baselines=MeanFill()
        )
