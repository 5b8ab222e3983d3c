"""Captum attribution methods that accept ``Baseline`` objects, and new methods."""

from captum_cf._registry import Registry

#: name -> factory(AuditContext) -> explain(inputs, target, baseline) -> Tensor; used by the audit.
METHODS: Registry = Registry("method")

__all__ = ["METHODS"]
