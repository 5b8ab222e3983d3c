"""deletion / insertion: hand-computed curves on a model that reads one pixel."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from captum_cf.baselines import Baseline, ConstantBaseline
from captum_cf.metrics import Curve, deletion, insertion

H = W = 8
PIXEL = (2, 5)  # the only pixel the model reads
A, B = 1 / (1 + math.exp(-5)), 1 / (1 + math.exp(5))  # p(class 0) with the pixel at 1 / at 0


class OnePixel(nn.Module):
    """logits = [10 * (x[PIXEL] - 0.5), 0]: p(class 0) = sigmoid(10 x_p - 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bn = nn.BatchNorm1d(1)  # would change its running stats if run in train mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scale * (x[:, 0, PIXEL[0], PIXEL[1]] - 0.5)
        z = z + 0 * self.bn(z[:, None])[:, 0]
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def _images(n: int = 3) -> torch.Tensor:
    x = torch.rand(n, 1, H, W) * 0.5 + 0.25
    x[:, 0, PIXEL[0], PIXEL[1]] = 1.0
    return x


def _perfect(n: int = 3) -> torch.Tensor:
    a = torch.rand(n, 1, H, W) * 0.1
    a[:, 0, PIXEL[0], PIXEL[1]] = 1.0
    return a


def _on(device: torch.device, curve: Curve) -> None:
    """Every tensor of the curve lies on ``device``."""
    assert {curve.fractions.device, curve.scores.device, curve.auc.device} == {device}


def test_perfect_attribution_has_hand_computed_deletion_curve(device) -> None:
    curve = deletion(
        OnePixel().to(device), _images().to(device), _perfect().to(device), target=0,
        baseline=ConstantBaseline(0.0), n_steps=64,
    )
    assert isinstance(curve, Curve) and curve.kind == "deletion" and not curve.higher_is_better
    _on(device, curve)
    torch.testing.assert_close(curve.fractions.cpu(), torch.arange(65) / 64)
    expected = torch.full((3, 65), B)
    expected[:, 0] = A
    torch.testing.assert_close(curve.scores.cpu(), expected)
    torch.testing.assert_close(curve.auc.cpu(), torch.full((3,), ((A + B) / 2 + 63 * B) / 64))


def test_perfect_attribution_beats_random_ones(device) -> None:
    model, x = OnePixel().to(device), _images(8).to(device)
    best = deletion(
        model, x, _perfect(8).to(device), target=0, baseline=ConstantBaseline(0.0), n_steps=16
    )
    rand = deletion(
        model, x, torch.rand(8, 1, H, W).to(device), target=0, baseline=ConstantBaseline(0.0),
        n_steps=16,
    )
    _on(device, best)
    assert bool((best.auc <= rand.auc + 1e-6).all())
    assert rand.mean_auc > best.mean_auc + 0.2  # the pixel goes on average half way through


def test_insertion_mirrors_deletion(device) -> None:
    model, x = OnePixel().to(device), _images(8).to(device)
    black = ConstantBaseline(0.0)
    best = insertion(model, x, _perfect(8).to(device), target=0, baseline=black, n_steps=64)
    assert best.kind == "insertion" and best.higher_is_better
    _on(device, best)
    expected = torch.full((8, 65), A)
    expected[:, 0] = B
    torch.testing.assert_close(best.scores.cpu(), expected)
    torch.testing.assert_close(best.auc.cpu(), torch.full((8,), ((A + B) / 2 + 63 * A) / 64))
    rand = insertion(
        model, x, torch.rand(8, 1, H, W).to(device), target=0, baseline=black, n_steps=64
    )
    assert bool((best.auc >= rand.auc - 1e-6).all()) and best.mean_auc > rand.mean_auc + 0.2


def test_ties_are_removed_in_raster_order(device) -> None:
    # constant attribution: pixel j (raster index) goes at step j + 1
    curve = deletion(
        OnePixel().to(device), _images(1).to(device), torch.zeros(1, 1, H, W, device=device), 0,
        ConstantBaseline(0.0), n_steps=64,
    )
    _on(device, curve)
    j = PIXEL[0] * W + PIXEL[1]
    assert bool((curve.scores[0, : j + 1] == curve.scores[0, 0]).all())
    torch.testing.assert_close(curve.scores[0, j + 1 :].cpu(), torch.full((64 - j,), B))


def test_channels_are_summed_and_batching_does_not_change_scores(device) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    model = model.to(device)
    x, attr = torch.rand(4, 3, H, W).to(device), torch.randn(4, 3, H, W).to(device)
    a = deletion(model, x, attr, target=[0, 1, 2, 3], n_steps=10, batch_size=3)
    b = deletion(
        model, x, attr.sum(dim=1, keepdim=True), target=[0, 1, 2, 3], n_steps=10, batch_size=1000
    )
    c = deletion(
        model, x, attr.sum(dim=1), target=torch.tensor([0, 1, 2, 3], device=device), n_steps=10
    )
    _on(device, a)
    torch.testing.assert_close(a.scores, b.scores)
    torch.testing.assert_close(a.scores, c.scores)
    # AUC is the trapezoidal mean of the curve
    torch.testing.assert_close(a.auc, torch.trapezoid(a.scores, a.fractions, dim=1))
    assert a.scores.shape == (4, 11) and bool(((a.auc >= 0) & (a.auc <= 1)).all())


class _HalfGrey(Baseline):
    """A mask-conditional baseline (own ``_fill``): removed pixels become 0.5; records its masks."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor] = []

    def _reference(self, inputs, target):
        return torch.full_like(inputs, 0.5)

    def _fill(self, inputs, keep, target):
        self.masks.append(keep.clone())
        return torch.where(keep > 0, inputs, torch.full_like(inputs, 0.5))


def test_removal_goes_through_any_baselines_fill(device) -> None:
    fill, model = _HalfGrey(), OnePixel().to(device)
    x, attr = _images(2).to(device), _perfect(2).to(device)
    curve = deletion(model, x, attr, target=0, baseline=fill, n_steps=4, batch_size=4)
    assert len(fill.masks) == 3  # 2 images x 5 steps in batches of 4
    keeps = torch.cat(fill.masks)
    assert keeps.device == device and curve.scores.device == device
    assert keeps.shape == (10, 1, H, W) and set(keeps.unique().tolist()) == {0.0, 1.0}
    assert keeps[:5].sum(dim=(1, 2, 3)).tolist() == [64, 48, 32, 16, 0]
    half = 0.5  # p at x_p = 0.5 is sigmoid(0)
    torch.testing.assert_close(curve.scores[:, 1:].cpu(), torch.full((2, 4), half))
    # the composite path (reference evaluated once) gives what the default fill would
    ref = deletion(model, x, attr, target=0, baseline=ConstantBaseline(0.5), n_steps=4)
    torch.testing.assert_close(ref.scores, curve.scores)


def test_score_options(device) -> None:
    x, attr, model = _images(2).to(device), _perfect(2).to(device), OnePixel().to(device)
    logit = deletion(
        model, x, attr, target=0, baseline=ConstantBaseline(0.0), n_steps=2, score="logit"
    )
    _on(device, logit)
    torch.testing.assert_close(logit.scores.cpu(), torch.tensor([[5.0, -5.0, -5.0]] * 2))
    custom = deletion(
        model, x, attr, 1, ConstantBaseline(0.0), n_steps=2, score=lambda o: o.softmax(1)
    )
    _on(device, custom)
    torch.testing.assert_close(custom.scores.cpu(), torch.tensor([[B, A, A]] * 2))


def test_target_none_uses_predicted_class(device) -> None:
    x = _images(2)
    x[1, 0, PIXEL[0], PIXEL[1]] = 0.0  # predicted class 1
    curve = deletion(
        OnePixel().to(device), x.to(device), _perfect(2).to(device), target=None,
        baseline=ConstantBaseline(0.0), n_steps=2,
    )
    _on(device, curve)
    torch.testing.assert_close(curve.scores[:, 0].cpu(), torch.tensor([A, A]))


def test_the_predicted_class_is_found_in_batches_of_batch_size(device) -> None:
    sizes = []

    class Counted(OnePixel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(x.shape[0])
            return super().forward(x)

    x = _images(10).to(device)
    x[3, 0, PIXEL[0], PIXEL[1]] = 0.0  # predicted class 1
    for kind in (deletion, insertion):
        sizes.clear()
        curve = kind(Counted().to(device), x, _perfect(10).to(device), target=None,
                     baseline=ConstantBaseline(0.0), n_steps=2, batch_size=4)
        assert max(sizes) == 4 and sizes[:3] == [4, 4, 2]  # the prediction's passes first
        # p(predicted class) with everything kept / removed (image 3's pixel is 0 either way)
        expected = torch.full((10,), A if kind is deletion else B)
        expected[3] = A
        torch.testing.assert_close(curve.scores[:, 0].cpu(), expected)


def test_model_state_is_left_alone(device) -> None:
    model = OnePixel().to(device).train()
    model.scale.requires_grad_(True)
    model.bn.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, attr = _images(2).to(device), _perfect(2).to(device)
    x0 = x.clone()
    deletion(model, x, attr, target=0, n_steps=4)
    insertion(model, x, attr, target=0, n_steps=4)
    assert model.training and model.bn.training
    assert model.scale.requires_grad and not model.bn.weight.requires_grad
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm stats untouched: evaluated in eval mode
    assert torch.equal(x, x0)  # inputs not modified in place


def test_bad_input() -> None:
    model, x = OnePixel(), _images(2)
    with pytest.raises(ValueError, match="attributions must match the inputs"):
        deletion(model, x, torch.rand(2, 1, 4, 4), target=0)
    with pytest.raises(ValueError, match="attributions contains NaN"):
        deletion(model, x, torch.full((2, 1, H, W), float("nan")), target=0)
    with pytest.raises(ValueError, match="n_steps"):
        deletion(model, x, _perfect(2), target=0, n_steps=0)
    with pytest.raises(TypeError, match="baseline must be"):
        deletion(model, x, _perfect(2), target=0, baseline=0.0)
    with pytest.raises(ValueError, match="target"):
        deletion(model, x, _perfect(2), target=7)
    with pytest.raises(ValueError, match=r"\(N, classes\) logits"):
        deletion(lambda t: t.sum(dim=(1, 2, 3)), x, _perfect(2), target=0)
    with pytest.raises(ValueError, match="score must be"):
        insertion(model, x, _perfect(2), target=0, score="probit")
    for wrong, got in ((lambda o: o[:, 0], r"got \(6,\) for \(6, 2\)"),
                       (lambda o: o.numpy(), "got ndarray")):
        with pytest.raises(ValueError, match=r"score must map the model's \(B, K\) outputs to "
                                             r"\(B, K\) scores .*" + got):
            deletion(model, x, _perfect(2), target=0, n_steps=2, score=wrong)
    with pytest.raises(ValueError, match=r"got dict for a batch of N=1 input \(its .logits: "
                                         r"wrap the model in captum_cf.zoo.LogitsOf\)"):
        deletion(lambda t: {"logits": model.eval()(t)}, x, _perfect(2), target=0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        deletion(model, x * 3, _perfect(2), target=0)
