"""inpaint_locally: windows hold the holes, results scatter back exactly, fallbacks, gradients."""

from __future__ import annotations

import torch

from captum_cf.inpainters._local import inpaint_locally


def _fill(calls: list):
    def fn(images, hole):
        calls.append(tuple(images.shape))
        # a per-pixel rule that depends on the position inside the window would betray a
        # misplaced window: use the window's own mean colour of the known pixels
        known = 1 - hole.amax(1, keepdim=True)
        mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return (1 - hole) * images + hole * mean
    return fn


def test_windows_contain_every_hole_and_results_scatter_back(device):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 48, generator=gen).to(device)
    hole = torch.zeros(4, 1, 64, 48, device=device)
    hole[0, :, 0:5, 0:8] = 1  # top-left corner
    hole[1, :, 58:64, 40:48] = 1  # bottom-right corner
    hole[2, :, 30:38, 20:27] = 1
    hole[3, :, 10:12, 44:46] = 0.5  # soft, small
    calls: list = []
    out = inpaint_locally(_fill(calls), x, hole, context=4, multiple=8)
    assert calls == [(4, 3, 16, 16)]  # extent 8 + 2 * 4 = 16, a multiple of 8
    assert out.device == device
    outside = (hole == 0).expand_as(x)
    assert torch.equal(out[outside], x[outside])
    for i, (r, c) in enumerate([(0, 0), (58, 40), (30, 20), (10, 44)]):
        # each image's window is where its hole is: the filled value is the mean of known
        # pixels of a 16x16 window inside the image containing the hole
        filled = out[i, :, r, c]
        assert not torch.allclose(filled, x[i, :, r, c])
        assert bool(((filled >= 0) & (filled <= 1)).all())


def test_window_equals_full_image_for_a_pixelwise_rule(device):
    x = torch.rand(3, 2, 40, 40).to(device)
    hole = torch.zeros(3, 1, 40, 40, device=device)
    hole[0, :, 3:9, 30:37] = 1
    hole[2, :, 33:40, 0:6] = 1  # image 1 has no hole at all

    def rule(images, h):
        return (1 - h) * images + h * (1 - images)

    calls: list = []

    def recorded(images, h):
        calls.append(images.shape[-1])
        return rule(images, h)

    out = inpaint_locally(recorded, x, hole, context=3, multiple=1)
    assert calls == [13] and torch.equal(out, rule(x, hole))


def test_large_or_missing_holes_and_no_context_use_the_whole_image(device):
    x = torch.rand(2, 1, 32, 32).to(device)
    calls: list = []
    big = torch.zeros(2, 1, 32, 32, device=device)
    big[..., 2:22, 2:22] = 1
    inpaint_locally(_fill(calls), x, big, context=4)
    inpaint_locally(_fill(calls), x, torch.zeros(2, 1, 32, 32, device=device), context=4)
    small = torch.zeros(2, 1, 32, 32, device=device)
    small[..., 5:7, 5:7] = 1
    inpaint_locally(_fill(calls), x, small, context=None)
    assert calls == [(2, 1, 32, 32)] * 3


def test_gradients_reach_images_and_hole_through_the_window(device):
    x = torch.rand(2, 3, 32, 32).to(device).requires_grad_(True)
    hole = torch.zeros(2, 1, 32, 32, device=device)
    hole[..., 4:8, 20:26] = 0.7
    hole.requires_grad_(True)
    inpaint_locally(_fill([]), x, hole, context=2).pow(2).sum().backward()
    assert float(hole.grad[..., 4:8, 20:26].abs().sum()) > 0
    assert float(hole.grad[..., 20:, :10].abs().sum()) == 0
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
