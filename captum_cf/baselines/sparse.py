"""``SparseCounterfactualBaseline``: the input, sparsely edited by a robust model into a class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._registry import AuditContext, Registry
from captum_cf._validation import check_logits, check_target
from captum_cf.baselines.base import Baseline
from captum_cf.robust.frank_wolfe import sparse_frank_wolfe

__all__ = ["SparseCounterfactualBaseline"]


class SparseCounterfactualBaseline(Baseline):
    r"""Reference ``x + delta``: ``x`` with a few pixels changed so a robust model sees class c.

    ``delta`` is the controllably sparse Frank-Wolfe perturbation of Roberts & Tsiligkaridis
    (2021) (:func:`captum_cf.robust.sparse_frank_wolfe`, top-k LMO, at most ``k`` changed
    pixels, ``x + delta`` in [0, 1]) that makes ``robust_model`` predict the counterfactual class
    c. An adversarially robust model only flips when the edit looks like the other class, so the
    reference is a realistic one-vs-one counterfactual that differs from the input in
    ``(1 - sparsity) * H * W`` pixels; Integrated Gradients, DeepLift, Occlusion ... from this
    reference attribute the prediction to what distinguishes the class from c.

    Any model and any input shape: on images the edit counts whole pixels (all channels), on
    other inputs (tabular rows (N, F), sequences (N, L, D)) it counts single values, and
    ``sparsity`` is the fraction of those left unchanged. Frank-Wolfe searches inside the box
    [0, 1], so this is a pixel-space baseline: inputs must lie in [0, 1] (scale tabular features
    to [0, 1] first).

    Args:
        robust_model (Callable): robust classifier, inputs (N, ...) in [0, 1] -> logits (N, K),
            e.g. ``zoo.load("digits-cnn-robust")``; used frozen, its state is restored.
        counterfactual_class (int, Tensor or "runner-up"): class c per example; ``"runner-up"``
            takes the robust model's most likely class other than the explained ``target``
            (:meth:`reference` without a target: other than its own prediction; attribution
            methods ask for ``target=``, see :attr:`needs_target`).
        sparsity (float): fraction of pixels left unchanged, in [0, 1).
        k (int, optional): number of changed pixels (overrides ``sparsity``).
        eps (float, optional): L1 budget (default ``k``: a changed pixel may move by up to 1).
        n_steps (int): Frank-Wolfe steps (>= 2).

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.attr import IntegratedGradients
        >>> base = SparseCounterfactualBaseline(zoo.load("digits-cnn-robust"), "runner-up", 0.95)
        >>> x = torch.rand(2, 1, 32, 32)
        >>> attr = IntegratedGradients(zoo.load("digits-cnn")).attribute(x, base, target=0)
    """

    pixel_space = True

    @property
    def needs_target(self) -> bool:  # type: ignore[override]
        """True with ``"runner-up"``: its class is "most likely other than the explained
        target", so the attribution methods ask for ``target=`` (neuron methods have none: pass
        ``reference(x)``, which takes the robust model's own prediction); a fixed class needs no
        target."""
        return isinstance(self.counterfactual_class, str)

    def __init__(
        self,
        robust_model: Callable[[Tensor], Tensor],
        counterfactual_class: Any = "runner-up",
        sparsity: float = 0.95,
        k: int | None = None,
        eps: float | None = None,
        n_steps: int = 20,
    ) -> None:
        if not callable(robust_model):
            raise TypeError(f"robust_model must be callable, got {type(robust_model).__name__}")
        if isinstance(counterfactual_class, str) and counterfactual_class != "runner-up":
            raise ValueError(
                f"counterfactual_class must be a class index, a tensor of them or "
                f"'runner-up', got {counterfactual_class!r}"
            )
        if (
            isinstance(sparsity, bool)
            or not isinstance(sparsity, (int, float))
            or not 0 <= sparsity < 1
        ):
            raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
            raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
        self._model = robust_model
        self.counterfactual_class = counterfactual_class
        self.sparsity = float(sparsity)
        self.k = k
        self.eps = eps
        self.n_steps = n_steps

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        image = inputs.dim() == 4
        # other shapes become (N, 1, 1, values): each value is one "pixel" of the top-k edit
        units = inputs.shape[2] * inputs.shape[3] if image else inputs[0].numel()
        k = self.k if self.k is not None else max(1, round((1 - self.sparsity) * units))
        if k > units:
            what = "pixels" if image else "values per example"
            raise ValueError(f"k ({k}) exceeds the number of {what} ({units})")
        cf = self._classes(inputs, target)
        if image:
            model, flat = self._model, inputs
        else:
            shape = inputs.shape
            flat = inputs.reshape(shape[0], 1, 1, -1)

            def model(z: Tensor) -> Tensor:
                return self._model(z.reshape(z.shape[0], *shape[1:]))

        # frozen here too: Frank-Wolfe freezes only what it is given (a wrapper when reshaped)
        with frozen(self._model):
            delta = sparse_frank_wolfe(model, flat, cf, k, self.eps, self.n_steps, targeted=True)
        return inputs + delta.reshape(inputs.shape)

    def _classes(self, inputs: Tensor, target: Any) -> Tensor:
        with frozen(self._model), torch.no_grad():
            logits = check_logits(self._model(inputs), inputs.shape[0], "robust_model")
        n, num_classes = logits.shape
        if not isinstance(self.counterfactual_class, str):
            cf = check_target(self.counterfactual_class, n, num_classes, "counterfactual_class")
            return cf.to(inputs.device)
        explained = check_target(target, n, num_classes)
        explained = logits.argmax(1) if explained is None else explained.to(inputs.device)
        others = logits.scatter(1, explained[:, None], float("-inf"))
        return others.argmax(1)


def _robust_available(ctx: AuditContext) -> bool:
    from captum_cf.baselines._trained import trained_available

    return trained_available(ctx, "sparse-counterfactual")


def _factory(ctx: AuditContext) -> Baseline:
    from captum_cf.baselines._trained import load_trained

    return SparseCounterfactualBaseline(
        load_trained(ctx, "sparse-counterfactual"), "runner-up", sparsity=0.95, n_steps=20
    )


def register(registry: Registry[Baseline]) -> None:
    """Add ``sparse-counterfactual`` (digits, when the robust zoo model is installed, or a
    robust classifier given as ``baseline_weights``)."""
    registry.register(
        "sparse-counterfactual",
        _factory,
        "input with 5 % of its pixels edited (Frank-Wolfe top-k) until digits-cnn-robust sees the "
        "runner-up class (or --baseline-weights sparse-counterfactual=FILE of captum-cf train "
        "robust)",
        available=_robust_available,
        needs="a robust classifier: --baseline-weights sparse-counterfactual=FILE of captum-cf "
        "train robust (the zoo has one for digits)",
    )
