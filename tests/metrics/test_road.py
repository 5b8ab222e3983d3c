"""road, symmetric_relevance_gain and r_oms on tiny models whose relevant pixels are known."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from captum_cf.baselines import Baseline, BlurBaseline, ConstantBaseline, NoisyLinearImputation
from captum_cf.metrics import (
    Curve,
    deletion,
    insertion,
    r_oms,
    removal_curves,
    road,
    symmetric_relevance_gain,
)

SPOTS = [(1, 1), (2, 6), (5, 3), (7, 8)]  # the only pixels the model reads, 10 x 10 images


class SpotModel(nn.Module):
    """Logit 0 = sum of the four spot pixels, logit 1 = 0: the relevant pixels are known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = sum(x[:, 0, i, j] for i, j in SPOTS)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _spot_images(n: int = 3) -> torch.Tensor:
    x = torch.zeros(n, 1, 10, 10)
    for i, j in SPOTS:
        x[:, 0, i, j] = 1.0
    return x


def _true_map(n: int = 3) -> torch.Tensor:
    a = torch.linspace(0, 0.01, 100).view(1, 1, 10, 10).repeat(n, 1, 1, 1)  # distinct values
    for i, j in SPOTS:
        a[:, 0, i, j] += 1.0 + 0.1 * i
    return a


def test_morf_with_the_true_map_is_hand_computed(device) -> None:
    # ROAD removes the spots first; each isolated spot is imputed from its 8 black neighbours
    # -> 0, so the logit falls by 1 per removed spot: 4 (0 %), 0 (4 % and later; at 99 % the
    # one kept pixel is black background and everything is imputed from it)
    x, a = _spot_images().to(device), _true_map().to(device)
    curve = road(SpotModel(), x, a, target=0, percentages=[0, 1, 2, 3, 4, 50, 99],
                 score="logit", removal=NoisyLinearImputation(noise=0.0))
    expected = torch.tensor([4.0, 3, 2, 1, 0, 0, 0], device=device).expand(3, 7)
    torch.testing.assert_close(curve.scores, expected, atol=1e-5, rtol=0)
    assert curve.kind == "road-morf" and curve.higher_is_better is False
    torch.testing.assert_close(curve.fractions.cpu(),
                               torch.tensor([0, 0.01, 0.02, 0.03, 0.04, 0.5, 0.99]))
    # trapezoid: 0.01 * (3.5 + 2.5 + 1.5 + 0.5) = 0.08, over the width 0.99
    torch.testing.assert_close(curve.auc, torch.full((3,), 0.08 / 0.99, device=device),
                               atol=1e-5, rtol=0)


def test_lerf_with_the_true_map_keeps_the_score_until_the_spots_go(device) -> None:
    # The black background goes first; with only the bright spots kept, the imputation of
    # everything removed is 1 (the weighted mean of ones), so a removed spot comes back as 1
    # and the logit stays 4 until nothing is kept: then every pixel is grey 0.5 -> 2.
    x, a = _spot_images().to(device), _true_map().to(device)
    curve = road(SpotModel(), x, a, target=0, order="lerf", percentages=[0, 50, 96, 97, 99, 100],
                 score="logit", removal=NoisyLinearImputation(noise=0.0))
    expected = torch.tensor([4.0, 4, 4, 4, 4, 2], device=device).expand(3, 6)
    torch.testing.assert_close(curve.scores, expected, atol=1e-4, rtol=0)
    assert curve.kind == "road-lerf" and curve.higher_is_better is True


def test_true_map_beats_random_maps_and_srg_separates_them(device) -> None:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        for i, j in SPOTS:
            model[1].weight[0, 10 * i + j] = 3.0
    x = 0.3 * torch.rand(48, 1, 10, 10, generator=gen)  # dim background, bright spots
    for i, j in SPOTS:
        x[:, 0, i, j] = 1.0
    pct = list(range(0, 101, 10))
    removal = NoisyLinearImputation(noise=0.0)
    true = _true_map(48)
    rand = torch.rand(48, 1, 10, 10, generator=gen)
    model, x, true, rand = model.to(device), x.to(device), true.to(device), rand.to(device)
    curves = {name: (road(model, x, amap, 0, "morf", pct, removal),
                     road(model, x, amap, 0, "lerf", pct, removal))
              for name, amap in (("true", true), ("random", rand), ("reverse", -true))}
    assert symmetric_relevance_gain(*curves["true"]).device == device
    srg = {k: symmetric_relevance_gain(*v).mean().item() for k, v in curves.items()}
    assert curves["true"][0].mean_auc < curves["random"][0].mean_auc  # MoRF falls fastest
    assert srg["true"] > 0.15
    assert abs(srg["random"]) < 0.03
    assert srg["reverse"] < -0.15


def test_zero_removal_morf_equals_deletion_and_srg_equals_deletion_insertion(device) -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(300, 4)).to(device).eval()
    x, a = torch.rand(5, 1, 10, 10).to(device), torch.randn(5, 1, 10, 10).to(device)
    zero = ConstantBaseline(0.0)
    pct = list(range(0, 101, 10))
    morf = road(model, x, a, 2, "morf", pct, zero)
    lerf = road(model, x, a, 2, "lerf", pct, zero)
    dele = deletion(model, x, a, 2, zero, n_steps=10)
    ins = insertion(model, x, a, 2, zero, n_steps=10)
    assert morf.scores.device == device and lerf.auc.device == device
    torch.testing.assert_close(morf.scores, dele.scores)
    torch.testing.assert_close(lerf.scores, ins.scores.flip(1))  # LeRF(q) = insertion(1 - q)
    torch.testing.assert_close(symmetric_relevance_gain(morf, lerf),
                               symmetric_relevance_gain(dele, ins))


def test_lerf_is_insertion_reversed_also_for_maps_with_ties(device) -> None:
    # patches of equal attribution, as Occlusion and FeatureAblation give: insertion reveals a
    # tied patch in raster order, so LeRF must remove it in reverse raster order for
    # LeRF(q) = insertion(1 - q) and the SRG of (deletion, insertion) = that of (MoRF, LeRF)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).to(device).eval()
    x = torch.rand(4, 1, 4, 4, device=device)
    patches = torch.tensor([[3.0, 1.0], [1.0, 2.0]], device=device)
    a = patches.repeat_interleave(2, 0).repeat_interleave(2, 1).expand(4, 1, 4, 4)
    zero = ConstantBaseline(0.0)
    pct = [100 * k / 16 for k in range(17)]
    morf, lerf = removal_curves(model, x, a, 1, {"zero": zero}, pct)["zero"]
    ins = insertion(model, x, a, 1, zero, n_steps=16)
    torch.testing.assert_close(lerf.scores, ins.scores.flip(1))
    torch.testing.assert_close(road(model, x, a, 1, "lerf", pct, zero).scores, lerf.scores)
    torch.testing.assert_close(symmetric_relevance_gain(morf, lerf),
                               symmetric_relevance_gain(deletion(model, x, a, 1, zero, 16), ins))
    # LeRF's first removed pixel: the last in raster order of the lowest patch (value 1)
    one = road(model, x[:1], a[:1], 1, "lerf", [0, 100 / 16], zero)
    kept = x[:1].clone()
    kept[..., 3, 1] = 0  # raster positions of value 1: (0,2),(0,3),(1,2),(1,3),(2,0)...(3,1)
    expected = model(kept).softmax(1)[0, 1]
    torch.testing.assert_close(one.scores[0, 1], expected)


def test_removal_curves_equal_separate_road_calls_in_fewer_passes(device) -> None:
    calls = []

    class Counted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                                     nn.Linear(300, 4))

        def forward(self, z):
            calls.append(z.shape[0])
            return self.net(z)

    model = Counted().to(device).eval()
    x, a = torch.rand(3, 1, 10, 10).to(device), torch.randn(3, 1, 10, 10).to(device)
    removals = {"zero": ConstantBaseline(0.0), "blur": BlurBaseline(2.0),
                "road": NoisyLinearImputation(noise=0.0)}
    pct = [0, 20, 50, 90, 100]
    together = removal_curves(model, x, a, 1, removals, pct, batch_size=240)
    assert len(calls) == 2  # the target check, then 3 images x 5 steps x 3 removals x 2 orders
    for name, removal in removals.items():
        for curve, order in zip(together[name], ("morf", "lerf")):
            alone = road(model, x, a, 1, order, pct, removal)
            assert curve.kind == alone.kind and curve.higher_is_better == alone.higher_is_better
            assert curve.scores.device == device and curve.fractions.device == device
            torch.testing.assert_close(curve.scores, alone.scores)
            torch.testing.assert_close(curve.auc, alone.auc)
    with pytest.raises(TypeError, match="removals"):
        removal_curves(model, x, a, 1, {"zero": 0.0})


def test_accuracy_score_counts_predictions_of_the_target(device) -> None:
    x, a = _spot_images(2).to(device), _true_map(2).to(device)
    curve = road(SpotModel(), x, a, target=0, percentages=[0, 3, 4], score="accuracy",
                 removal=NoisyLinearImputation(noise=0.0))
    # logit0 = 4, 1 > 0 -> class 0; at 4 % removed logit0 = 0 = logit1 -> argmax 0 (first)
    assert curve.scores.device == device
    assert curve.scores.tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    curve1 = road(SpotModel(), x, a, target=1, percentages=[0, 3], score="accuracy",
                  removal=NoisyLinearImputation(noise=0.0))
    assert curve1.scores.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_default_removal_is_roads_noisy_imputation_and_model_state_is_kept(device) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device).train()
    model[1].weight.requires_grad_(False)
    x, a = torch.rand(2, 1, 8, 8).to(device), torch.rand(2, 1, 8, 8).to(device)
    x_before = x.clone()
    curve = road(model, x, a, 1, percentages=[0, 50, 100])
    explicit = road(model, x, a, 1, percentages=[0, 50, 100],
                    removal=NoisyLinearImputation(noise=0.01, seed=0))
    assert curve.scores.device == device
    assert torch.equal(curve.scores, explicit.scores)
    assert model.training and not model[1].weight.requires_grad and model[1].bias.requires_grad
    assert torch.equal(x, x_before)


def test_road_rejects_bad_arguments() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x, a = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="order"):
        road(model, x, a, 0, order="both")
    with pytest.raises(ValueError, match="percentages"):
        road(model, x, a, 0, percentages=[50, 10])
    with pytest.raises(ValueError, match="percentages"):
        road(model, x, a, 0, percentages=[0, 120])
    with pytest.raises(ValueError, match="percentages"):
        road(model, x, a, 0, percentages=[0, 1])  # 64 pixels: both remove 0
    with pytest.raises(TypeError, match="removal"):
        road(model, x, a, 0, removal=0.0)
    with pytest.raises(ValueError, match="attributions"):
        road(model, x, torch.rand(2, 1, 4, 4), 0)


def test_srg_rejects_mismatched_curves() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x, a = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    morf = road(model, x, a, 0, percentages=[0, 50, 100])
    lerf = road(model, x, a, 0, "lerf", percentages=[0, 50, 100])
    with pytest.raises(ValueError, match="kind"):
        symmetric_relevance_gain(lerf, morf)
    with pytest.raises(ValueError, match="same images and fractions"):
        symmetric_relevance_gain(morf, road(model, x, a, 0, "lerf", percentages=[0, 25, 100]))
    with pytest.raises(TypeError, match="Curve"):
        symmetric_relevance_gain(morf, lerf.auc)
    assert symmetric_relevance_gain.higher_is_better is True and road.higher_is_better is False


class _Recorder(Baseline):
    """Zero fill that records every keep mask it is given."""

    def __init__(self) -> None:
        self.keeps: list[torch.Tensor] = []

    def _reference(self, inputs, target):
        return torch.zeros_like(inputs)

    def _fill(self, inputs, keep, target):
        self.keeps.append(keep[:, :1].clone())
        return keep * inputs


def test_r_oms_is_one_for_the_reference_itself_and_hand_computed_otherwise(device) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).to(device)
    x = torch.rand(3, 1, 2, 2).to(device)
    same = r_oms(model, x, ConstantBaseline(0.2), ConstantBaseline(0.2), fractions=[0.25, 0.5],
                 cell=1, n_draws=2)
    torch.testing.assert_close(same.auc, torch.ones(3, device=device))

    class Sum(nn.Module):  # logits (sum of pixels, 0)
        def forward(self, z):
            s = z.flatten(1).sum(1)
            return torch.stack([s, torch.zeros_like(s)], 1)

    ones = torch.ones(2, 1, 2, 2, device=device)
    res = r_oms(Sum(), ones, ConstantBaseline(0.0), ConstantBaseline(1.0), fractions=[0.25, 0.5],
                cell=1, n_draws=3)
    ref = torch.tensor([4.0, 0.0]).softmax(0)

    def cos(k: int) -> float:
        p = torch.tensor([4.0 - k, 0.0]).softmax(0)
        return float(p @ ref / p.norm() / ref.norm())

    expected = torch.tensor([[cos(1), cos(2)]] * 2)
    torch.testing.assert_close(res.scores.cpu(), expected)
    torch.testing.assert_close(res.auc.cpu(), expected.mean(1))
    assert res.kind == "r-oms" and res.higher_is_better and r_oms.higher_is_better


def test_r_oms_uses_the_same_random_cells_for_removal_and_reference(device) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    mine, seen = _Recorder(), []

    def reference(inputs, keep):
        seen.append(keep[:, :1].clone())
        return model(keep * inputs)

    res = r_oms(model, x, mine, reference, fractions=[0.25, 0.75], cell=2, n_draws=2,
                batch_size=3)
    keeps, ref_keeps = torch.cat(mine.keeps), torch.cat(seen)
    assert keeps.device == device and res.auc.device == device
    assert torch.equal(keeps, ref_keeps)
    removed_cells = (keeps[:, 0, ::2, ::2] == 0).flatten(1).sum(1)
    # order: image-major, then fraction, then draw; 16 cells of 2 x 2 pixels
    assert removed_cells.tolist() == [4, 4, 12, 12] * 2
    torch.testing.assert_close(res.auc.cpu(), torch.ones(2))  # same fill and same model
    again = r_oms(model, x, _Recorder(), reference, fractions=[0.25, 0.75], cell=2, n_draws=2)
    assert torch.equal(again.scores, res.scores)


def test_r_oms_rejects_bad_arguments_and_keeps_the_model_state(device) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).to(device).train()
    model[1].bias.requires_grad_(False)
    x, zero = torch.rand(2, 1, 8, 8).to(device), ConstantBaseline(0.0)
    with pytest.raises(TypeError, match="removal"):
        r_oms(model, x, 0.0, zero)
    with pytest.raises(TypeError, match="reference"):
        r_oms(model, x, zero, 0.0)
    with pytest.raises(ValueError, match="fractions"):
        r_oms(model, x, zero, zero, fractions=[0.5, 0.2])
    with pytest.raises(ValueError, match="cell"):
        r_oms(model, x, zero, zero, cell=9)
    with pytest.raises(ValueError, match="n_draws"):
        r_oms(model, x, zero, zero, n_draws=0)
    curve = r_oms(model, x, zero, zero)
    assert isinstance(curve, Curve) and curve.scores.device == device
    assert model.training and model[1].weight.requires_grad and not model[1].bias.requires_grad


def test_removal_curves_of_a_constant_map_are_the_two_orders_mean(device) -> None:
    # its ties went in raster order for MoRF and the reverse for LeRF: an SRG of up to 0.3
    # for a map that orders nothing
    from captum_cf.baselines import ConstantBaseline
    from captum_cf.metrics import removal_curves, symmetric_relevance_gain

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).to(device)
    x = torch.rand(3, 1, 8, 8, device=device)
    maps = torch.rand(3, 1, 8, 8, device=device)
    maps[1] = 0.25  # constant
    pcs = [0, 25, 50, 75, 100]
    morf, lerf = removal_curves(model, x, maps, 0, {"zero": ConstantBaseline(0.0)}, pcs)["zero"]
    srg = symmetric_relevance_gain(morf, lerf)
    assert srg[1] == 0 and bool((srg[[0, 2]] != 0).all())
    assert torch.equal(morf.scores[1], lerf.scores[1])
    # the mean of what a map ordering the pixels in raster order (and its reverse) scores
    raster = torch.arange(64, 0, -1, device=device, dtype=torch.float32).view(1, 1, 8, 8)
    ref_m, ref_l = removal_curves(model, x[1:2], raster, 0, {"zero": ConstantBaseline(0.0)},
                                  pcs)["zero"]
    torch.testing.assert_close(morf.scores[1], ((ref_m.scores + ref_l.scores) / 2)[0])
