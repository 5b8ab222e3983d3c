"""R-OMS: how far a removal takes a model out of its scope (Blücher, Vielhaben & Strodthoff, 2024).

"Decoupling Pixel Flipping and Occlusion Strategy for Consistent XAI Benchmarks" (TMLR 2024)
scores an occlusion strategy by the R(eference)-Out-of-Model-Scope score: occlude random
segments of an image with the strategy, and compare the model's class probabilities with those
of a *reference* occlusion, one that the model is known to handle (in the paper a vision
transformer that drops the occluded patches' tokens, i.e. sees them truly missing), over a range
of occluded fractions. A removal whose predictions follow the reference keeps the model in its
scope; one whose predictions drift (a black patch read as a class) does not.

What this module computes (our reading of the authors' code, github:bluecher31/pixel-flipping,
``scripts/plot_ood.py``, measure ``correlation_baseline``; the paper's equations were not
available to us): for each image, fraction and draw, the cosine similarity of the softmax
vectors under the removal and under the reference, on the same random cells; averaged over
draws, and the normalised area under that curve over the fractions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import (
    check_images,
    check_logits,
    check_model_dtype,
    check_one_class_softmax,
    warn_if_probabilities,
)
from captum_cf.baselines.base import Baseline
from captum_cf.metrics._common import check_positive_int, higher_is_better
from captum_cf.metrics.deletion import Curve, _normalised_auc

_FIX = ("return one logit per class (for a one-logit binary classifier z: "
        "torch.cat([-z, z], dim=1) / 2)")

__all__ = ["r_oms"]

#: a reference occlusion given as the model's own prediction: (inputs, keep) -> (B, K) logits
ReferenceForward = Callable[[Tensor, Tensor], Tensor]
Reference = Union[Baseline, ReferenceForward]


@higher_is_better(True)
def r_oms(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    removal: Baseline,
    reference: Reference,
    fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    cell: int | None = None,
    n_draws: int = 1,
    seed: int = 0,
    batch_size: int = 256,
) -> Curve:
    r"""R-OMS of a removal for a model: agreement with a reference occlusion, per image.

    The image is cut into square cells of ``cell`` pixels (a stand-in for the paper's
    superpixels). For each fraction :math:`q` and draw, :math:`\mathrm{round}(q\,M)` of the
    :math:`M` cells are chosen at random (seeded, the same for removal and reference), and

    .. math:: s_q = \cos\big(\mathrm{softmax} f(\mathrm{removal.fill}(x, \mathrm{keep})),\
        \mathrm{softmax}\, g(x, \mathrm{keep})\big),

    where :math:`g` is the reference: ``forward_func(reference.fill(x, keep))`` when
    ``reference`` is a :class:`~captum_cf.baselines.Baseline` (e.g. a trained inpainter you
    trust), or ``reference(x, keep)`` itself when it is a callable returning logits (a model
    that handles missing pixels natively, as the paper's token-dropping ViT). The score of an
    image is the normalised area under :math:`s_q` over the fractions: 1 = the removal leaves
    the model exactly where the reference does; lower = the removal takes it elsewhere.

    Args:
        forward_func (callable): model mapping (B, C, H, W) images in [0, 1] to (B, K) logits.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        removal (Baseline): the removal under test, through ``removal.fill``.
        reference (Baseline or callable): the reference occlusion (see above).
        fractions (sequence of float): increasing occluded fractions in [0, 1], at least two.
        cell (int, optional): cell side in pixels; default ``max(1, min(H, W) // 8)``.
        n_draws (int): random cell subsets per image and fraction.
        seed (int): seed of the cell draws (a CPU generator; the global RNG is untouched).
        batch_size (int): occluded images per forward pass.

    Returns:
        Curve: ``kind`` ``"r-oms"``; fractions (S,) actually occluded (cells / M); scores
        (N, S) the mean cosine similarity; auc (N,) the R-OMS per image, in [0, 1];
        ``higher_is_better`` True.

    Example:
        >>> from captum_cf.baselines import ConstantBaseline, BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> same = r_oms(model, x, ConstantBaseline(0.0), ConstantBaseline(0.0))
        >>> bool(torch.allclose(same.auc, torch.ones(2)))
        True
    """
    check_images(inputs, "inputs")
    check_model_dtype(inputs, forward_func)
    if not callable(forward_func):
        raise TypeError("forward_func must be callable")
    if not isinstance(removal, Baseline):
        raise TypeError(f"removal must be a captum_cf.baselines.Baseline, got "
                        f"{type(removal).__name__}")
    if not callable(reference):
        raise TypeError("reference must be a Baseline or a callable (inputs, keep) -> logits")
    n, _, h, w = inputs.shape
    cell = max(1, min(h, w) // 8) if cell is None else check_positive_int(cell, "cell")
    if cell > min(h, w):
        raise ValueError(f"cell must be at most min(H, W) = {min(h, w)}, got {cell}")
    n_draws = check_positive_int(n_draws, "n_draws")
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    gh, gw = -(-h // cell), -(-w // cell)
    counts = _cell_counts(fractions, gh * gw, cell)
    keep = _random_keeps(n, counts, n_draws, (gh, gw), cell, (h, w), seed).to(inputs.device)
    with frozen(forward_func), torch.no_grad():
        sims = _similarities(forward_func, inputs, keep, removal, reference, batch_size)
    scores = sims.view(n, counts.numel(), n_draws).mean(dim=2)
    occluded = (counts.double() / (gh * gw)).to(scores.dtype).to(scores.device)
    return Curve("r-oms", occluded, scores, _normalised_auc(occluded, scores), True)


def _cell_counts(fractions: Any, cells: int, cell: int = 1) -> Tensor:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence):
        raise TypeError(f"fractions must be a sequence of numbers in [0, 1], got "
                        f"{type(fractions).__name__}")
    values = list(fractions)
    if len(values) < 2 or not all(
        isinstance(q, (int, float)) and not isinstance(q, bool) and 0 <= q <= 1 for q in values
    ):
        raise ValueError(f"fractions must hold at least two numbers in [0, 1], got {values!r}")
    counts = [round(q * cells) for q in values]
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(
            f"fractions must increase and occlude more of the {cells} cells at every step "
            f"(counts {counts}); " + ("use a smaller cell" if cell > 1 else
                                      "use fewer fractions, further apart")
        )
    return torch.tensor(counts, dtype=torch.long)


def _random_keeps(
    n: int,
    counts: Tensor,
    draws: int,
    grid: tuple[int, int],
    cell: int,
    size: tuple[int, int],
    seed: int,
) -> Tensor:
    """Keep masks (n * S * draws, 1, H, W): ``counts[s]`` random cells removed in each."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    m = grid[0] * grid[1]
    order = torch.rand(n * counts.numel() * draws, m, generator=gen).argsort(dim=1)
    cell_rank = torch.empty_like(order)
    cell_rank.scatter_(1, order, torch.arange(m).expand_as(order).contiguous())
    per_row = counts.repeat_interleave(draws).repeat(n)
    keep = (cell_rank >= per_row[:, None]).float().view(-1, 1, *grid)
    keep = keep.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)
    return keep[..., : size[0], : size[1]]


def _similarities(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    keep: Tensor,
    removal: Baseline,
    reference: Reference,
    batch_size: int,
) -> Tensor:
    per_image = keep.shape[0] // inputs.shape[0]
    out = []
    for start in range(0, keep.shape[0], batch_size):
        k = keep[start : start + batch_size]
        x = inputs[torch.arange(start, start + k.shape[0], device=inputs.device) // per_image]
        mine = removal.fill(x, k)
        if isinstance(reference, Baseline):
            both = check_logits(forward_func(torch.cat([mine, reference.fill(x, k)])), 2 * len(x))
            logits, ref_logits = both[: len(x)], both[len(x) :]
        else:
            logits = check_logits(forward_func(mine), len(x))
            ref_logits = check_logits(reference(x, k), len(x), "reference")
        if not out:  # the first pass: outputs a softmax can compare
            checked = [("forward_func", logits)]
            if not isinstance(reference, Baseline):  # a callable: its own outputs
                checked.append(("reference", ref_logits))
            for who, o in checked:
                check_one_class_softmax(o, who, "R-OMS's softmax", _FIX, scored="removal")
                warn_if_probabilities(o, who, "R-OMS applies a softmax to the output",
                                      stacklevel=4)
        out.append(torch.nn.functional.cosine_similarity(
            logits.softmax(dim=1), ref_logits.softmax(dim=1), dim=1))
    return torch.cat(out)
