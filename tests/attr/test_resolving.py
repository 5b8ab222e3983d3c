"""Every Captum subclass built by ``baseline_attribute``: Captum's numbers, signatures and errors.

One table (``CASES``) runs the ShapleyValues, layer and neuron classes through the same checks;
the method-specific semantics (paired Shap, fills, completeness) sit in the per-module files.
"""

from __future__ import annotations

import inspect
from typing import Any

import captum.attr
import pytest
import torch

import captum_cf.attr
from captum_cf.attr._baselines import BaselineTypeError
from captum_cf.baselines import ConstantBaseline

NEURON = (1, 0, 1)  # a unit of TinyCNN.act's (N, 4, 2, 2) output
MASK = (torch.arange(36).view(1, 1, 6, 6) % 6 >= 3).long() + 2 * (
    torch.arange(36).view(1, 1, 6, 6) >= 18
).long()  # 4 quadrants

#: name -> (layer attribute of TinyCNN or None, strategy, attribute kwargs besides the baselines)
CASES: dict[str, tuple[str | None, str, dict[str, Any]]] = {
    "ShapleyValues": (None, "fill", dict(target=1, feature_mask=MASK, perturbations_per_eval=5)),
    "LayerIntegratedGradients": ("conv", "reference", dict(target=1, n_steps=6)),
    "LayerConductance": ("act", "reference", dict(target=2, n_steps=6)),
    "InternalInfluence": ("act", "reference", dict(target=0, n_steps=6)),
    "LayerDeepLift": ("conv", "reference", dict(target=1)),
    "LayerDeepLiftShap": ("conv", "paired", dict(target=1)),
    "LayerGradientShap": ("conv", "paired", dict(target=1, n_samples=3, stdevs=0.1)),
    "NeuronIntegratedGradients": ("act", "reference", dict(neuron_selector=NEURON, n_steps=6)),
    "NeuronConductance": ("act", "reference", dict(neuron_selector=NEURON, target=2, n_steps=6)),
    "NeuronDeepLift": ("act", "reference", dict(neuron_selector=NEURON)),
    "NeuronDeepLiftShap": ("act", "paired", dict(neuron_selector=NEURON)),
    "NeuronGradientShap": ("act", "paired", dict(neuron_selector=NEURON, n_samples=3, stdevs=0.1)),
    "NeuronFeatureAblation": ("act", "fill", dict(neuron_selector=NEURON, feature_mask=MASK)),
}
NAMES = list(CASES)


def _make(module: Any, name: str, model: torch.nn.Module) -> Any:
    layer = CASES[name][0]
    cls = getattr(module, name)
    return cls(model) if layer is None else cls(model, getattr(model, layer))


def _run(module: Any, name: str, model: torch.nn.Module, inputs: Any, baselines: Any) -> Any:
    """One seeded call of ``module.name`` (captum.attr or captum_cf.attr) on ``model``."""
    torch.manual_seed(3)
    import numpy as np

    np.random.seed(3)
    kwargs = _kwargs(name, inputs)
    return _make(module, name, model).attribute(inputs, baselines=baselines, **kwargs)


def _kwargs(name: str, inputs: Any) -> dict[str, Any]:
    """``CASES[name]``'s attribute kwargs with the feature mask on the inputs' device."""
    device = (inputs[0] if isinstance(inputs, tuple) else inputs).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in CASES[name][2].items()}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_subclass_with_captum_signature_exported_and_noise_tunnel_ready(name, cnn, same_signature):
    ours, theirs = getattr(captum_cf.attr, name), getattr(captum.attr, name)
    assert name in captum_cf.attr.__all__
    assert issubclass(ours, theirs) and ours is not theirs
    assert same_signature(ours, theirs)
    assert "Baseline" in str(inspect.signature(ours.attribute).parameters["baselines"].annotation)
    # Captum's NoiseTunnel calls attribute.__wrapped__(self, ...): it must be ours, not Captum's
    assert ours.attribute.__wrapped__ is not theirs.attribute.__wrapped__
    assert "Baseline" in ours.attribute.__doc__


def test_every_other_captum_attr_name_is_captums_own_object() -> None:
    # swapping the import line must work for a whole script: from captum_cf.attr import
    # LayerGradCam, Saliency, visualization... are Captum's own, unchanged
    for name in captum.attr.__all__:
        ours, theirs = getattr(captum_cf.attr, name), getattr(captum.attr, name)
        assert name in captum_cf.attr.__all__
        assert ours is theirs or issubclass(ours, theirs), name  # Captum's, or a subclass
    for name in ("Saliency", "LayerGradCam", "visualization", "LayerFeatureAblation", "LRP"):
        assert getattr(captum_cf.attr, name) is getattr(captum.attr, name)
    namespace: dict = {}
    exec("from captum_cf.attr import *", namespace)
    assert set(captum.attr.__all__) <= set(namespace)


@pytest.mark.parametrize("name", NAMES)
def test_numbers_and_tensors_give_exactly_captums_result(name, cnn, images, refs, on_device):
    strategy = CASES[name][1]
    if strategy == "paired":  # Captum needs a distribution (B > 1) or a callable returning one
        choices = [refs[:2], lambda x: refs[:2]]
    else:
        choices = [None, 0.25, refs[:1]] + ([refs] if strategy == "reference" else [])
    for baselines in choices:
        ours = _run(captum_cf.attr, name, cnn, images, baselines)
        theirs = _run(captum.attr, name, cnn, images, baselines)
        assert _equal(ours, theirs) and on_device(ours)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n][1] == "reference"])
def test_baseline_gives_captums_result_for_its_reference(
    name, cnn, images, refs, fixed, on_device
):
    baseline = fixed(refs)
    ours = _run(captum_cf.attr, name, cnn, images, baseline)
    theirs = _run(captum.attr, name, cnn, images, refs)
    assert _equal(ours, theirs) and on_device(ours)
    target = CASES[name][2].get("target")
    assert baseline.targets == [target]  # resolved once, with the call's target


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n][1] == "fill"])
def test_constant_baseline_fills_exactly_as_the_number(name, cnn, images, on_device):
    ours = _run(captum_cf.attr, name, cnn, images, ConstantBaseline(0.25))
    theirs = _run(captum.attr, name, cnn, images, 0.25)
    assert torch.equal(ours, theirs) and on_device(ours)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n][1] == "paired"])
def test_shap_single_example_baseline_is_captum_with_its_reference(
    name, cnn, images, refs, fixed, on_device
):
    """N = 1: a distribution of one reference (Captum's DeepLiftShap needs B > 1: twice)."""
    x, ref = images[:1], refs[:1]
    ours = _run(captum_cf.attr, name, cnn, x, fixed(ref))
    theirs = _run(captum.attr, name, cnn, x, torch.cat([ref, ref]) if "Lift" in name else ref)
    assert torch.allclose(ours, theirs, atol=1e-6) and on_device(ours)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n][1] == "paired"])
def test_shap_each_example_uses_its_own_reference(name, cnn, images, refs, fixed):
    """Moving the references of examples 1..N-1 leaves example 0's attribution unchanged."""
    moved = refs.clone()
    moved[1:] = 1 - moved[1:]
    a = _run(captum_cf.attr, name, cnn, images, fixed(refs))
    b = _run(captum_cf.attr, name, cnn, images, fixed(moved))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1:], b[1:])


@pytest.mark.parametrize("name", NAMES)
def test_model_and_inputs_unchanged_also_after_errors(
    name, cnn, images, refs, fixed, raising, model_state
):
    snapshot, assert_same_state = model_state
    cnn.train()
    cnn.fc.weight.requires_grad_(False)
    before, x = snapshot(cnn), images.clone()
    _run(captum_cf.attr, name, cnn, images, fixed(refs))
    with pytest.raises(RuntimeError, match="baseline failed"):
        _run(captum_cf.attr, name, cnn, images, raising)
    assert_same_state(cnn, before)
    assert torch.equal(images, x) and not images.requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_wrong_baseline_types_are_type_errors_and_captums_assertion_errors(name, cnn, images):
    strategy = CASES[name][1]
    for bad in [[0.0], (images, "zero")] + ([] if strategy == "paired" else [lambda x: x]):
        with pytest.raises(TypeError, match="baselines"):
            _run(captum_cf.attr, name, cnn, images, bad)
        with pytest.raises(AssertionError):
            _run(captum_cf.attr, name, cnn, images, bad)
    with pytest.raises(TypeError, match="pass an instance"):
        _run(captum_cf.attr, name, cnn, images, ConstantBaseline)
    assert issubclass(BaselineTypeError, TypeError)
    assert issubclass(BaselineTypeError, AssertionError)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_that_needs_the_class(name, cnn, images, refs, target_baseline):
    kwargs = CASES[name][2]
    if "target" in kwargs:
        baseline = target_baseline(refs)
        _run(captum_cf.attr, name, cnn, images, baseline)
        # the fill path hands it per row, (N,), the others as given
        assert torch.as_tensor(baseline.targets[0]).unique().tolist() == [kwargs["target"]]
    else:
        with pytest.raises(ValueError, match=f"{name}.attribute has no target"):
            _run(captum_cf.attr, name, cnn, images, target_baseline(refs))


def test_captum_noise_tunnel_calls_our_attribute(cnn, images, refs, on_device):
    """Captum's NoiseTunnel calls ``attribute.__wrapped__``: ours, with Captum's numbers."""
    kw = dict(nt_samples=2, stdevs=0.1, baselines=refs, target=1, n_steps=4)
    results = []
    for module in (captum_cf.attr, captum.attr):
        torch.manual_seed(0)
        lig = module.LayerIntegratedGradients(cnn, cnn.conv)
        results.append(captum.attr.NoiseTunnel(lig).attribute(images, **kw))
    assert torch.equal(*results) and on_device(results[0])


def test_our_noise_tunnel_resolves_a_baseline_from_the_clean_inputs(
    cnn, images, refs, fixed, on_device
):
    kw = dict(nt_samples=2, stdevs=0.1, target=1, n_steps=4)
    torch.manual_seed(0)
    nt = captum_cf.attr.NoiseTunnel(captum_cf.attr.LayerConductance(cnn, cnn.act))
    ours = nt.attribute(images, baselines=fixed(refs), **kw)
    torch.manual_seed(0)
    nt = captum.attr.NoiseTunnel(captum.attr.LayerConductance(cnn, cnn.act))
    assert torch.equal(ours, nt.attribute(images, baselines=refs, **kw)) and on_device(ours)


def _forward_counter(model: torch.nn.Module) -> list[int]:
    """Count forward passes without a hook (the state checks require none)."""
    calls: list[int] = []
    forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return forward(*args, **kwargs)

    model.forward = counting  # type: ignore[method-assign]
    return calls


def _plain_baselines(name: str, device: torch.device) -> Any:
    """Captum's own baselines for ``name``: a distribution of 2 for the Shap family."""
    return torch.zeros(2, 2, 6, 6, device=device) if CASES[name][1] == "paired" else 0.0


@pytest.mark.parametrize("name", NAMES)
def test_argument_checks_run_before_any_work(name, cnn, images, model_state):
    """The input-level checks (check_attribute_arguments and the dtype rule) before the model
    runs; each error is a ValueError/TypeError that is also Captum's AssertionError."""
    snapshot, assert_same_state = model_state
    kwargs = _kwargs(name, images)
    bad: list[tuple[dict[str, Any], Any, type, str]] = [
        ({}, images.double(), TypeError, r"inputs has dtype torch.float64 but the model computes"),
        ({}, images[:0], ValueError, "inputs must have a non-empty batch dimension"),
        ({}, images.masked_fill(images > 0.5, float("nan")), ValueError, "inputs contains NaN"),
    ]
    if "target" in kwargs:
        bad += [({"target": -1}, images, ValueError, "target must hold class indices >= 0"),
                ({"target": 1.5}, images, TypeError, r"target must be None, an int, .* got float")]
    for count in ("n_steps", "n_samples", "perturbations_per_eval"):
        if count in kwargs:
            bad.append(({count: 0}, images, ValueError, rf"{count} must be a positive int"))
    if "stdevs" in kwargs:
        bad.append(({"stdevs": -1.0}, images, ValueError, "stdevs must be a finite number >= 0"))
    if "feature_mask" in kwargs:
        wide = MASK.expand(4, 1, 6, 6).to(images.device)
        bad.append(({"feature_mask": wide}, images, ValueError,
                    r"feature_mask has shape \(4, 1, 6, 6\), which does not broadcast"))
    calls = _forward_counter(cnn)
    before = snapshot(cnn)
    for change, x, error, message in bad:
        method = _make(captum_cf.attr, name, cnn)
        with pytest.raises(error, match=message) as raised:
            method.attribute(x, baselines=_plain_baselines(name, images.device),
                             **{**kwargs, **change})
        if error is not TypeError or "dtype" not in message:  # the dtype rule is a plain TypeError
            assert isinstance(raised.value, AssertionError)
    assert calls == []
    assert_same_state(cnn, before)


@pytest.mark.parametrize("name", [n for n in NAMES if "target" in CASES[n][2]])
def test_target_beyond_the_outputs_is_checked_on_the_first_output(name, cnn, images):
    method = _make(captum_cf.attr, name, cnn)
    with pytest.raises(ValueError, match=r"target must be < 3: the model returns 3 classes"):
        method.attribute(images, baselines=_plain_baselines(name, images.device),
                         **{**_kwargs(name, images), "target": 3})
