"""Counterfactual references: what stands for a removed feature."""

from captum_cf._registry import Registry
from captum_cf.baselines import _builtin
from captum_cf.baselines.base import Baseline
from captum_cf.baselines.blur import BlurBaseline, gaussian_blur
from captum_cf.baselines.constant import ConstantBaseline
from captum_cf.baselines.inpaint import InpaintBaseline
from captum_cf.baselines.noise import NoiseBaseline
from captum_cf.baselines.sparse import SparseCounterfactualBaseline
from captum_cf.baselines.sparse import register as _register_sparse

#: name -> factory(AuditContext) -> Baseline; the audit and the tests iterate over it.
BASELINES: Registry[Baseline] = Registry("baseline")
_builtin.register(BASELINES)
_register_sparse(BASELINES)

__all__ = [
    "Baseline",
    "BASELINES",
    "BlurBaseline",
    "ConstantBaseline",
    "InpaintBaseline",
    "NoiseBaseline",
    "SparseCounterfactualBaseline",
    "gaussian_blur",
]
