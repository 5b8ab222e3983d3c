"""captum_cf.attr.NeuronConductance: the inputs' shares sum to the neuron's layer conductance."""

from __future__ import annotations

import torch

from captum_cf.attr import LayerConductance, NeuronConductance


def test_shares_sum_to_the_layer_conductance_of_the_neuron(
    smooth_cnn, images, refs, fixed, on_device
):
    m, kw = smooth_cnn, dict(target=2, n_steps=200, method="riemann_trapezoid")
    shares = NeuronConductance(m, m.act).attribute(images, (3, 0, 1), fixed(refs), **kw)
    layer = LayerConductance(m, m.act).attribute(images, fixed(refs), **kw)
    assert layer[:, 3, 0, 1].abs().min() > 1e-3
    assert torch.allclose(shares.sum(dim=(1, 2, 3)), layer[:, 3, 0, 1], rtol=0.02, atol=0)
    assert on_device(shares, layer)
