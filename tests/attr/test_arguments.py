"""Arguments Captum does not check are checked before Captum runs, in every captum_cf.attr
method, with a ValueError/TypeError naming the argument (also an AssertionError, as Captum's
own checks of the same arguments are)."""

from __future__ import annotations

import warnings

import captum.attr
import pytest
import torch
import torch.nn as nn

import captum_cf.attr as cf
from captum_cf.baselines import ConstantBaseline


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 3))


X = torch.rand(2, 1, 4, 4)
MASK = torch.arange(16).view(1, 1, 4, 4) // 4

# name -> callable(model, device, **overrides) running the method with valid defaults, on X
# (and MASK) moved to the device
CALLS = {
    "IntegratedGradients": lambda m, d, **k: cf.IntegratedGradients(m).attribute(
        X.to(d), **{"n_steps": 3, "target": 0, **k}),
    "DeepLift": lambda m, d, **k: cf.DeepLift(m).attribute(X.to(d), **{"target": 0, **k}),
    "DeepLiftShap": lambda m, d, **k: cf.DeepLiftShap(m).attribute(
        X.to(d), **{"baselines": torch.zeros(2, 1, 4, 4, device=d), "target": 0, **k}),
    "GradientShap": lambda m, d, **k: cf.GradientShap(m).attribute(
        X.to(d),
        **{"baselines": torch.zeros(2, 1, 4, 4, device=d), "n_samples": 2, "target": 0, **k}),
    "NoiseTunnel": lambda m, d, **k: cf.NoiseTunnel(cf.IntegratedGradients(m)).attribute(
        X.to(d), **{"nt_samples": 2, "n_steps": 2, "target": 0, **k}),
    "Occlusion": lambda m, d, **k: cf.Occlusion(m).attribute(
        X.to(d), **{"sliding_window_shapes": (1, 2, 2), "target": 0, **k}),
    "FeatureAblation": lambda m, d, **k: cf.FeatureAblation(m).attribute(
        X.to(d), **{"feature_mask": MASK.to(d), "target": 0, **k}),
    "ShapleyValueSampling": lambda m, d, **k: cf.ShapleyValueSampling(m).attribute(
        X.to(d), **{"feature_mask": MASK.to(d), "n_samples": 1, "target": 0, **k}),
    "Lime": lambda m, d, **k: cf.Lime(m).attribute(
        X.to(d), **{"feature_mask": MASK.to(d), "n_samples": 5, "target": 0, **k}),
    "KernelShap": lambda m, d, **k: cf.KernelShap(m).attribute(
        X.to(d), **{"feature_mask": MASK.to(d), "n_samples": 5, "target": 0, **k}),
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize(
    "target, err, match",
    [
        (-1, ValueError, "target must hold class indices >= 0, got -1"),
        (torch.tensor([0, -2]), ValueError, "target must hold class indices >= 0, got -2"),
        (True, TypeError, "target must be an int.*got bool"),
        (1.0, TypeError, "target must be None, an int.*got float"),
        (torch.tensor([0.0, 1.0]), TypeError, "target must hold integer class indices"),
        ([0, 1, 2], ValueError, "target is a list of 3 entries but inputs have 2 examples"),
        (torch.tensor([0, 1, 2]), ValueError,
         r"target must be a single class or have shape \(2,\)"),
        (3, ValueError, r"target must be < 3: the model returns 3 classes"),
        ([0, 7], ValueError, r"target must be < 3: the model returns 3 classes"),
    ],
)
def test_bad_targets(name, target, err, match, device):
    """The range check runs the model once (on the device); the others raise before."""
    model = _model().to(device)
    if isinstance(target, torch.Tensor):
        target = target.to(device)
    with pytest.raises(err, match=match) as info:
        CALLS[name](model, device, target=target)
    assert isinstance(info.value, AssertionError)  # what Captum's own checks raise
    assert not model._forward_hooks  # the one-shot check left no hook behind


def test_out_of_range_target_of_a_plain_function(device, on_device):
    """A forward function that is no nn.Module: its first output is checked all the same."""
    model, x = _model().to(device), X.to(device)
    ig = cf.IntegratedGradients(lambda x: model(x))
    with pytest.raises(ValueError, match="target must be < 3"):
        ig.attribute(x, target=5)
    # and valid targets give Captum's numbers exactly
    expected = captum.attr.IntegratedGradients(lambda x: model(x)).attribute(x, target=2)
    got = ig.attribute(x, target=2)
    assert torch.equal(got, expected) and on_device(got)


def test_negative_target_was_silently_the_last_class_in_captum(device):
    model, x = _model().to(device), X.to(device)
    last = captum.attr.IntegratedGradients(model).attribute(x, target=2, n_steps=4)
    assert torch.equal(captum.attr.IntegratedGradients(model).attribute(x, target=-1, n_steps=4),
                       last)
    with pytest.raises(ValueError, match="negative index"):
        cf.IntegratedGradients(model).attribute(x, target=-1, n_steps=4)


def test_tuple_targets_of_multi_dimensional_outputs(device, on_device):
    class Grid(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :6].reshape(-1, 2, 3) * 2

    x = X.to(device)
    fa = cf.FeatureAblation(Grid())
    expected = captum.attr.FeatureAblation(Grid()).attribute(x, target=(1, 2))
    got = fa.attribute(x, target=(1, 2))
    assert torch.equal(got, expected) and on_device(got)
    with pytest.raises(ValueError, match=r"target must be < 2.*output dimension 1"):
        fa.attribute(x, target=(2, 0))
    with pytest.raises(ValueError, match=r"target must be < 3.*output dimension 2"):
        fa.attribute(x, target=[(0, 3), (1, 1)])


@pytest.mark.parametrize(
    "name, kwargs, err, match",
    [
        ("IntegratedGradients", {"n_steps": 0}, ValueError, r"n_steps must be a positive int"),
        ("IntegratedGradients", {"n_steps": -3}, ValueError, r"n_steps must be a positive int"),
        ("IntegratedGradients", {"n_steps": 2.5}, TypeError, r"n_steps must be a positive int"),
        ("IntegratedGradients", {"internal_batch_size": 0}, ValueError, "internal_batch_size"),
        ("GradientShap", {"n_samples": 0}, ValueError, "n_samples must be a positive int"),
        ("NoiseTunnel", {"nt_samples": 0}, ValueError, "nt_samples must be a positive int"),
        ("Occlusion", {"perturbations_per_eval": 0}, ValueError, "perturbations_per_eval"),
        ("FeatureAblation", {"perturbations_per_eval": -1}, ValueError, "perturbations_per_eval"),
        ("ShapleyValueSampling", {"n_samples": 0}, ValueError, "n_samples"),
        ("ShapleyValueSampling", {"perturbations_per_eval": 0}, ValueError,
         "perturbations_per_eval must be a positive int"),
        ("Lime", {"n_samples": 0}, ValueError, "n_samples"),
        ("KernelShap", {"perturbations_per_eval": True}, TypeError, "perturbations_per_eval"),
        ("Occlusion", {"strides": 0}, ValueError, r"strides=0 must be >= 1"),
        ("Occlusion", {"strides": (1, -1, 1)}, ValueError, r"strides=\(1, -1, 1\) must be >= 1"),
        ("Occlusion", {"strides": (1, 5, 1)}, ValueError,
         r"strides=\(1, 5, 1\) must be >= 1 and fit"),
        ("Occlusion", {"sliding_window_shapes": (1, 0, 2)}, ValueError, "sliding_window_shapes"),
        ("Occlusion", {"sliding_window_shapes": (1, 2)}, ValueError,
         r"sliding_window_shapes has 2 entries but the input has 3 dimensions"),
        ("Occlusion", {"sliding_window_shapes": (1, 8, 8)}, ValueError,
         r"sliding_window_shapes=\(1, 8, 8\) must be >= 1 and fit in the input's shape "
         r"\(1, 4, 4\)"),
        ("FeatureAblation", {"feature_mask": MASK.float()}, TypeError,
         "feature_mask must hold integer feature ids"),
        ("Lime", {"feature_mask": MASK - 1}, ValueError, "feature_mask must hold feature ids >= 0"),
        ("IntegratedGradients", {"baselines": torch.full((1, 1, 4, 4), float("nan"))}, ValueError,
         "baselines contains NaN"),
        ("Occlusion", {"baselines": float("nan")}, ValueError, "baselines must be finite"),
        ("DeepLift", {"baselines": (torch.tensor(float("inf")),)}, ValueError,
         r"baselines\[0\] contains NaN or infinite"),
    ],
)
def test_bad_counts_windows_masks_and_baselines(name, kwargs, err, match):
    """Pure argument checks before any computation: on the CPU only."""
    calls = []
    model = _model()
    model.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(err, match=match):
        CALLS[name](model, torch.device("cpu"), **kwargs)
    assert calls == []  # raised before the model ran


def test_readme_sp_g_window_on_one_channel_digits_is_a_clear_error(device, on_device):
    """README's first SP-G snippet used a (3, 8, 8) window on 1-channel digits."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10)).to(device)
    x = torch.rand(2, 1, 32, 32).to(device)
    with pytest.raises(ValueError, match=r"sliding_window_shapes=\(3, 8, 8\) .*a 1-channel image "
                       r"needs a window of shape \(1, h, w\)"):
        cf.Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                      baselines=ConstantBaseline(0.0), target=0)
    # the corrected snippet runs, and gives Captum's numbers
    got = cf.Occlusion(model).attribute(x, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4),
                                        baselines=ConstantBaseline(0.0), target=0)
    expected = captum.attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4), baselines=0.0, target=0
    )
    assert torch.equal(got, expected) and on_device(got)


def test_multi_input_windows_and_strides_follow_captums_rules(device, on_device):
    class Two(nn.Module):
        def forward(self, a, b):
            return torch.cat([a.flatten(1), b], 1)[:, :3]

    a, b = torch.rand(2, 1, 4, 4).to(device), torch.rand(2, 5).to(device)
    occ = cf.Occlusion(Two())
    expected = captum.attr.Occlusion(Two()).attribute(
        (a, b), ((1, 2, 2), (2,)), strides=(2, 1), target=0
    )
    got = occ.attribute((a, b), ((1, 2, 2), (2,)), strides=(2, 1), target=0)
    assert all(torch.equal(g, e) for g, e in zip(got, expected)) and on_device(got)
    with pytest.raises(ValueError, match=r"sliding_window_shapes\[1\]=\(6,\) must be >= 1 and fit"):
        occ.attribute((a, b), ((1, 2, 2), (6,)), target=0)
    with pytest.raises(ValueError, match="strides must be an int or a tuple, with one entry per"):
        occ.attribute((a, b), ((1, 2, 2), (2,)), strides=(1, 1, 1), target=0)


def test_a_one_entry_strides_tuple_is_the_inputs_stride_as_in_captum(device, on_device):
    # Captum reads strides=(2,) of one input as that input's stride: strides=2
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device).eval()
    x = torch.rand(3, 1, 8, 8).to(device)
    expected = captum.attr.Occlusion(model).attribute(x, (1, 2, 2), strides=2, target=0)
    for strides in ((2,), 2):
        got = cf.Occlusion(model).attribute(x, (1, 2, 2), strides=strides, target=0)
        assert torch.equal(got, expected) and on_device(got)
    got = cf.Occlusion(model).attribute((x,), ((1, 2, 2),), strides=(2,), target=0)
    assert torch.equal(got[0], expected)


@pytest.mark.parametrize("method", ["FeatureAblation", "Occlusion", "ShapleyValueSampling",
                                    "KernelShap", "IntegratedGradients"])
@pytest.mark.parametrize("baseline", [0.2, ConstantBaseline(0.2), "noise"])
def test_one_baseline_for_several_inputs_is_refused_by_every_method(method, baseline, device):
    # Captum's perturbation methods fail with an IndexError there, and ShapleyValueSampling ran
    # the model without the second input and gave it zero attributions
    class Two(nn.Module):
        def forward(self, img, tab=None):
            out = img.flatten(1)[:, :3]
            return out if tab is None else out + tab[:, :3]

    from captum_cf.baselines import NoiseBaseline

    inputs = (torch.rand(3, 1, 4, 4).to(device), torch.rand(3, 6).to(device))
    baseline = NoiseBaseline(0.1) if baseline == "noise" else baseline
    extra = {"sliding_window_shapes": ((1, 2, 2), (2,))} if method == "Occlusion" else {}
    with pytest.raises(ValueError, match="baselines has 1 entry but inputs has 2 tensors: pass a "
                                         "tuple with one baseline per input tensor"):
        getattr(cf, method)(Two()).attribute(inputs, baselines=baseline, target=1, **extra)
    # one per input runs, and the second input gets attributions
    out = getattr(cf, method)(Two()).attribute(inputs, baselines=(baseline, 0.0), target=1,
                                               **extra)
    assert out[1].abs().sum() > 0


@pytest.mark.parametrize("target", [[(0, 1), (1, 2)], (1, 0)])
def test_a_multi_dimensional_output_index_is_not_read_as_classes(target, device):
    # Captum's target for an (N, 2, 5) output: a tuple per example, or one tuple for all; a
    # Baseline with a fixed class takes it as no class (a tuple of N ints was read as classes)
    from captum_cf.baselines import NearestSampleBaseline

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.Unflatten(1, (2, 5))).to(device)
    x = torch.rand(2, 1, 4, 4).to(device)
    pool = (torch.rand(20, 1, 4, 4).to(device), torch.arange(20).to(device) % 5)
    fixed = NearestSampleBaseline(pool, counterfactual_class=4)
    ref = fixed.reference(x)
    for method in ("IntegratedGradients", "FeatureAblation"):
        got = getattr(cf, method)(model).attribute(x, baselines=fixed, target=target)
        want = getattr(captum.attr, method)(model).attribute(x, baselines=ref, target=target)
        assert torch.equal(got, want), method
    runner_up = NearestSampleBaseline(pool, counterfactual_class="runner-up",
                                      classifier=lambda t: model(t)[:, 0])
    with pytest.raises(ValueError, match="indexes a multi-dimensional output"):
        cf.IntegratedGradients(model).attribute(x, baselines=runner_up, target=target)


@pytest.mark.parametrize("method", ["IntegratedGradients", "Occlusion", "DeepLift",
                                    "LayerIntegratedGradients"])
def test_a_model_in_train_mode_keeps_its_batchnorm_statistics(method, device):
    # Captum runs the model as it is (train mode: batch statistics, running stats updated);
    # the result stays Captum's and the running statistics are put back
    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                             nn.Linear(72, 3)).to(device).train()

    x = torch.rand(4, 1, 8, 8).to(device)
    ours, theirs = build(), build()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    args = {"Occlusion": ((1, 2, 2),), "LayerIntegratedGradients": ()}.get(method, ())
    kwargs: dict = {}
    extra = (ours[0],) if method == "LayerIntegratedGradients" else ()
    extra_theirs = (theirs[0],) if method == "LayerIntegratedGradients" else ()
    torch.manual_seed(1)
    got = getattr(cf, method)(ours, *extra).attribute(x, *args, target=1, **kwargs)
    torch.manual_seed(1)
    want = getattr(captum.attr, method)(theirs, *extra_theirs).attribute(x, *args, target=1,
                                                                         **kwargs)
    assert torch.equal(got, want)
    assert ours.training and all(torch.equal(v, before[k]) for k, v in ours.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in theirs.state_dict().items())


def test_an_eval_models_buffers_are_not_written_and_odd_buffers_work(device):
    # writing every buffer back bumped BatchNorm's autograd version: a backward() pending in
    # the caller's code failed; a broadcast buffer and a lazy module's first call crashed
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(72, 3)).to(device).eval()
    x = torch.rand(2, 1, 8, 8).to(device)
    loss = model(x).sum()
    cf.IntegratedGradients(model).attribute(x, baselines=0.0, target=0, n_steps=4)
    loss.backward()  # the graph saved BatchNorm's running statistics: they are untouched

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.ones(1).expand(64))
            self.fc = nn.Linear(64, 3)

        def forward(self, t):
            return self.fc(t.flatten(1) * self.scale)

    cf.IntegratedGradients(Scaled().to(device)).attribute(x, baselines=0.0, target=0)
    # (on the CPU: a lazy module cannot move to the simulated device before its first call)
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(4), nn.LazyBatchNorm1d(), nn.Linear(4, 3))
    assert cf.FeatureAblation(lazy).attribute(x.cpu(), baselines=0.0, target=0).shape == x.shape


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python >= 3.11")
def test_a_gradient_method_inside_inference_mode_says_why_it_fails(device):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    with torch.inference_mode(), pytest.raises(RuntimeError) as info:
        cf.IntegratedGradients(model).attribute(torch.rand(2, 1, 4, 4).to(device), target=0)
    assert "called inside torch.inference_mode()" in info.value.__notes__[-1]
    with torch.no_grad():  # Captum turns gradients on itself
        cf.IntegratedGradients(model).attribute(torch.rand(2, 1, 4, 4).to(device), target=0)
    # a model's own error inside inference_mode (FeatureAblation runs there) gets no such note
    with torch.inference_mode(), pytest.raises(RuntimeError) as info:
        cf.FeatureAblation(model).attribute(torch.rand(2, 1, 3, 3).to(device), target=0)
    assert not any("inference_mode" in n for n in getattr(info.value, "__notes__", []))


def test_numpy_integer_counts_as_captum_takes_them_tensors_and_arrays_refused(device):
    import numpy as np

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    x = torch.rand(2, 1, 4, 4).to(device)
    got = cf.IntegratedGradients(model).attribute(x, target=0, n_steps=np.int64(4))
    assert torch.equal(got, captum.attr.IntegratedGradients(model).attribute(x, target=0,
                                                                              n_steps=4))
    for bad, kind in ((torch.tensor(4), "Tensor"), (np.array(3), "ndarray"), (True, "bool")):
        with pytest.raises(TypeError, match=f"n_steps must be a positive int, got {kind}"):
            cf.IntegratedGradients(model).attribute(x, target=0, n_steps=bad)
    from captum_cf.metrics import deletion

    curve = deletion(model, x, torch.rand_like(x), 0, n_steps=np.int64(2))
    assert curve.scores.shape == (2, 3)


@pytest.mark.parametrize("method", ["FeatureAblation", "Occlusion", "ShapleyValueSampling",
                                    "Lime", "KernelShap", "NeuronFeatureAblation"])
def test_numpy_integer_perturbation_counts_reach_captum_as_ints(method, device):
    # Captum asserts isinstance(perturbations_per_eval, int): np.int64 failed after our check
    import numpy as np

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    x = torch.rand(1, 1, 4, 4).to(device)
    kwargs: dict = {"target": 0, "baselines": ConstantBaseline(0.5)}
    if method == "Occlusion":
        kwargs["sliding_window_shapes"] = (1, 2, 2)
    if method in ("ShapleyValueSampling", "Lime", "KernelShap"):
        kwargs["n_samples"] = 6
    if method == "NeuronFeatureAblation":
        kwargs.pop("target")
        kwargs["neuron_selector"] = 0

    def run(count):
        if method == "NeuronFeatureAblation":
            explainer = getattr(cf, method)(model, model[1])
        else:
            explainer = getattr(cf, method)(model)
        torch.manual_seed(1)
        return explainer.attribute(x, perturbations_per_eval=count, **kwargs)

    assert torch.equal(run(np.int64(3)), run(3))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5)).eval()


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python >= 3.11")
@pytest.mark.parametrize("method", ["IntegratedGradients", "DeepLift", "FeatureAblation"])
def test_one_image_without_its_batch_dimension_gets_a_hint(method, device):
    """A (C, H, W) image reaches the model as a batch of another shape ("got 150 channels"):
    the model's own error keeps its type and message and carries a note saying why."""
    model = _cnn().to(device)
    image = torch.rand(3, 8, 8).to(device)
    with pytest.raises(RuntimeError) as info:
        getattr(cf, method)(model).attribute(image, target=1)
    assert info.value.__notes__ == [
        "captum_cf: inputs has shape (3, 8, 8): one example without its batch dimension? "
        "Captum's methods take a batch (N, ...): pass inputs.unsqueeze(0)"
    ]
    assert model.training is False and all(p.requires_grad for p in model.parameters())
    # the same image with its batch dimension runs
    assert getattr(cf, method)(model).attribute(image.unsqueeze(0), target=1).shape == (1, 3, 8, 8)


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python >= 3.11")
def test_no_batch_hint_for_errors_of_batched_or_unrelated_inputs(device):
    model = _cnn().to(device)
    # a batched input whose model fails for another reason (4 channels, not 3): no note
    with pytest.raises(RuntimeError) as info:
        cf.IntegratedGradients(model).attribute(torch.rand(2, 4, 8, 8).to(device), target=1)
    assert not getattr(info.value, "__notes__", None)
    # a 3-D input whose first dimension is not the first layer's channels: no note
    with pytest.raises(RuntimeError) as info:
        cf.IntegratedGradients(model).attribute(torch.rand(5, 8, 8).to(device), target=1)
    assert not getattr(info.value, "__notes__", None)

    class GreyBatches(nn.Module):
        """Takes (N, H, W) batches itself: (1, 8, 8) is a valid batch of one."""

        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x.unsqueeze(1)).mean(dim=(2, 3)))

    # captum_cf's own argument errors get no note (here: the target's range)
    with pytest.raises(ValueError) as info:
        cf.IntegratedGradients(GreyBatches().to(device)).attribute(
            torch.rand(1, 8, 8).to(device), target=7)
    assert not getattr(info.value, "__notes__", None)


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python >= 3.11")
def test_noise_tunnel_tells_a_missing_batch_dimension_from_the_clean_inputs(device):
    """The wrapped method sees noisy copies (6, 8, 8); the note comes from the clean (3, 8, 8)."""
    with pytest.raises(RuntimeError) as info:
        cf.NoiseTunnel(cf.IntegratedGradients(_cnn().to(device))).attribute(
            torch.rand(3, 8, 8).to(device), nt_samples=2, target=1)
    assert info.value.__notes__ == [
        "captum_cf: inputs has shape (3, 8, 8): one example without its batch dimension? "
        "Captum's methods take a batch (N, ...): pass inputs.unsqueeze(0)"
    ]


def test_one_example_window_names_the_batch_dimension():
    with pytest.raises(ValueError, match=r"sliding_window_shapes has 3 entries but the input has "
                       r"2 dimensions after the batch, shape \(N, 8, 8\); a window covers the "
                       r"dimensions after the batch \(for one example without its batch "
                       r"dimension, pass inputs.unsqueeze\(0\)\)"):
        cf.Occlusion(_cnn()).attribute(torch.rand(3, 8, 8), sliding_window_shapes=(3, 4, 4),
                                       target=1)


@pytest.mark.parametrize("method", ["Lime", "KernelShap"])
def test_a_0d_tensor_target_works_for_several_rows_as_its_int(method, device):
    # Captum's own Lime/KernelShap fail here with "len() of a 0-d tensor"
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    x = torch.rand(2, 1, 4, 4).to(device)

    def run(target):
        torch.manual_seed(0)
        return getattr(cf, method)(model).attribute(
            x, target=target, n_samples=8, baselines=ConstantBaseline(0.5))

    assert torch.equal(run(torch.tensor(2, device=device)), run(2))


@pytest.mark.parametrize("method", ["DeepLift", "DeepLiftShap", "LayerDeepLift"])
def test_deeplift_on_a_dataparallel_model_takes_every_class_as_captum(method, device):
    # the target check saw Captum's reshaped (N, 2, classes) output: "target must be < 2"
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).to(device)
    model = nn.DataParallel(inner) if device.type == "cpu" else inner
    x, t = torch.rand(3, 1, 4, 4, device=device), torch.tensor([4, 0, 1], device=device)
    base = torch.zeros(2, 1, 4, 4, device=device) if method == "DeepLiftShap" else 0.0
    extra = (inner[2],) if method.startswith("Layer") else ()
    got = getattr(cf, method)(model, *extra).attribute(x, base, target=t)
    want = getattr(captum.attr, method)(model, *extra).attribute(x, base, target=t)
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="target must be < 5"):
        getattr(cf, method)(model, *extra).attribute(x, base, target=5)


@pytest.mark.no_simdev("TorchScript runs on the real CPU only")
def test_deeplift_on_a_scripted_model_gets_captums_own_error_with_a_target():
    model = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    for target in (None, 1):  # with a target it named a private class of the target check
        with pytest.raises(RuntimeError, match="not supported on ScriptModules") as info:
            cf.DeepLift(model).attribute(torch.rand(2, 1, 4, 4), baselines=0.0, target=target)
        assert info.value.__context__ is None  # not "during handling of" our own hook's error


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["NoiseTunnel", "GradientShap", "LayerGradientShap"])
def test_noise_methods_on_a_half_precision_model_say_the_noise_is_float32(method, dtype, device):
    # the dtype rule named the caller's float16 inputs as float32 (NoiseTunnel), or torch
    # failed deep inside ("Input type (float) and bias type (c10::Half)")
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device, dtype)
    x = torch.rand(2, 1, 4, 4, device=device, dtype=dtype)
    if method == "NoiseTunnel":
        def call():
            return cf.NoiseTunnel(cf.IntegratedGradients(model)).attribute(
                x, nt_samples=2, stdevs=0.1, target=0)
    else:
        extra = (model[1],) if method.startswith("Layer") else ()

        def call():
            return getattr(cf, method)(model, *extra).attribute(x, torch.zeros_like(x), target=0)
    with pytest.raises(TypeError, match=f"float32 noise to the inputs, so the {dtype} model got"):
        call()
    assert model[1].weight.dtype == dtype and x.dtype == dtype


@pytest.mark.parametrize("target", [None, 1])
@pytest.mark.parametrize("method", ["IntegratedGradients", "DeepLift", "Occlusion",
                                    "FeatureAblation", "KernelShap", "LayerIntegratedGradients"])
def test_a_model_returning_a_dict_or_tuple_is_told_to_wrap_it(method, target, device):
    # Captum failed deep inside: 'dict' object has no attribute 'shape', chunk() of a dict...
    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return {"logits": self.fc(x.flatten(1))}

    class Pair(Dict):
        def forward(self, x):
            return self.fc(x.flatten(1)), x

    x = torch.rand(1, 1, 4, 4, device=device)
    kwargs: dict = {"target": target}
    if method == "Occlusion":
        kwargs["sliding_window_shapes"] = (1, 2, 2)
    for model, kind in ((Dict().to(device), "dict"), (Pair().to(device), "tuple")):
        extra = (model.fc,) if method.startswith("Layer") else ()
        with pytest.raises(TypeError, match=f"the model returns a {kind}, not a tensor of "
                                            "scores.*LogitsOf"):
            getattr(cf, method)(model, *extra).attribute(x, **kwargs)
        assert not model._forward_hooks


def test_a_neuron_method_still_takes_a_model_with_a_tuple_output():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(x.flatten(1)), x

    torch.manual_seed(0)
    model, x = Pair(), torch.rand(2, 1, 4, 4)
    got = cf.NeuronIntegratedGradients(model, model.fc).attribute(x, 1, baselines=0.0)
    want = captum.attr.NeuronIntegratedGradients(model, model.fc).attribute(x, 1, baselines=0.0)
    assert torch.equal(got, want)


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python >= 3.11")
def test_layer_deeplift_on_a_frozen_model_says_how_to_run_it(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Flatten(),
                          nn.Linear(8, 3)).to(device).eval()
    x = torch.rand(2, 1, 6, 6, device=device)
    want = cf.LayerDeepLift(model, model[2]).attribute(x, baselines=0.0, target=0)
    model.requires_grad_(False)
    with pytest.raises(RuntimeError, match="doesn't require gradient") as info:
        cf.LayerDeepLift(model, model[2]).attribute(x, baselines=0.0, target=0)
    assert "pass inputs.detach().requires_grad_()" in info.value.__notes__[-1]
    got = cf.LayerDeepLift(model, model[2]).attribute(x.detach().requires_grad_(), baselines=0.0,
                                                      target=0)
    torch.testing.assert_close(got, want)
    assert not x.requires_grad


def test_noise_methods_take_a_half_precision_model_that_casts_its_inputs(device):
    class Casting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 3)

        def forward(self, x):
            return self.lin(x.flatten(1).to(self.lin.weight.dtype)).float()

    torch.manual_seed(0)
    model = Casting().to(device, torch.bfloat16)
    x = torch.rand(2, 1, 4, 4, device=device, dtype=torch.bfloat16)
    got = cf.GradientShap(model).attribute(x, torch.zeros(3, 1, 4, 4, device=device,
                                                             dtype=torch.bfloat16), target=0)
    assert got.shape == x.shape
    # NoiseTunnel over captum_cf's own IG: the inner dtype rule refused the float32 noisy copies
    results = []
    for lib in (cf, captum.attr):
        torch.manual_seed(3)
        nt = lib.NoiseTunnel(lib.IntegratedGradients(model))
        results.append(nt.attribute(x, baselines=torch.zeros_like(x), target=0, nt_samples=2,
                                    n_steps=4, stdevs=0.1))
    assert torch.equal(results[0], results[1])


class _SubReLU(nn.ReLU):  # Captum's rule goes by the exact class: plain gradients here
    pass


@pytest.mark.parametrize("layer", [nn.GELU, nn.SiLU, nn.Hardswish, nn.Softshrink, _SubReLU])
def test_deeplift_warns_of_layers_without_a_rule_and_sums_where_it_has_one(layer, device):
    # Captum applies DeepLIFT's rule to ReLU & co. only: with GELU the attributions missed
    # F(x) - F(x') by 0.07 of 0.4, without a word from either library
    torch.manual_seed(0)
    x = torch.rand(4, 16, device=device)
    for act, rule in ((nn.ReLU(), True), (layer(), False)):
        model = nn.Sequential(nn.Linear(16, 16), act, nn.Linear(16, 3)).to(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, delta = cf.DeepLift(model).attribute(x, baselines=0.0, target=0,
                                                    return_convergence_delta=True)
        said = [w for w in caught if "DeepLIFT has no rule for the model's" in str(w.message)]
        assert bool(said) == (not rule)
        if said:
            assert f"{layer.__name__} layers" in str(said[0].message)
        assert (float(delta.abs().max()) < 1e-5) == rule


def test_a_layer_returning_none_among_its_outputs_says_what_to_attribute_to(device):
    # nn.MultiheadAttention(need_weights=False) returns (out, None): Captum failed with
    # "'NoneType' object has no attribute 'clone'"
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            x = self.norm(x)
            out, _ = self.mha(x, x, x, need_weights=False)
            return self.head(out.mean(1))

    torch.manual_seed(0)
    model, x = Attention().to(device).eval(), torch.rand(2, 4, 8, device=device)
    with pytest.raises(TypeError, match=r"the layer MultiheadAttention returns None among its "
                                        r"outputs .* such as the block's LayerNorm"):
        cf.LayerIntegratedGradients(model, model.mha).attribute(x, target=0)
    got = cf.LayerIntegratedGradients(model, model.norm).attribute(x, target=0)
    assert got.shape == (2, 4, 8)


def test_a_none_error_of_the_users_own_forward_is_not_blamed_on_the_layer(device):
    class Buggy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.extra = None

        def forward(self, x):
            return (self.conv(x) * self.extra.scale).flatten(1)

    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'scale'"):
        cf.LayerIntegratedGradients(Buggy().to(device), Buggy().conv).attribute(
            torch.rand(1, 1, 4, 4, device=device), target=0)


def test_the_target_error_does_not_show_the_methods_internal_batch(device):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device)
    with pytest.raises(ValueError) as info:  # IG's first pass holds 2 x 50 steps
        cf.IntegratedGradients(model).attribute(torch.rand(2, 1, 4, 4, device=device), target=5)
    assert str(info.value) == "target must be < 3: the model returns 3 classes, got 5"
