"""GANMEX models: a StarGAN-style class-translation generator and a class-aware PatchGAN critic.

Shih, Tien & Karnin, "GANMEX: One-vs-One Attributions using GAN-based Model Explainability",
ICML 2021. A generator ``G(x, t)`` trained with the classifier to be explained in the loop maps
an image ``x`` of class ``c`` to the closest realistic image of class ``t``; that image is the
baseline for "why ``c`` and not ``t``". See :class:`captum_cf.generative.GANMEXTrainer` for the
losses and :class:`captum_cf.baselines.GANMEXBaseline` for its use in attributions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._validation import check_images, check_target
from captum_cf.generative.layers import (
    DownBlock,
    ResidualBlock,
    UpBlock,
    class_planes,
    identity_logit_output,
)

__all__ = ["GANMEXConfig", "GANMEXGenerator", "GANMEXCritic"]

#: values of :attr:`GANMEXConfig.edit`
EDIT_MODES = ("full", "mask")
#: stretch of the hard-sigmoid mask: ``m = clamp((1 + 2 d) sigmoid(z) - d, 0, 1)``
MASK_STRETCH = 0.1
#: initial mask logit: sigmoid(-2) = 0.12, so m starts at 0.03 (still differentiable, not 0)
MASK_INIT_LOGIT = -2.0


@dataclass
class GANMEXConfig:
    """Sizes of a GANMEX generator and critic.

    Attributes:
        image_size (int): H = W of the images the models are built for; divisible by
            ``2 ** num_down`` and ``2 ** critic_layers``.
        channels (int): image channels (1 grey, 3 colour).
        num_classes (int): classes of the classifier being explained.
        base_channels (int): channels after the first 7x7 convolution; doubled per down step.
        num_down (int): stride-2 down-sampling steps (and as many up-sampling steps).
        num_residual (int): residual blocks at the bottleneck.
        critic_channels (int): channels of the critic's first layer; doubled per layer.
        critic_layers (int): stride-2 layers of the critic; its patches are
            ``image_size / 2 ** critic_layers`` wide.
        edit (str): ``"full"`` (default): the generator may change every pixel;
            ``"mask"``: attention-masked edit ``G(x, t) = m * y + (1 - m) * x`` with a
            one-channel mask ``m`` that is exactly 0 outside the edited region (see
            :class:`GANMEXGenerator`). Files saved before this option existed load as ``"full"``.

    The defaults (1.2M generator parameters) train on 32-64 px images on a CPU; use
    :meth:`for_images` to size one, e.g. ``base_channels=64, num_down=3, num_residual=6`` at
    128+ px on a GPU.
    """

    image_size: int = 32
    channels: int = 1
    num_classes: int = 10
    base_channels: int = 32
    num_down: int = 2
    num_residual: int = 3
    critic_channels: int = 32
    critic_layers: int = 3
    edit: str = "full"

    def __post_init__(self) -> None:
        if self.edit not in EDIT_MODES:
            raise ValueError(f"GANMEXConfig.edit must be one of {EDIT_MODES}, got {self.edit!r}")
        for name in ("image_size", "channels", "base_channels", "critic_channels", "critic_layers"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"GANMEXConfig.{name} must be positive, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"GANMEXConfig.num_classes must be >= 2, got {self.num_classes}")
        if self.num_down < 0 or self.num_residual < 0:
            raise ValueError("GANMEXConfig.num_down and num_residual must be >= 0")
        for name, layers in (("num_down", self.num_down), ("critic_layers", self.critic_layers)):
            if self.image_size % (2**layers):
                raise ValueError(
                    f"GANMEXConfig.image_size ({self.image_size}) must be divisible by 2 ** {name} "
                    f"({2**layers})"
                )

    @classmethod
    def for_images(
        cls, image_size: int, channels: int, num_classes: int, **overrides: Any
    ) -> GANMEXConfig:
        """A config sized for the image size: CPU-friendly up to 64 px, deeper above."""
        sizes: dict[str, Any] = {}
        if image_size >= 128:
            sizes = {
                "base_channels": 64,
                "num_down": 3,
                "num_residual": 6,
                "critic_channels": 64,
                "critic_layers": 4,
            }
        sizes.update(overrides)
        return cls(image_size=image_size, channels=channels, num_classes=num_classes, **sizes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GANMEXGenerator(nn.Module):
    """StarGAN-style translator ``G(x, t)``: image and target-class planes in, image of class t out.

    Architecture: concat(x, one_hot(t) planes) -> 7x7 conv -> ``num_down`` stride-2 convs ->
    ``num_residual`` residual blocks -> ``num_down`` upsample+conv -> 7x7 conv ``h`` (zero
    initialised) -> ``y = sigmoid(h + logit(clamp(x, 0.01, 0.99)))``. The output lies in (0, 1)
    and at initialisation equals the (clamped) input: training learns edits of ``x``.

    With ``config.edit == "mask"`` (attention-guided translation as in GANimation, Pumarola et
    al. 2018) the head has one more channel ``z`` and

    ``m = clamp((1 + 2 delta) * sigmoid(z) - delta, 0, 1)`` and
    ``G(x, t) = m * y + (1 - m) * x``,

    with ``delta = 0.1`` (a hard, stretched sigmoid as in Louizos et al. 2018). The mask is
    *exactly* 0 where ``z < -2.4`` (the backward pass uses the unclamped gradient, so such a
    pixel can still be switched on), so there ``G(x, t) == x`` and an attribution
    ``(x - x') * grad`` vanishes outside the edit; a plain sigmoid mask would leave a faint edit
    everywhere. ``z`` starts at -2 (``m = 0.04``, still differentiable); since ``y`` starts at
    ``x`` the untrained generator is the identity either way. :class:`GANMEXTrainer` adds a
    sparsity term ``lambda_mask * mean(m)`` (and optionally total variation of ``m``).

    Args:
        config (GANMEXConfig): sizes and edit mode.

    Example:
        >>> g = GANMEXGenerator(GANMEXConfig(image_size=16, num_classes=3, base_channels=8))
        >>> x = torch.rand(2, 1, 16, 16)
        >>> out = g(x, torch.tensor([0, 2]))
        >>> out.shape, bool((out - x.clamp(0.01, 0.99)).abs().max() < 1e-5)
        (torch.Size([2, 1, 16, 16]), True)
    """

    def __init__(self, config: GANMEXConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels + config.num_classes, c, 7, padding=3, bias=False),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(inplace=True),
        ]
        for _ in range(config.num_down):
            layers.append(DownBlock(c, 2 * c))
            c *= 2
        layers += [ResidualBlock(c) for _ in range(config.num_residual)]
        for _ in range(config.num_down):
            layers.append(UpBlock(c, c // 2))
            c //= 2
        self.body = nn.Sequential(*layers)
        masked = config.edit == "mask"
        self.head = nn.Conv2d(c, config.channels + int(masked), 7, padding=3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if masked:
            with torch.no_grad():
                self.head.bias[-1] = MASK_INIT_LOGIT

    def forward(self, images: Tensor, target: Any) -> Tensor:
        """Translate ``images`` to class ``target``.

        Args:
            images (Tensor): shape (N, C, S, S) with C = ``config.channels`` and S =
                ``config.image_size``, in [0, 1].
            target (int, sequence or Tensor): class index per example, in ``[0, num_classes)``.

        Returns:
            Tensor: shape (N, C, S, S), in [0, 1] ((0, 1) for ``edit="full"``).
        """
        return self.edit(images, target)[0]

    def edit(self, images: Tensor, target: Any) -> tuple[Tensor, Tensor | None]:
        """Counterfactual and its edit mask: ``(G(x, t), m)``.

        Returns:
            tuple: the counterfactual, shape (N, C, S, S), and the mask ``m``, shape
            (N, 1, S, S) in [0, 1] for ``edit="mask"`` (``None`` for ``edit="full"``).
        """
        self.check_inputs(images)
        cfg = self.config
        t = check_target(target, images.shape[0], cfg.num_classes).to(images.device)
        planes = class_planes(t, cfg.num_classes, cfg.image_size, cfg.image_size).to(images)
        head = self.head(self.body(torch.cat([images, planes], dim=1)))
        content = identity_logit_output(head[:, : cfg.channels], images)
        if cfg.edit == "full":
            return content, None
        soft = (1 + 2 * MASK_STRETCH) * torch.sigmoid(head[:, cfg.channels :]) - MASK_STRETCH
        # straight-through clamp: exactly 0 / 1 forward (soft - soft.detach() is exactly 0), the
        # stretched sigmoid's gradient backward, so a pixel whose mask reached 0 can still be
        # switched on by the class loss
        mask = soft.clamp(0, 1) + (soft - soft.detach())
        return mask * content + (1 - mask) * images, mask

    def check_inputs(self, images: Tensor, name: str = "images") -> None:
        """Raise a ValueError unless ``images`` fit the channels and size of the model."""
        check_images(images, name)
        cfg = self.config
        expected = (cfg.channels, cfg.image_size, cfg.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"{name} have shape (C, H, W) = {tuple(images.shape[1:])}, but this GANMEX "
                f"generator was built for {expected}; resize the images or train a generator "
                "for that size"
            )


class GANMEXCritic(nn.Module):
    """Class-aware PatchGAN critic with a projection term (Miyato & Koyama, 2018).

    ``D(x, t)[p] = w . phi(x)[p] + embed(t) . phi(x)[p]`` for every patch ``p`` of the feature
    map ``phi(x)`` (stride-2 4x4 convs with LeakyReLU, no normalisation, as WGAN-GP requires).
    Its real samples for condition ``t`` are training images of class ``t``, so it judges
    "is this a realistic image *of class t*", not just "is this realistic".

    Args:
        config (GANMEXConfig): sizes.

    Returns of ``forward``:
        Tensor: scores, shape (N, 1, S / 2**L, S / 2**L); higher = more real.
    """

    def __init__(self, config: GANMEXConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in, c = config.channels, config.critic_channels
        for i in range(config.critic_layers):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in, c = c, c * 2 if i < config.critic_layers - 1 else c
        self.features = nn.Sequential(*layers)
        self.linear = nn.Conv2d(c_in, 1, 1)
        self.embed = nn.Embedding(config.num_classes, c_in)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, images: Tensor, target: Tensor) -> Tensor:
        h = self.features(images)
        projection = (self.embed(target)[:, :, None, None] * h).sum(1, keepdim=True)
        return self.linear(h) + projection
