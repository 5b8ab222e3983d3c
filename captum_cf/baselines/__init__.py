"""Counterfactual references: what stands for a removed feature."""

from captum_cf._registry import Registry
from captum_cf.baselines.base import Baseline

#: name -> factory(AuditContext) -> Baseline; the audit and the tests iterate over it.
BASELINES: Registry[Baseline] = Registry("baseline")

__all__ = ["Baseline", "BASELINES"]
