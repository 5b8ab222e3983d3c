r"""PGD adversarial training (Madry et al., ICLR 2018) of a pixel-space classifier.

Robust training solves :math:`\min_\theta \mathbb{E}_{(x, y)} \max_{\|\delta\|_p \le \epsilon,\;
x + \delta \in [0, 1]} \ell(f_\theta(x + \delta), y)`: every batch is first attacked with projected
gradient ascent (PGD), then the model takes an optimiser step on the attacked batch. Gradients of
such models are perceptually aligned, which is what makes their sparse counterfactuals look
like real edits (Roberts & Tsiligkaridis, 2021).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from captum_cf._model_state import frozen, preserve_model_state, preserved_buffers
from captum_cf._validation import check_images, check_logits, check_model_dtype, check_target
from captum_cf.training import IndexStream, Trainer
from captum_cf.training.data import DeviceImages, check_training_images, unit_images
from captum_cf.training.distributed import rank_seed

__all__ = ["adversarial_train", "AdversarialTrainer", "pgd_attack", "robust_accuracy"]

logger = logging.getLogger(__name__)
_NORMS = ("l2", "linf")


def pgd_attack(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    norm: str = "l2",
    eps: float = 1.5,
    steps: int = 7,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Untargeted PGD: perturbations that raise the cross-entropy of ``labels``.

    ``delta <- P(delta + a * g / |g|_2)`` (L2) or ``P(delta + a * sign(g))`` (L-inf), where ``P``
    projects onto the ball and then clips ``x + delta`` to [0, 1]; ``a`` defaults to
    ``2.5 * eps / steps``. Parameters get no gradients; the model's mode is not changed (a model in
    train mode is attacked in train mode) and its buffers (BatchNorm's running statistics) are
    put back as they were.

    Args:
        model (nn.Module): classifier, (N, C, H, W) in [0, 1] -> logits (N, K).
        inputs (Tensor): images (N, C, H, W) in [0, 1].
        labels (int, sequence or Tensor): true classes, shape (N,) (an int: the same for all),
            in ``[0, K)``.
        norm (str): ``"l2"`` or ``"linf"``.
        eps (float): radius, > 0.
        steps (int): PGD iterations, >= 1.
        step_size (float, optional): ascent step ``a``, finite and > 0.
        random_start (bool): start from a random point of the ball (radius uniform in [0, eps]
            for L2, uniform in the box for L-inf).
        generator (torch.Generator, optional): CPU generator of the random start.

    Returns:
        Tensor: adversarial images ``x + delta`` (N, C, H, W) in [0, 1], detached.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> adv = pgd_attack(model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1]), eps=0.5)
        >>> bool(((adv - adv.clamp(0, 1)) == 0).all())
        True
    """
    labels = _check_attack_inputs(model, inputs, labels)
    _check_attack(norm, eps, steps)
    _check_step_size(step_size)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    with preserved_buffers(model):  # BatchNorm statistics of a model in train mode
        return _pgd(model, inputs, labels, norm, eps, steps, step_size, random_start, generator)


def _pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    norm: str,
    eps: float,
    steps: int,
    step_size: float | None,
    random_start: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """:func:`pgd_attack` on checked arguments (``labels`` a long tensor (N,) on any device)."""
    labels = labels.to(inputs.device)
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    delta = (
        _random_start(inputs, norm, eps, generator) if random_start else torch.zeros_like(inputs)
    )
    delta = _project(inputs, delta, norm, eps)
    with frozen(model, eval_mode=False), torch.enable_grad():
        for step in range(steps):
            d = delta.detach().requires_grad_(True)
            logits = model(inputs + d)
            if step == 0:  # the first forward pass doubles as the check of the logits and labels
                _check_labels_range(logits, labels)
            (g,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), d)
            if norm == "l2":
                g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            else:
                g = g.sign()
            delta = _project(inputs, delta + alpha * g, norm, eps)
    return (inputs + delta).detach()


def _project(inputs: Tensor, delta: Tensor, norm: str, eps: float) -> Tensor:
    if norm == "l2":
        n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * (eps / n.clamp_min(eps))
    else:
        delta = delta.clamp(-eps, eps)
    # clipping x + delta moves every coordinate of delta towards 0: the norm bound still holds
    return (inputs + delta).clamp(0, 1) - inputs


def _random_start(
    inputs: Tensor, norm: str, eps: float, generator: torch.Generator | None
) -> Tensor:
    def draw(fn: Any, shape: tuple[int, ...]) -> Tensor:
        return fn(shape, generator=generator, dtype=inputs.dtype).to(inputs.device)

    if norm == "linf":
        return (draw(torch.rand, tuple(inputs.shape)) * 2 - 1) * eps
    d = draw(torch.randn, tuple(inputs.shape))
    radius = draw(torch.rand, (inputs.shape[0], 1, 1, 1)) * eps
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1) * radius


def robust_accuracy(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    norm: str = "l2",
    eps: float = 1.5,
    steps: int = 20,
    batch_size: int = 256,
) -> tuple[float, float]:
    """Clean and PGD-robust accuracy of ``model`` (evaluated in eval mode, state restored).

    Args:
        model (nn.Module): classifier, (N, C, H, W) in [0, 1] -> logits (N, K).
        inputs (Tensor): images (N, C, H, W), float in [0, 1] or ``uint8`` (0..255; each batch
            becomes float).
        labels (int, sequence or Tensor): true classes, shape (N,), in ``[0, K)``.
        norm, eps, steps: the attack, as in :func:`pgd_attack`.
        batch_size (int): images per forward pass, >= 1.

    Returns:
        tuple[float, float]: (clean accuracy, accuracy under a ``steps``-step PGD attack of radius
        ``eps``), both in [0, 1].

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> clean, robust = robust_accuracy(model, torch.rand(4, 1, 4, 4), [0, 1, 0, 1], eps=0.1)
        >>> robust <= clean
        True
    """
    labels = _check_attack_inputs(model, inputs, labels, allow_uint8=True).to(inputs.device)
    _check_attack(norm, eps, steps)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    clean = robust = 0
    with frozen(model):
        for i in range(0, inputs.shape[0], batch_size):
            x, y = unit_images(inputs[i : i + batch_size]), labels[i : i + batch_size]
            with torch.no_grad():
                logits = model(x)
            _check_labels_range(logits, y)
            clean += int((logits.argmax(1) == y).sum())
            adv = _pgd(model, x, y, norm, eps, steps, None, True, None)
            with torch.no_grad():
                robust += int((model(adv).argmax(1) == y).sum())
    n = inputs.shape[0]
    return clean / n, robust / n


def adversarial_train(
    model: nn.Module,
    dataset: TensorDataset | tuple[Tensor, Tensor],
    norm: str = "l2",
    eps: float = 1.5,
    steps: int = 1000,
    attack_steps: int = 7,
    batch_size: int = 64,
    lr: float = 1e-3,
    clean_weight: float = 0.0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    seed: int = 0,
    show_progress: bool = False,
    log_every: int = 50,
    *,
    device: str | torch.device | None = None,
    amp: str | None = None,
) -> list[dict[str, float]]:
    r"""Train ``model`` in place with PGD adversarial training.

    Loss per batch: :math:`(1 - w)\,\ell(f(x_{adv}), y) + w\,\ell(f(x), y)` with
    ``w = clean_weight`` and :math:`x_{adv}` from :func:`pgd_attack` (``attack_steps`` steps,
    random start). Adam with a cosine learning-rate decay over ``steps`` optimiser steps.
    Data order and attack starts come from two generators seeded from ``seed`` (the global RNG
    is not touched). With ``checkpoint`` the whole state (weights, optimiser, scheduler, step,
    generator states, current epoch order, loss history) is saved atomically every
    ``checkpoint_every`` steps and at the end; a run started with an existing checkpoint resumes
    exactly where it stopped. The model's train/eval mode and ``requires_grad`` flags are
    restored at the end (its weights are, of course, trained).

    Args:
        model (nn.Module): classifier, images (N, C, H, W) in [0, 1] -> logits (N, K).
        dataset (TensorDataset or tuple): images (M, C, H, W) (float in [0, 1] or ``uint8``,
            0..255: held so, each batch becomes float) and integer labels (M,).
        norm (str): threat model, ``"l2"`` or ``"linf"``.
        eps (float): attack radius, > 0.
        steps (int): optimiser steps in total (a resumed run counts the steps already done).
        attack_steps (int): PGD iterations per batch.
        batch_size (int): examples per step (<= M).
        lr (float): Adam learning rate at the start of the cosine schedule.
        clean_weight (float): weight in [0, 1] of the clean loss.
        checkpoint (path, optional): checkpoint file to write and resume from.
        checkpoint_every (int): steps between checkpoints.
        seed (int): seed of the data order and the attack's random starts.
        show_progress (bool): tqdm bar with the running loss.
        log_every (int): steps between entries of the returned history (and log lines).
        device (str or torch.device, optional): where to train (default: the model's device;
            the images move there).
        amp (str, optional): ``"bf16"``: bfloat16 autocast of the training forward passes
            (CUDA only; the PGD attack stays in float32).

    Returns:
        list[dict]: history entries ``{"step", "loss", "adv_accuracy"}`` (means since the
        previous entry).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> data = (torch.rand(32, 1, 4, 4), torch.randint(0, 2, (32,)))
        >>> history = adversarial_train(model, data, eps=0.5, steps=4, batch_size=8, log_every=2)
        >>> [h["step"] for h in history]
        [2, 4]
    """
    images, labels = _check_train_args(
        model,
        dataset,
        norm,
        eps,
        steps,
        attack_steps,
        batch_size,
        lr,
        clean_weight,
        checkpoint_every,
        log_every,
    )
    trainer = AdversarialTrainer(
        model, images, labels, norm=norm, eps=eps, steps=steps, attack_steps=attack_steps,
        batch_size=batch_size, lr=lr, clean_weight=clean_weight, seed=seed,
        checkpoint_path=checkpoint, checkpoint_every=checkpoint_every, log_every=log_every,
        device=device, amp=amp,
    )
    if trainer.resume_if_exists():
        logger.info("resumed adversarial training from %s at step %d", checkpoint, trainer.step)
    trainer.fit(steps, show_progress=show_progress)
    return list(trainer.history)


class AdversarialTrainer(Trainer):
    """PGD adversarial training on the shared loop (see :func:`adversarial_train`).

    Data order comes from ``self.rng`` (seeded ``seed``; under torchrun a
    ``DistributedSampler``), the attacks' random starts from the generator ``"attack"``
    (``seed + 1``); the global RNG is not touched. Gradients are averaged over the processes
    under torchrun (:meth:`Trainer.reduce_gradients`).
    """

    def __init__(self, model: nn.Module, images: Tensor, labels: Tensor, *, norm: str,
                 eps: float, steps: int, attack_steps: int, batch_size: int, lr: float,
                 clean_weight: float, seed: int, checkpoint_path: str | os.PathLike | None,
                 checkpoint_every: int, log_every: int, device: str | torch.device | None,
                 amp: str | None) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        super().__init__(
            {"model": model}, {"model": opt}, schedulers={"model": sched},
            generators={"attack": torch.Generator().manual_seed(rank_seed(seed + 1))},
            seed=seed, seed_global=False, checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every, log_every=log_every, log_at_end=True,
            device=device, amp=amp, desc="adversarial training",
            log=lambda line: logger.info("%s", line),
        )
        self.images, self.labels = DeviceImages(images, self.device), labels.to(self.device)
        self.stream = IndexStream(images.shape[0], batch_size, self.rng, seed=seed,
                                  context=self.dist)
        self.norm, self.eps, self.attack_steps = norm, eps, attack_steps
        self.clean_weight = clean_weight

    def training_context(self) -> contextlib.AbstractContextManager:
        return preserve_model_state(self.modules["model"])

    def train_step(self) -> dict[str, float]:
        model = self.modules["model"]
        idx = next(self.stream)
        x, y = unit_images(self.images[idx]), self.labels[idx.to(self.device)]
        adv = _pgd(model, x, y, self.norm, self.eps, self.attack_steps, None, True,
                   self.generators["attack"])
        with self.autocast():
            logits = model(adv)
        loss = F.cross_entropy(logits.float(), y)
        if self.clean_weight > 0:
            with self.autocast():
                clean = model(x)
            loss = (1 - self.clean_weight) * loss + self.clean_weight * F.cross_entropy(
                clean.float(), y)
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients("model")
        opt.step()
        self.schedulers["model"].step()
        return {"loss": float(loss.detach()),
                "adv_accuracy": float((logits.argmax(1) == y).float().mean())}

    def rank_state(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])


def _check_attack(norm: str, eps: float, steps: int, steps_name: str = "steps") -> None:
    if not isinstance(norm, str) or norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{steps_name} must be an int >= 1, got {steps!r}")


def _check_step_size(step_size: Any) -> None:
    if step_size is None:
        return
    if (
        isinstance(step_size, bool)
        or not isinstance(step_size, (int, float))
        or not 0 < step_size < float("inf")
    ):
        raise ValueError(f"step_size must be None or a finite number > 0, got {step_size!r}")


def _check_attack_inputs(model: Any, inputs: Any, labels: Any, allow_uint8: bool = False
                         ) -> Tensor:
    """Model, images and labels of an attack; returns the labels as a long tensor (N,).
    ``allow_uint8``: ``uint8`` images (0..255) are accepted (evaluation converts batches)."""
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    # the attack clips x + delta to [0, 1]: images outside it would be changed silently
    if allow_uint8:
        check_training_images(inputs, "inputs")
    else:
        check_images(inputs, "inputs")
    check_model_dtype(unit_images(inputs[:1]), model)
    t = check_target(labels, inputs.shape[0], None, "labels")
    if t is None:
        raise ValueError("labels must be given: the true class of each image")
    return t


def _check_labels_range(logits: Any, labels: Tensor) -> None:
    check_logits(logits, labels.shape[0], "model")
    if bool((labels >= logits.shape[1]).any()):
        raise ValueError(
            f"labels must be class indices in [0, {logits.shape[1]}), got {labels.tolist()}"
        )


def _check_train_args(
    model: Any,
    dataset: Any,
    norm: str,
    eps: float,
    steps: int,
    attack_steps: int,
    batch_size: int,
    lr: float,
    clean_weight: float,
    checkpoint_every: int,
    log_every: int,
) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    tensors = dataset.tensors if isinstance(dataset, TensorDataset) else dataset
    if not isinstance(tensors, (tuple, list)) or len(tensors) != 2:
        raise TypeError("dataset must be a TensorDataset or a tuple (images, labels)")
    images, labels = tensors
    check_training_images(images, "dataset images")
    if (
        not isinstance(labels, Tensor)
        or labels.dtype != torch.long
        or labels.shape != (images.shape[0],)
    ):
        raise ValueError(f"dataset labels must be a long tensor of shape ({images.shape[0]},)")
    if bool((labels < 0).any()):
        raise ValueError("dataset labels must be class indices >= 0")
    check_model_dtype(unit_images(images[:1]), model, "dataset images")
    _check_attack(norm, eps, steps)
    _check_attack(norm, 1.0, attack_steps, "attack_steps")
    for name, v in (
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if batch_size > images.shape[0]:
        raise ValueError(
            f"batch_size ({batch_size}) exceeds the number of images ({images.shape[0]})"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if (
        isinstance(clean_weight, bool)
        or not isinstance(clean_weight, (int, float))
        or not 0 <= clean_weight <= 1
    ):
        raise ValueError(f"clean_weight must be in [0, 1], got {clean_weight!r}")
    return images, labels
