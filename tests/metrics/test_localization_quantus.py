"""pointing_game and relevance_mass agree with Quantus 0.6 (a dev dependency) where they overlap.

Quantus counts a pointing-game hit when any pixel attaining the maximum lies in the mask, with
no tolerance; ours takes the first maximum and a tolerance in pixels. With tolerance 0 and maps
whose maximum is unique they must agree. Quantus's relevance mass divides raw sums; ours counts
positive relevance only, so they agree on non-negative maps.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from captum_cf.metrics import pointing_game, relevance_mass

quantus = pytest.importorskip("quantus")


def _batch(n: int = 24, size: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=gen)
    a = torch.rand(n, 1, size, size, generator=gen)  # distinct values: a unique maximum
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        r, c = torch.randint(0, size - 4, (2,), generator=gen).tolist()
        masks[i, :, r : r + 4, c : c + 5] = 1
    return x, a, masks


def _quantus(metric_cls, x, a, masks) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = metric_cls(normalise=False, abs=False, disable_warnings=True)
        scores = metric(model=None, x_batch=x.numpy(), y_batch=np.zeros(len(x), dtype=int),
                        a_batch=a.numpy(), s_batch=masks.numpy())
    return np.asarray(scores, dtype=np.float64)


def test_pointing_game_equals_quantus(device) -> None:
    x, a, masks = _batch()
    ours = pointing_game(a.to(device), masks.to(device), tolerance=0)
    assert ours.device == device
    theirs = _quantus(quantus.PointingGame, x, a, masks)
    assert 0 < ours.sum() < len(ours)  # both hits and misses occur: the test can tell
    np.testing.assert_array_equal(ours.cpu().numpy().astype(np.float64), theirs)


def test_relevance_mass_equals_quantus_relevance_mass_accuracy(device) -> None:
    x, a, masks = _batch()
    ours = relevance_mass(a.to(device), masks.to(device))
    assert ours.device == device
    theirs = _quantus(quantus.RelevanceMassAccuracy, x, a, masks)
    np.testing.assert_allclose(ours.cpu().numpy(), theirs, rtol=1e-5, atol=1e-7)
