"""captum_cf.attr.GradientShap: Captum's numbers, plus per-example Baselines."""

from __future__ import annotations

import captum
import captum.attr
import pytest
import torch
import torch.nn as nn

from captum_cf.attr import GradientShap


def _equal(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def _both(model, inputs, ours_baselines, their_baselines, seeded, **kw):
    seeded(3)
    theirs = captum.attr.GradientShap(model).attribute(inputs, their_baselines, **kw)
    seeded(3)
    ours = GradientShap(model).attribute(inputs, ours_baselines, **kw)
    return ours, theirs


def test_is_a_captum_gradient_shap_with_the_same_signature(cnn, same_signature):
    assert isinstance(GradientShap(cnn), captum.attr.GradientShap)
    assert same_signature(GradientShap, captum.attr.GradientShap)


@pytest.mark.parametrize("delta", [False, True])
def test_distribution_and_callable_equal_captum(
    cnn, images, refs, seeded, delta, device, on_device
):
    target = torch.tensor([0, 1, 2], device=device)
    kw = dict(n_samples=4, stdevs=0.1, target=target, return_convergence_delta=delta)
    for baselines in (refs[:2], lambda x: refs[:2]):
        ours, theirs = _both(cnn, images, baselines, baselines, seeded, **kw)
        assert _equal(ours, theirs) and on_device(ours)


@pytest.mark.parametrize("delta", [False, True])
def test_single_example_baseline_equals_captum(
    cnn, images, refs, fixed, seeded, delta, on_device
):
    """N = 1: a Baseline resolved to a tensor gives exactly Captum's result with that tensor."""
    x, ref = images[:1], refs[:1]
    kw = dict(n_samples=5, stdevs=0.2, target=2, return_convergence_delta=delta)
    ours, theirs = _both(cnn, x, fixed(ref), ref, seeded, **kw)
    assert _equal(ours, theirs) and on_device(ours)


@pytest.mark.skipif(
    tuple(int(v) for v in captum.__version__.split(".")[:2]) < (0, 8),
    reason="Captum 0.7's NoiseTunnel fails on a tuple of stdevs (UnboundLocalError), in "
    "Captum's own GradientShap too; fixed in Captum 0.8",
)
def test_multi_input_single_example_equals_captum(two_input_net, fixed, seeded, device, on_device):
    img, vec, ref = (t.to(device) for t in (
        torch.rand(1, 1, 6, 6), torch.rand(1, 4), torch.rand(1, 1, 6, 6)))
    kw = dict(n_samples=3, stdevs=(0.1, 0.0), target=1,
              additional_forward_args=(torch.tensor([[2.0]], device=device),))
    ours, theirs = _both(two_input_net, (img, vec), (fixed(ref), 0.5), (ref, 0.5), seeded, **kw)
    assert isinstance(ours, tuple) and _equal(ours, theirs) and on_device(ours)


def test_each_example_uses_its_own_reference_linear_model(fixed, device, on_device):
    """For a linear model with stdevs = 0 every path gives (x_n - x'_n) * w exactly; drawing
    references from the batch as a shared distribution would mix the examples."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 2)).to(device)
    x, ref = torch.rand(4, 2, 2, 2).to(device), torch.rand(4, 2, 2, 2).to(device)
    attr = GradientShap(model).attribute(x, fixed(ref), n_samples=6, target=1)
    want = (x - ref) * model[1].weight[1].detach().view(1, 2, 2, 2)
    assert (attr - want).abs().max() < 1e-6 and on_device(attr)


def test_each_example_uses_its_own_reference(cnn, images, refs, fixed, seeded):
    """Moving the references of examples 1..N-1 leaves example 0's attribution unchanged."""
    moved = refs.clone()
    moved[1:] = 1 - moved[1:]
    kw = dict(n_samples=4, stdevs=0.1, target=0)
    seeded(5)
    a = GradientShap(cnn).attribute(images, fixed(refs), **kw)
    seeded(5)
    b = GradientShap(cnn).attribute(images, fixed(moved), **kw)
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1:], b[1:])


def test_delta_per_example_and_sample(cnn, images, refs, fixed, on_device):
    attr, delta = GradientShap(cnn).attribute(
        images, fixed(refs), n_samples=4, target=0, return_convergence_delta=True
    )
    assert attr.shape == images.shape and delta.shape == (3 * 4,) and on_device(attr, delta)


def test_mixed_tuple_rejects_a_distribution(two_input_net, fixed, device):
    img, vec = torch.rand(3, 1, 6, 6).to(device), torch.rand(3, 4).to(device)
    with pytest.raises(ValueError, match=r"baselines\[1\] has shape \(5, 4\)"):
        GradientShap(two_input_net).attribute(
            (img, vec), (fixed(img), torch.rand(5, 4).to(device)), target=0
        )


def test_bad_input(cnn, images, fixed, two_input_net, device):
    from captum_cf.baselines import BlurBaseline

    with pytest.raises(ValueError, match=r"BlurBaseline\) works on images.*inputs\[1\] has shape"):
        GradientShap(two_input_net).attribute(
            (torch.rand(2, 1, 6, 6).to(device), torch.rand(2, 4).to(device)),
            (0.0, BlurBaseline(1.0)), target=0,
        )
    with pytest.raises(TypeError, match="got list"):
        GradientShap(cnn).attribute(images, [images], target=0)


def test_model_and_inputs_unchanged_after_errors(cnn, images, refs, fixed, raising, model_state):
    snapshot, assert_same_state = model_state
    cnn.train()
    cnn.fc.weight.requires_grad_(False)
    before, x = snapshot(cnn), images.clone()
    GradientShap(cnn).attribute(images, fixed(refs), target=1)
    with pytest.raises(RuntimeError, match="baseline failed"):
        GradientShap(cnn).attribute(images, raising, target=1)
    with pytest.raises(ValueError, match="target must be < 3"):
        GradientShap(cnn).attribute(images, fixed(refs), target=9)
    assert_same_state(cnn, before)
    assert torch.equal(images, x) and not images.requires_grad


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples must be a positive int"),
    ({"stdevs": -1.0}, "stdevs must be a finite number >= 0"),
    ({"stdevs": float("nan")}, "stdevs must be a finite number >= 0"),
])
def test_bad_sampling_settings_are_clear_errors(cnn, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientShap(cnn).attribute(images, torch.zeros_like(images), target=0, **kwargs)
