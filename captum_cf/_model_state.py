"""Leave the user's model exactly as it was: mode, ``requires_grad`` flags, hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch.nn as nn

__all__ = ["preserve_model_state", "frozen"]


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
