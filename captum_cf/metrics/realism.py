"""How realistic is a counterfactual? LPIPS distance.

Zhang, Isola, Efros, Shechtman & Wang, "The unreasonable effectiveness of deep features as a
perceptual metric", CVPR 2018.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch
from torch import Tensor

from captum_cf._validation import check_images, check_model_dtype
from captum_cf.metrics._common import check_positive_int, higher_is_better

__all__ = ["realism", "lpips_backbone_path"]

#: LPIPS backbone -> the torchvision ImageNet checkpoint it loads from the torch hub cache.
_BACKBONE_FILES = {
    "alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": (
        "squeezenet1_1-b8a52dc0.pth",
        "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
    ),
}


def lpips_backbone_path(net: str = "alex") -> str:
    """Where torchvision looks for the ImageNet weights of an LPIPS backbone (no download)."""
    if net not in _BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(_BACKBONE_FILES)}, got {net!r}")
    return os.path.join(torch.hub.get_dir(), "checkpoints", _BACKBONE_FILES[net][0])


@higher_is_better(False)
def realism(
    images: Tensor,
    references: Tensor,
    net: str = "alex",
    pretrained_backbone: bool = True,
    batch_size: int = 64,
) -> Tensor:
    """LPIPS distance between each image and its reference; lower means perceptually closer.

    Used to ask how far a counterfactual (a baseline's ``reference`` or ``fill``) is from real
    images: pass the counterfactuals as ``images`` and real images as ``references``. Grey
    images are repeated to three channels; values in [0, 1] are mapped to LPIPS's [-1, 1].

    LPIPS combines ImageNet features of a backbone with linear weights calibrated on human
    judgements. The linear weights ship with the ``lpips`` package; the backbone weights come
    from torchvision's download cache, which machines without internet lack. Then this raises
    a ``FileNotFoundError`` naming the file to place (see :func:`lpips_backbone_path`), unless
    ``pretrained_backbone=False``: a randomly initialised backbone (seeded, deterministic) that
    gives an *uncalibrated* distance, with a warning saying so.

    Args:
        images (Tensor): shape (N, C, H, W), C in {1, 3}, float32 (the dtype of the LPIPS
            network), in [0, 1]; H and W >= 31 for ``"alex"``, 17 for ``"squeeze"``, 16 for
            ``"vgg"``.
        references (Tensor): same shape as ``images``.
        net (str): LPIPS backbone, ``"alex"`` (default, LPIPS's recommendation), ``"vgg"``
            or ``"squeeze"``.
        pretrained_backbone (bool): use the ImageNet backbone (calibrated LPIPS).
        batch_size (int): pairs per forward pass.

    Returns:
        Tensor: shape (N,), >= 0; lower is better.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> d = realism(x, x.flip(-1), pretrained_backbone=False)  # warns: uncalibrated
        >>> d.shape
        torch.Size([2])
    """
    check_images(images, "images")
    check_images(references, "references")
    if images.shape != references.shape:
        raise ValueError(
            f"images and references must have the same shape, got {tuple(images.shape)} "
            f"and {tuple(references.shape)}"
        )
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    batch_size = check_positive_int(batch_size, "batch_size")
    path = lpips_backbone_path(net)
    if min(images.shape[-2:]) < _MIN_SIDE[net]:
        raise ValueError(
            f"images of size {tuple(images.shape[-2:])} are too small for the LPIPS {net} "
            f"backbone: use at least {_MIN_SIDE[net]} x {_MIN_SIDE[net]} (e.g. by upsampling)"
        )
    if pretrained_backbone and not os.path.isfile(path):
        raise FileNotFoundError(
            f"LPIPS ({net}) needs torchvision's ImageNet backbone weights at {path}; download "
            f"{_BACKBONE_FILES[net][1]} on a machine with internet and place the file there "
            "(or pass pretrained_backbone=False for an uncalibrated distance)"
        )
    if not pretrained_backbone:
        warnings.warn(
            f"realism(pretrained_backbone=False): LPIPS with a randomly initialised {net} "
            "backbone; distances are uncalibrated (comparable with each other, not with "
            "published LPIPS values)",
            UserWarning,
            stacklevel=2,
        )
    metric = _lpips(net, pretrained_backbone).to(images.device)
    check_model_dtype(images, metric, "images", "the LPIPS network")
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            a, b = images[start : start + batch_size], references[start : start + batch_size]
            if a.shape[1] == 1:
                a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
            # any other failure is torch's own error, not relabelled as "too small"
            out.append(metric(a, b, normalize=True).flatten())
    return torch.cat(out)


#: smallest image side each LPIPS backbone takes (measured: one pixel less fails in a pooling)
_MIN_SIDE = {"alex": 31, "squeeze": 17, "vgg": 16}


@functools.lru_cache(maxsize=4)
def _lpips(net: str, pretrained_backbone: bool) -> torch.nn.Module:
    import lpips  # captum_cf (imported above) made torchvision importable first

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.random.default_generator.manual_seed(0)  # built on the CPU; CUDA RNGs untouched
        model = lpips.LPIPS(net=net, pnet_rand=not pretrained_backbone, verbose=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
