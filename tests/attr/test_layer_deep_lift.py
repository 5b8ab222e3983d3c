"""captum_cf.attr.LayerDeepLift and LayerDeepLiftShap with Baselines."""

from __future__ import annotations

import captum.attr
import torch

from captum_cf.attr import LayerDeepLift, LayerDeepLiftShap


def test_layer_deeplift_sums_to_the_output_gap_from_the_baseline(
    smooth_cnn, images, refs, fixed, on_device
):
    attr, delta = LayerDeepLift(smooth_cnn, smooth_cnn.conv).attribute(
        images, fixed(refs), target=0, return_convergence_delta=True
    )
    with torch.no_grad():
        gap = smooth_cnn(images)[:, 0] - smooth_cnn(refs)[:, 0]
    assert gap.abs().min() > 0.05
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-4 and delta.abs().max() < 1e-4
    assert on_device(attr, delta)


def test_layer_deeplift_shap_pairs_each_example_with_its_reference(
    cnn, images, refs, fixed, on_device
):
    """With a Baseline: Layer DeepLIFT from reference n for example n, delta of shape (N,)."""
    kw = dict(target=1, return_convergence_delta=True, attribute_to_layer_input=True)
    ours = LayerDeepLiftShap(cnn, cnn.act).attribute(images, fixed(refs), **kw)
    theirs = captum.attr.LayerDeepLift(cnn, cnn.act).attribute(images, refs, **kw)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert on_device(ours)
    pooled = captum.attr.LayerDeepLiftShap(cnn, cnn.act).attribute(images, refs, **kw)
    assert not torch.allclose(ours[0], pooled[0], atol=1e-3)  # Captum's shared pool differs
