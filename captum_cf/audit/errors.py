"""The one error type of the audit: a user error, printed by the CLI as one line (exit code 2)."""

from __future__ import annotations

__all__ = ["AuditInputError"]


class AuditInputError(ValueError):
    """Bad input to the audit: an unknown name, an unreadable file, a model of the wrong kind."""
