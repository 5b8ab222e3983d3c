"""The results store: every per-image score of an audit, in one SQLite file, as it is computed.

One row per image x cell x metric (``scores``), one row per image x cell that is finished
(``done``, with the cell's error when it failed), the audited images (id, true label, explained
class), the example images and maps of the report's figures, and the run's configuration. Each
batch of images x cell is written in one transaction, so a killed audit loses at most the batch it
was working on, and ``--resume`` computes only the (image, cell) pairs that are not ``done``.

The report (text table, CSV, JSON, HTML, figures) is rendered from the store
(:meth:`AuditStore.result`), so a resumed audit reports exactly what an uninterrupted one would.

Where it lives: the CLI keeps it *beside* the report folder, ``OUT.sqlite`` for ``--out OUT``,
because the report folder is replaced as a whole (atomically) at the end of each run; a store
inside it would have to move with every swap. From Python, ``audit(..., store=PATH)``; without a
path the store is in memory.

Tables (a later metric is one more ``metric`` value, a later verdict one more table)::

    config(key TEXT PRIMARY KEY, value TEXT)                 JSON values
    images(idx INTEGER PRIMARY KEY, id TEXT, label INTEGER, target INTEGER)
    done(idx INTEGER, method TEXT, baseline TEXT, seconds REAL, error TEXT)
    scores(idx INTEGER, method TEXT, baseline TEXT, metric TEXT, value REAL)
    blobs(name TEXT PRIMARY KEY, data BLOB)                  example tensors (torch.save)
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from captum_cf.audit.errors import AuditInputError

__all__ = ["AuditStore", "BatchRecord", "IDENTITY_KEYS"]

#: configuration entries that must match for ``--resume`` (the rest, e.g. device, may change)
IDENTITY_KEYS = (
    "data",
    "n",
    "image_ids",
    "image_shape",
    "num_classes",
    "model",
    "model_hash",
    "model_code",
    "methods",
    "baselines",
    "cells",
    "removals",
    "metrics",
    "n_steps",
    "sanity_n",
    "masks",
    "seed",
    "batch",
    "targets",
    "baseline_weights",
    "train_data",
    "entries",  # the code of the entries: after the settings that say more
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images(
    idx INTEGER PRIMARY KEY, id TEXT NOT NULL, label INTEGER, target INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS done(
    idx INTEGER NOT NULL, method TEXT NOT NULL, baseline TEXT NOT NULL,
    seconds REAL NOT NULL, error TEXT, PRIMARY KEY(idx, method, baseline));
CREATE TABLE IF NOT EXISTS scores(
    idx INTEGER NOT NULL, method TEXT NOT NULL, baseline TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL, PRIMARY KEY(idx, method, baseline, metric));
CREATE TABLE IF NOT EXISTS blobs(name TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


class BatchRecord(dict):
    """What one batch of images produced, ready for one transaction (plain data, picklable).

    Keys: ``images`` [(idx, id, label or None, target)], ``done`` [(idx, method, baseline,
    seconds, error or None)], ``scores`` [(idx, method, baseline, metric, value)], ``blobs``
    {name: Tensor}.
    """

    @classmethod
    def empty(cls) -> BatchRecord:
        return cls(images=[], done=[], scores=[], blobs={})


#: identity entries that stores of earlier versions lack: not compared when absent
_NEWER_KEYS = frozenset({"entries", "model_code"})

#: the tables of a results store (anything else: another program's database)
_TABLES = {"config", "images", "done", "scores", "blobs"}


def _exclusive(path: str) -> Any:
    """An exclusive lock on ``path + ".lock"`` held while the store is open: a second audit
    into the same ``--out`` wiped the first one's store and both then wrote into it (a report
    of one run's settings and a mix of both runs' images and values). None where the platform
    has no ``fcntl`` (the store is then unguarded)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    while True:
        handle = open(path + ".lock", "a")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise AuditInputError(
                f"another audit is writing {path} (the results store of the same --out): wait "
                "for it to finish, or choose another --out"
            ) from None
        try:  # the holder removes the file when it is done: a lock on a removed file is none
            if os.stat(handle.name).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()


class AuditStore:
    """An audit's results in SQLite (``path`` or ``":memory:"``).

    Example:
        >>> store = AuditStore(":memory:")
        >>> store.start({"n": 1}, resume=False)
        >>> store.count_done()
        0
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock: Any = None
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            if os.path.isdir(path):
                raise AuditInputError(f"the results store {path} is a folder, expected a file")
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as err:
                raise AuditInputError(f"cannot create the folder of the results store {path}: "
                                      f"{err.strerror or err}") from err
            if not os.access(parent, os.W_OK):
                raise AuditInputError(f"cannot write the results store {path}: its folder "
                                      f"{parent} is not writable")
            self._lock = _exclusive(path)
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self._check_ours(path)  # before the audit creates or deletes anything in it
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            self._unlock()
            raise AuditInputError(f"{path} is not an audit results store ({err}): delete it or "
                                  "choose another --out") from err
        except AuditInputError:
            self._unlock()
            raise

    def close(self) -> None:
        self.db.close()
        self._unlock()

    def _check_ours(self, path: str) -> None:
        """An existing database must be a results store: the audit's ``DELETE FROM config``
        and its tables went into another program's SQLite file named ``OUT.sqlite``."""
        tables = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = sorted(tables - _TABLES)
        keys: set[str] = set()
        if not foreign and "config" in tables:
            try:
                keys = {r[0] for r in self.db.execute("SELECT key FROM config")}
            except sqlite3.OperationalError:  # a config table of other columns
                foreign = ["config"]
        if foreign or (keys and not {"n", "cells"} <= keys):
            self.db.close()
            held = (f"tables {', '.join(foreign)}" if foreign
                    else f"its config table holds {', '.join(sorted(keys)[:3])}")
            raise AuditInputError(
                f"{path} is another program's SQLite database ({held}), not an audit results "
                "store: choose another --out (the store is OUT.sqlite)")

    def _unlock(self) -> None:
        if self._lock is not None:
            try:  # removed while still held: no leftover file beside the report
                os.unlink(self._lock.name)
            except OSError:
                pass
            self._lock.close()
            self._lock = None

    # -- configuration ---------------------------------------------------------------------

    def config(self) -> dict[str, Any] | None:
        """The stored configuration, or None for a new store."""
        rows = self.db.execute("SELECT key, value FROM config").fetchall()
        return {k: json.loads(v) for k, v in rows} or None

    def start(self, config: dict[str, Any], resume: bool) -> None:
        """Begin a run: a fresh store (``resume=False``) or continue one with the same config.

        Raises:
            AuditInputError: ``resume`` and the stored run had another configuration (the message
                names the entries that differ).
        """
        old = self.config()
        if resume and old is not None:
            # a store of an earlier version has no "entries" (the entries' code): not compared
            diff = [k for k in IDENTITY_KEYS if old.get(k) != config.get(k)
                    and not (k in _NEWER_KEYS and k not in old)]
            if diff:
                shown = "; ".join(_difference(k, old.get(k), config.get(k)) for k in diff[:4])
                raise AuditInputError(
                    f"cannot resume {self.path}: the audit's settings differ ({shown}); "
                    "run without --resume to start again"
                )
        elif old is not None:
            expected = int(old.get("n") or 0) * len(old.get("cells") or [])
            done = self.count_done()
            if done < expected:  # a killed or interrupted run: say what is being discarded
                warnings.warn(
                    f"{self.path} holds an unfinished audit ({done} of {expected} (image, cell) "
                    "pairs done); starting over. Pass --resume (resume=True) with the same "
                    "settings to continue it instead",
                    UserWarning,
                    stacklevel=2,
                )
            self.db.executescript(
                "BEGIN; DELETE FROM config; DELETE FROM images; DELETE FROM done; "
                "DELETE FROM scores; DELETE FROM blobs; COMMIT;"
            )
        self._set_config(config)

    def _set_config(self, config: dict[str, Any]) -> None:
        with self._transaction():
            self._put_config(config)

    def _put_config(self, entries: dict[str, Any]) -> None:
        """Configuration entries, inside the caller's transaction."""
        self.db.executemany(
            "INSERT OR REPLACE INTO config VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in entries.items()],
        )

    def update_config(self, **entries: Any) -> None:
        """Store extra configuration entries (e.g. the wall time) without a check."""
        self._set_config(entries)

    # -- writing ---------------------------------------------------------------------------

    def write(self, record: BatchRecord, seconds: float | None = None) -> None:
        """Write one batch's records in one transaction (all or nothing), with the audit's
        time so far (``seconds``, the configuration's ``"seconds"``) when given."""
        with self._transaction():
            if seconds is not None:
                self._put_config({"seconds": seconds})
            self.db.executemany(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)", record["images"]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                [(i, m, b, k, _real(v)) for i, m, b, k, v in record["scores"]],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?)", record["done"]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?)",
                [(k, _tensor_bytes(v)) for k, v in record["blobs"].items()],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- reading ---------------------------------------------------------------------------

    def done_pairs(self) -> set[tuple[int, str, str]]:
        """``{(image index, method, baseline)}`` already computed (with or without an error)."""
        return set(self.db.execute("SELECT idx, method, baseline FROM done").fetchall())

    def count_done(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM done").fetchone()[0])

    def images(self) -> list[tuple[int, str, int | None, int]]:
        """``[(idx, id, label or None, target)]`` in image order."""
        return self.db.execute("SELECT idx, id, label, target FROM images ORDER BY idx").fetchall()

    def scores(self, method: str, baseline: str) -> dict[str, list[tuple[int, float]]]:
        """``metric -> [(idx, value)]`` of one cell, in image order (NaN for a missing value)."""
        out: dict[str, list[tuple[int, float]]] = {}
        rows = self.db.execute(
            "SELECT metric, idx, value FROM scores WHERE method = ? AND baseline = ? "
            "ORDER BY metric, idx",
            (method, baseline),
        )
        for metric, idx, value in rows:
            out.setdefault(metric, []).append((idx, float("nan") if value is None else value))
        return out

    def cell_summary(self, method: str, baseline: str) -> tuple[float, str | None, int]:
        """``(seconds, error or None, images done)`` of one cell: the first image's error,
        after ``"F of N images: "`` when the cell failed on F of its N images only."""
        seconds, done, failed = self.db.execute(
            "SELECT COALESCE(SUM(seconds), 0), COUNT(*), COUNT(error) FROM done "
            "WHERE method = ? AND baseline = ?",
            (method, baseline),
        ).fetchone()
        err = self.db.execute(
            "SELECT error FROM done WHERE method = ? AND baseline = ? AND error IS NOT NULL "
            "ORDER BY idx LIMIT 1",
            (method, baseline),
        ).fetchone()
        error = None
        if err:
            error = err[0] if failed == done else f"{failed} of {done} images: {err[0]}"
        return float(seconds), error, int(done)

    def blob(self, name: str) -> Tensor | None:
        row = self.db.execute("SELECT data FROM blobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return torch.load(io.BytesIO(row[0]), weights_only=True)

    def blob_names(self, prefix: str) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM blobs WHERE name LIKE ? ORDER BY name", (prefix + "%",)
        )
        return [r[0] for r in rows]


class _Transaction:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` on any exception (KeyboardInterrupt included)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _real(v: Any) -> float | None:
    v = float(v)
    return None if v != v else v  # SQLite has no NaN: NULL stands for it


def _tensor_bytes(t: Tensor) -> bytes:
    buf = io.BytesIO()
    torch.save(t.detach().cpu().contiguous(), buf)
    return buf.getvalue()


def _difference(key: str, old: Any, new: Any) -> str:
    """How the setting ``key`` differs: the stored and the new value, or for the code of the
    registered entries (``entries``), the entries whose code changed."""
    if key == "model_code":
        return ("the model's code changed (its structure, or the code of its own classes or "
                "of the functions they call)")
    if key == "entries" and isinstance(old, dict) and isinstance(new, dict):
        changed = [f"{kind[:-1]} {name!r}" for kind in new for name in new[kind]
                   if name in (old.get(kind) or {}) and old[kind][name] != new[kind][name]]
        if changed:
            return "the code or settings of " + ", ".join(changed) + " changed"
    return f"{key}: stored {_short(old)}, now {_short(new)}"


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def ids_digest(ids: Iterable[str]) -> str:
    """A short digest of the image ids (the store keeps the ids themselves in ``images``)."""
    import hashlib

    h = hashlib.sha1()
    for i in ids:
        h.update(i.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]
