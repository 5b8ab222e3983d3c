"""``InpaintBaseline``: removed pixels are inpainted from the kept context."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline
from captum_cf.inpainters.base import Inpainter

__all__ = ["InpaintBaseline"]

#: pixels (images x H x W) per inpainter call of :meth:`InpaintBaseline.reference` when
#: ``batch_size`` is not set: a reference inpaints every image 16 times (4 with ``blend=False``),
#: so a batch is done a chunk of images at a time (5 images at 224 px, 256 at 32 px)
REFERENCE_PIXELS = 2**22


class InpaintBaseline(Baseline):
    """Counterfactual content from an inpainter (Agarwal & Nguyen, ACCV 2020).

    An image baseline in pixel space: inputs are images (N, C, H, W) in [0, 1], what inpainters
    are built and trained for (see :func:`~captum_cf.baselines.noisy_inputs` for noisy copies).

    **fill**: ``fill(x, keep) = keep * x + (1 - keep) * inpainter(x, hole=1 - keep)``: the removed
    region is inpainted from the kept context, and kept pixels are returned exactly (the composite
    also discards whatever the inpainter did to known pixels).

    **reference** (the full counterfactual that IG / DeepLift need): an image that is all hole
    has no context to inpaint from, so every pixel is instead inpainted from its surroundings.
    The image is cut into a grid of ``patch x patch`` cells, coloured like a 2x2 checkerboard by
    ``(row % 2, col % 2)``; in each of the 4 passes one colour class is the hole and the three
    others are context, so every pixel is replaced by content inferred from pixels at most about
    ``patch`` away (its cell's neighbours), never from itself; each pixel takes the pass in which
    it was hole. The passes go to the inpainter as batches of at most ``batch_size`` images (by
    default :data:`REFERENCE_PIXELS` pixels): a large batch is done a chunk of images at a time,
    with the same result. Small ``patch`` keeps the reference close to the input (fine detail
    removed), large ``patch`` removes larger structures.

    A single grid leaves seams: across a cell border, each side was inpainted from the other
    side's content, so the reference of a large image shows the grid as tiles. With ``blend``
    (the default) the reference is computed on 4 grids shifted by half a cell
    (offsets ``(0, 0), (0, p/2), (p/2, 0), (p/2, p/2)``) and blended with the separable
    weights ``a_i(y) b_j(x)``, ``a_i(y) = sin^2(pi (y + 1/2 + o_i) / p)``: each grid's weight is
    zero on its own cell borders, so the result is continuous (the weights are normalised to
    sum to 1). This costs 16 inpainter passes instead of 4; ``blend=False`` gives the single grid.

    Args:
        inpainter (callable): ``inpainter(images, hole) -> images``, e.g. an
            :class:`captum_cf.inpainters.Inpainter`; ``hole`` is (N, 1, H, W) when the keep mask
            is the same for all channels, else (N, C, H, W); 1 = pixel to fill.
        patch (int, optional): cell size of the reference's grid in pixels; default
            ``max(1, ceil(min(H, W) / 4))`` (a 4x4 grid). The grid needs at least 2 cells along
            one axis.
        batch_size (int, optional): most images per inpainter call; default: all in one call
            for ``fill``, :data:`REFERENCE_PIXELS` pixels for ``reference`` (its 16 passes per
            image).
        blend (bool): blend 4 half-cell-shifted grids (no seams); False: one grid (4 passes).

    Example:
        >>> from captum_cf.inpainters import PushPullInpainter
        >>> x = torch.rand(2, 3, 32, 32)
        >>> keep = torch.ones(2, 1, 32, 32); keep[..., 8:16, 8:16] = 0
        >>> out = InpaintBaseline(PushPullInpainter()).fill(x, keep)
        >>> torch.equal(out[..., 16:, :], x[..., 16:, :])
        True
    """

    input_kind = "images"
    pixel_space = True

    def __init__(
        self,
        inpainter: Callable[[Tensor, Tensor], Tensor],
        patch: int | None = None,
        batch_size: int | None = None,
        blend: bool = True,
    ) -> None:
        if not callable(inpainter):
            got = type(inpainter).__name__
            raise TypeError(f"inpainter must be callable (images, hole) -> images, got {got}")
        _check_positive_int(patch, "patch")
        _check_positive_int(batch_size, "batch_size")
        self.inpainter = inpainter
        self.patch = patch
        self.batch_size = batch_size
        if not isinstance(blend, bool):
            raise TypeError(f"blend must be a bool, got {type(blend).__name__}")
        self.blend = blend

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        # check_keep returns an expanded view: stride 0 means one mask for all channels
        single = keep.shape[1] == 1 or keep.stride(1) == 0
        hole = 1 - (keep[:, :1] if single else keep)
        filled = self._inpaint(inputs, hole)
        return keep * inputs + (1 - keep) * filled

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        n, _, h, w = inputs.shape
        patch = self._patch_for(h, w)
        offsets = [0, patch // 2] if self.blend and patch > 1 else [0]
        grids = [(oy, ox) for oy in offsets for ox in offsets]
        # (G * 4, 1, H, W): for each grid, its 4 checkerboard classes
        classes = torch.cat([_checkerboard_classes(h, w, patch, inputs, o) for o in grids])
        passes = classes.shape[0]
        # each image is inpainted ``passes`` times: a chunk of images at a time, so that one
        # chunk's copies stay within ``batch_size`` (default: REFERENCE_PIXELS pixels), not
        # 16 copies of the whole batch at once (41 images at 224 px: 2 GB more at the peak)
        per_call = self.batch_size or max(1, REFERENCE_PIXELS // (h * w))
        chunk = max(1, per_call // passes)
        if n > chunk:
            return torch.cat([
                self._grid_reference(inputs[i : i + chunk], classes, grids, patch)
                for i in range(0, n, chunk)
            ])
        return self._grid_reference(inputs, classes, grids, patch)

    def _grid_reference(
        self, inputs: Tensor, classes: Tensor, grids: list[tuple[int, int]], patch: int
    ) -> Tensor:
        """The reference of ``inputs`` from the checkerboard ``classes`` of every grid."""
        n, _, h, w = inputs.shape
        passes = classes.shape[0]
        images = inputs.repeat(passes, 1, 1, 1)
        holes = classes.repeat_interleave(n, dim=0)
        filled = self._inpaint(images, holes).view(passes, n, *inputs.shape[1:])
        per_grid = (filled * classes.unsqueeze(1)).view(len(grids), 4, n, *inputs.shape[1:]).sum(1)
        if len(grids) == 1:
            return per_grid[0]
        weights = torch.stack([_seam_weight(h, w, patch, inputs, o) for o in grids])
        weights = (weights / weights.sum(0, keepdim=True)).unsqueeze(1)  # (G, 1, 1, H, W)
        # written as grid 0 plus weighted differences, so grids that agree (a constant or an
        # identity inpainter) give their common value exactly, without rounding
        return per_grid[0] + (weights[1:] * (per_grid[1:] - per_grid[0])).sum(0)

    def _patch_for(self, h: int, w: int) -> int:
        patch = self.patch if self.patch is not None else max(1, math.ceil(min(h, w) / 4))
        if patch >= h and patch >= w:
            raise ValueError(
                f"patch={patch} leaves a single cell on an image of {h}x{w}: reference() needs a "
                f"grid of at least 2 cells along one axis (patch < {max(h, w)})"
            )
        return patch

    def _unchecked_call(self) -> Callable[[Tensor, Tensor], Tensor]:
        # Baseline.fill/reference validated the images and built the hole itself, so an
        # Inpainter's own checks (two full reductions per call) would only repeat them; on hot
        # paths such as Occlusion they cost ~10 % of a small model's forward pass. Module hooks
        # registered on the inpainter are skipped along with forward().
        if (
            isinstance(self.inpainter, Inpainter)
            and type(self.inpainter).forward is Inpainter.forward
        ):
            return self.inpainter._inpaint
        return self.inpainter

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        size = self.batch_size or images.shape[0]
        call = self._unchecked_call()
        parts = [
            call(images[i : i + size], hole[i : i + size])
            for i in range(0, images.shape[0], size)
        ]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        if not isinstance(out, Tensor) or out.shape != images.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"inpainter must return images of shape {tuple(images.shape)}, got {got}"
            )
        return out.to(images.dtype).clamp(0.0, 1.0)

    def __repr__(self) -> str:
        args = f"{self.inpainter!r}, patch={self.patch}, batch_size={self.batch_size}"
        args += "" if self.blend else ", blend=False"
        return f"InpaintBaseline({args})"


def _checkerboard_classes(
    h: int, w: int, patch: int, like: Tensor, offset: tuple[int, int] = (0, 0)
) -> Tensor:
    """One-hot (4, 1, H, W) masks of the 4 colour classes ``(row % 2) * 2 + col % 2`` of cells;
    the grid's cells start ``offset`` pixels before the image's top-left corner."""
    rows = ((torch.arange(h, device=like.device) + offset[0]) // patch) % 2
    cols = ((torch.arange(w, device=like.device) + offset[1]) // patch) % 2
    colour = rows[:, None] * 2 + cols[None, :]
    return torch.stack([colour == c for c in range(4)]).unsqueeze(1).to(like.dtype)


def _seam_weight(h: int, w: int, patch: int, like: Tensor, offset: tuple[int, int]) -> Tensor:
    """(1, H, W) weight of a grid: ``sin^2`` of the pixel centre's phase in its cell, per axis,
    so it vanishes on the grid's cell borders and peaks at cell centres."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5 + offset[0]
    xs = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5 + offset[1]
    a = torch.sin(torch.pi * ys / patch) ** 2
    b = torch.sin(torch.pi * xs / patch) ** 2
    return (a[:, None] * b[None, :]).unsqueeze(0)


def _check_positive_int(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value}")
