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

_SCORE_FIX = ("pass score='sigmoid' (the probability of a one-logit binary classifier) or "
              "score='logit', or return one logit per class")


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
    """``value`` (an int or a NumPy integer scalar) as an int >= 1."""
    from captum_cf._validation import integer

    count = integer(value)
    if count is None or count < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return count


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
        if not isinstance(s, Tensor) or s.shape != logits.shape:
            got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"score must map the model's (B, K) outputs to (B, K) scores "
                             f"(a tensor of the same shape), got {got} for "
                             f"{tuple(logits.shape)}")
        out.append(s.gather(1, target[start : start + batch_size, None].to(s.device))[:, 0])
    return torch.cat(out)


def predicted_or_checked_target(
    forward_func: Callable[[Tensor], Tensor], inputs: Tensor, target: Any,
    softmax: str | None = None, batch_size: int | None = None, one_class: str | None = None,
    fix: str = _SCORE_FIX, stacklevel: int = 3,
) -> Tensor:
    """``target`` as a long tensor (N,); ``None`` means the model's predicted class, from
    forward passes of at most ``batch_size`` images (default all at once).

    ``softmax`` names the softmax the metric takes of the output (``"score='softmax'"``), if
    any: then a model that returns probabilities is told (a warning), and, as for a score named
    by ``one_class`` (``"score='accuracy'"``), a model with one output per image is refused (the
    score is the same whatever the input; ``fix`` says what to do). ``stacklevel``: the
    warning's, as ``warnings.warn`` counts it from here (3: the caller of the metric that
    calls this function).
    """
    from captum_cf._validation import check_one_class_softmax, check_target, warn_if_probabilities

    n = inputs.shape[0]
    with torch.no_grad():
        if target is None:
            step = n if batch_size is None else batch_size
            logits = torch.cat([check_logits(forward_func(inputs[i : i + step]),
                                             min(step, n - i)) for i in range(0, n, step)])
        else:
            logits = check_logits(forward_func(inputs[:1]), 1)
    if softmax is not None or one_class is not None:
        check_one_class_softmax(logits, "forward_func", softmax or one_class, fix)
    if softmax is not None:
        warn_if_probabilities(logits, "forward_func", f"{softmax} applies a softmax to the "
                              "output", stacklevel=stacklevel + 1)
    if target is None:
        return logits.argmax(dim=1)
    return check_target(target, n, num_classes=logits.shape[1]).to(inputs.device)


def score_checks(score: Any) -> dict[str, str | None]:
    """:func:`predicted_or_checked_target`'s ``softmax`` and ``one_class`` for a metric's
    ``score`` argument (a callable is the user's own: not checked)."""
    name = score if isinstance(score, str) else None
    return {"softmax": "score='softmax'" if name == "softmax" else None,
            "one_class": "score='accuracy'" if name == "accuracy" else None}
