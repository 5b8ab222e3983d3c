"""Shared GAN pieces: layers, augmentation and losses."""

from __future__ import annotations

import pytest
import torch

from captum_cf.generative.layers import (
    ConditionalBatchNorm2d,
    ResidualBlock,
    class_planes,
    identity_logit_output,
    random_translate,
)
from captum_cf.generative.losses import (
    gradient_penalty,
    hinge_critic_loss,
    hinge_generator_loss,
    wgan_critic_loss,
)


def test_residual_block_with_zero_body_is_identity(device):
    block = ResidualBlock(4)
    torch.nn.init.zeros_(block.body[-2].weight)  # last conv -> norm(0) = beta = 0
    block = block.to(device)
    x = torch.rand(2, 4, 5, 5).to(device)
    out = block(x)
    assert out.device == x.device
    torch.testing.assert_close(out, x)


def test_conditional_batchnorm_uses_per_condition_scale_and_shift(device):
    cbn = ConditionalBatchNorm2d(2, num_conditions=3).eval()
    with torch.no_grad():
        cbn.gamma.weight[2] = torch.tensor([2.0, 3.0])
        cbn.beta.weight[2] = torch.tensor([1.0, -1.0])
    cbn = cbn.to(device)
    x = torch.rand(2, 2, 3, 3).to(device)
    out = cbn(x, torch.tensor([0, 2]).to(device))
    assert out.device == x.device
    out, x = out.cpu(), x.cpu()
    normed = x / (1 + 1e-5) ** 0.5  # eval mode: running mean 0, var 1
    torch.testing.assert_close(out[0], normed[0])
    torch.testing.assert_close(out[1], normed[1] * torch.tensor([2.0, 3.0])[:, None, None]
                               + torch.tensor([1.0, -1.0])[:, None, None])


def test_class_planes_are_one_hot(device):
    planes = class_planes(torch.tensor([2, 0]).to(device), 3, 2, 4)
    assert planes.shape == (2, 3, 2, 4) and planes.device == device
    assert torch.equal(planes[:, :, 1, 3].cpu(), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))


def test_identity_logit_output_with_zero_residual_is_clamped_input(device):
    x = torch.tensor([0.0, 0.3, 1.0]).view(1, 1, 1, 3).to(device)
    out = identity_logit_output(torch.zeros_like(x), x)
    assert out.device == device
    torch.testing.assert_close(out.cpu(), torch.tensor([0.01, 0.3, 0.99]).view(1, 1, 1, 3))


@pytest.mark.simdev  # the CPU pads; another device gathers with clamped indices
@pytest.mark.parametrize("shift", [1, 3])
def test_random_translate_shifts_whole_images_with_replicated_border(device, shift):
    x = torch.arange(25.0).view(1, 1, 5, 5).repeat(12, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    leaf = x.to(device).requires_grad_(True)
    out = random_translate(leaf, shift, g)
    assert out.device == leaf.device
    weight = torch.rand(out.shape)
    (grad,) = torch.autograd.grad((out * weight.to(device)).sum(), leaf)
    out, grad = out.detach().cpu(), grad.cpu()
    offsets = torch.randint(-shift, shift + 1, (12, 2), generator=torch.Generator().manual_seed(0))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        rows = (torch.arange(5) - dy).clamp(0, 4)
        cols = (torch.arange(5) - dx).clamp(0, 4)
        assert torch.equal(out[i, 0], x[i, 0][rows][:, cols])
        want = torch.zeros(25).index_add_(0, (rows[:, None] * 5 + cols[None, :]).flatten(),
                                          weight[i, 0].flatten())
        torch.testing.assert_close(grad[i, 0].flatten(), want)
    assert random_translate(x, 0) is x


def test_gradient_penalty_of_linear_critic_is_hand_computed(device):
    w = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 1, 2, 2).to(device)  # ||grad|| = 5
    gp = gradient_penalty(lambda z: (z * w).sum((1, 2, 3)), torch.rand(3, 1, 2, 2).to(device),
                          torch.rand(3, 1, 2, 2).to(device))
    assert gp.device == device and float(gp) == 16.0


def test_wgan_and_hinge_losses(device):
    real, fake = torch.tensor([2.0, 0.5]).to(device), torch.tensor([-2.0, 0.0]).to(device)
    assert float(wgan_critic_loss(real, fake)) == -2.25
    assert float(hinge_critic_loss(real, fake)) == (0 + 0.5) / 2 + (0 + 1) / 2
    assert float(hinge_generator_loss(fake)) == 1.0
