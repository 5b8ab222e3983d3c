"""Explanation metrics: is an attribution faithful, localised, model-dependent, robust, realistic?

Every metric declares its direction with a ``higher_is_better`` attribute (on the function, and
on result objects such as :class:`Curve`), so a report can mark the best value without knowing
the metric.
"""

from captum_cf.metrics.deletion import Curve, deletion, insertion
from captum_cf.metrics.localization import (
    box_from_map,
    box_iou,
    localization_error,
    pointing_game,
    relevance_mass,
)
from captum_cf.metrics.r_oms import r_oms
from captum_cf.metrics.randomization import RandomizationResult, map_similarity, randomization_test
from captum_cf.metrics.realism import lpips_backbone_path, realism
from captum_cf.metrics.road import removal_curves, road, symmetric_relevance_gain
from captum_cf.metrics.saliency_metric import saliency_metric
from captum_cf.metrics.sensitivity import sensitivity
from captum_cf.metrics.ssim import ssim

__all__ = [
    "Curve",
    "RandomizationResult",
    "box_from_map",
    "box_iou",
    "deletion",
    "insertion",
    "localization_error",
    "lpips_backbone_path",
    "map_similarity",
    "pointing_game",
    "r_oms",
    "randomization_test",
    "realism",
    "relevance_mass",
    "removal_curves",
    "road",
    "saliency_metric",
    "sensitivity",
    "ssim",
    "symmetric_relevance_gain",
]
