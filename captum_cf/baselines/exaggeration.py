"""``ExaggerationBaseline``: the far end of a progressive-exaggeration walk as the reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_logits
from captum_cf.baselines.base import Baseline
from captum_cf.generative.conditional import posterior_to_bin
from captum_cf.generative.exaggeration_trainer import positive_posterior

__all__ = ["ExaggerationBaseline"]


class ExaggerationBaseline(Baseline):
    """Reference ``G(x, bin(q))``: the input edited until the classifier's posterior is ``q``.

    Singla et al., "Explanation by Progressive Exaggeration" (ICLR 2020). The generator
    ``G(x, c)`` walks the posterior ``p(x)`` of one positive class (``generator.config.
    positive_class``, e.g. 8) through ``B`` bins. With ``posterior=0.0`` the reference is the
    input made "not an 8" with minimal edits, so IG from it answers "what makes this an 8";
    with ``posterior="opposite"`` each input goes to the bin of ``1 - p(x)`` (an 8 loses its
    8-ness, any other digit becomes an 8), which serves every prediction.

    ``target`` is not used (``needs_target`` is False): the generator knows one decision only.

    Args:
        generator (ExaggerationGenerator): e.g. ``captum_cf.zoo.load("digits-exaggeration")``;
            used in eval mode without gradients, its state restored.
        classifier (callable): the classifier the generator was trained against, images
            (N, C, H, W) in [0, 1] -> logits (N, K); used (frozen) for ``"opposite"``.
        posterior (float or "opposite"): desired posterior of the positive class in [0, 1].
        batch_size (int): images per generator pass.

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.attr import IntegratedGradients
        >>> model, gen = zoo.load("digits-cnn"), zoo.load("digits-exaggeration")
        >>> base = ExaggerationBaseline(gen, model, posterior=0.0)
        >>> attr = IntegratedGradients(model).attribute(torch.rand(2, 1, 32, 32), baselines=base,
        ...                                             target=8)
    """

    needs_target = False
    input_kind = "images"
    pixel_space = True

    def __init__(self, generator: Any, classifier: Callable[[Tensor], Tensor],
                 posterior: float | str = 0.0, batch_size: int = 64) -> None:
        config = getattr(generator, "config", None)
        if config is None or not hasattr(config, "num_bins") or not callable(generator):
            raise TypeError("generator must be an ExaggerationGenerator (e.g. captum_cf.zoo.load("
                            f"'digits-exaggeration')), got {type(generator).__name__}")
        if not callable(classifier):
            raise TypeError(f"classifier must be callable, got {type(classifier).__name__}")
        if isinstance(posterior, str):
            if posterior != "opposite":
                raise ValueError(f"posterior must be a float in [0, 1] or 'opposite', "
                                 f"got {posterior!r}")
        elif isinstance(posterior, bool) or not isinstance(posterior, (int, float)) or not (
            0.0 <= float(posterior) <= 1.0
        ):
            raise ValueError(f"posterior must be a float in [0, 1] or 'opposite', "
                             f"got {posterior!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.generator = generator
        self.classifier = classifier
        self.posterior = posterior if isinstance(posterior, str) else float(posterior)
        self.batch_size = batch_size

    def bins(self, inputs: Tensor) -> Tensor:
        """Generator bin of each input's reference, shape (N,), long."""
        config = self.generator.config
        if self.posterior != "opposite":
            value = torch.full((inputs.shape[0],), float(self.posterior))
            return posterior_to_bin(value, config.num_bins)
        with torch.no_grad(), frozen(self.classifier):
            logits = check_logits(self.classifier(inputs), inputs.shape[0], "classifier")
        if logits.shape[1] <= config.positive_class:
            raise ValueError(
                f"classifier returns {logits.shape[1]} classes but the generator walks the "
                f"posterior of class {config.positive_class}: they do not match"
            )
        log_p, _ = positive_posterior(logits, config.positive_class)
        return posterior_to_bin(1 - log_p.exp().cpu(), config.num_bins)

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        self.generator.check_inputs(inputs, "inputs")
        bins = self.bins(inputs)
        param = next(self.generator.parameters(), None)
        device = param.device if param is not None else inputs.device
        dtype = param.dtype if param is not None else inputs.dtype
        outs = []
        with torch.no_grad(), frozen(self.generator):
            for i in range(0, inputs.shape[0], self.batch_size):
                chunk = inputs[i : i + self.batch_size].to(device=device, dtype=dtype)
                outs.append(self.generator(chunk, bins[i : i + self.batch_size].to(device)))
        return torch.cat(outs).to(device=inputs.device, dtype=inputs.dtype)


def _available(ctx: Any) -> bool:
    """A trained generator exists (the audit's ``baseline_weights`` or the data set's zoo
    generator) and fits the context's images and classes."""
    from captum_cf.baselines._trained import trained_available

    return trained_available(ctx, "exaggeration")


def _from_context(ctx: Any) -> ExaggerationBaseline:
    """Audit factory: the trained generator, each input walked to the opposite posterior."""
    from captum_cf.baselines._trained import load_trained

    return ExaggerationBaseline(load_trained(ctx, "exaggeration"), ctx.model, posterior="opposite")
