"""``PushPullInpainter``: multi-scale normalised convolution (push-pull), no weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.inpainters.base import Inpainter

__all__ = ["PushPullInpainter"]


class PushPullInpainter(Inpainter):
    """Fill holes by pulling known pixels up a pyramid and pushing the estimates back down.

    The push-pull algorithm of Gortler et al. (The Lumigraph, SIGGRAPH 1996), a multi-scale
    normalised convolution. With ``w_0 = 1 - hole`` (confidence of each pixel) and ``v_0 = x``:

    - **pull** (2x2 blocks ``B(i)``, zero weight outside the image):
      ``w_{l+1}(i) = sum_{k in B(i)} min(w_l(k), 1)`` and
      ``v_{l+1}(i) = sum_{k in B(i)} min(w_l(k), 1) v_l(k) / w_{l+1}(i)``,
      until the coarsest level (1x1 by default);
    - at the coarsest level, pixels without information fall back to a constant:
      ``u_L = c v_L + (1 - c) * fallback`` with ``c = min(w_L, 1)``;
    - **push** (bilinear upsampling ``up``): ``u_l = c_l v_l + (1 - c_l) up(u_{l+1})`` with
      ``c_l = min(w_l, 1)``: coarse estimates fill only where the finer level lacks confidence.

    The output is ``u_0``. Where ``hole == 0`` it is ``x`` exactly; soft holes (``0 < hole < 1``)
    blend the pixel with its estimate from the surroundings. Every step is a convex combination,
    so the output stays in [0, 1]; divisions are guarded (``eps``), so it never produces NaN. An
    image that is entirely hole carries no information and becomes ``fallback`` everywhere.
    Batched, differentiable in ``images`` and ``hole``, O(H W), works for any size.

    Args:
        levels (int, optional): number of pull steps; default ``ceil(log2(max(H, W)))`` (down to
            1x1). Fewer levels limit how far information travels (about ``2**levels`` pixels);
            beyond that, holes get ``fallback``.
        fallback (float): value in [0, 1] for pixels with no known pixel in reach (default 0.5,
            mid-grey: with no information, the value that is least far from any pixel value).
        eps (float): guard for the normalisation by the pooled weights.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> hole = torch.zeros(2, 1, 32, 32); hole[..., 8:24, 8:24] = 1
        >>> out = PushPullInpainter()(x, hole)
        >>> torch.equal(out[..., :8, :], x[..., :8, :])
        True
    """

    def __init__(self, levels: int | None = None, fallback: float = 0.5, eps: float = 1e-8) -> None:
        super().__init__()
        if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)):
            raise TypeError(f"levels must be an int or None, got {type(levels).__name__}")
        if levels is not None and levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        if isinstance(fallback, bool) or not isinstance(fallback, (int, float)):
            raise TypeError(f"fallback must be a float in [0, 1], got {type(fallback).__name__}")
        if not 0.0 <= fallback <= 1.0:
            raise ValueError(f"fallback must lie in [0, 1], got {fallback}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.levels = levels
        self.fallback = float(fallback)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, fallback={self.fallback}"

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        if hole.shape[1] > 1 and hole.stride(1) == 0:
            hole = hole[:, :1]  # one mask for all channels: build its pyramid once
        h, w = images.shape[-2:]
        levels = self.levels if self.levels is not None else math.ceil(math.log2(max(h, w, 2)))
        weight = 1 - hole
        pyramid = [(images, weight)]
        for _ in range(levels):
            pyramid.append(_pull(*pyramid[-1], self.eps))
        value, weight = pyramid[-1]
        conf = weight.clamp(max=1.0)
        out = conf * value + (1 - conf) * self.fallback
        for value, weight in reversed(pyramid[:-1]):
            conf = weight.clamp(max=1.0)
            out = conf * value + (1 - conf) * _push(out, value.shape[-2:])
        return out.clamp(0.0, 1.0)


def _pull(value: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """One coarser level: 2x2 sums of clamped weights and weighted values (odd sizes padded)."""
    h, w = value.shape[-2:]
    pad = (0, w % 2, 0, h % 2)
    conf = F.pad(weight.clamp(max=1.0), pad)
    weighted = F.pad(conf[..., :h, :w] * value, pad)
    w_sum = F.avg_pool2d(conf, 2) * 4
    v_sum = F.avg_pool2d(weighted, 2) * 4
    return v_sum / w_sum.clamp(min=eps), w_sum


def _push(coarse: Tensor, size: torch.Size) -> Tensor:
    """Bilinear 2x upsampling of ``coarse`` cropped to the finer level's ``size``."""
    up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]]
