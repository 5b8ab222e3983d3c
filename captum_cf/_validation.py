"""Input checks shared by every public entry point.

Each check raises a ``ValueError``/``TypeError`` that names the argument and what was expected,
before any work is done (never ``assert``: user input is not an invariant).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "check_images",
    "check_keep",
    "check_logits",
    "check_model_dtype",
    "check_target",
    "check_same_device",
    "model_dtype",
]


def check_images(images: Any, name: str = "inputs", unit_range: bool = True) -> Tensor:
    """Check that ``images`` is a finite float tensor of shape (N, C, H, W), in [0, 1].

    Args:
        images (Tensor): the tensor to check.
        name (str): argument name used in the error message.
        unit_range (bool): also require values in [0, 1] (pixel space).

    Returns:
        Tensor: ``images`` itself, unchanged.
    """
    if not isinstance(images, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}"
        )
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    values = images.detach()
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if unit_range:
        lo, hi = float(values.min()), float(values.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} must be images in [0, 1] (normalisation belongs inside the model, see "
                f"captum_cf.zoo.Normalized); got values in [{lo:.4g}, {hi:.4g}]"
            )
    return images


def check_keep(keep: Any, images: Tensor, name: str = "keep") -> Tensor:
    """Check a keep mask: a finite tensor in [0, 1] broadcastable to ``images``.

    Returns:
        Tensor: ``keep`` expanded to the shape of ``images`` (a view, no copy).
    """
    if not isinstance(keep, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor broadcastable to {tuple(images.shape)}")
    if keep.device != images.device:
        raise ValueError(f"{name} is on {keep.device} but the images are on {images.device}")
    try:
        expanded = keep.expand_as(images) if keep.dim() == images.dim() else None
    except RuntimeError:
        expanded = None
    if expanded is None:
        raise ValueError(
            f"{name} must have shape broadcastable to the images {tuple(images.shape)} with "
            f"the same number of dimensions (e.g. (N, 1, H, W)), got {tuple(keep.shape)}"
        )
    keep_f = keep.to(images.dtype) if keep.dtype == torch.bool else keep
    values = keep_f.detach()
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if float(values.min()) < 0.0 or float(values.max()) > 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (1 = keep the pixel, 0 = remove it)")
    return keep_f.expand_as(images)


def check_logits(out: Any, batch: int, name: str = "forward_func") -> Tensor:
    """``out`` must be (B, K) logits for a batch of ``batch`` inputs; returns it."""
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"{name} must return (N, classes) logits for N={batch} inputs, got {shape}"
        )
    return out


def check_target(
    target: Any, n: int, num_classes: int | None = None, name: str = "target"
) -> Tensor | None:
    """Normalise a Captum-style target (None, int, list or tensor) to a long tensor of shape (N,).

    Args:
        target: None, an int, a sequence of ints or a tensor of shape () or (N,).
        n (int): batch size.
        num_classes (int, optional): when given, targets must be in ``[0, num_classes)``.

    Returns:
        Tensor or None: long tensor of shape (N,), or None when ``target`` is None.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int, a sequence of ints or a tensor, got bool")
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long)
    else:
        try:
            t = torch.as_tensor(target)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be an int, a sequence of ints or a tensor") from err
        if t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must hold integer class indices, got dtype {t.dtype}")
        t = t.long().reshape(-1)
        if t.numel() == 1:
            t = t.expand(n).clone()
        elif t.numel() != n:
            raise ValueError(f"{name} must have one entry per example ({n}), got {t.numel()}")
    if bool((t < 0).any()) or (num_classes is not None and bool((t >= num_classes).any())):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise ValueError(f"{name} must be class indices in {bound}, got {t.tolist()}")
    return t


def check_same_device(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise a ValueError when two tensors live on different devices."""
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}")


def model_dtype(model: Any) -> torch.dtype | None:
    """The floating dtype a model computes in: that of its first floating parameter or buffer.

    ``model`` may be an ``nn.Module`` or a bound method of one (``model.forward``); for anything
    else (a plain function) the dtype is unknown and None is returned.
    """
    module = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    if not isinstance(module, nn.Module):
        return None
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def check_model_dtype(
    inputs: Any, model: Any, name: str = "inputs", model_name: str = "the model"
) -> None:
    """The dtype rule of every entry point: a float tensor fed to a model has the model's dtype.

    captum_cf never converts silently (Captum does not either, and a silent float64 -> float32
    cast would change the numbers and the dtype of what comes back); a mismatch is a ``TypeError``
    that names the argument and both dtypes, raised before any work. Models whose dtype is
    unknown (plain functions, modules without floating parameters) are not checked.

    Args:
        inputs (Tensor or tuple of Tensors): what will be fed to ``model``.
        model: an ``nn.Module``, a bound method of one, or any callable.
        name (str): argument name used in the error message.
        model_name (str): how the message calls the model.

    Example:
        >>> check_model_dtype(torch.rand(1, 2), nn.Linear(2, 1))  # float32 and float32: fine
    """
    dtype = model_dtype(model)
    if dtype is None:
        return
    tensors = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    for i, x in enumerate(tensors):
        if isinstance(x, Tensor) and x.is_floating_point() and x.dtype != dtype:
            where = f"{name}[{i}]" if isinstance(inputs, (tuple, list)) else name
            raise TypeError(
                f"{where} has dtype {x.dtype} but {model_name} computes in {dtype}: convert "
                f"them with .to({dtype}) (or the model with .to({x.dtype})); captum_cf does "
                "not convert dtypes silently"
            )
