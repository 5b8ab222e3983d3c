"""Synthetic shapes on textured backgrounds, with ground-truth masks, boxes and parts.

Every image shows one object (circle, square, triangle or square-with-a-dot) of random position,
size and colour on a background made of a random two-colour gradient, band-limited colour noise
and faint stripes, so a constant (zero, grey) fill is out of distribution. Classes 1 and 3 differ
*only* in a small dark-or-light dot (about 5 % of the square's area) at a fixed place inside the
square: the ground truth that localisation and one-vs-one counterfactual tests need.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

__all__ = ["SyntheticShapes"]

_CLASS_NAMES = ["circle", "square", "triangle", "square with dot"]
_PART_PAIRS = [(1, 3)]
_CHUNK = 256  # images rendered at once: bounds the memory of the per-pixel work
_MIN_CONTRAST = 0.4  # minimum RGB distance between object colour and the background under it
# Dot of classes 1 and 3, relative to the square's half-side a: centre (+0.45a, -0.45a)
# (upper right), radius 0.26a, i.e. pi * 0.26^2 / 4 = 5.3 % of the square's area.
_DOT_OFFSET, _DOT_RADIUS = 0.45, 0.26


class SyntheticShapes(Dataset):
    """Generated RGB images of four shape classes with object masks, boxes and parts.

    Classes: 0 ``circle``, 1 ``square``, 2 ``triangle``, 3 ``square with dot``. Classes 1 and 3
    (:attr:`part_pairs` ``[(1, 3)]``) have the same distribution of position, size and colours
    and differ only in the dot, so a classifier must look at the dot to tell them apart.

    The generation is vectorised and deterministic under ``seed``; labels are balanced (each class
    ``n // 4`` or ``n // 4 + 1`` times) and shuffled. Objects' half-extent is 13-22 % of ``size``;
    their colour is uniform in RGB, at least 0.4 (Euclidean) from the background beneath them, so
    colour alone never identifies the object.

    Args:
        n (int): number of images, >= 1.
        size (int): image side in pixels, >= 32 (so that every dot covers at least one pixel).
        seed (int): random seed; the same ``(n, size, seed)`` always gives the same data.

    Attributes:
        images (Tensor): (n, 3, size, size) float32 in [0, 1].
        labels (Tensor): (n,) int64 in 0..3.
        masks (Tensor): (n, 1, size, size) bool, the object's pixels (the dot included).
        boxes (Tensor): (n, 4) float32 ``x0, y0, x1, y1``, the tight box of ``masks`` in pixel
            indices, inclusive-exclusive: ``masks[i, 0, y0:y1, x0:x1]`` holds the whole object and
            each of its border rows/columns contains object pixels.
        parts (Tensor): (n, 1, size, size) bool. For classes of a part pair (1 and 3) the pixels of
            the dot: where it is (class 3) or where it would be (class 1), i.e. where a
            counterfactual edit between the two classes must happen. All False for other classes.
        class_names (list[str]): names of the classes, indexed by label.
        part_pairs (list[tuple[int, int]]): pairs of classes that differ only by the part.

    Example:
        >>> data = SyntheticShapes(100, size=64, seed=0)
        >>> image, label = data[0]
        >>> image.shape, data.class_names[label]
        (torch.Size([3, 64, 64]), 'circle')
    """

    class_names: list[str]
    part_pairs: list[tuple[int, int]]

    def __init__(self, n: int, size: int = 64, seed: int = 0) -> None:
        for name, value in (("n", n), ("size", size), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if size < 32:
            raise ValueError(f"size must be >= 32, got {size}")
        self.n, self.size, self.seed = n, size, seed
        self.class_names = list(_CLASS_NAMES)
        self.part_pairs = list(_PART_PAIRS)
        gen = torch.Generator().manual_seed(seed)
        params = _draw_params(n, size, gen)
        chunks = [_render({k: v[i : i + _CHUNK] for k, v in params.items()}, size)
                  for i in range(0, n, _CHUNK)]
        self.images = torch.cat([c[0] for c in chunks])
        self.masks = torch.cat([c[1] for c in chunks])
        self.parts = torch.cat([c[2] for c in chunks])
        self.labels = params["label"]
        self.boxes = _tight_boxes(self.masks)
        self._geometry = {k: params[k] for k in ("cx", "cy", "extent")}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def tensors(self) -> tuple[Tensor, Tensor]:
        """``(images, labels)``, as in a ``TensorDataset``."""
        return self.images, self.labels

    def to_tensor_dataset(self) -> TensorDataset:
        """A ``TensorDataset(images, labels)`` (shares the tensors)."""
        return TensorDataset(self.images, self.labels)

    def subset(self, n: int) -> SyntheticShapes:
        """The first ``n`` images as a data set of their own (every per-image field sliced).

        Args:
            n (int): 1 <= n <= ``len(self)``.

        Returns:
            SyntheticShapes: shares the tensors' storage with ``self`` (slices, no copies).

        Example:
            >>> data = SyntheticShapes(8, size=64, seed=0)
            >>> small = data.subset(3)
            >>> len(small), bool(small.images.equal(data.images[:3]))
            (3, True)
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if not 1 <= n <= self.n:
            raise ValueError(f"n must lie in [1, {self.n}], got {n}")
        out = copy.copy(self)
        out.n = n
        for name in ("images", "masks", "parts", "labels", "boxes"):
            setattr(out, name, getattr(self, name)[:n])
        out._geometry = {k: v[:n] for k, v in self._geometry.items()}
        return out

    def misplaced_dots(self, seed: int = 0) -> Tensor:
        """Every "square" (class 1) image with a dot painted away from the place of the dot.

        The dot has the data set's size and colour rule (radius 0.26 of the square's half-side;
        dark ``0.25 * colour`` on a light square, light ``colour + 0.75 (1 - colour)`` on a dark
        one; anti-aliased edge). Half of the images (at random) get it inside the square at a
        random place at least 2.5 dot radii from the dot's place (:attr:`parts`), the others on
        the background, 1.3-1.9 half-sides from the centre in a random direction (clipped to
        the image). No such image is in the data set (only a dot at its place makes a "square
        with dot"): they are negatives for a classifier that must judge where the dot is.

        Args:
            seed (int): seed of the places (and of the choice inside / outside).

        Returns:
            Tensor: (m, 3, size, size) float32 in [0, 1], ``m = (labels == 1).sum()``, in the
            order of the class-1 images.

        Example:
            >>> data = SyntheticShapes(8, size=64, seed=0)
            >>> data.misplaced_dots().shape[0] == int((data.labels == 1).sum())
            True
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        sq = (self.labels == 1).nonzero().flatten()
        m, size = sq.numel(), self.size
        x = self.images[sq]
        if m == 0:
            return x.clone()
        gen = torch.Generator().manual_seed(seed)
        g = {k: v[sq] for k, v in self._geometry.items()}
        half = 0.886 * g["extent"]
        radius = _DOT_RADIUS * half
        mask = self.masks[sq] & ~self.parts[sq]
        colour = (x * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)
        dot_colour = _dot_colour(colour)
        # inside: a uniform place in the square (dot fully inside) far from the dot's place
        true_x, true_y = _DOT_OFFSET * half, -_DOT_OFFSET * half
        room = half - radius - 1
        ix, iy = torch.zeros(m), torch.zeros(m)
        todo = torch.ones(m, dtype=torch.bool)
        while bool(todo.any()):
            px = (2 * torch.rand(m, generator=gen) - 1) * room
            py = (2 * torch.rand(m, generator=gen) - 1) * room
            far = torch.sqrt((px - true_x) ** 2 + (py - true_y) ** 2) >= 2.5 * radius
            take = todo & far
            ix[take], iy[take] = px[take], py[take]
            todo &= ~far
        angle = 2 * math.pi * torch.rand(m, generator=gen)
        dist = half * (1.3 + 0.6 * torch.rand(m, generator=gen))
        ox = (g["cx"] + dist * torch.cos(angle)).clamp(radius, size - radius)
        oy = (g["cy"] + dist * torch.sin(angle)).clamp(radius, size - radius)
        inside = torch.rand(m, generator=gen) < 0.5
        px = torch.where(inside, g["cx"] + ix, ox).view(m, 1, 1)
        py = torch.where(inside, g["cy"] + iy, oy).view(m, 1, 1)
        ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5,
                                indexing="ij")
        sdf = torch.sqrt((xs - px) ** 2 + (ys - py) ** 2) - radius.view(m, 1, 1)
        alpha = (0.5 - sdf).clamp(0, 1).unsqueeze(1)
        return (alpha * dot_colour.view(m, 3, 1, 1) + (1 - alpha) * x).clamp(0, 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __repr__(self) -> str:
        return f"SyntheticShapes(n={self.n}, size={self.size}, seed={self.seed})"


def _draw_params(n: int, size: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Every random choice of every image, drawn up front from one generator."""

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    label = (torch.arange(n) % len(_CLASS_NAMES))[torch.randperm(n, generator=gen)]
    extent = uniform(0.13, 0.22, n) * size  # circle radius; the others have matched areas
    reach = 1.5 * extent + 2  # the triangle reaches furthest (1.5 x extent); 2 px margin
    cx = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    cy = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    return {
        "label": label, "extent": extent, "cx": cx, "cy": cy,
        "bg_a": uniform(0.1, 0.9, n, 3), "bg_b": uniform(0.1, 0.9, n, 3),
        "bg_angle": uniform(0, 2 * math.pi, n),
        "stripe_freq": uniform(2.0, 6.0, n), "stripe_angle": uniform(0, math.pi, n),
        "stripe_phase": uniform(0, 2 * math.pi, n), "stripe_amp": uniform(0.02, 0.07, n, 3),
        "colour_candidates": uniform(0.05, 0.95, n, 16, 3),
        "shade_angle": uniform(0, 2 * math.pi, n),
        "noise_seed": torch.randint(0, 2**62, (n,), generator=gen),
    }


def _render(p: dict[str, Tensor], size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Images (m, 3, S, S), masks and parts (m, 1, S, S) of one chunk of parameters."""
    m = len(p["label"])
    gen = torch.Generator().manual_seed(int(p["noise_seed"][0]))
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    background = _background(p, xs, ys, size, gen)
    dx = xs - p["cx"].view(m, 1, 1)
    dy = ys - p["cy"].view(m, 1, 1)
    sdf = _object_sdf(p["label"], p["extent"].view(m, 1, 1), dx, dy).unsqueeze(1)  # (m,1,S,S)
    dot_sdf = _dot_sdf(p["extent"].view(m, 1, 1), dx, dy).unsqueeze(1)
    masks = sdf <= 0
    colour = _object_colour(p["colour_candidates"], background, masks)  # (m, 3)
    shade = torch.cos(p["shade_angle"]).view(m, 1, 1) * dx + torch.sin(p["shade_angle"]).view(
        m, 1, 1) * dy
    obj = colour.view(m, 3, 1, 1) + 0.12 * (shade / (p["extent"].view(m, 1, 1) * 3)).unsqueeze(1)
    obj = obj + 0.04 * _smooth_noise(m, size, gen)
    alpha = (0.5 - sdf).clamp(0, 1)  # one-pixel anti-aliased edge
    images = alpha * obj + (1 - alpha) * background
    in_pair = (p["label"] == 1) | (p["label"] == 3)
    parts = (dot_sdf <= 0) & in_pair.view(m, 1, 1, 1)
    has_dot = (p["label"] == 3).view(m, 1, 1, 1)
    dot_colour = _dot_colour(colour).view(m, 3, 1, 1)
    dot_alpha = (0.5 - dot_sdf).clamp(0, 1) * has_dot
    images = dot_alpha * dot_colour + (1 - dot_alpha) * images
    images = images + 0.015 * torch.randn(images.shape, generator=gen)
    return images.clamp(0, 1), masks, parts


def _background(
    p: dict[str, Tensor], xs: Tensor, ys: Tensor, size: int, gen: torch.Generator
) -> Tensor:
    """Two-colour linear gradient + band-limited colour noise + faint stripes, (m, 3, S, S)."""
    m = len(p["label"])
    ang = p["bg_angle"].view(m, 1, 1)
    t = 0.5 + ((xs - size / 2) * torch.cos(ang) + (ys - size / 2) * torch.sin(ang)) / size
    bg = p["bg_a"].view(m, 3, 1, 1) + (p["bg_b"] - p["bg_a"]).view(m, 3, 1, 1) * t.unsqueeze(1)
    sa = p["stripe_angle"].view(m, 1, 1)
    phase = 2 * math.pi * p["stripe_freq"].view(m, 1, 1) / size * (
        xs * torch.cos(sa) + ys * torch.sin(sa)) + p["stripe_phase"].view(m, 1, 1)
    bg = bg + p["stripe_amp"].view(m, 3, 1, 1) * torch.sin(phase).unsqueeze(1)
    return bg + 0.12 * _smooth_noise(m, size, gen)


def _smooth_noise(m: int, size: int, gen: torch.Generator) -> Tensor:
    """Band-limited noise: 6x6 Gaussian values upsampled bicubically, (m, 3, S, S), std ~1."""
    coarse = torch.randn(m, 3, 6, 6, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def _object_sdf(label: Tensor, extent: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Signed distance (pixels, < 0 inside) to the object of each image's class, (m, S, S)."""
    circle = torch.sqrt(dx**2 + dy**2) - extent
    # Square of the circle's area: half-side sqrt(pi) / 2 * r.
    square = torch.maximum(dx.abs(), dy.abs()) - 0.886 * extent
    # Upward equilateral triangle, circumradius 1.5 r (inradius 0.75 r); outward edge normals.
    r_in = 0.75 * extent
    s60 = math.sqrt(3) / 2
    triangle = torch.stack([dy, s60 * dx - 0.5 * dy, -s60 * dx - 0.5 * dy]).amax(0) - r_in
    lab = label.view(-1, 1, 1)
    return torch.where(lab == 0, circle, torch.where(lab == 2, triangle, square))


def _dot_sdf(extent: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Signed distance to the dot of the (dotted) square, (m, S, S)."""
    half = 0.886 * extent
    ddx = dx - _DOT_OFFSET * half
    ddy = dy + _DOT_OFFSET * half
    return torch.sqrt(ddx**2 + ddy**2) - _DOT_RADIUS * half


def _dot_colour(colour: Tensor) -> Tensor:
    """The dot's colour for squares of ``colour`` (m, 3): darker on a light square, lighter on
    a dark one, (m, 3)."""
    dark = colour.mean(1, keepdim=True) > 0.5
    return torch.where(dark, 0.25 * colour, colour + 0.75 * (1 - colour))


def _object_colour(candidates: Tensor, background: Tensor, masks: Tensor) -> Tensor:
    """The first candidate colour far enough from the mean background under the object, (m, 3)."""
    area = masks.sum((2, 3)).clamp_min(1)
    under = (background * masks).sum((2, 3)) / area  # (m, 3)
    dist = (candidates - under.unsqueeze(1)).norm(dim=2)  # (m, K)
    ok = dist >= _MIN_CONTRAST
    # First acceptable candidate; the farthest one if none is (rare).
    first = torch.where(ok.any(1), ok.float().argmax(1), dist.argmax(1))
    return candidates[torch.arange(len(candidates)), first]


def _tight_boxes(masks: Tensor) -> Tensor:
    """``x0, y0, x1, y1`` (inclusive-exclusive pixel indices) of each mask's pixels, (n, 4)."""
    cols = masks[:, 0].any(1)  # (n, W)
    rows = masks[:, 0].any(2)  # (n, H)
    w, h = cols.shape[1], rows.shape[1]
    x0 = cols.float().argmax(1)
    x1 = w - cols.flip(1).float().argmax(1)
    y0 = rows.float().argmax(1)
    y1 = h - rows.flip(1).float().argmax(1)
    return torch.stack([x0, y0, x1, y1], 1).float()
