"""probe_concept: neutral starts, moved towards the class within the pixel budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_cf.robust import probe_concept


def _linear() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with torch.no_grad():
        model[1].weight.mul_(5)
    return model.eval()


def test_probe_reaches_class_within_budget(device) -> None:
    model = _linear().to(device)
    start = probe_concept(model, [0, 1, 2], image_shape=(1, 8, 8), n=3, k=1, n_steps=2)
    probes = probe_concept(model, [0, 1, 2], image_shape=(1, 8, 8), n=3, k=16, n_steps=20)
    assert start.device == device and probes.device == device  # drawn on the CPU, then moved
    assert torch.equal(model(probes).argmax(1).cpu(), torch.tensor([0, 1, 2]))
    start, probes = start.cpu(), probes.cpu()
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x0 = (0.5 + 0.1 * noise).clamp(0, 1)
    changed = (probes != x0).flatten(1).sum(1)
    assert (changed <= 16).all() and (changed > 1).all()
    assert ((start != x0).flatten(1).sum(1) <= 1).all()  # the start is the documented grey noise
    assert (probes >= 0).all() and (probes <= 1).all()


def test_probe_starts(device) -> None:
    model = _linear().to(device)
    grey = probe_concept(model, 2, start="grey", image_shape=(1, 8, 8), sparsity=0.95, n_steps=4)
    assert grey.device == device and int((grey != 0.5).sum()) <= round(0.05 * 64)
    given = torch.full((2, 1, 8, 8), 0.25, device=device)
    out = probe_concept(model, 1, start=given, k=4, n_steps=4)
    assert out.device == device
    assert out.shape == (2, 1, 8, 8) and int((out != 0.25).flatten(1).sum(1).max()) <= 4
    a = probe_concept(model, 0, start="uniform-noise", image_shape=(1, 8, 8), seed=3, n_steps=2)
    b = probe_concept(model, 0, start="uniform-noise", image_shape=(1, 8, 8), seed=3, n_steps=2)
    assert a.device == device and torch.equal(a, b)


def test_bad_input() -> None:
    model = _linear()
    with pytest.raises(ValueError, match="start must be"):
        probe_concept(model, 0, start="zebra", image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="image_shape"):
        probe_concept(model, 0)
    with pytest.raises(ValueError, match="sparsity"):
        probe_concept(model, 0, image_shape=(1, 8, 8), sparsity=1.0)
    with pytest.raises(ValueError, match="n must be"):
        probe_concept(model, 0, image_shape=(1, 8, 8), n=0)
    with pytest.raises(ValueError, match="target must have one entry per example"):
        probe_concept(model, [0, 1], image_shape=(1, 8, 8), n=3)
