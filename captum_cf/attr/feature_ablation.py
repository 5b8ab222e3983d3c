"""``FeatureAblation`` whose ablated features (e.g. superpixels) may be filled by a ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage

from captum_cf._validation import as_int, check_attribute_arguments
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_filling_forward

__all__ = ["FeatureAblation"]


class FeatureAblation(captum.attr.FeatureAblation):
    r"""Captum's ``FeatureAblation`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    Each feature group ``g`` of ``feature_mask`` (pixels, or superpixels from
    :func:`captum_cf.attr.superpixels`) is scored by the drop of the target output when the group
    is removed:

    .. math::
        A_g = f_t(x) - f_t(\mathrm{fill}(x, 1 - m_g)),

    ``m_g`` = 1 on the group. Captum removes with a constant; with a ``Baseline`` the group is
    ``baseline.fill(x, keep=1 - m_g)``, e.g. inpainted from the rest of the image (the SP-G/LIME-G
    idea of Agarwal & Nguyen, ACCV 2020). One ``fill`` call per chunk of
    ``perturbations_per_eval`` groups.

    With a number or a Tensor as ``baselines`` the call is Captum's, exactly;
    ``ConstantBaseline(c)`` gives exactly what ``baselines=c`` gives. A ``Baseline`` works
    on inputs of any shape (N, ...) (image baselines need (N, C, H, W), pixel-space ones [0, 1]);
    under ``captum_cf.attr.NoiseTunnel`` a pixel-space fill sees the noisy copies clamped as
    context, and kept values stay exactly as given.

    Args:
        forward_func (Callable): the model or any function returning its outputs.

    Example:
        >>> import torch
        >>> from captum_cf.attr import superpixels
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
        >>> x = torch.rand(1, 3, 32, 32)
        >>> attr = FeatureAblation(model).attribute(
        ...     x, target=1, feature_mask=superpixels(x, n_segments=16),
        ...     baselines=BlurBaseline(sigma=3.0), perturbations_per_eval=8)
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
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Any:
        r"""Ablation attributions; ``baselines`` may be a ``Baseline`` (or a tuple containing some).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): as in Captum; each (N, ...); an input filled by
                a ``Baseline`` must suit it (images for image baselines, [0, 1] in pixel space).
            baselines (number, Tensor, Baseline or tuple of those): what replaces an ablated
                feature; a ``Baseline`` fills it with ``baseline.fill(x, keep)``.
            target, additional_forward_args, feature_mask, perturbations_per_eval,
            show_progress, **kwargs: as in ``captum.attr.FeatureAblation.attribute``.

        Returns:
            Tensor or tuple[Tensor, ...]: attributions shaped like ``inputs``.
        """
        check_attribute_arguments(
            inputs,
            target,
            baselines,
            feature_mask,
            counts={"perturbations_per_eval": perturbations_per_eval},
        )
        perturbations_per_eval = as_int(perturbations_per_eval)
        plan = _plan(inputs, baselines, target)
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as method:
            # without a Baseline to fill this is Captum's own call, untouched
            if plan is not None and plan.fills:
                method = _with_filling_forward(method, plan)
            captum_baselines = baselines if plan is None else plan.captum_baselines
            return captum.attr.FeatureAblation.attribute.__wrapped__(
                method,
                inputs,
                captum_baselines,
                target,
                additional_forward_args,
                feature_mask,
                perturbations_per_eval,
                show_progress,
                **kwargs,
            )
