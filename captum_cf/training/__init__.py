"""One training loop for every captum_cf trainer, and the pieces it is made of.

* :class:`Trainer`: the loop (device, ``torchrun``, bfloat16 autocast, checkpoint cadence, exact
  resume, keep-best validation, progress); each trainer supplies its step and its state.
* :class:`IndexStream`: resumable shuffled batches (a ``DistributedSampler`` under torchrun).
* :mod:`~captum_cf.training.checkpoint`: atomic checkpoints, RNG capture, seeding.
* :mod:`~captum_cf.training.distributed`: devices, process group, autocast.
* :mod:`~captum_cf.training.data`: the images of ``--data digits|shapes|DIR``.
"""

from captum_cf.training.checkpoint import (
    CHECKPOINT_FORMAT,
    cycle_batches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from captum_cf.training.distributed import (
    DistributedContext,
    check_amp,
    distributed_context,
    rank_seed,
    resolve_device,
    shutdown,
)
from captum_cf.training.loop import (
    IndexStream,
    Trainer,
    TrainingInterrupted,
    check_frozen_classifier,
    check_label_agreement,
    records_run_options,
)

__all__ = [
    "Trainer",
    "TrainingInterrupted",
    "IndexStream",
    "check_frozen_classifier",
    "check_label_agreement",
    "records_run_options",
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "cycle_batches",
    "DistributedContext",
    "distributed_context",
    "resolve_device",
    "check_amp",
    "rank_seed",
    "shutdown",
]
