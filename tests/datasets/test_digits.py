"""load_digits: sizes, ranges, the fixed stratified split, copies, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits as sk_load_digits

from captum_cf.datasets import load_digits


def test_split_sizes_shapes_and_ranges() -> None:
    train, test = load_digits("train"), load_digits("test")
    (x_tr, y_tr), (x_te, y_te) = train.tensors, test.tensors
    assert x_tr.shape == (1437, 1, 32, 32) and x_te.shape == (360, 1, 32, 32)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert float(x_tr.min()) == 0.0 and float(x_tr.max()) == 1.0
    assert float(x_te.min()) >= 0.0 and float(x_te.max()) <= 1.0
    assert set(y_tr.tolist()) == set(range(10)) == set(y_te.tolist())


def test_split_is_a_stratified_partition_of_the_sklearn_images() -> None:
    bunch = sk_load_digits()
    full = torch.as_tensor(bunch.images, dtype=torch.float32) / 16
    x_tr, y_tr = load_digits("train", size=8).tensors
    x_te, y_te = load_digits("test", size=8).tensors
    # size=8 is the original resolution: exactly value / 16, and train + test = all images.
    union = torch.cat([x_tr, x_te])[:, 0].flatten(1)
    expected = full.flatten(1)
    assert torch.equal(_sorted_rows(union), _sorted_rows(expected))
    assert torch.equal(torch.cat([y_tr, y_te]).bincount(), torch.as_tensor(bunch.target).bincount())
    # Stratified: each class holds its share of the 360 test images, within one image.
    share = torch.as_tensor(bunch.target).bincount().double() * 360 / 1797
    assert (y_te.bincount().double() - share).abs().max() <= 1.0


def test_upsampling_keeps_the_digit_in_place() -> None:
    small, _ = load_digits("test", size=8).tensors
    big, _ = load_digits("test", size=32).tensors
    back = F.avg_pool2d(big, 4)
    # bilinear upsampling blurs a little (measured 0.07); a transposed, mirrored or shifted
    # image is much further away (measured 0.35, 0.22, 0.24)
    assert (back - small).abs().mean() < 0.1
    assert (back.transpose(2, 3) - small).abs().mean() > 0.2
    assert (back.flip(3) - small).abs().mean() > 0.2
    assert (back.roll(1, 3) - small).abs().mean() > 0.2


def test_deterministic_and_returns_copies() -> None:
    a = load_digits("test", size=16)
    assert a.tensors[0].shape == (360, 1, 16, 16)
    a.tensors[0].fill_(0.5)
    a.tensors[1].fill_(3)
    b = load_digits("test", size=16)
    assert float(b.tensors[0].max()) == 1.0
    assert torch.equal(b.tensors[1], load_digits("test", size=16).tensors[1])
    assert not torch.equal(b.tensors[1], a.tensors[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": "val"}, ValueError, "split"),
        ({"size": 4}, ValueError, "size"),
        ({"size": 32.0}, TypeError, "size"),
        ({"size": True}, TypeError, "size"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_digits(**kwargs)


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    order = sorted(range(len(x)), key=lambda i: x[i].tolist())
    return x[order]
