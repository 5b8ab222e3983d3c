"""Shared machinery that lets Captum's perturbation methods remove features with a ``Baseline``.

Captum builds every perturbed sample as ``x * (1 - m) + b * m`` (``m`` = 1 on the ablated
features) and hands whole chunks of ``perturbations_per_eval`` samples to the forward function.
We give Captum a *sentinel* scalar ``b`` that no input value takes (chosen per call among a few
numbers far outside [0, 1] that the inputs do not hold), so in each chunk the ablated features
are exactly the entries equal to the sentinel and the kept ones are the original values, bit for
bit. Two hooks then replace the sentinel by
``baseline.fill(x, keep)``, one fill call per chunk:

* the ablation family (Occlusion, FeatureAblation, ShapleyValueSampling) runs Captum's own loop
  with a forward function wrapped by :class:`_FillingForward`;
* the LIME family (Lime, KernelShap) computes its similarity weights on the model input, so the
  fill must happen before Captum sees a sample: :class:`_LimeFiller` draws a chunk of
  interpretable samples ahead (with the user's own sampler, so the random numbers are consumed
  in Captum's order), fills them in one call and hands Captum the filled samples through the
  public ``perturb_func`` / ``from_interp_rep_transform`` constructor arguments.

Neither hook overrides a private Captum method; each works on a shallow copy of the attribution
object, so the user's object is never modified. Scalar and tensor baselines never come here:
the public classes pass them straight to Captum.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_cf._validation import check_baseline_count, is_output_index
from captum_cf.attr._baselines import (
    _BaselineToken,
    _check_type,
    _untokenized,
    has_baseline,
    native_value,
)
from captum_cf.baselines.base import (
    Baseline,
    check_baseline_output,
    inputs_may_be_noisy,
    noisy_inputs,
)

__all__: list[str] = []

# Exactly representable in float16/bfloat16/float32/float64 and far outside [0, 1].
_SENTINEL_CANDIDATES = (-1000.0, -2000.0, -3000.0, -5000.0)


@dataclass
class _Plan:
    """What a Baseline-driven call needs: which inputs are filled, and how Captum is called."""

    inputs: tuple[Tensor, ...]  # the formatted inputs, as given (kept values are these)
    contexts: dict[int, Tensor]  # input index -> what the fill sees (see _context)
    fills: dict[int, Baseline]  # input index -> Baseline that fills it
    captum_baselines: Any  # what Captum receives: the sentinel where a Baseline stands
    sentinel: float
    target: Tensor | None  # (N,) long, or None
    noisy: bool = False  # inputs may be noisy copies (NoiseTunnel, noisy_inputs()): see _context
    # input index -> (context, reference): a composite Baseline's reference, computed once per
    # context instead of once per chunk (a generator or a sparse attack is costly, and noise must
    # be the same in every chunk)
    references: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)


def _plan(inputs: Any, baselines: Any, target: Any) -> _Plan | None:
    """Validate a call whose ``baselines`` contain a ``Baseline``; None when they do not.

    Inputs filled by a Baseline must suit it (``Baseline.context``: finite floats of any shape;
    images for image baselines; [0, 1] for pixel-space baselines, except under
    ``captum_cf.attr.NoiseTunnel`` or :func:`~captum_cf.baselines.noisy_inputs`, where a
    pixel-space fill sees them clamped). A ``ConstantBaseline`` is handed to Captum as its number.

    Raises:
        TypeError, ValueError: naming ``baselines``, ``inputs`` or ``target``.
    """
    if not has_baseline(baselines):
        _check_type(baselines, False, "baselines")
        return None
    formatted = inputs if isinstance(inputs, tuple) else (inputs,)
    if not formatted or not all(isinstance(x, Tensor) for x in formatted):
        raise TypeError("inputs must be a Tensor or a non-empty tuple of Tensors")
    check_baseline_count(baselines, inputs)
    raw = baselines if isinstance(baselines, tuple) else (baselines,)
    items = [_untokenized(b) for b in raw]
    _check_type(tuple(items), False, "baselines")
    items = [_native(b, x) for b, x in zip(items, formatted)]
    fills = {i: b for i, b in enumerate(items) if isinstance(b, Baseline)}
    if not fills:  # only ConstantBaselines: Captum's own call with their numbers
        return _Plan(formatted, {}, {}, _restore(baselines, items), 0.0, None)
    noisy = inputs_may_be_noisy() or any(isinstance(raw[i], _BaselineToken) for i in fills)
    for i in fills:
        where = "inputs" if len(formatted) == 1 else f"inputs[{i}]"
        owner = "baselines" if len(formatted) == 1 else f"baselines[{i}]"
        with noisy_inputs() if noisy else contextlib.nullcontext():
            fills[i].context(formatted[i].detach(), where, owner=owner)
        fills[i]._check_model_dtypes(formatted[i])
    sentinel = _choose_sentinel([formatted[i] for i in fills])
    captum = tuple(sentinel if isinstance(b, Baseline) else b for b in items)
    return _Plan(
        inputs=formatted,
        contexts={i: _context(fills[i], formatted[i]) for i in fills},
        fills=fills,
        captum_baselines=captum if isinstance(baselines, tuple) else captum[0],
        sentinel=sentinel,
        target=_rows_target(target, formatted[0].shape[0], fills),
        noisy=noisy,
    )


def _native(b: Any, x: Tensor) -> Any:
    """A ConstantBaseline becomes Captum's own number (or (1, ...) tensor); others unchanged."""
    if isinstance(b, Baseline):
        value = native_value(b, x)
        return b if value is None else value
    return b


def _restore(baselines: Any, items: list[Any]) -> Any:
    return tuple(items) if isinstance(baselines, tuple) else items[0]


def _context(baseline: Baseline, x: Tensor) -> Tensor:
    """What a fill sees of ``x``: itself, clamped to [0, 1] for a pixel-space baseline.

    The clamp changes nothing on inputs ``_plan`` accepted, except noisy copies.
    """
    x = x.detach()
    return x.clamp(0.0, 1.0) if baseline.pixel_space else x


def scalar_target(target: Any) -> Any:
    """A 0-d tensor ``target`` as its int (Lime and KernelShap: Captum takes ``len()`` of it for a
    batch of several rows and fails with ``len() of a 0-d tensor``); else ``target`` itself."""
    if isinstance(target, Tensor) and target.dim() == 0:
        return int(target.item())
    return target


def count_features(feature_mask: Any, inputs: Any) -> int:
    """Number of interpretable features: distinct ids of ``feature_mask`` (elements without)."""
    if feature_mask is None:
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        return sum(x[0].numel() for x in xs)
    masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
    return int(torch.unique(torch.cat([m.flatten() for m in masks])).numel())


def _choose_sentinel(inputs: list[Tensor]) -> float:
    for value in _SENTINEL_CANDIDATES:
        if not any(bool((x == value).any()) for x in inputs):
            return value
    raise ValueError(
        f"inputs hold every sentinel value captum_cf can use ({_SENTINEL_CANDIDATES}) to mark "
        "removed features; shift or rescale them"
    )


def _rows_target(target: Any, n: int, fills: dict[int, Baseline]) -> Tensor | None:
    """The call's target as a (N,) long tensor for the fills, or None when it has another form."""
    needs = any(b.needs_target for b in fills.values())
    if target is None:
        if needs:
            raise ValueError(
                "target is required: the Baseline depends on the class being explained"
            )
        return None
    if is_output_index(target):  # Captum's index into a multi-dimensional output
        if needs:
            raise ValueError(
                f"target {target!r} indexes a multi-dimensional output, but the Baseline "
                "depends on the class being explained: pass a model that returns (N, classes) "
                "and one class per example"
            )
        return None
    try:
        if isinstance(target, bool):
            raise TypeError
        t = torch.as_tensor(target)
        if t.is_floating_point() or t.is_complex():
            raise TypeError
        t = t.long().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        if needs:
            raise ValueError(
                "target must be an int, a list of ints or a tensor of class indices when the "
                f"Baseline depends on the class; got {target!r}"
            ) from None
        return None
    if t.numel() == 1:
        return t.expand(n).clone()
    if t.numel() != n:
        if needs:
            raise ValueError(f"target must have one entry per example ({n}), got {t.numel()}")
        return None
    return t


def _composite_reference(
    plan: _Plan, index: int, base: Tensor, target: Tensor | None, row: int | None = None
) -> Tensor | None:
    """The reference of a Baseline whose fill is the default composite, cached per context.

    None for mask-conditional baselines (those overriding ``_fill``, e.g. inpainting), whose
    content depends on each chunk's mask. ``row``: ``base`` is example ``row`` of the call's
    inputs (Captum's LIME runs one example at a time); its reference is then that row of the
    reference of the whole batch, as IntegratedGradients would see it (a noise baseline draws
    once for the batch, not once per example).
    """
    baseline = plan.fills[index]
    if type(baseline)._fill is not Baseline._fill:
        return None
    if row is not None:
        full = _composite_reference(plan, index, plan.contexts[index], plan.target)
        return None if full is None else full[row : row + 1]
    cached = plan.references.get(index)
    if cached is not None and cached[0].shape == base.shape and torch.equal(cached[0], base):
        return cached[1]
    reference = check_baseline_output(
        baseline, baseline._reference(base, target), base, "reference"
    ).detach()
    plan.references[index] = (base, reference)
    return reference


def _fill_rows(
    plan: _Plan,
    index: int,
    batch: Tensor,
    base: Tensor,
    reps: int,
    target: Tensor | None,
    row: int | None = None,
) -> Tensor:
    """Replace the sentinel entries of ``batch`` (rows = copies of ``base``) in ONE fill call.

    Args:
        batch (Tensor): (R, ...), the perturbed samples Captum built, sentinel where ablated.
        base (Tensor): (R / reps, ...), the fill's context of the original inputs (_context).
        reps (int): how many copies of ``base`` the batch stacks.
        target (Tensor or None): (R / reps,) class per image of ``base``.
    """
    context = _tile_rows(base, reps)
    removed = batch == plan.sentinel
    if not bool(removed.any()):
        return batch
    keep = (~removed).to(batch.dtype)
    if batch.dim() == 4:
        removed_any = removed.any(1, keepdim=True)
        if torch.equal(removed.all(1, keepdim=True), removed_any):
            # the same mask for all channels: (R, 1, H, W) expanded, what inpainters expect
            keep = (~removed_any).to(batch.dtype).expand_as(context)
    # ``fill`` without its argument checks: the context was checked once per call (_plan) and
    # the keep mask is built here, 0/1 and of the right shape; the checks would cost a pass over
    # every chunk, a sizeable share of an inpainter's time
    reference = _composite_reference(plan, index, base, target, row)
    if (
        reference is not None
    ):  # same arithmetic as Baseline._fill, without recomputing the reference
        reference = _tile_rows(reference, reps)
        filled = (keep * context + (1 - keep) * reference).to(batch.dtype)
    else:
        baseline = plan.fills[index]
        filled = check_baseline_output(
            baseline, baseline._fill(context, keep, _tile(target, reps)), context, "fill"
        ).to(batch.dtype)
    if plan.noisy:
        # the context was clamped: kept pixels must keep the (noisy) values Captum built
        return torch.where(removed, filled, batch)
    return filled  # a Baseline's fill returns its input exactly where keep == 1


def _tile(t: Tensor | None, reps: int) -> Tensor | None:
    return None if t is None else t.repeat(reps)


def _tile_rows(x: Tensor, reps: int) -> Tensor:
    """``reps`` copies of ``x`` stacked along the batch: (reps * N, ...)."""
    return x.repeat(reps, *([1] * (x.dim() - 1)))


class _FillingForward:
    """Forward function for the ablation family: fills each chunk, then calls the model.

    Captum lays out a chunk of k perturbations of N examples as k copies of the batch
    (row ``j * N + i`` is example ``i``); the layout is checked on every call so that a future
    Captum that batches differently fails loudly instead of filling from the wrong image.
    """

    def __init__(self, forward_func: Callable[..., Any], plan: _Plan) -> None:
        self.forward_func = forward_func
        self.plan = plan
        self.layout_checked: set[int] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args_list = list(args)
        for i in self.plan.fills:
            args_list[i] = self._fill(i, args_list[i])
        return self.forward_func(*args_list, **kwargs)

    def _fill(self, i: int, batch: Tensor) -> Tensor:
        plan = self.plan
        original = plan.inputs[i]
        n, rows = original.shape[0], batch.shape[0]
        if rows % n or batch.shape[1:] != original.shape[1:]:
            raise RuntimeError(
                _LAYOUT_ERROR.format(shape=tuple(batch.shape), orig=tuple(original.shape))
            )
        reps = rows // n
        if i not in self.layout_checked:  # once per call: the layout is Captum's code
            removed = batch == plan.sentinel
            expected = _tile_rows(original, reps)
            if not torch.equal(batch.masked_fill(removed, 0), expected.masked_fill(removed, 0)):
                raise RuntimeError(
                    _LAYOUT_ERROR.format(shape=tuple(batch.shape), orig=tuple(original.shape))
                )
            if not bool(removed.all()):  # an all-removed batch proves nothing about the layout
                self.layout_checked.add(i)
        return _fill_rows(plan, i, batch, plan.contexts[i], reps, plan.target)


_LAYOUT_ERROR = (
    "captum_cf: Captum evaluated a perturbed batch of shape {shape} that is not a stack of copies "
    "of the inputs {orig}; this Captum version batches perturbations differently, so the Baseline "
    "cannot be applied. Please report it."
)


def _with_filling_forward(method: Any, plan: _Plan) -> Any:
    """A shallow copy of ``method`` whose forward function fills the sentinel entries."""
    clone = copy.copy(method)
    clone.forward_func = _FillingForward(method.forward_func, plan)
    return clone


class _LimeFiller:
    """``perturb_func`` / ``from_interp_rep_transform`` pair that fills a chunk at a time.

    Captum's LIME loop draws one interpretable sample, turns it into a model input, weighs it
    with ``similarity_func(original, model_input, sample)`` and evaluates the model on chunks of
    ``perturbations_per_eval`` model inputs. :meth:`perturb` draws a whole chunk ahead with the
    user's sampler (random numbers consumed in the same order as Captum, since neither the
    transform nor the default similarity functions draw any), builds the sentinel model inputs
    with the user's transform, fills them in one call per Baseline input, and yields the samples;
    :meth:`transform` returns the filled model input of each sample, so the similarity weights
    and the model both see the filled sample.
    """

    def __init__(
        self, method: Any, plan: _Plan, n_samples: int, perturbations_per_eval: int
    ) -> None:
        self.user_perturb = method.perturb_func
        self.user_transform = method.from_interp_rep_transform
        self.plan = plan
        self.n_samples = int(n_samples)
        self.chunk = max(1, int(perturbations_per_eval))
        self.pending: deque[tuple[Any, Any]] = deque()
        self.examples_seen = 0

    def perturb(self, original_inp: Any, **kwargs: Any) -> Iterator[Any]:
        draw = self._sampler(original_inp, kwargs)
        target = self._target_for(original_inp)
        remaining = self.n_samples
        while remaining > 0:
            samples = []
            for _ in range(min(self.chunk, remaining)):
                try:
                    samples.append(draw())
                except StopIteration:
                    break
            if not samples:
                return
            models = [self.user_transform(s, original_inp, **kwargs) for s in samples]
            for pair in zip(samples, self._fill_chunk(original_inp, models, target)):
                self.pending.append(pair)
                yield pair[0]
            remaining -= len(samples)

    def transform(self, curr_sample: Any, original_inputs: Any, **kwargs: Any) -> Any:
        sample, filled = self.pending.popleft()
        if sample is not curr_sample:
            raise RuntimeError(
                "captum_cf: Captum's LIME loop asked for samples out of order; please report it"
            )
        return filled

    def _sampler(self, original_inp: Any, kwargs: dict[str, Any]) -> Callable[[], Any]:
        if inspect.isgeneratorfunction(self.user_perturb):
            generator = self.user_perturb(original_inp, **kwargs)
            return lambda: next(generator)
        return lambda: self.user_perturb(original_inp, **kwargs)

    def _target_for(self, original_inp: Any) -> Tensor | None:
        """Class of each row of ``original_inp``: Captum runs one example at a time when N > 1."""
        first = original_inp if isinstance(original_inp, Tensor) else original_inp[0]
        target, n = self.plan.target, self.plan.inputs[0].shape[0]
        self.examples_seen += 1
        if target is None or first.shape[0] == n:
            return target
        return target[self.examples_seen - 1 : self.examples_seen]

    def _fill_chunk(self, original_inp: Any, models: list[Any], target: Tensor | None) -> list[Any]:
        is_tuple = isinstance(original_inp, tuple)
        originals = original_inp if is_tuple else (original_inp,)
        columns = [list(m) if is_tuple else [m] for m in models]
        k = len(models)
        for i in self.plan.fills:
            rows = originals[i].shape[0]
            batch = torch.cat([c[i] for c in columns], dim=0)
            base = _context(self.plan.fills[i], originals[i])
            one = rows == 1 and self.plan.inputs[i].shape[0] > 1
            row = self.examples_seen - 1 if one else None
            filled = _fill_rows(self.plan, i, batch, base, k, target, row)
            for j, c in enumerate(columns):
                c[i] = filled[j * rows : (j + 1) * rows]
        return [tuple(c) if is_tuple else c[0] for c in columns]


def _with_lime_filler(method: Any, plan: _Plan, n_samples: int, perturbations_per_eval: int) -> Any:
    """A shallow copy of a Lime/KernelShap object whose sampler and transform fill by chunks."""
    filler = _LimeFiller(method, plan, n_samples, perturbations_per_eval)
    clone = copy.copy(method)

    def perturb_func(original_inp: Any, **kwargs: Any) -> Iterator[Any]:
        yield from filler.perturb(original_inp, **kwargs)

    clone.perturb_func = perturb_func
    clone.from_interp_rep_transform = filler.transform
    return clone
