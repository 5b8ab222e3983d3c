"""``DeepLift`` and ``DeepLiftShap`` whose ``baselines`` also accept a counterfactual Baseline."""

from __future__ import annotations

import os
import typing
import warnings
from collections.abc import Callable
from typing import Any, Literal

import captum.attr
import torch
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage
from torch import Tensor

from captum_cf._validation import check_attribute_arguments
from captum_cf.attr._baselines import (
    check_per_example,
    explain_in_chunks,
    has_baseline,
    resolve_baselines,
)
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._untangle import SUPPORTED_NON_LINEAR, untangled

__all__ = ["DeepLift", "DeepLiftShap"]


class DeepLift(captum.attr.DeepLift):
    r"""Captum's DeepLIFT (Shrikumar, Greenside & Kundaje, ICML 2017) with counterfactual baselines.

    DeepLIFT propagates differences from a reference :math:`x'` instead of gradients: every
    non-linearity :math:`y = f(z)` gets the multiplier :math:`m = (f(z) - f(z')) / (z - z')` (the
    Rescale rule), and the attributions are

    .. math::
        \phi_i(x) = (x_i - x'_i)\, m_{x_i \to F}, \qquad \sum_i \phi_i(x) = F(x) - F(x')
        \text{ (summation to delta)}.

    Captum has the rule for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, Softmax and MaxPool
    modules; other non-linear layers (GELU, SiLU, Hardswish, LayerNorm, GroupNorm, attention:
    :data:`UNRULED_LAYERS`) pass plain gradients and the sum no longer holds: a call on a model
    with such modules warns (functional calls such as ``F.gelu`` cannot be seen).

    Same constructor and ``attribute(...)`` as :class:`captum.attr.DeepLift`; ``baselines`` also
    accepts a :class:`~captum_cf.baselines.Baseline` (resolved once per call as
    ``x' = baseline.reference(inputs, target)``, one reference per example) or a tuple whose
    entries may be Baselines. With None, scalars or tensors the call goes to Captum untouched and
    returns exactly Captum's result.

    With ``untangle=True`` (keyword only; the audit sets it) it also explains models that call
    one non-linearity module several times per forward pass (torchvision's ResNets reuse each
    block's ``ReLU(inplace=True)``), where Captum fails with "A Module ReLU(inplace=True) ... used
    more than once": one forward pass of one example finds such modules, and the call runs on a
    twin of the model that shares its parameters and buffers but has a separate non-inplace copy
    of the module per call site (the model itself is not modified). Models without reuse go to
    Captum as they are. The default (False) keeps Captum's behaviour, error included, so that
    Captum's own tests hold unchanged.

    It also leaves the model and the inputs clean after an exception:
    Captum sets ``requires_grad`` on the inputs and stores ``input``/``output`` on hooked
    non-linearities, and undoes both only when the call succeeds.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.ReLU())
        >>> x = torch.rand(2, 1, 8, 8)
        >>> DeepLift(model).attribute(x, baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        multiply_by_inputs: bool = True,
        eps: float = 1e-10,
        *,
        untangle: bool = False,
    ) -> None:
        super().__init__(model, multiply_by_inputs=multiply_by_inputs, eps=eps)
        self.untangle = _check_untangle(untangle)

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        *,
        return_convergence_delta: Literal[True],
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        return_convergence_delta: Literal[False] = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        """Captum's ``DeepLift.attribute``; ``baselines`` may also hold Baselines.

        Args:
            inputs (Tensor or tuple of Tensors): as in Captum, each (N, ...); an input with a
                Baseline must suit it (images for image baselines, [0, 1] in pixel space).
            baselines: None, a number, a Tensor, a ``Baseline``, or a tuple of these (one per
                input).
            target, additional_forward_args, return_convergence_delta, custom_attribution_func:
                exactly as in :meth:`captum.attr.DeepLift.attribute`.

        Returns:
            Attributions shaped like ``inputs`` (and the delta, shape (N,), when asked), as Captum.
        """
        check_attribute_arguments(inputs, target, baselines)
        warn_unruled_layers(self.model, "DeepLift")
        with guarded(self.model, inputs, baselines):
            runner = _runner(self, inputs, additional_forward_args)
            with checking_target(runner, target, "model") as dl:
                baselines = resolve_baselines(baselines, inputs, target, native=True)
                return captum.attr.DeepLift.attribute.__wrapped__(  # type: ignore[attr-defined]
                    dl,
                    inputs,
                    baselines=baselines,
                    target=target,
                    additional_forward_args=additional_forward_args,
                    return_convergence_delta=return_convergence_delta,
                    custom_attribution_func=custom_attribution_func,
                )


class DeepLiftShap(captum.attr.DeepLiftShap):
    r"""Captum's DeepLiftShap (Lundberg & Lee, NeurIPS 2017) with per-example Baselines.

    Captum's DeepLiftShap takes a *distribution* of references :math:`\{x'^{(b)}\}_{b=1}^{B}`
    shared by every input and averages DeepLIFT over it:
    :math:`\phi(x) = \frac{1}{B} \sum_b \mathrm{DeepLift}(x; x'^{(b)})`. A counterfactual
    :class:`~captum_cf.baselines.Baseline` instead gives each example its *own* reference
    :math:`x'_n = \text{baseline.reference}(x, \text{target})_n`, so with a Baseline

    .. math::
        \phi(x_n) = \mathrm{DeepLift}(x_n; x'_n),

    the expectation over a distribution of one reference per example: exactly
    :class:`DeepLift` with those per-example references (same numbers, same delta of shape (N,)).
    The Baseline is called once per call; a stochastic baseline is therefore one draw (average
    several calls, or pass a tensor distribution, to integrate over draws). In a tuple holding a
    Baseline, the other entries must then be per-example too: scalars or tensors with 1 or N rows.

    With a tensor distribution, a callable, or scalars, the call goes to Captum untouched and
    returns exactly Captum's result (Captum requires more than one reference there). With
    ``untangle=True``, models that reuse a non-linearity module are explained on an untangled
    twin, as in :class:`DeepLift`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.ReLU())
        >>> x = torch.rand(2, 1, 8, 8)
        >>> DeepLiftShap(model).attribute(x, baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    def __init__(
        self, model: torch.nn.Module, multiply_by_inputs: bool = True, *, untangle: bool = False
    ) -> None:
        super().__init__(model, multiply_by_inputs=multiply_by_inputs)
        self.untangle = _check_untangle(untangle)

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        *,
        return_convergence_delta: Literal[True],
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        return_convergence_delta: Literal[False] = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        target: TargetType = None,
        additional_forward_args: tuple[object, ...] | None = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        """Captum's ``DeepLiftShap.attribute``; ``baselines`` may also hold Baselines.

        Args:
            inputs (Tensor or tuple of Tensors): as in Captum, each (N, ...); an input with a
                Baseline must suit it (images for image baselines, [0, 1] in pixel space).
            baselines: a tensor distribution (B > 1 rows) or a callable returning one, as in
                Captum; or a ``Baseline`` (one reference per example), or a tuple of these.
            target, additional_forward_args, return_convergence_delta, custom_attribution_func:
                exactly as in :meth:`captum.attr.DeepLiftShap.attribute`.

        Returns:
            Attributions shaped like ``inputs`` (and the delta when asked), as Captum returns them.
        """
        kwargs = dict(
            target=target,
            additional_forward_args=additional_forward_args,
            return_convergence_delta=return_convergence_delta,
            custom_attribution_func=custom_attribution_func,
        )
        check_attribute_arguments(inputs, target, None if callable(baselines) else baselines,
                                  distribution=True)
        warn_unruled_layers(self.model, "DeepLiftShap")
        with guarded(self.model, inputs, baselines):
            runner = _runner(self, inputs, additional_forward_args)
            with checking_target(runner, target, "model") as dls:
                resolved = resolve_baselines(
                    baselines, inputs, target, allow_callable=True, native=False
                )
                shap = captum.attr.DeepLiftShap.attribute.__wrapped__  # type: ignore[attr-defined]
                if not has_baseline(baselines):
                    return shap(dls, inputs, baselines, **kwargs)
                check_per_example(resolved, inputs)
                # Per-example references: the distribution has one member, DeepLIFT itself.
                lift = captum.attr.DeepLift.attribute.__wrapped__  # type: ignore[attr-defined]
                return lift(dls, inputs, resolved, **kwargs)


def _runner(
    explainer: captum.attr.DeepLift, inputs: Any, additional_forward_args: Any
) -> captum.attr.DeepLift:
    """``explainer`` itself, or, when its model calls a non-linearity module more than once per
    forward pass (Captum fails there), the same Captum class on an untangled twin of the model."""
    if not getattr(explainer, "untangle", False):
        return explainer
    twin = untangled(explainer.model, inputs, additional_forward_args)
    if twin is None:
        return explainer
    cls = captum.attr.DeepLiftShap if isinstance(explainer, DeepLiftShap) else captum.attr.DeepLift
    runner = cls(twin, multiply_by_inputs=explainer.multiplies_by_inputs)
    runner.eps = explainer.eps
    return runner


def _check_untangle(untangle: Any) -> bool:
    if not isinstance(untangle, bool):
        raise TypeError(f"untangle must be a bool, got {type(untangle).__name__}")
    return untangle


#: non-linear layers outside Captum's DeepLIFT rules (``SUPPORTED_NON_LINEAR``: ReLU, ELU,
#: LeakyReLU, Sigmoid, Tanh, Softplus, Softmax, MaxPool): their plain gradient is used, so the
#: attributions no longer sum to F(x) - F(x') (measured: GELU, SiLU or Hardswish after a linear
#: layer 0.03-0.07 off a gap of 0.4; LayerNorm or GroupNorm 1.5 off 1.7; a small ViT 13.7)
def _unruled_kinds() -> tuple[type, ...]:
    nn = torch.nn
    # every activation of torch.nn (ReLU6, GELU, SiLU, Softshrink, Threshold, attention, ...)
    # but those Captum has a rule for, and the non-linear norms and poolings
    kinds = [c for c in vars(nn.modules.activation).values()
             if isinstance(c, type) and issubclass(c, nn.Module) and c not in SUPPORTED_NON_LINEAR
             and c.__module__ == nn.modules.activation.__name__]  # (not its imported Linear)
    kinds += [getattr(nn, n) for n in (
        "LayerNorm", "GroupNorm", "RMSNorm", "InstanceNorm1d", "InstanceNorm2d",
        "InstanceNorm3d", "LocalResponseNorm", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d",
        "FractionalMaxPool3d", "Softmax2d") if hasattr(nn, n)]
    return tuple(dict.fromkeys(kinds))


UNRULED_LAYERS = _unruled_kinds()


#: the warning's start, for the audit's advisories (it says it once per audit instead)
UNRULED_WARNING = "DeepLIFT has no rule for the model's"


def unruled_layers(model: Any) -> list[str]:
    """The kinds of layers in ``model`` (an ``nn.Module``) without a DeepLIFT rule in Captum,
    sorted: :data:`UNRULED_LAYERS`, and subclasses of the supported ones (Captum's rule goes
    by the exact class: a ``class MyReLU(nn.ReLU)`` gets plain gradients)."""
    if not isinstance(model, torch.nn.Module):
        return []
    supported = tuple(SUPPORTED_NON_LINEAR)
    return sorted({type(m).__name__ for m in model.modules()
                   if isinstance(m, UNRULED_LAYERS)
                   or (isinstance(m, supported) and type(m) not in SUPPORTED_NON_LINEAR)})


def unruled_message(model: Any, method: str) -> str | None:
    """What :func:`warn_unruled_layers` says about ``model``, or None when nothing."""
    names = unruled_layers(model)
    if not names:
        return None
    return (f"{UNRULED_WARNING} {', '.join(names)} layers (Captum's rules cover ReLU, ELU, "
            "LeakyReLU, Sigmoid, Tanh, Softplus, Softmax and MaxPool): they pass plain "
            f"gradients, so {method}'s attributions do not sum to F(x) - F(x') "
            "(return_convergence_delta=True shows by how much)")


def warn_unruled_layers(model: Any, method: str, stacklevel: int = 3) -> None:
    """Warn that ``model`` has layers DeepLIFT's rules do not cover (functional calls in a
    ``forward``, such as ``F.gelu``, cannot be seen)."""
    message = unruled_message(model, method)
    if message:
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


def _explainer(ctx: Any) -> Any:
    """Audit factory: ``explain(inputs, target, baseline) -> (N, C, H, W)`` DeepLift maps.

    Captum's DeepLift sends the inputs and their references through the model in one pass with
    gradients, and its hooks keep every non-linearity's input and output: measured with
    torchvision's resnet18 at 224 px, about 80 MB per input against 13-16 MB per image of a path
    method's pass. So that a call holds about what a path method's internal batch
    (``ctx.extras["internal_batch_size"]``, default 256; the audit sizes it by memory) holds, a
    call of more than a sixth of it is split into chunks of that many inputs, the references
    drawn once for the whole call (:func:`~captum_cf.attr._baselines.explain_in_chunks`).
    """
    dl = DeepLift(ctx.model, untangle=True)  # torchvision's ResNets reuse their ReLUs
    message = unruled_message(ctx.model, "DeepLift")
    if message and os.environ.get("RANK", "0") == "0":  # once per audit (rank 0 under torchrun;
        # the cells' own calls are silenced: _ADVISORIES)
        warnings.warn(f"audit: deeplift: {message}", UserWarning, stacklevel=2)
    per_pass = max(1, int(ctx.extras.get("internal_batch_size", 256)) // 6)

    def attribute(x: Tensor, baselines: Any, target: Any) -> Tensor:
        return dl.attribute(x, baselines=baselines, target=target)

    def explain(inputs: Tensor, target: Any, baseline: Any) -> Tensor:
        return explain_in_chunks(attribute, inputs, target, baseline, per_pass)

    return explain
