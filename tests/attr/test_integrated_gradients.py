"""captum_cf.attr.IntegratedGradients (and NoiseTunnel): Captum's numbers, plus Baselines."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from chunking_helpers import run_split_explainer

from captum_cf._registry import AuditContext
from captum_cf.attr import METHODS, IntegratedGradients, NoiseTunnel
from captum_cf.baselines import Baseline, ConstantBaseline


class _FirstImage(Baseline):
    """A faulty Baseline that ignores the batch size."""

    def _reference(self, inputs, target):
        return inputs[:1].clone()


def _equal(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def test_is_a_captum_integrated_gradients_with_the_same_signature(cnn, same_signature):
    assert isinstance(IntegratedGradients(cnn), captum.attr.IntegratedGradients)
    assert same_signature(IntegratedGradients, captum.attr.IntegratedGradients)
    assert same_signature(NoiseTunnel, captum.attr.NoiseTunnel)
    # NoiseTunnel calls attribute.__wrapped__: the override keeps Captum's decorator
    assert hasattr(IntegratedGradients.attribute, "__wrapped__")


@pytest.mark.parametrize("kind", ["none", "scalar", "batch", "single"])
@pytest.mark.parametrize("delta", [False, True])
def test_tensor_and_scalar_baselines_equal_captum(cnn, images, refs, kind, delta, on_device):
    baselines = {"none": None, "scalar": 0.25, "batch": refs, "single": refs[:1]}[kind]
    kw = dict(target=1, n_steps=8, return_convergence_delta=delta)
    ours = IntegratedGradients(cnn).attribute(images, baselines, **kw)
    theirs = captum.attr.IntegratedGradients(cnn).attribute(images, baselines, **kw)
    assert _equal(ours, theirs) and on_device(ours)


def test_baseline_resolved_to_tensor_equals_captum(cnn, images, refs, fixed, device, on_device):
    kw = dict(target=torch.tensor([0, 2, 1], device=device), n_steps=10,
              method="riemann_trapezoid")
    theirs = captum.attr.IntegratedGradients(cnn).attribute(images, refs, **kw)
    ours = IntegratedGradients(cnn).attribute(images, fixed(refs), **kw)
    assert torch.equal(ours, theirs)
    # internal batching and the convergence delta (computed against the resolved reference)
    kw.update(internal_batch_size=7, return_convergence_delta=True)
    theirs = captum.attr.IntegratedGradients(cnn).attribute(images, refs, **kw)
    ours = IntegratedGradients(cnn).attribute(images, fixed(refs), **kw)
    assert _equal(ours, theirs) and on_device(ours)


def test_baseline_gets_the_call_target_and_clean_inputs(cnn, images, refs, fixed, device):
    b = fixed(refs)
    target = torch.tensor([2, 0, 1], device=device)
    IntegratedGradients(cnn).attribute(images.requires_grad_(), b, target=target, n_steps=2)
    assert len(b.targets) == 1 and b.targets[0] is target


def test_completeness_with_a_baseline(smooth_cnn, images, on_device):
    """sum_i IG_i = F(x) - F(x') for the Baseline's reference x' (Gauss-Legendre, 64 steps)."""
    baseline = ConstantBaseline(0.5)
    attr, delta = IntegratedGradients(smooth_cnn).attribute(
        images, baseline, target=2, n_steps=64, return_convergence_delta=True
    )
    with torch.no_grad():
        gap = smooth_cnn(images)[:, 2] - smooth_cnn(torch.full_like(images, 0.5))[:, 2]
    assert gap.abs().min() > 0.05  # the check is not vacuous
    assert (attr.sum(dim=(1, 2, 3)) - gap).abs().max() < 1e-4
    assert delta.abs().max() < 1e-4
    assert on_device(attr, delta)


def test_multi_input_with_additional_args(two_input_net, fixed, device, on_device):
    img = torch.rand(2, 1, 6, 6).to(device)
    vec = torch.randn(2, 4).to(device)
    scale = torch.tensor([[1.0], [2.0]], device=device)
    ref = torch.rand(2, 1, 6, 6).to(device)
    kw = dict(target=0, additional_forward_args=(scale,), n_steps=6, internal_batch_size=5)
    theirs = captum.attr.IntegratedGradients(two_input_net).attribute((img, vec), (ref, 0.1), **kw)
    ours = IntegratedGradients(two_input_net).attribute((img, vec), (fixed(ref), 0.1), **kw)
    assert isinstance(ours, tuple) and _equal(ours, theirs) and on_device(ours)
    # a single input given as a 1-tuple with a bare Baseline
    theirs = captum.attr.IntegratedGradients(lambda x: x.sum((1, 2, 3))).attribute((img,), ref)
    ours = IntegratedGradients(lambda x: x.sum((1, 2, 3))).attribute((img,), fixed(ref))
    assert _equal(ours, theirs)


def test_noise_tunnel_with_tensor_equals_captum(cnn, images, refs, seeded, on_device):
    kw = dict(nt_type="vargrad", nt_samples=3, stdevs=0.1, baselines=refs, target=1, n_steps=4)
    seeded(0)
    theirs = captum.attr.NoiseTunnel(captum.attr.IntegratedGradients(cnn)).attribute(images, **kw)
    seeded(0)
    ours = captum.attr.NoiseTunnel(IntegratedGradients(cnn)).attribute(images, **kw)
    assert torch.equal(ours, theirs) and on_device(ours)


def test_noise_tunnel_with_baseline_equals_captum_with_reference(
    cnn, images, refs, fixed, seeded, on_device
):
    kw = dict(nt_samples=3, nt_samples_batch_size=2, stdevs=0.2, target=1, n_steps=4,
              return_convergence_delta=True)
    seeded(0)
    theirs = captum.attr.NoiseTunnel(captum.attr.IntegratedGradients(cnn)).attribute(
        images, baselines=refs, **kw
    )
    b = fixed(refs)
    seeded(0)
    ours = NoiseTunnel(IntegratedGradients(cnn)).attribute(images, baselines=b, **kw)
    assert _equal(ours, theirs) and on_device(ours)
    assert len(b.targets) == 1  # resolved once, from the clean inputs
    with pytest.raises(ValueError, match="draw_baseline_from_distrib"):
        NoiseTunnel(IntegratedGradients(cnn)).attribute(
            images, baselines=b, draw_baseline_from_distrib=True, target=1
        )
    # Captum's own NoiseTunnel checks baselines itself: the documented reason for our subclass
    with pytest.raises(AssertionError, match="baseline input argument"):
        captum.attr.NoiseTunnel(IntegratedGradients(cnn)).attribute(images, baselines=b, target=1)


def test_image_baseline_for_a_non_image_input_is_a_clear_error(
    two_input_net, fixed, device, on_device
):
    from captum_cf.baselines import BlurBaseline

    img, vec = torch.rand(2, 1, 6, 6).to(device), torch.rand(2, 4).to(device)
    ig = IntegratedGradients(two_input_net)
    with pytest.raises(ValueError, match=r"baselines\[1\] \(BlurBaseline\) works on images of "
                       r"shape \(N, C, H, W\), but inputs\[1\] has shape \(2, 4\)"):
        ig.attribute((img, vec), (0.0, BlurBaseline(1.0)), target=0)
    # a generic Baseline on the vector input is its reference, as a tensor would be
    vref = torch.rand(1, 4).to(device)
    ours = ig.attribute((img, vec), (0.0, fixed(vref)), target=0)
    theirs = captum.attr.IntegratedGradients(two_input_net).attribute(
        (img, vec), (0.0, vref.expand(2, 4)), target=0
    )
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs)) and on_device(ours)
    with pytest.raises(ValueError, match="one baseline per input"):
        ig.attribute((img, vec), fixed(img), target=0)
    with pytest.raises(ValueError, match="has 1 entry"):
        ig.attribute((img, vec), (fixed(img),), target=0)


@pytest.mark.parametrize(
    "baselines, match",
    [
        ([0.0], "baselines must be None, a number, a Tensor, a Baseline"),
        ("zero", "got str"),
        (ConstantBaseline, "pass an instance"),
        ((ConstantBaseline(0.0), None), r"baselines\[1\] must be a number"),
        (lambda x: x, "got function"),
    ],
)
def test_wrong_baseline_types_raise_type_error(cnn, images, baselines, match):
    with pytest.raises(TypeError, match=match):
        IntegratedGradients(cnn).attribute(images, baselines, target=0)


def test_bad_inputs_and_bad_baselines_raise_value_error(cnn, images, refs, fixed, target_baseline):
    ig = IntegratedGradients(cnn)
    from captum_cf.baselines import InpaintBaseline
    from captum_cf.inpainters import PushPullInpainter

    with pytest.raises(ValueError, match=r"InpaintBaseline\) works in pixel space .*trained on "
                       r"values in \[0, 1\].*noisy_inputs"):
        ig.attribute(images * 3, InpaintBaseline(PushPullInpainter()), target=0)
    with pytest.raises(ValueError, match="contains NaN"):
        ig.attribute(images.masked_fill(images > 0.9, float("nan")), fixed(refs), target=0)
    with pytest.raises(ValueError, match=r"reference returned \(1, 2, 6, 6\)"):
        ig.attribute(images, _FirstImage(), target=0)
    with pytest.raises(ValueError, match="pass target="):
        ig.attribute(images, target_baseline(refs), target=None)


def test_model_and_inputs_unchanged_after_errors(cnn, images, refs, fixed, raising, model_state):
    snapshot, assert_same_state = model_state
    cnn.train()
    cnn.conv.bias.requires_grad_(False)
    before, x = snapshot(cnn), images.clone()
    ig = IntegratedGradients(cnn)
    ig.attribute(images, fixed(refs), target=0, n_steps=3)
    with pytest.raises(RuntimeError, match="baseline failed"):
        ig.attribute(images, raising, target=0)
    with pytest.raises(ValueError, match="target must be < 3"):
        ig.attribute(images, fixed(refs), target=7, n_steps=3)
    assert_same_state(cnn, before)
    assert torch.equal(images, x) and not images.requires_grad


def test_registered_explainer(cnn, images, refs, fixed, device, on_device):
    ctx = AuditContext(model=cnn, data_name="toy", train_data=None, num_classes=3,
                       image_shape=(2, 6, 6))
    explain = METHODS.create("integrated-gradients", ctx)
    target = torch.tensor([0, 1, 2], device=device)
    got = explain(images, target, fixed(refs))
    want = captum.attr.IntegratedGradients(cnn).attribute(images, refs, target=target, n_steps=32)
    assert got.shape == images.shape and on_device(got)
    assert torch.allclose(got, want, atol=1e-6, rtol=1e-5)  # internal batching reorders sums


def test_registered_explainer_splits_calls_larger_than_the_internal_batch(cnn, device, on_device):
    # Captum evaluates one step of every input per pass at least: the audit's IG splits a call
    # of more inputs than its internal batch, references drawn once for the whole call
    got, seen, refs, x, target = run_split_explainer(cnn, "integrated-gradients", 2, device)
    assert max(seen) <= 2 and sum(seen) == 5 * 32
    want = captum.attr.IntegratedGradients(cnn).attribute(x, refs, target=target, n_steps=32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert on_device(got)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_steps": "x"}, TypeError, "n_steps must be a positive int, got str"),
    ({"n_steps": 0}, ValueError, r"n_steps must be a positive int \(>= 1\), got 0"),
    ({"internal_batch_size": 0}, ValueError, "internal_batch_size must be a positive int"),
])
def test_bad_step_settings_are_clear_errors(cnn, images, kwargs, error, message):
    with pytest.raises(error, match=message):
        IntegratedGradients(cnn).attribute(images, target=0, **kwargs)


@pytest.mark.parametrize("target, error, message", [
    (True, TypeError, "target must be"),
    (1.5, TypeError, "target must be"),
    (-1, ValueError, "target must hold class indices >= 0, got -1"),
    ([0, 1], ValueError, r"target is a list of 2 entries but inputs have 3 examples"),
    (torch.zeros(3, 2, dtype=torch.long), ValueError, r"target must be a single class or have"),
    (7, ValueError, "target must be < 3: the model returns 3 classes"),
])
def test_bad_targets_are_clear_errors(cnn, images, target, error, message):
    with pytest.raises(error, match=message):
        IntegratedGradients(cnn).attribute(images, target=target, n_steps=2)
