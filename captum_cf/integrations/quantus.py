"""Quantus 0.6 bridge: an attribution method as ``explain_func``, a Baseline as ``perturb_func``.

Quantus hands its functions numpy arrays and expects numpy arrays back. These two factories do
the round trip (numpy -> torch on the model's device -> numpy) so that nothing else changes:

.. code-block:: python

    import quantus
    from captum_cf.integrations import quantus as cfq

    explain = cfq.explain_func(method="IntegratedGradients", baseline=InpaintBaseline(inp))
    metric = quantus.PixelFlipping(features_in_step=16, perturb_func=cfq.perturb_func(
        InpaintBaseline(inp), input_shape=(1, 32, 32)))
    scores = metric(model=model, x_batch=x, y_batch=y, explain_func=explain, device="cpu")

Quantus's sensitivity metrics (``MaxSensitivity``, ``AvgSensitivity``) call ``explain_func`` on
noisy copies of the inputs; it runs inside :func:`captum_cf.baselines.noisy_inputs`, so a
pixel-space Baseline computes its counterfactual from the copies clamped to [0, 1] instead of
refusing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_cf.baselines.base import Baseline, noisy_inputs
from captum_cf.integrations._common import check_perturbation_baseline

__all__ = ["explain_func", "perturb_func"]


def explain_func(
    method: str | type = "IntegratedGradients",
    baseline: Any = None,
    attribute_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Callable[..., np.ndarray]:
    """A Quantus ``explain_func`` that runs a ``captum_cf.attr`` method with a baseline.

    Quantus calls ``explain_func(model=model, inputs=x, targets=y, **explain_func_kwargs)``
    with numpy ``inputs`` (N, ...) and ``targets`` (N,); the returned function builds
    ``method(model)``, calls ``attribute(inputs, baselines=baseline, target=targets,
    **attribute_kwargs)`` on the model's device inside :func:`~captum_cf.baselines.noisy_inputs`
    and returns the attributions as a float32 numpy array, summed over ``reduce_axes`` as
    ``quantus.explain`` does: by default over the channels, keeping the axis ((N, 1, H, W) for
    images of any number of channels; inputs of fewer than 3 dimensions are not summed).

    Args:
        method (str or class): the name of a class in ``captum_cf.attr`` (e.g.
            ``"IntegratedGradients"``, ``"Occlusion"``, ``"DeepLift"``) or any Captum-style
            attribution class ``cls(model).attribute(inputs, baselines=..., target=...)``.
        baseline: what ``baselines=`` receives: a :class:`~captum_cf.baselines.Baseline`, a
            number, a tensor or None (Captum's default).
        attribute_kwargs (dict, optional): further arguments of ``attribute``, for names that
            clash with this function's own (IntegratedGradients' ``method``).
        **kwargs: further arguments of ``attribute`` (``n_steps``, ``sliding_window_shapes``,
            ``feature_mask`` ...). Keyword arguments Quantus passes at call time
            (``explain_func_kwargs``) are added to them; ``device`` places the inputs, and
            ``reduce_axes`` (default ``(1,)``; ``()`` keeps every axis) and ``keepdims``
            (default True) sum the attributions as ``quantus.explain`` does, here or at call
            time.

    Returns:
        Callable: ``f(model, inputs, targets, **kwargs) -> np.ndarray``.

    Example:
        >>> import torch
        >>> from captum_cf.baselines import BlurBaseline
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> f = explain_func("IntegratedGradients", BlurBaseline(1.0), n_steps=8)
        >>> f(model, np.random.rand(2, 1, 8, 8).astype("float32"), np.array([0, 2])).shape
        (2, 1, 8, 8)
    """
    cls = _method_class(method)
    if isinstance(baseline, type) and issubclass(baseline, Baseline):
        raise TypeError(f"baseline is the class {baseline.__name__}; pass an instance")
    fixed = {**(attribute_kwargs or {}), **kwargs}

    def explain(model: Any, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
        merged = {**fixed, **kwargs}
        axes = tuple(merged.pop("reduce_axes", (1,)))
        keepdims = merged.pop("keepdims", True)
        if 0 in axes:
            raise ValueError("reduce_axes must not hold the batch axis 0 (as in quantus.explain)")
        device = merged.pop("device", None)
        device = torch.device(device) if device is not None else _device_of(model)
        x = _to_tensor(inputs, "inputs", device)
        target = None if targets is None else _to_tensor(targets, "targets", device).long()
        with noisy_inputs():
            attr = cls(model).attribute(x, baselines=baseline, target=target, **merged)
        if isinstance(attr, tuple):
            raise TypeError(f"{cls.__name__} returned a tuple; Quantus takes one input tensor")
        out = attr.detach().cpu().float().numpy()
        # quantus.explain's reduction: summed over reduce_axes unless () or under 3 dimensions
        return out.sum(axis=axes, keepdims=keepdims) if axes and out.ndim >= 3 else out

    explain.__name__ = f"explain_{cls.__name__}"
    return explain


def perturb_func(
    baseline: Baseline,
    input_shape: Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> Callable[..., np.ndarray]:
    """A Quantus batch ``perturb_func`` that removes the chosen features with ``baseline.fill``.

    Quantus 0.6's faithfulness metrics (``PixelFlipping``, ``FaithfulnessCorrelation``,
    ``RegionPerturbation`` ...) call ``perturb_func(arr=x, indices=ix)`` with ``x`` of shape
    (N, F), each example flattened, and ``ix`` (N, I) the flat indices to remove. The returned
    function reshapes ``x`` to (N, *input_shape), sets ``keep = 0`` at the indices and returns
    ``baseline.fill(x, keep)`` flattened back, as float numpy: ``x`` exactly where nothing was
    removed. Metrics that remove features step by step (PixelFlipping) hand in the input of the
    previous step, so each step fills its features from the partly filled input, as Quantus's
    own ``baseline_replacement_by_indices`` works on it.

    Args:
        baseline (Baseline): fills the removed features; one that ``needs_target`` cannot be
            used (Quantus gives a perturbation function no class).
        input_shape (sequence of int, optional): the shape of one example, e.g. (C, H, W); needed
            by image baselines (blur, inpainting). Default: the flat (F,) of Quantus.
        device (str or torch.device, optional): where the baseline runs; default CPU.

    Returns:
        Callable: ``f(arr, indices, **kwargs) -> np.ndarray`` of the shape of ``arr``.

    Example:
        >>> from captum_cf.baselines import ConstantBaseline
        >>> f = perturb_func(ConstantBaseline(0.5))
        >>> f(arr=np.zeros((1, 4), dtype="float32"), indices=np.array([[1, 3]])).tolist()
        [[0.0, 0.5, 0.0, 0.5]]
    """
    check_perturbation_baseline(
        baseline,
        "Quantus passes a perturbation function no class; use it through explain_func",
    )
    shape = _check_shape(input_shape)
    where = torch.device(device) if device is not None else torch.device("cpu")

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        arr = np.asarray(arr)
        if arr.ndim != 2:
            raise ValueError(
                f"arr must be (N, F) as Quantus 0.6's batch metrics hand it (PixelFlipping, "
                f"RegionPerturbation, FaithfulnessCorrelation ...), got {arr.shape}: ROAD and "
                "IROF call a perturbation function otherwise (one image, segments); for ROAD "
                "with any Baseline use captum_cf.metrics.road(..., removal=baseline)")
        n, f = arr.shape
        example = shape if shape is not None else (f,)
        if int(np.prod(example)) != f:
            raise ValueError(f"input_shape {example} does not hold the {f} features of arr")
        x = torch.as_tensor(arr, device=where).reshape(n, *example)
        if not x.is_floating_point():
            x = x.float()
        keep = torch.ones(n, f, dtype=x.dtype, device=where)
        ix = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=where).reshape(n, -1)
        keep.scatter_(1, ix, 0.0)
        out = baseline.fill(x, keep.reshape(n, *example))
        return out.detach().reshape(n, f).cpu().numpy().astype(arr.dtype, copy=False)

    return perturb


def _method_class(method: str | type) -> type:
    import captum_cf.attr  # the bridge sits on top of attr; imported when a bridge is built

    if isinstance(method, str):
        cls = getattr(captum_cf.attr, method, None)
        if not isinstance(cls, type) or not hasattr(cls, "attribute"):
            names = sorted(
                n for n in captum_cf.attr.__all__
                if isinstance(getattr(captum_cf.attr, n), type)
                and hasattr(getattr(captum_cf.attr, n), "attribute")
            )
            raise ValueError(
                f"method must name a class of captum_cf.attr ({names}), got {method!r}"
            )
        return cls
    if isinstance(method, type) and hasattr(method, "attribute"):
        return method
    raise TypeError(f"method must be a name or an attribution class, got {type(method).__name__}")


def _device_of(model: Any) -> torch.device:
    params = getattr(model, "parameters", None)
    param = next(params(), None) if callable(params) else None
    return param.device if param is not None else torch.device("cpu")


def _to_tensor(value: Any, name: str, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device)
    try:
        return torch.as_tensor(np.asarray(value), device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numpy array or a tensor, got {type(value).__name__}") \
            from err


def _check_shape(shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if not isinstance(shape, (tuple, list)) or not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(f"input_shape must be a sequence of positive ints, e.g. (1, 32, 32), got "
                         f"{shape!r}")
    return tuple(shape)
