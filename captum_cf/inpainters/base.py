"""The ``Inpainter`` protocol: fill holes in images from their context."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from captum_cf._validation import check_images, check_keep

__all__ = ["Inpainter"]


class Inpainter(nn.Module):
    """Base class of inpainters: ``forward(images, hole) -> images``.

    Args of ``forward``:
        images (Tensor): shape (N, C, H, W), in [0, 1].
        hole (Tensor): shape (N, 1, H, W) or broadcastable with the same number of dimensions,
            in [0, 1], 1 = pixel to fill, 0 = known context (the complement of a keep mask).

    Returns:
        Tensor: shape (N, C, H, W), in [0, 1]. Inpainters are free to change known pixels
        (many networks do); :class:`captum_cf.baselines.InpaintBaseline` composites the result so
        that kept pixels are returned exactly.

    Subclasses implement :meth:`_inpaint` on validated tensors.
    """

    def forward(self, images: Tensor, hole: Tensor) -> Tensor:  # noqa: D102
        check_images(images, "images")
        hole = check_keep(hole, images, name="hole")
        return self._inpaint(images, hole)

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        raise NotImplementedError
