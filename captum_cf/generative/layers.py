"""Building blocks shared by the GAN models of captum_cf (GANMEX, progressive exaggeration).

Everything here is a plain ``nn.Module`` or function on ``(N, C, H, W)`` tensors, with no
knowledge of a particular model, so both generators and critics compose from the same pieces.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ResidualBlock",
    "ConditionalBatchNorm2d",
    "DownBlock",
    "UpBlock",
    "class_planes",
    "identity_logit_output",
    "random_translate",
]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


class ResidualBlock(nn.Module):
    """``x + conv(relu(norm(conv(x))))`` with 3x3 convolutions (StarGAN's bottleneck block).

    Args:
        channels (int): input and output channels.
        norm (str): ``"instance"`` (default), ``"batch"`` or ``"none"``.

    Example:
        >>> block = ResidualBlock(8)
        >>> block(torch.rand(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _norm(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class DownBlock(nn.Sequential):
    """Stride-2 4x4 convolution, norm, ReLU: halves H and W."""

    def __init__(self, c_in: int, c_out: int, norm: str = "instance") -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Sequential):
    """Nearest upsampling then a 3x3 convolution, norm, ReLU: doubles H and W.

    Upsample + conv instead of a transposed convolution avoids checkerboard artefacts, which a
    classifier in the loop would otherwise learn to exploit.
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "instance") -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        )


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per condition (class or bin).

    ``y = gamma[c] * (x - mean) / sqrt(var + eps) + beta[c]``, gamma initialised to 1, beta to 0.

    Args:
        num_features (int): channels C.
        num_conditions (int): number of conditions; ``forward`` takes indices in
            ``[0, num_conditions)``.

    Example:
        >>> cbn = ConditionalBatchNorm2d(4, num_conditions=3)
        >>> cbn(torch.rand(2, 4, 5, 5), torch.tensor([0, 2])).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, num_features: int, num_conditions: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(num_conditions, num_features)
        self.beta = nn.Embedding(num_conditions, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        out = self.bn(x)
        return (
            self.gamma(condition)[:, :, None, None] * out + self.beta(condition)[:, :, None, None]
        )


def class_planes(labels: Tensor, num_classes: int, height: int, width: int) -> Tensor:
    """One-hot class planes: ``(N,)`` class indices -> ``(N, num_classes, H, W)`` of 0/1 floats."""
    one_hot = F.one_hot(labels.long(), num_classes).float()
    return one_hot[:, :, None, None].expand(-1, -1, height, width)


def identity_logit_output(residual: Tensor, images: Tensor, eps: float = 0.01) -> Tensor:
    """``sigmoid(residual + logit(clamp(images, eps, 1 - eps)))``: an output in (0, 1).

    With ``residual == 0`` (a zero-initialised last layer) the generator starts as the identity
    up to the clamp, so training begins from the input and learns *edits*. Without it, a GAN with
    a classifier in the loop first learns noise that fools the classifier (FEASIBILITY.md).
    """
    return torch.sigmoid(residual + torch.logit(images.clamp(eps, 1 - eps)))


def random_translate(
    images: Tensor, max_shift: int, generator: torch.Generator | None = None
) -> Tensor:
    """Shift each image by an integer offset in ``[-max_shift, max_shift]`` per axis.

    Borders are replicated.

    Applied to real and fake images before a critic, so that it cannot key on exact pixel
    positions (a cheap, differentiable augmentation).

    Args:
        images (Tensor): shape (N, C, H, W).
        max_shift (int): largest shift in pixels; 0 returns ``images`` unchanged.
        generator (torch.Generator, optional): source of the random offsets.

    Returns:
        Tensor: shape (N, C, H, W).
    """
    if max_shift <= 0:
        return images
    n, _, h, w = images.shape
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    c = images.shape[1]
    if images.device.type == "cpu":
        # replicate padding, then the shifted window: the gradients the zoo's GANMEX files were
        # trained with, bit for bit
        padded = F.pad(images, [max_shift] * 4, mode="replicate")
        rows = torch.arange(h)[None, :] + max_shift - offsets[:, :1]  # (N, H)
        cols = torch.arange(w)[None, :] + max_shift - offsets[:, 1:]  # (N, W)
        picked = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.shape[3]))
        return picked.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    # elsewhere out[i, j] = in[clamp(i - dy), clamp(j - dx)] from clamped indices: replicate
    # padding's CUDA backward has no deterministic implementation (it adds atomically), the
    # gather's has one under torch.use_deterministic_algorithms(True); the same values
    rows = (torch.arange(h)[None, :] - offsets[:, :1]).clamp(0, h - 1).to(images.device)
    cols = (torch.arange(w)[None, :] - offsets[:, 1:]).clamp(0, w - 1).to(images.device)
    picked = images.gather(2, rows[:, None, :, None].expand(n, c, h, w))
    return picked.gather(3, cols[:, None, None, :].expand(n, c, h, w))
