"""captum_cf.attr.LayerIntegratedGradients: completeness from a Baseline, mixed tuples."""

from __future__ import annotations

import captum.attr
import pytest
import torch

from captum_cf.attr import LayerIntegratedGradients


def test_layer_attributions_sum_to_the_output_gap(smooth_cnn, images, refs, fixed, on_device):
    lig = LayerIntegratedGradients(smooth_cnn, smooth_cnn.conv)
    attr, delta = lig.attribute(
        images, fixed(refs), target=2, n_steps=64, return_convergence_delta=True
    )
    with torch.no_grad():
        gap = smooth_cnn(images)[:, 2] - smooth_cnn(refs)[:, 2]
    assert attr.shape == (3, 4, 4, 4) and gap.abs().min() > 0.02
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-3
    assert delta.abs().max() < 1e-3 and on_device(attr, delta)


def test_tuple_with_a_baseline_and_a_number_equals_captum(two_input_net, fixed, device, on_device):
    img, vec = torch.rand(2, 1, 6, 6).to(device), torch.randn(2, 4).to(device)
    ref, scale = torch.rand(2, 1, 6, 6).to(device), torch.tensor([[1.0], [3.0]], device=device)
    kw = dict(target=0, additional_forward_args=(scale,), n_steps=8, return_convergence_delta=True)
    ours = LayerIntegratedGradients(two_input_net, two_input_net.conv).attribute(
        (img, vec), (fixed(ref), 0.5), **kw
    )
    theirs = captum.attr.LayerIntegratedGradients(two_input_net, two_input_net.conv).attribute(
        (img, vec), (ref, 0.5), **kw
    )
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert on_device(ours)


def test_token_ids_with_a_float_baseline_name_it_and_the_pad_id_way(device):
    from captum_cf.baselines import ConstantBaseline, NoiseBaseline

    emb = torch.nn.Embedding(10, 4).to(device)
    model = torch.nn.Sequential(emb, torch.nn.Flatten(), torch.nn.Linear(12, 2)).to(device)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]], device=device)
    with pytest.raises(TypeError, match=r"inputs must be a floating-point tensor for baselines "
                                        r"\(NoiseBaseline\).*ConstantBaseline\(pad_id\)"):
        LayerIntegratedGradients(model, emb).attribute(ids, NoiseBaseline(), target=0)
    got = LayerIntegratedGradients(model, emb).attribute(ids, ConstantBaseline(0), target=0)
    assert got.shape == (2, 3, 4)
