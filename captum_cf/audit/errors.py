"""The errors of the audit: a user error (one line, exit code 2) and an interrupt (exit 130)."""

from __future__ import annotations

__all__ = ["AuditDtypeError", "AuditInputError", "AuditInterrupted"]


class AuditInputError(ValueError):
    """Bad input to the audit: an unknown name, an unreadable file, a model of the wrong kind."""


class AuditDtypeError(AuditInputError, TypeError):
    """Images of another float dtype than the model's (the dtype rule): a ``TypeError`` from
    Python, one line from the command."""


class AuditInterrupted(KeyboardInterrupt):
    """Ctrl-C during an audit: ``done`` of ``total`` (image, cell) pairs are in the store."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"interrupted; {done} of {total} done; resume with --resume")
        self.done, self.total = done, total
