"""Ordinal conditioning shared by conditional GANs: posterior bins, thermometer codes, norms.

A posterior ``p`` in [0, 1] is cut into ``B`` equal bins; bin ``c`` is encoded as the
thermometer (ordinal) code ``t(c) = [c > 0, c > 1, ..., c > B - 2]`` of ``B - 1`` bits, so
neighbouring bins differ in one bit and "more positive" means "more bits on". Layers that take a
condition through ``t(c)`` share parameters between neighbouring bins, which is the ordinal
prior the progressive-exaggeration generator relies on. The alternative ``"onehot"`` code
``e(c)`` of ``B`` bits (a learned per-bin embedding once multiplied by a weight matrix) gives every
bin its own parameters: no bit is shared by all bins ``>= 1``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "posterior_to_bin",
    "bin_centers",
    "thermometer",
    "one_hot_bins",
    "bin_code",
    "CODES",
    "code_size",
    "ThermometerBatchNorm2d",
]

#: names of the bin codes and their sizes for ``B`` bins
CODES = ("thermometer", "onehot")


def posterior_to_bin(posterior: Tensor, num_bins: int) -> Tensor:
    """Bin index of posteriors: ``min(floor(p * B), B - 1)``.

    Args:
        posterior (Tensor): any shape, values in [0, 1].
        num_bins (int): number of bins ``B`` (>= 2).

    Returns:
        Tensor: long, same shape, values in ``[0, B)``.

    Example:
        >>> posterior_to_bin(torch.tensor([0.0, 0.05, 0.1, 0.99, 1.0]), 10)
        tensor([0, 0, 1, 9, 9])
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    return (posterior * num_bins).floor().long().clamp(0, num_bins - 1)


def bin_centers(num_bins: int) -> Tensor:
    """Posterior at the centre of every bin: ``(c + 0.5) / B`` for ``c = 0..B-1``, shape (B,)."""
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    return (torch.arange(num_bins, dtype=torch.float32) + 0.5) / num_bins


def thermometer(bins: Tensor, num_bins: int) -> Tensor:
    """Thermometer code of bin indices: ``(N,)`` long -> ``(N, B - 1)`` float, bit k = ``c > k``.

    Example:
        >>> thermometer(torch.tensor([0, 2]), 4)
        tensor([[0., 0., 0.],
                [1., 1., 0.]])
    """
    _check_bins(bins, num_bins)
    steps = torch.arange(num_bins - 1, device=bins.device)
    return (bins.long()[:, None] > steps[None, :]).float()


def _check_bins(bins: Tensor, num_bins: int) -> None:
    """``bins`` must be an integer tensor of indices in ``[0, num_bins)``."""
    if bins.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"bins must be an integer tensor, got {bins.dtype}")
    if bins.numel() and (int(bins.min()) < 0 or int(bins.max()) >= num_bins):
        raise ValueError(f"bins must lie in [0, {num_bins}), got [{int(bins.min())}, "
                         f"{int(bins.max())}]")


def one_hot_bins(bins: Tensor, num_bins: int) -> Tensor:
    """One-hot code of bin indices: ``(N,)`` long -> ``(N, B)`` float, bit k = ``c == k``.

    Example:
        >>> one_hot_bins(torch.tensor([0, 2]), 3)
        tensor([[1., 0., 0.],
                [0., 0., 1.]])
    """
    _check_bins(bins, num_bins)
    return torch.nn.functional.one_hot(bins.long(), num_bins).float()


def code_size(code: str, num_bins: int) -> int:
    """Bits of the bin code ``code`` (``"thermometer"``: ``B - 1``, ``"onehot"``: ``B``)."""
    if code not in CODES:
        raise ValueError(f"code must be one of {CODES}, got {code!r}")
    return num_bins - 1 if code == "thermometer" else num_bins


def bin_code(bins: Tensor, num_bins: int, code: str = "thermometer") -> Tensor:
    """Code of bin indices: :func:`thermometer` (``(N, B - 1)``) or :func:`one_hot_bins`
    (``(N, B)``), by name.

    Example:
        >>> bin_code(torch.tensor([1]), 3, "onehot")
        tensor([[0., 1., 0.]])
    """
    code_size(code, num_bins)
    return thermometer(bins, num_bins) if code == "thermometer" else one_hot_bins(bins, num_bins)


class ThermometerBatchNorm2d(nn.Module):
    """Conditional batch norm whose scale and shift are linear in the thermometer code of the bin.

    ``y = (1 + t(c) @ W_gamma) * (x - mean) / sqrt(var + eps) + t(c) @ W_beta``, with
    ``W_gamma, W_beta`` of shape (B - 1, C) initialised to zero: bin ``c`` adds the offsets of
    bits ``0..c-1`` on top of bin ``c - 1``'s, so the modulation grows step by step along the
    ordinal axis (a plain per-bin embedding, :class:`~captum_cf.generative.layers.
    ConditionalBatchNorm2d`, learns each bin separately and sees few middle-bin examples).
    With ``code="onehot"`` the code is :func:`one_hot_bins` and ``W_gamma, W_beta`` have shape
    (B, C): a learned per-bin scale and shift, independent between bins (no offset shared by
    all bins ``>= 1``).

    Args:
        num_features (int): channels C.
        num_bins (int): number of bins B; ``forward`` takes bin indices in ``[0, B)``.
        code (str): ``"thermometer"`` (default) or ``"onehot"``.

    Example:
        >>> norm = ThermometerBatchNorm2d(4, num_bins=10)
        >>> norm(torch.rand(2, 4, 5, 5), torch.tensor([0, 9])).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, num_features: int, num_bins: int, code: str = "thermometer") -> None:
        super().__init__()
        size = code_size(code, num_bins)
        self.num_bins, self.code = num_bins, code
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Parameter(torch.zeros(size, num_features))
        self.beta = nn.Parameter(torch.zeros(size, num_features))
        self.base_gamma = nn.Parameter(torch.ones(num_features))
        self.base_beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor, bins: Tensor) -> Tensor:
        code = bin_code(bins, self.num_bins, self.code).to(x)
        gamma = self.base_gamma + code @ self.gamma
        beta = self.base_beta + code @ self.beta
        return gamma[:, :, None, None] * self.bn(x) + beta[:, :, None, None]
