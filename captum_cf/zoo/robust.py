"""Zoo entry of the adversarially robust digits classifier ``"digits-cnn-robust"``.

Same architecture family as ``"digits-cnn"`` (``Normalized(SmallCNN)``, 3 conv blocks of 16, 32,
64 channels, 64 hidden units; max pooling), trained with L2 PGD adversarial training
(:func:`captum_cf.robust.adversarial_train`). Its gradients are perceptually aligned, which is
what :class:`captum_cf.attr.SparsePerturbation` needs.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from captum_cf.training import records_run_options
from captum_cf.training.data import DeviceImages
from captum_cf.zoo._registry import ZooEntry, register, save_weights
from captum_cf.zoo.models import build_classifier

__all__ = ["ROBUST_SETUP", "train_robust_classifier", "train_digits_cnn_robust"]

logger = logging.getLogger(__name__)

#: defaults of ``captum-cf train robust --data digits`` (the shipped weights)
ROBUST_SETUP = {
    "pool": "max",
    "norm": "l2",
    "eps": 1.5,
    "steps": 600,
    "attack_steps": 7,
    "batch_size": 64,
    "lr": 2e-3,
    "clean_weight": 0.0,
    "eval_attack_steps": 20,
}


#: test images measured per call of ``robust_accuracy`` (a multiple of its batch of 256, so the
#: batches, and the attacks' random starts, are those of one call over the whole set)
_TEST_CHUNK = 4096


def _test_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   device: torch.device, eps: float, setup: dict) -> tuple[float, float]:
    """Clean and robust test accuracy, the test set moved to ``device`` a chunk at a time (or
    held there where it fits, :class:`~captum_cf.training.data.DeviceImages`)."""
    from captum_cf.robust import robust_accuracy

    test, clean, robust = DeviceImages(images, device), 0, 0
    for i in range(0, len(test), _TEST_CHUNK):
        n = min(_TEST_CHUNK, len(test) - i)
        c, r = robust_accuracy(model, test[i : i + n], labels[i : i + n].to(test.device),
                               setup["norm"], eps, setup["eval_attack_steps"])
        clean, robust = clean + round(c * n), robust + round(r * n)
    return clean / len(test), robust / len(test)


@records_run_options
def train_robust_classifier(
    data: str = "digits",
    out: str | os.PathLike = "digits-cnn-robust.pt",
    eps: float = ROBUST_SETUP["eps"],
    steps: int = ROBUST_SETUP["steps"],
    attack_steps: int = ROBUST_SETUP["attack_steps"],
    seed: int = 0,
    limit: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    show_progress: bool = True,
    *,
    image_size: int | None = None,
    batch_size: int = ROBUST_SETUP["batch_size"],
    checkpoint_every: int = 50,
    device: str | torch.device | None = None,
    amp: str | None = None,
    init: str | os.PathLike | None = None,
    channels: int | None = None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
) -> tuple[float, float]:
    """Train the robust zoo classifier of ``data`` and write it to ``out`` (zoo weights format).

    Args:
        data (str): ``"digits"`` (trains ``"digits-cnn-robust"``), ``"shapes"`` or an image
            folder ``DIR/<class>/<image>`` (``"<name>-cnn-robust"``, the architecture of
            :func:`~captum_cf.zoo.train.train_classifier` for that data with max pooling).
        out (path): weights file to write.
        eps (float): L2 radius of the PGD attack used in training and evaluation.
        steps (int): optimiser steps (batch 64).
        attack_steps (int): PGD iterations per training batch.
        seed (int): seeds initialisation, data order and attack starts.
        limit (int, optional): use only the first ``limit`` training and test images (quick runs).
        checkpoint (path, optional): checkpoint file; an existing one is resumed exactly.
        show_progress (bool): tqdm bars over a folder's images being read and the steps.
        image_size (int, optional): image side (default: the data set's own).
        channels, workers, cache_dir, resize: how an image folder is read (1 or 3 channels,
            default from its files; decoding processes; a folder keeping the decoded images;
            the shorter side before the crop, default ``image_size``), as
            :func:`~captum_cf.training.data.folder_images` reads it, into ``uint8``.
        batch_size (int): images per step (per process under torchrun).
        checkpoint_every (int): steps between checkpoints.
        device (str, optional): ``"cpu"`` (default) or ``"cuda"``.
        amp (str, optional): ``"bf16"``: bfloat16 autocast of the training forward (CUDA).
        init (str or path, optional): start from this trained classifier (``"zoo:<name>"`` or a
            zoo weights file, e.g. of ``captum-cf train classifier`` on the same folder) for
            the same images and classes, keeping its layers and pooling, instead of a random
            initialisation, i.e. adversarial fine-tuning (on shapes, training from scratch at
            L2 eps 1.0 stayed at chance for 130+ steps; from ``"zoo:shapes-cnn"`` at eps 0.5
            it trains).

    Returns:
        tuple[float, float]: clean test accuracy and L2-PGD robust test accuracy at ``eps``
        (20 steps), also stored in the file's ``metrics``.

    Example:
        >>> from captum_cf.zoo.robust import train_robust_classifier
        >>> clean, robust = train_robust_classifier(out="robust.pt", steps=20, limit=128)
    """
    from captum_cf.robust import adversarial_train
    from captum_cf.training.data import check_data, data_name, is_folder
    from captum_cf.training.distributed import check_amp, distributed_context, resolve_device
    from captum_cf.zoo.train import (
        CLASSIFIER_SETUPS,
        _config,
        check_classifier_size,
        classifier_data,
    )

    check_data(data, image_size, channels, workers, resize)
    # the classifier's layers; max pooling, as digits-cnn had when these weights were trained
    # (it moved to average pooling for exact DeepLift later): the robust model is used for its
    # gradients only
    setup = CLASSIFIER_SETUPS["folder" if is_folder(data) else data]
    check_classifier_size(setup, image_size)
    stored = _read_init(init) if init is not None else None  # a bad spec fails before any work
    dev = resolve_device(device)
    distributed_context(dev)  # under torchrun: join the group now, the processes share decoding
    check_amp(amp, dev)
    x_tr, y_tr, x_te, y_te, test_desc = classifier_data(data, image_size, channels,
                                                        show_progress, workers, cache_dir,
                                                        resize)
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    num_classes = 10 if data == "digits" else int(max(y_tr.max(), y_te.max())) + 1
    config = {**_config(setup, x_tr, num_classes), "pool": ROBUST_SETUP["pool"]}
    name = "digits-cnn-robust" if data == "digits" else f"{data_name(data)}-cnn-robust"
    torch.manual_seed(seed)
    if stored is not None:
        config, state = _init_weights(config, stored)
        model = build_classifier(config)
        model.load_state_dict(state)
    else:
        model = build_classifier(config)
    s = ROBUST_SETUP
    began = time.perf_counter()
    history = adversarial_train(
        model,
        (x_tr, y_tr),
        norm=s["norm"],
        eps=eps,
        steps=steps,
        attack_steps=attack_steps,
        batch_size=min(batch_size, len(x_tr)),
        lr=s["lr"],
        clean_weight=s["clean_weight"],
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        seed=seed,
        show_progress=show_progress,
        log_every=25,
        device=dev,
        amp=amp,
    )
    seconds = round(time.perf_counter() - began, 1)
    model.eval()
    clean, robust = _test_accuracy(model, x_te, y_te, dev, eps, s)
    metrics = {
        "test_accuracy": clean,
        "robust_accuracy": robust,
        "threat": f"{s['norm']} eps={eps}",
        "eval_attack": f"PGD {s['eval_attack_steps']} steps, step 2.5*eps/steps, random start",
        "test_data": test_desc,
        "test_size": len(x_te),
        "train_size": len(x_tr),
        "steps": steps,
        "attack_steps": attack_steps,
        "seed": seed,
        **({"init": os.fspath(init)} if init is not None else {}),
        "losses": [round(h["loss"], 4) for h in history],
        "train_seconds": seconds,
    }
    context = distributed_context(dev)
    if context.is_main:
        save_weights(out, name=name, arch="small-cnn", config=config, model=model.cpu(),
                     metrics=metrics)
        logger.info("%s clean %.4f robust %.4f -> %s", name, clean, robust, os.fspath(out))
    context.barrier()
    return clean, robust


def _read_init(init: str | os.PathLike) -> dict:
    """The stored zoo classifier ``init`` (``"zoo:<name>"`` or a weights file)."""
    from captum_cf import zoo
    from captum_cf.zoo._registry import spec_path

    return zoo.read_weights(spec_path(os.fspath(init), what="init"))


def _init_weights(config: dict, stored: dict) -> tuple[dict, dict]:
    """Config and float32 state of the stored classifier, which must be a ``small-cnn`` for this
    data's images and classes; its own layers, pooling and input normalisation are kept (a
    folder's ``train classifier`` pools by average where a robust model trained from scratch
    pools by maximum)."""
    if stored["arch"] != "small-cnn":
        raise ValueError(
            f"init must be a classifier of captum-cf train classifier (architecture "
            f"'small-cnn'), got architecture {stored['arch']!r}"
        )
    theirs = stored["config"]
    names = {"in_channels": "channels", "image_size": "image size", "num_classes": "classes"}
    differ = [f"{names[k]} {theirs.get(k)} (the data: {config[k]})" for k in names
              if theirs.get(k) != config[k]]
    if differ:
        raise ValueError(
            f"init must be a classifier of this data's images and classes; it has "
            f"{', '.join(differ)}"
        )
    return theirs, {k: v.float() for k, v in stored["state_dict"].items()}


def train_digits_cnn_robust(
    out: str | os.PathLike, seed: int = 0, show_progress: bool = True
) -> float:
    """Reproduce ``digits-cnn-robust.pt``; returns its clean test accuracy."""
    return train_robust_classifier("digits", out=out, seed=seed, show_progress=show_progress)[0]


register(
    ZooEntry(
        name="digits-cnn-robust",
        arch="small-cnn",
        builder=build_classifier,
        weights="digits-cnn-robust.pt",
        train=train_digits_cnn_robust,
        command="captum-cf train robust --data digits --out digits-cnn-robust.pt",
        description="digits-cnn architecture, L2 PGD adversarial training (eps 1.5), "
        "1x32x32 -> 10 logits",
        metric="test_accuracy",
        expected=0.95,
    )
)
