"""Pieces shared by the metrics: score direction, map reduction, checked model calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from captum_cf._validation import all_finite, check_logits

__all__ = ["higher_is_better", "saliency_map", "check_masks", "class_scores", "check_positive_int"]

F = TypeVar("F", bound=Callable[..., Any])

ScoreFn = Callable[[Tensor], Tensor]


def higher_is_better(flag: bool) -> Callable[[F], F]:
    """Declare a metric's direction: sets ``metric.higher_is_better = flag`` (Quantus-style)."""

    def mark(func: F) -> F:
        func.higher_is_better = flag  # type: ignore[attr-defined]
        return func

    return mark


def saliency_map(
    attributions: Any, shape: tuple[int, ...] | None = None, name: str = "attributions"
) -> Tensor:
    """Reduce attributions to one value per pixel by summing over channels.

    Args:
        attributions (Tensor): shape (N, C, H, W) or (N, H, W), finite.
        shape (tuple, optional): (N, C, H, W) of the inputs; when given, N, H, W must match.
        name (str): argument name for error messages.

    Returns:
        Tensor: float map, shape (N, H, W).
    """
    if not isinstance(attributions, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W) or (N, H, W)")
    if attributions.dim() not in (3, 4):
        raise ValueError(
            f"{name} must have shape (N, C, H, W) or (N, H, W), got {tuple(attributions.shape)}"
        )
    if attributions.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(attributions.shape)}")
    amap = attributions.sum(dim=1) if attributions.dim() == 4 else attributions
    amap = amap.float() if not amap.is_floating_point() else amap
    if not all_finite(amap):
        raise ValueError(f"{name} contains NaN or infinite values")
    if shape is not None:
        n, _, h, w = shape
        if tuple(amap.shape) != (n, h, w):
            raise ValueError(
                f"{name} must match the inputs {tuple(shape)} in N, H and W (any channels), "
                f"got {tuple(attributions.shape)}"
            )
    return amap


def check_masks(masks: Any, n: int, hw: tuple[int, int], name: str = "masks") -> Tensor:
    """A boolean mask per example: (N, 1, H, W) or (N, H, W), bool or values in {0, 1}.

    Returns:
        Tensor: bool, shape (N, H, W).
    """
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 1, H, W) or (N, H, W)")
    m = masks[:, 0] if masks.dim() == 4 and masks.shape[1] == 1 else masks
    if m.dim() != 3 or tuple(m.shape) != (n, *hw):
        raise ValueError(
            f"{name} must have shape ({n}, 1, {hw[0]}, {hw[1]}), got {tuple(masks.shape)}"
        )
    if m.dtype != torch.bool:
        if m.is_complex():
            raise TypeError(f"{name} must be bool or real 0/1 values, got {m.dtype}")
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"{name} must be binary: boolean, or only 0 and 1 (no NaN)")
        m = m != 0
    return m


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


_SCORES: dict[str, ScoreFn] = {
    "softmax": lambda out: out.softmax(dim=1),
    "logit": lambda out: out,
    "sigmoid": lambda out: out.sigmoid(),
}


def resolve_score(score: str | ScoreFn) -> ScoreFn:
    """``"softmax"``, ``"logit"``, ``"sigmoid"`` or a callable mapping (B, K) to (B, K) scores."""
    if callable(score):
        return score
    if score not in _SCORES:
        raise ValueError(f"score must be one of {sorted(_SCORES)} or a callable, got {score!r}")
    return _SCORES[score]


def class_scores(
    forward_func: Callable[[Tensor], Tensor],
    images: Tensor,
    target: Tensor,
    score: ScoreFn,
    batch_size: int,
) -> Tensor:
    """Score of class ``target[i]`` for ``images[i]``, in forward passes of at most ``batch_size``.

    Returns:
        Tensor: shape (B,), on the images' device.
    """
    out = []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start : start + batch_size]
        logits = check_logits(forward_func(chunk), chunk.shape[0])
        s = score(logits)
        out.append(s.gather(1, target[start : start + batch_size, None].to(s.device))[:, 0])
    return torch.cat(out)


def predicted_or_checked_target(
    forward_func: Callable[[Tensor], Tensor], inputs: Tensor, target: Any,
    softmax: bool = False,
) -> Tensor:
    """``target`` as a long tensor (N,); ``None`` means the model's predicted class. With
    ``softmax`` (the scores are a softmax of the output) a model that returns probabilities is
    told (a warning)."""
    from captum_cf._validation import check_target, warn_if_probabilities

    n = inputs.shape[0]
    with torch.no_grad():
        logits = check_logits(forward_func(inputs[:1]), 1) if target is not None else None
        if target is None:
            logits = check_logits(forward_func(inputs), n)
    if softmax:
        warn_if_probabilities(logits, "forward_func", "score='softmax' applies a softmax to the "
                              "output", stacklevel=5)
    if target is None:
        return logits.argmax(dim=1)
    return check_target(target, n, num_classes=logits.shape[1]).to(inputs.device)
