"""Structural similarity (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004), in torch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.metrics._common import higher_is_better

__all__ = ["ssim"]


@higher_is_better(True)
def ssim(
    a: Tensor,
    b: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    r"""Mean SSIM per example, with a Gaussian window.

    .. math:: \mathrm{SSIM}(a, b) = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
        {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},\quad
        C_i = (k_i L)^2,

    with local statistics from a normalised Gaussian window, averaged over the positions where
    the window fits inside the image and over channels. With the defaults this equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``.

    Args:
        a (Tensor): shape (N, C, H, W) or (N, H, W), N >= 1, floating point, finite.
        b (Tensor): same shape as ``a``.
        data_range (float): L > 0, the dynamic range of the values (1 for images in [0, 1]).
        window_size (int): odd side of the Gaussian window; H and W must be at least this.
        sigma (float): standard deviation of the window, > 0.
        k1 (float): stabiliser of the luminance term, > 0.
        k2 (float): stabiliser of the contrast-structure term, > 0.

    Returns:
        Tensor: shape (N,), float32 (float64 for float64 inputs), at most 1, 1 when ``a == b``.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.])
    """
    a4, b4 = _check_pair(a, b, window_size)
    for name, value in (("data_range", data_range), ("sigma", sigma), ("k1", k1), ("k2", k2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    # float64 inside: var = E[x^2] - E[x]^2 cancels badly in float32 on flat regions
    out_dtype = torch.promote_types(a4.dtype, torch.float32)
    dtype = torch.float64 if a4.device.type != "mps" else torch.float32
    a4, b4 = a4.to(dtype), b4.to(dtype)
    channels = a4.shape[1]
    g = _gaussian(window_size, sigma, a4.device, dtype)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window_size, window_size)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=channels)

    mu_a, mu_b = blur(a4), blur(b4)
    var_a = blur(a4 * a4) - mu_a**2
    var_b = blur(b4 * b4) - mu_b**2
    cov = blur(a4 * b4) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(dim=1).to(out_dtype)


def _gaussian(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _check_pair(a: Any, b: Any, window_size: int) -> tuple[Tensor, Tensor]:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W) or (N, H, W)")
        if t.dim() not in (3, 4):
            raise ValueError(
                f"{name} must have shape (N, C, H, W) or (N, H, W), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            # integer images (0..255) are not in the [0, 1] of data_range=1: convert explicitly
            raise TypeError(
                f"{name} must be a floating-point tensor, got dtype {t.dtype} (for 8-bit images "
                f"pass {name}.float() / 255)"
            )
        if t.numel() == 0:
            raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if (
        isinstance(window_size, bool)
        or not isinstance(window_size, int)
        or window_size < 1
        or window_size % 2 == 0
    ):
        raise ValueError(f"window_size must be a positive odd int, got {window_size!r}")
    if min(a.shape[-2:]) < window_size:
        raise ValueError(
            f"a and b must be at least window_size={window_size} pixels on each side, got "
            f"{tuple(a.shape[-2:])}; pass a smaller window_size"
        )
    if a.dim() == 3:
        a, b = a[:, None], b[:, None]
    return a, b
