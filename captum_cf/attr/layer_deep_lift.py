"""``LayerDeepLift`` and ``LayerDeepLiftShap`` whose input-space ``baselines`` accept Baselines."""

from __future__ import annotations

from typing import Any

import captum.attr

from captum_cf.attr._resolving import baseline_attribute

__all__ = ["LayerDeepLift", "LayerDeepLiftShap"]


class LayerDeepLift(captum.attr.LayerDeepLift):
    r"""Captum's Layer DeepLIFT (Shrikumar et al., ICML 2017) from a counterfactual reference.

    DeepLIFT's Rescale multipliers from the target output down to the activations
    :math:`a = g(x)` of ``layer``, times their difference from the reference's activations
    :math:`a' = g(x')`:

    .. math::
        \phi_j(x) = (a_j - a'_j)\, m_{a_j \to F}, \qquad \sum_j \phi_j(x) = F(x) - F(x').

    ``baselines`` is the input-space reference :math:`x'`; it may also be a
    :class:`~captum_cf.baselines.Baseline`, resolved once per call as
    ``x' = baseline.reference(inputs, target)`` (one reference per example), or a tuple mixing
    Baselines with numbers and tensors. With None, numbers or tensors the call is Captum's.
    Same constructor ``(model, layer, multiply_by_inputs=True)`` and ``attribute(...)`` as
    :class:`captum.attr.LayerDeepLift`.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> dl = LayerDeepLift(model, model[2])
        >>> dl.attribute(torch.rand(3, 1, 4, 4), baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([3, 5])
    """

    attribute = baseline_attribute(captum.attr.LayerDeepLift)


def _layer_deep_lift(method: Any, arguments: dict[str, Any]) -> Any:
    """A distribution of one reference per example: Layer DeepLIFT itself, as Captum computes it."""
    return captum.attr.LayerDeepLift.attribute.__wrapped__(method, **arguments)  # type: ignore[attr-defined]


class LayerDeepLiftShap(captum.attr.LayerDeepLiftShap):
    r"""Captum's Layer DeepLiftShap with per-example counterfactual references.

    Captum averages Layer DeepLIFT over a *distribution* of references
    :math:`\{x'^{(b)}\}_{b=1}^{B}` shared by every example:
    :math:`\phi(x) = \frac{1}{B} \sum_b \mathrm{LayerDeepLift}(x; x'^{(b)})`. A
    :class:`~captum_cf.baselines.Baseline` instead gives each example :math:`x_n` its own
    reference :math:`x'_n = \text{baseline.reference}(x, \text{target})_n` (paired, as
    :class:`captum_cf.attr.DeepLiftShap` does), so with a Baseline

    .. math::
        \phi(x_n) = \mathrm{LayerDeepLift}(x_n; x'_n),

    exactly :class:`LayerDeepLift` with those references (delta of shape (N,)). The Baseline is
    called once per call (a stochastic baseline gives one draw). In a tuple holding a Baseline,
    the other entries must be per-example too: numbers or tensors with 1 or N rows.

    With a tensor distribution or a callable the call goes to Captum untouched (its numbers, and
    its ``AssertionError`` for fewer than two references).

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
        ...                             torch.nn.ReLU(), torch.nn.Linear(5, 2))
        >>> shap = LayerDeepLiftShap(model, model[2])
        >>> shap.attribute(torch.rand(3, 1, 4, 4), ConstantBaseline(0.5), target=1).shape
        torch.Size([3, 5])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    attribute = baseline_attribute(
        captum.attr.LayerDeepLiftShap, "paired", paired=_layer_deep_lift
    )
