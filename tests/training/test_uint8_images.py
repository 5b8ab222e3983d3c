"""Training sets held as ``uint8``: every trainer trains exactly as on the same images in float.

Image folders are decoded once into a ``uint8`` tensor (a quarter of float32's memory on the
host and on the training device); each trainer turns a drawn batch into float32 in [0, 1]
(``unit_images``). The contract checked here: given images whose float values are ``k / 255``,
training on the ``uint8`` tensor ``k`` gives bit-identical weights and metrics, on the ``device``
fixture's device.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from training_helpers import u8_images

from captum_cf._nearest import nearest_index
from captum_cf.generative import GANMEXConfig, GANMEXGenerator, GANMEXTrainConfig, GANMEXTrainer
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import (
    ExaggerationTrainConfig,
    ExaggerationTrainer,
    evaluate_exaggeration,
)
from captum_cf.generative.ganmex_trainer import evaluate_counterfactuals
from captum_cf.inpainters import LearnedInpainter
from captum_cf.robust import adversarial_train, robust_accuracy
from captum_cf.training.data import (
    channel_mean_std,
    check_data,
    check_training_images,
    folder_images,
    folder_split,
    unit_images,
)
from captum_cf.zoo.train import ClassifierTrainer, evaluate_accuracy

pytestmark = pytest.mark.simdev


def _classifier(device: torch.device, size: int = 8) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 3)).to(device)


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unit_images_is_the_float_reading_of_the_bytes() -> None:
    u8 = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = unit_images(u8)
    assert f.dtype == torch.float32 and torch.equal(f, u8.float() / 255)
    assert float(f.min()) == 0.0 and float(f.max()) == 1.0
    x = torch.rand(2, 3, 4, 4)
    assert unit_images(x) is x  # float images pass through untouched


def test_channel_mean_std_of_uint8_matches_float() -> None:
    u8, _ = u8_images(40)
    u8 = torch.cat([u8, 255 - u8], 1)  # two channels with different statistics
    mean, std = channel_mean_std(u8, chunk=7)  # several chunks, the last one partial
    f = u8.double() / 255
    torch.testing.assert_close(mean, f.mean(dim=(0, 2, 3)).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(std, f.std(dim=(0, 2, 3)).float(), rtol=0, atol=1e-6)
    x = torch.rand(5, 3, 4, 4)  # float: the plain reductions, unchanged
    assert torch.equal(channel_mean_std(x)[0], x.mean(dim=(0, 2, 3)))


def test_check_training_images_names_what_is_accepted() -> None:
    u8, _ = u8_images()
    assert check_training_images(u8) is u8
    with pytest.raises(TypeError, match="uint8, 0..255, or float"):
        check_training_images(u8.int(), "images")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        check_training_images(u8[0])
    with pytest.raises(ValueError, match="empty"):
        check_training_images(u8[:0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_training_images(u8.float())  # float values must be in [0, 1]
    with pytest.raises(ValueError, match="workers must be an int >= 0"):
        check_data("digits", workers=-1)


def test_nearest_in_chunks_equals_one_cdist(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    refs = torch.randint(0, 256, (50, 1, 4, 4), generator=g, dtype=torch.uint8)
    points = torch.rand(9, 16, generator=g)
    points[:3] = refs[[7, 31, 49]].flatten(1).float() / 255  # exact matches in later chunks
    want = torch.cdist(points, unit_images(refs).flatten(1)).argmin(1)
    for chunk in (1, 7, 50, 8192):
        got = nearest_index(points.to(device), refs.to(device), chunk)
        assert torch.equal(got.cpu(), want), chunk
    assert nearest_index(points, refs, 7)[:3].tolist() == [7, 31, 49]


def test_classifier_trainer_uint8_equals_float(device: torch.device) -> None:
    u8, y = u8_images()
    runs = []
    for images in (u8, unit_images(u8)):
        model = _classifier(device)
        trainer = ClassifierTrainer(model, images, y, epochs=10, batch_size=8, lr=0.05,
                                    max_shift=1, device=device)
        trainer.fit(trainer.total_steps)
        assert trainer.images.dtype == images.dtype  # held as given: uint8 stays uint8
        runs.append((_weights(model), trainer.epoch_losses,
                     evaluate_accuracy(model.eval(), images, y)))
    assert _same(runs[0][0], runs[1][0]) and runs[0][1:] == runs[1][1:]
    assert runs[0][2] > 0.9  # it learned the two bright halves


def test_adversarial_training_uint8_equals_float(device: torch.device) -> None:
    u8, y = u8_images()
    runs = []
    for images in (u8, unit_images(u8)):
        model = _classifier(device)
        history = adversarial_train(model, (images, y), eps=0.5, steps=3, attack_steps=2,
                                    batch_size=8, log_every=1, device=device)
        runs.append((_weights(model), history,
                     robust_accuracy(model, images.to(device), y.to(device), eps=0.5, steps=2)))
    assert _same(runs[0][0], runs[1][0]) and runs[0][1:] == runs[1][1:]


def test_inpainter_fit_uint8_equals_float(device: torch.device) -> None:
    g = torch.Generator().manual_seed(2)
    u8 = torch.randint(0, 256, (8, 1, 16, 16), generator=g, dtype=torch.uint8)
    runs = []
    for images in (u8, unit_images(u8)):
        torch.manual_seed(0)
        model = LearnedInpainter({"widths": [4, 8, 8], "dilations": [2], "channels": 1})
        losses = model.to(device).fit(images, steps=3, batch_size=4, crop=12,
                                      show_progress=False)
        runs.append((_weights(model), losses))
    assert _same(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_ganmex_trainer_uint8_equals_float(device: torch.device) -> None:
    u8, y = u8_images()
    cfg = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                       num_residual=1, critic_channels=4, critic_layers=2)
    train = GANMEXTrainConfig(batch_size=6, val_images=6, focus_pairs=((1, 2),), focus_share=0.5)
    runs = []
    for images in (u8, unit_images(u8)):
        clf = _classifier(device)
        torch.manual_seed(0)
        generator = GANMEXGenerator(cfg)
        trainer = GANMEXTrainer(generator, clf, images, y, images[:6], y[:6], config=train,
                                log_every=1, validate_every=2, device=device)
        assert trainer.images.dtype == images.dtype
        history = trainer.fit(4)
        generator.eval()
        targets = (y[:6] + 1) % 3
        metrics = evaluate_counterfactuals(generator, clf, images[:6].to(device), targets,
                                           reference=(images, y), reference_chunk=5)
        runs.append((_weights(generator), _weights(trainer.critic), history, metrics,
                     trainer.best["metrics"]))
    assert _same(runs[0][0], runs[1][0]) and _same(runs[0][1], runs[1][1])
    assert runs[0][2:] == runs[1][2:]


def test_exaggeration_trainer_uint8_equals_float(device: torch.device) -> None:
    u8, y = u8_images()
    cfg = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1,
                             critic_channels=4, num_bins=5, positive_class=1, num_classes=3)
    train = ExaggerationTrainConfig(batch_size=8, val_images=6, recalibration_batches=2)
    runs = []
    for images in (u8, unit_images(u8)):
        clf = _classifier(device)
        torch.manual_seed(0)
        trainer = ExaggerationTrainer(ExaggerationGenerator(cfg), clf, images, y, images[:6],
                                      config=train, log_every=1, validate_every=2,
                                      device=device)
        history = trainer.fit(3)
        test = evaluate_exaggeration(trainer.recalibrated(), clf, images.to(device))
        runs.append((_weights(trainer.generator), history, test, trainer.best["metrics"]))
    assert _same(runs[0][0], runs[1][0]) and runs[0][1:] == runs[1][1:]


def _folder(root, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Two class folders of 8-bit RGB PNGs; returns the pixel arrays in sorted file order."""
    rng = np.random.default_rng(0)
    arrays = []
    for i, (h, w) in enumerate(sizes):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        d = root / ("a" if i % 2 == 0 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(d / f"{i:02d}.png")
    for cls in ("a", "b"):
        for path in sorted((root / cls).iterdir()):
            arrays.append(np.array(Image.open(path)))
    return arrays


def test_folder_images_uint8_holds_the_files_bytes(tmp_path) -> None:
    arrays = _folder(tmp_path, [(12, 12)] * 6)
    x, y, classes = folder_images(str(tmp_path), dtype=torch.uint8)
    assert x.dtype == torch.uint8 and classes == ["a", "b"] and y.tolist() == [0] * 3 + [1] * 3
    want = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])
    assert torch.equal(x, want)  # 8-bit files at their own size: exact
    f, _, _ = folder_images(str(tmp_path), dtype=torch.float32, workers=1)
    assert torch.equal(unit_images(x), f)
    with pytest.raises(ValueError, match="dtype must be"):
        folder_images(str(tmp_path), dtype=torch.float16)
    with pytest.raises(ValueError, match="shared=True needs an initialised process group"):
        folder_images(str(tmp_path), shared=True)


def test_resized_folder_uint8_is_the_rounded_float_reading(tmp_path) -> None:
    _folder(tmp_path, [(20, 30), (25, 17), (40, 40), (18, 22)])
    x, _, _ = folder_images(str(tmp_path), image_size=10, dtype=torch.uint8)
    f, _, _ = folder_images(str(tmp_path), image_size=10)
    assert torch.equal(x, (f * 255).round().to(torch.uint8))
    assert float((unit_images(x) - f).abs().max()) <= 0.5 / 255 + 1e-7


def test_held_out_split_decodes_each_split_in_the_seeded_order(tmp_path) -> None:
    _folder(tmp_path, [(8, 8)] * 10)
    x_tr, y_tr, x_te, y_te, desc = folder_split(str(tmp_path), test_fraction=0.3,
                                                dtype=torch.uint8)
    everything, labels, _ = folder_images(str(tmp_path), dtype=torch.uint8)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x_te, everything[order[:3]]) and torch.equal(y_te, labels[order[:3]])
    assert torch.equal(x_tr, everything[order[3:]]) and torch.equal(y_tr, labels[order[3:]])
    assert "3 images" in desc
    with pytest.raises(ValueError, match="too few to hold out"):
        folder_split(str(tmp_path), test_fraction=0.01)


def test_nearest_sample_baseline_reads_uint8_samples_as_8_bit_images(device: torch.device) -> None:
    from captum_cf.baselines import NearestSampleBaseline

    u8, y = u8_images(30)
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(5)).to(device)
    for metric in ("l2", "l1"):
        by_bytes = NearestSampleBaseline((u8, y), 2, metric=metric, chunk_size=4)
        by_floats = NearestSampleBaseline((unit_images(u8), y), 2, metric=metric)
        assert torch.equal(by_bytes.nearest_index(x), by_floats.nearest_index(x))
        ref = by_bytes(x)
        assert ref.dtype == x.dtype and ref.device == x.device
        assert torch.equal(ref, by_floats(x))
        assert bool((y[by_bytes.nearest_index(x)] == 2).all())  # a sample of class 2 each
    with pytest.raises(ValueError, match="non-empty"):
        NearestSampleBaseline((u8[:0], y[:0]), 1)


def test_cache_dir_keeps_the_decoded_folder_and_notices_a_changed_file(tmp_path,
                                                                         monkeypatch) -> None:
    import os

    from captum_cf.datasets import ImageFolder

    root, cache = tmp_path / "photos", tmp_path / "cache"
    _folder(root, [(12, 14)] * 6)
    first = folder_images(str(root), 10, dtype=torch.uint8, cache_dir=cache)
    entries = sorted(os.listdir(cache))
    assert len(entries) == 1 and entries[0].startswith("photos-") and entries[0].endswith(".npy")

    def no_decoding(self, index):
        raise AssertionError("decoded although the cache holds the folder")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFolder, "__getitem__", no_decoding)
        again = folder_images(str(root), 10, dtype=torch.uint8, cache_dir=cache)
        assert all(torch.equal(a, b) for a, b in zip(first[:2], again[:2]))
        assert again[2] == first[2] == ["a", "b"]
        for other in ({"image_size": 8}, {"dtype": torch.float32}, {"files": [0, 2]},
                      {"resize": 12}):
            with pytest.raises(AssertionError, match="decoded although"):  # other keys
                folder_images(str(root), **{"image_size": 10, "dtype": torch.uint8, **other},
                              cache_dir=cache)
        image = next((root / "a").iterdir())
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # an edited image
        with pytest.raises(AssertionError, match="decoded although"):
            folder_images(str(root), 10, dtype=torch.uint8, cache_dir=cache)
    x_tr, y_tr, x_te, y_te, _ = folder_split(str(root), 10, test_fraction=0.5,
                                             dtype=torch.uint8, cache_dir=cache)
    plain = folder_split(str(root), 10, test_fraction=0.5, dtype=torch.uint8)
    assert all(torch.equal(a, b) for a, b in zip((x_tr, y_tr, x_te, y_te), plain[:4]))
    assert not [f for f in os.listdir(cache) if f.endswith(".tmp.npy")]  # no temporary left


def _mapped_files(folder) -> set[str]:
    """Files of ``folder`` this process has memory-mapped (Linux: /proc/self/maps)."""
    import os

    with open("/proc/self/maps") as f:
        paths = {line.split(maxsplit=5)[-1].strip() for line in f if "/" in line}
    return {os.path.basename(p) for p in paths if p.startswith(str(folder))}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_cached_folder_is_memory_mapped_from_its_file_and_never_written_through(
    tmp_path
) -> None:
    import os

    root, cache = tmp_path / "photos", tmp_path / "cache"
    _folder(root, [(12, 12)] * 7)
    plain, _, _ = folder_images(str(root), dtype=torch.uint8)
    for _ in range(2):  # decoded into the file, then the file mapped again
        x, _, _ = folder_images(str(root), dtype=torch.uint8, cache_dir=cache, batch_size=3,
                                workers=1)
        (name,) = os.listdir(cache)
        assert name in _mapped_files(cache) and torch.equal(x, plain)
        del x
    mapped, _, _ = folder_images(str(root), dtype=torch.uint8, cache_dir=cache)
    mapped[0] += 1  # copy-on-write: this process's copy changes, the file does not
    again, _, _ = folder_images(str(root), dtype=torch.uint8, cache_dir=cache)
    assert torch.equal(again, plain) and not torch.equal(mapped, plain)
    f, _, _ = folder_images(str(root), dtype=torch.float32, cache_dir=cache)
    assert torch.equal(f, folder_images(str(root), dtype=torch.float32)[0])


@pytest.mark.parametrize("failure", ["unreadable", "sizes", "interrupt"])
def test_a_decode_into_the_cache_that_fails_leaves_no_file(tmp_path, monkeypatch,
                                                            failure) -> None:
    import os

    from captum_cf.datasets import ImageFolder

    root, cache = tmp_path / "photos", tmp_path / "cache"
    _folder(root, [(12, 12)] * 5 + ([(10, 12)] if failure == "sizes" else [(12, 12)]))
    if failure == "unreadable":
        (root / "b" / "03.png").write_bytes(b"not a png")
        error, match = ValueError, "03.png"
    elif failure == "sizes":
        error, match = ValueError, "different sizes|--image-size"
    else:
        getitem = ImageFolder.__getitem__

        def interrupted(self, index):
            if index == 4:
                raise KeyboardInterrupt
            return getitem(self, index)

        monkeypatch.setattr(ImageFolder, "__getitem__", interrupted)
        error, match = KeyboardInterrupt, None
    with pytest.raises(error, match=match):
        folder_images(str(root), dtype=torch.uint8, cache_dir=cache, batch_size=2)
    assert os.listdir(cache) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_validation_split_of_a_mapped_folder_is_mapped_too(tmp_path) -> None:
    from captum_cf.training.data import take_rows
    from captum_cf.zoo.generators import _split

    root, cache = tmp_path / "photos", tmp_path / "cache"
    _folder(root, [(12, 12)] * 9)
    x, y, _ = folder_images(str(root), dtype=torch.uint8, cache_dir=cache)
    plain = torch.Generator().manual_seed(3)
    order = torch.randperm(9, generator=plain)
    x_tr, y_tr, x_val, y_val = _split(x, y, 0.34, 3)
    assert torch.equal(x_val, x[order[:3]]) and torch.equal(x_tr, x[order[3:]])
    assert torch.equal(y_val, y[order[:3]]) and torch.equal(y_tr, y[order[3:]])
    assert len(_mapped_files(cache)) == 3  # the folder and its two shares, all from files
    again = _split(x, y, 0.34, 3)  # the share files are reused
    import os

    assert len(os.listdir(cache)) == 3 and torch.equal(again[0], x_tr)
    assert torch.equal(take_rows(x[1:], torch.tensor([0, 2])), x[[1, 3]])  # a view: indexed
