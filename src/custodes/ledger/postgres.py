"""The shared store: a PostgreSQL database, for several processes or hosts on one ledger.

Writers serialise on ``SELECT … FOR UPDATE`` of the single tree row, so every process extends
the same tree; readers take a ``REPEATABLE READ`` snapshot. Needs the ``postgres`` extra
(psycopg 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from custodes.errors import LedgerCorrupt, LedgerNotFound, UsageError
from custodes.ledger.sql import SqlStore

__all__ = ["PostgresStore"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise UsageError(
            "a PostgreSQL ledger needs psycopg",
            hint="install custodes with the postgres extra: pip install 'custodes[postgres]'",
        ) from exc
    return psycopg


class PostgresStore(SqlStore):
    placeholder = "%s"
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    begin_write = "BEGIN"
    lock_write = "SELECT size FROM tree WHERE id = 1 FOR UPDATE"
    ddl = (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE tree (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL,"
        " checkpoint TEXT)",
        "CREATE TABLE bundles (idx BIGINT PRIMARY KEY, leaves BYTEA NOT NULL, ends BYTEA NOT NULL)",
        "CREATE TABLE tiles (level SMALLINT NOT NULL, idx BIGINT NOT NULL, hashes BYTEA NOT NULL,"
        " PRIMARY KEY (level, idx))",
        "CREATE TABLE tail (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, leaf_hash BYTEA NOT NULL)",
        "CREATE TABLE payloads (idx BIGINT NOT NULL, name TEXT NOT NULL, salt BYTEA NOT NULL,"
        " content BYTEA, PRIMARY KEY (idx, name))",
    )

    def connect(self, *, create: bool = False) -> Any:
        psycopg = _psycopg()
        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise LedgerNotFound(
                f"cannot connect to {_redact(self.url)}: {_first_line(exc)}",
                hint="check the server is running and the URL's host, port, user and database",
            ) from exc

    def exists(self, conn: Any) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name IN ('meta', 'tree')"
        ).fetchone()
        return bool(row and row[0] == 2)

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        psycopg = _psycopg()
        try:
            yield
        except psycopg.errors.UndefinedTable as exc:
            raise LedgerCorrupt(
                f"{_redact(self.url)} is not a complete custodes ledger ({_first_line(exc)})",
                hint="create one with `custodes ledger init --db …`",
            ) from exc
        except psycopg.OperationalError as exc:
            raise LedgerNotFound(
                f"lost the connection to {_redact(self.url)}: {_first_line(exc)}",
                hint="check the server is running",
            ) from exc
        except psycopg.Error as exc:
            raise LedgerCorrupt(f"{_redact(self.url)}: {_first_line(exc)}") from exc


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def _first_line(exc: BaseException) -> str:
    """The first line of a driver message (PostgreSQL adds DETAIL, LINE and caret lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
