"""``NoisyLinearImputation``: ROAD's removal, each removed pixel from its neighbours plus noise."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline
from captum_cf.inpainters.biharmonic import _conjugate_gradients

__all__ = ["NoisyLinearImputation"]



class NoisyLinearImputation(Baseline):
    r"""ROAD's noisy linear imputation (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022).

    Every removed pixel becomes the weighted average of its eight neighbours (weight 1/6 for the
    edge neighbours, 1/12 for the diagonal ones, neighbours outside the image left out), where a
    neighbour that is itself removed enters with its own imputed value. The removed pixels ``u``
    of an image therefore solve one sparse linear system per channel,

    .. math:: s_i\, u_i - \sum_{j \in N(i),\ j\ \mathrm{removed}} w_{ij} u_j
        = \sum_{j \in N(i),\ j\ \mathrm{kept}} w_{ij} x_j, \qquad s_i = \sum_{j \in N(i)} w_{ij},

    and Gaussian noise of standard deviation ``noise`` is added to the solution (ROAD's default
    0.01, in the [0, 1] pixel scale), so that the boundary of the removed region carries no
    information a model could read. The result is clamped to [0, 1].

    The system matrix is a weighted graph Laplacian restricted to the removed pixels: symmetric
    and positive definite whenever the image keeps at least one pixel (the pixel grid is
    connected). It is solved in torch for the whole batch at once, by conjugate gradients on
    the input's device, started from a push-pull fill, until the root-mean-square residual
    falls below ``tol`` (or ``max_iter`` steps). An image with every pixel removed has no
    information left and becomes grey 0.5 (plus noise); that is :meth:`reference`.

    ``keep`` may be soft: pixels with ``keep < 1`` (in any channel) are imputed, and the output
    is ``keep * x + (1 - keep) * (u + noise)``, so kept pixels come back exactly.

    Reproducible: the noise is drawn from a fresh CPU ``torch.Generator`` seeded with ``seed`` on
    every call (shape of the inputs, then moved to their device); the global RNG is untouched.
    Image ``i`` of a batch gets the ``i``-th slice of that draw, so the same image at another
    position of a batch gets other (equally distributed) noise.

    Args:
        noise (float): standard deviation of the Gaussian noise on imputed pixels, >= 0
            (ROAD: 0.01).
        seed (int): seed of the noise generator.
        tol (float): stop when every image's root-mean-square residual is below this, > 0.
        max_iter (int, optional): at most this many CG steps; default ``4 * (H + W)``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> keep = torch.ones(2, 1, 16, 16); keep[..., 4:12, 4:12] = 0
        >>> out = NoisyLinearImputation(noise=0.0).fill(x, keep)
        >>> bool(torch.equal(out[..., :4, :], x[..., :4, :]))  # kept pixels are untouched
        True
    """

    def __init__(
        self, noise: float = 0.01, seed: int = 0, tol: float = 1e-6, max_iter: int | None = None
    ) -> None:
        if isinstance(noise, bool) or not isinstance(noise, (int, float)):
            raise TypeError(f"noise must be a float >= 0, got {type(noise).__name__}")
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite float >= 0, got {noise}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise ValueError(f"tol must be a float > 0, got {tol!r}")
        if max_iter is not None and (
            isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1
        ):
            raise ValueError(f"max_iter must be a positive int or None, got {max_iter!r}")
        self.noise = float(noise)
        self.seed = seed
        self.tol = float(tol)
        self.max_iter = max_iter

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        _check_image_batch(inputs)
        grey = torch.full_like(inputs, 0.5)
        return (grey + self._noise_like(inputs)).clamp(0.0, 1.0)

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        _check_image_batch(inputs)
        removed = (keep < 1).any(dim=1, keepdim=True)
        solved = self._impute(inputs, removed)
        filled = solved + self._noise_like(inputs)
        return keep * inputs + (1 - keep) * filled.clamp(0.0, 1.0)

    def _impute(self, inputs: Tensor, removed: Tensor) -> Tensor:
        """The noiseless linear imputation: the solution of the system above, no noise, no clamp.

        Args:
            inputs (Tensor): images, shape (N, C, H, W).
            removed (Tensor): bool, shape (N, 1, H, W), True = impute this pixel.

        Returns:
            Tensor: shape (N, C, H, W); equals ``inputs`` where ``removed`` is False.
        """
        from captum_cf.inpainters.push_pull import PushPullInpainter

        free = removed.to(inputs.dtype)
        h, w = inputs.shape[-2:]
        total = _neighbour_sum(torch.ones_like(inputs[:1, :1]))

        def laplacian(u: Tensor) -> Tensor:  # positive semi-definite: s_i u_i - sum_j w_ij u_j
            return total * u - _neighbour_sum(u)

        start = PushPullInpainter()._inpaint(inputs, free)
        start = torch.where(removed, start, inputs)
        steps = self.max_iter if self.max_iter is not None else 4 * (h + w)
        solved = _conjugate_gradients(start, free, steps, operator=laplacian, tol=self.tol)
        nothing_kept = removed.flatten(1).all(dim=1).view(-1, 1, 1, 1)
        return torch.where(nothing_kept, torch.full_like(solved, 0.5), solved)

    def _noise_like(self, inputs: Tensor) -> Tensor:
        if self.noise == 0:
            return torch.zeros_like(inputs)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        eps = torch.randn(inputs.shape, generator=gen, dtype=torch.float32)
        return self.noise * eps.to(device=inputs.device, dtype=inputs.dtype)


def _neighbour_sum(u: Tensor) -> Tensor:
    """``sum_j w_ij u_j`` over the 8 neighbours inside the image, (N, C, H, W).

    ROAD's weights are separable: ``[1, 2, 1]^T [1, 2, 1] / 12`` minus the centre's ``4 / 12``;
    two 3-tap passes of shifted in-place adds (the border rows/columns get no neighbour from
    outside) are much faster than a depthwise conv, and than padded copies, on a CPU.
    """
    v = 2 * u
    v[..., 1:, :] += u[..., :-1, :]
    v[..., :-1, :] += u[..., 1:, :]
    out = 2 * v
    out[..., 1:] += v[..., :-1]
    out[..., :-1] += v[..., 1:]
    return out.sub_(u, alpha=4).div_(12)


def _check_image_batch(inputs: Tensor) -> None:
    if inputs.dim() != 4:
        raise ValueError(
            f"inputs must be images of shape (N, C, H, W) for noisy linear imputation, "
            f"got {tuple(inputs.shape)}"
        )
