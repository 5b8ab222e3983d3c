"""Fixtures of the audit tests (helpers in audit_helpers.py)."""

from audit_helpers import image_folder, model_file  # noqa: F401 (fixtures)
