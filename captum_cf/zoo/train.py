"""Training of the zoo classifiers (``captum-cf train classifier``).

Adam with a cosine learning-rate decay, cross-entropy, light augmentation (random shifts of up to
2 pixels), per-epoch checkpoints that resume exactly, and a weights file in the zoo format that
records the measured test accuracy.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_cf._training import (
    cycle_batches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from captum_cf.zoo._registry import save_weights
from captum_cf.zoo.models import build_classifier

__all__ = ["train_classifier", "classifier_data", "CLASSIFIER_SETUPS", "evaluate_accuracy",
           "random_shift"]

logger = logging.getLogger(__name__)

#: per data set: architecture, default epochs, data sizes and the padding used by the shifts
CLASSIFIER_SETUPS: dict[str, dict[str, Any]] = {
    "digits": {"name": "digits-cnn", "channels": (16, 32, 64), "hidden": 64, "pool": "avg",
               "epochs": 30, "pad_mode": "constant"},
    "shapes": {"name": "shapes-cnn", "channels": (8, 16, 32, 64), "hidden": 128, "pool": "max",
               "epochs": 10, "pad_mode": "replicate", "n_train": 4000, "n_test": 1000, "size": 64,
               "train_seed": 0, "test_seed": 1},
}


def classifier_data(data: str) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """Tensors of a zoo data set: ``(x_train, y_train, x_test, y_test, test_description)``."""
    if data == "digits":
        from captum_cf.datasets import load_digits

        x_tr, y_tr = load_digits("train").tensors
        x_te, y_te = load_digits("test").tensors
        return x_tr, y_tr, x_te, y_te, "load_digits('test', size=32)"
    if data == "shapes":
        from captum_cf.datasets import SyntheticShapes

        s = CLASSIFIER_SETUPS["shapes"]
        train = SyntheticShapes(s["n_train"], size=s["size"], seed=s["train_seed"])
        test = SyntheticShapes(s["n_test"], size=s["size"], seed=s["test_seed"])
        desc = f"SyntheticShapes({s['n_test']}, size={s['size']}, seed={s['test_seed']})"
        return train.images, train.labels, test.images, test.labels, desc
    raise ValueError(f"data must be 'digits' or 'shapes', got {data!r}")


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator, mode: str) -> Tensor:
    """Shift each image by its own random offset in ``[-max_shift, max_shift]`` pixels.

    Args:
        x (Tensor): images (N, C, H, W).
        max_shift (int): largest shift in pixels (0 returns ``x``).
        generator (torch.Generator): source of the offsets.
        mode (str): padding mode of ``F.pad`` for the uncovered border.
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, mode=mode)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    out = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256
) -> float:
    """Fraction of ``images`` whose arg-max logit equals ``labels`` (model must be in eval mode)."""
    correct = 0
    for i in range(0, len(images), batch_size):
        pred = model(images[i : i + batch_size]).argmax(1)
        correct += int((pred == labels[i : i + batch_size]).sum())
    return correct / max(len(images), 1)


def train_classifier(
    data: str = "digits",
    out: str | os.PathLike = "classifier.pt",
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_shift: int = 2,
    limit: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    show_progress: bool = True,
    checkpoint_every: int = 1,
) -> float:
    """Train the zoo classifier of ``data`` and write it to ``out`` in the zoo weights format.

    The model is ``Normalized(SmallCNN(...), mean, std)`` with the training set's per-channel mean
    and std; it takes pixel-space images in [0, 1]. Loss: cross-entropy; Adam with the learning
    rate decayed by ``lr * (1 + cos(pi * step / steps)) / 2``.

    Args:
        data (str): ``"digits"`` (trains ``"digits-cnn"``) or ``"shapes"`` (``"shapes-cnn"``).
        out (path): weights file to write (``{"format", "name", "arch", "config", "state_dict",
            "metrics"}``, loadable by :func:`captum_cf.zoo.load_file`).
        epochs (int, optional): passes over the training set (default per data set: 30 / 10).
        seed (int): seeds initialisation, data order and augmentation.
        batch_size (int): images per step.
        lr (float): peak Adam learning rate.
        max_shift (int): random shifts of up to this many pixels (augmentation).
        limit (int, optional): use only the first ``limit`` training and test images (quick runs).
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        show_progress (bool): show a tqdm bar over the epochs.
        checkpoint_every (int): epochs between checkpoints (>= 1; the last epoch is always
            saved).

    Returns:
        float: accuracy of the trained model on the test split (also stored in the file's
        ``metrics["test_accuracy"]``).

    Example:
        >>> from captum_cf.zoo.train import train_classifier
        >>> acc = train_classifier("digits", out="digits-cnn.pt", epochs=1, limit=256)
        >>> from captum_cf import zoo
        >>> model = zoo.load_file("digits-cnn.pt")
    """
    setup, epochs = _check_args(data, epochs, batch_size, lr, max_shift, limit)
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or (
        checkpoint_every < 1
    ):
        raise ValueError(f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}")
    x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data)
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    config = _config(setup, x_tr, int(max(y_tr.max(), y_te.max())) + 1)
    generator = seed_everything(seed)
    model = build_classifier(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, len(x_tr) // batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    start, losses = _resume(checkpoint, model, optimizer, sched, generator)
    began, began_cpu = time.perf_counter(), time.process_time()
    bar = tqdm(range(start, epochs), desc=f"train {setup['name']}", disable=not show_progress)
    for epoch in bar:
        model.train()
        epoch_loss = 0.0
        # One permutation per epoch, drawn from the generator whose state the checkpoint saves.
        batches = cycle_batches(len(x_tr), batch_size, generator)
        for _ in range(steps_per_epoch):
            idx = next(batches)
            x = random_shift(x_tr[idx], max_shift, generator, setup["pad_mode"])
            loss = F.cross_entropy(model(x), y_tr[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            epoch_loss += loss.item() / steps_per_epoch
        losses.append(epoch_loss)
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        logger.info("%s epoch %d/%d loss %.4f", setup["name"], epoch + 1, epochs, epoch_loss)
        if checkpoint is not None and (
            (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs
        ):
            save_checkpoint(checkpoint, {"epoch": epoch + 1, "model": model.state_dict(),
                                         "optimizer": optimizer.state_dict(),
                                         "scheduler": sched.state_dict(), "losses": losses,
                                         "rng": rng_state(generator)})
    model.eval()
    acc = evaluate_accuracy(model, x_te, y_te)
    metrics = {"test_accuracy": acc, "test_data": test_desc, "test_size": len(x_te),
               "train_size": len(x_tr), "epochs": epochs, "seed": seed, "losses": losses,
               "train_seconds": round(time.perf_counter() - began, 1),
               "train_cpu_seconds": round(time.process_time() - began_cpu, 1)}
    save_weights(out, name=setup["name"], arch="small-cnn", config=config, model=model,
                 metrics=metrics)
    logger.info("%s test accuracy %.4f on %s -> %s", setup["name"], acc, test_desc, os.fspath(out))
    return acc


def _check_args(
    data: str, epochs: int | None, batch_size: int, lr: float, max_shift: int, limit: int | None
) -> tuple[dict[str, Any], int]:
    if data not in CLASSIFIER_SETUPS:
        raise ValueError(f"data must be one of {sorted(CLASSIFIER_SETUPS)}, got {data!r}")
    setup = CLASSIFIER_SETUPS[data]
    epochs = setup["epochs"] if epochs is None else epochs
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return setup, epochs


def _config(setup: dict[str, Any], x_train: Tensor, num_classes: int) -> dict[str, Any]:
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return {"in_channels": int(x_train.shape[1]), "num_classes": num_classes,
            "image_size": int(x_train.shape[-1]), "channels": list(setup["channels"]),
            "hidden": setup["hidden"], "pool": setup["pool"],
            "mean": [round(float(m), 4) for m in mean],
            "std": [round(float(s), 4) for s in std]}


def _resume(
    checkpoint: str | os.PathLike | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> tuple[int, list[float]]:
    if checkpoint is None or not os.path.isfile(checkpoint):
        return 0, []
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], generator)
    logger.info("resumed from %s at epoch %d", os.fspath(checkpoint), state["epoch"])
    return int(state["epoch"]), list(state["losses"])
