"""``baselines=ConstantBaseline(c)`` gives bit for bit what ``baselines=c`` gives, for every
``captum_cf.attr`` method whose Captum class takes a number, on tabular, sequence, image, integer
and tuple inputs; and a generic Baseline works on every input shape."""

from __future__ import annotations

import random

import captum.attr
import numpy as np
import pytest
import torch
import torch.nn as nn
from perturbation_helpers import captum_reference

import captum_cf.attr as cf
from captum_cf.baselines import Baseline, ConstantBaseline, NearestSampleBaseline, NoiseBaseline


class Flat(nn.Module):
    """Any number of inputs (N, ...) -> flattened and concatenated -> Linear, ReLU, Linear."""

    def __init__(self, features: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.act, self.fc2 = nn.Linear(features, 6), nn.ReLU(), nn.Linear(6, 3)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([x.float().flatten(1) for x in xs], dim=1)
        return self.fc2(self.act(self.fc1(flat)))


# name -> (inputs, window for Occlusion)
INPUTS = {
    "tabular": (lambda: torch.randn(3, 5), (2,)),
    "sequence": (lambda: torch.randn(3, 4, 2), (1, 2)),
    "image": (lambda: torch.rand(3, 2, 4, 4), (1, 2, 2)),
    "tuple": (lambda: (torch.rand(3, 1, 4, 4), torch.randn(3, 5)), ((1, 2, 2), (2,))),
}

# name -> (captum_cf class, Captum class, extra kwargs)
METHODS = {
    "IntegratedGradients": (cf.IntegratedGradients, captum.attr.IntegratedGradients,
                            {"n_steps": 5}),
    "DeepLift": (cf.DeepLift, captum.attr.DeepLift, {}),
    "FeatureAblation": (cf.FeatureAblation, captum.attr.FeatureAblation,
                        {"perturbations_per_eval": 2}),
    "ShapleyValueSampling": (cf.ShapleyValueSampling, captum.attr.ShapleyValueSampling,
                             {"n_samples": 2, "perturbations_per_eval": 3}),
    "Lime": (cf.Lime, captum.attr.Lime, {"n_samples": 12, "perturbations_per_eval": 4}),
    "KernelShap": (cf.KernelShap, captum.attr.KernelShap, {"n_samples": 12}),
    "Occlusion": (cf.Occlusion, captum.attr.Occlusion, {"perturbations_per_eval": 2}),
}


def _seed(s: int = 0) -> None:
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def _inputs(kind: str, device: torch.device):
    """``INPUTS[kind]``, drawn on the CPU (the same numbers as ever), then moved to ``device``."""
    x = INPUTS[kind][0]()
    return tuple(t.to(device) for t in x) if isinstance(x, tuple) else x.to(device)


def _numel(x) -> int:
    xs = x if isinstance(x, tuple) else (x,)
    return sum(t[0].numel() for t in xs)


def _kwargs(method: str, kind: str) -> dict:
    kw = dict(METHODS[method][2])
    if method == "Occlusion":
        kw["sliding_window_shapes"] = INPUTS[kind][1]
    return kw


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("c", [0.0, -1.5])
def test_constant_baseline_is_bit_for_bit_the_number(method, kind, c, device, on_device):
    x = _inputs(kind, device)
    model = Flat(_numel(ours_x := x)).to(device)
    ours_cls, captum_cls, _ = METHODS[method]
    kw = _kwargs(method, kind)
    base = (ConstantBaseline(c), c) if kind == "tuple" else ConstantBaseline(c)
    number = (c, c) if kind == "tuple" else c
    _seed()
    expected = captum_reference(captum_cls(model), x, baselines=number, target=1, **kw)
    _seed()
    got = ours_cls(model).attribute(ours_x, baselines=base, target=1, **kw)
    if device.type == "cuda" and method == "Occlusion" and kind == "tuple":
        torch.testing.assert_close(got, expected)  # Captum's reference ran on the CPU
    else:
        assert _same(got, expected)
    assert on_device(got)
    # and differs from another constant (the comparison can fail)
    _seed()
    other = ours_cls(model).attribute(x, baselines=ConstantBaseline(c + 0.25) if kind != "tuple"
                                      else (ConstantBaseline(c + 0.25), c), target=1, **kw)
    assert not _same(other, expected)


class Tokens(nn.Module):
    """Token ids (N, L) -> embedding -> mean -> Linear: float ids fail in the embedding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.fc = nn.Embedding(10, 4), nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids).mean(1))


@pytest.mark.parametrize("method", ["FeatureAblation", "Occlusion"])
@pytest.mark.parametrize("c", [0, 0.0])
def test_integer_inputs_as_captum_takes_them(method, c, device, on_device):
    """Token ids: Captum's perturbation methods take them with an int baseline (0.0 makes float
    ids, which an embedding refuses); ConstantBaseline(0) and ConstantBaseline(0.0) are that 0."""
    x = torch.randint(1, 9, (3, 5)).to(device)
    model = Tokens().to(device)
    ours_cls, captum_cls, _ = METHODS[method]
    kw = _kwargs(method, "tabular")
    expected = captum_cls(model).attribute(x, baselines=0, target=2, **kw)
    got = ours_cls(model).attribute(x, baselines=ConstantBaseline(c), target=2, **kw)
    assert torch.equal(got, expected) and bool(got.abs().sum() > 0) and on_device(got)


@pytest.mark.parametrize("method", ["LayerIntegratedGradients", "LayerConductance",
                                    "InternalInfluence", "LayerDeepLift"])
def test_layer_methods_take_a_constant_as_captums_number(method, device, on_device):
    """The layer methods hand a ConstantBaseline to Captum as its number: on token ids (the
    usual text use of LayerIntegratedGradients on the embedding) and bit for bit on floats."""
    model = Tokens().to(device)
    ids = torch.randint(1, 9, (3, 5)).to(device)
    ours, theirs = getattr(cf, method), getattr(captum.attr, method)
    kw = {"n_steps": 4} if method != "LayerDeepLift" else {}
    if method == "LayerIntegratedGradients":
        expected = theirs(model, model.emb).attribute(ids, baselines=0, target=1, **kw)
        got = ours(model, model.emb).attribute(ids, baselines=ConstantBaseline(0), target=1, **kw)
        assert torch.equal(got, expected) and bool(got.abs().sum() > 0) and on_device(got)
    flat = Flat(5).to(device)
    x = torch.randn(3, 5).to(device)
    expected = theirs(flat, flat.fc1).attribute(x, baselines=0.3, target=1, **kw)
    got = ours(flat, flat.fc1).attribute(x, baselines=ConstantBaseline(0.3), target=1, **kw)
    assert torch.equal(got, expected) and on_device(got)


def test_noise_tunnel_constant_baseline_is_the_number(device, on_device):
    x, model = torch.randn(2, 5).to(device), Flat(5).to(device)
    kw = dict(nt_samples=3, stdevs=0.3, target=0, n_steps=4)
    _seed(2)
    expected = captum.attr.NoiseTunnel(captum.attr.IntegratedGradients(model)).attribute(
        x, baselines=-1.0, **kw
    )
    _seed(2)
    got = cf.NoiseTunnel(cf.IntegratedGradients(model)).attribute(
        x, baselines=ConstantBaseline(-1.0), **kw
    )
    assert torch.equal(got, expected) and on_device(got)


def test_per_feature_constant_equals_the_tensor(device, on_device):
    x, model = torch.randn(3, 4).to(device), Flat(4).to(device)
    values = [0.5, -1.0, 2.0, 0.0]
    ref = torch.tensor([values], device=device)
    for ours_cls, captum_cls, kw in (METHODS["IntegratedGradients"], METHODS["FeatureAblation"]):
        expected = captum_cls(model).attribute(x, baselines=ref, target=0, **kw)
        got = ours_cls(model).attribute(x, baselines=ConstantBaseline(values), target=0, **kw)
        assert torch.equal(got, expected) and on_device(got)


class Shifted(Baseline):
    """A user subclass: reference = inputs - 1 (any shape, any values)."""

    def _reference(self, inputs, target):
        return inputs - 1.0


@pytest.mark.parametrize("kind", ["tabular", "sequence", "image"])
@pytest.mark.parametrize("method", ["IntegratedGradients", "DeepLift", "FeatureAblation",
                                    "Occlusion", "Lime"])
def test_generic_baselines_on_any_shape_equal_their_reference_tensor(
    method, kind, device, on_device
):
    """A composite Baseline removes features exactly as its reference tensor would."""
    x = _inputs(kind, device)
    model = Flat(x[0].numel()).to(device)
    ours_cls, captum_cls, _ = METHODS[method]
    kw = _kwargs(method, kind)
    for base in (Shifted(), NoiseBaseline(std=1.0, center=0.0, bounds=None)):
        ref = base(x)
        assert on_device(ref)
        _seed()
        expected = captum_cls(model).attribute(x, baselines=ref, target=0, **kw)
        _seed()
        got = ours_cls(model).attribute(x, baselines=base, target=0, **kw)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert on_device(got)


def test_nearest_sample_on_tabular_rows_explains_against_the_nearest_row(device, on_device):
    rows = torch.tensor([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0], [1.0, 2.0, 3.0], [9.0, 9.0, 9.0]])
    labels = torch.tensor([0, 1, 1, 1])
    base = NearestSampleBaseline((rows.to(device), labels), counterfactual_class=1)
    x = torch.tensor([[1.0, 2.0, 2.0], [8.0, 8.0, 9.0]], device=device)
    rows = rows.to(device)
    assert torch.equal(base(x), rows[[2, 3]])
    model = Flat(3).to(device)
    attr, delta = cf.IntegratedGradients(model).attribute(
        x, baselines=base, target=0, return_convergence_delta=True, n_steps=200
    )
    expected = model(x)[:, 0] - model(rows[[2, 3]])[:, 0]
    # Captum 0.7 returns float64 attributions for float32 inputs (CI runs it too)
    torch.testing.assert_close(attr.sum(1).float(), expected.detach(), atol=2e-3, rtol=0)
    assert on_device(attr, delta)
    assert attr[0, :2].abs().max() == 0  # features equal to the reference get nothing
