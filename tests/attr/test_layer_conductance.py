"""captum_cf.attr.LayerConductance: conductance from a Baseline sums to the output gap."""

from __future__ import annotations

import torch

from captum_cf.attr import LayerConductance


def test_conductance_sums_to_the_output_gap_from_the_baseline(
    smooth_cnn, images, refs, fixed, on_device
):
    cond = LayerConductance(smooth_cnn, smooth_cnn.act)
    attr = cond.attribute(images, fixed(refs), target=1, n_steps=64)
    with torch.no_grad():
        gap = smooth_cnn(images)[:, 1] - smooth_cnn(refs)[:, 1]
    assert attr.shape == (3, 4, 2, 2) and gap.abs().min() > 0.05
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-3 and on_device(attr)
