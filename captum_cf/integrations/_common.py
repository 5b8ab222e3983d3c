"""What every bridge checks of the Baseline it is given."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from captum_cf.baselines.base import Baseline

__all__ = ["check_perturbation_baseline"]


def check_perturbation_baseline(baseline: Any, why_no_class: str) -> Baseline:
    """``baseline`` if it can fill removed features without the class being explained.

    ``why_no_class`` ends the error message: which caller passes no class (and what to do).

    Raises:
        TypeError: not a captum_cf Baseline.
        ValueError: the baseline depends on the class being explained (``needs_target``).
    """
    if not isinstance(baseline, Baseline):
        raise TypeError(f"baseline must be a captum_cf Baseline, got {type(baseline).__name__}")
    if baseline.needs_target:
        raise ValueError(
            f"baseline ({type(baseline).__name__}) depends on the class being explained, but "
            + why_no_class
        )
    classes = getattr(baseline, "counterfactual_class", None)
    if isinstance(classes, Tensor) and classes.numel() > 1:
        # the metrics hand it repeated or flattened batches, whose rows are not the examples
        raise ValueError(
            f"baseline ({type(baseline).__name__}) has a counterfactual_class per example, but "
            "the metric calls it on batches of its own (repeated or perturbed copies): pass one "
            "class (an int)"
        )
    return baseline
