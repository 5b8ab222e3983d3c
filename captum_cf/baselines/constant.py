"""``ConstantBaseline``: a constant image (zero, grey or a per-channel colour)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline

__all__ = ["ConstantBaseline"]


class ConstantBaseline(Baseline):
    """The classical reference: every removed pixel becomes the same constant.

    ``reference(x)`` is the constant broadcast to ``x``; ``fill(x, keep)`` is
    ``keep * x + (1 - keep) * value``, which equals ``x`` bit-exactly where ``keep == 1`` and the
    constant bit-exactly where ``keep == 0`` (Captum's own occlusion gives the same numbers).

    Args:
        value (float, sequence of floats or Tensor): the constant, in [0, 1]; a scalar, or one value
            per channel (shape (C,)) such as a dataset mean.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 8, 8)
        >>> ref = ConstantBaseline([0.485, 0.456, 0.406])(x)
        >>> ref.shape, float(ref[0, 1, 0, 0])
        (torch.Size([2, 3, 8, 8]), 0.4560000002384186)
    """

    def __init__(self, value: float | Sequence[float] | Tensor = 0.0) -> None:
        self.value = _as_value(value)

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        value = self.value.to(device=inputs.device, dtype=inputs.dtype)
        if value.numel() > 1:
            if value.numel() != inputs.shape[1]:
                raise ValueError(
                    f"ConstantBaseline has {value.numel()} channel values but inputs have "
                    f"{inputs.shape[1]} channels"
                )
            value = value.view(1, -1, 1, 1)
        return value.expand_as(inputs).clone()

    def __repr__(self) -> str:
        v = self.value
        shown = float(v) if v.numel() == 1 else [round(float(c), 6) for c in v]
        return f"ConstantBaseline(value={shown})"


def _as_value(value: Any) -> Tensor:
    """Validate ``value`` (scalar or per-channel) and return it as a 0-d or 1-d float64 tensor."""
    if isinstance(value, bool):
        raise TypeError("value must be a float, a sequence of floats or a tensor, got bool")
    try:
        t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"value must be a float, a sequence of floats or a tensor, got {type(value).__name__}"
        ) from err
    if t.dim() > 1 or t.numel() == 0:
        raise ValueError(f"value must be a scalar or have shape (C,), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0.0 or float(t.max()) > 1.0:
        raise ValueError(f"value must lie in [0, 1] (pixel space), got {t.tolist()}")
    return t.reshape(-1) if t.dim() == 1 and t.numel() > 1 else t.reshape(())
