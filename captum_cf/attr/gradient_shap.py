"""``GradientShap`` whose ``baselines`` also accept a per-example counterfactual ``Baseline``."""

from __future__ import annotations

import typing
from typing import Any, Literal

import captum.attr
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._core.gradient_shap import InputBaselineXGradient
from captum.log import log_usage
from torch import Tensor

from captum_cf._validation import check_attribute_arguments, noise_dtype_errors
from captum_cf.attr._baselines import check_per_example, has_baseline, resolve_baselines
from captum_cf.attr._guard import checking_target, guarded

__all__ = ["GradientShap"]


class GradientShap(captum.attr.GradientShap):
    r"""Captum's GradientSHAP (Lundberg & Lee, NeurIPS 2017) with per-example Baselines.

    Captum's GradientShap estimates expected gradients: for each of ``n_samples`` draws it picks a
    reference :math:`x'` at random from a *distribution* shared by all inputs, adds Gaussian noise
    :math:`\epsilon \sim \mathcal{N}(0, \text{stdevs}^2)` to the input, picks
    :math:`\alpha \sim U(0, 1)`, and averages

    .. math::
        \phi(x) = \mathbb{E}_{x', \epsilon, \alpha}\big[(x + \epsilon - x') \cdot
            \nabla F(x' + \alpha (x + \epsilon - x'))\big].

    A counterfactual :class:`~captum_cf.baselines.Baseline` gives each example its *own* reference
    :math:`x'_n = \text{baseline.reference}(x, \text{target})_n` (computed once per call from the
    clean inputs), so with a Baseline the expectation runs over :math:`\epsilon` and :math:`\alpha`
    only, on the path between each noisy example and its own reference: Captum's GradientShap
    machinery (its noise tunnel over ``InputBaselineXGradient``) with the references paired to
    the examples instead of drawn, batched over all examples and samples. In a tuple holding a
    Baseline, the other entries must be per-example too: scalars or tensors with 1 or N rows.
    With a single example (N = 1) this is exactly Captum's result for the reference tensor.

    With a tensor distribution, a callable, or scalars, the call goes to Captum untouched and
    returns exactly Captum's result. Randomness comes from NumPy's and torch's global generators,
    as in Captum.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> GradientShap(model).attribute(x, baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: object | None = None,
        *,
        return_convergence_delta: Literal[True],
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @typing.overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: object | None = None,
        return_convergence_delta: Literal[False] = False,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: object | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        """Captum's ``GradientShap.attribute``; ``baselines`` may also hold Baselines.

        Args:
            inputs (Tensor or tuple of Tensors): as in Captum, each (N, ...); an input with a
                Baseline must suit it (images for image baselines, [0, 1] in pixel space).
            baselines: a tensor distribution or a callable returning one, as in Captum; or a
                ``Baseline`` (one reference per example), or a tuple of these.
            n_samples, stdevs, target, additional_forward_args, return_convergence_delta: exactly
                as in :meth:`captum.attr.GradientShap.attribute`.

        Returns:
            Attributions shaped like ``inputs`` (and the delta, shape (N * n_samples,), when
            asked), as Captum returns them.
        """
        kwargs = dict(
            target=target,
            additional_forward_args=additional_forward_args,
            return_convergence_delta=return_convergence_delta,
        )
        check_attribute_arguments(
            inputs,
            target,
            None if callable(baselines) else baselines,
            counts={"n_samples": n_samples},
            stdevs=stdevs,
            distribution=True,
        )
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as gs, \
                noise_dtype_errors(self.forward_func, "GradientShap"):
            resolved = resolve_baselines(
                baselines, inputs, target, allow_callable=True, native=False
            )
            if not has_baseline(baselines):
                return captum.attr.GradientShap.attribute.__wrapped__(
                    gs, inputs, baselines, n_samples, stdevs, **kwargs
                )
            check_per_example(resolved, inputs)
            return _paired_gradient_shap(gs, inputs, resolved, n_samples, stdevs, kwargs)


def _paired_gradient_shap(
    gs: GradientShap, inputs: Any, references: Any, n_samples: int, stdevs: Any, kwargs: dict
) -> Any:
    """Captum's GradientShap computation with reference n paired to example n (not drawn)."""
    ixg = InputBaselineXGradient(gs.forward_func, gs.multiplies_by_inputs)
    ixg.gradient_func = gs.gradient_func
    return _paired_noise_tunnel(ixg, inputs, references, n_samples, stdevs, kwargs)


def _paired_noise_tunnel(
    ixg: Any, inputs: Any, references: Any, n_samples: int, stdevs: Any, kwargs: dict
) -> Any:
    """GradientShap's noise tunnel over ``ixg`` ((layer) input-minus-baseline x gradient), with
    reference n paired to example n; shared by GradientShap and LayerGradientShap."""
    nt = captum.attr.NoiseTunnel(ixg)
    # draw_baseline_from_distrib=False: the noise tunnel repeats reference n for the samples of
    # example n (a single reference row broadcasts), exactly where Captum would draw at random.
    return nt.attribute.__wrapped__(  # type: ignore[attr-defined]
        nt,
        inputs,
        nt_type="smoothgrad",
        nt_samples=n_samples,
        stdevs=stdevs,
        draw_baseline_from_distrib=False,
        baselines=references,
        **kwargs,
    )
