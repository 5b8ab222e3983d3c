"""The one training loop of captum_cf: every trainer supplies its step and its state.

:class:`Trainer` owns what every trainer needs and what is easy to get wrong five times: the
step counter, device placement, ``torchrun`` (``DistributedDataParallel`` or gradient
averaging, per-rank randomness, rank 0 alone writes and logs), bfloat16 autocast on CUDA,
checkpoint cadence, exact resume, keep-best validation and progress (tqdm bar, loss history,
log lines). A trainer subclasses it and implements :meth:`Trainer.train_step` (one optimisation
step, returns its losses); it adds its own state with :meth:`Trainer.extra_state` /
:meth:`Trainer.load_extra_state` (shared by all processes) and :meth:`Trainer.rank_state` /
:meth:`Trainer.load_rank_state` (per process, e.g. its batch order).

Subclasses in captum_cf: the zoo classifier (:mod:`captum_cf.zoo.train`), adversarial training
(:mod:`captum_cf.robust.adversarial_training`), the learned inpainter
(:mod:`captum_cf.inpainters._fit`) and the GAN trainers (:mod:`captum_cf.generative`).

Exact resume: all randomness of a step must come from ``self.rng`` (or the trainer's named
``generators``) or torch's global RNG; all of them are in the checkpoint, together with every
module, optimiser and scheduler state, so ``fit(200)`` equals ``fit(100)``, save, load in a new
process, ``fit(200)``. Validation runs with the RNG states saved and restored, so it never shifts
training randomness. Under ``torchrun`` the checkpoint holds every rank's RNG and batch-order
state: a run resumes exactly with the same number of processes.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import copy
import functools
import inspect
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from captum_cf.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from captum_cf.training.data import unit_images
from captum_cf.training.distributed import (
    DistributedContext,
    autocast,
    check_amp,
    distributed_context,
    rank_seed,
)

__all__ = ["Trainer", "TrainingInterrupted", "IndexStream", "check_frozen_classifier",
           "check_label_agreement", "records_run_options"]

#: arguments of a training function that a resumed run may change: how long it trains, where
#: it runs and writes, how it reads and shows; every other argument defines the run
RESUMABLE_OPTIONS = frozenset({
    "out", "steps", "epochs", "checkpoint", "checkpoint_every", "resume", "show_progress", "log",
    "device", "workers", "cache_dir", "test_images",
})
_RUN_OPTIONS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "captum_cf_run_options", default=None)


#: how an option's text marks the digest of the file or folder it names
_CONTENT = " [content "


def _content(path: str) -> str:
    """A digest of a file's bytes, or of the image files under a folder (relative names and
    sizes; not modification times, which a job copying its data to local scratch at each start
    changes): a classifier retrained under the same name, or a folder whose images were
    replaced or added, is another run."""
    import hashlib

    from captum_cf._weights import file_digest
    from captum_cf.datasets.folder import IMAGE_EXTENSIONS

    if os.path.isfile(path):
        return file_digest(path)[:12]
    h = hashlib.sha1()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                st = os.stat(os.path.join(root, name))
                h.update(f"{os.path.relpath(os.path.join(root, name), path)}\0{st.st_size}"
                         "\n".encode())
    return h.hexdigest()[:12]


def _option_text(value: Any) -> str:
    """An argument as the checkpoint keeps it: files and folders as absolute paths with a digest
    of their content (:func:`_content`), tensors by shape and dtype, anything else by
    ``repr``."""
    if isinstance(value, (str, os.PathLike)) and os.path.exists(value):
        try:
            return f"{os.path.abspath(value)}{_CONTENT}{_content(os.fspath(value))}]"
        except OSError:  # unreadable here: the path alone
            return os.path.abspath(value)
    if isinstance(value, Tensor):
        return f"tensor{tuple(value.shape)} {value.dtype}"
    return repr(value)


def records_run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a training function: while it runs, a :class:`Trainer` it builds keeps the
    function's arguments (but :data:`RESUMABLE_OPTIONS`) in its checkpoints, and a resume with
    other values is refused naming them (a checkpoint reused for another folder, seed, batch
    size or classifier continued it without a word)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        options = {k: _option_text(v) for k, v in bound.arguments.items()
                   if k not in RESUMABLE_OPTIONS and not k.endswith("_overrides")}
        for k, v in bound.arguments.items():  # {field: value} flags: one option each
            if k.endswith("_overrides"):
                options.update({name: _option_text(x) for name, x in (v or {}).items()})
        token = _RUN_OPTIONS.set(options)
        try:
            return fn(*args, **kwargs)
        finally:
            _RUN_OPTIONS.reset(token)

    return wrapper


class IndexStream:
    """Endless shuffled batches of indices into ``range(n)``, resumable exactly.

    Single process: each epoch is ``torch.randperm(n, generator=generator)`` cut into batches
    (the last partial batch dropped when ``drop_last`` and ``n >= batch_size``), drawn when the
    previous epoch is used up, exactly as :func:`~captum_cf.training.checkpoint.cycle_batches`.
    Under ``torchrun`` the epoch order comes from a :class:`~torch.utils.data.DistributedSampler`
    (seeded with ``seed``, ``set_epoch`` per epoch): each process reads its own shard.

    Args:
        n (int): number of examples.
        batch_size (int): indices per batch (per process).
        generator (torch.Generator): CPU generator of the single-process permutations.
        drop_last (bool): drop an epoch's last partial batch.
        seed (int): seed of the distributed sampler.
        context (DistributedContext, optional): the process's rank and world size.

    Example:
        >>> stream = IndexStream(5, 2, torch.Generator().manual_seed(0))
        >>> [len(next(stream)) for _ in range(3)], stream.batches_per_epoch
        ([2, 2, 2], 2)
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, *,
                 drop_last: bool = True, seed: int = 0,
                 context: DistributedContext | None = None) -> None:
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need n > 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.drop_last, self.seed = drop_last, seed
        self.context = context or DistributedContext()
        self.epoch = -1
        self._order: Tensor | None = None
        self._pos = 0

    @property
    def share(self) -> int:
        """Indices per epoch read by this process."""
        w = self.context.world_size
        return self.n if w == 1 else math.ceil(self.n / w)

    @property
    def _stop(self) -> int:
        m, bs = self.share, self.batch_size
        return m - m % bs if (self.drop_last and m >= bs) else m

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one epoch of this process."""
        return math.ceil(self._stop / self.batch_size)

    def __iter__(self) -> IndexStream:
        return self

    def __next__(self) -> Tensor:
        if self._order is None or self._pos >= self._stop:
            self.epoch += 1
            if self.context.enabled:
                sampler = DistributedSampler(range(self.n), num_replicas=self.context.world_size,
                                             rank=self.context.rank, shuffle=True, seed=self.seed)
                sampler.set_epoch(self.epoch)
                self._order = torch.tensor(list(sampler), dtype=torch.long)
            else:
                self._order = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position and the current epoch's order."""
        return {"epoch": self.epoch, "pos": self._pos, "order": self._order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where :meth:`state_dict` was taken (the generator is restored separately)."""
        self.epoch, self._pos, self._order = int(state["epoch"]), int(state["pos"]), state["order"]


class Trainer(abc.ABC):
    """Base training loop (see the module docstring).

    Args:
        modules (dict): name -> module being trained (moved to ``device``, saved in checkpoints).
        optimizers (dict): name -> optimiser (saved in checkpoints).
        seed (int): seeds ``self.rng`` (and torch's and Python's global RNGs when
            ``seed_global``); under ``torchrun`` rank r > 0 gets its own seed derived from it.
        checkpoint_path (str, optional): where :meth:`fit` writes checkpoints (rank 0 only).
        checkpoint_every (int): steps between checkpoints (and one at the end of :meth:`fit`).
        validate_every (int): steps between validations; 0 disables validation and keep-best.
        log_every (int): steps between entries of :attr:`history` (mean losses over the window).
        keep_best (tuple of str): names of modules whose weights are copied at the best score.
        log (callable, optional): receives one line per history entry (e.g. ``print``).
        schedulers (dict, optional): name -> learning-rate scheduler (saved in checkpoints; the
            trainer steps them in :meth:`train_step`).
        generators (dict, optional): further named CPU generators saved per process.
        seed_global (bool): seed the global RNGs (False: the trainer uses only its generators).
        device (str or torch.device, optional): where the modules train (default: where the
            first module's parameters are).
        amp (str, optional): ``"bf16"``: :meth:`autocast` runs in bfloat16 (CUDA only).
        ddp (tuple of str): modules wrapped in ``DistributedDataParallel`` under ``torchrun``
            (use :meth:`forward_module` for their training forward). Others are kept in sync
            by :meth:`reduce_gradients` (gradient all-reduce), for steps a DDP wrapper cannot
            carry (a double backward, several forward passes per optimiser step).
        log_at_end (bool): also close a history window at the last step of :meth:`fit`.
        desc (str, optional): progress-bar label (default: the class name).

    Attributes:
        step (int): optimisation steps done.
        history (list of dict): ``{"step": s, <loss>: mean, ...}`` and validation entries
            ``{"step": s, "val_<metric>": ...}``.
        best (dict or None): ``{"step", "score", "metrics", "state"}`` of the best validation.
        dist (DistributedContext): rank and world size of this process.
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
        schedulers: dict[str, Any] | None = None,
        generators: dict[str, torch.Generator] | None = None,
        seed_global: bool = True,
        device: str | torch.device | None = None,
        amp: str | None = None,
        ddp: tuple[str, ...] = (),
        log_at_end: bool = False,
        desc: str | None = None,
    ) -> None:
        for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if validate_every < 0:
            raise ValueError(f"validate_every must be >= 0, got {validate_every}")
        unknown = [k for k in (*keep_best, *ddp) if k not in modules]
        if unknown:
            raise ValueError(f"keep_best/ddp name unknown modules {unknown}; "
                             f"modules: {list(modules)}")
        self.device = torch.device(device) if device is not None else _module_device(modules)
        self.amp = check_amp(amp, self.device)
        self.dist = distributed_context(self.device)
        for module in modules.values():
            module.to(self.device)
        self.dist.broadcast_modules(modules.values())
        self.modules = modules
        self._wrapped: dict[str, nn.Module] = {}
        for name in ddp:
            self.wrap_ddp(name, modules[name])
        self.optimizers = optimizers
        self.schedulers = dict(schedulers or {})
        self.seed = seed
        self.seed_global = seed_global
        own = rank_seed(seed, self.dist)
        self.rng = seed_everything(own) if seed_global else torch.Generator().manual_seed(own)
        self.generators = dict(generators or {})
        self.checkpoint_path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        self.checkpoint_every = checkpoint_every
        self.validate_every = validate_every
        self.log_every = log_every
        self.keep_best = tuple(keep_best)
        self.log = log if self.dist.is_main else None
        self.log_at_end = log_at_end
        self.desc = desc or type(self).__name__
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self._window: dict[str, list[float]] = {}
        self._diverged = False  # a loss was nan or inf (warned once)
        #: the arguments of the training function that built this trainer (None outside one):
        #: kept in checkpoints, compared on resume (:func:`records_run_options`)
        self.run_options = _RUN_OPTIONS.get()

    # --- what a trainer supplies ---------------------------------------------------------------

    @abc.abstractmethod
    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns its losses as floats."""

    def validate(self) -> dict[str, float]:
        """Validation metrics; include ``"score"`` (higher is better) to enable keep-best."""
        return {}

    def training_context(self) -> contextlib.AbstractContextManager:
        """Context entered around the whole loop (e.g. freezing a classifier in the loop)."""
        return contextlib.nullcontext()

    def extra_state(self) -> dict[str, Any]:
        """Subclass hook: plain data (configs, loss logs) to store in checkpoints."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Subclass hook: restore what :meth:`extra_state` stored (default: nothing to do)."""
        return None

    def rank_state(self) -> dict[str, Any]:
        """Subclass hook: per-process state (e.g. an :class:`IndexStream`'s position)."""
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Subclass hook: restore what :meth:`rank_state` stored."""
        return None

    # --- helpers for train_step ----------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for the trainee's forward passes when ``amp="bf16"``, else a no-op.

        Keep a frozen classifier's forward pass (whose gradients steer the trainee) outside it.
        """
        return autocast(self.amp, self.device)

    def forward_module(self, name: str) -> nn.Module:
        """The module to call for a training forward pass (its DDP wrapper under torchrun)."""
        return self._wrapped.get(name, self.modules[name])

    def wrap_ddp(self, name: str, module: nn.Module) -> None:
        """Train module ``name`` through ``DistributedDataParallel(module)`` under torchrun.

        ``module`` holds ``self.modules[name]``'s parameters, e.g. an adapter whose ``forward``
        calls the method the step needs; :meth:`forward_module` then returns the wrapper.
        """
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._wrapped[name] = DistributedDataParallel(module, device_ids=ids)

    def reduce_gradients(self, *names: str) -> None:
        """Average the gradients of modules ``names`` over the processes (not DDP-wrapped ones).

        Call between ``backward()`` and the optimiser step; a no-op in single-process runs.
        """
        self.dist.average_gradients(self.modules[n] for n in names if n not in self._wrapped)

    def validation_pick(self, available: int, wanted: int) -> torch.Tensor:
        """Indices of a fixed subset of ``available`` validation rows, seeded by ``seed``.

        The same rows on every run and every resume, so validation scores stay comparable.
        """
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randperm(available, generator=gen)[: min(wanted, available)]

    # --- the loop ------------------------------------------------------------------------------

    def fit(self, steps: int, show_progress: bool = False) -> list[dict[str, float]]:
        """Train until :attr:`step` reaches ``steps``.

        ``steps`` is a total, so a resumed run stops where the uninterrupted one would.

        Ctrl-C (SIGINT) or SIGTERM (a scheduler preempting the job, ``torchrun`` stopping its
        workers) lets the current step finish, writes a checkpoint when the trainer has a
        ``checkpoint_path`` and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``):
        resuming from that checkpoint gives exactly the uninterrupted run's result. Under
        ``torchrun`` the processes agree after every step (a one-number all-reduce), so all of
        them stop after the same step even when only one was signalled. A second signal stops
        at once. (Only for signals with Python's default handler, in the main thread.)

        Returns:
            list of dict: :attr:`history`.

        Raises:
            TrainingInterrupted: after Ctrl-C, with the step reached and the checkpoint written.
        """
        if steps < self.step:
            raise ValueError(f"steps ({steps}) is below the steps already done ({self.step}) "
                             "by the checkpoint's run: give at least as many --steps (or "
                             "--epochs: the classifiers count steps of the epochs asked)")
        bar = tqdm(total=steps, initial=self.step, desc=self.desc,
                   disable=not (show_progress and self.dist.is_main))
        stop = _StopRequest()
        try:
            with stop, self.training_context(), _train_mode(self.modules.values()):
                while self.step < steps:
                    losses = self.train_step()
                    self.step += 1
                    bar.update(1)
                    self._record(losses, bar, final=self.log_at_end and self.step == steps)
                    if self.validate_every and self.step % self.validate_every == 0:
                        self._run_validation()
                    interrupted = self._any_process(stop.requested)
                    if self.checkpoint_path and (
                        self.step % self.checkpoint_every == 0 or self.step == steps
                        or interrupted
                    ):
                        self.save(self.checkpoint_path)
                    if interrupted and self.step < steps:
                        raise TrainingInterrupted(self.step, steps, self.checkpoint_path,
                                                  stop.signal)
        finally:
            bar.close()
        return self.history

    def _any_process(self, flag: bool) -> bool:
        """``flag`` of any process (a MAX all-reduce under torchrun, so that every process
        stops after the same step; on the CUDA device with nccl)."""
        if not self.dist.enabled:
            return flag
        import torch.distributed as dist

        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([int(flag)], device=on)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _record(self, losses: dict[str, float], bar: Any, final: bool = False) -> None:
        for key, value in losses.items():
            self._window.setdefault(key, []).append(float(value))
            if not math.isfinite(float(value)) and not self._diverged:
                self._diverged = True  # said once; the log lines show the nan/inf values
                warnings.warn(
                    f"training diverged: loss {key} is {float(value)} at step {self.step}; "
                    "what follows is not a trained model: lower the learning rates or the loss "
                    "weights and train again (keep-best keeps the best validated weights)",
                    RuntimeWarning, stacklevel=2,
                )
        if (self.step % self.log_every == 0 or final) and self._window:
            entry = {"step": self.step, **{k: sum(v) / len(v) for k, v in self._window.items()}}
            self._window = {}
            self.history.append(entry)
            bar.set_postfix({k: f"{v:.3g}" for k, v in entry.items() if k != "step"})
            if self.log:
                self.log(_format(entry))

    def _run_validation(self) -> None:
        if not self.dist.is_main:  # only rank 0 keeps (and writes) the best weights
            return
        saved = self._rng_snapshot()
        modes = [(m, m.training) for module in self.modules.values() for m in module.modules()]
        try:
            with torch.no_grad():
                for module in self.modules.values():
                    module.eval()
                metrics = self.validate()
        finally:
            for m, mode in modes:
                m.training = mode
            self._rng_restore(saved)
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

    # --- state and checkpoints -----------------------------------------------------------------

    def _rng_snapshot(self) -> dict[str, Any]:
        if self.seed_global:
            state = rng_state(self.rng)
        else:
            state = {"generator": self.rng.get_state()}
        state["named"] = {k: g.get_state() for k, g in self.generators.items()}
        return state

    def _rng_restore(self, state: dict[str, Any]) -> None:
        if self.seed_global:
            set_rng_state(state, self.rng)
        else:
            self.rng.set_state(state["generator"])
        for k, g in self.generators.items():
            g.set_state(state["named"][k])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, RNGs, history, best.

        Under ``torchrun`` every process must call it (it gathers the per-rank states).
        """
        ranks = self.dist.gather({"rng": self._rng_snapshot(), "own": self.rank_state()})
        return {
            "step": self.step,
            "seed": self.seed,
            "world_size": self.dist.world_size,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ranks": ranks,
            "history": list(self.history),
            "window": {k: list(v) for k, v in self._window.items()},
            "best": self.best,
            "extra": self.extra_state(),
            "options": self.run_options,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (modules and optimisers must match by name).

        Raises:
            ValueError: other module names, a checkpoint written by another number of
                processes (exact resume needs the same ``--nproc-per-node``), with another
                seed, or by a training function called with other options
                (:func:`records_run_options`).
        """
        missing = set(self.modules) ^ set(state["modules"])
        if missing:
            raise ValueError(
                f"checkpoint modules {sorted(state['modules'])} do not match {sorted(self.modules)}"
            )
        world = int(state.get("world_size", 1))
        if world != self.dist.world_size:
            raise ValueError(
                f"the checkpoint was written by {world} process(es) and this run has "
                f"{self.dist.world_size}: resume with the same number of processes "
                f"(torchrun --nproc-per-node {world})"
            )
        _check_same_run(state, self.seed, self.run_options)
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])
        own = state["ranks"][self.dist.rank]
        self._rng_restore(own["rng"])
        self.load_rank_state(own["own"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self._window = {k: list(v) for k, v in state["window"].items()}
        self.best = state["best"]
        self.load_extra_state(state["extra"])

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically (rank 0 writes; every process must call it)."""
        state = self.state_dict()
        if self.dist.is_main:
            save_checkpoint(path, {"kind": type(self).__name__, "trainer": state})
        self.dist.barrier()

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save` (by this trainer class)."""
        state = load_checkpoint(path)
        if state.get("kind") != type(self).__name__:
            raise ValueError(
                f"{path} is a {state.get('kind')!r} checkpoint, not {type(self).__name__!r}"
            )
        self.load_state_dict(state["trainer"])

    def resume_if_exists(self) -> bool:
        """Resume from :attr:`checkpoint_path` when that file exists; returns whether it did."""
        if self.checkpoint_path is None or not os.path.isfile(self.checkpoint_path):
            return False
        self.resume(self.checkpoint_path)
        if self.log:
            self.log(f"resumed {self.checkpoint_path} at step {self.step}")
        return True


def _same_option(old: str | None, new: str | None) -> bool:
    """Equal option texts; a checkpoint written before contents were digested compares paths."""
    if old is None or new is None or (_CONTENT in old) == (_CONTENT in new):
        return old == new
    return old.split(_CONTENT)[0] == new.split(_CONTENT)[0]


def _shown_option(text: str | None) -> str:
    if text is None or text == "None":
        return "not given (its default)"
    path, _, digest = text.partition(_CONTENT)
    return f"{path} (content {digest.rstrip(']')})" if digest else text


def _check_same_run(state: dict[str, Any], seed: int, options: dict[str, str] | None) -> None:
    """A checkpoint continues only the run that wrote it: same seed, same options."""
    old = state.get("options")
    differ = []
    if old is not None and options is not None:
        # options both runs know (an argument added or removed by another version: not
        # compared); a whole config's repr last, after the flags that changed it
        differ = [(k, old[k], options[k]) for k in sorted(set(old) & set(options),
                                                          key=lambda k: (k.endswith("config"), k))
                  if not _same_option(old[k], options[k])]
    if not differ and int(state.get("seed", seed)) != seed:
        differ = [("seed", repr(int(state["seed"])), repr(seed))]
    if differ:
        shown = "; ".join(f"--{k.replace('_', '-')} {_shown_option(a)} (this run: "
                          f"{_shown_option(b)})" for k, a, b in differ[:3])
        raise ValueError(
            f"the checkpoint was written by a run with other options: {shown}. A checkpoint "
            "continues only its own run: resume with its options, or start anew with another "
            "--checkpoint"
        )


def check_frozen_classifier(
    model: nn.Module | Callable[[Tensor], Tensor] | None,
    images: Tensor,
    name: str,
    num_classes: int | None = None,
    hint: str = "",
) -> None:
    """A trainer's frozen classifier must take its training images and return logits.

    One image goes through ``model`` in eval mode without gradients (the project's ``frozen``:
    its mode and ``requires_grad`` flags are restored, also after an exception), before any
    training step, so a classifier trained at another image size fails with a clear error
    instead of a matrix-size traceback in the first step.

    Args:
        model: the classifier (``None``: nothing to check).
        images (Tensor): training images, shape (N, C, H, W) (float or ``uint8``); the first
            one is used.
        name (str): how the error names the model, e.g. ``"aux_classifier"``.
        num_classes (int, optional): when given, the logits must have this many columns.
        hint (str): appended to the error when the model fails on the image (how to fix it).

    Raises:
        ValueError: naming ``name``, the image shape and the model's own error (first line),
            or the logits' shape when it is not (1, num_classes).

    Example:
        >>> check_frozen_classifier(nn.Linear(4, 2), torch.rand(3, 4), "classifier", 3)
        Traceback (most recent call last):
        ...
        ValueError: classifier must return (1, 3) logits for the generator's 3 classes; ...
    """
    if model is None:
        return
    from captum_cf._model_state import frozen
    from captum_cf._validation import check_logits

    x = unit_images(images[:1])
    try:
        with frozen(model), torch.no_grad():  # eval: no batch-norm statistics move
            out = model(x)
    except Exception as err:  # noqa: BLE001 (any failure: the model does not take these images)
        line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"{name} fails on the training images of shape {tuple(x.shape)} "
            f"({type(err).__name__}: {line}){'; ' + hint if hint else ''}"
        ) from err
    logits = check_logits(out, 1, name=name)
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(
            f"{name} must return (1, {num_classes}) logits for the generator's {num_classes} "
            f"classes; it returned {tuple(logits.shape)} for one image (the generator's classes "
            f"are the training data's, an image folder's one per class folder: the classifier "
            f"must have been trained on these {num_classes} classes)"
        )


#: images of the training set the label-agreement check classifies (a seeded sample)
AGREEMENT_SAMPLE = 256
_COUNTERFACTUAL_CLASSES = (
    "A folder's labels are the positions of its class folders sorted by name: if the classifier "
    "orders its classes otherwise or was trained on other classes, every counterfactual class is "
    "wrong (rename the folders to sort in the classifier's order)")


def check_label_agreement(
    model: nn.Module | Callable[[Tensor], Tensor],
    images: Any,
    labels: Tensor,
    device: torch.device,
    name: str = "classifier",
    class_names: Sequence[str] | None = None,
    sample: int = AGREEMENT_SAMPLE,
    batch_size: int = 64,
    images_name: str = "training images",
    consequence: str = _COUNTERFACTUAL_CLASSES,
) -> float:
    """Share of a seeded sample of the training images that ``model`` puts in their own
    (folder) class; warns when it is no better than guessing.

    A folder's labels are the positions of its sorted class folders, and the generator trainers
    (and the nearest-sample baseline) take them for the classifier's classes. A classifier that
    orders its classes otherwise (or was trained on other classes) makes every counterfactual
    class wrong without an error; so before training, ``sample`` images (seeded, spread over the
    set) go through ``model`` (frozen, no gradients, ``batch_size`` at a time on ``device``).
    When the agreement is at most 0.1 above guessing the largest class (at most half-way from
    that guess to 1, when the guess is right more than 80 % of the time), a ``RuntimeWarning``
    gives it with the class each folder's images are mostly predicted as.

    Args:
        model: the frozen classifier, pixel space (N, C, H, W) in [0, 1] -> logits.
        images: (N, C, H, W) ``uint8`` or float, a tensor or anything that indexes like one
            (e.g. a memory map or :class:`~captum_cf.training.data.DeviceImages`).
        labels (Tensor): (N,) the folder's labels.
        device (torch.device): where the model runs.
        name (str): how the warning names the model.
        class_names (sequence of str, optional): the folders' names, by label.
        sample (int): how many images (at most) go through the model.
        batch_size (int): images per forward pass.
        images_name (str): how the warning names the images.
        consequence (str): the warning's last sentence: what a disagreement does.

    Returns:
        float: the agreement in [0, 1].
    """
    from captum_cf._model_state import frozen

    n = int(labels.shape[0])
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:sample].sort().values
    truth = labels.cpu()[pick]
    with frozen(model), torch.no_grad():
        predicted = torch.cat([
            model(unit_images(images[pick[i : i + batch_size]].to(device))).argmax(1).cpu()
            for i in range(0, len(pick), batch_size)
        ])
    agreement = float((predicted == truth).float().mean())
    guess = float(torch.bincount(truth).max()) / len(truth)
    # no better than always guessing the largest class, with a margin (halved for sets where
    # that guess is right more than 80 % of the time); a classifier right on every image (of a
    # sample of one class, say) is never told
    if agreement < 1 and agreement <= min(guess + 0.1, (1 + guess) / 2):
        def folder(c: int) -> str:
            return repr(class_names[c]) if class_names is not None and c < len(class_names) \
                else f"class {c}"

        mostly = ", ".join(
            f"those of {folder(c)} mostly as class {int(torch.mode(predicted[truth == c]).values)}"
            for c in torch.unique(truth).tolist()[:10])
        warnings.warn(
            f"{name} puts {agreement:.0%} of {len(truth)} {images_name} in their folder's "
            f"class (guessing the largest class: {guess:.0%}); it predicts {mostly}. "
            f"{consequence}", RuntimeWarning, stacklevel=2)
    return agreement


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM ended :meth:`Trainer.fit` after a whole step; ``checkpoint``
    (None without a ``checkpoint_path``) holds the state at ``step`` and resumes exactly;
    ``signal`` names the signal (None on a process that stopped because another one got it)."""

    def __init__(self, step: int, steps: int, checkpoint: str | os.PathLike | None,
                 signal: str | None = "SIGINT") -> None:
        self.step, self.steps, self.signal = step, steps, signal
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        saved = (f"checkpoint written to {self.checkpoint}" if self.checkpoint
                 else "no checkpoint file was given, nothing was saved")
        by = f" by {signal}" if signal else " (another process was signalled)"
        super().__init__(f"interrupted{by} after step {step} of {steps}; {saved}")


class _StopRequest:
    """While entered: the first SIGINT or SIGTERM only records itself in :attr:`signal` (the
    loop stops after the current step), a second one raises ``KeyboardInterrupt`` at once. A
    signal whose handler is not Python's default (someone else's), or a thread other than the
    main one, is left alone."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> _StopRequest:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for sig, default in defaults.items():
            if signal.getsignal(sig) is default:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


def _module_device(modules: dict[str, nn.Module]) -> torch.device:
    for module in modules.values():
        for p in module.parameters():
            return p.device
    return torch.device("cpu")


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
    parts += [f"{k} {v:.4g}" for k, v in entry.items() if k != "step"]  # nan/inf shown
    return " | ".join(parts)
