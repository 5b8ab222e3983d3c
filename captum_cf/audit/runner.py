"""Audit: explain a model with every method x baseline, score each explanation, report.

This is what ``captum-cf audit`` runs. Methods come from :data:`captum_cf.attr.METHODS` and
baselines from :data:`captum_cf.baselines.BASELINES` (by default the methods of
:data:`DEFAULT_METHODS` and every baseline available for the model and data; ``"all"`` selects
every available method). Each cell (method, baseline) explains the same images and is scored by:

* for each removal ``r`` of ``removals`` (default :data:`DEFAULT_REMOVALS`: black, blur,
  push-pull inpainting and ROAD's noisy linear imputation, those available): ``morf_r`` (lower
  is better), the area under the explained class's softmax as pixels are removed most relevant
  first; ``lerf_r`` (higher is better), least relevant first; ``srg_r`` (higher is better), the
  symmetric relevance gain ``lerf_r - morf_r`` (Blücher et al., TMLR 2024), which cancels much
  of the removal's bias (:func:`captum_cf.metrics.removal_curves`: every removal and both
  orders of one step in one forward pass). ``morf_zero`` is RISE's deletion AUC, and
  ``lerf_blur`` is RISE's insertion AUC up to the blur's sigma (revealing the top fraction into
  a blurred image is removing the rest with blur), so the former ``deletion_auc`` and
  ``insertion_auc`` columns are not computed again;
* ``pointing_game`` (higher is better), when object masks exist;
* ``sanity_ssim`` (lower is better): SSIM between the absolute map and the map after the top layer
  of the model is re-initialised (the first step of Adebayo et al.'s cascading randomisation);
  a map that does not change does not explain the model.

A cell whose maps are constant (all zero included) for an image carries ``no_signal`` = 1 for
it (:func:`captum_cf.audit.stats.no_signal`), and its MoRF and LeRF there are the mean of the two
orders (SRG 0: a constant map orders nothing); a cell with no signal on most images is flagged
and left out of the verdict. The R-OMS of each removal (Blücher et al.: how close the model's
output under the removal stays to its output under a reference occlusion, push-pull inpainting)
is computed once per audit on its first min(32, n) images (whatever the explanation batch), not per
cell.

A method that ignores baselines (registered with ``uses_baseline=False``) is one cell, its
baseline shown as ``"-"``. Each metric is reported as the mean over images with a 95 % confidence
interval (Student's t, clipped to the metric's range; Wilson for the pointing game).

How the work flows (streaming): the images are read in batches (a ``DataLoader``); each batch goes
through every cell, and its per-image scores are written to the results store
(:class:`~captum_cf.audit.store.AuditStore`, one transaction per batch x cell) before the next batch
is read, so memory does not grow with the number of images and a killed audit resumes where it
stopped. Batch ``k`` is always the same images (``k * B ... (k+1) * B - 1``) and is seeded with
``seed + k``, so a resumed or distributed audit computes exactly what a single uninterrupted one
does.

Memory rule (``batch_size=None``, ``explain_batch=None``): with P = H x W pixels per image,

* explanation batch (images per explanation call, also the streaming batch):
  ``clamp(2**21 // P, 1, 256)``: 41 images at 224 px, 256 at 32 px;
* internal batch of path methods (model evaluations with gradients per pass, e.g. Integrated
  Gradients' steps): ``clamp(2**20 // P, 1, 256)``: 20 images at 224 px, 256 at 32 and 64 px;
  DeepLift, whose passes carry inputs and references together and whose hooks keep every
  activation, explains a sixth as many inputs per pass;
* forward batch (no-grad passes of the MoRF/LeRF curves): ``clamp(1.5 * 2**20 // P, 1, 256)``
  (31 images at 224 px), and perturbation methods evaluate at most ``1.5 * 2**20 // P`` images
  per pass: on the CPU larger passes run slower per image;
* on CUDA the budgets are ``2**21`` and ``2**22`` pixels times (free GPU memory) / 4 GiB.

This keeps the default grid at 224 px near 1.5 GB on the CPU whatever the number of images
(``benchmarks/audit_scale.py``). A cell that runs out of memory all the same (a model much
larger than a resnet50) halves its explanation part and passes and runs again, and one image a
method cannot explain fails alone (:mod:`captum_cf.audit.memory`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import re
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset, TensorDataset

from captum_cf._model_state import frozen
from captum_cf._registry import AuditContext, Registry
from captum_cf._validation import check_images, check_model_dtype, check_target, first_line
from captum_cf._weights import file_digest
from captum_cf.audit._cell_guard import CellGuard
from captum_cf.audit.errors import AuditDtypeError, AuditInputError, AuditInterrupted
from captum_cf.audit.memory import (
    Level,
    halving,
    is_out_of_memory,
    release_memory,
    split_budget,
)
from captum_cf.audit.result import DEFAULT_METHODS, NO_BASELINE, AuditResult
from captum_cf.audit.stats import no_signal
from captum_cf.audit.store import AuditStore, BatchRecord, ids_digest
from captum_cf.baselines import BASELINES, Baseline
from captum_cf.metrics import pointing_game, r_oms, randomization_test, removal_curves
from captum_cf.metrics._common import check_masks as check_mask_values
from captum_cf.metrics._common import class_scores, resolve_score
from captum_cf.metrics.deletion import Curve, _normalised_auc
from captum_cf.metrics.randomization import layer_names

__all__ = ["DEFAULT_REMOVALS", "audit", "plan_batches"]

#: removals every cell is scored under when none are named (those available for the data)
DEFAULT_REMOVALS = ("zero", "blur", "inpaint-pushpull", "road")
#: the reference occlusion of R-OMS (the removal that leaves the model's scope least, in theory)
ROMS_REFERENCE = "inpaint-pushpull"
#: R-OMS is measured on the first ROMS_N images of the audit
ROMS_N = 32

#: pixels per explanation batch on the CPU, and per pass with gradients per 4 GiB of free GPU
#: memory (explanation batch, path methods' internal batch)
GRAD_PIXELS = 2**21
#: pixels per pass with gradients of a path method on the CPU (about 16 MB per resnet18 image at
#: 224 px: 20 images keep the default grid's peak near 1.7 GB; benchmarks/RESULTS.md)
CPU_GRAD_PIXELS = 2**20
#: pixels per no-grad forward pass per 4 GiB of free GPU memory
FORWARD_PIXELS = 2**22
#: pixels per no-grad forward pass on the CPU: fewer than memory allows, since larger passes run
#: slower per image there (resnet18 at 224 px, one thread: 40-43 ms per image in passes of 16-32
#: images, 50-52 ms in passes of 48-83; benchmarks/RESULTS.md, audit_scale)
CPU_FORWARD_PIXELS = 3 * 2**19


def audit(
    model: nn.Module,
    images: Tensor | Dataset | DataLoader,
    target: Any = None,
    masks: Tensor | None = None,
    methods: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    *,
    data_name: str = "custom",
    train_data: TensorDataset | None = None,
    removals: Sequence[str] | None = None,
    n_steps: int = 10,
    batch_size: int | None = None,
    sanity_n: int = 8,
    n_examples: int = 4,
    seed: int = 0,
    extras: dict[str, Any] | None = None,
    show_progress: bool = False,
    device: str | torch.device | None = None,
    store: str | None = None,
    resume: bool = False,
    workers: int = 0,
    explain_batch: int | None = None,
    baseline_weights: dict[str, str] | None = None,
) -> AuditResult:
    """Explain images with every method x baseline and score every explanation.

    Args:
        model (nn.Module): classifier, (N, C, H, W) images in [0, 1] -> (N, classes) logits.
        images (Tensor, Dataset or DataLoader): a tensor (N, C, H, W) in [0, 1]; a map-style
            ``Dataset`` whose items are ``(image, label)`` or ``(image, label, mask)`` (label -1
            when unknown; e.g. :class:`captum_cf.datasets.ImageFolder`, whose relative paths become
            the image ids); or a ``DataLoader`` yielding such batches in a fixed order.
        target (int, sequence or Tensor, optional): class to explain per image; None = predicted.
        masks (Tensor, optional): with a tensor ``images``: object masks (N, 1, H, W), bool or
            0/1; adds the pointing game.
        methods (sequence of str, optional): names in ``captum_cf.attr.METHODS``; default
            :data:`DEFAULT_METHODS` (those available); ``["all"]``: every available method.
        baselines (sequence of str, optional): names in ``captum_cf.baselines.BASELINES``;
            default (or ``["all"]``) every baseline available for this model and data.
        data_name (str): ``"digits"``, ``"shapes"`` or a description (passed to the registries).
        train_data (TensorDataset, optional): training images, for baselines that need samples.
        removals (sequence of str, optional): baseline names that remove pixels in the MoRF and
            LeRF curves; default :data:`DEFAULT_REMOVALS` (those available); ``["all"]``: every
            available baseline.
        n_steps (int): steps of the MoRF and LeRF curves, >= 1 (10: ROAD's 10 % steps).
        batch_size (int, optional): images per no-grad forward pass; None: sized by memory.
        sanity_n (int): images used by the randomisation sanity check, >= 0 (0 skips it).
        n_examples (int): images shown in the report's figures, >= 0.
        seed (int): seeds every batch x cell (batch ``k`` with ``seed + k``).
        extras (dict, optional): passed to the registries' :class:`AuditContext`.
        show_progress (bool): tqdm progress bar over (image, cell) pairs.
        device (str or torch.device, optional): where to compute; default the model's device.
            A model elsewhere is copied there (the given model is not moved).
        store (str, optional): SQLite file that receives the per-image results as they are
            computed; default in memory.
        resume (bool): continue the audit recorded in ``store`` (same settings required).
        workers (int): ``DataLoader`` worker processes reading the images (>= 0).
        explain_batch (int, optional): images per explanation call; None: sized by memory.
        baseline_weights (dict, optional): a weights file for a learned baseline, trained for
            this model and these images, in place of the data set's zoo model:
            ``{"ganmex": "g.pt", "exaggeration": "e.pt", "inpaint-learned": "i.pt",
            "sparse-counterfactual": "robust.pt"}`` (files of ``captum-cf train ganmex|
            exaggeration|inpainter|robust``). Each is checked before any work: its kind,
            channels, image size and classes must fit. ``inpaint-learned`` also takes an
            inpainting network of your own, ``forward(image, mask)`` saved with
            ``torch.export.save`` or ``torch.jit.save`` (e.g. LaMa), adapted to the images by
            :func:`captum_cf.inpainters.inpainter_from_file` (padding, channels, batch).

    Returns:
        AuditResult: ``.table()`` to print, ``.write(out)`` to save the report.

    Raises:
        AuditInputError: unknown or unavailable method/baseline names (the message lists the valid
            ones), a model that does not return (N, classes) logits, or resuming a store of
            another audit.
        ValueError, TypeError: bad settings (the message names the argument), before any work.
        AuditInterrupted: Ctrl-C; everything computed so far is in ``store``.

    The model is audited in eval mode, without parameter gradients (a model in training mode
    keeps its batch-norm statistics; its mode and flags are restored afterwards). A model whose
    output holds its logits (``.logits`` or ``["logits"]``, Hugging Face style) is audited on
    those. A method that fails on one image
    (:func:`captum_cf.audit.model.probe_methods`) is left out: the reason goes to stderr and to
    ``result.config["skipped_methods"]``; no method left is an :class:`AuditInputError`.

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.datasets import load_digits
        >>> x, _ = load_digits("test").tensors
        >>> res = audit(zoo.load("digits-cnn"), x[:8], methods=["deeplift"], baselines=["zero"])
        >>> print(res.table())  # doctest: +SKIP
    """
    settings = Settings(
        methods=methods,
        baselines=baselines,
        data_name=data_name,
        train_data=train_data,
        removals=removals,
        n_steps=n_steps,
        batch_size=batch_size,
        sanity_n=sanity_n,
        n_examples=n_examples,
        seed=seed,
        extras=dict(extras or {}) if extras is None or isinstance(extras, dict) else extras,
        show_progress=show_progress,
        workers=workers,
        explain_batch=explain_batch,
        baseline_weights=baseline_weights,
    )
    settings.validate()
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be a bool, got {type(resume).__name__}")
    dev = _device(model, images, device)
    model = _on_device(model, dev)
    source = make_source(images, masks)
    # the audit seeds every batch (seed + k): the caller's random state is restored afterwards
    cuda = [torch.device(dev)] if torch.device(dev).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        result = run_audit(model, source, settings, store, dev, target=target, resume=resume)
    assert result is not None  # a single process is rank 0
    return result


@dataclass
class Settings:
    """An audit's settings other than the model and the images (checked by :meth:`validate`)."""

    methods: Sequence[str] | None = None
    baselines: Sequence[str] | None = None
    data_name: str = "custom"
    train_data: TensorDataset | None = None
    removals: Sequence[str] | None = None
    n_steps: int = 10
    batch_size: int | None = None
    sanity_n: int = 8
    n_examples: int = 4
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    show_progress: bool = False
    workers: int = 0
    explain_batch: int | None = None
    model_name: str | None = None
    baseline_weights: dict[str, str] | None = None

    def validate(self) -> None:
        """``TypeError``/``ValueError`` naming the first bad setting."""
        _int(self.n_steps, "n_steps", 1)
        _int(self.sanity_n, "sanity_n", 0)
        _int(self.n_examples, "n_examples", 0)
        _int(self.seed, "seed", None)
        _int(self.workers, "workers", 0)
        if self.batch_size is not None:
            _int(self.batch_size, "batch_size", 1)
        if self.explain_batch is not None:
            _int(self.explain_batch, "explain_batch", 1)
        for name in ("methods", "baselines", "removals"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, str) or not all(isinstance(v, str) for v in value)
            ):
                raise TypeError(f"{name} must be a sequence of names (str), got {value!r}")
        if not isinstance(self.extras, dict):
            raise TypeError(f"extras must be a dict, got {type(self.extras).__name__}")
        if self.baseline_weights is not None:
            from captum_cf.baselines._trained import LEARNED

            bw = self.baseline_weights
            if not isinstance(bw, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, os.PathLike)) for k, v in bw.items()
            ):
                raise TypeError(f"baseline_weights must be a dict of name -> file, got {bw!r}")
            for name in bw:
                if name not in LEARNED:
                    raise ValueError(
                        f"baseline_weights: {name!r} takes no weights; the learned baselines "
                        f"are {', '.join(LEARNED)}"
                    )
        if self.train_data is not None and not isinstance(self.train_data, TensorDataset):
            raise TypeError(
                f"train_data must be a TensorDataset, got {type(self.train_data).__name__}"
            )


def _int(value: Any, name: str, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# -- the images ---------------------------------------------------------------------------------


@dataclass
class Source:
    """The images of an audit: a map-style ``dataset`` (or a fixed-order ``loader``) and ids."""

    dataset: Dataset | None
    loader: DataLoader | None
    ids: list[str]
    has_masks: bool
    first: tuple[Tensor, Tensor, Tensor | None]  # a batch of the first images, for the probes

    def __len__(self) -> int:
        return len(self.ids)


def make_source(
    images: Any, masks: Tensor | None = None, ids: Sequence[str] | None = None
) -> Source:
    """Wrap a tensor, a ``Dataset`` or a ``DataLoader`` (see :func:`audit`); checks it."""
    from captum_cf.audit.data import TensorImages

    if isinstance(images, Tensor):
        check_images(images, "images")
        if images.shape[0] == 0:
            raise ValueError(
                f"images must hold at least one image, got shape {tuple(images.shape)}"
            )
        if masks is not None:
            masks = check_masks(masks, images.shape, "masks")
        dataset: Dataset = TensorImages(images, None, masks)
    elif masks is not None:
        raise ValueError("masks is only for a tensor of images; a Dataset returns them per item")
    elif isinstance(images, (Dataset, DataLoader)):
        dataset = images
    else:
        raise TypeError(
            f"images must be a Tensor (N, C, H, W), a Dataset or a DataLoader, "
            f"got {type(images).__name__}"
        )
    if isinstance(dataset, DataLoader):
        loader = dataset
        sampler = getattr(loader.batch_sampler, "sampler", loader.sampler)
        if not isinstance(sampler, SequentialSampler):
            raise ValueError(
                f"images: a DataLoader must read its dataset in order (image i = dataset[i], "
                f"the id and resume order of the audit), got one with a "
                f"{type(sampler).__name__} (shuffle=True or a sampler); pass the Dataset "
                f"itself, or a torch.utils.data.Subset of it, and the audit batches it"
            )
        try:
            n = len(loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "images: a DataLoader over a dataset with a length is required"
            ) from None
        first = _unpack(next(iter(loader)), "images")
        ids = [str(i) for i in range(n)] if ids is None else list(ids)
        return Source(None, loader, ids, first[2] is not None, first)
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError("images: a map-style Dataset (with __len__) is required") from None
    if n == 0:
        raise ValueError("images: the dataset is empty")
    if ids is None:
        paths = getattr(dataset, "paths", None)
        ids = list(paths) if isinstance(paths, list) and len(paths) == n else None
    ids = [str(i) for i in range(n)] if ids is None else list(ids)
    first = _unpack(_collate([dataset[0]]), "images")
    return Source(dataset, None, ids, first[2] is not None, first)


def _class_names(source: Source) -> list[str] | None:
    """The class folders' names of an image folder's source (its ``classes``), else None."""
    holder = source.dataset if source.dataset is not None else getattr(source.loader, "dataset",
                                                                         None)
    names = getattr(holder, "classes", None)
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return None


#: audited images (at most) whose labels are compared with the model's predictions first
AGREEMENT_IMAGES = 64
_EXPLAINED_AS_IS = (
    "Is the model trained (a --model factory builds an untrained one unless it loads weights "
    "itself or --weights is given), and on these classes? The audit explains each image's "
    "predicted class, whatever the folders' order, but explanations of an untrained model say "
    "nothing of a trained one")


def _check_agreement(model: Any, source: Source, plan: _Plan, dev: torch.device) -> None:
    """Warn before the grid when the model puts the audited images in their labelled class no
    better than guessing (:func:`captum_cf.training.check_label_agreement`), most often a model
    whose weights were not loaded. Up to :data:`AGREEMENT_IMAGES` images spread over the audit
    (a ``DataLoader``: its first batch) go through the model once; only labels that can be the
    model's classes count (an image folder: as many class folders as the model has outputs), at
    least 8 of them, of two classes or more."""
    from captum_cf.training import check_label_agreement

    names = plan.config.get("class_names")
    k = plan.ctx.num_classes
    if names is not None and len(names) != k:  # e.g. an ImageNet model on three folders
        return
    n = len(source)
    try:
        if source.dataset is not None:
            m = min(n, AGREEMENT_IMAGES)
            rows = sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})
            images, labels, _ = _unpack(_collate([source.dataset[i] for i in rows]), "images")
        else:
            images, labels, _ = source.first
    except Exception:  # noqa: BLE001 (an unreadable image is told, with its path, by the grid)
        return
    known = (labels >= 0) & (labels < k)
    if int(known.sum()) < 8 or not bool(known.all()) or len(torch.unique(labels)) < 2:
        return
    check_label_agreement(model, images, labels, dev, "the model", names, sample=len(labels),
                          batch_size=plan.batches["forward"], images_name="audited images",
                          consequence=_EXPLAINED_AS_IS)


def _collate(items: list[Any]) -> Any:
    from torch.utils.data import default_collate

    return default_collate(items)


def _unpack(batch: Any, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
    """A collated batch -> (images (B, C, H, W), labels (B,) long, -1 unknown; masks or None)."""
    if isinstance(batch, Tensor):
        batch = (batch,)
    if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 3:
        raise TypeError(
            f"{name}: items must be (image, label) or (image, label, mask), got "
            f"{type(batch).__name__}"
        )
    x = batch[0]
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: images must batch to (N, C, H, W), got {shape}")
    labels = batch[1] if len(batch) > 1 else None
    labels = torch.full((len(x),), -1) if labels is None else torch.as_tensor(labels).long()
    masks = batch[2] if len(batch) > 2 else None
    return x, labels.reshape(-1), masks


def check_masks(masks: Any, shape: Sequence[int], name: str = "masks") -> Tensor:
    """Object masks (N, 1, H, W): bool, or numbers that are all 0 or 1 -> bool."""
    n, _, h, w = shape
    if not isinstance(masks, Tensor):
        raise TypeError(
            f"{name} must be a Tensor of shape ({n}, 1, {h}, {w}), got {type(masks).__name__}"
        )
    if tuple(masks.shape) != (n, 1, h, w):
        raise ValueError(f"{name} must have shape ({n}, 1, {h}, {w}), got {tuple(masks.shape)}")
    # the metrics' check of the values (bool, or real 0/1 with no NaN), then the (N, 1, H, W) view
    return check_mask_values(masks, n, (h, w), name)[:, None]


# -- the plan -----------------------------------------------------------------------------------


def plan_batches(
    image_shape: Sequence[int],
    device: torch.device,
    batch_size: int | None = None,
    explain_batch: int | None = None,
) -> dict[str, int]:
    """The memory rule (module docstring): explanation, internal, forward batch sizes.

    Returns:
        dict: ``explain`` (images per explanation call and per streamed batch), ``internal``
        (model evaluations with gradients per pass of a path method), ``forward`` (images per
        no-grad pass of the curves) and ``forward_images`` (images one perturbation pass may hold).
    """
    pixels = int(image_shape[-1]) * int(image_shape[-2])
    scale, fwd_pixels, internal_pixels = 1.0, CPU_FORWARD_PIXELS, CPU_GRAD_PIXELS
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        scale, fwd_pixels, internal_pixels = max(free / 2**32, 0.25), FORWARD_PIXELS, GRAD_PIXELS
    grad = max(1, int(GRAD_PIXELS * scale) // pixels)
    internal = max(1, int(internal_pixels * scale) // pixels)
    fwd = max(1, int(fwd_pixels * scale) // pixels)
    explain = explain_batch or min(grad, 256)
    return {
        "explain": explain,
        "internal": min(internal, 256),
        "forward": batch_size or min(fwd, 256),
        "forward_images": batch_size or fwd,
    }


def _device(model: Any, images: Any, device: Any) -> torch.device:
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device: {err}") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: cuda requested but CUDA is not available")
        return dev
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    if isinstance(images, Tensor):
        return images.device
    return torch.device("cpu")


def _on_device(model: Any, dev: torch.device) -> Any:
    if not isinstance(model, nn.Module):
        return model
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device == dev or (dev.index is None and t.device.type == dev.type) for t in tensors):
        return model
    import copy

    return copy.deepcopy(model).to(dev)  # the user's model stays where it is


def _methods() -> Registry:
    # imported late: the method modules pull in Captum
    from captum_cf.attr import METHODS

    return METHODS


@dataclass
class _Plan:
    """Everything decided before the first batch: context, cells, metrics, batches, targets."""

    ctx: AuditContext
    cells: list[tuple[str, str]]
    methods: list[str]
    baselines: list[str]
    metrics: list[str]
    batches: dict[str, int]
    targets: Tensor | None  # (N,) given targets, or None (predicted per batch)
    config: dict[str, Any]


def make_plan(
    model: Any, source: Source, s: Settings, dev: torch.device, target: Any = None
) -> _Plan:
    """Probe the model on the first image, resolve the names, size the batches (no heavy work)."""
    from captum_cf.audit.model import applicable_methods, check_logits

    x0 = source.first[0][:2].to(dev)
    check_images(x0, "images")
    try:  # the dtype rule, before the model runs (its own error is torch's "double and float")
        check_model_dtype(x0, model, name="images")
    except TypeError as err:
        raise AuditDtypeError(str(err)) from err
    num_classes = check_logits(model, x0)
    n = len(source)
    targets = None if target is None else check_target(target, n, num_classes)
    image_shape = tuple(int(v) for v in x0.shape[1:])
    batches = plan_batches(image_shape, dev, s.batch_size, s.explain_batch)
    extras = {
        "internal_batch_size": batches["internal"],
        "forward_images": batches["forward_images"],
        **s.extras,
        **({"baseline_weights": dict(s.baseline_weights)} if s.baseline_weights else {}),
    }
    ctx = AuditContext(
        model=model,
        data_name=s.data_name,
        train_data=s.train_data,
        num_classes=num_classes,
        image_shape=image_shape,  # type: ignore[arg-type]
        device=dev,
        seed=s.seed,
        extras=extras,
    )
    if s.baseline_weights:
        from captum_cf.baselines._trained import check_baseline_weights

        try:
            check_baseline_weights(ctx, _requested_baselines(s))
        except ValueError as err:
            raise AuditInputError(str(err)) from err
    registry = _methods()
    methods = _resolve(registry, s.methods, ctx, "--methods", DEFAULT_METHODS)
    # a method that fails on one image is left out, with its reason, before the grid runs
    t0 = None if targets is None else targets[:1].to(dev)
    methods, skipped = applicable_methods(methods, ctx, x0[:1], t0)  # type: ignore[arg-type]
    baselines = _resolve(BASELINES, s.baselines, ctx, "--baselines")
    removals = _resolve(BASELINES, s.removals, ctx, "--removals", DEFAULT_REMOVALS)
    unused = sorted(set(s.baseline_weights or {}) - set(baselines) - set(removals))
    if unused:
        warnings.warn(
            f"audit: --baseline-weights {', '.join(unused)}: not among --baselines or "
            f"--removals, so {'its file is' if len(unused) == 1 else 'their files are'} not used",
            UserWarning, stacklevel=2,
        )
    built = _check_removals(removals, ctx, x0[:1].to(dev), t0)
    pixels = image_shape[-1] * image_shape[-2]
    fractions = _fractions(s.n_steps, pixels)
    cells = []
    for m in methods:
        if registry.uses_baseline(m):
            cells += [(m, b) for b in baselines]
        else:
            cells.append((m, NO_BASELINE))
    metrics = [f"{kind}_{r}" for r in removals for kind in ("srg", "morf", "lerf")]
    metrics += ["pointing_game"] if source.has_masks else []
    metrics += ["sanity_ssim"] if s.sanity_n > 0 and _top_layer(model) else []
    if (s.sanity_n > 0 and isinstance(model, torch.jit.ScriptModule)
            and os.environ.get("RANK", "0") == "0"):  # said once under torchrun
        warnings.warn("audit: no sanity check: the model is a TorchScript module, whose layers "
                      "cannot be re-initialised one by one (audit the nn.Module it was scripted "
                      "from for one)", RuntimeWarning, stacklevel=3)
    config = {
        "data": s.data_name,
        "n": n,
        "image_ids": ids_digest(source.ids),
        "image_shape": list(image_shape),
        "num_classes": num_classes,
        "model": s.model_name or type(model).__name__,
        "model_hash": _model_hash(model),
        "model_code": _model_code(model),  # a resume after the model's code changed: refused
        "methods": methods,
        "skipped_methods": skipped,
        "baselines": baselines,
        "cells": [list(c) for c in cells],
        "metrics": metrics,
        "removals": removals,
        # the code of every entry used: a resume after a plug-in's factory changed is refused
        "entries": _entry_digests(ctx, registry, methods, baselines, built),
        "roms_reference": ROMS_REFERENCE if ROMS_REFERENCE in BASELINES.names(ctx) else None,
        "n_steps": s.n_steps,
        "fractions": fractions,
        # what goes to removal_curves (which floors): recompute a value with these
        "percentages": _percentages(fractions, pixels),
        "sanity_n": min(s.sanity_n, n),
        "n_examples": s.n_examples,
        "masks": source.has_masks,
        "seed": s.seed,
        "batch": batches["explain"],
        "targets": "predicted" if targets is None else ids_digest(map(str, targets.tolist())),
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    names = _class_names(source)
    if names is not None:  # an image folder's classes, by label (named in the report)
        config["class_names"] = names
    if s.train_data is not None:  # the samples of nearest-sample: a resume needs the same ones
        config["train_data"] = _tensors_hash(*s.train_data.tensors)
    if s.baseline_weights:  # the files' contents, so that a resume with other weights is refused
        config["baseline_weights"] = {
            k: file_digest(v)[:16] for k, v in sorted(s.baseline_weights.items())
        }
        config["baseline_files"] = {k: os.fspath(v) for k, v in sorted(s.baseline_weights.items())}
    return _Plan(ctx, cells, methods, baselines, metrics, batches, targets, config)


def _fractions(n_steps: int, pixels: int) -> list[float]:
    """Fractions removed at each step: ``round(i * P / n) / P`` (RISE's deletion counts),
    with ``n = min(n_steps, P)`` so that every step removes at least one pixel."""
    n = min(n_steps, pixels)
    return [round(i * pixels / n) / pixels for i in range(n + 1)]


def _percentages(fractions: list[float], pixels: int) -> list[float]:
    """``fractions`` as the percentages :func:`~captum_cf.metrics.removal_curves` takes: it counts
    ``floor(P * p / 100)`` pixels, and half a pixel above each count keeps float rounding from
    losing one (RISE's counts ``round(i * P / n_steps)``, as deletion's)."""
    inner = [100.0 * (round(f * pixels) + 0.5) / pixels for f in fractions[1:-1]]
    return [0.0, *inner, 100.0]


def _tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()


def _tensors_hash(*tensors: Tensor) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()[:16]


def _model_hash(model: Any) -> str:
    if not isinstance(model, nn.Module):
        return ""
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(_tensor_bytes(v))
    return h.hexdigest()[:16]


#: modules whose classes' code is the libraries' own (a version, not the user's edit)
_LIBRARIES = ("torch", "torchvision", "captum", "captum_cf", "transformers", "timm")


def _model_code(model: Any) -> str:
    """A digest of the model's code: its structure (``repr``: layers and their settings) and the
    code of its own classes' methods (``forward`` edited from ReLU to Tanh keeps the state dict;
    a resume mixed the two models' results). Compiled code, not source text: a comment or a
    moved line changes nothing, and a class loaded from ``--model file.py:make`` (no importable
    module to read the source from) is covered too. A plain function: its code."""
    h = hashlib.sha1()
    if isinstance(model, nn.Module):
        h.update(repr(model).encode())
        owners: list[Any] = list(dict.fromkeys(type(m) for m in model.modules()))
    else:
        owners = [model]
    seen: set[int] = set()
    for owner in owners:
        if _library(owner):
            continue
        members = vars(owner).items() if isinstance(owner, type) else [("", owner)]
        for name, member in sorted(members, key=lambda kv: kv[0]):
            for fn in (member, getattr(member, "__func__", None), getattr(member, "fget", None)):
                if getattr(fn, "__code__", None) is not None:
                    h.update(name.encode() + _function_bytes(fn, seen))
    return h.hexdigest()[:16]


def _library(obj: Any) -> bool:
    """``obj`` (a class, function or module) belongs to an installed library or the standard
    library, not to the user's own code (whose edits change the model): its updates are not
    edits of the model."""
    name = (obj.__name__ if isinstance(obj, types.ModuleType)
            else getattr(obj, "__module__", "")) or ""
    top = name.split(".")[0]
    if top in _LIBRARIES or top in getattr(sys, "stdlib_module_names", ()) \
            or top in sys.builtin_module_names:
        return True
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(name)
    path = getattr(module, "__file__", None) or ""
    return any(part in path for part in ("site-packages", "dist-packages"))


def _function_bytes(fn: Any, seen: set[int]) -> bytes:
    """:func:`_code_bytes` of ``fn`` and of the functions of the user's own modules it calls by
    a global name (a ``forward`` that calls a module-level ``act(x)``: editing ``act`` is a
    change of the model's code), each once."""
    seen.add(id(fn))
    parts = [_code_bytes(fn.__code__),  # default values: def helper(x, k=1.0)
             _stable(fn.__defaults__).encode(), _stable(fn.__kwdefaults__).encode()]
    names: list[str] = []
    stack = [fn.__code__]
    while stack:
        code = stack.pop()
        names += code.co_names
        stack += [c for c in code.co_consts if hasattr(c, "co_code")]
    scope = getattr(fn, "__globals__", {})
    # by a global name (act(x)), or as an attribute of a module of the user's (helpers.act(x))
    modules = [v for v in scope.values() if isinstance(v, types.ModuleType) and not _library(v)]
    for name in sorted(set(names)):
        value = scope.get(name)
        if isinstance(value, _PLAIN):  # a module-level constant it reads: SCALE = 1.0
            parts.append(f"{name}={_stable(value)}".encode())
        for called in [value, *(getattr(m, name, None) for m in modules)]:
            if (getattr(called, "__code__", None) is not None and id(called) not in seen
                    and not _library(called)):
                parts.append(name.encode() + _function_bytes(called, seen))
    return b"\1".join(parts)


def _code_bytes(code: Any) -> bytes:
    """A code object's instructions, names and constants (nested functions included), without
    its file name and line numbers."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if hasattr(const, "co_code") else _stable(const).encode())
    return b"\0".join(parts)


#: values of module-level names a model's code reads that are part of its code
_PLAIN = (bool, int, float, complex, str, bytes, tuple, frozenset, type(None))


def _stable(value: Any) -> str:
    """``repr`` of a constant, the same in every process (a frozenset's order follows the
    string hash seed: ``x in {"a", "b"}`` would refuse every resume)."""
    if isinstance(value, frozenset):
        return "frozenset(" + repr(sorted(_stable(v) for v in value)) + ")"
    if isinstance(value, tuple):
        return "(" + ", ".join(_stable(v) for v in value) + ")"
    if isinstance(value, dict):  # keyword defaults
        return "{" + ", ".join(f"{k!r}: {_stable(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def _requested_baselines(s: Settings) -> set[str] | None:
    """The baselines an audit's settings name (as baselines or removals); None: all that are
    available (no list, or "all")."""
    def named(names: Sequence[str] | None, default: Sequence[str] | None) -> set[str] | None:
        if names is None:
            return None if default is None else set(default)
        return None if list(names) == ["all"] else set(names)

    baselines, removals = named(s.baselines, None), named(s.removals, DEFAULT_REMOVALS)
    return None if baselines is None or removals is None else baselines | removals


def _resolve(
    registry: Registry,
    names: Sequence[str] | None,
    ctx: AuditContext,
    option: str,
    default: Sequence[str] | None = None,
) -> list[str]:
    try:
        available = registry.names(ctx)
    except ValueError as err:  # a plug-in's available() failed: named, one line
        raise AuditInputError(str(err)) from err
    if names is None and default is not None:
        names = [n for n in default if n in available]
    if names is None or list(names) == ["all"]:
        if not available:
            raise AuditInputError(f"no {registry.kind} is available for this model and data")
        return available
    names = list(names)
    if not names:
        raise AuditInputError(f"{option} is empty; available: {', '.join(available)}")
    for n in names:
        if n not in registry:
            raise AuditInputError(
                f"unknown {registry.kind} {n!r}; valid {registry.kind}s ({option}): "
                f"{', '.join(registry)}"
            )
        if n not in available:
            needs = registry.needs(n)
            raise AuditInputError(
                f"{registry.kind} {n!r} is not available for this model and data"
                + (f": it needs {needs}" if needs else "")
                + f"; available: {', '.join(available)}"
            )
    return list(dict.fromkeys(names))


# -- the run ------------------------------------------------------------------------------------


class _Local:
    """The communicator of a single process (see :mod:`captum_cf.audit.distributed`)."""

    rank, world = 0, 1

    def broadcast(self, obj: Any) -> Any:
        return obj

    def gather(self, obj: Any) -> list[Any]:
        return [obj]


def run_audit(
    model: Any,
    source: Source,
    settings: Settings,
    store_path: str | None,
    dev: torch.device,
    target: Any = None,
    resume: bool = False,
    comm: Any = None,
) -> AuditResult | None:
    """Plan, compute the missing (image, cell) pairs into the store, read the result back.

    The store (``store_path``, or memory) is opened after the settings, names and model have
    been checked, so a user error leaves no file behind. With a distributed ``comm`` every rank
    calls this; rank 0 owns the store and returns the result, the other ranks return None.

    The model runs as a fixed function (:func:`captum_cf._model_state.frozen`): eval mode, no
    parameter gradients, so that a model handed over in training mode keeps its batch-norm
    statistics and its dropout is off; its mode and flags are restored afterwards, also after an
    exception.
    """
    with frozen(model):
        return _run_audit(model, source, settings, store_path, dev, target, resume, comm)


def _run_audit(
    model: Any,
    source: Source,
    settings: Settings,
    store_path: str | None,
    dev: torch.device,
    target: Any,
    resume: bool,
    comm: Any,
) -> AuditResult | None:
    from captum_cf.audit.model import logits_model

    comm = comm or _Local()
    start = time.perf_counter()
    model = logits_model(model, source.first[0][:2].to(dev))  # Hugging Face style: its .logits
    if comm.world == 1:
        plan = make_plan(model, source, settings, dev, target)
    else:  # every rank learns whether any rank could not plan (else rank 0 would wait forever)
        try:
            plan, error = make_plan(model, source, settings, dev, target), None
        except Exception as err:  # noqa: BLE001
            plan, error = None, err
        failed = [(r, e) for r, e in enumerate(comm.gather(error and first_line(error))) if e]
        if error is not None:
            raise _told_by_rank_0(error, comm)
        if failed:
            raise _told_by_rank_0(
                AuditInputError(f"rank {failed[0][0]} failed: {failed[0][1]}"), comm)
    if comm.rank == 0:
        _check_agreement(model, source, plan, dev)
    if comm.rank == 0 and "nearest-sample" in plan.baselines and settings.train_data is not None:
        # its candidates of class B are the training images labelled B: the model's B?
        from captum_cf.training import check_label_agreement

        check_label_agreement(model, *settings.train_data.tensors, dev,
                              "the model (for the nearest-sample baseline's training images)",
                              plan.config.get("class_names"))
    store: AuditStore | None = None
    setup: Any = None
    try:
        if comm.rank == 0:
            try:
                store = AuditStore(store_path or ":memory:")
                old = store.config() if resume else None
                if old and settings.explain_batch is None and "batch" in old:
                    # a batch sized by memory may differ on another machine or GPU: the stored
                    # run's batches are kept, so that its remaining batches are the same images
                    plan.batches["explain"] = plan.config["batch"] = old["batch"]
                store.start(plan.config, resume)
                plan.config["seconds"] = (old or {}).get("seconds", 0.0)
                setup = (
                    "ok",
                    _pending(plan, len(source), store.done_pairs()),
                    plan.config["batch"],
                )
            except AuditInputError as err:
                setup = ("error", str(err))
        setup = comm.broadcast(setup)
        if setup[0] == "error":
            raise _told_by_rank_0(AuditInputError(setup[1]), comm)
        pending: dict[int, list[tuple[str, str]]] = setup[1]
        plan.batches["explain"] = plan.config["batch"] = setup[2]
        total = len(source) * len(plan.cells)

        def seconds() -> float:  # the audit's time so far, over every run of a resume (rank 0)
            return round(time.perf_counter() - start + float(plan.config["seconds"] or 0), 2)

        try:
            _compute(model, source, settings, plan, pending, store, comm, total, seconds)
        except KeyboardInterrupt:
            done_n = store.count_done() if store is not None else 0
            raise AuditInterrupted(done_n, total) from None
        if store is None:
            return None
        store.update_config(seconds=seconds())
        return AuditResult.from_store(store)
    finally:
        if store is not None:
            store.close()


def _told_by_rank_0(err: BaseException, comm: Any) -> BaseException:
    """``err``, marked (``err.told_by_rank_0``) when every rank knows of the failure and rank 0
    raises it or its own: the other ranks' command line then exits without printing it again
    (one message under torchrun, not one per process)."""
    if comm.world > 1:
        err.told_by_rank_0 = True  # type: ignore[attr-defined]
    return err


def _pending(plan: _Plan, n: int, done: set[tuple[int, str, str]]) -> dict[int, list]:
    """batch index -> the cells that still miss some of its images (in cell order)."""
    b = plan.batches["explain"]
    out: dict[int, list] = {}
    for k in range(math.ceil(n / b)):
        rows = range(k * b, min(n, (k + 1) * b))
        todo = [c for c in plan.cells if any((i, c[0], c[1]) not in done for i in rows)]
        if todo:
            out[k] = todo
    return out


def _compute(
    model: Any,
    source: Source,
    s: Settings,
    plan: _Plan,
    pending: dict[int, list[tuple[str, str]]],
    store: AuditStore | None,
    comm: Any,
    total: int,
    seconds: Callable[[], float],
) -> None:
    """Compute the pending (batch, cell) pairs; each batch's records go to the store in one
    transaction with the audit's time so far (``seconds()``), so that a killed run's time
    counts in the resumed audit's."""
    order = sorted(pending)
    mine = order[comm.rank :: comm.world]
    steps = math.ceil(len(order) / comm.world)
    grid = _Grid(model, s, plan, source)
    bar = None
    if s.show_progress and comm.rank == 0:
        from tqdm.auto import tqdm

        done0 = store.count_done() if store is not None else 0
        bar = tqdm(total=total, initial=done0, desc="audit", unit="pair")
    batches = _batches(source, plan, mine, s.workers)
    try:
        for _step in range(steps):
            if comm.world == 1:
                k, x, labels, masks = next(batches)
                for record in grid.run(k, x, labels, masks, pending[k], source.ids):
                    store.write(record, seconds())  # type: ignore[union-attr]
                    if bar is not None:
                        bar.update(len(record["done"]))
                continue
            merged, error = BatchRecord.empty(), None
            local_error: BaseException | None = None
            try:
                item = next(batches, None)
                if item is not None:
                    k, x, labels, masks = item
                    for record in grid.run(k, x, labels, masks, pending[k], source.ids):
                        for key in ("images", "done", "scores"):
                            merged[key] += record[key]
                        merged["blobs"].update(record["blobs"])
            except KeyboardInterrupt:
                error = "interrupted"
            except Exception as err:  # noqa: BLE001 (told to every rank, then raised)
                error = f"{type(err).__name__}: {first_line(err)}"
                local_error = err
            gathered = comm.gather((merged, error))
            if store is not None:
                for rec, _ in gathered:
                    store.write(rec, seconds())
                if bar is not None:
                    bar.update(sum(len(rec["done"]) for rec, _ in gathered))
            failed = [(r, e) for r, (_, e) in enumerate(gathered) if e is not None]
            if failed:
                if local_error is not None:
                    raise _told_by_rank_0(local_error, comm)
                r, e = failed[0]
                if e == "interrupted":
                    raise KeyboardInterrupt
                raise _told_by_rank_0(
                    AuditInputError(f"rank {r} failed: {e}; resume with --resume"), comm)
    finally:
        if bar is not None:
            bar.close()



def _batches(
    source: Source, plan: _Plan, mine: list[int], workers: int
) -> Iterator[tuple[int, Tensor, Tensor, Tensor | None]]:
    """``(k, images, labels, masks)`` for the batch indices ``mine``, in order, streamed."""
    b, n = plan.batches["explain"], len(source)
    dev = plan.ctx.device
    if source.loader is not None:
        yield from _chunks_of_loader(source, plan, set(mine))
        return
    rows = [i for k in mine for i in range(k * b, min(n, (k + 1) * b))]
    if not rows:
        return
    loader = DataLoader(
        Subset(source.dataset, rows),  # type: ignore[arg-type]
        batch_size=b,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )
    it = iter(loader)
    for k in mine:
        try:
            batch = next(it)
        except ValueError as err:  # an unreadable or odd-sized image (datasets.ImageFolder)
            raise AuditInputError(
                f"{first_line(err)}; a results store keeps what was computed: repair or "
                "replace the file under the same name, then resume (removing it changes the "
                "images, which a resume refuses)"
            ) from err
        x, labels, masks = _unpack(batch, "images")
        yield k, x.to(dev, non_blocking=True), labels, _batch_masks(masks, x, dev)


def _chunks_of_loader(
    source: Source, plan: _Plan, wanted: set[int]
) -> Iterator[tuple[int, Tensor, Tensor, Tensor | None]]:
    """A user's DataLoader re-cut into batches of the explanation batch size (in its order)."""
    b, dev = plan.batches["explain"], plan.ctx.device
    parts: list[tuple[Tensor, Tensor, Tensor | None]] = []
    k = 0

    def joined() -> tuple[Tensor, Tensor, Tensor | None]:
        ms = [p[2] for p in parts]
        return (
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            None if ms[0] is None else torch.cat(ms),  # type: ignore[arg-type]
        )

    for batch in source.loader:  # type: ignore[union-attr]
        parts.append(_unpack(batch, "images"))
        while sum(len(p[0]) for p in parts) >= b:
            xs, ls, ms = joined()
            if k in wanted:
                yield (
                    k,
                    xs[:b].to(dev),
                    ls[:b],
                    _batch_masks(None if ms is None else ms[:b], xs, dev),
                )
            parts = [(xs[b:], ls[b:], None if ms is None else ms[b:])]
            k += 1
    if parts and sum(len(p[0]) for p in parts) and k in wanted:
        xs, ls, ms = joined()
        yield k, xs.to(dev), ls, _batch_masks(ms, xs, dev)


def _batch_masks(masks: Tensor | None, x: Tensor, dev: torch.device) -> Tensor | None:
    if masks is None:
        return None
    return check_masks(torch.as_tensor(masks), (len(masks), 1, *x.shape[-2:]), "masks").to(dev)


#: Captum's advisory warnings, repeated for every cell of an audit (not problems of the model)
_ADVISORIES = (
    r"(?s).*Setting forward, backward hooks and attributes on non-linear",
    r"(?s).*You are providing multiple inputs for Lime",
    r"(?s).*Input Tensor \d+ did not already require gradients",
    # the metrics' own check of the model's outputs: the audit checks the model once, up front
    r"(?s).*seems to return probabilities",
    # DeepLift's layers without rules: said once per audit by its factory
    r"DeepLIFT has no rule for the model's",
)


@contextlib.contextmanager
def _advisories_off() -> Iterator[None]:
    """Captum's and the metrics' advisory warnings (:data:`_ADVISORIES`) silenced inside."""
    with warnings.catch_warnings():
        for advisory in _ADVISORIES:
            warnings.filterwarnings("ignore", message=advisory, category=UserWarning)
        yield


class _Grid:
    """Runs the cells of the grid on one batch of images and turns the scores into records."""

    def __init__(self, model: Any, s: Settings, plan: _Plan, source: Source | None = None) -> None:
        self.model, self.s, self.plan, self.source = model, s, plan, source
        self.ctx = plan.ctx
        #: puts back what a plug-in's cell changes (the model's modes, hooks, the batch)
        self.guard = CellGuard(model)
        self.top = _top_layer(model) if "sanity_ssim" in plan.metrics else None
        self.side = min(plan.config["image_shape"][-2:])
        self.removals = {
            r: _removal(BASELINES.create(r, self.ctx), self.side)
            for r in plan.config["removals"]
        }
        pixels = math.prod(plan.config["image_shape"][-2:])
        self.percentages = _percentages(plan.config["fractions"], pixels)
        self._explainers: dict[tuple[str, int], Callable[..., Tensor]] = {}
        self._baselines: dict[str, Baseline] = {}
        #: the sizes a level of work halves (captum_cf.audit.memory)
        self._sizes = {
            "explain": plan.batches["explain"],
            "internal": int(self.ctx.extras.get("internal_batch_size", plan.batches["internal"])),
            "forward": plan.batches["forward"],
            "forward_images": int(
                self.ctx.extras.get("forward_images", plan.batches["forward_images"])
            ),
        }
        #: (method, baseline) -> out-of-memory halvings so far (kept for the cell's next batches)
        self.halvings: dict[tuple[str, str], int] = {}
        #: images per forward pass of the curves at the current level
        self.forward = plan.batches["forward"]
        #: (batch, (scores with nothing removed, removal -> scores with everything removed))
        self._ends: tuple[Tensor, tuple[Tensor, dict[str, Tensor]]] | None = None
        #: (batch, removal name -> the removal with that batch's references cached)
        self._batch_removal_cache: tuple[Tensor, dict[str, Baseline]] | None = None

    def explainer(self, method: str, level: Level | None = None) -> Callable[..., Tensor]:
        """The method built for the audit's context, its passes sized by ``level``."""
        h = 0 if level is None else level.halvings
        if (method, h) not in self._explainers:
            ctx = self.ctx
            if h:
                extras = {**ctx.extras, "internal_batch_size": level.sizes["internal"],
                          "forward_images": level.sizes["forward_images"]}
                ctx = dataclasses.replace(ctx, extras=extras)
            self._explainers[method, h] = _methods().create(method, ctx)
        return self._explainers[method, h]

    def baseline(self, name: str) -> Baseline:
        if name not in self._baselines:
            self._baselines[name] = _removal(_built_baseline(name, self.ctx), self.side)
        return self._baselines[name]

    def run(
        self,
        k: int,
        x: Tensor,
        labels: Tensor,
        masks: Tensor | None,
        cells: list[tuple[str, str]],
        ids: list[str],
    ) -> Iterator[BatchRecord]:
        """One record per cell of ``cells`` for batch ``k`` (images ``x``)."""
        check_images(x, "images")
        self.guard.batch(x)
        first = k * self.plan.batches["explain"]
        idx = list(range(first, first + len(x)))
        t = self._targets(x, idx)
        t_list = t.tolist()
        if masks is not None and "pointing_game" in self.plan.metrics:  # once per batch
            empty = [ids[i] for i, e in zip(idx, (~masks.flatten(1).any(dim=1)).tolist()) if e]
            if empty:
                warnings.warn(
                    f"audit: the mask of {', '.join(empty[:4])}{' ...' if len(empty) > 4 else ''}"
                    " marks no object pixel (after any resize and crop): "
                    f"{'these images get' if len(empty) > 1 else 'it gets'} no pointing game "
                    "(every other metric is scored)",
                    UserWarning, stacklevel=2,
                )
        images = [
            (i, ids[i], None if int(lab) < 0 else int(lab), tt)
            for i, lab, tt in zip(idx, labels.tolist(), t_list)
        ]
        refs: dict[str, Baseline] = {}
        ref_seconds: dict[str, float] = {}
        failed: dict[str, str] = {}  # baselines whose references fail on this batch
        e = min(self.s.n_examples, len(x)) if k == 0 else 0
        for method, bname in cells:
            if bname != NO_BASELINE and bname not in refs and bname not in failed:
                start = time.perf_counter()
                try:
                    refs[bname] = _cached(self.baseline(bname), x, t)
                    if x.is_cuda:
                        torch.cuda.synchronize(x.device)
                except Exception as err:  # noqa: BLE001 (its cells fail, the others run)
                    failed[bname] = f"{type(err).__name__}: {first_line(err)}"
                # the batch's references, computed once: part of each of its cells' time
                ref_seconds[bname] = time.perf_counter() - start
                changed = self.guard.repair()  # before R-OMS and the cells read the batch
                if changed:
                    refs.pop(bname, None)
                    failed[bname] = f"it {', '.join(changed)} (put back)"
            record = BatchRecord.empty()
            record["images"] = images
            if k == 0 and (method, bname) == cells[0]:
                record["blobs"].update(self._roms(self._roms_images(x)))
            if e:
                record["blobs"]["examples"] = x[:e]
                for b, ref in refs.items():
                    record["blobs"][f"ref/{b}"] = ref.reference(x[:e], t[:e])
            self.seconds = 0.0
            attr, values, errors = None, {}, {}
            if bname in failed:
                errors = dict.fromkeys(
                    range(len(x)), f"the baseline's reference failed: {failed[bname]}"
                )
            else:
                attr, values, errors = self._cell(
                    (method, bname), refs.get(bname), x, t, masks, idx, self.s.seed + k
                )
            changed = self.guard.repair()  # the cell, its baseline's reference, its removals
            if changed:
                who = f"method {method!r}" + (f" or baseline {bname!r}"
                                              if bname != NO_BASELINE else "")
                attr, values = None, {}
                errors = dict.fromkeys(range(len(x)), f"{who} {', '.join(changed)} (put back; "
                                       "the cell's results are not used)")
            # explanation time (the baseline's references included), shared by the images
            share = (self.seconds + ref_seconds.get(bname, 0.0)) / len(x)
            record["done"] = [
                (i, method, bname, share, errors.get(j)) for j, i in enumerate(idx)
            ]
            for metric, (rows, v) in values.items():
                record["scores"] += [
                    (i, method, bname, metric, float(val)) for i, val in zip(rows, v.tolist())
                ]
            if e and attr is not None and not any(j < e for j in errors):
                record["blobs"][f"map/{method}/{bname}"] = attr[:e].sum(dim=1)
            if attr is not None:
                record["blobs"][f"curve/{method}/{bname}/{k}"] = self.curves
            yield record

    def _cell(
        self,
        key: tuple[str, str],
        baseline: Baseline | None,
        x: Tensor,
        t: Tensor,
        masks: Tensor | None,
        idx: list[int],
        seed: int,
    ) -> tuple[Tensor | None, dict[str, tuple[list[int], Tensor]], dict[int, str]]:
        """One cell on batch ``x``, in parts: out of memory, the cell's level of work halves
        and the part runs again smaller; another error splits the part in halves (a bounded
        number of times) so that only the images that fail fail (:mod:`captum_cf.audit.memory`).

        Returns the maps of the images that succeeded (in order), their values, and the error
        of each failed image (by position in ``x``); sets :attr:`seconds` and :attr:`curves`
        (summed over the parts)."""
        n = len(x)
        queue = [(0, n)]
        budget = split_budget(n)
        maps: list[Tensor] = []
        parts: list[dict[str, tuple[list[int], Tensor]]] = []
        errors: dict[int, str] = {}
        seconds, curves = 0.0, None
        while queue:
            level = Level(self._sizes, self.halvings.get(key, 0))
            a, b = queue.pop(0)
            size = level.sizes["explain"]
            if b - a > size:  # a smaller level than when the part was queued
                queue[:0] = [(i, min(i + size, b)) for i in range(a + size, b, size)]
                b = a + size
            message, oom = None, False
            torch.manual_seed(seed)
            self.forward = level.sizes["forward"]
            try:
                with _advisories_off():
                    part = (x, t, masks, idx) if (a, b) == (0, n) else (
                        x[a:b], t[a:b], None if masks is None else masks[a:b], idx[a:b]
                    )
                    attr, values = self._score(self.explainer(key[0], level), baseline, *part)
            except Exception as err:  # noqa: BLE001 (one failing cell must not lose the others)
                message, oom = f"{type(err).__name__}: {first_line(err)}", is_out_of_memory(err)
            finally:
                self.forward = self.plan.batches["forward"]
            if message is None:
                maps.append(attr)
                parts.append(values)
                seconds += self.seconds
                curves = self.curves if curves is None else curves + self.curves
                continue
            # here the error's traceback (and the tensors its frames held) is gone
            if oom and not level.smallest:
                release_memory(x.device)
                self.halvings[key] = level.halvings + 1
                smaller = Level(self._sizes, level.halvings + 1)
                warnings.warn(
                    f"audit: {key[0]} x {key[1]} ran out of memory ({message}); continuing "
                    f"with {smaller.describe()}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                queue.insert(0, (a, b))
            elif not oom and b - a > 1 and budget > 0:
                budget -= 1
                mid = (a + b + 1) // 2
                queue[:0] = [(a, mid), (mid, b)]
            else:
                if oom:
                    message += " (out of memory with one image per pass)"
                errors.update(dict.fromkeys(range(a, b), message))
        self.seconds, self.curves = seconds, curves
        values = {}
        for part in parts:
            for metric, (rows, v) in part.items():
                have = values.get(metric)
                values[metric] = (rows, v) if have is None else (
                    have[0] + rows, torch.cat([have[1], v])
                )
        return (torch.cat(maps) if maps else None), values, errors

    def _curves(self, x: Tensor, attr: Tensor, t: Tensor) -> dict[str, tuple[Curve, Curve]]:
        """MoRF and LeRF of every removal (:func:`removal_curves`). The end points do not depend
        on the map: the first (nothing removed) is the same image for every removal, order and
        cell, the last (everything removed) the same for both orders and every cell; both are
        scored once per batch."""
        pcs, fwd = self.percentages, self.forward
        removals = self._batch_removals(x, t)
        if len(pcs) < 4:
            return removal_curves(self.model, x, attr, t, removals, pcs, batch_size=fwd)
        if self._ends is None or self._ends[0] is not x:
            self._ends = (x, self._end_scores(x, t))
        first, last = self._ends[1]
        inner = removal_curves(self.model, x, attr, t, removals, pcs[1:-1], batch_size=fwd)
        out = {}
        for r, pair in inner.items():
            full = []
            for c in pair:
                scores = torch.cat(
                    [first[:, None].to(c.scores), c.scores, last[r][:, None].to(c.scores)], dim=1
                )
                fr = torch.cat([c.fractions.new_zeros(1), c.fractions, c.fractions.new_ones(1)])
                full.append(Curve(c.kind, fr, scores, _normalised_auc(fr, scores),
                                  c.higher_is_better))
            out[r] = (full[0], full[1])
        return out

    def _batch_removals(self, x: Tensor, t: Tensor) -> dict[str, Baseline]:
        """The removals for batch ``x``: a composite one (a reference such as the blurred image,
        composited by ``keep``) computes its references once per batch, not once per removal
        step and cell (measured at 224 px: the blur removal's references were 8 % of the audit's
        time)."""
        if self._batch_removal_cache is None or self._batch_removal_cache[0] is not x:
            cached = {r: _cached(rem, x, t) for r, rem in self.removals.items()}
            self._batch_removal_cache = (x, cached)
        return self._batch_removal_cache[1]

    def _end_scores(self, x: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Softmax of the explained class on ``x`` and on ``x`` with every pixel removed."""
        fwd, score = self.forward, resolve_score("softmax")
        none_kept = torch.zeros(len(x), 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
        with frozen(self.model), torch.no_grad():
            first = class_scores(self.model, x, t, score, fwd)
            last = {
                r: class_scores(self.model, rem.fill(x, none_kept, t), t, score, fwd)
                for r, rem in self._batch_removals(x, t).items()
            }
        return first, last

    def _roms_images(self, x: Tensor) -> Tensor:
        """The images R-OMS is measured on: the audit's first ``min(ROMS_N, n)``, whatever the
        explanation batch ``x`` (batch 0) holds, so that ``--explain-batch`` does not change it;
        a user's DataLoader, which cannot be read by index, gives its first batch."""
        want = min(ROMS_N, len(self.source) if self.source is not None else len(x))
        if len(x) >= want or self.source is None or self.source.dataset is None:
            return x[:want]
        try:
            images = _unpack(_collate([self.source.dataset[i] for i in range(want)]), "images")[0]
            check_images(images, "images")
        except Exception:  # noqa: BLE001 (an unreadable image is told by its own batch)
            return x
        return images.to(x.device)

    def _roms(self, x: Tensor) -> dict[str, Tensor]:
        """``roms/<removal>``: R-OMS per image of each removal against the reference occlusion."""
        ref = self.plan.config.get("roms_reference")
        if ref is None:
            return {}
        reference = self.baseline(ref)
        torch.manual_seed(self.s.seed)
        out = {}
        for r, rem in self.removals.items():
            try:
                with _advisories_off():  # the model's outputs are checked up front
                    out[f"roms/{r}"] = halving(
                        lambda b, rem=rem: r_oms(
                            self.model, x, rem, reference, batch_size=b, seed=self.s.seed
                        ).auc.detach().cpu(),
                        # a pass holds the removal's and the reference's images: half each
                        max(1, self.plan.batches["forward"] // 2),
                        x.device,
                    )
            except Exception:  # noqa: BLE001 (its curves fail in every cell, with the reason)
                continue
        return out

    def _targets(self, x: Tensor, idx: list[int]) -> Tensor:
        if self.plan.targets is not None:
            return self.plan.targets[idx].to(x.device)
        with torch.no_grad():
            return halving(
                lambda fwd: torch.cat(
                    [self.model(x[i : i + fwd]).argmax(dim=1) for i in range(0, len(x), fwd)]
                ),
                self.plan.batches["forward"],
                x.device,
            )

    def _score(
        self,
        explain: Callable[..., Tensor],
        baseline: Baseline | None,
        x: Tensor,
        t: Tensor,
        masks: Tensor | None,
        idx: list[int],
    ) -> tuple[Tensor, dict[str, tuple[list[int], Tensor]]]:
        start = time.perf_counter()
        attr = explain(x, t, baseline).detach()
        if attr.is_cuda:
            torch.cuda.synchronize(attr.device)  # the time of the work, not of its launch
        self.seconds = time.perf_counter() - start
        curves = self._curves(x, attr, t)  # a constant map: SRG 0 (removal_curves)
        values = {"no_signal": (idx, no_signal(attr).double())}
        self.curves = torch.stack([
            torch.stack([c.scores.double().sum(0), (c.scores.double() ** 2).sum(0)])
            for pair in curves.values() for c in pair
        ]).cpu()  # (2 R, 2, S): per removal and order, sum and sum of squares over the images
        for r, (morf, lerf) in curves.items():
            values[f"srg_{r}"] = (idx, lerf.auc - morf.auc)
            values[f"morf_{r}"] = (idx, morf.auc)
            values[f"lerf_{r}"] = (idx, lerf.auc)
        if masks is not None:  # an empty mask (or one the crop emptied): no pointing game
            rows = masks.flatten(1).any(dim=1).nonzero()[:, 0].tolist()
            if rows:
                values["pointing_game"] = (
                    [idx[j] for j in rows], pointing_game(attr[rows], masks[rows])
                )
        sanity = [j for j, i in enumerate(idx) if i < self.plan.config["sanity_n"]]
        if sanity and self.top is not None:
            rows = torch.tensor(sanity, device=x.device)
            res = randomization_test(
                self.model,
                lambda xx, tt: explain(xx, tt, baseline),
                x[rows],
                t[rows],
                layers=[self.top],
                original=attr[rows],  # the grid's map of the trained model, not explained again
            )
            values["sanity_ssim"] = ([idx[j] for j in sanity], res.similarity[:, 0])
        return attr, _to_host(values)


#: residual (RMS) at which the audit's ROAD removal stops its linear solve at 32 px; for side S
#: it is ``ROAD_TOL * (32 / S) ** 2``, since the error a residual leaves grows with the square of
#: the removed region's width. Measured against the converged solution on removals of smooth maps
#: (10-90 % removed): RMS error 2.5e-3 at 32 px, 5e-4 at 64 px, 2e-4 at 224 px, all below
#: ROAD's noise std 0.01
ROAD_TOL = 1e-4


def road_tol(side: int) -> float:
    """The audit's residual tolerance of ROAD's solve for images of (smaller) side ``side``."""
    return ROAD_TOL * (32 / side) ** 2


def _to_host(values: dict[str, tuple[list[int], Tensor]]) -> dict[str, tuple[list[int], Tensor]]:
    """A cell's per-image values on the host, those on a device in one copy (one stream wait
    on CUDA instead of one per metric); every value keeps its dtype and bits (through float64,
    which holds every float32, bfloat16, bool and small int exactly)."""
    out = {m: (rows, v.detach()) for m, (rows, v) in values.items()}
    on_device = [m for m, (_, v) in out.items() if v.device.type != "cpu"]
    if on_device:
        parts = [out[m][1] for m in on_device]
        flat = torch.cat([v.reshape(-1).to(torch.float64) for v in parts]).cpu()
        for m, v, piece in zip(on_device, parts, flat.split([v.numel() for v in parts])):
            out[m] = (out[m][0], piece.view(v.shape).to(v.dtype))
    return out


def _entry_digest(registry: Registry, name: str, ctx: AuditContext,
                  built: Baseline | None = None) -> str:
    """A digest of what the entry ``name`` computes: the source of its factory (its qualified
    name where the source cannot be read) and, for a baseline, the ``repr`` of the baseline it
    builds (its settings: a factory's closure over another value changes it; one that cannot
    be built here fails its cells later, with the reason); ``built``: that baseline, already
    built."""
    import hashlib
    import inspect

    def source(obj: Any) -> str:
        try:
            return inspect.getsource(obj)
        except (OSError, TypeError):
            if isinstance(obj, type):  # a class of a --model file (not in sys.modules): its
                # functions' code objects still know their file
                return "\n".join(source(v) for v in vars(obj).values() if inspect.isfunction(v))
            return getattr(obj, "__qualname__", type(obj).__qualname__)

    factory = registry._get(name).factory
    parts = [source(factory), repr(factory) if isinstance(factory, functools.partial) else ""]
    # what a factory closes over: a class defined beside it, a setting (a number, a string;
    # not a list or dict, which a plug-in may use as its own changing state)
    for cell in getattr(factory, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, type):
            parts.append(source(value))
        elif value is None or isinstance(value, (bool, int, float, str)):
            parts.append(repr(value))
    if registry is BASELINES:
        try:
            built = registry.create(name, ctx) if built is None else built
            parts += [repr(built), source(type(built))]  # its settings and its class's code
        except Exception:  # noqa: BLE001 (its cells report it)
            pass
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", "\n".join(parts))  # no object addresses
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _entry_digests(ctx: AuditContext, methods_registry: Registry, methods: Sequence[str],
                   baselines: Sequence[str], removals: dict[str, Baseline]) -> dict[str, Any]:
    """``{"methods", "baselines", "removals"}: {name: digest}`` (:func:`_entry_digest`), each
    baseline built once (a removal's digest from the removal :func:`_check_removals` built)."""
    digests = {n: _entry_digest(BASELINES, n, ctx, built)
               for n, built in removals.items()}
    for n in baselines:
        if n not in digests:
            digests[n] = _entry_digest(BASELINES, n, ctx)
    return {"methods": {n: _entry_digest(methods_registry, n, ctx) for n in methods},
            "baselines": {n: digests[n] for n in baselines},
            "removals": {n: digests[n] for n in removals}}


def _built_baseline(name: str, ctx: AuditContext) -> Baseline:
    """The baseline registered under ``name``, built for ``ctx``.

    Raises:
        TypeError: its factory returned something else than a Baseline.
    """
    built = BASELINES.create(name, ctx)
    if not isinstance(built, Baseline):
        raise TypeError(f"its factory returned a {type(built).__name__}, not a captum_cf "
                        "Baseline (register a function of the audit's context that builds one)")
    return built


def _check_removals(names: Sequence[str], ctx: AuditContext, x: Tensor,
                    target: Tensor | None) -> dict[str, Baseline]:
    """Every removal must build and fill an image before any work (each map's curves use all of
    them: one that fails would fail every cell, after its explanation was computed).

    Returns:
        dict: name -> the removal built.

    Raises:
        AuditInputError: naming the removal and its error.
    """
    built: dict[str, Baseline] = {}
    keep = (torch.arange(x.shape[-1] * x.shape[-2], device=x.device) % 2).to(x.dtype)
    keep = keep.view(1, 1, *x.shape[-2:])
    if target is None:  # the explained class, as the curves pass it (removals may need it)
        with torch.no_grad():
            target = ctx.model(x).argmax(dim=1)
    guard = CellGuard(ctx.model)
    guard.batch(x)
    for name in names:
        try:
            removal = built[name] = _built_baseline(name, ctx)
            with torch.no_grad():
                removal.fill(x, keep, target.to(x.device))
        except Exception as err:  # noqa: BLE001 (a plug-in's error: named, one line)
            raise AuditInputError(f"removal {name!r} fails on the images: "
                                  f"{type(err).__name__}: {first_line(err)}") from err
        finally:
            changed = guard.repair()
        if changed:
            raise AuditInputError(f"removal {name!r} {', '.join(changed)} (put back)")
    return built


def _removal(baseline: Baseline, side: int) -> Baseline:
    """The baseline as the audit uses it, as a removal and as a baseline (ROAD's linear solve
    to :func:`road_tol`)."""
    from captum_cf.baselines import NoisyLinearImputation

    tol = road_tol(side)
    if isinstance(baseline, NoisyLinearImputation) and baseline.tol < tol:
        return NoisyLinearImputation(baseline.noise, baseline.seed, tol, baseline.max_iter)
    return baseline


def _cached(baseline: Baseline, images: Tensor, target: Tensor) -> Baseline:
    """Composite baselines (reference + default fill) get their reference computed once."""
    from captum_cf.baselines import ConstantBaseline

    if isinstance(baseline, ConstantBaseline) or type(baseline)._fill is not Baseline._fill:
        return baseline
    return _ReferenceCache(baseline, images, target)


def _references(baseline: Baseline, images: Tensor, target: Tensor) -> Tensor:
    """``baseline.reference(images, target)``, in halves, quarters, ... of the batch while it
    runs out of memory (:mod:`captum_cf.audit.memory`); other errors are raised."""
    return halving(
        lambda size: torch.cat([
            baseline.reference(images[i : i + size], target[i : i + size]).detach()
            for i in range(0, len(images), size)
        ]),
        len(images),
        images.device,
    )


class _ReferenceCache(Baseline):
    """A composite baseline whose references for the audited images are computed once.

    Every method of the audit (and the report's counterfactual grid) asks for the references of
    the same images; an expensive reference (a Frank-Wolfe counterfactual, a GAN translation) is
    computed once per batch instead of once per method. Rows are recognised on the device: a
    random projection of each row finds the candidate, exact equality of pixels (and of the
    target when the baseline needs it) confirms it; one host sync per call, none per row. Any
    other input goes to the wrapped baseline.
    """

    def __init__(self, inner: Baseline, images: Tensor, target: Tensor) -> None:
        self.inner = inner
        self.needs_target = inner.needs_target
        self._images = images.detach()
        self._target = target.detach()
        self._ref = _references(inner, images, target)
        gen = torch.Generator().manual_seed(0)
        self._w = torch.rand(images[0].numel(), generator=gen, dtype=torch.float64).to(
            images.device
        )
        self._fp = self._fingerprint(self._images)

    def _fingerprint(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1).to(torch.float64) @ self._w

    def _lookup(self, inputs: Tensor, target: Any) -> Tensor | None:
        """Row of the cache for each input row, or None when any row is not cached."""
        n = len(inputs)
        if n == 0 or inputs.shape[1:] != self._images.shape[1:]:
            return None
        x = inputs.detach().to(self._images.device)
        fp = self._fingerprint(x)
        # the projection is only a finder (its last bits depend on the batch shape): exact
        # equality of the pixels decides
        close = (fp[:, None] - self._fp[None, :]).abs() <= 1e-9 * (1 + self._fp.abs()[None, :])
        j = close.to(torch.uint8).argmax(dim=1)
        ok = close.any(dim=1).all() & (x == self._images[j]).flatten(1).all()
        if self.needs_target:
            if isinstance(target, Tensor) and target.numel() == n:
                tgt = target.reshape(-1).to(self._target.device)
            elif isinstance(target, int) and not isinstance(target, bool):
                tgt = torch.full((n,), target, device=self._target.device)
            else:
                return None
            ok = ok & (self._target[j] == tgt).all()
        return j if bool(ok) else None

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        j = self._lookup(inputs, target)
        if j is not None:
            return self._ref[j].to(inputs)
        return self.inner._reference(inputs, target)

    def __repr__(self) -> str:
        return repr(self.inner)


def _top_layer(model: Any) -> str | None:
    """The layer the sanity check re-initialises: the last one (``randomization.layer_names``);
    None for a TorchScript module, whose layers cannot be re-initialised one by one."""
    if not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule):
        return None
    owners = layer_names(model)
    return owners[-1] if owners else None
