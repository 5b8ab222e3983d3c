"""Every registered baseline builds from an AuditContext and honours the Baseline contract."""

from __future__ import annotations

import pytest
import torch

from captum_cf._registry import AuditContext
from captum_cf.baselines import BASELINES, Baseline, BlurBaseline
from captum_cf.baselines._builtin import blur_sigma


def _ctx(shape=(3, 32, 32), device: torch.device | str = "cpu") -> AuditContext:
    return AuditContext(
        model=torch.nn.Identity(), data_name="shapes", train_data=None, num_classes=2,
        image_shape=shape, device=torch.device(device),
    )


def test_builtin_names_are_registered():
    for name in ("zero", "blur", "noise", "inpaint-pushpull"):
        assert name in BASELINES and BASELINES.describe(name)


@pytest.mark.parametrize("name", ["zero", "blur", "noise", "inpaint-pushpull"])
def test_registered_baseline_contract(name, device):
    ctx = _ctx(device=device)
    baseline = BASELINES.create(name, ctx)
    assert isinstance(baseline, Baseline)
    x = torch.rand(2, *ctx.image_shape).to(device)
    ref = baseline.reference(x)
    assert ref.shape == x.shape and ref.dtype == x.dtype and ref.device == device
    assert torch.isfinite(ref).all() and float(ref.min()) >= 0 and float(ref.max()) <= 1
    assert not torch.equal(ref, x)  # it removes something
    assert torch.equal(baseline.reference(x), ref)  # deterministic
    keep = (torch.rand(2, 1, *ctx.image_shape[1:]) > 0.5).float().to(device)
    out = baseline.fill(x, keep)
    k = keep.expand_as(x).bool()
    assert torch.equal(out[k], x[k])


def test_blur_sigma_scales_with_image_size():
    assert blur_sigma((1, 32, 32)) == pytest.approx(3.2)
    assert blur_sigma((3, 64, 48)) == pytest.approx(4.8)
    assert blur_sigma((1, 8, 8)) == 1.0
    b = BASELINES.create("blur", _ctx((1, 64, 64)))
    assert isinstance(b, BlurBaseline) and b.sigma == pytest.approx(6.4)
