"""Captum attribution methods that accept ``Baseline`` objects, and new methods.

Input, layer and neuron methods: wherever a Captum method takes input-space ``baselines``, the
class of the same name here also takes a :class:`~captum_cf.baselines.Baseline`.
``LayerFeatureAblation``'s ``layer_baselines`` live in the layer's activation space, where a
Baseline (which produces inputs) has no meaning, so it has no subclass here.

Every other name of ``captum.attr`` (``Saliency``, ``LayerGradCam``, ``visualization``, ...) is
Captum's own object, re-exported, so that swapping ``from captum.attr import ...`` for
``from captum_cf.attr import ...`` works for a whole script.
"""

import captum.attr as _captum_attr
import torch.nn as nn

from captum_cf._registry import Registry
from captum_cf.attr import deep_lift as _deep_lift
from captum_cf.attr import integrated_gradients as _integrated_gradients
from captum_cf.attr import meaningful_perturbation as _meaningful_perturbation
from captum_cf.attr import sparse_perturbation as _sparse_perturbation
from captum_cf.attr.deep_lift import DeepLift, DeepLiftShap
from captum_cf.attr.feature_ablation import FeatureAblation
from captum_cf.attr.gradient_shap import GradientShap
from captum_cf.attr.integrated_gradients import IntegratedGradients
from captum_cf.attr.internal_influence import InternalInfluence
from captum_cf.attr.kernel_shap import KernelShap
from captum_cf.attr.layer_conductance import LayerConductance
from captum_cf.attr.layer_deep_lift import LayerDeepLift, LayerDeepLiftShap
from captum_cf.attr.layer_gradient_shap import LayerGradientShap
from captum_cf.attr.layer_integrated_gradients import LayerIntegratedGradients
from captum_cf.attr.lime import Lime
from captum_cf.attr.meaningful_perturbation import MeaningfulPerturbation
from captum_cf.attr.neuron_conductance import NeuronConductance
from captum_cf.attr.neuron_deep_lift import NeuronDeepLift, NeuronDeepLiftShap
from captum_cf.attr.neuron_feature_ablation import NeuronFeatureAblation
from captum_cf.attr.neuron_gradient_shap import NeuronGradientShap
from captum_cf.attr.neuron_integrated_gradients import NeuronIntegratedGradients
from captum_cf.attr.noise_tunnel import NoiseTunnel
from captum_cf.attr.occlusion import Occlusion
from captum_cf.attr.progressive_exaggeration import ExaggerationSeries, ProgressiveExaggeration
from captum_cf.attr.shapley_value import ShapleyValueSampling
from captum_cf.attr.shapley_values import ShapleyValues
from captum_cf.attr.sparse_perturbation import SparsePerturbation
from captum_cf.attr.superpixels import superpixels

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
    needs="an nn.Module model (its hooks go on the modules), not a plain function",
)
METHODS.register(
    "sparse-perturbation",
    _sparse_perturbation._explainer,
    "|delta| of the 10 %-sparse Frank-Wolfe perturbation away from the target "
    "(ignores the baseline)",
    uses_baseline=False,
)

from captum_cf.attr import _perturbation_methods  # noqa: E402, F401, I001  (registers occlusion, feature-ablation, lime)

METHODS.register(
    "meaningful-perturbation",
    _meaningful_perturbation._explainer,
    "Meaningful Perturbation, deletion game, mask filled by the baseline (100 Adam steps)",
)

__all__ = [
    "METHODS",
    "DeepLift",
    "DeepLiftShap",
    "FeatureAblation",
    "GradientShap",
    "IntegratedGradients",
    "InternalInfluence",
    "KernelShap",
    "LayerConductance",
    "LayerDeepLift",
    "LayerDeepLiftShap",
    "LayerGradientShap",
    "LayerIntegratedGradients",
    "Lime",
    "MeaningfulPerturbation",
    "NeuronConductance",
    "NeuronDeepLift",
    "NeuronDeepLiftShap",
    "NeuronFeatureAblation",
    "NeuronGradientShap",
    "NeuronIntegratedGradients",
    "NoiseTunnel",
    "Occlusion",
    "ShapleyValueSampling",
    "ShapleyValues",
    "superpixels",
    "SparsePerturbation",
    "ExaggerationSeries",
    "ProgressiveExaggeration",
]

# the rest of captum.attr, Captum's own objects: the import-line swap covers a whole script
_CAPTUM_ONLY = [name for name in _captum_attr.__all__ if name not in globals()]
globals().update({name: getattr(_captum_attr, name) for name in _CAPTUM_ONLY})
__all__ += _CAPTUM_ONLY
