"""Frank-Wolfe (conditional gradient) perturbations of a classifier's input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from captum_cf._model_state import frozen
from captum_cf._validation import check_images, check_keep, check_model_dtype, check_target
from captum_cf.robust.lmo import lmo_l1, lmo_l2, lmo_linf

__all__ = ["frank_wolfe", "sparse_frank_wolfe"]

_NAMED_LMOS: dict[str, Callable[..., Tensor]] = {"linf": lmo_linf, "l2": lmo_l2, "l1": lmo_l1}


def frank_wolfe(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    target: Any,
    lmo: Callable[..., Tensor] | str,
    eps: float,
    n_steps: int = 20,
    targeted: bool = True,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    region: Tensor | None = None,
    show_progress: bool = False,
) -> Tensor:
    r"""Perturb ``inputs`` towards (or away from) a class with Frank-Wolfe steps.

    Maximises :math:`J(\delta) = \mp \ell(f(x + \delta), t)` (``-`` when ``targeted``: make
    class t likely; ``+`` otherwise: make t unlikely) over the feasible set
    :math:`C_x = \{\delta \in B_\epsilon : 0 \le x + \delta \le 1\}`:

    .. math::

        \delta_0 = 0, \quad s_k = \mathrm{LMO}_{C_x}(\nabla J(\delta_k)), \quad
        \delta_{k+1} = \delta_k + \gamma_k (s_k - \delta_k), \quad \gamma_k = \frac{2}{k + 2}.

    **The image box.** Every oracle is called with the bounds ``lower = -x`` and
    ``upper = 1 - x`` and solves the linear problem over its norm ball *intersected* with that box
    (see :mod:`captum_cf.robust.lmo`). Each vertex ``s_k`` is therefore feasible, and so is every
    iterate, a convex combination of vertices and :math:`\delta_0 = 0`: ``x + delta`` stays in
    [0, 1] without clipping (the reference code of the paper does not handle the box). A final
    clamp only removes float rounding.

    The model is used in eval mode with frozen parameters; its mode and ``requires_grad`` flags are
    restored afterwards, also after an exception. Examples are independent (the loss is summed
    over the batch, so each example gets its own gradient).

    Args:
        model (Callable): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K).
        inputs (Tensor): images, shape (N, C, H, W), in [0, 1]; not modified.
        target (int, list or Tensor): class t per example, shape (N,) or a single int.
        lmo (Callable or str): ``lmo(grad, eps, lower=..., upper=...) -> s`` (e.g.
            ``functools.partial(lmo_topk, k=10, pixel_groups=True)``), or ``"linf"``, ``"l2"``,
            ``"l1"``.
        eps (float): radius of the norm ball, > 0.
        n_steps (int): number of Frank-Wolfe steps (gradient evaluations), >= 1.
        targeted (bool): True: move towards class ``target``; False: away from it.
        loss_fn (Callable, optional): ``loss_fn(logits, target) -> (N,)`` per-example loss;
            default cross-entropy.
        region (Tensor, optional): mask broadcastable to ``inputs`` (same number of dimensions),
            values in {0, 1}; the perturbation is 0 wherever it is 0.
        show_progress (bool): show a tqdm bar over the steps.

    Returns:
        Tensor: the perturbation ``delta``, shape (N, C, H, W), with ``inputs + delta`` in [0, 1].

    Example:
        >>> from functools import partial
        >>> from captum_cf.robust import frank_wolfe, lmo_topk
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> delta = frank_wolfe(model, x, 1, partial(lmo_topk, k=4), eps=4.0, n_steps=10)
        >>> bool(((x + delta) >= 0).all() and ((x + delta) <= 1).all())
        True
    """
    if not callable(model):
        raise TypeError(
            f"model must be callable (an nn.Module or a function), got {type(model).__name__}"
        )
    check_images(inputs, "inputs")
    check_model_dtype(inputs, model)
    oracle = _resolve_lmo(lmo)
    _check_positive(eps, "eps")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps!r}")
    target_t = check_target(target, inputs.shape[0], None)
    if target_t is None:
        raise ValueError("target must be given: the class to move towards (targeted) or away from")
    lower, upper = _box_bounds(inputs, region)
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="none"))
    sign = -1.0 if targeted else 1.0
    with frozen(model), torch.enable_grad():
        target_t = target_t.to(inputs.device)
        delta = torch.zeros_like(inputs)
        for step in tqdm(range(n_steps), desc="Frank-Wolfe", disable=not show_progress):
            grad = _objective_grad(model, inputs, delta, target_t, loss_fn, sign, step == 0)
            vertex = oracle(grad, eps, lower=lower, upper=upper)
            gamma = 2.0 / (step + 2.0)
            delta = delta + gamma * (vertex - delta)
    return (inputs + delta).clamp(0, 1) - inputs


def _objective_grad(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    delta: Tensor,
    target: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    sign: float,
    check: bool,
) -> Tensor:
    d = delta.detach().requires_grad_(True)
    logits = model(inputs + d)
    if check:  # the first forward pass doubles as the check of the model's output and the target
        if logits.dim() != 2:
            raise ValueError(f"model must return logits of shape (N, K), got {tuple(logits.shape)}")
        check_target(target, inputs.shape[0], logits.shape[1])
    loss = loss_fn(logits, target)
    if loss.dim() != 1 or loss.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"loss_fn must return one loss per example, shape ({inputs.shape[0]},), "
            f"got {tuple(loss.shape)}"
        )
    (grad,) = torch.autograd.grad(sign * loss.sum(), d)
    return grad


def _box_bounds(inputs: Tensor, region: Tensor | None) -> tuple[Tensor, Tensor]:
    lower, upper = -inputs, 1.0 - inputs
    if region is None:
        return lower, upper
    mask = check_keep(region, inputs, "region")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("region must hold only 0 and 1 (1 = may be perturbed)")
    return lower * mask, upper * mask


def _resolve_lmo(lmo: Callable[..., Tensor] | str) -> Callable[..., Tensor]:
    if isinstance(lmo, str):
        if lmo not in _NAMED_LMOS:
            raise ValueError(
                f"lmo must be a callable or one of {sorted(_NAMED_LMOS)} (use "
                f"functools.partial(lmo_topk, k=...) for top-k), got {lmo!r}"
            )
        return _NAMED_LMOS[lmo]
    if not callable(lmo):
        raise TypeError(f"lmo must be callable or a name, got {type(lmo).__name__}")
    return lmo


def _check_positive(value: Any, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < float("inf")
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def sparse_frank_wolfe(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    target: Any,
    k: int,
    eps: float | None = None,
    n_steps: int = 20,
    targeted: bool = True,
    pixel_groups: bool = True,
    refine: bool = True,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    show_progress: bool = False,
) -> Tensor:
    r"""Frank-Wolfe with the top-k LMO whose result changes (about) exactly ``k`` pixels.

    Every top-k vertex has k non-zero pixels, but a Frank-Wolfe iterate is a convex combination
    of vertices whose supports differ, so plain Frank-Wolfe changes several times k pixels (the
    union of the supports). To make ``k`` a knob the user can trust:

    1. *explore*: ``n_steps // 2`` Frank-Wolfe steps over the top-k set (box-aware);
       :math:`S` = the k pixels with the largest channel-summed :math:`|\delta|`;
    2. *refine*: ``n_steps - n_steps // 2`` Frank-Wolfe steps from :math:`\delta_0 = 0` over the
       same set restricted to :math:`S` (``region`` = S), so the result is non-zero on at most k
       pixels, and every step still solves an exact LMO.

    With ``refine=False`` it is plain Frank-Wolfe (:func:`frank_wolfe` with
    ``lmo_topk(k=k, pixel_groups=pixel_groups)``) for all ``n_steps``.

    Args:
        model (Callable): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K).
        inputs (Tensor): images (N, C, H, W) in [0, 1].
        target (int, list or Tensor): class per example to move towards (``targeted``) or away from.
        k (int): number of pixels (``pixel_groups``) or coordinates that may change, >= 1.
        eps (float, optional): L1 budget; default ``k`` (each changed value may move by up to 1,
            the full range of the image box).
        n_steps (int): gradient evaluations in total (>= 2 with ``refine``).
        targeted (bool): towards ``target`` (True) or away from it (False).
        pixel_groups (bool): count and select whole pixels (all channels) instead of coordinates.
        refine (bool): run the two phases above (True) or plain Frank-Wolfe (False).
        loss_fn (Callable, optional): per-example loss, see :func:`frank_wolfe`.
        show_progress (bool): tqdm bars over the steps.

    Returns:
        Tensor: ``delta`` (N, C, H, W), ``inputs + delta`` in [0, 1], non-zero on at most ``k``
        pixels when ``refine``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> delta = sparse_frank_wolfe(model, torch.rand(2, 1, 8, 8), 2, k=5)
        >>> ((delta.abs().sum(1) > 0).sum((1, 2)) <= 5).tolist()
        [True, True]
    """
    from functools import partial

    from captum_cf.robust.lmo import lmo_topk

    check_images(inputs, "inputs")
    check_model_dtype(inputs, model)
    units = inputs[0, 0].numel() if pixel_groups else inputs[0].numel()
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= units:
        raise ValueError(f"k must be an int in [1, {units}], got {k!r}")
    eps = float(k) if eps is None else eps
    if refine and (isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2):
        raise ValueError(f"n_steps must be an int >= 2 with refine=True, got {n_steps!r}")
    lmo = partial(lmo_topk, k=k, pixel_groups=pixel_groups)
    common = {"targeted": targeted, "loss_fn": loss_fn, "show_progress": show_progress}
    if not refine:
        return frank_wolfe(model, inputs, target, lmo, eps, n_steps, **common)
    explore = frank_wolfe(model, inputs, target, lmo, eps, n_steps // 2, **common)
    region = _top_support(explore, k, pixel_groups)
    return frank_wolfe(
        model, inputs, target, lmo, eps, n_steps - n_steps // 2, region=region, **common
    )


def _top_support(delta: Tensor, k: int, pixel_groups: bool) -> Tensor:
    """0/1 mask of the k pixels (coordinates) with the largest |delta|, shaped to broadcast."""
    score = delta.abs().sum(1, keepdim=True) if pixel_groups else delta.abs()
    flat = score.flatten(1)
    mask = torch.zeros_like(flat).scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return mask.view_as(score)
