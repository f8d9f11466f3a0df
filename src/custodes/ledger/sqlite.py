"""The embedded default store: one SQLite file in WAL mode.

``synchronous=FULL`` makes a commit durable before it returns (an acknowledged append survives
a crash or power cut); ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent
processes queue on the database instead of forking the tree.

A process that forks must not use the ledger in the child if the parent has it open (nor open
it there anew): SQLite keeps its POSIX lock state per process in memory, and the child inherits
the parent's view of who holds which lock (tests/ledger/test_checkpointer.py: such children
waited forever on a write lock no process held). Open ledgers after forking, or spawn.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from custodes.errors import LedgerCorrupt, LedgerNotFound, UsageError
from custodes.ledger.sql import SqlStore

__all__ = ["SqliteStore"]

_BUSY_TIMEOUT_MS = 600_000
# Bundles are ~70 KiB rows: with 4 KiB pages each spans 17 overflow pages, every one a WAL
# frame with its own write and checksum, then copied again by the checkpoint. 64 KiB pages
# cut a batch append's commit cost to half (measured: 0.83 -> 0.40 us per entry) at the price
# of larger WAL frames for single appends.
_PAGE_SIZE = 65536
# The WAL is copied into the database (checkpointed) once it holds ~4 MiB, as SQLite's default
# of 1000 pages of 4 KiB does, but by a thread of its own instead of inside the commit that
# crossed the mark: an append then waits for its own WAL write and fsync only (batches of
# 10,000 entries measured 2.58 -> 2.36 us per entry, wall, on a busy machine). Past 64 MiB
# (the thread falls behind) the committing writer checkpoints itself: the WAL stays bounded.
_CHECKPOINT_BYTES = 4 << 20
_CHECKPOINT_NOW_BYTES = 64 << 20

log = logging.getLogger("custodes.ledger")


class _Checkpointer:
    """Copies the WAL into the database file from a daemon thread, with its own connection.

    A checkpoint never affects durability (committed transactions are durable in the WAL), so
    one interrupted by a crash or by the process exiting is simply done again later. PASSIVE
    checkpoints never wait for readers or writers: whatever cannot be copied yet is copied
    next time.
    """

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._wake = threading.Event()
        self._stopping = False
        self.pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name="custodes-ledger-checkpoint", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        conn: Any = None
        try:
            conn = self._store.connect()
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:
            log.debug("background WAL checkpoint of %s stopped: %s", self._store.path, exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)


class SqliteStore(SqlStore):
    begin_write = "BEGIN IMMEDIATE"
    ddl = (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE tree (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL,"
        " checkpoint TEXT)",
        "CREATE TABLE bundles (idx INTEGER PRIMARY KEY, leaves BLOB NOT NULL, ends BLOB NOT NULL)",
        "CREATE TABLE tiles (level INTEGER NOT NULL, idx INTEGER NOT NULL, hashes BLOB NOT NULL,"
        " PRIMARY KEY (level, idx))",
        "CREATE TABLE tail (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, leaf_hash BLOB NOT NULL)",
        "CREATE TABLE payloads (idx INTEGER NOT NULL, name TEXT NOT NULL, salt BLOB NOT NULL,"
        " content BLOB, PRIMARY KEY (idx, name)) WITHOUT ROWID",
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._checkpointer: _Checkpointer | None = None
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
            if create:
                conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _Checkpointer
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

    def after_write(self, conn: Any) -> None:
        try:
            wal = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return
        if wal < _CHECKPOINT_BYTES:
            return
        if wal >= _CHECKPOINT_NOW_BYTES:
            with contextlib.suppress(sqlite3.Error):  # PASSIVE: copies what it can, now
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return
        worker = self._checkpointer
        if worker is None or worker.pid != os.getpid():  # none yet, or inherited over a fork
            worker = self._checkpointer = _Checkpointer(self)
        worker.request()

    def close(self) -> None:
        if self._checkpointer is not None and self._checkpointer.pid == os.getpid():
            self._checkpointer.stop()
        self._checkpointer = None
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
