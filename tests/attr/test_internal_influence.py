"""captum_cf.attr.InternalInfluence: the Baseline chooses the path of the averaged gradient."""

from __future__ import annotations

import captum.attr
import torch

from captum_cf.attr import InternalInfluence


def test_a_baseline_equal_to_the_input_gives_the_layer_gradient_at_the_input(
    smooth_cnn, images, fixed, on_device
):
    """The path from x to x is one point: the average gradient is the gradient at x."""
    ours = InternalInfluence(smooth_cnn, smooth_cnn.conv).attribute(images, fixed(images), target=0)
    grad = captum.attr.LayerGradientXActivation(
        smooth_cnn, smooth_cnn.conv, multiply_by_inputs=False
    ).attribute(images, target=0)
    # captum 0.7 (the oldest supported) returns float64 here for float32 inputs
    assert torch.allclose(ours.to(grad.dtype), grad, atol=1e-6) and on_device(ours)
    ii = InternalInfluence(smooth_cnn, smooth_cnn.conv)
    other = ii.attribute(images, fixed(1 - images), target=0)
    assert not torch.allclose(other.to(grad.dtype), grad, atol=1e-3)
