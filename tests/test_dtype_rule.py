"""The one dtype rule: a float tensor fed to a model must have the model's dtype.

Every entry point that runs the user's model on the inputs raises the same ``TypeError``, naming
the argument and both dtypes, before any work (no torch error from inside a layer, no silent
conversion). Generators and inpainting networks, tools of a baseline, follow the inputs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from captum_cf import attr as A
from captum_cf import metrics as M
from captum_cf import robust as R
from captum_cf._validation import check_model_dtype, model_dtype
from captum_cf.baselines import ConstantBaseline, SparseCounterfactualBaseline


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(128, 3)).eval()


MASK = torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8)
WIN = {"sliding_window_shapes": (1, 4, 4), "strides": (1, 4, 4)}
B = ConstantBaseline(0.5)
_ENTRY: dict[str, Callable[[nn.Module, Tensor], Any]] = {
    "IntegratedGradients": lambda m, x: A.IntegratedGradients(m).attribute(x, target=0),
    "DeepLift": lambda m, x: A.DeepLift(m).attribute(x, target=0),
    "DeepLiftShap": lambda m, x: A.DeepLiftShap(m).attribute(x, baselines=B, target=0),
    "GradientShap": lambda m, x: A.GradientShap(m).attribute(x, baselines=B, target=0),
    "Occlusion": lambda m, x: A.Occlusion(m).attribute(x, baselines=B, target=0, **WIN),
    "FeatureAblation": lambda m, x: A.FeatureAblation(m).attribute(x, target=0),
    "ShapleyValueSampling": lambda m, x: A.ShapleyValueSampling(m).attribute(
        x, target=0, feature_mask=MASK, n_samples=1),
    "Lime": lambda m, x: A.Lime(m).attribute(x, target=0, feature_mask=MASK, n_samples=4),
    "KernelShap": lambda m, x: A.KernelShap(m).attribute(x, target=0, feature_mask=MASK,
                                                         n_samples=4),
    "NoiseTunnel": lambda m, x: A.NoiseTunnel(A.Occlusion(m)).attribute(
        x, nt_samples=2, stdevs=0.1, baselines=B, target=0, **WIN),
    "MeaningfulPerturbation": lambda m, x: A.MeaningfulPerturbation(m).attribute(
        x, target=0, n_steps=2),
    "SparsePerturbation": lambda m, x: A.SparsePerturbation(m).attribute(x, target=0),
    "SparseCounterfactualBaseline": lambda m, x: SparseCounterfactualBaseline(
        m, 1, n_steps=2).reference(x),
    "deletion": lambda m, x: M.deletion(m, x, torch.rand_like(x), target=0, n_steps=2),
    "insertion": lambda m, x: M.insertion(m, x, torch.rand_like(x), target=0, n_steps=2),
    "saliency_metric": lambda m, x: M.saliency_metric(m, x, torch.rand_like(x), target=0),
    "road": lambda m, x: M.road(m, x, torch.rand_like(x), target=0, percentages=[0, 50, 100]),
    "removal_curves": lambda m, x: M.removal_curves(
        m, x, torch.rand_like(x), target=0, removals={"zero": ConstantBaseline(0.0)},
        percentages=[0, 50, 100]),
    "r_oms": lambda m, x: M.r_oms(m, x, ConstantBaseline(0.0), ConstantBaseline(0.5)),
    "pgd_attack": lambda m, x: R.pgd_attack(m, x, 0, steps=1),
    "robust_accuracy": lambda m, x: R.robust_accuracy(m, x, [0, 1], steps=1),
    "frank_wolfe": lambda m, x: R.frank_wolfe(m, x, 0, "l2", 1.0, n_steps=1),
    "sparse_frank_wolfe": lambda m, x: R.sparse_frank_wolfe(m, x, 0, k=2, n_steps=2),
    "probe_concept": lambda m, x: R.probe_concept(m, 0, start=x, n_steps=2),
    "adversarial_train": lambda m, x: R.adversarial_train(m, (x, torch.tensor([0, 1])),
                                                          steps=1, batch_size=2),
}


@pytest.mark.parametrize("name", sorted(_ENTRY))
def test_float64_inputs_to_a_float32_model_name_the_dtype(name: str) -> None:
    model = _model()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError, match=r"has dtype torch.float64 but .* computes in "
                                        r"torch.float32"):
        _ENTRY[name](model, x)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training


@pytest.mark.parametrize("name", ["IntegratedGradients", "deletion", "pgd_attack"])
def test_float64_model_and_inputs_work(name: str) -> None:
    model = _model().double()
    out = _ENTRY[name](model, torch.rand(2, 1, 8, 8, dtype=torch.float64))
    values = out.scores if hasattr(out, "scores") else out
    assert values.dtype == torch.float64 and bool(torch.isfinite(values).all())


def test_model_dtype_of_modules_methods_and_functions() -> None:
    model = nn.Linear(2, 1).double()
    assert model_dtype(model) == torch.float64
    assert model_dtype(model.forward) == torch.float64
    assert model_dtype(lambda x: x) is None
    assert model_dtype(nn.ReLU()) is None
    check_model_dtype(torch.rand(1, 2), lambda x: x)  # unknown dtype: not checked
    check_model_dtype(torch.zeros(1, 2, dtype=torch.long), nn.Linear(2, 1))  # not float
    with pytest.raises(TypeError, match=r"inputs\[1\] has dtype torch.float64"):
        check_model_dtype((torch.rand(1, 2), torch.rand(1, 2).double()), nn.Linear(2, 1))


#: every captum_cf.attr method with a ``baselines`` argument, called with ``baselines=b``
_WITH_BASELINES: dict[str, Callable[[nn.Module, Tensor, Any], Any]] = {
    "IntegratedGradients": lambda m, x, b: A.IntegratedGradients(m).attribute(
        x, baselines=b, target=0, n_steps=2),
    "DeepLift": lambda m, x, b: A.DeepLift(m).attribute(x, baselines=b, target=0),
    "DeepLiftShap": lambda m, x, b: A.DeepLiftShap(m).attribute(x, baselines=b, target=0),
    "GradientShap": lambda m, x, b: A.GradientShap(m).attribute(x, baselines=b, target=0),
    "Occlusion": lambda m, x, b: A.Occlusion(m).attribute(x, baselines=b, target=0, **WIN),
    "FeatureAblation": lambda m, x, b: A.FeatureAblation(m).attribute(x, baselines=b, target=0),
    "ShapleyValueSampling": lambda m, x, b: A.ShapleyValueSampling(m).attribute(
        x, baselines=b, target=0, feature_mask=MASK, n_samples=1),
    "Lime": lambda m, x, b: A.Lime(m).attribute(x, baselines=b, target=0, feature_mask=MASK,
                                                n_samples=4),
    "KernelShap": lambda m, x, b: A.KernelShap(m).attribute(
        x, baselines=b, target=0, feature_mask=MASK, n_samples=4),
    "NoiseTunnel": lambda m, x, b: A.NoiseTunnel(A.IntegratedGradients(m)).attribute(
        x, nt_samples=2, stdevs=0.1, baselines=b, target=0, n_steps=2),
    "LayerIntegratedGradients": lambda m, x, b: A.LayerIntegratedGradients(m, m[0]).attribute(
        x, baselines=b, target=0, n_steps=2),
    "NeuronDeepLift": lambda m, x, b: A.NeuronDeepLift(m, m[1]).attribute(
        x, neuron_selector=(0, 1, 1), baselines=b),
}
_SHAP = {"DeepLiftShap", "GradientShap"}


@pytest.mark.parametrize("name", sorted(_WITH_BASELINES))
def test_tensor_baselines_of_another_dtype_or_shape_name_the_argument(name: str) -> None:
    # Captum let these through to torch ("Input type (double) and bias type (float) should be
    # the same", "The size of tensor a (8) must match ...") or printed both tensors whole
    model = _model()
    x = torch.rand(2, 1, 8, 8)
    rows = 2 if name in _SHAP else 1  # a distribution of one: DeepLiftShap wants more
    call = _WITH_BASELINES[name]
    # (NoiseTunnel hands its method the baselines as a tuple: "baselines[0]")
    with pytest.raises(TypeError, match=r"baselines(\[0\])? has dtype torch.float64 but "
                                        r"inputs(\[0\])? has torch.float32"):
        call(model, x, torch.zeros(rows, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"baselines(\[0\])? has shape \(\d, 1, 4, 4\), which "
                                         r"does not fit inputs(\[0\])? of shape \(2, 1, 8, 8\)"):
        call(model, x, torch.zeros(rows, 1, 4, 4))
    if name not in _SHAP:  # one reference per example: 1 or N rows
        with pytest.raises(ValueError, match=r"a baseline tensor has 1 or 2 rows"):
            call(model, x, torch.zeros(3, 1, 8, 8))
    assert not model.training
    out = call(model, x, torch.full((rows, 1, 8, 8), 0.5))  # what fits still works
    first = out[0] if isinstance(out, tuple) else out
    assert bool(torch.isfinite(first).all())


def test_noise_tunnel_rows_follow_captums_rule_and_functions_keep_their_dtypes() -> None:
    model = _model()
    x = torch.rand(2, 1, 8, 8)
    nt = A.NoiseTunnel(A.GradientShap(model))
    with pytest.raises(ValueError, match=r"a baseline tensor has 1 or 2 rows"):
        nt.attribute(x, nt_samples=2, stdevs=0.1, target=0, baselines=torch.zeros(5, 1, 8, 8))
    out = nt.attribute(x, nt_samples=2, stdevs=0.1, target=0, baselines=torch.zeros(5, 1, 8, 8),
                       draw_baseline_from_distrib=True)  # a distribution: any rows
    assert out.shape == x.shape
    # a forward function of unknown dtype is not held to one (as for its inputs): Captum's
    # arithmetic promotes the float32 inputs to the float64 reference's dtype
    out = A.IntegratedGradients(lambda z: model(z.float()).double()).attribute(
        x, baselines=torch.zeros(1, 1, 8, 8, dtype=torch.float64), target=0, n_steps=2)
    assert out.dtype == torch.float64
