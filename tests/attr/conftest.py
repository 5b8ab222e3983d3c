"""Tiny models and Baselines for the attribution tests."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch import Tensor

from captum_cf.baselines import Baseline


@pytest.fixture(autouse=True)
def _quiet_captum() -> None:
    """Captum's DeepLift warns on every call that it sets hooks (the tests check they are removed)
    and that it set ``requires_grad`` on the inputs (the tests check it is undone)."""
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")


class FixedBaseline(Baseline):
    """Returns a fixed reference (broadcast over the batch); records the targets it was given."""

    def __init__(self, ref: Tensor) -> None:
        self.ref = ref
        self.targets: list[Any] = []

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        self.targets.append(target)
        return self.ref.expand_as(inputs).clone()


class RaisingBaseline(Baseline):
    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        raise RuntimeError("baseline failed")


class TargetBaseline(FixedBaseline):
    needs_target = True


class TinyCNN(nn.Module):
    """(N, 2, 6, 6) -> (N, 3); every non-linearity is its own module, as DeepLift requires.

    Pooling comes before the activation: Captum 0.9's DeepLift breaks summation-to-delta when a
    ReLU feeds a MaxPool2d directly (measured delta ~1.8 on this net), a Captum bug we mirror.
    """

    def __init__(self, smooth: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.act = nn.Softplus() if smooth else nn.ReLU()
        self.pool = nn.AvgPool2d(2) if smooth else nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(self.act(self.pool(self.conv(x))).flatten(1)))


class TwoInputNet(nn.Module):
    """(image (N, 1, 6, 6), vector (N, 4), scale (N, 1) extra arg) -> (N, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.act = nn.ReLU()
        self.fc = nn.Linear(2 * 16 + 4, 3)

    def forward(self, img: Tensor, vec: Tensor, scale: Tensor | None = None) -> Tensor:
        out = self.fc(torch.cat([self.act(self.conv(img)).flatten(1), vec], dim=1))
        return out if scale is None else out * scale


def _eval(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model.eval()


# The model and input fixtures take the ``device`` fixture (tests/conftest.py): weights and
# inputs are drawn on the CPU with the same seeds as ever, then moved, so every device sees the
# same numbers, and every test that uses them runs on each available device.


@pytest.fixture
def cnn(device: torch.device) -> nn.Module:
    return _eval(TinyCNN()).to(device)


@pytest.fixture
def smooth_cnn(device: torch.device) -> nn.Module:
    return _eval(TinyCNN(smooth=True)).to(device)


@pytest.fixture
def two_input_net(device: torch.device) -> nn.Module:
    return _eval(TwoInputNet()).to(device)


@pytest.fixture
def images(device: torch.device) -> Tensor:
    return torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(1)).to(device)


@pytest.fixture
def refs(device: torch.device) -> Tensor:
    return torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(2)).to(device)


def on(device: torch.device, *tensors: Any) -> bool:
    """Whether every tensor in ``tensors`` (tuples are searched) lies on ``device``."""
    for t in tensors:
        if isinstance(t, (tuple, list)):
            if not on(device, *t):
                return False
        elif isinstance(t, Tensor) and t.device.type != torch.device(device).type:
            return False
    return True


@pytest.fixture
def on_device(device: torch.device) -> Callable[..., bool]:
    """``on_device(*tensors)``: whether every (possibly nested) tensor lies on ``device``."""
    return lambda *tensors: on(device, *tensors)


@pytest.fixture
def fixed() -> Callable[[Tensor], FixedBaseline]:
    return FixedBaseline


@pytest.fixture
def raising() -> Baseline:
    return RaisingBaseline()


@pytest.fixture
def target_baseline() -> Callable[[Tensor], FixedBaseline]:
    return TargetBaseline


@pytest.fixture
def seeded() -> Callable[[int], None]:
    """Seed every generator Captum's sampling methods use (NumPy's and torch's global ones)."""

    def seed(s: int = 0) -> None:
        np.random.seed(s)
        torch.manual_seed(s)

    return seed


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything about a model an attribution call must leave unchanged."""
    return {
        "modes": [m.training for m in model.modules()],
        "flags": [p.requires_grad for p in model.parameters()],
        "params": [p.detach().clone() for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
             len(m._backward_pre_hooks))
            for m in model.modules()
        ],
        "attrs": [sorted(k for k in vars(m) if not k.startswith("_")) for m in model.modules()],
    }


def assert_same_state(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"]))
    assert after["hooks"] == before["hooks"]
    assert all(h == (0, 0, 0, 0) for h in after["hooks"])
    assert after["attrs"] == before["attrs"]


@pytest.fixture
def model_state() -> tuple[Callable[..., Any], Callable[..., None]]:
    return snapshot, assert_same_state


@pytest.fixture
def same_signature() -> Callable[[type, type], bool]:
    """Whether two classes' ``attribute`` methods have the same parameters and defaults."""

    def same(ours: type, theirs: type) -> bool:
        a, b = inspect.signature(ours.attribute), inspect.signature(theirs.attribute)
        return [(p.name, p.kind, p.default) for p in a.parameters.values()] == [
            (p.name, p.kind, p.default) for p in b.parameters.values()
        ]

    return same
