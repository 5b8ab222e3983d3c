"""captum_cf methods and Baselines inside Quantus 0.6 metrics (numpy round trips)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from captum_cf.attr import IntegratedGradients
from captum_cf.baselines import ConstantBaseline, InpaintBaseline
from captum_cf.inpainters import PushPullInpainter
from captum_cf.integrations import quantus as cfq

quantus = pytest.importorskip("quantus")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _model(channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 64, 4)
    ).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 8, 8, generator=g)
    return x.numpy(), np.array([0, 1, 2, 3])


def test_explain_func_is_captum_cf_attribute_as_numpy(device):
    model, (x, y) = _model().to(device), _data()
    f = cfq.explain_func("IntegratedGradients", ConstantBaseline(0.25), n_steps=6)
    got = f(model=model, inputs=x, targets=y)
    expected = IntegratedGradients(model).attribute(
        torch.from_numpy(x).to(device), baselines=0.25, target=torch.from_numpy(y).to(device),
        n_steps=6,
    )
    assert expected.device == device  # the explain function ran where the model lies
    assert isinstance(got, np.ndarray) and np.array_equal(got, expected.cpu().numpy())


@pytest.mark.parametrize("channels", [1, 3])
def test_explain_func_equals_quantus_own_captum_integrated_gradients(channels, device):
    # quantus.explain sums over the channels (reduce_axes=[1], keepdims): RGB maps too
    model, (x, y) = _model(channels).to(device), _data()
    x = np.repeat(x, channels, axis=1) * np.linspace(0.5, 1, channels, dtype=np.float32)[:, None,
                                                                                         None]
    theirs = quantus.explain(model, x, y, method="IntegratedGradients", device=str(device))
    ig_kwargs = {"n_steps": 10, "method": "riemann_trapezoid"}
    ours = cfq.explain_func("IntegratedGradients", 0.0, attribute_kwargs=ig_kwargs)(model, x, y)
    assert ours.shape == theirs.shape == (4, 1, 8, 8)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    # reduce_axes=() keeps the channels, as quantus.explain's
    full = cfq.explain_func("IntegratedGradients", 0.0, attribute_kwargs=ig_kwargs)(
        model, x, y, reduce_axes=())
    kept = quantus.explain(model, x, y, method="IntegratedGradients", device=str(device),
                           reduce_axes=())
    assert full.shape == kept.shape == (4, channels, 8, 8)
    np.testing.assert_allclose(full, kept, rtol=0, atol=1e-6)


def test_pixel_flipping_with_constant_perturb_func_equals_quantus_baseline_replacement(device):
    model, (x, y) = _model().to(device), _data()
    a = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    common = dict(features_in_step=8, normalise=False, abs=False, disable_warnings=True)
    theirs = quantus.PixelFlipping(perturb_baseline=0.3, **common)(
        model=model, x_batch=x, y_batch=y, a_batch=a, device=str(device), softmax=False
    )
    perturb = cfq.perturb_func(ConstantBaseline(0.3), device=device)  # the fill runs on device
    ours = quantus.PixelFlipping(perturb_func=perturb, **common)(
        model=model, x_batch=x, y_batch=y, a_batch=a, device=str(device), softmax=False
    )
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_pixel_flipping_with_inpainting_follows_the_fills(device):
    """Each step fills its features from the partly filled input: computed by hand here."""
    model, (x, y) = _model().to(device), _data()
    a = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    base = InpaintBaseline(PushPullInpainter())
    metric = quantus.PixelFlipping(
        features_in_step=16, normalise=False, abs=False, disable_warnings=True,
        perturb_func=cfq.perturb_func(base, input_shape=(1, 8, 8), device=device),
    )
    ours = np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device=str(device),
                             softmax=False))
    order = np.argsort(-a.reshape(4, -1), axis=1)
    current, expected = torch.from_numpy(x).to(device), []
    for step in range(4):
        keep = torch.ones(4, 64)
        keep[torch.arange(4)[:, None], torch.from_numpy(order[:, step * 16:(step + 1) * 16])] = 0
        current = base.fill(current, keep.view(4, 1, 8, 8).to(device))
        assert current.device == device
        with torch.no_grad():
            expected.append(model(current)[torch.arange(4), torch.from_numpy(y)].cpu().numpy())
    np.testing.assert_allclose(ours, np.stack(expected, 1), rtol=0, atol=1e-6)
    # an image baseline without the example shape says what to pass
    with pytest.raises(ValueError, match=r"works on images of shape \(N, C, H, W\)"):
        cfq.perturb_func(base)(arr=x.reshape(4, -1), indices=order[:, :4])


def test_faithfulness_correlation_with_constant_perturb_func_equals_quantus(device):
    model, (x, y) = _model().to(device), _data()
    explain = cfq.explain_func("IntegratedGradients", ConstantBaseline(0.0), n_steps=5)
    common = dict(nr_runs=5, subset_size=8, normalise=False, abs=False, disable_warnings=True,
                  return_aggregate=False)
    np.random.seed(3)
    theirs = quantus.FaithfulnessCorrelation(perturb_baseline=0.0, **common)(
        model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain, device=str(device),
        softmax=False,
    )
    np.random.seed(3)
    ours = quantus.FaithfulnessCorrelation(
        perturb_func=cfq.perturb_func(ConstantBaseline(0.0)), **common
    )(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain, device=str(device),
      softmax=False)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert np.all(np.isfinite(ours))


def test_max_sensitivity_with_a_pixel_space_baseline_clamps_the_noisy_copies(device):
    """MaxSensitivity explains copies with noise outside [0, 1]: the inpainter sees them clamped,
    the attribution explains the noisy copy itself."""
    model, (x, y) = _model().to(device), _data()
    base = InpaintBaseline(PushPullInpainter())
    explain = cfq.explain_func("IntegratedGradients", base, n_steps=4)
    noisy = torch.from_numpy(x) + 0.3 * torch.randn(4, 1, 8, 8)
    assert float(noisy.min()) < 0 and float(noisy.max()) > 1
    got = explain(model, noisy.numpy(), np.zeros(4, dtype=np.int64))
    noisy = noisy.to(device)
    with pytest.raises(ValueError, match="works in pixel space"):
        IntegratedGradients(model).attribute(noisy, baselines=base, target=0, n_steps=4)
    expected = IntegratedGradients(model).attribute(
        noisy, baselines=base(noisy.clamp(0, 1)), target=0, n_steps=4
    )
    assert expected.device == device
    assert np.array_equal(got, expected.cpu().numpy())

    metric = quantus.MaxSensitivity(nr_samples=3, lower_bound=0.3, normalise=False, abs=False,
                                    disable_warnings=True, return_aggregate=False)
    np.random.seed(0)
    scores = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain,
                    device=str(device), softmax=False)
    # the same metric with the references handed over as tensors of the clamped copies
    def by_hand(model, inputs, targets, **kw):
        t = torch.from_numpy(inputs).to(device)
        return IntegratedGradients(model).attribute(
            t, baselines=base(t.clamp(0, 1)), target=torch.from_numpy(targets).to(device),
            n_steps=4,
        ).cpu().numpy()

    np.random.seed(0)
    expected = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=by_hand,
                      device=str(device), softmax=False)
    assert np.array_equal(np.asarray(scores), np.asarray(expected))
    assert np.all(np.isfinite(scores))


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must name a class of captum_cf.attr"):
        cfq.explain_func("IntegratedGradient")
    with pytest.raises(TypeError, match="pass an instance"):
        cfq.explain_func("DeepLift", ConstantBaseline)
    with pytest.raises(TypeError, match="baseline must be a captum_cf Baseline"):
        cfq.perturb_func(0.0)
    with pytest.raises(ValueError, match="input_shape must be"):
        cfq.perturb_func(ConstantBaseline(0.0), input_shape=(0, 8))
    with pytest.raises(ValueError, match=r"input_shape \(1, 4, 4\) does not hold the 64"):
        cfq.perturb_func(ConstantBaseline(0.0), input_shape=(1, 4, 4))(
            arr=np.zeros((2, 64), np.float32), indices=np.zeros((2, 1), np.int64))
