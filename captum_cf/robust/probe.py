"""Concept probing: what does a model add to a neutral image to see a class?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._validation import check_images, check_model_dtype, check_target
from captum_cf.robust.frank_wolfe import sparse_frank_wolfe

__all__ = ["probe_concept"]

_STARTS = ("grey-noise", "grey", "uniform-noise")


def probe_concept(
    model: Callable[[Tensor], Tensor],
    target: Any,
    start: str | Tensor = "grey-noise",
    image_shape: tuple[int, int, int] | None = None,
    n: int = 1,
    sparsity: float = 0.9,
    k: int | None = None,
    eps: float | None = None,
    n_steps: int = 40,
    seed: int = 0,
    show_progress: bool = False,
) -> Tensor:
    r"""Perturb neutral images towards class ``target`` (Roberts & Tsiligkaridis, 2021).

    Starting from a neutral image :math:`x_0` (grey, noise, or images you give), the controllably
    sparse Frank-Wolfe perturbation (:func:`captum_cf.robust.sparse_frank_wolfe`) towards class t
    changes at most ``k`` pixels; what it draws is the model's concept of t. On an adversarially
    robust model the strokes resemble the class (a probe of what it has learned); on a standard
    model they are scattered pixels.

    Args:
        model (Callable): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K).
        target (int, list or Tensor): class to probe, one int or one per image.
        start (str or Tensor): ``"grey-noise"`` (0.5 plus Gaussian noise of std 0.1, clamped),
            ``"grey"`` (0.5), ``"uniform-noise"`` (uniform in [0, 1]), or images (N, C, H, W)
            in [0, 1].
        image_shape (tuple, optional): (C, H, W) of the generated start images (required when
            ``start`` is a name).
        n (int): number of start images when ``start`` is a name.
        sparsity (float): fraction of pixels left unchanged, in [0, 1).
        k (int, optional): number of changed pixels (overrides ``sparsity``).
        eps (float, optional): L1 budget (default ``k``).
        n_steps (int): Frank-Wolfe steps.
        seed (int): seed of the noise of the start images (a private generator).
        show_progress (bool): tqdm bars over the steps.

    Returns:
        Tensor: probed images ``x0 + delta``, shape (N, C, H, W), in [0, 1].

    Example:
        >>> from captum_cf import zoo
        >>> probes = probe_concept(zoo.load("digits-cnn-robust"), target=[3, 7], n=2,
        ...                        image_shape=(1, 32, 32))
        >>> probes.shape
        torch.Size([2, 1, 32, 32])
    """
    x0 = _start_images(start, image_shape, n, seed)
    if not isinstance(start, Tensor):  # drawn on the CPU (the same numbers on every device)
        x0 = x0.to(_model_device(model))
    check_model_dtype(x0, model, "start" if isinstance(start, Tensor) else "the start images")
    t = check_target(target, x0.shape[0])
    _, _, h, w = x0.shape
    if k is None:
        if (
            isinstance(sparsity, bool)
            or not isinstance(sparsity, (int, float))
            or not 0 <= sparsity < 1
        ):
            raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
        k = max(1, round((1 - sparsity) * h * w))
    delta = sparse_frank_wolfe(
        model, x0, t, k, eps, n_steps, targeted=True, show_progress=show_progress
    )
    return (x0 + delta).clamp(0, 1)


def _model_device(model: Any) -> torch.device:
    params = getattr(model, "parameters", None)
    param = next(params(), None) if callable(params) else None
    return param.device if param is not None else torch.device("cpu")


def _start_images(
    start: str | Tensor, image_shape: tuple[int, int, int] | None, n: int, seed: int
) -> Tensor:
    if isinstance(start, Tensor):
        return check_images(start, "start")
    if start not in _STARTS:
        raise ValueError(f"start must be images (N, C, H, W) or one of {_STARTS}, got {start!r}")
    if image_shape is None or len(tuple(image_shape)) != 3 or any(int(s) < 1 for s in image_shape):
        raise ValueError(
            f"image_shape must be (C, H, W) with positive sizes when start is "
            f"{start!r}, got {image_shape!r}"
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    shape = (n, *(int(s) for s in image_shape))
    gen = torch.Generator().manual_seed(seed)
    if start == "grey":
        return torch.full(shape, 0.5)
    if start == "uniform-noise":
        return torch.rand(shape, generator=gen)
    return (0.5 + 0.1 * torch.randn(shape, generator=gen)).clamp(0, 1)
