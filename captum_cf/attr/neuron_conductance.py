"""``NeuronConductance`` whose ``baselines`` also accept a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["NeuronConductance"]


class NeuronConductance(captum.attr.NeuronConductance):
    r"""Captum's Neuron Conductance (Dhamdhere et al., ICLR 2019) along a counterfactual path.

    The share of input :math:`x_i` in the conductance of the hidden neuron :math:`y_k` picked by
    ``neuron_selector``, for the target output :math:`F`, along
    :math:`x(\alpha) = x' + \alpha (x - x')`:

    .. math::
        \mathrm{NC}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial F}{\partial y_k}
            \frac{\partial y_k}{\partial x_i}\Big|_{x(\alpha)} \, d\alpha.

    ``baselines`` (the input-space :math:`x'`) may also be a
    :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs, target)``, or a tuple mixing Baselines with numbers and
    tensors. With None, numbers or tensors the call is Captum's,
    :class:`captum.attr.NeuronConductance`, untouched.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> nc = NeuronConductance(model, model[2])
        >>> nc.attribute(torch.rand(3, 1, 4, 4), 1, ConstantBaseline(0.5), target=0).shape
        torch.Size([3, 1, 4, 4])
    """

    attribute = baseline_attribute(captum.attr.NeuronConductance)
