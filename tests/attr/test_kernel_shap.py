"""captum_cf.attr.KernelShap: Captum's numbers under a seed; one fill per chunk."""

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

from captum_cf.attr import KernelShap
from captum_cf.baselines import BlurBaseline, ConstantBaseline


@pytest.fixture
def x(device: torch.device) -> torch.Tensor:
    """Drawn on the CPU (the seeded global generator), then moved: the same numbers everywhere."""
    return torch.rand(2, 3, 8, 8).to(device)


@pytest.mark.parametrize("ppe", [1, 2, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_baseline_equals_captum_scalar_under_a_seed(x, ppe, value, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(target=1, feature_mask=MASK.to(x.device), n_samples=12, perturbations_per_eval=ppe)
    torch.manual_seed(4)
    expected = captum.attr.KernelShap(model).attribute(x, baselines=value, **kw)
    torch.manual_seed(4)
    got = KernelShap(model).attribute(x, baselines=ConstantBaseline(value), **kw)
    assert torch.equal(got, expected) and on_device(got)
    assert expected.abs().sum() > 0


def test_tensor_baselines_pass_straight_to_captum(x):
    model = TinyCNN().to(x.device)
    for baselines in (None, 0.5, torch.rand(1, 3, 8, 8).to(x.device)):
        torch.manual_seed(1)
        expected = captum.attr.KernelShap(model).attribute(
            x, baselines, 0, feature_mask=MASK.to(x.device), n_samples=10
        )
        torch.manual_seed(1)
        assert torch.equal(
            KernelShap(model).attribute(x, baselines, 0, feature_mask=MASK.to(x.device),
                n_samples=10), expected
        )


def test_one_fill_call_per_chunk_and_kept_pixels_original(device, on_device):
    x = torch.rand(1, 3, 8, 8).to(device)
    fill = CountingConstant(0.5)
    KernelShap(TinyCNN().to(x.device)).attribute(
        x, baselines=fill, target=0, feature_mask=MASK.to(x.device),
        n_samples=11, perturbations_per_eval=5
    )
    assert fill.batch_sizes == [5, 5, 1]
    mean_fill = MeanFill()
    KernelShap(TinyCNN().to(x.device)).attribute(
        x, baselines=mean_fill, target=0, feature_mask=MASK.to(x.device),
        n_samples=6, perturbations_per_eval=6
    )
    ((inputs, keep, _),) = mean_fill.calls
    assert on_device(inputs, keep)
    assert torch.equal(inputs, x.expand(6, -1, -1, -1))
    # Captum's generator starts with all features present, then none
    assert bool((keep[0] == 1).all()) and bool((keep[1] == 0).all())


def test_model_that_ignores_right_half_gets_zero_there(x, on_device):
    attr = KernelShap(LeftHalfLinear().to(x.device)).attribute(
        x,
        baselines=BlurBaseline(1.0),
        target=1,
        feature_mask=MASK.to(x.device),
        n_samples=40,
        perturbations_per_eval=10,
    )
    assert attr[..., 4:].abs().max() < 1e-4
    assert attr[..., :4].abs().min() > 1e-2 and on_device(attr)


def test_model_state_unchanged_and_bad_input(x):
    model = TinyCNN().to(x.device).train()
    before = model_state(model)
    KernelShap(model).attribute(x, baselines=MeanFill(), target=0, feature_mask=MASK.to(x.device),
        n_samples=5)
    assert same_state(before, model_state(model))
    with pytest.raises(TypeError, match="baselines must be"):
        KernelShap(model).attribute(x, baselines=[0.0], target=0)


def test_feature_mask_of_n_plus_one_rows_is_a_clear_error() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8)
    mask = torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8).expand(3, 1, 8, 8)
    for baselines in (ConstantBaseline(0.5), 0.0):
        with pytest.raises(ValueError, match=r"feature_mask has shape \(3, 1, 8, 8\)"):
            KernelShap(model).attribute(x, baselines=baselines, target=0, feature_mask=mask,
                                        n_samples=4)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples must be a positive int"),
    ({"n_samples": -1}, "n_samples must be a positive int"),
    ({"perturbations_per_eval": 0}, "perturbations_per_eval must be a positive int"),
    ({"feature_mask": torch.zeros(1, 1, 8, 8, dtype=torch.long)},
     "feature_mask defines a single feature"),
])
def test_bad_sampling_settings_are_clear_errors(kwargs, message) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8)
    kwargs = {"feature_mask": torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8),
              "n_samples": 4, **kwargs}
    for baselines in (ConstantBaseline(0.5), 0.0):
        with pytest.raises(ValueError, match=message):
            KernelShap(model).attribute(x, baselines=baselines, target=0, **kwargs)
