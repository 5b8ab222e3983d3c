"""SparseCounterfactualBaseline: x + a sparse FW edit into class c, usable by captum_cf.attr."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_cf import zoo
from captum_cf._registry import AuditContext
from captum_cf.attr import IntegratedGradients
from captum_cf.baselines import BASELINES, SparseCounterfactualBaseline


def _model(device: torch.device | str = "cpu") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with torch.no_grad():
        model[1].weight.mul_(5)
    return model.eval().to(device)


def _x(n: int = 6, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(device)


def test_reference_is_sparse_edit_into_counterfactual_class(device: torch.device) -> None:
    model, x = _model(device), _x(device=device)
    base = SparseCounterfactualBaseline(model, counterfactual_class=2, sparsity=0.75, n_steps=20)
    ref = base.reference(x)
    assert ref.device == device
    changed = (ref != x).flatten(1).sum(1)
    assert (changed <= 16).all() and (changed > 0).all()
    assert (ref >= 0).all() and (ref <= 1).all()
    assert (model(ref).argmax(1) == 2).all()
    assert torch.equal(base(x), ref)  # callable as Captum wants, deterministic


def test_runner_up_differs_from_explained_target(device: torch.device) -> None:
    model, x = _model(device), _x(device=device)
    logits = model(x)
    base = SparseCounterfactualBaseline(model, "runner-up", k=20, n_steps=20)
    target = logits.argmax(1)
    expected = logits.scatter(1, target[:, None], float("-inf")).argmax(1)
    ref = base.reference(x, target=target)
    assert (model(ref).argmax(1) == expected).float().mean() >= 5 / 6
    ref0 = base.reference(x, target=0)  # explaining class 0: c = best class other than 0
    others = logits.clone()
    others[:, 0] = float("-inf")
    assert (model(ref0).argmax(1) == others.argmax(1)).float().mean() >= 5 / 6


def test_only_the_runner_up_class_needs_the_explained_target(device: torch.device) -> None:
    # a fixed class does not depend on what is explained: neuron methods (no target) take it
    from captum_cf.attr import NeuronIntegratedGradients

    model, x = _model(device), _x(2, device)
    fixed = SparseCounterfactualBaseline(model, counterfactual_class=2, k=4, n_steps=4)
    runner_up = SparseCounterfactualBaseline(model, "runner-up", k=4, n_steps=4)
    assert not fixed.needs_target and runner_up.needs_target
    neuron = NeuronIntegratedGradients(model, model[1])
    out = neuron.attribute(x, neuron_selector=1, baselines=fixed, n_steps=4)
    expected = neuron.attribute(x, neuron_selector=1, baselines=fixed.reference(x), n_steps=4)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="depends on the class being explained"):
        neuron.attribute(x, neuron_selector=1, baselines=runner_up, n_steps=4)


def test_usable_by_integrated_gradients_with_completeness(device: torch.device) -> None:
    model, x = _model(device), _x(3, device)
    base = SparseCounterfactualBaseline(model, 1, sparsity=0.75, n_steps=10)
    attr, gap = IntegratedGradients(model).attribute(x, baselines=base, target=0,
                                                     return_convergence_delta=True)
    ref = base.reference(x)
    assert attr.device == device
    assert torch.allclose(attr.flatten(1).sum(1), (model(x) - model(ref))[:, 0], atol=1e-4)
    assert float(gap.abs().max()) < 1e-4
    assert (attr[ref == x] == 0).all()  # linear model: unchanged pixels get no attribution


def test_fill_keeps_pixels(device: torch.device) -> None:
    base = SparseCounterfactualBaseline(_model(device), 1, k=8, n_steps=4)
    x = _x(2, device)
    keep = torch.ones(2, 1, 8, 8, device=device)
    keep[..., :4] = 0
    out = base.fill(x, keep)
    assert torch.equal(out[..., 4:], x[..., 4:])


def test_registry_entry() -> None:
    digits = AuditContext(model=_model(), data_name="digits", train_data=None, num_classes=10,
                          image_shape=(1, 32, 32))
    shapes = AuditContext(model=_model(), data_name="shapes", train_data=None, num_classes=4,
                          image_shape=(3, 64, 64))
    assert zoo.entry("digits-cnn-robust").path.is_file()
    assert "sparse-counterfactual" in BASELINES.names(digits)
    assert "sparse-counterfactual" not in BASELINES.names(shapes)
    base = BASELINES.create("sparse-counterfactual", digits)
    assert isinstance(base, SparseCounterfactualBaseline) and base.sparsity == 0.95


def test_bad_input() -> None:
    model = _model()
    with pytest.raises(TypeError, match="robust_model"):
        SparseCounterfactualBaseline("model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="counterfactual_class"):
        SparseCounterfactualBaseline(model, "second")
    with pytest.raises(ValueError, match="sparsity"):
        SparseCounterfactualBaseline(model, 1, sparsity=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        SparseCounterfactualBaseline(model, 1, n_steps=1)
    with pytest.raises(ValueError, match="counterfactual_class must be class indices"):
        SparseCounterfactualBaseline(model, 5).reference(_x(1))
    with pytest.raises(ValueError, match=r"works in pixel space .*\[0, 1\]"):
        SparseCounterfactualBaseline(model, 1).reference(_x(1) + 2)


def test_1d_robust_model_output_is_a_clear_error(device: torch.device) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0))  # (N,) scores
    base = SparseCounterfactualBaseline(model.to(device), "runner-up", n_steps=2)
    with pytest.raises(ValueError, match=r"robust_model must return \(N, classes\) logits"):
        base.reference(_x(2, device), target=0)


def test_float64_inputs_with_a_float32_model_name_the_dtype() -> None:
    base = SparseCounterfactualBaseline(_model(), 1, n_steps=2)
    with pytest.raises(TypeError, match=r"torch.float64 but SparseCounterfactualBaseline.model "
                                        r"computes in torch.float32"):
        base.reference(_x(2).double())
