"""Backward-compatible alias of :mod:`captum_cf.training.checkpoint` (checkpoint helpers)."""

from captum_cf.training.checkpoint import (  # noqa: F401
    CHECKPOINT_FORMAT,
    cycle_batches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "cycle_batches",
]
