"""captum_cf: realistic counterfactual baselines and explanation metrics for Captum."""

from captum_cf import _compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"

__all__ = ["__version__"]
