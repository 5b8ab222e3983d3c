"""DeepLift on models that call one non-linearity module several times per forward pass."""

from __future__ import annotations

import captum.attr
import pytest
import torch
import torch.nn as nn

from captum_cf.attr import DeepLift, DeepLiftShap
from captum_cf.attr._untangle import reused_nonlinearities, untangled
from captum_cf.baselines import ConstantBaseline


class Block(nn.Module):
    """A residual block as torchvision writes it: one ``ReLU(inplace=True)`` called twice and a
    max pool called twice; with ``separate=True`` every call has its own module instead."""

    def __init__(self, separate: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.relu2 = nn.ReLU() if separate else self.relu
        self.pool2 = nn.MaxPool2d(3, stride=1, padding=1) if separate else self.pool
        self.head = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.relu(self.conv1(x)))
        out = self.pool2(self.relu2(self.conv2(out) + x))
        return self.head(out.flatten(1))


def _pair(device: torch.device) -> tuple[nn.Module, nn.Module]:
    reused = Block().to(device).eval()
    separate = Block(separate=True).to(device).eval()
    separate.load_state_dict(reused.state_dict())
    return reused, separate


def _snapshot(model: nn.Module) -> tuple:
    return (
        [(n, id(m), m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks),
          getattr(m, "inplace", None)) for n, m in model.named_modules(remove_duplicate=False)],
        {k: v.clone() for k, v in model.state_dict().items()},
        [(p, p.requires_grad) for p in model.parameters()],
    )


def _same(a: tuple, b: tuple) -> bool:
    return (
        a[0] == b[0]
        and a[1].keys() == b[1].keys()
        and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
        and a[2] == b[2]
    )


def test_captum_fails_on_the_reused_modules(device):
    reused, _ = _pair(device)
    with pytest.raises(RuntimeError, match="used more than once"):
        captum.attr.DeepLift(reused).attribute(torch.rand(2, 2, 6, 6, device=device), target=0)
    with pytest.raises(RuntimeError, match="used more than once"):  # ours without untangle too
        DeepLift(reused).attribute(torch.rand(2, 2, 6, 6, device=device), target=0)
    assert reused_nonlinearities(reused, torch.rand(5, 2, 6, 6, device=device)) == {
        "relu": 2,
        "pool": 2,
    }


def test_deeplift_on_reused_modules_equals_the_model_with_separate_modules(device, on_device):
    reused, separate = _pair(device)
    x = torch.rand(4, 2, 6, 6, device=device)
    ref = torch.rand(4, 2, 6, 6, device=device)
    target = torch.tensor([0, 1, 2, 0], device=device)
    hook_calls = {"reused": 0, "separate": 0}

    def hook(name):
        return lambda m, i, o: hook_calls.__setitem__(name, hook_calls[name] + 1)

    reused.relu.register_forward_hook(hook("reused"))
    separate.relu.register_forward_hook(hook("separate"))
    separate.relu2.register_forward_hook(hook("separate"))
    before = _snapshot(reused)
    ours, delta = DeepLift(reused, untangle=True).attribute(
        x, ref, target, return_convergence_delta=True
    )
    theirs, their_delta = captum.attr.DeepLift(separate).attribute(
        x, ref, target, return_convergence_delta=True
    )
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(delta, their_delta)
    assert on_device(ours, delta)
    assert _same(before, _snapshot(reused))  # modules, modes, hooks, weights, flags: as before
    # the user's hook ran as often as on the separate model: never for the probe pass
    assert hook_calls["reused"] == hook_calls["separate"] > 0


def test_deepliftshap_on_reused_modules(device, on_device):
    reused, separate = _pair(device)
    x = torch.rand(3, 2, 6, 6, device=device)
    dist = torch.rand(4, 2, 6, 6, device=device)
    before = _snapshot(reused)
    ours = DeepLiftShap(reused, untangle=True).attribute(x, dist, target=1)
    theirs = captum.attr.DeepLiftShap(separate).attribute(x, dist, target=1)
    assert torch.allclose(ours, theirs, atol=1e-6) and on_device(ours)
    base = ConstantBaseline(0.5)
    ours = DeepLiftShap(reused, untangle=True).attribute(x, base, target=1)
    theirs = captum.attr.DeepLift(separate).attribute(x, torch.full_like(x, 0.5), target=1)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert _same(before, _snapshot(reused))


def test_train_mode_and_batchnorm_buffers_are_untouched_by_the_probe(device):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    relu = nn.ReLU()
    model.append(relu).append(nn.Conv2d(2, 2, 1)).append(relu)
    model.append(nn.Flatten()).append(nn.Linear(2 * 4 * 4, 2))
    model.to(device).train()
    stats = model[1].running_mean.clone()
    twin = untangled(model, torch.rand(3, 1, 6, 6).to(device))
    assert twin is not None and twin.training and all(m.training for m in twin.modules())
    assert torch.equal(model[1].running_mean, stats)  # the probe ran in eval mode
    assert twin[1].running_mean is model[1].running_mean  # shared, not copied
    assert twin[2] is twin[4] and type(twin[2]).__name__ == "_CallSites"
    assert model[2] is relu and model[4] is relu


def test_models_without_reuse_go_to_captum_unchanged(device, on_device):
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    model, x = model.to(device), torch.rand(3, 2, 2, 2).to(device)
    assert untangled(model, x) is None
    got = DeepLift(model, untangle=True).attribute(x, 0.1, target=1)
    assert torch.equal(got, captum.attr.DeepLift(model).attribute(x, 0.1, target=1))
    assert on_device(got)


def _basic_block_forward(self, x):
    # torchvision's BasicBlock.forward, with a second ReLU module for the second call
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu2(out + identity)


def test_resnet18_from_torchvision(device, on_device):
    import copy
    import types

    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=3).to(device).eval()
    separate = copy.deepcopy(model)
    for block in separate.modules():
        if isinstance(block, torchvision.models.resnet.BasicBlock):
            block.relu, block.relu2 = nn.ReLU(), nn.ReLU()
            block.forward = types.MethodType(_basic_block_forward, block)
    x, ref = torch.rand(2, 3, 32, 32).to(device), torch.rand(2, 3, 32, 32).to(device)
    assert torch.equal(model(x), separate(x))
    before = _snapshot(model)
    ours = DeepLift(model, untangle=True).attribute(x, ref, target=0)
    theirs = captum.attr.DeepLift(separate).attribute(x, ref, target=0)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-7) and on_device(ours)
    assert _same(before, _snapshot(model))
