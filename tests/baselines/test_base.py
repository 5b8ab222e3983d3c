"""Baseline on any input (N, ...): what each baseline needs (images, pixel space) and says,
noisy_inputs() for noisy copies, and the check of a Baseline's own output (finite, shaped, typed
and placed like the input)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
from torch import Tensor

from captum_cf.attr import IntegratedGradients, Occlusion
from captum_cf.baselines import (
    Baseline,
    BlurBaseline,
    ConstantBaseline,
    GANMEXBaseline,
    InpaintBaseline,
    NearestSampleBaseline,
    NoiseBaseline,
    SparseCounterfactualBaseline,
    noisy_inputs,
)
from captum_cf.inpainters import PushPullInpainter

SHAPES = {
    "tabular": (3, 5), "sequence": (3, 4, 2), "image": (3, 2, 4, 4), "volume": (3, 1, 2, 4, 4)
}


class Doubled(Baseline):
    """A user subclass with neither requirement."""

    def _reference(self, inputs, target):
        return 2 * inputs


def _generic(shape, device="cpu"):
    labels = torch.tensor([0, 1, 1, 0])
    data = torch.randn(4, *shape[1:], device=device) * 3
    return [
        ConstantBaseline(-2.0),
        NoiseBaseline(std=1.0, center=0.0, bounds=None),
        NearestSampleBaseline((data, labels), counterfactual_class=1),
        GANMEXBaseline(lambda x, c: x + c.view(-1, *[1] * (x.dim() - 1)), 1, num_classes=2),
        Doubled(),
    ]


@pytest.mark.parametrize("kind", list(SHAPES))
def test_generic_baselines_take_any_shape_and_any_values(kind, device):
    x = torch.randn(*SHAPES[kind], device=device) * 4  # far outside [0, 1]
    keep = (torch.rand_like(x) > 0.5).to(x.dtype)
    for base in _generic(x.shape, device):
        ref = base(x)
        assert ref.shape == x.shape and ref.dtype == x.dtype and ref.device == x.device
        out = base.fill(x, keep)
        assert torch.equal(out[keep == 1], x[keep == 1])
        assert torch.equal(out[keep == 0], ref[keep == 0])
    # hand-checked references
    assert bool((ConstantBaseline(-2.0)(x) == -2).all())
    assert torch.equal(GANMEXBaseline(lambda x, c: x + c.view(-1, *[1] * (x.dim() - 1)), 1,
                                      num_classes=2)(x), x + 1)


@pytest.mark.parametrize("kind", ["tabular", "sequence", "volume"])
def test_image_baselines_refuse_other_shapes_and_say_what_to_use(kind):
    x = torch.rand(*SHAPES[kind])
    for base in (BlurBaseline(1.0), InpaintBaseline(PushPullInpainter())):
        with pytest.raises(ValueError, match=rf"{type(base).__name__} works on images of shape "
                           r"\(N, C, H, W\).*ConstantBaseline, NoiseBaseline, NearestSample"):
            base(x)


def test_only_pixel_space_baselines_check_the_unit_range(device):
    x = (torch.rand(2, 1, 8, 8) * 3 - 1).to(device)
    blurred = BlurBaseline(1.0)(torch.full_like(x, 3.0))
    assert blurred.device == device and torch.allclose(blurred, torch.full_like(x, 3.0))
    assert ConstantBaseline(0.0)(x).device == device
    for base in (InpaintBaseline(PushPullInpainter()),):
        with pytest.raises(ValueError, match=r"works in pixel space \(its model was trained on "
                           r"values in \[0, 1\]\), but inputs has values in \[-0.99"):
            base(x)


def test_noisy_inputs_clamps_the_context_and_keeps_the_given_values(device):
    base = InpaintBaseline(PushPullInpainter())
    x = torch.rand(2, 1, 8, 8, device=device)
    noisy = x + 0.4 * torch.randn_like(x)
    keep = torch.ones(2, 1, 8, 8, device=device)
    keep[..., 2:6, 2:6] = 0
    with noisy_inputs():
        ref = base(noisy)
        out = base.fill(noisy, keep)
    assert torch.equal(ref, base(noisy.clamp(0, 1)))
    clamped_fill = base.fill(noisy.clamp(0, 1), keep)
    assert torch.equal(out[keep.expand_as(x) == 1], noisy[keep.expand_as(x) == 1])
    assert torch.equal(out[keep.expand_as(x) == 0], clamped_fill[keep.expand_as(x) == 0])
    with pytest.raises(ValueError, match="pixel space"):  # the context ended
        base(noisy)
    # in-range inputs are not copied: the context is the input itself
    assert base.context(x) is x


def test_ganmex_with_any_generator_and_its_checks(device):
    class Shift(nn.Module):  # a "generator" for tabular rows: adds a learned offset per class
        def __init__(self):
            super().__init__()
            self.offset = nn.Parameter(torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]]))

        def forward(self, x, classes):
            return x + self.offset[classes]

    g = Shift().train().to(device)
    x = torch.randn(4, 3).to(device)
    base = GANMEXBaseline(g, counterfactual_class=torch.tensor([1, 1, 0, 1]), num_classes=2)
    offsets = torch.tensor([[1.0, -1.0, 2.0]] * 2 + [[0.0, 0.0, 0.0]] + [[1.0, -1.0, 2.0]])
    expected = x + offsets.to(device)
    ref = base(x)
    assert ref.device == device and torch.equal(ref, expected)
    # a target on the inputs' device is compared with the classes without mixing devices
    assert torch.equal(base(x, target=torch.tensor([0, 0, 1, 0], device=device)), expected)
    assert g.training and g.offset.requires_grad  # state restored
    assert not base.pixel_space
    assert GANMEXBaseline(g, 1, num_classes=2, pixel_space=True).pixel_space
    with pytest.raises(ValueError, match="works in pixel space"):
        GANMEXBaseline(g, 1, num_classes=2, pixel_space=True)(x + 5)


def test_sparse_counterfactual_on_tabular_rows_edits_k_values(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 3))
    with torch.no_grad():
        model[0].weight.mul_(5)
    model = model.to(device)
    x = torch.rand(4, 10).to(device)
    base = SparseCounterfactualBaseline(model, counterfactual_class=2, k=3, n_steps=10)
    ref = base(x, target=0)
    assert ref.shape == x.shape and ref.device == device
    assert bool(((ref != x).sum(1) <= 3).all()) and bool(((ref != x).sum(1) >= 1).all())
    assert float(ref.min()) >= 0 and float(ref.max()) <= 1
    # the edit moves the model towards class 2
    assert bool((model(ref)[:, 2] - model(x)[:, 2] > 0).all())
    with pytest.raises(ValueError, match=r"k \(11\) exceeds the number of values per example"):
        SparseCounterfactualBaseline(model, 2, k=11)(x, target=0)
    with pytest.raises(ValueError, match="works in pixel space"):
        base(x + 2, target=0)


def test_noise_bounds(device):
    x = torch.zeros(1000, 3, device=device)
    free = NoiseBaseline(std=2.0, center=0.0, bounds=None)(x)
    assert free.device == device
    assert float(free.min()) < -3 and float(free.max()) > 3  # unclamped
    assert abs(float(free.std()) - 2.0) < 0.1
    boxed = NoiseBaseline(std=2.0, center=0.0, bounds=(-1.0, 1.0))(x)
    assert float(boxed.min()) == -1.0 and float(boxed.max()) == 1.0
    with pytest.raises(ValueError, match=r"center must lie in bounds \[-1.0, 1.0\]"):
        NoiseBaseline(center=2.0, bounds=(-1.0, 1.0))
    with pytest.raises(TypeError, match="bounds must be a pair"):
        NoiseBaseline(bounds=(0.0,))
    with pytest.raises(ValueError, match="lo <= hi"):
        NoiseBaseline(center=None, bounds=(1.0, 0.0))


def test_per_feature_constant_on_tabular_and_sequences(device):
    x = torch.randn(2, 3, 4).to(device)
    ref = ConstantBaseline([1.0, -2.0, 5.0])(x)
    assert ref.device == device
    assert torch.equal(ref[:, 1], torch.full((2, 4), -2.0, device=device))
    with pytest.raises(ValueError, match=r"3 channel values but inputs have 5 channels"):
        ConstantBaseline([1.0, -2.0, 5.0])(torch.randn(2, 5).to(device))


class _Returns(Baseline):
    def __init__(self, make: Any) -> None:
        self.make = make

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        return self.make(inputs)


BAD = [
    (lambda x: torch.full_like(x, float("nan")), ValueError, "reference returned NaN"),
    (lambda x: torch.full_like(x, float("inf")), ValueError, "reference returned NaN or inf"),
    (lambda x: x[:, :, :4], ValueError, r"reference returned \(2, 1, 4, 8\)"),
    (lambda x: x.double(), ValueError, "torch.float64"),
    (lambda x: x.cpu().numpy(), TypeError, "reference must return a Tensor, got ndarray"),
]


@pytest.mark.parametrize("make, error, message", BAD)
def test_reference_output_is_checked(
    make: Any, error: type, message: str, device: torch.device
) -> None:
    with pytest.raises(error, match=message):
        _Returns(make).reference(torch.rand(2, 1, 8, 8).to(device))


@pytest.mark.parametrize("make, error, message", BAD[:4])
def test_fill_output_is_checked(
    make: Any, error: type, message: str, device: torch.device
) -> None:
    keep = torch.ones(2, 1, 8, 8, device=device)
    keep[..., :4] = 0
    with pytest.raises(error, match=message.replace("reference", "(reference|fill)")):
        _Returns(make).fill(torch.rand(2, 1, 8, 8).to(device), keep)


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_every_method_reports_a_nan_or_misshaped_baseline(
    method: str, device: torch.device
) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval().to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    for make, message in ((lambda t: torch.full_like(t, float("nan")), "NaN"),
                          (lambda t: t[:, :, :4], r"\(2, 1, 4, 8\)")):
        with pytest.raises(ValueError, match=message):
            if method == "ig":
                IntegratedGradients(model).attribute(x, baselines=_Returns(make), target=0)
            else:
                Occlusion(model).attribute(x, sliding_window_shapes=(1, 4, 4),
                                           baselines=_Returns(make), target=0)


def test_good_output_passes_unchanged(device: torch.device) -> None:
    x = torch.rand(2, 1, 8, 8).to(device)
    ref = ConstantBaseline(0.25).reference(x)
    assert ref.device == device and torch.equal(ref, torch.full_like(x, 0.25))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.uint8, torch.long])
def test_a_keep_mask_of_another_dtype_is_read_in_the_images_dtype(dtype, device):
    """A mask built in NumPy is float64: it was refused as the baseline's own wrong output
    (float64 result of float32 images), and a float16 one gave NaN in push-pull."""
    from captum_cf.baselines import BlurBaseline, ConstantBaseline, InpaintBaseline
    from captum_cf.inpainters import PushPullInpainter

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=gen).to(device)
    keep = (torch.rand(2, 1, 16, 16, generator=gen) > 0.5).to(device)
    baselines = (ConstantBaseline(0.0), BlurBaseline(2.0), InpaintBaseline(PushPullInpainter()))
    for baseline in baselines:
        expected = baseline.fill(x, keep.float())
        got = baseline.fill(x, keep.to(dtype))
        assert got.dtype == torch.float32 and torch.equal(got, expected)
