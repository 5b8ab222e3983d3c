"""Captum attribution methods that accept ``Baseline`` objects, and new methods."""

from captum_cf._registry import Registry

#: name -> factory(AuditContext) -> explain(inputs, target, baseline) -> Tensor; used by the audit.
METHODS: Registry = Registry("method")

from captum_cf.attr.feature_ablation import FeatureAblation  # noqa: E402
from captum_cf.attr.kernel_shap import KernelShap  # noqa: E402
from captum_cf.attr.lime import Lime  # noqa: E402
from captum_cf.attr.noise_tunnel import NoiseTunnel  # noqa: E402
from captum_cf.attr.occlusion import Occlusion  # noqa: E402
from captum_cf.attr.shapley_value import ShapleyValueSampling  # noqa: E402
from captum_cf.attr.superpixels import superpixels  # noqa: E402
from captum_cf.attr import _perturbation_methods  # noqa: E402, F401  (registers METHODS)

__all__ = [
    "METHODS",
    "FeatureAblation",
    "KernelShap",
    "Lime",
    "NoiseTunnel",
    "Occlusion",
    "ShapleyValueSampling",
    "superpixels",
]
