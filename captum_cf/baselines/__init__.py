"""Counterfactual references: what stands for a removed feature."""

from captum_cf._registry import Registry
from captum_cf.baselines import _builtin
from captum_cf.baselines.base import Baseline, noisy_inputs
from captum_cf.baselines.blur import BlurBaseline, gaussian_blur
from captum_cf.baselines.constant import ConstantBaseline
from captum_cf.baselines.ganmex import GANMEXBaseline
from captum_cf.baselines.inpaint import InpaintBaseline
from captum_cf.baselines.nearest_sample import NearestSampleBaseline
from captum_cf.baselines.noise import NoiseBaseline
from captum_cf.baselines.road import NoisyLinearImputation
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
    "GANMEXBaseline",
    "InpaintBaseline",
    "NearestSampleBaseline",
    "NoiseBaseline",
    "NoisyLinearImputation",
    "SparseCounterfactualBaseline",
    "gaussian_blur",
    "noisy_inputs",
]

from captum_cf.baselines import ganmex as _ganmex  # noqa: E402
from captum_cf.baselines import nearest_sample as _nearest_sample  # noqa: E402

BASELINES.register(
    "ganmex",
    _ganmex._from_context,
    "GANMEX: the input translated to the runner-up class by the data's zoo generator "
    "(or --baseline-weights ganmex=FILE)",
    available=_ganmex._available,
    needs="a generator trained against the model: --baseline-weights ganmex=FILE of "
    "captum-cf train ganmex (the zoo has one for digits and shapes)",
)
BASELINES.register(
    "nearest-sample",
    _nearest_sample._from_context,
    "MDTS: the nearest training image (L2) of the runner-up class",
    available=_nearest_sample._available,
    needs="training images of the classes of --data: --train-data DIR (from Python "
    "train_data=)",
)

from captum_cf.baselines import exaggeration as _exaggeration  # noqa: E402
from captum_cf.baselines.exaggeration import ExaggerationBaseline  # noqa: E402

BASELINES.register(
    "exaggeration",
    _exaggeration._from_context,
    "Progressive exaggeration: the input walked to the opposite posterior of the zoo "
    "generator's class (digits: 'is it an 8'; or --baseline-weights exaggeration=FILE)",
    available=_exaggeration._available,
    needs="a generator trained against the model: --baseline-weights exaggeration=FILE of "
    "captum-cf train exaggeration (the zoo has one for digits)",
)
__all__ += ["ExaggerationBaseline"]
