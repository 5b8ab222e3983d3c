"""BlurBaseline / gaussian_blur: constants preserved (borders too), maths, small images, grads."""

from __future__ import annotations

import math

import pytest
import torch

from captum_cf.baselines import BlurBaseline, gaussian_blur


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 1, 7, 30), (1, 2, 3, 3), (1, 1, 1, 9)])
@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0])
def test_constant_image_stays_constant_borders_included(shape, sigma, device):
    x = torch.full(shape, 0.37, device=device)
    out = BlurBaseline(sigma)(x)
    assert out.shape == x.shape and out.device == device
    assert float((out - 0.37).abs().max()) < 1e-6  # zero padding would give ~0.37/2 at corners


def test_matches_hand_computed_1d_blur(device):
    # a single bright column in a 1 x 9 row: output = normalised Gaussian weights, reflected
    sigma, r = 1.0, 3
    x = torch.zeros(1, 1, 1, 9, dtype=torch.float64, device=device)
    x[..., 4] = 1.0
    out = gaussian_blur(x, sigma)
    assert out.device == device
    g = torch.tensor([math.exp(-0.5 * t * t) for t in range(-r, r + 1)], dtype=torch.float64)
    g = g / g.sum()
    torch.testing.assert_close(out[0, 0, 0, 1:8].cpu(), g)
    assert float(out[0, 0, 0, 0]) == 0.0  # the spike is 4 pixels away, radius 3


def test_reflect_padding_at_border(device):
    # spike on the border pixel 0: reflect padding mirrors it without repeating pixel 0
    x = torch.zeros(1, 1, 1, 6, dtype=torch.float64, device=device)
    x[..., 0] = 1.0
    out = gaussian_blur(x, 1.0, kernel_size=3)
    g = torch.tensor([math.exp(-0.5), 1.0, math.exp(-0.5)], dtype=torch.float64)
    g = g / g.sum()
    torch.testing.assert_close(out[0, 0, 0, :2].cpu(), torch.stack([g[1], g[0]]))


def test_separable_equals_2d_kernel_and_mass_is_kept(device):
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64).to(device)
    out = gaussian_blur(x, 1.5)
    assert out.device == device
    assert out.min() >= x.min() - 1e-12 and out.max() <= x.max() + 1e-12
    assert float(out.std()) < float(x.std())  # blurring removes variance
    xt = x.transpose(-1, -2)
    torch.testing.assert_close(gaussian_blur(xt, 1.5), out.transpose(-1, -2))


def test_image_smaller_than_kernel_clamps_radius(device):
    x = torch.rand(2, 1, 2, 3).to(device)
    out = gaussian_blur(x, 5.0)  # radius 15 > H - 1 = 1
    assert torch.isfinite(out).all() and out.shape == x.shape and out.device == device
    # W = 3: radius clamped to 2; a huge sigma makes the kernel uniform over 5 taps of the
    # reflected row [c, b, a, b, c, b, a], so the middle output is (a + 3b + c) / 5
    row = torch.tensor([[[[0.1, 0.5, 0.9]]]], dtype=torch.float64, device=device)
    w = gaussian_blur(row, 1e6)
    assert abs(float(w[0, 0, 0, 1]) - (0.1 + 1.5 + 0.9) / 5) < 1e-9


def test_fill_and_dtype(device):
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64).to(device)
    keep = torch.zeros(1, 1, 8, 8, dtype=torch.float64, device=device)
    keep[..., 4:] = 1
    out = BlurBaseline(2.0).fill(x, keep)
    assert out.dtype == torch.float64 and out.device == device
    assert torch.equal(out[..., 4:], x[..., 4:])
    assert torch.equal(out[..., :4], gaussian_blur(x, 2.0)[..., :4])


def test_gradcheck(device):
    x = torch.rand(1, 2, 5, 4, dtype=torch.float64).to(device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: gaussian_blur(t, 1.0), (x,))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"sigma": 0.0}, ValueError, "sigma must be a positive"),
        ({"sigma": -1.0}, ValueError, "sigma must be a positive"),
        ({"sigma": "big"}, TypeError, "sigma must be"),
        ({"sigma": 1.0, "kernel_size": 4}, ValueError, "kernel_size must be a positive odd"),
        ({"sigma": 1.0, "kernel_size": 3.0}, TypeError, "kernel_size must be an odd int"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        BlurBaseline(**kwargs)


def test_bad_images(device):
    with pytest.raises(ValueError, match="images must have shape"):
        gaussian_blur(torch.rand(4, 4), 1.0)
    with pytest.raises(ValueError, match=r"BlurBaseline works on images of shape \(N, C, H, W\), "
                       r"but inputs has shape \(2, 5\)"):
        BlurBaseline(1.0)(torch.rand(2, 5))
    # a blur needs no pixel space: a constant image outside [0, 1] stays that constant
    x = torch.full((1, 1, 4, 4), 3.0, device=device)
    assert torch.allclose(BlurBaseline(1.0)(x), x)
