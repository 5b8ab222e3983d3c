"""ExaggerationBaseline: bins of the reference, 'opposite', registry entry, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from captum_cf import zoo
from captum_cf._registry import AuditContext
from captum_cf.baselines import BASELINES, ExaggerationBaseline
from captum_cf.generative.exaggeration import ExaggerationConfig, ExaggerationGenerator

TINY = ExaggerationConfig(image_size=8, base_channels=4, residual_blocks=1, critic_channels=4,
                          num_bins=5, positive_class=1, num_classes=3)


def _generator() -> ExaggerationGenerator:
    torch.manual_seed(0)
    g = ExaggerationGenerator(TINY)
    for p in g.parameters():
        nn.init.normal_(p, std=0.3)
    return g.eval()


class _Fixed(nn.Module):
    """Logits that put the positive class (1) at a chosen posterior per example."""

    def __init__(self, posteriors: torch.Tensor) -> None:
        super().__init__()
        self.p = posteriors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p[: x.shape[0]]
        return torch.stack([(1 - p) / 2, p, (1 - p) / 2], 1).log()


def test_reference_is_generator_at_requested_bin(device: torch.device) -> None:
    g = _generator().to(device)
    x = torch.rand(3, 1, 8, 8).to(device)
    clf = _Fixed(torch.tensor([0.05, 0.5, 0.97], device=device))
    with torch.no_grad():
        ref = ExaggerationBaseline(g, clf, posterior=0.0)(x)
        assert ref.device == device and torch.allclose(ref, g(x, 0))
        assert torch.allclose(ExaggerationBaseline(g, clf, posterior=1.0)(x), g(x, 4))
        assert torch.allclose(ExaggerationBaseline(g, clf, posterior=0.45)(x), g(x, 2))
    opposite = ExaggerationBaseline(g, clf, posterior="opposite")
    # 1 - p = 0.95, 0.5, 0.03 -> bins 4, 2, 0 of 5
    assert opposite.bins(x).tolist() == [4, 2, 0]
    with torch.no_grad():
        expected = g(x, torch.tensor([4, 2, 0], device=device))
    assert torch.allclose(opposite(x, target=0), expected)
    fill = opposite.fill(x, torch.ones(3, 1, 8, 8, device=device))
    assert torch.equal(fill, x)


def test_generator_state_restored(device: torch.device) -> None:
    g = _generator().train().to(device)
    buffers = [b.clone() for b in g.buffers()]
    clf = _Fixed(torch.full((2,), 0.3, device=device))
    ExaggerationBaseline(g, clf)(torch.rand(2, 1, 8, 8).to(device))
    assert g.training and all(torch.equal(a, b) for a, b in zip(buffers, g.buffers()))


def test_bad_input() -> None:
    g, clf = _generator(), _Fixed(torch.zeros(2))
    with pytest.raises(ValueError, match="posterior must be a float in"):
        ExaggerationBaseline(g, clf, posterior=1.5)
    with pytest.raises(ValueError, match="posterior must be a float in"):
        ExaggerationBaseline(g, clf, posterior="negation")
    with pytest.raises(TypeError, match="generator must be an ExaggerationGenerator"):
        ExaggerationBaseline(nn.Identity(), clf)
    with pytest.raises(TypeError, match="classifier must be callable"):
        ExaggerationBaseline(g, "digits-cnn")
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 1, 8, 8\)"):
        ExaggerationBaseline(g, clf)(torch.rand(2, 1, 16, 16))


def test_registered_for_digits_only() -> None:
    assert "exaggeration" in BASELINES
    shapes = AuditContext(model=None, data_name="shapes", train_data=None, num_classes=6,
                          image_shape=(3, 64, 64))
    assert "exaggeration" not in BASELINES.names(shapes)
    digits = AuditContext(model=zoo.load("digits-cnn"), data_name="digits", train_data=None,
                          num_classes=10, image_shape=(1, 32, 32))
    shipped = zoo.entry("digits-exaggeration").path.is_file()
    assert ("exaggeration" in BASELINES.names(digits)) == shipped
    if shipped:
        base = BASELINES.create("exaggeration", digits)
        assert isinstance(base, ExaggerationBaseline) and base.posterior == "opposite"


def test_opposite_posterior_with_a_1d_classifier_is_a_clear_error(device: torch.device) -> None:
    class OneD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))[:, 0]  # (N,): one score, not (N, K) logits

    base = ExaggerationBaseline(_generator().to(device), OneD().to(device), posterior="opposite")
    with pytest.raises(ValueError, match=r"classifier must return \(N, classes\) logits"):
        base.reference(torch.rand(2, 1, 8, 8).to(device))


def test_opposite_posterior_with_too_few_classes_is_a_clear_error(device: torch.device) -> None:
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 1)).to(device)
    base = ExaggerationBaseline(_generator().to(device), clf, posterior="opposite")
    with pytest.raises(ValueError, match="classifier returns 1 classes but the generator"):
        base.reference(torch.rand(2, 1, 8, 8).to(device))


def test_float64_inputs_follow_the_dtype_rule(device: torch.device) -> None:
    """The classifier sees the inputs as they are (same dtype required); the generator is a tool
    that runs in its own dtype."""
    g, x = _generator().to(device), torch.rand(2, 1, 8, 8).to(device)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    message = r"torch.float64 but ExaggerationBaseline.classifier computes in torch.float32"
    with pytest.raises(TypeError, match=message):
        ExaggerationBaseline(g, clf, posterior="opposite").reference(x.double())
    ref64 = ExaggerationBaseline(g, clf.double(), posterior=0.0).reference(x.double())
    ref32 = ExaggerationBaseline(g, clf.float(), posterior=0.0).reference(x)
    assert ref64.dtype == torch.float64 and ref64.device == device
    torch.testing.assert_close(ref64.float(), ref32)
