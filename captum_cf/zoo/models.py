"""Classifier architectures of the zoo and the :class:`Normalized` and :class:`LogitsOf` wrappers.

Every zoo classifier takes pixel-space images in [0, 1]; the data set's normalisation lives inside
the model (``Normalized``), so a "zero", "blur" or "inpainted" baseline means the same thing for
every model. The networks use separate ``nn.ReLU`` modules (each used once, never in place), no
functional activations and no BatchNorm: Captum's DeepLift needs module non-linearities, and GAN
training and randomisation tests need train and eval mode to compute the same function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LogitsOf", "Normalized", "SmallCNN", "build_classifier", "logits_model", "logits_of"]


def logits_of(output: Any) -> Any:
    """The logits in a model's output: a tensor as it is, ``output["logits"]`` of a mapping that
    has that key, ``output.logits`` of an object that has that attribute (a Hugging Face
    ``ModelOutput``, a dataclass); anything else unchanged.

    Example:
        >>> logits_of({"logits": torch.zeros(2, 3), "hidden_states": None}).shape
        torch.Size([2, 3])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    logits = getattr(output, "logits", None)
    return output if logits is None else logits


class LogitsOf(nn.Module):
    """A model whose output holds its logits (``.logits`` or ``["logits"]``, as Hugging Face's
    image classifiers return them), as a model that returns the logits tensor.

    Captum's methods and captum_cf's metrics and audit need a tensor output;
    ``LogitsOf(hf_model)`` gives it. A model that already returns a tensor passes through.
    :class:`Normalized` and :func:`captum_cf.audit.audit` unwrap such outputs themselves.

    Args:
        model (nn.Module): returns a Tensor, a mapping with ``"logits"``, or an object with a
            ``logits`` attribute; the logits have shape (N, classes).

    Raises:
        TypeError: (on call) the model's output is none of these.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Out:
        ...     logits: Tensor
        >>> class HF(nn.Module):
        ...     def forward(self, pixel_values):
        ...         return Out(logits=pixel_values.flatten(1)[:, :3])
        >>> LogitsOf(HF())(torch.rand(2, 1, 4, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = logits_of(self.model(*args, **kwargs))
        if not isinstance(out, Tensor):
            raise TypeError(
                f"{type(self.model).__name__} returned a {type(out).__name__} without logits; "
                "LogitsOf needs a Tensor, a mapping with 'logits' or an object with .logits"
            )
        return out


def logits_model(model: Any, images: Tensor) -> Any:
    """``model`` itself, or :class:`captum_cf.zoo.LogitsOf` around it when its output on two
    images holds its logits (``.logits`` or ``["logits"]``, Hugging Face style).

    A model that fails on the images is returned as it is (the caller's own check of the model
    then reports the failure).
    """
    try:
        with torch.no_grad():
            out = model(images[:2])
    except Exception:  # noqa: BLE001 (the caller's check reports it)
        return model
    if isinstance(out, Tensor) or not isinstance(logits_of(out), Tensor):
        return model
    if isinstance(model, nn.Module):
        return LogitsOf(model)
    return lambda *args, **kwargs: logits_of(model(*args, **kwargs))


class Normalized(nn.Module):
    """Wrap a model that expects normalised input so that it takes pixel-space images.

    ``forward(x) = model((x - mean) / std)`` with per-channel ``mean`` and ``std`` held as buffers
    (they follow ``.to(device)`` and are saved in the ``state_dict``). A model whose output holds
    its logits (a Hugging Face ``ModelOutput`` with ``.logits``, a dict with ``"logits"``) gives
    the logits tensor, as :class:`LogitsOf` does, so the wrapped model goes straight to Captum.

    Args:
        model (nn.Module): the model expecting normalised input.
        mean (Sequence[float] or Tensor): per-channel means, length C.
        std (Sequence[float] or Tensor): per-channel standard deviations, length C, all > 0.

    Example:
        >>> net = Normalized(nn.Conv2d(3, 4, 3), mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
        >>> net(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 4, 6, 6])
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, model: nn.Module, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() == 0 or mean_t.shape != std_t.shape:
            raise ValueError(
                f"mean and std must be non-empty with one value per channel, got {mean_t.numel()} "
                f"means and {std_t.numel()} stds"
            )
        if not bool(torch.isfinite(mean_t).all()) or not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive and mean finite, got mean={mean_t.tolist()}, "
                             f"std={std_t.tolist()}")
        self.model = model
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"input must have shape (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}"
            )
        return logits_of(self.model((x - self.mean) / self.std))

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class SmallCNN(nn.Module):
    """Conv-ReLU-Pool blocks, then a two-layer MLP head; returns logits.

    Average pooling (the default) keeps every layer either linear or a ReLU, so Captum's DeepLift
    is exactly complete on these models (attributions sum to ``f(x) - f(baseline)``); with max
    pooling Captum's rule is not (deltas of ~10 % of the logit difference measured on a trained
    digits model). Max pooling learns the shapes task much faster (measured: 0.99 vs 0.59 test
    accuracy after the same 8-10 epochs), so ``digits-cnn`` uses ``"avg"`` and ``shapes-cnn``
    ``"max"``.

    Args:
        in_channels (int): input channels C.
        num_classes (int): number of output logits.
        image_size (int): input side S >= ``2 ** len(channels)``; each block halves it (2x2
            pooling drops an odd last row and column, as ``nn.MaxPool2d`` does; a stride-2
            convolution keeps it: ``ceil(S / 2)``).
        channels (Sequence[int]): output channels of each 3x3 conv block (each halves the side).
        hidden (int): width of the hidden fully-connected layer.
        pool (str): ``"avg"`` or ``"max"`` 2x2 pooling after each conv block, or ``"stride"``
            (3x3 convs of stride 2 instead of pooling).

    Shape:
        input (N, C, S, S) (normalised), output (N, num_classes).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
        channels: Sequence[int] = (16, 32, 64),
        hidden: int = 64,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max", "stride"):
            raise ValueError(f"pool must be 'avg', 'max' or 'stride', got {pool!r}")
        side = _feature_side(image_size, len(channels), pool)
        if side < 1:
            raise ValueError(f"image_size must be >= {2 ** len(channels)} for {len(channels)} "
                             f"blocks, got {image_size}")
        layers: list[nn.Module] = []
        prev = in_channels
        for width in channels:
            if pool == "stride":
                layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1), nn.ReLU()]
            else:
                pool_layer = nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)
                layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(), pool_layer]
            prev = width
        self.features = nn.Sequential(*layers)
        self.image_size, self._side = image_size, side
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(prev * side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        if not _tracing() and features.shape[-2:] != (self._side, self._side):
            raise ValueError(
                f"SmallCNN was built for {self.image_size}x{self.image_size} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}: resize them, e.g. "
                f"ImageFolder(..., image_size={self.image_size}) or --image-size "
                f"{self.image_size}"
            )
        return self.classifier(features)


def _tracing() -> bool:
    """Whether ``torch.fx`` traces the model symbolically (its shapes are symbols then: no
    check); ``_is_fx_tracing_flag`` is what ``is_fx_symbolic_tracing`` reads, without the
    warning older names log."""
    import torch.fx._symbolic_trace as fx

    check = getattr(fx, "is_fx_symbolic_tracing", None)
    return bool(check()) if check is not None else bool(getattr(fx, "_is_fx_tracing_flag", False))


def _feature_side(image_size: int, blocks: int, pool: str) -> int:
    """Side of the last block's feature maps for an input side ``image_size``."""
    side = image_size
    for _ in range(blocks):
        side = (side + 1) // 2 if pool == "stride" else side // 2
    return side


def build_classifier(config: dict[str, Any]) -> Normalized:
    """Build ``Normalized(SmallCNN(...), mean, std)`` from a zoo config dict.

    ``config`` holds ``in_channels``, ``num_classes``, ``image_size``, ``channels``, ``hidden``,
    ``pool`` (optional, default ``"max"``), ``mean`` and ``std`` (as written by
    :func:`captum_cf.zoo.train.train_classifier`).
    """
    net = SmallCNN(
        in_channels=int(config["in_channels"]),
        num_classes=int(config["num_classes"]),
        image_size=int(config["image_size"]),
        channels=tuple(int(c) for c in config["channels"]),
        hidden=int(config["hidden"]),
        pool=str(config.get("pool", "max")),
    )
    return Normalized(net, config["mean"], config["std"])
