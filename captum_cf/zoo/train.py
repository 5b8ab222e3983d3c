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
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_cf.training import IndexStream, Trainer, records_run_options
from captum_cf.training.checkpoint import seed_everything
from captum_cf.training.data import (
    DeviceImages,
    channel_mean_std,
    check_training_images,
    data_name,
    unit_images,
)
from captum_cf.training.distributed import check_amp, distributed_context, resolve_device
from captum_cf.zoo._registry import save_weights
from captum_cf.zoo.models import build_classifier

__all__ = ["train_classifier", "ClassifierTrainer", "classifier_data", "CLASSIFIER_SETUPS",
           "evaluate_accuracy", "random_shift"]

logger = logging.getLogger(__name__)

#: per data set: architecture, default epochs, data sizes and the padding used by the shifts
CLASSIFIER_SETUPS: dict[str, dict[str, Any]] = {
    "digits": {"name": "digits-cnn", "channels": (16, 32, 64), "hidden": 64, "pool": "avg",
               "epochs": 30, "pad_mode": "constant"},
    "shapes": {"name": "shapes-cnn", "channels": (8, 16, 32, 64), "hidden": 128, "pool": "max",
               "epochs": 10, "pad_mode": "replicate", "n_train": 4000, "n_test": 1000, "size": 64,
               "train_seed": 0, "test_seed": 1},
    # an image folder (--data DIR): named after the folder
    "folder": {"name": None, "channels": (16, 32, 64, 128), "hidden": 128, "pool": "avg",
               "epochs": 10, "pad_mode": "replicate"},
}


def classifier_data(
    data: str,
    image_size: int | None = None,
    channels: int | None = None,
    show_progress: bool = False,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """Tensors of a data set: ``(x_train, y_train, x_test, y_test, test_description)``.

    Digits and shapes are float32 in [0, 1]; an image folder's images are ``uint8`` (0..255, a
    quarter of the memory; every trainer takes them, :func:`~captum_cf.training.data.unit_images`
    turns a batch into floats).

    Args:
        data (str): ``"digits"``, ``"shapes"`` or an image folder
            (:func:`captum_cf.training.data.folder_split`).
        image_size (int, optional): side of the images (default: 32 digits, 64 shapes, the
            files' own size for a folder).
        show_progress (bool): a progress bar over a folder's images being read.
        channels, workers, cache_dir, resize: as in
            :func:`~captum_cf.zoo.train.train_classifier`.
    """
    from captum_cf.training.data import check_data, folder_split

    check_data(data, image_size, channels, workers, resize)
    if data == "digits":
        from captum_cf.datasets import load_digits

        size = image_size or 32
        x_tr, y_tr = load_digits("train", size=size).tensors
        x_te, y_te = load_digits("test", size=size).tensors
        return x_tr, y_tr, x_te, y_te, f"load_digits('test', size={size})"
    if data == "shapes":
        train, test, desc = _shapes_splits(image_size)
        return train.images, train.labels, test.images, test.labels, desc
    split = folder_split(data, image_size, channels=channels, show_progress=show_progress,
                         dtype=torch.uint8, workers=workers, cache_dir=cache_dir,
                         resize=resize)
    classes = torch.unique(split[1]).numel()
    if classes < 2:
        raise ValueError(f"{data}: the training images hold {classes} class: a classifier, and "
                         "the generators that explain one, need at least two class folders "
                         "(DIR/<class>/<image>)")
    return split


def _shapes_splits(image_size: int | None) -> tuple[Any, Any, str]:
    """The shapes classifiers' training and test ``SyntheticShapes`` and the test's description."""
    from captum_cf.datasets import SyntheticShapes

    s = CLASSIFIER_SETUPS["shapes"]
    size = image_size or s["size"]
    train = SyntheticShapes(s["n_train"], size=size, seed=s["train_seed"])
    test = SyntheticShapes(s["n_test"], size=size, seed=s["test_seed"])
    return train, test, f"SyntheticShapes({s['n_test']}, size={size}, seed={s['test_seed']})"


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator, mode: str) -> Tensor:
    """Shift each image by its own random offset in ``[-max_shift, max_shift]`` pixels.

    The offsets are drawn on the CPU from ``generator`` and moved to ``x``'s device once.

    Args:
        x (Tensor): images (N, C, H, W).
        max_shift (int): largest shift in pixels (0 returns ``x``).
        generator (torch.Generator): CPU source of the offsets.
        mode (str): padding mode of ``F.pad`` for the uncovered border.
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, mode=mode)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256
) -> float:
    """Fraction of ``images`` whose arg-max logit equals ``labels`` (model must be in eval mode).

    Batches move to the model's device; ``images`` (float in [0, 1] or ``uint8``) may stay on
    the CPU.
    """
    device = next(iter(model.parameters()), torch.empty(0)).device
    correct = 0
    for i in range(0, len(images), batch_size):
        pred = model(unit_images(images[i : i + batch_size].to(device))).argmax(1).cpu()
        correct += int((pred == labels[i : i + batch_size].cpu()).sum())
    return correct / max(len(images), 1)


class ClassifierTrainer(Trainer):
    """Cross-entropy training of a pixel-space classifier on the shared loop.

    Adam with the learning rate decayed by ``lr * (1 + cos(pi * step / steps)) / 2`` over
    ``steps = epochs * batches_per_epoch``; each batch is shifted by up to ``max_shift`` pixels
    (:func:`random_shift`). Data order and shifts come from one CPU generator seeded with
    ``seed`` (the global RNG is not touched); the per-epoch mean losses are in
    :attr:`epoch_losses`. Checkpoints (default: one per epoch) resume exactly.

    Args:
        model (nn.Module): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K); trained
            in place (any architecture, e.g. ``torchvision.models.resnet18``).
        images (Tensor): training images (M, C, H, W), float in [0, 1] or ``uint8`` (0..255:
            held so on the device where they fit, ``DeviceImages``; a quarter of float32's
            memory; each batch becomes float).
        labels (Tensor): their classes (M,), int64.
        epochs (int): passes over the training set.
        batch_size (int): images per step (per process under torchrun).
        lr (float): peak Adam learning rate.
        max_shift (int): augmentation shifts in pixels.
        pad_mode (str): padding of the shifts (``"constant"`` or ``"replicate"``).
        seed (int): seed of data order and shifts.
        checkpoint_path (path, optional): checkpoint file.
        checkpoint_every (int, optional): steps between checkpoints (default: one epoch).
        device (str or torch.device, optional): where to train (default: the model's device).
        amp (str, optional): ``"bf16"``: bfloat16 autocast of the forward pass (CUDA only).
        log (callable, optional): receives one line per epoch.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 2, (16,))
        >>> trainer = ClassifierTrainer(model, x, y, epochs=2, batch_size=8)
        >>> _ = trainer.fit(trainer.total_steps)
        >>> len(trainer.epoch_losses)
        2
    """

    def __init__(self, model: nn.Module, images: Tensor, labels: Tensor, *, epochs: int,
                 batch_size: int = 64, lr: float = 2e-3, max_shift: int = 2,
                 pad_mode: str = "constant", seed: int = 0,
                 checkpoint_path: str | os.PathLike | None = None,
                 checkpoint_every: int | None = None, device: str | torch.device | None = None,
                 amp: str | None = None, log: Callable[[str], None] | None = None) -> None:
        check_training_images(images, "images")
        if not isinstance(labels, Tensor) or labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be a tensor of shape ({images.shape[0]},)")
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        device = torch.device(device) if device is not None else None
        context = distributed_context(device)
        self.stream = IndexStream(len(images), batch_size, torch.Generator(), seed=seed,
                                  context=context)
        per_epoch = self.stream.batches_per_epoch
        self.total_steps = total = epochs * per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        super().__init__({"model": model}, {"model": optimizer}, schedulers={"model": sched},
                         seed=seed, seed_global=False, checkpoint_path=checkpoint_path,
                         checkpoint_every=checkpoint_every or per_epoch, log_every=per_epoch,
                         log=log, device=device, amp=amp, ddp=("model",), desc="train classifier")
        self.stream.generator = self.rng  # one generator: data order, then the shifts
        self.images, self.labels = DeviceImages(images, self.device), labels.to(self.device)
        self.max_shift, self.pad_mode = max_shift, pad_mode
        self.steps_per_epoch = per_epoch
        self.epoch_losses: list[float] = []
        self._epoch_loss, self._in_epoch = 0.0, 0

    def train_step(self) -> dict[str, float]:
        idx = next(self.stream)
        x = random_shift(unit_images(self.images[idx]), self.max_shift, self.rng, self.pad_mode)
        with self.autocast():
            logits = self.forward_module("model")(x)
        loss = F.cross_entropy(logits.float(), self.labels[idx.to(self.device)])
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.schedulers["model"].step()
        value = loss.item()
        self._epoch_loss += value / self.steps_per_epoch
        self._in_epoch += 1
        if self._in_epoch == self.steps_per_epoch:
            self.epoch_losses.append(self._epoch_loss)
            self._epoch_loss, self._in_epoch = 0.0, 0
        return {"loss": value}

    def extra_state(self) -> dict[str, Any]:
        return {"epoch_losses": list(self.epoch_losses), "epoch_loss": self._epoch_loss,
                "in_epoch": self._in_epoch}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.epoch_losses = list(state["epoch_losses"])
        self._epoch_loss, self._in_epoch = float(state["epoch_loss"]), int(state["in_epoch"])

    def rank_state(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])


@records_run_options
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
    *,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    checkpoint_every: int | None = None,
    misplaced_dots: int = 0,
    channels: int | None = None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
) -> float:
    """Train the zoo classifier of ``data`` and write it to ``out`` in the zoo weights format.

    The model is ``Normalized(SmallCNN(...), mean, std)`` with the training set's per-channel mean
    and std; it takes pixel-space images in [0, 1]. Loss: cross-entropy; Adam with the learning
    rate decayed by ``lr * (1 + cos(pi * step / steps)) / 2`` (:class:`ClassifierTrainer`).
    Under ``torchrun`` every process trains on its shard, rank 0 writes ``out``.

    Args:
        data (str): ``"digits"`` (trains ``"digits-cnn"``), ``"shapes"`` (``"shapes-cnn"``) or an
            image folder ``DIR/<class>/<image>`` (``"<DIR name>-cnn"``, 4 conv blocks).
        out (path): weights file to write (``{"format", "name", "arch", "config", "state_dict",
            "metrics"}``, loadable by :func:`captum_cf.zoo.load_file`).
        epochs (int, optional): passes over the training set (default per data set: 30 / 10 /
            10 for a folder).
        seed (int): seeds initialisation, data order and augmentation.
        batch_size (int): images per step (per process).
        lr (float): peak Adam learning rate.
        max_shift (int): random shifts of up to this many pixels (augmentation).
        limit (int, optional): use only the first ``limit`` training and test images (quick runs).
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        show_progress (bool): tqdm bars over a folder's images being read and the steps.
        image_size (int, optional): image side (default 32 digits, 64 shapes, the files' size).
        channels, workers, cache_dir, resize: how an image folder is read (1 or 3 channels,
            default from its files; decoding processes; a folder keeping the decoded images;
            the shorter side before the crop, default ``image_size``), as
            :func:`~captum_cf.training.data.folder_images` reads it, into ``uint8``.
        device (str, optional): ``"cpu"`` (default) or ``"cuda"``.
        amp (str, optional): ``"bf16"`` for bfloat16 autocast on CUDA.
        checkpoint_every (int, optional): steps between checkpoints (default: one epoch).
        misplaced_dots (int): shapes only: add this many copies of every "square" training image
            with a dot painted away from its place, labelled "square"
            (:meth:`~captum_cf.datasets.SyntheticShapes.misplaced_dots`, copy ``k`` seeded
            ``seed + k``), so that only a dot at its place makes a "square with dot"; the model
            is then named ``"shapes-cnn-strict"`` (the auxiliary classifier of
            ``"shapes-ganmex"``).

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
    check_classifier_size(setup, image_size)
    if isinstance(misplaced_dots, bool) or not isinstance(misplaced_dots, int) or (
            misplaced_dots < 0 or (misplaced_dots > 0 and data != "shapes")):
        raise ValueError(f"misplaced_dots must be an int >= 0, and > 0 only with data 'shapes', "
                         f"got {misplaced_dots!r} with data {data!r}")
    dev = resolve_device(device)
    distributed_context(dev)  # under torchrun: join the group now, the processes share decoding
    check_amp(amp, dev)
    name = setup["name"] or f"{data_name(data)}-cnn"
    if misplaced_dots > 0:
        x_tr, y_tr, x_te, y_te, test_desc = _with_misplaced_dots(image_size, limit,
                                                                 misplaced_dots, seed)
        name = "shapes-cnn-strict"
    else:
        x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data, image_size, channels,
                                                            show_progress, workers,
                                                            cache_dir, resize)
        if limit is not None:
            x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    config = _config(setup, x_tr, int(max(y_tr.max(), y_te.max())) + 1)
    seed_everything(seed)  # initial weights
    model = build_classifier(config)
    trainer = ClassifierTrainer(
        model, x_tr, y_tr, epochs=epochs, batch_size=batch_size, lr=lr, max_shift=max_shift,
        pad_mode=setup["pad_mode"], seed=seed, checkpoint_path=checkpoint,
        checkpoint_every=checkpoint_every, device=dev, amp=amp,
        log=lambda line: logger.info("%s %s", name, line))
    n_train = len(x_tr)
    del x_tr  # the trainer holds the images on a GPU where they fit: free the host copy
    began, began_cpu = time.perf_counter(), time.process_time()
    trainer.resume_if_exists()
    trainer.fit(trainer.total_steps, show_progress=show_progress)
    model.eval()
    acc = evaluate_accuracy(model, x_te, y_te)
    metrics = {"test_accuracy": acc, "test_data": test_desc, "test_size": len(x_te),
               "train_size": n_train, "epochs": epochs, "seed": seed,
               **({"misplaced_dots": misplaced_dots} if misplaced_dots else {}),
               "losses": trainer.epoch_losses,
               "train_seconds": round(time.perf_counter() - began, 1),
               "train_cpu_seconds": round(time.process_time() - began_cpu, 1)}
    if trainer.dist.world_size > 1:
        metrics["processes"] = trainer.dist.world_size
    if trainer.dist.is_main:
        save_weights(out, name=name, arch="small-cnn", config=config, model=model.cpu(),
                     metrics=metrics)
        logger.info("%s test accuracy %.4f on %s -> %s", name, acc, test_desc, os.fspath(out))
    trainer.dist.barrier()
    return acc


def _with_misplaced_dots(image_size: int | None, limit: int | None, copies: int,
                         seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """:func:`classifier_data` of shapes (first ``limit`` images), the training split plus
    ``copies`` misplaced-dot copies of its squares labelled square."""
    train, test, desc = _shapes_splits(image_size)
    if limit is not None:
        train = train.subset(min(limit, len(train)))
    negatives = torch.cat([train.misplaced_dots(seed + k) for k in range(copies)])
    labels = torch.ones(negatives.shape[0], dtype=train.labels.dtype)
    return (torch.cat([train.images, negatives]), torch.cat([train.labels, labels]),
            test.images[:limit], test.labels[:limit], desc)


def _check_args(
    data: str, epochs: int | None, batch_size: int, lr: float, max_shift: int, limit: int | None
) -> tuple[dict[str, Any], int]:
    from captum_cf.training.data import check_data, is_folder

    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"data must be 'digits', 'shapes' or an image folder, got {data!r}")
    check_data(os.fspath(data))
    setup = CLASSIFIER_SETUPS["folder" if is_folder(os.fspath(data)) else data]
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


def check_classifier_size(setup: dict[str, Any], image_size: int | None) -> None:
    """The classifier of ``setup`` halves the side once per block: ``image_size`` must leave at
    least one pixel (any size from ``2 ** blocks`` on; checked before any image is decoded).

    Raises:
        ValueError: naming ``--image-size`` and the smallest size.
    """
    smallest = 2 ** len(setup["channels"])
    if image_size is not None and image_size < smallest:
        raise ValueError(
            f"image_size (--image-size) must be >= {smallest} for this classifier "
            f"({len(setup['channels'])} blocks that each halve the side), got {image_size}"
        )


def _config(setup: dict[str, Any], x_train: Tensor, num_classes: int) -> dict[str, Any]:
    mean, std = channel_mean_std(x_train)
    std = std.clamp_min(1e-3)
    return {"in_channels": int(x_train.shape[1]), "num_classes": num_classes,
            "image_size": int(x_train.shape[-1]), "channels": list(setup["channels"]),
            "hidden": setup["hidden"], "pool": setup["pool"],
            "mean": [round(float(m), 4) for m in mean],
            "std": [round(float(s), 4) for s in std]}
