"""``ProgressiveExaggeration``: explain a one-vs-rest decision by a series that crosses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import Attribution
from captum.log import log_usage
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_logits, check_model_dtype
from captum_cf.attr._guard import guarded
from captum_cf.generative.conditional import bin_centers
from captum_cf.generative.exaggeration_trainer import positive_posterior

__all__ = ["ProgressiveExaggeration", "ExaggerationSeries"]


@dataclass
class ExaggerationSeries:
    """What :meth:`ProgressiveExaggeration.explain` returns.

    Attributes:
        series (Tensor): shape (N, S, C, H, W) in [0, 1]: ``G(x, c_s)`` for the S bins, from
            "not the positive class" (posterior near 0) to "the positive class" (near 1).
        desired (Tensor): shape (S,): the bin centres the generator was asked for.
        achieved (Tensor): shape (N, S): the classifier's posterior of the positive class for
            every image of the series.
        bins (Tensor): shape (S,), long: the generator's bin index of each step.
        positive_class (int): the class whose posterior the series walks.
    """

    series: Tensor
    desired: Tensor
    achieved: Tensor
    bins: Tensor
    positive_class: int


class ProgressiveExaggeration(Attribution):
    r"""Progressive exaggeration (Singla, Pollack, Chen & Batmanghelich, ICLR 2020).

    A conditional generator ``G(x, c)`` trained against the classifier ``f`` (see
    :class:`~captum_cf.generative.exaggeration_trainer.ExaggerationTrainer`) edits ``x`` so
    that the posterior of the positive class, :math:`p(x) = \mathrm{softmax}(f(x))_{k^+}`,
    lies in bin ``c`` of ``B`` equal bins over [0, 1]. The explanation of ``x`` is the series

    .. math::
        x_s = G(x, c_s), \quad c_s = \mathrm{round}\big(s (B - 1) / (S - 1)\big),
        \quad s = 0, \dots, S - 1,

    whose desired posteriors :math:`(c_s + 0.5) / B` rise from "not :math:`k^+`" to
    ":math:`k^+`"; the input's own bin lies somewhere on the way, so the series shows both the
    input exaggerated towards the decision and walked across it. :meth:`attribute` returns the
    change between the two ends, :math:`x_{S-1} - x_0` (positive where ink makes the image more
    :math:`k^+`), shaped like the inputs so that metrics and visualisations treat it like any
    other attribution map.

    **Target.** The decision is the generator's: a generator trained for "is it an 8"
    (``generator.config.positive_class == 8``) explains only class 8. ``target`` may be None or
    must equal that class (an int or a tensor whose entries all equal it); anything else raises
    a ValueError, because the generator cannot walk another class's posterior.

    Args:
        forward_func (callable): the classifier, pixel-space images (N, C, H, W) in [0, 1] ->
            logits (N, K). Used frozen; its modes and ``requires_grad`` flags are restored.
        generator (ExaggerationGenerator): e.g. ``captum_cf.zoo.load("digits-exaggeration")``.
            Used in eval mode without gradients; its state is restored.

    Example:
        >>> from captum_cf import zoo
        >>> model, gen = zoo.load("digits-cnn"), zoo.load("digits-exaggeration")
        >>> pe = ProgressiveExaggeration(model, gen)
        >>> pe.attribute(torch.rand(2, 1, 32, 32), target=8).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(self, forward_func: Callable[..., Tensor], generator: Any) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        config = getattr(generator, "config", None)
        if config is None or not hasattr(config, "num_bins") or not callable(generator):
            raise TypeError("generator must be an ExaggerationGenerator (e.g. captum_cf.zoo.load("
                            f"'digits-exaggeration')), got {type(generator).__name__}")
        super().__init__(forward_func)
        self.generator = generator
        self.positive_class = int(config.positive_class)
        self.num_bins = int(config.num_bins)

    @log_usage()
    def attribute(self, inputs: Tensor, target: Any = None, n_steps: int = 10) -> Tensor:
        """Change between the two ends of the walk, ``G(x, B-1) - G(x, 0)``.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
            target (int, list, Tensor or None): must be None or the generator's positive class.
            n_steps (int): steps of the series (>= 2); only its two ends enter the map.

        Returns:
            Tensor: shape (N, C, H, W), values in [-1, 1].
        """
        self._check(inputs, target, n_steps)
        with guarded(self.forward_func, inputs):
            ends = self._generate(inputs, torch.tensor([0, self.num_bins - 1]))
        return ends[:, 1] - ends[:, 0]

    def explain(self, inputs: Tensor, target: Any = None, n_steps: int = 10) -> ExaggerationSeries:
        """The whole series with desired and achieved posteriors.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
            target (int, list, Tensor or None): must be None or the generator's positive class.
            n_steps (int): S >= 2, steps of the series. The generator has B bins (10 for the zoo
                model); S = B visits each once, S > B repeats some.

        Returns:
            ExaggerationSeries: ``series`` (N, S, C, H, W), ``desired`` (S,), ``achieved`` (N, S).
        """
        self._check(inputs, target, n_steps)
        bins = torch.linspace(0, self.num_bins - 1, n_steps).round().long()
        with guarded(self.forward_func, inputs):
            series = self._generate(inputs, bins)
            n, s = series.shape[:2]
            with torch.no_grad(), frozen(self.forward_func):
                logits = self.forward_func(series.flatten(0, 1))
            _check_classes(logits, n * s, self.positive_class, "forward_func")
            log_p, _ = positive_posterior(logits, self.positive_class)
        return ExaggerationSeries(
            series=series, desired=bin_centers(self.num_bins)[bins].to(inputs),
            achieved=log_p.exp().view(n, s).to(inputs), bins=bins,
            positive_class=self.positive_class,
        )

    def _check(self, inputs: Tensor, target: Any, n_steps: int) -> None:
        check_images(inputs, "inputs")
        self.generator.check_inputs(inputs, "inputs")
        check_model_dtype(inputs, self.forward_func, model_name="forward_func")
        if isinstance(n_steps, bool) or not isinstance(n_steps, int):
            raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
        if n_steps < 2:
            raise ValueError(f"n_steps must be >= 2 (the two ends of the walk), got {n_steps}")
        _check_target(target, self.positive_class, inputs.shape[0])

    def _generate(self, inputs: Tensor, bins: Tensor) -> Tensor:
        """``G(x, c)`` for every image and bin: (N, len(bins), C, H, W)."""
        n, s = inputs.shape[0], bins.numel()
        param = next(self.generator.parameters(), None)
        device = param.device if param is not None else inputs.device
        # the generator is a tool: it runs in its own dtype, the series follows the inputs
        dtype = param.dtype if param is not None else inputs.dtype
        x = inputs.to(device=device, dtype=dtype).repeat(s, 1, 1, 1)
        with torch.no_grad(), frozen(self.generator):
            out = self.generator(x, bins.to(device).repeat_interleave(n))
        return out.view(s, n, *inputs.shape[1:]).transpose(0, 1).to(inputs)


def _check_classes(logits: Any, n: int, positive_class: int, name: str) -> None:
    """``logits`` must be (n, K) with the generator's positive class among the K classes."""
    check_logits(logits, n, name)
    if logits.shape[1] <= positive_class:
        raise ValueError(
            f"{name} returns {logits.shape[1]} classes but the generator walks the posterior of "
            f"class {positive_class}: the classifier and the generator do not match"
        )


def _check_target(target: Any, positive_class: int, n: int) -> None:
    if target is None:
        return
    if isinstance(target, bool):
        raise TypeError("target must be an int, a tensor of class indices or None, got bool")
    if isinstance(target, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in target):
        target = torch.tensor(target, dtype=torch.long)  # Captum's list of class indices
    if isinstance(target, int):
        values = [target]
    elif isinstance(target, Tensor) and not target.is_floating_point():
        if target.dim() > 1 or (target.dim() == 1 and target.numel() not in (1, n)):
            raise ValueError(f"target must be a scalar or have shape ({n},), "
                             f"got {tuple(target.shape)}")
        values = target.flatten().tolist()
    else:
        raise TypeError(f"target must be an int, a list or integer tensor of them, or None, "
                        f"got {type(target).__name__}")
    wrong = sorted({v for v in values if v != positive_class})
    if wrong:
        raise ValueError(f"this generator walks the posterior of class {positive_class}; target "
                         f"must be {positive_class} or None, got {wrong}")
