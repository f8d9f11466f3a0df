"""Where the review queue lives: one table in SQLite (the default) or PostgreSQL.

Table::

    custodes_review_items(seq, id, trace_id, created_at, rules, reason, output_sha256, preview,
                          payload_ref, state, expires_at, reviewer, decision_reason, decided_at)

``seq`` orders the queue and is the pagination cursor; times are Unix seconds. A decision is
one ``UPDATE … WHERE state = 'pending'``, so of two deciders racing on one item exactly one
changes the row: SQLite serialises writers (``BEGIN IMMEDIATE``), PostgreSQL makes the second
re-check the row after the first commits. On PostgreSQL every decision also sends a
``NOTIFY custodes_review`` so waiters wake at once instead of at their next poll.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from custodes.errors import UsageError

__all__ = ["COLUMNS", "Listener", "ReviewStore", "ReviewStoreError", "open_review_store"]

COLUMNS = (
    "seq, id, trace_id, created_at, rules, reason, output_sha256, preview, payload_ref, state,"
    " expires_at, reviewer, decision_reason, decided_at"
)
_CHANNEL = "custodes_review"
_DDL = (
    "CREATE TABLE IF NOT EXISTS custodes_review_items ("
    "seq {serial}, id TEXT NOT NULL UNIQUE, trace_id TEXT NOT NULL,"
    " created_at {real} NOT NULL, rules TEXT NOT NULL, reason TEXT NOT NULL,"
    " output_sha256 TEXT NOT NULL, preview TEXT NOT NULL, payload_ref TEXT,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),"
    " expires_at {real}, reviewer TEXT, decision_reason TEXT, decided_at {real})",
    "CREATE INDEX IF NOT EXISTS custodes_review_by_state ON custodes_review_items (state, seq)",
    "CREATE INDEX IF NOT EXISTS custodes_review_due ON custodes_review_items (expires_at)"
    " WHERE state = 'pending'",
)


class ReviewStoreError(UsageError):
    """The review queue's database cannot be opened or used."""


class Listener(Protocol):
    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or sooner when a decision may have been made."""
        ...


class _Sleeper:
    def wait(self, timeout: float) -> None:
        time.sleep(max(0.0, timeout))


class _PgListener:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def wait(self, timeout: float) -> None:
        # Any notification wakes the waiter, which then re-reads its own item.
        for _ in self._conn.notifies(timeout=max(0.0, timeout), stop_after=1):
            pass


class ReviewStore:
    """Rows of the review queue behind one connection (thread-safe through a lock)."""

    def __init__(self, url: str, *, postgres: bool) -> None:
        self.url = url
        self.postgres = postgres
        self._lock = threading.Lock()
        self._conn = self._connect()
        self._create()

    # -- dialect --
    def _connect(self) -> Any:
        if self.postgres:
            psycopg = _psycopg()
            try:
                return psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise self._error(exc, "check the server is running and the URL") from exc
        path = Path(self.url)
        if not path.parent.exists():
            raise ReviewStoreError(
                f"folder {path.parent} of the review queue does not exist",
                hint="create it, or give another review database",
            )
        try:
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=60.0
            )
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise self._error(exc, "give a SQLite file custodes can write") from exc
        return conn

    def _create(self) -> None:
        serial = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        real = "DOUBLE PRECISION" if self.postgres else "REAL"
        with self.transaction() as tx:
            if self.postgres:
                # Concurrent CREATE … IF NOT EXISTS can still collide in PostgreSQL's catalogue.
                tx.execute("SELECT pg_advisory_xact_lock(hashtext('custodes_review_items'))")
            for statement in _DDL:
                tx.execute(statement.format(serial=serial, real=real))

    def _error(self, exc: BaseException, hint: str) -> ReviewStoreError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return ReviewStoreError(f"the review queue {_redact(self.url)} is unusable: {first}", hint=hint)

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")

    # -- transactions --
    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[_Tx]:
        """One transaction; driver errors come out as :class:`ReviewStoreError`.

        A SQLite writer takes the write lock up front (``BEGIN IMMEDIATE``) so that a read
        inside it cannot go stale before its write.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write and not self.postgres else "BEGIN")
            except Exception as exc:
                if self._is_driver_error(exc):
                    raise self._error(exc, "check the database is reachable") from exc
                raise
            try:
                yield _Tx(conn, "%s" if self.postgres else "?")
            except BaseException as exc:
                with contextlib.suppress(Exception):  # the connection may be what broke
                    conn.execute("ROLLBACK")
                if self._is_driver_error(exc):
                    raise self._error(exc, "check the database is reachable and writable") from exc
                raise
            try:
                conn.execute("COMMIT")
            except Exception as exc:
                if self._is_driver_error(exc):
                    raise self._error(exc, "check the database is writable") from exc
                raise

    def notify(self, tx: _Tx, item_id: str) -> None:
        """Wake waiters once ``tx`` commits (PostgreSQL; SQLite waiters poll)."""
        if self.postgres:
            tx.execute("SELECT pg_notify(?, ?)", (_CHANNEL, item_id))

    @contextmanager
    def listen(self) -> Iterator[Listener]:
        """A listener set up before the first read, so no decision slips between read and wait."""
        if not self.postgres:
            yield _Sleeper()
            return
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self.url, autocommit=True)
            conn.execute(f"LISTEN {_CHANNEL}")
        except psycopg.Error as exc:
            raise self._error(exc, "check the server is running") from exc
        try:
            yield _PgListener(conn)
        except psycopg.Error as exc:
            raise self._error(exc, "check the server is running") from exc
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()


class _Tx:
    """Statements inside one open transaction, written with ``?`` placeholders."""

    def __init__(self, conn: Any, mark: str) -> None:
        self._conn = conn
        self._mark = mark

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._mark != "?":
            sql = sql.replace("?", self._mark)
        return self._conn.execute(sql, tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.execute(sql, params).fetchall()]


def open_review_store(url: str) -> ReviewStore:
    """A PostgreSQL store for ``postgresql://…`` URLs, else a SQLite file at the path ``url``."""
    postgres = url.startswith(("postgresql://", "postgres://"))
    return ReviewStore(url, postgres=postgres)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ReviewStoreError(
            "a PostgreSQL review queue needs psycopg",
            hint="install custodes with the postgres extra: pip install 'custodes[postgres]'",
        ) from exc
    return psycopg


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
