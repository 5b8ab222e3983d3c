r"""Linear maximisation oracles (LMOs) for Frank-Wolfe over norm balls intersected with a box.

Each oracle solves, independently for every example ``n`` of a batch,

.. math::

    s_n = \arg\max_{s \in C} \langle g_n, s \rangle,
    \qquad C = B_\epsilon \cap \{\ell \le s \le u\},

where ``g`` is a gradient (the ascent direction of the objective), :math:`B_\epsilon` a norm
ball of radius ``eps`` and the optional per-coordinate bounds ``lower <= 0 <= upper`` describe
the valid image box: for an image ``x`` in [0, 1], ``lower = -x`` and ``upper = 1 - x`` keep
``x + s`` in [0, 1]. Without bounds the oracles are the textbook closed forms:

============  ==================================  ================================================
oracle        set                                 solution
============  ==================================  ================================================
``lmo_linf``  :math:`\|s\|_\infty \le \epsilon`  :math:`\epsilon\,\mathrm{sign}(g)`
``lmo_l2``    :math:`\|s\|_2 \le \epsilon`        :math:`\epsilon\, g / \|g\|_2`
``lmo_l1``    :math:`\|s\|_1 \le \epsilon`        :math:`\epsilon\,\mathrm{sign}(g_i) e_i`,
                                                  :math:`i = \arg\max |g_i|`
``lmo_topk``  :math:`\|s\|_1 \le \epsilon,`       the k largest :math:`|g_i|` set to
              :math:`\|s\|_\infty \le \epsilon/k`  :math:`\mathrm{sign}(g_i)\,\epsilon/k`
============  ==================================  ================================================

The top-k polytope is the one of Roberts & Tsiligkaridis (2021, "Controllably Sparse
Perturbations of Robust Classifiers"); its vertices are the k-sparse vectors with entries
:math:`\pm\epsilon/k`, so every Frank-Wolfe step adds at most k non-zeros and no projection is
ever needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_cf._validation import broadcasts_to

__all__ = ["lmo_linf", "lmo_l2", "lmo_l1", "lmo_topk"]


def lmo_linf(
    grad: Tensor, eps: float, lower: Tensor | None = None, upper: Tensor | None = None
) -> Tensor:
    r"""Exact LMO of the L-infinity ball (intersected with the box when bounds are given).

    The set is a box, so each coordinate goes to the bound its gradient points at:
    :math:`s_i = \min(\epsilon, u_i)` if :math:`g_i > 0`, :math:`-\min(\epsilon, -\ell_i)` if
    :math:`g_i < 0`, and 0 if :math:`g_i = 0`.

    Args:
        grad (Tensor): ascent direction, shape (N, ...).
        eps (float): radius, > 0.
        lower (Tensor, optional): per-coordinate lower bounds <= 0, shape of ``grad``.
        upper (Tensor, optional): per-coordinate upper bounds >= 0, shape of ``grad``.

    Returns:
        Tensor: the maximiser, shape of ``grad``.

    Example:
        >>> lmo_linf(torch.tensor([[0.3, -2.0, 0.0]]), 0.5)
        tensor([[ 0.5000, -0.5000,  0.0000]])
    """
    _check_lmo_args(grad, eps, lower, upper)
    up, dn = _caps(grad, eps, lower, upper)
    return torch.where(grad > 0, up, torch.where(grad < 0, -dn, torch.zeros_like(grad)))


def lmo_l2(
    grad: Tensor, eps: float, lower: Tensor | None = None, upper: Tensor | None = None
) -> Tensor:
    r"""Exact LMO of the L2 ball (intersected with the box when bounds are given).

    Without bounds :math:`s = \epsilon g / \|g\|_2` (0 where ``g`` is 0). With bounds the KKT
    conditions give :math:`s(\lambda) = \mathrm{clip}(\lambda g, \ell, u)` for the smallest
    :math:`\lambda` with :math:`\|s(\lambda)\|_2 = \epsilon` (or the box corner the gradient
    points at when that corner lies inside the ball); :math:`\|s(\lambda)\|` is monotone, so
    :math:`\lambda` is found by bisection to float64 precision.

    Args:
        grad (Tensor): ascent direction, shape (N, ...).
        eps (float): radius, > 0.
        lower, upper (Tensor, optional): per-coordinate bounds, ``lower <= 0 <= upper``.

    Returns:
        Tensor: the maximiser, shape of ``grad``.

    Example:
        >>> lmo_l2(torch.tensor([[3.0, -4.0]]), 1.0)
        tensor([[ 0.6000, -0.8000]])
    """
    _check_lmo_args(grad, eps, lower, upper)
    g = grad.reshape(grad.shape[0], -1)
    norm = g.norm(dim=1, keepdim=True)
    unbounded = torch.where(norm > 0, g * (eps / norm.clamp_min(1e-30)), torch.zeros_like(g))
    if lower is None and upper is None:
        return unbounded.reshape(grad.shape)
    up, dn = (c.reshape(g.shape) for c in _caps(grad, eps, lower, upper))
    return _l2_box(g.double(), up.double(), dn.double(), eps).to(grad.dtype).reshape(grad.shape)


def _l2_box(g: Tensor, up: Tensor, dn: Tensor, eps: float, iters: int = 100) -> Tensor:
    def s_of(lam: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(lam * g, -dn), up)

    corner = torch.where(g > 0, up, torch.where(g < 0, -dn, torch.zeros_like(g)))
    inside = corner.norm(dim=1, keepdim=True) <= eps
    gnorm = g.norm(dim=1, keepdim=True).clamp_min(1e-300)
    lo = eps / gnorm  # ||clip(lo * g)|| <= ||lo * g|| = eps
    ratio = torch.where(
        g != 0, torch.maximum(up, dn) / g.abs().clamp_min(1e-300), torch.zeros_like(g)
    )
    hi = torch.maximum(ratio.amax(dim=1, keepdim=True), lo)  # every coordinate at its bound
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        big = s_of(mid).norm(dim=1, keepdim=True) > eps
        hi = torch.where(big, mid, hi)
        lo = torch.where(big, lo, mid)
    return torch.where(inside, corner, s_of(lo))


def lmo_l1(
    grad: Tensor, eps: float, lower: Tensor | None = None, upper: Tensor | None = None
) -> Tensor:
    """Exact LMO of the L1 ball (intersected with the box when bounds are given).

    Without bounds: all of the budget on the largest :math:`|g_i|`. With bounds the problem is a
    fractional knapsack (each unit of budget spent on coordinate i gains :math:`|g_i|`, up to the
    coordinate's room in the direction of :math:`g_i`): fill coordinates in decreasing order of
    :math:`|g_i|` until the budget ``eps`` is used up. Exact; usually 1 or a few non-zeros.

    Args:
        grad (Tensor): ascent direction, shape (N, ...).
        eps (float): radius, > 0.
        lower, upper (Tensor, optional): per-coordinate bounds, ``lower <= 0 <= upper``.

    Returns:
        Tensor: the maximiser, shape of ``grad``.

    Example:
        >>> lmo_l1(torch.tensor([[0.3, -2.0, 1.0]]), 0.5)
        tensor([[ 0.0000, -0.5000,  0.0000]])
    """
    _check_lmo_args(grad, eps, lower, upper)
    g = grad.reshape(grad.shape[0], -1)
    up, dn = (c.reshape(g.shape) for c in _caps(grad, eps, lower, upper))
    room = torch.where(g >= 0, up, dn)
    order = g.abs().argsort(dim=1, descending=True)
    room_sorted = room.gather(1, order)
    used_before = room_sorted.cumsum(dim=1) - room_sorted
    take_sorted = (eps - used_before).clamp_min(0).minimum(room_sorted)
    take = torch.zeros_like(g).scatter(1, order, take_sorted)
    sign = torch.where(g >= 0, 1.0, -1.0).to(g.dtype)
    return (sign * take).reshape(grad.shape)


def lmo_topk(
    grad: Tensor,
    eps: float,
    k: int,
    pixel_groups: bool = False,
    lower: Tensor | None = None,
    upper: Tensor | None = None,
) -> Tensor:
    r"""Exact LMO of the top-k polytope :math:`\{\|s\|_1\le\epsilon, \|s\|_\infty\le\epsilon/k\}`.

    Keeps the k coordinates with the largest :math:`|g_i|`, sets them to
    :math:`\mathrm{sign}(g_i)\,\epsilon/k` (a zero gradient counts as +), so the result has exactly
    k non-zeros and L1 norm ``eps`` (Roberts & Tsiligkaridis, 2021).

    ``pixel_groups=True`` (``grad`` of shape (N, C, H, W)) counts sparsity in pixels: the set is
    :math:`\{\sum_p \max_c |s_{pc}| \le \epsilon, \|s\|_\infty \le \epsilon / k\}` and its exact
    LMO keeps the k pixels with the largest channel-summed :math:`\sum_c |g_{pc}|`, every channel
    of a kept pixel at :math:`\mathrm{sign}(g_{pc})\,\epsilon/k`. For C = 1 both modes agree.

    With bounds (``lower <= 0 <= upper``, e.g. the image box) the oracle is exact over the
    convex hull of the *k-sparse* points of the polytope that respect the bounds: each coordinate
    (pixel) gains :math:`v_i = \max(g_i \min(\epsilon/k, u_i), -g_i \min(\epsilon/k, -\ell_i))`;
    the k coordinates (pixels, summing :math:`v` over channels) with the largest gain are moved
    to their best bound. Every vertex therefore still has at most k non-zero coordinates (pixels),
    which is what keeps sparsity a knob; a coordinate with no room towards its gradient is not
    wasted.

    Args:
        grad (Tensor): ascent direction, shape (N, ...), or (N, C, H, W) with ``pixel_groups``.
        eps (float): L1 budget, > 0 (per-coordinate magnitude ``eps / k``).
        k (int): number of non-zero coordinates (pixels), 1 <= k <= D (resp. H * W).
        pixel_groups (bool): select whole pixels by the channel-summed gradient.
        lower, upper (Tensor, optional): per-coordinate bounds, ``lower <= 0 <= upper``.

    Returns:
        Tensor: the maximiser, shape of ``grad``.

    Example:
        >>> lmo_topk(torch.tensor([[0.3, -2.0, 1.0, 0.1]]), eps=1.0, k=2)
        tensor([[ 0.0000, -0.5000,  0.5000,  0.0000]])
    """
    _check_lmo_args(grad, eps, lower, upper)
    if pixel_groups and grad.dim() != 4:
        raise ValueError(
            f"pixel_groups=True needs grad of shape (N, C, H, W), got {tuple(grad.shape)}"
        )
    n_units = grad[0, 0].numel() if pixel_groups else grad[0].numel()
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_units:
        unit = "pixels H * W" if pixel_groups else "coordinates per example"
        raise ValueError(f"k must be an int in [1, {n_units}] ({unit}), got {k!r}")
    up, dn = _caps(grad, eps / k, lower, upper)
    gain_up, gain_dn = grad * up, -grad * dn
    s = torch.where(gain_up >= gain_dn, up, -dn)
    gain = torch.maximum(gain_up, gain_dn)
    if pixel_groups:
        gain = gain.sum(dim=1)  # (N, H, W)
    flat = gain.reshape(grad.shape[0], -1)
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(k, dim=1).indices, True)
    chosen = chosen.reshape(gain.shape)
    if pixel_groups:
        chosen = chosen.unsqueeze(1)
    return torch.where(chosen, s, torch.zeros_like(s))


def _caps(
    grad: Tensor, cap: float, lower: Tensor | None, upper: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Room upwards and downwards of every coordinate: ``min(cap, upper)``, ``min(cap, -lower)``."""
    full = torch.full_like(grad, float(cap))
    up = full if upper is None else torch.minimum(full, upper.to(grad.dtype).expand_as(grad))
    dn = full if lower is None else torch.minimum(full, -lower.to(grad.dtype).expand_as(grad))
    return up, dn


def _check_lmo_args(grad: Tensor, eps: float, lower: Tensor | None, upper: Tensor | None) -> None:
    if not isinstance(grad, Tensor) or not grad.is_floating_point():
        raise TypeError(f"grad must be a floating-point torch.Tensor, got {type(grad).__name__}")
    if grad.dim() < 2:
        raise ValueError(
            f"grad must have shape (N, ...) with a batch dimension, got {tuple(grad.shape)}"
        )
    if grad.numel() == 0:
        raise ValueError(f"grad is empty: shape {tuple(grad.shape)}")
    if not bool(torch.isfinite(grad).all()):
        # a NaN gradient would otherwise give a finite (zero or arbitrary) step silently
        raise ValueError("grad contains NaN or infinite values")
    if (
        isinstance(eps, bool)
        or not isinstance(eps, (int, float))
        or not eps > 0
        or eps == float("inf")
    ):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    for name, bound, sign in (("lower", lower, -1), ("upper", upper, 1)):
        if bound is None:
            continue
        if not isinstance(bound, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor broadcastable to grad, got {type(bound).__name__}"
            )
        if not broadcasts_to(bound.shape, grad.shape):
            raise ValueError(
                f"{name} of shape {tuple(bound.shape)} does not broadcast to grad "
                f"{tuple(grad.shape)}"
            )
        if bound.is_complex() or not bool(torch.isfinite(bound).all()):
            raise ValueError(f"{name} must hold finite real numbers")
        if (float(bound.min()) < 0) if sign > 0 else (float(bound.max()) > 0):
            raise ValueError(
                f"{name} must be {'>=' if sign > 0 else '<='} 0 everywhere (0 must be feasible)"
            )
