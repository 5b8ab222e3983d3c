"""``LayerIntegratedGradients`` whose input-space ``baselines`` also accept a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["LayerIntegratedGradients"]


class LayerIntegratedGradients(captum.attr.LayerIntegratedGradients):
    r"""Captum's Layer Integrated Gradients with counterfactual input references.

    Integrated Gradients (Sundararajan et al., 2017) of the target output with respect to the
    activations :math:`a = g(x)` of ``layer``, along the activations of the straight input path
    from the reference :math:`x'` to :math:`x` (Captum patches the layer's output):

    .. math::
        \mathrm{LIG}_j(x) = (a_j - a'_j) \int_0^1
            \frac{\partial F}{\partial a_j}\Big|_{g(x') + \alpha (g(x) - g(x'))} d\alpha,
        \qquad a' = g(x'), \qquad \sum_j \mathrm{LIG}_j(x) = F(x) - F(x').

    The reference lives in *input* space: ``baselines`` may be a
    :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs, target)`` (one reference per example), so the layer's
    attributions explain the difference between the input and its counterfactual. A tuple of
    inputs takes a tuple whose entries may be Baselines next to numbers and tensors. With None,
    numbers or tensors the call, its numbers and its exceptions are Captum's.

    Same constructor ``(forward_func, layer, device_ids=None, multiply_by_inputs=True)`` and
    ``attribute(...)`` parameters as :class:`captum.attr.LayerIntegratedGradients`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
        ...                             torch.nn.Linear(72, 3))
        >>> lig = LayerIntegratedGradients(model, model[0])
        >>> lig.attribute(torch.rand(2, 1, 8, 8), baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 2, 6, 6])
    """

    attribute = baseline_attribute(captum.attr.LayerIntegratedGradients)
