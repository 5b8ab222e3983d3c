"""The Baseline ABC checks its own output: finite, shaped, typed and placed like the input."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from captum_cf.attr import IntegratedGradients, Occlusion
from captum_cf.baselines import Baseline, ConstantBaseline


class _Returns(Baseline):
    def __init__(self, make: Any) -> None:
        self.make = make

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return self.make(inputs)


BAD = [
    (lambda x: torch.full_like(x, float("nan")), ValueError, "reference returned NaN"),
    (lambda x: torch.full_like(x, float("inf")), ValueError, "reference returned NaN or inf"),
    (lambda x: x[:, :, :4], ValueError, r"reference returned \(2, 1, 4, 8\)"),
    (lambda x: x.double(), ValueError, "torch.float64"),
    (lambda x: x.numpy(), TypeError, "reference must return a Tensor, got ndarray"),
]


@pytest.mark.parametrize("make, error, message", BAD)
def test_reference_output_is_checked(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        _Returns(make).reference(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("make, error, message", BAD[:4])
def test_fill_output_is_checked(make: Any, error: type, message: str) -> None:
    keep = torch.ones(2, 1, 8, 8)
    keep[..., :4] = 0
    with pytest.raises(error, match=message.replace("reference", "(reference|fill)")):
        _Returns(make).fill(torch.rand(2, 1, 8, 8), keep)


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_every_method_reports_a_nan_or_misshaped_baseline(method: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(2, 1, 8, 8)
    for make, message in ((lambda t: torch.full_like(t, float("nan")), "NaN"),
                          (lambda t: t[:, :, :4], r"\(2, 1, 4, 8\)")):
        with pytest.raises(ValueError, match=message):
            if method == "ig":
                IntegratedGradients(model).attribute(x, baselines=_Returns(make), target=0)
            else:
                Occlusion(model).attribute(x, sliding_window_shapes=(1, 4, 4),
                                           baselines=_Returns(make), target=0)


def test_good_output_passes_unchanged() -> None:
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(ConstantBaseline(0.25).reference(x), torch.full_like(x, 0.25))
