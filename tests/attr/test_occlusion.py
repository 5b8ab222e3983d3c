"""captum_cf.attr.Occlusion: Captum's numbers for constants, fills only the occluded windows."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from perturbation_helpers import (
    CountingConstant,
    LeftHalfLinear,
    MeanFill,
    Recorder,
    TargetNeeding,
    TinyCNN,
    captum_reference,
    model_state,
    same_state,
)

from captum_cf.attr import NoiseTunnel, Occlusion
from captum_cf.baselines import ConstantBaseline

WINDOW, STRIDE = (3, 3, 3), (3, 2, 2)  # 4 x 4 = 16 windows on 8 x 8


@pytest.fixture
def x(device: torch.device) -> torch.Tensor:
    """Drawn on the CPU (the seeded global generator), then moved: the same numbers everywhere."""
    return torch.rand(2, 3, 8, 8).to(device)


@pytest.mark.parametrize("ppe", [1, 2, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_baseline_equals_captum_scalar(x, ppe, value, on_device):
    model = TinyCNN().to(x.device)
    expected = captum.attr.Occlusion(model).attribute(
        x, WINDOW, STRIDE, baselines=value, target=1, perturbations_per_eval=ppe
    )
    got = Occlusion(model).attribute(
        x, WINDOW, STRIDE, baselines=ConstantBaseline(value), target=1, perturbations_per_eval=ppe
    )
    assert torch.equal(got, expected) and on_device(got)
    assert expected.abs().sum() > 0


def test_tensor_baselines_pass_straight_to_captum(x, on_device):
    model = TinyCNN().to(x.device)
    ref = torch.rand(1, 3, 8, 8).to(x.device)
    for baselines in (None, 0.25, ref):
        expected = captum.attr.Occlusion(model).attribute(x, WINDOW, STRIDE, baselines, [0, 2])
        got = Occlusion(model).attribute(x, WINDOW, STRIDE, baselines, [0, 2])
        assert torch.equal(got, expected) and on_device(got)


def test_fill_sees_exactly_captums_windows_and_kept_pixels_are_original(x, on_device):
    model = Recorder(TinyCNN().to(x.device))
    fill = MeanFill()
    Occlusion(model).attribute(
        x, WINDOW, STRIDE, baselines=fill, target=0, perturbations_per_eval=4
    )
    # the same windows as Captum: Captum with a marker constant shows where it ablates
    marker = Recorder(TinyCNN().to(x.device))
    captum.attr.Occlusion(marker).attribute(
        x, WINDOW, STRIDE, baselines=0.123, target=0, perturbations_per_eval=4
    )
    keeps = torch.cat([keep for _, keep, _ in fill.calls])
    assert on_device(keeps, model.batches)
    captum_removed = torch.cat(marker.batches[1:]) == 0.123
    assert torch.equal(keeps.expand_as(captum_removed) == 0, captum_removed)
    # the model saw the original pixels wherever keep == 1, and the fill's content elsewhere
    seen = torch.cat(model.batches[1:])
    originals = torch.cat([inputs for inputs, _, _ in fill.calls])
    kept = keeps.expand_as(seen) == 1
    assert torch.equal(seen[kept], originals[kept])
    assert torch.equal(originals[:2], x)
    assert not torch.equal(seen[~kept], originals[~kept])


def test_one_fill_call_per_chunk(x):
    fill = CountingConstant(0.5)
    Occlusion(TinyCNN().to(x.device)).attribute(
        x, WINDOW, STRIDE, baselines=fill, target=0, perturbations_per_eval=5
    )
    assert fill.batch_sizes == [10, 10, 10, 2]  # 16 windows in chunks of 5, 2 images each


def test_model_that_ignores_right_half_gets_zero_there(x, on_device):
    attr = Occlusion(LeftHalfLinear().to(x.device)).attribute(
        x, (3, 2, 2), (3, 2, 2), baselines=MeanFill(), target=1, perturbations_per_eval=3
    )
    # zero up to float32 round-off of batched matmuls of different batch sizes
    assert attr[..., 4:].abs().max() < 1e-5
    assert attr[..., :4].abs().min() > 1e-3 and on_device(attr)


@pytest.mark.simdev  # Captum >= 0.8 builds the other inputs' masks on the CPU
def test_multiple_inputs_additional_args_and_target_list(device, on_device):
    class Two(torch.nn.Module):
        def forward(self, img, vec, scale):
            return (img.flatten(1)[:, :4] * vec).sum(1, keepdim=True) * scale + vec[:, :2] * 0

    img, vec = torch.rand(2, 1, 4, 4).to(device), torch.rand(2, 4).to(device)
    kwargs = dict(
        sliding_window_shapes=((1, 2, 2), (1,)),
        additional_forward_args=(torch.tensor([[2.0], [3.0]], device=device),),
        target=[0, 1],
        perturbations_per_eval=2,
    )
    expected = captum_reference(captum.attr.Occlusion(Two()), (img, vec), baselines=(0.5, 0.0),
                                **kwargs)
    got = Occlusion(Two()).attribute((img, vec), baselines=(ConstantBaseline(0.5), 0.0), **kwargs)
    torch.testing.assert_close(got, expected, rtol=0, atol=0 if device.type != "cuda" else 1e-6)
    assert on_device(got)


def test_noise_tunnel_with_constant_baseline_equals_captum(x, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(nt_samples=3, stdevs=0.1, sliding_window_shapes=WINDOW, strides=STRIDE, target=0)
    torch.manual_seed(3)
    expected = captum.attr.NoiseTunnel(captum.attr.Occlusion(model)).attribute(
        x, baselines=0.5, **kw
    )
    torch.manual_seed(3)
    got = NoiseTunnel(Occlusion(model)).attribute(x, baselines=ConstantBaseline(0.5), **kw)
    assert torch.equal(got, expected) and on_device(got)
    # with a mask-conditional fill the noisy inputs are clamped for the fill's context only
    fill = MeanFill()
    NoiseTunnel(Occlusion(model)).attribute(x, baselines=fill, **kw)
    assert all(float(inp.min()) >= 0 and float(inp.max()) <= 1 for inp, _, _ in fill.calls)
    assert on_device([inp for inp, _, _ in fill.calls])


def test_show_progress(x, capsys):
    Occlusion(TinyCNN().to(x.device)).attribute(
        x,
        WINDOW,
        STRIDE,
        baselines=MeanFill(),
        target=0,
        perturbations_per_eval=4,
        show_progress=True,
    )
    assert "Occlusion attribution" in capsys.readouterr().err


def test_model_state_unchanged_also_after_an_error(x):
    model = TinyCNN().to(x.device).train()
    model.conv.weight.requires_grad_(False)
    before = model_state(model)
    Occlusion(model).attribute(x, WINDOW, STRIDE, baselines=MeanFill(), target=0)
    assert same_state(before, model_state(model))
    with pytest.raises(ValueError, match="target"):
        Occlusion(model).attribute(x, WINDOW, STRIDE, baselines=TargetNeeding())
    assert same_state(before, model_state(model))


def test_bad_inputs(x):
    occ = Occlusion(TinyCNN().to(x.device))
    with pytest.raises(ValueError, match=r"baselines \(MeanFill\) works on images"):
        Occlusion(torch.nn.Linear(5, 2)).attribute(torch.rand(3, 5), (1,), baselines=MeanFill())
    with pytest.raises(ValueError, match="baselines has 2 entries but inputs has 1 tensor:"):
        occ.attribute(x, WINDOW, STRIDE, baselines=(MeanFill(), 0.0))
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        occ.attribute(bad, WINDOW, STRIDE, baselines=MeanFill(), target=0)
    with pytest.raises(TypeError, match="baselines must be"):
        occ.attribute(x, WINDOW, STRIDE, baselines="grey", target=0)
    with pytest.raises(ValueError, match="target is a list of 3 entries but inputs have 2"):
        occ.attribute(x, WINDOW, STRIDE, baselines=TargetNeeding(), target=[0, 1, 2])


def test_inpainted_samples_are_finite_in_unit_range_and_keep_context(x, on_device):
    from captum_cf.baselines import InpaintBaseline
    from captum_cf.inpainters import PushPullInpainter

    model = Recorder(TinyCNN().to(x.device))
    Occlusion(model).attribute(
        x,
        WINDOW,
        STRIDE,
        baselines=InpaintBaseline(PushPullInpainter()),
        target=0,
        perturbations_per_eval=16,
    )
    (fed,) = model.batches[1:]  # all 16 windows x 2 images in one chunk
    assert on_device(fed)
    assert bool(torch.isfinite(fed).all()) and float(fed.min()) >= 0 and float(fed.max()) <= 1
    changed = (fed != x.repeat(16, 1, 1, 1)).any(1)  # (32, 8, 8): where the model saw new values
    assert int(changed.flatten(1).sum(1).max()) <= 9  # never outside one 3 x 3 window


def test_inputs_outside_unit_range_are_refused(x):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Occlusion(TinyCNN().to(x.device)).attribute(
            x * 3, WINDOW, STRIDE, baselines=MeanFill(), target=0
        )


class _CountingReference(ConstantBaseline):
    """A composite Baseline (no ``_fill`` override) that counts reference computations."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.calls: list[int] = []

    def _reference(self, inputs, target):
        self.calls.append(inputs.shape[0])
        return super()._reference(inputs, target)


def test_composite_reference_is_computed_once_per_call_not_per_chunk(x, on_device):
    baseline = _CountingReference(0.25)
    ours = Occlusion(TinyCNN().to(x.device)).attribute(
        x, WINDOW, STRIDE, baselines=baseline, target=0, perturbations_per_eval=5
    )
    assert baseline.calls == [x.shape[0]]  # once, on the N original images (4 chunks)
    expected = captum.attr.Occlusion(TinyCNN().to(x.device)).attribute(
        x, WINDOW, STRIDE, baselines=0.25, target=0, perturbations_per_eval=5
    )
    assert torch.equal(ours, expected) and on_device(ours)


class _WrongShape(ConstantBaseline):
    def _reference(self, inputs: torch.Tensor, target: object) -> torch.Tensor:
        return super()._reference(inputs, target)[:, :, :4]


class _NaNBaseline(ConstantBaseline):
    def _reference(self, inputs: torch.Tensor, target: object) -> torch.Tensor:
        return torch.full_like(inputs, float("nan"))


@pytest.mark.parametrize("baseline, message", [
    (_WrongShape(0.5), r"_WrongShape.reference returned \(2, 3, 4, 8\)"),
    (_NaNBaseline(0.5), "_NaNBaseline.reference returned NaN"),
])
def test_a_baselines_own_bad_output_is_a_clear_error(
    x: torch.Tensor, baseline: ConstantBaseline, message: str
) -> None:
    model = TinyCNN().to(x.device)
    before = model_state(model)
    with pytest.raises(ValueError, match=message):
        Occlusion(model).attribute(x, sliding_window_shapes=WINDOW, strides=STRIDE,
                                   baselines=baseline, target=0)
    assert same_state(model_state(model), before)


@pytest.mark.parametrize("kwargs, message", [
    ({"strides": 0}, "strides=0 must be >= 1"),
    ({"strides": (1, 0, 2)}, r"strides=\(1, 0, 2\) must be >= 1"),
    ({"sliding_window_shapes": (1, -4, 4)}, r"sliding_window_shapes=\(1, -4, 4\) must be >= 1"),
    ({"sliding_window_shapes": (1, 9, 9)}, r"must be >= 1 and fit in the input's shape"),
    ({"sliding_window_shapes": (4, 4)}, "sliding_window_shapes has 2 entries but the input has 3"),
    ({"perturbations_per_eval": 0}, "perturbations_per_eval must be a positive int"),
])
def test_bad_windows_and_strides_are_clear_errors(x: torch.Tensor, kwargs, message) -> None:
    kwargs = {"sliding_window_shapes": WINDOW, **kwargs}
    for baselines in (0.0, ConstantBaseline(0.5)):
        with pytest.raises(ValueError, match=message):
            Occlusion(TinyCNN().to(x.device)).attribute(
                x, baselines=baselines, target=0, **kwargs
            )
