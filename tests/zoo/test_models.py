"""Normalized and SmallCNN: exact normalisation, Captum-friendly layers, argument checks."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLift
from torch import nn

from captum_cf.zoo import Normalized, SmallCNN, build_classifier


def test_normalized_computes_per_channel_standardisation(device) -> None:
    model = Normalized(nn.Identity(), mean=[0.1, 0.5, 0.9], std=[0.5, 0.25, 2.0]).to(device)
    x = torch.rand(2, 3, 4, 5).to(device)
    expected = torch.stack(
        [(x[:, 0] - 0.1) / 0.5, (x[:, 1] - 0.5) / 0.25, (x[:, 2] - 0.9) / 2.0], 1)
    torch.testing.assert_close(model(x), expected)
    assert set(model.state_dict()) == {"mean", "std"}  # buffers: saved and moved with .to()
    assert model.mean.device == x.device and model.std.device == x.device
    assert model.to(torch.float64)(x.double()).dtype == torch.float64


def test_normalized_wraps_the_model_and_checks_arguments(device) -> None:
    conv = nn.Conv2d(1, 2, 3)
    model = Normalized(conv, mean=torch.tensor([0.3]), std=[0.2]).to(device)
    x = torch.rand(2, 1, 8, 8).to(device)
    torch.testing.assert_close(model(x), conv((x - 0.3) / 0.2))
    with pytest.raises(ValueError, match="std"):
        Normalized(conv, [0.5], [0.0])
    with pytest.raises(ValueError, match="one value per channel"):
        Normalized(conv, [0.5, 0.5], [0.2])
    with pytest.raises(TypeError, match="model"):
        Normalized(lambda x: x, [0.5], [0.2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 8, 8))


def test_small_cnn_layers_suit_captum(device) -> None:
    model = build_classifier({"in_channels": 3, "num_classes": 4, "image_size": 32,
                              "channels": [4, 8], "hidden": 16, "mean": [0.5] * 3,
                              "std": [0.2] * 3}).eval().to(device)
    out = model(torch.rand(2, 3, 32, 32).to(device))
    assert out.shape == (2, 4) and out.device == device
    modules = list(model.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    relus = [m for m in modules if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and not any(r.inplace for r in relus)
    calls = {id(r): 0 for r in relus}
    hooks = [r.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1))
             for r in relus]
    model(torch.rand(1, 3, 32, 32).to(device))
    for h in hooks:
        h.remove()
    assert set(calls.values()) == {1}  # each ReLU module used exactly once


def test_deeplift_is_complete_on_small_cnn(device) -> None:
    # Only linear layers, ReLU modules and average pooling: DeepLift's rescale rule is exact.
    model = SmallCNN(1, 10, 32).eval().to(device)
    x = torch.rand(3, 1, 32, 32).to(device)
    _, delta = DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=2,
                                         return_convergence_delta=True)
    assert float(delta.abs().max()) < 1e-4


def test_small_cnn_checks_arguments() -> None:
    with pytest.raises(ValueError, match="image_size must be >= 8 for 3 blocks, got 7"):
        SmallCNN(1, 10, image_size=7)
    with pytest.raises(ValueError, match="pool"):
        SmallCNN(pool="min")
    assert any(isinstance(m, nn.MaxPool2d) for m in SmallCNN(pool="max").modules())
    strided = SmallCNN(pool="stride")
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in strided.modules())
    assert strided(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    # another side than it was built for: a one-line error naming both, not a matmul's shapes
    with pytest.raises(ValueError, match=r"SmallCNN was built for 32x32 images, got 16x16: "
                                         r"resize them, e.g. ImageFolder\(..., image_size=32\)"):
        SmallCNN()(torch.rand(2, 1, 16, 16))


@pytest.mark.parametrize("pool", ["avg", "max", "stride"])
@pytest.mark.parametrize("size", [8, 24, 30, 299])
def test_small_cnn_takes_sizes_that_are_not_multiples_of_its_blocks(pool, size) -> None:
    # e.g. a folder of 299 px images (a classifier and a robust model for an Inception-sized
    # model's audit): the head's input is the last feature map's real size
    model = SmallCNN(3, 4, image_size=size, channels=(4, 8, 8), hidden=8, pool=pool)
    assert model(torch.rand(2, 3, size, size)).shape == (2, 4)
    with pytest.raises(ValueError, match=f"built for {size}x{size} images"):  # the head's side
        model(torch.rand(2, 3, size + 8, size + 8))


def test_small_cnn_traces_with_torch_fx() -> None:
    # its image-side check is skipped while torch.fx traces (shapes are symbols there)
    model = SmallCNN(1, 10, image_size=32).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(traced(x), model(x))
