"""``BlurBaseline`` and the functional ``gaussian_blur``: a Gaussian-blurred copy of the input."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf._validation import check_images
from captum_cf.baselines.base import Baseline

__all__ = ["BlurBaseline", "gaussian_blur"]


def gaussian_blur(images: Tensor, sigma: float, kernel_size: int | None = None) -> Tensor:
    """Separable Gaussian blur with reflect padding (borders keep their brightness).

    ``out = images * g_y * g_x`` with ``g(t) ∝ exp(-t^2 / (2 sigma^2))`` for ``|t| <= r``,
    normalised to sum 1, applied as two depthwise 1-d convolutions. The default radius is
    ``r = ceil(3 sigma)`` (``kernel_size = 2 r + 1``). Padding reflects the image, so a constant
    image stays exactly that constant, borders included (zero padding would darken them).

    Images smaller than the kernel: reflect padding needs ``r <= size - 1``, so the radius is
    clamped per axis to ``H - 1`` and ``W - 1`` and the truncated kernel is renormalised (a
    1-pixel-high image is not blurred vertically). Differentiable in ``images``.

    Args:
        images (Tensor): shape (N, C, H, W), any finite values.
        sigma (float): standard deviation in pixels, > 0.
        kernel_size (int, optional): odd kernel size; default ``2 * ceil(3 sigma) + 1``.

    Returns:
        Tensor: shape (N, C, H, W), same dtype and device, within the range of ``images``.

    Example:
        >>> x = torch.full((1, 3, 5, 5), 0.3)
        >>> torch.allclose(gaussian_blur(x, sigma=4.0), x)
        True
    """
    check_images(images, "images", unit_range=False)
    radius = _radius(sigma, kernel_size)
    n, c, h, w = images.shape
    ry, rx = min(radius, h - 1), min(radius, w - 1)
    out = images.reshape(n * c, 1, h, w)
    if ry > 0:
        ky = _kernel(sigma, ry, images).view(1, 1, -1, 1)
        out = F.conv2d(F.pad(out, (0, 0, ry, ry), mode="reflect"), ky)
    if rx > 0:
        kx = _kernel(sigma, rx, images).view(1, 1, 1, -1)
        out = F.conv2d(F.pad(out, (rx, rx, 0, 0), mode="reflect"), kx)
    return out.reshape(n, c, h, w)


class BlurBaseline(Baseline):
    """Reference = the input blurred by a Gaussian: removes fine detail, keeps coarse colour.

    An image baseline: inputs must be (N, C, H, W) (any other shape gets a ValueError); values
    need not lie in [0, 1] (a blur is linear, it needs no pixel-space model).

    Used as the "blur" perturbation of Meaningful Perturbation (Fong & Vedaldi, ICCV 2017).
    ``fill(x, keep) = keep * x + (1 - keep) * gaussian_blur(x, sigma)``. See
    :func:`gaussian_blur` for the padding and small-image behaviour.

    Args:
        sigma (float): standard deviation of the Gaussian in pixels, > 0.
        kernel_size (int, optional): odd kernel size; default ``2 * ceil(3 sigma) + 1``.

    Example:
        >>> x = torch.rand(2, 1, 32, 32)
        >>> ref = BlurBaseline(sigma=3.0)(x)
        >>> ref.shape
        torch.Size([2, 1, 32, 32])
    """

    input_kind = "images"

    def __init__(self, sigma: float, kernel_size: int | None = None) -> None:
        _radius(sigma, kernel_size)  # validate now, not at the first call
        self.sigma = float(sigma)
        self.kernel_size = kernel_size

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return gaussian_blur(inputs, self.sigma, self.kernel_size)


def _radius(sigma: float, kernel_size: int | None) -> int:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"sigma must be a positive float, got {type(sigma).__name__}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive finite float, got {sigma}")
    if kernel_size is None:
        return max(1, math.ceil(3.0 * sigma))
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an odd int, got {type(kernel_size).__name__}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    return kernel_size // 2


def _kernel(sigma: float, radius: int, like: Tensor) -> Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(device=like.device, dtype=like.dtype)
