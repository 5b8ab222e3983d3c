"""Real handwritten digits that ship with scikit-learn, upsampled for CNNs.

scikit-learn's ``load_digits`` holds 1797 greyscale 8x8 images (UCI optdigits, values 0..16) of
ten classes; it is inside the scikit-learn wheel, so no download is ever needed.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["load_digits", "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED"]

#: number of images in the held-out test split (the other 1437 are the training split)
DIGITS_TEST_SIZE = 360
#: ``random_state`` of the stratified train/test split (fixed: the split never changes)
DIGITS_SPLIT_SEED = 0
_SPLITS = ("train", "test")


def load_digits(split: str = "train", size: int = 32) -> TensorDataset:
    """scikit-learn's handwritten digits as a ``TensorDataset`` of pixel-space images.

    The 8x8 images (values 0..16) are divided by 16 and upsampled bilinearly to ``size`` x ``size``
    (clamped to [0, 1]). The split is stratified by class and fixed (``train_test_split`` with
    ``random_state=0``): 1437 training and 360 test images, the same on every machine and call.
    Each call returns freshly copied tensors, so modifying them never affects later calls.

    Args:
        split (str): ``"train"`` (1437 images) or ``"test"`` (360 images).
        size (int): side of the returned images in pixels, at least 8.

    Returns:
        TensorDataset: ``images`` float32 of shape (N, 1, size, size) in [0, 1] (white strokes on a
        black background) and ``labels`` int64 of shape (N,) in 0..9.

    Example:
        >>> from captum_cf.datasets import load_digits
        >>> images, labels = load_digits("test").tensors
        >>> images.shape, labels.shape
        (torch.Size([360, 1, 32, 32]), torch.Size([360]))
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8), got {size}")
    images, labels = _upsampled(size)
    index = _split_indices()[_SPLITS.index(split)]
    # Advanced indexing copies: the in-process cache cannot be corrupted by the caller.
    return TensorDataset(images[index], labels[index])


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return images, labels


@functools.lru_cache(maxsize=8)
def _upsampled(size: int) -> tuple[Tensor, Tensor]:
    images, labels = _raw()
    if size != images.shape[-1]:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return images.clamp(0.0, 1.0), labels


@functools.lru_cache(maxsize=1)
def _split_indices() -> tuple[Tensor, Tensor]:
    from sklearn.model_selection import train_test_split

    labels = _raw()[1].numpy()
    train, test = train_test_split(
        list(range(len(labels))),
        test_size=DIGITS_TEST_SIZE,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return torch.tensor(sorted(train)), torch.tensor(sorted(test))
