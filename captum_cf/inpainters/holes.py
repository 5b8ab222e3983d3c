"""Random hole masks for training and evaluating inpainters: free-form brush strokes and boxes."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_holes", "HOLE_KINDS"]

#: accepted values of ``kind``
HOLE_KINDS = ("free-form+box", "free-form", "box")
_MAX_ADDITIONS = 64  # strokes/boxes tried per image before giving up on the coverage target


def random_holes(
    n: int,
    height: int,
    width: int | None = None,
    coverage: tuple[float, float] = (0.05, 0.4),
    kind: str = "free-form+box",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random hole masks covering a random fraction of each image.

    Each image draws a target coverage ``t ~ U(lo, hi)`` and then receives shapes until at least
    ``t`` of its pixels are holes. A shape is a thick brush segment (free-form: it starts where the
    image's previous segment ended with probability 0.7, so segments chain into strokes, as the
    free-form masks of DeepFill v2, Yu et al., ICCV 2019) or an axis-aligned box; a shape that
    would push the coverage above ``hi`` is rejected, so coverages lie in ``[t, hi]`` (rarely
    below ``t`` when 64 tries do not reach it). Batched over images.

    Args:
        n (int): number of masks.
        height (int): mask height H (>= 4).
        width (int, optional): mask width W (>= 4); default ``height``.
        coverage (tuple[float, float]): ``(lo, hi)`` with ``0 < lo <= hi < 1``.
        kind (str): ``"free-form+box"`` (each shape is a box with probability 0.3),
            ``"free-form"`` or ``"box"``.
        generator (torch.Generator, optional): source of randomness (for reproducible masks).

    Returns:
        Tensor: float32 of shape (n, 1, H, W), 1 = hole, 0 = known.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> hole = random_holes(8, 64, coverage=(0.1, 0.25), generator=gen)
        >>> bool(((hole.mean((1, 2, 3)) >= 0.1) & (hole.mean((1, 2, 3)) <= 0.25)).all())
        True
    """
    width = height if width is None else width
    _check_args(n, height, width, coverage, kind)
    gen = generator
    lo, hi = coverage
    target = lo + (hi - lo) * torch.rand(n, generator=gen)
    # pixel centres as a column (H, 1) and a row (1, W): every shape is computed from the two
    # by broadcasting, never from (n, 2, H, W) coordinate planes
    grid = (torch.arange(height, dtype=torch.float32)[:, None] + 0.5,
            torch.arange(width, dtype=torch.float32)[None, :] + 0.5)
    hole = torch.zeros(n, height, width, dtype=torch.bool)
    pen = torch.rand(n, 2, generator=gen) * torch.tensor([height, width])
    side = float(min(height, width))
    p_box = {"free-form+box": 0.3, "free-form": 0.0, "box": 1.0}[kind]
    for _ in range(_MAX_ADDITIONS):
        todo = (hole.flatten(1).float().mean(1) < target).nonzero().flatten()
        m = todo.numel()
        if m == 0:
            break
        # every draw is made for all m images (the random stream does not depend on which
        # shape an image takes); each shape is drawn only where it is used
        start, pen_next, radius = _stroke_draws(m, pen[todo], side, (height, width), gen)
        use_box = torch.rand(m, generator=gen) < p_box
        corner, far = _box_draws(m, height, width, gen)
        shape = torch.empty(m, height, width, dtype=torch.bool)
        shape[use_box] = _boxes(corner[use_box], far[use_box], grid)
        stroke = ~use_box
        shape[stroke] = _strokes(start[stroke], pen_next[stroke], radius[stroke], grid)
        candidate = hole[todo] | shape
        ok = candidate.flatten(1).float().mean(1) <= hi
        hole[todo] = torch.where(ok[:, None, None], candidate, hole[todo])
        pen[todo] = torch.where((ok & ~use_box)[:, None], pen_next, pen[todo])
    return hole.unsqueeze(1).float()


def _stroke_draws(
    n: int, pen: Tensor, side: float, size: tuple[int, int], gen: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """One thick segment per image from ``pen`` (or a fresh start): its start (n, 2), its end
    (n, 2) and its radius (n,)."""
    h, w = size
    fresh = torch.rand(n, 2, generator=gen) * torch.tensor([h, w], dtype=torch.float32)
    restart = (torch.rand(n, generator=gen) < 0.3)[:, None]
    start = torch.where(restart, fresh, pen)
    angle = torch.rand(n, generator=gen) * 2 * torch.pi
    length = side * (0.1 + 0.3 * torch.rand(n, generator=gen))
    radius = side * (0.03 + 0.06 * torch.rand(n, generator=gen))
    end = start + length[:, None] * torch.stack([torch.sin(angle), torch.cos(angle)], 1)
    end = torch.stack([end[:, 0].clamp(0, h), end[:, 1].clamp(0, w)], 1)
    return start, end, radius


def _strokes(start: Tensor, end: Tensor, radius: Tensor, grid: tuple[Tensor, Tensor]) -> Tensor:
    """The pixels within ``radius`` of the segment ``start``-``end``: (n, H, W) bool."""
    ys, xs = grid  # (H, 1), (1, W)
    ay, ax = start[:, 0, None, None], start[:, 1, None, None]  # (n, 1, 1)
    aby = (end[:, 0] - start[:, 0])[:, None, None]
    abx = (end[:, 1] - start[:, 1])[:, None, None]
    # the projection's parameter on the segment: ((p - a) . ab) / |ab|^2, the two products
    # added in this order (as a sum over the coordinate axis)
    t = ((ys - ay) * aby + (xs - ax) * abx) / (aby * aby + abx * abx).clamp_min(1e-6)
    t = t.clamp(0, 1)
    dy = ys - (ay + t * aby)
    dx = xs - (ax + t * abx)
    return dy**2 + dx**2 <= (radius**2)[:, None, None]


def _box_draws(n: int, h: int, w: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """One axis-aligned box per image, sides 10-40 % of the image's: corners (n, 2) and
    (n, 2)."""
    size = torch.tensor([h, w], dtype=torch.float32)
    sides = size * (0.1 + 0.3 * torch.rand(n, 2, generator=gen))
    corner = torch.rand(n, 2, generator=gen) * (size - sides)
    return corner, corner + sides


def _boxes(lo: Tensor, hi: Tensor, grid: tuple[Tensor, Tensor]) -> Tensor:
    """The pixels in ``[lo, hi)`` on both axes: (n, H, W) bool."""
    ys, xs = grid
    rows = (ys >= lo[:, 0, None, None]) & (ys < hi[:, 0, None, None])  # (n, H, 1)
    cols = (xs >= lo[:, 1, None, None]) & (xs < hi[:, 1, None, None])  # (n, 1, W)
    return rows & cols


def _check_args(
    n: int, height: int, width: int, coverage: tuple[float, float], kind: str
) -> None:
    for name, value, least in (("n", n, 1), ("height", height, 4), ("width", width, 4)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    try:
        lo, hi = (float(c) for c in coverage)
    except (TypeError, ValueError):
        raise TypeError(f"coverage must be a pair of floats (lo, hi), got {coverage!r}") from None
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"coverage must satisfy 0 < lo <= hi < 1, got {coverage!r}")
    if kind not in HOLE_KINDS:
        raise ValueError(f"kind must be one of {HOLE_KINDS}, got {kind!r}")
