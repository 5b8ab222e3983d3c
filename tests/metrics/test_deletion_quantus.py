"""deletion agrees with Quantus's PixelFlipping configured the same way.

Quantus 0.6 is a dev dependency (``pip install -e ".[dev]"``), so this runs in CI; the skip only
guards a bare runtime install.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn

from captum_cf.baselines import ConstantBaseline
from captum_cf.metrics import deletion

quantus = pytest.importorskip("quantus")


def test_deletion_curve_equals_quantus_pixel_flipping(device) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 5)
    ).eval()
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    a = torch.randn(6, 1, 8, 8)  # distinct values: Quantus's argsort is not stable
    ours = deletion(
        copy.deepcopy(model).to(device), x.to(device), a.to(device), y.to(device),
        ConstantBaseline(0.0), n_steps=16,
    )
    assert ours.scores.device == device
    with warnings.catch_warnings():  # Quantus runs on the CPU: the reference
        warnings.simplefilter("ignore")
        metric = quantus.PixelFlipping(
            features_in_step=4,
            perturb_baseline=0.0,
            normalise=False,
            abs=False,
            disable_warnings=True,
        )
        theirs = metric(
            model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu"
        )
    torch.testing.assert_close(
        ours.scores[:, 1:].cpu(), torch.tensor(theirs, dtype=torch.float32), atol=1e-6, rtol=0
    )
