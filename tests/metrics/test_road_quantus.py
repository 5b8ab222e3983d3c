"""road agrees with Quantus 0.6's ROAD on identical inputs (noise 0: Quantus draws numpy noise).

Quantus's ROAD scores accuracy (argmax == label) after removing the top ``p`` % of pixels by
noisy linear imputation, averaged over the batch; MoRF only. Our ``road(score="accuracy")``
must give the same mean at every percentage. Single-channel images: Quantus indexes the
flattened (C, H, W) attributions as pixels, which is only right for C = 1.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn

from captum_cf.baselines import NoisyLinearImputation
from captum_cf.metrics import road

quantus = pytest.importorskip("quantus")


def test_road_morf_accuracy_equals_quantus_road(device) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 144, 4)
    ).eval()
    x = torch.rand(32, 1, 12, 12)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    a = torch.randn(32, 1, 12, 12)  # distinct values: Quantus's argsort is not stable
    percentages = list(range(1, 100, 7))
    ours = road(copy.deepcopy(model).to(device), x.to(device), a.to(device), y.to(device),
                percentages=percentages, score="accuracy",
                removal=NoisyLinearImputation(noise=0.0, tol=1e-7))
    assert ours.scores.device == device
    with warnings.catch_warnings():  # Quantus runs on the CPU: the reference
        warnings.simplefilter("ignore")
        metric = quantus.ROAD(percentages=percentages, noise=0.0, normalise=False, abs=False,
                              disable_warnings=True)
        theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                        device="cpu")
    theirs = torch.tensor([theirs[p] for p in percentages], dtype=torch.float32)
    curve = ours.scores.mean(dim=0).cpu()
    assert curve.max() == 1 and curve.min() < 0.8  # removal changes predictions: a real test
    torch.testing.assert_close(curve, theirs, atol=1e-6, rtol=0)
