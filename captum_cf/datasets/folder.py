"""Image folders: one class per sub-folder, read lazily with Pillow, resized and cropped.

The one reader of user images in captum_cf: ``captum-cf audit --data DIR`` and
``captum-cf train ... --data DIR`` both stream it through a ``torch.utils.data.DataLoader``, so
memory does not grow with the number of images.

Layout (torchvision's ``ImageFolder`` conventions)::

    DIR/<class>/<image>.png              one folder per class, sorted names = labels 0, 1, ...
    DIR/<class>/<sub>/<image>.jpg        nested folders belong to their top-level class
    DIR/<class>/<image>_mask.png         optional object mask (non-zero = object)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["IMAGE_EXTENSIONS", "MASK_SUFFIX", "ImageFolder"]

#: a mask for ``DIR/<class>/<name>.<ext>`` is ``DIR/<class>/<name>_mask.png``
MASK_SUFFIX = "_mask"
#: file endings read as images (lower case; any format Pillow opens)
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)
_GREY_MODES = ("1", "L", "I", "I;16", "F")


class ImageFolder(Dataset):
    """A class-per-folder image tree, read one image at a time.

    Each item is ``(image, label)`` or, when the folder has masks, ``(image, label, mask)``:
    ``image`` a float tensor ``(C, S, S)`` in [0, 1] (C = 1 when every image is greyscale, else 3),
    ``label`` an int, ``mask`` a bool tensor ``(1, S, S)``. With ``image_size=S`` the shorter side
    is resized to S (bilinear, antialiased) and the centre S x S is cropped; masks follow with
    nearest-neighbour resizing. Without it, images keep their size and the first image fixes the
    size every other image must have (a clear error asks for ``image_size`` otherwise).

    Args:
        root (str): the folder.
        image_size (int, optional): side S of the square images; None keeps the files' size.
        files (sequence of int, optional): indices into the sorted file list to keep (a subset).

    Raises:
        ValueError: ``root`` is not a folder, holds no images, has masks for only some images,
            or ``image_size`` is not a positive int.

    Example:
        >>> ds = ImageFolder("photos", image_size=224)  # doctest: +SKIP
        >>> x, y = ds[0]                                # (3, 224, 224), int
    """

    def __init__(
        self, root: str, image_size: int | None = None, files: Sequence[int] | None = None
    ) -> None:
        if not isinstance(root, (str, os.PathLike)) or not os.path.isdir(root):
            raise ValueError(f"root must be an image folder DIR/<class>/<image>, got {root!r}")
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        self.root, self.image_size = os.fspath(root), image_size
        self.classes = sorted(
            d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d))
        )
        samples = [(p, label) for label, c in enumerate(self.classes) for p in self._walk(c)]
        if not samples:
            raise ValueError(
                f"{self.root}: no images found (expected {self.root}/<class>/<image>.png, "
                "one folder per class)"
            )
        self.samples = samples if files is None else [samples[i] for i in files]
        self.has_masks = self._check_masks()
        self.grey = self._probe_grey()
        self._size: tuple[int, int] | None = None

    def _walk(self, cls: str) -> list[str]:
        found = []
        for folder, dirs, names in os.walk(os.path.join(self.root, cls)):
            dirs.sort()
            for f in sorted(names):
                stem, ext = os.path.splitext(f)
                if ext.lower() in IMAGE_EXTENSIONS and not stem.endswith(MASK_SUFFIX):
                    found.append(os.path.join(folder, f))
        return found

    @staticmethod
    def mask_path(path: str) -> str:
        """The mask file that belongs to the image ``path``."""
        return os.path.splitext(path)[0] + MASK_SUFFIX + ".png"

    def _check_masks(self) -> bool:
        present = [os.path.isfile(self.mask_path(p)) for p, _ in self.samples]
        if any(present) and not all(present):
            missing = [self.mask_path(p) for (p, _), ok in zip(self.samples, present) if not ok]
            raise ValueError(
                f"masks are given for some images but not for {missing[0]} "
                f"({len(missing)} missing)"
            )
        return bool(present) and all(present)

    def _probe_grey(self) -> bool:
        # Colour is decided from the first images' modes (a full scan would read every header);
        # a colour image after a grey start is converted to grey, like torchvision's "L" loader.
        return all(_open(p).mode in _GREY_MODES for p, _ in self.samples[:16])

    @property
    def labels(self) -> Tensor:
        """(N,) int64 labels, without reading any image."""
        return torch.tensor([label for _, label in self.samples], dtype=torch.long)

    @property
    def paths(self) -> list[str]:
        """The image files, relative to ``root``, in item order."""
        return [os.path.relpath(p, self.root) for p, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        path, label = self.samples[index]
        image = self._fit(_to_tensor(_open(path).convert("L" if self.grey else "RGB")), path)
        if not self.has_masks:
            return image, label
        mask = _to_tensor(_open(self.mask_path(path)).convert("L")) > 0
        return image, label, self._fit(mask, self.mask_path(path), nearest=True)

    def _fit(self, t: Tensor, path: str, nearest: bool = False) -> Tensor:
        if self.image_size is None:
            size = tuple(t.shape[-2:])
            if self._size is None:
                self._size = size
            if size != self._size:
                raise ValueError(
                    f"{path} is {size[0]}x{size[1]} but earlier images are "
                    f"{self._size[0]}x{self._size[1]}: pass image_size (--image-size S) to "
                    "resize and centre-crop every image to S x S"
                )
            return t
        return resize_center_crop(t, self.image_size, nearest)


def resize_center_crop(t: Tensor, size: int, nearest: bool = False) -> Tensor:
    """Resize ``t`` (C, H, W) so its shorter side is ``size``, then crop the centre size x size.

    Bilinear with antialiasing for images (values stay in [0, 1]); nearest for masks (bool kept).
    """
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = t[None].float()
        if nearest:
            x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="nearest")
        else:
            x = torch.nn.functional.interpolate(
                x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
            ).clamp(0, 1)
        t = x[0].to(t.dtype)
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[..., top : top + size, left : left + size].contiguous()


def _open(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def _to_tensor(im: Any) -> Tensor:
    # ``im`` is always "L" or "RGB" here (callers convert), so 8-bit values
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255.0
    return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1).contiguous()
