"""Frank-Wolfe: feasibility, the step rule, reaching the target, the pixel budget, model state."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from captum_cf.robust import frank_wolfe, lmo_l1, lmo_l2, lmo_linf, lmo_topk, sparse_frank_wolfe


def _linear(seed: int = 0, c: int = 1, side: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, classes)).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 36, 3)).train()


def _x(n: int = 4, c: int = 1, side: int = 6) -> torch.Tensor:
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(1))


LMOS = {
    "linf": (lmo_linf, 0.2, lambda d: d.flatten(1).abs().amax(1)),
    "l2": (lmo_l2, 1.0, lambda d: d.flatten(1).norm(dim=1)),
    "l1": (lmo_l1, 2.0, lambda d: d.flatten(1).abs().sum(1)),
    "topk": (partial(lmo_topk, k=5), 2.0, lambda d: d.flatten(1).abs().sum(1)),
}


@pytest.mark.parametrize("name", list(LMOS))
def test_iterates_feasible_and_in_box(name: str, device) -> None:
    lmo, eps, norm = LMOS[name]
    model, x = _linear().to(device), _x()
    x[:, :, 0] = 0.0
    x[:, :, 1] = 1.0  # saturated rows: the box binds
    x = x.to(device)
    for steps in (1, 2, 3, 5, 8):  # delta after `steps` steps is the steps-th iterate
        delta = frank_wolfe(model, x, 2, lmo, eps, steps)
        assert delta.device == device
        assert (norm(delta) <= eps + 1e-5).all()
        assert ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    if name == "topk":
        assert (delta.abs().flatten(1).amax(1) <= eps / 5 + 1e-6).all()


def test_first_step_is_the_vertex_and_step_rule(device) -> None:
    """gamma_0 = 1: delta_1 = s_0; delta_2 = delta_1 + 2/3 (s_1 - delta_1)."""
    model, x = _linear().to(device), _x().to(device)
    t = torch.full((4,), 2, device=device)

    def grad_at(delta: torch.Tensor) -> torch.Tensor:
        d = delta.clone().requires_grad_(True)
        loss = -nn.functional.cross_entropy(model(x + d), t, reduction="sum")
        return torch.autograd.grad(loss, d)[0]

    box = {"lower": -x, "upper": 1 - x}
    s0 = lmo_l2(grad_at(torch.zeros_like(x)), 1.0, **box)
    d1 = frank_wolfe(model, x, t, "l2", 1.0, 1)
    assert d1.device == device
    assert torch.allclose(d1, s0, atol=1e-6)
    s1 = lmo_l2(grad_at(d1), 1.0, **box)
    assert torch.allclose(frank_wolfe(model, x, t, "l2", 1.0, 2), d1 + 2 / 3 * (s1 - d1), atol=1e-6)


@pytest.mark.parametrize("name", list(LMOS))
def test_targeted_reaches_target_on_linear_model(name: str, device) -> None:
    lmo, _, _ = LMOS[name]
    model, x = _linear().to(device), _x(6).to(device)
    with torch.no_grad():
        model[1].weight.mul_(3.0)
        pred = model(x).argmax(1)
    target = (pred + 1) % 3
    eps = {"linf": 0.5, "l2": 4.0, "l1": 20.0, "topk": 20.0}[name]
    delta = frank_wolfe(model, x, target, lmo, eps, 30)
    assert torch.equal(model(x + delta).argmax(1), target)
    untargeted = frank_wolfe(model, x, pred, lmo, eps, 30, targeted=False)
    assert not (model(x + untargeted).argmax(1) == pred).any()


def test_sparse_frank_wolfe_changes_at_most_k_pixels(device) -> None:
    model, x = _cnn().to(device), _x(4, 2).to(device)
    for k in (1, 3, 7):
        delta = sparse_frank_wolfe(model, x, 1, k, n_steps=10)
        assert delta.device == device
        changed = (delta != 0).any(1).sum((1, 2))
        assert (changed <= k).all() and (changed >= 1).all()
    plain = sparse_frank_wolfe(model, x, 1, 3, n_steps=10, refine=False)
    assert ((plain != 0).any(1).sum((1, 2)) > 3).any()  # what the refine phase is for


def test_sparsity_knob_is_monotone(device) -> None:
    model, x = _cnn().to(device), _x(4, 2).to(device)
    dens = []
    for k in (1, 2, 4, 8, 16):
        delta = sparse_frank_wolfe(model, x, 0, k, n_steps=8)
        dens.append(float((delta.abs().amax(1) > 1 / 255).float().mean((1, 2)).median()))
    assert dens == sorted(dens) and dens[-1] > dens[0]


def test_region_restricts_the_perturbation(device) -> None:
    model, x = _linear().to(device), _x().to(device)
    region = torch.zeros(1, 1, 6, 6)
    region[..., :2, :] = 1
    delta = frank_wolfe(model, x, 0, "l2", 1.0, 5, region=region.to(device))
    assert delta.device == device
    assert (delta[..., 2:, :] == 0).all() and (delta[..., :2, :] != 0).any()


def test_model_and_inputs_unchanged(device) -> None:
    model, x = _cnn().to(device), _x(2, 2).to(device)
    model[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x0 = x.clone()
    sparse_frank_wolfe(model, x, 1, 4, n_steps=4)
    assert model.training and not model[0].weight.requires_grad and model[0].bias.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x, x0)


def test_model_state_restored_after_exception(device) -> None:
    model = _cnn().to(device)

    def bad_loss(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert not model.training  # the model runs in eval mode
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        frank_wolfe(model, _x(2, 2).to(device), 0, "linf", 0.1, 3, loss_fn=bad_loss)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_bad_input() -> None:
    model, x = _linear(), _x()
    with pytest.raises(ValueError, match="eps"):
        frank_wolfe(model, x, 0, "l2", -1.0, 3)
    with pytest.raises(ValueError, match="n_steps"):
        frank_wolfe(model, x, 0, "l2", 1.0, 0)
    with pytest.raises(ValueError, match="lmo"):
        frank_wolfe(model, x, 0, "l3", 1.0, 3)
    with pytest.raises(ValueError, match="target must be given"):
        frank_wolfe(model, x, None, "l2", 1.0, 3)
    with pytest.raises(ValueError, match="target must be class indices"):
        frank_wolfe(model, x, 7, "l2", 1.0, 3)
    with pytest.raises(ValueError, match="inputs must be images in"):
        frank_wolfe(model, x * 2, 0, "l2", 1.0, 3)
    with pytest.raises(ValueError, match="region must hold only 0 and 1"):
        frank_wolfe(model, x, 0, "l2", 1.0, 3, region=torch.full((1, 1, 6, 6), 0.5))
    with pytest.raises(TypeError, match="model must be callable"):
        frank_wolfe("model", x, 0, "l2", 1.0, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be an int in"):
        sparse_frank_wolfe(model, x, 0, 37)
    with pytest.raises(ValueError, match="n_steps must be an int >= 2"):
        sparse_frank_wolfe(model, x, 0, 3, n_steps=1)
