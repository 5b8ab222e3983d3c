"""What ``captum-cf audit`` reads: a model from ``zoo:NAME`` or ``module:factory``, images from
``digits``, ``shapes`` or an image folder. Every user error is an :class:`AuditInputError` (one
line; the CLI turns it into exit code 2)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["AuditData", "AuditInputError", "load_model", "load_data", "check_logits", "MASK_SUFFIX"]

#: a mask for ``DIR/<class>/<name>.<ext>`` is ``DIR/<class>/<name>_mask.png`` (non-zero = object)
MASK_SUFFIX = "_mask"
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class AuditInputError(ValueError):
    """Bad input to the audit: an unknown name, an unreadable file, a model of the wrong kind."""


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


def load_model(
    spec: str | None, data_name: str, weights: str | None = None, device: str = "cpu"
) -> tuple[nn.Module, str]:
    """The model to audit and a short name for it; eval mode, on ``device``.

    ``zoo:NAME`` loads a shipped zoo model (``--weights`` then reads a zoo weights file instead);
    ``module:factory`` (or ``path/to/file.py:factory``) calls ``factory()``, then loads
    ``--weights`` (a state dict, or a dict with a ``"state_dict"``) with ``weights_only=True``.
    No spec: the zoo model of ``digits`` / ``shapes``.
    """
    if spec is None:
        if data_name not in ("digits", "shapes"):
            raise AuditInputError(
                "--model is required with an image folder (zoo:NAME or module:factory)"
            )
        spec = f"zoo:{data_name}-cnn"
    if spec.startswith("zoo:"):
        model = _zoo_model(spec[4:], weights)
    elif ":" in spec:
        model = _factory_model(spec, weights)
    else:
        raise AuditInputError(f"--model must be zoo:NAME or module:factory, got {spec!r}")
    try:
        return model.to(device).eval(), spec
    except (RuntimeError, AssertionError) as err:
        raise AuditInputError(f"cannot move the model to device {device!r}: {err}") from err


def _zoo_model(name: str, weights: str | None) -> nn.Module:
    from captum_cf import zoo

    try:
        return zoo.load_file(weights) if weights else zoo.load(name)
    except KeyError as err:
        raise AuditInputError(str(err.args[0])) from err
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise AuditInputError(str(err)) from err


def _factory_model(spec: str, weights: str | None) -> nn.Module:
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location("_audit_user_model", module_name)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot import {module_name}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        model = getattr(module, attr)()
    except Exception as err:  # noqa: BLE001 (the user's code: any failure is a one-line error)
        raise AuditInputError(
            f"cannot build the model from {spec!r}: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(model, nn.Module):
        raise AuditInputError(
            f"{spec} returned a {type(model).__name__}, expected a torch.nn.Module"
        )
    if weights:
        _load_state(model, weights)
    return model


def _load_state(model: nn.Module, path: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    except (OSError, RuntimeError, ValueError, TypeError, AttributeError) as err:
        raise AuditInputError(f"cannot load weights {path}: {str(err).splitlines()[0]}") from err


def check_logits(model: nn.Module, images: Tensor) -> int:
    """Run the model on two images; it must return (N, classes) logits. Returns the class count."""
    probe = images[:2]
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as err:  # noqa: BLE001
        raise AuditInputError(
            f"the model failed on images of shape {tuple(probe.shape)}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if (
        not isinstance(out, Tensor)
        or out.dim() != 2
        or out.shape[0] != probe.shape[0]
        or out.shape[1] < 2
    ):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise AuditInputError(
            f"the model must return (N, classes) logits with at least 2 classes for "
            f"N={probe.shape[0]} images, got {shape}"
        )
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise AuditInputError("the model returned non-finite or non-float logits")
    return int(out.shape[1])
