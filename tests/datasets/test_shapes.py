"""SyntheticShapes: ranges, determinism, masks/boxes/parts ground truth, textured backgrounds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from captum_cf.datasets import SyntheticShapes


@pytest.fixture(scope="module")
def shapes() -> SyntheticShapes:
    return SyntheticShapes(200, size=64, seed=3)


def _mean_in(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour (N, 3) of ``x`` over ``mask`` (N, 1, H, W)."""
    return (x * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)


def test_shapes_dtypes_ranges_and_balance(shapes: SyntheticShapes) -> None:
    assert shapes.images.shape == (200, 3, 64, 64) and shapes.images.dtype == torch.float32
    assert float(shapes.images.min()) >= 0 and float(shapes.images.max()) <= 1
    assert shapes.masks.shape == shapes.parts.shape == (200, 1, 64, 64)
    assert shapes.masks.dtype == shapes.parts.dtype == torch.bool
    assert shapes.boxes.shape == (200, 4) and shapes.labels.dtype == torch.int64
    assert shapes.labels.bincount().tolist() == [50, 50, 50, 50]
    assert shapes.class_names == ["circle", "square", "triangle", "square with dot"]
    assert shapes.part_pairs == [(1, 3)] and shapes.num_classes == 4
    image, label = shapes[7]
    assert torch.equal(image, shapes.images[7]) and int(label) == int(shapes.labels[7])
    assert len(shapes) == 200 and len(shapes.to_tensor_dataset()) == 200


def test_deterministic_under_seed() -> None:
    a, b, c = SyntheticShapes(20, 32, seed=5), SyntheticShapes(20, 32, seed=5), SyntheticShapes(
        20, 32, seed=6)
    for name in ("images", "labels", "masks", "boxes", "parts"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.images, c.images)


def test_box_is_the_tight_box_of_the_mask(shapes: SyntheticShapes) -> None:
    for mask, box in zip(shapes.masks[:, 0], shapes.boxes.long()):
        x0, y0, x1, y1 = box.tolist()
        assert mask.sum() > 0
        assert mask[y0:y1, x0:x1].sum() == mask.sum()  # the box holds the whole object
        # ... and is tight: its first/last rows and columns touch the object
        assert mask[y0].any() and mask[y1 - 1].any()
        assert mask[:, x0].any() and mask[:, x1 - 1].any()


def test_objects_are_the_right_shape(shapes: SyntheticShapes) -> None:
    # fill ratio of the box: circle pi/4, square 1, triangle 1/2 (up to pixelation)
    x0, y0, x1, y1 = shapes.boxes.unbind(1)
    fill = shapes.masks.sum((1, 2, 3)) / ((x1 - x0) * (y1 - y0))
    for label, expected in ((0, torch.pi / 4), (1, 1.0), (2, 0.5), (3, 1.0)):
        got = fill[shapes.labels == label]
        assert (got - expected).abs().max() < 0.12, (label, got.min(), got.max())


def test_parts_only_for_the_pair_classes_inside_the_object(shapes: SyntheticShapes) -> None:
    area = shapes.parts.sum((1, 2, 3)).float()
    paired = (shapes.labels == 1) | (shapes.labels == 3)
    assert (area[~paired] == 0).all()
    assert (area[paired] > 0).all()
    assert not (shapes.parts & ~shapes.masks).any()  # the dot lies on the square
    ratio = area[paired] / shapes.masks.sum((1, 2, 3))[paired]
    assert 0.03 <= float(ratio.min()) and float(ratio.max()) <= 0.07  # a small local part


def test_the_part_is_the_only_difference_of_the_pair(shapes: SyntheticShapes) -> None:
    # Class 3 has a dot of a contrasting colour where class 1 has the object's own colour.
    x, y = shapes.images, shapes.labels
    rest = shapes.masks & ~shapes.parts
    diff = (_mean_in(x, shapes.parts) - _mean_in(x, rest)).norm(dim=1)
    assert float(diff[y == 3].min()) > 0.4  # measured >= 0.63
    assert float(diff[y == 1].max()) < 0.25  # measured <= 0.15 (object shading)
    # and the squares of both classes have the same size distribution
    area = shapes.masks.sum((1, 2, 3)).float()
    assert abs(float(area[y == 1].mean() / area[y == 3].mean()) - 1) < 0.15


def test_background_is_textured_and_objects_contrast(shapes: SyntheticShapes) -> None:
    x, masks = shapes.images, shapes.masks
    far = ~(F.max_pool2d(masks.float(), 9, 1, 4) > 0)
    ring = (F.max_pool2d(masks.float(), 7, 1, 3) > 0) & ~masks
    for i in range(len(x)):
        bg = x[i][:, far[i, 0]]
        assert float(bg.std(1).mean()) > 0.05  # measured >= 0.10: not a constant background
    contrast = (_mean_in(x, masks) - _mean_in(x, ring)).norm(dim=1)
    assert float(contrast.min()) > 0.2  # measured >= 0.32
    # colour alone does not give the class away: every class spans a wide colour range
    colour = _mean_in(x, masks)
    for label in range(4):
        assert (colour[shapes.labels == label].std(0) > 0.15).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must"),
        ({"n": 2.5}, TypeError, "n must"),
        ({"n": 4, "size": 16}, ValueError, "size"),
        ({"n": 4, "seed": "a"}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SyntheticShapes(**kwargs)


def test_misplaced_dots_paint_one_dot_away_from_its_place(shapes: SyntheticShapes) -> None:
    neg = shapes.misplaced_dots(seed=0)
    sq = shapes.labels == 1
    x, parts, masks = shapes.images[sq], shapes.parts[sq], shapes.masks[sq]
    assert neg.shape == x.shape and neg.dtype == torch.float32
    assert float(neg.min()) >= 0 and float(neg.max()) <= 1
    changed = (neg != x).any(1, keepdim=True)
    assert not bool((changed & parts).any())  # never where the dot belongs
    area = changed.sum((1, 2, 3)).float()
    # a dot of the data set's size: about as many pixels as the part, in every image
    assert bool((area > 0.5 * parts.sum((1, 2, 3))).all()), area
    assert bool((area < 3 * parts.sum((1, 2, 3))).all()), area
    inside = (changed & masks).sum((1, 2, 3)) > 0.5 * area
    assert 0.25 < inside.float().mean() < 0.75  # about half inside the square, half outside
    # the dot's colour follows the data set's rule: darker on light squares and vice versa
    real = shapes.images[shapes.labels == 3]
    dot = (neg - x).sum(1, keepdim=True)
    light = _mean_in(x, masks & ~parts).mean(1) > 0.5
    sign = ((dot * changed).sum((1, 2, 3)) < 0)
    assert bool((sign[inside] == light[inside]).all()) and real.shape[0] > 0
    assert torch.equal(neg, shapes.misplaced_dots(seed=0))
    assert not torch.equal(neg, shapes.misplaced_dots(seed=1))
    with pytest.raises(TypeError, match="seed"):
        shapes.misplaced_dots(seed=1.0)  # type: ignore[arg-type]


def test_subset_is_the_first_images_with_every_field(shapes: SyntheticShapes) -> None:
    small = shapes.subset(20)
    assert len(small) == 20 and small.n == 20 and len(shapes) == 200  # the original is untouched
    for name in ("images", "masks", "parts", "labels", "boxes"):
        assert torch.equal(getattr(small, name), getattr(shapes, name)[:20]), name
    image, label = small[19]
    assert torch.equal(image, shapes.images[19]) and int(label) == int(shapes.labels[19])
    # the geometry follows: misplaced dots of the subset are painted on its own squares, never
    # where their dot belongs
    neg = small.misplaced_dots(seed=0)
    sq = small.labels == 1
    assert neg.shape[0] == int(sq.sum()) > 0
    changed = (neg != small.images[sq]).any(1, keepdim=True)
    assert bool(changed.flatten(1).any(1).all()) and not bool((changed & small.parts[sq]).any())
    assert len(shapes.subset(200)) == 200
    for bad, error in ((0, ValueError), (201, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n must"):
            shapes.subset(bad)  # type: ignore[arg-type]
