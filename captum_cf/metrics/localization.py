"""Does the explanation point at the object? Pointing game, box localisation, relevance mass.

* Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016).
* Weakly supervised localisation with three thresholding rules (Fong & Vedaldi, "Interpretable
  explanations of black boxes by meaningful perturbation", ICCV 2017).
* Relevance mass accuracy (Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 2022).

Boxes are ``(x_min, y_min, x_max, y_max)`` in pixels, half-open like slicing: the box covers
columns ``x_min <= x < x_max`` and rows ``y_min <= y < y_max``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.metrics._common import check_masks, higher_is_better, saliency_map

__all__ = ["pointing_game", "localization_error", "relevance_mass", "box_from_map", "box_iou"]

_DEFAULT_ALPHA = {"value": 0.5, "energy": 0.5, "mean": 1.0}


@higher_is_better(True)
def pointing_game(attributions: Tensor, masks: Tensor, tolerance: int | None = None) -> Tensor:
    """Hit (1) when the map's maximum lies within ``tolerance`` pixels of the object mask.

    The maximum is the first in raster order among ties; a constant map points nowhere and
    counts as a miss. Distance is Euclidean: a hit needs a mask pixel ``q`` with
    ``||argmax - q|| <= tolerance``.

    Args:
        attributions (Tensor): shape (N, C, H, W) or (N, H, W); summed over channels.
        masks (Tensor): object masks, shape (N, 1, H, W) or (N, H, W), bool or {0, 1}; each
            must contain at least one pixel.
        tolerance (int, optional): pixels; default Zhang et al.'s 15 px at 224 px scaled to the
            image, ``round(15 * max(H, W) / 224)``.

    Returns:
        Tensor: float hits in {0, 1}, shape (N,); the mean is the pointing accuracy.

    Example:
        >>> amap = torch.zeros(1, 8, 8); amap[0, 2, 3] = 1.0
        >>> mask = torch.zeros(1, 8, 8, dtype=torch.bool); mask[0, 2, 5] = True
        >>> pointing_game(amap, mask, tolerance=2), pointing_game(amap, mask, tolerance=1)
        (tensor([1.]), tensor([0.]))
    """
    amap = saliency_map(attributions)
    n, h, w = amap.shape
    m = check_masks(masks, n, (h, w))
    if not bool(m.flatten(1).any(dim=1).all()):
        raise ValueError("masks must contain at least one pixel per example")
    if tolerance is None:
        tolerance = round(15 * max(h, w) / 224)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative int (pixels), got {tolerance!r}")
    near = _dilate(m, tolerance)
    flat = amap.flatten(1)
    peak = flat.argmax(dim=1)
    hit = near.flatten(1).gather(1, peak[:, None])[:, 0]
    pointing = flat.max(dim=1).values > flat.min(dim=1).values
    return (hit & pointing).float()


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Pixels within Euclidean distance ``radius`` of the mask, (N, H, W) bool."""
    if radius == 0:
        return mask
    r = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2).float()
    hits = F.conv2d(mask[:, None].float(), disk[None, None], padding=radius)
    return hits[:, 0] > 0.5


@higher_is_better(False)
def localization_error(
    attributions: Tensor,
    boxes: Tensor,
    rule: str = "value",
    alpha: float | None = None,
    iou_threshold: float = 0.5,
) -> Tensor:
    r"""Localisation error: 1 when the box around the thresholded map has IoU < 0.5 with the truth.

    The map (summed over channels, negative values clipped to 0) is thresholded by one of Fong &
    Vedaldi's rules, the tight box around the selected pixels is compared with the ground-truth
    box, and the example counts as an error when their IoU is below ``iou_threshold``:

    * ``"value"``: pixels with :math:`a \ge \alpha \max a` (default :math:`\alpha = 0.5`);
    * ``"energy"``: the fewest highest pixels holding a fraction :math:`\alpha` of :math:`\sum a`
      (default 0.5);
    * ``"mean"``: pixels with :math:`a \ge \alpha\, \mathrm{mean}(a)` (default 1.0).

    A map with no positive value selects nothing and is an error.

    Args:
        attributions (Tensor): shape (N, C, H, W) or (N, H, W).
        boxes (Tensor): true boxes, shape (N, 4), ``(x_min, y_min, x_max, y_max)``, half-open.
        rule (str): ``"value"``, ``"energy"`` or ``"mean"``.
        alpha (float, optional): the rule's parameter; default per rule as above.
        iou_threshold (float): IoU below which the box is wrong (0.5, as in ImageNet localisation).

    Returns:
        Tensor: float errors in {0, 1}, shape (N,); lower is better.

    Example:
        >>> amap = torch.zeros(1, 10, 10); amap[0, 2:6, 3:7] = 1.0
        >>> localization_error(amap, torch.tensor([[3, 2, 7, 6]]))
        tensor([0.])
    """
    amap = saliency_map(attributions)
    boxes = _check_boxes(boxes, amap.shape[0])
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred = box_from_map(amap, rule, alpha)
    return (box_iou(pred, boxes.to(pred)) < iou_threshold).float()


def box_from_map(attributions: Tensor, rule: str = "value", alpha: float | None = None) -> Tensor:
    """Tight box around the pixels a thresholding rule selects (see :func:`localization_error`).

    Args:
        attributions (Tensor): shape (N, C, H, W) or (N, H, W).
        rule (str): ``"value"``, ``"energy"`` or ``"mean"``.
        alpha (float, optional): the rule's parameter.

    Returns:
        Tensor: float boxes (N, 4), ``(x_min, y_min, x_max, y_max)`` half-open; an all-zero box
        when nothing is selected.
    """
    amap = saliency_map(attributions).clamp(min=0)
    selected = _threshold(amap, rule, alpha)
    return _tight_box(selected)


def _threshold(amap: Tensor, rule: str, alpha: float | None) -> Tensor:
    if rule not in _DEFAULT_ALPHA:
        raise ValueError(f"rule must be one of {sorted(_DEFAULT_ALPHA)}, got {rule!r}")
    alpha = _DEFAULT_ALPHA[rule] if alpha is None else float(alpha)
    if not math.isfinite(alpha) or alpha < 0 or (rule == "energy" and alpha > 1):
        raise ValueError(
            f"alpha for rule {rule!r} must be "
            f"{'in [0, 1]' if rule == 'energy' else '>= 0'}, got {alpha}"
        )
    flat = amap.flatten(1)
    positive = flat > 0
    if rule == "value":
        keep = flat >= alpha * flat.max(dim=1, keepdim=True).values
    elif rule == "mean":
        keep = flat >= alpha * flat.mean(dim=1, keepdim=True)
    else:
        values, order = torch.sort(flat, dim=1, descending=True, stable=True)
        before = values.cumsum(dim=1) - values  # energy of the strictly higher-ranked pixels
        chosen = before < alpha * flat.sum(dim=1, keepdim=True)
        keep = torch.zeros_like(positive).scatter(1, order, chosen)
    return (keep & positive).view_as(amap)


def _tight_box(selected: Tensor) -> Tensor:
    n, h, w = selected.shape
    rows, cols = selected.any(dim=2), selected.any(dim=1)
    ys = torch.arange(h, device=selected.device)
    xs = torch.arange(w, device=selected.device)
    y0 = torch.where(rows, ys, h).min(dim=1).values
    y1 = torch.where(rows, ys + 1, 0).max(dim=1).values
    x0 = torch.where(cols, xs, w).min(dim=1).values
    x1 = torch.where(cols, xs + 1, 0).max(dim=1).values
    box = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(rows.any(dim=1, keepdim=True), box, torch.zeros_like(box))


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of paired half-open boxes, (N, 4) each -> (N,); 0 when either box is empty.

    Args:
        a (Tensor): boxes (N, 4) as (x_min, y_min, x_max, y_max), finite, ``x_max >= x_min`` and
            ``y_max >= y_min``.
        b (Tensor): boxes (N, 4), paired with ``a`` row by row.

    Returns:
        Tensor: shape (N,), float, in [0, 1].

    Example:
        >>> box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 0, 3, 2]]))
        tensor([0.3333])
    """
    a = _check_boxes(a, None, "a")
    b = _check_boxes(b, a.shape[0], "b")
    ix = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def _check_boxes(boxes: Any, n: int | None, name: str = "boxes") -> Tensor:
    """Boxes (n, 4) (any n when None), finite and not inverted; returned as floats."""
    if not isinstance(boxes, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, 4), got {type(boxes).__name__}"
        )
    if boxes.dim() != 2 or boxes.shape[1] != 4 or (n is not None and boxes.shape[0] != n):
        raise ValueError(
            f"{name} must have shape ({'N' if n is None else n}, 4) as "
            f"(x_min, y_min, x_max, y_max), got {tuple(boxes.shape)}"
        )
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise TypeError(f"{name} must hold real coordinates, got dtype {boxes.dtype}")
    b = boxes.float() if not boxes.is_floating_point() else boxes
    if not bool(torch.isfinite(b).all()) or bool((b[:, 2:] < b[:, :2]).any()):
        raise ValueError(f"{name} must be finite with x_max >= x_min and y_max >= y_min")
    return b


@higher_is_better(True)
def relevance_mass(attributions: Tensor, masks: Tensor) -> Tensor:
    r"""Share of the positive attribution that falls inside the object mask.

    .. math:: \mathrm{RMA} = \frac{\sum_{p \in M} \max(a_p, 0)}{\sum_p \max(a_p, 0)}

    (0 for a map without positive values).

    Args:
        attributions (Tensor): shape (N, C, H, W) or (N, H, W); summed over channels first.
        masks (Tensor): shape (N, 1, H, W) or (N, H, W), bool or {0, 1}.

    Returns:
        Tensor: shape (N,), in [0, 1]; higher is better.

    Example:
        >>> amap = torch.tensor([[[3.0, 1.0], [-2.0, 0.0]]])
        >>> relevance_mass(amap, torch.tensor([[[True, False], [True, True]]]))
        tensor([0.7500])
    """
    amap = saliency_map(attributions)
    m = check_masks(masks, amap.shape[0], tuple(amap.shape[1:]))
    pos = amap.clamp(min=0).flatten(1)
    total = pos.sum(dim=1)
    inside = (pos * m.flatten(1).to(pos.dtype)).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))
