"""GANMEX generator and critic: shapes, value range, identity start, input checks."""

from __future__ import annotations

import pytest
import torch

from captum_cf.generative import GANMEXConfig, GANMEXCritic, GANMEXGenerator

TINY = GANMEXConfig(image_size=8, channels=1, num_classes=3, base_channels=4, num_down=1,
                    num_residual=1, critic_channels=4, critic_layers=2)


def test_generator_starts_as_identity_for_every_target():
    g = GANMEXGenerator(TINY)
    x = torch.rand(4, 1, 8, 8)
    for t in range(3):
        torch.testing.assert_close(g(x, t), x.clamp(0.01, 0.99), atol=1e-6, rtol=0)


def test_generator_output_shape_range_and_class_dependence():
    g = GANMEXGenerator(TINY)
    torch.nn.init.normal_(g.head.weight, std=3.0)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        out0, out2 = g(x, 0), g(x, torch.tensor([2] * 5))
        mixed = g(x, torch.tensor([0, 2, 0, 2, 0]))
    assert out0.shape == x.shape
    assert float(out0.min()) >= 0 and float(out0.max()) <= 1  # sigmoid: (0, 1) up to rounding
    assert not torch.allclose(out0, out2)  # the class planes reach the output
    # per-example targets: row i uses its own class
    torch.testing.assert_close(mixed[1], out2[1])
    torch.testing.assert_close(mixed[0], out0[0])


def test_critic_patch_scores_depend_on_class():
    d = GANMEXCritic(TINY)
    x = torch.rand(2, 1, 8, 8)
    s0, s1 = d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1]))
    assert s0.shape == (2, 1, 2, 2)
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
