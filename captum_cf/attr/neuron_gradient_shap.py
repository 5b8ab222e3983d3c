"""``NeuronGradientShap`` whose ``baselines`` also accept a per-example ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum._utils.gradient import construct_neuron_grad_fn

from captum_cf.attr._resolving import baseline_attribute
from captum_cf.attr.gradient_shap import _paired_gradient_shap

__all__ = ["NeuronGradientShap"]


def _paired_neuron_gradient_shap(method: Any, arguments: dict[str, Any]) -> Any:
    """Captum's NeuronGradientShap (GradientShap on the neuron's gradient), references paired."""
    gs = captum.attr.GradientShap(method.forward_func, method.multiplies_by_inputs)
    gs.gradient_func = construct_neuron_grad_fn(
        method.layer,
        arguments["neuron_selector"],
        method.device_ids,
        attribute_to_neuron_input=arguments["attribute_to_neuron_input"],
    )
    kwargs = dict(additional_forward_args=arguments["additional_forward_args"])
    return _paired_gradient_shap(
        gs,
        arguments["inputs"],
        arguments["baselines"],
        arguments["n_samples"],
        arguments["stdevs"],
        kwargs,
    )


class NeuronGradientShap(captum.attr.NeuronGradientShap):
    r"""Captum's Neuron GradientSHAP with per-example counterfactual references.

    GradientSHAP (Lundberg & Lee, NeurIPS 2017) of the activation :math:`y_k` of the neuron of
    ``layer`` picked by ``neuron_selector``: the average over ``n_samples`` draws of noise
    :math:`\epsilon` and :math:`\alpha \sim U(0, 1)` of

    .. math::
        (x + \epsilon - x') \cdot \nabla_x y_k(x' + \alpha (x + \epsilon - x')).

    Captum draws :math:`x'` from a distribution shared by all examples; a
    :class:`~captum_cf.baselines.Baseline` gives example :math:`n` its own reference
    :math:`x'_n = \text{baseline.reference}(x)_n` (paired, as :class:`captum_cf.attr.GradientShap`
    does). With a single example this is Captum's result for the reference tensor. No ``target``:
    a Baseline that depends on the class is refused. With a tensor distribution or a callable the
    call is :class:`captum.attr.NeuronGradientShap`'s, untouched.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import NoiseBaseline
        >>> conv = torch.nn.Conv2d(1, 2, 3)
        >>> model = torch.nn.Sequential(conv, torch.nn.Tanh(), torch.nn.Flatten())
        >>> unit = (1, 2, 3)  # channel 1, row 2, column 3 of conv's output
        >>> NeuronGradientShap(model, conv).attribute(
        ...     torch.rand(3, 1, 8, 8), unit, NoiseBaseline(std=0.1), n_samples=4).shape
        torch.Size([3, 1, 8, 8])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    attribute = baseline_attribute(
        captum.attr.NeuronGradientShap, "paired", paired=_paired_neuron_gradient_shap
    )
