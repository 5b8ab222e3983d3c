"""Baselines inside captum.metrics: infidelity's perturb_func, sensitivity_max under noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from captum.metrics import infidelity, sensitivity_max

from captum_cf.attr import IntegratedGradients
from captum_cf.baselines import ConstantBaseline, InpaintBaseline, noisy_inputs
from captum_cf.inpainters import PushPullInpainter
from captum_cf.integrations import captum_explanation_func, captum_perturb_func


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.ReLU(), nn.Linear(5, 3)).eval()


def test_infidelity_with_a_constant_baseline_equals_hand_written_removal(device):
    model, x = _model().to(device), torch.rand(3, 1, 8, 8).to(device)
    attr = IntegratedGradients(model).attribute(x, target=1, n_steps=8)

    def by_hand(inputs):
        u = torch.rand((inputs.shape[0], 1, 8, 8), generator=gen)
        keep = (u >= 0.3).to(device=inputs.device, dtype=inputs.dtype)
        removed = keep * inputs + (1 - keep) * 0.5
        return inputs - removed, removed

    gen = torch.Generator().manual_seed(7)
    expected = infidelity(model, by_hand, x, attr, target=1, n_perturb_samples=6)
    ours = infidelity(model, captum_perturb_func(ConstantBaseline(0.5), p_remove=0.3, seed=7),
                      x, attr, target=1, n_perturb_samples=6)
    assert ours.device == device
    assert torch.equal(ours, expected) and bool((ours > 0).all())


def test_multiplied_attributions_get_captums_divided_perturbations(device):
    # IG is exact on a linear model: with multiply_by_inputs=True (Captum's decorator rule,
    # I = (x - fill) / (x - x')) its infidelity is 0; without, it was not
    from captum.metrics import infidelity_perturb_func_decorator

    from captum_cf.baselines import BlurBaseline

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    blur = BlurBaseline(2.0)
    ref = blur.reference(x)
    attr = IntegratedGradients(model).attribute(x, baselines=blur, target=0)
    plain = captum_perturb_func(blur, seed=0)
    divided = captum_perturb_func(blur, seed=0, multiply_by_inputs=True)
    assert infidelity(model, plain, x, attr, baselines=ref, target=0).min() > 1e-4
    exact = infidelity(model, divided, x, attr, baselines=ref, target=0)
    assert exact.device == device and exact.abs().max() < 1e-10
    # the same perturbations as Captum's own decorator around the same fills
    gen = torch.Generator().manual_seed(3)

    @infidelity_perturb_func_decorator(True)
    def captums(inputs, baselines):
        keep = (torch.rand((inputs.shape[0], 1, 8, 8), generator=gen) >= 0.25).to(inputs)
        return blur.fill(inputs, keep)

    ours = captum_perturb_func(blur, seed=3, multiply_by_inputs=True)(x, ref)
    theirs = captums(x, ref)
    assert torch.equal(ours[0], theirs[0][0]) and torch.equal(ours[1], theirs[1][0])


def test_infidelity_perturbations_keep_unremoved_pixels_and_fill_the_rest(device):
    base = InpaintBaseline(PushPullInpainter())
    perturb = captum_perturb_func(base, p_remove=0.5, seed=0)
    x = torch.rand(4, 3, 8, 8).to(device)
    delta, filled = perturb(x)
    assert delta.device == device and filled.device == device
    kept = (delta == 0).all(1)  # one mask per pixel, shared by the channels
    assert bool(kept.any()) and bool((~kept).any())
    assert torch.equal(filled[kept.unsqueeze(1).expand_as(x)], x[kept.unsqueeze(1).expand_as(x)])
    assert torch.equal(x - filled, delta)
    # tuples of inputs: one entry each; tabular inputs: one mask per value
    ones = torch.ones(4, 5, device=device)
    (d1, d2), (f1, f2) = captum_perturb_func(ConstantBaseline(0.0), seed=1)((x, ones))
    assert f1.device == device and f2.device == device
    assert torch.equal(f2 + d2, ones) and set(f2.unique().tolist()) <= {0.0, 1.0}
    model = _model().to(device)
    attr = IntegratedGradients(model).attribute(x[:, :1], target=0, n_steps=4)
    score = infidelity(model, captum_perturb_func(base, seed=0), x[:, :1], attr, target=0,
                       n_perturb_samples=3)
    assert score.device == device
    assert score.shape == (4,) and bool(torch.isfinite(score).all())


def test_sensitivity_max_with_a_pixel_space_baseline_under_noisy_inputs(device):
    model, x = _model().to(device), torch.rand(2, 1, 8, 8).to(device)
    base = InpaintBaseline(PushPullInpainter())
    ig = IntegratedGradients(model)
    kw = dict(perturb_radius=0.2, n_perturb_samples=4, target=0, n_steps=4)
    with pytest.raises(ValueError, match="noisy_inputs"):
        sensitivity_max(lambda inp, **k: ig.attribute(inp, baselines=base, **k), x, **kw)
    torch.manual_seed(5)
    ours = sensitivity_max(captum_explanation_func(ig.attribute, base), x, **kw)
    torch.manual_seed(5)
    with noisy_inputs():  # the same, by hand
        again = sensitivity_max(lambda inp, **k: ig.attribute(inp, baselines=base, **k), x, **kw)
    assert torch.equal(ours, again)

    def by_hand(inputs, **k):  # the reference of the clamped noisy copy, as a tensor
        (inp,) = inputs  # sensitivity_max hands over a tuple
        return ig.attribute(inputs, baselines=(base(inp.clamp(0, 1)),), **k)

    torch.manual_seed(5)
    expected = sensitivity_max(by_hand, x, **kw)
    assert ours.device == device
    assert torch.equal(ours, expected) and bool((ours > 0).any())


def test_bad_arguments():
    with pytest.raises(TypeError, match="baseline must be a captum_cf Baseline"):
        captum_perturb_func(lambda x: x)
    with pytest.raises(ValueError, match="p_remove must be a number in"):
        captum_perturb_func(ConstantBaseline(0.0), p_remove=0.0)
    with pytest.raises(TypeError, match="multiply_by_inputs must be a bool"):
        captum_perturb_func(ConstantBaseline(0.0), multiply_by_inputs="yes")
    from captum_cf.baselines import NearestSampleBaseline

    per_example = NearestSampleBaseline((torch.rand(6, 4), torch.arange(6) % 3), [1, 2])
    with pytest.raises(ValueError, match="has a counterfactual_class per example, but the "
                                         "metric calls it on batches of its own"):
        captum_perturb_func(per_example)

    class NeedsClass(ConstantBaseline):
        needs_target = True

    with pytest.raises(ValueError, match="passes its perturbation function no class"):
        captum_perturb_func(NeedsClass(0.0))
