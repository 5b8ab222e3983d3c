"""captum_cf._ops: the resize and shift whose backward is deterministic on a GPU equal the
PyTorch operations they replace; uint8 images convert to the same bits on every device."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from captum_cf._ops import _bilinear_matrix, bilinear_resize, shift_replicate
from captum_cf.training.data import unit_images


@pytest.mark.simdev
@pytest.mark.parametrize(("src", "dst"), [((4, 4), (32, 32)), ((7, 5), (16, 33)),
                                          ((32, 30), (8, 9)), ((1, 3), (4, 4)), ((6, 6), (6, 6))])
def test_the_matrix_resize_is_pytorchs_bilinear_resize(device, src, dst) -> None:
    x = torch.rand(2, 3, *src, dtype=torch.float64).to(device)
    rows = _bilinear_matrix(src[0], dst[0], x.dtype, x.device)
    cols = _bilinear_matrix(src[1], dst[1], x.dtype, x.device)
    want = F.interpolate(x, size=dst, mode="bilinear", align_corners=False)
    torch.testing.assert_close(rows @ x @ cols.t(), want, rtol=0, atol=1e-12)
    # with a gradient off the CPU the products run (and equal it); else F.interpolate itself
    leaf = x.clone().requires_grad_(True)
    got = bilinear_resize(leaf, dst)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(got.square().sum(), leaf)
    (ref,) = torch.autograd.grad(
        F.interpolate(leaf, size=dst, mode="bilinear", align_corners=False).square().sum(), leaf)
    torch.testing.assert_close(grad, ref, rtol=0, atol=1e-12)


@pytest.mark.simdev
def test_the_resize_gives_the_same_gradient_twice(device) -> None:
    mask = torch.rand(3, 1, 7, 7).to(device).requires_grad_(True)
    weight = torch.rand(3, 1, 64, 64).to(device)
    grads = [torch.autograd.grad((bilinear_resize(mask, (64, 64)) * weight).sum(), mask)[0]
             for _ in range(2)]
    assert torch.equal(grads[0], grads[1]) and grads[0].device == mask.device


@pytest.mark.simdev
def test_shift_replicate_is_replicate_padding_and_a_crop(device) -> None:
    x = torch.rand(2, 3, 5, 6).to(device)
    pad = 8
    padded = F.pad(x, (pad,) * 4, mode="replicate")
    for dy in range(-7, 8):
        for dx in (-7, -2, 0, 1, 6, 7):
            want = padded[..., pad - dy : pad - dy + 5, pad - dx : pad - dx + 6]
            got = shift_replicate(x, dy, dx)
            assert got.device == x.device and torch.equal(got, want), (dy, dx)


@pytest.mark.simdev
def test_uint8_images_convert_to_the_cpus_bits_on_every_device(device) -> None:
    """CUDA divides by a number as a product with its reciprocal: 126 of the 256 quotients
    differed from the CPU's in the last bit, and a model trained on a uint8 set on a GPU
    differed from one trained on its float copy."""
    u8 = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    want = u8.float() / 255.0  # on the CPU: correctly rounded
    got = unit_images(u8.to(device))
    assert got.dtype == torch.float32 and got.device == u8.to(device).device
    assert torch.equal(got.cpu(), want)
