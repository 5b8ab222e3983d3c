"""Bridges: captum_cf's methods and Baselines inside Quantus and ``captum.metrics``.

- :mod:`captum_cf.integrations.quantus`: ``explain_func(method=..., baseline=...)`` and
  ``perturb_func(baseline)`` follow Quantus 0.6's protocols (numpy in, numpy out), so any
  ``captum_cf.attr`` method and any Baseline plug into Quantus metrics such as
  ``PixelFlipping``, ``FaithfulnessCorrelation`` and ``MaxSensitivity``.
- :func:`captum_perturb_func`: removes random features with a Baseline, as the
  ``perturb_func`` of ``captum.metrics.infidelity``.
- :func:`captum_explanation_func`: an attribution with a Baseline as the ``explanation_func`` of
  ``captum.metrics.sensitivity_max`` (noisy copies clamped for pixel-space Baselines).

Neither needs Quantus installed to import; the functions only follow its calling conventions.
"""

from captum_cf.integrations import quantus
from captum_cf.integrations.captum_metrics import captum_explanation_func, captum_perturb_func

__all__ = ["captum_explanation_func", "captum_perturb_func", "quantus"]
