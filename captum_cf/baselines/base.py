"""The ``Baseline`` abstraction: what stands for a removed feature."""

from __future__ import annotations

import abc
from typing import Any

from torch import Tensor

from captum_cf._validation import check_images, check_keep

__all__ = ["Baseline"]


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
            Tensor: shape (N, C, H, W), same dtype and device as ``inputs``.
        """
        check_images(inputs, "inputs")
        return self._reference(inputs, target)

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
        return self._fill(inputs, keep, target)

    __call__ = reference

    @abc.abstractmethod
    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        """Counterfactual for validated ``inputs``."""

    def _fill(self, inputs: Tensor, keep: Tensor, target: Any) -> Tensor:
        ref = self._reference(inputs, target)
        # not torch.lerp: ref + keep * (x - ref) is not exactly x where keep == 1
        return keep * inputs + (1 - keep) * ref

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
