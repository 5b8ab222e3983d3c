"""BiharmonicInpainter: kept pixels, ramps continued, skimage agreement, soft holes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.restoration import inpaint_biharmonic

from captum_cf.inpainters import BiharmonicInpainter, Inpainter, PushPullInpainter


def _ramp(n: int = 2, c: int = 3, size: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ramp = 0.1 + 0.3 * xx + 0.5 * yy
    return ramp.expand(n, c, size, size).contiguous()


def _box(n: int, size: int, y: int, x: int, side: int) -> torch.Tensor:
    hole = torch.zeros(n, 1, size, size)
    hole[..., y : y + side, x : x + side] = 1
    return hole


def _smooth(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    low = torch.rand(n, c, 5, 5, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic",
                                           align_corners=True).clamp(0, 1)


@pytest.mark.parametrize("size", [(32, 32), (13, 21), (1, 5), (3, 3)])
def test_shape_range_and_kept_pixels(size, device):
    x = torch.rand(2, 3, *size).to(device)
    hole = (torch.rand(2, 1, *size) > 0.6).float().to(device)
    out = BiharmonicInpainter()(x, hole)
    assert isinstance(BiharmonicInpainter(), Inpainter) and out.shape == x.shape
    assert out.device == device
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1
    keep = (hole == 0).expand_as(x)
    assert torch.equal(out[keep], x[keep])


def test_a_ramp_is_continued_exactly_where_push_pull_flattens_it(device):
    # A linear ramp has zero Laplacian inside the image: the biharmonic solution of an interior
    # hole is the ramp itself. Push-pull averages the context and misses it.
    x = _ramp().to(device)
    hole = _box(2, 32, 8, 10, 14).to(device)
    exact = BiharmonicInpainter(iterations=(60, 60, 60))(x, hole)
    default = BiharmonicInpainter()(x, hole)
    pushpull = PushPullInpainter()(x, hole)
    assert exact.device == default.device == pushpull.device == device
    assert float((exact - x).abs().max()) < 1e-3
    err = {k: float((v - x).abs()[hole.expand_as(x) > 0].mean())
           for k, v in {"default": default, "pushpull": pushpull}.items()}
    assert err["default"] < 0.004 and err["pushpull"] > 4 * err["default"], err


def test_agrees_with_scikit_image_biharmonic_on_smooth_images(device):
    # converged, the multigrid CG solves the same discrete problem as scikit-image
    x = _smooth(2, 3, 32)
    hole = _box(2, 32, 9, 6, 12)
    hole[1, :, 20:28, 18:30] = 1
    ours = BiharmonicInpainter(iterations=(200, 100, 100), context=None)(x.to(device),
                                                                         hole.to(device))
    assert ours.device == device
    ours = ours.cpu()
    ref = torch.from_numpy(np.stack([
        inpaint_biharmonic(img.transpose(1, 2, 0), h[0] > 0, channel_axis=-1)
        for img, h in zip(x.numpy(), hole.numpy())]).transpose(0, 3, 1, 2)).float()
    inside = hole.expand_as(x) > 0
    diff = float((ours - ref).abs()[inside].mean())
    pushpull_diff = float((PushPullInpainter()(x, hole) - ref).abs()[inside].mean())
    assert diff < 1e-4 and pushpull_diff > 0.01, (diff, pushpull_diff)


def test_soft_holes_blend_with_the_binary_solution(device):
    x = torch.rand(1, 3, 24, 24).to(device)
    soft = torch.zeros(1, 1, 24, 24, device=device)
    soft[..., 6:14, 5:19] = 0.4
    inpainter = BiharmonicInpainter()
    binary = inpainter(x, (soft > 0).float())
    torch.testing.assert_close(inpainter(x, soft), (1 - soft) * x + soft * binary)


def test_all_hole_image_is_mid_grey_and_gradients_flow(device):
    x = torch.rand(1, 1, 16, 16).to(device)
    out = BiharmonicInpainter()(x, torch.ones(1, 1, 16, 16, device=device))
    torch.testing.assert_close(out, torch.full_like(x, 0.5))
    x.requires_grad_(True)
    hole = _box(1, 16, 4, 4, 6).to(device).requires_grad_(True)
    BiharmonicInpainter()(x, hole).sum().backward()
    assert float(x.grad.abs().sum()) > 0 and float(hole.grad.abs().sum()) > 0


def test_small_holes_are_solved_on_a_window_large_ones_on_the_image(device):
    x = _smooth(3, 3, 64, seed=1).to(device)
    small = _box(3, 64, 2, 50, 8).to(device)  # near a corner: the window is shifted into the image
    full = BiharmonicInpainter(context=None)(x, small)
    local = BiharmonicInpainter(context=8)(x, small)
    inside = small.expand_as(x) > 0
    assert torch.equal(local[~inside], x[~inside])
    assert float((local - full).abs()[inside].mean()) < 0.01
    large = _box(3, 64, 4, 4, 40).to(device)
    assert torch.equal(BiharmonicInpainter(context=8)(x, large),
                       BiharmonicInpainter(context=None)(x, large))


def test_bad_arguments():
    with pytest.raises(ValueError, match="iterations"):
        BiharmonicInpainter(iterations=())
    with pytest.raises(ValueError, match="iterations"):
        BiharmonicInpainter(iterations=(5, -1))
    with pytest.raises(TypeError, match="iterations"):
        BiharmonicInpainter(iterations=5)
    with pytest.raises(ValueError, match="context"):
        BiharmonicInpainter(context=0)
    with pytest.raises(ValueError, match="hole"):
        BiharmonicInpainter()(torch.rand(1, 1, 8, 8), torch.full((1, 1, 8, 8), 2.0))


def test_cg_with_tol_stops_each_image_on_its_own(device):
    # a tiny hole converges at once, a large one needs many steps: with ``tol`` the converged
    # image leaves the batch, so the operator sees fewer images, and both images reach the same
    # solution as when each is solved alone
    from captum_cf.inpainters.biharmonic import _conjugate_gradients, _laplacian

    def minus_laplacian(u):  # positive semi-definite
        return -_laplacian(u)

    torch.manual_seed(0)
    x = torch.rand(2, 2, 24, 24, device=device)
    free = torch.zeros(2, 1, 24, 24, device=device)
    free[0, :, 11:13, 11:13] = 1
    free[1, :, 2:22, 2:22] = 1
    start = x * (1 - free)
    seen = []

    def counting(u):
        seen.append(u.shape[0])
        return minus_laplacian(u)

    out = _conjugate_gradients(start, free, 400, operator=counting, tol=1e-5)
    assert 1 in seen and seen[0] == 2  # the easy image dropped out, the hard one went on
    for i in range(2):
        alone = _conjugate_gradients(start[i : i + 1], free[i : i + 1], 400,
                                     operator=minus_laplacian, tol=1e-5)
        torch.testing.assert_close(out[i : i + 1], alone, atol=1e-6, rtol=0)
        residual = free[i : i + 1] * minus_laplacian(out[i : i + 1])
        assert float(residual.pow(2).mean((-2, -1)).sqrt().max()) <= 1e-5
    assert torch.equal(out * (1 - free), x * (1 - free))  # fixed pixels are untouched
