"""Progressive exaggeration (Singla et al., ICLR 2020): a generator conditioned on a posterior bin.

For a binary (or one-vs-rest) decision ``f`` with posterior ``p(x)`` of the positive class, the
generator ``G(x, c)`` edits ``x`` so that ``f``'s posterior falls into bin ``c`` of ``B`` equal
bins over [0, 1]; running ``c = 0 .. B-1`` gives a series that walks the decision from "not
positive" to "positive" while keeping everything unrelated to it. The discriminator is a
spectral-norm projection critic with one projection vector per thermometer bit of ``c``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.parametrizations import spectral_norm

from captum_cf._validation import check_images
from captum_cf.generative.conditional import CODES, ThermometerBatchNorm2d, bin_code, code_size
from captum_cf.generative.layers import identity_logit_output

__all__ = ["ExaggerationConfig", "ExaggerationGenerator", "ExaggerationDiscriminator"]


@dataclass
class ExaggerationConfig:
    """Sizes of the progressive-exaggeration generator and discriminator.

    Attributes:
        image_size (int): H = W of the images (divisible by 4).
        channels (int): image channels C.
        num_bins (int): posterior bins B over [0, 1] (the paper uses 10).
        positive_class (int): the classifier's class whose posterior the bins measure.
        num_classes (int): classes of the classifier (the decision is one-vs-rest).
        base_channels (int): generator width at full resolution (x2 at 1/2, x4 at 1/4).
        residual_blocks (int): conditional residual blocks at 1/4 resolution.
        critic_channels (int): discriminator width of its first layer.
        conditioning (str): how the generator's batch norms read the bin: ``"thermometer"``
            (default; neighbouring bins share parameters, every bin ``>= 1`` shares the first
            bit's offset) or ``"onehot"`` (a learned scale and shift per bin, independent).
        critic_conditioning (str): the same choice for the critic's projection: one embedding
            per thermometer bit (default) or one per bin (``"onehot"``).
    """

    image_size: int = 32
    channels: int = 1
    num_bins: int = 10
    positive_class: int = 8
    num_classes: int = 10
    base_channels: int = 16
    residual_blocks: int = 2
    critic_channels: int = 32
    conditioning: str = "thermometer"
    critic_conditioning: str = "thermometer"

    def __post_init__(self) -> None:
        for name in ("conditioning", "critic_conditioning"):
            if getattr(self, name) not in CODES:
                raise ValueError(f"{name} must be one of {CODES}, got {getattr(self, name)!r}")
        if self.image_size % 4 or self.image_size < 8:
            raise ValueError(f"image_size must be a multiple of 4 and >= 8, got {self.image_size}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")
        if not 0 <= self.positive_class < self.num_classes:
            raise ValueError(f"positive_class must lie in [0, {self.num_classes}), "
                             f"got {self.positive_class}")
        for name, least in (("channels", 1), ("base_channels", 1), ("critic_channels", 1),
                            ("residual_blocks", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _CondConvBlock(nn.Module):
    """conv -> thermometer-conditional BN -> ReLU (optionally upsampling first)."""

    def __init__(self, c_in: int, c_out: int, bins: int, kernel: int, stride: int = 1,
                 upsample: bool = False, code: str = "thermometer") -> None:
        super().__init__()
        self.upsample = upsample
        pad = (kernel - stride) // 2 if stride > 1 else kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.norm = ThermometerBatchNorm2d(c_out, bins, code)

    def forward(self, x: Tensor, bins: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x), bins))


class _CondResidual(nn.Module):
    def __init__(self, channels: int, bins: int, code: str = "thermometer") -> None:
        super().__init__()
        self.a = _CondConvBlock(channels, channels, bins, 3, code=code)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = ThermometerBatchNorm2d(channels, bins, code)

    def forward(self, x: Tensor, bins: Tensor) -> Tensor:
        return x + self.norm(self.conv(self.a(x, bins)), bins)


class ExaggerationGenerator(nn.Module):
    """Conditional encoder-decoder ``G(x, c)``: image and posterior bin -> edited image.

    Encoder: 3x3 conv (C0) -> 4x4/2 conv (2 C0) -> 4x4/2 conv (4 C0); residual blocks at 1/4
    resolution; decoder: upsample + 3x3 conv to 2 C0 (+ encoder skip at 1/2) and to C0 (+ skip
    at full size); every norm is a :class:`ThermometerBatchNorm2d` of the bin ``c``. The last
    3x3 conv is zero-initialised and its output is added in logit space,
    ``G(x, c) = sigmoid(h(x, c) + logit(clamp(x, 0.01, 0.99)))``, so training starts from the
    identity and learns edits (FEASIBILITY.md: without it the classifier is fooled by noise).

    Args:
        config (ExaggerationConfig): sizes; ``config.positive_class`` names the decision.

    Shapes:
        ``forward(images (N, C, H, W) in [0, 1], bins (N,) long in [0, B) or int) -> (N, C, H, W)``
        in (0, 1).

    Example:
        >>> g = ExaggerationGenerator(ExaggerationConfig(image_size=16, base_channels=4))
        >>> g(torch.rand(2, 1, 16, 16), torch.tensor([0, 9])).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(self, config: ExaggerationConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExaggerationConfig()
        c0, b = self.config.base_channels, self.config.num_bins
        k = self.config.conditioning
        self.enc0 = _CondConvBlock(self.config.channels, c0, b, 3, code=k)
        self.enc1 = _CondConvBlock(c0, 2 * c0, b, 4, stride=2, code=k)
        self.enc2 = _CondConvBlock(2 * c0, 4 * c0, b, 4, stride=2, code=k)
        self.blocks = nn.ModuleList(
            _CondResidual(4 * c0, b, k) for _ in range(self.config.residual_blocks)
        )
        self.dec1 = _CondConvBlock(4 * c0, 2 * c0, b, 3, upsample=True, code=k)
        self.dec0 = _CondConvBlock(2 * c0, c0, b, 3, upsample=True, code=k)
        self.out = nn.Conv2d(c0, self.config.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def bins_like(self, bins: Tensor | int, n: int, device: torch.device) -> Tensor:
        """Check ``bins`` (int or (N,) integer tensor in ``[0, B)``) and return (N,) long."""
        b = self.config.num_bins
        if isinstance(bins, bool) or not isinstance(bins, (int, Tensor)):
            raise TypeError(f"bins must be an int or an integer tensor, got {type(bins).__name__}")
        if isinstance(bins, int):
            bins = torch.full((n,), bins, dtype=torch.long)
        if bins.is_floating_point() or bins.dtype == torch.bool:
            raise TypeError(f"bins must be an integer tensor, got {bins.dtype}")
        if bins.dim() == 0:
            bins = bins.expand(n)
        if bins.shape != (n,):
            raise ValueError(f"bins must have shape ({n},), got {tuple(bins.shape)}")
        if n and (int(bins.min()) < 0 or int(bins.max()) >= b):
            raise ValueError(f"bins must lie in [0, {b}), got values in "
                             f"[{int(bins.min())}, {int(bins.max())}]")
        return bins.long().to(device)

    def check_inputs(self, images: Tensor, name: str = "images") -> None:
        """Validate images: (N, C, H, W) in [0, 1] with the configured C, H, W."""
        check_images(images, name)
        cfg = self.config
        expected = (cfg.channels, cfg.image_size, cfg.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"{name} must have shape (N, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}), got {tuple(images.shape)}")

    def forward(self, images: Tensor, bins: Tensor | int) -> Tensor:
        self.check_inputs(images.detach())
        bins = self.bins_like(bins, images.shape[0], images.device)
        e0 = self.enc0(images, bins)
        e1 = self.enc1(e0, bins)
        h = self.enc2(e1, bins)
        for block in self.blocks:
            h = block(h, bins)
        h = self.dec1(h, bins) + e1
        h = self.dec0(h, bins) + e0
        return identity_logit_output(self.out(h), images)


class ExaggerationDiscriminator(nn.Module):
    """Spectral-norm projection discriminator with one projection vector per thermometer bit.

    ``D(x, c) = w . phi(x) + sum_k t_k(c) <e_k, phi(x)>`` where ``phi`` is a stack of
    spectrally normalised 4x4/2 convolutions with leaky ReLUs and global sum pooling, ``t(c)``
    the thermometer code of bin ``c`` and ``e_k`` one learned embedding per bit (Miyato & Koyama,
    2018; the ordinal variant of the paper). Higher means "more real". With
    ``config.critic_conditioning == "onehot"`` ``t(c)`` is the one-hot code of ``c`` (one
    embedding per bin, the plain projection critic).

    Example:
        >>> d = ExaggerationDiscriminator(ExaggerationConfig(image_size=16, critic_channels=8))
        >>> d(torch.rand(2, 1, 16, 16), torch.tensor([0, 9])).shape
        torch.Size([2])
    """

    def __init__(self, config: ExaggerationConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExaggerationConfig()
        ch, layers, c_in = self.config.critic_channels, [], self.config.channels
        size, c_out = self.config.image_size, self.config.critic_channels
        while size > 4:
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2)]
            c_in, c_out, size = c_out, min(2 * c_out, 8 * ch), size // 2
        layers += [spectral_norm(nn.Conv2d(c_in, c_in, 3, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        bits = code_size(self.config.critic_conditioning, self.config.num_bins)
        self.embed = spectral_norm(nn.Linear(bits, c_in, bias=False))

    def forward(self, images: Tensor, bins: Tensor) -> Tensor:
        return self.scores(images, bins)[0]

    def scores(self, images: Tensor, bins: Tensor) -> tuple[Tensor, Tensor]:
        """``(D(x, c), u(x))``: the conditional score and its unconditional part ``w . phi(x)``.

        Both (N,), from one pass of the features; ``D(x, c) = u(x) + sum_k t_k(c) <e_k, phi(x)>``.
        """
        phi = self.features(images).sum(dim=(2, 3))  # (N, F)
        code = bin_code(bins, self.config.num_bins,
                        self.config.critic_conditioning).to(phi)  # (N, B-1) or (N, B)
        unconditional = self.linear(phi).squeeze(1)
        return unconditional + (self.embed(code) * phi).sum(1), unconditional
