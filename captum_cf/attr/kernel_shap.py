"""``KernelShap`` whose absent features may be filled by a ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage

from captum_cf._validation import ArgumentError, as_int, check_attribute_arguments
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_lime_filler, count_features, scalar_target

__all__ = ["KernelShap"]


class KernelShap(captum.attr.KernelShap):
    r"""Captum's ``KernelShap`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    Kernel SHAP (Lundberg & Lee, NeurIPS 2017) is LIME with the Shapley kernel: coalitions ``z``
    with ``k`` of ``M`` features present are drawn with probability
    ``p(k) \propto (M - 1) / (k (M - k))`` and a linear model is fitted by least squares to
    ``f_t(\mathrm{fill}(x, k(z)))``; its coefficients estimate the Shapley values.

    Captum makes absent features a constant; with a ``Baseline`` they are
    ``baseline.fill(x, k(z))``, e.g. inpainted from the present ones. Coalitions are drawn by
    Captum's own generator, a chunk of ``perturbations_per_eval`` at a time, and each chunk is
    filled by one ``fill`` call; under a seed ``ConstantBaseline(c)`` gives exactly what
    ``baselines=c`` gives. A ``Baseline`` works on inputs of
    any shape (N, ...) (image baselines need (N, C, H, W)).

    Args:
        forward_func (Callable): the model or any function returning its outputs.

    Example:
        >>> import torch
        >>> from captum_cf.attr import superpixels
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
        >>> x = torch.rand(1, 3, 32, 32)
        >>> attr = KernelShap(model).attribute(x, target=0, feature_mask=superpixels(x, 16),
        ...     baselines=BlurBaseline(3.0), n_samples=40, perturbations_per_eval=20)
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
        return_input_shape: bool = True,
        show_progress: bool = False,
    ) -> Any:
        r"""Kernel SHAP attributions; ``baselines`` may be a ``Baseline`` (or a tuple with some).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): as in Captum; each (N, ...); an input filled by
                a ``Baseline`` must suit it (images for image baselines, [0, 1] in pixel space).
            baselines (number, Tensor, Baseline or tuple of those): what stands for an absent
                feature; a ``Baseline`` fills it with ``baseline.fill(x, keep)``.
            target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
            return_input_shape, show_progress: as in ``captum.attr.KernelShap.attribute``.

        Returns:
            Tensor or tuple[Tensor, ...]: attributions shaped like ``inputs`` (or the
            interpretable coefficients when ``return_input_shape=False``).
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
        target = scalar_target(target)
        if count_features(feature_mask, inputs) < 2:
            raise ArgumentError(
                "feature_mask defines a single feature: Kernel SHAP's weights need at least 2 "
                "features (pass a mask with several ids, e.g. captum_cf.attr.superpixels)"
            )
        plan = _plan(inputs, baselines, target)
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as method:
            # without a Baseline to fill this is Captum's own call, untouched
            if plan is not None and plan.fills:
                method = _with_lime_filler(method, plan, n_samples, perturbations_per_eval)
            captum_baselines = baselines if plan is None else plan.captum_baselines
            return captum.attr.KernelShap.attribute.__wrapped__(
                method,
                inputs,
                captum_baselines,
                target,
                additional_forward_args,
                feature_mask,
                n_samples,
                perturbations_per_eval,
                return_input_shape,
                show_progress,
            )
