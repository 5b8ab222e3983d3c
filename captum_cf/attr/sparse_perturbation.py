r"""``SparsePerturbation``: controllably sparse counterfactual perturbations (Frank-Wolfe)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_model_dtype, check_target
from captum_cf.robust.frank_wolfe import frank_wolfe, sparse_frank_wolfe

__all__ = ["SparsePerturbation"]

_NORMS = ("l1-topk", "l1", "l2", "linf")
_MODES = ("towards-target", "away-from-prediction")
_DEFAULT_EPS = {"l2": 2.0, "linf": 0.1}


class SparsePerturbation(GradientAttribution):
    r"""The perturbation that moves a classifier towards (or away from) a class, k pixels at a time.

    Roberts & Tsiligkaridis, "Controllably Sparse Perturbations of Robust Classifiers for
    Explaining Predictions and Probing Learned Concepts" (MLVis 2021). Frank-Wolfe maximises
    :math:`J(\delta) = -\ell(f(x + \delta), t)` ("towards-target": what would make it a t?) or
    :math:`+\ell(f(x + \delta), \hat y)` ("away-from-prediction": what made it a :math:`\hat y`?)
    over :math:`\{\|\delta\|_1 \le \epsilon, \|\delta\|_\infty \le \epsilon / k,\;
    x + \delta \in [0, 1]\}`
    with the top-k linear maximisation oracle (no projection: each step changes at most k pixels),
    step :math:`2 / (s + 2)`. With ``norm="l1-topk"`` the result changes at most ``k`` pixels
    (see :func:`captum_cf.robust.sparse_frank_wolfe`: explore, then refine on the k pixels that
    moved most). On an adversarially robust model (``zoo.load("digits-cnn-robust")``) the changed
    pixels form strokes a person recognises; on a standard model they look like noise.

    ``norm="l1"``, ``"l2"``, ``"linf"`` run plain Frank-Wolfe over that ball (intersected with the
    image box) for comparison.

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.attr import SparsePerturbation
        >>> model = zoo.load("digits-cnn-robust")
        >>> x = torch.rand(2, 1, 32, 32)
        >>> delta = SparsePerturbation(model).attribute(x, target=3, sparsity=0.98)
        >>> bool(((delta.abs().sum(1) > 0).sum((1, 2)) <= 20).all())
        True
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        r"""
        Args:
            forward_func (Callable): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K).
        """
        GradientAttribution.__init__(self, forward_func)

    @log_usage(part_of_slo=False)
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: Any = None,
        sparsity: float | None = 0.99,
        k: int | None = None,
        eps: float | None = None,
        n_steps: int = 20,
        norm: str = "l1-topk",
        mode: str = "towards-target",
        pixel_groups: bool = True,
        show_progress: bool = False,
    ) -> Tensor:
        r"""Compute the sparse counterfactual perturbation ``delta``.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1]; not modified.
            target (int, list or Tensor, optional): "towards-target": the counterfactual class t
                per example (required). "away-from-prediction": the class to move away from
                (default: the model's prediction).
            sparsity (float, optional): fraction of pixels left unchanged, in [0, 1); the number of
                changed pixels is ``k = max(1, round((1 - sparsity) * H * W))``. Ignored when ``k``
                is given.
            k (int, optional): number of pixels that may change, 1 <= k <= H * W.
            eps (float, optional): radius. Default: ``k`` for "l1-topk" and "l1" (each changed
                value may move by up to 1), 2.0 for "l2", 0.1 for "linf".
            n_steps (int): Frank-Wolfe steps (gradient evaluations), >= 2.
            norm (str): "l1-topk" (sparse), "l1", "l2" or "linf".
            mode (str): "towards-target" or "away-from-prediction".
            pixel_groups (bool): with "l1-topk", count sparsity in pixels (all channels of a
                pixel change together) rather than in coordinates.
            show_progress (bool): tqdm bars over the steps.

        Returns:
            Tensor: ``delta`` of shape (N, C, H, W); ``inputs + delta`` is in [0, 1] and is the
            counterfactual input.
        """
        check_images(inputs, "inputs")
        check_model_dtype(inputs, self.forward_func)
        k_eff, eps_eff = self._check_args(
            inputs, sparsity, k, eps, n_steps, norm, mode, pixel_groups
        )
        target_t = self._resolve_target(inputs, target, mode)
        targeted = mode == "towards-target"
        if norm == "l1-topk":
            return sparse_frank_wolfe(
                self.forward_func,
                inputs,
                target_t,
                k_eff,
                eps_eff,
                n_steps,
                targeted=targeted,
                pixel_groups=pixel_groups,
                show_progress=show_progress,
            )
        return frank_wolfe(
            self.forward_func,
            inputs,
            target_t,
            norm,
            eps_eff,
            n_steps,
            targeted=targeted,
            show_progress=show_progress,
        )

    def _resolve_target(self, inputs: Tensor, target: Any, mode: str) -> Tensor:
        n = inputs.shape[0]
        if target is None and mode == "towards-target":
            raise ValueError(
                "target is required with mode='towards-target': the counterfactual "
                "class to move towards"
            )
        with frozen(self.forward_func), torch.no_grad():
            logits = self.forward_func(inputs)
        if logits.dim() != 2:
            raise ValueError(f"forward_func must return logits (N, K), got {tuple(logits.shape)}")
        if target is None:
            return logits.argmax(1)
        return check_target(target, n, logits.shape[1])

    @staticmethod
    def _check_args(
        inputs: Tensor,
        sparsity: float | None,
        k: int | None,
        eps: float | None,
        n_steps: int,
        norm: str,
        mode: str,
        pixel_groups: bool,
    ) -> tuple[int, float]:
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
            raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
        units = inputs[0, 0].numel() if pixel_groups else inputs[0].numel()
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= units:
                raise ValueError(f"k must be an int in [1, {units}], got {k!r}")
        elif sparsity is None or isinstance(sparsity, bool) or not 0 <= sparsity < 1:
            raise ValueError(f"sparsity must be a number in [0, 1) (or give k), got {sparsity!r}")
        else:
            k = max(1, round((1 - sparsity) * units))
        if eps is None:
            eps = _DEFAULT_EPS.get(norm, float(k))
        elif (
            isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf")
        ):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        return k, float(eps)


def _explainer(ctx: Any, sparsity: float = 0.9, n_steps: int = 10) -> Any:
    """Audit factory: ``explain(inputs, target, baseline) -> |delta|`` (N, C, H, W).

    The pixels that must change to move the model away from ``target`` (the fewest, the most
    important); the baseline is not used. 10 Frank-Wolfe steps keep it as cheap as IG.
    """
    method = SparsePerturbation(ctx.model)

    def explain(inputs: Tensor, target: Any, baseline: Any) -> Tensor:
        delta = method.attribute(
            inputs, target=target, sparsity=sparsity, n_steps=n_steps, mode="away-from-prediction"
        )
        return delta.abs()

    return explain
