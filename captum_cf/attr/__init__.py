"""Captum attribution methods that accept ``Baseline`` objects, and new methods."""

from captum_cf._registry import Registry
from captum_cf.attr import meaningful_perturbation as _meaningful_perturbation
from captum_cf.attr.meaningful_perturbation import MeaningfulPerturbation

#: name -> factory(AuditContext) -> explain(inputs, target, baseline) -> Tensor; used by the audit.
METHODS: Registry = Registry("method")

METHODS.register(
    "meaningful-perturbation",
    _meaningful_perturbation._explainer,
    "Meaningful Perturbation, deletion game, mask filled by the baseline (100 Adam steps)",
)

__all__ = ["METHODS", "MeaningfulPerturbation"]
