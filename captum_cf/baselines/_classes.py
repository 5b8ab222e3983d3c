"""Which class a one-vs-one baseline should become: fixed, per example, or the runner-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_target, is_output_index

RUNNER_UP = "runner-up"


def check_counterfactual_class(value: Any, num_classes: int, classifier: Any) -> Any:
    """Validate ``counterfactual_class`` at construction; returns it normalised."""
    if isinstance(value, str):
        if value != RUNNER_UP:
            raise ValueError(
                f"counterfactual_class must be an int, a tensor of classes or 'runner-up', "
                f"got {value!r}"
            )
        if classifier is None or not callable(classifier):
            raise ValueError(
                "counterfactual_class='runner-up' needs the classifier= to rank classes"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, Tensor, list, tuple)):
        raise TypeError(
            "counterfactual_class must be an int, a tensor of classes or 'runner-up', "
            f"got {type(value).__name__}"
        )
    n = 1 if isinstance(value, int) else len(torch.as_tensor(value).reshape(-1))
    check_target(value, n, num_classes, name="counterfactual_class")
    return value if isinstance(value, int) else torch.as_tensor(value).long().reshape(-1)


def resolve_classes(
    value: Any,
    inputs: Tensor,
    target: Any,
    num_classes: int,
    classifier: Callable[[Tensor], Tensor] | None,
) -> Tensor:
    """The counterfactual class of each example, shape (N,), on ``inputs.device``.

    ``"runner-up"``: the classifier's most likely class other than ``target`` (other than its
    top class when ``target`` is None). Raises a ValueError when a class equals ``target``.
    A ``target`` that indexes a multi-dimensional output (Captum's tuple, list of tuples) names
    no class: a fixed class is taken as it is, ``"runner-up"`` is refused.
    """
    n = inputs.shape[0]
    if is_output_index(target):  # Captum's index into a multi-dimensional output: no class
        if isinstance(value, str):
            raise ValueError(
                f"counterfactual_class='runner-up' needs the class being explained, but target "
                f"{target!r} indexes a multi-dimensional output; pass a fixed "
                "counterfactual_class, or a model that returns (N, classes)"
            )
        target = None
    explained = check_target(target, n, num_classes) if target is not None else None
    if isinstance(value, str):
        with torch.no_grad(), frozen(classifier):
            logits = classifier(inputs).detach().float()
        if logits.dim() != 2 or logits.shape != (n, num_classes):
            raise ValueError(
                f"classifier must return logits of shape (N, {num_classes}), got "
                f"{tuple(logits.shape)}"
            )
        exclude = explained.to(logits.device) if explained is not None else logits.argmax(1)
        logits[torch.arange(n, device=logits.device), exclude] = -float("inf")
        return logits.argmax(1).to(inputs.device)
    classes = check_target(value, n, num_classes, name="counterfactual_class").cpu()
    explained = explained.cpu() if explained is not None else None
    if explained is not None and bool((classes == explained).any()):
        same = (classes == explained).nonzero().flatten().tolist()
        raise ValueError(
            f"counterfactual_class equals target for examples {same}: a one-vs-one baseline for "
            "'why target and not B' needs B != target"
        )
    return classes.to(inputs.device)
