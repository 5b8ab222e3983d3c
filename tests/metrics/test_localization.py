"""pointing_game, localization_error, relevance_mass on synthetic maps with known boxes."""

from __future__ import annotations

import pytest
import torch

from captum_cf.metrics import (
    box_from_map,
    box_iou,
    localization_error,
    pointing_game,
    relevance_mass,
)


def _peak(y: int, x: int, size: int = 10) -> torch.Tensor:
    m = torch.rand(1, size, size) * 0.1
    m[0, y, x] = 1.0
    return m


def _mask(y0: int, y1: int, x0: int, x1: int, size: int = 10) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size, dtype=torch.bool)
    m[..., y0:y1, x0:x1] = True
    return m


def _hit(amap: torch.Tensor, mask: torch.Tensor, device: torch.device, **kw) -> list[float]:
    """pointing_game on ``device``: its result lies there too."""
    out = pointing_game(amap.to(device), mask.to(device), **kw)
    assert out.device == device
    return out.tolist()


def test_pointing_game_hit_and_miss(device) -> None:
    mask = _mask(2, 5, 2, 5)
    assert _hit(_peak(3, 3), mask, device, tolerance=0) == [1.0]
    assert _hit(_peak(7, 3), mask, device, tolerance=0) == [0.0]


def test_pointing_game_tolerance_is_euclidean(device) -> None:
    mask = _mask(2, 5, 2, 5)  # corner pixel (4, 4)
    diagonal = _peak(5, 5)  # distance sqrt(2) from the corner
    assert _hit(diagonal, mask, device, tolerance=1) == [0.0]
    assert _hit(diagonal, mask, device, tolerance=2) == [1.0]
    straight = _peak(7, 3)  # 3 rows below the mask
    assert [_hit(straight, mask, device, tolerance=t) for t in (2, 3)] == [[0.0], [1.0]]


def test_pointing_game_default_tolerance_scales_zhangs_15_pixels(device) -> None:
    mask = _mask(0, 10, 0, 10, size=64)  # round(15 * 64 / 224) = 4
    assert _hit(_peak(13, 5, 64), mask, device) == [1.0]  # 4 rows below row 9
    assert _hit(_peak(14, 5, 64), mask, device) == [0.0]


def test_pointing_game_batch_channels_and_constant_map(device) -> None:
    maps = torch.stack([_peak(3, 3)[0], _peak(8, 8)[0], torch.zeros(10, 10)])[:, None].repeat(
        1, 3, 1, 1
    )
    masks = _mask(0, 5, 0, 5).repeat(3, 1, 1, 1)
    # the constant map's first maximum (0, 0) is inside the mask, but a flat map points nowhere
    assert _hit(maps, masks, device, tolerance=0) == [1.0, 0.0, 0.0]
    assert pointing_game.higher_is_better


def test_pointing_game_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one pixel"):
        pointing_game(_peak(1, 1), torch.zeros(1, 10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks must have shape"):
        pointing_game(_peak(1, 1), torch.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(_peak(1, 1), _mask(0, 2, 0, 2), tolerance=-1)


def _box(amap: torch.Tensor, rule: str, alpha: float) -> torch.Tensor:
    """box_from_map, checked to lie on the map's device, brought to the CPU."""
    box = box_from_map(amap, rule, alpha)
    assert box.device == amap.device
    return box.cpu()


def test_box_iou_hand_values(device) -> None:
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2]]).to(device)
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]).to(device)
    out = box_iou(a, b)
    assert out.device == device
    torch.testing.assert_close(out.cpu(), torch.tensor([1 / 7, 1.0, 0.0]))


def test_value_rule_box_and_error(device) -> None:
    amap = torch.zeros(1, 12, 12)
    amap[0, 2:6, 3:9] = 1.0  # the object, box (3, 2, 9, 6)
    amap[0, 10, 0] = 0.4  # a weak spurious blob far away
    truth = torch.tensor([[3, 2, 9, 6]])
    amap, truth_d = amap.to(device), truth.to(device)
    torch.testing.assert_close(_box(amap, "value", 0.5), truth.float())
    error = localization_error(amap, truth_d, "value", 0.5)
    assert error.device == device and error.item() == 0.0
    # alpha 0.3 lets the blob in: box (0, 2, 9, 11), IoU 24 / 81 < 0.5
    torch.testing.assert_close(_box(amap, "value", 0.3), torch.tensor([[0.0, 2, 9, 11]]))
    assert localization_error(amap, truth_d, "value", 0.3).item() == 1.0
    assert not localization_error.higher_is_better


def test_energy_rule_takes_fewest_pixels_holding_alpha_of_the_energy(device) -> None:
    amap = torch.zeros(1, 6, 6)
    amap[0, 1, 1], amap[0, 4, 4], amap[0, 0, 5] = 6.0, 3.0, 1.0  # energy 10
    amap = amap.to(device)
    torch.testing.assert_close(_box(amap, "energy", 0.5), torch.tensor([[1.0, 1, 2, 2]]))
    torch.testing.assert_close(_box(amap, "energy", 0.7), torch.tensor([[1.0, 1, 5, 5]]))
    torch.testing.assert_close(_box(amap, "energy", 0.95), torch.tensor([[1.0, 0, 6, 5]]))


def test_mean_rule_and_negative_values(device) -> None:
    amap = -torch.ones(1, 8, 8)
    amap[0, 0:2, 0:4] = 2.0  # clipped map: mean = 16 / 64 = 0.25
    amap[0, 6, 6] = 0.3
    amap = amap.to(device)
    torch.testing.assert_close(_box(amap, "mean", 1.0), torch.tensor([[0.0, 0, 7, 7]]))
    torch.testing.assert_close(_box(amap, "mean", 2.0), torch.tensor([[0.0, 0, 4, 2]]))
    empty = localization_error(
        -torch.ones(1, 8, 8, device=device), torch.tensor([[0, 0, 8, 8]], device=device), "mean"
    )
    assert empty.device == device and empty.item() == 1.0  # nothing positive, no box


def test_localization_bad_input() -> None:
    amap = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="rule must be one of"):
        localization_error(amap, torch.zeros(2, 4), rule="max")
    with pytest.raises(ValueError, match=r"boxes must have shape \(2, 4\)"):
        localization_error(amap, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="alpha"):
        localization_error(amap, torch.zeros(2, 4), rule="energy", alpha=1.5)


def test_relevance_mass_hand_value(device) -> None:
    amap = torch.tensor([[[3.0, 1.0], [-2.0, 0.0]], [[-1.0, -1.0], [-1.0, -1.0]]]).to(device)
    masks = torch.tensor([[[1, 0], [1, 1]], [[1, 1], [1, 1]]]).to(device)
    mass = relevance_mass(amap, masks)
    assert mass.device == device
    torch.testing.assert_close(mass.cpu(), torch.tensor([0.75, 0.0]))
    rgb = amap[:, None].repeat(1, 3, 1, 1) / 3  # channels are summed first
    torch.testing.assert_close(
        relevance_mass(rgb, masks[:, None].bool()).cpu(), torch.tensor([0.75, 0.0])
    )
    with pytest.raises(ValueError, match="boolean"):
        relevance_mass(amap, masks * 2)


@pytest.mark.parametrize("a, b, error, message", [
    (torch.zeros(2, 3), torch.zeros(2, 3), ValueError, r"a must have shape \(N, 4\)"),
    (torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 2]]), ValueError,
     r"b must have shape \(1, 4\)"),
    (torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 2, 2]] * 2), ValueError,
     r"b must have shape \(1, 4\)"),
    (torch.tensor([[float("nan"), 0, 2, 2]]), torch.tensor([[0.0, 0, 2, 2]]), ValueError,
     "a must be finite"),
    (torch.tensor([[3.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 2, 2]]), ValueError,
     "x_max >= x_min"),
    (torch.tensor([[0.0, 0, 2, 2]]).numpy(), torch.tensor([[0.0, 0, 2, 2]]), TypeError,
     "a must be a torch.Tensor"),
])
def test_box_iou_rejects_bad_boxes(a, b, error, message) -> None:
    from captum_cf.metrics import box_iou

    with pytest.raises(error, match=message):
        box_iou(a, b)


def test_box_iou_value(device) -> None:
    from captum_cf.metrics import box_iou

    out = box_iou(torch.tensor([[0, 0, 2, 2], [0, 0, 1, 1]], device=device),
                  torch.tensor([[1, 0, 3, 2], [2, 2, 3, 3]], device=device))
    assert out.device == device
    torch.testing.assert_close(out.cpu(), torch.tensor([2 / 6, 0.0]))
