"""What an audit reads: image folders through datasets.ImageFolder, --image-size, --n all."""

from __future__ import annotations

import pytest
import torch

from captum_cf.audit import AuditInputError
from captum_cf.audit.data import load_data, parse_n
from captum_cf.datasets.folder import resize_center_crop


def _folder(tmp_path, sizes):
    from PIL import Image

    root = tmp_path / "imgs"
    gen = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate(sizes):
        cls = root / ("a" if i % 2 == 0 else "b") / "nested"
        cls.mkdir(parents=True, exist_ok=True)
        arr = (torch.rand(h, w, 3, generator=gen) * 255).byte().numpy()
        Image.fromarray(arr).save(cls / f"{i}.png")
        mask = torch.zeros(h, w, dtype=torch.uint8)
        mask[: h // 2, : w // 3] = 255
        Image.fromarray(mask.numpy()).save(cls / f"{i}_mask.png")
    return root


def test_mixed_sizes_need_image_size_and_masks_follow_the_resize(tmp_path) -> None:
    root = _folder(tmp_path, [(20, 30), (16, 16), (24, 12)])
    with pytest.raises(AuditInputError, match=r"pass --image-size S"):
        load_data(str(root), None)
    data = load_data(str(root), None, image_size=8)
    assert data.ids == ["a/nested/0.png", "a/nested/2.png", "b/nested/1.png"]
    assert data.has_masks and data.class_names == ["a", "b"]
    image, label, mask = data.dataset[0]
    assert image.shape == (3, 8, 8) and label == 0 and mask.dtype == torch.bool
    full = torch.zeros(1, 20, 30, dtype=torch.bool)
    full[:, :10, :10] = True
    assert torch.equal(mask, resize_center_crop(full, 8, nearest=True))


def test_n_subset_and_all(tmp_path) -> None:
    root = _folder(tmp_path, [(8, 8)] * 6)
    assert len(load_data(str(root), None).ids) == 6
    two = load_data(str(root), 2, seed=3).ids
    assert len(two) == 2 and two == sorted(two, key=lambda p: (p[0], int(p.split("/")[-1][:-4])))
    assert load_data(str(root), 2, seed=3).ids == two  # seeded
    assert parse_n("all") is None and parse_n("5") == 5
    for bad in ("0", "x"):
        with pytest.raises(AuditInputError, match="--n must be"):
            parse_n(bad)
    with pytest.raises(AuditInputError, match="--image-size applies to an image folder"):
        load_data("digits", 4, image_size=8)


def test_channels_option_and_the_subset_keeps_the_folders_colour(tmp_path) -> None:
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(torch.zeros(6, 6, 3, dtype=torch.uint8).numpy()).save(root / "a" / "c.png")
    for i in range(5):
        Image.fromarray(torch.full((6, 6), 40 * i, dtype=torch.uint8).numpy()).save(
            root / "b" / f"{i}.png"
        )
    # a seeded subset of two grey images is still read as the folder is: RGB
    subsets = [load_data(str(root), 2, seed=s) for s in range(6)]
    assert any("a/c.png" not in d.ids for d in subsets)
    assert all(d.dataset[0][0].shape == (3, 6, 6) for d in subsets)
    grey = load_data(str(root), None, channels=1)
    assert grey.dataset[0][0].shape == (1, 6, 6)
    with pytest.raises(AuditInputError, match="--channels applies to an image folder"):
        load_data("shapes", 4, channels=3)
