"""Pieces every training loop shares: atomic checkpoints, exact resume, RNG capture.

Every trainer in captum_cf (zoo classifiers, inpainters, robust training, GAN trainers) keeps its
whole state in one dict of tensors and plain Python values, so checkpoints load with
``torch.load(..., weights_only=True)`` and a resumed run continues exactly as an uninterrupted one
would under the same seed.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "cycle_batches",
]

#: bumped whenever the layout of training checkpoints changes
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, then a rename.

    An interrupted save never leaves a truncated checkpoint behind. The same ``state`` gives the
    same bytes whatever the file name (``torch.save`` into an open file names the archive's
    folder ``archive``; given a path it would use the temporary file's random name).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **state}
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: (:class:`~captum_cf._weights.WeightsFileError`, one line naming the file)
            when the file is not a captum_cf checkpoint of a known format: another pickle, a
            whole pickled model, a text or damaged file. Nothing is ever unpickled.
    """
    from captum_cf._weights import WeightsFileError, load_weights_file

    path = os.fspath(path)
    state = load_weights_file(
        path, "a captum_cf checkpoint written by a captum-cf trainer", map_location
    )
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise WeightsFileError(
            f"{path} is not a captum_cf checkpoint of format {CHECKPOINT_FORMAT} (found {found!r})"
        )
    return state


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Capture the RNG states a training loop depends on (torch CPU, CUDA, Python, a generator)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and Python; return a fresh CPU generator seeded with ``seed`` for data order."""
    torch.manual_seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def cycle_batches(
    n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Endless stream of shuffled index batches over ``range(n)`` drawn from ``generator``.

    Driving data order from one generator (saved in checkpoints) is what makes resume exact.
    """
    if n <= 0 or batch_size <= 0:
        raise ValueError(f"need n > 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
    while True:
        perm = torch.randperm(n, generator=generator)
        stop = n - n % batch_size if (drop_last and n >= batch_size) else n
        for i in range(0, stop, batch_size):
            yield perm[i : i + batch_size]
