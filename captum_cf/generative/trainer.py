"""A small training loop that GAN trainers share: progress, loss log, checkpoints, keep-best.

Subclasses implement :meth:`Trainer.train_step` (one optimisation step, returns its losses) and
optionally :meth:`Trainer.validate` (returns metrics with a ``"score"``, higher is better). The
base class owns the step counter, the loss history, periodic checkpoints written with
:func:`captum_cf._training.save_checkpoint`, exact resume and a copy of the best weights.

Exact resume: all randomness of a step must come from ``self.rng`` (the data/augmentation
generator) or torch's global RNG; both are in the checkpoint, together with every module and
optimiser state, so ``fit(200)`` equals ``fit(100)``, save, load in a new process, ``fit(200)``.
Validation runs with the RNG states saved and restored, so it never shifts training randomness.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from captum_cf._training import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)

__all__ = ["Trainer"]


class Trainer(abc.ABC):
    """Base training loop.

    Args:
        modules (dict): name -> module being trained (saved in checkpoints).
        optimizers (dict): name -> optimiser (saved in checkpoints).
        seed (int): seeds torch, Python and ``self.rng``.
        checkpoint_path (str, optional): where :meth:`fit` writes checkpoints.
        checkpoint_every (int): steps between checkpoints (and one at the end of :meth:`fit`).
        validate_every (int): steps between validations; 0 disables validation and keep-best.
        log_every (int): steps between entries of :attr:`history` (mean losses over the window).
        keep_best (tuple of str): names of modules whose weights are copied at the best score.
        log (callable, optional): receives one line per history entry (e.g. ``print``).

    Attributes:
        step (int): optimisation steps done.
        history (list of dict): ``{"step": s, <loss>: mean, ...}`` and validation entries
            ``{"step": s, "val_<metric>": ...}``.
        best (dict or None): ``{"step", "score", "metrics", "state"}`` of the best validation.
    """

    def __init__(
        self,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        *,
        seed: int = 0,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        validate_every: int = 0,
        log_every: int = 10,
        keep_best: tuple[str, ...] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if validate_every < 0:
            raise ValueError(f"validate_every must be >= 0, got {validate_every}")
        unknown = [k for k in keep_best if k not in modules]
        if unknown:
            raise ValueError(f"keep_best names unknown modules {unknown}; modules: {list(modules)}")
        self.modules = modules
        self.optimizers = optimizers
        self.seed = seed
        self.rng = seed_everything(seed)
        self.checkpoint_path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        self.checkpoint_every = checkpoint_every
        self.validate_every = validate_every
        self.log_every = log_every
        self.keep_best = tuple(keep_best)
        self.log = log
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self._window: dict[str, list[float]] = {}

    @abc.abstractmethod
    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns its losses as floats."""

    def validate(self) -> dict[str, float]:
        """Validation metrics; include ``"score"`` (higher is better) to enable keep-best."""
        return {}

    def validation_pick(self, available: int, wanted: int) -> torch.Tensor:
        """Indices of a fixed subset of ``available`` validation rows, seeded by ``seed``.

        The same rows on every run and every resume, so validation scores stay comparable.
        """
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randperm(available, generator=gen)[: min(wanted, available)]

    def training_context(self) -> contextlib.AbstractContextManager:
        """Context entered around the whole loop (e.g. freezing a classifier in the loop)."""
        return contextlib.nullcontext()

    def fit(self, steps: int, show_progress: bool = False) -> list[dict[str, float]]:
        """Train until :attr:`step` reaches ``steps``.

        ``steps`` is a total, so a resumed run stops where the uninterrupted one would.

        Returns:
            list of dict: :attr:`history`.
        """
        if steps < self.step:
            raise ValueError(f"steps ({steps}) is below the steps already done ({self.step})")
        bar = tqdm(
            total=steps, initial=self.step, disable=not show_progress, desc=type(self).__name__
        )
        with self.training_context(), _train_mode(self.modules.values()):
            while self.step < steps:
                losses = self.train_step()
                self.step += 1
                bar.update(1)
                self._record(losses, bar)
                if self.validate_every and self.step % self.validate_every == 0:
                    self._run_validation()
                if self.checkpoint_path and (
                    self.step % self.checkpoint_every == 0 or self.step == steps
                ):
                    self.save(self.checkpoint_path)
        bar.close()
        return self.history

    def _record(self, losses: dict[str, float], bar: Any) -> None:
        for key, value in losses.items():
            self._window.setdefault(key, []).append(float(value))
        if self.step % self.log_every == 0:
            entry = {"step": self.step, **{k: sum(v) / len(v) for k, v in self._window.items()}}
            self._window = {}
            self.history.append(entry)
            bar.set_postfix({k: f"{v:.3g}" for k, v in entry.items() if k != "step"})
            if self.log:
                self.log(_format(entry))

    def _run_validation(self) -> None:
        saved = rng_state(self.rng)
        modes = [(m, m.training) for module in self.modules.values() for m in module.modules()]
        try:
            with torch.no_grad():
                for module in self.modules.values():
                    module.eval()
                metrics = self.validate()
        finally:
            for m, mode in modes:
                m.training = mode
            set_rng_state(saved, self.rng)
        if not metrics:
            return
        entry = {"step": self.step, **{f"val_{k}": float(v) for k, v in metrics.items()}}
        self.history.append(entry)
        if self.log:
            self.log(_format(entry))
        score = metrics.get("score")
        if (
            self.keep_best
            and score is not None
            and (self.best is None or score > self.best["score"])
        ):
            state = {k: copy.deepcopy(self.modules[k].state_dict()) for k in self.keep_best}
            self.best = {
                "step": self.step,
                "score": float(score),
                "metrics": dict(metrics),
                "state": state,
            }

    def best_state(self, name: str) -> dict[str, torch.Tensor]:
        """Weights of module ``name`` at the best validation score (current weights if none)."""
        if self.best is not None and name in self.best["state"]:
            return self.best["state"][name]
        return self.modules[name].state_dict()

    def extra_state(self) -> dict[str, Any]:
        """Subclass hook: plain data (configs) to store in checkpoints."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, RNGs, history, best."""
        return {
            "step": self.step,
            "seed": self.seed,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": rng_state(self.rng),
            "history": list(self.history),
            "window": {k: list(v) for k, v in self._window.items()},
            "best": self.best,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (modules and optimisers must match by name)."""
        missing = set(self.modules) ^ set(state["modules"])
        if missing:
            raise ValueError(
                f"checkpoint modules {sorted(state['modules'])} do not match {sorted(self.modules)}"
            )
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        set_rng_state(state["rng"], self.rng)
        self.step = int(state["step"])
        self.history = list(state["history"])
        self._window = {k: list(v) for k, v in state["window"].items()}
        self.best = state["best"]

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically."""
        save_checkpoint(path, {"kind": type(self).__name__, "trainer": self.state_dict()})

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save` (by this trainer class)."""
        state = load_checkpoint(path)
        if state.get("kind") != type(self).__name__:
            raise ValueError(
                f"{path} is a {state.get('kind')!r} checkpoint, not {type(self).__name__!r}"
            )
        self.load_state_dict(state["trainer"])


@contextlib.contextmanager
def _train_mode(modules: Any) -> Iterator[None]:
    modules = list(modules)
    modes = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.train()
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _format(entry: dict[str, float]) -> str:
    parts = [f"step {int(entry['step'])}"]
    parts += [f"{k} {v:.4g}" for k, v in entry.items() if k != "step" and not math.isnan(v)]
    return " | ".join(parts)
