"""``Lime`` (LIME / LIME-G) whose switched-off features may be filled by a ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage

from captum_cf._validation import as_int, check_attribute_arguments
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_lime_filler, scalar_target

__all__ = ["Lime"]


class Lime(captum.attr.Lime):
    r"""Captum's ``Lime`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    LIME (Ribeiro et al., KDD 2016) draws binary vectors ``z`` over the interpretable features
    (e.g. superpixels), evaluates the model on the input with the switched-off features removed,
    and fits a weighted sparse linear model ``g``:

    .. math::
        \min_g \sum_z \pi_x(z') \, (f_t(z') - g(z))^2 + \Omega(g), \qquad
        z' = \mathrm{fill}(x, k(z)),

    ``k(z)`` = 1 on the pixels of switched-on features, ``\pi_x`` the similarity kernel. Captum
    removes with a constant; with a ``Baseline``, ``z'`` is ``baseline.fill(x, k(z))``, e.g. the
    switched-off superpixels inpainted from the others (LIME-G of Agarwal & Nguyen, ACCV 2020),
    and the similarity kernel is evaluated on that filled ``z'``. The samples are drawn by this
    object's ``perturb_func`` in Captum's order, a chunk of ``perturbations_per_eval`` at a time,
    and each chunk is filled by one ``fill`` call; under a seed ``ConstantBaseline(c)`` gives
    exactly what ``baselines=c`` gives. (A custom ``similarity_func`` that draws random numbers
    would see them in a different order than in Captum.)

    A ``Baseline`` works on inputs of any shape (N, ...) (image baselines need (N, C, H, W));
    with numbers or Tensors the call is
    Captum's, exactly.

    Args:
        forward_func, interpretable_model, similarity_func, perturb_func: as in
            ``captum.attr.Lime``.

    Example:
        >>> import torch
        >>> from captum_cf.attr import superpixels
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
        >>> x = torch.rand(1, 3, 32, 32)
        >>> attr = Lime(model).attribute(x, target=0, feature_mask=superpixels(x, n_segments=16),
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
        r"""LIME attributions; ``baselines`` may be a ``Baseline`` (or a tuple containing some).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): as in Captum; each (N, ...); an input filled by
                a ``Baseline`` must suit it (images for image baselines, [0, 1] in pixel space).
            baselines (number, Tensor, Baseline or tuple of those): what replaces a
                switched-off feature; a ``Baseline`` fills it with ``baseline.fill(x, keep)``.
            target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
            return_input_shape, show_progress: as in ``captum.attr.Lime.attribute``.

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
        plan = _plan(inputs, baselines, target)
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as method:
            # without a Baseline to fill this is Captum's own call, untouched
            if plan is not None and plan.fills:
                method = _with_lime_filler(method, plan, n_samples, perturbations_per_eval)
            captum_baselines = baselines if plan is None else plan.captum_baselines
            return captum.attr.Lime.attribute.__wrapped__(
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
