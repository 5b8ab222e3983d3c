"""Counterfactual references: what stands for a removed feature."""

from captum_cf._registry import Registry
from captum_cf.baselines.base import Baseline
from captum_cf.baselines.blur import BlurBaseline, gaussian_blur
from captum_cf.baselines.constant import ConstantBaseline
from captum_cf.baselines.noise import NoiseBaseline

#: name -> factory(AuditContext) -> Baseline; the audit and the tests iterate over it.
BASELINES: Registry[Baseline] = Registry("baseline")

__all__ = [
    "Baseline",
    "BASELINES",
    "BlurBaseline",
    "ConstantBaseline",
    "NoiseBaseline",
    "gaussian_blur",
]
