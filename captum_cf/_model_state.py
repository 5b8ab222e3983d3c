"""Leave the user's model exactly as it was: mode, ``requires_grad`` flags, hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn
from torch.nn.parameter import UninitializedBuffer, is_lazy

__all__ = ["buffer_copies", "frozen", "preserve_model_state", "preserved_buffers", "put_back"]


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
            if not is_lazy(p):  # a lazy parameter still without data: its flag is as it was
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


def buffer_copies(buffers: Iterable[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(buffer, copy)`` for each buffer that can be written in place (not a broadcast view, not
    a lazy module's buffer without data yet)."""
    return [(b, b.detach().clone()) for b in buffers
            if not isinstance(b, UninitializedBuffer) and 0 not in b.stride()]


def put_back(copies: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Write each copy back into its buffer where the values differ (an unchanged buffer keeps
    its autograd version); returns how many were written."""
    written = 0
    with torch.no_grad():
        for b, value in copies:
            if b.shape == value.shape and not torch.equal(b, value):
                b.copy_(value)
                written += 1
    return written


@contextlib.contextmanager
def preserved_buffers(model: object) -> Iterator[None]:
    """Put back, on exit (also when the body raises), the buffers of the submodules of
    ``model`` that are in train mode, where a forward pass updates them (BatchNorm's running
    statistics and batch count): a model run in train mode keeps them.

    Only a buffer whose value changed is written back (in place, so it stays the same tensor):
    a model in eval mode is not touched at all, and an unchanged buffer keeps its autograd
    version (a ``backward()`` pending in the caller's code still runs). Buffers that cannot be
    written in place (broadcast views) or hold no data yet (lazy modules) are left alone.
    Non-module callables pass through.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    saved = buffer_copies(b for m in model.modules() if m.training
                          for b in m.buffers(recurse=False))
    try:
        yield
    finally:
        put_back(saved)
