"""``TorchScriptInpainter``: a scripted or traced ``forward(image, mask)`` network (e.g. LaMa)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from captum_cf.inpainters.network import (
    _DRY_RUN_SIZE,
    NetworkInpainter,
    _check_options,
    network_file_kind,
)

__all__ = ["TorchScriptInpainter"]


class TorchScriptInpainter(NetworkInpainter):
    """An inpainting network loaded from a TorchScript file, e.g. LaMa (Suvorov et al., WACV 2022).

    LaMa is distributed as a traced module ``big-lama.pt`` with ``forward(image, mask)``:
    ``image`` (N, 3, H, W) in [0, 1], ``mask`` (N, 1, H, W) with 1 = hole. This class loads any
    such file with ``torch.jit.load`` only (never unpickling arbitrary objects) and adapts it to
    the :class:`Inpainter` protocol as :class:`~captum_cf.inpainters.NetworkInpainter` does (mask
    convention, grey images repeated to ``channels``, padding to ``pad_to``, device and dtype;
    :meth:`~captum_cf.inpainters.NetworkInpainter.adapt` finds the padding a network needs).
    Gradients flow if the network is differentiable. TorchScript is deprecated from torch 2.13:
    networks saved with ``torch.export.save`` load with
    :class:`~captum_cf.inpainters.ExportedInpainter`.

    At load time the signature is checked (two required tensor arguments) and, with
    ``check=True``, a 32x32 dry run must return an image of the same shape, so a wrong file fails
    here with a clear message and not in the middle of an attribution.

    Args:
        path (str or Path): the TorchScript file (``torch.jit.save``).
        device (str or torch.device, optional): where to run the network; default: where its
            weights were saved (``torch.jit.load``'s ``map_location``).
        mask_value_hole (int): value marking holes in the network's mask, 1 (LaMa) or 0.
        pad_to (int, optional): pad height and width to a multiple of this (LaMa: 8).
        channels (int): number of image channels the network expects (3 for LaMa).
        check (bool): run the 32x32 dry run at load time.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a TorchScript archive, or the dry run fails.
        TypeError: ``forward`` does not take ``(image, mask)``.

    Example:
        >>> inpainter = TorchScriptInpainter("big-lama.pt", pad_to=8)  # doctest: +SKIP
        >>> baseline = InpaintBaseline(inpainter)  # doctest: +SKIP
    """

    label = "the TorchScript inpainter"

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        mask_value_hole: int = 1,
        pad_to: int | None = None,
        channels: int = 3,
        check: bool = True,
    ) -> None:
        _check_options(mask_value_hole, pad_to, channels)
        path = Path(path)
        model = _load(path, torch.device(device) if device is not None else None)
        _check_signature(model, path)
        super().__init__(model, mask_value_hole=mask_value_hole, pad_to=pad_to,
                         channels=channels, check=False)
        self._own(path, _DRY_RUN_SIZE if check else None)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, {super().extra_repr()}"


def _load(path: Path, device: torch.device | None) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(
            f"TorchScript inpainter file not found: {path} (e.g. LaMa's big-lama.pt must be "
            f"downloaded by you; captum_cf downloads nothing)"
        )
    try:
        model = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        hint = ("; it is a torch.export archive: use ExportedInpainter"
                if network_file_kind(path) == "export" else "")
        raise ValueError(
            f"{path} is not a TorchScript archive (save one with torch.jit.save(torch.jit.script("
            f"model), path) or torch.jit.trace): {str(err).splitlines()[0]}{hint}"
        ) from err
    return model.eval()


def _check_signature(model: torch.jit.ScriptModule, path: Path) -> None:
    schema = model.forward.schema
    args = list(schema.arguments[1:])  # [0] is self
    required = [a for a in args if not a.has_default_value()]
    tensors = all(str(a.type) in ("Tensor", "Optional[Tensor]") for a in args[:2])
    if len(required) > 2 or len(args) < 2 or not tensors:
        raise TypeError(
            f"the TorchScript module in {path} must have forward(image: Tensor, mask: Tensor), "
            f"got {schema}"
        )
