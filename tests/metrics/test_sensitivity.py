"""sensitivity: mean pairwise similarity of maps under hyperparameter changes."""

from __future__ import annotations

import pytest
import torch

from captum_cf.metrics import map_similarity, sensitivity


def test_maps_that_ignore_the_knob_are_fully_robust(device) -> None:
    x = torch.rand(2, 1, 16, 16).to(device)
    scaled = sensitivity(
        lambda xx, t, scale: xx * scale, x, 0, [{"scale": 1.0}, {"scale": 3.0}, {"scale": 0.5}]
    )
    assert scaled.device == device
    # min-max normalisation removes the scale
    torch.testing.assert_close(scaled.cpu(), torch.ones(2))
    assert sensitivity.higher_is_better


def test_value_is_the_mean_over_pairs(device) -> None:
    x = torch.rand(2, 1, 16, 16).to(device)
    noise = torch.rand(3, 2, 1, 16, 16).to(device)
    settings = [{"k": 0}, {"k": 1}, {"k": 2}]

    def explain(xx, t, k):
        return xx + noise[k]

    maps = [x + noise[k] for k in range(3)]
    pairs = [map_similarity(maps[i], maps[j], "ssim", False) for i, j in ((0, 1), (0, 2), (1, 2))]
    ours = sensitivity(explain, x, 0, settings)
    assert ours.device == device
    torch.testing.assert_close(ours, torch.stack(pairs).mean(dim=0))
    assert bool((sensitivity(explain, x, 0, settings) < 0.9).all())


def test_bad_input() -> None:
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="at least two"):
        sensitivity(lambda xx, t, **kw: xx, x, 0, [{}])
    with pytest.raises(ValueError, match="explain"):
        sensitivity(lambda xx, t, **kw: xx[:, :, :8], x, 0, [{}, {}])


def test_params_that_are_not_a_sequence_of_dicts_are_one_clear_error():
    def explain(x, t, stdevs=0.1):
        return x * stdevs

    x = torch.rand(2, 1, 4, 4)
    for bad, error in ((None, TypeError), ("stdevs", TypeError), ([], ValueError),
                       ([{"stdevs": 0.1}], ValueError), ({"stdevs": 0.1}, TypeError)):
        with pytest.raises(error, match="params must be a sequence of at least two dicts"):
            sensitivity(explain, x, 0, bad)
