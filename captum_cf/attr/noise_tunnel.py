"""``NoiseTunnel`` that passes a counterfactual ``Baseline`` on to the method it wraps."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage
from torch import Tensor

from captum_cf.attr._baselines import has_baseline, resolve_baselines
from captum_cf.attr._guard import _check_inputs, check_positive_ints, check_stdevs
from captum_cf.attr._perturbation import _BaselineToken, _check_image_input
from captum_cf.baselines.base import Baseline

__all__ = ["NoiseTunnel"]


class NoiseTunnel(captum.attr.NoiseTunnel):
    r"""Captum's NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad) that accepts ``baselines=Baseline``.

    SmoothGrad (Smilkov et al., 2017) averages an attribution over noisy copies of the input:
    :math:`\hat\phi(x) = \frac{1}{S} \sum_{s} \phi(x + \epsilon_s)`,
    :math:`\epsilon_s \sim \mathcal{N}(0, \sigma^2)`. Captum's NoiseTunnel checks ``baselines``
    itself (tensors or numbers only) before the wrapped method sees them, so a
    :class:`~captum_cf.baselines.Baseline` must be resolved here: it becomes
    ``baseline.reference(inputs, target)``, computed once from the *clean* inputs (noisy copies
    leave [0, 1]) and repeated for each noisy copy of its example. The noise thus perturbs the
    input, never the counterfactual reference. A per-example reference cannot be drawn from as a
    distribution, so ``draw_baseline_from_distrib=True`` with a Baseline is refused.

    The perturbation methods of ``captum_cf.attr`` (Occlusion, FeatureAblation,
    ShapleyValueSampling, Lime, KernelShap; ``fills_baselines = True``) instead receive the
    Baseline itself (carried through Captum's checks by a float token) and fill every removed
    feature of each noisy copy with ``baseline.fill``; the noisy copies are clamped to [0, 1] as
    the fill's context, and kept pixels keep their noisy values.

    Everything else goes to Captum untouched; wrapping a ``captum_cf.attr`` method in Captum's own
    ``NoiseTunnel`` with tensor baselines works as well and returns the same numbers.

    Example:
        >>> import torch
        >>> from captum_cf.attr import IntegratedGradients
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> nt = NoiseTunnel(IntegratedGradients(model))
        >>> nt.attribute(torch.rand(2, 1, 8, 8), nt_samples=2, stdevs=0.1,
        ...              baselines=ConstantBaseline(0.5), target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    @log_usage(part_of_slo=True)
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Captum's ``NoiseTunnel.attribute``; ``baselines=`` in ``kwargs`` may hold Baselines.

        Args:
            inputs, nt_type, nt_samples, nt_samples_batch_size, stdevs, draw_baseline_from_distrib,
            **kwargs: exactly as in :meth:`captum.attr.NoiseTunnel.attribute`; a Baseline in
                ``kwargs["baselines"]`` is resolved with ``kwargs.get("target")``.

        Returns:
            What Captum's ``NoiseTunnel.attribute`` returns.
        """
        _check_inputs(inputs)  # before the noise: the wrapped method only sees noisy copies
        _check_settings(nt_samples, nt_samples_batch_size, stdevs)
        if has_baseline(kwargs.get("baselines")):
            if draw_baseline_from_distrib:
                raise ValueError(
                    "draw_baseline_from_distrib=True draws references at random from a shared "
                    "distribution, but a Baseline gives each example its own reference: pass "
                    "draw_baseline_from_distrib=False"
                )
            if getattr(self.attribution_method, "fills_baselines", False):
                # perturbation methods fill each removed feature themselves (mask-conditional);
                # they see the noisy copies only, so the clean inputs are checked here
                _check_clean_inputs(inputs, kwargs["baselines"])
                kwargs["baselines"] = _tokenize(kwargs["baselines"])
            else:
                target = kwargs.get("target")
                kwargs["baselines"] = resolve_baselines(kwargs["baselines"], inputs, target)
        try:
            return super().attribute.__wrapped__(  # type: ignore[attr-defined]
                self,
                inputs,
                nt_type=nt_type,
                nt_samples=nt_samples,
                nt_samples_batch_size=nt_samples_batch_size,
                stdevs=stdevs,
                draw_baseline_from_distrib=draw_baseline_from_distrib,
                **kwargs,
            )
        except AssertionError as err:  # Captum checks user input with ``assert``
            raise ValueError(str(err)) from err


def _check_settings(nt_samples: Any, nt_samples_batch_size: Any, stdevs: Any) -> None:
    """NoiseTunnel's own numbers, checked before any noise is drawn."""
    check_positive_ints(nt_samples=nt_samples, nt_samples_batch_size=nt_samples_batch_size)
    check_stdevs(stdevs)


def _check_clean_inputs(inputs: Any, baselines: Any) -> None:
    """Inputs filled by a Baseline must be float images (N, C, H, W) in [0, 1] before the noise.

    The wrapped method only sees noisy float copies, which may leave [0, 1], so without this
    check uint8 images (0..255) would pass.
    """
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    entries = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
    if not xs or not all(isinstance(x, Tensor) for x in xs):
        raise TypeError("inputs must be a Tensor or a non-empty tuple of Tensors")
    if len(entries) != len(xs):
        raise ValueError(
            f"baselines is a tuple of {len(entries)} entries but inputs has {len(xs)} tensors: "
            "pass one baseline per input tensor"
        )
    for i, (x, b) in enumerate(zip(xs, entries)):
        if isinstance(b, Baseline):
            _check_image_input(x, i, len(xs), noisy=False)


def _tokenize(baselines: Any) -> Any:
    """Wrap each Baseline in a float token that Captum's type checks let through."""
    if isinstance(baselines, tuple):
        return tuple(_tokenize(b) for b in baselines)
    return _BaselineToken(baselines) if isinstance(baselines, Baseline) else baselines
