"""The training loop of :meth:`LearnedInpainter.fit` (checkpoints that resume exactly)."""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_cf.training.checkpoint import (
    cycle_batches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from captum_cf._validation import check_images
from captum_cf.inpainters import holes as _holes

if TYPE_CHECKING:
    from captum_cf.inpainters.learned import LearnedInpainter

logger = logging.getLogger("captum_cf.inpainters.learned")

_LOG_EVERY = 50


def fit(model: LearnedInpainter, data: Any, *, steps: int, batch_size: int, lr: float,
        holes: str, coverage: tuple[float, float], grad_weight: float, crop: int | None,
        checkpoint: str | os.PathLike | None, checkpoint_every: int, resume: bool,
        show_progress: bool, seed: int) -> list[float]:
    """See :meth:`LearnedInpainter.fit`."""
    _check_args(steps, batch_size, lr, holes, coverage, grad_weight, crop, checkpoint_every,
                seed)
    images = training_images(data, model.config["channels"])
    if crop is not None and crop > min(images.shape[-2:]):
        raise ValueError(f"crop={crop} is larger than the images {tuple(images.shape[-2:])}")
    size = images.shape[-2:] if crop is None else (crop, crop)
    batch_size = min(batch_size, len(images))
    data_gen = torch.Generator().manual_seed(seed)
    hole_gen = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    state = {"step": 0, "losses": [], "epoch_start": 0, "epoch_rng": data_gen.get_state()}
    if checkpoint is not None and resume and os.path.isfile(checkpoint):
        state = _restore(checkpoint, model, optimizer, sched, data_gen, hole_gen)
    per_epoch = max(1, len(images) // batch_size)
    step, losses = int(state["step"]), list(state["losses"])
    epoch_start, epoch_rng = int(state["epoch_start"]), state["epoch_rng"]
    batches = _batches_from(epoch_rng, step - epoch_start, len(images), batch_size, data_gen)
    was_training = model.training
    model.train()
    bar = tqdm(range(step, steps), initial=step, total=steps, desc="fit inpainter",
               disable=not show_progress)
    try:
        for step in bar:
            if step % per_epoch == 0 and step > 0:
                # a new permutation: remember the generator state it is drawn from
                epoch_start, epoch_rng = step, data_gen.get_state()
                batches = cycle_batches(len(images), batch_size, data_gen)
            x = images[next(batches)]
            if crop is not None:
                x = _random_crops(x, crop, hole_gen)
            hole = _holes.random_holes(len(x), size[0], size[1], coverage, holes, hole_gen)
            loss = _loss(model.predict(x, hole), x, hole, grad_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            losses.append(loss.item())
            if (step + 1) % _LOG_EVERY == 0 or step + 1 == steps:
                recent = sum(losses[-_LOG_EVERY:]) / len(losses[-_LOG_EVERY:])
                bar.set_postfix(loss=f"{recent:.4f}")
                logger.info("inpainter step %d/%d loss %.4f", step + 1, steps, recent)
            done = step + 1
            if checkpoint is not None and (done % checkpoint_every == 0 or done == steps):
                _save(checkpoint, model, optimizer, sched, done, losses,
                      (epoch_start, epoch_rng), hole_gen)
    finally:
        model.train(was_training)
    return losses


def training_images(data: Any, channels: int) -> Tensor:
    """Images (N, C, H, W) in [0, 1] from a tensor, TensorDataset, ``.images`` or a dataset."""
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
    check_images(images, "data")
    if images.shape[1] != channels:
        raise ValueError(
            f"data has {images.shape[1]} channels but the inpainter expects {channels}"
        )
    if min(images.shape[-2:]) < 8:
        raise ValueError(f"data images must be at least 8x8, got {tuple(images.shape[-2:])}")
    return images.float()


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


def _batches_from(epoch_rng: Tensor, skip: int, n: int, batch_size: int,
                  data_gen: torch.Generator) -> Any:
    """The current epoch's batch stream, rebuilt from the generator state it was drawn from.

    ``skip`` batches are consumed; skipping a whole epoch leaves ``data_gen`` where an
    uninterrupted run has it when the next epoch's permutation is drawn.
    """
    data_gen.set_state(epoch_rng)
    batches = cycle_batches(n, batch_size, data_gen)
    for _ in range(skip):
        next(batches)
    return batches


def _save(path: str | os.PathLike, model: LearnedInpainter, optimizer: torch.optim.Optimizer,
          sched: Any, step: int, losses: list[float], epoch: tuple[int, Tensor],
          hole_gen: torch.Generator) -> None:
    save_checkpoint(path, {"step": step, "config": model.config, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict(), "scheduler": sched.state_dict(),
                           "losses": losses, "epoch_start": epoch[0], "epoch_rng": epoch[1],
                           "rng": rng_state(hole_gen)})


def _restore(path: str | os.PathLike, model: LearnedInpainter,
             optimizer: torch.optim.Optimizer, sched: Any, data_gen: torch.Generator,
             hole_gen: torch.Generator) -> dict[str, Any]:
    state = load_checkpoint(path)
    if state.get("config") != model.config:
        raise ValueError(f"checkpoint {os.fspath(path)} is of config {state.get('config')}, "
                         f"but the inpainter has {model.config}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], hole_gen)
    logger.info("resumed %s at step %d", os.fspath(path), state["step"])
    return state


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
