"""``ShapleyValueSampling`` whose absent features may be filled by a ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage

from captum_cf._validation import as_int, check_attribute_arguments
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_filling_forward

__all__ = ["ShapleyValueSampling"]


class ShapleyValueSampling(captum.attr.ShapleyValueSampling):
    r"""Captum's ``ShapleyValueSampling`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    Shapley value sampling (Castro et al., 2009) averages, over ``n_samples`` random feature
    orders ``\pi``, the change of the target output when feature group ``g`` joins the groups
    before it:

    .. math::
        A_g = \frac{1}{n} \sum_{\pi} f_t(\mathrm{fill}(x, k_{\pi,<g} + m_g))
              - f_t(\mathrm{fill}(x, k_{\pi,<g})),

    where ``k_{\pi,<g}`` is 1 on the groups preceding ``g`` in ``\pi`` (all other groups are
    absent). Captum makes absent groups a constant; with a ``Baseline`` they are
    ``baseline.fill(x, keep)``, e.g. inpainted from the groups present. One ``fill`` call per
    chunk of ``perturbations_per_eval`` coalitions; the random orders are Captum's own, so under a
    seed ``ConstantBaseline(c)`` gives exactly what ``baselines=c`` gives.

    A ``Baseline`` works on inputs of any shape (N, ...) (image baselines need (N, C, H, W));
    with numbers or Tensors the call is
    Captum's, exactly.

    Args:
        forward_func (Callable): the model or any function returning its outputs.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x = torch.rand(1, 3, 8, 8)
        >>> mask = (torch.arange(64).view(1, 1, 8, 8) // 16)  # 4 horizontal bands
        >>> attr = ShapleyValueSampling(model).attribute(
        ...     x, target=2, feature_mask=mask, n_samples=5, baselines=BlurBaseline(2.0))
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class the Baseline itself, not its reference
    fills_baselines: bool = True

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> Any:
        r"""Shapley value estimates; ``baselines`` may be a ``Baseline`` (or a tuple with some).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): as in Captum; each (N, ...); an input filled by
                a ``Baseline`` must suit it (images for image baselines, [0, 1] in pixel space).
            baselines (number, Tensor, Baseline or tuple of those): what stands for an absent
                feature; a ``Baseline`` fills it with ``baseline.fill(x, keep)``.
            target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
            show_progress: as in ``captum.attr.ShapleyValueSampling.attribute``.

        Returns:
            Tensor or tuple[Tensor, ...]: attributions shaped like ``inputs``.
        """
        check_attribute_arguments(
            inputs,
            target,
            baselines,
            feature_mask,
            counts={"n_samples": n_samples, "perturbations_per_eval": perturbations_per_eval},
        )
        n_samples = as_int(n_samples)
        perturbations_per_eval = as_int(perturbations_per_eval)
        plan = _plan(inputs, baselines, target)
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as method:
            # without a Baseline to fill this is Captum's own call, untouched
            if plan is not None and plan.fills:
                method = _with_filling_forward(method, plan)
            captum_baselines = baselines if plan is None else plan.captum_baselines
            return captum.attr.ShapleyValueSampling.attribute.__wrapped__(
                method,
                inputs,
                captum_baselines,
                target,
                additional_forward_args,
                feature_mask,
                n_samples,
                perturbations_per_eval,
                show_progress,
            )
