"""Tiny inpainting networks ``forward(image, mask)`` shared by the inpainter tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MeanFill(nn.Module):
    """Fills holes (mask == 1) with the per-channel mean of the known pixels, then adds a bias."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        known = 1 - mask
        mean = (image * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return image * known + mean * mask + self.bias
