"""Captum attribution methods that accept ``Baseline`` objects, and new methods."""

import torch.nn as nn

from captum_cf._registry import Registry
from captum_cf.attr import deep_lift as _deep_lift
from captum_cf.attr import integrated_gradients as _integrated_gradients
from captum_cf.attr.deep_lift import DeepLift, DeepLiftShap
from captum_cf.attr.gradient_shap import GradientShap
from captum_cf.attr.integrated_gradients import IntegratedGradients
from captum_cf.attr.noise_tunnel import NoiseTunnel
from captum_cf.attr.progressive_exaggeration import ExaggerationSeries, ProgressiveExaggeration

#: name -> factory(AuditContext) -> explain(inputs, target, baseline) -> Tensor; used by the audit.
METHODS: Registry = Registry("method")

METHODS.register(
    "integrated-gradients",
    _integrated_gradients._explainer,
    "Integrated Gradients from the baseline's reference (32 Gauss-Legendre steps)",
)
METHODS.register(
    "deeplift",
    _deep_lift._explainer,
    "DeepLIFT (Rescale rule) from the baseline's reference",
    available=lambda ctx: isinstance(ctx.model, nn.Module),
)

__all__ = [
    "METHODS",
    "DeepLift",
    "DeepLiftShap",
    "GradientShap",
    "IntegratedGradients",
    "NoiseTunnel",
    "ExaggerationSeries",
    "ProgressiveExaggeration",
]
