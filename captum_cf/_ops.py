"""Small tensor operations whose backward pass is deterministic on every device.

On CUDA, the backward kernels of ``F.interpolate(mode="bilinear")`` and of replicate padding add
into their gradients atomically: two identical calls give gradients that differ in the last
bits, an optimisation seeded the same way drifts apart, and under
``torch.use_deterministic_algorithms(True)`` they raise. The operations here give the same
values (up to float rounding for the resize) from backward passes that are matrix products,
slices and sums, so Meaningful Perturbation's masks and the learned inpainter's training are
reproducible on a GPU as they are on the CPU.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bilinear_resize", "shift_replicate"]


def bilinear_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` of an (N, C, H, W) tensor.

    On the CPU, or when no gradient will be taken, it is ``F.interpolate`` itself; on another
    device, with autograd recording, the same interpolation as two matrix products (one per
    axis), whose backward pass is deterministic.
    """
    if x.device.type == "cpu" or not (torch.is_grad_enabled() and x.requires_grad):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    rows = _bilinear_matrix(x.shape[-2], size[0], x.dtype, x.device)
    cols = _bilinear_matrix(x.shape[-1], size[1], x.dtype, x.device)
    # in the input's own precision, as F.interpolate (autocast would run the products in bf16)
    quiet = torch.autocast("cuda", enabled=False) if x.is_cuda else contextlib.nullcontext()
    with quiet:
        return torch.matmul(torch.matmul(rows, x), cols.t())


def _bilinear_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n_out, n_in) weights of PyTorch's bilinear resize along one axis (half-pixel centres)."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0.0)
    low = src.floor().long().clamp_max(n_in - 1)
    high = (low + 1).clamp_max(n_in - 1)
    frac = src - low
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    out = torch.arange(n_out)
    weights.index_put_((out, low), 1.0 - frac, accumulate=True)
    weights.index_put_((out, high), frac, accumulate=True)
    return weights.to(device=device, dtype=dtype)


def shift_replicate(images: Tensor, dy: int, dx: int) -> Tensor:
    """Translate (..., H, W) images by (dy, dx) pixels, the uncovered border replicated.

    ``out[..., i, j] = images[..., clamp(i - dy), clamp(j - dx)]``: what replicate padding and a
    crop give, from slices, an expanded edge and a concatenation (no padding kernel).
    """
    return _shift_axis(_shift_axis(images, dy, images.dim() - 2), dx, images.dim() - 1)


def _shift_axis(x: Tensor, d: int, dim: int) -> Tensor:
    n = x.shape[dim]
    d = max(-n, min(n, d))
    if d == 0:
        return x
    if d > 0:
        edge = x.narrow(dim, 0, 1)
        kept = x.narrow(dim, 0, n - d)
        return torch.cat([edge.expand_as(x.narrow(dim, 0, d)), kept], dim)
    d = -d
    edge = x.narrow(dim, n - 1, 1)
    kept = x.narrow(dim, d, n - d)
    return torch.cat([kept, edge.expand_as(x.narrow(dim, 0, d))], dim)
