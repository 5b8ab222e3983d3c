"""``TorchScriptInpainter``: a scripted or traced ``forward(image, mask)`` network (e.g. LaMa)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_cf.inpainters.base import Inpainter

__all__ = ["TorchScriptInpainter"]

_DRY_RUN_SIZE = 32


class TorchScriptInpainter(Inpainter):
    """An inpainting network loaded from a TorchScript file, e.g. LaMa (Suvorov et al., WACV 2022).

    LaMa is distributed as a traced module ``big-lama.pt`` with ``forward(image, mask)``:
    ``image`` (N, 3, H, W) in [0, 1], ``mask`` (N, 1, H, W) with 1 = hole. This class loads any
    such file with ``torch.jit.load`` only (never unpickling arbitrary objects) and adapts it to
    the :class:`Inpainter` protocol:

    - the hole mask given to the network is one channel, ``hole.amax(1)`` (a pixel is a hole if
      any channel is), inverted when the network uses 0 for holes (``mask_value_hole=0``);
    - grey images (C = 1) are repeated to ``channels`` channels and the output is averaged back
      to one channel;
    - with ``pad_to=k`` the images are padded at the bottom/right (reflect, or replicate when the
      image is too small to reflect) to a multiple of ``k`` and the output is cropped back;
    - inputs go to the network's device and dtype and the output comes back to the inputs'
      device and dtype, clamped to [0, 1]. Gradients flow if the network is differentiable.

    At load time the signature is checked (two required tensor arguments) and, with
    ``check=True``, a 32x32 dry run must return an image of the same shape, so a wrong file fails
    here with a clear message and not in the middle of an attribution.

    Args:
        path (str or Path): the TorchScript file (``torch.jit.save``).
        device (str or torch.device, optional): where to run the network; default CPU.
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

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        mask_value_hole: int = 1,
        pad_to: int | None = None,
        channels: int = 3,
        check: bool = True,
    ) -> None:
        super().__init__()
        _check_options(mask_value_hole, pad_to, channels)
        self.path = Path(path)
        self.mask_value_hole = mask_value_hole
        self.pad_to = pad_to
        self.channels = channels
        self.model = _load(self.path, torch.device(device) if device is not None else None)
        _check_signature(self.model, self.path)
        if check:
            self._dry_run()

    def extra_repr(self) -> str:
        path = str(self.path)
        return f"path={path!r}, mask_value_hole={self.mask_value_hole}, pad_to={self.pad_to}"

    def _model_placement(self) -> tuple[torch.device, torch.dtype]:
        for t in (*self.model.parameters(), *self.model.buffers()):
            if t.is_floating_point():
                return t.device, t.dtype
        return torch.device("cpu"), torch.float32

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        c = images.shape[1]
        if c not in (1, self.channels):
            raise ValueError(
                f"images must have 1 or {self.channels} channels for this inpainter, got {c}"
            )
        device, dtype = self._model_placement()
        image = images.to(device=device, dtype=dtype).expand(-1, self.channels, -1, -1)
        mask = hole.amax(1, keepdim=True).to(device=device, dtype=dtype)
        if self.mask_value_hole == 0:
            mask = 1 - mask
        out = self._run(image, mask)
        if c == 1:
            out = out.mean(1, keepdim=True)
        return out.clamp(0.0, 1.0).to(device=images.device, dtype=images.dtype)

    def _run(self, image: Tensor, mask: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        if self.pad_to:
            image, mask = _pad(image, self.pad_to), _pad(mask, self.pad_to)
        out = self.model(image, mask)
        if not isinstance(out, Tensor) or out.shape != image.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"the TorchScript inpainter {self.path.name} returned {got} for an image of shape "
                f"{tuple(image.shape)}; expected an image of the same shape"
            )
        return out[..., :h, :w]

    def _dry_run(self) -> None:
        device, dtype = self._model_placement()
        image = torch.full((1, self.channels, _DRY_RUN_SIZE, _DRY_RUN_SIZE), 0.5, device=device)
        mask = torch.zeros(1, 1, _DRY_RUN_SIZE, _DRY_RUN_SIZE, device=device)
        mask[..., 8:24, 8:24] = 1
        try:
            with torch.no_grad():
                self._run(image.to(dtype), mask.to(dtype))
        except Exception as err:  # any failure of a foreign network means a wrong file
            raise ValueError(
                f"the TorchScript inpainter {self.path} failed a dry run with image "
                f"(1, {self.channels}, {_DRY_RUN_SIZE}, {_DRY_RUN_SIZE}) and mask "
                f"(1, 1, {_DRY_RUN_SIZE}, {_DRY_RUN_SIZE}): {err}"
            ) from err


def _load(path: Path, device: torch.device | None) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(
            f"TorchScript inpainter file not found: {path} (e.g. LaMa's big-lama.pt must be "
            f"downloaded by you; captum_cf downloads nothing)"
        )
    try:
        model = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        raise ValueError(
            f"{path} is not a TorchScript archive (save one with torch.jit.save(torch.jit.script("
            f"model), path) or torch.jit.trace): {str(err).splitlines()[0]}"
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


def _pad(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _check_options(mask_value_hole: int, pad_to: int | None, channels: int) -> None:
    if mask_value_hole not in (0, 1) or isinstance(mask_value_hole, bool):
        raise ValueError(f"mask_value_hole must be 1 or 0, got {mask_value_hole!r}")
    if pad_to is not None and (
        isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1
    ):
        raise ValueError(f"pad_to must be a positive int or None, got {pad_to!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
