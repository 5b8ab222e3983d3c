"""``GANMEXBaseline``: the closest realistic image of another class, made by a generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf.baselines._classes import check_counterfactual_class, resolve_classes
from captum_cf.baselines.base import Baseline

__all__ = ["GANMEXBaseline"]


class GANMEXBaseline(Baseline):
    """One-vs-one baseline ``G(x, B)``: the input translated to class ``B`` by a GANMEX generator.

    Shih, Tien & Karnin, "GANMEX: One-vs-One Attributions using GAN-based Model
    Explainability", ICML 2021. A path method with baseline ``x' = G(x, B)`` answers "why class
    ``A`` and not class ``B``": by completeness, IG sums to ``f_A(x) - f_A(G(x, B))``, and
    because ``G`` changes only what separates ``A`` from ``B`` (its L1 term keeps the rest), the
    attribution concentrates on those features. The generator must have been trained for the
    data (and ideally with the classifier in the loop: :class:`captum_cf.generative.GANMEXTrainer`).

    Any generator works: ``G(inputs, classes) -> tensor shaped like inputs``, on images, tabular
    rows (N, F) or sequences. captum_cf's :class:`~captum_cf.generative.GANMEXGenerator` knows
    its classes and was trained on images in [0, 1], so it makes this baseline pixel-space
    (inputs must lie in [0, 1]); another generator needs ``num_classes`` and takes any values
    unless ``pixel_space=True``.

    Args:
        generator (GANMEXGenerator or callable): ``G(inputs, classes) -> tensor``, e.g.
            ``captum_cf.zoo.load("digits-ganmex")``, or any ``nn.Module``/callable taking the
            inputs (N, ...) and a long tensor of classes (N,). A module is used in eval mode
            without gradients; its state is restored after every call.
        counterfactual_class (int, Tensor or "runner-up"): ``B``. An int: the same class for
            every example; a tensor of shape (N,): one class per example; ``"runner-up"``: the
            classifier's most likely class other than ``target`` (other than its prediction
            when ``target`` is None).
        classifier (callable, optional): pixel-space classifier returning (N, K) logits; needed
            for ``"runner-up"`` only.
        batch_size (int): examples per generator forward pass.
        num_classes (int, optional): number of classes; read from a GANMEXGenerator's config,
            required for any other generator.
        pixel_space (bool, optional): inputs must lie in [0, 1]; default True for a
            GANMEXGenerator, False for any other generator.

    ``needs_target`` is False: ``reference(inputs, target)`` works without a target. When given,
    ``target`` (the explained class ``A``) is excluded by ``"runner-up"``, and a fixed ``B`` equal
    to ``A`` raises a ValueError (the "counterfactual" would be the input itself).

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.attr import IntegratedGradients
        >>> model, gen = zoo.load("digits-cnn"), zoo.load("digits-ganmex")
        >>> x = torch.rand(2, 1, 32, 32)
        >>> base = GANMEXBaseline(gen, counterfactual_class=8)
        >>> attr = IntegratedGradients(model).attribute(x, baselines=base, target=3)
    """

    needs_target = False

    def __init__(
        self,
        generator: Any,
        counterfactual_class: int | Tensor | str,
        classifier: Callable[[Tensor], Tensor] | None = None,
        batch_size: int = 64,
        num_classes: int | None = None,
        pixel_space: bool | None = None,
    ) -> None:
        if not callable(generator):
            raise TypeError(
                "generator must be a GANMEXGenerator (e.g. captum_cf.zoo.load('digits-ganmex')) "
                f"or a callable G(inputs, classes), got {type(generator).__name__}"
            )
        ours = hasattr(generator, "check_inputs") and hasattr(
            getattr(generator, "config", None), "num_classes"
        )
        if num_classes is None:
            if not ours:
                raise ValueError(
                    f"num_classes is required: the generator ({type(generator).__name__}) is not "
                    "a GANMEXGenerator, whose config says how many classes it knows"
                )
            num_classes = int(generator.config.num_classes)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if pixel_space is not None and not isinstance(pixel_space, bool):
            raise TypeError(f"pixel_space must be a bool or None, got {pixel_space!r}")
        self.generator = generator
        self.pixel_space = ours if pixel_space is None else pixel_space
        self.num_classes = num_classes
        self.counterfactual_class = check_counterfactual_class(
            counterfactual_class, self.num_classes, classifier
        )
        self.classifier = classifier
        self.batch_size = batch_size

    def classes(self, inputs: Tensor, target: Any = None) -> Tensor:
        """The counterfactual class ``B`` of each example, shape (N,)."""
        return resolve_classes(
            self.counterfactual_class, inputs, target, self.num_classes, self.classifier
        )

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        if hasattr(self.generator, "check_inputs"):
            self.generator.check_inputs(inputs, "inputs")
        classes = self.classes(inputs, target)
        params = getattr(self.generator, "parameters", None)
        param = next(params(), None) if callable(params) else None
        dtype = param.dtype if param is not None else inputs.dtype
        device = param.device if param is not None else inputs.device
        outs = []
        with torch.no_grad(), frozen(self.generator):
            for i in range(0, inputs.shape[0], self.batch_size):
                chunk = inputs[i : i + self.batch_size].to(device=device, dtype=dtype)
                out = self.generator(chunk, classes[i : i + self.batch_size].to(device))
                if not isinstance(out, Tensor) or out.shape != chunk.shape:
                    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ValueError(
                        f"generator must return a tensor shaped like its inputs "
                        f"{tuple(chunk.shape)}, got {got}"
                    )
                outs.append(out)
        # the generator's dtype and device are its own; the reference follows the inputs
        return torch.cat(outs).to(device=inputs.device, dtype=inputs.dtype)


def _available(ctx: Any) -> bool:
    """A trained generator exists (the audit's ``baseline_weights`` or the data set's zoo
    generator) and fits the context's images and classes."""
    from captum_cf.baselines._trained import trained_available

    return trained_available(ctx, "ganmex")


def _from_context(ctx: Any) -> GANMEXBaseline:
    """Audit factory: the trained generator, towards the model's runner-up class."""
    from captum_cf.baselines._trained import load_trained

    return GANMEXBaseline(load_trained(ctx, "ganmex"), "runner-up", classifier=ctx.model)
