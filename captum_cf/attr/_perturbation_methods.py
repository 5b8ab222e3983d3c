"""Registers the perturbation methods of this package in ``captum_cf.attr.METHODS``.

Each factory receives an ``AuditContext`` and returns ``explain(inputs, target, baseline)``:
images (N, C, H, W) in [0, 1], target (N,) class indices, and a ``Baseline`` (or None for
Captum's zero baseline) -> attributions (N, C, H, W).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from captum_cf._registry import AuditContext
from captum_cf.attr import METHODS
from captum_cf.attr.feature_ablation import FeatureAblation
from captum_cf.attr.lime import Lime
from captum_cf.attr.occlusion import Occlusion
from captum_cf.attr.superpixels import superpixels

Explain = Callable[[Tensor, Any, Any], Tensor]


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """Window side and stride for an image: about 1/8 of the shorter side, half-window stride."""
    window = max(2, round(min(height, width) / 8))
    return window, max(1, window // 2)


def _per_eval(ctx: AuditContext, default: int, n: int) -> int:
    """Perturbations per forward pass: ``default``, fewer when ``n`` images would not fit.

    ``ctx.extras["forward_images"]`` (set by the audit from the image size) is how many images
    one no-grad forward pass may hold; Captum's batched perturbation methods forward
    ``perturbations_per_eval * n`` images at once.
    """
    limit = ctx.extras.get("forward_images")
    return default if limit is None else max(1, min(default, int(limit) // max(n, 1)))


def _occlusion(ctx: AuditContext) -> Explain:
    method = Occlusion(ctx.model)
    channels, height, width = ctx.image_shape
    window, stride = occlusion_window(height, width)

    def explain(inputs: Tensor, target: Any, baseline: Any = None) -> Tensor:
        return method.attribute(
            inputs,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=baseline,
            target=target,
            perturbations_per_eval=_per_eval(ctx, 32, len(inputs)),
        )

    return explain


def _feature_ablation(ctx: AuditContext) -> Explain:
    method = FeatureAblation(ctx.model)

    def explain(inputs: Tensor, target: Any, baseline: Any = None) -> Tensor:
        mask = superpixels(inputs, n_segments=50)
        return method.attribute(
            inputs,
            baselines=baseline,
            target=target,
            feature_mask=mask,
            perturbations_per_eval=_per_eval(ctx, 16, len(inputs)),
        )

    return explain


def _lime(ctx: AuditContext) -> Explain:
    method = Lime(ctx.model)

    def explain(inputs: Tensor, target: Any, baseline: Any = None) -> Tensor:
        mask = superpixels(inputs, n_segments=50)
        return method.attribute(
            inputs,
            baselines=baseline,
            target=target,
            feature_mask=mask,
            n_samples=100,
            perturbations_per_eval=_per_eval(ctx, 50, len(inputs)),
        )

    return explain


METHODS.register(
    "occlusion",
    _occlusion,
    "Sliding-Patch occlusion (window ~1/8 of the image, half-window stride); "
    "SP-G with an inpainting baseline",
)
METHODS.register(
    "feature-ablation",
    _feature_ablation,
    "ablation of 50 SLIC superpixels, one at a time; filled by the baseline",
)
METHODS.register(
    "lime",
    _lime,
    "LIME on 50 SLIC superpixels, 100 samples; LIME-G with an inpainting baseline",
)
