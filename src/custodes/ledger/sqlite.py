"""The embedded default store: one SQLite file in WAL mode.

``synchronous=FULL`` makes a commit durable before it returns (an acknowledged append survives
a crash or power cut); ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent
processes queue on the database instead of forking the tree.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from custodes.errors import LedgerCorrupt, LedgerNotFound, UsageError
from custodes.ledger.sql import SqlStore

__all__ = ["SqliteStore"]

_BUSY_TIMEOUT_MS = 600_000


class SqliteStore(SqlStore):
    begin_write = "BEGIN IMMEDIATE"
    ddl = (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE tree (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL,"
        " checkpoint TEXT)",
        "CREATE TABLE entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL,"
        " leaf_hash BLOB NOT NULL)",
        "CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
        " PRIMARY KEY (level, idx)) WITHOUT ROWID",
        "CREATE TABLE payloads (idx INTEGER NOT NULL, name TEXT NOT NULL, salt BLOB NOT NULL,"
        " content BLOB, PRIMARY KEY (idx, name)) WITHOUT ROWID",
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        super().__init__(str(self.path))

    def connect(self, *, create: bool = False) -> Any:
        if not create and not self.path.exists():
            raise LedgerNotFound(
                f"no ledger at {self.path}",
                hint="create one with `custodes ledger init --db PATH` or check the path",
            )
        if create and not self.path.parent.exists():
            raise UsageError(
                f"folder {self.path.parent} does not exist", hint="create it or give another --db"
            )
        mode = "rwc" if create else "rw"
        try:
            conn = sqlite3.connect(
                f"file:{self.path}?mode={mode}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(
                f"{self.path} is not a readable SQLite database ({exc})",
                hint="restore it from a backup, or give the right --db",
            ) from exc
        return conn

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        # SQLite's busy handler makes a waiting writer sleep and poll (up to 100 ms a try), so
        # under contention commits stall. A blocking flock on a lock file beside the database
        # queues writers in the kernel and wakes the next one the moment the lock is free.
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(f"{self.path}-lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(
                    f"cannot open the lock file {self.path}-lock: {exc.strerror}",
                    hint="check the ledger's folder is writable",
                ) from exc
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def exists(self, conn: Any) -> bool:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'tree')"
        ).fetchall()
        return len(rows) == 2

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                raise LedgerCorrupt(
                    f"{self.path} is not a complete custodes ledger ({exc})",
                    hint="restore it from a backup, or give the right --db",
                ) from exc
            raise LedgerCorrupt(
                f"{self.path}: {exc}", hint="check the file and its folder"
            ) from exc
        except sqlite3.IntegrityError as exc:
            raise LedgerCorrupt(
                f"{self.path}: rows collide with what custodes would write ({exc})",
                hint="run `custodes ledger verify` to find out what was changed",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(
                f"{self.path} is not a readable SQLite database ({exc})",
                hint="restore it from a backup, or give the right --db",
            ) from exc
