"""``NeuronDeepLift`` and ``NeuronDeepLiftShap`` whose ``baselines`` also accept Baselines."""

from __future__ import annotations

from typing import Any

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["NeuronDeepLift", "NeuronDeepLiftShap"]


class NeuronDeepLift(captum.attr.NeuronDeepLift):
    r"""Captum's Neuron DeepLIFT: DeepLIFT of one hidden neuron, from a counterfactual reference.

    DeepLIFT (Shrikumar et al., ICML 2017) with the activation :math:`y_k` of the neuron of
    ``layer`` picked by ``neuron_selector`` as the output:

    .. math::
        \phi_i(x) = (x_i - x'_i)\, m_{x_i \to y_k}, \qquad \sum_i \phi_i(x) = y_k(x) - y_k(x').

    ``baselines`` may also be a :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs)`` (no ``target`` here: a Baseline that depends on the class
    is refused, pass its reference tensor), or a tuple mixing Baselines with numbers and tensors.
    Otherwise the call is :class:`captum.attr.NeuronDeepLift`'s.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> ndl = NeuronDeepLift(model, model[2])
        >>> ndl.attribute(torch.rand(3, 1, 4, 4), 0, baselines=ConstantBaseline(0.5)).shape
        torch.Size([3, 1, 4, 4])
    """

    attribute = baseline_attribute(captum.attr.NeuronDeepLift)


def _neuron_deep_lift(method: Any, arguments: dict[str, Any]) -> Any:
    """A distribution of one reference per example: Neuron DeepLIFT, as Captum computes it."""
    return captum.attr.NeuronDeepLift.attribute.__wrapped__(method, **arguments)  # type: ignore[attr-defined]


class NeuronDeepLiftShap(captum.attr.NeuronDeepLiftShap):
    r"""Captum's Neuron DeepLiftShap with per-example counterfactual references.

    Captum averages Neuron DeepLIFT over a *distribution* of references shared by every example.
    A :class:`~captum_cf.baselines.Baseline` gives each example :math:`x_n` its own reference
    :math:`x'_n = \text{baseline.reference}(x)_n` (paired, as :class:`captum_cf.attr.DeepLiftShap`
    does), and the average over a distribution of one is Neuron DeepLIFT itself:

    .. math::
        \phi(x_n) = \mathrm{NeuronDeepLift}(x_n; x'_n).

    In a tuple holding a Baseline the other entries must be per-example (numbers, or tensors with
    1 or N rows). No ``target``: a Baseline that depends on the class is refused. With a tensor
    distribution or a callable the call is Captum's :class:`captum.attr.NeuronDeepLiftShap`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> shap = NeuronDeepLiftShap(model, model[2])
        >>> shap.attribute(torch.rand(3, 1, 4, 4), 2, ConstantBaseline(0.5)).shape
        torch.Size([3, 1, 4, 4])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    attribute = baseline_attribute(
        captum.attr.NeuronDeepLiftShap, "paired", paired=_neuron_deep_lift
    )
