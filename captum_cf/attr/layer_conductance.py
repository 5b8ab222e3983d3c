"""``LayerConductance`` whose input-space ``baselines`` also accept a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["LayerConductance"]


class LayerConductance(captum.attr.LayerConductance):
    r"""Captum's Layer Conductance (Dhamdhere, Sundararajan & Yan, ICLR 2019) from a Baseline.

    Conductance of a hidden unit :math:`y_j = g_j(x)` of ``layer`` is the flow of Integrated
    Gradients through it, along the input path :math:`x(\alpha) = x' + \alpha (x - x')`:

    .. math::
        \mathrm{Cond}_j(x) = \int_0^1 \frac{\partial F(x(\alpha))}{\partial y_j}
            \frac{\partial y_j(x(\alpha))}{\partial \alpha} \, d\alpha,
        \qquad \sum_j \mathrm{Cond}_j(x) = F(x) - F(x').

    ``baselines`` is the input-space reference :math:`x'`; it may also be a
    :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs, target)`` (one reference per example), or a tuple mixing
    Baselines with numbers and tensors (one entry per input). With None, numbers or tensors the
    call is Captum's, untouched. Same constructor and ``attribute(...)`` as
    :class:`captum.attr.LayerConductance`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> cond = LayerConductance(model, model[2])
        >>> cond.attribute(torch.rand(3, 1, 4, 4), baselines=ConstantBaseline(0.0), target=1).shape
        torch.Size([3, 5])
    """

    attribute = baseline_attribute(captum.attr.LayerConductance)
