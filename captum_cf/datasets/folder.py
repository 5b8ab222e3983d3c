"""Image folders: one class per sub-folder, read lazily with Pillow, resized and cropped.

The one reader of user images in captum_cf: ``captum-cf audit --data DIR`` and
``captum-cf train ... --data DIR`` both stream it through a ``torch.utils.data.DataLoader``, so
memory does not grow with the number of images.

Layout (torchvision's ``ImageFolder`` conventions)::

    DIR/<class>/<image>.png              one folder per class, sorted names = labels 0, 1, ...
    DIR/<class>/<sub>/<image>.jpg        nested folders (also linked ones) belong to their
                                         top-level class
    DIR/<class>/<image>_mask.png         optional object mask (non-zero = object)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
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
_GREY_MODES = ("1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
#: single-band modes wider than 8 bits and the value that stands for white in them: Pillow's
#: ``convert("L")``/``convert("RGB")`` would clip them (16-bit images came out white, float
#: images black), so they are scaled instead
_WIDE_WHITE = {"I": 65535.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0,
               "I;16N": 65535.0, "F": 1.0}


class ImageFolder(Dataset):
    """A class-per-folder image tree, read one image at a time.

    Each item is ``(image, label)`` or, when the folder has masks, ``(image, label, mask)``:
    ``image`` a float tensor ``(C, S, S)`` in [0, 1] (C = 1 when every image is greyscale, else 3),
    ``label`` an int, ``mask`` a bool tensor ``(1, S, S)``. 8-bit files go through Pillow's
    ``convert("RGB")`` (or ``"L"``) as in torchvision; 16-bit greyscale files (PNG, TIFF) are
    divided by 65535 and 32-bit float files taken as values in [0, 1] (both clamped), where
    Pillow's conversion would clip them to white or black. With ``image_size=S`` a JPEG larger
    than 4 S is decoded at a reduced scale (1/2 to 1/8, sides still >= 2 S) before the resize,
    about 30x faster for a 24 MP photo at S = 224, with 19 instead of 648 MB of peak memory
    growth, values within 0.0012 of the full decode on average and 0.02 at most
    (``benchmarks/folder_read.py``). The shorter side
    is resized to S (bilinear, antialiased; to R with ``resize=R``, as torchvision's
    ``Resize(R)`` + ``CenterCrop(S)`` evaluation transform) and the centre S x S is cropped;
    masks follow with nearest-neighbour resizing. Without it, images keep their size and the
    first image fixes the size every other image must have (a clear error asks for
    ``image_size`` otherwise).

    Args:
        root (str): the folder.
        image_size (int, optional): side S of the square images; None keeps the files' size.
        files (sequence of int, optional): indices into the sorted file list to keep (a subset).
        channels (int, optional): 1 reads every image as greyscale, 3 as RGB (a grey image's
            value in all three); None (default) decides from the first 16 images: 1 when all of
            them are greyscale, else 3. The choice is :attr:`channels`.
        resize (int, optional): with ``image_size`` S, resize the shorter side to R >= S before
            the centre S x S crop (e.g. 256 for 224, as many ImageNet models are evaluated);
            default S.
        allow_empty (bool): accept class folders without images (they keep their place, and
            label, in the sorted class list); default False refuses them, as torchvision's
            ``ImageFolder`` does: a stray folder (``.ipynb_checkpoints``, an empty class) would
            otherwise shift the labels of every class after it without a word.

    Raises:
        ValueError: ``root`` is not a folder, holds no images, has a class folder without images
            (unless ``allow_empty``), has masks for only some images,
            ``image_size`` is not a positive int, ``channels`` is not 1, 3 or None, or
            ``resize`` is not an int >= ``image_size`` (or is given without ``image_size``).

    Example:
        >>> ds = ImageFolder("photos", image_size=224)  # doctest: +SKIP
        >>> x, y = ds[0]  # (3, 224, 224), int            # doctest: +SKIP
    """

    def __init__(
        self,
        root: str,
        image_size: int | None = None,
        files: Sequence[int] | None = None,
        channels: int | None = None,
        resize: int | None = None,
        allow_empty: bool = False,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)) or not os.path.isdir(root):
            raise ValueError(f"root must be an image folder DIR/<class>/<image>, got {root!r}")
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
        check_resize(resize, image_size)
        self.root, self.image_size = os.fspath(root), image_size
        self.resize = resize
        self.classes = class_folders(self.root)
        found = [self._walk(c) for c in self.classes]
        samples = [(p, label) for label, paths in enumerate(found) for p in paths]
        if not samples:
            raise ValueError(
                f"{self.root}: no images found (expected {self.root}/<class>/<image>.png, "
                "one folder per class)"
            )
        empty = [c for c, paths in zip(self.classes, found, strict=True) if not paths]
        if empty and not allow_empty:
            raise ValueError(
                f"{self.root}: class folders without images: {', '.join(empty)}. Every folder "
                "in it is a class and a label is the class's place in the sorted list (as in "
                "torchvision's ImageFolder), so these would shift the labels of the classes "
                "after them: remove them (hidden folders such as .ipynb_checkpoints count "
                "too) or add their images (image files end in "
                f"{', '.join(IMAGE_EXTENSIONS)}; from Python, ImageFolder(..., "
                "allow_empty=True) keeps them as classes without images)"
            )
        self.samples = samples if files is None else [samples[i] for i in files]
        self.has_masks = self._check_masks()
        self.grey = self._probe_grey() if channels is None else channels == 1
        self._size: tuple[int, int] | None = None

    def _walk(self, cls: str) -> list[str]:
        # symbolic links to folders are followed, as torchvision's ImageFolder follows them
        # (split folders are often built from links); each real folder is read once, so a link
        # to a folder above it does not loop
        found, seen = [], set()
        root = os.path.realpath(self.root)
        for folder, dirs, names in os.walk(os.path.join(self.root, cls), followlinks=True):
            real = os.path.realpath(folder)
            if real in seen or _holds(real, root):
                dirs[:] = []  # read already, or holds the whole tree (a link upwards)
                continue
            seen.add(real)
            dirs.sort()
            images = [f for f in sorted(names) if os.path.splitext(f)[1].lower() in
                      IMAGE_EXTENSIONS]
            stems = {os.path.splitext(f)[0] for f in images}
            for f in images:
                stem = os.path.splitext(f)[0]
                if not _is_mask(stem, stems):
                    found.append(os.path.join(folder, f))
                elif not os.path.isfile(os.path.join(folder, stem + ".png")):
                    # a mask that mask_path would not find (a_mask.jpg, or a_mask.PNG on a
                    # case-sensitive disk): not an image, and no silent drop either
                    raise ValueError(
                        f"{os.path.join(folder, f)} is named as the mask of "
                        f"{stem[: -len(MASK_SUFFIX)]}, but masks are read from "
                        f"<image>{MASK_SUFFIX}.png: rename it to {stem}.png (or move it out of "
                        "the folder)"
                    )
        return found

    @staticmethod
    def mask_path(path: str) -> str:
        """The mask file that belongs to the image ``path``."""
        return os.path.splitext(path)[0] + MASK_SUFFIX + ".png"

    def _check_masks(self) -> bool:
        present = [os.path.isfile(self.mask_path(p)) for p, _ in self.samples]
        if any(present) and not all(present):
            missing = [os.path.relpath(p, self.root)
                       for (p, _), ok in zip(self.samples, present) if not ok]
            orphans = [m for m in missing
                       if os.path.splitext(os.path.basename(m))[0].endswith(MASK_SUFFIX)]
            if orphans:  # read as an image because its own image is gone
                stem = os.path.splitext(orphans[0])[0][: -len(MASK_SUFFIX)]
                mask = f"{os.path.splitext(orphans[0])[0]}{MASK_SUFFIX}.png"
                raise ValueError(
                    f"{orphans[0]} has no mask beside it while other images have one: a mask "
                    f"whose image is gone (no {stem}.* beside it)? restore the image or delete "
                    f"the mask; a photo with that name? give it its mask {mask}"
                    + (f" ({len(orphans) - 1} more such files)" if len(orphans) > 1 else "")
                )
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(
                f"{sum(present)} of {len(present)} images have a mask (<image>{MASK_SUFFIX}.png "
                f"beside the image) but {missing[0]}{more} not: give every image a mask, or "
                f"remove the mask files to audit without the pointing game"
            )
        return bool(present) and all(present)

    def _probe_grey(self) -> bool:
        # Colour is decided from the first images' modes (a full scan would read every header);
        # a colour image after a grey start is converted to grey, like torchvision's "L" loader.
        return all(image_header(p)[1] in _GREY_MODES for p, _ in self.samples[:16])

    @property
    def channels(self) -> int:
        """Channels of every image: 1 (greyscale) or 3 (RGB)."""
        return 1 if self.grey else 3

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
        # a JPEG much larger than the target is decoded at 1/2, 1/4 or 1/8 scale (Pillow's
        # draft), still at least twice the target: 24 MP photos at 224 px read about 30x faster
        draft = None if self.image_size is None else 2 * (self.resize or self.image_size)
        decoded, size = _decode(path, draft)
        # the geometry of the file's own size: a draft's rounded sides would scale the two axes
        # differently from the full decode and from the mask (up to a pixel's shift)
        image = self._fit(_pixels(decoded, self.grey), path, full=(size[1], size[0]))
        if not self.has_masks:
            return image, label
        mask_path = self.mask_path(path)
        mask_file, mask_size = _decode(mask_path)
        check_mask_size(mask_path, mask_size, path, size)
        mask = _mask_pixels(mask_file)
        return image, label, self._fit(mask, mask_path, nearest=True)

    def _fit(self, t: Tensor, path: str, nearest: bool = False,
             full: tuple[int, int] | None = None) -> Tensor:
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
        return resize_center_crop(t, self.image_size, nearest, self.resize, full)


def _holds(folder: str, root: str) -> bool:
    """``folder`` is ``root`` or a folder above it (``/`` included): real paths."""
    return os.path.commonpath([folder, root]) == folder


def class_folders(root: str) -> list[str]:
    """The class folders of ``root`` sorted by name: a label is a folder's place here."""
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))


def check_resize(resize: Any, image_size: int | None, option: str = "resize") -> None:
    """``resize`` must be None or an int >= ``image_size``, and needs an ``image_size``.

    Raises:
        ValueError: naming ``option`` (e.g. ``"--resize"``) and what is accepted.
    """
    if resize is None:
        return
    if isinstance(resize, bool) or not isinstance(resize, int):
        raise ValueError(f"{option} must be an int, got {resize!r}")
    if image_size is None:
        raise ValueError(f"{option} {resize} needs an image size S to crop to "
                         "(--image-size S / image_size=S)")
    if resize < image_size:
        raise ValueError(f"{option} ({resize}) must be >= the image size ({image_size}): the "
                         "shorter side is resized to it before the centre S x S crop")


def resize_center_crop(t: Tensor, size: int, nearest: bool = False,
                       resize: int | None = None, full: tuple[int, int] | None = None) -> Tensor:
    """Resize ``t`` (C, H, W) so its shorter side is ``resize`` (default ``size``), then crop
    the centre size x size.

    Bilinear with antialiasing for images (values stay in [0, 1]); nearest for masks (bool kept).
    ``full`` (height, width): the size of the image ``t`` was decoded from at a reduced scale
    (a JPEG draft); the resized sides are computed from it, as for the full decode.
    """
    h, w = t.shape[-2:] if full is None else full
    side = size if resize is None else resize
    scale = side / min(h, w)
    nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
    if (nh, nw) != tuple(t.shape[-2:]):
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


def _is_mask(stem: str, stems: set[str]) -> bool:
    """A file named ``stem`` + extension is ``<image>_mask.<ext>`` with ``<image>.*`` beside it
    in ``stems``: the mask of that image, not an image (a photo ``gas_mask.jpg`` alone is an
    image)."""
    return stem.endswith(MASK_SUFFIX) and stem[: -len(MASK_SUFFIX)] in stems


def check_mask_size(mask_path: str, mask_size: tuple[int, int], path: str,
                    size: tuple[int, int]) -> None:
    """A mask must have its image's size (Pillow sizes, width x height).

    Raises:
        ValueError: naming both files and sizes (resizing them separately would misalign them).
    """
    if tuple(mask_size) != tuple(size):
        raise ValueError(
            f"the mask {mask_path} is {mask_size[1]}x{mask_size[0]} but its image {path} is "
            f"{size[1]}x{size[0]}: a mask must have its image's size (non-zero = object)"
        )


def _decode(path: str, draft: int | None = None) -> tuple[Any, tuple[int, int]]:
    """The decoded image (a JPEG at a reduced scale whose sides stay >= ``draft`` if given) and
    the file's own size (width, height), before any reduction."""
    with open_image(path) as im:
        size = im.size
        if draft is not None and im.format == "JPEG":
            im.draft(None, (draft, draft))
        im.load()
        return im.copy(), size


def image_header(path: str) -> tuple[tuple[int, int], str]:
    """The image's size (width, height) and Pillow mode, from its header (the pixels are not
    decoded); a file Pillow cannot open raises ValueError naming it."""
    with open_image(path) as im:
        return tuple(im.size), str(im.mode)  # type: ignore[return-value]


@contextlib.contextmanager
def open_image(path: str) -> Iterator[Any]:
    """``PIL.Image.open(path)``; a file Pillow cannot read raises ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            yield im
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"cannot read image {path}: {err} Pillow refuses images of more than twice "
            f"PIL.Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS}) pixels; if you trust the "
            "file, raise that limit in the Python process that reads it (e.g. with "
            "--model file.py:factory, in file.py) or shrink the image"
        ) from err
    except (OSError, UnidentifiedImageError, ValueError) as err:
        hint = ""
        if os.path.basename(path).startswith("._") or "__MACOSX" in path.split(os.sep):
            hint = (" (a macOS resource-fork file, not an image: remove the ._* files and any "
                    "__MACOSX folder, e.g. find DIR -name '._*' -delete)")
        raise ValueError(f"cannot read image {path}: {err}{hint}") from err


def _mask_pixels(im: Any) -> Tensor:
    """A mask file as bool (1, H, W): non-zero = object; a mask with transparency whose alpha
    varies (an editor's exported selection: the object opaque on a transparent background) is
    read from its alpha, opaque (alpha >= 128) = object (its grey values would give the
    complement)."""
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if alpha.min() != alpha.max():
            return torch.from_numpy(alpha >= 128)[None]  # more opaque than transparent
    return _pixels(im, grey=True) > 0


def _pixels(im: Any, grey: bool) -> Tensor:
    """A Pillow image as a float tensor (1 or 3, H, W) in [0, 1]."""
    white = _WIDE_WHITE.get(im.mode)
    if white is None:  # 8 bits per channel: Pillow converts (palette, alpha, CMYK, ...)
        arr = torch.from_numpy(np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float32))
        arr = arr / 255.0
        return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1).contiguous()
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32) / np.float32(white)).clamp_(0, 1)
    return arr[None] if grey else arr[None].expand(3, -1, -1).contiguous()
