"""The audit: explain a model with every method x baseline, score each explanation, report.

This is what ``captum-cf audit`` runs. The modules follow the flow of an audit:

* :mod:`~captum_cf.audit.data`: what is audited (digits, shapes, an image folder);
* :mod:`~captum_cf.audit.model`: the model (zoo, factory) and its logits check;
* :mod:`~captum_cf.audit.runner`: the grid of methods x baselines on the images;
* :mod:`~captum_cf.audit.result`: the metric columns and the per-image values of every cell;
* :mod:`~captum_cf.audit.report`: text table, CSV, JSON, HTML and figures;
* :mod:`~captum_cf.audit.cli`: the ``captum-cf audit`` command.
"""

from captum_cf.audit.errors import AuditInputError
from captum_cf.audit.result import DEFAULT_METHODS, METRICS, AuditResult, CellResult, MetricSpec
from captum_cf.audit.runner import audit

__all__ = [
    "AuditInputError",
    "AuditResult",
    "CellResult",
    "DEFAULT_METHODS",
    "MetricSpec",
    "METRICS",
    "audit",
]
