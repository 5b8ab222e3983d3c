"""captum_cf.attr.superpixels: SLIC masks with consecutive ids, grid fallback without skimage."""

from __future__ import annotations

import sys

import pytest
import torch

from captum_cf.attr import superpixels


def _two_colour_images() -> torch.Tensor:
    """Left part red, right part blue (boundary at column 21 of 48), plus mild noise."""
    x = torch.zeros(2, 3, 48, 48)
    x[:, 0, :, :21] = 0.9
    x[:, 2, :, 21:] = 0.9
    return (x + 0.02 * torch.rand_like(x)).clamp(0, 1)


def test_ids_are_consecutive_per_image_and_shape_is_a_feature_mask(device, on_device):
    x = torch.rand(3, 3, 32, 32).to(device)
    masks = superpixels(x, n_segments=20)
    assert masks.shape == (3, 1, 32, 32) and masks.dtype == torch.long and on_device(masks)
    for m in masks:
        ids = m.unique()
        assert torch.equal(ids, torch.arange(len(ids), device=device))
        assert 5 <= len(ids) <= 60


def test_superpixels_follow_colour_edges(device, on_device):
    masks = superpixels(_two_colour_images().to(device), n_segments=16, sigma=0.5)
    assert on_device(masks)
    for m in masks[:, 0]:
        for sp in m.unique():
            columns = (m == sp).nonzero()[:, 1]
            # no superpixel straddles the red/blue edge
            assert bool((columns < 21).all()) or bool((columns >= 21).all())


def test_grayscale_and_other_channel_counts(device, on_device):
    gray = superpixels(torch.rand(1, 1, 24, 24).to(device), n_segments=9)
    assert gray.shape == (1, 1, 24, 24) and on_device(gray)
    m = superpixels(torch.rand(1, 2, 24, 24).to(device), n_segments=9)
    assert torch.equal(m.unique(), torch.arange(int(m.max()) + 1, device=device))


def test_grid_fallback_without_scikit_image(monkeypatch, device, on_device):
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)  # import now fails
    with pytest.warns(RuntimeWarning, match="scikit-image is not installed"):
        masks = superpixels(torch.rand(2, 3, 64, 32).to(device), n_segments=8)
    assert on_device(masks)
    masks = masks.cpu()
    # 8 cells with the 2:1 aspect ratio: 4 rows x 2 columns of 16 x 16 pixels
    expected = (torch.arange(64).view(64, 1) // 16) * 2 + torch.arange(32).view(1, 32) // 16
    assert torch.equal(masks[0, 0], expected) and torch.equal(masks[1, 0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_segments=0), "n_segments"),
        (dict(n_segments=2.5), "n_segments"),
        (dict(compactness=0), "compactness"),
        (dict(sigma=-1), "sigma"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        superpixels(torch.rand(1, 3, 16, 16), **kwargs)


def test_bad_images():
    with pytest.raises(ValueError, match=r"images must be images in \[0, 1\]"):
        superpixels(torch.rand(1, 3, 16, 16) * 255)
    with pytest.raises(ValueError, match="images must have shape"):
        superpixels(torch.rand(3, 16, 16))
