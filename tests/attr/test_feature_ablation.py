"""captum_cf.attr.FeatureAblation: Captum's numbers for constants, fills only the ablated groups."""

from __future__ import annotations

import captum.attr
import pytest
import torch
from perturbation_helpers import (
    MASK,
    CountingConstant,
    LeftHalfLinear,
    MeanFill,
    Recorder,
    TinyCNN,
    model_state,
    same_state,
)

from captum_cf.attr import FeatureAblation, NoiseTunnel, superpixels
from captum_cf.baselines import ConstantBaseline

# 8 groups: 4 x 2 blocks of 2 rows x 4 columns


@pytest.fixture
def x(device: torch.device) -> torch.Tensor:
    """Drawn on the CPU (the seeded global generator), then moved: the same numbers everywhere."""
    return torch.rand(2, 3, 8, 8).to(device)


@pytest.mark.parametrize("ppe", [1, 2, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_baseline_equals_captum_scalar(x, ppe, value, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(target=2, feature_mask=MASK.to(x.device), perturbations_per_eval=ppe)
    expected = captum.attr.FeatureAblation(model).attribute(x, baselines=value, **kw)
    got = FeatureAblation(model).attribute(x, baselines=ConstantBaseline(value), **kw)
    assert torch.equal(got, expected) and on_device(got)
    assert expected.abs().sum() > 0


def test_per_pixel_features_without_mask_equal_captum(device, on_device):
    model = TinyCNN().to(device)
    x = torch.rand(1, 3, 4, 4).to(device)
    kw = dict(target=0, perturbations_per_eval=5)
    expected = captum.attr.FeatureAblation(model).attribute(x, baselines=0.5, **kw)
    got = FeatureAblation(model).attribute(x, baselines=ConstantBaseline(0.5), **kw)
    assert torch.equal(got, expected) and on_device(got)


def test_tensor_baselines_pass_straight_to_captum(x):
    model = TinyCNN().to(x.device)
    for baselines in (None, 0.7, torch.rand(2, 3, 8, 8).to(x.device)):
        kw = dict(baselines=baselines, target=[1, 0], feature_mask=MASK.to(x.device),
            perturbations_per_eval=3)
        expected = captum.attr.FeatureAblation(model).attribute(x, **kw)
        assert torch.equal(FeatureAblation(model).attribute(x, **kw), expected)


def test_per_image_superpixel_masks_fill_only_the_ablated_superpixel(x, on_device):
    masks = superpixels(x, n_segments=6, sigma=0.5)
    assert on_device(masks)
    model, fill = Recorder(TinyCNN().to(x.device)), MeanFill()
    FeatureAblation(model).attribute(
        x, baselines=fill, target=0, feature_mask=masks, perturbations_per_eval=2
    )
    keeps = torch.cat([keep for _, keep, _ in fill.calls])  # (rows, 3, 8, 8)
    assert on_device(keeps, [inputs for inputs, _, _ in fill.calls])
    features = int(masks.max()) + 1
    expected_keep = torch.cat([(masks != f) for f in range(features)]).to(keeps.dtype)
    assert torch.equal(keeps, expected_keep.expand_as(keeps))
    seen = torch.cat(model.batches[1:])
    kept = keeps.expand_as(seen) == 1
    assert torch.equal(seen[kept], x.repeat(features, 1, 1, 1)[kept])


def test_one_fill_call_per_chunk(x):
    fill = CountingConstant(0.5)
    FeatureAblation(TinyCNN().to(x.device)).attribute(
        x, baselines=fill, target=0, feature_mask=MASK.to(x.device), perturbations_per_eval=3
    )
    assert fill.batch_sizes == [6, 6, 4]  # 8 groups in chunks of 3, 2 images each


def test_model_that_ignores_right_half_gets_zero_there(x, on_device):
    attr = FeatureAblation(LeftHalfLinear().to(x.device)).attribute(
        x, baselines=MeanFill(), target=0, feature_mask=MASK.to(x.device), perturbations_per_eval=4
    )
    assert attr[..., 4:].abs().max() < 1e-5
    assert attr[..., :4].abs().min() > 1e-3 and on_device(attr)


def test_multiple_inputs_with_cross_tensor_features(device, on_device):
    class Two(torch.nn.Module):
        def forward(self, img, vec):
            return torch.stack([img.sum((1, 2, 3)) * vec[:, 0], vec.sum(1)], 1)

    img, vec = torch.rand(3, 1, 4, 4).to(device), torch.rand(3, 2).to(device)
    masks = (torch.arange(16).view(1, 1, 4, 4).to(device) // 8,
             torch.tensor([[1, 2]], device=device))
    kw = dict(target=0, feature_mask=masks, perturbations_per_eval=2)
    expected = captum.attr.FeatureAblation(Two()).attribute((img, vec), baselines=(0.2, 1.0), **kw)
    got = FeatureAblation(Two()).attribute((img, vec), baselines=(ConstantBaseline(0.2), 1.0), **kw)
    assert all(torch.equal(g, e) for g, e in zip(got, expected)) and on_device(got)


def test_noise_tunnel_equals_captum(x, on_device):
    model = TinyCNN().to(x.device)
    kw = dict(nt_samples=2, stdevs=0.05, target=1, feature_mask=MASK.to(x.device),
        perturbations_per_eval=4)
    torch.manual_seed(5)
    expected = captum.attr.NoiseTunnel(captum.attr.FeatureAblation(model)).attribute(
        x, baselines=0.5, **kw
    )
    torch.manual_seed(5)
    got = NoiseTunnel(FeatureAblation(model)).attribute(x, baselines=ConstantBaseline(0.5), **kw)
    assert torch.equal(got, expected) and on_device(got)


def test_model_state_unchanged_and_inputs_not_modified(x):
    model = TinyCNN().to(x.device).train()
    before, x0 = model_state(model), x.clone()
    FeatureAblation(model).attribute(x, baselines=MeanFill(), target=0,
        feature_mask=MASK.to(x.device))
    assert same_state(before, model_state(model))
    assert torch.equal(x, x0)


def test_bad_inputs(x):
    with pytest.raises(ValueError, match=r"inputs\[1\] has shape \(3, 5\)"):
        FeatureAblation(TinyCNN().to(x.device)).attribute(
            (x, torch.rand(3, 5).to(x.device)), baselines=(MeanFill(), MeanFill())
        )
    with pytest.raises(TypeError, match="inputs must be a floating-point tensor"):
        FeatureAblation(TinyCNN().to(x.device)).attribute(
            torch.ones(2, 3, 8, 8, dtype=torch.long, device=x.device), baselines=MeanFill()
        )


def test_a_batch_that_is_not_copies_of_the_inputs_is_refused(x):
    """Guards against a future Captum that lays out perturbations differently."""
    from captum_cf.attr._perturbation import _FillingForward, _plan

    plan = _plan(x, MeanFill(), 0)
    forward = _FillingForward(TinyCNN().to(x.device), plan)
    swapped = torch.cat([x.flip(0), x]).masked_fill(
        MASK.to(x.device).bool().logical_not().expand(4, 3, 8, 8), plan.sentinel
    )
    with pytest.raises(RuntimeError, match="not a stack of copies"):
        forward(swapped)


@pytest.mark.parametrize("name", ["occlusion", "feature-ablation", "lime"])
def test_registered_methods_explain_images(name, device, on_device):
    from captum_cf._registry import AuditContext
    from captum_cf.attr import METHODS

    model = LeftHalfLinear(size=16).to(device)
    ctx = AuditContext(
        model=model, data_name="test", train_data=None, num_classes=2, image_shape=(3, 16, 16)
    )
    x = torch.rand(2, 3, 16, 16).to(device)
    attr = METHODS.create(name, ctx)(x, torch.tensor([0, 1], device=device), MeanFill())
    assert attr.shape == x.shape and on_device(attr)
    assert attr.abs().sum() > 0
    if name == "occlusion":  # windows (2 x 2, stride 1) right of column 8 see only ignored pixels
        assert attr[..., 9:].abs().max() < 1e-4 < attr[..., :8].abs().min()
