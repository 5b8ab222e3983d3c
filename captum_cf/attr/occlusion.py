"""``Occlusion`` (Sliding-Patch, SP / SP-G): occluded windows may be filled by a ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
import torch
from captum.log import log_usage

from captum_cf._validation import as_int, check_attribute_arguments
from captum_cf.attr._guard import checking_target, guarded
from captum_cf.attr._perturbation import _plan, _with_filling_forward

__all__ = ["Occlusion"]


class Occlusion(captum.attr.Occlusion):
    r"""Captum's ``Occlusion`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    Sliding-Patch occlusion (Zeiler & Fergus, 2014) slides a window ``w`` over the image and
    scores it by the drop of the target output when the window is removed; every pixel gets the
    mean score of the windows that cover it:

    .. math::
        A_p = \frac{1}{|W_p|} \sum_{w \in W_p} f_t(x) - f_t(\mathrm{fill}(x, 1 - m_w)),

    where ``m_w`` is 1 inside window ``w``. Captum fills with a constant (``x (1 - m_w) + b m_w``);
    with a ``Baseline`` the removed window is ``baseline.fill(x, keep=1 - m_w)``, e.g. inpainted
    from the context that remains (SP-G of Agarwal & Nguyen, "Explaining image classifiers by
    removing input features using generative models", ACCV 2020). Each chunk of
    ``perturbations_per_eval`` windows is filled by one ``fill`` call on the stacked chunk.

    With a number or a Tensor as ``baselines`` the call is Captum's, exactly;
    ``ConstantBaseline(c)`` gives exactly (bit for bit) what ``baselines=c`` gives. A
    ``Baseline`` works on inputs of any shape (N, ...) (image baselines need (N, C, H, W),
    pixel-space ones [0, 1]); under ``captum_cf.attr.NoiseTunnel`` a pixel-space fill sees the
    noisy copies clamped as context, and kept values stay exactly as given.

    Args:
        forward_func (Callable): the model or any function returning its outputs.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> x = torch.rand(2, 3, 16, 16)
        >>> attr = Occlusion(model).attribute(
        ...     x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), target=0,
        ...     baselines=BlurBaseline(sigma=2.0), perturbations_per_eval=16)
        >>> attr.shape
        torch.Size([2, 3, 16, 16])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class the Baseline itself, not its reference
    fills_baselines: bool = True

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        sliding_window_shapes: Any,
        strides: Any = None,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> Any:
        r"""Occlusion attributions; ``baselines`` may be a ``Baseline`` (or a tuple with some).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): as in Captum; each (N, ...); an input filled by
                a ``Baseline`` must suit it (images for image baselines, [0, 1] in pixel space).
            sliding_window_shapes, strides, target, additional_forward_args,
            perturbations_per_eval, show_progress: as in ``captum.attr.Occlusion.attribute``.
            baselines (number, Tensor, Baseline or tuple of those): what replaces an occluded
                window; a ``Baseline`` fills it with ``baseline.fill(x, keep)``.

        Returns:
            Tensor or tuple[Tensor, ...]: attributions shaped like ``inputs``.
        """
        check_attribute_arguments(
            inputs,
            target,
            baselines,
            counts={"perturbations_per_eval": perturbations_per_eval},
            sliding_window_shapes=sliding_window_shapes,
            strides=strides,
        )
        perturbations_per_eval = as_int(perturbations_per_eval)
        plan = _plan(inputs, baselines, target)
        with guarded(self.forward_func, inputs, baselines), checking_target(self, target) as method:
            # without a Baseline to fill this is Captum's own call, untouched
            if plan is not None and plan.fills:
                method = _with_filling_forward(method, plan)
            captum_baselines = baselines if plan is None else plan.captum_baselines
            return captum.attr.Occlusion.attribute.__wrapped__(
                method,
                inputs,
                sliding_window_shapes,
                strides,
                captum_baselines,
                target,
                additional_forward_args,
                perturbations_per_eval,
                show_progress,
            )

    def _construct_ablated_input_across_tensors(
        self, inputs: Any, *args: Any, **kwargs: Any
    ) -> Any:
        # Captum >= 0.8 (checked: 0.9.0) builds the masks of the windows that lie in another
        # input with ``torch.zeros(...)`` on the CPU and stacks them with the input's masks: on
        # a GPU, a tuple of inputs fails with "Expected all tensors to be on the same device"
        # (found by tests/simulated_device.py). Factory calls of this one step default to the
        # inputs' device; the user's model never runs inside it.
        with torch.device(inputs[0].device):
            return super()._construct_ablated_input_across_tensors(  # type: ignore[misc]
                inputs, *args, **kwargs)
