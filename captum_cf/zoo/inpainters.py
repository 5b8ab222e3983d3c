"""Zoo entries ``"digits-inpainter"`` and ``"shapes-inpainter"``: trainer and quality measure.

Quality is the mean absolute error inside random holes covering 10-25 % of each held-out image
(free-form strokes and boxes, a fixed seed), measured side by side for the learned inpainter,
:class:`~captum_cf.inpainters.PushPullInpainter` and the mean-colour fill (every hole pixel gets
the mean colour of the image's known pixels). Lower is better.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf.inpainters.holes import random_holes
from captum_cf.inpainters.learned import ARCH, LearnedInpainter, build_inpainter
from captum_cf.training import records_run_options
from captum_cf.training.data import DeviceImages, unit_images
from captum_cf.zoo._registry import ZooEntry, register

__all__ = [
    "INPAINTER_SETUPS",
    "EVAL_COVERAGE",
    "inpainter_data",
    "mean_colour_fill",
    "hole_l1",
    "inpainter_quality",
    "train_inpainter",
]

logger = logging.getLogger(__name__)

#: per data set: zoo name, architecture config, training recipe, train/held-out data
INPAINTER_SETUPS: dict[str, dict[str, Any]] = {
    "digits": {"name": "digits-inpainter", "steps": 600, "batch_size": 32, "lr": 2e-3,
               "config": {"channels": 1, "widths": [16, 32, 48], "dilations": [2, 4],
                          "prefill": "pushpull"}},
    "shapes": {"name": "shapes-inpainter", "steps": 3600, "batch_size": 16, "lr": 2e-3,
               "crop": 48,
               "config": {"channels": 3, "widths": [16, 32, 48], "dilations": [2, 4],
                          "prefill": "biharmonic"},
               "n_train": 4000, "n_test": 500, "size": 64, "train_seed": 0, "test_seed": 1},
}
#: hole coverage of the quality measure (fraction of each image)
EVAL_COVERAGE = (0.10, 0.25)
#: seed of the holes of the quality measure
EVAL_SEED = 0


def inpainter_data(data: str, image_size: int | None = None, channels: int | None = None,
                   show_progress: bool = False, workers: int = 0,
                   cache_dir: str | os.PathLike | None = None,
                   resize: int | None = None) -> tuple[Tensor, Tensor, str]:
    """``(train_images, held_out_images, held_out_description)`` of a data set.

    Args:
        data (str): ``"digits"``, ``"shapes"`` or an image folder (its labels are ignored).
        image_size (int, optional): image side (default: the data set's own).
        show_progress (bool): a progress bar over a folder's images being read.
        channels, workers, cache_dir, resize: as in
            :func:`~captum_cf.zoo.inpainters.train_inpainter`.

    Digits and shapes come as float32 in [0, 1], a folder's images as ``uint8`` (0..255).
    """
    from captum_cf.training.data import check_data, folder_split

    check_data(data, image_size, channels, workers, resize)
    if data == "digits":
        from captum_cf.datasets import load_digits

        size = image_size or 32
        return (load_digits("train", size=size).tensors[0],
                load_digits("test", size=size).tensors[0], f"load_digits('test', size={size})")
    if data == "shapes":
        from captum_cf.datasets import SyntheticShapes

        s = INPAINTER_SETUPS["shapes"]
        size = image_size or s["size"]
        train = SyntheticShapes(s["n_train"], size=size, seed=s["train_seed"]).images
        test = SyntheticShapes(s["n_test"], size=size, seed=s["test_seed"]).images
        return train, test, f"SyntheticShapes({s['n_test']}, size={size}, " \
                            f"seed={s['test_seed']})"
    x_tr, _, x_te, _, desc = folder_split(data, image_size, channels=channels,
                                          show_progress=show_progress, dtype=torch.uint8,
                                          workers=workers, cache_dir=cache_dir, resize=resize)
    return x_tr, x_te, desc


def _setup(data: str, train: Tensor) -> dict[str, Any]:
    """The recipe of a data set; a folder takes the digits recipe (1 channel) or the shapes one."""
    from captum_cf.training.data import data_name, is_folder

    if not is_folder(data):
        return INPAINTER_SETUPS[data]
    base = INPAINTER_SETUPS["digits" if train.shape[1] == 1 else "shapes"]
    crop = base.get("crop")
    return {**base, "name": f"{data_name(data)}-inpainter",
            "crop": crop if crop is not None and min(train.shape[-2:]) > crop else None,
            "config": {**base["config"], "channels": int(train.shape[1])}}


def mean_colour_fill(images: Tensor, hole: Tensor) -> Tensor:
    """Fill each image's holes with the mean colour of its known pixels (per channel).

    Args:
        images (Tensor): (N, C, H, W) in [0, 1].
        hole (Tensor): (N, 1, H, W), 1 = hole.
    """
    known = 1 - hole
    mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
    return known * images + hole * mean


def hole_l1(filled: Tensor, images: Tensor, hole: Tensor) -> float:
    """Mean absolute error of ``filled`` against ``images`` over the hole pixels (all channels)."""
    weight = hole.expand_as(images)
    return float(((filled - images).abs() * weight).sum() / weight.sum().clamp_min(1))


@torch.no_grad()
def inpainter_quality(
    inpainters: dict[str, Callable[[Tensor, Tensor], Tensor]],
    images: Tensor | DeviceImages,
    seed: int = EVAL_SEED,
    coverage: tuple[float, float] = EVAL_COVERAGE,
    batch_size: int = 100,
) -> dict[str, float]:
    """Hole L1 of each inpainter on the same random holes (``mean-colour`` is always added).

    Args:
        inpainters (dict): name -> ``fn(images, hole) -> images``.
        images (Tensor or DeviceImages): held-out images (N, C, H, W), float in [0, 1] or
            ``uint8`` (0..255), read ``batch_size`` at a time (a ``DeviceImages`` moves each
            batch to its device) (the errors are summed batch by batch: no copy of
            the whole set, no filled images kept).
        seed (int): seed of the holes (:func:`random_holes`, free-form + box).
        coverage (tuple): hole coverage range of each image.
        batch_size (int): images per inpainter call.

    Returns:
        dict[str, float]: name -> mean L1 error inside the holes (as :func:`hole_l1` over all
        images).
    """
    hole = random_holes(len(images), images.shape[-2], images.shape[-1], coverage,
                        generator=torch.Generator().manual_seed(seed))
    fns = {**inpainters, "mean-colour": mean_colour_fill}
    errors, area = dict.fromkeys(fns, 0.0), 0.0
    for i in range(0, len(images), batch_size):
        x = unit_images(images[i : i + batch_size])
        h = hole[i : i + batch_size].to(x.device)
        weight = h.expand_as(x)
        area += float(weight.sum())
        for name, fn in fns.items():
            errors[name] += float(((fn(x, h) - x).abs() * weight).sum())
    return {name: error / max(area, 1.0) for name, error in errors.items()}


@records_run_options
def train_inpainter(
    data: str = "digits",
    out: str | os.PathLike = "inpainter.pt",
    steps: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    show_progress: bool = True,
    *,
    image_size: int | None = None,
    batch_size: int | None = None,
    checkpoint_every: int = 200,
    device: str | torch.device | None = None,
    amp: str | None = None,
    channels: int | None = None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    resize: int | None = None,
) -> float:
    """Train the zoo inpainter of ``data`` and write it to ``out`` with its measured quality.

    Trains :class:`LearnedInpainter` (config and recipe from :data:`INPAINTER_SETUPS`; an image
    folder takes the digits recipe for grey images, the shapes one for colour) on the training
    split, then measures :func:`inpainter_quality` on the held-out split (on the training
    device) and stores it in the file's ``metrics``: ``test_l1`` (learned), ``test_l1_pushpull``,
    ``test_l1_mean_colour`` and their ratios. Under torchrun rank 0 writes ``out``.

    Args:
        data (str): ``"digits"``, ``"shapes"`` or an image folder ``DIR/<class>/<image>``.
        out (path): weights file to write (zoo format, :func:`captum_cf.zoo.load_file`).
        steps (int, optional): optimisation steps (default per data set).
        seed (int): seeds the initial weights, data order and holes.
        limit (int, optional): use only the first ``limit`` training and held-out images.
        checkpoint (path, optional): checkpoint file, written every ``checkpoint_every`` steps.
        resume (bool): continue from ``checkpoint`` when it exists.
        show_progress (bool): tqdm progress bars (reading a folder's images, the steps).
        image_size (int, optional): image side (default: the data set's own).
        channels, workers, cache_dir, resize: how an image folder is read (1 or 3 channels,
            default from its files; decoding processes; a folder keeping the decoded images;
            the shorter side before the crop, default ``image_size``), as
            :func:`~captum_cf.training.data.folder_images` reads it, into ``uint8``.
        batch_size (int, optional): images per step (default per data set; per process).
        checkpoint_every (int): steps between checkpoints.
        device (str, optional): ``"cpu"`` (default) or ``"cuda"``.
        amp (str, optional): ``"bf16"``: bfloat16 autocast of the network (CUDA only).

    Returns:
        float: the held-out hole L1 of the trained inpainter.

    Example:
        >>> l1 = train_inpainter("digits", out="digits-inpainter.pt", steps=50, limit=128)
        >>> inpainter = LearnedInpainter.load("digits-inpainter.pt")
    """
    from captum_cf.training.data import check_data
    from captum_cf.training.distributed import check_amp, distributed_context, resolve_device

    check_data(data, image_size, channels, workers, resize)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    dev = resolve_device(device)
    distributed_context(dev)  # under torchrun: join the group now, the processes share decoding
    check_amp(amp, dev)
    train, test, test_desc = inpainter_data(data, image_size, channels, show_progress,
                                            workers, cache_dir, resize)
    setup = _setup(data, train)
    steps = setup["steps"] if steps is None else steps
    if limit is not None:
        train, test = train[:limit], test[:limit]
    torch.manual_seed(seed)
    model = LearnedInpainter(setup["config"])
    began = time.perf_counter()
    losses = model.fit(train, steps=steps, batch_size=batch_size or setup["batch_size"],
                       lr=setup["lr"], crop=setup.get("crop"), checkpoint=checkpoint,
                       checkpoint_every=checkpoint_every, resume=resume,
                       show_progress=show_progress, seed=seed, device=dev, amp=amp)
    model.eval()
    from captum_cf.inpainters import PushPullInpainter

    # measured where it trained (the CPU for the shipped inpainters), a batch at a time
    q = inpainter_quality({"learned": model, "push-pull": PushPullInpainter()},
                          DeviceImages(test, dev))
    model.cpu()
    metrics = {"test_l1": q["learned"], "test_l1_pushpull": q["push-pull"],
               "test_l1_mean_colour": q["mean-colour"],
               "ratio_learned_pushpull": q["learned"] / q["push-pull"],
               "ratio_pushpull_mean_colour": q["push-pull"] / q["mean-colour"],
               "test_data": test_desc, "test_size": len(test), "hole_coverage": list(EVAL_COVERAGE),
               "hole_seed": EVAL_SEED, "train_size": len(train), "steps": steps, "seed": seed,
               "loss_per_50_steps": [round(sum(losses[i : i + 50]) / len(losses[i : i + 50]), 5)
                                     for i in range(0, len(losses), 50)],
               "train_seconds": round(time.perf_counter() - began, 1)}
    context = distributed_context(dev)
    if context.is_main:
        model.save(out, metrics=metrics, name=setup["name"])
        logger.info("%s held-out hole L1 %.4f (push-pull %.4f, mean colour %.4f) -> %s",
                    setup["name"], q["learned"], q["push-pull"], q["mean-colour"],
                    os.fspath(out))
    context.barrier()
    return q["learned"]


def train_digits_inpainter(out: str | os.PathLike, seed: int = 0,
                           show_progress: bool = True) -> float:
    """Reproduce ``digits-inpainter.pt``; returns its held-out hole L1."""
    return train_inpainter("digits", out=out, seed=seed, show_progress=show_progress)


def train_shapes_inpainter(out: str | os.PathLike, seed: int = 0,
                           show_progress: bool = True) -> float:
    """Reproduce ``shapes-inpainter.pt``; returns its held-out hole L1."""
    return train_inpainter("shapes", out=out, seed=seed, show_progress=show_progress)


register(ZooEntry(
    name="digits-inpainter",
    arch=ARCH,
    builder=build_inpainter,
    weights="digits-inpainter.pt",
    train=train_digits_inpainter,
    command="captum-cf train inpainter --data digits --out digits-inpainter.pt",
    description="gated-conv U-Net inpainter on load_digits, 1x32x32 images + hole mask",
    metric="test_l1",
    expected=0.08,  # held-out hole L1 bar: about 0.8 x push-pull's 0.101
    higher_is_better=False,
))

register(ZooEntry(
    name="shapes-inpainter",
    arch=ARCH,
    builder=build_inpainter,
    weights="shapes-inpainter.pt",
    train=train_shapes_inpainter,
    command="captum-cf train inpainter --data shapes --out shapes-inpainter.pt",
    description="gated-conv U-Net on a biharmonic prefill, SyntheticShapes, 3x64x64 images + "
                "hole mask",
    metric="test_l1",
    expected=0.049,  # held-out hole L1 bar: 0.8 x push-pull's 0.061
    higher_is_better=False,
))
