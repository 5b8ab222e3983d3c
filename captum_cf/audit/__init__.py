"""The audit: explain a model with every method x baseline, score each explanation, report.

This is what ``captum-cf audit`` runs. The modules follow the flow of an audit:

* :mod:`~captum_cf.audit.data`: what is audited (digits, shapes, an image folder), as a Dataset;
* :mod:`~captum_cf.audit.model`: the model (zoo, factory) and its logits check;
* :mod:`~captum_cf.audit.runner`: the grid of methods x baselines, streamed batch by batch;
* :mod:`~captum_cf.audit.store`: the results store (SQLite), what ``--resume`` continues;
* :mod:`~captum_cf.audit.distributed`: sharding across torchrun processes, gathering to rank 0;
* :mod:`~captum_cf.audit.result`: the metric columns, the per-image values of every cell, the
  verdict, consistency and R-OMS;
* :mod:`~captum_cf.audit.stats`: paired tests, effect sizes, bounded intervals, the verdict;
* :mod:`~captum_cf.audit.report`: text table, CSV, JSON, HTML and figures (swapped in atomically);
* :mod:`~captum_cf.audit.cli`: the ``captum-cf audit`` command.
"""

from captum_cf.audit.errors import AuditDtypeError, AuditInputError, AuditInterrupted
from captum_cf.audit.result import (
    DEFAULT_METHODS,
    METRICS,
    NO_BASELINE,
    AuditResult,
    CellResult,
    MetricSpec,
    metric_spec,
)
from captum_cf.audit.runner import DEFAULT_REMOVALS, audit

__all__ = [
    "AuditDtypeError",
    "AuditInputError",
    "AuditInterrupted",
    "AuditResult",
    "CellResult",
    "DEFAULT_METHODS",
    "DEFAULT_REMOVALS",
    "MetricSpec",
    "METRICS",
    "NO_BASELINE",
    "audit",
    "metric_spec",
]
