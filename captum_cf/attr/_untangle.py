"""A twin of a model with one non-linearity module per call site, for Captum's DeepLift.

Captum's DeepLift hooks every ``nn.ReLU`` / ``nn.MaxPool2d`` / ... module and keeps one input
and one output per module, so a module called twice in one forward pass (torchvision's ResNets
call each block's ``self.relu`` twice) fails with "A Module ReLU(inplace=True) ... used more than
once". :func:`untangled` finds such modules with one forward pass of a single example and returns
a *twin* of the model in which every reused non-linearity is replaced by a dispatcher that sends
its k-th call of a forward pass to its own non-inplace copy.

The twin is a structural copy: its modules are new objects, but it *shares* every parameter and
buffer tensor with the user's model (so it computes the same function with the current weights,
and costs no memory for them). The user's model itself is never modified.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

try:  # the module types Captum's DeepLift hooks (one input/output stored per module)
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
except ImportError:  # pragma: no cover (a Captum that moved it)
    SUPPORTED_NON_LINEAR = dict.fromkeys(
        (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d,
         nn.MaxPool2d, nn.MaxPool3d, nn.Softmax)
    )

__all__ = ["untangled", "reused_nonlinearities"]


class _CallSites(nn.Module):
    """Stands for a non-linearity module called several times per forward pass.

    Its k-th call in a forward pass goes to ``sites[k]``, a separate non-inplace copy of the
    original module; the owner's forward pre-hook resets the count before every pass.
    """

    def __init__(self, module: nn.Module, calls: int) -> None:
        super().__init__()
        self.sites = nn.ModuleList(_site_copy(module) for _ in range(calls))
        self.calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.calls >= len(self.sites):  # a pass with more calls than the probe saw
            self.sites.append(_site_copy(self.sites[0]))
        site = self.sites[self.calls]
        self.calls += 1
        return site(*args, **kwargs)


def _site_copy(module: nn.Module) -> nn.Module:
    site = copy.deepcopy(module)  # the user's hooks on the module come along, as they should
    if getattr(site, "inplace", False):
        site.inplace = False
    return site


def _structural_copy(model: nn.Module, hooks: bool = True) -> nn.Module:
    """New module objects, same parameter and buffer tensors (modes and, if ``hooks``, the
    forward hooks copied too)."""
    memo: dict[int, Any] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    twin = copy.deepcopy(model, memo)
    if not hooks:  # a probe pass must not reach the user's hooks
        for m in twin.modules():
            for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
                      m._backward_pre_hooks):
                d.clear()
    return twin


def _first_rows(value: Any, n: int) -> Any:
    if isinstance(value, Tensor):
        return value[:1] if value.dim() > 0 and value.shape[0] == n else value
    if isinstance(value, tuple):
        return tuple(_first_rows(v, n) for v in value)
    if isinstance(value, list):
        return [_first_rows(v, n) for v in value]
    return value


def reused_nonlinearities(
    model: nn.Module, inputs: Any, additional_forward_args: Any = None
) -> dict[str, int]:
    """Names of the non-linearity modules (Captum DeepLift's hooked types) called more than once
    in one forward pass, with their call counts.

    Runs one forward pass on the first example of ``inputs`` (and of the tensors of
    ``additional_forward_args`` with as many rows), in eval mode and without gradients, on a
    structural copy of the model, so the model's modes, hooks and buffers are untouched.

    Args:
        model (nn.Module): the model.
        inputs (Tensor or tuple of Tensors): a batch, shape (N, ...), as given to Captum.
        additional_forward_args (Any, optional): as in Captum.

    Returns:
        dict: ``{module name: calls}`` for every reused non-linearity; empty when none is.

    Raises:
        Whatever the model raises on the probe example.

    Example:
        >>> relu = nn.ReLU()
        >>> net = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
        >>> reused_nonlinearities(net, torch.rand(3, 4))
        {'1': 2}
    """
    return _count_calls(_structural_copy(model, hooks=False), inputs, additional_forward_args)


def _count_calls(twin: nn.Module, inputs: Any, additional_forward_args: Any) -> dict[str, int]:
    first = inputs[0] if isinstance(inputs, tuple) else inputs
    n = first.shape[0] if isinstance(first, Tensor) and first.dim() > 0 else -1
    names: dict[nn.Module, str] = {}
    for name, module in twin.named_modules(remove_duplicate=True):
        if type(module) in SUPPORTED_NON_LINEAR:
            names.setdefault(module, name)
    if not names:
        return {}
    counts = dict.fromkeys(names, 0)

    def count(module: nn.Module, _args: Any) -> None:
        counts[module] += 1

    modes = [(m, m.training) for m in twin.modules()]
    handles = [m.register_forward_pre_hook(count) for m in names]
    try:
        twin.eval()
        args = _first_rows(inputs if isinstance(inputs, tuple) else (inputs,), n)
        extra = _first_rows(additional_forward_args, n)
        if extra is not None:
            args = args + (extra if isinstance(extra, tuple) else (extra,))
        with torch.no_grad():
            twin(*args)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return {names[m]: c for m, c in counts.items() if c > 1}


def untangled(
    model: Any, inputs: Any, additional_forward_args: Any = None
) -> nn.Module | None:
    """A twin of ``model`` with one non-inplace module per call site of each reused non-linearity,
    or None when no non-linearity is reused (or the probe forward pass fails: then the caller
    goes on with the model itself, and meets the model's own error there).

    The twin shares the model's parameters and buffers and has its modes and hooks; it computes
    the same function. The user's model is not modified.

    Args:
        model (nn.Module or callable): the model (anything but an ``nn.Module`` gives None).
        inputs (Tensor or tuple of Tensors): a batch, shape (N, ...); one example is run.
        additional_forward_args (Any, optional): as in Captum.

    Example:
        >>> relu = nn.ReLU()
        >>> net = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
        >>> twin = untangled(net, torch.rand(3, 4))
        >>> type(twin[1]).__name__, twin[1] is twin[3]
        ('_CallSites', True)
    """
    if not isinstance(model, nn.Module):
        return None
    if not any(type(m) in SUPPORTED_NON_LINEAR for m in model.modules()):
        return None
    try:
        reused = reused_nonlinearities(model, inputs, additional_forward_args)
    except Exception:  # noqa: BLE001 (the model's own error is raised by the real call)
        return None
    if not reused:
        return None
    twin = _structural_copy(model)
    replaced: dict[nn.Module, _CallSites] = {}
    for name in reused:
        module = twin.get_submodule(name)
        replaced[module] = _CallSites(module, reused[name])
    # every reference to a reused module (aliases included) goes to its one dispatcher
    for parent in list(twin.modules()):
        for child_name, child in list(parent._modules.items()):
            if child in replaced:
                parent._modules[child_name] = replaced[child]
    dispatchers = list(replaced.values())

    def reset(_module: nn.Module, _args: Any) -> None:
        for d in dispatchers:
            d.calls = 0

    twin.register_forward_pre_hook(reset, prepend=True)
    return twin
