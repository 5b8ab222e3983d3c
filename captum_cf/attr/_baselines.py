"""Resolve Captum ``baselines`` arguments that hold :class:`~captum_cf.baselines.Baseline` objects.

Every ``captum_cf.attr`` subclass of a Captum method calls :func:`resolve_baselines` first, then
hands the result to Captum. The rules, shared by gradient and perturbation methods:

- a single ``Baseline`` (for a single input tensor, or a 1-tuple of inputs) becomes the tensor
  ``baseline.reference(inputs, target)``, shaped like the inputs;
- a ``ConstantBaseline`` becomes what Captum takes for it (the number, or a (1, ...) tensor for a
  per-channel value), so that it gives exactly what ``baselines=c`` gives; the Shap methods,
  where Captum takes no number, pass ``native=False`` and get the per-example reference;
- a tuple (one entry per input tensor of a multi-input model) has each ``Baseline`` entry replaced
  by its reference for the matching input; the other entries (scalars, tensors) stay as they are;
- anything else (None, scalars, tensors, tuples without a Baseline, callables where the method
  accepts them) is returned untouched, the very same object, so Captum sees exactly what the user
  passed and returns exactly what it would have returned.

A ``Baseline`` takes inputs of any shape ``(N, ...)``; image baselines (blur, inpainting) need
``(N, C, H, W)`` and pixel-space baselines values in [0, 1] (``Baseline.context``): otherwise a
clear ``ValueError`` names the argument and the input. Types Captum would reject get a
``TypeError`` naming the argument, before any work is done.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_cf._validation import check_baseline_count
from captum_cf.baselines.base import Baseline, check_baseline_output
from captum_cf.baselines.constant import ConstantBaseline

__all__ = ["has_baseline", "resolve_baselines", "check_per_example"]

_ACCEPTED = "None, a number, a Tensor, a Baseline or a tuple of these (one entry per input)"


class BaselineTypeError(TypeError, AssertionError):
    """A ``baselines`` argument of a type Captum does not accept.

    A ``TypeError`` naming the argument; also an ``AssertionError``, because Captum asserts these
    types and raises ``AssertionError``, so code (and Captum's own tests) written against Captum
    catches it unchanged.
    """


class _BaselineToken(float):
    """A ``float`` that carries a ``Baseline`` through Captum's type checks (used by NoiseTunnel).

    Its numeric value is NaN so that any code that mistakes it for a number fails loudly. The
    perturbation methods fill with its Baseline (:mod:`captum_cf.attr._perturbation`); for the
    others :func:`has_baseline` and :func:`resolve_baselines` read it as its Baseline.
    """

    baseline: Baseline

    def __new__(cls, baseline: Baseline) -> _BaselineToken:
        token = super().__new__(cls, float("nan"))
        token.baseline = baseline
        return token

    def __repr__(self) -> str:
        return f"_BaselineToken({self.baseline!r})"


def _untokenized(baselines: Any) -> Any:
    """``baselines`` with each :class:`_BaselineToken` replaced by the Baseline it carries."""
    if isinstance(baselines, _BaselineToken):
        return baselines.baseline
    if isinstance(baselines, tuple):
        return tuple(_untokenized(b) for b in baselines)
    return baselines


def has_baseline(baselines: Any) -> bool:
    """Whether ``baselines`` is a :class:`Baseline` or a tuple holding at least one (or a token
    carrying one)."""
    baselines = _untokenized(baselines)
    if isinstance(baselines, Baseline):
        return True
    return isinstance(baselines, tuple) and any(isinstance(b, Baseline) for b in baselines)


def resolve_baselines(
    baselines: Any,
    inputs: Tensor | tuple[Tensor, ...],
    target: Any = None,
    *,
    allow_callable: bool = False,
    name: str = "baselines",
    native: bool = False,
) -> Any:
    """Replace every :class:`Baseline` in a Captum ``baselines`` argument by its reference.

    Args:
        baselines: what the user passed as ``baselines``: None, a number, a Tensor, a Baseline, a
            tuple of these (one entry per input tensor), or a callable when ``allow_callable``.
        inputs (Tensor or tuple of Tensors): the ``inputs`` of the same call, each (N, ...); an
            entry that has a Baseline must suit it (``Baseline.context``).
        target: the call's ``target``, handed unchanged to ``Baseline.reference``.
        allow_callable (bool): accept a callable ``baselines`` (Captum's GradientShap and
            DeepLiftShap do); it is passed through untouched.
        name (str): argument name used in error messages.
        native (bool): hand a ``ConstantBaseline`` to Captum as its number (or (1, ...) tensor),
            for methods whose Captum class takes a number there.

    Returns:
        ``baselines`` itself when it holds no Baseline; otherwise the same structure with each
        Baseline replaced by a detached tensor of the shape, dtype and device of its input.

    Raises:
        TypeError: ``baselines`` has a type Captum does not accept, or is a Baseline class.
        ValueError: a Baseline stands for an input it does not suit, the number of entries
            does not match the inputs, a Baseline that ``needs_target`` gets no target, or a
            Baseline returns a reference of the wrong shape.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 1, 8, 8)
        >>> from captum_cf.baselines import ConstantBaseline
        >>> float(resolve_baselines(ConstantBaseline(0.5), x).mean())
        0.5
    """
    _check_type(baselines, allow_callable, name)
    if not has_baseline(baselines):
        return baselines
    baselines = _untokenized(baselines)
    inputs_t = _input_tuple(inputs)
    check_baseline_count(baselines, inputs, name)
    entries = baselines if isinstance(baselines, tuple) else (baselines,)
    names = _entry_names(baselines, inputs, name)
    for (b_name, x_name), b, x in zip(names, entries, inputs_t):
        if isinstance(b, Baseline):
            _check_baseline_input(b, x, target, b_name, x_name)
    resolved = tuple(
        _resolve_one(b, x, target, b_name, native) if isinstance(b, Baseline) else b
        for (b_name, _), b, x in zip(names, entries, inputs_t)
    )
    return resolved if isinstance(baselines, tuple) else resolved[0]


def explain_in_chunks(
    attribute: Any, inputs: Tensor, target: Any, baseline: Any, per_call: int
) -> Tensor:
    """``attribute(inputs, refs, target)`` over chunks of at most ``per_call`` examples.

    For the audit's explainers of methods whose map of an example depends on its own input and
    reference only (DeepLift, Integrated Gradients): the references are drawn once for the whole
    batch (a random reference, e.g. noise, depends on the batch it is drawn for) and split like
    the inputs, so the maps are those of one call on the whole batch, up to float rounding.

    Args:
        attribute (callable): ``attribute(inputs, baselines, target) -> Tensor`` of shape
            (n, ...) for n inputs.
        inputs (Tensor): (N, ...) examples.
        target: None, an int or a per-example (N,) tensor (split like the inputs).
        baseline: a :class:`~captum_cf.baselines.Baseline`, a tensor or a number.
        per_call (int): at most this many examples per call (>= 1).

    Returns:
        Tensor: the maps of the chunks, concatenated, (N, ...).
    """
    n = inputs.shape[0]
    if n <= per_call:
        return attribute(inputs, baseline, target)
    refs = resolve_baselines(baseline, inputs, target)
    split_target = isinstance(target, Tensor) and target.dim() > 0 and target.shape[0] == n
    split_refs = isinstance(refs, Tensor) and refs.dim() > 0 and refs.shape[0] == n
    return torch.cat([
        attribute(
            inputs[lo:lo + per_call],
            refs[lo:lo + per_call] if split_refs else refs,
            target[lo:lo + per_call] if split_target else target,
        )
        for lo in range(0, n, per_call)
    ])


def check_per_example(
    baselines: Any, inputs: Tensor | tuple[Tensor, ...], name: str = "baselines"
) -> None:
    """Check that resolved ``baselines`` give one reference per example (not a distribution).

    Once a Baseline resolved part of a tuple, the Shap methods pair every example with its own
    reference, so a tensor entry must have 1 or N rows (N = number of examples), as for DeepLift.
    """
    inputs_t = _input_tuple(inputs)
    entries = baselines if isinstance(baselines, tuple) else (baselines,)
    for i, (b, x) in enumerate(zip(entries, inputs_t)):
        if isinstance(b, Tensor) and b.dim() > 0 and b.shape[0] not in (1, x.shape[0]):
            where = f"{name}[{i}]" if isinstance(baselines, tuple) else name
            raise ValueError(
                f"{where} has shape {tuple(b.shape)}: when a Baseline gives per-example "
                f"references, "
                f"the other entries must be scalars or tensors of shape (1, ...) or "
                f"{tuple(x.shape)} (one reference per example), not a distribution of references"
            )


def _check_type(baselines: Any, allow_callable: bool, name: str) -> None:
    """Mirror the types Captum accepts, so a wrong type fails early with a clear TypeError."""
    if isinstance(baselines, type) and issubclass(baselines, Baseline):
        raise BaselineTypeError(
            f"{name} is the class {baselines.__name__}; pass an instance, "
            f"e.g. {baselines.__name__}(...)"
        )
    if baselines is None or isinstance(baselines, (Tensor, int, float, Baseline)):
        return
    if isinstance(baselines, tuple):
        for i, b in enumerate(baselines):
            if isinstance(b, type) and issubclass(b, Baseline):
                raise BaselineTypeError(f"{name}[{i}] is the class {b.__name__}; pass an instance")
            if not isinstance(b, (Tensor, int, float, Baseline)):
                raise BaselineTypeError(
                    f"{name}[{i}] must be a number, a Tensor or a Baseline, got {type(b).__name__}"
                )
        return
    if allow_callable and callable(baselines):
        return
    accepted = _ACCEPTED + (", or a callable" if allow_callable else "")
    raise BaselineTypeError(f"{name} must be {accepted}; got {type(baselines).__name__}")


def _input_tuple(inputs: Any) -> tuple[Tensor, ...]:
    if isinstance(inputs, Tensor):
        return (inputs,)
    if isinstance(inputs, tuple) and inputs and all(isinstance(x, Tensor) for x in inputs):
        return inputs
    raise TypeError(
        f"inputs must be a Tensor or a non-empty tuple of Tensors, got {type(inputs).__name__}"
    )


def _entry_names(baselines: Any, inputs: Any, name: str) -> list[tuple[str, str]]:
    n = len(baselines) if isinstance(baselines, tuple) else 1
    b_names = [f"{name}[{i}]" for i in range(n)] if isinstance(baselines, tuple) else [name]
    x_names = [f"inputs[{i}]" for i in range(n)] if isinstance(inputs, tuple) else ["inputs"]
    return list(zip(b_names, x_names))


def native_value(b: Baseline, x: Tensor) -> float | Tensor | None:
    """What Captum itself takes for ``b`` (a ConstantBaseline's number), or None."""
    captum_value = getattr(b, "captum_value", None)
    return captum_value(x) if isinstance(b, ConstantBaseline) and callable(captum_value) else None


def _resolve_one(b: Baseline, x: Tensor, target: Any, b_name: str, native: bool) -> Any:
    value = native_value(b, x) if native else None
    return _reference(b, x, target, b_name) if value is None else value


def _check_baseline_input(b: Baseline, x: Tensor, target: Any, b_name: str, x_name: str) -> None:
    if native_value(b, x) is not None:
        return  # handed to Captum as a number, checked by Captum as a number
    b.context(x.detach(), x_name, owner=b_name)
    if getattr(b, "needs_target", False) and target is None:
        raise ValueError(
            f"{b_name} ({type(b).__name__}) depends on the class being explained: pass target="
        )


def _reference(b: Baseline, x: Tensor, target: Any, b_name: str) -> Tensor:
    # Detached: attributions differentiate the model along the path, never the baseline's generator.
    # Baseline.reference checks its output; checked again for a subclass overriding reference
    return check_baseline_output(b, b.reference(x.detach(), target), x, "reference").detach()
