"""The ``Baseline`` abstraction: what stands for a removed feature."""

from __future__ import annotations

import abc
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from captum_cf._validation import (
    all_finite,
    check_keep,
    check_model_dtype,
    check_tensor,
    unit_range,
)

__all__ = ["Baseline", "check_baseline_output", "noisy_inputs"]

_NOISY: contextvars.ContextVar[bool] = contextvars.ContextVar("captum_cf_noisy", default=False)


@contextlib.contextmanager
def noisy_inputs() -> Iterator[None]:
    """Inputs may be noisy copies of images: pixel-space Baselines clamp them instead of refusing.

    Sensitivity metrics (``captum.metrics.sensitivity_max``, Quantus's ``MaxSensitivity``) and
    noise tunnels explain noisy copies of an image, which leave [0, 1]. A Baseline that works in
    pixel space (``pixel_space = True``: inpainters, generators and robust models trained on
    images in [0, 1]) refuses such inputs, since out-of-range values usually mean a normalised
    image that the model was never given. Inside this context it instead computes its
    counterfactual from the inputs clamped to [0, 1] (the "context"), and ``fill`` returns the
    given, noisy values exactly where ``keep == 1``: the noise perturbs the input, the baseline
    stays realistic. ``captum_cf.attr.NoiseTunnel`` and the bridges of
    ``captum_cf.integrations`` enter it for you.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import InpaintBaseline, noisy_inputs
        >>> from captum_cf.inpainters import PushPullInpainter
        >>> baseline = InpaintBaseline(PushPullInpainter())  # pixel space
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> noisy = torch.rand(2, 1, 8, 8) + 0.2 * torch.randn(2, 1, 8, 8)  # leaves [0, 1]
        >>> keep = torch.ones(2, 1, 8, 8); keep[..., 2:5, 2:5] = 0
        >>> with noisy_inputs():
        ...     filled = baseline.fill(noisy, keep)
        >>> bool((filled == noisy)[keep.bool()].all())  # outside the hole: the noisy values
        True
    """
    token = _NOISY.set(True)
    try:
        yield
    finally:
        _NOISY.reset(token)


def inputs_may_be_noisy() -> bool:
    """Whether the current call runs inside :func:`noisy_inputs`."""
    return _NOISY.get()


class Baseline(abc.ABC):
    """A counterfactual reference for an input: what the input looks like with features removed.

    Subclasses implement :meth:`_reference`; mask-conditional baselines (inpainting) override
    :meth:`_fill` too. The public methods validate their arguments and delegate.

    Inputs are any float tensor with a batch dimension, ``(N, ...)``: tabular ``(N, F)``,
    sequences ``(N, L, D)``, images ``(N, C, H, W)``. Two class attributes say what a subclass
    needs beyond that (a user subclass needs neither by default):

    - ``input_kind = "images"``: the idea needs images ``(N, C, H, W)`` (blur, inpainting);
      other shapes get a ValueError that says so.
    - ``pixel_space = True``: the baseline's own model (an inpainter, a generator, a robust
      classifier) was trained on values in [0, 1], so inputs must lie there; the error says
      why, and :func:`noisy_inputs` turns the refusal into a clamp for noisy copies.

    ``keep`` is in ``[0, 1]`` and broadcastable to the inputs (same number of dimensions),
    1 = original value kept, 0 = feature removed.

    A Baseline is callable (``__call__ = reference``), so it can be passed wherever Captum
    accepts a callable baseline, and the ``captum_cf.attr`` classes accept it as ``baselines=``.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import ConstantBaseline
        >>> x = torch.rand(2, 1, 8, 8)
        >>> keep = torch.ones(2, 1, 8, 8); keep[..., :4] = 0
        >>> out = ConstantBaseline(0.0).fill(x, keep)
        >>> bool((out[..., :4] == 0).all() and (out[..., 4:] == x[..., 4:]).all())
        True
        >>> ConstantBaseline(-1.0)(torch.randn(3, 5)).unique().tolist()  # tabular (N, F)
        [-1.0]
    """

    #: whether ``reference`` depends on ``target`` (e.g. a sparse counterfactual of the
    #: runner-up class of the explained target)
    needs_target: bool = False
    #: ``"any"``: inputs of any shape (N, ...); ``"images"``: (N, C, H, W) only
    input_kind: ClassVar[str] = "any"
    #: inputs must lie in [0, 1] (a model of the baseline was trained on pixels)
    pixel_space: bool = False
    #: why, in the error for inputs outside [0, 1]
    pixel_space_reason: ClassVar[str] = "its model was trained on values in [0, 1]"

    def reference(self, inputs: Tensor, target: Any = None) -> Tensor:
        """The full counterfactual input.

        Args:
            inputs (Tensor): shape (N, ...), float; (N, C, H, W) for image baselines, in [0, 1]
                for pixel-space baselines.
            target (int, Tensor or None): the class being explained, for baselines that use it.

        Returns:
            Tensor: shape of ``inputs``, same dtype and device, finite.

        Raises:
            TypeError: ``inputs`` do not have the dtype of a classifier the baseline runs.
            ValueError: the baseline's own output is not a finite tensor shaped like ``inputs``.
        """
        context = self.context(inputs)
        self._check_model_dtypes(inputs)
        return check_baseline_output(self, self._reference(context, target), inputs, "reference")

    def fill(self, inputs: Tensor, keep: Tensor, target: Any = None) -> Tensor:
        """The input with its ``keep == 0`` part replaced by counterfactual content.

        Args:
            inputs (Tensor): shape (N, ...), as for :meth:`reference`.
            keep (Tensor): mask in [0, 1] broadcastable to ``inputs`` (same number of dimensions),
                1 = keep the original value, 0 = remove it.
            target (int, Tensor or None): passed on to :meth:`reference`.

        Returns:
            Tensor: shape of ``inputs``; equals ``inputs`` exactly where ``keep == 1``.
        """
        context = self.context(inputs)
        keep = check_keep(keep, inputs)
        self._check_model_dtypes(inputs)
        out = check_baseline_output(self, self._fill(context, keep, target), inputs, "fill")
        if context is not inputs:  # clamped noisy copy: kept values are the given ones
            out = torch.where(keep == 1, inputs, out)
        return out

    __call__ = reference

    def context(self, inputs: Any, name: str = "inputs", owner: str | None = None) -> Tensor:
        """Validate ``inputs`` for this baseline; returns what its model sees.

        That is ``inputs`` itself, or, for a pixel-space baseline inside :func:`noisy_inputs`,
        ``inputs`` clamped to [0, 1].

        Args:
            inputs (Tensor): the tensor to check.
            name (str): its name in error messages.
            owner (str, optional): the argument that holds this baseline (e.g. ``"baselines[0]"``),
                named in error messages.

        Raises:
            TypeError, ValueError: naming ``name`` and, for shape and range, what this baseline
                needs and why.
        """
        who = f"{owner} ({type(self).__name__})" if owner else type(self).__name__
        if isinstance(inputs, Tensor) and not (inputs.is_floating_point() or inputs.is_complex()):
            raise TypeError(
                f"{name} must be a floating-point tensor for {who}, which makes float "
                f"references; got dtype {inputs.dtype}: for integer inputs (token ids) pass a "
                "number or ConstantBaseline(pad_id), as Captum takes them"
            )
        check_tensor(inputs, name)
        if self.input_kind == "images" and inputs.dim() != 4:
            raise ValueError(
                f"{who} works on images of shape (N, C, H, W), but {name} has shape "
                f"{tuple(inputs.shape)}; for tabular or sequence inputs use a baseline of any "
                f"shape (ConstantBaseline, NoiseBaseline, NearestSampleBaseline, ...) or a number"
            )
        if not self.pixel_space:
            return inputs
        outside = unit_range(inputs)
        if outside is None:
            return inputs
        if inputs_may_be_noisy():
            return inputs.detach().clamp(0.0, 1.0)
        raise ValueError(
            f"{who} works in pixel space ({self.pixel_space_reason}), but "
            f"{name} has values in [{outside[0]:.4g}, {outside[1]:.4g}]. Keep images in [0, 1] "
            f"and normalise inside the model (captum_cf.zoo.Normalized); for noisy copies of "
            f"images (sensitivity metrics) call inside `with captum_cf.baselines.noisy_inputs():`"
        )

    @abc.abstractmethod
    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        """Counterfactual for validated ``inputs``."""

    #: attributes holding classifiers that see the inputs as they are; the dtype rule
    #: (:func:`captum_cf._validation.check_model_dtype`) applies to them. Generators and
    #: inpainting networks are tools of the baseline: they run in their own dtype and their
    #: output is converted to the inputs' dtype.
    classifier_attributes: tuple[str, ...] = ("classifier", "model", "_model")

    def _check_model_dtypes(self, inputs: Tensor) -> None:
        """The dtype rule for every classifier this baseline feeds the inputs to."""
        for attr in self.classifier_attributes:
            value = getattr(self, attr, None)
            if isinstance(getattr(value, "__self__", value), nn.Module):
                check_model_dtype(
                    inputs, value, model_name=f"{type(self).__name__}.{attr.lstrip('_')}"
                )

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        ref = check_baseline_output(self, self._reference(inputs, target), inputs, "reference")
        # not torch.lerp: ref + keep * (x - ref) is not exactly x where keep == 1
        return keep * inputs + (1 - keep) * ref

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def check_baseline_output(baseline: Any, out: Any, inputs: Tensor, method: str) -> Tensor:
    """A Baseline's own output must be a finite tensor of the shape, dtype and device of its input.

    A user subclass that returns NaN would otherwise give NaN attributions silently, and one
    that returns the wrong shape a torch size error deep inside Captum.

    Args:
        baseline: the Baseline that produced ``out`` (named in the message).
        out: what its ``reference``/``fill`` returned.
        inputs (Tensor): the inputs it was given, shape (N, ...).
        method (str): ``"reference"`` or ``"fill"``.

    Returns:
        Tensor: ``out`` itself.
    """
    name = f"{type(baseline).__name__}.{method}"
    if not isinstance(out, Tensor):
        raise TypeError(f"{name} must return a Tensor, got {type(out).__name__}")
    if out.shape != inputs.shape or out.dtype != inputs.dtype or out.device != inputs.device:
        raise ValueError(
            f"{name} returned {tuple(out.shape)} {out.dtype} on {out.device}, expected the "
            f"shape, dtype and device of its inputs: {tuple(inputs.shape)} {inputs.dtype} on "
            f"{inputs.device}"
        )
    if not all_finite(out):
        raise ValueError(f"{name} returned NaN or infinite values (for finite inputs)")
    return out
