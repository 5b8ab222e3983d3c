"""ImageFolder: the one reader of users' image folders (audit and trainers)."""

from __future__ import annotations

import os

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


def test_photos_named_like_masks_are_images(tmp_path):
    """Only ``<image>_mask.png`` beside its image is a mask: ``gas_mask.jpg`` (a photo of a gas
    mask) and a ``_mask.png`` without its image were dropped without a word."""
    for name in ("gas_mask.jpg", "face_mask.JPG", "helmet.jpg", "lone_mask.png"):
        _save(tmp_path / "ppe" / name, np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "other" / "cam.png", np.zeros((4, 4, 3), np.uint8))
    ds = ImageFolder(str(tmp_path))
    assert ds.paths == ["other/cam.png", "ppe/face_mask.JPG", "ppe/gas_mask.jpg",
                        "ppe/helmet.jpg", "ppe/lone_mask.png"]
    assert not ds.has_masks
    # with a mask for every image, the masks are masks again
    for path in ds.paths:
        stem = os.path.splitext(path)[0]
        _save(tmp_path / f"{stem}_mask.png", np.zeros((4, 4), np.uint8))
    ds = ImageFolder(str(tmp_path))
    assert len(ds) == 5 and ds.has_masks


def test_bad_folders_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="root must be an image folder"):
        ImageFolder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no images found"):
        ImageFolder(str(tmp_path))
    _save(tmp_path / "a" / "x.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "a" / "y.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "a" / "x_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"1 of 2 images have a mask \(<image>_mask.png beside "
                       r"the image\) but a/y.png not: give every image a mask, or remove the "
                       r"mask files to audit without the pointing game"):
        ImageFolder(str(tmp_path))
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        ImageFolder(str(tmp_path / "a"), image_size=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "a" / "x_mask.png").unlink()
    with pytest.raises(ValueError, match="cannot read image"):
        ImageFolder(str(tmp_path))[2]


def test_wide_greyscale_files_are_scaled_not_clipped(tmp_path):
    # 16-bit PNG: Pillow's convert("L"/"RGB") clips every value above 255 to white; float TIFF
    # values in [0, 1] would all become 0 or 1 (black)
    wide = np.array([[0, 255, 256, 32768], [65535, 1000, 40000, 7]], dtype=np.uint16)
    _save(tmp_path / "a" / "x16.png", wide)
    floats = np.array([[0.0, 0.25, 0.5, 1.0], [-0.5, 2.0, 0.125, 0.75]], dtype=np.float32)
    _save(tmp_path / "b" / "xf.tif", floats, mode="F")
    assert Image.open(tmp_path / "a" / "x16.png").mode.startswith("I")  # not an 8-bit file
    ds = ImageFolder(str(tmp_path))
    assert ds.channels == 1
    expected16 = torch.from_numpy(wide.astype(np.float32)) / 65535
    assert torch.equal(ds[0][0], expected16[None])
    assert torch.equal(ds[1][0], torch.from_numpy(floats).clamp(0, 1)[None])
    rgb = ImageFolder(str(tmp_path), channels=3)
    assert rgb.channels == 3 and torch.equal(rgb[0][0], expected16[None].expand(3, -1, -1))


def test_channels_forces_grey_or_rgb(tmp_path):
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(5, 6), dtype=np.uint8)
    _save(tmp_path / "a" / "c.png", colour)
    _save(tmp_path / "b" / "g.png", grey)
    auto = ImageFolder(str(tmp_path))
    assert auto.channels == 3 and auto[1][0].shape == (3, 5, 6)
    as_grey = ImageFolder(str(tmp_path), channels=1)
    expected = np.asarray(Image.fromarray(colour).convert("L"), dtype=np.float32) / 255
    assert as_grey.channels == 1 and torch.equal(as_grey[0][0], torch.from_numpy(expected)[None])
    assert torch.equal(as_grey[1][0], torch.from_numpy(grey.astype(np.float32) / 255)[None])
    for bad in (0, 2, 4, True, "3"):
        with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
            ImageFolder(str(tmp_path), channels=bad)


def test_split_reads_the_test_folder_with_the_training_channels(tmp_path):
    from captum_cf.training.data import folder_split

    grey, colour = np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8)
    for split, arr in (("train", grey), ("test", colour)):
        for cls in ("a", "b"):
            _save(tmp_path / split / cls / "x.png", arr)
    assert ImageFolder(str(tmp_path / "test")).channels == 3  # on its own: colour
    x_tr, _, x_te, _, _ = folder_split(str(tmp_path))
    assert x_tr.shape[1] == x_te.shape[1] == 1


def test_large_jpegs_are_decoded_at_a_reduced_scale_close_to_the_full_decode(tmp_path,
                                                                             monkeypatch):
    from PIL import JpegImagePlugin

    from captum_cf.datasets.folder import _pixels

    yy, xx = np.mgrid[0:900, 0:1200]
    smooth = np.stack([(xx / 1200 * 255), (yy / 900 * 255), ((xx + yy) % 256)], -1)
    _save(tmp_path / "a" / "big.jpg", smooth.astype(np.uint8))
    _save(tmp_path / "a" / "small.png", np.zeros((40, 40, 3), np.uint8))
    asked = []
    real = JpegImagePlugin.JpegImageFile.draft

    def record(self, mode, size):
        asked.append(size)
        return real(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", record)
    ds = ImageFolder(str(tmp_path), image_size=64)
    x = ds[0][0]
    assert asked == [(128, 128)]  # the JPEG only, sides kept >= 2 x 64
    full = resize_center_crop(_pixels(Image.open(tmp_path / "a" / "big.jpg"), False), 64)
    assert x.shape == full.shape == (3, 64, 64)
    assert float((x - full).abs().mean()) < 0.01
    # without image_size the files keep their size: no reduced decode
    assert ImageFolder(str(tmp_path))[0][0].shape == (3, 900, 1200) and asked == [(128, 128)]


def test_a_reduced_jpeg_decode_of_odd_size_keeps_the_full_decodes_geometry_and_its_mask(
    tmp_path,
):
    # 2007 x 1511 decodes at 1/8 as 251 x 189, whose rounded resized width (42) differed from
    # the full image's (43): bars shifted by up to a pixel against their mask (0.35 at 32 px)
    from captum_cf.datasets.folder import _pixels

    img = np.full((1511, 2007, 3), 30, np.uint8)
    mask = np.zeros((1511, 2007), np.uint8)
    for left in range(100, 2007, 400):
        img[:, left : left + 120, 0] = 230
        mask[:, left : left + 120] = 255
    _save(tmp_path / "a" / "bars.jpg", img)
    _save(tmp_path / "a" / "bars_mask.png", mask)
    x, _, m = ImageFolder(str(tmp_path), image_size=32)[0]
    full = resize_center_crop(_pixels(Image.open(tmp_path / "a" / "bars.jpg"), False), 32)
    assert float((x - full).abs().max()) < 0.03  # the draft's own small blur, not a shift
    assert float((x - full).abs().mean()) < 0.0015
    # the bars on their mask as in the full decode (edges blend at 32 px either way)
    on_mask = float(((x[0] > 0.5) == m[0]).float().mean())
    assert on_mask >= float(((full[0] > 0.5) == m[0]).float().mean()) - 0.01


def test_resize_then_centre_crop_as_torchvision_evaluates(tmp_path):
    """``resize=R``: the shorter side to R, then the centre S x S (``Resize(R)`` +
    ``CenterCrop(S)``); the mask follows; without it R = S."""
    img = np.zeros((8, 16, 3), np.uint8)
    img[:, 6:10] = 255  # a bright centre band 4 px wide
    mask = np.zeros((8, 16), np.uint8)
    mask[:, 6:10] = 255
    _save(tmp_path / "a" / "x.png", img)
    _save(tmp_path / "a" / "x_mask.png", mask)
    ds = ImageFolder(str(tmp_path), image_size=4, resize=8)  # no resizing, a 4 x 4 centre crop
    x, _, m = ds[0]
    assert x.shape == (3, 4, 4) and torch.equal(x, torch.ones(3, 4, 4))
    assert torch.equal(m, torch.ones(1, 4, 4, dtype=torch.bool))
    wide = ImageFolder(str(tmp_path), image_size=4)  # 8x16 -> 4x8, centre 4x4: band and dark
    assert 0 < float(wide[0][0].mean()) < 1
    t = torch.rand(3, 30, 50)
    assert torch.equal(resize_center_crop(t, 10, resize=10), resize_center_crop(t, 10))
    want = torch.nn.functional.interpolate(t[None], size=(20, 33), mode="bilinear",
                                           align_corners=False, antialias=True)[0].clamp(0, 1)
    assert torch.equal(resize_center_crop(t, 10, resize=20), want[:, 5:15, 11:21])
    with pytest.raises(ValueError, match=r"resize \(3\) must be >= the image size \(4\)"):
        ImageFolder(str(tmp_path), image_size=4, resize=3)
    with pytest.raises(ValueError, match="resize 8 needs an image size"):
        ImageFolder(str(tmp_path), resize=8)
    with pytest.raises(ValueError, match="resize must be an int"):
        ImageFolder(str(tmp_path), image_size=4, resize=True)


def test_a_class_folder_without_images_is_refused_as_torchvision_does(tmp_path):
    for cls in ("cat", "dog"):
        _save(tmp_path / cls / "0.png", np.zeros((4, 4), np.uint8))
    assert ImageFolder(str(tmp_path)).labels.tolist() == [0, 1]
    # a notebook's checkpoint folder (sorted first) and an empty class (sorted last)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "notes-checkpoint.ipynb").write_text("{}")
    (tmp_path / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"class folders without images: \.ipynb_checkpoints, "
                                         r"zebra\. .* shift the labels"):
        ImageFolder(str(tmp_path))
    kept = ImageFolder(str(tmp_path), allow_empty=True)  # kept as classes: labels shift
    assert kept.classes == [".ipynb_checkpoints", "cat", "dog", "zebra"]
    assert kept.labels.tolist() == [1, 2]
    (tmp_path / "zebra").rmdir()
    (tmp_path / ".ipynb_checkpoints" / "notes-checkpoint.ipynb").unlink()
    (tmp_path / ".ipynb_checkpoints").rmdir()
    assert ImageFolder(str(tmp_path)).labels.tolist() == [0, 1]


def test_an_image_over_pillows_pixel_limit_is_named_with_the_limit(tmp_path, monkeypatch):
    # Pillow raises DecompressionBombError (not an OSError) for more than twice
    # MAX_IMAGE_PIXELS pixels: it escaped the reader's error handling as a raw traceback
    _save(tmp_path / "a" / "small.png", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "a" / "wide.png", np.zeros((10, 30, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    ds = ImageFolder(str(tmp_path), channels=3)
    assert ds[0][0].shape == (3, 4, 4)
    with pytest.raises(ValueError, match=r"cannot read image .*wide\.png.*MAX_IMAGE_PIXELS "
                                         r"\(100\).*raise that limit"):
        ds[1]
    (tmp_path / "a" / "small.png").unlink()
    with pytest.raises(ValueError, match=r"wide\.png.*MAX_IMAGE_PIXELS"):
        ImageFolder(str(tmp_path))  # the colour probe reads the header: same error


def test_the_colour_probe_reads_headers_only(tmp_path, monkeypatch):
    for i in range(3):
        _save(tmp_path / "a" / f"{i}.png", np.full((5, 5), 9 * i, np.uint8))
    loads = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda im: loads.append(1) or real_load(im))
    ds = ImageFolder(str(tmp_path))
    assert ds.channels == 1 and loads == []  # decided from the modes, no pixel decoded
    assert ds[2][0].shape == (1, 5, 5) and loads


def test_a_mask_must_have_its_images_size(tmp_path):
    _save(tmp_path / "a" / "x.png", np.zeros((8, 10, 3), np.uint8))
    _save(tmp_path / "a" / "x_mask.png", np.zeros((8, 8), np.uint8))
    for size in (None, 4):  # with image_size both would be resized separately: misaligned
        with pytest.raises(ValueError, match=r"the mask .*x_mask\.png is 8x8 but its image "
                                             r".*x\.png is 8x10"):
            ImageFolder(str(tmp_path), image_size=size)[0]


def test_linked_folders_are_followed_as_torchvision_follows_them(tmp_path):
    import os

    root = tmp_path / "data"
    _save(root / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "elsewhere" / "x" / "1.png", np.full((4, 4, 3), 9, np.uint8))
    _save(tmp_path / "b_images" / "2.png", np.full((4, 4, 3), 7, np.uint8))
    os.symlink(tmp_path / "elsewhere" / "x", root / "a" / "linked")  # a linked sub-folder
    os.symlink(tmp_path / "b_images", root / "b")                    # a linked class folder
    os.symlink(tmp_path, root / "a" / "up")  # a link above the root: not followed (no loop)
    os.symlink(root / "a", root / "a" / "linked" / "back")  # a cycle: each folder read once
    ds = ImageFolder(str(root))
    assert ds.classes == ["a", "b"]
    assert ds.paths == ["a/0.png", "a/linked/1.png", "b/2.png"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert int(ds[1][0].mul(255).round()[0, 0, 0]) == 9


def test_a_macos_resource_fork_file_is_named_as_such(tmp_path):
    _save(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a" / "._x.png").write_bytes(b"\x00\x05\x16\x07Mac OS X        ")
    ds = ImageFolder(str(tmp_path), channels=3)
    with pytest.raises(ValueError, match=r"cannot read image .*\._x\.png: .*macOS resource-fork "
                                         r"file, not an image: remove the \._\* files"):
        ds[0]
    assert ds[1][0].shape == (3, 4, 4)


def test_a_link_to_the_filesystem_root_counts_as_above_the_tree():
    from captum_cf.datasets.folder import _holds

    assert _holds("/", "/data/photos") and _holds("/data", "/data/photos")
    assert _holds("/data/photos", "/data/photos")
    assert not _holds("/data/photos/cat", "/data/photos") and not _holds("/other", "/data")


@pytest.mark.parametrize("name", ["a_mask.PNG", "a_mask.jpg"])
def test_a_mask_beside_its_image_in_another_format_is_refused(tmp_path, name):
    """``a_mask.PNG`` beside ``a.jpg`` is no image of the class (it was audited as one) and no
    mask the reader finds (masks are ``<image>_mask.png``): one line saying how to name it."""
    _save(tmp_path / "c" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "c" / name, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=rf"{name} is named as the mask of a, but masks are read "
                       r"from <image>_mask.png: rename it to a_mask.png"):
        ImageFolder(str(tmp_path))


def test_a_mask_with_transparency_is_read_from_its_alpha(tmp_path):
    # an editor's exported selection: a black opaque object on a transparent white background;
    # read as grey values it came out as the complement of the object
    _save(tmp_path / "a" / "x.png", np.zeros((8, 8, 3), np.uint8))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white, transparent
    rgba[2:5, 3:6] = (0, 0, 0, 255)  # the object: black, opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "x_mask.png")
    _, _, m = ImageFolder(str(tmp_path))[0]
    want = torch.zeros(1, 8, 8, dtype=torch.bool)
    want[:, 2:5, 3:6] = True
    assert torch.equal(m, want)
    # fully opaque: the values decide, as for any mask
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "x_mask.png")
    assert torch.equal(ImageFolder(str(tmp_path))[0][2], ~want)


def test_a_mask_whose_image_was_deleted_is_named_as_such(tmp_path):
    # the message said the mask had no mask: "give every image a mask"
    for name in ("x", "y"):
        _save(tmp_path / "a" / f"{name}.png", np.zeros((4, 4), np.uint8))
        _save(tmp_path / "a" / f"{name}_mask.png", np.full((4, 4), 255, np.uint8))
    _save(tmp_path / "a" / "gone_mask.png", np.full((4, 4), 255, np.uint8))
    with pytest.raises(ValueError, match=r"a/gone_mask.png has no mask beside it while other "
                                         r"images have one: a mask whose image is gone \(no "
                                         r"a/gone\.\* beside it\)\? .* a photo with that name\? "
                                         r"give it its mask a/gone_mask_mask.png"):
        ImageFolder(str(tmp_path))
