"""``ConstantBaseline``: a constant (zero, grey, a per-channel colour or a per-feature value)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline

__all__ = ["ConstantBaseline"]


class ConstantBaseline(Baseline):
    """The classical reference: every removed value becomes the same constant.

    Works on any input ``(N, ...)``: tabular, sequences, images. ``reference(x)`` is the constant
    broadcast to ``x``; ``fill(x, keep)`` is ``keep * x + (1 - keep) * value``, which equals ``x``
    bit-exactly where ``keep == 1`` and the constant bit-exactly where ``keep == 0``.

    In ``captum_cf.attr``, ``baselines=ConstantBaseline(c)`` is handed to Captum as the number
    ``c`` wherever Captum accepts a number (every method but the Shap family, which pairs each
    example with its own reference), so it gives bit for bit what ``baselines=c`` gives, on every
    input Captum accepts (integer inputs and tuples included). A per-channel value is handed over
    as the equivalent tensor of shape (1, ...).

    Args:
        value (float, sequence of floats or Tensor): the constant, any finite number; a scalar, or
            one value per entry of dimension 1 (shape (C,)): a channel of an image, such as a
            dataset mean, or a feature of a tabular input (N, F).

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 8, 8)
        >>> ref = ConstantBaseline([0.485, 0.456, 0.406])(x)
        >>> ref.shape, float(ref[0, 1, 0, 0])
        (torch.Size([2, 3, 8, 8]), 0.4560000002384186)
        >>> ConstantBaseline([0.0, -1.0])(torch.randn(4, 2))[0].tolist()  # one value per feature
        [0.0, -1.0]
    """

    def __init__(self, value: float | Sequence[float] | Tensor = 0.0) -> None:
        self.value = _as_value(value)

    def _check_channels(self, inputs: Tensor) -> None:
        if self.value.numel() > 1 and (inputs.dim() < 2 or self.value.numel() != inputs.shape[1]):
            got = inputs.shape[1] if inputs.dim() >= 2 else "no"
            raise ValueError(
                f"ConstantBaseline has {self.value.numel()} channel values but inputs have "
                f"{got} channels (entries along dimension 1, shape {tuple(inputs.shape)})"
            )

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        self._check_channels(inputs)
        value = self.value.to(device=inputs.device, dtype=inputs.dtype)
        if value.numel() > 1:
            value = value.view(1, -1, *([1] * (inputs.dim() - 2)))
        return value.expand_as(inputs).clone()

    def captum_value(self, inputs: Tensor) -> float | int | Tensor | None:
        """What Captum takes for this constant: the number (an int for integer inputs when the
        constant is whole), or a tensor of shape (1, ...) (of the inputs' dtype; float for
        integer inputs when a value is not whole, never truncated).

        None for a subclass that changes the reference (it is then resolved as a Baseline).
        """
        if type(self)._reference is not ConstantBaseline._reference:
            return None
        if self.value.dim() == 0:
            value = float(self.value)
            # integer inputs (token ids): an integral constant as Captum's int, so that the
            # ids Captum builds keep their integer dtype, as with baselines=0
            if not inputs.is_floating_point() and not inputs.is_complex() and value.is_integer():
                return int(value)
            return value
        self._check_channels(inputs)  # the message names the whole batch's shape
        row = inputs[:1].detach()
        if not (row.is_floating_point() or row.is_complex()) and not bool(
            (self.value == self.value.round()).all()
        ):  # values that integer inputs cannot hold: a float row, as a float number goes
            row = row.to(torch.get_default_dtype())
        return self._reference(row, None)  # Captum's (1, ...) broadcast row

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
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"value must be finite, got {t.tolist()}")
    return t.reshape(-1) if t.dim() == 1 and t.numel() > 1 else t.reshape(())
