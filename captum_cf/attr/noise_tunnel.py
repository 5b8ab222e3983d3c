"""``NoiseTunnel`` that passes a counterfactual ``Baseline`` on to the method it wraps."""

from __future__ import annotations

from typing import Any

import captum.attr
from captum.log import log_usage
from torch import Tensor

from captum_cf._validation import (
    check_attribute_arguments,
    check_baseline_dtype,
    check_model_dtype,
    model_dtype,
    noise_dtype_errors,
)
from captum_cf.attr._baselines import _BaselineToken, has_baseline, native_value, resolve_baselines
from captum_cf.attr._guard import add_missing_batch_note, captum_assertions, model_of
from captum_cf.attr._perturbation import _plan
from captum_cf.baselines.base import Baseline, noisy_inputs
from captum_cf.baselines.constant import ConstantBaseline

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
    distribution, so ``draw_baseline_from_distrib=True`` with a Baseline is refused. The Shap
    family of ``captum_cf.attr`` (``pairs_baselines = True``) pairs each noisy copy with the
    reference of its example, as it pairs each example when called directly; Captum's own Shap
    classes would read the references as a shared distribution, so a Baseline is refused there.

    The perturbation methods of ``captum_cf.attr`` (Occlusion, FeatureAblation,
    ShapleyValueSampling, Lime, KernelShap; ``fills_baselines = True``) instead receive the
    Baseline itself (carried through Captum's checks by a float token) and fill every removed
    feature of each noisy copy with ``baseline.fill``; the noisy copies are clamped to [0, 1] as
    the fill's context, and kept pixels keep their noisy values.

    The whole call runs inside :func:`captum_cf.baselines.noisy_inputs`: a pixel-space Baseline
    the wrapped method meets sees the noisy copies clamped to [0, 1] instead of refusing them.
    ``ConstantBaseline(c)`` is handed over as ``c``, exactly as ``baselines=c``.

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
        check_attribute_arguments(
            inputs,
            kwargs.get("target"),
            kwargs.get("baselines"),
            counts={"nt_samples": nt_samples},
            optional_counts={"nt_samples_batch_size": nt_samples_batch_size},
            stdevs=stdevs,
            # references drawn from a distribution (any rows), else one per example: Captum's
            # NoiseTunnel asks for 1 or N rows then, whatever the method it wraps
            distribution=draw_baseline_from_distrib,
        )
        # the dtype rule on the clean inputs: Captum's noise (float32) would upcast half ones
        forward = getattr(self.attribution_method, "forward_func", None)
        check_model_dtype(inputs, forward)
        if model_dtype(forward) is not None:
            check_baseline_dtype(kwargs.get("baselines"), inputs)
        given = kwargs.get("baselines")
        entries = given if isinstance(given, tuple) else (given,)
        if draw_baseline_from_distrib and has_baseline(given) and all(
            type(b) is ConstantBaseline or not isinstance(b, Baseline) for b in entries
        ):  # constants are Captum's numbers, which it draws from as from any number
            kwargs["baselines"] = resolve_baselines(given, inputs, kwargs.get("target"),
                                                    native=True)
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
                _plan(inputs, kwargs["baselines"], kwargs.get("target"))
                kwargs["baselines"] = _tokenize(kwargs["baselines"], inputs)
            elif getattr(self.attribution_method, "pairs_baselines", False):
                # the Shap family pairs example n with reference n: the clean references go
                # over as tokens (Captum's NoiseTunnel would repeat a tensor into a distribution)
                given = kwargs["baselines"]
                resolved = resolve_baselines(given, inputs, kwargs.get("target"))
                kwargs["baselines"] = _paired_tokens(given, resolved)
            elif isinstance(self.attribution_method, _CAPTUM_SHAP):
                name = type(self.attribution_method).__name__
                raise TypeError(
                    f"baselines: a Baseline gives each example its own reference, which Captum's "
                    f"own {name} reads as a distribution shared by all examples; wrap "
                    f"captum_cf.attr.{name} instead, which pairs each example with its reference"
                )
            else:
                kwargs["baselines"] = resolve_baselines(
                    kwargs["baselines"], inputs, kwargs.get("target"), native=True
                )
        try:
            with noisy_inputs(), captum_assertions(), noise_dtype_errors(forward, "NoiseTunnel"):
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
        except RuntimeError as err:  # the wrapped method saw noisy copies: the clean inputs tell
            model = model_of(getattr(self.attribution_method, "forward_func", None))
            add_missing_batch_note(err, model, inputs if isinstance(inputs, tuple) else (inputs,))
            raise


_CAPTUM_SHAP = (
    captum.attr.GradientShap,
    captum.attr.DeepLiftShap,
    captum.attr.LayerGradientShap,
    captum.attr.LayerDeepLiftShap,
    captum.attr.NeuronGradientShap,
    captum.attr.NeuronDeepLiftShap,
)


class _CleanReferences(Baseline):
    """The references of the clean inputs, one per example, each repeated for the noisy copies
    of its example (Captum's NoiseTunnel repeats every example ``k`` times in a row)."""

    def __init__(self, references: Tensor) -> None:
        self.references = references

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        n, rows = self.references.shape[0], inputs.shape[0]
        if rows % n:
            raise ValueError(f"{rows} noisy copies cannot be split among {n} examples")
        return self.references.repeat_interleave(rows // n, dim=0)

    def __repr__(self) -> str:
        return f"_CleanReferences({tuple(self.references.shape)})"


def _paired_tokens(given: Any, resolved: Any) -> Any:
    """Each Baseline entry of ``given`` as a token carrying its clean references (``resolved``)."""
    if isinstance(given, tuple):
        return tuple(_paired_tokens(g, r) for g, r in zip(given, resolved))
    return _BaselineToken(_CleanReferences(resolved)) if isinstance(given, Baseline) else given


def _tokenize(baselines: Any, inputs: Any) -> Any:
    """Wrap each Baseline in a float token that Captum's type checks let through.

    A ConstantBaseline becomes its number (Captum's own baseline), never a token.
    """
    if isinstance(baselines, tuple):
        xs = inputs if isinstance(inputs, tuple) else (inputs,) * len(baselines)
        return tuple(_tokenize(b, x) for b, x in zip(baselines, xs))
    if not isinstance(baselines, Baseline):
        return baselines
    x = inputs[0] if isinstance(inputs, tuple) else inputs
    value = native_value(baselines, x)
    return _BaselineToken(baselines) if value is None else value
