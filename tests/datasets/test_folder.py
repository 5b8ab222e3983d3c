"""ImageFolder: the one reader of users' image folders (audit and trainers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from captum_cf.datasets import ImageFolder
from captum_cf.datasets.folder import resize_center_crop


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for cls, n in (("cat", 2), ("dog", 1)):
        for i in range(n):
            arr = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
            _save(tmp_path / cls / f"im{i}.png", arr)
            arrays[f"{cls}/im{i}.png"] = arr
    (tmp_path / "notes.txt").write_text("not a class")
    (tmp_path / "cat" / "readme.txt").write_text("not an image")
    return tmp_path, arrays


def test_reads_pixels_labels_and_paths_exactly(tree):
    root, arrays = tree
    ds = ImageFolder(str(root))
    assert ds.classes == ["cat", "dog"]
    assert ds.paths == ["cat/im0.png", "cat/im1.png", "dog/im0.png"]
    assert ds.labels.tolist() == [0, 0, 1]
    for i, rel in enumerate(ds.paths):
        x, y = ds[i]
        expected = torch.from_numpy(arrays[rel]).permute(2, 0, 1).float() / 255
        assert torch.equal(x, expected)
        assert y == ds.labels[i]


def test_nested_folders_belong_to_their_class(tmp_path):
    _save(tmp_path / "a" / "deep" / "er" / "x.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "b" / "y.png", np.zeros((4, 4), np.uint8))
    ds = ImageFolder(str(tmp_path))
    assert ds.paths == ["a/deep/er/x.png", "b/y.png"]
    assert ds.labels.tolist() == [0, 1]
    assert ds[0][0].shape == (1, 4, 4)  # all grey: one channel


def test_sizes_differ_without_image_size_asks_for_it(tmp_path):
    _save(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "a" / "y.png", np.zeros((5, 4, 3), np.uint8))
    ds = ImageFolder(str(tmp_path))
    ds[0]
    with pytest.raises(ValueError, match="--image-size"):
        ds[1]
    resized = ImageFolder(str(tmp_path), image_size=3)
    assert resized[0][0].shape == resized[1][0].shape == (3, 3, 3)


def test_resize_center_crop_keeps_the_centre():
    # a 4x8 image whose outer quarters differ from the centre: a 4x4 crop keeps the centre
    t = torch.zeros(1, 4, 8)
    t[..., 2:6] = 1.0
    out = resize_center_crop(t, 4)
    assert torch.equal(out, torch.ones(1, 4, 4))
    # shorter side resized: 2x4 -> 4x8 -> centre 4x4, values stay in [0, 1]
    up = resize_center_crop(torch.rand(3, 2, 4), 4)
    assert up.shape == (3, 4, 4) and up.min() >= 0 and up.max() <= 1


def test_masks_follow_the_image_with_nearest_resize(tmp_path):
    img = np.zeros((4, 8, 3), np.uint8)
    mask = np.zeros((4, 8), np.uint8)
    mask[:, 4:6] = 255
    _save(tmp_path / "a" / "x.png", img)
    _save(tmp_path / "a" / "x_mask.png", mask)
    ds = ImageFolder(str(tmp_path), image_size=8)
    assert ds.has_masks and len(ds) == 1  # the mask file is not an image of its own
    x, y, m = ds[0]
    assert x.shape == (3, 8, 8) and m.dtype == torch.bool and m.shape == (1, 8, 8)
    # 4x8 -> 8x16, centre crop columns 4..11: mask columns 8..11 of the 16-wide image are set
    expected = torch.zeros(1, 8, 8, dtype=torch.bool)
    expected[..., 4:8] = True
    assert torch.equal(m, expected)


def test_bad_folders_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="root must be an image folder"):
        ImageFolder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no images found"):
        ImageFolder(str(tmp_path))
    _save(tmp_path / "a" / "x.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "a" / "y.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "a" / "x_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="masks are given for some images but not for"):
        ImageFolder(str(tmp_path))
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        ImageFolder(str(tmp_path / "a"), image_size=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "a" / "x_mask.png").unlink()
    with pytest.raises(ValueError, match="cannot read image"):
        ImageFolder(str(tmp_path))[2]
