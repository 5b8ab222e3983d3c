"""Leave the user's model exactly as it was: mode, ``requires_grad`` flags, hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn

__all__ = ["preserve_model_state", "preserved_buffers", "frozen"]


@contextlib.contextmanager
def preserve_model_state(model: object) -> Iterator[None]:
    """Restore the train/eval mode of every submodule and every parameter's ``requires_grad``.

    Restoration happens also when the body raises. Non-module callables pass through.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def frozen(model: object, eval_mode: bool = True) -> Iterator[object]:
    """Use ``model`` as a fixed function: parameters without gradients, optionally eval mode.

    Gradients still flow to the *inputs*. Everything is restored on exit, also after an exception.
    """
    with preserve_model_state(model):
        if isinstance(model, nn.Module):
            for p in model.parameters():
                p.requires_grad_(False)
            if eval_mode:
                model.eval()
        yield model


@contextlib.contextmanager
def preserved_buffers(model: object) -> Iterator[None]:
    """Put every buffer of ``model`` back as it was on exit (also when the body raises): a
    model run in train mode keeps its BatchNorm running statistics and batch counts.

    The values are copied back in place, so the buffers stay the same tensors. Non-module
    callables pass through.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
