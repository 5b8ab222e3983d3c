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
    baseline: Baseline, p_remove: float = 0.25, seed: int | None = None
) -> Callable[..., Any]:
    r"""Random feature removal by ``baseline`` for :func:`captum.metrics.infidelity`.

    Infidelity (Yeh et al., NeurIPS 2019) compares the attributions with the change of the
    output under perturbations :math:`I`:
    :math:`\mathbb{E}_I[(I^\top \phi(x) - (f(x) - f(x - I)))^2]`. Here each perturbed input
    is ``baseline.fill(x, keep)`` with ``keep`` an independent Bernoulli(1 - ``p_remove``) mask
    per value (for images per pixel, shared by the channels), and :math:`I = x - \text{fill}`:
    the features are removed by realistic content instead of Gaussian noise, so infidelity
    measures faithfulness on inputs the model could meet.

    The returned function follows Captum's protocol: ``perturb(inputs)`` (or
    ``perturb(inputs, baselines)``, ignored) returns ``(perturbations, perturbed_inputs)``, each a
    tensor or a tuple of tensors like ``inputs``. Captum calls it on the inputs repeated
    ``n_perturb_samples`` times, so every repeat gets its own mask.

    Args:
        baseline (Baseline): fills the removed features; it must not need the class (Captum
            gives the perturbation function none).
        p_remove (float): probability that a value (an image pixel) is removed, in (0, 1].
        seed (int, optional): seed of a private generator (each call continues its stream);
            default: the global torch RNG, as Captum's examples use.

    Returns:
        Callable: ``perturb(inputs, baselines=None) -> (perturbations, perturbed_inputs)``.

    Example:
        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum.metrics import infidelity
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> attr = IntegratedGradients(model).attribute(x, target=0)
        >>> infid = infidelity(model, captum_perturb_func(ConstantBaseline(0.0), seed=0), x,
        ...                    attr, target=0, n_perturb_samples=4)
    """
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
        deltas, perturbed = [], []
        for x in xs:
            filled = baseline.fill(x, _keep_mask(x, p_remove, generator))
            perturbed.append(filled)
            deltas.append(x - filled)
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
