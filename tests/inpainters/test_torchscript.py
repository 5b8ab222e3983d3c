"""TorchScriptInpainter: round trip with tiny scripted modules, padding, grey images, errors."""

from __future__ import annotations

import pytest
import torch
from inpainting_networks import MeanFill
from torch import Tensor, nn

from captum_cf.baselines import InpaintBaseline
from captum_cf.inpainters import Inpainter, TorchScriptInpainter

#: torch.jit.load builds a scripted module's tensors in C++, where the simulated device
#: (tests/simulated_device.py) cannot place them
pytestmark = pytest.mark.no_simdev("TorchScript modules are loaded onto a device in C++")


class _Multiple8(nn.Module):
    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        if image.shape[-1] % 8 != 0 or image.shape[-2] % 8 != 0:
            raise ValueError("size must be a multiple of 8")
        return image * (1 - mask) + 0.25 * mask


class _OneArg(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class _ThreeArgs(nn.Module):
    def forward(self, image: Tensor, mask: Tensor, strength: Tensor) -> Tensor:
        return image * strength


class _WrongShape(nn.Module):
    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return image[:, :1]


def _save(module: nn.Module, tmp_path, name: str = "net.pt"):
    path = tmp_path / name
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_round_trip_matches_the_eager_module(tmp_path, device):
    eager = MeanFill()
    inpainter = TorchScriptInpainter(_save(eager, tmp_path), device=device)
    assert isinstance(inpainter, Inpainter) and not inpainter.model.training
    assert all(p.device == device for p in inpainter.model.parameters())
    x = torch.rand(2, 3, 10, 12).to(device)
    hole = torch.zeros(2, 1, 10, 12, device=device)
    hole[..., 2:6, 3:9] = 1
    out = inpainter(x, hole)
    assert out.device == device
    torch.testing.assert_close(out, eager.to(device)(x, hole))


def test_inpaint_baseline_with_scripted_network_keeps_kept_pixels(tmp_path, device):
    baseline = InpaintBaseline(TorchScriptInpainter(_save(MeanFill(), tmp_path), device=device))
    x = torch.rand(2, 3, 8, 8).to(device)
    keep = (torch.rand(2, 1, 8, 8) > 0.5).float().to(device)
    out = baseline.fill(x, keep)
    assert out.device == device
    k = keep.expand_as(x).bool()
    assert torch.equal(out[k], x[k])
    known = keep.expand_as(x)
    mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
    torch.testing.assert_close(out[~k], mean.expand_as(x)[~k])


def test_mask_value_hole_zero_inverts_the_mask(tmp_path, device):
    inpainter = TorchScriptInpainter(_save(MeanFill(), tmp_path), device=device, mask_value_hole=0)
    x = torch.rand(1, 3, 6, 6).to(device)
    hole = torch.zeros(1, 1, 6, 6, device=device)
    hole[..., :3] = 1
    out = inpainter(x, hole)  # the network sees mask 1 on the right half: it fills that half
    assert torch.equal(out[..., :3], x[..., :3])
    assert not torch.equal(out[..., 3:], x[..., 3:])


def test_grey_images_are_broadcast_to_three_channels(tmp_path, device):
    inpainter = TorchScriptInpainter(_save(MeanFill(), tmp_path), device=device)
    x = torch.rand(2, 1, 7, 9).to(device)
    hole = torch.zeros(2, 1, 7, 9, device=device)
    hole[..., 3:, :] = 1
    out = inpainter(x, hole)
    assert out.shape == x.shape and out.device == device
    torch.testing.assert_close(out, MeanFill().to(device)(x, hole))
    with pytest.raises(ValueError, match="images must have 1 or 3 channels"):
        inpainter(torch.rand(1, 2, 4, 4).to(device), torch.zeros(1, 1, 4, 4, device=device))


def test_pad_to_makes_arbitrary_sizes_work(tmp_path, device):
    path = _save(_Multiple8(), tmp_path)
    with pytest.raises(torch.jit.Error, match="size must be a multiple of 8"):
        TorchScriptInpainter(path)(torch.rand(1, 3, 9, 9), torch.zeros(1, 1, 9, 9))
    inpainter = TorchScriptInpainter(path, pad_to=8)
    for size in [(5, 7), (13, 20), (1, 3)]:
        x = torch.rand(1, 3, *size, dtype=torch.float64).to(device)
        hole = torch.zeros(1, 1, *size, dtype=torch.float64, device=device)
        hole[..., 0, 0] = 1
        out = inpainter(x, hole)
        assert out.shape == x.shape and out.dtype == torch.float64  # back from the float32 net
        assert out.device == device
        assert float(out[0, 0, 0, 0]) == 0.25
        torch.testing.assert_close(out[..., 1:], x[..., 1:], rtol=0, atol=1e-7)


def test_gradients_flow_through_the_scripted_network(tmp_path, device):
    inpainter = TorchScriptInpainter(_save(MeanFill(), tmp_path), device=device)
    x = torch.rand(1, 3, 6, 6).to(device).requires_grad_(True)
    hole = torch.zeros(1, 1, 6, 6, device=device)
    hole[..., :2, :2] = 1
    inpainter(x, hole)[..., 0, 0].sum().backward()
    assert x.grad is not None and float(x.grad[..., 0, 0].abs().sum()) == 0
    assert float(x.grad.sum()) == pytest.approx(3.0, abs=1e-5)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="big-lama.pt"):
        TorchScriptInpainter(tmp_path / "big-lama.pt")


def test_not_a_torchscript_archive(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="is not a TorchScript archive"):
        TorchScriptInpainter(path)


@pytest.mark.parametrize("module", [_OneArg(), _ThreeArgs()])
def test_wrong_signature(tmp_path, module):
    with pytest.raises(TypeError, match=r"must have forward\(image: Tensor, mask: Tensor\)"):
        TorchScriptInpainter(_save(module, tmp_path))


def test_wrong_output_shape_fails_the_dry_run(tmp_path, device):
    with pytest.raises(ValueError, match=r"failed a dry run.*returned \(1, 1, 32, 32\)"):
        TorchScriptInpainter(_save(_WrongShape(), tmp_path), device=device)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask_value_hole": 2}, "mask_value_hole must be 1 or 0"),
        ({"pad_to": 0}, "pad_to must be a positive int"),
        ({"channels": 0}, "channels must be a positive int"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchScriptInpainter(tmp_path / "unused.pt", **kwargs)
