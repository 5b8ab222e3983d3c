"""``NoiseTunnel`` that lets a captum_cf ``Baseline`` through to the wrapped method."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage

from captum_cf.attr._perturbation import _BaselineToken
from captum_cf.baselines.base import Baseline

__all__ = ["NoiseTunnel"]


class NoiseTunnel(captum.attr.NoiseTunnel):
    r"""Captum's ``NoiseTunnel`` whose ``baselines`` keyword may hold a captum_cf ``Baseline``.

    SmoothGrad (Smilkov et al., 2017) averages attributions over noisy copies of the input,
    ``A = \frac{1}{n} \sum_i A(x + \epsilon_i)``, ``\epsilon_i \sim N(0, \sigma^2)``
    (``smoothgrad_sq`` averages squares, ``vargrad`` takes the variance).

    Captum's ``NoiseTunnel`` only lets numbers and Tensors through as ``baselines``; this subclass
    wraps each ``Baseline`` in a float token that the captum_cf methods unwrap, and otherwise is
    Captum's class unchanged. The noisy inputs leave [0, 1]: the Baseline sees them clamped to
    [0, 1] as context, while kept pixels keep their noisy values.

    Example:
        >>> import torch
        >>> from captum_cf.attr import Occlusion
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        >>> nt = NoiseTunnel(Occlusion(model))
        >>> attr = nt.attribute(torch.rand(1, 3, 8, 8), nt_samples=4, stdevs=0.05, target=0,
        ...     sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4), baselines=BlurBaseline(2.0))
    """

    @log_usage(part_of_slo=True)
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        **kwargs: Any,
    ) -> Any:
        """As ``captum.attr.NoiseTunnel.attribute``; ``baselines`` may contain a ``Baseline``."""
        if "baselines" in kwargs:
            kwargs["baselines"] = _tokenize(kwargs["baselines"])
        return super().attribute.__wrapped__(
            self, inputs, nt_type, nt_samples, nt_samples_batch_size, stdevs,
            draw_baseline_from_distrib, **kwargs,
        )  # fmt: skip


def _tokenize(baselines: Any) -> Any:
    if isinstance(baselines, tuple):
        return tuple(_tokenize(b) for b in baselines)
    if isinstance(baselines, Baseline):
        return _BaselineToken(baselines)
    return baselines
