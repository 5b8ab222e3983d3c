"""Training of :meth:`LearnedInpainter.fit` on the shared loop (checkpoints resume exactly)."""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from captum_cf.inpainters import holes as _holes
from captum_cf.training import IndexStream, Trainer
from captum_cf.training.data import DeviceImages, check_training_images, unit_images
from captum_cf.training.distributed import rank_seed

if TYPE_CHECKING:
    from captum_cf.inpainters.learned import LearnedInpainter

logger = logging.getLogger("captum_cf.inpainters.learned")

_LOG_EVERY = 50


def fit(model: LearnedInpainter, data: Any, *, steps: int, batch_size: int, lr: float,
        holes: str, coverage: tuple[float, float], grad_weight: float, crop: int | None,
        checkpoint: str | os.PathLike | None, checkpoint_every: int, resume: bool,
        show_progress: bool, seed: int, device: str | torch.device | None = None,
        amp: str | None = None) -> list[float]:
    """See :meth:`LearnedInpainter.fit`."""
    _check_args(steps, batch_size, lr, holes, coverage, grad_weight, crop, checkpoint_every,
                seed)
    images = training_images(data, model.config["channels"])
    if crop is not None and crop > min(images.shape[-2:]):
        raise ValueError(f"crop={crop} is larger than the images {tuple(images.shape[-2:])}")
    trainer = InpainterTrainer(
        model, images, steps=steps, batch_size=min(batch_size, len(images)), lr=lr, holes=holes,
        coverage=coverage, grad_weight=grad_weight, crop=crop, checkpoint_path=checkpoint,
        checkpoint_every=checkpoint_every, seed=seed, device=device, amp=amp)
    if resume:
        trainer.resume_if_exists()
    trainer.fit(steps, show_progress=show_progress)
    return list(trainer.losses)


class _Predict(nn.Module):
    """``forward = inpainter.predict``: what DistributedDataParallel wraps for training."""

    def __init__(self, inpainter: nn.Module) -> None:
        super().__init__()
        self.inpainter = inpainter

    def forward(self, images: Tensor, hole: Tensor) -> Tensor:
        return self.inpainter.predict(images, hole)


class InpainterTrainer(Trainer):
    """Training of a :class:`LearnedInpainter` on random holes, on the shared loop.

    Data order comes from ``self.rng`` (seeded ``seed``; a ``DistributedSampler`` under
    torchrun), crops and holes from the generator ``"holes"`` (``seed + 1``); the global RNG
    is not touched. Holes are drawn on the CPU and moved to the images' device once per step.
    """

    def __init__(self, model: LearnedInpainter, images: Tensor, *, steps: int, batch_size: int,
                 lr: float, holes: str, coverage: tuple[float, float], grad_weight: float,
                 crop: int | None, checkpoint_path: str | os.PathLike | None,
                 checkpoint_every: int, seed: int, device: str | torch.device | None = None,
                 amp: str | None = None) -> None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        super().__init__(
            {"model": model}, {"model": optimizer}, schedulers={"model": sched},
            generators={"holes": torch.Generator().manual_seed(rank_seed(seed + 1))},
            seed=seed, seed_global=False, checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every, log_every=_LOG_EVERY, device=device, amp=amp,
            desc="fit inpainter", log=lambda line: logger.info("inpainter %s", line))
        if self.dist.enabled:
            self.wrap_ddp("model", _Predict(model))
        self.images = DeviceImages(images, self.device)
        self.stream = IndexStream(len(images), batch_size, self.rng, seed=seed,
                                  context=self.dist)
        self.size = images.shape[-2:] if crop is None else (crop, crop)
        self.holes, self.coverage, self.grad_weight, self.crop = holes, coverage, grad_weight, crop
        self.losses: list[float] = []

    def train_step(self) -> dict[str, float]:
        model, gen = self.modules["model"], self.generators["holes"]
        x = unit_images(self.images[next(self.stream)])
        if self.crop is not None:
            x = _random_crops(x, self.crop, gen)
        hole = _holes.random_holes(len(x), self.size[0], self.size[1], self.coverage, self.holes,
                                   gen).to(x.device)
        predict = self._wrapped.get("model", model.predict)
        with self.autocast():
            pred = predict(x, hole)
        loss = _loss(pred.float(), x, hole, self.grad_weight)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients("model")
        optimizer.step()
        self.schedulers["model"].step()
        self.losses.append(loss.item())
        return {"loss": self.losses[-1]}

    def extra_state(self) -> dict[str, Any]:
        return {"config": self.modules["model"].config, "losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        config = state["extra"].get("config")
        if config != self.modules["model"].config:
            raise ValueError(f"the checkpoint is of config {config}, "
                             f"but the inpainter has {self.modules['model'].config}")
        super().load_state_dict(state)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.losses = list(state["losses"])

    def rank_state(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])


def training_images(data: Any, channels: int) -> Tensor:
    """Images (N, C, H, W) from a tensor, TensorDataset, ``.images`` or a dataset: float32 in
    [0, 1], or ``uint8`` (0..255) kept as it is (each training batch becomes float)."""
    if isinstance(data, Tensor):
        images = data
    elif hasattr(data, "images") and isinstance(data.images, Tensor):
        images = data.images
    elif hasattr(data, "tensors"):
        images = data.tensors[0]
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and len(data) > 0:
        items = [data[i] for i in range(len(data))]
        images = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    else:
        raise TypeError(
            "data must be images (N, C, H, W), a TensorDataset, an object with .images or a "
            f"non-empty dataset of images, got {type(data).__name__}"
        )
    check_training_images(images, "data")
    if images.shape[1] != channels:
        raise ValueError(
            f"data has {images.shape[1]} channels but the inpainter expects {channels}"
        )
    if min(images.shape[-2:]) < 8:
        raise ValueError(f"data images must be at least 8x8, got {tuple(images.shape[-2:])}")
    return images if images.dtype == torch.uint8 else images.float()


def _random_crops(x: Tensor, crop: int, gen: torch.Generator) -> Tensor:
    """One random ``crop`` x ``crop`` window of each image (offsets drawn from ``gen``)."""
    h, w = x.shape[-2:]
    ys = torch.randint(0, h - crop + 1, (len(x),), generator=gen).tolist()
    xs = torch.randint(0, w - crop + 1, (len(x),), generator=gen).tolist()
    return torch.stack([img[:, y : y + crop, x0 : x0 + crop] for img, y, x0 in zip(x, ys, xs)])


def _loss(pred: Tensor, x: Tensor, hole: Tensor, grad_weight: float) -> Tensor:
    """Mean L1 inside the holes + ``grad_weight`` x L1 of finite differences inside the holes."""
    area = hole.sum().clamp_min(1.0) * x.shape[1]
    loss = ((pred - x).abs() * hole).sum() / area
    if grad_weight > 0:
        for dim in (-1, -2):
            dp, dx = pred.diff(dim=dim), x.diff(dim=dim)
            n = hole.shape[dim] - 1
            mask = torch.maximum(hole.narrow(dim, 0, n), hole.narrow(dim, 1, n))
            loss = loss + grad_weight * ((dp - dx).abs() * mask).sum() / area
    return loss


def _check_args(steps: int, batch_size: int, lr: float, holes: str,
                coverage: tuple[float, float], grad_weight: float, crop: int | None,
                checkpoint_every: int, seed: int) -> None:
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 8):
        raise ValueError(f"crop must be an int >= 8 or None, got {crop!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not (isinstance(grad_weight, (int, float)) and grad_weight >= 0):
        raise ValueError(f"grad_weight must be >= 0, got {grad_weight!r}")
    if holes not in _holes.HOLE_KINDS:
        raise ValueError(f"holes must be one of {_holes.HOLE_KINDS}, got {holes!r}")
    _holes._check_args(1, 8, 8, coverage, holes)
