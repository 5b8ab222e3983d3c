"""Every trainer trains on the ``device`` fixture's device (CPU in CI, CUDA where present).

The trainers draw their randomness on the CPU (seeded CPU generators, saved in checkpoints) and
move what they draw to the data's device once; modules they build (a default critic or
discriminator) are placed on the data's device. On a CUDA machine these tests fail on any tensor
left on the CPU; on the CPU they check the same contracts (placement, training moves the
weights, the frozen classifier stays untouched, finite losses).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from captum_cf.generative import (
    GANMEXConfig,
    GANMEXGenerator,
    GANMEXTrainConfig,
    GANMEXTrainer,
)
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator
from captum_cf.generative.exaggeration_trainer import ExaggerationTrainConfig, ExaggerationTrainer
from captum_cf.inpainters import LearnedInpainter
from captum_cf.robust import adversarial_train
from captum_cf.zoo.train import ClassifierTrainer

#: every trainer also on the simulated device (tests/simulated_device.py), in CI too
pytestmark = pytest.mark.simdev


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 3
    images = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.3
    images[labels == 1, :, :4] += 0.6
    images[labels == 2, :, 4:] += 0.6
    return images.clamp(0, 1), labels


def _classifier(device: torch.device) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _on(module: nn.Module, device: torch.device) -> bool:
    return all(p.device.type == device.type for p in module.parameters())


def _finite(history: list[dict[str, float]]) -> bool:
    return bool(history) and all(math.isfinite(v) for e in history for v in e.values())


@pytest.mark.parametrize("focus", [0.0, 0.5])
def test_ganmex_trainer_on_device(device: torch.device, focus: float) -> None:
    x, y = _data()
    x_dev, y_dev = x.to(device), y.to(device)
    clf = _classifier(device)
    before = _snapshot(clf)
    cfg = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                       num_residual=1, critic_channels=4, critic_layers=2)
    torch.manual_seed(0)
    generator = GANMEXGenerator(cfg).to(device)
    start = _snapshot(generator)
    train = GANMEXTrainConfig(batch_size=6, focus_pairs=((1, 2),), focus_share=focus,
                              val_images=6)
    # training data on the device, validation data left on the CPU: both must work
    trainer = GANMEXTrainer(generator, clf, x_dev, y_dev, x[:6], y[:6], config=train,
                            log_every=1, validate_every=2)
    assert _on(trainer.critic, device)  # the default critic follows the images
    history = trainer.fit(2)
    assert _finite(history) and trainer.best is not None
    assert any(not torch.equal(v, start[k]) for k, v in generator.state_dict().items())
    assert all(torch.equal(v, before[k]) for k, v in clf.state_dict().items())


def test_exaggeration_trainer_on_device(device: torch.device) -> None:
    x, y = _data()
    clf = _classifier(device)
    cfg = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1,
                             critic_channels=4, num_bins=5, positive_class=1, num_classes=3)
    torch.manual_seed(0)
    generator = ExaggerationGenerator(cfg)
    start = _snapshot(generator)
    train = ExaggerationTrainConfig(batch_size=8, val_images=6, recalibration_batches=2)
    # images on the CPU, training on ``device``: the trainer moves images and modules
    trainer = ExaggerationTrainer(generator, clf, x, y, x[:6], config=train, log_every=1,
                                  validate_every=2, device=device)
    assert _on(trainer.discriminator, device) and _on(generator, device)
    assert _finite(trainer.fit(2)) and trainer.best is not None
    assert any(not torch.equal(v.cpu(), start[k]) for k, v in generator.state_dict().items())


def test_inpainter_fit_on_device(device: torch.device) -> None:
    torch.manual_seed(0)
    model = LearnedInpainter({"widths": [4, 8, 8], "dilations": [2], "channels": 1}).to(device)
    start = _snapshot(model)
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2))  # CPU
    losses = model.fit(images, steps=2, batch_size=4, crop=12, show_progress=False)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert _on(model, device)
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_classifier_trainer_on_device(device: torch.device) -> None:
    x, y = _data()
    model = _classifier(torch.device("cpu"))
    start = _snapshot(model)
    trainer = ClassifierTrainer(model, x, y, epochs=2, batch_size=8, device=device)
    trainer.fit(trainer.total_steps)
    assert _on(model, device) and len(trainer.epoch_losses) == 2
    assert all(math.isfinite(v) for v in trainer.epoch_losses)
    assert any(not torch.equal(v.cpu(), start[k]) for k, v in model.state_dict().items())


def test_adversarial_training_on_device(device: torch.device) -> None:
    x, y = _data()
    model = _classifier(device)
    start = _snapshot(model)
    history = adversarial_train(model, (x, y), eps=0.5, steps=2, attack_steps=1, batch_size=8,
                                log_every=1)
    assert _finite(history) and len(history) == 2 and _on(model, device)
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bfloat16 autocast needs CUDA")
def test_bf16_autocast_trains_and_keeps_float32_weights() -> None:
    x, y = _data()
    device = torch.device("cuda")
    clf = _classifier(device)
    cfg = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                       num_residual=1, critic_channels=4, critic_layers=2)
    trainer = GANMEXTrainer(GANMEXGenerator(cfg), clf, x, y, config=GANMEXTrainConfig(
        batch_size=6), log_every=1, device=device, amp="bf16")
    assert _finite(trainer.fit(2))
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())
