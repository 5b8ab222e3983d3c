"""``LayerGradientShap`` whose input-space ``baselines`` also accept a per-example ``Baseline``."""

from __future__ import annotations

from typing import Any

import captum.attr
import torch
from captum.attr._core.layer.layer_gradient_shap import LayerInputBaselineXGradient
from torch import Tensor

from captum_cf.attr._resolving import baseline_attribute
from captum_cf.attr.gradient_shap import _paired_noise_tunnel

__all__ = ["LayerGradientShap"]


def _paired_layer_gradient_shap(method: Any, arguments: dict[str, Any]) -> Any:
    """Captum's LayerGradientShap computation with reference n paired to example n."""
    ixg = LayerInputBaselineXGradient(
        method.forward_func,
        method.layer,
        device_ids=method.device_ids,
        multiply_by_inputs=method.multiplies_by_inputs,
    )
    a = dict(arguments)
    inputs, references = a.pop("inputs"), a.pop("baselines")
    # the layer path hands references to the model as they are: numbers become (1, ...) rows
    if isinstance(inputs, tuple):
        references = tuple(_row(r, x) for r, x in zip(references, inputs))
    else:
        references = _row(references, inputs)
    n_samples, stdevs = a.pop("n_samples"), a.pop("stdevs")
    return _paired_noise_tunnel(ixg, inputs, references, n_samples, stdevs, a)


def _row(reference: Any, x: Tensor) -> Any:
    """A number as one reference row of ``x``'s shape, dtype and device; others unchanged."""
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        return torch.full_like(x[:1], reference)
    return reference


class LayerGradientShap(captum.attr.LayerGradientShap):
    r"""Captum's Layer GradientSHAP (Lundberg & Lee, NeurIPS 2017) with per-example references.

    Expected gradients at ``layer``: for each of ``n_samples`` draws, Gaussian noise
    :math:`\epsilon \sim \mathcal{N}(0, \text{stdevs}^2)` on the input, a point
    :math:`\alpha \sim U(0, 1)` on the path and a reference :math:`x'`, and the average of

    .. math::
        (g(x + \epsilon) - g(x')) \cdot
            \frac{\partial F}{\partial g}\Big|_{x' + \alpha (x + \epsilon - x')},

    :math:`g` the activations of ``layer``. Captum draws :math:`x'` at random from a
    *distribution* shared by all examples. A :class:`~captum_cf.baselines.Baseline` instead gives
    example :math:`n` its own reference :math:`x'_n = \text{baseline.reference}(x, \text{target})_n`
    (paired, as :class:`captum_cf.attr.GradientShap` does), so the expectation runs over
    :math:`\epsilon` and :math:`\alpha` only. With a single example (N = 1) this is Captum's result
    for the reference tensor. In a tuple holding a Baseline the other entries must be per-example
    too (numbers, or tensors with 1 or N rows).

    With a tensor distribution or a callable the call goes to Captum untouched. Randomness comes
    from torch's (and, in Captum's draws, NumPy's) global generators, as in Captum.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> conv = torch.nn.Conv2d(3, 4, 3)
        >>> model = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.Linear(4 * 36, 2))
        >>> images = torch.rand(3, 3, 8, 8)
        >>> LayerGradientShap(model, conv).attribute(images, BlurBaseline(1.5), target=0).shape
        torch.Size([3, 4, 6, 6])
    """

    #: ``captum_cf.attr.NoiseTunnel`` hands this class each Baseline's references of the clean
    #: inputs (one per example, repeated for each noisy copy), to be paired, not drawn from
    pairs_baselines: bool = True

    attribute = baseline_attribute(
        captum.attr.LayerGradientShap, "paired", paired=_paired_layer_gradient_shap
    )
