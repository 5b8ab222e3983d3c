"""What a registered method, baseline or removal may not change while the audit runs its cells.

The audit runs the model frozen (:func:`captum_cf._model_state.frozen`: eval mode, no parameter
gradients) and hands every cell the same batch of images. A plug-in that calls
``model.train()``, registers a hook and drops its handle, or changes the images in place would
change every later cell's numbers (dropout on, BatchNorm statistics moved, a hook doubling an
output, darkened images) and leave the caller's model altered. :class:`CellGuard` checks after
each cell and puts everything back: the modules' modes, the parameters' ``requires_grad``, the
buffers (from a copy taken when the audit started), the hooks, and the batch (from a copy taken
per batch); the cell then fails with a message saying what was changed, and the other cells
run on the untouched model and images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from captum_cf._model_state import buffer_copies, put_back

__all__ = ["CellGuard"]

#: the hook dictionaries of an ``nn.Module`` (the ``*_with_kwargs`` / ``*_always_called`` ones
#: are keyed by the same handle ids)
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


class CellGuard:
    """Snapshots of a frozen model (and of each batch), and the repair after a cell.

    Args:
        model: the audited model, already frozen (eval mode, no parameter gradients); a plain
            function has no state to guard.
    """

    def __init__(self, model: Any) -> None:
        self._modules = list(model.modules()) if isinstance(model, nn.Module) else []
        self._modes = [m.training for m in self._modules]
        self._params = [(p, p.requires_grad) for m in self._modules[:1] for p in m.parameters()]
        self._hooks = [
            {name: set(getattr(m, name, {}) or {}) for name in _HOOK_DICTS} for m in self._modules
        ]
        self._buffers = buffer_copies(b for m in self._modules for b in m.buffers(recurse=False))
        #: running statistics move only in train mode: a cell that changed them ran the model
        #: in train mode, even if it switched back (compared after every cell; small)
        norms = {id(b) for m in self._modules if isinstance(m, nn.modules.batchnorm._NormBase)
                 for b in m.buffers(recurse=False)}
        self._norms = [(b, copy) for b, copy in self._buffers if id(b) in norms]
        self._batch: tuple[Tensor, Tensor] | None = None

    def batch(self, x: Tensor) -> None:
        """Take the copy of batch ``x`` that a cell changing it in place is repaired from."""
        self._batch = (x, x.detach().clone())

    def repair(self) -> list[str]:
        """Put back whatever the cell changed; returns what it changed (empty when nothing)."""
        changed = []
        if self._batch is not None:
            x, copy = self._batch
            # the values, not the version counter: a write through .data or a NumPy view
            # leaves the counter as it was
            if not torch.equal(x, copy):
                with torch.no_grad():
                    x.copy_(copy)
                changed.append("changed the images in place")
        modes = [m for m, was in zip(self._modules, self._modes) if m.training != was]
        if modes:
            to = "train" if modes[0].training else "eval"
            for m, was in zip(self._modules, self._modes):
                m.training = was
            put_back(self._buffers)  # the statistics a forward pass in train mode moved
            changed.append(f"switched {len(modes)} module(s) of the model to {to} mode")
        elif put_back(self._norms):
            changed.append("ran the model in train mode (its BatchNorm statistics moved)")
        flags = [p for p, flag in self._params if p.requires_grad != flag]
        for p, flag in self._params:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
        if flags:
            changed.append(f"changed requires_grad of {len(flags)} parameter(s)")
        left = 0
        for m, before in zip(self._modules, self._hooks):
            for name, keys in before.items():
                hooks = getattr(m, name, None)
                if not hooks:
                    continue
                for key in [k for k in hooks if k not in keys]:
                    del hooks[key]
                    left += name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                     "_backward_pre_hooks")
        if left:
            changed.append(f"left {left} hook(s) on the model")
        return changed
