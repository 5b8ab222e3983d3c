"""Inpaint small holes on a window around them instead of the whole image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: solve on windows only when they hold at most this share of the image's pixels
_MAX_SHARE = 0.5


def check_context(context: int | None) -> int | None:
    """``context`` of :func:`inpaint_locally`: a positive int or None, else a ValueError."""
    if context is not None and (isinstance(context, bool) or not isinstance(context, int)
                                or context < 1):
        raise ValueError(f"context must be a positive int or None, got {context!r}")
    return context


def inpaint_locally(
    fn: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    hole: Tensor,
    context: int | None,
    multiple: int = 1,
) -> Tensor:
    """``fn(images, hole)``, computed on a window around each image's hole when that is small.

    Every image's window is the bounding box of its hole (``hole > 0``) grown by ``context``
    pixels per side; one window size ``S`` serves the whole batch (the largest, rounded up to
    ``multiple``), placed around each box and shifted to lie inside the image. When the windows
    hold at most half of the image, ``fn`` runs on the ``(N, C, S, S)`` crops and its output is
    written back into a copy of ``images``; pixels outside the windows are returned unchanged
    (they are not hole, so an inpainter that composites leaves them as they are anyway).
    Otherwise, and when ``context`` is ``None``, it is ``fn(images, hole)``.
    Differentiable in ``images`` and ``hole`` (gather and scatter by indexing).

    Args:
        fn: ``fn(images, hole) -> images``, the inpainter's full-image computation.
        images (Tensor): (N, C, H, W).
        hole (Tensor): (N, 1 or C, H, W) (expanded views are fine), 1 = hole.
        context (int, optional): context pixels around each hole's box.
        multiple (int): the window side is a multiple of this (e.g. a U-Net's 8).
    """
    if context is None:
        return fn(images, hole)
    n, _, height, width = images.shape
    window = _window(hole.amax(1) > 0, context, multiple, height, width)
    if window is None:
        return fn(images, hole)
    size, top, left = window
    rows = top[:, None] + torch.arange(size, device=images.device)  # (N, S)
    cols = left[:, None] + torch.arange(size, device=images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    index = (batch, slice(None), rows[:, :, None], cols[:, None, :])
    # advanced indexing puts the indexed dims first: (N, S, S, C) -> (N, C, S, S)
    crops = images[index].permute(0, 3, 1, 2)
    holes = hole.expand(n, hole.shape[1], height, width)[index].permute(0, 3, 1, 2)
    out = images.clone()
    out[index] = fn(crops, holes).permute(0, 2, 3, 1).to(out.dtype)
    return out


def _window(mask: Tensor, context: int, multiple: int, height: int, width: int
            ) -> tuple[int, Tensor, Tensor] | None:
    """``(S, top, left)`` of the windows around each mask's box, or None when too large."""
    any_rows, any_cols = mask.any(2), mask.any(1)  # (N, H), (N, W)
    has_hole = any_rows.any(1)
    if not bool(has_hole.any()):
        return None
    r = torch.arange(height, device=mask.device)
    c = torch.arange(width, device=mask.device)
    big = max(height, width)
    r0 = torch.where(any_rows, r, big).amin(1)
    r1 = torch.where(any_rows, r, -1).amax(1) + 1
    c0 = torch.where(any_cols, c, big).amin(1)
    c1 = torch.where(any_cols, c, -1).amax(1) + 1
    extent = torch.maximum(r1 - r0, c1 - c0).masked_fill(~has_hole, 0)
    size = int(extent.max()) + 2 * context
    size = -(-size // multiple) * multiple
    if size > min(height, width) or size * size > _MAX_SHARE * height * width:
        return None
    centre_r = torch.where(has_hole, (r0 + r1) // 2, height // 2)
    centre_c = torch.where(has_hole, (c0 + c1) // 2, width // 2)
    top = (centre_r - size // 2).clamp(0, height - size)
    left = (centre_c - size // 2).clamp(0, width - size)
    return size, top, left
