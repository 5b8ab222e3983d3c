"""ProgressiveExaggeration: series, desired/achieved posteriors, target rules, clean models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from captum_cf import zoo
from captum_cf.attr.progressive_exaggeration import ExaggerationSeries, ProgressiveExaggeration
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator

TINY = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1, critic_channels=4,
                          num_bins=5, positive_class=1, num_classes=3)


def _generator() -> ExaggerationGenerator:
    torch.manual_seed(0)
    g = ExaggerationGenerator(TINY)
    for p in g.parameters():  # leave the identity start: make the bins matter
        nn.init.normal_(p, std=0.3)
    return g.eval()


def _classifier() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def test_explain_series_desired_and_achieved(device, on_device) -> None:
    g, clf = _generator().to(device), _classifier().to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    out = ProgressiveExaggeration(clf, g).explain(x, target=1, n_steps=3)
    assert isinstance(out, ExaggerationSeries)
    assert out.series.shape == (2, 3, 1, 8, 8) and out.achieved.shape == (2, 3)
    assert on_device(out.series, out.desired, out.achieved)
    assert out.bins.tolist() == [0, 2, 4]
    assert torch.allclose(out.desired.cpu(), torch.tensor([0.1, 0.5, 0.9]))
    with torch.no_grad():
        for s, b in enumerate([0, 2, 4]):
            assert torch.allclose(out.series[:, s], g(x, b), atol=1e-6)
            assert torch.allclose(out.achieved[:, s], torch.softmax(clf(g(x, b)), 1)[:, 1],
                                  atol=1e-6)


def test_attribute_is_change_between_ends(device, on_device) -> None:
    g, clf = _generator().to(device), _classifier().to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    pe = ProgressiveExaggeration(clf, g)
    attr = pe.attribute(x, target=torch.tensor([1, 1, 1], device=device))
    assert attr.shape == x.shape and on_device(attr)
    series = pe.explain(x, target=None, n_steps=5).series
    assert torch.allclose(attr, series[:, -1] - series[:, 0], atol=1e-6)


def test_models_untouched_also_after_errors(device) -> None:
    g, clf = _generator().to(device), _classifier().to(device).train()
    g.train()
    clf[1].bias.requires_grad_(False)
    x = torch.rand(2, 1, 8, 8).to(device)
    before = [p.clone() for p in list(g.parameters()) + list(clf.parameters())]
    buffers = [b.clone() for b in g.buffers()]
    pe = ProgressiveExaggeration(clf, g)
    pe.explain(x, target=1)
    with pytest.raises(ValueError):
        pe.attribute(x, target=2)
    assert g.training and clf.training
    assert clf[1].weight.requires_grad and not clf[1].bias.requires_grad
    after = list(g.parameters()) + list(clf.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.equal(a, b) for a, b in zip(buffers, g.buffers()))  # BN stats unchanged
    assert not x.requires_grad


def test_bad_input() -> None:
    pe = ProgressiveExaggeration(_classifier(), _generator())
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="walks the posterior of class 1; target must be 1"):
        pe.attribute(x, target=0)
    with pytest.raises(ValueError, match="target must be 1"):
        pe.explain(x, target=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"target must be 1 or None, got \[2\]"):
        pe.explain(x, target=[1, 2])  # a list of class indices, as Captum's targets
    torch.testing.assert_close(pe.attribute(x, target=[1] * len(x)), pe.attribute(x, target=1))
    with pytest.raises(TypeError, match="target"):
        pe.attribute(x, target=1.0)
    with pytest.raises(ValueError, match="n_steps must be >= 2"):
        pe.explain(x, target=1, n_steps=1)
    with pytest.raises(TypeError, match="n_steps"):
        pe.explain(x, target=1, n_steps=2.0)
    with pytest.raises(ValueError, match="inputs"):
        pe.attribute(x * 2 + 1, target=1)
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 1, 8, 8\)"):
        pe.attribute(torch.rand(2, 1, 16, 16), target=1)
    with pytest.raises(TypeError, match="generator"):
        ProgressiveExaggeration(_classifier(), nn.Identity())


@pytest.mark.skipif(not zoo.entry("digits-exaggeration").path.is_file(),
                    reason="digits-exaggeration weights not shipped")
def test_shipped_series_monotone_for_most_test_images(device, on_device) -> None:
    from captum_cf.datasets import load_digits

    x, _ = load_digits("test").tensors
    pe = ProgressiveExaggeration(zoo.load("digits-cnn").to(device),
                                 zoo.load("digits-exaggeration").to(device))
    out = pe.explain(x[:100].to(device), target=8, n_steps=10)
    assert on_device(out.series, out.achieved)
    monotone = (out.achieved.diff(dim=1) >= -0.02).all(dim=1).float().mean()
    assert monotone >= MONOTONE_SHARE - 0.1, float(monotone)
    # the ends of the walk sit on both sides of the decision for most images
    assert float((out.achieved[:, 0] < 0.5).float().mean()) >= 0.9
    assert float((out.achieved[:, -1] > 0.5).float().mean()) >= 0.8


#: share of monotone series on the first 100 test images, measured on the shipped weights (0.97)
MONOTONE_SHARE = 0.97


def test_1d_classifier_output_is_a_clear_error() -> None:
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0))  # (N,) scores
    with pytest.raises(ValueError, match=r"forward_func must return \(N, classes\) logits"):
        ProgressiveExaggeration(clf, _generator()).explain(torch.rand(2, 1, 8, 8), n_steps=2)


def test_classifier_without_the_positive_class_is_a_clear_error() -> None:
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    with pytest.raises(ValueError, match="forward_func returns 1 classes but the generator"):
        ProgressiveExaggeration(clf, _generator()).explain(torch.rand(2, 1, 8, 8), n_steps=2)


def test_float64_follows_the_dtype_rule(device, on_device) -> None:
    g, x = _generator().to(device), torch.rand(2, 1, 8, 8).to(device)
    with pytest.raises(TypeError, match=r"inputs has dtype torch.float64 but forward_func "
                                        r"computes in torch.float32"):
        ProgressiveExaggeration(_classifier(), g).attribute(x.double(), target=1)
    # a float64 classifier: the generator runs in its own dtype, the series follows the inputs
    clf64 = _classifier().to(device).double()
    out64 = ProgressiveExaggeration(clf64, g).explain(x.double(), target=1, n_steps=3)
    out32 = ProgressiveExaggeration(clf64.float(), g).explain(x, target=1, n_steps=3)
    assert out64.series.dtype == torch.float64 and on_device(out64.series, out32.series)
    torch.testing.assert_close(out64.series.float(), out32.series)
