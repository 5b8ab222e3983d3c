"""``NeuronFeatureAblation`` whose ablated features may be filled by a ``Baseline``."""

from __future__ import annotations

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["NeuronFeatureAblation"]


class NeuronFeatureAblation(captum.attr.NeuronFeatureAblation):
    r"""Captum's Neuron Feature Ablation whose removed features are filled by a ``Baseline``.

    Each feature group ``g`` of ``feature_mask`` is scored by the change of the activation
    :math:`y_k` of the neuron of ``layer`` picked by ``neuron_selector`` when the group is removed:

    .. math::
        A_g = y_k(x) - y_k(\mathrm{fill}(x, 1 - m_g)),

    ``m_g`` = 1 on the group. Captum removes with a constant; with a
    :class:`~captum_cf.baselines.Baseline` the group is ``baseline.fill(x, keep=1 - m_g)``,
    mask-conditional as in :class:`captum_cf.attr.FeatureAblation` (e.g. inpainted from the rest
    of the image), one ``fill`` call per chunk of ``perturbations_per_eval`` groups.
    ``ConstantBaseline(c)`` gives exactly what ``baselines=c`` gives. No ``target``: a Baseline
    that depends on the class is refused. With numbers or tensors the call is Captum's.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> mask = torch.arange(16).view(1, 1, 4, 4) // 4  # 4 rows
        >>> nfa = NeuronFeatureAblation(model, model[2])
        >>> nfa.attribute(torch.rand(2, 3, 4, 4), 3, BlurBaseline(1.0), feature_mask=mask).shape
        torch.Size([2, 3, 4, 4])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class the Baseline itself, not its reference
    fills_baselines: bool = True

    attribute = baseline_attribute(captum.attr.NeuronFeatureAblation, "fill")
