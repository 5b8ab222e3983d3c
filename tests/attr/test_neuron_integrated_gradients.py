"""captum_cf.attr.NeuronIntegratedGradients: completeness for one neuron from a Baseline."""

from __future__ import annotations

import torch

from captum_cf.attr import NeuronIntegratedGradients


def test_sums_to_the_neuron_gap_from_the_baseline(smooth_cnn, images, refs, fixed, on_device):
    m = smooth_cnn
    attr = NeuronIntegratedGradients(m, m.act).attribute(images, (2, 1, 0), fixed(refs), n_steps=64)
    with torch.no_grad():
        gap = m.act(m.pool(m.conv(images)))[:, 2, 1, 0] - m.act(m.pool(m.conv(refs)))[:, 2, 1, 0]
    assert attr.shape == images.shape and gap.abs().min() > 0.01
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-3 and on_device(attr)
