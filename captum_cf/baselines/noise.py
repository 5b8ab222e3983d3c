"""``NoiseBaseline``: reproducible Gaussian noise, clamped to [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline

__all__ = ["NoiseBaseline"]


class NoiseBaseline(Baseline):
    """Reference = Gaussian noise, clamped to [0, 1], the same on every call.

    ``reference(x) = clamp(m + std * eps, 0, 1)`` with ``eps ~ N(0, I)`` of shape (N, C, H, W)
    and ``m = center`` (a constant image) or ``m = x`` when ``center is None``.

    The default ``center=0.5`` makes the reference a random image that carries no information
    about ``x`` - what a baseline standing for "feature removed" must do. ``center=None`` gives
    the "Gaussian baseline" of Sturmfels, Lundberg & Lee (Distill 2020), noise around the input,
    which removes only fine detail.

    Reproducible: every call draws ``eps`` from a fresh CPU ``torch.Generator`` seeded with
    ``seed`` (then moves it to the inputs' device), so the same inputs give the same reference on
    every call and on every device, and the global RNG is left untouched. Image ``i`` of a batch
    gets the ``i``-th slice of one draw of shape (N, C, H, W).

    Args:
        std (float): standard deviation of the noise, >= 0.
        seed (int): seed of the generator.
        center (float or None): mean of the noise in [0, 1], or None for noise around the input.

    Example:
        >>> x = torch.rand(2, 1, 8, 8)
        >>> b = NoiseBaseline(std=0.25, seed=0)
        >>> torch.equal(b(x), b(x))
        True
    """

    def __init__(self, std: float = 0.25, seed: int = 0, center: float | None = 0.5) -> None:
        if isinstance(std, bool) or not isinstance(std, (int, float)):
            raise TypeError(f"std must be a float, got {type(std).__name__}")
        if not math.isfinite(std) or std < 0:
            raise ValueError(f"std must be a finite float >= 0, got {std}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if center is not None:
            if isinstance(center, bool) or not isinstance(center, (int, float)):
                got = type(center).__name__
                raise TypeError(f"center must be a float in [0, 1] or None, got {got}")
            if not 0.0 <= center <= 1.0:
                raise ValueError(f"center must lie in [0, 1] or be None, got {center}")
        self.std = float(std)
        self.seed = seed
        self.center = None if center is None else float(center)

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        eps = torch.randn(inputs.shape, generator=gen, dtype=torch.float32)
        eps = eps.to(device=inputs.device, dtype=inputs.dtype)
        mean = inputs if self.center is None else torch.full_like(inputs, self.center)
        return (mean + self.std * eps).clamp(0.0, 1.0)
