"""What the SQLite and PostgreSQL stores share: the tables and every query but the dialect.

Tables (schema 2; the bundle and tile layout is described in :mod:`custodes.ledger.tiles`)::

    meta(key, value)                     origin, verifier key, key path, settings
    tree(id = 1, size, checkpoint)       the integrated size and its signed checkpoint
    bundles(idx, leaves, ends)           256 canonical leaves end to end, and their end offsets
    tiles(level, idx, hashes)            256 hashes of tree level 8 * level (partial at the edge)
    tail(idx, leaf, leaf_hash)           one row per entry of the incomplete last bundle
    payloads(idx, name, salt, content)   clear payloads and salts, erasable, outside the tree

Schema 1 (one row per entry and per node) is refused with a one-line error.

Queries are written with ``?`` placeholders; a dialect rewrites them once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from custodes.errors import LedgerCorrupt, VerificationError
from custodes.ledger import tiles
from custodes.ledger.entry import Payload
from custodes.ledger.interface import LedgerMeta
from custodes.ledger.merkle import NodeId
from custodes.ledger.tiles import Plan

__all__ = ["SCHEMA_VERSION", "SqlStore"]

SCHEMA_VERSION = "2"
_BATCH = 2000
_BUNDLE_PAGE = 16  # bundles per query when streaming (about 1 MiB)


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


def bundle_leaves(k: int, leaves: bytes, ends: bytes) -> list[bytes]:
    """The 256 leaves of bundle ``k``; :class:`VerificationError` naming the first bad one."""
    offsets = tiles.unpack_ends(ends)
    if offsets is None:
        raise VerificationError(
            f"entry {k * tiles.BUNDLE}: its bundle's offsets are malformed: it was changed"
        )
    out: list[bytes] = []
    prev = 0
    for j, end in enumerate(offsets):
        if end < prev or end > len(leaves):
            raise VerificationError(
                f"entry {k * tiles.BUNDLE + j}: its bundle's offsets are malformed: it was changed"
            )
        out.append(leaves[prev:end])
        prev = end
    if prev != len(leaves):
        raise VerificationError(
            f"entry {k * tiles.BUNDLE + tiles.BUNDLE - 1}: its bundle holds bytes beyond its "
            "last entry: it was changed"
        )
    return out


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

    # -- rows --
    def tile(self, level: int, index: int) -> bytes | None:
        rows = self._all("SELECT hashes FROM tiles WHERE level = ? AND idx = ?", (level, index))
        return _blob(rows[0][0], f"tile (level {level}, index {index})") if rows else None

    def tail_rows(self, start: int = 0) -> list[tuple[int, bytes, bytes]]:
        rows = self._all(
            "SELECT idx, leaf, leaf_hash FROM tail WHERE idx >= ? ORDER BY idx", (start,)
        )
        out = []
        for idx, leaf, digest in rows:
            index = _int(idx, "an entry index")
            out.append(
                (index, _blob(leaf, f"entry {index}"), _blob(digest, f"entry {index}'s leaf hash"))
            )
        return out

    def bundle(self, k: int) -> tuple[bytes, bytes] | None:
        rows = self._all("SELECT leaves, ends FROM bundles WHERE idx = ?", (k,))
        if not rows:
            return None
        return _blob(rows[0][0], f"entry {k * tiles.BUNDLE}"), _blob(
            rows[0][1], f"entry {k * tiles.BUNDLE}"
        )

    def bundles(self, start: int) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        """``(k, leaves, ends, leaf hashes tile or None)`` of every stored bundle from ``k`` on."""
        sql = (
            "SELECT b.idx, b.leaves, b.ends, t.hashes FROM bundles b LEFT JOIN tiles t"
            " ON t.level = 0 AND t.idx = b.idx WHERE b.idx >= ? ORDER BY b.idx LIMIT ?"
        )
        cursor = start
        while True:
            rows = self._all(sql, (cursor, _BUNDLE_PAGE))
            for idx, leaves, ends, hashes in rows:
                k = _int(idx, "a bundle index")
                first = f"entry {k * tiles.BUNDLE}"
                yield (
                    k,
                    _blob(leaves, first),
                    _blob(ends, first),
                    None if hashes is None else _blob(hashes, f"{first}'s leaf hashes"),
                )
            if len(rows) < _BUNDLE_PAGE:
                return
            cursor = _int(rows[-1][0], "a bundle index") + 1

    def tiles(self, level: int) -> Iterator[tuple[int, bytes]]:
        """``(index, hashes)`` of every stored tile of ``level``, by index."""
        sql = (
            f"SELECT idx, hashes FROM tiles WHERE level = {int(level)} AND idx >= ? "  # noqa: S608
            "ORDER BY idx LIMIT ?"
        )
        for idx, digest in self._paged(sql, 0):
            index = _int(idx, "a tile index")
            yield index, _blob(digest, f"tile (level {level}, index {index})")

    def tile_levels(self) -> list[int]:
        return [
            _int(v, "a tile level")
            for (v,) in self._all("SELECT DISTINCT level FROM tiles ORDER BY level")
        ]

    # -- the tree, read through the rows --
    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        size = self.size()
        wanted: dict[NodeId, tuple[int, int, int, int]] = {}
        rows: dict[tuple[int, int], bytes | None] = {}
        for node in ids:
            level, index = node
            if level < 0 or index < 0 or (index + 1) << level > size:
                continue  # not a node of this tree: left out, as a missing one
            source = tiles.node_source(node)
            wanted[node] = source
            rows[(source[0], source[1])] = None
        if rows:
            keys = list(rows)
            clause = " OR ".join("(level = ? AND idx = ?)" for _ in keys)
            params = [v for key in keys for v in key]
            sql = f"SELECT level, idx, hashes FROM tiles WHERE {clause}"  # noqa: S608
            for level, idx, digest in self._all(sql, params):
                key = (_int(level, "a tile level"), _int(idx, "a tile index"))
                rows[key] = _blob(digest, f"tile (level {key[0]}, index {key[1]})")
        found: dict[NodeId, bytes] = {}
        for node, (tile_level, tile_index, first, count) in wanted.items():
            hashes = rows.get((tile_level, tile_index))
            if (
                hashes is None
                or len(hashes) % tiles.HASH
                or len(hashes) < tiles.HASH * (first + count)
            ):
                continue
            found[node] = tiles.mth(hashes, first, count)
        return found

    def edge(self, size: int) -> dict[int, bytes] | None:
        """The hashes of every incomplete tile of a tree of ``size`` (level 0: the tail's), or
        None when one is missing or of the wrong length: changed behind custodes' back."""
        out: dict[int, bytes] = {}
        for level, index, count in tiles.edge_state_levels(size):
            hashes = self.tile(level, index)
            if hashes is None or len(hashes) != tiles.HASH * count:
                return None
            out[level] = hashes
        return out

    def entry(self, index: int) -> tuple[bytes, bytes] | None:
        k = index >> 8
        if k < self.size() >> 8:
            row = self.bundle(k)
            hashes = self.tile(0, k)
            if row is None or hashes is None or len(hashes) != tiles.HASH * tiles.BUNDLE:
                return None
            j = index & (tiles.BUNDLE - 1)
            return bundle_leaves(k, *row)[j], hashes[tiles.HASH * j : tiles.HASH * (j + 1)]
        rows = self._all("SELECT leaf, leaf_hash FROM tail WHERE idx = ?", (index,))
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
        """``(index, leaf, leaf_hash)`` of every stored entry from ``start`` on, by index."""
        for k, leaves, ends, hashes in self.bundles(start >> 8):
            if hashes is None or len(hashes) != tiles.HASH * tiles.BUNDLE:
                raise VerificationError(
                    f"entry {k * tiles.BUNDLE}: its leaf hashes are missing: they were deleted"
                )
            for j, leaf in enumerate(bundle_leaves(k, leaves, ends)):
                index = k * tiles.BUNDLE + j
                if index >= start:
                    yield index, leaf, hashes[tiles.HASH * j : tiles.HASH * (j + 1)]
        yield from self.tail_rows(start)

    def payloads(self, index: int) -> list[Payload]:
        rows = self._all(
            "SELECT name, salt, content FROM payloads WHERE idx = ? ORDER BY name", (index,)
        )
        return [
            Payload(str(name), bytes(salt), None if content is None else bytes(content))
            for name, salt, content in rows
        ]

    # -- writes (only inside Store.write) --
    def tail_leaves(self, start: int, end: int) -> list[bytes]:
        """The leaves of tail rows ``start … end-1``, to fold into a bundle; all must be there."""
        rows = [row for row in self.tail_rows(start) if row[0] < end]
        if [index for index, _, _ in rows] != list(range(start, end)):
            raise VerificationError(
                f"{self._store.url}: the tail rows {start}…{end - 1} are not all there",
                hint="run `custodes ledger verify` to see what was removed; nothing was appended",
            )
        return [leaf for _, leaf, _ in rows]

    def write(
        self,
        plan: Plan,
        payloads: Sequence[tuple[int, Payload]],
        size: int,
        checkpoint: str,
    ) -> None:
        run = self._store.executemany
        if plan.clear_tail:
            self._store.execute(self._conn, "DELETE FROM tail")
        if plan.bundles:
            run(
                self._conn, "INSERT INTO bundles (idx, leaves, ends) VALUES (?, ?, ?)", plan.bundles
            )
        if plan.tiles:
            run(
                self._conn,
                "INSERT INTO tiles (level, idx, hashes) VALUES (?, ?, ?)"
                " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
                plan.tiles,
            )
        if plan.tail:
            run(self._conn, "INSERT INTO tail (idx, leaf, leaf_hash) VALUES (?, ?, ?)", plan.tail)
        if payloads:
            run(
                self._conn,
                "INSERT INTO payloads (idx, name, salt, content) VALUES (?, ?, ?, ?)",
                [(index, p.name, p.salt, p.content) for index, p in payloads],
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
                        "schema": SCHEMA_VERSION,
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
        if rows["schema"] != SCHEMA_VERSION:
            older = rows["schema"] == "1"
            raise LedgerCorrupt(
                f"{self.url}: ledger schema {rows['schema']} is not {SCHEMA_VERSION}"
                + (" (the format of custodes before bundled storage)" if older else ""),
                hint="read it with the custodes version that created it, or start a new ledger"
                if older
                else "use the custodes version that created it",
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
            self.after_write(conn)

    def after_write(self, conn: Any) -> None:
        """Called once a write transaction has committed (writer lock held, database lock not)."""

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
