"""Meaningful Perturbation (MP), MP-G and Extremal Perturbation: learned masks, batched."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._ops import bilinear_resize, shift_replicate
from captum_cf._validation import (
    check_images,
    check_model_dtype,
    check_target,
    warn_if_probabilities,
)
from captum_cf.baselines.base import Baseline

__all__ = ["MeaningfulPerturbation"]

_MODES = ("deletion", "preservation")
_REWARDS = ("probability", "logit", "contrastive")
#: weight of the sorted-mask area penalty at the first iteration, per unit of reward scale
_AREA_WEIGHT_START = 10.0
#: the area weight grows geometrically to this multiple of its start over the run (TorchRay's
#: 1.0035 ** 800 ~ 16 for its 800 steps, spread over however many steps are asked for)
_AREA_WEIGHT_GROWTH = 16.0


@dataclass(frozen=True)
class _Settings:
    deletion: bool
    areas: tuple[float, ...] | None
    mask_size: tuple[int, int]
    n_iters: int
    lr: float
    l1: float
    tv: float
    tv_beta: float
    jitter: int
    binarize: bool
    reward: str
    seed: int


class MeaningfulPerturbation(PerturbationAttribution):
    r"""Learn the smallest smooth mask whose removal deletes (or whose keeping preserves) a class.

    Meaningful Perturbation (Fong & Vedaldi, ICCV 2017) optimises a low-resolution mask
    :math:`m \in [0, 1]^{h \times w}`, upsampled bilinearly to the image, that decides which
    pixels of :math:`x` are replaced by a reference through the baseline's
    ``fill(x, keep)`` (:math:`\Phi(x; keep)`). With :math:`s` the saliency (the removed part in
    the deletion game, the kept part in the preservation game) and :math:`f_c` the reward of the
    target class :math:`c`, each image minimises, with Adam:

    .. math::
        \text{deletion:}\quad & \lambda_1 \overline{s} + \lambda_{tv} TV_\beta(s)
            + f_c(\Phi(x;\ 1 - \uparrow s)) \\
        \text{preservation:}\quad & \lambda_1 \overline{s} + \lambda_{tv} TV_\beta(s)
            - f_c(\Phi(x;\ \uparrow s)) \\
        TV_\beta(s) &= \overline{|s_{i+1,j} - s_{i,j}|^\beta}
            + \overline{|s_{i,j+1} - s_{i,j}|^\beta}

    where the bars are **means** over the low-resolution mask, so one setting works at every
    resolution. The papers use sums over a 28x28 mask for 224x224 images; their values map onto
    ours by multiplying by the number of mask cells, 784: ``l1 = 1e-4 * 784 ~ 0.08`` and
    ``tv = 1e-2 * 784 ~ 7.8``, ``tv_beta = 3``, 300 Adam steps at ``lr = 0.1`` (our defaults), a
    mask of ``H / 8`` cells (our default ``mask_size``) and a Gaussian blur of radius (sigma) 10
    at 224 px, i.e. ``BlurBaseline(sigma=10 * H / 224)`` (our default baseline). Our default
    weights ``l1 = 0.3, tv = 1.0`` were chosen on SyntheticShapes with the zoo classifier, whose
    confident softmax needs a stronger area term (pointing game 1.00 against 0.88 with the
    papers' mapped weights on 16 tuning images, 100 steps); pass ``l1=0.0784, tv=7.84`` for the
    papers' balance. Masks start at 0.5 everywhere (half perturbed), where the softmax reward of
    a confident model is not saturated. Jitter: the perturbed image is shifted by a random offset
    of up to ``jitter`` pixels (paper: 4 at 224, default ``max(1, round(4 * H / 224))``) at each
    step, the same offset for the whole batch, so that results do not depend on the batch.

    MP-G (Agarwal & Nguyen, ACCV 2020) is MP with an inpainting baseline
    (``baselines=InpaintBaseline(...)``): the removed region is filled with plausible content
    instead of blur. An inpainter needs a binary hole (handed a soft one, push-pull blends a
    half-removed pixel with itself, and deleting gains nothing), so for every mask-conditional
    baseline (one that overrides ``_fill``) the content is computed, without gradient, from the
    hard hole :math:`h = [k < \tfrac12]` of the current keep mask :math:`k` and blended softly:

    .. math::
        \Phi_G(x; k) = k \odot x + (1 - k) \odot c, \qquad
        c = h \odot \Phi(x;\ 1 - h) + (1 - h) \odot r(x),

    where :math:`r(x)` is the baseline's mask-free ``reference`` (each pixel inpainted from its
    surroundings, computed once), so that the gradient reaches cells outside the hole too. The
    inpainter therefore only ever sees binary holes, whatever ``binarize``.

    ``binarize=True`` forwards, besides the soft mask, the mask thresholded at 0.5 with a
    straight-through gradient :math:`\hat s = s + \operatorname{sg}([s \ge \tfrac12] - s)`; the
    reward is the mean of both, :math:`\tfrac12 (f_c(\Phi(x; \hat k)) + f_c(\Phi(x; k)))`, one
    forward pass of 2N images. The soft term keeps the gradient informative where the hard
    image saturates the softmax (which made a hard-only mask collapse to all-keep or
    all-delete), and the masks start at 0.5 plus a seeded uniform offset in [-0.05, 0.05]
    (one pattern for the batch) so that the cells do not cross the threshold together.

    Extremal Perturbation (Fong, Patrick & Vedaldi, ICCV 2019): with ``area=a`` the saliency is
    pushed towards a fixed area :math:`a` of the image by the sorted-mask penalty

    .. math::
        R_a(s) = \overline{(\operatorname{vecsort}(\uparrow s) - r_a)^2}, \qquad
        r_a = (\underbrace{0, \dots, 0}_{(1-a)HW}, \underbrace{1, \dots, 1}_{aHW}),

    added with a weight :math:`\lambda_t` that grows geometrically 16-fold over the run (as
    TorchRay's 1.0035 per step over 800 steps). ``l1`` then defaults to 0 (the area replaces
    it). The paper's reward is the logit or, with ``reward="contrastive"``, the target logit
    minus the best other logit.

    Rewards: ``"probability"`` (softmax of the target, MP's choice), ``"logit"``, or
    ``"contrastive"`` (target logit minus the largest other logit).

    Args:
        forward_func (Callable or nn.Module): maps images ``(N, C, H, W)`` in [0, 1] (plus
            ``additional_forward_args``) to logits ``(N, classes)``. It is evaluated in eval
            mode (a model in train mode would update its BatchNorm statistics and drop units
            at random), with its parameters' ``requires_grad`` flags off; both are restored
            exactly afterwards, also when an exception is raised. Only the masks get gradients:
            tensors passed as ``baselines`` or ``additional_forward_args`` keep theirs.

    Example:
        >>> import torch
        >>> from captum_cf.attr import MeaningfulPerturbation
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
        >>> mp = MeaningfulPerturbation(model)
        >>> sal = mp.attribute(torch.rand(2, 3, 16, 16), target=1, baselines=0.0, n_steps=5)
        >>> sal.shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        super().__init__(forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: Tensor,
        target: int | Sequence[int] | Tensor | None = None,
        baselines: Baseline | float | Tensor | None = None,
        mode: str = "deletion",
        area: float | Sequence[float] | None = None,
        mask_size: int | tuple[int, int] | None = None,
        n_steps: int | None = None,
        lr: float = 0.1,
        l1: float | None = None,
        tv: float = 1.0,
        tv_beta: float = 3.0,
        jitter: int | None = None,
        binarize: bool = False,
        reward: str = "probability",
        additional_forward_args: Any = None,
        seed: int | None = None,
        show_progress: bool = False,
        n_iters: int | None = None,
    ) -> Tensor:
        """Learn one mask per image (and per area), all images optimised together.

        Args:
            inputs (Tensor): images, shape (N, C, H, W), in [0, 1]; never modified.
            target (int, sequence, Tensor or None): class per image; None explains the class the
                model predicts for each clean image.
            baselines (Baseline, float, Tensor or None): what replaces removed pixels, through
                ``baselines.fill(inputs, keep)``. A float or a tensor broadcastable to ``inputs``
                is a constant reference. None: ``BlurBaseline(sigma=10 * H / 224)``.
            mode (str): ``"deletion"`` (smallest region whose removal kills the reward) or
                ``"preservation"`` (smallest region that alone keeps it).
            area (float, sequence of floats or None): Extremal Perturbation target area(s), each
                in (0, 1), as a fraction of the image. None: plain MP.
            mask_size (int, (int, int) or None): resolution of the optimised mask; None:
                ``(ceil(H / 8), ceil(W / 8))`` (the papers' 28x28 for 224x224).
            n_steps (int or None): Adam steps (>= 1), Captum's name for the number of steps;
                None: 300.
            lr (float): Adam learning rate (> 0).
            l1 (float or None): weight of the mean mask area; None: 0.3 for MP, 0 with
                ``area``.
            tv (float): weight of the mean total variation ``TV_beta`` of the mask (>= 0).
            tv_beta (float): exponent of the total variation (>= 1).
            jitter (int or None): maximal random shift, in pixels, of the perturbed image at each
                step (0 disables it); None: ``max(1, round(4 * H / 224))``.
            binarize (bool): also forward the mask thresholded at 0.5, with the gradient
                passed straight through to the continuous mask, and optimise the mean of the
                hard and the soft rewards (the returned map stays continuous; threshold it at
                0.5 for the binary region).
            reward (str): ``"probability"`` (a softmax of the output: a model that returns
                probabilities already is warned about), ``"logit"`` or ``"contrastive"``.
            additional_forward_args (Any): extra arguments for ``forward_func`` after the images;
                tensors whose first dimension is N are repeated for several areas.
            seed (int or None): seed of the jitter generator; None draws it from torch's global
                RNG, so ``torch.manual_seed`` makes results reproducible.
            show_progress (bool): show a tqdm progress bar over the steps.
            n_iters (int or None): the former name of ``n_steps``, still accepted (give one of
                the two, or both equal).

        Returns:
            Tensor: saliency in [0, 1] (higher = more important: the removed region in the
            deletion game, the kept region in the preservation game), shape (N, 1, H, W), or
            (N, K, H, W) for a sequence of K areas (channel k belongs to ``area[k]``; average
            over dim 1 for TorchRay's summary map). Same device and dtype as ``inputs``.
        """
        check_images(inputs, "inputs")
        check_model_dtype(inputs, self.forward_func)
        settings = _check_settings(
            inputs,
            mode,
            area,
            mask_size,
            _steps(n_steps, n_iters),
            lr,
            l1,
            tv,
            tv_beta,
            jitter,
            binarize,
            reward,
            seed,
        )
        args = _as_tuple(additional_forward_args)
        # gradients on also under torch.no_grad() and torch.inference_mode() (the reference is
        # made inside: a tensor made in inference mode cannot be saved for backward)
        with frozen(self.forward_func), torch.inference_mode(False), torch.enable_grad():
            # tensors made inside inference_mode cannot enter autograd: normal copies of them
            baselines, args = _normal(baselines), tuple(_normal(a) for a in args)
            fill = _filler(baselines, inputs)
            target_t = _resolve_target(self.forward_func, inputs, target, args, settings.reward)
            sal = _optimise(
                self.forward_func, inputs, target_t, fill, args, settings, show_progress
            )
        n, k = inputs.shape[0], len(settings.areas or (None,))
        # rows are area-major (k, n): regroup as (n, k, H, W)
        return sal.reshape(k, n, *inputs.shape[2:]).transpose(0, 1).contiguous()


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _steps(n_steps: Any, n_iters: Any) -> tuple[Any, str]:
    """``n_steps`` (Captum's name), or ``n_iters`` (the former one); with the name used."""
    if n_iters is None:
        return (300 if n_steps is None else n_steps), "n_steps"
    if n_steps is not None and n_steps != n_iters:
        raise ValueError(
            f"n_steps ({n_steps!r}) and n_iters ({n_iters!r}) name the same setting, the number "
            "of Adam steps; pass n_steps only"
        )
    return n_iters, "n_iters"


def _check_settings(
    inputs: Tensor,
    mode: Any,
    area: Any,
    mask_size: Any,
    n_iters: tuple[Any, str],
    lr: Any,
    l1: Any,
    tv: Any,
    tv_beta: Any,
    jitter: Any,
    binarize: Any,
    reward: Any,
    seed: Any,
) -> _Settings:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if reward not in _REWARDS:
        raise ValueError(f"reward must be one of {_REWARDS}, got {reward!r}")
    areas = _check_areas(area)
    height, width = inputs.shape[2:]
    n_iters, steps_name = n_iters
    _check_number(n_iters, steps_name, integer=True, low=1)
    _check_number(lr, "lr", low=0.0, strict=True)
    _check_number(tv, "tv", low=0.0)
    _check_number(tv_beta, "tv_beta", low=1.0)
    if l1 is None:
        l1 = 0.0 if areas is not None else 0.3
    _check_number(l1, "l1", low=0.0)
    if jitter is None:
        jitter = max(1, round(4 * height / 224))
    _check_number(jitter, "jitter", integer=True, low=0)
    if not isinstance(binarize, bool):
        raise TypeError(f"binarize must be a bool, got {type(binarize).__name__}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()))
    _check_number(seed, "seed", integer=True, low=0)
    mask_size = _check_mask_size(mask_size, inputs)
    cell = 1.0 / (mask_size[0] * mask_size[1])
    if areas is not None and min(areas) < cell:
        side = math.ceil(math.sqrt(1.0 / min(areas)))
        finer = (f"pass a finer mask_size (at least {side} per side)"
                 if side <= min(height, width) else
                 f"it is below what a {height} x {width} image can hold at all")
        warnings.warn(
            f"area {min(areas):g} is smaller than one cell of the {mask_size[0]} x {mask_size[1]} "
            f"mask ({cell:.3g} of the image): its region comes out empty or larger; {finer}",
            UserWarning, stacklevel=4)
    return _Settings(
        deletion=mode == "deletion",
        areas=areas,
        mask_size=mask_size,
        n_iters=int(n_iters),
        lr=float(lr),
        l1=float(l1),
        tv=float(tv),
        tv_beta=float(tv_beta),
        jitter=int(jitter),
        binarize=binarize,
        reward=reward,
        seed=int(seed),
    )


def _check_number(
    value: Any, name: str, integer: bool = False, low: float = 0.0, strict: bool = False
) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    if not math.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {relation} {low}, got {value}")


def _check_areas(area: Any) -> tuple[float, ...] | None:
    if area is None:
        return None
    if isinstance(area, Tensor) and area.dim() == 0:  # a number held in a tensor
        area = area.item()
    areas = (area,) if isinstance(area, (int, float)) and not isinstance(area, bool) else area
    if not isinstance(areas, (Sequence, Tensor)) or isinstance(areas, (str, bytes)):
        raise TypeError(f"area must be a float or a sequence of floats in (0, 1), got {area!r}")
    try:
        areas = tuple(float(a) for a in areas)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"area must be a float or a sequence of floats in (0, 1), got {area!r}"
        ) from err
    if not areas or not all(0.0 < a < 1.0 for a in areas):
        raise ValueError(
            f"area must be a float or a non-empty sequence of floats in (0, 1), got {area!r}"
        )
    return areas


def _check_mask_size(mask_size: Any, inputs: Tensor) -> tuple[int, int]:
    height, width = inputs.shape[2:]
    if mask_size is None:
        return max(1, math.ceil(height / 8)), max(1, math.ceil(width / 8))
    try:
        size = (mask_size, mask_size) if isinstance(mask_size, int) else tuple(mask_size)
    except TypeError:  # a float, or another scalar that is not an int
        size = ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise TypeError(f"mask_size must be an int or a pair of ints, got {mask_size!r}")
    if not (1 <= size[0] <= height and 1 <= size[1] <= width):
        raise ValueError(
            f"mask_size must lie between 1 and the image size {(height, width)}, got {size}"
        )
    return size


def _filler(baselines: Any, inputs: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``fill(images, keep, target) -> perturbed images`` for the given baseline."""
    if baselines is None:
        baselines = _default_baseline(inputs)
    if isinstance(baselines, Baseline):
        if type(baselines)._fill is not Baseline._fill:
            return _conditional_filler(baselines)
        reference = None
    elif isinstance(baselines, (int, float, Tensor)) and not isinstance(baselines, bool):
        reference = _constant_reference(baselines, inputs)
    else:
        raise TypeError(
            "baselines must be a captum_cf Baseline, a float or a tensor broadcastable to the "
            f"inputs, got {type(baselines).__name__}"
        )

    def composite(x: Tensor, keep: Tensor, t: Tensor) -> Tensor:
        # images and targets are fixed during the optimisation: the reference is computed once
        nonlocal reference
        if reference is None:
            with torch.no_grad():
                reference = baselines.reference(x, t)
        if reference.shape[0] != x.shape[0]:  # several areas: rows repeat the batch
            reference = reference.repeat(x.shape[0] // reference.shape[0], 1, 1, 1)
        return keep * x + (1 - keep) * reference

    return composite


def _conditional_filler(baseline: Baseline) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """MP-G's rule for mask-conditional baselines (inpainting), see the class docstring.

    The counterfactual content ``c`` is computed without gradient: inside the hard hole
    ``keep < 0.5`` it is ``baseline.fill`` with that binary hole (inpainted from the context
    that the current mask keeps), elsewhere the baseline's mask-free ``reference`` (each pixel
    inferred from its surroundings). The soft keep then blends ``keep * x + (1 - keep) * c``, so
    the gradient reaches every mask cell, and a soft hole never reaches the inpainter.
    """
    reference = None

    def blend(x: Tensor, keep: Tensor, t: Tensor) -> Tensor:
        nonlocal reference
        with torch.no_grad():
            if reference is None:  # images and targets are fixed during the optimisation
                reference = baseline.reference(x, t)
            hole = (keep.detach() < 0.5).to(x.dtype)
            content = hole * baseline.fill(x, 1 - hole, t) + (1 - hole) * reference
        return keep * x + (1 - keep) * content

    return blend


def _normal(value: Any) -> Any:
    """A tensor made inside ``torch.inference_mode()`` as a normal copy; anything else as is."""
    return value.clone() if isinstance(value, Tensor) and value.is_inference() else value


def _constant_reference(value: float | Tensor, inputs: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        value = value.detach()  # the caller's tensor and its graph stay out of the optimisation
    ref = torch.as_tensor(value, dtype=inputs.dtype, device=inputs.device)
    if isinstance(value, Tensor) and value.device != inputs.device:
        raise ValueError(f"baselines is on {value.device} but inputs are on {inputs.device}")
    try:
        ref = ref.expand_as(inputs) if ref.dim() <= inputs.dim() else None
    except RuntimeError:
        ref = None
    if ref is None:
        raise ValueError(f"baselines tensor must be broadcastable to inputs {tuple(inputs.shape)}")
    if not torch.isfinite(ref).all():
        raise ValueError("baselines contains NaN or infinite values")
    return ref


def _default_baseline(inputs: Tensor) -> Baseline:
    from captum_cf.baselines import BlurBaseline

    return BlurBaseline(sigma=10.0 * inputs.shape[2] / 224)


def _as_tuple(args: Any) -> tuple[Any, ...]:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def _resolve_target(
    model: Callable[..., Tensor], inputs: Tensor, target: Any, args: tuple, reward: str
) -> Tensor:
    """Targets as a long tensor (N,) on the inputs' device; None -> the predicted classes."""
    with torch.no_grad():
        logits = model(inputs, *args)
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != inputs.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"forward_func must return logits of shape (N, classes), got {shape}")
    if reward == "contrastive" and logits.shape[1] < 2:
        raise ValueError("reward='contrastive' needs a model with at least 2 classes")
    if reward == "probability":
        warn_if_probabilities(logits, "forward_func", "reward='probability' applies a softmax "
                              "to the output", stacklevel=5)
    if target is None:
        return logits.argmax(dim=1)
    return check_target(target, inputs.shape[0], logits.shape[1]).to(inputs.device)


# --------------------------------------------------------------------------------------------
# optimisation
# --------------------------------------------------------------------------------------------


def _optimise(
    model: Callable[..., Tensor],
    inputs: Tensor,
    target: Tensor,
    fill: Callable[[Tensor, Tensor, Tensor], Tensor],
    args: tuple,
    cfg: _Settings,
    show_progress: bool,
) -> Tensor:
    """Optimise all masks at once; returns the upsampled saliency, shape (K * N, 1, H, W)."""
    k = len(cfg.areas or (None,))
    x = inputs.detach().repeat(k, 1, 1, 1)
    target = target.repeat(k)
    args = _repeat_args(args, inputs.shape[0], k)
    size = tuple(inputs.shape[2:])
    # start half perturbed: the softmax reward saturates (no gradient) at an intact or a fully
    # perturbed image of a confident model, and from 0.5 both games move either way
    mask = torch.full((x.shape[0], 1, *cfg.mask_size), 0.5, dtype=x.dtype, device=x.device)
    if cfg.binarize:
        mask = mask + _init_noise(cfg, mask)
    mask.requires_grad_(True)
    optimiser = torch.optim.Adam([mask], lr=cfg.lr)
    shifts = _shifts(cfg)
    ref_areas = _area_references(cfg.areas, inputs.shape[0], size, x) if cfg.areas else None
    for step in _progress(range(cfg.n_iters), show_progress):
        sal = bilinear_resize(mask, size)  # deterministic backward on a GPU too
        loss = cfg.l1 * mask.mean(dim=(1, 2, 3)) + cfg.tv * _total_variation(mask, cfg.tv_beta)
        if ref_areas is not None:
            weight = _AREA_WEIGHT_START * _AREA_WEIGHT_GROWTH ** (step / max(1, cfg.n_iters - 1))
            loss = loss + weight * _area_penalty(sal, ref_areas)
        score = _score(model, x, sal, target, fill, args, cfg, shifts[step])
        loss = loss + (score if cfg.deletion else -score)
        # the masks' gradient only: a tensor of the caller's (a baseline, an extra argument of
        # the model) that requires grad gets none, and its graph is not run backwards
        (mask.grad,) = torch.autograd.grad(loss.sum(), mask)
        optimiser.step()
        with torch.no_grad():
            mask.clamp_(0.0, 1.0)
    with torch.no_grad():
        return bilinear_resize(mask, size).detach()


def _score(
    model: Callable[..., Tensor],
    x: Tensor,
    sal: Tensor,
    target: Tensor,
    fill: Callable[[Tensor, Tensor, Tensor], Tensor],
    args: tuple,
    cfg: _Settings,
    shift: tuple[int, int],
) -> Tensor:
    """Reward of the perturbed images, shape (B,); with ``binarize`` the mean of the hard
    (straight-through) and the soft mask's rewards, from one forward pass of 2B images."""
    shown = [_straight_through(sal), sal] if cfg.binarize else [sal]
    keeps = [1 - s if cfg.deletion else s for s in shown]
    perturbed = torch.cat([shift_replicate(fill(x, k, target), *shift) for k in keeps])
    many = len(keeps)
    rows = _repeat_args(args, x.shape[0], many)
    score = _reward(model(perturbed, *rows), target.repeat(many), cfg.reward)
    return score.view(many, -1).mean(dim=0)


def _progress(steps: range, show: bool) -> Any:
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="MeaningfulPerturbation")


def _repeat_args(args: tuple, n: int, k: int) -> tuple:
    if k == 1:
        return args
    return tuple(
        a.repeat(k, *([1] * (a.dim() - 1)))
        if isinstance(a, Tensor) and a.dim() and a.shape[0] == n
        else a
        for a in args
    )


def _shifts(cfg: _Settings) -> list[tuple[int, int]]:
    """One random (dy, dx) per step in [-jitter, jitter], shared by the batch."""
    if cfg.jitter == 0:
        return [(0, 0)] * cfg.n_iters
    generator = torch.Generator().manual_seed(cfg.seed)
    draws = torch.randint(-cfg.jitter, cfg.jitter + 1, (cfg.n_iters, 2), generator=generator)
    return [(int(dy), int(dx)) for dy, dx in draws.tolist()]


#: half-width of the seeded uniform offsets added to the 0.5 start when ``binarize=True``
_NOISE = 0.05


def _init_noise(cfg: _Settings, like: Tensor) -> Tensor:
    """Seeded uniform offsets in [-_NOISE, _NOISE], one pattern shared by the batch."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    noise = (torch.rand((1, 1, *cfg.mask_size), generator=generator) * 2 - 1) * _NOISE
    return noise.to(device=like.device, dtype=like.dtype)


def _total_variation(mask: Tensor, beta: float) -> Tensor:
    """Mean ``|vertical step|^beta`` plus mean ``|horizontal step|^beta``, shape (B,)."""
    tv = mask.new_zeros(mask.shape[0])
    if mask.shape[2] > 1:
        tv = tv + (mask[:, :, 1:] - mask[:, :, :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    if mask.shape[3] > 1:
        tv = tv + (mask[..., 1:] - mask[..., :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    return tv


def _area_references(areas: tuple[float, ...], n: int, size: tuple, like: Tensor) -> Tensor:
    """Sorted target masks ``r_a``: (1 - a) HW zeros then a HW ones, shape (K * N, HW)."""
    pixels = size[0] * size[1]
    rank = torch.arange(pixels, device=like.device, dtype=like.dtype)
    refs = [(rank >= round((1 - a) * pixels)).to(like.dtype) for a in areas]
    return torch.stack(refs).repeat_interleave(n, dim=0)


#: mask values closer than this count as tied in the area penalty (about 170 float32 steps at
#: 0.5): the resize kernels of the CPU and a GPU round the same mask up to a few steps apart
_TIE = 1e-5


def _area_penalty(sal: Tensor, references: Tensor) -> Tensor:
    """Fong et al. 2019 ``mean((sort(s) - r_a)^2)``, shape (B,), (nearly) tied mask values
    sharing their references' mean.

    The masks start at 0.5 everywhere and saturate at 0 and 1, so sort(s) is full of ties, and
    which of the tied pixels the sort puts against ``r_a``'s ones (pushed up) or zeros (pushed
    down) is the sort's tie order: arbitrary, and another on a GPU (on a square of evidence of
    area 0.06, ``area=0.1`` and a 16 x 16 mask: IoU 0.63 with the CPU's order, 0.43 with a
    stable one, which CUDA's is). Values within ``_TIE`` of each other on the grid of that
    width get the mean of their references instead: one push for all. Exact ties are not
    enough: the resize rounds the start mask's 0.5 to values a float32 step apart, differently
    on each device (a 13 x 13 mask: IoU 0.0 with exact ties on the CPU, 0.57 with the GPU's
    resize; 0.64 with both when near ties share). Two values that rounding puts on the two sides
    of a grid line still part, so a region can still differ between devices (13 x 13 mask,
    deletion, area 0.2: 3 to 7 of 16 images, up to 5 % of their pixels). Keys in float64 (in
    half precision ``v / 1e-5`` overflows).
    """
    values = sal.flatten(1).sort(dim=1).values
    with torch.no_grad():
        key = torch.round(values.double() / _TIE)
        starts = torch.ones_like(values, dtype=torch.bool)
        starts[:, 1:] = key[:, 1:] != key[:, :-1]
        run = starts.cumsum(dim=1) - 1  # (B, HW): index of each sorted value's run of ties
        # sums of 0s and 1s (references) and of 1s (counts): exact, so order-independent
        total = torch.zeros_like(values).scatter_add_(1, run, references.expand_as(values))
        count = torch.zeros_like(values).scatter_add_(1, run, torch.ones_like(values))
        shared = (total / count.clamp_min(1.0)).gather(1, run)
    return (values - shared).pow(2).mean(dim=1)


def _straight_through(sal: Tensor) -> Tensor:
    """Forward ``sal >= 0.5`` as 0/1, backward the identity."""
    hard = (sal >= 0.5).to(sal.dtype)
    return sal + (hard - sal).detach()


def _reward(logits: Tensor, target: Tensor, kind: str) -> Tensor:
    """Score of the target class per row, shape (B,)."""
    if kind == "probability":
        return logits.softmax(dim=1).gather(1, target[:, None])[:, 0]
    chosen = logits.gather(1, target[:, None])[:, 0]
    if kind == "logit":
        return chosen
    others = logits.scatter(1, target[:, None], float("-inf"))
    return chosen - others.max(dim=1).values


def _explainer(ctx: Any, n_steps: int = 100) -> Callable[[Tensor, Any, Any], Tensor]:
    """Audit factory: ``explain(inputs, target, baseline) -> (N, 1, H, W)`` deletion-game saliency.

    100 Adam steps instead of the papers' 300 keep the whole audit under two minutes; the masks
    have settled by then on the zoo models (lr 0.1 moves a mask cell across [0, 1] in 10 steps).
    """
    method = MeaningfulPerturbation(ctx.model)

    def explain(inputs: Tensor, target: Any, baseline: Any) -> Tensor:
        return method.attribute(
            inputs, target=target, baselines=baseline, n_steps=n_steps, seed=ctx.seed
        )

    return explain
