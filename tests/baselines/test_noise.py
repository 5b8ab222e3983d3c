"""NoiseBaseline: reproducible, clamped, the documented mean, RNG untouched."""

from __future__ import annotations

import pytest
import torch

from captum_cf.baselines import NoiseBaseline


def test_reproducible_across_calls_and_instances(device):
    x = torch.rand(4, 3, 8, 8).to(device)
    a, b = NoiseBaseline(std=0.3, seed=7), NoiseBaseline(std=0.3, seed=7)
    assert a(x).device == device and torch.equal(a(x), a(x)) and torch.equal(a(x), b(x))
    assert not torch.equal(a(x), NoiseBaseline(std=0.3, seed=8)(x))


def test_global_rng_untouched(device):
    x = torch.full((1, 1, 4, 4), 0.5, device=device)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    NoiseBaseline(seed=1)(x)
    assert torch.equal(torch.rand(3), expected)


def test_centered_noise_statistics_and_range(device):
    x = torch.zeros(8, 1, 32, 32, device=device)
    ref = NoiseBaseline(std=0.1, seed=0, center=0.5)(x)
    assert ref.device == device
    assert 0.0 <= float(ref.min()) and float(ref.max()) <= 1.0
    assert abs(float(ref.mean()) - 0.5) < 0.01
    assert abs(float(ref.std()) - 0.1) < 0.01
    # independent of the input content when centred on a constant
    assert torch.equal(ref, NoiseBaseline(std=0.1, seed=0, center=0.5)(torch.ones_like(x)))


def test_noise_around_input_and_clamp(device):
    x = torch.rand(2, 1, 16, 16).to(device)
    ref = NoiseBaseline(std=0.0, center=None)(x)
    assert torch.equal(ref, x)
    ref = NoiseBaseline(std=5.0, center=None)(x)
    assert float(ref.min()) == 0.0 and float(ref.max()) == 1.0  # heavy clamping reaches both ends
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # the same on any device
    torch.testing.assert_close(ref, (x + 5.0 * eps.to(device)).clamp(0, 1))


def test_fill_keeps_kept_pixels(device):
    x = torch.rand(2, 3, 6, 6).to(device)
    keep = (torch.rand(2, 1, 6, 6) > 0.5).float().to(device)
    out = NoiseBaseline(seed=3).fill(x, keep)
    k = keep.expand_as(x).bool()
    assert torch.equal(out[k], x[k])
    assert torch.equal(out[~k], NoiseBaseline(seed=3)(x)[~k])


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"std": -0.1}, ValueError, "std must be"),
        ({"std": "a"}, TypeError, "std must be"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"center": 2.0}, ValueError, "center must lie in"),
        ({"center": "grey"}, TypeError, "center must be"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        NoiseBaseline(**kwargs)
