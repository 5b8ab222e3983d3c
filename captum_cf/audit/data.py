"""What an audit reads: images from ``digits``, ``shapes`` or an image folder, with labels and
(when known) object masks. Every user error is an :class:`AuditInputError`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from captum_cf.audit.errors import AuditInputError

__all__ = ["AuditData", "load_data", "MASK_SUFFIX"]

#: a mask for ``DIR/<class>/<name>.<ext>`` is ``DIR/<class>/<name>_mask.png`` (non-zero = object)
MASK_SUFFIX = "_mask"
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class AuditData:
    """Images to audit, with labels and (when known) object masks.

    Attributes:
        name (str): ``"digits"``, ``"shapes"`` or the folder path.
        images (Tensor): (N, C, H, W) float in [0, 1].
        labels (Tensor): (N,) int64 (class per subfolder, sorted, for a folder).
        masks (Tensor or None): (N, 1, H, W) bool object masks.
        train (TensorDataset or None): training images and labels, for baselines that need samples.
        class_names (list of str): names of the classes, indexed by label.
    """

    name: str
    images: Tensor
    labels: Tensor
    masks: Tensor | None
    train: TensorDataset | None
    class_names: list[str]


def _subset(total: int, n: int, seed: int) -> Tensor:
    if n < 1:
        raise AuditInputError(f"--n must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=gen)[: min(n, total)].sort().values


def load_data(spec: str, n: int, seed: int = 0) -> AuditData:
    """``"digits"`` (digits test split), ``"shapes"`` (fresh test-generator shapes) or a folder."""
    if spec == "digits":
        from captum_cf.datasets import load_digits

        x, y = load_digits("test").tensors
        idx = _subset(len(y), n, seed)
        names = [str(i) for i in range(10)]
        return AuditData("digits", x[idx], y[idx], None, load_digits("train"), names)
    if spec == "shapes":
        from captum_cf.datasets import SyntheticShapes

        if n < 1:
            raise AuditInputError(f"--n must be >= 1, got {n}")
        # fresh images from the generator of shapes-cnn's test set (seed 1; training used seed 0)
        test = SyntheticShapes(n, size=64, seed=1 + seed)
        train = SyntheticShapes(128, size=64, seed=0).to_tensor_dataset()
        names = list(test.class_names)
        return AuditData("shapes", test.images, test.labels, test.masks, train, names)
    if os.path.isdir(spec):
        return _load_folder(spec, n, seed)
    raise AuditInputError(
        f"--data must be 'digits', 'shapes' or an image folder; {spec!r} is none of these"
    )


def _load_folder(root: str, n: int, seed: int) -> AuditData:
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files = [
        (os.path.join(root, c, f), label)
        for label, c in enumerate(classes)
        for f in sorted(os.listdir(os.path.join(root, c)))
        if f.lower().endswith(_IMAGE_EXTS) and not os.path.splitext(f)[0].endswith(MASK_SUFFIX)
    ]
    if not files:
        raise AuditInputError(
            f"{root}: no images found (expected {root}/<class>/<image>.png, one folder per class)"
        )
    idx = _subset(len(files), n, seed).tolist()
    chosen = [files[i] for i in idx]
    images = [_read_image(path) for path, _ in chosen]
    grey = all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
    tensors = [_to_tensor(im.convert("L" if grey else "RGB")) for im in images]
    if len({tuple(t.shape) for t in tensors}) != 1:
        sizes = sorted({tuple(t.shape[1:]) for t in tensors})
        raise AuditInputError(f"{root}: images must all have the same size, found {sizes[:4]}")
    masks = _read_masks([p for p, _ in chosen], tuple(tensors[0].shape[1:]))
    labels = torch.tensor([label for _, label in chosen], dtype=torch.long)
    return AuditData(root, torch.stack(tensors), labels, masks, None, classes)


def _read_image(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise AuditInputError(f"cannot read image {path}: {err}") from err


def _to_tensor(im: Any) -> Tensor:
    import numpy as np

    arr = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255.0
    return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1).contiguous()


def _read_masks(paths: list[str], hw: tuple[int, int]) -> Tensor | None:
    mask_paths = [os.path.splitext(p)[0] + MASK_SUFFIX + ".png" for p in paths]
    present = [os.path.isfile(m) for m in mask_paths]
    if not any(present):
        return None
    if not all(present):
        missing = [m for m, ok in zip(mask_paths, present) if not ok]
        raise AuditInputError(
            f"masks are given for some images but not for {missing[0]} ({len(missing)} missing)"
        )
    masks = torch.stack([_to_tensor(_read_image(m).convert("L")) > 0 for m in mask_paths])
    if tuple(masks.shape[-2:]) != hw:
        raise AuditInputError(
            f"masks must have the images' size {hw}, got {tuple(masks.shape[-2:])}"
        )
    return masks


