"""``NearestSampleBaseline``: the closest real training sample of another class (MDTS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._nearest import nearest_index
from captum_cf._validation import check_target, check_tensor
from captum_cf.baselines._classes import check_counterfactual_class, resolve_classes
from captum_cf.baselines.base import Baseline
from captum_cf.training.data import unit_images

__all__ = ["NearestSampleBaseline"]


class NearestSampleBaseline(Baseline):
    """Minimum-distance training sample of class ``B`` ("MDTS" in the GANMEX paper).

    ``reference(x)_i = argmin_{s in D, label(s) = B_i} ||x_i - s||_p`` with ``p = 2`` (default)
    or ``p = 1``. It is the non-generative one-vs-one baseline the GANMEX paper compares with:
    always a real sample of class ``B``, but usually farther from ``x`` than a generated
    counterfactual, so its attributions also mark features unrelated to ``A`` vs ``B``.
    Distances are computed batched (``torch.cdist``), in chunks of ``chunk_size`` samples.

    Works on any input shape: images (N, C, H, W), tabular rows (N, F), sequences (N, L, D);
    the candidates have the same shape per sample, and any finite values.

    Args:
        dataset: the candidate samples and their labels: a ``TensorDataset(samples, labels)``, a
            tuple ``(samples, labels)`` or an object with ``.images`` and ``.labels``
            (``SyntheticShapes``). Samples (M, ...), float, or ``uint8`` images (0..255, read as
            ``value / 255``: 8-bit images in a quarter of float32's memory); labels (M,).
        counterfactual_class (int, Tensor or "runner-up"): ``B``; see
            :class:`~captum_cf.baselines.GANMEXBaseline` (same meaning and ``target`` rules).
        classifier (callable, optional): needed for ``"runner-up"``.
        metric (str): ``"l2"`` or ``"l1"``.
        chunk_size (int): candidates per distance computation (bounds memory).
        num_classes (int, optional): the model's number of classes; default the largest
            dataset label + 1 (pass it when the candidates are of some classes only, e.g. only
            class ``B``'s samples for a 3-class model).

    Example:
        >>> images = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
        >>> base = NearestSampleBaseline((images, torch.tensor([0, 1])), counterfactual_class=1)
        >>> bool((base(torch.rand(3, 1, 4, 4)) == 1).all())
        True
        >>> rows = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 1.0]])  # tabular (M, F)
        >>> NearestSampleBaseline((rows, torch.tensor([0, 1, 1])), 1)(torch.tensor([[8.0, 0.0]]))
        tensor([[9., 1.]])
    """

    needs_target = False

    def __init__(
        self,
        dataset: Any,
        counterfactual_class: int | Tensor | str,
        classifier: Callable[[Tensor], Tensor] | None = None,
        metric: str = "l2",
        chunk_size: int = 4096,
        num_classes: int | None = None,
    ) -> None:
        images, labels = _unpack(dataset)
        if images.dtype == torch.uint8:
            if images.dim() == 0 or images.numel() == 0:
                raise ValueError(f"dataset samples must be non-empty (M, ...), got shape "
                                 f"{tuple(images.shape)}")
        else:
            check_tensor(images, "dataset samples")
        labels = check_target(labels, images.shape[0], name="dataset labels")
        if metric not in ("l1", "l2"):
            raise ValueError(f"metric must be 'l1' or 'l2', got {metric!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        if classifier is not None and not callable(classifier):
            raise TypeError(f"classifier must be a model (callable) or None, got {classifier!r}")
        least = int(labels.max()) + 1
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int) or num_classes < least):
            raise ValueError(f"num_classes must be an int >= {least} (the largest dataset label "
                             f"+ 1), got {num_classes!r}")
        self.num_classes = least if num_classes is None else num_classes
        self._classes_given = num_classes is not None
        self.counterfactual_class = check_counterfactual_class(
            counterfactual_class, self.num_classes, classifier
        )
        self.classifier = classifier
        self.metric = metric
        self.chunk_size = chunk_size
        self._images, self._labels = images, labels

    def __repr__(self) -> str:
        return (
            f"NearestSampleBaseline({self._images.shape[0]} samples, "
            f"counterfactual_class={self.counterfactual_class!r}, metric={self.metric!r})"
        )

    def classes(self, inputs: Tensor, target: Any = None) -> Tensor:
        """The counterfactual class ``B`` of each example, shape (N,)."""
        try:
            return resolve_classes(
                self.counterfactual_class, inputs, target, self.num_classes, self.classifier
            )
        except ValueError as err:
            if self._classes_given or not str(err).startswith(("target must be class",
                                                              "classifier must return")):
                raise
            raise ValueError(f"{err} (the dataset labels give {self.num_classes} classes: pass "
                             "num_classes= for a model with more)") from None

    def nearest_index(self, inputs: Tensor, target: Any = None) -> Tensor:
        """Dataset index of each example's nearest sample of its class ``B``, shape (N,)."""
        check_tensor(inputs, "inputs")
        if tuple(inputs.shape[1:]) != tuple(self._images.shape[1:]):
            raise ValueError(
                f"inputs have shape {tuple(inputs.shape[1:])} per example, but the dataset "
                f"samples are {tuple(self._images.shape[1:])}"
            )
        classes = self.classes(inputs, target).cpu()
        out = torch.empty(inputs.shape[0], dtype=torch.long)
        for b in classes.unique().tolist():
            rows = (classes == b).nonzero().flatten()
            candidates = (self._labels == b).nonzero().flatten().cpu()
            if candidates.numel() == 0:
                raise ValueError(f"the dataset holds no sample of counterfactual class {b}")
            queries = inputs[rows.to(inputs.device)].flatten(1)
            queries = queries if queries.dtype == torch.float64 else queries.float()
            best = nearest_index(queries, self._images, self.chunk_size,
                                 2.0 if self.metric == "l2" else 1.0, subset=candidates)
            out[rows] = candidates[best.cpu()]
        return out

    def _reference(self, inputs: Tensor, target: Any) -> Tensor:
        index = self.nearest_index(inputs, target)
        return unit_images(self._images[index]).to(device=inputs.device, dtype=inputs.dtype)


def _unpack(dataset: Any) -> tuple[Tensor, Tensor]:
    if hasattr(dataset, "tensors"):
        tensors = dataset.tensors
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):
        tensors = (dataset.images, dataset.labels)
    elif isinstance(dataset, (tuple, list)):
        tensors = tuple(dataset)
    else:
        raise TypeError(
            "dataset must be a TensorDataset(images, labels), a tuple (images, labels) or have "
            f".images and .labels, got {type(dataset).__name__}"
        )
    if len(tensors) != 2 or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(
            "dataset must hold exactly two tensors: samples (M, ...) and labels (M,)"
        )
    return tensors[0], tensors[1]


def _available(ctx: Any) -> bool:
    """Training samples are given and their labels are the model's classes (a model with
    classes the samples lack has runner-up classes without a nearest sample)."""
    if ctx.train_data is None:
        return False
    tensors = getattr(ctx.train_data, "tensors", None)
    if tensors is None or len(tensors) < 2:  # another form: checked when the baseline is built
        return True
    labels = tensors[1]
    return labels.numel() > 0 and int(labels.max()) + 1 == ctx.num_classes


def _from_context(ctx: Any) -> NearestSampleBaseline:
    """Audit factory: nearest training image of the model's runner-up class."""
    return NearestSampleBaseline(ctx.train_data, "runner-up", classifier=ctx.model)
