"""What an audit reads: images from ``digits``, ``shapes`` or an image folder, as a ``Dataset``.

Every source becomes a :class:`AuditData`: a ``Dataset`` whose items are ``(image, label)`` or
``(image, label, mask)``, the id of each image (a folder's relative path, else the index) and its
true label when known. The runner streams it through a ``DataLoader`` batch by batch, so memory does
not grow with the number of images. Every user error is an :class:`AuditInputError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from captum_cf.audit.errors import AuditInputError
from captum_cf.datasets.folder import (
    MASK_SUFFIX,
    ImageFolder,
    check_mask_size,
    check_resize,
    image_header,
)

__all__ = ["AuditData", "load_data", "load_train_folder", "MASK_SUFFIX", "TensorImages", "parse_n"]


@dataclass
class AuditData:
    """Images to audit, streamed from ``dataset``.

    Attributes:
        name (str): ``"digits"``, ``"shapes"`` or the folder path.
        dataset (Dataset): items ``(image (C, H, W) float in [0, 1], label int)`` or
            ``(image, label, mask (1, H, W) bool)``; label -1 when unknown.
        ids (list of str): one id per item (relative path for a folder, index otherwise).
        has_masks (bool): items carry object masks (adds the pointing game).
        train (TensorDataset or None): training images and labels, for baselines that need samples.
        class_names (list of str): names of the classes, indexed by label.
    """

    name: str
    dataset: Dataset
    ids: list[str]
    has_masks: bool
    train: TensorDataset | None
    class_names: list[str]


class TensorImages(Dataset):
    """Items ``(image, label[, mask])`` of an image tensor (labels -1 when not given).

    Args:
        images (Tensor): (N, C, H, W) in [0, 1].
        labels (Tensor, optional): (N,) int64 true labels.
        masks (Tensor, optional): (N, 1, H, W) bool object masks.
    """

    def __init__(self, images: Tensor, labels: Tensor | None = None, masks: Tensor | None = None):
        self.images, self.masks = images, masks
        self.labels = labels if labels is not None else torch.full((len(images),), -1)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        item = (self.images[i], self.labels[i])
        return item if self.masks is None else item + (self.masks[i],)

    def __getitems__(self, idx: list[int]) -> list[tuple[Any, ...]]:
        # one indexing per batch instead of one per image (DataLoader uses it when present)
        t = torch.as_tensor(idx)
        rows = [self.images[t], self.labels[t]] + ([] if self.masks is None else [self.masks[t]])
        return [tuple(r[j] for r in rows) for j in range(len(idx))]


def parse_n(value: str) -> int | None:
    """``--n``: a positive int, or ``all`` (None)."""
    if str(value).lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise AuditInputError(f"--n must be a positive int or 'all', got {value!r}") from None
    if n < 1:
        raise AuditInputError(f"--n must be >= 1 or 'all', got {n}")
    return n


def _subset(total: int, n: int | None, seed: int) -> Tensor:
    if n is None or n >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=gen)[:n].sort().values


def load_data(
    spec: str,
    n: int | None,
    seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    resize: int | None = None,
) -> AuditData:
    """``"digits"`` (digits test split), ``"shapes"`` (fresh test-generator shapes) or a folder.

    Args:
        spec (str): ``digits``, ``shapes`` or an image folder ``DIR/<class>/<image>``.
        n (int or None): number of images (a seeded random subset, kept in file order);
            None: all of them (``digits``: the test split; ``shapes``: 32).
        seed (int): seed of the subset.
        image_size (int, optional): folders: resize the shorter side to S and centre-crop S x S
            (masks follow, nearest); None keeps the files' size, which must then be equal.
        channels (int, optional): folders: 1 reads the images as greyscale, 3 as RGB; None
            decides from the files (:class:`captum_cf.datasets.ImageFolder`).
        resize (int, optional): folders, with ``image_size`` S: resize the shorter side to
            R >= S before the centre crop (torchvision's ``Resize(R)`` + ``CenterCrop(S)``).
    """
    if n is not None and n < 1:
        raise AuditInputError(f"--n must be >= 1, got {n}")
    if image_size is not None and spec in ("digits", "shapes"):
        raise AuditInputError("--image-size applies to an image folder, not to digits or shapes")
    if channels is not None and spec in ("digits", "shapes"):
        raise AuditInputError("--channels applies to an image folder, not to digits or shapes")
    if resize is not None and spec in ("digits", "shapes"):
        raise AuditInputError("--resize applies to an image folder, not to digits or shapes")
    try:
        check_resize(resize, image_size, "--resize")
    except ValueError as err:
        raise AuditInputError(str(err)) from err
    if spec == "digits":
        from captum_cf.datasets import load_digits

        x, y = load_digits("test").tensors
        idx = _subset(len(y), n, seed)
        names = [str(i) for i in range(10)]
        ids = [str(i) for i in idx.tolist()]
        return AuditData(
            "digits", TensorImages(x[idx], y[idx]), ids, False, load_digits("train"), names
        )
    if spec == "shapes":
        from captum_cf.datasets import SyntheticShapes

        # fresh images from the generator of shapes-cnn's test set (seed 1; training used seed 0)
        test = SyntheticShapes(32 if n is None else n, size=64, seed=1 + seed)
        train = SyntheticShapes(128, size=64, seed=0).to_tensor_dataset()
        ds = TensorImages(test.images, test.labels, test.masks)
        ids = [str(i) for i in range(len(ds))]
        return AuditData("shapes", ds, ids, True, train, list(test.class_names))
    if os.path.isdir(spec):
        return _load_folder(spec, n, seed, image_size, channels, resize)
    raise AuditInputError(
        f"--data must be 'digits', 'shapes' or an image folder; {spec!r} is none of these"
    )


def load_train_folder(
    root: str, data: AuditData, image_size: int | None, show_progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> TensorDataset:
    """The training images of an audited folder (``--train-data DIR``), for the baselines that
    need samples (``nearest-sample``): read like the audited images (``image_size``, their
    channels and resize) and held in memory as ``uint8`` (N x C x S x S bytes; the
    nearest-sample baseline reads them as ``value / 255``, exact for 8-bit files at their own
    size, within 0.5 / 255 after a resize). Under ``torchrun`` the processes share the
    decoding; ``cache_dir`` (``--cache-dir``) keeps the decoded images for the next audit or
    resume (:func:`captum_cf.training.data.folder_images`).

    Raises:
        AuditInputError: ``data`` is built in (digits and shapes bring their own), ``root`` is
            not an image folder, its images cannot be read or have other sizes without
            ``image_size``, or its class folders differ from the audited folder's.
    """
    from captum_cf.training.data import folder_images

    if data.name in ("digits", "shapes"):
        raise AuditInputError(
            "--train-data applies to an image folder; digits and shapes bring their training "
            "images"
        )
    channels = getattr(data.dataset, "channels", None)
    try:
        images, labels, classes = folder_images(
            root, image_size, channels=channels, show_progress=show_progress, dtype=torch.uint8,
            cache_dir=cache_dir, resize=getattr(data.dataset, "resize", None),
        )
    except ValueError as err:
        raise AuditInputError(f"--train-data: {err}") from err
    if classes != list(data.class_names):
        raise AuditInputError(
            f"--train-data {root} has the classes {classes}, the audited folder "
            f"{list(data.class_names)}: both need the same class folders"
        )
    return TensorDataset(images, labels)


def _load_folder(
    root: str, n: int | None, seed: int, image_size: int | None, channels: int | None,
    resize: int | None = None,
) -> AuditData:
    try:
        everything = ImageFolder(root, image_size, channels=channels, resize=resize)
        idx = _subset(len(everything), n, seed).tolist()
        # the subset keeps the whole folder's colour decision
        ds = ImageFolder(root, image_size, files=idx, channels=everything.channels,
                         resize=resize)
    except ValueError as err:
        raise AuditInputError(str(err)) from err
    _check_headers(ds, same_size=image_size is None)
    return AuditData(root, ds, ds.paths, ds.has_masks, None, list(ds.classes))


def _check_headers(ds: ImageFolder, same_size: bool) -> None:
    """Checked from the file headers before any work (Pillow reads a size without decoding the
    pixels; about 0.1 ms a file): every image and mask opens, each mask has its image's size
    and, without --image-size (``same_size``), every image has the first one's. A file whose
    header reads but whose pixels are damaged still stops the audit where it is read (the
    results store keeps what was computed)."""
    first: tuple[int, int] | None = None
    for path, _ in ds.samples:
        try:
            size = image_header(path)[0]
            if ds.has_masks:
                mask = ds.mask_path(path)
                check_mask_size(mask, image_header(mask)[0], path, size)
        except ValueError as err:
            raise AuditInputError(str(err)) from err
        if not same_size:
            continue
        if first is None:
            first = size
        elif size != first:
            raise AuditInputError(
                f"{path} is {size[1]}x{size[0]} but earlier images are {first[1]}x{first[0]}: "
                "pass --image-size S to resize and centre-crop every image to S x S"
            )
