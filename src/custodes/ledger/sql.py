"""What the SQLite and PostgreSQL stores share: the tables and every query but the dialect.

Tables::

    meta(key, value)                     origin, verifier key, key path, settings
    tree(id = 1, size, checkpoint)       the integrated size and its signed checkpoint
    entries(idx, leaf, leaf_hash)        one row per entry: canonical JSON and its leaf hash
    nodes(level, idx, hash)              perfect subtrees above the leaves (level >= 1)
    payloads(idx, name, salt, content)   clear payloads and salts, erasable, outside the tree

Queries are written with ``?`` placeholders; a dialect rewrites them once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from custodes.errors import LedgerCorrupt, VerificationError
from custodes.ledger.entry import Payload
from custodes.ledger.interface import LedgerMeta, NewEntry
from custodes.ledger.merkle import NodeId

__all__ = ["SqlStore"]

_SCHEMA_VERSION = "1"
_BATCH = 2000


def _blob(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise VerificationError(
        f"{what} holds a {type(value).__name__} where custodes stores bytes: "
        "the database was edited outside custodes"
    )


def _int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise VerificationError(
        f"{what} holds {value!r} where custodes stores a whole number: "
        "the database was edited outside custodes"
    )


class _Tx:
    """A reader or writer bound to one connection inside an open transaction."""

    def __init__(self, store: SqlStore, conn: Any) -> None:
        self._store = store
        self._conn = conn

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._store.execute(self._conn, sql, params).fetchall())

    def size(self) -> int:
        rows = self._all("SELECT size FROM tree WHERE id = 1")
        if not rows:
            raise LedgerCorrupt(f"{self._store.url}: the tree row is missing")
        return _int(rows[0][0], "the tree size")

    def checkpoint(self) -> str | None:
        rows = self._all("SELECT checkpoint FROM tree WHERE id = 1")
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        found: dict[NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        if leaves:
            marks = ",".join("?" * len(leaves))
            sql = f"SELECT idx, leaf_hash FROM entries WHERE idx IN ({marks})"  # noqa: S608
            for idx, digest in self._all(sql, leaves):
                found[(0, _int(idx, "an entry index"))] = _blob(digest, f"entry {idx}'s leaf hash")
        if inner:
            clause = " OR ".join("(level = ? AND idx = ?)" for _ in inner)
            params = [v for node in inner for v in node]
            sql = f"SELECT level, idx, hash FROM nodes WHERE {clause}"  # noqa: S608
            for level, idx, digest in self._all(sql, params):
                found[(_int(level, "a node level"), _int(idx, "a node index"))] = _blob(
                    digest, f"tree node (level {level}, index {idx})"
                )
        return found

    def entry(self, index: int) -> tuple[bytes, bytes] | None:
        rows = self._all("SELECT leaf, leaf_hash FROM entries WHERE idx = ?", (index,))
        if not rows:
            return None
        return _blob(rows[0][0], f"entry {index}"), _blob(rows[0][1], f"entry {index}'s leaf hash")

    def _paged(self, sql: str, start: int) -> Iterator[Any]:
        # Keyset pagination: bounded memory on any log size, and works inside one transaction.
        cursor = start
        while True:
            rows = self._all(sql, (cursor, _BATCH))
            yield from rows
            if len(rows) < _BATCH:
                return
            cursor = _int(rows[-1][0], "an index") + 1

    def entries(self, start: int) -> Iterator[tuple[int, bytes, bytes]]:
        sql = "SELECT idx, leaf, leaf_hash FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?"
        for idx, leaf, digest in self._paged(sql, start):
            index = _int(idx, "an entry index")
            yield index, _blob(leaf, f"entry {index}"), _blob(digest, f"entry {index}'s leaf hash")

    def level(self, level: int) -> Iterator[tuple[int, bytes]]:
        sql = (
            f"SELECT idx, hash FROM nodes WHERE level = {int(level)} AND idx >= ? "  # noqa: S608
            "ORDER BY idx LIMIT ?"
        )
        for idx, digest in self._paged(sql, 0):
            index = _int(idx, "a node index")
            yield index, _blob(digest, f"tree node (level {level}, index {index})")

    def payloads(self, index: int) -> list[Payload]:
        rows = self._all(
            "SELECT name, salt, content FROM payloads WHERE idx = ? ORDER BY name", (index,)
        )
        return [
            Payload(str(name), bytes(salt), None if content is None else bytes(content))
            for name, salt, content in rows
        ]

    # -- writes (only inside Store.write) --
    def write(
        self,
        entries: Sequence[NewEntry],
        nodes: Mapping[NodeId, bytes],
        size: int,
        checkpoint: str,
    ) -> None:
        run = self._store.executemany
        run(
            self._conn,
            "INSERT INTO entries (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
            [(e.index, e.leaf, e.leaf_hash) for e in entries],
        )
        run(
            self._conn,
            "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(level, idx, digest) for (level, idx), digest in nodes.items()],
        )
        payloads = [(e.index, p.name, p.salt, p.content) for e in entries for p in e.payloads]
        if payloads:
            run(
                self._conn,
                "INSERT INTO payloads (idx, name, salt, content) VALUES (?, ?, ?, ?)",
                payloads,
            )
        self._store.execute(
            self._conn, "UPDATE tree SET size = ?, checkpoint = ? WHERE id = 1", (size, checkpoint)
        )

    def erase_payloads(self, index: int) -> int:
        cursor = self._store.execute(self._conn, "DELETE FROM payloads WHERE idx = ?", (index,))
        return int(cursor.rowcount)


class SqlStore:
    """Shared store logic; subclasses give the dialect (connections, DDL, locking)."""

    url: str
    placeholder = "?"
    ddl: Sequence[str] = ()
    begin_read = "BEGIN"
    begin_write = "BEGIN"
    lock_write: str | None = None

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._writer_lock = threading.Lock()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._sql_cache: dict[str, str] = {}

    # -- dialect hooks --
    def connect(self, *, create: bool = False) -> Any:
        raise NotImplementedError

    def translate_errors(self) -> Any:
        """A context manager mapping the driver's errors to custodes errors."""
        raise NotImplementedError

    def exists(self, conn: Any) -> bool:
        raise NotImplementedError

    # -- plumbing --
    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = sql.replace("?", self.placeholder) if self.placeholder != "?" else sql
            self._sql_cache[sql] = out
        return out

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), tuple(params))

    def executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            conn.cursor().executemany(self._sql(sql), rows)

    def _thread_conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _transaction(self, conn: Any, begin: str, lock: str | None) -> Iterator[_Tx]:
        with self.translate_errors():
            conn.execute(begin)
            try:
                if lock:
                    conn.execute(lock)
                yield _Tx(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- the Store interface --
    def create(self, meta: LedgerMeta, checkpoint: str) -> None:
        from custodes.errors import LedgerExists

        with self.translate_errors():
            conn = self.connect(create=True)
            try:
                if self.exists(conn):
                    raise LedgerExists(
                        f"{self.url} already holds a custodes ledger",
                        hint="use it as it is, or give another --db",
                    )
                conn.execute(self.begin_write)
                try:
                    for statement in self.ddl:
                        conn.execute(statement)
                    values = {
                        "schema": _SCHEMA_VERSION,
                        "origin": meta.origin,
                        "verifier": meta.verifier,
                        "key_path": meta.key_path or "",
                        "keep_payloads": "1" if meta.keep_payloads else "0",
                        "created_at": meta.created_at,
                    }
                    self.executemany(
                        conn, "INSERT INTO meta (key, value) VALUES (?, ?)", list(values.items())
                    )
                    self.execute(
                        conn,
                        "INSERT INTO tree (id, size, checkpoint) VALUES (1, 0, ?)",
                        (checkpoint,),
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    def meta(self) -> LedgerMeta:
        with self.translate_errors():
            conn = self._thread_conn()
            if not self.exists(conn):
                raise LedgerCorrupt(
                    f"{self.url} is not a custodes ledger",
                    hint="create one with `custodes ledger init --db …`",
                )
            rows = dict(self.execute(conn, "SELECT key, value FROM meta").fetchall())
        missing = {"schema", "origin", "verifier"} - rows.keys()
        if missing:
            raise LedgerCorrupt(f"{self.url}: ledger settings are missing ({', '.join(missing)})")
        if rows["schema"] != _SCHEMA_VERSION:
            raise LedgerCorrupt(
                f"{self.url}: ledger schema {rows['schema']} is not {_SCHEMA_VERSION}",
                hint="use the custodes version that created it",
            )
        return LedgerMeta(
            origin=rows["origin"],
            verifier=rows["verifier"],
            key_path=rows.get("key_path") or None,
            keep_payloads=rows.get("keep_payloads") == "1",
            created_at=rows.get("created_at", ""),
        )

    @contextmanager
    def snapshot(self) -> Iterator[_Tx]:
        with self._transaction(self._thread_conn(), self.begin_read, None) as tx:
            yield tx

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        # One writer connection per store object; other processes are kept out by the database.
        with self._writer_lock:
            conn = getattr(self, "_writer", None)
            if conn is None:
                with self.translate_errors():
                    conn = self._writer = self.connect()
                with self._conns_lock:
                    self._conns.append(conn)
            with self.exclusive(), self._transaction(conn, self.begin_write, self.lock_write) as tx:
                yield tx

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        """Held around each write transaction; a dialect may queue writers here."""
        return contextlib.nullcontext()

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(Exception):  # closing is best effort
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
        self._writer = None
