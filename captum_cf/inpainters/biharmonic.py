"""``BiharmonicInpainter``: smooth continuation of the image into the holes, batched in torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.inpainters._local import check_context, inpaint_locally
from captum_cf.inpainters.base import Inpainter
from captum_cf.inpainters.push_pull import PushPullInpainter

__all__ = ["BiharmonicInpainter"]

_TINY = 1e-20


class BiharmonicInpainter(Inpainter):
    """Fill holes with the biharmonic continuation of their surroundings (multigrid CG).

    Biharmonic inpainting (as ``skimage.restoration.inpaint_biharmonic``) chooses the hole
    pixels ``u`` that minimise the squared Laplacian of the image, with the known pixels fixed:

    ``min_u  sum_pixels (Delta u)^2   subject to  u = x  outside the hole``,

    whose solution satisfies ``Delta^2 u = 0`` in the hole. Unlike a harmonic or push-pull fill,
    it continues gradients (a colour ramp of the background, the edge of an object) into the hole
    instead of flattening them. ``Delta`` is the 5-point Laplacian with reflecting (Neumann)
    borders, a symmetric operator, so the normal equations ``P Delta^2 P u = -P Delta^2 (1-P) x``
    (``P`` the hole projection) are solved per image and channel by conjugate gradients.

    Conjugate gradients alone converge slowly on large holes; a cascade of scales makes it cheap:
    the known pixels are averaged down a pyramid (weights = known fraction, as in push-pull);
    the coarsest level starts from :class:`PushPullInpainter`, every finer level starts from the
    bilinear upsampling of the solution below it, and ``iterations[l]`` CG steps refine the
    level ``l`` (0 = full resolution). At coarse levels, a pixel is unknown only if its whole
    block is hole.

    Holes are ``hole > 0``; soft holes blend: the output is ``(1 - hole) x + hole u``, so known
    pixels come back exactly. Batched and differentiable in ``images`` (through the CG steps)
    and in ``hole`` through the blend (not through which pixels count as unknown). The result is
    clamped to [0, 1]. With ``context`` set, holes confined to a small box are solved on a
    window of ``context`` pixels around the box (much cheaper for occlusion patches).

    Args:
        iterations (sequence of int): CG steps per level, finest first; its length is the
            number of levels (default ``(5, 10, 20)``: full, 1/2 and 1/4 resolution).
        context (int, optional): pixels of context around a hole's box when solving on a window
            (default 16); ``None`` always solves on the whole image.

    Example:
        >>> x = torch.linspace(0, 1, 32).expand(1, 3, 32, 32).contiguous()  # a ramp
        >>> hole = torch.zeros(1, 1, 32, 32); hole[..., 8:24, 8:24] = 1
        >>> out = BiharmonicInpainter()(x, hole)
        >>> bool((out - x).abs().max() < 0.02)  # the ramp is continued into the hole
        True
    """

    def __init__(self, iterations: Sequence[int] = (5, 10, 20), context: int | None = 16) -> None:
        super().__init__()
        if isinstance(iterations, (str, bytes)) or not isinstance(iterations, Sequence):
            raise TypeError(
                f"iterations must be a sequence of ints, got {type(iterations).__name__}")
        if len(iterations) < 1 or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in iterations
        ):
            raise ValueError(f"iterations must be one or more ints >= 0, got {list(iterations)}")
        self.iterations = tuple(iterations)
        self.context = check_context(context)
        self._pushpull = PushPullInpainter()

    def extra_repr(self) -> str:
        return f"iterations={self.iterations}, context={self.context}"

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        return inpaint_locally(self._solve, images, hole, self.context)

    def _solve(self, images: Tensor, hole: Tensor) -> Tensor:
        h = hole.amax(1, keepdim=True)
        unknown = (h > 0).to(images.dtype)
        values, known = [images], [1 - unknown]
        while len(values) < len(self.iterations) and min(values[-1].shape[-2:]) >= 8:
            w = F.avg_pool2d(known[-1], 2, ceil_mode=True)
            v = F.avg_pool2d(values[-1] * known[-1], 2, ceil_mode=True) / w.clamp_min(1e-8)
            values.append(v)
            known.append(w)
        u = None
        for level in range(len(values) - 1, -1, -1):
            v = values[level]
            free = (known[level] <= 0).to(v.dtype) if level else unknown
            if u is None:
                start = self._pushpull._inpaint(v, free)
            else:
                start = F.interpolate(u, size=v.shape[-2:], mode="bilinear", align_corners=False)
            u = _conjugate_gradients(free * start + (1 - free) * v, free,
                                     self.iterations[level])
        return ((1 - h) * images + h * u).clamp(0.0, 1.0)


def _laplacian(u: Tensor) -> Tensor:
    """5-point Laplacian with reflecting borders (the grid graph's Laplacian: symmetric)."""
    out = -4 * u
    out[..., 1:, :] += u[..., :-1, :]
    out[..., :-1, :] += u[..., 1:, :]
    out[..., :, 1:] += u[..., :, :-1]
    out[..., :, :-1] += u[..., :, 1:]
    out[..., 0, :] += u[..., 0, :]
    out[..., -1, :] += u[..., -1, :]
    out[..., :, 0] += u[..., :, 0]
    out[..., :, -1] += u[..., :, -1]
    return out


def _biharmonic(u: Tensor) -> Tensor:
    return _laplacian(_laplacian(u))


def _conjugate_gradients(
    u: Tensor,
    free: Tensor,
    steps: int,
    operator: Callable[[Tensor], Tensor] = _biharmonic,
    tol: float | None = None,
    check_every: int = 8,
) -> Tensor:
    """``steps`` CG steps on ``min u^T A u`` over the ``free`` pixels, per image and channel.

    ``operator`` applies a symmetric positive semi-definite ``A`` to (N, C, H, W) tensors
    (default the biharmonic ``Delta^2``); the pixels where ``free == 0`` stay fixed at ``u``, so
    the free pixels solve ``P A P u = -P A (1 - P) u``. With ``tol`` set, an image stops once its
    root-mean-square residual (every channel) is below ``tol`` (checked every ``check_every``
    steps, one host sync each), and the images still iterating go on as a smaller batch: a batch
    costs what its images need, not what its slowest image needs. ``operator`` must then accept
    any batch size.
    """
    if steps == 0:
        return u
    residual = -free * operator(u)
    direction = residual
    rs = (residual * residual).sum((-2, -1), keepdim=True)
    if tol is None:
        for _ in range(steps):
            u, residual, direction, rs = _cg_step(u, residual, direction, rs, free, operator)
        return u
    limit = tol * tol * u.shape[-2] * u.shape[-1]
    rows = _ActiveRows(u)
    for step in range(steps):
        if step % check_every == 0:
            keep = rows.retire(rs.flatten(1).amax(dim=1) > limit, u)
            if keep is not None:
                if len(keep) == 0:
                    return rows.out
                u, residual, direction = u[keep], residual[keep], direction[keep]
                rs, free = rs[keep], free[keep] if free.shape[0] > 1 else free
        u, residual, direction, rs = _cg_step(u, residual, direction, rs, free, operator)
    return rows.result(u)


class _ActiveRows:
    """Bookkeeping of a batched iteration whose images stop on their own.

    ``retire(going, u)`` writes the rows of the current batch ``u`` that stopped (``going``
    False) into the output and returns the indices of the rows that go on (None when all go
    on), by which the caller shrinks its tensors; ``result(u)`` writes the last batch back.
    The output is a copy as soon as any row stops, so the caller's start tensor is never
    written.
    """

    def __init__(self, u: Tensor) -> None:
        self.out = u
        self.active: Tensor | None = None  # indices into ``out`` of the rows still iterating

    def retire(self, going: Tensor, u: Tensor) -> Tensor | None:
        if int(going.sum()) == len(going):
            return None
        if self.active is None:
            self.out = self.out.clone()
        done = going.logical_not()
        self.out[done.nonzero().squeeze(1) if self.active is None else self.active[done]] = u[done]
        keep = going.nonzero().squeeze(1)
        self.active = keep if self.active is None else self.active[keep]
        return keep

    def result(self, u: Tensor) -> Tensor:
        if self.active is None:
            return u
        self.out[self.active] = u
        return self.out


def _cg_step(
    u: Tensor,
    residual: Tensor,
    direction: Tensor,
    rs: Tensor,
    free: Tensor,
    operator: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One conjugate-gradient step: new ``(u, residual, direction, rs)``."""
    a_dir = free * operator(direction)
    alpha = rs / (direction * a_dir).sum((-2, -1), keepdim=True).clamp_min(_TINY)
    u = torch.addcmul(u, alpha, direction)
    residual = torch.addcmul(residual, alpha, a_dir, value=-1)
    rs_next = (residual * residual).sum((-2, -1), keepdim=True)
    direction = torch.addcmul(residual, rs_next / rs.clamp_min(_TINY), direction)
    return u, residual, direction, rs_next
