"""Tiny models and Baselines shared by the perturbation-method tests (Occlusion ... KernelShap)."""

from __future__ import annotations

import copy
from typing import Any

import captum.attr
import torch
import torch.nn as nn
from torch import Tensor

from captum_cf.baselines import Baseline

#: (1, 1, 8, 8) feature mask: 8 features of 2 rows x 4 columns, shared by the sampling tests
MASK = (torch.arange(8).view(4, 2).repeat_interleave(2, 0).repeat_interleave(4, 1)).view(1, 1, 8, 8)


class TinyCNN(nn.Module):
    """(N, 3, 8, 8) -> (N, 3) logits; deterministic weights."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.fc = nn.Linear(16, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(h.flatten(1))


class LeftHalfLinear(nn.Module):
    """A linear model that reads only the left half of (N, C, H, W) images: (N, 2) outputs."""

    def __init__(self, channels: int = 3, size: int = 8) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.weight = nn.Parameter(torch.randn(2, channels * size * (size // 2), generator=gen))

    def forward(self, x: Tensor) -> Tensor:
        left = x[..., : x.shape[-1] // 2]
        return left.flatten(1) @ self.weight.t()


class Recorder(nn.Module):
    """Wraps a model and keeps a copy of every batch it is called with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.batches: list[Tensor] = []

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        self.batches.append(x.detach().clone())
        return self.model(x, *args)


class MeanFill(Baseline):
    """Mask-conditional like an inpainter: removed pixels get the mean colour of the kept ones.

    Records every ``fill`` call (inputs, keep, target) so tests can count and inspect them.
    An image baseline in pixel space, as an inpainter is.
    """

    input_kind = "images"
    pixel_space = True

    def __init__(self) -> None:
        self.calls: list[tuple[Tensor, Tensor, Any]] = []

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).clone()

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        self.calls.append((inputs.clone(), keep.clone(), target))
        weight = keep.sum(dim=(2, 3), keepdim=True)
        mean = (keep * inputs).sum(dim=(2, 3), keepdim=True) / weight.clamp(min=1)
        mean = torch.where(weight > 0, mean, torch.full_like(mean, 0.5))
        return keep * inputs + (1 - keep) * mean


class CountingConstant(Baseline):
    """A constant reference (like ConstantBaseline) that counts its ``fill`` calls."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.batch_sizes: list[int] = []

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return torch.full_like(inputs, self.value)

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        self.batch_sizes.append(inputs.shape[0])
        return super()._fill(inputs, keep, target)


class TargetNeeding(MeanFill):
    needs_target = True


def model_state(model: nn.Module) -> tuple[bool, list[bool], list[Tensor]]:
    """(training flag, requires_grad flags, parameter copies) to compare before and after a call."""
    params = list(model.parameters())
    return model.training, [p.requires_grad for p in params], [p.detach().clone() for p in params]


def same_state(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] == b[1] and all(torch.equal(x, y) for x, y in zip(a[2], b[2]))


def captum_reference(method: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    """``method.attribute(inputs, ...)`` of a plain Captum ``method``, for comparisons.

    Captum >= 0.8's ``Occlusion`` of a tuple of inputs builds masks on the CPU and fails on
    any other device (captum_cf's ``Occlusion`` fixes this); there the reference runs on CPU
    copies of the inputs, model and tensor arguments and is moved back. Compare it with
    ``torch.testing.assert_close``: exact on the CPU and the simulated device, within float
    tolerance on CUDA, whose kernels round differently.
    """
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    if not (isinstance(method, captum.attr.Occlusion) and len(xs) > 1
            and xs[0].device.type != "cpu"):
        return method.attribute(inputs, *args, **kwargs)
    device = xs[0].device

    def cpu(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.cpu()
        return tuple(cpu(u) for u in v) if isinstance(v, tuple) else v

    forward = method.forward_func
    copied = copy.deepcopy(forward).cpu() if isinstance(forward, nn.Module) else forward
    out = type(method)(copied).attribute(cpu(inputs), *cpu(args),
                                         **{k: cpu(v) for k, v in kwargs.items()})
    return tuple(o.to(device) for o in out) if isinstance(out, tuple) else out.to(device)
