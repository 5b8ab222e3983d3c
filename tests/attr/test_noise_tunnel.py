"""captum_cf.attr.NoiseTunnel: the clean inputs of a Baseline-filled method are checked."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from captum_cf.attr import IntegratedGradients, NoiseTunnel, Occlusion
from captum_cf.baselines import BlurBaseline, InpaintBaseline
from captum_cf.inpainters import PushPullInpainter


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()


@pytest.mark.parametrize("method", [Occlusion, IntegratedGradients])
def test_uint8_images_are_rejected_like_the_plain_method(method: type) -> None:
    model = _model()
    x = (torch.rand(2, 1, 8, 8) * 255).to(torch.uint8)
    kwargs = {"sliding_window_shapes": (1, 4, 4)} if method is Occlusion else {}
    message = "inputs must be a floating-point tensor, got dtype torch.uint8"
    with pytest.raises(TypeError, match=message):
        method(model).attribute(x, baselines=BlurBaseline(1.0), target=0, **kwargs)
    with pytest.raises(TypeError, match=message):
        NoiseTunnel(method(model)).attribute(
            x, nt_samples=2, stdevs=0.1, baselines=BlurBaseline(1.0), target=0, **kwargs
        )


def test_images_outside_unit_range_are_rejected_before_the_noise() -> None:
    # a pixel-space Baseline refuses clean inputs outside [0, 1]; only noisy copies are clamped
    x = torch.rand(2, 1, 8, 8) * 255
    message = r"works in pixel space .* but inputs has values in \[0\.\d+, 2\d\d"
    with pytest.raises(ValueError, match=message):
        NoiseTunnel(Occlusion(_model())).attribute(
            x, nt_samples=2, stdevs=0.1, baselines=InpaintBaseline(PushPullInpainter()),
            target=0, sliding_window_shapes=(1, 4, 4),
        )


def test_clean_images_still_work_and_noise_leaves_unit_range(device, on_device) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8).to(device)
    out = NoiseTunnel(Occlusion(_model().to(device))).attribute(
        x, nt_samples=2, stdevs=0.5, baselines=InpaintBaseline(PushPullInpainter()),
        target=0, sliding_window_shapes=(1, 4, 4),
    )
    assert out.shape == x.shape and bool(torch.isfinite(out).all()) and on_device(out)


@pytest.mark.parametrize("kwargs, message", [
    ({"nt_samples": 0}, "nt_samples must be a positive int"),
    ({"nt_samples_batch_size": 0}, "nt_samples_batch_size must be a positive int"),
    ({"stdevs": -0.1}, "stdevs must be a finite number >= 0"),
    ({"nt_type": "foo"}, "Noise types must be either"),
])
def test_bad_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    kwargs = {"nt_samples": 2, "stdevs": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        NoiseTunnel(IntegratedGradients(_model())).attribute(torch.rand(2, 1, 8, 8), target=0,
                                                             **kwargs)
