"""The images of ``captum-cf train ... --data digits|shapes|DIR`` as in-memory tensors.

``DIR`` is read with :class:`captum_cf.datasets.ImageFolder`, the reader ``captum-cf audit``
uses (one folder per class, resized to ``--image-size`` and centre-cropped). Trainers sample
random batches (and GANMEX real images of a given class) many times per epoch, so the images are
decoded once, through a ``DataLoader``, and held as one float tensor: about
``N x C x S x S x 4`` bytes (10,000 RGB images at 128 px: 2 GB).

Splits: ``DIR/train`` and ``DIR/test`` when both exist (each a class-per-folder tree), otherwise
a fixed share of ``DIR`` (``test_fraction``, seed 0: the same images whatever the training seed)
is held out for the final measurement.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor
from torch.utils.data import DataLoader

__all__ = ["BUILTIN_DATA", "is_folder", "check_data", "folder_images", "folder_split"]

#: the data sets captum_cf generates or ships
BUILTIN_DATA = ("digits", "shapes")


def is_folder(data: str) -> bool:
    """True when ``data`` names an image folder rather than a built-in data set."""
    return data not in BUILTIN_DATA


def check_data(data: str, image_size: int | None = None, channels: int | None = None) -> None:
    """Reject a ``data`` that is neither built in nor a folder, a bad ``image_size`` and a
    ``channels`` other than 1, 3 (folders only) or None.

    Raises:
        ValueError: naming ``data`` or ``image_size`` and what is accepted.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"data must be 'digits', 'shapes' or an image folder, got {data!r}")
    data = os.fspath(data)
    if is_folder(data) and not os.path.isdir(data):
        raise ValueError(
            f"data must be 'digits', 'shapes' or an image folder DIR/<class>/<image>, got {data!r}"
        )
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8
    ):
        raise ValueError(f"image_size must be an int >= 8 or None, got {image_size!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if channels is not None and not is_folder(data):
        raise ValueError(f"channels applies to an image folder, not to {data!r}")


def folder_images(root: str, image_size: int | None = None, batch_size: int = 64,
                  channels: int | None = None,
                  show_progress: bool = False) -> tuple[Tensor, Tensor, list[str]]:
    """Every image of a class-per-folder tree: ``(images (N, C, S, S) in [0, 1], labels, classes)``.

    ``channels`` (1, 3 or None: decided from the files) as in
    :class:`captum_cf.datasets.ImageFolder`; ``show_progress``: a progress bar over the images
    being decoded (rank 0 only under torchrun).

    Example:
        >>> x, y, classes = folder_images("photos", image_size=64)  # doctest: +SKIP
    """
    from captum_cf.datasets import ImageFolder

    ds = ImageFolder(os.fspath(root), image_size=image_size, channels=channels)
    images, labels = [], []
    bar = None
    if show_progress and os.environ.get("RANK", "0") == "0":
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ds), desc=f"reading {root}", unit="image", leave=False)
    try:
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False):
            images.append(batch[0].float())
            labels.append(torch.as_tensor(batch[1], dtype=torch.long))
            if bar is not None:
                bar.update(len(batch[1]))
    finally:
        if bar is not None:
            bar.close()
    return torch.cat(images), torch.cat(labels), list(ds.classes)


def folder_split(root: str, image_size: int | None = None, test_fraction: float = 0.2,
                 channels: int | None = None,
                 show_progress: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """``(x_train, y_train, x_test, y_test, test_description)`` of an image folder.

    ``channels`` as in :class:`captum_cf.datasets.ImageFolder`; ``DIR/test`` is read with the
    channels of ``DIR/train`` (by default 1 when its first images are greyscale, else 3), so
    that both splits fit one model.

    Raises:
        ValueError: when ``DIR/train`` and ``DIR/test`` name different classes, or a split is
            empty.
    """
    root = os.fspath(root)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        x_tr, y_tr, classes = folder_images(train_dir, image_size, channels=channels,
                                            show_progress=show_progress)
        x_te, y_te, test_classes = folder_images(test_dir, image_size, channels=x_tr.shape[1],
                                                 show_progress=show_progress)
        if classes != test_classes:
            raise ValueError(f"{train_dir} has classes {classes} but {test_dir} has "
                             f"{test_classes}: both need the same class folders")
        return x_tr, y_tr, x_te, y_te, f"{test_dir} ({len(x_te)} images)"
    images, labels, _ = folder_images(root, image_size, channels=channels,
                                      show_progress=show_progress)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = int(round(test_fraction * len(images)))
    if n_test < 1 or n_test >= len(images):
        raise ValueError(f"{root} has {len(images)} images: too few to hold out a test share "
                         f"of {test_fraction} (or give {root}/train and {root}/test)")
    test, train = order[:n_test], order[n_test:]
    desc = f"{root} held-out share {test_fraction} (seed 0, {n_test} images)"
    return images[train], labels[train], images[test], labels[test], desc


def data_name(data: str) -> str:
    """A short name for files and zoo names: the built-in name or the folder's base name."""
    return data if not is_folder(data) else os.path.basename(os.path.normpath(data)) or "data"
