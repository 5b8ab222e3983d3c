"""Sub-commands of ``captum-cf train``; each registers itself in ``captum_cf.cli.TRAIN_COMMANDS``."""

from __future__ import annotations
