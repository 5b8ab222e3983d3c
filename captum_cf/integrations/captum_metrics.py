"""Baselines in ``captum.metrics``: infidelity's ``perturb_func``, sensitivity's explanations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline, noisy_inputs
from captum_cf.integrations._common import check_perturbation_baseline

__all__ = ["captum_explanation_func", "captum_perturb_func"]


def captum_perturb_func(
    baseline: Baseline, p_remove: float = 0.25, seed: int | None = None,
    multiply_by_inputs: bool = False,
) -> Callable[..., Any]:
    r"""Random feature removal by ``baseline`` for :func:`captum.metrics.infidelity`.

    Infidelity (Yeh et al., NeurIPS 2019) compares the attributions with the change of the
    output under perturbations :math:`I`:
    :math:`\mathbb{E}_I[(I^\top \phi(x) - (f(x) - f(x - I)))^2]`. Here each perturbed input
    is ``baseline.fill(x, keep)`` with ``keep`` an independent Bernoulli(1 - ``p_remove``) mask
    per value (for images per pixel, shared by the channels), and :math:`I = x - \text{fill}`:
    the features are removed by realistic content instead of Gaussian noise, so infidelity
    measures faithfulness on inputs the model could meet.

    Attributions that are multiplied by the inputs (Integrated Gradients, DeepLift, their Shap
    and layer-input variants: ``method.multiplies_by_inputs``) stand for
    :math:`(x - x') \odot \text{gradient}`; pass ``multiply_by_inputs=True`` and the attribution
    reference :math:`x'` as infidelity's ``baselines=``, and the perturbations become
    :math:`I = (x - \text{fill}) / (x - x')` (divided by :math:`x` without ``baselines``; 1
    where the denominator is 0), as Captum's ``infidelity_perturb_func_decorator(True)`` does.
    Without it such a map scores as unfaithful even on a linear model, where it is exact.

    The returned function follows Captum's protocol: ``perturb(inputs)`` (or
    ``perturb(inputs, baselines)``) returns ``(perturbations, perturbed_inputs)``, each a
    tensor or a tuple of tensors like ``inputs``. Captum calls it on the inputs repeated
    ``n_perturb_samples`` times, so every repeat gets its own mask.

    Args:
        baseline (Baseline): fills the removed features; it must not need the class (Captum
            gives the perturbation function none).
        p_remove (float): probability that a value (an image pixel) is removed, in (0, 1].
        seed (int, optional): seed of a private generator (each call continues its stream);
            default: the global torch RNG, as Captum's examples use.
        multiply_by_inputs (bool): divide the perturbations by ``inputs - baselines`` (see
            above); False (default) for attributions that are not multiplied by the inputs
            (saliency, Occlusion, FeatureAblation, Lime, KernelShap).

    Returns:
        Callable: ``perturb(inputs, baselines=None) -> (perturbations, perturbed_inputs)``.

    Example:
        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum.metrics import infidelity
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> attr = IntegratedGradients(model).attribute(x, target=0)  # from 0: multiplied by x
        >>> perturb = captum_perturb_func(ConstantBaseline(0.0), seed=0, multiply_by_inputs=True)
        >>> infid = infidelity(model, perturb, x, attr, target=0, n_perturb_samples=4)
        >>> bool(infid.abs().max() < 1e-8)  # a linear model: IG is exact
        True
    """
    if not isinstance(multiply_by_inputs, bool):
        raise TypeError(f"multiply_by_inputs must be a bool, got "
                        f"{type(multiply_by_inputs).__name__}")
    check_perturbation_baseline(
        baseline, "captum.metrics.infidelity passes its perturbation function no class"
    )
    if isinstance(p_remove, bool) or not isinstance(p_remove, (int, float)) or not (
        0 < p_remove <= 1
    ):
        raise ValueError(f"p_remove must be a number in (0, 1], got {p_remove!r}")
    generator = None if seed is None else torch.Generator().manual_seed(seed)

    def perturb(inputs: Any, baselines: Any = None) -> Any:
        single = isinstance(inputs, Tensor)
        xs = (inputs,) if single else tuple(inputs)
        # one attribution reference per input (a number, a tensor or None), as Captum formats
        refs = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
        deltas, perturbed = [], []
        for x, ref in zip(xs, refs):
            filled = baseline.fill(x, _keep_mask(x, p_remove, generator))
            perturbed.append(filled)
            delta = x - filled
            if multiply_by_inputs:  # Captum's infidelity_perturb_func_decorator(True)
                denom = x if ref is None else x - ref
                delta = delta / torch.where(denom != 0, denom, torch.ones_like(denom))
            deltas.append(delta)
        return (deltas[0], perturbed[0]) if single else (tuple(deltas), tuple(perturbed))

    return perturb


def _keep_mask(x: Tensor, p_remove: float, generator: torch.Generator | None) -> Tensor:
    """Bernoulli keep mask: (N, 1, H, W) for images, else the shape of ``x``."""
    shape = (x.shape[0], 1, *x.shape[2:]) if x.dim() == 4 else tuple(x.shape)
    # drawn on the CPU (one generator for every device), moved once
    u = torch.rand(shape, generator=generator)
    return (u >= p_remove).to(device=x.device, dtype=x.dtype)


def captum_explanation_func(attribute: Callable[..., Any], baselines: Any) -> Callable[..., Any]:
    """An ``explanation_func`` for :func:`captum.metrics.sensitivity_max` with a Baseline.

    ``sensitivity_max`` explains noisy copies of the inputs and accepts only tensors or numbers
    as ``baselines=`` among its own keyword arguments. The returned function calls
    ``attribute(inputs, baselines=baselines, **kwargs)`` inside
    :func:`captum_cf.baselines.noisy_inputs`, so a pixel-space Baseline computes its
    counterfactual from each noisy copy clamped to [0, 1].

    Args:
        attribute (Callable): e.g. ``IntegratedGradients(model).attribute`` of ``captum_cf.attr``.
        baselines: a Baseline (or anything ``attribute`` takes as ``baselines``).

    Returns:
        Callable: ``explain(inputs, **kwargs)``, what ``sensitivity_max`` calls.

    Example:
        >>> import torch
        >>> from captum.metrics import sensitivity_max
        >>> from captum_cf.attr import IntegratedGradients
        >>> from captum_cf.baselines import InpaintBaseline
        >>> from captum_cf.inpainters import PushPullInpainter
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> explain = captum_explanation_func(IntegratedGradients(model).attribute,
        ...                                   InpaintBaseline(PushPullInpainter()))
        >>> s = sensitivity_max(explain, torch.rand(2, 1, 8, 8), target=0)
    """
    if not callable(attribute):
        raise TypeError(f"attribute must be callable, got {type(attribute).__name__}")

    def explain(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        with noisy_inputs():
            return attribute(inputs, *args, baselines=baselines, **kwargs)

    return explain
