"""InpaintBaseline: exact composite, the checkerboard reference, batching, errors."""

from __future__ import annotations

import pytest
import torch

from captum_cf.baselines import ConstantBaseline, InpaintBaseline
from captum_cf.inpainters import Inpainter, PushPullInpainter


class _Constant(Inpainter):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def _inpaint(self, images, hole):
        return torch.full_like(images, self.c)


class _Recorder:
    """Identity inpainter (a plain callable) that records the holes it was given."""

    def __init__(self) -> None:
        self.holes: list[torch.Tensor] = []

    def __call__(self, images, hole):
        self.holes.append(hole.clone())
        return images


def test_keep_of_ones_returns_inputs_exactly(device):
    x = torch.rand(2, 3, 16, 16).to(device)
    out = InpaintBaseline(PushPullInpainter()).fill(x, torch.ones(2, 1, 16, 16, device=device))
    assert out.device == device and torch.equal(out, x)


def test_binary_keep_returns_kept_pixels_exactly(device):
    x = torch.rand(2, 3, 16, 16).to(device)
    keep = (torch.rand(2, 1, 16, 16) > 0.5).float().to(device)
    out = InpaintBaseline(_Constant(0.9)).fill(x, keep)
    assert out.device == device
    k = keep.expand_as(x).bool()
    assert torch.equal(out[k], x[k]) and bool((out[~k] == 0.9).all())


@pytest.mark.parametrize("c", [0.0, 0.3, 1.0])
def test_constant_inpainter_equals_constant_baseline(c, device):
    x = torch.rand(3, 2, 8, 12)
    keep = torch.rand(3, 1, 8, 12).round()
    keep[0] = torch.rand(1, 8, 12)  # soft keep too
    x, keep = x.to(device), keep.to(device)
    ours = InpaintBaseline(_Constant(c))
    assert torch.equal(ours.fill(x, keep), ConstantBaseline(c).fill(x, keep))
    assert torch.equal(ours.reference(x), ConstantBaseline(c).reference(x))


def test_fill_passes_one_channel_hole_and_the_complement_of_keep(device):
    rec = _Recorder()
    keep = (torch.rand(2, 1, 6, 6) > 0.5).float().to(device)
    InpaintBaseline(rec).fill(torch.rand(2, 3, 6, 6).to(device), keep)
    assert len(rec.holes) == 1 and rec.holes[0].device == device
    assert torch.equal(rec.holes[0], 1 - keep)


def test_fill_passes_per_channel_hole_when_keep_differs_per_channel(device):
    rec = _Recorder()
    keep = (torch.rand(1, 3, 6, 6) > 0.5).float().to(device)
    InpaintBaseline(rec).fill(torch.rand(1, 3, 6, 6).to(device), keep)
    assert torch.equal(rec.holes[0], 1 - keep)


def test_reference_checkerboard_passes_are_one_batched_call(device):
    rec = _Recorder()
    x = torch.rand(2, 1, 8, 12).to(device)
    ref = InpaintBaseline(rec, patch=2, blend=False).reference(x)
    assert torch.equal(ref, x)  # identity inpainter: each pixel taken from exactly one pass
    (holes,) = rec.holes
    assert holes.shape == (8, 1, 8, 12) and holes.device == device  # 4 passes x 2 images
    # each pixel is hole once per image
    assert torch.equal(holes.sum(0), torch.full((1, 8, 12), 2.0, device=device))
    cell = holes[0, 0, ::2, ::2]  # pass 0 on the 4x6 grid of 2x2 cells: even rows, even cols
    expected = torch.zeros(4, 6, device=device)
    expected[::2, ::2] = 1
    assert torch.equal(cell, expected)
    assert torch.equal(holes[0], holes[1]) and torch.equal(holes[2], holes[3])


def test_reference_batch_size_splits_the_calls(device):
    """A reference is computed a chunk of images at a time: all passes of ``batch_size //
    passes`` images per chunk, and no call above ``batch_size`` images."""
    rec = _Recorder()
    x = torch.rand(5, 1, 8, 8).to(device)
    InpaintBaseline(rec, batch_size=9, blend=False).reference(x)  # 4 passes: 2 images a chunk
    assert [h.shape[0] for h in rec.holes] == [8, 8, 4]
    rec.holes.clear()
    InpaintBaseline(rec, batch_size=40).reference(x)  # blended, 16 passes: 2 images a chunk
    assert [h.shape[0] for h in rec.holes] == [32, 32, 16]
    rec.holes.clear()
    InpaintBaseline(rec, batch_size=3, blend=False).reference(x[:1])  # fewer than the passes
    assert [h.shape[0] for h in rec.holes] == [3, 1]


def test_reference_default_chunks_by_pixels_with_the_same_result(device, monkeypatch):
    import captum_cf.baselines.inpaint as inpaint

    x = torch.rand(7, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(device)
    whole = InpaintBaseline(PushPullInpainter()).reference(x)
    rec = _Recorder()
    InpaintBaseline(rec).reference(x)
    assert [h.shape[0] for h in rec.holes] == [16 * 7]  # 2**22 pixels hold them all
    monkeypatch.setattr(inpaint, "REFERENCE_PIXELS", 16 * 3 * 16 * 16)  # 3 images a chunk
    rec.holes.clear()
    InpaintBaseline(rec).reference(x)
    assert [h.shape[0] for h in rec.holes] == [48, 48, 16]
    chunked = InpaintBaseline(PushPullInpainter()).reference(x)
    assert torch.equal(chunked, whole)  # per-image work: the chunks give the same numbers


def test_blended_reference_is_identity_for_an_identity_inpainter_and_every_grid_is_used(device):
    rec = _Recorder()
    x = torch.rand(2, 1, 8, 12).to(device)
    ref = InpaintBaseline(rec, patch=4).reference(x)
    assert ref.device == device and torch.equal(ref, x)
    (holes,) = rec.holes
    assert holes.shape == (32, 1, 8, 12)  # 4 grids x 4 passes x 2 images
    # every grid covers each pixel exactly once; the shifted grid's cells start 2 pixels earlier
    assert torch.equal(holes.sum(0), torch.full((1, 8, 12), 8.0, device=device))
    assert torch.equal(holes[2 * 4, 0, 0, :6].cpu(), torch.tensor([1.0, 1, 0, 0, 0, 0]))


def test_blending_removes_the_seams_of_the_single_grid(device):
    # a smooth ramp at 96 px: the single grid swaps content across every cell border (tiles);
    # blending leaves the reference about as smooth as the input
    ramp = torch.linspace(0, 1, 96)
    x = (0.5 * ramp.view(1, 1, 1, 96) + 0.5 * ramp.view(1, 1, 96, 1)).expand(1, 3, 96, 96)
    x = (0.9 * x + 0.05 * (1 + torch.sin(torch.arange(96.0) / 5).view(1, 1, 1, 96))).to(device)

    def max_jump(img):
        return float(torch.diff(img, dim=-1).abs().max().max(torch.diff(img, dim=-2).abs().max()))

    tiles = InpaintBaseline(PushPullInpainter(), blend=False).reference(x)
    smooth = InpaintBaseline(PushPullInpainter()).reference(x)
    assert max_jump(x) < 0.03
    assert max_jump(tiles) > 2 * max_jump(smooth), (max_jump(tiles), max_jump(smooth))  # 3.3x


def test_reference_with_push_pull_replaces_every_pixel_from_context(device):
    x = torch.full((1, 1, 16, 16), 0.2, device=device)
    x[0, 0, 5, 9] = 1.0  # a detail that context cannot predict
    ref = InpaintBaseline(PushPullInpainter(), patch=4).reference(x)
    assert ref.device == device and abs(float(ref[0, 0, 5, 9]) - 0.2) < 1e-6
    assert torch.isfinite(ref).all() and float(ref.max()) <= 1 and float(ref.min()) >= 0
    smooth = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16).to(device)
    err = (InpaintBaseline(PushPullInpainter())(smooth) - smooth).abs()
    # a smooth image is predicted by context; border cells are extrapolated (flat) from one side
    assert float(err[..., 4:12].max()) < 0.05 and float(err.mean()) < 0.1  # measured 0.085


def test_default_patch_is_a_quarter_of_the_shorter_side(device):
    rec = _Recorder()
    InpaintBaseline(rec).reference(torch.rand(1, 1, 16, 40).to(device))
    row = rec.holes[0][0, 0, 0]  # pass 0, first row: cells of 4 pixels alternate
    assert torch.equal(row[:8].cpu(), torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))


def test_patch_too_large_is_rejected():
    with pytest.raises(ValueError, match="patch=8 leaves a single cell"):
        InpaintBaseline(PushPullInpainter(), patch=8).reference(torch.rand(1, 1, 8, 8))


def test_gradient_flows_to_keep_and_inputs(device):
    x = torch.rand(1, 1, 8, 8).to(device).requires_grad_(True)
    keep = torch.rand(1, 1, 8, 8).to(device).requires_grad_(True)
    InpaintBaseline(PushPullInpainter()).fill(x, keep).sum().backward()
    assert x.grad is not None and keep.grad is not None and float(keep.grad.abs().sum()) > 0


def test_inpainter_with_wrong_output_shape(device):
    bad = InpaintBaseline(lambda images, hole: images[:, :1])
    with pytest.raises(ValueError, match="inpainter must return images of shape"):
        bad.fill(torch.rand(1, 3, 4, 4).to(device), torch.ones(1, 1, 4, 4, device=device))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"inpainter": "lama"}, TypeError, "inpainter must be callable"),
        ({"inpainter": _Constant(0.0), "patch": 0}, ValueError, "patch must be a positive int"),
        ({"inpainter": _Constant(0.0), "batch_size": 2.0}, TypeError, "batch_size must be"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        InpaintBaseline(**kwargs)


@pytest.mark.parametrize(
    "inputs, keep, match",
    [
        (torch.rand(1, 8, 8), torch.ones(1, 8, 8), r"works on images of shape \(N, C, H, W\)"),
        (torch.rand(1, 1, 8, 8) - 1, torch.ones(1, 1, 8, 8), r"works in pixel space .*\[0, 1\]"),
        (torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 7), "keep must have shape"),
        (torch.rand(1, 1, 8, 8), torch.full((1, 1, 8, 8), 1.5), r"keep must lie in \[0, 1\]"),
    ],
)
def test_bad_input(inputs, keep, match):
    rec = _Recorder()
    with pytest.raises(ValueError, match=match):
        InpaintBaseline(rec).fill(inputs, keep)
    assert rec.holes == []  # raised before any work


def test_fill_skips_revalidation_but_matches_the_checked_inpainter_call(device):
    from captum_cf.inpainters import PushPullInpainter

    x = torch.rand(3, 3, 20, 20).to(device)
    keep = (torch.rand(3, 1, 20, 20) > 0.3).float().to(device)
    inpainter = PushPullInpainter()
    expected = keep * x + (1 - keep) * inpainter(x, 1 - keep)
    assert torch.equal(InpaintBaseline(inpainter).fill(x, keep), expected)
