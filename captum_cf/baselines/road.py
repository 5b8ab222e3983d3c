"""``NoisyLinearImputation``: ROAD's removal, each removed pixel from its neighbours plus noise."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.baselines.base import Baseline
from captum_cf.inpainters._local import inpaint_locally
from captum_cf.inpainters.biharmonic import _ActiveRows, _conjugate_gradients

__all__ = ["NoisyLinearImputation"]

_TINY = 1e-30



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
    connected). It is solved in torch for the whole batch at once, on the input's device, by
    conjugate gradients started from a push-pull fill, until the root-mean-square residual
    falls below ``tol`` (or ``max_iter`` steps); each image stops on its own. From 64 px on,
    the steps are preconditioned with a multigrid V-cycle (damped Jacobi on grids of half,
    quarter, ... the size), which makes their number almost independent of the image size and
    of the removal's shape (7-8 to a 2e-6 residual at 64 and 224 px, for 10-90 % removed by
    smooth, blocky or pixel-noisy maps); plain conjugate gradients need steps in
    proportion to the width of the removed region. The error left by a residual ``tol`` grows
    with the square of that width: pass a smaller ``tol`` for larger images (the audit uses
    ``1e-4 * (32 / side) ** 2``). An image with every pixel removed has no
    information left and becomes grey 0.5 (plus noise); that is :meth:`reference`. It takes
    images (N, C, H, W) in [0, 1] (``pixel_space``; what it imputes is clamped there), and says
    so in one line naming the baseline for other inputs.

    ``keep`` may be soft: pixels with ``keep < 1`` (in any channel) are imputed, and the output
    is ``keep * x + (1 - keep) * (u + noise)``, so kept pixels come back exactly.

    Reproducible: the noise is one field of an image's shape (C, H, W), drawn from a fresh CPU
    ``torch.Generator`` seeded with ``seed`` on every call and moved to the inputs' device; the
    global RNG is untouched. Every image of every batch gets that same field, so an image's fill
    depends on the image and its ``keep`` only, not on the batch it is filled in or its
    position there (with noise drawn per batch slot, a metric's numbers moved with the batch
    size: up to 0.3 on single images of an audit).

    Args:
        noise (float): standard deviation of the Gaussian noise on imputed pixels, >= 0
            (ROAD: 0.01).
        seed (int): seed of the noise generator.
        tol (float): stop when every image's root-mean-square residual is below this, > 0.
        max_iter (int, optional): at most this many CG steps; default 200 with the multigrid
            preconditioner, ``4 * (H + W)`` without (images, or small holes' windows, under
            64 px).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> keep = torch.ones(2, 1, 16, 16); keep[..., 4:12, 4:12] = 0
        >>> out = NoisyLinearImputation(noise=0.0).fill(x, keep)
        >>> bool(torch.equal(out[..., :4, :], x[..., :4, :]))  # kept pixels are untouched
        True
    """

    input_kind = "images"
    pixel_space = True
    pixel_space_reason = "its imputed pixels are clamped to [0, 1] and its noise is on that scale"

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
        free = removed.to(inputs.dtype)
        # the system couples the removed pixels and their kept neighbours only: a window of the
        # removed pixels' box and one pixel around it gives exactly the same solution (much
        # cheaper for Occlusion's small patches)
        solved = inpaint_locally(self._solve, inputs, free, context=1)
        nothing_kept = removed.flatten(1).all(dim=1).view(-1, 1, 1, 1)
        return torch.where(nothing_kept, torch.full_like(solved, 0.5), solved)

    def _solve(self, inputs: Tensor, free: Tensor) -> Tensor:
        """The system's solution on (N, C, H, W) ``inputs``; ``free`` (N, 1, H, W) = 1 removed."""
        from captum_cf.inpainters.push_pull import PushPullInpainter

        start = torch.where(free > 0, PushPullInpainter()._inpaint(inputs, free), inputs)
        if min(inputs.shape[-2:]) >= _MULTIGRID_FROM:
            steps = self.max_iter if self.max_iter is not None else _MAX_ITER
            return _multigrid_cg(start, free, steps, self.tol)
        steps = self.max_iter if self.max_iter is not None else 4 * sum(inputs.shape[-2:])
        # narrow holes: plain CG needs few steps, each much cheaper than a V-cycle
        level = _Level(free[:1])  # the unmasked operator: CG masks by ``free`` itself

        def operator(u: Tensor) -> Tensor:
            return level._rest(u).neg_()

        return _conjugate_gradients(start, free, steps, operator=operator, tol=self.tol)

    def _noise_like(self, inputs: Tensor) -> Tensor:
        if self.noise == 0:
            return torch.zeros_like(inputs)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        eps = torch.randn(inputs.shape[1:], generator=gen, dtype=torch.float32)
        return (self.noise * eps.to(device=inputs.device, dtype=inputs.dtype)).expand_as(inputs)


def _neighbour_sum(u: Tensor) -> Tensor:
    """``sum_j w_ij u_j`` over the 8 neighbours inside the image, (N, C, H, W).

    ROAD's weights are separable: ``[1, 2, 1]^T [1, 2, 1] / 12`` minus the centre's ``4 / 12``;
    two 3-tap passes of shifted in-place adds (the border rows/columns get no neighbour from
    outside) are much faster than a depthwise conv, and than padded copies, on a CPU.
    """
    return _binomial_sum(u).sub_(u, alpha=4).div_(12)


#: default cap on preconditioned CG steps; the multigrid preconditioner makes the count almost
#: independent of the image size (measured: 7-8 steps to a 2e-6 residual at 64-224 px)
_MAX_ITER = 200
#: images of at least this side are solved with the multigrid preconditioner; below it, plain
#: conjugate gradients reach the same error in less CPU time (measured at 32 px: 0.13 s vs
#: 0.23 s for 1152 removals, each batch one host sync per 8 steps; at 64 px multigrid is 1.3x
#: and at 224 px 3.8x faster)
_MULTIGRID_FROM = 64
#: damping of the Jacobi smoother (the operator's Jacobi-scaled spectrum lies in (0, 4/3])
_OMEGA = 0.8
_COARSE_SWEEPS = 4
_MIN_SIDE = 4


class _Level:
    """One grid of the multigrid hierarchy: the removed pixels and the operator's diagonal.

    With ``S`` the separable ``[1, 2, 1]^T [1, 2, 1]`` sum (zero outside the image), the
    neighbour sum is ``(S u - 4 u) / 12``, so ``A u = free * (d u - S u / 12)`` with
    ``d = s + 1/3``: a few fused element-wise passes per application.
    """

    def __init__(self, free: Tensor) -> None:
        self.free = free
        diag = _neighbour_sum(torch.ones_like(free[:1, :1]))  # s_i: 1 inside, less at edges
        self.d = diag + 1 / 3
        self.smooth = _OMEGA * free / diag

    def _rest(self, u: Tensor) -> Tensor:
        """``S u / 12 - d u`` (= ``-A u`` on the removed pixels), a fresh tensor."""
        return _binomial_sum(u).div_(12).addcmul_(self.d, u, value=-1)

    def apply(self, u: Tensor) -> Tensor:
        """``A u`` on the removed pixels (0 elsewhere): ``s_i u_i - sum_j w_ij u_j``."""
        return self._rest(u).mul_(self.free).neg_()

    def sweep(self, z: Tensor, r: Tensor) -> Tensor:
        """One damped-Jacobi sweep on ``A z = r``: ``z + omega D^-1 (r - A z)``."""
        return torch.addcmul(z, self.smooth, self._rest(z).add_(r))

    def subset(self, rows: Tensor) -> _Level:
        level = _Level.__new__(_Level)
        level.d = self.d
        level.free = self.free[rows] if self.free.shape[0] > 1 else self.free
        level.smooth = self.smooth[rows] if self.smooth.shape[0] > 1 else self.smooth
        return level


def _hierarchy(free: Tensor, min_side: int | None = None) -> list[_Level]:
    """Grids of half the size down to ``min_side``; a coarse pixel is removed when all of its
    (up to) four children are.

    A block with a kept pixel is kept (its correction is zero) on the coarse grid: the known
    pixels pin the solution there. The opposite rule (removed when any child is) made every
    block of a scattered removal free, so that the coarse correction ignored the known pixels
    among the removed ones: pixel-noisy maps (gradient methods) needed 48 steps instead of 7 at
    224 px (measured, 18 removals of 10-90 %, residual 2e-6); the smoothing sweeps handle the
    removed pixels of partly kept blocks, which all lie next to a known pixel.
    """
    min_side = _MIN_SIDE if min_side is None else min_side
    levels = [_Level(free)]
    while min(free.shape[-2:]) > min_side:
        free = -F.max_pool2d(-free, 2, ceil_mode=True)
        levels.append(_Level(free))
    return levels


def _v_cycle(levels: list[_Level], r: Tensor, i: int = 0, sweeps: int = 2) -> Tensor:
    """An approximate solve of ``A z = r`` on level ``i``: a symmetric V-cycle.

    ``sweeps`` damped-Jacobi sweeps, the residual summed over 2x2 blocks and corrected on the
    coarser grid (piecewise-constant prolongation, its transpose as restriction), then
    ``sweeps`` Jacobi sweeps again; the coarsest grid (4 px or less) gets
    :data:`_COARSE_SWEEPS`. The same number of sweeps on both sides and restriction =
    prolongation^T make it a symmetric positive-definite preconditioner for conjugate
    gradients.
    """
    level = levels[i]
    n = _COARSE_SWEEPS if i == len(levels) - 1 else sweeps
    z = level.smooth * r
    for _ in range(n - 1):
        z = level.sweep(z, r)
    if i == len(levels) - 1:
        return z
    h, w = r.shape[-2:]
    res = level._rest(z).mul_(level.free).add_(r)  # r - A z
    coarse = F.avg_pool2d(F.pad(res, (0, w % 2, 0, h % 2)), 2).mul_(4) * levels[i + 1].free
    e = _v_cycle(levels, coarse, i + 1, sweeps)
    b, c, hc, wc = e.shape  # nearest 2x upsampling by a broadcast copy (2.7x F.interpolate's speed)
    up = e[:, :, :, None, :, None].expand(b, c, hc, 2, wc, 2).reshape(b, c, 2 * hc, 2 * wc)
    up = up[..., :h, :w]
    z = torch.addcmul(z, level.free, up)
    for _ in range(n):
        z = level.sweep(z, r)
    return z


def _multigrid_cg(u: Tensor, free: Tensor, steps: int, tol: float) -> Tensor:
    """Solve the imputation system by conjugate gradients preconditioned with a V-cycle.

    ``u`` (N, C, H, W) holds the kept pixels and a start on the removed ones (``free`` = 1,
    shape (N, 1, H, W)). An image stops once its root-mean-square residual (every channel) is
    below ``tol`` and leaves the batch, so a batch costs what its images need.
    """
    levels = _hierarchy(free)
    r = -levels[0].apply(u)
    z = _v_cycle(levels, r)
    p, rz = z, (r * z).sum((-2, -1), keepdim=True)
    limit = tol * tol * u.shape[-2] * u.shape[-1]
    rows = _ActiveRows(u)
    for step in range(steps + 1):
        keep = rows.retire((r * r).sum((-2, -1)).amax(dim=1) > limit, u)
        if keep is not None:
            if len(keep) == 0:
                return rows.out
            u, r, p, rz = u[keep], r[keep], p[keep], rz[keep]
            levels = [level.subset(keep) for level in levels]
        if step == steps:
            break
        ap = levels[0].apply(p)
        alpha = rz / (p * ap).sum((-2, -1), keepdim=True).clamp_min(_TINY)
        u = torch.addcmul(u, alpha, p)
        r = torch.addcmul(r, alpha, ap, value=-1)
        z = _v_cycle(levels, r)
        rz_next = (r * z).sum((-2, -1), keepdim=True)
        p = torch.addcmul(z, rz_next / rz.clamp_min(_TINY), p)
        rz = rz_next
    return rows.result(u)


def _binomial_sum(u: Tensor) -> Tensor:
    """``[1, 2, 1]^T [1, 2, 1]`` weighted sum of each pixel's 3x3 box (zero outside), fresh."""
    v = 2 * u
    v[..., 1:, :] += u[..., :-1, :]
    v[..., :-1, :] += u[..., 1:, :]
    out = 2 * v
    out[..., 1:] += v[..., :-1]
    out[..., :-1] += v[..., 1:]
    return out


def _check_image_batch(inputs: Tensor) -> None:
    if inputs.dim() != 4:
        raise ValueError(
            f"inputs must be images of shape (N, C, H, W) for noisy linear imputation, "
            f"got {tuple(inputs.shape)}"
        )
