"""Robustness of an explanation to its own hyperparameters.

Agarwal & Nguyen, "Explaining image classifiers by removing input features using generative
models", ACCV 2020; Bansal, Agarwal & Nguyen, "SAM: the sensitivity of attribution methods to
hyperparameters", CVPR 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import torch
from torch import Tensor

from captum_cf._validation import check_images
from captum_cf.metrics._common import higher_is_better, saliency_map
from captum_cf.metrics.randomization import map_similarity

__all__ = ["sensitivity"]


@higher_is_better(True)
def sensitivity(
    explain: Callable[..., Tensor],
    inputs: Tensor,
    target: Any,
    params: Sequence[Mapping[str, Any]],
    similarity: str = "ssim",
    absolute: bool = False,
) -> Tensor:
    r"""Mean similarity between the maps one method gives under different hyperparameters.

    For settings :math:`\theta_1, \dots, \theta_K` the maps :math:`E_{\theta_k}(x)` are compared
    pairwise:

    .. math:: R(x) = \binom{K}{2}^{-1} \sum_{i < j}
        \mathrm{SSIM}\big(E_{\theta_i}(x), E_{\theta_j}(x)\big),

    each map min-max normalised to [0, 1] (see :func:`~captum_cf.metrics.map_similarity`).
    A robust method (one whose map does not hinge on an arbitrary knob) scores high.

    Args:
        explain (callable): ``explain(inputs, target, **setting) -> attributions``,
            (N, C', H, W) or (N, H, W).
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        target (int, sequence or Tensor): passed to ``explain``.
        params (sequence of dict): at least two hyperparameter settings (keyword arguments).
        similarity (str): ``"ssim"`` or ``"spearman"``.
        absolute (bool): compare absolute values of the maps.

    Returns:
        Tensor: shape (N,), in [-1, 1]; higher is better.

    Example:
        >>> from captum.attr import NoiseTunnel, Saliency
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
        >>> nt = NoiseTunnel(Saliency(model))
        >>> explain = lambda x, t, stdevs: nt.attribute(x, target=t, nt_samples=4, stdevs=stdevs)
        >>> settings = [{"stdevs": 0.1}, {"stdevs": 0.3}]
        >>> sensitivity(explain, torch.rand(2, 1, 16, 16), 0, settings).shape
        torch.Size([2])
    """
    check_images(inputs, "inputs")
    if not callable(explain):
        raise TypeError("explain must be callable as explain(inputs, target, **setting)")
    if not isinstance(params, Sequence) or isinstance(params, (str, bytes)):
        raise TypeError(f"params must be a sequence of at least two dicts of keyword arguments, "
                        f"got {type(params).__name__}")
    if (
        isinstance(params, Mapping)
        or len(params) < 2
        or not all(isinstance(p, Mapping) for p in params)
    ):
        raise ValueError("params must be a sequence of at least two dicts of keyword arguments")
    if similarity not in ("ssim", "spearman"):
        raise ValueError(f"similarity must be 'ssim' or 'spearman', got {similarity!r}")
    maps = [
        saliency_map(
            explain(inputs, target, **p), tuple(inputs.shape), name=f"explain(..., **{dict(p)})"
        ).detach()
        for p in params
    ]
    pairs = [map_similarity(a, b, similarity, absolute) for a, b in combinations(maps, 2)]
    return torch.stack(pairs, dim=1).mean(dim=1)
