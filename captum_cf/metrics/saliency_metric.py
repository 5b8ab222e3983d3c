"""The saliency metric of Dabkowski & Gal.

"Real time image saliency for black box classifiers", NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_model_dtype
from captum_cf.metrics._common import (
    check_positive_int,
    class_scores,
    higher_is_better,
    predicted_or_checked_target,
    saliency_map,
)
from captum_cf.metrics.localization import box_from_map

__all__ = ["saliency_metric"]


@higher_is_better(False)
def saliency_metric(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    rule: str = "value",
    alpha: float | None = None,
    min_area: float = 0.05,
    batch_size: int = 256,
) -> Tensor:
    r"""Is the smallest crop around the salient region still recognised? Lower is better.

    The map is thresholded (``rule``/``alpha`` as in
    :func:`~captum_cf.metrics.localization_error`), the tightest box around the selected pixels
    is cropped, resized (bilinear) to the input size and classified:

    .. math:: s = \log\big(\max(a, a_{\min})\big) - \log p(t \mid \mathrm{crop}),

    where :math:`a` is the box area as a fraction of the image. A map that selects nothing
    crops the whole image (:math:`a = 1`).

    Args:
        forward_func (callable): model mapping (B, C, H, W) in [0, 1] to (B, K) logits.
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
        attributions (Tensor): shape (N, C', H, W) or (N, H, W).
        target (int, sequence or Tensor, optional): class per example; None = predicted class.
        rule (str): thresholding rule, ``"value"``, ``"energy"`` or ``"mean"``.
        alpha (float, optional): the rule's parameter.
        min_area (float): :math:`a_{\min}`, 0.05 in the paper.
        batch_size (int): crops per forward pass.

    Returns:
        Tensor: shape (N,); lower is better.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> saliency_metric(model, x, torch.rand(2, 1, 8, 8), target=1).shape
        torch.Size([2])
    """
    check_images(inputs, "inputs")
    check_model_dtype(inputs, forward_func)
    amap = saliency_map(attributions, tuple(inputs.shape)).to(inputs.device)
    batch_size = check_positive_int(batch_size, "batch_size")
    if not 0.0 < min_area <= 1.0:
        raise ValueError(f"min_area must be in (0, 1], got {min_area}")
    n, _, h, w = inputs.shape
    boxes = box_from_map(amap, rule, alpha).long()
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    boxes[empty] = torch.tensor([0, 0, w, h], device=boxes.device)
    crops = torch.cat([_crop_resized(inputs[i : i + 1], boxes[i]) for i in range(n)])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).to(inputs.dtype) / (h * w)
    with frozen(forward_func), torch.no_grad():
        tgt = predicted_or_checked_target(
            forward_func, inputs, target, softmax="the saliency metric's log-softmax",
            batch_size=batch_size, fix="return one logit per class (for a one-logit binary "
            "classifier z: torch.cat([-z, z], dim=1) / 2)")
        log_p = class_scores(
            forward_func, crops, tgt, lambda out: out.log_softmax(dim=1), batch_size
        )
    return torch.log(area.clamp(min=min_area)) - log_p


def _crop_resized(image: Tensor, box: Tensor) -> Tensor:
    x0, y0, x1, y1 = (int(v) for v in box)
    crop = image[..., y0:y1, x0:x1]
    if crop.shape[-2:] == image.shape[-2:]:
        return crop
    return F.interpolate(crop, size=image.shape[-2:], mode="bilinear", align_corners=False).clamp(
        0, 1
    )
