"""Deletion and insertion curves (Petsiuk, Das & Saenko, "RISE", BMVC 2018).

Pixels are ranked by their attribution (summed over channels), most important first. Deletion
removes them in that order and watches the class score fall; insertion starts from the fully
removed image and reveals them in that order, watching the score rise. "Removed" means whatever a
:class:`~captum_cf.baselines.Baseline` puts there, through its ``fill(inputs, keep)``: a constant,
a blur, an inpainting. A good explanation gives a low deletion AUC and a high insertion AUC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_model_dtype
from captum_cf.baselines.base import Baseline
from captum_cf.baselines.blur import BlurBaseline
from captum_cf.baselines.constant import ConstantBaseline
from captum_cf.metrics._common import (
    ScoreFn,
    check_positive_int,
    class_scores,
    higher_is_better,
    predicted_or_checked_target,
    resolve_score,
    saliency_map,
    score_checks,
)

__all__ = ["Curve", "deletion", "insertion"]

# RISE's defaults: delete to black, insert into a blurred copy (stateless, safe to share).
_BLACK = ConstantBaseline(0.0)
_BLUR = BlurBaseline(sigma=5.0)


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve for a batch of explanations.

    Attributes:
        kind (str): ``"deletion"`` or ``"insertion"``.
        fractions (Tensor): shape (S,), fraction of pixels removed (deletion) or revealed
            (insertion) at each step, from 0 to 1.
        scores (Tensor): shape (N, S), the class score of each example at each step.
        auc (Tensor): shape (N,), area under each curve divided by the fraction range, i.e. the
            trapezoidal mean score; in [0, 1] for probability scores.
        higher_is_better (bool): False for deletion, True for insertion.
    """

    kind: str
    fractions: Tensor
    scores: Tensor
    auc: Tensor
    higher_is_better: bool

    @property
    def mean_auc(self) -> float:
        """The AUC averaged over the batch."""
        return float(self.auc.mean())


@higher_is_better(False)
def deletion(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    baseline: Baseline = _BLACK,
    n_steps: int = 32,
    batch_size: int = 256,
    score: str | ScoreFn = "softmax",
    show_progress: bool = False,
) -> Curve:
    r"""Deletion curve: remove the most important pixels first; a steep fall is a good explanation.

    With pixels :math:`p_1, \dots, p_{HW}` sorted by decreasing attribution (ties keep raster
    order), step :math:`k` removes the first :math:`c_k = \mathrm{round}(k\,HW / n)` of them:

    .. math:: s_k = f_t\big(\mathrm{fill}(x, \mathrm{keep}_k)\big),\quad
        \mathrm{keep}_k(p_j) = [\, j > c_k \,],\quad
        \mathrm{AUC} = \frac{1}{2}\sum_k (s_k + s_{k+1})(c_{k+1} - c_k) / HW.

    Args:
        forward_func (callable): model mapping (B, C, H, W) images in [0, 1] to (B, K) logits.
            An ``nn.Module`` is evaluated in eval mode and left exactly as it was.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        attributions (Tensor): shape (N, C', H, W) (any C') or (N, H, W); summed over channels.
        target (int, sequence or Tensor, optional): class per example; None = predicted class.
        baseline (Baseline): what replaces removed pixels, through ``baseline.fill``; default
            black (``ConstantBaseline(0.0)``), as in RISE.
        n_steps (int): number of removal steps; the curve has ``n_steps + 1`` points.
        batch_size (int): images per forward pass.
        score (str or callable): ``"softmax"`` (default), ``"logit"``, ``"sigmoid"`` or a function
            mapping (B, K) outputs to (B, K) scores; the target column is used. With
            ``"softmax"`` a model whose outputs are already probabilities is warned about.
        show_progress (bool): tqdm progress bar over forward passes.

    Returns:
        Curve: fractions (S,), scores (N, S), auc (N,); ``higher_is_better`` is False.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> curve = deletion(model, x, torch.rand(2, 1, 8, 8), target=0, n_steps=8)
        >>> curve.scores.shape, curve.auc.shape
        (torch.Size([2, 9]), torch.Size([2]))
    """
    return _curve("deletion", **locals())


@higher_is_better(True)
def insertion(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    baseline: Baseline = _BLUR,
    n_steps: int = 32,
    batch_size: int = 256,
    score: str | ScoreFn = "softmax",
    show_progress: bool = False,
) -> Curve:
    r"""Insertion curve: reveal the most important pixels first; a steep rise is a good explanation.

    Starts from ``baseline.fill(x, 0)`` (everything removed) and reveals pixels in order of
    decreasing attribution: :math:`\mathrm{keep}_k(p_j) = [\, j \le c_k \,]`; otherwise as
    :func:`deletion`.

    Args:
        forward_func (callable): model mapping (B, C, H, W) images in [0, 1] to (B, K) logits.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        attributions (Tensor): shape (N, C', H, W) or (N, H, W); summed over channels.
        target (int, sequence or Tensor, optional): class per example; None = predicted class.
        baseline (Baseline): the "nothing revealed" content; default a blurred copy
            (``BlurBaseline(sigma=5.0)``, RISE's blur).
        n_steps (int): number of steps; the curve has ``n_steps + 1`` points.
        batch_size (int): images per forward pass.
        score (str or callable): as in :func:`deletion`.
        show_progress (bool): tqdm progress bar.

    Returns:
        Curve: ``higher_is_better`` is True.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> insertion(model, x, torch.rand(2, 1, 8, 8), target=[0, 2], n_steps=4).fractions
        tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """
    return _curve("insertion", **locals())


def _curve(
    kind: str,
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any,
    baseline: Baseline,
    n_steps: int,
    batch_size: int,
    score: str | ScoreFn,
    show_progress: bool,
) -> Curve:
    check_images(inputs, "inputs")
    check_model_dtype(inputs, forward_func)
    amap = saliency_map(attributions, tuple(inputs.shape)).to(inputs.device)
    n_steps = check_positive_int(n_steps, "n_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    score_fn = resolve_score(score)
    if not isinstance(baseline, Baseline):
        raise TypeError(
            f"baseline must be a captum_cf.baselines.Baseline, got {type(baseline).__name__}"
        )
    if not callable(forward_func):
        raise TypeError("forward_func must be callable")
    hw = inputs.shape[-2] * inputs.shape[-1]
    rank = _pixel_rank(amap)
    counts = torch.round(torch.arange(n_steps + 1, dtype=torch.float64) * hw / n_steps).long()
    with frozen(forward_func), torch.no_grad():
        tgt = predicted_or_checked_target(forward_func, inputs, target, batch_size=batch_size,
                                          stacklevel=4, **score_checks(score))
        scores = _scores(
            kind,
            forward_func,
            inputs,
            tgt,
            rank,
            counts,
            baseline,
            score_fn,
            batch_size,
            show_progress,
        )
    fractions = (counts.double() / hw).to(scores.dtype).to(scores.device)
    return Curve(kind, fractions, scores, _normalised_auc(fractions, scores), kind == "insertion")


def _pixel_rank(amap: Tensor, order: str = "morf") -> Tensor:
    """Position of each pixel in the removal order, (N, HW): ``"morf"`` by decreasing
    attribution, ties in raster order; ``"lerf"`` exactly the reverse of that order (ties in
    reverse raster order), so that LeRF at fraction ``q`` removes the pixels that an insertion
    at ``1 - q`` has not revealed yet, also when the map has ties (Occlusion's and
    FeatureAblation's patches)."""
    flat = amap.flatten(1)
    ordered = torch.sort(flat, dim=1, descending=True, stable=True).indices
    positions = torch.arange(flat.shape[1], device=flat.device)
    if order == "lerf":
        positions = positions.flip(0)
    rank = torch.empty_like(ordered)
    rank.scatter_(1, ordered, positions.expand_as(ordered).contiguous())
    return rank


def _scores(
    kind: str,
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    target: Tensor,
    rank: Tensor,
    counts: Tensor,
    baseline: Baseline,
    score_fn: ScoreFn,
    batch_size: int,
    show_progress: bool,
) -> Tensor:
    n, _, h, w = inputs.shape
    steps = counts.numel()
    counts = counts.to(inputs.device)
    # Composite baselines are evaluated once per image, not once per step.
    reference = (
        baseline.reference(inputs, target) if type(baseline)._fill is Baseline._fill else None
    )
    chunks = range(0, n * steps, batch_size)
    if show_progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=kind, unit="batch")
    out = []
    for start in chunks:
        flat = torch.arange(start, min(start + batch_size, n * steps), device=inputs.device)
        img, step = flat // steps, flat % steps
        gone = rank[img] < counts[step, None]
        keep = (~gone if kind == "deletion" else gone).to(inputs.dtype).view(-1, 1, h, w)
        x = inputs[img]
        if reference is None:
            filled = baseline.fill(x, keep, target[img])
        else:
            filled = keep * x + (1 - keep) * reference[img]
        out.append(class_scores(forward_func, filled, target[img], score_fn, filled.shape[0]))
    return torch.cat(out).view(n, steps)


def _normalised_auc(fractions: Tensor, scores: Tensor) -> Tensor:
    width = fractions[-1] - fractions[0]
    return torch.trapezoid(scores, fractions, dim=1) / width
