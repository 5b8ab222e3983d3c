"""The model an audit explains: from ``zoo:NAME`` or ``module:factory`` (or ``file.py:factory``),
checked to return ``(N, classes)`` logits. Every user error is an :class:`AuditInputError`."""

from __future__ import annotations

import importlib
import importlib.util

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf.audit.errors import AuditInputError

__all__ = ["check_logits", "load_model"]


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
