"""``superpixels``: feature masks that group pixels into image regions (SLIC, or a grid)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from captum_cf._validation import check_images

__all__ = ["superpixels"]


def superpixels(
    images: Tensor, n_segments: int = 50, compactness: float = 30.0, sigma: float = 3.0
) -> Tensor:
    """Superpixel feature masks for Lime, KernelShap, FeatureAblation and ShapleyValueSampling.

    SLIC (Achanta et al., TPAMI 2012) clusters pixels by k-means in (colour, position) space,
    ``d = sqrt(d_colour^2 + (compactness * d_xy / S)^2)`` with grid step ``S = sqrt(HW / n)``,
    after a Gaussian pre-smoothing of width ``sigma``. RGB images are clustered in CIELAB
    (scikit-image's default); other channel counts are scaled to [0, 100] like the L channel so
    that ``compactness`` means the same. When scikit-image is not installed a regular grid of
    about ``n_segments`` cells is returned instead (with a warning).

    Args:
        images (Tensor): shape (N, C, H, W), in [0, 1].
        n_segments (int): approximate number of superpixels per image, >= 1.
        compactness (float): > 0; larger gives squarer, more grid-like superpixels.
        sigma (float): >= 0, pre-smoothing in pixels.

    Returns:
        Tensor: long, shape (N, 1, H, W), on the device of ``images``; image ``i`` holds the
        consecutive ids ``0 .. K_i - 1``. It broadcasts over channels, so it can be passed as
        ``feature_mask`` directly.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> masks = superpixels(x, n_segments=16)
        >>> masks.shape, masks.dtype, int(masks[0].min())
        (torch.Size([2, 1, 32, 32]), torch.int64, 0)
    """
    check_images(images, "images")
    _check_args(n_segments, compactness, sigma)
    arrays = images.detach().cpu().double().numpy()
    try:
        from skimage.segmentation import slic
    except ImportError:
        warnings.warn(
            "scikit-image is not installed: superpixels() falls back to a regular grid",
            RuntimeWarning,
            stacklevel=2,
        )
        labels = [_grid(img.shape[1], img.shape[2], n_segments) for img in arrays]
    else:
        labels = [_slic(slic, img, n_segments, compactness, sigma) for img in arrays]
    ids = np.stack([np.unique(lab, return_inverse=True)[1].reshape(lab.shape) for lab in labels])
    return torch.from_numpy(ids.astype(np.int64)).unsqueeze(1).to(images.device)


def _check_args(n_segments: int, compactness: float, sigma: float) -> None:
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"n_segments must be an int >= 1, got {n_segments!r}")
    if (
        not isinstance(compactness, (int, float))
        or not math.isfinite(compactness)
        or compactness <= 0
    ):
        raise ValueError(f"compactness must be a finite number > 0, got {compactness!r}")
    if not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")


def _slic(slic, image: np.ndarray, n_segments: int, compactness: float, sigma: float) -> np.ndarray:
    """SLIC labels (H, W) of one image (C, H, W) in [0, 1]."""
    channels = image.shape[0]
    common = dict(n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0)
    if channels == 3:
        return slic(image.transpose(1, 2, 0), channel_axis=-1, **common)
    if channels == 1:
        return slic(image[0] * 100.0, channel_axis=None, **common)
    return slic(image.transpose(1, 2, 0) * 100.0, channel_axis=-1, convert2lab=False, **common)


def _grid(height: int, width: int, n_segments: int) -> np.ndarray:
    """A regular grid of about ``n_segments`` cells with the image's aspect ratio, (H, W)."""
    rows = min(height, max(1, round(math.sqrt(n_segments * height / width))))
    cols = min(width, max(1, round(n_segments / rows)))
    y = np.arange(height)[:, None] * rows // height
    x = np.arange(width)[None, :] * cols // width
    return y * cols + x
