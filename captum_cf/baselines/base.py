"""The ``Baseline`` abstraction: what stands for a removed feature."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor, nn

from captum_cf._validation import check_images, check_keep, check_model_dtype

__all__ = ["Baseline", "check_baseline_output"]


class Baseline(abc.ABC):
    """A counterfactual reference for an input: what the input looks like with features removed.

    Subclasses implement :meth:`_reference`; mask-conditional baselines (inpainting) override
    :meth:`_fill` too. The public methods validate their arguments and delegate.

    Conventions (see DESIGN.md): images are ``(N, C, H, W)`` in ``[0, 1]``; ``keep`` is in
    ``[0, 1]`` and broadcastable to the images, 1 = original pixel kept, 0 = feature removed.

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
    """

    #: whether ``reference`` depends on ``target`` (GANMEX-like baselines need it)
    needs_target: bool = False

    def reference(self, inputs: Tensor, target: Any = None) -> Tensor:
        """The full counterfactual input.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
            target (int, Tensor or None): the class being explained, for baselines that use it.

        Returns:
            Tensor: shape (N, C, H, W), same dtype and device as ``inputs``, finite.

        Raises:
            TypeError: ``inputs`` do not have the dtype of a model the baseline runs.
            ValueError: the baseline's own output is not a finite tensor shaped like ``inputs``.
        """
        check_images(inputs, "inputs")
        self._check_model_dtypes(inputs)
        return check_baseline_output(self, self._reference(inputs, target), inputs, "reference")

    def fill(self, inputs: Tensor, keep: Tensor, target: Any = None) -> Tensor:
        """The input with its ``keep == 0`` part replaced by counterfactual content.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1].
            keep (Tensor): mask in [0, 1] broadcastable to ``inputs`` (same number of dimensions),
                1 = keep the original pixel, 0 = remove it.
            target (int, Tensor or None): passed on to :meth:`reference`.

        Returns:
            Tensor: shape (N, C, H, W); equals ``inputs`` exactly where ``keep == 1``.
        """
        check_images(inputs, "inputs")
        keep = check_keep(keep, inputs)
        self._check_model_dtypes(inputs)
        return check_baseline_output(self, self._fill(inputs, keep, target), inputs, "fill")

    __call__ = reference

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
        inputs (Tensor): the images it was given, shape (N, C, H, W).
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
    if not bool(torch.isfinite(out.detach()).all()):
        raise ValueError(f"{name} returned NaN or infinite values (for finite inputs)")
    return out
