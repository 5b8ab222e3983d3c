"""Leave the user's model and inputs as they were after an attribution call, also after an error."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._model_state import preserve_model_state, preserved_buffers
from captum_cf._validation import (
    ArgumentError,
    check_baseline_dtype,
    check_model_dtype,
    check_target_in_output,
    model_dtype,
)
from captum_cf.baselines.base import inputs_may_be_noisy

__all__ = [
    "add_missing_batch_note",
    "captum_assertions",
    "checking_target",
    "guarded",
    "missing_batch_hint",
    "model_of",
]

# Captum's DeepLift hooks store these on non-linear modules and delete them only in the backward
# pass, so an error between forward and backward (e.g. a target out of range) leaves them behind.
_HOOK_ATTRIBUTES = ("input", "output", "input_ref")


def model_of(forward_func: Any) -> Any:
    """The ``nn.Module`` behind ``forward_func``: itself, or the owner of a bound method."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else forward_func


@contextlib.contextmanager
def guarded(forward_func: Any, inputs: Any, baselines: Any = None) -> Iterator[None]:
    """On exit, also when the body raises: restore the model's modes, ``requires_grad`` flags and
    buffers (Captum runs a model in train mode as it is: its BatchNorm statistics would move),
    the inputs' ``requires_grad`` flags, and remove what Captum's hooks left on submodules.

    Captum removes its hook handles itself (in ``finally`` blocks); what it misses after an
    exception is restored here. Before anything runs, float inputs must have the model's dtype
    (:func:`captum_cf._validation.check_model_dtype`) and float tensors in ``baselines`` the
    inputs' (:func:`captum_cf._validation.check_baseline_dtype`): a clear TypeError, not
    torch's. The other
    arguments are checked by :func:`captum_cf._validation.check_attribute_arguments`, the
    target's range by :func:`checking_target`; what Captum still asserts comes out as an
    :class:`~captum_cf._validation.ArgumentError` (:func:`captum_assertions`).
    """
    dtype = model_dtype(forward_func)
    # NoiseTunnel (which checked the clean inputs) hands a half-precision model Captum's float32
    # noisy copies: a model that casts its inputs runs, as in Captum; one that does not fails
    # in torch, and NoiseTunnel says why (noise_dtype_errors)
    if not (dtype in (torch.float16, torch.bfloat16) and inputs_may_be_noisy()):
        check_model_dtype(inputs, forward_func)
        if dtype is not None:  # a function of unknown dtype: as for inputs
            check_baseline_dtype(baselines, inputs)
    model = model_of(forward_func)
    tensors = inputs if isinstance(inputs, tuple) else (inputs,)
    flags = [(x, x.requires_grad) for x in tensors if isinstance(x, Tensor)]
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    present = [{a for a in _HOOK_ATTRIBUTES if a in vars(m)} for m in modules]
    try:
        with preserve_model_state(model), preserved_buffers(model), captum_assertions():
            yield
    except RuntimeError as err:  # the model's own errors (captum_cf's are ValueError/TypeError)
        add_missing_batch_note(err, model, tensors)
        if (torch.is_inference_mode_enabled() and hasattr(err, "add_note")
                and any(m in str(err) for m in _AUTOGRAD_MESSAGES)):
            err.add_note("captum_cf: called inside torch.inference_mode(), where autograd cannot "
                         "run: call attribute outside it (inside torch.no_grad() the methods "
                         "turn gradients on themselves)")
        elif (_FROZEN_HOOK in str(err) and hasattr(err, "add_note") and flags
              and not any(flag for _, flag in flags)):
            err.add_note("captum_cf: the layer's tensors need gradients for the method's hooks, "
                         "and nothing before the layer requires them (every parameter frozen, "
                         "inputs without requires_grad): pass inputs.detach().requires_grad_() "
                         "(the attributions do not change)")
        raise
    finally:
        for x, flag in flags:
            if x.is_leaf and x.requires_grad != flag:
                x.requires_grad_(flag)
        for m, before in zip(modules, present):
            for a in _HOOK_ATTRIBUTES:
                if a in vars(m) and a not in before:
                    delattr(m, a)


#: autograd's error when a method hooks a tensor of a model whose parameters are all frozen
_FROZEN_HOOK = "cannot register a hook on a tensor that doesn't require gradient"

# autograd's errors inside torch.inference_mode() (gradient methods), not a model's own errors
_AUTOGRAD_MESSAGES = ("does not require grad", "doesn't require gradient", "Inference tensors")

# the input dimensions (batch included) each kind of first layer takes
_LAYER_DIMS = ((nn.Conv1d, 3), (nn.Conv2d, 4), (nn.Conv3d, 5), (nn.Linear, 2))


def missing_batch_hint(model: Any, tensors: tuple[Any, ...]) -> str | None:
    """A hint for an error of a call whose input looks like one example without its batch
    dimension, else None.

    Captum's methods take (N, ...) inputs and add their own rows along the first dimension, so a
    (C, H, W) image reaches the model as a batch of a different shape and fails inside it (a
    convolution that "got 150 channels", a matrix product of odd shapes). The hint is given only
    when the model's first layer with weights takes one dimension more than the input has and
    the input's first dimension is that layer's channels (or features).
    """
    if not isinstance(model, nn.Module) or not tensors or not isinstance(tensors[0], Tensor):
        return None
    x = tensors[0]
    for module in model.modules():
        for kind, dims in _LAYER_DIMS:
            if isinstance(module, kind):
                width = module.in_features if kind is nn.Linear else module.in_channels
                if x.dim() == dims - 1 and x.shape[0] == width:
                    return (f"captum_cf: inputs has shape {tuple(x.shape)}: one example "
                            "without its batch dimension? Captum's methods take a batch "
                            "(N, ...): pass inputs.unsqueeze(0)")
                return None
    return None


def add_missing_batch_note(err: BaseException, model: Any, tensors: tuple[Any, ...]) -> None:
    """Add :func:`missing_batch_hint`'s note to ``err`` (once; Python >= 3.11 has notes)."""
    hint = missing_batch_hint(model, tensors)
    if hint and hasattr(err, "add_note") and hint not in getattr(err, "__notes__", ()):
        err.add_note(hint)


@contextlib.contextmanager
def captum_assertions() -> Iterator[None]:
    """Captum checks much user input with ``assert``: re-raise such an ``AssertionError`` as an
    :class:`~captum_cf._validation.ArgumentError` with the same message, a ``ValueError`` (bad
    input) that is still the ``AssertionError`` Captum raised, so code (and Captum's own tests)
    that catches ``AssertionError`` is unaffected."""
    try:
        yield
    except AssertionError as err:
        if isinstance(err, (ValueError, TypeError)):
            raise
        raise ArgumentError(str(err)) from err


@contextlib.contextmanager
def checking_target(
    method: Any, target: Any, model_attr: str = "forward_func", scores_output: bool = True
) -> Iterator[Any]:
    """Yield the object to hand to Captum; the model's first output checks ``target``'s range.

    Captum reads ``target`` as an index into the model's output and never checks its upper
    bound (an IndexError deep inside, or silently another class). The number of classes is
    known only once the model has run, so the first output Captum computes anyway is checked
    (:func:`captum_cf._validation.check_target_in_output`), then the check steps aside: no extra
    forward pass, results unchanged. For an ``nn.Module`` model this is a one-shot forward hook
    (removed on exit, also after an error) and ``method`` itself is yielded; for any other
    forward function, a shallow copy of ``method`` whose forward function checks. With
    ``scores_output`` (methods that index the model's output, not neuron methods) the output
    must also be a tensor (:func:`check_tensor_output`), with or without a target.
    """
    model = getattr(method, model_attr, None)
    if model is None or (target is None and not (scores_output and isinstance(model, nn.Module))):
        yield method
        return
    handle: list[Any] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        try:  # once: DataParallel's replicas may call it from several threads
            handle.pop().remove()
        except IndexError:
            return
        if scores_output:
            check_tensor_output(output)
        check_target_in_output(target, output)

    if isinstance(model, nn.Module):
        # DataParallel: Captum's DeepLift hooks reshape its output to (N, 2, ...); the module
        # inside computes the plain (2N, classes)
        inner = model.module if isinstance(model, _PARALLEL) else model
        try:
            handle.append(inner.register_forward_hook(hook))
        except (RuntimeError, AttributeError):  # e.g. a TorchScript module takes no Python hook
            pass
        if not handle and model_attr != "forward_func":  # a method that hooks the model itself
            yield method  # (DeepLift): unchecked, so that Captum says why it cannot hook it
            return
    if handle:
        try:
            yield method
        finally:
            if handle:
                handle.pop().remove()
        return
    clone = copy.copy(method)
    setattr(clone, model_attr, _TargetCheckedForward(model, target, scores_output))
    yield clone


_PARALLEL = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def check_tensor_output(output: Any) -> None:
    """The model's output must be what Captum indexes: a tensor (or a Python number, which
    Captum's perturbation methods take); a dict, tuple or model-output object failed deep inside
    Captum (``'dict' object has no attribute 'shape'``)."""
    if isinstance(output, (Tensor, int, float)) and not isinstance(output, bool):
        return
    raise TypeError(
        f"the model returns a {type(output).__name__}, not a tensor of scores, which Captum's "
        "methods index: wrap it in a module that returns the scores tensor, e.g. "
        "captum_cf.zoo.LogitsOf(model) for an output with .logits or ['logits']"
    )


class _TargetCheckedForward:
    """A forward function that checks ``target`` against its first output."""

    def __init__(self, forward_func: Any, target: Any, scores_output: bool = True) -> None:
        self.forward_func = forward_func
        self.target = target
        self.scores_output = scores_output
        self.checked = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward_func(*args, **kwargs)
        if not self.checked:
            self.checked = True
            if self.scores_output:
                check_tensor_output(out)
            check_target_in_output(self.target, out)
        return out
