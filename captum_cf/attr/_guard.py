"""Leave the user's model and inputs as they were after an attribution call, also after an error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._model_state import preserve_model_state
from captum_cf._validation import check_model_dtype

__all__ = ["guarded", "model_of"]

# Captum's DeepLift hooks store these on non-linear modules and delete them only in the backward
# pass, so an error between forward and backward (e.g. a target out of range) leaves them behind.
_HOOK_ATTRIBUTES = ("input", "output", "input_ref")


def model_of(forward_func: Any) -> Any:
    """The ``nn.Module`` behind ``forward_func``: itself, or the owner of a bound method."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else forward_func


class TargetIndexError(ValueError, IndexError):
    """A target class out of the model's outputs: a ValueError (bad input), and still the
    IndexError that Captum raised, for code that caught that."""


@contextlib.contextmanager
def guarded(forward_func: Any, inputs: Any, target: Any = None) -> Iterator[None]:
    """On exit, also when the body raises: restore the model's modes and ``requires_grad`` flags
    and the inputs' ``requires_grad`` flags, and remove what Captum's hooks left on submodules.

    Captum removes its hook handles itself (in ``finally`` blocks); what it misses after an
    exception is restored here. Before anything runs, the inputs (tensors, a non-empty batch,
    finite, not bool) and the form of Captum's ``target`` are checked, and float inputs must have
    the model's dtype (:func:`captum_cf._validation.check_model_dtype`): a clear error, not
    torch's.
    """
    _check_inputs(inputs)
    _check_target(target, (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0])
    check_model_dtype(inputs, forward_func)
    model = model_of(forward_func)
    tensors = inputs if isinstance(inputs, tuple) else (inputs,)
    flags = [(x, x.requires_grad) for x in tensors if isinstance(x, Tensor)]
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    present = [{a for a in _HOOK_ATTRIBUTES if a in vars(m)} for m in modules]
    try:
        with preserve_model_state(model):
            yield
    except AssertionError as err:
        # Captum checks user input with ``assert``: give the same message as a ValueError
        raise ValueError(str(err)) from err
    except IndexError as err:
        if target is None:
            raise
        # a class index out of the model's range fails in Captum's gather of the outputs
        raise TargetIndexError(
            f"target does not index the model's output: {err} (are the target classes in "
            "[0, number of classes)?)"
        ) from err
    finally:
        for x, flag in flags:
            if x.is_leaf and x.requires_grad != flag:
                x.requires_grad_(flag)
        for m, before in zip(modules, present):
            for a in _HOOK_ATTRIBUTES:
                if a in vars(m) and a not in before:
                    delattr(m, a)


def _check_inputs(inputs: Any) -> None:
    """Inputs Captum would trip over later: not tensors, empty batches, NaN or infinite values."""
    tensors = inputs if isinstance(inputs, tuple) else (inputs,)
    if not tensors or not all(isinstance(x, Tensor) for x in tensors):
        raise TypeError(
            f"inputs must be a Tensor or a non-empty tuple of Tensors, got {type(inputs).__name__}"
        )
    for i, x in enumerate(tensors):
        where = f"inputs[{i}]" if isinstance(inputs, tuple) else "inputs"
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{where} must have a non-empty batch dimension, got {tuple(x.shape)}")
        if x.dtype == torch.bool:
            raise TypeError(f"{where} must be a numeric tensor (float for images), got bool")
        if x.is_floating_point() and not bool(torch.isfinite(x.detach()).all()):
            raise ValueError(f"{where} contains NaN or infinite values")


_TARGET_FORMS = "None, an int, a tuple (one index per output dimension), a list or a tensor"


def _check_target(target: Any, n: int) -> None:
    """The form of a Captum ``target`` for a batch of ``n``; classes too large are caught by the
    IndexError of Captum's gather (the number of classes is known only from the outputs)."""
    if target is None or isinstance(target, tuple):
        return
    if isinstance(target, bool) or not isinstance(target, (int, list, Tensor)):
        raise TypeError(f"target must be {_TARGET_FORMS}, got {type(target).__name__}")
    if isinstance(target, int):
        values = [target]
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        if target.numel() != 1 and tuple(target.shape) != (n,):
            raise ValueError(
                f"target must be a single index or have shape ({n},), got {tuple(target.shape)}"
            )
        values = target.flatten().tolist()
    else:
        if len(target) != n:
            raise ValueError(f"target must have one entry per example ({n}), got {len(target)}")
        if any(isinstance(t, bool) or not isinstance(t, (int, tuple)) for t in target):
            raise TypeError("target entries must be ints (or tuples for multi-dimensional outputs)")
        values = [t for t in target if isinstance(t, int)]
    if any(v < 0 for v in values):
        raise ValueError(f"target must be class indices >= 0, got {values}")


def check_positive_ints(**values: Any) -> None:
    """Each named value is an int >= 1; None passes only for the optional ``*batch_size``s."""
    for name, value in values.items():
        if value is None and name.endswith("batch_size"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_stdevs(stdevs: Any, name: str = "stdevs") -> None:
    """A noise level: a finite number >= 0, or a tuple of them (one per input tensor)."""
    for value in stdevs if isinstance(stdevs, tuple) else (stdevs,):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < float("inf")
        ):
            raise ValueError(
                f"{name} must be a finite number >= 0 (or a tuple of them, one per input), "
                f"got {stdevs!r}"
            )
