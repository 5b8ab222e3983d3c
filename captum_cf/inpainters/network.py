"""A user's inpainting network (LaMa, DeepFill, ...) as an :class:`Inpainter`.

:class:`NetworkInpainter` adapts any network called as ``network(image, mask)`` (an
``nn.Module``, a TorchScript module, the module of a ``torch.export`` program) to the inpainter
protocol: mask convention, grey images, padding to the network's stride, a fixed batch size,
device and dtype. :class:`ExportedInpainter` loads a ``torch.export`` archive (``.pt2``), the
successor of TorchScript files (``torch.jit`` is deprecated from torch 2.13), and
:class:`~captum_cf.inpainters.TorchScriptInpainter` a TorchScript file.
:func:`inpainter_from_file` tells the two kinds of file apart and adapts the network to the
images at hand; it is how ``captum-cf audit --baseline-weights inpaint-learned=FILE`` takes a
network of the user's.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import first_line
from captum_cf.inpainters.base import Inpainter

__all__ = ["ExportedInpainter", "NetworkInpainter", "inpainter_from_file", "network_file_kind"]

#: strides tried by :meth:`NetworkInpainter.adapt` when the network refuses the images' size
PAD_OPTIONS = (8, 16, 32, 64)
_DRY_RUN_SIZE = 32


class NetworkInpainter(Inpainter):
    """Any inpainting network ``network(image, mask) -> image`` as an :class:`Inpainter`.

    The network takes ``image`` (N, ``channels``, H, W) in [0, 1] and ``mask`` (N, 1, H, W) with
    ``mask_value_hole`` marking holes (LaMa's convention: 1), and returns an image of the same
    shape. The adapter:

    - gives the network one mask channel, ``hole.amax(1)`` (a pixel is a hole if any channel is),
      inverted when the network uses 0 for holes (``mask_value_hole=0``);
    - repeats grey images (C = 1) to ``channels`` channels and averages the output back;
    - with ``pad_to=k`` pads height and width at the bottom/right (reflect, or replicate when
      the image is too small to reflect) to a multiple of ``k`` and crops the output back;
    - with ``fixed_batch=B`` calls the network on exactly B images at a time (the last call is
      filled up with copies of its last image, whose outputs are dropped): for networks
      exported or traced for one batch size;
    - moves inputs to the network's device and dtype (a network without parameters gets the
      inputs' own) and the output back to the inputs', clamped to [0, 1]; the network gets a
      copy of the images, never the caller's tensor. Gradients flow to the inputs when the
      network is differentiable.

    A network passed in (rather than loaded from a file by a subclass) stays the caller's: each
    call runs it in eval mode with its parameters frozen and restores both afterwards, also
    after an exception (the mode is set on each module's ``training`` flag, which an exported
    program's module allows; a ``train()``/``eval()`` override of the caller's is not called).
    With ``check=True`` a dry run on a ``check_size`` image must return an image of the same
    shape with finite values, so that a wrong network fails here, with a clear message, and not
    in the middle of an attribution. :meth:`adapt` finds the padding, channels and batch size
    that make the network work on a given image shape.

    Args:
        network (callable): ``network(image, mask) -> image``, typically an ``nn.Module``.
        mask_value_hole (int): value marking holes in the network's mask, 1 (LaMa) or 0.
        pad_to (int, optional): pad height and width to a multiple of this (LaMa: 8).
        channels (int): number of image channels the network takes (3 for LaMa).
        fixed_batch (int, optional): the number of images every network call must get.
        check (bool): run the dry run now.
        check_size (int or (int, int)): height and width of the dry run's image (default 32).

    Raises:
        ValueError: a bad option, or the dry run fails (naming the shapes and the network's error).

    Example:
        >>> lama = torch.export.load("lama.pt2").module()       # doctest: +SKIP
        >>> inpainter = NetworkInpainter(lama, pad_to=8)         # doctest: +SKIP
        >>> inpainter.adapt((3, 224, 224))                       # doctest: +SKIP
    """

    #: what error messages call the network
    label = "the inpainting network"

    def __init__(
        self,
        network: Any,
        mask_value_hole: int = 1,
        pad_to: int | None = None,
        channels: int = 3,
        fixed_batch: int | None = None,
        check: bool = True,
        check_size: int | Sequence[int] = _DRY_RUN_SIZE,
    ) -> None:
        super().__init__()
        _check_options(mask_value_hole, pad_to, channels, fixed_batch)
        if not callable(network):
            raise TypeError(f"network must be callable as network(image, mask), got {network!r}")
        self.model = network
        self.mask_value_hole = mask_value_hole
        self.pad_to = pad_to
        self.channels = channels
        self.fixed_batch = fixed_batch
        self._dry_device = torch.device("cpu")  # dry runs of a network without parameters
        #: True when the network was loaded by this object (it may set its mode once);
        #: False for the caller's network, which each call leaves exactly as it was
        self._owned = False
        if check:
            self._dry_run(_size_pair(check_size))

    def extra_repr(self) -> str:
        return (f"mask_value_hole={self.mask_value_hole}, pad_to={self.pad_to}, "
                f"channels={self.channels}, fixed_batch={self.fixed_batch}")

    def _model_placement(self, like: Tensor | None = None) -> tuple[torch.device, torch.dtype]:
        """The device and dtype of the network's floating tensors; for a network without any
        (a function, a parameter-free module) those of ``like`` (the images), else CPU float32."""
        if isinstance(self.model, nn.Module):
            for t in (*self.model.parameters(), *self.model.buffers()):
                if t.is_floating_point():
                    return t.device, t.dtype
        if like is not None:
            return like.device, like.dtype
        return self._dry_device, torch.float32

    def train(self, mode: bool = True) -> NetworkInpainter:
        """Set this inpainter's own flag only: a loaded network keeps the eval mode it was loaded
        in (an exported program's cannot change), the caller's network is put in eval mode for
        each call and restored (see the class docstring)."""
        self.training = mode
        return self

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        c = images.shape[1]
        if c not in (1, self.channels):
            raise ValueError(
                f"images must have 1 or {self.channels} channels for this inpainter, got {c}"
            )
        device, dtype = self._model_placement(images)
        # the network gets its own dense copy: one that works in place (image.mul_(1 - mask))
        # must neither change the caller's images nor write into the channels of a repeated
        # grey image (which share memory)
        image = images.to(device=device, dtype=dtype).expand(-1, self.channels, -1, -1).clone(
            memory_format=torch.contiguous_format)
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
        self._check_size(image)
        step = self.fixed_batch
        if step is None or image.shape[0] == step:
            out = self._call(image, mask)
        else:
            parts = []
            for i in range(0, image.shape[0], step):
                x, m = image[i : i + step], mask[i : i + step]
                short = step - x.shape[0]
                if short:  # fill the last call up with copies of its last image
                    x = torch.cat([x, x[-1:].expand(short, -1, -1, -1)])
                    m = torch.cat([m, m[-1:].expand(short, -1, -1, -1)])
                parts.append(self._call(x, m)[: step - short])
            out = torch.cat(parts)
        return out[..., :h, :w]

    def _call(self, image: Tensor, mask: Tensor) -> Tensor:
        if self._owned:
            out = self.model(image, mask)
        else:
            with frozen(self.model, eval_mode=False):
                if isinstance(self.model, nn.Module):
                    # eval mode set module by module (restored by frozen): .eval() raises on
                    # the module of an exported program, also one inside the caller's network
                    for m in self.model.modules():
                        m.training = False
                out = self.model(image, mask)
        if not isinstance(out, Tensor) or out.shape != image.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"{self.label} returned {got} for an image of shape {tuple(image.shape)}; "
                "expected an image of the same shape"
            )
        return out

    def _check_size(self, image: Tensor) -> None:
        """Refuse an input size the network cannot take (subclasses with static shapes)."""

    def _dry_run(self, size: tuple[int, int], n: int = 1) -> None:
        device, dtype = self._model_placement()
        h, w = size
        image = torch.full((n, self.channels, h, w), 0.5, device=device, dtype=dtype)
        mask = torch.zeros(n, 1, h, w, device=device, dtype=dtype)
        mask[..., h // 4 : h - h // 4, w // 4 : w - w // 4] = 1
        mask[..., 0, 0] = 0  # some context, also for a tiny image
        try:
            with torch.no_grad():
                out = self._run(image, mask)
            if not bool(torch.isfinite(out).all()):
                raise ValueError("its output has non-finite values")
        except Exception as err:  # any failure of a foreign network means it does not fit
            raise ValueError(
                f"{self.label} failed a dry run with image ({n}, {self.channels}, {h}, {w}) "
                f"and mask ({n}, 1, {h}, {w}): {first_line(err, empty=type(err).__name__)}"
            ) from err

    def adapt(self, image_shape: Sequence[int],
              device: str | torch.device | None = None) -> NetworkInpainter:
        """Make the network work on images of ``image_shape`` (C, H, W), or say why it cannot.

        Tries, with a dry run on two such images, the current settings first, then padding to a
        multiple of 8, 16, 32 or 64 (networks that downsample need it), the images' own channel
        count (a grey network for grey images) and one image per call; keeps the first that
        works. The dry runs are on the network's device, or on ``device`` for a network without
        parameters (default CPU). Returns ``self``.

        Raises:
            ValueError: no setting works; the message has the network's error for the current
                settings.
        """
        if len(image_shape) != 3 or any(int(v) < 1 for v in image_shape):
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        c, h, w = (int(v) for v in image_shape)
        if device is not None:
            self._dry_device = torch.device(device)
        original = (self.pad_to, self.channels, self.fixed_batch)
        pads = [self.pad_to] + [p for p in (None, *PAD_OPTIONS) if p != self.pad_to]
        channels = [self.channels] + ([c] if c != self.channels and self._free_channels() else [])
        batches = [self.fixed_batch] + ([1] if self.fixed_batch is None else [])
        first: ValueError | None = None
        for batch in batches:
            for ch in channels:
                for pad in pads:
                    self.pad_to, self.channels, self.fixed_batch = pad, ch, batch
                    if c not in (1, ch):
                        continue
                    try:
                        self._dry_run((h, w), n=2)
                        return self
                    except ValueError as err:
                        first = first or err
        self.pad_to, self.channels, self.fixed_batch = original
        why = first if first is not None else ValueError(
            f"images with {c} channels cannot be given to a network of {self.channels}")
        raise ValueError(
            f"{self.label} cannot fill images of shape ({c}, {h}, {w}): {why} (also tried "
            f"padding to a multiple of {', '.join(map(str, PAD_OPTIONS))}, the images' channels "
            "and one image per call)"
        ) from first

    def _free_channels(self) -> bool:
        """Whether :meth:`adapt` may change :attr:`channels` (not when the network fixes it)."""
        return True

    def _own(self, path: Path, check_size: int | Sequence[int] | None) -> None:
        """For a subclass that loaded the network from ``path``: name it in messages, freeze it
        once (it is ours, in the eval mode it was loaded in) and, unless ``check_size`` is None,
        dry-run it on an image of that size."""
        self.path = path
        self.label = f"{type(self).label} {path.name}"
        self._owned = True
        for p in self.model.parameters():
            p.requires_grad_(False)
        if check_size is not None:
            self._dry_run(_size_pair(check_size))


class ExportedInpainter(NetworkInpainter):
    """An inpainting network saved with ``torch.export.save`` (a ``.pt2`` archive).

    ``torch.export`` replaces TorchScript (deprecated from torch 2.13). Export the network with
    its two inputs and dynamic batch, height and width, so that it takes any image size::

        n, h, w = (torch.export.Dim(k) for k in "nhw")
        shapes = {"image": {0: n, 2: h, 3: w}, "mask": {0: n, 2: h, 3: w}}
        torch.export.save(torch.export.export(net.eval(), (image, mask),
                                              dynamic_shapes=shapes), "net.pt2")

    (with a network that needs multiples of 8, write ``h = 8 * Dim("h8")``). A program exported
    with static shapes is read too: its batch size becomes :attr:`fixed_batch`, its channel
    count :attr:`channels`, and images of another height or width are refused with a clear
    message. ``torch.export.load`` may unpickle parts of the archive: load only files you trust,
    as with any model file that is not a plain state dict. Everything else is
    :class:`NetworkInpainter`'s.

    Args:
        path (str or Path): the ``.pt2`` file.
        device (str or torch.device, optional): where to run the network; default: where its
            weights were saved.
        mask_value_hole, pad_to, channels, fixed_batch, check, check_size: as
            :class:`NetworkInpainter`; ``channels`` and ``fixed_batch`` default to the program's
            static sizes (else 3 and None), ``check_size`` to its static height and width
            (else 32).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a ``torch.export`` archive, or the dry run fails.
        TypeError: the program does not take two inputs ``(image, mask)``.
    """

    label = "the exported inpainter"

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        mask_value_hole: int = 1,
        pad_to: int | None = None,
        channels: int | None = None,
        fixed_batch: int | None = None,
        check: bool = True,
        check_size: int | Sequence[int] | None = None,
    ) -> None:
        path = Path(path)
        program = _load_exported(path, None if device is None else torch.device(device))
        shape = _static_image_shape(program, path)
        n, c, h, w = shape
        size = check_size if check_size is not None else (
            (h, w) if h is not None and w is not None else _DRY_RUN_SIZE)
        super().__init__(
            program.module(),
            mask_value_hole=mask_value_hole,
            pad_to=pad_to,
            channels=channels if channels is not None else (c or 3),
            fixed_batch=fixed_batch if fixed_batch is not None else n,
            check=False,
        )
        self.static_shape = shape
        self._own(path, size if check else None)

    def _check_size(self, image: Tensor) -> None:
        _, c, h, w = self.static_shape
        got = tuple(image.shape[-2:])
        if h is not None and w is not None and got != (h, w):
            raise ValueError(
                f"{self.label} was exported for images of {h}x{w} only (static shapes) and got "
                f"{got[0]}x{got[1]}: export it with a dynamic height and width "
                "(torch.export.export(..., dynamic_shapes=...)) or read the images at its size"
            )

    def _free_channels(self) -> bool:
        return self.static_shape[1] is None


def network_file_kind(path: str | os.PathLike) -> str | None:
    """``"torchscript"`` (``torch.jit.save``), ``"export"`` (``torch.export.save``) or None.

    Read from the names in the zip archive, without loading anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    tails = {name.split("/", 1)[-1] for name in names}
    if "models/model.json" in tails or "serialized_exported_program.json" in tails:
        return "export"
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return "torchscript"
    return None


def inpainter_from_file(
    path: str | os.PathLike,
    image_shape: Sequence[int],
    device: str | torch.device | None = None,
) -> NetworkInpainter:
    """The inpainting network in ``path`` (TorchScript or ``torch.export``), adapted to images
    of ``image_shape`` (C, H, W) with :meth:`NetworkInpainter.adapt`, on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is neither kind of archive, or the network cannot fill such images.
        TypeError: the network does not take ``(image, mask)``.
    """
    from captum_cf.inpainters.torchscript import TorchScriptInpainter

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inpainting network file not found: {path}")
    kind = network_file_kind(path)
    if kind is None:
        raise ValueError(
            f"{path} is neither a TorchScript archive (torch.jit.save) nor a torch.export "
            "archive (torch.export.save) of an inpainting network forward(image, mask)"
        )
    cls = TorchScriptInpainter if kind == "torchscript" else ExportedInpainter
    return cls(path, device=device, check=False).adapt(image_shape, device)


def _load_exported(path: Path, device: torch.device | None) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"exported inpainter file not found: {path}")
    kind = network_file_kind(path)
    if kind != "export":
        hint = "; it is a TorchScript archive: use TorchScriptInpainter" if kind else ""
        raise ValueError(
            f"{path} is not a torch.export archive (save one with torch.export.save("
            f"torch.export.export(model, (image, mask), dynamic_shapes=...), path)){hint}"
        )
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # a damaged or incompatible archive
        raise ValueError(f"cannot load the torch.export archive {path}: "
                         f"{first_line(err, empty=type(err).__name__)}") from err
    if device is not None:
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program


def _static_image_shape(program: Any, path: Path) -> tuple[int | None, ...]:
    """The image input's (N, C, H, W): an int for a static size, None for a dynamic one."""
    inputs = list(program.graph_signature.user_inputs)
    if len(inputs) != 2:
        raise TypeError(
            f"the exported program in {path} must take two inputs (image, mask), it takes "
            f"{len(inputs)}: {inputs}"
        )
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    val = nodes[inputs[0]].meta.get("val") if inputs[0] in nodes else None
    if not isinstance(val, Tensor) or val.dim() != 4:
        raise TypeError(
            f"the exported program in {path} must take an image (N, C, H, W) first, got "
            f"{getattr(val, 'shape', val)}"
        )
    return tuple(d if isinstance(d, int) else None for d in val.shape)


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    else:
        pair = tuple(int(v) for v in size)  # type: ignore[union-attr]
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"check_size must be a positive int or (H, W), got {size!r}")
    return pair  # type: ignore[return-value]



def _pad(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _check_options(mask_value_hole: int, pad_to: int | None, channels: int,
                   fixed_batch: int | None = None) -> None:
    if mask_value_hole not in (0, 1) or isinstance(mask_value_hole, bool):
        raise ValueError(f"mask_value_hole must be 1 or 0, got {mask_value_hole!r}")
    if pad_to is not None and (
        isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1
    ):
        raise ValueError(f"pad_to must be a positive int or None, got {pad_to!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    if fixed_batch is not None and (
        isinstance(fixed_batch, bool) or not isinstance(fixed_batch, int) or fixed_batch < 1
    ):
        raise ValueError(f"fixed_batch must be a positive int or None, got {fixed_batch!r}")
