"""captum_cf.attr.NoiseTunnel: the clean inputs of a Baseline-filled method are checked, and the
Shap family pairs each noisy copy with its example's reference."""

from __future__ import annotations

import captum.attr
import pytest
import torch
import torch.nn as nn

import captum_cf.attr as cf
from captum_cf.attr import IntegratedGradients, NoiseTunnel, Occlusion
from captum_cf.baselines import Baseline, BlurBaseline, ConstantBaseline, InpaintBaseline
from captum_cf.inpainters import PushPullInpainter


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()


@pytest.mark.parametrize("method", [Occlusion, IntegratedGradients])
def test_uint8_images_are_rejected_like_the_plain_method(method: type) -> None:
    model = _model()
    x = (torch.rand(2, 1, 8, 8) * 255).to(torch.uint8)
    kwargs = {"sliding_window_shapes": (1, 4, 4)} if method is Occlusion else {}
    message = r"inputs must be a floating-point tensor.*got dtype torch.uint8"
    with pytest.raises(TypeError, match=message):
        method(model).attribute(x, baselines=BlurBaseline(1.0), target=0, **kwargs)
    with pytest.raises(TypeError, match=message):
        NoiseTunnel(method(model)).attribute(
            x, nt_samples=2, stdevs=0.1, baselines=BlurBaseline(1.0), target=0, **kwargs
        )


def test_images_outside_unit_range_are_rejected_before_the_noise() -> None:
    # a pixel-space Baseline refuses clean inputs outside [0, 1]; only noisy copies are clamped
    x = torch.rand(2, 1, 8, 8) * 255
    message = r"works in pixel space .* but inputs has values in \[0\.\d+, 2\d\d"
    with pytest.raises(ValueError, match=message):
        NoiseTunnel(Occlusion(_model())).attribute(
            x, nt_samples=2, stdevs=0.1, baselines=InpaintBaseline(PushPullInpainter()),
            target=0, sliding_window_shapes=(1, 4, 4),
        )


def test_clean_images_still_work_and_noise_leaves_unit_range(device, on_device) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8).to(device)
    out = NoiseTunnel(Occlusion(_model().to(device))).attribute(
        x, nt_samples=2, stdevs=0.5, baselines=InpaintBaseline(PushPullInpainter()),
        target=0, sliding_window_shapes=(1, 4, 4),
    )
    assert out.shape == x.shape and bool(torch.isfinite(out).all()) and on_device(out)


@pytest.mark.parametrize("kwargs, message", [
    ({"nt_samples": 0}, "nt_samples must be a positive int"),
    ({"nt_samples_batch_size": 0}, "nt_samples_batch_size must be a positive int"),
    ({"stdevs": -0.1}, "stdevs must be a finite number >= 0"),
    ({"nt_type": "foo"}, "Noise types must be either"),
])
def test_bad_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    kwargs = {"nt_samples": 2, "stdevs": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        NoiseTunnel(IntegratedGradients(_model())).attribute(torch.rand(2, 1, 8, 8), target=0,
                                                             **kwargs)


class _RowReference(Baseline):
    """Reference of example n: all 10 * n, far apart for every example."""

    def _reference(self, inputs: torch.Tensor, target) -> torch.Tensor:
        rows = torch.arange(inputs.shape[0], dtype=inputs.dtype, device=inputs.device)
        return (rows.view(-1, 1) * 10).expand_as(inputs).clone()


# the six Shap classes: (name, constructor of the method on a one-layer linear model, kwargs)
_SHAP = {
    "GradientShap": (lambda m: cf.GradientShap(m), {"target": 0}),
    "DeepLiftShap": (lambda m: cf.DeepLiftShap(m), {"target": 0}),
    "LayerGradientShap": (lambda m: cf.LayerGradientShap(m, m[0]),
                          {"target": 0, "attribute_to_layer_input": True}),
    "LayerDeepLiftShap": (lambda m: cf.LayerDeepLiftShap(m, m[0]),
                          {"target": 0, "attribute_to_layer_input": True}),
    "NeuronGradientShap": (lambda m: cf.NeuronGradientShap(m, m[0]), {"neuron_selector": 0}),
    "NeuronDeepLiftShap": (lambda m: cf.NeuronDeepLiftShap(m, m[0]), {"neuron_selector": 0}),
}


@pytest.mark.parametrize("name", list(_SHAP))
def test_shap_methods_pair_each_noisy_copy_with_its_examples_reference(name, device, on_device):
    """For the Shap family a Baseline gives example n its own reference, also under NoiseTunnel
    (Captum's NoiseTunnel repeated the references into a distribution shared by all examples).
    On a linear model the paired attribution is exactly (x_n - x'_n) * w."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1)).to(device)
    x = torch.rand(3, 4).to(device)
    make, kw = _SHAP[name]
    baseline = _RowReference()
    expected = (x - baseline.reference(x)) * model[0].weight.detach()
    direct = make(model).attribute(x, baselines=baseline, **kw)
    tunnel = cf.NoiseTunnel(make(model)).attribute(x, baselines=baseline, nt_samples=4,
                                                   nt_samples_batch_size=2, stdevs=0.0, **kw)
    torch.testing.assert_close(direct, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tunnel, expected, atol=1e-4, rtol=1e-4)
    assert on_device(tunnel)
    # a ConstantBaseline too (the layer and neuron classes failed on Captum's number)
    tunnel = cf.NoiseTunnel(make(model)).attribute(x, baselines=ConstantBaseline(0.3),
                                                   nt_samples=2, stdevs=0.0, **kw)
    torch.testing.assert_close(tunnel, (x - 0.3) * model[0].weight.detach(), atol=1e-4,
                               rtol=1e-4)


def test_captums_own_shap_class_under_noise_tunnel_refuses_a_baseline() -> None:
    model = nn.Sequential(nn.Linear(4, 1))
    with pytest.raises(TypeError, match="wrap captum_cf.attr.GradientShap instead"):
        cf.NoiseTunnel(captum.attr.GradientShap(model)).attribute(
            torch.rand(3, 4), baselines=_RowReference(), nt_samples=2, target=0)


@pytest.mark.parametrize("method", ["Occlusion", "IntegratedGradients", "GradientShap"])
def test_the_dtype_rule_holds_on_the_clean_inputs(method, device):
    # Captum's float32 noise upcast float16 inputs: NoiseTunnel ran a float32 model on them
    # silently, or failed inside with the dtypes backwards

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(2, 1, 8, 8).to(device).half()
    kwargs = {"sliding_window_shapes": (1, 4, 4)} if method == "Occlusion" else {}
    for baselines in (0.0, BlurBaseline(1.0)):
        with pytest.raises(TypeError, match=r"inputs has dtype torch.float16 but the model "
                                            r"computes in torch.float32"):
            NoiseTunnel(getattr(cf, method)(model)).attribute(
                x, nt_samples=2, stdevs=0.1, baselines=baselines, target=0, **kwargs)


def test_a_constant_baseline_with_draw_baseline_from_distrib_is_captums_number(device):
    # ConstantBaseline(c) is bit for bit baselines=c: also where Captum draws from baselines
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    kw = dict(nt_samples=3, stdevs=0.1, target=0, draw_baseline_from_distrib=True)
    torch.manual_seed(0)
    ours = NoiseTunnel(IntegratedGradients(model)).attribute(x, baselines=ConstantBaseline(0.1),
                                                             **kw)
    torch.manual_seed(0)
    theirs = captum.attr.NoiseTunnel(captum.attr.IntegratedGradients(model)).attribute(
        x, baselines=0.1, **kw)
    assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="draw_baseline_from_distrib=True draws references"):
        NoiseTunnel(IntegratedGradients(model)).attribute(x, baselines=BlurBaseline(1.0), **kw)
