"""Leave the user's model exactly as it was: mode, ``requires_grad`` flags, hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.nn.parameter import UninitializedBuffer

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
    saved = []
    for module in model.modules():
        if not module.training:
            continue
        for b in module.buffers(recurse=False):
            if isinstance(b, UninitializedBuffer) or 0 in b.stride():
                continue
            saved.append((b, b.detach().clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                if b.shape == value.shape and not torch.equal(b, value):
                    b.copy_(value)
