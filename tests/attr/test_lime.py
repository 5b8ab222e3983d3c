"""captum_cf.attr.Lime: Captum's numbers under a seed; LIME-G fills each chunk once."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr._core.lime import get_exp_kernel_similarity_function
from perturbation_helpers import (
    MASK,
    CountingConstant,
    LeftHalfLinear,
    MeanFill,
    Recorder,
    model_state,
    same_state,
)

from captum_cf.attr import Lime, NoiseTunnel
from captum_cf.baselines import ConstantBaseline


@pytest.fixture
def x(device: torch.device) -> torch.Tensor:
    """Drawn on the CPU (the seeded global generator), then moved: the same numbers everywhere."""
    return torch.rand(2, 3, 8, 8).to(device)


@pytest.mark.parametrize("ppe", [1, 2, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_baseline_equals_captum_scalar_under_a_seed(x, ppe, value, on_device):
    model = LeftHalfLinear().to(x.device)
    kw = dict(target=1, feature_mask=MASK.to(x.device), n_samples=12, perturbations_per_eval=ppe)
    torch.manual_seed(4)
    expected = captum.attr.Lime(model).attribute(x, baselines=value, **kw)
    torch.manual_seed(4)
    got = Lime(model).attribute(x, baselines=ConstantBaseline(value), **kw)
    assert torch.equal(got, expected) and on_device(got)
    assert expected.abs().sum() > 0


def test_tensor_baselines_and_interpretable_output_pass_straight_to_captum(x):
    model = LeftHalfLinear().to(x.device)
    for baselines in (None, 0.5, torch.rand(2, 3, 8, 8).to(x.device)):
        kw = dict(
            baselines=baselines, target=0, feature_mask=MASK.to(x.device),
            n_samples=10, return_input_shape=False
        )
        torch.manual_seed(1)
        expected = captum.attr.Lime(model).attribute(x, **kw)
        torch.manual_seed(1)
        assert torch.equal(Lime(model).attribute(x, **kw), expected)


def test_similarity_and_model_see_the_filled_samples(device, on_device):
    x = torch.rand(1, 3, 8, 8).to(device)
    seen_by_similarity = []
    kernel = get_exp_kernel_similarity_function()

    def similarity(original, perturbed, interp, **kwargs):
        seen_by_similarity.append(perturbed.clone())
        return kernel(original, perturbed, interp, **kwargs)

    model, fill = Recorder(LeftHalfLinear().to(x.device)), MeanFill()
    Lime(model, similarity_func=similarity).attribute(
        x, baselines=fill, target=0, feature_mask=MASK.to(x.device),
        n_samples=9, perturbations_per_eval=4
    )
    fed = torch.cat(model.batches)
    assert torch.equal(torch.cat(seen_by_similarity), fed) and on_device(fed)
    keeps = torch.cat([keep for _, keep, _ in fill.calls])
    kept = keeps == 1
    assert torch.equal(fed[kept], x.expand_as(fed)[kept])
    assert float(fed.min()) >= 0 and float(fed.max()) <= 1


def test_one_fill_call_per_chunk_and_per_example(x):
    fill = CountingConstant(0.5)
    Lime(LeftHalfLinear().to(x.device)).attribute(
        x, baselines=fill, target=0, feature_mask=MASK.to(x.device),
        n_samples=10, perturbations_per_eval=4
    )
    assert fill.batch_sizes == [4, 4, 2, 4, 4, 2]  # one interpretable model per example


def test_model_that_ignores_right_half_gets_zero_there(x, on_device):
    lime = Lime(LeftHalfLinear().to(x.device), interpretable_model=SkLearnLinearRegression())
    attr = lime.attribute(
        x,
        baselines=ConstantBaseline(0.5),
        target=0,
        feature_mask=MASK.to(x.device),
        n_samples=40,
        perturbations_per_eval=8,
    )
    assert attr[..., 4:].abs().max() < 1e-4
    assert attr[..., :4].abs().min() > 1e-2 and on_device(attr)


def test_target_per_example_reaches_the_fill(x):
    fill = MeanFill()
    Lime(LeftHalfLinear().to(x.device)).attribute(
        x, baselines=fill, target=[1, 0], feature_mask=MASK.to(x.device),
        n_samples=4, perturbations_per_eval=4
    )
    assert [t.tolist() for _, _, t in fill.calls] == [[1, 1, 1, 1], [0, 0, 0, 0]]


def test_noise_tunnel_equals_captum(x, on_device):
    model = LeftHalfLinear().to(x.device)
    kw = dict(
        nt_samples=2,
        stdevs=0.05,
        target=0,
        feature_mask=MASK.to(x.device),
        n_samples=6,
        perturbations_per_eval=3,
    )
    torch.manual_seed(2)
    expected = captum.attr.NoiseTunnel(captum.attr.Lime(model)).attribute(x, baselines=0.2, **kw)
    torch.manual_seed(2)
    got = NoiseTunnel(Lime(model)).attribute(x, baselines=ConstantBaseline(0.2), **kw)
    assert torch.equal(got, expected) and on_device(got)


def test_user_object_unchanged_and_bad_input(x):
    model = LeftHalfLinear().to(x.device).train()
    lime = Lime(model)
    before, perturb = model_state(model), lime.perturb_func
    lime.attribute(x[:1], baselines=MeanFill(), target=0, feature_mask=MASK.to(x.device),
        n_samples=4)
    assert same_state(before, model_state(model)) and lime.perturb_func is perturb
    with pytest.raises(ValueError, match="baselines has 1 entry but inputs has 2"):
        lime.attribute((x, x), baselines=(MeanFill(),), target=0)


def test_lime_g_samples_are_inpainted_finite_and_in_unit_range(device, on_device):
    from captum_cf.baselines import InpaintBaseline
    from captum_cf.inpainters import PushPullInpainter

    x = torch.rand(1, 3, 8, 8).to(device)
    model = Recorder(LeftHalfLinear().to(x.device))
    Lime(model).attribute(
        x,
        baselines=InpaintBaseline(PushPullInpainter()),
        target=0,
        feature_mask=MASK.to(x.device),
        n_samples=8,
        perturbations_per_eval=8,
    )
    (fed,) = model.batches
    assert on_device(fed)
    assert bool(torch.isfinite(fed).all()) and float(fed.min()) >= 0 and float(fed.max()) <= 1
    # removed superpixels are not one constant: inpainted content varies with the context
    removed = (fed != x).any(1, keepdim=True).expand_as(fed)
    assert fed[removed].unique().numel() > 10


def test_show_progress(capsys, device):
    Lime(LeftHalfLinear().to(device)).attribute(
        torch.rand(1, 3, 8, 8).to(device), baselines=MeanFill(), target=0,
        feature_mask=MASK.to(device), n_samples=6,
        perturbations_per_eval=3, show_progress=True,
    )  # fmt: skip
    assert "Lime attribution" in capsys.readouterr().err


@pytest.mark.parametrize("rows", [3])  # N + 1 rows for N = 2
def test_feature_mask_of_wrong_rows_is_a_clear_error(rows: int) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8)
    mask = torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8).expand(rows, 1, 8, 8)
    for baselines in (ConstantBaseline(0.5), 0.0):
        with pytest.raises(ValueError, match=r"feature_mask has shape \(3, 1, 8, 8\)"):
            Lime(model).attribute(x, baselines=baselines, target=0, feature_mask=mask,
                                  n_samples=4)


def test_feature_mask_must_hold_integer_ids() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(TypeError, match="feature_mask must hold integer feature ids"):
        Lime(model).attribute(x, baselines=ConstantBaseline(0.5), target=0,
                              feature_mask=torch.zeros(1, 1, 8, 8), n_samples=4)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples must be a positive int"),
    ({"perturbations_per_eval": 0}, "perturbations_per_eval must be a positive int"),
])
def test_bad_sampling_settings_are_clear_errors(kwargs, message) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 1, 8, 8)
    mask = torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8)
    for baselines in (ConstantBaseline(0.5), 0.0):
        with pytest.raises(ValueError, match=message):
            Lime(model).attribute(x, baselines=baselines, target=0, feature_mask=mask,
                                  **{"n_samples": 4, **kwargs})
