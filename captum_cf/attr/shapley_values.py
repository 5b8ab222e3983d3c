"""``ShapleyValues`` (exact, every feature order) whose absent features a ``Baseline`` fills."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["ShapleyValues"]


class ShapleyValues(captum.attr.ShapleyValues):
    r"""Captum's exact ``ShapleyValues`` whose ``baselines`` also accept a captum_cf ``Baseline``.

    The Shapley value (Shapley, 1953) of feature group ``g`` among the ``G`` groups of
    ``feature_mask``, over *all* :math:`G!` orders :math:`\pi` (use
    :class:`captum_cf.attr.ShapleyValueSampling` beyond about 8 groups):

    .. math::
        A_g = \frac{1}{G!} \sum_{\pi} f_t(\mathrm{fill}(x, k_{\pi,<g} + m_g))
              - f_t(\mathrm{fill}(x, k_{\pi,<g})),

    ``k_{\pi,<g}`` being 1 on the groups before ``g`` in :math:`\pi`. Captum makes absent groups
    a constant; with a :class:`~captum_cf.baselines.Baseline` they are
    ``baseline.fill(x, keep)``, conditioned on the groups present (e.g. inpainted), one ``fill``
    call per chunk of ``perturbations_per_eval`` coalitions. ``ConstantBaseline(c)`` gives exactly
    what ``baselines=c`` gives; with numbers or tensors the call is Captum's.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x = torch.rand(1, 3, 8, 8)
        >>> mask = torch.arange(64).view(1, 1, 8, 8) // 16  # 4 horizontal bands
        >>> ShapleyValues(model).attribute(x, BlurBaseline(2.0), target=2, feature_mask=mask).shape
        torch.Size([1, 3, 8, 8])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class the Baseline itself, not its reference
    fills_baselines: bool = True

    attribute = baseline_attribute(captum.attr.ShapleyValues, "fill")
