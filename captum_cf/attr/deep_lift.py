"""``DeepLift`` and ``DeepLiftShap`` whose ``baselines`` also accept a counterfactual Baseline."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Literal

import captum.attr
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage
from torch import Tensor

from captum_cf.attr._baselines import check_per_example, has_baseline, resolve_baselines
from captum_cf.attr._guard import guarded

__all__ = ["DeepLift", "DeepLiftShap"]


class DeepLift(captum.attr.DeepLift):
    r"""Captum's DeepLIFT (Shrikumar, Greenside & Kundaje, ICML 2017) with counterfactual baselines.

    DeepLIFT propagates differences from a reference :math:`x'` instead of gradients: every
    non-linearity :math:`y = f(z)` gets the multiplier :math:`m = (f(z) - f(z')) / (z - z')` (the
    Rescale rule), and the attributions are

    .. math::
        \phi_i(x) = (x_i - x'_i)\, m_{x_i \to F}, \qquad \sum_i \phi_i(x) = F(x) - F(x')
        \text{ (summation to delta)}.

    Same constructor and ``attribute(...)`` as :class:`captum.attr.DeepLift`; ``baselines`` also
    accepts a :class:`~captum_cf.baselines.Baseline` (resolved once per call as
    ``x' = baseline.reference(inputs, target)``, one reference per example) or a tuple whose
    entries may be Baselines. With None, scalars or tensors the call goes to Captum untouched and
    returns exactly Captum's result.

    Unlike Captum's class, it also leaves the model and the inputs clean after an exception:
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
            inputs (Tensor or tuple of Tensors): as in Captum; images (N, C, H, W) in [0, 1] where a
                Baseline is given.
            baselines: None, a number, a Tensor, a ``Baseline``, or a tuple of these (one per
                input).
            target, additional_forward_args, return_convergence_delta, custom_attribution_func:
                exactly as in :meth:`captum.attr.DeepLift.attribute`.

        Returns:
            Attributions shaped like ``inputs`` (and the delta, shape (N,), when asked), as Captum.
        """
        with guarded(self.model, inputs, target):
            baselines = resolve_baselines(baselines, inputs, target)
            return super().attribute.__wrapped__(  # type: ignore[attr-defined]
                self,
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
    returns exactly Captum's result (Captum requires more than one reference there).

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.ReLU())
        >>> x = torch.rand(2, 1, 8, 8)
        >>> DeepLiftShap(model).attribute(x, baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 1, 8, 8])
    """

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
            inputs (Tensor or tuple of Tensors): as in Captum; images (N, C, H, W) in [0, 1] where a
                Baseline is given.
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
        with guarded(self.model, inputs, target):
            resolved = resolve_baselines(baselines, inputs, target, allow_callable=True)
            if not has_baseline(baselines):
                return super().attribute.__wrapped__(self, inputs, baselines, **kwargs)  # type: ignore[attr-defined]
            check_per_example(resolved, inputs)
            # Per-example references: the distribution has one member, DeepLIFT itself.
            return captum.attr.DeepLift.attribute.__wrapped__(self, inputs, resolved, **kwargs)  # type: ignore[attr-defined]


def _explainer(ctx: Any) -> Any:
    """Audit factory: ``explain(inputs, target, baseline) -> (N, C, H, W)`` DeepLift maps."""
    dl = DeepLift(ctx.model)

    def explain(inputs: Tensor, target: Any, baseline: Any) -> Tensor:
        return dl.attribute(inputs, baselines=baseline, target=target)

    return explain
