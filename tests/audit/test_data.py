"""What an audit reads: image folders through datasets.ImageFolder, --image-size, --n all."""

from __future__ import annotations

import re

import pytest
import torch

from captum_cf.audit import AuditInputError
from captum_cf.audit.data import load_data, parse_n
from captum_cf.datasets import ImageFolder
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


def test_an_image_over_pillows_pixel_limit_stops_the_size_check_clearly(tmp_path,
                                                                        monkeypatch) -> None:
    from PIL import Image

    root = _folder(tmp_path, [(8, 8), (8, 8), (20, 30)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 600 pixels > twice the limit
    with pytest.raises(AuditInputError, match=r"cannot read image .*2\.png.*MAX_IMAGE_PIXELS"):
        load_data(str(root), None, channels=3)


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


def test_train_folder_is_read_like_the_audited_one(tmp_path) -> None:
    from PIL import Image

    from captum_cf.audit.data import load_train_folder

    audited = load_data(str(_folder(tmp_path, [(12, 12)] * 4)), None, image_size=8)
    train = tmp_path / "train"
    for cls in ("a", "b"):
        (train / cls).mkdir(parents=True)
        for i in range(3):  # greyscale and of another size: read as RGB 8 x 8, as audited
            arr = torch.full((10, 14), 30 * i, dtype=torch.uint8).numpy()
            Image.fromarray(arr).save(train / cls / f"{i}.png")
    samples = load_train_folder(str(train), audited, image_size=8, cache_dir=tmp_path / "cache")
    images, labels = samples.tensors
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert images.dtype == torch.uint8  # held as 8-bit images: a quarter of float32's memory
    assert images[:, :, 0, 0].tolist() == [[30 * i] * 3 for i in range(3)] * 2
    assert torch.equal(images[:, 0], images[:, 2])  # a grey image's value in every channel
    assert len(list((tmp_path / "cache").iterdir())) == 1
    cached = load_train_folder(str(train), audited, image_size=8, cache_dir=tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(cached.tensors, samples.tensors))
    (train / "c").mkdir()
    Image.fromarray(torch.zeros(8, 8, dtype=torch.uint8).numpy()).save(train / "c" / "x.png")
    with pytest.raises(AuditInputError, match=r"has the classes \['a', 'b', 'c'\].*same class"):
        load_train_folder(str(train), audited, image_size=8)
    with pytest.raises(AuditInputError, match="--train-data: root must be an image folder"):
        load_train_folder(str(tmp_path / "missing"), audited, image_size=8)
    with pytest.raises(AuditInputError, match="digits and shapes bring their training images"):
        load_train_folder(str(train), load_data("digits", 2), image_size=None)


def test_cli_train_data_enables_nearest_sample_and_is_part_of_resume(
    tmp_path, image_folder, model_file, capsys
) -> None:
    from captum_cf.cli import main

    images = image_folder(n_per_class=2)
    train_a = image_folder(n_per_class=3, name="train_a")
    train_b = image_folder(n_per_class=4, name="train_b")
    out = str(tmp_path / "report")
    two = tmp_path / "two.py"  # the folders' two classes
    two.write_text("import torch, torch.nn as nn\n"
                   "def make():\n    torch.manual_seed(0)\n"
                   "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),\n"
                   "                         nn.Linear(4 * 14 * 14, 2))\n")
    common = ["audit", "--model", f"{two}:make", "--data", str(images), "--n", "all",
              "--methods", "occlusion", "--baselines", "nearest-sample", "--steps", "2",
              "--sanity-n", "0", "--no-progress", "--out", out]
    assert main(common) == 2  # a folder has no training images of its own
    assert "'nearest-sample' is not available for this model and data: it needs training " \
        "images of the classes of --data: --train-data DIR" in capsys.readouterr().err
    three_classes = ["--model", model_file()]  # samples of 2 classes cannot serve 3
    assert main([*common, *three_classes, "--train-data", str(train_a)]) == 2
    assert "'nearest-sample' is not available" in capsys.readouterr().err
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main([*common, *cache]) == 2
    assert "--cache-dir keeps the decoded --train-data images" in capsys.readouterr().err
    assert main([*common, "--train-data", str(train_a), *cache]) == 0
    capsys.readouterr()
    assert main([*common, "--train-data", str(train_a), "--resume", *cache]) == 0  # cached
    # the time is summed over the store's runs; the resumed run says its own
    assert re.search(r"images in [0-9.]+ s; this run [0-9.]+ s, setup included; report",
                     capsys.readouterr().out)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    capsys.readouterr()
    assert main([*common, "--train-data", str(train_b), "--resume"]) == 2
    assert "settings differ (train_data: stored" in capsys.readouterr().err


def test_cli_resize_crops_like_torchvision_eval_and_is_part_of_resume(
    tmp_path, image_folder, model_file, capsys
) -> None:
    import json

    from captum_cf.cli import main

    images = image_folder(n_per_class=2, side=24)
    out = tmp_path / "report"
    common = ["audit", "--model", model_file(side=16), "--data", str(images), "--n", "all",
              "--image-size", "16", "--methods", "occlusion", "--baselines", "zero",
              "--steps", "2", "--sanity-n", "0", "--no-progress", "--out", str(out)]
    assert main([*common, "--resize", "20"]) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["data"] == f"{images} (shorter side 20, centre crop 16)"
    assert config["image_shape"] == [3, 16, 16]
    capsys.readouterr()
    assert main([*common, "--resize", "24", "--resume"]) == 2  # other pixels: not resumed
    assert "settings differ (data" in capsys.readouterr().err
    assert main([*common, "--resize", "12"]) == 2
    assert "--resize (12) must be >= the image size (16)" in capsys.readouterr().err
    assert main([*common[:7], *common[9:], "--resize", "20"]) == 2  # without --image-size
    assert "--resize 20 needs an image size" in capsys.readouterr().err
    ds = load_data(str(images), None, image_size=16, resize=20).dataset
    want = resize_center_crop(ImageFolder(str(images))[0][0], 16, resize=20)
    assert torch.equal(ds[0][0], want)


def test_a_class_folder_without_images_stops_audit_and_training_before_any_work(
    tmp_path, image_folder, model_file, capsys
) -> None:
    from captum_cf.cli import main

    images = image_folder(n_per_class=2, side=16)
    (images / ".ipynb_checkpoints").mkdir()  # what opening a notebook in the folder leaves
    out = tmp_path / "report"
    assert main(["audit", "--model", model_file(side=16), "--data", str(images), "--n", "all",
                 "--methods", "occlusion", "--baselines", "zero", "--no-progress",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "class folders without images: .ipynb_checkpoints" in err
    assert "Traceback" not in err and not out.exists()
    weights = tmp_path / "clf.pt"
    assert main(["train", "classifier", "--data", str(images), "--out", str(weights),
                 "--epochs", "1", "--no-progress"]) == 2
    assert "class folders without images: .ipynb_checkpoints" in capsys.readouterr().err
    assert not weights.exists()
