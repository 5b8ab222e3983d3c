"""The model an audit explains: from ``zoo:NAME`` or ``module:factory`` (or ``file.py:factory``),
checked to return ``(N, classes)`` logits (a Hugging Face style output's ``.logits`` is taken),
and the methods that apply to it (:func:`probe_methods`). Every user error is an
:class:`AuditInputError`."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._registry import AuditContext
from captum_cf._user_model import build_factory_model, is_factory_spec
from captum_cf._validation import all_finite, first_line, warn_if_probabilities
from captum_cf.audit._cell_guard import CellGuard
from captum_cf.audit.errors import AuditInputError
from captum_cf.audit.memory import is_out_of_memory, release_memory
from captum_cf.zoo.models import logits_model, logits_of

__all__ = [
    "applicable_methods",
    "check_logits",
    "load_model",
    "logits_model",
    "probe_methods",
]

def load_model(
    spec: str | None, data_name: str, weights: str | None = None, device: str = "cpu"
) -> tuple[nn.Module, str]:
    """The model to audit and a short name for it; eval mode, on ``device``.

    ``zoo:NAME`` loads a shipped zoo model (``--weights`` then reads a zoo weights file instead);
    ``module:factory`` (or ``path/to/file.py:factory``) calls ``factory()``, then loads
    ``--weights`` (a state dict, or a dict with a ``"state_dict"``) with ``weights_only=True``.
    A path names a weights file of a captum-cf trainer (``captum-cf train classifier --out``).
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
    elif is_factory_spec(spec):
        model = _factory_model(spec, weights)
    elif os.path.isfile(spec):  # a weights file of a captum-cf trainer
        if weights:
            raise AuditInputError(
                f"--weights is for a module:factory model; {spec} holds its own weights"
            )
        try:
            model = _zoo_model(name="", weights=spec)  # the file names its architecture
        except AuditInputError as err:
            raise AuditInputError(
                f"{err} (a state dict goes with --model module:factory --weights {spec})"
            ) from err
    else:
        raise AuditInputError(
            f"--model must be zoo:NAME, module:factory or a weights file of captum-cf train, "
            f"got {spec!r}"
        )
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
    try:
        return build_factory_model(spec, weights)
    except ValueError as err:
        raise AuditInputError(str(err)) from err


def _other_channels_fit(model: nn.Module, probe: Tensor) -> int | None:
    """After ``model`` failed on ``probe`` (N, 1 or 3, H, W): the channel count it takes instead
    (3 or 1, tried on the same images made RGB or grey), or None when that fails too."""
    if probe.dim() != 4 or probe.shape[1] not in (1, 3):
        return None
    other = probe.mean(1, keepdim=True) if probe.shape[1] == 3 else probe.expand(-1, 3, -1, -1)
    try:
        with torch.no_grad():
            model(other)
    except Exception:  # noqa: BLE001 (any failure: not a channel mismatch alone)
        return None
    return int(other.shape[1])


def check_logits(model: nn.Module, images: Tensor) -> int:
    """Run the model on two images; it must return (N, classes) logits. Returns the class count.

    Raises:
        AuditInputError: the model fails on the images or does not return (N, classes) float
            logits with at least 2 classes.

    Warns:
        UserWarning: the rows are non-negative and sum to 1: the model returns probabilities
            (a softmax last), which the audit's softmax squashes towards 1/classes; the fix is
            to return the logits.
    """
    probe = images[:2]
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as err:  # noqa: BLE001
        message = str(err).splitlines()[0] if str(err) else ""
        hint = ""
        takes = _other_channels_fit(model, probe)
        if takes or ("channel" in message and probe.dim() == 4 and probe.shape[1] in (1, 3)):
            model_takes = f"the model takes {takes}-channel images and " if takes else ""
            hint = (
                f" ({model_takes}the images have {probe.shape[1]} "
                f"channel{'s' if probe.shape[1] > 1 else ''}; "
                f"an image folder is read as RGB with --channels 3 or as greyscale with "
                f"--channels 1, from Python ImageFolder(..., channels=...))"
            )
        elif probe.dim() == 4 and any(w in message for w in ("shape", "size", "mat1")):
            from captum_cf.zoo import trained_image_size

            built = trained_image_size(model)
            size = built if built is not None else "S"
            hint = (
                f" (the images are {probe.shape[2]}x{probe.shape[3]}"
                + (f", the model was trained on {built}x{built} images" if built else "")
                + f"; an image folder is resized and centre-cropped to {size} x {size} with "
                f"--image-size {size}, from Python ImageFolder(..., image_size={size}))"
            )
        raise AuditInputError(
            f"the model failed on images of shape {tuple(probe.shape)}: "
            f"{type(err).__name__}: {message}{hint}"
        ) from err
    if (
        not isinstance(out, Tensor)
        or out.dim() != 2
        or out.shape[0] != probe.shape[0]
        or out.shape[1] < 2
    ):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        hint = (
            " (its .logits: wrap the model in captum_cf.zoo.LogitsOf)"
            if not isinstance(out, Tensor) and isinstance(logits_of(out), Tensor)
            else ""
        )
        raise AuditInputError(
            f"the model must return (N, classes) logits with at least 2 classes for "
            f"N={probe.shape[0]} images, got {shape}{hint}"
        )
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise AuditInputError("the model returned non-finite or non-float logits")
    warn_if_probabilities(out, "the model", "the audit's removal curves (MoRF, LeRF) and R-OMS "
                          "apply a softmax to the output")
    return int(out.shape[1])


def probe_methods(
    model: Any,
    method_names: Sequence[str],
    ctx: AuditContext,
    images: Tensor,
    target: Tensor | None = None,
    n_images: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """Find out cheaply which audit methods apply to ``model``: run each on ``n_images`` images.

    Each method of :data:`captum_cf.attr.METHODS` is built for ``ctx`` and explains the first
    ``n_images`` images with a constant (zero) baseline; a method that raises, or returns maps of
    the wrong shape or with non-finite values, does not apply. Running out of memory is not a
    reason: the audit's grid runs such a method in smaller passes (:mod:`captum_cf.audit.memory`).
    The global random state is the same afterwards, so the audit's numbers do not depend on the
    probe; the model is left as it was by the methods themselves.

    Args:
        model (nn.Module or callable): the classifier, (N, C, H, W) in [0, 1] -> (N, classes).
        method_names (sequence of str): names in ``captum_cf.attr.METHODS``.
        ctx (AuditContext): the audit's context (its ``model`` is used to build the methods).
        images (Tensor): (N, C, H, W) in [0, 1]; the first ``n_images`` are explained.
        target (Tensor, optional): (N,) classes to explain; default the predicted classes.
        n_images (int): images per probe (>= 1).

    Returns:
        tuple: the names that apply (in the given order) and ``{name: reason}`` (one line) for
        those that do not.

    Example:
        >>> ok, skipped = probe_methods(model, ["deeplift", "occlusion"], ctx, x)  # doctest: +SKIP
        >>> skipped  # doctest: +SKIP
        {}
    """
    from captum_cf.attr import METHODS
    from captum_cf.baselines import ConstantBaseline

    if not isinstance(n_images, int) or isinstance(n_images, bool) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1, got {n_images!r}")
    x = images[:n_images]
    with torch.no_grad():
        t = logits_of(model(x)).argmax(dim=1) if target is None else target[:n_images]
    ok: list[str] = []
    skipped: dict[str, str] = {}
    devices = [x.device] if x.device.type == "cuda" else []
    guard = CellGuard(model)  # what a method changes (mode, hooks, images) is put back
    guard.batch(x)
    for name in method_names:
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(ctx.seed)
            oom = False
            # as the grid calls it: no baseline for a method that takes none
            baseline = ConstantBaseline(0.0) if METHODS.uses_baseline(name) else None
            try:
                maps = METHODS.create(name, ctx)(x, t, baseline)
                reason = _bad_maps(maps, x)
            except Exception as err:  # noqa: BLE001 (any failure means: does not apply)
                # running out of memory says nothing about the model: the grid sizes it down
                oom = is_out_of_memory(err)
                reason = "" if oom else f"{type(err).__name__}: {first_line(err, 160)}"
            finally:
                changed = guard.repair()
            if changed and not reason:
                oom, reason = False, "it " + ", ".join(changed)
            if oom:
                release_memory(x.device)
        if reason:
            skipped[name] = reason
        else:
            ok.append(name)
    return ok, skipped


def _bad_maps(maps: Any, x: Tensor) -> str:
    if not isinstance(maps, Tensor):
        return (f"returned a {type(maps).__name__}, not a tensor of maps shaped like the images "
                f"{tuple(x.shape)}")
    n, c = x.shape[:2]
    if maps.dim() != x.dim() or maps.shape[0] != n or maps.shape[1] not in (1, c) \
            or maps.shape[2:] != x.shape[2:]:  # per channel, or one map per image (MP's masks)
        one = (n, 1, *x.shape[2:])
        expected = f"{tuple(x.shape)}" + (f" or {one}" if c != 1 else "")
        return (f"returned maps of shape {tuple(maps.shape)} for images of shape "
                f"{tuple(x.shape)} (expected {expected})")
    if not all_finite(maps):
        return "returned non-finite attributions"
    return ""



def applicable_methods(
    method_names: Sequence[str], ctx: AuditContext, images: Tensor, target: Tensor
) -> tuple[list[str], dict[str, str]]:
    """:func:`probe_methods` for the audit: prints one line per left-out method on stderr and
    raises :class:`AuditInputError` when no method applies."""
    ok, skipped = probe_methods(ctx.model, method_names, ctx, images, target)
    for name, reason in skipped.items():
        print(f"audit: method {name!r} left out, it fails on this model: {reason}",
              file=sys.stderr)
    if not ok:
        raise AuditInputError(
            "no method applies to this model: "
            + "; ".join(f"{n}: {r}" for n, r in skipped.items())
        )
    return ok, skipped
