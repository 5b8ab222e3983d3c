"""Audit: explain a model with every method x baseline, score each explanation, report.

This is what ``captum-cf audit`` runs. Methods come from :data:`captum_cf.attr.METHODS` and
baselines from :data:`captum_cf.baselines.BASELINES` (by default the methods of
:data:`DEFAULT_METHODS` and every baseline available for the model and data; ``"all"`` selects
every available method). Each cell (method, baseline) explains the same images and is scored by:

* ``deletion_auc`` (lower is better) and ``insertion_auc`` (higher is better): RISE curves of the
  explained class's softmax, pixels removed/revealed most important first
  (:func:`captum_cf.metrics.deletion`, :func:`~captum_cf.metrics.insertion`);
* ``pointing_game`` (higher is better), when object masks exist;
* ``sanity_ssim`` (lower is better): SSIM between the absolute map and the map after the top layer
  of the model is re-initialised (the first step of Adebayo et al.'s cascading randomisation);
  a map that does not change does not explain the model.

Each metric is reported as the mean over images with a 95 % confidence interval (Student t).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import TensorDataset

from captum_cf._registry import AuditContext, Registry
from captum_cf._validation import check_images, check_target
from captum_cf.audit.errors import AuditInputError
from captum_cf.audit.result import DEFAULT_METHODS, AuditResult, CellResult
from captum_cf.baselines import BASELINES, Baseline
from captum_cf.metrics import deletion, insertion, pointing_game, randomization_test

__all__ = ["audit"]


def audit(
    model: nn.Module,
    images: Tensor,
    target: Any = None,
    masks: Tensor | None = None,
    methods: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    *,
    data_name: str = "custom",
    train_data: TensorDataset | None = None,
    removal: str | None = None,
    n_steps: int = 16,
    batch_size: int = 256,
    sanity_n: int = 8,
    n_examples: int = 4,
    seed: int = 0,
    extras: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> AuditResult:
    """Explain ``images`` with every method x baseline and score every explanation.

    Args:
        model (nn.Module): classifier, (N, C, H, W) images in [0, 1] -> (N, classes) logits.
        images (Tensor): shape (N, C, H, W), in [0, 1].
        target (int, sequence or Tensor, optional): class to explain per image; None = predicted.
        masks (Tensor, optional): object masks (N, 1, H, W) bool; adds the pointing game.
        methods (sequence of str, optional): names in ``captum_cf.attr.METHODS``; default
            :data:`DEFAULT_METHODS` (those available); ``["all"]``: every available method.
        baselines (sequence of str, optional): names in ``captum_cf.baselines.BASELINES``;
            default (or ``["all"]``) every baseline available for this model and data.
        data_name (str): ``"digits"``, ``"shapes"`` or a description (passed to the registries).
        train_data (TensorDataset, optional): training images, for baselines that need samples.
        removal (str, optional): a baseline name used to remove pixels in both deletion and
            insertion; default RISE's (black for deletion, blur for insertion).
        n_steps (int): steps of the deletion and insertion curves.
        batch_size (int): images per forward pass and per explanation call.
        sanity_n (int): images used by the randomisation sanity check (0 skips it).
        n_examples (int): images shown in the report's figures.
        seed (int): seeds every cell (the same seed before each, so cells are order-independent).
        extras (dict, optional): passed to the registries' :class:`AuditContext`.
        show_progress (bool): tqdm progress bar over cells.

    Returns:
        AuditResult: ``.table()`` to print, ``.write(out)`` to save the report.

    Raises:
        AuditInputError: unknown or unavailable method/baseline names (the message lists the valid
            ones), a model that does not return (N, classes) logits (an output's ``.logits`` is
            taken), or a model to which no method applies. A method that fails on one image
            (:func:`captum_cf.audit.model.probe_methods`) is left out: the reason goes to stderr
            and to ``result.config["skipped_methods"]``.

    Example:
        >>> from captum_cf import zoo
        >>> from captum_cf.datasets import load_digits
        >>> x, _ = load_digits("test").tensors
        >>> res = audit(zoo.load("digits-cnn"), x[:8], methods=["deeplift"], baselines=["zero"])
        >>> print(res.table())  # doctest: +SKIP
    """
    from captum_cf.audit.model import applicable_methods, logits_model

    start = time.perf_counter()
    check_images(images, "images")
    model = logits_model(model, images)  # a Hugging Face style output: its .logits
    ctx, target = _context(model, images, target, data_name, train_data, seed, extras)
    masks = _check_masks(masks, images)
    method_names = _resolve(_methods(), methods, ctx, "--methods", DEFAULT_METHODS)
    # a method that fails on one image is left out, with its reason, before the grid runs
    method_names, skipped = applicable_methods(method_names, ctx, images, target)
    baseline_names = _resolve(BASELINES, baselines, ctx, "--baselines")
    if removal is not None:
        _resolve(BASELINES, [removal], ctx, "--removal")
    metrics = ["deletion_auc", "insertion_auc"] + (["pointing_game"] if masks is not None else [])
    metrics += ["sanity_ssim"] if sanity_n > 0 and _top_layer(model) else []
    scorer = _Scorer(model, images, target, masks, ctx, removal, n_steps, batch_size, sanity_n)
    e = min(n_examples, images.shape[0])
    refs = {b: _cached(BASELINES.create(b, ctx), images, target) for b in baseline_names}
    result = AuditResult(
        config=_config(
            ctx, images, method_names, baseline_names, removal, n_steps, sanity_n, masks
        ),
        metrics=metrics,
        cells=[],
        examples=images[:e].detach().cpu(),
        example_maps={},
        references={
            b: ref.reference(images[:e], target[:e]).detach().cpu() for b, ref in refs.items()
        },
    )
    result.config["skipped_methods"] = skipped
    for cell, maps in _run_cells(method_names, refs, ctx, scorer, seed, show_progress):
        result.cells.append(cell)
        if maps is not None:
            result.example_maps[(cell.method, cell.baseline)] = maps[:e].detach().cpu()
    result.seconds = time.perf_counter() - start
    result.config["seconds"] = round(result.seconds, 2)
    return result


def _methods() -> Registry:
    # imported late: the method modules pull in Captum
    from captum_cf.attr import METHODS

    return METHODS


def _context(
    model: Any,
    images: Tensor,
    target: Any,
    data_name: str,
    train_data: TensorDataset | None,
    seed: int,
    extras: dict[str, Any] | None,
) -> tuple[AuditContext, Tensor]:
    from captum_cf.audit.model import check_logits

    num_classes = check_logits(model, images)
    with torch.no_grad():
        predicted = torch.cat(
            [model(images[i : i + 256]).argmax(dim=1) for i in range(0, len(images), 256)]
        )
    tgt = (
        predicted
        if target is None
        else check_target(target, images.shape[0], num_classes).to(images.device)
    )
    ctx = AuditContext(
        model=model,
        data_name=data_name,
        train_data=train_data,
        num_classes=num_classes,
        image_shape=tuple(images.shape[1:]),
        device=images.device,
        seed=seed,
        extras=dict(extras or {}),
    )
    return ctx, tgt


def _check_masks(masks: Tensor | None, images: Tensor) -> Tensor | None:
    if masks is None:
        return None
    n, _, h, w = images.shape
    if not isinstance(masks, Tensor) or tuple(masks.shape) != (n, 1, h, w):
        raise AuditInputError(f"masks must have shape ({n}, 1, {h}, {w})")
    return masks.bool().to(images.device)


def _resolve(
    registry: Registry,
    names: Sequence[str] | None,
    ctx: AuditContext,
    option: str,
    default: Sequence[str] | None = None,
) -> list[str]:
    available = registry.names(ctx)
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
                f"unknown {registry.kind} {n!r}; valid {option}: {', '.join(registry)}"
            )
        if n not in available:
            raise AuditInputError(
                f"{registry.kind} {n!r} is not available for this model and data; "
                f"available: {', '.join(available)}"
            )
    return list(dict.fromkeys(names))


def _config(
    ctx: AuditContext,
    images: Tensor,
    methods: list[str],
    baselines: list[str],
    removal: str | None,
    n_steps: int,
    sanity_n: int,
    masks: Tensor | None,
) -> dict[str, Any]:
    return {
        "data": ctx.data_name,
        "n": int(images.shape[0]),
        "image_shape": list(ctx.image_shape),
        "num_classes": ctx.num_classes,
        "methods": methods,
        "baselines": baselines,
        "removal": removal or "RISE (deletion: zero, insertion: blur sigma 5)",
        "n_steps": n_steps,
        "sanity_n": min(sanity_n, int(images.shape[0])),
        "masks": masks is not None,
        "seed": ctx.seed,
        "device": str(ctx.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _cached(baseline: Baseline, images: Tensor, target: Tensor) -> Baseline:
    """Composite baselines (reference + default fill) get their reference computed once."""
    from captum_cf.baselines import ConstantBaseline

    if isinstance(baseline, ConstantBaseline) or type(baseline)._fill is not Baseline._fill:
        return baseline
    return _ReferenceCache(baseline, images, target)


class _ReferenceCache(Baseline):
    """A composite baseline whose references for the audited images are computed once.

    Every method of the audit (and the report's counterfactual grid) asks for the references of
    the same images; an expensive reference (a Frank-Wolfe counterfactual, a GAN translation) is
    computed once per audit instead of once per method. Rows are recognised by their exact pixel
    values (and target when the baseline needs it); any other input goes to the wrapped baseline.
    """

    def __init__(self, inner: Baseline, images: Tensor, target: Tensor) -> None:
        self.inner = inner
        self.needs_target = inner.needs_target
        self._ref = inner.reference(images, target).detach()
        self._rows = {self._key(x, t): i for i, (x, t) in enumerate(zip(images, target.tolist()))}

    def _key(self, row: Tensor, t: Any) -> tuple[bytes, Any]:
        return (row.detach().cpu().numpy().tobytes(), t if self.needs_target else None)

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        n = len(inputs)
        if isinstance(target, Tensor) and target.numel() == n:
            tgt = target.tolist()
        else:
            tgt = [int(target) if isinstance(target, int) else None] * n
        idx = [self._rows.get(self._key(x, tgt[i])) for i, x in enumerate(inputs)]
        if all(i is not None for i in idx):
            return self._ref[torch.tensor(idx, device=self._ref.device)].to(inputs)
        return self.inner._reference(inputs, target)

    def __repr__(self) -> str:
        return repr(self.inner)


def _top_layer(model: Any) -> str | None:
    if not isinstance(model, nn.Module):
        return None
    owners = [n for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return owners[-1] if owners else None


#: Captum's advisory warnings, repeated for every cell of an audit (not problems of the model)
_ADVISORIES = (
    r"(?s).*Setting forward, backward hooks and attributes on non-linear",
    r"(?s).*You are providing multiple inputs for Lime",
    r"(?s).*Input Tensor \d+ did not already require gradients",
)


def _run_cells(
    method_names: list[str],
    refs: dict[str, Baseline],
    ctx: AuditContext,
    scorer: _Scorer,
    seed: int,
    show_progress: bool,
):
    registry = _methods()
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(method_names) * len(refs), desc="audit", unit="cell")
    try:
        for m in method_names:
            explain = registry.create(m, ctx)
            for b, baseline in refs.items():
                if bar is not None:
                    bar.set_postfix_str(f"{m} x {b}")
                torch.manual_seed(seed)
                with warnings.catch_warnings():
                    # Captum's advice (Lime on batches, DeepLift hooks) is noise in a report run
                    for message in _ADVISORIES:
                        warnings.filterwarnings("ignore", message=message, category=UserWarning)
                    scored = scorer.score(m, b, explain, baseline)
                yield scored
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


class _Scorer:
    """Explains the images for one cell and computes its metrics."""

    def __init__(
        self,
        model: nn.Module,
        images: Tensor,
        target: Tensor,
        masks: Tensor | None,
        ctx: AuditContext,
        removal: str | None,
        n_steps: int,
        batch_size: int,
        sanity_n: int,
    ) -> None:
        self.model, self.images, self.target, self.masks = model, images, target, masks
        self.n_steps, self.batch_size = n_steps, batch_size
        self.sanity_n, self.top = min(sanity_n, images.shape[0]), _top_layer(model)
        kw: dict[str, Baseline] = {}
        if removal is not None:
            kw = {"baseline": BASELINES.create(removal, ctx)}
        self.removal = kw

    def explain(
        self, explain: Callable[..., Tensor], baseline: Baseline, x: Tensor, t: Tensor
    ) -> Tensor:
        parts = [
            explain(x[i : i + self.batch_size], t[i : i + self.batch_size], baseline).detach()
            for i in range(0, x.shape[0], self.batch_size)
        ]
        return torch.cat(parts)

    def score(self, method: str, name: str, explain: Callable[..., Tensor], baseline: Baseline):
        """``(CellResult, maps (N, H, W) or None)``; a failing cell is recorded, not raised."""
        cell = CellResult(method, name)
        try:
            start = time.perf_counter()
            attr = self.explain(explain, baseline, self.images, self.target)
            cell.seconds = time.perf_counter() - start
            cell.values = self._metrics(attr, explain, baseline)
        except Exception as err:  # noqa: BLE001 (one failing cell must not lose the others)
            cell.values = {}
            cell.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            return cell, None
        return cell, attr.sum(dim=1)

    def _metrics(
        self, attr: Tensor, explain: Callable[..., Tensor], baseline: Baseline
    ) -> dict[str, Tensor]:
        x, t, kw = self.images, self.target, dict(n_steps=self.n_steps, batch_size=self.batch_size)
        values = {
            "deletion_auc": deletion(self.model, x, attr, t, **self.removal, **kw).auc,
            "insertion_auc": insertion(self.model, x, attr, t, **self.removal, **kw).auc,
        }
        if self.masks is not None:
            values["pointing_game"] = pointing_game(attr, self.masks)
        if self.sanity_n > 0 and self.top is not None:
            k = self.sanity_n
            res = randomization_test(
                self.model,
                lambda xx, tt: self.explain(explain, baseline, xx, tt),
                x[:k],
                t[:k],
                layers=[self.top],
            )
            values["sanity_ssim"] = res.similarity[:, 0]
        return {m: v.detach().cpu() for m, v in values.items()}

