"""GANMEX generator and critic: shapes, value range, identity start, input checks."""

from __future__ import annotations

import pytest
import torch

from captum_cf.generative import GANMEXConfig, GANMEXCritic, GANMEXGenerator

TINY = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                    num_residual=1, critic_channels=4, critic_layers=2)


def test_generator_starts_as_identity_for_every_target(device):
    g = GANMEXGenerator(TINY).to(device)
    x = torch.rand(4, 1, 8, 8).to(device)
    for t in range(3):
        torch.testing.assert_close(g(x, t), x.clamp(0.01, 0.99), atol=1e-6, rtol=0)


def test_generator_output_shape_range_and_class_dependence(device):
    g = GANMEXGenerator(TINY)
    torch.nn.init.normal_(g.head.weight, std=3.0)
    g = g.to(device)
    x = torch.rand(5, 1, 8, 8).to(device)
    with torch.no_grad():
        out0, out2 = g(x, 0), g(x, torch.tensor([2] * 5).to(device))
        mixed = g(x, torch.tensor([0, 2, 0, 2, 0]).to(device))
    assert out0.shape == x.shape and out0.device == device
    assert float(out0.min()) >= 0 and float(out0.max()) <= 1  # sigmoid: (0, 1) up to rounding
    assert not torch.allclose(out0, out2)  # the class planes reach the output
    # per-example targets: row i uses its own class
    torch.testing.assert_close(mixed[1], out2[1])
    torch.testing.assert_close(mixed[0], out0[0])


def test_critic_patch_scores_depend_on_class(device):
    d = GANMEXCritic(TINY).to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    s0, s1 = d(x, torch.tensor([0, 0]).to(device)), d(x, torch.tensor([1, 1]).to(device))
    assert s0.shape == (2, 1, 2, 2) and s0.device == device
    assert not torch.allclose(s0, s1)


def test_config_sizes_for_gpu_resolution():
    cfg = GANMEXConfig.for_images(128, 3, 5)
    assert (cfg.num_down, cfg.num_residual, cfg.base_channels) == (3, 6, 64)
    assert GANMEXConfig.for_images(32, 1, 10) == GANMEXConfig()


def test_bad_inputs_raise_clear_errors():
    g = GANMEXGenerator(TINY)
    with pytest.raises(ValueError, match=r"built for \(1, 8, 8\)"):
        g(torch.rand(1, 1, 16, 16), 0)
    with pytest.raises(ValueError, match=r"built for"):
        g(torch.rand(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"target must be class indices in \[0, 3\)"):
        g(torch.rand(2, 1, 8, 8), 3)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        g(torch.rand(1, 1, 8, 8) + 1, 0)
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* num_down"):
        GANMEXConfig(image_size=10, num_down=2)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        GANMEXConfig(num_classes=1)


MASKED = GANMEXConfig(**{**TINY.to_dict(), "edit": "mask"})


def test_masked_generator_shapes_range_and_identity_start(device):
    g = GANMEXGenerator(MASKED)
    x = torch.rand(3, 1, 8, 8)
    head = g.head.weight.detach().clone()
    torch.nn.init.normal_(head, std=3.0)  # drawn on the CPU: the same numbers on every device
    g, x = g.to(device), x.to(device)
    out, mask = g.edit(x, torch.tensor([0, 1, 2]).to(device))
    assert out.shape == x.shape and mask.shape == (3, 1, 8, 8)
    assert out.device == device and mask.device == device
    # content starts at clamp(x) and the mask at 1.2 * sigmoid(-2) - 0.1 = 0.0430
    torch.testing.assert_close(mask, torch.full_like(mask, 1.2 * torch.sigmoid(torch.tensor(-2.0))
                                                     .item() - 0.1))
    torch.testing.assert_close(out, x + mask * (x.clamp(0.01, 0.99) - x))
    with torch.no_grad():
        g.head.weight.copy_(head)
        out, mask = g.edit(x, 1)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert 0 <= float(mask.min()) and float(mask.max()) <= 1
    assert GANMEXGenerator(TINY).to(device).edit(x, 0)[1] is None  # full edit: no mask


def test_masked_generator_leaves_pixels_outside_the_mask_exactly_unchanged(device):
    g = GANMEXGenerator(MASKED)
    torch.nn.init.normal_(g.head.weight, std=2.0)
    g = g.to(device)
    x = torch.rand(4, 1, 8, 8).to(device)
    with torch.no_grad():
        out, mask = g.edit(x, 2)
    off = mask == 0
    assert off.any() and (~off).any()  # a partial mask: both kinds of pixel are present
    assert torch.equal(out[off], x[off])  # bit-exact, not just close
    assert not torch.allclose(out[~off], x[~off])
    with torch.no_grad():
        g.head.bias[-1] = -1e4  # mask 0 everywhere: G is exactly the identity
    assert torch.equal(g(x, 0), x)


def test_masked_generator_mask_gets_gradient_where_it_is_zero(device):
    g = GANMEXGenerator(MASKED)
    torch.nn.init.normal_(g.head.weight, std=0.5)  # content differs from x
    with torch.no_grad():
        g.head.weight[-1] *= 0.01
        g.head.bias[-1] = -6.0  # every mask pixel clamped to 0
    g = g.to(device)
    out, mask = g.edit(torch.rand(2, 1, 8, 8).to(device), 1)
    assert float(mask.detach().max()) == 0
    out.sum().backward()  # straight-through clamp: the mask logit still learns
    assert float(g.head.bias.grad[-1].abs()) > 0


def test_edit_option_defaults_to_full_for_old_configs():
    old = {k: v for k, v in TINY.to_dict().items() if k != "edit"}  # a file from before 'edit'
    assert GANMEXConfig(**old).edit == "full"
    g = GANMEXGenerator(GANMEXConfig(**old))
    assert g.head.out_channels == 1
    g.load_state_dict(GANMEXGenerator(TINY).state_dict())
    assert GANMEXGenerator(MASKED).head.out_channels == 2
    with pytest.raises(ValueError, match="edit must be one of"):
        GANMEXConfig(edit="sparse")


def test_masked_generator_output_stays_in_the_unit_interval_with_a_saturated_mask(device):
    g = GANMEXGenerator(MASKED)
    torch.nn.init.normal_(g.head.weight, std=0.5)
    with torch.no_grad():
        g.head.weight[-1] *= 0.01
        g.head.bias[-1] = 6.0  # mask clamped to exactly 1: the output is the content y
        out, mask = g.to(device).edit(torch.rand(3, 1, 8, 8).to(device), 0)
    assert torch.equal(mask, torch.ones_like(mask))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
