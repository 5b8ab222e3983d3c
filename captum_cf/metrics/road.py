"""ROAD curves (Rong et al., ICML 2022) and the symmetric relevance gain (Blücher et al., 2024).

ROAD, "Remove And Debias", removes pixels in the order of an attribution map and watches the
class score, like deletion, but removes them with noisy linear imputation
(:class:`~captum_cf.baselines.NoisyLinearImputation`): each removed pixel is the weighted mean of
its neighbours plus a little noise, so the shape of the removed region tells the model nothing
about the class. It is scored in both orders: most relevant first (MoRF; a steep fall is good)
and least relevant first (LeRF; a flat curve is good).

The symmetric relevance gain of Blücher, Vielhaben & Strodthoff ("Decoupling Pixel Flipping and
Occlusion Strategy for Consistent XAI Benchmarks", TMLR 2024) is the area between the LeRF and
the MoRF curve of one removal. Rankings of explanations by MoRF or LeRF alone flip with the
removal; their difference ranks consistently across removals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_model_dtype
from captum_cf.baselines.base import Baseline
from captum_cf.baselines.road import NoisyLinearImputation
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
from captum_cf.metrics.deletion import Curve, _normalised_auc, _pixel_rank, _scores

__all__ = ["removal_curves", "road", "symmetric_relevance_gain"]

#: ROAD's removal (Rong et al.'s default noise 0.01); stateless, safe to share
_ROAD = NoisyLinearImputation(noise=0.01, seed=0)
_ORDERS = ("morf", "lerf")
_MORF_KINDS = ("deletion", "road-morf")
_LERF_KINDS = ("insertion", "road-lerf")


def _accuracy(out: Tensor) -> Tensor:
    """1 for the predicted class, 0 elsewhere: the target column is ``argmax == target``."""
    return torch.nn.functional.one_hot(out.argmax(dim=1), out.shape[1]).to(out.dtype)


@higher_is_better(False)
def road(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    order: str = "morf",
    percentages: Sequence[float] = tuple(range(0, 101, 10)),
    removal: Baseline | None = None,
    batch_size: int = 256,
    score: str | ScoreFn = "softmax",
    show_progress: bool = False,
) -> Curve:
    r"""ROAD curve: remove pixels by attribution with noisy linear imputation, watch the score.

    Pixels are ranked by attribution (summed over channels), most relevant first for
    ``order="morf"`` (ties in raster order), least relevant first for ``order="lerf"`` (the
    reverse of MoRF's order, ties included). At
    percentage :math:`p` the first :math:`c_p = \lfloor HW p / 100 \rfloor` pixels of that
    order are removed (as ROAD's reference code and Quantus count them):

    .. math:: s_p = f_t\big(\mathrm{removal.fill}(x, \mathrm{keep}_p)\big), \qquad
        \mathrm{AUC} = \frac{1}{2}\sum_k (s_{p_k} + s_{p_{k+1}})
        \frac{c_{p_{k+1}} - c_{p_k}}{c_{p_K} - c_{p_0}}.

    MoRF: a good explanation makes the score fall fast (low AUC). LeRF: removing the least
    relevant pixels first should leave the score high (high AUC). ROAD itself reports accuracy
    (``score="accuracy"``: 1 when the model still predicts the target class); the default here
    is the softmax probability of the target, a smoother per-image value.

    Args:
        forward_func (callable): model mapping (B, C, H, W) images in [0, 1] to (B, K) logits.
            An ``nn.Module`` is evaluated in eval mode and left exactly as it was.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        attributions (Tensor): shape (N, C', H, W) (any C') or (N, H, W); summed over channels.
        target (int, sequence or Tensor, optional): class per example; None = predicted class.
        order (str): ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        percentages (sequence of float): increasing percentages of pixels removed, in
            [0, 100], at least two; default 0, 10, ..., 100.
        removal (Baseline, optional): what replaces removed pixels, through ``removal.fill``;
            default ROAD's :class:`~captum_cf.baselines.NoisyLinearImputation` (noise 0.01).
        batch_size (int): images per forward pass (all steps of a batch share passes).
        score (str or callable): ``"softmax"`` (default), ``"accuracy"``, ``"logit"``,
            ``"sigmoid"`` or a function mapping (B, K) outputs to (B, K) scores.
        show_progress (bool): tqdm progress bar over forward passes.

    Returns:
        Curve: ``kind`` ``"road-morf"`` or ``"road-lerf"``; fractions (S,) = removed fraction
        :math:`c_p / HW`; scores (N, S); auc (N,); ``higher_is_better`` False for MoRF, True
        for LeRF (the function's own ``higher_is_better`` is MoRF's, the default order).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> curve = road(model, x, torch.rand(2, 1, 8, 8), target=0, percentages=[0, 50, 100])
        >>> curve.kind, curve.fractions.tolist(), curve.higher_is_better
        ('road-morf', [0.0, 0.5, 1.0], False)
    """
    check_images(inputs, "inputs")
    amap = saliency_map(attributions, tuple(inputs.shape)).to(inputs.device)
    if order not in _ORDERS:
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    hw = inputs.shape[-2] * inputs.shape[-1]
    counts = _counts(percentages, hw)
    batch_size = check_positive_int(batch_size, "batch_size")
    score_fn = _accuracy if score == "accuracy" else resolve_score(score)
    removal = _ROAD if removal is None else removal
    if not isinstance(removal, Baseline):
        raise TypeError(
            f"removal must be a captum_cf.baselines.Baseline or None, got {type(removal).__name__}"
        )
    if not callable(forward_func):
        raise TypeError("forward_func must be callable")
    check_model_dtype(inputs, forward_func)
    rank = _pixel_rank(amap, order)
    with frozen(forward_func), torch.no_grad():
        tgt = predicted_or_checked_target(forward_func, inputs, target, batch_size=batch_size,
                                          **score_checks(score))
        scores = _scores(
            "deletion", forward_func, inputs, tgt, rank, counts, removal, score_fn, batch_size,
            show_progress,
        )
    fractions = (counts.double() / hw).to(scores.dtype).to(scores.device)
    return Curve(f"road-{order}", fractions, scores, _normalised_auc(fractions, scores),
                 order == "lerf")


def removal_curves(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    removals: Mapping[str, Baseline] | None = None,
    percentages: Sequence[float] = tuple(range(0, 101, 10)),
    batch_size: int = 256,
    score: str | ScoreFn = "softmax",
) -> dict[str, tuple[Curve, Curve]]:
    """MoRF and LeRF curves of one map under several removals, sharing forward passes.

    The same as ``(road(..., "morf", removal=r), road(..., "lerf", removal=r))`` for each
    removal ``r``, but every forward pass carries the images of all removals and both orders
    for the same (image, step) pairs, so a model sees full batches even for few images; pass
    each pair to :func:`symmetric_relevance_gain` for the SRG per removal.

    Args:
        forward_func (callable): model mapping (B, C, H, W) images in [0, 1] to (B, K) logits.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        attributions (Tensor): shape (N, C', H, W) or (N, H, W); summed over channels.
        target (int, sequence or Tensor, optional): class per example; None = predicted class.
        removals (mapping, optional): name -> :class:`~captum_cf.baselines.Baseline`; default
            ``{"road": NoisyLinearImputation()}``.
        percentages (sequence of float): as in :func:`road`.
        batch_size (int): images per forward pass (at least one (image, step) pair per pass).
        score (str or callable): as in :func:`road`.

    Returns:
        dict: name -> ``(morf, lerf)`` curves, as :func:`road` returns them (the same
        values: ROAD's noisy removal gives an image the same noise in any batch), except for a
        constant map, which orders no pixel: both of its curves are the mean of the two orders
        (its SRG exactly 0; ties otherwise go in raster order, and its reverse for LeRF).

    Example:
        >>> from captum_cf.baselines import ConstantBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x, a = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        >>> curves = removal_curves(model, x, a, 0, {"zero": ConstantBaseline(0.0)}, [0, 50, 100])
        >>> morf, lerf = curves["zero"]
        >>> symmetric_relevance_gain(morf, lerf).shape
        torch.Size([2])
    """
    check_images(inputs, "inputs")
    check_model_dtype(inputs, forward_func)
    amap = saliency_map(attributions, tuple(inputs.shape)).to(inputs.device)
    n, _, h, w = inputs.shape
    counts = _counts(percentages, h * w)
    batch_size = check_positive_int(batch_size, "batch_size")
    score_fn = _accuracy if score == "accuracy" else resolve_score(score)
    removals = {"road": _ROAD} if removals is None else dict(removals)
    if not removals or not all(isinstance(r, Baseline) for r in removals.values()):
        raise TypeError("removals must be a non-empty mapping of names to captum_cf Baselines")
    if not callable(forward_func):
        raise TypeError("forward_func must be callable")
    ranks = (_pixel_rank(amap), _pixel_rank(amap, "lerf"))
    steps = counts.numel()
    fractions = counts.double() / (h * w)  # on the host: the curves' x values
    counts = counts.to(inputs.device)
    per_pass = max(1, batch_size // (2 * len(removals)))
    scores: list[list[Tensor]] = [[] for _ in range(2 * len(removals))]
    with frozen(forward_func), torch.no_grad():
        tgt = predicted_or_checked_target(forward_func, inputs, target, batch_size=batch_size,
                                          **score_checks(score))
        for start in range(0, n * steps, per_pass):
            flat = torch.arange(start, min(start + per_pass, n * steps), device=inputs.device)
            img, step = flat // steps, flat % steps
            x, t = inputs[img], tgt[img]
            # both orders in one call per removal: bigger batches for the removals' own work
            keep = torch.cat([(r[img] >= counts[step, None]) for r in ranks])
            keep = keep.to(inputs.dtype).view(-1, 1, h, w)
            x2, t2 = x.repeat(2, 1, 1, 1), t.repeat(2)
            filled = torch.cat([rem.fill(x2, keep, t2) for rem in removals.values()])
            s = class_scores(forward_func, filled, t.repeat(len(scores)), score_fn, batch_size)
            for i, part in enumerate(s.split(len(flat))):
                scores[i].append(part)
    # a constant map ranks no pixel above another: its ties go in raster order (MoRF) and its
    # reverse (LeRF), so both orders get their mean, SRG 0 (not the tie-break's artefact: up
    # to 0.31 per image on a model that reads the digits' top-left quadrant)
    flat = (amap.flatten(1).amax(dim=1) == amap.flatten(1).amin(dim=1))[:, None]
    out = {}
    for i, name in enumerate(removals):
        morf, lerf = (torch.cat(scores[2 * i + j]).view(n, steps) for j in range(2))
        mean = (morf + lerf) / 2
        pair = []
        for order, sc in zip(_ORDERS, (morf, lerf)):
            sc = torch.where(flat, mean, sc)
            fr = fractions.to(sc.dtype).to(sc.device)
            pair.append(Curve(f"road-{order}", fr, sc, _normalised_auc(fr, sc), order == "lerf"))
        out[name] = (pair[0], pair[1])
    return out


def _counts(percentages: Any, hw: int) -> Tensor:
    """``floor(hw * p / 100)`` per percentage (as ROAD and Quantus count), checked."""
    if isinstance(percentages, (str, bytes)) or not isinstance(percentages, Sequence):
        raise TypeError(
            "percentages must be a sequence of numbers in [0, 100], got "
            f"{type(percentages).__name__}"
        )
    values = list(percentages)
    if len(values) < 2 or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
        and 0 <= p <= 100 for p in values
    ):
        raise ValueError(
            f"percentages must hold at least two numbers in [0, 100], got {values!r}"
        )
    counts = [int(hw * p / 100) for p in values]
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(
            f"percentages must increase and remove more pixels at every step ({hw} pixels: "
            f"counts {counts}), got {values!r}"
        )
    return torch.tensor(counts, dtype=torch.long)


@higher_is_better(True)
def symmetric_relevance_gain(morf: Curve, lerf: Curve) -> Tensor:
    r"""Symmetric relevance gain (SRG): the area between the LeRF and the MoRF curve, per image.

    .. math:: \mathrm{SRG} = \mathrm{AUC}_{\mathrm{LeRF}} - \mathrm{AUC}_{\mathrm{MoRF}}

    (Blücher, Vielhaben & Strodthoff, TMLR 2024). A faithful map removes the decisive pixels
    first in MoRF (low area) and last in LeRF (high area): SRG is large and positive. A random
    map gives about 0; a map that ranks the pixels backwards gives a negative SRG. Both curves
    must come from the same removal (ROAD's, or any :class:`~captum_cf.baselines.Baseline`):
    the removal's own bias (say, a black removal that the model reads as a class) shifts both
    areas alike and cancels.

    An insertion curve counts as LeRF: revealing the top fraction :math:`q` is removing the
    least relevant :math:`1 - q` (LeRF's order is the reverse of MoRF's, tied pixels included),
    so the two curves have the same area when they share a removal and their fractions;
    likewise a deletion curve is a MoRF curve.

    Args:
        morf (Curve): ``road(..., order="morf")`` or :func:`~captum_cf.metrics.deletion`.
        lerf (Curve): ``road(..., order="lerf")`` or :func:`~captum_cf.metrics.insertion`,
            on the same images and fractions.

    Returns:
        Tensor: shape (N,), SRG per image; in [-1, 1] for probability scores.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x, a = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        >>> srg = symmetric_relevance_gain(road(model, x, a, 0), road(model, x, a, 0, "lerf"))
        >>> srg.shape
        torch.Size([2])
    """
    for name, curve, kinds in (("morf", morf, _MORF_KINDS), ("lerf", lerf, _LERF_KINDS)):
        if not isinstance(curve, Curve):
            raise TypeError(f"{name} must be a captum_cf.metrics.Curve, got {type(curve).__name__}")
        if curve.kind not in kinds:
            raise ValueError(f"{name} must be a curve of kind {' or '.join(kinds)}, "
                             f"got {curve.kind!r}")
    if morf.scores.shape != lerf.scores.shape or not torch.allclose(
        morf.fractions.double().cpu(), lerf.fractions.double().cpu()
    ):
        raise ValueError(
            "morf and lerf must cover the same images and fractions, got scores "
            f"{tuple(morf.scores.shape)} and {tuple(lerf.scores.shape)}"
        )
    return lerf.auc - morf.auc.to(lerf.auc.device)
