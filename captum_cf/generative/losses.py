"""GAN losses shared by the trainers of captum_cf: WGAN-GP and hinge.

Conventions: a critic returns a score per example (or per patch); higher means "more real".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "hinge_critic_loss",
    "hinge_generator_loss",
]


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al., 2017) on random interpolates of real and fake images.

    ``x_hat = eps * real + (1 - eps) * fake`` with ``eps ~ U(0, 1)`` per example, and
    ``GP = E[(||grad_x_hat D(x_hat)||_2 - 1)^2]``. Patch critics are reduced by their mean per
    example first, so the penalty constrains the critic's overall score.

    Args:
        critic (callable): image batch (N, C, H, W) -> scores (N, ...); bind class conditions
            with a lambda or ``functools.partial``.
        real (Tensor): shape (N, C, H, W).
        fake (Tensor): shape (N, C, H, W), detached from the generator.
        generator (torch.Generator, optional): source of ``eps``.

    Returns:
        Tensor: scalar penalty (multiply by the weight, usually 10).

    Example:
        >>> critic = lambda x: x.flatten(1).sum(1)  # gradient norm sqrt(numel) per example
        >>> gp = gradient_penalty(critic, torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))
        >>> round(float(gp), 4)  # (sqrt(4) - 1)^2
        1.0
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(mixed).reshape(real.shape[0], -1).mean(1)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``E[D(fake)] - E[D(real)]`` (minimised by the critic)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-E[D(fake)]`` (minimised by the generator)."""
    return -fake_scores.mean()


def hinge_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``E[relu(1 - D(real))] + E[relu(1 + D(fake))]`` (Lim & Ye, 2017; SN-GAN, BigGAN)."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-E[D(fake)]``, the generator side of the hinge loss."""
    return -fake_scores.mean()
