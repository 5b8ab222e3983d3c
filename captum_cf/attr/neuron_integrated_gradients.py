"""``NeuronIntegratedGradients`` whose ``baselines`` also accept a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["NeuronIntegratedGradients"]


class NeuronIntegratedGradients(captum.attr.NeuronIntegratedGradients):
    r"""Captum's Neuron Integrated Gradients: IG of one neuron's activation, from a Baseline.

    Integrated Gradients (Sundararajan et al., 2017) of the activation :math:`y_k` of the neuron
    of ``layer`` picked by ``neuron_selector``, with respect to the input:

    .. math::
        \mathrm{NIG}_i(x) = (x_i - x'_i) \int_0^1
            \frac{\partial y_k(x' + \alpha (x - x'))}{\partial x_i} \, d\alpha,
        \qquad \sum_i \mathrm{NIG}_i(x) = y_k(x) - y_k(x').

    ``baselines`` may also be a :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs)`` (the method has no ``target``, so a Baseline that depends
    on the class is refused with a ValueError: pass its reference tensor), or a tuple mixing
    Baselines with tensors. Otherwise everything is :class:`captum.attr.NeuronIntegratedGradients`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> hidden = torch.nn.Linear(2 * 25, 8)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), hidden, torch.nn.Softplus())
        >>> x = torch.rand(4, 2, 5, 5)
        >>> NeuronIntegratedGradients(model, hidden).attribute(x, 7, BlurBaseline(1.0)).shape
        torch.Size([4, 2, 5, 5])
    """

    attribute = baseline_attribute(captum.attr.NeuronIntegratedGradients)
