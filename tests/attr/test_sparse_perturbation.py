"""SparsePerturbation: a Captum GradientAttribution returning the sparse counterfactual delta."""

from __future__ import annotations

import pytest
import torch
from captum.attr import GradientAttribution
from torch import nn

from captum_cf._registry import AuditContext
from captum_cf.attr import METHODS, SparsePerturbation


def _model(device: torch.device | str = "cpu") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 64, 3))
    with torch.no_grad():
        model[3].weight.mul_(4)
    return model.to(device).eval()


def _x(n: int = 4, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.rand(n, 2, 8, 8, generator=torch.Generator().manual_seed(1)).to(device)


def test_is_captum_attribution_and_changes_k_pixels(device, on_device) -> None:
    method = SparsePerturbation(_model(device))
    assert isinstance(method, GradientAttribution) and not method.has_convergence_delta()
    x = _x(device=device)
    delta = method.attribute(x, target=2, sparsity=0.9, n_steps=6)
    assert on_device(delta)
    k = round(0.1 * 64)
    assert delta.shape == x.shape and ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    changed = (delta != 0).any(1).sum((1, 2))
    assert (changed <= k).all() and (changed >= k - 2).all()
    assert torch.equal(method.attribute(x, target=2, k=k, n_steps=6), delta)  # k == sparsity


def test_towards_target_and_away_from_prediction(device, on_device) -> None:
    model, x = _model(device), _x(8, device)
    method = SparsePerturbation(model)
    with torch.no_grad():
        pred = model(x).argmax(1)
    target = (pred + 1) % 3
    delta = method.attribute(x, target=target, sparsity=0.5, n_steps=20)
    assert on_device(delta)
    assert (model(x + delta).argmax(1) == target).float().mean() >= 0.75
    away = method.attribute(x, sparsity=0.5, n_steps=20, mode="away-from-prediction")
    p0 = model(x).softmax(1).gather(1, pred[:, None])
    p1 = model(x + away).softmax(1).gather(1, pred[:, None])
    assert (p1 < p0).all()


@pytest.mark.parametrize("norm,bound", [("l2", 2.0), ("linf", 0.1), ("l1", 5.0)])
def test_dense_norms_respect_their_ball(norm: str, bound: float, device, on_device) -> None:
    delta = SparsePerturbation(_model(device)).attribute(
        _x(device=device), target=1, norm=norm, k=5, n_steps=5
    )
    assert on_device(delta)
    flat = delta.flatten(1)
    size = {"l2": flat.norm(dim=1), "linf": flat.abs().amax(1), "l1": flat.abs().sum(1)}[norm]
    assert (size <= bound + 1e-5).all() and (size > 0).all()  # defaults: 2.0, 0.1 and k


def test_sparsity_monotone_and_model_untouched(device) -> None:
    model = _model(device).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _x(device=device)
    method = SparsePerturbation(model)
    counts = [int((method.attribute(x, target=0, sparsity=s, n_steps=4) != 0).any(1).sum())
              for s in (0.95, 0.9, 0.8, 0.6)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(x, _x(device=device))


def test_registered_for_the_audit(device, on_device) -> None:
    ctx = AuditContext(model=_model(device), data_name="toy", train_data=None, num_classes=3,
                       image_shape=(2, 8, 8))
    assert "sparse-perturbation" in METHODS.names(ctx)
    explain = METHODS.create("sparse-perturbation", ctx)
    attr = explain(_x(2, device), torch.tensor([0, 1], device=device), None)
    assert attr.shape == (2, 2, 8, 8) and (attr >= 0).all() and on_device(attr)
    assert ((attr != 0).any(1).sum((1, 2)) <= round(0.1 * 64)).all()


def test_bad_input() -> None:
    method, x = SparsePerturbation(_model()), _x()
    with pytest.raises(ValueError, match="target is required"):
        method.attribute(x)
    with pytest.raises(ValueError, match="norm must be"):
        method.attribute(x, target=0, norm="l0")
    with pytest.raises(ValueError, match="mode must be"):
        method.attribute(x, target=0, mode="sideways")
    with pytest.raises(ValueError, match="sparsity"):
        method.attribute(x, target=0, sparsity=1.0)
    with pytest.raises(ValueError, match="k must be"):
        method.attribute(x, target=0, k=65)
    with pytest.raises(ValueError, match="eps"):
        method.attribute(x, target=0, eps=-1.0)
    with pytest.raises(ValueError, match="n_steps"):
        method.attribute(x, target=0, n_steps=1)
    with pytest.raises(ValueError, match="target must be class indices"):
        method.attribute(x, target=3)
    with pytest.raises(ValueError, match="inputs must be images in"):
        method.attribute(x - 1, target=0)
