"""ssim: identities, a hand value, and agreement with scikit-image."""

from __future__ import annotations

import pytest
import torch

from captum_cf.metrics import ssim


def test_identity_and_symmetry(device) -> None:
    a, b = torch.rand(3, 2, 16, 16).to(device), torch.rand(3, 2, 16, 16).to(device)
    same = ssim(a, a)
    assert same.device == device
    torch.testing.assert_close(same.cpu(), torch.ones(3))
    torch.testing.assert_close(ssim(a, b), ssim(b, a))
    assert bool((ssim(a, b) < 0.5).all())
    assert ssim.higher_is_better


def test_constant_images_hand_value(device) -> None:
    c1, c2 = 0.2, 0.6
    a, b = torch.full((1, 12, 12), c1, device=device), torch.full((1, 12, 12), c2, device=device)
    k = 0.01**2  # (k1 L)^2; the contrast term is C2 / C2 = 1
    expected = (2 * c1 * c2 + k) / (c1**2 + c2**2 + k)
    out = ssim(a, b)
    assert out.device == device
    torch.testing.assert_close(out.cpu(), torch.tensor([expected]))


def test_matches_scikit_image(device) -> None:
    skm = pytest.importorskip("skimage.metrics")
    a = torch.rand(2, 3, 20, 24, dtype=torch.float64)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    ours = ssim(a.to(device), b.to(device))
    assert ours.device == device
    ours = ours.cpu()
    theirs = [
        skm.structural_similarity(
            a[i].numpy(),
            b[i].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
        for i in range(2)
    ]
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float64))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="window_size=11"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.rand(1, 16, 16), torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match="odd"):
        ssim(torch.rand(1, 16, 16), torch.rand(1, 16, 16), window_size=4)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"k1": -1.0}, ValueError, "k1 must be a finite number > 0"),
    ({"k2": 0.0}, ValueError, "k2 must be a finite number > 0"),
    ({"data_range": float("nan")}, ValueError, "data_range must be a finite number > 0"),
    ({"sigma": "1"}, TypeError, "sigma must be a number"),
])
def test_bad_settings_are_rejected(kwargs, error, message) -> None:
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(error, match=message):
        ssim(x, x, **kwargs)


def test_integer_and_empty_images_are_rejected() -> None:
    x = (torch.rand(1, 1, 16, 16) * 255).to(torch.uint8)
    with pytest.raises(TypeError, match=r"a must be a floating-point tensor.*\.float\(\) / 255"):
        ssim(x, x)
    with pytest.raises(ValueError, match="a is empty"):
        ssim(torch.rand(0, 1, 16, 16), torch.rand(0, 1, 16, 16))
