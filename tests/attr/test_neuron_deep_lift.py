"""captum_cf.attr.NeuronDeepLift and NeuronDeepLiftShap with Baselines."""

from __future__ import annotations

import captum.attr
import torch

from captum_cf.attr import NeuronDeepLift, NeuronDeepLiftShap


def test_neuron_deeplift_sums_to_the_neuron_gap(smooth_cnn, images, refs, fixed, on_device):
    m = smooth_cnn
    attr = NeuronDeepLift(m, m.act).attribute(images, (0, 1, 1), fixed(refs))
    with torch.no_grad():
        gap = m.act(m.pool(m.conv(images)))[:, 0, 1, 1] - m.act(m.pool(m.conv(refs)))[:, 0, 1, 1]
    assert gap.abs().max() > 0.05
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-5 and on_device(attr)


def test_neuron_deeplift_shap_pairs_each_example_with_its_reference(
    cnn, images, refs, fixed, on_device
):
    ours = NeuronDeepLiftShap(cnn, cnn.act).attribute(images, (1, 1, 0), fixed(refs))
    theirs = captum.attr.NeuronDeepLift(cnn, cnn.act).attribute(images, (1, 1, 0), refs)
    assert torch.equal(ours, theirs) and on_device(ours)
    pooled = captum.attr.NeuronDeepLiftShap(cnn, cnn.act).attribute(images, (1, 1, 0), refs)
    assert not torch.allclose(ours, pooled, atol=1e-3)
