"""Shared data of the training tests."""

from __future__ import annotations

import torch


def u8_images(n: int = 24, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` one-channel ``uint8`` images of three classes (dark, top half bright, bottom half
    bright) and their labels ``arange(n) % 3``."""
    labels = torch.arange(n) % 3
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 80, (n, 1, size, size), generator=g, dtype=torch.uint8)
    images[labels == 1, :, : size // 2] += 150
    images[labels == 2, :, size // 2 :] += 150
    return images, labels
