"""PushPullInpainter: exactness on kept pixels, hand-computed fills, ramps, no NaN, gradients."""

from __future__ import annotations

import pytest
import torch

from captum_cf.inpainters import Inpainter, PushPullInpainter

NAN = float("nan")


def _ramp(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (0.1 + 0.3 * xx + 0.5 * yy).view(1, 1, h, w)


def test_is_an_inpainter_without_weights():
    pp = PushPullInpainter()
    assert isinstance(pp, Inpainter) and len(list(pp.parameters())) == 0


def test_all_keep_image_is_unchanged(device):
    x = torch.rand(3, 3, 17, 10).to(device)
    out = PushPullInpainter()(x, torch.zeros(3, 1, 17, 10, device=device))
    assert out.device == device and torch.equal(out, x)


def test_kept_pixels_are_unchanged_with_binary_hole(device):
    x = torch.rand(2, 3, 20, 13).to(device)
    hole = (torch.rand(2, 1, 20, 13) > 0.6).float().to(device)
    out = PushPullInpainter()(x, hole)
    assert out.device == device
    keep = (hole == 0).expand_as(x)
    assert torch.equal(out[keep], x[keep])
    assert not torch.equal(out, x)


def test_one_known_pixel_spreads_everywhere(device):
    x = torch.zeros(1, 1, 5, 7, device=device)
    x[0, 0, 2, 3] = 0.8
    hole = torch.ones(1, 1, 5, 7, device=device)
    hole[0, 0, 2, 3] = 0
    out = PushPullInpainter()(x, hole)
    torch.testing.assert_close(out, torch.full_like(x, 0.8))


def test_soft_hole_hand_computed(device):
    # 1x2 image [a, b], hole [0, 0.5]: level 1 has w = 1.5, v = (a + 0.5 b) / 1.5, confidence 1;
    # pushed down: out = [a, 0.5 b + 0.5 v]
    a, b = 0.2, 0.9
    x = torch.tensor([[[[a, b]]]], dtype=torch.float64, device=device)
    hole = torch.tensor([[[[0.0, 0.5]]]], dtype=torch.float64, device=device)
    out = PushPullInpainter()(x, hole)
    assert out.device == device
    v = (a + 0.5 * b) / 1.5
    expected = torch.tensor([[[[a, 0.5 * b + 0.5 * v]]]], dtype=torch.float64)
    torch.testing.assert_close(out.cpu(), expected)


def test_constant_image_with_holes_stays_constant(device):
    x = torch.full((2, 3, 23, 31), 0.42, device=device)
    hole = (torch.rand(2, 1, 23, 31) > 0.3).float().to(device)
    out = PushPullInpainter()(x, hole)
    assert float((out - 0.42).abs().max()) < 1e-6


def test_fills_a_hole_in_a_linear_ramp_with_small_error(device):
    # measured: max error 0.0143, mean 0.0076 on a ramp spanning 0.8 with a 12x12 hole;
    # filling with the grey fallback instead is about 7x worse (mean 0.054) inside the hole
    x = _ramp(32, 32).to(device)
    hole = torch.zeros(1, 1, 32, 32, device=device)
    hole[..., 10:22, 10:22] = 1
    out = PushPullInpainter()(x, hole)
    err = (out - x).abs()
    assert float(err.max()) < 0.02
    assert float(err[hole.bool()].mean()) < 0.01
    grey = float((0.5 - x).abs()[hole.bool()].mean())
    assert grey > 5 * float(err[hole.bool()].mean())


def test_levels_limit_how_far_information_travels(device):
    # 1x8 row, right half missing, a single pull step: coarse pixels 2 and 3 (fine 4..7) have no
    # information, so fine pixels 6 and 7, which interpolate only those two, get the fallback
    x = torch.rand(1, 1, 1, 8).to(device)
    hole = torch.zeros(1, 1, 1, 8, device=device)
    hole[..., 4:] = 1
    out = PushPullInpainter(levels=1, fallback=0.3)(x, hole)
    torch.testing.assert_close(out[..., 6:], torch.full((1, 1, 1, 2), 0.3, device=device))
    assert torch.equal(out[..., :4], x[..., :4])
    filled = PushPullInpainter(levels=0, fallback=0.3)(x, hole)
    assert torch.equal(filled[..., 4:], torch.full((1, 1, 1, 4), 0.3, device=device))


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (3, 2), (7, 1), (33, 17)])
def test_all_hole_falls_back_and_never_nan(size, device):
    x = torch.rand(2, 3, *size).to(device)
    out = PushPullInpainter(fallback=0.25)(x, torch.ones(2, 1, *size, device=device))
    assert torch.equal(out, torch.full_like(x, 0.25))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (9, 4), (31, 64)])
def test_soft_and_tiny_holes_stay_finite_in_unit_range(size, device):
    x = torch.rand(2, 3, *size)
    hole = torch.rand(2, 1, *size) ** 0.2  # mostly near 1, some almost-empty context
    hole[0] = 1 - 1e-30 * torch.rand(1, *size)  # almost no information at all
    x, hole = x.to(device), hole.to(device)
    out = PushPullInpainter()(x, hole)
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_per_channel_hole(device):
    x = torch.rand(1, 2, 8, 8).to(device)
    hole = torch.zeros(1, 2, 8, 8, device=device)
    hole[:, 0, :4] = 1
    out = PushPullInpainter()(x, hole)
    assert torch.equal(out[:, 1], x[:, 1])
    assert not torch.equal(out[:, 0], x[:, 0])


def test_gradcheck_images_and_hole(device):
    x = torch.rand(1, 1, 3, 5, dtype=torch.float64).to(device).requires_grad_()
    hole = (0.2 + 0.6 * torch.rand(1, 1, 3, 5, dtype=torch.float64)).to(device).requires_grad_()
    assert torch.autograd.gradcheck(PushPullInpainter(), (x, hole))


def test_gradients_reach_known_pixels_from_hole_values(device):
    x = torch.rand(1, 1, 8, 8).to(device).requires_grad_()
    hole = torch.zeros(1, 1, 8, 8, device=device)
    hole[..., 2:6, 2:6] = 1
    out = PushPullInpainter()(x, hole)
    out[..., 4, 4].sum().backward()
    assert x.grad is not None and float(x.grad[..., 4, 4]) == 0.0
    assert float(x.grad.sum()) == pytest.approx(1.0, abs=1e-5)  # a convex combination of knowns


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"levels": -1}, ValueError, "levels must be >= 0"),
        ({"levels": 2.0}, TypeError, "levels must be an int"),
        ({"fallback": 1.5}, ValueError, "fallback must lie in"),
        ({"fallback": "grey"}, TypeError, "fallback must be a float"),
        ({"eps": 0.0}, ValueError, "eps must be > 0"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        PushPullInpainter(**kwargs)


@pytest.mark.parametrize(
    "images, hole, err, match",
    [
        (torch.rand(3, 8, 8), torch.zeros(3, 8, 8), ValueError, "images must have shape"),
        (torch.rand(1, 1, 8, 8) * 2, torch.zeros(1, 1, 8, 8), ValueError, r"images must be images"),
        (torch.full((1, 1, 8, 8), NAN), torch.zeros(1, 1, 8, 8), ValueError, "images contains NaN"),
        (torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 4, 4), ValueError, "hole must have shape"),
        (torch.rand(1, 1, 8, 8), torch.full((1, 1, 8, 8), -0.5), ValueError, r"hole must lie in"),
        (torch.rand(1, 1, 8, 8), "all", TypeError, "hole must be a torch.Tensor"),
    ],
)
def test_bad_input(images, hole, err, match):
    with pytest.raises(err, match=match):
        PushPullInpainter()(images, hole)
