"""Training sets larger than the GPU: every trainer streams its batches from the host.

A trainer holds its images on the training device when they take at most ``HOLD_SHARE`` of the
accelerator's free memory; a larger set (e.g. memory-mapped from ``--cache-dir``) stays on the
host and each batch's rows move per step (``DeviceImages``). The contract checked here: training
streamed gives bit-identical weights, losses and metrics to training held, on the ``device``
fixture's device, and a streamed set is never copied (it stays the tensor, or the memory map,
it was given). On the CPU the set is never copied either way.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from training_helpers import u8_images

import captum_cf.training.data as data_module
from captum_cf.generative import GANMEXConfig, GANMEXGenerator, GANMEXTrainConfig, GANMEXTrainer
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig, ExaggerationTrainer
from captum_cf.inpainters import LearnedInpainter
from captum_cf.inpainters._fit import InpainterTrainer
from captum_cf.robust.adversarial_training import AdversarialTrainer
from captum_cf.training.data import HOLD_SHARE, DeviceImages, device_free_bytes, folder_images
from captum_cf.zoo.train import ClassifierTrainer

#: the streamed runs warn that the set stays on the host (checked in the hold-rule test)
pytestmark = [pytest.mark.simdev,
              pytest.mark.filterwarnings("ignore:the training images:RuntimeWarning")]


def _classifier(device: torch.device) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)


def _weights(*modules: nn.Module) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in modules]


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
               for x, y in zip(a, b, strict=True))


def _free(monkeypatch: pytest.MonkeyPatch, free: int | None) -> None:
    """Pretend every accelerator has ``free`` bytes free (``None``: it cannot be asked)."""
    monkeypatch.setattr(data_module, "device_free_bytes", lambda device: free)


def _classifier_run(images, y, device):
    model = _classifier(device)
    trainer = ClassifierTrainer(model, images, y, epochs=4, batch_size=8, lr=0.05,
                                max_shift=1, device=device)
    trainer.fit(trainer.total_steps)
    return trainer, _weights(model), trainer.epoch_losses


def _adversarial_run(images, y, device):
    model = _classifier(device)
    trainer = AdversarialTrainer(model, images, y, norm="linf", eps=0.3, steps=3,
                                 attack_steps=2, batch_size=8, lr=0.05, clean_weight=0.5,
                                 seed=0, checkpoint_path=None, checkpoint_every=100,
                                 log_every=1, device=device, amp=None)
    history = trainer.fit(3)
    return trainer, _weights(model), history


def _inpainter_run(images, y, device):
    torch.manual_seed(0)
    model = LearnedInpainter({"widths": [4, 8, 8], "dilations": [2], "channels": 1}).to(device)
    trainer = InpainterTrainer(model, images, steps=3, batch_size=4, lr=1e-3, holes="free-form+box",
                                coverage=(0.1, 0.4), grad_weight=0.5, crop=6,
                                checkpoint_path=None, checkpoint_every=100, seed=0,
                                device=device)
    history = trainer.fit(3)
    return trainer, _weights(model), history


def _ganmex_run(images, y, device):
    cfg = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                       num_residual=1, critic_channels=4, critic_layers=2)
    train = GANMEXTrainConfig(batch_size=6, val_images=6, focus_pairs=((1, 2),),
                              focus_share=0.5)
    clf = _classifier(device)
    torch.manual_seed(0)
    generator = GANMEXGenerator(cfg)
    trainer = GANMEXTrainer(generator, clf, images, y, images[:6], y[:6], config=train,
                            log_every=1, validate_every=2, device=device)
    history = trainer.fit(4)  # validation reads the set too: the nearest-sample flip rate
    return trainer, _weights(generator, trainer.critic), (history, trainer.best["metrics"])


def _exaggeration_run(images, y, device):
    cfg = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1,
                             critic_channels=4, num_bins=5, positive_class=1, num_classes=3)
    train = ExaggerationTrainConfig(batch_size=8, val_images=6, recalibration_batches=2)
    clf = _classifier(device)
    torch.manual_seed(0)
    trainer = ExaggerationTrainer(ExaggerationGenerator(cfg), clf, images, y, images[:6],
                                  config=train, log_every=1, validate_every=2, device=device)
    history = trainer.fit(3)
    return (trainer, _weights(trainer.generator, trainer.discriminator),
            (history, trainer.best["metrics"], trainer._bins.cpu()))


def _photos(root, n: int, classes: int, shape: tuple[int, ...]) -> None:
    """``n`` random 8-bit PNGs of ``shape`` (H, W) or (H, W, 3) in ``classes`` class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"c{i % classes}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
            root / f"c{i % classes}" / f"{i}.png")


RUNS = {"classifier": _classifier_run, "adversarial": _adversarial_run,
        "inpainter": _inpainter_run, "ganmex": _ganmex_run, "exaggeration": _exaggeration_run}


@pytest.mark.parametrize("name", list(RUNS))
def test_streaming_trains_bit_for_bit_as_holding(device: torch.device, name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    images, y = u8_images()
    run = RUNS[name]
    _free(monkeypatch, 10**12)  # plenty: held
    held, held_weights, held_out = run(images, y, device)
    assert held.images.held and held.images.device.type == device.type
    _free(monkeypatch, 100)  # the 1.5 KB set takes more than a quarter: streamed
    streamed, streamed_weights, streamed_out = run(images, y, device)
    assert streamed.images.source is images
    if device.type == "cpu":  # never copied on the CPU, whatever the accelerator rule says
        assert streamed.images.held and streamed.images._data is images
    else:  # left where it was: only batches reached the device
        assert not streamed.images.held and streamed.images._data is images
    assert _same(held_weights, streamed_weights)
    assert held_out == streamed_out if name != "exaggeration" else (
        held_out[:2] == streamed_out[:2] and torch.equal(held_out[2], streamed_out[2]))


def test_the_hold_rule_is_a_quarter_of_the_free_memory(device: torch.device,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    host = torch.arange(4 * 3 * 5 * 5, dtype=torch.float32).view(4, 3, 5, 5) / 300
    size = host.numel() * host.element_size()
    assert HOLD_SHARE == 0.25
    _free(monkeypatch, 4 * size)  # exactly a quarter: held
    assert DeviceImages(host, device).held
    _free(monkeypatch, None)  # an accelerator that cannot be asked: held, as before streaming
    assert DeviceImages(host, device).held
    _free(monkeypatch, 4 * size - 1)  # one byte less: streamed off the CPU, held on it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = DeviceImages(host, device)
    assert images.held == (device.type == "cpu")
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if device.type != "cpu":
        assert len(said) == 1 and "stay on the cpu and each batch moves to" in said[0]
    else:
        assert said == []
        on_device = host.to(device)  # a set already on the device is never streamed
        assert DeviceImages(on_device, device).held
    # the rows read are the set's rows on the device, whatever device the index lies on
    for index in (torch.tensor([3, 0, 3]), torch.tensor([3, 0, 3]).to(device)):
        rows = images[index]
        assert rows.device.type == device.type and torch.equal(rows.cpu(), host[[3, 0, 3]])
    assert torch.equal(images[1:3].cpu(), host[1:3]) and len(images) == 4
    assert images.shape == host.shape and images.dtype == host.dtype
    forced = DeviceImages(host, device, hold=False)
    assert not forced.held and torch.equal(forced[torch.tensor([2])].cpu(), host[2:3])


def test_device_free_bytes_asks_cuda_only(device: torch.device) -> None:
    free = device_free_bytes(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        assert isinstance(free, int) and 0 < free <= total
    else:
        assert free is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_streamed_cache_stays_memory_mapped(device: torch.device, tmp_path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = tmp_path / "photos", tmp_path / "cache"
    _photos(root, 12, 3, (8, 8))
    images, y, _ = folder_images(str(root), dtype=torch.uint8, cache_dir=cache)
    _free(monkeypatch, 100)
    trainer, _, losses = _classifier_run(images, y, device)
    # the trainer reads the map itself (no copy on the CPU, no copy to the device either)
    assert trainer.images._data is images and hasattr(images, "_cache_file")
    with open("/proc/self/maps") as f:
        assert any(str(cache) in line for line in f)
    fresh, _, _ = folder_images(str(root), dtype=torch.uint8)
    _, _, again = _classifier_run(fresh, y, device)
    assert losses == again  # the same training as from the decoded images in memory


@pytest.mark.parametrize("free", [None, 100])  # test set held on the device, or streamed
def test_the_robust_zoo_test_accuracy_in_chunks_equals_one_pass(device: torch.device, free,
                                                                 monkeypatch) -> None:
    from captum_cf.robust import robust_accuracy
    from captum_cf.zoo import robust as zoo_robust

    images, y = u8_images(40)
    model = _classifier_run(images, y, device)[0].modules["model"].eval()
    setup = {"norm": "linf", "eval_attack_steps": 3}
    _free(monkeypatch, free)
    monkeypatch.setattr(zoo_robust, "_TEST_CHUNK", 16)  # chunks of 16, 16 and 8 images
    torch.manual_seed(5)  # the attacks' random starts come from the global generator
    chunked = zoo_robust._test_accuracy(model, images, y, device, 0.15, setup)
    torch.manual_seed(5)
    whole = robust_accuracy(model, images.to(device), y.to(device), "linf", 0.15, 3,
                            batch_size=16)
    assert chunked == whole and 0 < whole[1] < whole[0]  # an attack that changed some answers


def _random_reads_advised(path: str) -> list[bool]:
    """For each mapping of ``path`` in this process: whether it carries MADV_RANDOM (``rr``)."""
    flags, current = [], False
    with open("/proc/self/smaps") as f:
        for line in f:
            if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                current = line.rstrip().endswith(path)
            elif current and line.startswith("VmFlags:"):
                flags.append("rr" in line.split()[1:])
    return flags


@pytest.fixture
def six_photos(tmp_path) -> tuple[str, str]:
    """A folder of six 8x8 RGB photos in two classes, and an empty cache folder."""
    _photos(tmp_path / "photos", 6, 2, (8, 8, 3))
    return str(tmp_path / "photos"), str(tmp_path / "cache")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_a_mapped_set_larger_than_half_the_memory_is_read_at_random(
    device: torch.device, six_photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = six_photos
    size = 6 * 3 * 8 * 8

    def trainer_images(room: int, free: int | None) -> list[bool]:
        monkeypatch.setattr(data_module, "available_memory", lambda: room)
        _free(monkeypatch, free)
        images, _, _ = folder_images(root, dtype=torch.uint8, cache_dir=cache)
        DeviceImages(images, device)
        return _random_reads_advised(images._cache_file)

    # more than half of the room: advised where batches are read from the map
    assert trainer_images(2 * size - 1, None) == [device.type == "cpu"]  # else copied to it
    assert trainer_images(2 * size - 1, 0) == [True]  # streamed from the map to a device
    assert trainer_images(2 * size, 0) == [False]  # half the room: the kernel's read-ahead
    assert trainer_images(2 * size, None) == [False]
    room = data_module.available_memory()  # this machine's: positive, below the total memory
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    assert room is not None and 0 < room <= total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise on Linux")
def test_a_batch_of_a_set_read_at_random_is_asked_for_in_one_go(
    device: torch.device, six_photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmap

    root, cache = six_photos
    row = 3 * 8 * 8
    calls = []
    madvise = data_module._madvise

    def recorded(address: int, length: int, advice: int) -> bool:
        calls.append((address, length, advice))
        return madvise(address, length, advice)

    monkeypatch.setattr(data_module, "_madvise", recorded)
    _free(monkeypatch, 0)  # streamed from the map on an accelerator
    for room, advised in ((2 * 6 * row - 1, True), (2 * 6 * row, False)):
        monkeypatch.setattr(data_module, "available_memory", lambda room=room: room)
        images, _, _ = folder_images(root, dtype=torch.uint8, cache_dir=cache)
        reader = DeviceImages(images, device)
        calls.clear()
        rows = reader[torch.tensor([4, 1, 5])]
        assert torch.equal(rows.cpu(), images[[4, 1, 5]])
        asked = [(a - images.data_ptr(), n, advice) for a, n, advice in calls]
        # each row's bytes asked for before the gather, or nothing for a set that fits
        want = [(r * row, row, mmap.MADV_WILLNEED) for r in (4, 1, 5)] if advised else []
        assert asked == want
        calls.clear()  # a run of rows (the nearest-sample scan of validation): one request
        assert torch.equal(reader[1:4].cpu(), images[1:4])
        asked = [(a - images.data_ptr(), n, advice) for a, n, advice in calls]
        assert asked == ([(row, 3 * row, mmap.MADV_WILLNEED)] if advised else [])
