"""``NoiseBaseline``: reproducible Gaussian noise, clamped to [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline

__all__ = ["NoiseBaseline"]


class NoiseBaseline(Baseline):
    """Reference = Gaussian noise, clamped to ``bounds``, the same on every call.

    ``reference(x) = clamp(m + std * eps, lo, hi)`` with ``eps ~ N(0, I)`` of the shape of ``x``
    and ``m = center`` (a constant) or ``m = x`` when ``center is None``. Works on any input
    ``(N, ...)``: images, tabular features, sequences.

    The default ``center=0.5`` with ``bounds=(0, 1)`` makes the reference of an image a random
    image that carries no information about ``x`` - what a baseline standing for "feature
    removed" must do. ``center=None`` gives the "Gaussian baseline" of Sturmfels, Lundberg & Lee
    (Distill 2020), noise around the input, which removes only fine detail. For standardised
    tabular features pass ``center=0.0, bounds=None`` (no clamp).

    Reproducible: every call draws ``eps`` from a fresh CPU ``torch.Generator`` seeded with
    ``seed`` (then moves it to the inputs' device), so the same inputs give the same reference on
    every call and on every device, and the global RNG is left untouched. Example ``i`` of a batch
    gets the ``i``-th slice of one draw of shape (N, ...).

    Args:
        std (float): standard deviation of the noise, >= 0.
        seed (int): seed of the generator.
        center (float or None): mean of the noise (inside ``bounds``), or None for noise around
            the input.
        bounds (tuple of two floats or None): the reference is clamped to ``[lo, hi]``; default
            ``(0.0, 1.0)``, the range of images; None: no clamp.

    Example:
        >>> x = torch.rand(2, 1, 8, 8)
        >>> b = NoiseBaseline(std=0.25, seed=0)
        >>> torch.equal(b(x), b(x))
        True
        >>> NoiseBaseline(std=1.0, center=0.0, bounds=None)(torch.randn(4, 3)).shape  # tabular
        torch.Size([4, 3])
    """

    def __init__(
        self,
        std: float = 0.25,
        seed: int = 0,
        center: float | None = 0.5,
        bounds: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        if isinstance(std, bool) or not isinstance(std, (int, float)):
            raise TypeError(f"std must be a float, got {type(std).__name__}")
        if not math.isfinite(std) or std < 0:
            raise ValueError(f"std must be a finite float >= 0, got {std}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.bounds = _check_bounds(bounds)
        if center is not None:
            if isinstance(center, bool) or not isinstance(center, (int, float)):
                got = type(center).__name__
                raise TypeError(f"center must be a float or None, got {got}")
            lo, hi = self.bounds if self.bounds is not None else (-math.inf, math.inf)
            if not math.isfinite(center) or not lo <= center <= hi:
                raise ValueError(
                    f"center must lie in bounds [{lo}, {hi}] (finite) or be None, got {center}"
                )
        self.std = float(std)
        self.seed = seed
        self.center = None if center is None else float(center)

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        eps = torch.randn(inputs.shape, generator=gen, dtype=torch.float32)
        eps = eps.to(device=inputs.device, dtype=inputs.dtype)
        mean = inputs if self.center is None else torch.full_like(inputs, self.center)
        out = mean + self.std * eps
        return out if self.bounds is None else out.clamp(*self.bounds)


def _check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    ok = (
        isinstance(bounds, (tuple, list))
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    )
    if not ok:
        raise TypeError(f"bounds must be a pair of floats (lo, hi) or None, got {bounds!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"bounds must be finite with lo <= hi, got {bounds!r}")
    return lo, hi
