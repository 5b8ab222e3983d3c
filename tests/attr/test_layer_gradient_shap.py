"""captum_cf.attr.LayerGradientShap: one reference per example (paired), by hand on a linear net."""

from __future__ import annotations

import captum.attr
import torch
import torch.nn as nn

from captum_cf.attr import LayerGradientShap


def test_each_example_is_explained_from_its_own_reference(fixed, device, on_device):
    """Linear layers, stdevs = 0: every sample gives (g(x_n) - g(x'_n)) * dF/dg exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3), nn.Linear(3, 2)).to(device)
    x, ref = torch.rand(4, 2, 2, 2).to(device), torch.rand(4, 2, 2, 2).to(device)
    attr, delta = LayerGradientShap(model, model[1]).attribute(
        x, fixed(ref), n_samples=5, target=1, return_convergence_delta=True
    )
    with torch.no_grad():
        want = (model[1](x.flatten(1)) - model[1](ref.flatten(1))) * model[2].weight[1]
    assert (attr - want).abs().max() < 1e-6
    assert delta.shape == (4 * 5,) and delta.abs().max() < 1e-5 and on_device(attr, delta)
    pooled = captum.attr.LayerGradientShap(model, model[1]).attribute(x, ref, n_samples=5, target=1)
    assert (pooled - want).abs().max() > 1e-2  # Captum draws references from the batch


def test_a_number_next_to_a_baseline_and_a_function_model(fixed, device, on_device):
    """A number beside a Baseline is a reference row (it reached the model as a float), and a
    plain function as model gets its target checked like a module."""
    import pytest

    torch.manual_seed(0)
    img_net, tab_net = nn.Linear(4, 3).to(device), nn.Linear(6, 3).to(device)

    def model(img, tab):
        return img_net(img.flatten(1)) + tab_net(tab)

    x = (torch.rand(3, 1, 2, 2).to(device), torch.rand(3, 6).to(device))
    ref = torch.rand(3, 1, 2, 2).to(device)
    torch.manual_seed(1)
    got = LayerGradientShap(model, tab_net).attribute(x, (fixed(ref), 0.0), target=1)
    torch.manual_seed(1)
    zeros = torch.zeros(1, 6, device=device)
    want = LayerGradientShap(model, tab_net).attribute(x, (fixed(ref), zeros), target=1)
    assert torch.equal(got, want) and on_device(got)
    with pytest.raises(ValueError, match="target must be < 3"):
        LayerGradientShap(model, tab_net).attribute(x, (fixed(ref), 0.0), target=7)
