"""NetworkInpainter, ExportedInpainter and inpainter_from_file: a user's inpainting network."""

from __future__ import annotations

import pytest
import torch
from inpainting_networks import MeanFill
from torch import Tensor, nn

from captum_cf.inpainters import (
    ExportedInpainter,
    Inpainter,
    NetworkInpainter,
    TorchScriptInpainter,
    inpainter_from_file,
)
from captum_cf.inpainters.network import network_file_kind


class _Strided(nn.Module):
    """Downsamples by 4 and back, as inpainting networks do: sides must be multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(4, 4, 4, stride=4)
        self.up = nn.ConvTranspose2d(4, 3, 4, stride=4)
        self.drop = nn.Dropout(0.5)

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        h = self.up(self.drop(self.down(torch.cat([image * (1 - mask), mask], 1))))
        return image * (1 - mask) + torch.sigmoid(h) * mask


class _Grey(nn.Module):
    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        if image.shape[1] != 1:
            raise ValueError("one channel only")
        return image * (1 - mask) + 0.5 * mask


def _dims(multiple):
    n, h, w = (torch.export.Dim(k) for k in "nhw")
    if multiple > 1:  # a network that downsamples takes multiples of its stride only
        h, w = multiple * h, multiple * w
    return {"image": {0: n, 2: h, 3: w}, "mask": {0: n, 2: h, 3: w}}


def _export(module, path, shape=(2, 3, 16, 16), dynamic=True, multiple=1):
    n, c, h, w = shape
    args = (torch.rand(n, c, h, w), torch.zeros(n, 1, h, w))
    shapes = _dims(multiple) if dynamic else None
    program = torch.export.export(module.eval(), args, dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


def _holes(n, h, w, device):
    hole = torch.zeros(n, 1, h, w, device=device)
    hole[..., h // 3 : h // 2, w // 4 :] = 1
    return hole


def test_a_callers_network_is_adapted_and_left_as_it_was(device):
    net = _Strided().to(device).train()
    flags = [p.requires_grad for p in net.parameters()]
    inpainter = NetworkInpainter(net, check_size=16)
    assert isinstance(inpainter, Inpainter)
    x = torch.rand(3, 3, 16, 16, device=device)
    hole = _holes(3, 16, 16, device)
    out = inpainter(x, hole)
    with torch.no_grad():
        expected = net.eval()(x, hole).clamp(0, 1)  # eval mode: dropout off
    net.train()
    torch.testing.assert_close(out, expected)
    assert net.training and [p.requires_grad for p in net.parameters()] == flags
    with pytest.raises(ValueError, match="failed a dry run"):
        NetworkInpainter(net, check_size=10)  # 10 is not a multiple of 4
    assert net.training and [p.requires_grad for p in net.parameters()] == flags


def test_a_callers_exported_module_is_run_without_mode_changes(tmp_path, device):
    # the module of an exported program refuses train()/eval(): its mode was fixed at export
    module = torch.export.load(str(_export(MeanFill(), tmp_path / "m.pt2"))).module()

    class _Wrapper(nn.Module):  # also when it is inside a module of the caller's
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, image, mask):
            return self.inner(image, mask)

    wrapped = _Wrapper()
    for net in (module, wrapped):
        inpainter = NetworkInpainter(net.to(device))
        x = torch.rand(2, 3, 5, 5, device=device)
        hole = _holes(2, 5, 5, device)
        torch.testing.assert_close(inpainter(x, hole), MeanFill().to(device)(x, hole))
    with pytest.raises(NotImplementedError):
        module.eval()


def test_a_network_without_parameters_follows_the_images(device):
    # device and dtype of a function or a parameter-free module are the images' own (they were
    # CPU float32 whatever the images: float64 values rounded, CUDA images moved off the GPU)
    def tiny_fill(image, mask):
        return image * (1 - mask) + (0.5 + 1e-12) * mask

    class _Fill(nn.Module):  # a module without parameters
        def forward(self, image, mask):
            return tiny_fill(image, mask)

    for net in (tiny_fill, _Fill()):
        inpainter = NetworkInpainter(net, check=False)
        x = torch.rand(2, 3, 6, 6, device=device, dtype=torch.float64)
        hole = _holes(2, 6, 6, device).double()
        out = inpainter(x, hole)
        assert out.device == device and out.dtype == torch.float64
        assert float(out[0, 0, 2, 3] - 0.5) == pytest.approx(1e-12, rel=1e-3)


def test_a_network_that_works_in_place_does_not_change_the_callers_images(device):
    class _InPlace(nn.Module):
        def forward(self, image, mask):
            return image.mul_(1 - mask).add_(0.25 * mask)

    class _InPlace64(_InPlace):  # a network in another dtype: the images are converted
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    for net in (_InPlace(), _InPlace64().to(device)):
        for c in (3, 1):  # the RGB images themselves, grey ones repeated to three channels
            x = torch.rand(2, c, 6, 6, device=device)
            before = x.clone()
            out = NetworkInpainter(net, check=False)(x, _holes(2, 6, 6, device))
            assert torch.equal(x, before) and not torch.equal(out, before)


def test_the_callers_modules_beside_an_exported_program_run_in_eval_mode(tmp_path, device):
    module = torch.export.load(str(_export(MeanFill(), tmp_path / "m.pt2"))).module()

    class _Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.drop = module, nn.Dropout(0.9)

        def forward(self, image, mask):
            return self.drop(self.inner(image, mask))

    net = _Noisy().to(device)  # in training mode, as built (.train() would reach the program)
    inpainter = NetworkInpainter(net, check=False)
    x, hole = torch.rand(2, 3, 5, 5, device=device), _holes(2, 5, 5, device)
    torch.testing.assert_close(inpainter(x, hole), inpainter(x, hole))  # dropout off
    assert net.training and net.drop.training  # and restored
    inpainter.eval().train()  # the inpainter's own flag: no call reaches the program's train()
    assert inpainter.training and net.training


def test_adapt_finds_the_padding_the_network_needs(device):
    net = _Strided().to(device)
    inpainter = NetworkInpainter(net, check=False).adapt((3, 10, 13))
    assert inpainter.pad_to == 8 and inpainter.fixed_batch is None  # 4 is not tried; 8 works
    x = torch.rand(2, 3, 10, 13, device=device)
    out = inpainter(x, _holes(2, 10, 13, device))
    assert out.shape == x.shape and out.device == device
    with pytest.raises(ValueError, match=r"cannot fill images of shape \(2, 8, 8\)"):
        NetworkInpainter(net, check=False).adapt((2, 8, 8))  # two channels: no setting fits
    assert inpainter.adapt((3, 16, 16)).pad_to == 8  # the current setting is tried first


def test_adapt_gives_grey_images_to_a_grey_network(device):
    inpainter = NetworkInpainter(_Grey(), check=False).adapt((1, 6, 6))
    assert inpainter.channels == 1
    x = torch.rand(2, 1, 6, 6, device=device)
    hole = _holes(2, 6, 6, device)
    torch.testing.assert_close(inpainter(x, hole), x * (1 - hole) + 0.5 * hole)


def test_fixed_batch_calls_the_network_on_exactly_that_many_images(device):
    calls = []

    class _Counting(MeanFill):
        def forward(self, image, mask):
            calls.append(image.shape[0])
            return super().forward(image, mask)

    net = _Counting().to(device)
    x = torch.rand(5, 3, 6, 6, device=device)
    hole = _holes(5, 6, 6, device)
    inpainter = NetworkInpainter(net, fixed_batch=2, check=False)
    out = inpainter(x, hole)
    assert calls == [2, 2, 2]  # the last call filled up with a copy of the fifth image
    torch.testing.assert_close(out, MeanFill().to(device)(x, hole))


def test_exported_program_with_dynamic_shapes_matches_the_eager_network(tmp_path, device):
    path = _export(MeanFill(), tmp_path / "mean.pt2")
    assert network_file_kind(path) == "export"
    inpainter = ExportedInpainter(path, device=device).eval()  # the program's mode is fixed
    assert inpainter.fixed_batch is None and inpainter.channels == 3 and not inpainter.training
    assert all(p.device == device and not p.requires_grad for p in inpainter.model.parameters())
    x = torch.rand(3, 3, 9, 14, device=device, requires_grad=True)
    hole = _holes(3, 9, 14, device)
    out = inpainter(x, hole)
    assert out.device == device
    torch.testing.assert_close(out, MeanFill().to(device)(x, hole))  # same (zero) bias
    out[..., 0, 0].sum().backward()  # gradients reach the inputs through the program
    assert float(x.grad.abs().sum()) > 0


def test_exported_program_with_static_shapes(tmp_path, device):
    path = _export(MeanFill(), tmp_path / "static.pt2", shape=(2, 3, 8, 8), dynamic=False)
    inpainter = ExportedInpainter(path, device=device)
    assert inpainter.fixed_batch == 2 and inpainter.channels == 3
    x = torch.rand(3, 3, 8, 8, device=device)  # 3 images: calls of 2 and 1 + a copy
    hole = _holes(3, 8, 8, device)
    torch.testing.assert_close(inpainter(x, hole), MeanFill().to(device)(x, hole))
    with pytest.raises(ValueError, match=r"exported for images of 8x8 only .* got 12x12"):
        inpainter(torch.rand(2, 3, 12, 12, device=device), _holes(2, 12, 12, device))
    with pytest.raises(ValueError, match=r"cannot fill images of shape \(3, 12, 12\).*8x8 only"):
        inpainter.adapt((3, 12, 12))
    assert inpainter.pad_to is None  # a failed adapt keeps the settings


@pytest.mark.no_simdev("TorchScript modules are loaded onto a device in C++")
def test_files_are_told_apart_and_adapted_to_the_images(tmp_path, device):
    exported = _export(_Strided(), tmp_path / "net.pt2", shape=(2, 3, 16, 16), multiple=4)
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(_Strided().eval()), str(scripted))
    state = tmp_path / "weights.pt"
    torch.save(_Strided().state_dict(), state)
    assert network_file_kind(scripted) == "torchscript"
    assert network_file_kind(state) is None
    for path, cls in ((exported, ExportedInpainter), (scripted, TorchScriptInpainter)):
        inpainter = inpainter_from_file(path, (3, 18, 18), device=device)
        assert type(inpainter) is cls and inpainter.pad_to == 8
        out = inpainter(torch.rand(2, 3, 18, 18, device=device), _holes(2, 18, 18, device))
        assert out.shape == (2, 3, 18, 18) and out.device == device
    with pytest.raises(ValueError, match="neither a TorchScript archive .* nor a torch.export"):
        inpainter_from_file(state, (3, 20, 20))
    with pytest.raises(FileNotFoundError, match="missing.pt2"):
        inpainter_from_file(tmp_path / "missing.pt2", (3, 20, 20))
    with pytest.raises(ValueError, match="not a torch.export archive.*use TorchScriptInpainter"):
        ExportedInpainter(scripted)
    with pytest.raises(ValueError, match="not a TorchScript archive.*use ExportedInpainter"):
        TorchScriptInpainter(exported)


def test_an_exported_program_must_take_image_and_mask(tmp_path):
    class _One(nn.Module):
        def forward(self, image):
            return image

    program = torch.export.export(_One(), (torch.rand(1, 3, 8, 8),))
    torch.export.save(program, str(tmp_path / "one.pt2"))
    with pytest.raises(TypeError, match=r"must take two inputs \(image, mask\)"):
        ExportedInpainter(tmp_path / "one.pt2")


def test_non_finite_output_fails_the_dry_run():
    class _NaN(nn.Module):
        def forward(self, image, mask):
            return image / (mask - mask)

    with pytest.raises(ValueError, match="non-finite"):
        NetworkInpainter(_NaN())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fixed_batch": 0}, "fixed_batch must be a positive int"),
        ({"check_size": (0, 4)}, "check_size must be"),
        ({"pad_to": 0}, "pad_to must be a positive int"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkInpainter(MeanFill(), **kwargs)
    with pytest.raises(TypeError, match="must be callable"):
        NetworkInpainter("big-lama.pt")
