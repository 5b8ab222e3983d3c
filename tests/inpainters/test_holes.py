"""random_holes' shapes, computed by broadcasting a pixel column and row, equal the dense
formula over (n, 2, H, W) coordinate planes that the shipped inpainters were trained with, bit
for bit (the masks, hence training, must not change with the implementation)."""

from __future__ import annotations

import pytest
import torch

from captum_cf.inpainters.holes import _box_draws, _boxes, _stroke_draws, _strokes, random_holes


def _planes(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5,
                            torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([ys, xs])[None]  # (1, 2, H, W)


def _dense_strokes(start, end, radius, h, w):
    a, b = start[:, :, None, None], end[:, :, None, None]
    p = _planes(h, w)
    ab = b - a
    t = ((p - a) * ab).sum(1) / (ab * ab).sum(1).clamp_min(1e-6)
    diff = p - (a + t.clamp(0, 1)[:, None] * ab)
    return diff[:, 0] ** 2 + diff[:, 1] ** 2 <= (radius**2)[:, None, None]


def _dense_boxes(lo, hi, h, w):
    p = _planes(h, w)
    return ((p >= lo[:, :, None, None]) & (p < hi[:, :, None, None])).all(1)


@pytest.mark.parametrize(("h", "w"), [(4, 4), (17, 29), (64, 64), (128, 96)])
def test_shapes_equal_the_dense_formula_bit_for_bit(h, w) -> None:
    gen = torch.Generator().manual_seed(h * w)
    grid = (torch.arange(h, dtype=torch.float32)[:, None] + 0.5,
            torch.arange(w, dtype=torch.float32)[None, :] + 0.5)
    for _ in range(20):
        pen = torch.rand(16, 2, generator=gen) * torch.tensor([h, w])
        start, end, radius = _stroke_draws(16, pen, float(min(h, w)), (h, w), gen)
        assert torch.equal(_strokes(start, end, radius, grid),
                           _dense_strokes(start, end, radius, h, w))
        lo, hi = _box_draws(16, h, w, gen)
        assert torch.equal(_boxes(lo, hi, grid), _dense_boxes(lo, hi, h, w))


def test_masks_are_seeded_and_within_coverage() -> None:
    a = random_holes(12, 40, 33, (0.1, 0.3), generator=torch.Generator().manual_seed(3))
    b = random_holes(12, 40, 33, (0.1, 0.3), generator=torch.Generator().manual_seed(3))
    cover = a.mean((1, 2, 3))
    assert torch.equal(a, b) and a.shape == (12, 1, 40, 33)
    assert bool(((cover >= 0.1) & (cover <= 0.3)).all())
