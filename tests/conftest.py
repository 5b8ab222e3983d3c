"""Shared test fixtures: seeding and tiny models."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

warnings.filterwarnings(
    "ignore", message="torchvision's compiled extension", category=RuntimeWarning
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    random.seed(0)
