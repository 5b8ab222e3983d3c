"""captum_cf.attr.NeuronGradientShap: one reference per example, by hand on a linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from captum_cf.attr import NeuronGradientShap


def test_each_example_is_explained_from_its_own_reference(fixed, device, on_device):
    """A linear neuron, stdevs = 0: every sample gives (x_n - x'_n) * w_k exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2)).to(device)
    x, ref = torch.rand(4, 2, 2, 2).to(device), torch.rand(4, 2, 2, 2).to(device)
    attr = NeuronGradientShap(model, model[1]).attribute(x, 2, fixed(ref), n_samples=6)
    want = (x - ref) * model[1].weight[2].detach().view(1, 2, 2, 2)
    assert (attr - want).abs().max() < 1e-6 and on_device(attr)
