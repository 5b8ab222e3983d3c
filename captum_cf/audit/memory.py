"""Out-of-memory recovery of the audit: a cell that runs out of memory is split, not failed.

The memory rule of :mod:`captum_cf.audit.runner` sizes the batches from the image size (and the
free GPU memory) for models of about a resnet50's activations per pixel; a larger model (a
ViT-L, a resnet152 at 448 px) can exceed it. Then a cell does not fail: each out-of-memory error
halves the cell's *level* of work, its explanation part (images per explanation call) and its
passes (the internal batch of path methods, the images per perturbation pass and per forward
pass of the curves), and the failed images are explained again in the smaller parts. The level is
kept for the cell's next batches, so the error costs once. Only when one image with passes of one
image does not fit do that image's cells fail, with the reason.

Errors other than out-of-memory are isolated: a part that fails is split in halves and each half
runs again, so that one image a method cannot explain (a NaN it produces, an error of a baseline
on that image) fails alone instead of with its whole batch. The splits after such errors are
bounded (:func:`split_budget`: about ``log2`` of the batch), so a cell that fails on every image
costs about one batch more, not one call per image.

The batch's other work halves its passes while it runs out of memory (:func:`halving`): the
explained classes' forward pass, the baselines' references, R-OMS.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["is_out_of_memory", "release_memory", "halving", "Level", "split_budget"]

T = TypeVar("T")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that memory ran out: CUDA's ``OutOfMemoryError``, the CPU
    allocator's "can't allocate memory", MPS's "out of memory", or Python's ``MemoryError``.

    Example:
        >>> is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
        True
        >>> is_out_of_memory(ValueError("out of range"))
        False
    """
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def release_memory(device: torch.device) -> None:
    """After an out-of-memory error on CUDA (once its traceback is gone): collect the cycles
    that may still hold tensors and give the allocator's cached blocks back, so that the smaller
    parts find contiguous memory. Nothing on the CPU, where the tensors went with the traceback
    (a collection costs about 0.1 s in a large process)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def halving(run: Callable[[int], T], size: int, device: torch.device) -> T:
    """``run(size)``; while it runs out of memory, ``run`` again with half the size (rounded
    up), down to 1; other errors, and running out at 1, are raised.

    Example:
        >>> def run(size):
        ...     if size > 3:
        ...         raise MemoryError
        ...     return size
        >>> halving(run, 20, torch.device("cpu"))
        3
    """
    while True:
        try:
            return run(size)
        except Exception as err:
            if size <= 1 or not is_out_of_memory(err):
                raise
        release_memory(device)  # here the error's traceback (and its frames' tensors) is gone
        size = (size + 1) // 2


def split_budget(n: int) -> int:
    """Splits allowed after errors other than out-of-memory on a batch of ``n`` images: enough
    to isolate one failing image by bisection, ``ceil(log2 n)``.

    Example:
        >>> split_budget(1), split_budget(8), split_budget(41)
        (0, 3, 6)
    """
    return math.ceil(math.log2(max(n, 1)))


class Level:
    """The sizes of one cell's work after ``halvings`` out-of-memory errors.

    Args:
        batches (dict): the audit's batch plan (``explain``, ``internal``, ``forward``,
            ``forward_images``; :func:`~captum_cf.audit.runner.plan_batches`).
        halvings (int): out-of-memory errors so far (each halves every size, down to 1).

    Example:
        >>> lv = Level({"explain": 41, "internal": 20, "forward": 31, "forward_images": 31}, 2)
        >>> lv.sizes, lv.smallest
        ({'explain': 11, 'internal': 5, 'forward': 8, 'forward_images': 8}, False)
    """

    def __init__(self, batches: dict[str, int], halvings: int = 0) -> None:
        self.halvings = halvings
        self.sizes = {k: max(1, math.ceil(v / 2**halvings)) for k, v in batches.items()}

    @property
    def smallest(self) -> bool:
        """Every size is 1: nothing is left to halve."""
        return all(v == 1 for v in self.sizes.values())

    def describe(self) -> str:
        """``"11 images per explanation, passes of 5 / 8"`` for messages."""
        s = self.sizes
        return (f"{s['explain']} image(s) per explanation call, passes of {s['internal']} "
                f"(path methods) and {s['forward']} (curves)")
