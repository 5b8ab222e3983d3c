"""Training of a GANMEX generator against a frozen classifier (WGAN-GP, class-aware critic)."""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._nearest import nearest_index
from captum_cf._validation import check_target
from captum_cf.generative.ganmex import GANMEXConfig, GANMEXCritic, GANMEXGenerator
from captum_cf.generative.layers import random_translate
from captum_cf.generative.losses import gradient_penalty, wgan_critic_loss, wgan_generator_loss
from captum_cf.training import Trainer, check_frozen_classifier
from captum_cf.training.checkpoint import load_checkpoint, save_checkpoint
from captum_cf.training.data import (
    DeviceImages,
    check_generator_images,
    check_training_images,
    unit_images,
)

__all__ = [
    "GANMEXTrainConfig",
    "GANMEXTrainer",
    "adapt_ganmex",
    "random_other_class",
    "evaluate_counterfactuals",
    "load_generator",
]


@dataclass
class GANMEXTrainConfig:
    """Loss weights and optimiser settings of :class:`GANMEXTrainer`.

    The reference code (TensorFlow, 128 px) uses lambda_cls 1000, lambda_sim 100, lambda_rec 0,
    Adam G 2e-5 / D 1e-4. At our scale (32 px digits, a few hundred CPU steps) the settings
    below were measured to work (FEASIBILITY.md and this project's runs): with the identity-start
    generator, a class weight of 1 and an L1 weight of 5 give strokes rather than noise, and the
    10x larger learning rates make training fit in minutes.

    Attributes:
        batch_size (int): images per step.
        lr_generator, lr_critic (float): Adam learning rates.
        betas (tuple): Adam betas.
        critic_steps (int): critic updates per generator update.
        gradient_penalty (float): WGAN-GP weight.
        lambda_adv, lambda_cls, lambda_sim, lambda_rec (float): generator loss weights of the
            adversarial term, the classifier's cross-entropy towards the target, the L1
            similarity to the input and the cycle reconstruction ``|x - G(G(x, t), c)|_1``.
        lambda_mask, lambda_mask_tv (float): for generators with ``edit="mask"`` only: weights
            of the mask sparsity ``mean(m)`` and of its total variation
            ``mean|m[i+1, j] - m[i, j]| + mean|m[i, j+1] - m[i, j]|`` (ignored for
            ``edit="full"``).
        mask_warmup (int): steps over which both mask weights ramp up linearly from 0. The
            untrained generator's content equals ``x``, so the class loss moves the mask only
            once the content differs; a full-strength sparsity term from step 0 can close the
            mask everywhere before that (measured on shapes: ``lambda_mask`` 20 without warm-up
            left ``m == 0`` and the class loss at its start value after 120 steps).
        max_shift (int): random translation (pixels) of real and fake images before the critic.
        val_images (int): validation images used for keep-best (taken from the validation set).
        focus_pairs (tuple): class pairs ``(a, b)`` to over-sample (default none).
        focus_share (float): share of each batch drawn from ``focus_pairs``: an image of ``a``
            with target ``b`` or vice versa (both directions equally likely). The rest of the
            batch stays uniform over every (class, other class), so the generator remains one
            generator over all classes; only the pairs a one-vs-one study needs get more steps.
        lambda_aux (float): weight of ``CE(f_aux(G(x, t)), t)`` for the trainer's frozen
            auxiliary classifier ``f_aux`` (0: no auxiliary term). With an adversarially trained
            ``f_aux`` (perceptually aligned gradients) an edit must move both classifiers, which
            small classifier-specific changes do not (digits: see RESULTS.md "independent_judge").
    """

    batch_size: int = 64
    lr_generator: float = 1e-4
    lr_critic: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    critic_steps: int = 1
    gradient_penalty: float = 10.0
    lambda_adv: float = 1.0
    lambda_cls: float = 1.0
    lambda_sim: float = 5.0
    lambda_rec: float = 0.0
    lambda_mask: float = 1.0
    lambda_mask_tv: float = 0.0
    mask_warmup: int = 0
    max_shift: int = 2
    val_images: int = 200
    focus_pairs: tuple[tuple[int, int], ...] = ()
    focus_share: float = 0.0
    lambda_aux: float = 0.0

    def __post_init__(self) -> None:
        for name, least in (("batch_size", 1), ("critic_steps", 1), ("val_images", 1),
                            ("mask_warmup", 0), ("max_shift", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        for name in ("gradient_penalty", "lambda_adv", "lambda_cls", "lambda_sim", "lambda_rec",
                     "lambda_mask", "lambda_mask_tv", "lambda_aux", "lr_generator", "lr_critic"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float >= 0, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0 or (name.startswith("lr") and value == 0):
                raise ValueError(f"{name} must be {'> 0' if name.startswith('lr') else '>= 0'} "
                                 f"and finite, got {value}")
        if not 0.0 <= self.focus_share <= 1.0:
            raise ValueError(f"focus_share must be in [0, 1], got {self.focus_share}")
        self.focus_pairs = tuple(tuple(int(c) for c in pair) for pair in self.focus_pairs)
        if any(len(pair) != 2 or pair[0] == pair[1] for pair in self.focus_pairs):
            raise ValueError(f"focus_pairs must be pairs of two different classes, got "
                             f"{self.focus_pairs}")
        if self.focus_share > 0 and not self.focus_pairs:
            raise ValueError("focus_share > 0 needs focus_pairs")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_other_class(
    labels: Tensor, num_classes: int, generator: torch.Generator | None = None
) -> Tensor:
    """A uniformly random class different from each label: ``(c + U{1..K-1}) mod K``."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels.cpu() + shift) % num_classes


class GANMEXTrainer(Trainer):
    """Trains :class:`GANMEXGenerator` so that ``f(G(x, t)) = t`` with small, realistic edits.

    Per step, with a batch ``x`` of class ``c``, random targets ``t != c`` and real images ``r``
    of class ``t``:

    * critic (WGAN-GP): ``D(G(x, t), t) - D(r, t) + gp * GP`` (images randomly shifted by up to
      ``max_shift`` px first);
    * generator: ``- lambda_adv * D(G(x, t), t) + lambda_cls * CE(f(G(x, t)), t)
      + lambda_sim * |x - G(x, t)|_1 + lambda_rec * |x - G(G(x, t), c)|_1``, plus
      ``lambda_mask * mean(m) + lambda_mask_tv * TV(m)`` for a masked generator
      (``edit="mask"``, mask ``m``): the edit is pushed into as few pixels as the class needs,
      plus ``lambda_aux * CE(f_aux(G(x, t)), t)`` with an auxiliary classifier ``f_aux``.

    The classifier ``f`` (and ``f_aux``) is used frozen (eval mode, no parameter gradients) and
    restored exactly.
    Validation measures on a fixed set of validation images and fixed random targets: ``flip``
    (share classified as the target), ``l1`` (mean absolute pixel change), ``nn_flip`` (share
    whose nearest training image has the target class: real strokes move it, adversarial noise
    does not) and ``score = flip + nn_flip - l1`` (with ``f_aux``: plus ``aux_flip``, its flip
    rate); the generator with the best score is kept (:meth:`best_state`).

    Args:
        generator (GANMEXGenerator): the model being trained.
        classifier (nn.Module): pixel-space classifier, (N, C, H, W) -> (N, K) logits.
        images (Tensor): training images, shape (N, C, H, W), float in [0, 1] or ``uint8``
            (0..255: held so on the device where they fit, ``DeviceImages``; a quarter of
            float32's memory; batches become float).
        labels (Tensor): their classes, shape (N,).
        val_images, val_labels (Tensor, optional): validation split for keep-best (float or
            ``uint8``).
        config (GANMEXTrainConfig, optional): loss weights and optimiser settings.
        critic (GANMEXCritic, optional): built from ``generator.config`` when omitted.
        aux_classifier (nn.Module, optional): a second frozen pixel-space classifier with the
            same classes, required when ``config.lambda_aux > 0`` (e.g. zoo
            ``digits-cnn-robust``); it must be on the training device.
        **trainer_kwargs: ``seed``, ``checkpoint_path``, ``checkpoint_every``,
            ``validate_every``, ``log_every``, ``log``, ``device`` (default: the images';
            images and modules move there, the classifier must be there), ``amp`` of
            :class:`Trainer`.

    Example:
        >>> cfg = GANMEXConfig(image_size=16, num_classes=2, base_channels=8, critic_layers=2)
        >>> clf = nn.Sequential(nn.Flatten(), nn.Linear(256, 2))
        >>> x, y = torch.rand(8, 1, 16, 16), torch.tensor([0, 1] * 4)
        >>> train_cfg = GANMEXTrainConfig(batch_size=4)
        >>> trainer = GANMEXTrainer(GANMEXGenerator(cfg), clf, x, y, config=train_cfg)
        >>> len(trainer.fit(2)) >= 0
        True
    """

    def __init__(
        self,
        generator: GANMEXGenerator,
        classifier: nn.Module | Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        val_images: Tensor | None = None,
        val_labels: Tensor | None = None,
        config: GANMEXTrainConfig | None = None,
        critic: GANMEXCritic | None = None,
        aux_classifier: nn.Module | Callable[[Tensor], Tensor] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        self.config = config or GANMEXTrainConfig()
        gcfg = generator.config
        if self.config.lambda_aux > 0 and aux_classifier is None:
            raise ValueError("config.lambda_aux > 0 needs an aux_classifier")
        check_generator_images(generator, images, "images")
        device = torch.device(trainer_kwargs.pop("device", None) or images.device)
        images = DeviceImages(images, device)
        if labels is None:
            raise ValueError("labels are required: the class of each image (the generator "
                             "learns to turn real images of one class into another)")
        self.labels = check_target(labels, images.shape[0], gcfg.num_classes, name="labels")
        # batch bookkeeping lives on the CPU next to the CPU generator ``self.rng``; the drawn
        # indices move to the images' device once per batch
        self._labels_cpu = self.labels.cpu()
        missing = sorted(set(range(gcfg.num_classes)) - set(self._labels_cpu.tolist()))
        if missing:
            raise ValueError(
                f"labels must contain every class (real samples per target); missing {missing}"
            )
        check_frozen_classifier(classifier, images, "classifier", gcfg.num_classes)
        check_frozen_classifier(aux_classifier, images, "aux_classifier", gcfg.num_classes)
        bad = [p for p in self.config.focus_pairs if max(p) >= gcfg.num_classes or min(p) < 0]
        if bad:
            raise ValueError(f"focus_pairs {bad} name classes outside 0..{gcfg.num_classes - 1}")
        self.images = images
        self.generator = generator
        self.critic = critic or GANMEXCritic(gcfg)
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        cfg = self.config
        optimizers = {
            "generator": torch.optim.Adam(
                generator.parameters(), lr=cfg.lr_generator, betas=cfg.betas
            ),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, betas=cfg.betas),
        }
        keep_best = ("generator",) if val_images is not None else ()
        super().__init__(
            {"generator": generator, "critic": self.critic},
            optimizers,
            keep_best=keep_best,
            device=device,
            **trainer_kwargs,
        )
        order = torch.argsort(self._labels_cpu, stable=True)
        self._by_class = order
        counts = torch.bincount(self._labels_cpu, minlength=gcfg.num_classes)
        self._counts = counts
        self._offsets = torch.cumsum(counts, 0) - counts
        self._val = self._validation_set(val_images, val_labels)

    def _validation_set(
        self, images: Tensor | None, labels: Tensor | None
    ) -> tuple[Tensor, ...] | None:
        if images is None:
            return None
        if labels is None:
            raise ValueError("val_labels is required with val_images")
        check_generator_images(self.generator, images, "val_images")
        labels = check_target(
            labels, images.shape[0], self.generator.config.num_classes, "val_labels"
        )
        pick = self.validation_pick(images.shape[0], self.config.val_images)
        targets = random_other_class(
            labels[pick],
            self.generator.config.num_classes,
            torch.Generator().manual_seed(self.seed + 1),
        )
        device = self.images.device  # validation runs where training runs
        return (unit_images(images[pick].to(device)), labels[pick].to(device),
                targets.to(device))

    def training_context(self) -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(frozen(self.classifier))
        if self.aux_classifier is not None:
            stack.enter_context(frozen(self.aux_classifier))
        return stack

    def _batch(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k, bs, device = (
            self.generator.config.num_classes,
            self.config.batch_size,
            self.images.device,
        )
        # every draw on the CPU (self.rng is a CPU generator), moved to the device once
        idx = torch.randint(0, self.images.shape[0], (bs,), generator=self.rng)
        source = self._labels_cpu[idx]
        target = random_other_class(source, k, self.rng)
        if self.config.focus_share > 0:
            idx, source, target = self._focus(idx, source, target)
        pos = (torch.rand(bs, generator=self.rng) * self._counts[target]).long()
        real_idx = self._by_class[self._offsets[target] + pos]
        return (unit_images(self.images[idx]), source.to(device), target.to(device),
                unit_images(self.images[real_idx]))

    def _focus(self, idx: Tensor, source: Tensor, target: Tensor) -> tuple[Tensor, ...]:
        # replace a random share of the batch by (image of a, target b) / (image of b, target a)
        chosen = torch.rand(idx.shape[0], generator=self.rng) < self.config.focus_share
        n = int(chosen.sum())
        pairs = torch.tensor(self.config.focus_pairs, dtype=torch.long)
        which = torch.randint(0, pairs.shape[0], (n,), generator=self.rng)
        side = torch.randint(0, 2, (n,), generator=self.rng)
        src, tgt = pairs[which, side], pairs[which, 1 - side]
        pos = (torch.rand(n, generator=self.rng) * self._counts[src]).long()
        idx, source, target = idx.clone(), source.clone(), target.clone()
        idx[chosen] = self._by_class[self._offsets[src] + pos]
        source[chosen], target[chosen] = src, tgt
        return idx, source, target

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        losses: dict[str, float] = {}
        for _ in range(cfg.critic_steps):
            x, _, t, real = self._batch()
            losses.update(self._critic_step(x, t, real))
        x, c, t, _ = self._batch()
        losses.update(self._generator_step(x, c, t))
        return losses

    def _shift(self, images: Tensor) -> Tensor:
        return random_translate(images, self.config.max_shift, self.rng)

    def _critic_step(self, x: Tensor, t: Tensor, real: Tensor) -> dict[str, float]:
        with torch.no_grad(), self.autocast():
            fake = self.generator(x, t)
        real_s, fake_s = self._shift(real), self._shift(fake.float())
        with self.autocast():
            wgan = wgan_critic_loss(self.critic(real_s, t), self.critic(fake_s, t)).float()
        # the gradient penalty (a double backward) stays in float32
        gp = gradient_penalty(lambda z: self.critic(z, t), real_s, fake_s, self.rng)
        loss = wgan + self.config.gradient_penalty * gp
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients("critic")
        opt.step()
        return {"d_wgan": float(wgan.detach()), "d_gp": float(gp.detach())}

    def _generator_step(self, x: Tensor, c: Tensor, t: Tensor) -> dict[str, float]:
        cfg = self.config
        with self.autocast():
            fake, mask = self.generator.edit(x, t)
            adv = wgan_generator_loss(self.critic(self._shift(fake), t)).float()
        fake = fake.float()  # a no-op in float32; under amp the frozen classifier runs in float32
        cls = F.cross_entropy(self.classifier(fake), t)
        sim = (fake - x).abs().mean()
        loss = cfg.lambda_adv * adv + cfg.lambda_cls * cls + cfg.lambda_sim * sim
        out = {
            "g_adv": float(adv.detach()),
            "g_cls": float(cls.detach()),
            "g_l1": float(sim.detach()),
        }
        if self.aux_classifier is not None and cfg.lambda_aux > 0:
            aux = F.cross_entropy(self.aux_classifier(fake), t)
            loss = loss + cfg.lambda_aux * aux
            out["g_aux"] = float(aux.detach())
        if mask is not None:
            mask = mask.float()
            area, tv = mask.mean(), _total_variation(mask)
            ramp = min(1.0, (self.step + 1) / cfg.mask_warmup) if cfg.mask_warmup > 0 else 1.0
            loss = loss + ramp * (cfg.lambda_mask * area + cfg.lambda_mask_tv * tv)
            out.update(g_mask=float(area.detach()), g_mask_tv=float(tv.detach()))
        if cfg.lambda_rec > 0:
            with self.autocast():
                back = self.generator(fake, c)
            rec = (back.float() - x).abs().mean()
            loss = loss + cfg.lambda_rec * rec
            out["g_rec"] = float(rec.detach())
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        self.optimizers["critic"].zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients("generator")
        opt.step()
        return out

    def validate(self) -> dict[str, float]:
        if self._val is None:
            return {}
        images, _, targets = self._val
        metrics = evaluate_counterfactuals(
            self.generator, self.classifier, images, targets, reference=(self.images, self.labels)
        )
        metrics["score"] = metrics["flip"] + metrics["nn_flip"] - metrics["l1"]
        if self.aux_classifier is not None:
            aux = evaluate_counterfactuals(self.generator, self.aux_classifier, images, targets)
            metrics["aux_flip"] = aux["flip"]
            metrics["score"] += aux["flip"]
        return metrics

    def extra_state(self) -> dict[str, Any]:
        return {
            "generator_config": self.generator.config.to_dict(),
            "train_config": self.config.to_dict(),
        }

    def export(
        self,
        path: str | os.PathLike,
        best: bool = True,
        half: bool = True,
        metrics: dict[str, Any] | None = None,
        name: str = "ganmex",
    ) -> dict[str, Any]:
        """Write the generator alone as a zoo weights file (float16 by default).

        Format: ``{"format", "name", "arch", "config", "train_config", "state_dict",
        "metrics"}``, loadable with ``weights_only=True`` by :func:`captum_cf.zoo.load_file`
        and :func:`load_generator`, and the file ``captum-cf audit --baseline-weights
        ganmex=FILE`` takes.
        """
        from captum_cf.zoo._registry import WEIGHTS_FORMAT

        state = self.best_state("generator") if best else self.generator.state_dict()
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        payload = {
            "format": WEIGHTS_FORMAT,
            "arch": "ganmex-generator",
            "name": name,
            "config": self.generator.config.to_dict(),
            "train_config": self.config.to_dict(),
            "state_dict": state,
            "metrics": dict(metrics or {}),
        }
        save_checkpoint(path, payload)
        return payload


def adapt_ganmex(
    generator: GANMEXGenerator,
    classifier: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    steps: int = 150,
    *,
    val_images: Tensor | None = None,
    val_labels: Tensor | None = None,
    config: GANMEXTrainConfig | None = None,
    seed: int = 0,
    validate_every: int = 25,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GANMEXGenerator:
    """Fine-tune a copy of a trained generator against another classifier.

    A GANMEX baseline is defined by the classifier in the loop: ``G(x, B)`` is the closest
    realistic image that *this* classifier calls ``B``. When the classifier changes (fine-tuned,
    retrained, or re-initialised layer by layer for a randomisation sanity check), the baseline
    has to follow it. Training a new generator from its identity start costs a full run;
    starting from the trained generator, which already makes realistic edits, a short run moves
    its edits to what the new classifier needs (digits: 150 steps, about 3 minutes on one CPU
    thread, see ``benchmarks/ganmex.py``). A fresh critic (initialised from ``seed``) is
    trained beside it, so the same call gives the same copy.

    Args:
        generator (GANMEXGenerator): the trained generator; it is copied and left untouched
            (parameters, mode and ``requires_grad`` flags).
        classifier (nn.Module or callable): the classifier the new baseline is for, used frozen
            and restored exactly, as in :class:`GANMEXTrainer`.
        images, labels (Tensor): training images (N, C, H, W) in [0, 1] and their classes; every
            class must occur (the critic's real samples per target).
        steps (int): generator steps.
        val_images, val_labels (Tensor, optional): validation split; with it the copy with the
            best validation score (:meth:`GANMEXTrainer.validate`) is returned, else the last.
        config (GANMEXTrainConfig, optional): loss weights (default
            :class:`GANMEXTrainConfig`; pass the settings the generator was trained with, e.g.
            the mask weights of a masked generator).
        seed (int): seed of the training randomness.
        validate_every (int): steps between validations (with a validation split).
        show_progress (bool): tqdm progress bar.
        log (callable, optional): receives the loss and validation lines.

    Returns:
        GANMEXGenerator: the adapted copy, in eval mode.

    Example:
        >>> cfg = GANMEXConfig(image_size=16, num_classes=2, base_channels=8, critic_layers=2)
        >>> clf = nn.Sequential(nn.Flatten(), nn.Linear(256, 2))
        >>> x, y = torch.rand(8, 1, 16, 16), torch.tensor([0, 1] * 4)
        >>> g = GANMEXGenerator(cfg)
        >>> new = adapt_ganmex(g, clf, x, y, steps=2, config=GANMEXTrainConfig(batch_size=4),
        ...                    show_progress=False)
        >>> new is not g and not new.training
        True
    """
    if not isinstance(generator, GANMEXGenerator):
        raise TypeError(f"generator must be a GANMEXGenerator, got {type(generator).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if (val_images is None) != (val_labels is None):
        raise ValueError("val_images and val_labels go together: pass both or neither")
    adapted = copy.deepcopy(generator).requires_grad_(True)
    with torch.random.fork_rng(devices=[]):  # the critic's initialisation follows ``seed``
        torch.random.default_generator.manual_seed(seed)  # built on the CPU; CUDA RNGs untouched
        critic = GANMEXCritic(adapted.config).to(next(adapted.parameters()).device)
    trainer = GANMEXTrainer(
        adapted, classifier, images, labels, val_images, val_labels, config=config,
        critic=critic, seed=seed,
        validate_every=validate_every if val_images is not None else 0, log=log,
    )
    trainer.fit(steps, show_progress=show_progress)
    if trainer.best is not None:
        adapted.load_state_dict(trainer.best_state("generator"))
    return adapted.eval()


def _total_variation(mask: Tensor) -> Tensor:
    """Anisotropic TV per pixel: ``mean|dm/di| + mean|dm/dj|`` of a (N, 1, H, W) mask."""
    return (mask[:, :, 1:] - mask[:, :, :-1]).abs().mean() + (
        mask[:, :, :, 1:] - mask[:, :, :, :-1]
    ).abs().mean()


def counterfactual_passes(
    generator: nn.Module | Callable[[Tensor, Tensor], Tensor],
    classifier: nn.Module | Callable[[Tensor], Tensor],
    images: Any,
    targets: Tensor,
    device: torch.device,
    batch_size: int = 256,
    index: Tensor | None = None,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(x, t, G(x, t), argmax f(G(x, t)))`` for each batch of ``batch_size`` pairs, on
    ``device``: ``x`` the rows ``images[index]`` (``images`` in order without ``index``; float
    or ``uint8``, any device: each batch moves to ``device``), ``t`` the ``targets``, ``f`` the
    classifier, used frozen. Call it under ``torch.no_grad()`` for measurements."""
    with frozen(classifier):
        for i in range(0, targets.shape[0], batch_size):
            rows = images[i : i + batch_size] if index is None else \
                images[index[i : i + batch_size]]
            x = unit_images(rows.to(device))
            t = targets[i : i + batch_size].to(device)
            cf = generator(x, t)
            yield x, t, cf, classifier(cf).argmax(1)


@torch.no_grad()
def evaluate_counterfactuals(
    generator: GANMEXGenerator,
    classifier: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor,
    targets: Tensor,
    reference: tuple[Tensor, Tensor] | None = None,
    batch_size: int = 256,
    reference_chunk: int = 8192,
) -> dict[str, float]:
    """Flip rate, L1 and (optionally) nearest-neighbour agreement of counterfactuals.

    Args:
        generator (GANMEXGenerator): the translator.
        classifier (callable): pixel-space classifier, used frozen.
        images (Tensor): shape (N, C, H, W), float in [0, 1] or ``uint8`` (0..255).
        targets (Tensor): shape (N,), requested classes.
        reference (tuple, optional): ``(images, labels)`` of real data (any device, float or
            ``uint8``, compared ``reference_chunk`` images at a time); adds ``nn_flip``.

    Returns:
        dict: ``flip`` = share with ``argmax f(G(x, t)) == t``; ``l1`` = mean ``|G(x, t) - x|``
        per pixel; ``nn_flip`` = share whose nearest (L2) reference image has class ``t``. An
        edit that fools ``f`` with classifier-specific noise rarely moves the nearest real
        neighbour, so ``nn_flip`` tells strokes from adversarial noise.
    """
    check_training_images(images, "images")
    flips, dist, nn_flips = 0.0, 0.0, 0.0
    for x, t, cf, predicted in counterfactual_passes(generator, classifier, images, targets,
                                                     images.device, batch_size):
        flips += float((predicted == t).sum())
        dist += float((cf - x).abs().flatten(1).mean(1).sum())
        if reference is not None:
            nearest = nearest_index(cf.flatten(1), reference[0], reference_chunk)
            nn_flips += float((reference[1].to(t.device)[nearest] == t).sum())
    n = images.shape[0]
    out = {"flip": flips / n, "l1": dist / n}
    if reference is not None:
        out["nn_flip"] = nn_flips / n
    return out


def load_generator(path: str | os.PathLike, map_location: Any = "cpu") -> GANMEXGenerator:
    """Rebuild a generator from a :meth:`GANMEXTrainer.export` file (eval mode, float32)."""

    payload = load_checkpoint(path, map_location=map_location)
    if "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path} is not a GANMEX generator file (needs 'config' and 'state_dict')")
    generator = GANMEXGenerator(GANMEXConfig(**payload["config"]))
    generator.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    )
    return generator.eval()
