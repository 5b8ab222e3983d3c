"""``LearnedInpainter``: a small gated-convolution U-Net trained on free-form and box holes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_cf._ops import bilinear_resize
from captum_cf.inpainters._local import check_context, inpaint_locally
from captum_cf.inpainters.base import Inpainter
from captum_cf.inpainters.biharmonic import BiharmonicInpainter
from captum_cf.inpainters.push_pull import PushPullInpainter

__all__ = ["LearnedInpainter", "ARCH", "DEFAULT_CONFIG"]

logger = logging.getLogger(__name__)

#: architecture name in zoo weights files
ARCH = "gated-unet"
#: default architecture: 3 downsampling scales, widths sized for cheap CPU inference
DEFAULT_CONFIG: dict[str, Any] = {
    "channels": 3, "widths": [16, 32, 48], "dilations": [2, 4], "prefill": "pushpull"}
_PREFILLS = ("pushpull", "biharmonic", "zero")
_LOGIT_EPS = 0.01


class _GatedConv(nn.Module):
    """``phi(W_f * x) * sigmoid(W_g * x)``, one convolution with 2x channels split in two.

    Gated convolution (Yu et al., Free-Form Image Inpainting with Gated Convolution, ICCV 2019):
    the learned sigmoid gate lets each layer decide per pixel and channel how much of its input
    is valid, the learnable generalisation of partial convolutions' hard mask update.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, stride=stride, padding=dilation,
                              dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gate)


class LearnedInpainter(Inpainter):
    """A small gated-convolution U-Net that inpaints holes (free-form strokes and boxes).

    The network sees the image with its holes blanked and the hole mask, ``(x * (1 - m), m)``,
    with ``m`` the one-channel hole (``hole.amax(1)``: a pixel is a hole if any channel is).
    With ``prefill="pushpull"`` (default) the holes are first filled by the cheap
    :class:`PushPullInpainter` (a smooth estimate ``p``), with ``prefill="biharmonic"`` by
    :class:`BiharmonicInpainter` (continues gradients and edges into the hole; about 5x
    push-pull's cost), and the network predicts a correction in logit space; with
    ``prefill="zero"`` holes stay 0 and ``p = 1/2``:

    - encoder: 3 gated 3x3 convolutions of stride 2 (widths ``w1, w2, w3``), then gated dilated
      convolutions at 1/8 resolution (``dilations``) so that the receptive field covers the
      image;
    - decoder: bilinear 2x upsampling, concatenation with the encoder's features of that scale
      and a gated convolution, back to 1/2 resolution; a last upsampling, concatenation with
      ``(x (1 - m), m, p)`` and a plain 3x3 convolution ``D`` (initialised to 0) give
      ``y = sigmoid(D + logit(clamp(p, 0.01, 0.99)))``, in [0, 1]; the untrained network returns
      its prefill (almost) exactly.

    The output composites ``(1 - hole) * x + hole * y``: known pixels come back unchanged and soft
    holes blend. It is differentiable in ``images`` and ``hole``; in eval mode no graph is built
    unless one of them requires grad. Any height and width: inputs are padded (bottom/right, as
    holes) to a multiple of 8 and the output is cropped. Computation is float32 on the
    parameters' device.

    Small holes are inpainted on a window: when every image's hole fits in a box that, grown by
    ``context`` pixels per side (rounded up to a multiple of 8), covers at most half of the image,
    the network runs on those windows only (an 8x8 occlusion patch of a 64x64 image: a 24x24
    window, 1/7 of the work) and pixels outside them are returned unchanged. The fill then sees
    ``context`` pixels around the hole instead of the whole image. ``context=None`` always runs
    on the whole image.

    Training (:meth:`fit`) draws random holes covering 5-40 % of each image
    (:func:`captum_cf.inpainters.holes.random_holes`) and minimises the L1 error inside the holes
    plus ``grad_weight`` times the L1 error of the image's horizontal and vertical differences
    there (sharper edges), with Adam and a cosine-decayed learning rate.

    Args:
        config (dict, optional): ``channels`` (image channels C, default 3), ``widths`` (three
            ints), ``dilations`` (ints, may be empty), ``prefill`` (``"pushpull"``,
            ``"biharmonic"`` or ``"zero"``); missing keys take :data:`DEFAULT_CONFIG`'s values.
        context (int, optional): context pixels around small holes (default 8, see above);
            ``None`` disables windows. An attribute: ``inpainter.context = None`` works too.

    Example:
        >>> from captum_cf import zoo
        >>> inpainter = zoo.load("shapes-inpainter")
        >>> x = torch.rand(2, 3, 64, 64); hole = torch.zeros(2, 1, 64, 64)
        >>> hole[..., 20:40, 20:40] = 1
        >>> inpainter(x, hole).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, config: Mapping[str, Any] | None = None, context: int | None = 8) -> None:
        super().__init__()
        self.config = _check_config(config)
        c = self.config["channels"]
        w1, w2, w3 = self.config["widths"]
        cin = c + 1 + (c if self.config["prefill"] != "zero" else 0)
        self.enc1 = _GatedConv(cin, w1, stride=2)
        self.enc2 = _GatedConv(w1, w2, stride=2)
        self.enc3 = _GatedConv(w2, w3, stride=2)
        self.middle = nn.Sequential(*[_GatedConv(w3, w3, dilation=d)
                                      for d in self.config["dilations"]])
        self.dec2 = _GatedConv(w3 + w2, w2)
        self.dec1 = _GatedConv(w2 + w1, w1)
        self.head = nn.Conv2d(w1 + cin, c, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.context = check_context(context)
        self._prefill: Inpainter | None = {
            "pushpull": PushPullInpainter(), "biharmonic": BiharmonicInpainter(context=None),
            "zero": None}[self.config["prefill"]]

    def extra_repr(self) -> str:
        return f"config={self.config}, context={self.context}"

    # --- inference ---------------------------------------------------------------------------

    def _inpaint(self, images: Tensor, hole: Tensor) -> Tensor:
        c = self.config["channels"]
        if images.shape[1] != c:
            raise ValueError(
                f"images must have {c} channels for this inpainter, got {images.shape[1]}"
            )
        param = next(self.parameters())
        x = images.to(device=param.device, dtype=param.dtype)
        h = hole.to(device=param.device, dtype=param.dtype)
        # In eval mode, build an autograd graph only when the caller differentiates through the
        # images or the hole (MP-G), never just because the weights require grad.
        graph = torch.is_grad_enabled() and (self.training or x.requires_grad or h.requires_grad)
        with torch.set_grad_enabled(graph):
            out = inpaint_locally(self._composite, x, h, self.context, multiple=8)
            return out.to(images.dtype)

    def _composite(self, images: Tensor, hole: Tensor) -> Tensor:
        return (1 - hole) * images + hole * self.predict(images, hole.amax(1, keepdim=True))

    def predict(self, images: Tensor, hole: Tensor) -> Tensor:
        """The network's raw output (every pixel predicted, known ones included), no checks.

        Args:
            images (Tensor): (N, C, H, W) in [0, 1].
            hole (Tensor): (N, 1, H, W) in [0, 1], 1 = hole.

        Returns:
            Tensor: (N, C, H, W) in [0, 1].
        """
        h, w = images.shape[-2:]
        ph, pw = -h % 8, -w % 8
        if ph or pw:
            images = F.pad(images, (0, pw, 0, ph))
            hole = F.pad(hole, (0, pw, 0, ph), value=1.0)
        return self._network(images, hole)[..., :h, :w]

    def _network(self, images: Tensor, hole: Tensor) -> Tensor:
        blanked = images * (1 - hole)
        if self._prefill is not None:
            prior = self._prefill._inpaint(images, hole)
            x = torch.cat([blanked, hole, prior], 1)
            skip = torch.logit(prior.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS))
        else:
            x = torch.cat([blanked, hole], 1)
            skip = torch.zeros((), device=images.device, dtype=images.dtype)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.middle(self.enc3(e2))
        d2 = self.dec2(torch.cat([_up(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([_up(d2, e1), e1], 1))
        return torch.sigmoid(self.head(torch.cat([_up(d1, x), x], 1)) + skip)

    # --- training ----------------------------------------------------------------------------

    def fit(
        self,
        data: Any,
        steps: int = 2000,
        batch_size: int = 32,
        lr: float = 2e-3,
        holes: str = "free-form+box",
        coverage: tuple[float, float] = (0.05, 0.4),
        grad_weight: float = 0.25,
        crop: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 200,
        resume: bool = True,
        show_progress: bool = True,
        seed: int = 0,
        device: str | torch.device | None = None,
        amp: str | None = None,
    ) -> list[float]:
        """Train on random holes of ``data``; resumes exactly from ``checkpoint`` if it exists.

        Args:
            data: images (N, C, H, W) in [0, 1] as a Tensor, a ``TensorDataset`` (its first
                tensor), an object with ``.images`` (e.g. ``SyntheticShapes``) or a dataset of
                images or ``(image, label)`` pairs; a ``uint8`` tensor (0..255) is held as
                ``uint8`` on the device (a quarter of float32's memory).
            steps (int): total optimisation steps (a resumed run continues up to ``steps``).
            batch_size (int): images per step.
            lr (float): peak Adam learning rate, decayed as ``lr (1 + cos(pi s / steps)) / 2``.
            holes (str): hole shapes, ``"free-form+box"``, ``"free-form"`` or ``"box"``.
            coverage (tuple[float, float]): range of the fraction of each image that is hole.
            grad_weight (float): weight of the L1 error of image differences inside the holes.
            crop (int, optional): train on a random ``crop`` x ``crop`` window of each image
                (cheaper steps on large images; the network is fully convolutional).
            checkpoint (path, optional): checkpoint file written every ``checkpoint_every``
                steps and at the end.
            checkpoint_every (int): steps between checkpoints.
            resume (bool): continue from ``checkpoint`` when it exists (else start afresh).
            show_progress (bool): tqdm bar with the running loss.
            seed (int): seeds the data order and the holes (not the initial weights: seed
                ``torch.manual_seed`` before constructing the inpainter for that).
            device (str or torch.device, optional): where to train (default: where the
                inpainter's parameters are; the images move there).
            amp (str, optional): ``"bf16"``: bfloat16 autocast of the network (CUDA only).

        Returns:
            list[float]: the loss of every step, from step 0 (resumed runs include the steps
            before the checkpoint).

        Example:
            >>> from captum_cf.datasets import load_digits
            >>> inpainter = LearnedInpainter({"channels": 1})
            >>> losses = inpainter.fit(load_digits("train"), steps=20, show_progress=False)
        """
        from captum_cf.inpainters._fit import fit

        return fit(self, data, steps=steps, batch_size=batch_size, lr=lr, holes=holes,
                   coverage=coverage, grad_weight=grad_weight, crop=crop, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume,
                   show_progress=show_progress, seed=seed, device=device, amp=amp)

    # --- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, metrics: Mapping[str, Any] | None = None,
             name: str = "learned-inpainter") -> None:
        """Write the weights in the zoo format (read back with :meth:`load` or ``zoo.load_file``).

        The file is ``{"format": 1, "name", "arch": "gated-unet", "config", "state_dict",
        "metrics"}``, loadable with ``torch.load(..., weights_only=True)``.
        """
        from captum_cf.zoo._registry import save_weights

        save_weights(path, name=name, arch=ARCH, config=self.config, model=self,
                     metrics=dict(metrics or {}))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str | None = None
             ) -> LearnedInpainter:
        """Read a file written by :meth:`save` (``weights_only=True``); returns it in eval mode.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: (one line naming the file) the file is not a zoo weights file of a
                ``gated-unet`` (a whole pickled model, another pickle, a text or damaged file,
                another architecture) or its state dict does not fit the config.
        """
        from captum_cf._weights import load_state_checked
        from captum_cf.zoo._registry import _float32, read_weights

        source = os.fspath(path)
        payload = read_weights(path)
        if payload["arch"] != ARCH:
            raise ValueError(f"{os.fspath(path)} holds a {payload['arch']!r} model, "
                             f"expected {ARCH!r}")
        model = cls(payload["config"])
        load_state_checked(model, _float32(payload["state_dict"], source), source)
        model.metrics = dict(payload["metrics"])
        return model.to(device or "cpu").eval()


def build_inpainter(config: Mapping[str, Any]) -> LearnedInpainter:
    """Zoo builder: an untrained :class:`LearnedInpainter` of ``config``."""
    return LearnedInpainter(config)


def _up(x: Tensor, like: Tensor) -> Tensor:
    return bilinear_resize(x, tuple(like.shape[-2:]))  # deterministic backward on a GPU too


def _check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    unknown = sorted(set(config or {}) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    channels, widths, dilations = cfg["channels"], cfg["widths"], cfg["dilations"]
    if not _positive_int(channels):
        raise ValueError(f"config['channels'] must be a positive int, got {channels!r}")
    if not (isinstance(widths, Sequence) and len(widths) == 3 and all(map(_positive_int, widths))):
        raise ValueError(f"config['widths'] must be 3 positive ints, got {widths!r}")
    if not (isinstance(dilations, Sequence) and all(map(_positive_int, dilations))):
        raise ValueError(f"config['dilations'] must be a list of positive ints, got {dilations!r}")
    if cfg["prefill"] not in _PREFILLS:
        raise ValueError(f"config['prefill'] must be one of {_PREFILLS}, got {cfg['prefill']!r}")
    return {"channels": int(channels), "widths": [int(w) for w in widths],
            "dilations": [int(d) for d in dilations], "prefill": cfg["prefill"]}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1

