"""Training of a progressive-exaggeration generator against a frozen classifier."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_cf._model_state import frozen
from captum_cf._validation import check_target
from captum_cf.generative.conditional import bin_centers, posterior_to_bin
from captum_cf.generative.exaggeration import (
    ExaggerationDiscriminator,
    ExaggerationGenerator,
)
from captum_cf.generative.losses import hinge_critic_loss, hinge_generator_loss
from captum_cf.training import Trainer, check_frozen_classifier
from captum_cf.training.data import DeviceImages, check_generator_images, unit_images

__all__ = [
    "ExaggerationTrainConfig",
    "ExaggerationTrainer",
    "positive_posterior",
    "binary_kl",
    "evaluate_exaggeration",
]


@dataclass
class ExaggerationTrainConfig:
    """Loss weights and optimiser settings of :class:`ExaggerationTrainer`.

    The paper uses lambda_GAN 1, lambda_cyc 100, lambda_cls 1 and 5 critic steps per generator
    step. On 32 px digits with a CPU budget of ~1 hour the weights below were measured to work
    (FEASIBILITY.md): gan 1, cls 10, rec 30, cyc 3, one critic step, Adam 2e-4, betas (0, 0.9).

    Attributes:
        batch_size (int): images per step (half positives, half negatives).
        lr_generator, lr_critic (float): Adam learning rates.
        betas (tuple): Adam betas.
        critic_steps (int): discriminator updates per generator update.
        lambda_gan, lambda_cls, lambda_cyc, lambda_rec (float): weights of the hinge GAN term,
            ``KL(desired bin posterior || f(G(x, c_t)))``, the cycle ``|x - G(G(x, c_t), c_x)|_1``
            and the self-reconstruction ``|x - G(x, c_x)|_1``.
        positive_share (float): share of each batch drawn from images of the positive class.
        val_images (int): validation images used for keep-best.
        recalibration_batches (int): batches used to re-estimate the generator's batch-norm
            statistics before validation and export (0 keeps the running averages).
        lambda_aux (float): weight of ``KL(q_t || f_aux(G(x, c_t)))`` for the trainer's frozen
            auxiliary classifier ``f_aux`` (0: no auxiliary term). With an adversarially
            trained ``f_aux`` the walk must move a classifier that small, classifier-specific
            edits do not move (digits: see RESULTS.md "independent_judge").
        lambda_l1 (float): weight of the proximity ``|G(x, c_t) - x|_1`` (mean per pixel) of
            every requested bin, as GANMEX's ``lambda_sim`` (0: off, the default). Without it
            nothing but the cycle keeps a walk's middle bins near the input.
        lambda_real (float): weight of an unconditional realism term (0: off, the default):
            the critic also scores ``u(x) = w . phi(x)`` (its projection-free part, see
            :meth:`ExaggerationDiscriminator.scores`) with a hinge loss of *all* real images
            against generated images of *all* bins, and the generator adds
            ``- lambda_real * u(G(x, c_t))``. The conditional critic sees real images of the
            extreme bins only (a sharp classifier puts almost no real image in a middle bin), so
            it does not constrain the middle of a walk; this term does.
        real_temperature (float): temperature ``T`` (> 0) of the posterior that bins the *real*
            images the conditional critic sees: ``bin(softmax(f(x) / T)[positive])`` (1: the
            classifier's own bins, the default). A sharp classifier puts almost every real
            image in the first or last bin, so the critic never sees a real middle-bin image;
            with ``T > 1`` the less confident real images (8-like 3s, atypical 8s) fill the
            middle bins. Only the critic's real bins change: the classifier term, the cycle and
            the self-reconstruction keep the classifier's own (``T = 1``) posterior.
        cls_temperature (float): temperature ``T_c`` (> 0) of the generator's classifier term:
            ``KL(q_t || softmax(f(G(x, c_t)) / T_c)[positive])`` (1: the classifier's own
            posterior, the default). With ``T_c > 1`` a requested middle bin asks for a
            posterior nearer 0 or 1 at ``T = 1`` (bin 1 of 10 at ``T_c = 2``: about 0.03
            instead of 0.15), so the first bins need less than the edit that brings a sharp
            classifier to its decision boundary. Validation, keep-best and
            :func:`evaluate_exaggeration` measure at ``T = 1``; the auxiliary classifier's term
            has its own temperature, ``aux_temperature``.
        lambda_step (float): weight of a walk-smoothness term (0: off, the default): the mean
            squared pixel difference ``|G(x, c_t) - G(x, c_n)|^2`` between the requested bin
            and a neighbouring one (``c_n = c_t +- 1``, drawn at random, reflected at the
            ends). Over a walk it sums the squared steps between neighbouring bins, which for
            a given total change is smallest when the change is spread evenly over the bins:
            it acts against a walk that jumps at one bin and then barely moves (measured on
            digits: most of the change between bins 0 and 1). Adds one generator pass of the
            batch per step.
        aux_temperature (float): the same for the auxiliary classifier's term:
            ``KL(q_t || softmax(f_aux(G(x, c_t)) / T_a)[positive])`` (1: the default). The
            validation's auxiliary scores stay at ``T = 1``.
    """

    batch_size: int = 32
    lr_generator: float = 2e-4
    lr_critic: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    critic_steps: int = 1
    lambda_gan: float = 1.0
    lambda_cls: float = 10.0
    lambda_cyc: float = 3.0
    lambda_rec: float = 30.0
    positive_share: float = 0.5
    val_images: int = 100
    recalibration_batches: int = 30
    lambda_aux: float = 0.0
    lambda_l1: float = 0.0
    lambda_real: float = 0.0
    real_temperature: float = 1.0
    cls_temperature: float = 1.0
    aux_temperature: float = 1.0
    lambda_step: float = 0.0

    def __post_init__(self) -> None:
        steps = self.critic_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"critic_steps must be an int >= 1, got {steps!r}")
        for name in ("real_temperature", "cls_temperature", "aux_temperature"):
            t = getattr(self, name)
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise TypeError(f"{name} must be a float > 0, got {type(t).__name__}")
            if not math.isfinite(t) or t <= 0:
                raise ValueError(f"{name} must be > 0 and finite, got {t}")
        for name in ("lambda_aux", "lambda_l1", "lambda_real", "lambda_cyc", "lambda_step",
                     "lambda_cls"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float >= 0, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def positive_posterior(logits: Tensor, positive_class: int,
                       temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """``(log p, log (1 - p))`` of the one-vs-rest posterior
    ``p = softmax(logits / temperature)[positive]``.

    Both are computed with log-sum-exp, so they stay finite for confident classifiers.
    """
    if temperature != 1:
        logits = logits / temperature
    log_all = torch.logsumexp(logits, dim=1)
    log_p = logits[:, positive_class] - log_all
    others = torch.cat([logits[:, :positive_class], logits[:, positive_class + 1 :]], dim=1)
    return log_p, torch.logsumexp(others, dim=1) - log_all


def binary_kl(desired: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """``KL([d, 1-d] || [p, 1-p])`` per example from ``log p``, ``log (1-p)``; shape (N,)."""
    d = desired.clamp(1e-6, 1 - 1e-6)
    return d * (d.log() - log_p) + (1 - d) * ((1 - d).log() - log_q)


class ExaggerationTrainer(Trainer):
    """Trains :class:`ExaggerationGenerator` so that ``f``'s posterior of ``G(x, c)`` is in bin c.

    Per step, with a batch ``x`` (re-balanced: ``positive_share`` of images of the positive
    class), their own bins ``c_x = bin(p(x))`` and uniform random desired bins ``c_t``:

    * discriminator (hinge): ``relu(1 - D(x, c_x^T)) + relu(1 + D(G(x, c_t), c_t))`` (the
      last critic step reuses the generator step's ``G(x, c_t)``, detached);
    * generator: ``- lambda_gan D(G(x, c_t), c_t) + lambda_cls KL(q_t || f(G(x, c_t)))
      + lambda_cyc |x - G(G(x, c_t), c_x)|_1 + lambda_rec |x - G(x, c_x)|_1`` where ``q_t`` is
      the centre of bin ``c_t`` (``f``'s posterior at ``cls_temperature``, default 1), plus
      ``lambda_aux KL(q_t || f_aux(G(x, c_t)))`` with an auxiliary classifier ``f_aux`` (its
      posterior at ``aux_temperature``),
      ``lambda_l1 |G(x, c_t) - x|_1``, ``lambda_step |G(x, c_t) - G(x, c_n)|^2`` (``c_n`` a
      neighbouring bin of ``c_t``) and ``- lambda_real u(G(x, c_t))`` (with
      ``lambda_real > 0`` the critic loss adds
      ``relu(1 - u(x)) + relu(1 + u(G(x, c_t)))``, ``u`` its unconditional score). ``c_x^T``
      is the bin of the posterior at ``real_temperature`` (``c_x`` at the default 1). Gradients
      flow through the frozen classifier ``f`` (and ``f_aux``; their parameters get none and
      they stay in eval mode; they are restored exactly afterwards).

    Re-balancing matters: the classifier's own posteriors put almost every training image in the
    first or the last bin, so the desired bins are drawn uniformly instead of from the data.
    Validation (fixed images, all bins) measures ``r`` (Pearson of desired vs achieved
    posterior), ``mae``, ``identity`` (mean ``|G(x, c_x) - x|``) and ``monotone`` (share of
    images whose achieved posterior never decreases along the bins by more than 0.02);
    ``score = r - mae - identity`` (with ``f_aux``: plus ``aux_r - aux_mae``, its r and MAE)
    picks the generator kept by :meth:`best_state`.

    Validation and export use :meth:`recalibrated`: a copy of the generator whose batch-norm
    statistics are re-estimated as exact averages over batches composed as in training. The
    running averages (momentum 0.1) lag behind the fast-moving weights; on digits at step 900
    re-estimating them moved validation r from 0.67 to 0.74 and identity L1 from 0.040 to 0.030.

    Args:
        generator (ExaggerationGenerator): the model being trained.
        classifier (nn.Module or callable): pixel-space classifier ``(N, C, H, W) -> (N, K)``.
        images (Tensor): training images (N, C, H, W), float in [0, 1] or ``uint8`` (0..255:
            held so on the device where they fit, ``DeviceImages``; a quarter of float32's
            memory; batches become float).
        labels (Tensor): their classes (N,), used for re-balancing only.
        val_images (Tensor, optional): validation images for keep-best (float or ``uint8``).
        config (ExaggerationTrainConfig, optional): loss weights and optimiser settings.
        discriminator (ExaggerationDiscriminator, optional): built from ``generator.config``.
        aux_classifier (nn.Module, optional): a second frozen classifier with the same classes,
            required when ``config.lambda_aux > 0`` (e.g. zoo ``digits-cnn-robust``); it must be
            on the training device.
        **trainer_kwargs: ``seed``, ``checkpoint_path``, ``checkpoint_every``,
            ``validate_every``, ``log_every``, ``log``, ``device`` (default: the images';
            images and modules move there, the classifier must be there), ``amp`` of
            :class:`Trainer`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from captum_cf.generative import (ExaggerationConfig, ExaggerationGenerator,
        ...                                   ExaggerationTrainConfig, ExaggerationTrainer)
        >>> cfg = ExaggerationConfig(image_size=8, base_channels=4, critic_channels=4,
        ...                          positive_class=1, num_classes=2)
        >>> clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        >>> x, y = torch.rand(8, 1, 8, 8), torch.tensor([0, 1] * 4)
        >>> t = ExaggerationTrainer(ExaggerationGenerator(cfg), clf, x, y,
        ...                         config=ExaggerationTrainConfig(batch_size=4))
        >>> len(t.fit(2)) >= 0
        True
    """

    def __init__(
        self,
        generator: ExaggerationGenerator,
        classifier: nn.Module | Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        val_images: Tensor | None = None,
        config: ExaggerationTrainConfig | None = None,
        discriminator: ExaggerationDiscriminator | None = None,
        aux_classifier: nn.Module | Callable[[Tensor], Tensor] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        self.config = cfg = config or ExaggerationTrainConfig()
        if cfg.lambda_aux > 0 and aux_classifier is None:
            raise ValueError("config.lambda_aux > 0 needs an aux_classifier")
        gcfg = generator.config
        check_generator_images(generator, images, "images")
        device = torch.device(trainer_kwargs.pop("device", None) or images.device)
        images = DeviceImages(images, device)
        labels = check_target(labels, images.shape[0], gcfg.num_classes, name="labels")
        check_frozen_classifier(classifier, images, "classifier", gcfg.num_classes)
        check_frozen_classifier(aux_classifier, images, "aux_classifier", gcfg.num_classes)
        if not 0.0 <= cfg.positive_share <= 1.0:
            raise ValueError(f"positive_share must lie in [0, 1], got {cfg.positive_share}")
        positive = labels == gcfg.positive_class
        if not positive.any() or positive.all():
            raise ValueError(f"labels must contain the positive class {gcfg.positive_class} "
                             "and at least one other class")
        self.generator, self.classifier, self.images = generator, classifier, images
        self.aux_classifier = aux_classifier
        self.discriminator = discriminator or ExaggerationDiscriminator(gcfg)
        optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=cfg.lr_generator,
                                          betas=cfg.betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(),
                                              lr=cfg.lr_critic, betas=cfg.betas),
        }
        super().__init__(
            {"generator": generator, "discriminator": self.discriminator}, optimizers,
            keep_best=("generator",) if val_images is not None else (), device=device,
            **trainer_kwargs,
        )
        # index bookkeeping on the CPU next to the CPU generator; indices move once per batch
        positive = positive.cpu()
        self._pos_idx = positive.nonzero().squeeze(1)
        self._neg_idx = (~positive).nonzero().squeeze(1)
        logits = self._logits(images)  # one pass over the training images for both binnings
        self._bins = self._own_bins(logits)
        # the critic's bins of the real images (the classifier's own at temperature 1)
        self._real_bins = (self._bins if cfg.real_temperature == 1
                           else self._own_bins(logits, cfg.real_temperature))
        self._centers = bin_centers(gcfg.num_bins).to(images.device)
        self._val = self._validation_set(val_images)

    @torch.no_grad()
    def _logits(self, images: Tensor) -> Tensor:
        """The frozen classifier's logits of ``images``, 512 at a time, (N, classes)."""
        with frozen(self.classifier):
            return torch.cat([self.classifier(unit_images(images[i : i + 512]))
                              for i in range(0, images.shape[0], 512)])

    def _own_bins(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """Bins of ``softmax(logits / temperature)[positive]``, (N,) long."""
        log_p, _ = positive_posterior(logits, self.generator.config.positive_class, temperature)
        return posterior_to_bin(log_p.exp(), self.generator.config.num_bins)

    def _walk_kl(self, logits: Tensor, c_t: Tensor, temperature: float) -> Tensor:
        """Mean ``KL(q_t || softmax(logits / temperature)[positive])`` over the batch."""
        log_p, log_q = positive_posterior(logits, self.generator.config.positive_class,
                                          temperature)
        return binary_kl(self._centers[c_t], log_p, log_q).mean()

    def _validation_set(self, images: Tensor | None) -> Tensor | None:
        if images is None:
            return None
        check_generator_images(self.generator, images, "val_images")
        pick = self.validation_pick(images.shape[0], self.config.val_images)
        # validation runs where training runs
        return unit_images(images[pick].to(self.images.device))

    def training_context(self) -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(frozen(self.classifier))
        if self.aux_classifier is not None:
            stack.enter_context(frozen(self.aux_classifier))
        return stack

    def _batch(self, rng: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(x, c_x, c_t, c_x^T)``: images, their own bins, desired bins, the critic's bins."""
        rng = rng or self.rng
        bs, share = self.config.batch_size, self.config.positive_share
        n_pos = int(round(bs * share))
        pos = self._pos_idx[torch.randint(0, len(self._pos_idx), (n_pos,), generator=rng)]
        neg = self._neg_idx[torch.randint(0, len(self._neg_idx), (bs - n_pos,), generator=rng)]
        target = torch.randint(0, self.generator.config.num_bins, (bs,), generator=rng)
        device = self.images.device
        idx = torch.cat([pos, neg])
        on_device = idx.to(device)
        return (unit_images(self.images[idx]), self._bins[on_device], target.to(device),
                self._real_bins[on_device])

    def train_step(self) -> dict[str, float]:
        losses: dict[str, float] = {}
        for _ in range(self.config.critic_steps - 1):
            x, c_x, c_t, c_real = self._batch()
            with torch.no_grad(), self.autocast():
                fake = self.generator(x, c_t).float()
            losses.update(self._critic_step(x, c_real, fake, c_t))
        # the last critic step and the generator step share one generator pass
        x, c_x, c_t, c_real = self._batch()
        n = x.shape[0]
        codes = self._pass_bins(c_t, c_x)
        with self.autocast():
            out = self.generator(torch.cat([x] * len(codes)), torch.cat(codes)).float()
        fake, same = out[:n], out[n : 2 * n]
        near = out[2 * n :] if len(codes) == 3 else None
        losses.update(self._critic_step(x, c_real, fake.detach(), c_t))
        losses.update(self._generator_step(x, c_x, c_t, fake, same, near))
        return losses

    def _pass_bins(self, c_t: Tensor, c_x: Tensor,
                   rng: torch.Generator | None = None) -> list[Tensor]:
        """The bins of one training pass of the generator, one part per copy of the batch:
        desired, own and, with ``lambda_step > 0``, neighbours of the desired bins (drawn from
        ``rng``, default the trainer's). Training and the batch-norm re-estimation both use it,
        so their batches are composed alike."""
        parts = [c_t, c_x]
        if self.config.lambda_step > 0:  # (no extra draw or pass when off: runs stay as before)
            parts.append(self._neighbour_bins(c_t, rng))
        return parts

    def _neighbour_bins(self, bins: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """``bins +- 1`` (sign drawn from ``rng``, default the trainer's), reflected into range."""
        sign = torch.randint(0, 2, bins.shape, generator=rng or self.rng).to(bins.device) * 2 - 1
        near = bins + sign
        last = self.generator.config.num_bins - 1
        return torch.where(near < 0, 1, torch.where(near > last, last - 1, near))

    def _critic_step(self, x: Tensor, c_x: Tensor, fake: Tensor, c_t: Tensor) -> dict[str, float]:
        with self.autocast():
            real_c, real_u = self.discriminator.scores(x, c_x)
            fake_c, fake_u = self.discriminator.scores(fake, c_t)
            loss = hinge_critic_loss(real_c, fake_c)
            if self.config.lambda_real > 0:
                loss = loss + hinge_critic_loss(real_u, fake_u)
            loss = loss.float()
        opt = self.optimizers["discriminator"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients("discriminator")
        opt.step()
        return {"d_hinge": float(loss.detach())}

    def _generator_step(self, x: Tensor, c_x: Tensor, c_t: Tensor, fake: Tensor,
                        same: Tensor, near: Tensor | None = None) -> dict[str, float]:
        cfg = self.config
        with self.autocast():
            score, unconditional = self.discriminator.scores(fake, c_t)
            gan = hinge_generator_loss(score).float()
            real = hinge_generator_loss(unconditional).float() if cfg.lambda_real > 0 else None
        # the frozen classifier, whose gradients steer the generator, runs in float32
        kl = self._walk_kl(self.classifier(fake), c_t, cfg.cls_temperature)
        aux = None
        if self.aux_classifier is not None and cfg.lambda_aux > 0:
            aux = self._walk_kl(self.aux_classifier(fake), c_t, cfg.aux_temperature)
        with self.autocast():  # (after the classifier: the order of the original graph)
            back = self.generator(fake, c_x).float()
        cyc = (back - x).abs().mean()
        rec = (same - x).abs().mean()
        loss = (cfg.lambda_gan * gan + cfg.lambda_cls * kl + cfg.lambda_cyc * cyc
                + cfg.lambda_rec * rec)
        if aux is not None:
            loss = loss + cfg.lambda_aux * aux
        l1 = (fake - x).abs().mean() if cfg.lambda_l1 > 0 else None
        if l1 is not None:
            loss = loss + cfg.lambda_l1 * l1
        if real is not None:
            loss = loss + cfg.lambda_real * real
        step = (fake - near).square().mean() if near is not None else None
        if step is not None:
            loss = loss + cfg.lambda_step * step
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        self.reduce_gradients("generator")
        opt.step()
        out = {"g_gan": float(gan.detach()), "g_kl": float(kl.detach()),
               "g_cyc": float(cyc.detach()), "g_rec": float(rec.detach())}
        if aux is not None:
            out["g_aux"] = float(aux.detach())
        if l1 is not None:
            out["g_l1"] = float(l1.detach())
        if real is not None:
            out["g_real"] = float(real.detach())
        if step is not None:
            out["g_step"] = float(step.detach())
        return out

    def validate(self) -> dict[str, float]:
        if self._val is None:
            return {}
        generator = self.recalibrated()
        metrics = evaluate_exaggeration(generator, self.classifier, self._val)
        metrics["score"] = metrics["r"] - metrics["mae"] - metrics["identity"]
        if self.aux_classifier is not None:
            aux = evaluate_exaggeration(generator, self.aux_classifier, self._val)
            metrics.update(aux_r=aux["r"], aux_mae=aux["mae"])
            metrics["score"] += aux["r"] - aux["mae"]
        return metrics

    @torch.no_grad()
    def recalibrated(self, state: dict[str, Tensor] | None = None) -> ExaggerationGenerator:
        """A copy of the generator (weights ``state``, default current) with exact BN statistics.

        Runs ``recalibration_batches`` batches composed as in training (re-balanced images, each
        twice: with uniform random bins and with their own bins; a third time with neighbouring
        bins when ``lambda_step > 0``) in train mode with cumulative
        averaging, from a generator seeded with :attr:`seed`: deterministic, no global RNG used.

        Returns:
            ExaggerationGenerator: in eval mode; the trainer's generator is not touched.
        """
        generator = copy.deepcopy(self.generator)
        if state is not None:
            generator.load_state_dict(state)
        if self.config.recalibration_batches <= 0:
            return generator.eval()
        norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        rng = torch.Generator().manual_seed(self.seed)
        generator.train()
        for _ in range(self.config.recalibration_batches):
            x, c_x, c_t, _ = self._batch(rng)
            codes = self._pass_bins(c_t, c_x, rng)
            generator(torch.cat([x] * len(codes)), torch.cat(codes))
        for m in norms:
            m.momentum = 0.1
        return generator.eval()

    def extra_state(self) -> dict[str, Any]:
        return {"generator_config": self.generator.config.to_dict(),
                "train_config": self.config.to_dict()}


@torch.no_grad()
def evaluate_exaggeration(
    generator: ExaggerationGenerator,
    classifier: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor | DeviceImages,
    batch_size: int = 128,
    tolerance: float = 0.02,
) -> dict[str, float]:
    """Compatibility of desired and achieved posteriors over all bins (the paper's main plot).

    Args:
        generator (ExaggerationGenerator): in the mode it should be measured in (eval).
        classifier (callable): pixel-space classifier, used frozen.
        images (Tensor or DeviceImages): shape (N, C, H, W), float in [0, 1] or ``uint8``
            (0..255), read ``batch_size`` at a time (a ``DeviceImages`` moves each batch to its
            device).
        tolerance (float): a series counts as monotone when no step lowers the achieved
            posterior by more than this.

    Returns:
        dict: ``r`` (Pearson of desired bin centres vs achieved posteriors over all N x B
        pairs), ``mae`` (mean absolute difference), ``identity`` (mean ``|G(x, c_x) - x|`` per
        pixel, ``c_x`` the bin of the classifier's own posterior), ``monotone`` (share of
        images with a monotone series).
    """
    cfg = generator.config
    achieved, identity = [], 0.0
    with frozen(classifier):
        for i in range(0, images.shape[0], batch_size):
            x = unit_images(images[i : i + batch_size])
            n = x.shape[0]
            log_p, _ = positive_posterior(classifier(x), cfg.positive_class)
            own = generator(x, posterior_to_bin(log_p.exp(), cfg.num_bins))
            identity += float((own - x).abs().flatten(1).mean(1).sum())
            bins = torch.arange(cfg.num_bins, device=x.device).repeat_interleave(n)
            series = generator(x.repeat(cfg.num_bins, 1, 1, 1), bins)
            log_p, _ = positive_posterior(classifier(series), cfg.positive_class)
            achieved.append(log_p.exp().view(cfg.num_bins, n).T)  # (n, B)
    achieved_t = torch.cat(achieved)  # (N, B)
    desired = bin_centers(cfg.num_bins).to(achieved_t).expand_as(achieved_t)
    r = torch.corrcoef(torch.stack([desired.flatten(), achieved_t.flatten()]))[0, 1]
    monotone = (achieved_t.diff(dim=1) >= -tolerance).all(dim=1).float().mean()
    return {"r": float(r), "mae": float((desired - achieved_t).abs().mean()),
            "identity": identity / images.shape[0], "monotone": float(monotone)}
