"""realism: the missing-backbone error names the file; the uncalibrated path runs and warns."""

from __future__ import annotations

import os

import pytest
import torch

from captum_cf.metrics import lpips_backbone_path, realism


def test_missing_backbone_names_the_exact_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = os.path.join(str(tmp_path), "checkpoints", "alexnet-owt-7be5be79.pth")
    assert lpips_backbone_path("alex") == expected
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(FileNotFoundError) as info:
        realism(x, x)
    assert expected in str(info.value) and "pretrained_backbone=False" in str(info.value)


def test_uncalibrated_backbone_warns_and_measures(device) -> None:
    pytest.importorskip("lpips")
    x = torch.rand(2, 1, 32, 32).to(device)
    with pytest.warns(UserWarning, match="uncalibrated"):
        same = realism(x, x, net="squeeze", pretrained_backbone=False)
    with pytest.warns(UserWarning, match="uncalibrated"):
        other = realism(
            x, torch.rand(2, 1, 32, 32).to(device), net="squeeze", pretrained_backbone=False
        )
    assert same.device == device and other.device == device
    torch.testing.assert_close(same.cpu(), torch.zeros(2))
    assert bool((other > 0).all()) and not realism.higher_is_better


def test_bad_input() -> None:
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="same shape"):
        realism(x, torch.rand(1, 3, 16, 16), pretrained_backbone=False)
    with pytest.raises(ValueError, match="net must be"):
        realism(x, x, net="resnet")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        realism(torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32))


def test_too_small_is_reported_only_for_small_images() -> None:
    with pytest.raises(ValueError, match="too small for the LPIPS alex backbone"):
        realism(torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30), pretrained_backbone=False)
    # squeeze takes 17 x 17: not "too small"
    with pytest.warns(UserWarning, match="uncalibrated"):
        d = realism(torch.rand(1, 3, 17, 17), torch.rand(1, 3, 17, 17), net="squeeze",
                    pretrained_backbone=False)
    assert d.shape == (1,) and bool((d >= 0).all())


def test_float64_images_name_the_dtype_not_the_size() -> None:
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with pytest.warns(UserWarning), pytest.raises(TypeError, match="images has dtype .*float64"):
        realism(x, x, pretrained_backbone=False)
