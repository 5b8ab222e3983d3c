"""saliency_metric: log(max(area, 0.05)) - log p(class | crop resized), by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from captum_cf.metrics import saliency_metric


class Brightness(nn.Module):
    """logits = [0, 4 * mean(x)]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(m), 4 * m], dim=1)


def _log_p1(mean: float) -> float:
    return 4 * mean - math.log(1 + math.exp(4 * mean))


def test_crop_is_resized_and_scored(device) -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 2:6, 2:6] = 1.0  # a bright 4x4 square, area 1/4
    amap = x[:, 0].clone()
    s = saliency_metric(Brightness(), x.to(device), amap.to(device), target=1)
    assert s.device == device
    expected = math.log(0.25) - _log_p1(1.0)  # the crop is the square: all ones
    torch.testing.assert_close(s.cpu(), torch.full((2,), expected))
    assert not saliency_metric.higher_is_better


def test_small_area_is_clamped_and_empty_map_crops_everything(device) -> None:
    x = torch.full((2, 1, 8, 8), 0.5)
    amap = torch.zeros(2, 8, 8)
    amap[0, 3, 3] = 1.0  # 1 pixel: area 1/64 < 0.05
    s = saliency_metric(Brightness(), x.to(device), amap.to(device), target=1)
    assert s.device == device
    s = s.cpu()
    torch.testing.assert_close(s[0], torch.tensor(math.log(0.05) - _log_p1(0.5)))
    torch.testing.assert_close(s[1], torch.tensor(0.0 - _log_p1(0.5)))  # whole image, area 1


def test_bad_input() -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="min_area"):
        saliency_metric(Brightness(), x, torch.rand(1, 8, 8), target=1, min_area=0)
    with pytest.raises(ValueError, match="attributions must match"):
        saliency_metric(Brightness(), x, torch.rand(1, 4, 4), target=1)
