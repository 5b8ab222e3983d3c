"""captum_cf.attr.ShapleyValues: exact Shapley values with absent groups filled by a Baseline."""

from __future__ import annotations

import torch
from perturbation_helpers import MeanFill

from captum_cf.attr import NoiseTunnel, ShapleyValues
from captum_cf.baselines import ConstantBaseline

MASK = (torch.arange(36).view(1, 1, 6, 6) >= 18).long()  # 2 groups: top and bottom half


def test_two_groups_by_hand_with_a_mask_conditional_fill(cnn, images, device, on_device):
    mask = MASK.to(device)
    attr = ShapleyValues(cnn).attribute(images, MeanFill(), target=1, feature_mask=mask)
    assert on_device(attr)

    def f(keep_groups):
        keep = sum((mask == g).float() for g in keep_groups) * torch.ones_like(images)
        with torch.no_grad():
            return cnn(MeanFill().fill(images, keep))[:, 1]

    none, top, bottom, both = f([]), f([0]), f([1]), f([0, 1])
    want_top = 0.5 * ((top - none) + (both - bottom))
    want_bottom = 0.5 * ((bottom - none) + (both - top))
    assert torch.allclose(attr[:, 0, 0, 0], want_top, atol=1e-6)
    assert torch.allclose(attr[:, 1, 5, 5], want_bottom, atol=1e-6)
    # efficiency: the values add up to the gap between the input and the all-filled input
    assert torch.allclose(want_top + want_bottom, both - none, atol=1e-6)


def test_noise_tunnel_fills_each_noisy_copy(cnn, images, device, on_device):
    """Under our NoiseTunnel the Baseline fills each noisy copy (ConstantBaseline(c) = c)."""
    kw = dict(nt_samples=2, stdevs=0.1, target=0, feature_mask=MASK.to(device))
    results = []
    for baselines in (ConstantBaseline(0.25), 0.25):
        torch.manual_seed(0)
        results.append(NoiseTunnel(ShapleyValues(cnn)).attribute(images, baselines=baselines, **kw))
    assert torch.equal(*results) and on_device(results[0])
