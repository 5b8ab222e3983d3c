"""captum_cf.attr.DeepLift and DeepLiftShap: Captum's numbers, plus (per-example) Baselines."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from chunking_helpers import run_split_explainer

from captum_cf._registry import AuditContext
from captum_cf.attr import METHODS, DeepLift, DeepLiftShap
from captum_cf.baselines import BlurBaseline, NoisyLinearImputation


def _equal(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def test_are_captum_classes_with_the_same_signatures(cnn, same_signature):
    assert isinstance(DeepLift(cnn), captum.attr.DeepLift)
    assert isinstance(DeepLiftShap(cnn), captum.attr.DeepLiftShap)
    assert same_signature(DeepLift, captum.attr.DeepLift)
    assert same_signature(DeepLiftShap, captum.attr.DeepLiftShap)


@pytest.mark.parametrize("kind", ["none", "scalar", "batch", "single"])
@pytest.mark.parametrize("delta", [False, True])
def test_deeplift_tensor_baselines_equal_captum(cnn, images, refs, kind, delta, device, on_device):
    baselines = {"none": None, "scalar": 0.25, "batch": refs, "single": refs[:1]}[kind]
    kw = dict(target=torch.tensor([0, 1, 2], device=device), return_convergence_delta=delta)
    ours = DeepLift(cnn).attribute(images, baselines, **kw)
    theirs = captum.attr.DeepLift(cnn).attribute(images, baselines, **kw)
    assert _equal(ours, theirs) and on_device(ours)


def test_deeplift_baseline_equals_captum_and_sums_to_delta(cnn, images, refs, fixed, on_device):
    def custom(multipliers, inputs, baselines):
        return tuple(m * 2 for m in multipliers)

    for extra in ({}, {"custom_attribution_func": custom}):
        theirs = captum.attr.DeepLift(cnn).attribute(images, refs, target=1, **extra)
        ours = DeepLift(cnn).attribute(images, fixed(refs), target=1, **extra)
        assert torch.equal(ours, theirs) and on_device(ours)
    # summation to delta: sum_i phi_i = F(x) - F(x') for the Baseline's reference
    attr = DeepLift(cnn).attribute(images, fixed(refs), target=1)
    with torch.no_grad():
        gap = cnn(images)[:, 1] - cnn(refs)[:, 1]
    assert gap.abs().min() > 0.05
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-4


def test_deeplift_multi_input_with_additional_args(two_input_net, fixed, device, on_device):
    img, vec = torch.rand(2, 1, 6, 6).to(device), torch.randn(2, 4).to(device)
    ref, scale = torch.rand(2, 1, 6, 6).to(device), torch.tensor([[1.0], [3.0]], device=device)
    kw = dict(target=2, additional_forward_args=(scale,), return_convergence_delta=True)
    theirs = captum.attr.DeepLift(two_input_net).attribute((img, vec), (ref, 0.5), **kw)
    ours = DeepLift(two_input_net).attribute((img, vec), (fixed(ref), 0.5), **kw)
    assert _equal(ours, theirs) and on_device(ours)


def test_deeplift_shap_distribution_and_callable_equal_captum(cnn, images, refs, on_device):
    dist = refs[:2]
    for baselines in (dist, lambda x: dist):
        kw = dict(target=2, return_convergence_delta=True)
        ours = DeepLiftShap(cnn).attribute(images, baselines, **kw)
        theirs = captum.attr.DeepLiftShap(cnn).attribute(images, baselines, **kw)
        assert _equal(ours, theirs) and on_device(ours)


def test_deeplift_shap_baseline_single_example_equals_captum(cnn, images, refs, fixed, on_device):
    x, ref = images[:1], refs[:1]
    ours, delta = DeepLiftShap(cnn).attribute(
        x, fixed(ref), target=0, return_convergence_delta=True
    )
    # Captum's DeepLiftShap needs B > 1 references; a distribution of one is DeepLift itself ...
    theirs, their_delta = captum.attr.DeepLift(cnn).attribute(
        x, ref, target=0, return_convergence_delta=True
    )
    assert torch.equal(ours, theirs) and torch.equal(delta, their_delta)
    assert on_device(ours, delta)
    # ... and Captum's DeepLiftShap over two copies of that reference gives the same average
    two = captum.attr.DeepLiftShap(cnn).attribute(x, ref.repeat(2, 1, 1, 1), target=0)
    assert torch.allclose(ours, two, atol=1e-7, rtol=1e-6)


def test_deeplift_shap_baseline_is_per_example(cnn, images, refs, fixed):
    """Example n's attribution depends on its own reference only (no mixing across examples)."""
    dls = DeepLiftShap(cnn)
    a = dls.attribute(images, fixed(refs), target=1)
    moved = refs.clone()
    moved[1:] = 1 - moved[1:]
    b = dls.attribute(images, fixed(moved), target=1)
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1:], b[1:])
    # each example on its own with its own reference gives the same numbers
    for n in range(3):
        alone = captum.attr.DeepLift(cnn).attribute(images[n : n + 1], refs[n : n + 1], target=1)
        assert torch.allclose(a[n : n + 1], alone, atol=1e-6, rtol=1e-5)


def test_deeplift_shap_mixed_tuple_rejects_a_distribution(two_input_net, fixed, device, on_device):
    img, vec = torch.rand(3, 1, 6, 6).to(device), torch.rand(3, 4).to(device)
    with pytest.raises(ValueError, match=r"baselines\[1\] has shape \(2, 4\).*per example"):
        DeepLiftShap(two_input_net).attribute(
            (img, vec), (fixed(img), torch.rand(2, 4).to(device)), target=0
        )
    # per-example entries are fine, and equal DeepLift with the same references
    ref, vref = torch.rand(3, 1, 6, 6).to(device), torch.rand(3, 4).to(device)
    ours = DeepLiftShap(two_input_net).attribute((img, vec), (fixed(ref), vref), target=0)
    theirs = captum.attr.DeepLift(two_input_net).attribute((img, vec), (ref, vref), target=0)
    assert _equal(ours, theirs) and on_device(ours)


def test_bad_baselines(cnn, images, two_input_net, fixed, device):
    with pytest.raises(ValueError, match=r"baselines\[1\] \(BlurBaseline\) works on images.*"
                       r"inputs\[1\] has shape \(2, 4\)"):
        DeepLift(two_input_net).attribute(
            (torch.rand(2, 1, 6, 6).to(device), torch.rand(2, 4).to(device)),
            (0.0, BlurBaseline(1.0)), target=0,
        )
    with pytest.raises(TypeError, match="pass an instance"):
        DeepLiftShap(cnn).attribute(images, type(fixed(images)), target=0)
    with pytest.raises(TypeError, match="got list"):
        DeepLift(cnn).attribute(images, [0.0], target=0)


@pytest.mark.parametrize("cls", [DeepLift, DeepLiftShap])
def test_model_and_inputs_clean_after_errors(cls, cnn, images, refs, fixed, raising, model_state):
    """Captum leaves requires_grad on the inputs and input/output tensors on hooked modules when
    the call fails between forward and backward (a target out of range); we do not."""
    snapshot, assert_same_state = model_state
    cnn.conv.weight.requires_grad_(False)
    before, x = snapshot(cnn), images.clone()
    cls(cnn).attribute(images, fixed(refs), target=0)
    with pytest.raises(RuntimeError, match="baseline failed"):
        cls(cnn).attribute(images, raising, target=0)
    # out of range: raised by the model's first forward (between Captum's forward and backward)
    with pytest.raises(ValueError, match="target must be < 3"):
        cls(cnn).attribute(images, fixed(refs), target=5)
    with pytest.raises(ValueError, match="target must be < 3"):
        cls(cnn).attribute(images, refs[:2] if cls is DeepLiftShap else refs, target=5)
    assert_same_state(cnn, before)
    assert torch.equal(images, x) and not images.requires_grad


def test_registered_explainer(cnn, images, refs, fixed, on_device):
    ctx = AuditContext(model=cnn, data_name="toy", train_data=None, num_classes=3,
                       image_shape=(2, 6, 6))
    assert METHODS.is_available("deeplift", ctx)
    assert not METHODS.is_available("deeplift", AuditContext(
        model=lambda x: x, data_name="toy", train_data=None, num_classes=3, image_shape=(2, 6, 6)))
    got = METHODS.create("deeplift", ctx)(images, 2, fixed(refs))
    assert torch.equal(got, captum.attr.DeepLift(cnn).attribute(images, refs, target=2))
    assert on_device(got)


def test_registered_explainer_splits_large_calls(cnn, device, on_device):
    # the audit's DeepLift holds at most a sixth of the internal batch of inputs per pass (inputs
    # and references go through the model together, hooks keep every activation); the maps equal
    # one DeepLift call on the whole batch with the references drawn once
    got, seen, refs, x, target = run_split_explainer(cnn, "deeplift", 12, device)
    assert seen and max(seen) <= 4 and sum(seen) == 2 * 5
    whole = captum.attr.DeepLift(cnn).attribute(x, refs, target=target)
    torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-6)
    assert on_device(got)
    baseline = NoisyLinearImputation(noise=0.2, seed=4)
    ctx = AuditContext(model=cnn, data_name="toy", train_data=None, num_classes=3,
                       image_shape=(2, 6, 6), extras={"internal_batch_size": 12})
    # an int target and a call within the limit are passed as they are
    small = METHODS.create("deeplift", ctx)(x[:2], 1, baseline)
    assert torch.equal(small, DeepLift(cnn).attribute(x[:2], baseline, target=1))
