"""``InternalInfluence`` whose input-space ``baselines`` also accept a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["InternalInfluence"]


class InternalInfluence(captum.attr.InternalInfluence):
    r"""Captum's Internal Influence (Leino et al., 2018) along a path from a counterfactual.

    The gradient of the target output with respect to the activations :math:`y = g(x)` of
    ``layer``, averaged along the input path from the reference :math:`x'` to :math:`x`:

    .. math::
        \mathrm{II}_j(x) = \int_0^1 \frac{\partial F}{\partial y_j}\Big|_{x' + \alpha (x - x')}
            \, d\alpha.

    Unlike conductance it is not multiplied by a difference, so it does not sum to
    :math:`F(x) - F(x')`; the reference still chooses the path. ``baselines`` may also be a
    :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs, target)``, or a tuple mixing Baselines with numbers and
    tensors. Otherwise everything is Captum's :class:`captum.attr.InternalInfluence`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.Tanh(), torch.nn.Linear(5, 2))
        >>> ii = InternalInfluence(model, model[1])
        >>> ii.attribute(torch.rand(3, 1, 4, 4), baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([3, 5])
    """

    attribute = baseline_attribute(captum.attr.InternalInfluence)
