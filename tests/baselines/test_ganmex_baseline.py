"""GANMEXBaseline: classes (fixed, per example, runner-up), errors, state, use in attributions."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import captum_cf.attr
from captum_cf.baselines import GANMEXBaseline
from captum_cf.generative import GANMEXConfig, GANMEXGenerator

TINY = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                    num_residual=1, critic_channels=4, critic_layers=2)


def _generator() -> GANMEXGenerator:
    torch.manual_seed(0)
    g = GANMEXGenerator(TINY)
    nn.init.normal_(g.head.weight, std=0.5)  # not the identity, so classes matter
    return g


class _Fixed(nn.Module):
    """Logits given per example row, independent of pixels (for runner-up tests)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]] * self.scale + 0 * x.sum((1, 2, 3))[:, None]


def test_reference_is_generator_output_for_fixed_and_per_example_classes(device):
    g = _generator().to(device)
    x = torch.rand(4, 1, 8, 8).to(device)
    with torch.no_grad():
        expected = g(x, 2)
        per_example = g(x, torch.tensor([0, 1, 2, 0], device=device))
    ref = GANMEXBaseline(g, 2)(x)
    assert ref.device == device
    torch.testing.assert_close(ref, expected)
    torch.testing.assert_close(GANMEXBaseline(g, torch.tensor([0, 1, 2, 0]))(x), per_example)
    torch.testing.assert_close(GANMEXBaseline(g, 2, batch_size=3)(x), expected)


def test_runner_up_is_second_class_or_best_other_than_target(device):
    logits = torch.tensor([[5.0, 3.0, 1.0], [0.0, 1.0, 2.0]], device=device)
    clf = _Fixed(logits).to(device)
    base = GANMEXBaseline(_generator().to(device), "runner-up", classifier=clf)
    x = torch.rand(2, 1, 8, 8).to(device)
    assert base.classes(x).tolist() == [1, 1]  # second most likely
    target = torch.tensor([1, 0], device=device)
    assert base.classes(x, target=target).tolist() == [0, 2]  # best other than target
    with torch.no_grad():
        expected = base.generator(x, torch.tensor([0, 2], device=device))
    ref = base(x, target)
    assert ref.device == device
    torch.testing.assert_close(ref, expected)


def test_generator_and_classifier_state_untouched(device):
    g = _generator().train().to(device)
    clf = _Fixed(torch.tensor([[5.0, 3.0, 1.0]], device=device)).train().to(device)
    GANMEXBaseline(g, "runner-up", classifier=clf)(torch.rand(1, 1, 8, 8).to(device))
    assert g.training and clf.training
    assert all(p.requires_grad for p in g.parameters()) and clf.scale.requires_grad


def test_bad_input_raises_clear_errors():
    g = _generator()
    with pytest.raises(ValueError, match=r"counterfactual_class must be class indices in \[0, 3\)"):
        GANMEXBaseline(g, 3)
    with pytest.raises(ValueError, match="needs the classifier"):
        GANMEXBaseline(g, "runner-up")
    with pytest.raises(ValueError, match="or 'runner-up'"):
        GANMEXBaseline(g, "second")
    with pytest.raises(TypeError, match="GANMEXGenerator"):
        GANMEXBaseline("generator", 1)
    with pytest.raises(ValueError, match="num_classes is required"):
        GANMEXBaseline(lambda x, c: x, 1)
    with pytest.raises(ValueError, match=r"generator must return a tensor shaped like its inputs"):
        GANMEXBaseline(lambda x, c: x[:, :1], 1, num_classes=3)(torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"works in pixel space"):
        GANMEXBaseline(g, 1)(torch.rand(2, 1, 8, 8) + 1)
    with pytest.raises(ValueError, match=r"built for \(1, 8, 8\)"):
        GANMEXBaseline(g, 1)(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="equals target for examples \\[1\\]"):
        GANMEXBaseline(g, 1)(torch.rand(2, 1, 8, 8), target=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one entry per example"):
        GANMEXBaseline(g, torch.tensor([0, 1, 2]))(torch.rand(2, 1, 8, 8))


def test_integrated_gradients_completeness_with_ganmex_baseline(device):
    from captum.attr import IntegratedGradients

    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).double().to(device)
    base = GANMEXBaseline(_generator().to(device), 2)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64).to(device)
    ref = base(x)
    attr, delta = IntegratedGradients(model).attribute(
        x, baselines=ref, target=0, return_convergence_delta=True
    )
    expected = model(x)[:, 0] - model(ref)[:, 0]
    torch.testing.assert_close(attr.sum((1, 2, 3)), expected.detach())


def test_works_as_baselines_of_captum_cf_attr_methods(device):
    if not hasattr(captum_cf.attr, "IntegratedGradients"):
        pytest.skip("captum_cf.attr.IntegratedGradients has not landed in this branch")
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    base = GANMEXBaseline(_generator().to(device), 2)
    x = torch.rand(2, 1, 8, 8).to(device)
    ours = captum_cf.attr.IntegratedGradients(model).attribute(x, baselines=base, target=0)
    assert ours.device == device
    from captum.attr import IntegratedGradients

    theirs = IntegratedGradients(model).attribute(x, baselines=base(x), target=0)
    torch.testing.assert_close(ours, theirs)
    if hasattr(captum_cf.attr, "Occlusion"):
        occ = captum_cf.attr.Occlusion(model).attribute(
            x, sliding_window_shapes=(1, 8, 8), baselines=base, target=0
        )
        # one window covering the whole image: the drop to the counterfactual, spread evenly
        drop = (model(x)[:, 0] - model(base(x))[:, 0]).detach()
        torch.testing.assert_close(occ.sum((1, 2, 3)), drop * 64)
