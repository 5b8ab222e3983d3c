"""The simulated accelerator: it refuses what CUDA refuses, and the audit runs on it unchanged.

CI has no GPU. ``simulated_device.py`` labels CPU data with another device and applies CUDA's
placement rules, so a tensor that a hot path creates on the CPU beside the input's tensors fails
here as it would on a GPU. These tests check the simulation itself, then run the whole default
audit grid and every registered method on it and compare each per-image value with a CPU run.
"""

from __future__ import annotations

import copy

import pytest
import simulated_device as simulation
import torch
from audit_compare import assert_same_cells
from simulated_device import SIM, DevicePlacementError, SimTensor, simulated_device

from captum_cf import zoo
from captum_cf.audit import audit
from captum_cf.datasets import load_digits


def test_the_simulation_refuses_what_cuda_refuses() -> None:
    x_cpu = torch.rand(2, 3, 4, 4)
    with simulated_device():
        x = x_cpu.to(SIM)
        assert isinstance(x, SimTensor) and x.device == SIM
        for mixed in (lambda: x + torch.rand(2, 3, 4, 4), lambda: torch.cat([x, x_cpu]),
                      lambda: x.index_select(0, torch.tensor([1])),
                      lambda: torch.nn.functional.conv2d(x, torch.rand(1, 3, 3, 3))):
            with pytest.raises(DevicePlacementError, match="Expected all tensors to be on"):
                mixed()
        with pytest.raises(DevicePlacementError, match="generator"):
            torch.rand(3, generator=torch.Generator().manual_seed(0), device=SIM)
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        # what CUDA accepts: CPU scalars, CPU indices, copies across devices
        assert torch.equal((x * torch.tensor(2.0)).cpu(), x_cpu * 2)
        assert torch.equal(x[torch.tensor([1, 0])].cpu(), x_cpu[[1, 0]])
        assert torch.equal(x[[1]].cpu(), x_cpu[[1]])
        assert torch.equal(x[x_cpu > 0.5].cpu(), x_cpu[x_cpu > 0.5])
        y = torch.zeros(2, 3, 4, 4, device=x.device)
        y.copy_(x_cpu)
        assert isinstance(y, SimTensor) and torch.equal(y.cpu(), x_cpu)
        # constructors from Python data keep their values and gradients
        s = torch.tensor([0.5, 2.0], device=SIM, requires_grad=True)
        (s * x.new_tensor([3.0, 4.0])).sum().backward()
        assert isinstance(s.grad, SimTensor) and s.grad.tolist() == [3.0, 4.0]
        # the host's reads of the device (stream waits on CUDA) are counted
        before = dict(simulation.HOST_READS)
        x.sum().item(), bool(x.max() > 0), x.cpu(), x.tolist()
        y.add_(1.0)  # stays on the device: no read
        assert simulation.HOST_READS["scalar"] - before["scalar"] == 2
        assert simulation.HOST_READS["tensor"] - before["tensor"] == 2


def test_modules_keep_their_parameters_and_compute_as_on_the_cpu() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3))
    reference = copy.deepcopy(model)
    x = torch.rand(5, 1, 8, 8)
    with simulated_device():
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=0.1)  # built before the move, as in many scripts
        model.to(SIM)
        assert [id(p) for p in model.parameters()] == [id(p) for p in params]
        assert all(p.device == SIM for p in model.parameters())
        loss = model(x.to(SIM)).square().mean()
        loss.backward()
        opt.step()
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    ref_loss = reference(x).square().mean()
    ref_loss.backward()
    ref_opt.step()
    assert loss.item() == ref_loss.item()
    for p, q in zip(model.cpu().parameters(), reference.parameters()):
        assert type(p.data) is torch.Tensor and torch.equal(p, q)


#: off the CPU, Meaningful Perturbation resizes its mask by two matrix products (deterministic
#: backward on CUDA; captum_cf._ops): its values are the CPU's up to rounding (2e-6 measured)
_NOT_BITWISE = {"meaningful-perturbation": 1e-5}


def _same_audit(kwargs: dict) -> None:
    """Runs ``audit`` on the CPU and on the simulated device; every per-image value equal (bit for
    bit, but for ``_NOT_BITWISE``)."""
    model = zoo.load("digits-cnn")
    x = load_digits("test").tensors[0][:2]
    torch.manual_seed(0)
    on_cpu = audit(model, x, data_name="digits", train_data=load_digits("train"), **kwargs)
    torch.manual_seed(0)
    with simulated_device() as sim:
        on_sim = audit(model, x, data_name="digits", train_data=load_digits("train"), device=sim,
                       **kwargs)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert_same_cells(on_cpu, on_sim, method_atol=_NOT_BITWISE)


def test_the_default_audit_computes_on_the_device_and_equals_the_cpus() -> None:
    """Every default method x every digits baseline, every default removal and the sanity
    check: a tensor created on the CPU in any of them fails the cell."""
    _same_audit(dict(sanity_n=1, n_examples=1))


def test_every_registered_method_computes_on_the_device() -> None:
    _same_audit(dict(methods=["all"], baselines=["zero", "inpaint-pushpull"], removals=["zero"],
                     sanity_n=1, n_examples=0))


def test_a_cells_values_reach_the_host_in_one_copy_with_their_dtypes_and_bits() -> None:
    from captum_cf.audit.runner import _to_host

    values = {"f32": ([0, 1], torch.tensor([0.1, -3e-39])),  # a float32 subnormal too
              "f64": ([0], torch.tensor([1 / 3], dtype=torch.float64)),
              "flag": ([0, 1], torch.tensor([True, False])), "cpu": ([1], torch.tensor([2.5]))}
    with simulated_device():
        on_device = {m: (rows, v if m == "cpu" else v.to(SIM)) for m, (rows, v) in values.items()}
        before = dict(simulation.HOST_READS)
        out = _to_host(on_device)
        assert simulation.HOST_READS["tensor"] - before["tensor"] == 1  # one copy, not three
    for m, (rows, v) in values.items():
        assert out[m][0] == rows and type(out[m][1]) is torch.Tensor
        assert out[m][1].dtype == v.dtype and torch.equal(out[m][1], v)
