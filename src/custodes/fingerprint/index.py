"""The provenance index: fingerprints of protected code in one SQLite file.

A *collection* (a leaked codebase, a company's own proprietary modules) is a set of files, each
reduced to its winnowed fingerprints and nothing else: no source text is ever stored. Tables::

    meta          (key, value)                          the format marker and schema version
    collections   (id, name, mode, created, fingerprint_version)
    files         (id, collection, path, lines, tokens, fingerprints, sha256)
    fingerprints  (hash, collection, file, layer, position, start_line, end_line)
                  WITHOUT ROWID, keyed by hash first: a lookup is one B-tree seek per hash
    df            (hash, collection, files)             document frequency, only where >= 2

Document frequency is counted when a collection is built (after every add or import), and
kept only for hashes found in two files or more: a hash absent from ``df`` is in one file.
The cut-off for "too common to mean anything" is applied when querying, not when building, so
it can be tuned without rebuilding and adding files never has to rewrite the fingerprints.

A query (see :mod:`.match`) leaves out the hashes ``df`` names as boilerplate (read once per
connection), then joins the distinct hashes of a batch of scanned files, passed as one JSON
array, with ``fingerprints`` (:meth:`Index.postings_for`): one query per batch, never one
round trip per hash.

An add runs in one transaction (the whole add lands, or none of it), writing packed columns
with ``executemany`` in WAL mode; files are fingerprinted by a pool of worker processes when
there is a lot to do (:func:`add_paths`). A scan fingerprints and matches in worker processes
too (:mod:`custodes.fingerprint.ahead`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import re
import sqlite3
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import TextIO

from custodes.errors import CollectionNotFound, FingerprintIndexError, UsageError
from custodes.fingerprint.winnow import (
    FINGERPRINT_VERSION,
    LAYER_CODES,
    LAYERS_BY_CODE,
    Columns,
    columns_of,
)
from custodes.subject import Skipped, SkipReason

__all__ = [
    "DEFAULT_INDEX",
    "LAYERS_BY_CODE",
    "LAYER_CODES",
    "AddReport",
    "AddSummary",
    "Collection",
    "Columns",
    "Found",
    "Index",
    "IndexWriter",
    "Mode",
    "Posting",
    "SourceFile",
    "add_paths",
    "check_collection_name",
    "columns_of",
    "prestart",
    "prestarted",
]

log = logging.getLogger(__name__)

DEFAULT_INDEX = os.path.join(".custodes", "index.db")
"""Where the index lives unless ``CUSTODES_INDEX`` or ``--index`` say otherwise."""

_FORMAT = "custodes-fingerprint-index"
_SCHEMA = 1
_BATCH = 5_000  # hashes per lookup: one JSON array parameter each
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


_SCHEMA_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL CHECK (mode IN ('deny', 'warn')),
    created TEXT NOT NULL,
    fingerprint_version INTEGER NOT NULL
);
CREATE TABLE files (
    -- AUTOINCREMENT: a replaced file's id is never reused while its fingerprints are removed
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection INTEGER NOT NULL REFERENCES collections (id),
    path TEXT NOT NULL,
    lines INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    fingerprints INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    UNIQUE (collection, path)
);
CREATE TABLE fingerprints (
    hash INTEGER NOT NULL,
    collection INTEGER NOT NULL,
    file INTEGER NOT NULL,
    layer INTEGER NOT NULL,
    position INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    PRIMARY KEY (hash, collection, file, layer, position)
) WITHOUT ROWID;
CREATE TABLE df (
    hash INTEGER NOT NULL,
    collection INTEGER NOT NULL,
    files INTEGER NOT NULL,
    PRIMARY KEY (hash, collection)
) WITHOUT ROWID;
"""


class Mode(StrEnum):
    """What a match in a collection means: ``deny`` fails the gate, ``warn`` reports."""

    DENY = "deny"
    WARN = "warn"


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    mode: Mode
    created: str  # RFC 3339 UTC
    fingerprint_version: int
    files: int
    lines: int
    fingerprints: int


@dataclass(frozen=True)
class SourceFile:
    """One indexed file, as a match names it."""

    id: int
    collection: int
    path: str
    lines: int


Posting = tuple[int, int, int, int, int, int, int]
"""One fingerprint of an indexed file that a lookup found: (hash, collection id, file id,
layer code (see LAYER_CODES), position, start line, end line). A plain tuple, as SQLite returns
it: a scan looks up hundreds of thousands."""

Found = tuple[int, int, int, int, int, int, int, int]
"""One fingerprint of an indexed file that :meth:`Index.postings_for` found: (hash, collection
id, file id, layer code, position, start line, end line, files of the collection holding the
hash)."""


def check_collection_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"invalid collection name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Index:
    """An open provenance index. One writer at a time; readers never block (WAL)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._collections: dict[int, Collection] | None = None
        self._boilerplate: dict[int, tuple[int, dict[int, frozenset[int]]]] = {}
        self._version = -1  # PRAGMA data_version when the caches were filled

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False) -> Index:
        """Open the index at ``path``; with ``create``, make it (and its folder) if missing."""
        path = Path(path)
        exists = path.exists()
        if not exists and not create:
            raise FingerprintIndexError(
                f"no provenance index at {path}",
                hint="build one with `custodes index add PATH --collection NAME`",
            )
        if not exists:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FingerprintIndexError(
                    f"cannot create the folder of {path}: {exc.strerror}",
                    hint="choose a writable place with --index FILE",
                ) from exc
        conn = None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            index = cls(conn, path)
            if exists:
                # Before any pragma that writes: another program's database stays untouched.
                index._check_schema()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-262144")  # 256 MiB, allocated only as used
            if not exists:
                index._init_schema()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise FingerprintIndexError(
                f"{path} is not a readable provenance index: {exc}",
                hint="give the file `custodes index add` wrote, or remove it and rebuild",
            ) from exc
        except FingerprintIndexError:
            if conn is not None:
                conn.close()
            raise
        return index

    def _init_schema(self) -> None:
        # Statement by statement: executescript would commit on its own, outside the transaction.
        with self._transaction():
            for statement in _SCHEMA_SQL.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", _FORMAT), ("schema", str(_SCHEMA))],
            )

    def _check_schema(self) -> None:
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            raise FingerprintIndexError(
                f"{self.path} is not a custodes provenance index",
                hint="give the file `custodes index add` wrote with --index FILE",
            ) from exc
        if meta.get("format") != _FORMAT:
            raise FingerprintIndexError(
                f"{self.path} is not a custodes provenance index",
                hint="give the file `custodes index add` wrote with --index FILE",
            )
        if meta.get("schema") != str(_SCHEMA):
            raise FingerprintIndexError(
                f"{self.path} has index schema {meta.get('schema')}, this custodes reads {_SCHEMA}",
                hint="rebuild the index with this version of custodes",
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _transaction(self) -> Index._Tx:
        return Index._Tx(self._conn)

    # -- collections ------------------------------------------------------------------------

    def collections(self) -> list[Collection]:
        """Every collection with its totals, by name."""
        rows = self._conn.execute(
            """
            SELECT c.id, c.name, c.mode, c.created, c.fingerprint_version,
                   COUNT(f.id), COALESCE(SUM(f.lines), 0), COALESCE(SUM(f.fingerprints), 0)
            FROM collections AS c LEFT JOIN files AS f ON f.collection = c.id
            GROUP BY c.id ORDER BY c.name
            """
        ).fetchall()
        return [
            Collection(row[0], row[1], Mode(row[2]), row[3], row[4], row[5], row[6], row[7])
            for row in rows
        ]

    def collection(self, name: str) -> Collection:
        for found in self.collections():
            if found.name == name:
                return found
        known = ", ".join(c.name for c in self.collections()) or "none yet"
        raise CollectionNotFound(
            f"no collection {name!r} in {self.path}",
            hint=f"collections: {known} (see `custodes index list`)",
        )

    def collections_by_id(self) -> dict[int, Collection]:
        if self._collections is None:
            self._collections = {c.id: c for c in self.collections()}
        return self._collections

    def check_version(self) -> None:
        """Raise if a collection was fingerprinted in a way this custodes cannot match."""
        for found in self.collections_by_id().values():
            if found.fingerprint_version != FINGERPRINT_VERSION:
                raise FingerprintIndexError(
                    f"collection {found.name!r} in {self.path} was fingerprinted with version "
                    f"{found.fingerprint_version}, this custodes uses {FINGERPRINT_VERSION}",
                    hint=f"rebuild it: `custodes index remove {found.name}` then "
                    "`custodes index add … --collection "
                    f"{found.name}`",
                )

    def remove(self, name: str) -> Collection:
        """Delete a collection and everything fingerprinted into it."""
        found = self.collection(name)
        with self._transaction():
            self._conn.execute("DELETE FROM fingerprints WHERE collection = ?", (found.id,))
            self._conn.execute("DELETE FROM df WHERE collection = ?", (found.id,))
            self._conn.execute("DELETE FROM files WHERE collection = ?", (found.id,))
            self._conn.execute("DELETE FROM collections WHERE id = ?", (found.id,))
        self._collections = None
        self._boilerplate.clear()  # this connection's own writes
        return found

    def writer(
        self,
        name: str,
        *,
        mode: Mode | None = None,
        created: str | None = None,
        new: bool = False,
    ) -> IndexWriter:
        """Add or replace files of collection ``name`` (created with ``mode`` or ``deny``).

        Use as a context manager: everything added lands in one transaction at exit, or
        nothing does if the block raises. With ``new``, the collection must not exist yet.
        """
        return IndexWriter(self, check_collection_name(name), mode, created=created, new=new)

    def create_empty(self, name: str, mode: Mode, *, created: str | None = None) -> int:
        """Create collection ``name``, which must not exist; inside a writer's transaction."""
        cursor = self._conn.execute(
            "INSERT INTO collections (name, mode, created, fingerprint_version) "
            "VALUES (?, ?, ?, ?)",
            (name, mode.value, created or _now(), FINGERPRINT_VERSION),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, hashes: Iterable[int], *, max_files: int) -> list[Posting]:
        """Every fingerprint with one of ``hashes``, except those of a collection where the
        hash is in more than ``max_files`` files (boilerplate of that collection)."""
        return self.lookup_with_common(hashes, max_files=max_files)[0]

    def lookup_with_common(
        self, hashes: Iterable[int], *, max_files: int
    ) -> tuple[list[Posting], set[tuple[int, int]]]:
        """:meth:`lookup`, and the (hash, collection) pairs it left out as boilerplate.

        Boilerplate is found first, in the small ``df`` table, and left out of the seek into
        ``fingerprints``: a hash in thousands of files would otherwise walk thousands of rows
        only to drop them.
        """
        wanted = list(set(hashes))
        common = self.common(wanted, max_files=max_files)
        blocked: dict[int, set[int]] = {}
        for hash_, coll in common:
            blocked.setdefault(hash_, set()).add(coll)
        free = [h for h in wanted if h not in blocked]
        out: list[Posting] = []
        for chunk in _chunks(free):
            out.extend(
                self._conn.execute(
                    "SELECT hash, collection, file, layer, position, start_line, end_line "
                    "FROM fingerprints WHERE hash IN (SELECT value FROM json_each(?1))",
                    (chunk,),
                )
            )
        # A hash that is boilerplate in one collection may still be evidence in another.
        ids = list(self.collections_by_id())
        partial = [[h, c] for h, colls in blocked.items() for c in ids if c not in colls]
        for chunk in _chunks(partial):
            out.extend(
                self._conn.execute(
                    "SELECT hash, collection, file, layer, position, start_line, end_line "
                    "FROM fingerprints WHERE (hash, collection) IN "
                    "(SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
                    (chunk,),
                )
            )
        return out, common

    def common(self, hashes: Iterable[int], *, max_files: int) -> set[tuple[int, int]]:
        """The (hash, collection) pairs among ``hashes`` in more than ``max_files`` files."""
        out: set[tuple[int, int]] = set()
        for chunk in _chunks(hashes):
            rows = self._conn.execute(
                "SELECT hash, collection FROM df "
                "WHERE hash IN (SELECT value FROM json_each(?1)) AND files > ?2",
                (chunk, max_files),
            )
            out.update(rows)
        return out

    def boilerplate(self, max_files: int) -> dict[int, frozenset[int]]:
        """By collection id, the hashes found in more than ``max_files`` of its files.

        Read once from ``df`` and kept until another connection changes the index.
        """
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        cached = self._boilerplate.get(max_files)
        if cached is not None and cached[0] == version and self._version == version:
            return cached[1]
        if self._version != version:
            self._collections = None
            self._boilerplate.clear()
            self._version = version
        found: dict[int, set[int]] = defaultdict(set)
        for hash_, coll in self._conn.execute(
            "SELECT hash, collection FROM df WHERE files > ?", (max_files,)
        ):
            found[coll].add(hash_)
        out = {coll: frozenset(hashes) for coll, hashes in found.items()}
        self._boilerplate[max_files] = (version, out)
        return out

    def postings_for(self, hashes: Iterable[int], *, max_files: int) -> dict[int, list[Found]]:
        """By hash, the fingerprints of indexed files with one of ``hashes`` (see :data:`Found`),
        leaving out, per collection, those in more than ``max_files`` of its files.

        The hashes are joined with ``fingerprints`` inside SQLite, in one query: one B-tree
        seek each, and only the hashes the index holds come back. A hash that is boilerplate in
        every collection is not looked up at all.
        """
        common = self.boilerplate(max_files)
        wanted = set(hashes)
        ids = list(self.collections_by_id())
        if ids and all(coll in common for coll in ids):
            everywhere = frozenset.intersection(*(common[coll] for coll in ids))
            wanted -= everywhere
        out: dict[int, list[Found]] = defaultdict(list)
        if not wanted:
            return out
        # One JSON array parameter, read by json_each as a table that drives the join: one
        # B-tree seek per hash, in hash order (sorted: neighbouring seeks share pages). It
        # measured twice as fast as filling a temporary table first.
        rows = self._conn.execute(
            """
            SELECT f.hash, f.collection, f.file, f.layer, f.position, f.start_line, f.end_line,
                   COALESCE(d.files, 1)
            FROM json_each(?1) AS p CROSS JOIN fingerprints AS f ON f.hash = p.value
            LEFT JOIN df AS d ON d.hash = f.hash AND d.collection = f.collection
            """,
            (json.dumps(sorted(wanted)),),
        )
        for row in rows:
            if row[7] <= max_files:  # else boilerplate in that collection only
                out[row[0]].append(row)
        return out

    def files(self, ids: Iterable[int]) -> dict[int, SourceFile]:
        out: dict[int, SourceFile] = {}
        for chunk in _chunks(ids):
            rows = self._conn.execute(
                "SELECT id, collection, path, lines FROM files "
                "WHERE id IN (SELECT value FROM json_each(?1))",
                (chunk,),
            )
            out.update((row[0], SourceFile(*row)) for row in rows)
        return out

    def file_rows(self, collection: Collection) -> list[tuple[int, str, int, int, str]]:
        """(id, path, lines, tokens, sha256) of every file of ``collection``, by path."""
        return self._conn.execute(
            "SELECT id, path, lines, tokens, sha256 FROM files WHERE collection = ? ORDER BY path",
            (collection.id,),
        ).fetchall()

    def columns(self, collection: Collection) -> dict[int, Columns]:
        """The fingerprints of every file of ``collection``, as columns by file id."""
        out: dict[int, Columns] = {}
        rows = self._conn.execute(
            "SELECT file, hash, layer, position, start_line, end_line FROM fingerprints "
            "WHERE collection = ?",
            (collection.id,),
        )
        for file, hash_, layer, position, start, end in rows:
            cols = out.get(file)
            if cols is None:
                cols = out[file] = Columns.empty()
            cols.hashes.append(hash_)
            cols.layers.append(layer)
            cols.positions.append(position)
            cols.start_lines.append(start)
            cols.end_lines.append(end)
        return out


def _chunks(values: Iterable[object]) -> Iterator[str]:
    """JSON arrays of at most _BATCH values: one bound parameter per lookup."""
    batch: list[object] = []
    for value in values:
        batch.append(value)
        if len(batch) >= _BATCH:
            yield json.dumps(batch)
            batch = []
    if batch:
        yield json.dumps(batch)


@dataclass(frozen=True)
class AddSummary:
    collection: str
    created: bool
    added: int  # files new to the collection
    replaced: int  # files whose content changed
    unchanged: int  # files already indexed with the same content
    fingerprints: int  # fingerprints written


class IndexWriter:
    """Adds files to one collection inside one transaction (see :meth:`Index.writer`)."""

    def __init__(
        self,
        index: Index,
        name: str,
        mode: Mode | None,
        *,
        created: str | None = None,
        new: bool = False,
    ) -> None:
        self._index = index
        self._conn = index._conn
        self.name = name
        self._mode = mode
        self._created_at = created
        self._new = new
        self._id = 0
        self._created = False
        self._existing: dict[str, tuple[int, str]] = {}  # path -> (file id, sha256)
        self._seen: set[str] = set()
        self._stale: list[int] = []
        self._added = self._replaced = self._unchanged = self._written = 0

    def __enter__(self) -> IndexWriter:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._open_collection()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return self

    def _open_collection(self) -> None:
        row = self._conn.execute(
            "SELECT id, mode, fingerprint_version FROM collections WHERE name = ?", (self.name,)
        ).fetchone()
        if row is None:
            self._id = self._index.create_empty(
                self.name, self._mode or Mode.DENY, created=self._created_at
            )
            self._created = True
            return
        if self._new:
            raise UsageError(
                f"collection {self.name!r} already exists in {self._index.path}",
                hint=f"remove it first with `custodes index remove {self.name}`",
            )
        self._id = row[0]
        if row[2] != FINGERPRINT_VERSION:
            raise FingerprintIndexError(
                f"collection {self.name!r} was fingerprinted with version {row[2]}, "
                f"this custodes uses {FINGERPRINT_VERSION}",
                hint=f"remove it (`custodes index remove {self.name}`) and add its files again",
            )
        if self._mode is not None and self._mode.value != row[1]:
            self._conn.execute(
                "UPDATE collections SET mode = ? WHERE id = ?", (self._mode.value, self._id)
            )
        self._existing = {
            path: (file_id, sha)
            for file_id, path, sha in self._conn.execute(
                "SELECT id, path, sha256 FROM files WHERE collection = ?", (self._id,)
            )
        }

    @property
    def created(self) -> bool:
        return self._created

    def is_unchanged(self, path: str, sha256: str) -> bool:
        """Whether ``path`` is already indexed with this content (nothing to fingerprint)."""
        known = self._existing.get(path)
        if known is not None and known[1] == sha256 and path not in self._seen:
            self._seen.add(path)
            self._unchanged += 1
            return True
        return False

    def seen(self, path: str) -> bool:
        """Whether ``path`` was already added in this writer's run."""
        return path in self._seen

    def add(
        self, path: str, *, lines: int, tokens: int, sha256: str, columns: Columns
    ) -> None:
        """Add (or replace) the file ``path`` with its fingerprints."""
        columns.validate()
        known = self._existing.pop(path, None)
        if known is not None:
            self._stale.append(known[0])
            self._conn.execute("DELETE FROM files WHERE id = ?", (known[0],))
            self._replaced += 1
        elif path in self._seen:
            old = self._conn.execute(
                "SELECT id FROM files WHERE collection = ? AND path = ?", (self._id, path)
            ).fetchone()
            if old is not None:
                self._stale.append(old[0])
                self._conn.execute("DELETE FROM files WHERE id = ?", (old[0],))
        else:
            self._added += 1
        self._seen.add(path)
        cursor = self._conn.execute(
            "INSERT INTO files (collection, path, lines, tokens, fingerprints, sha256) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._id, path, lines, tokens, len(columns), sha256),
        )
        file_id = cursor.lastrowid
        self._conn.executemany(
            "INSERT INTO fingerprints "
            "(hash, collection, file, layer, position, start_line, end_line) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            zip(
                columns.hashes,
                repeat(self._id),
                repeat(file_id),
                columns.layers,
                columns.positions,
                columns.start_lines,
                columns.end_lines,
                strict=False,
            ),
        )
        self._written += len(columns)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._conn.execute("ROLLBACK")
            return
        try:
            self._finish()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        self._index._collections = None
        self._index._boilerplate.clear()  # this connection's own writes

    def _finish(self) -> None:
        if self._stale:
            # One pass over the table: the key starts with the hash, not the file.
            self._conn.execute(
                "DELETE FROM fingerprints WHERE collection = ?1 "
                "AND file IN (SELECT value FROM json_each(?2))",
                (self._id, json.dumps(self._stale)),
            )
        if self._stale or self._written:
            recount_df(self._conn, self._id)

    def summary(self) -> AddSummary:
        return AddSummary(
            self.name,
            self._created,
            self._added,
            self._replaced,
            self._unchanged,
            self._written,
        )


def recount_df(conn: sqlite3.Connection, collection: int) -> None:
    """Recount, for one collection, the files each hash occurs in (kept where >= 2)."""
    conn.execute("DELETE FROM df WHERE collection = ?", (collection,))
    conn.execute(
        """
        INSERT INTO df (hash, collection, files)
        SELECT hash, collection, COUNT(DISTINCT file) FROM fingerprints
        WHERE collection = ?1 GROUP BY hash HAVING COUNT(DISTINCT file) > 1
        """,
        (collection,),
    )


# -- building a collection from files -----------------------------------------------------------

_BATCH_CHARS = 256 * 1024  # text per job sent to a worker: small enough to share out evenly
_POOL_AFTER_CHARS = 512 * 1024  # less text than this is fingerprinted in this process
_IN_FLIGHT = 4  # jobs queued per worker

Progress = Callable[[int, int], None]  # (files fingerprinted, lines fingerprinted)


@dataclass(frozen=True)
class AddReport:
    summary: AddSummary
    lines: int  # lines fingerprinted by this run
    skipped: tuple[Skipped, ...]
    duplicates: tuple[str, ...]  # paths met twice in this run (the later one was kept)


@dataclass(frozen=True)
class _Job:
    path: str
    text: str
    language: str | None
    sha256: str


@dataclass(frozen=True)
class _Result:
    path: str
    sha256: str
    skip: SkipReason | None
    lines: int
    tokens: int
    columns: Columns
    wfp: str | None


def _fingerprint_jobs(jobs: list[_Job], want_wfp: bool) -> list[_Result]:
    """Classify and fingerprint a batch of files (in a worker process, or in this one)."""
    from custodes.fingerprint.boilerplate import classify
    from custodes.fingerprint.winnow import wfp, winnowed

    out: list[_Result] = []
    for job in jobs:
        reason = classify(job.path, job.text)
        if reason is not None:
            out.append(_Result(job.path, job.sha256, reason, 0, 0, Columns.empty(), None))
            continue
        prints = winnowed(job.text, job.language)
        out.append(
            _Result(
                job.path,
                job.sha256,
                None,
                prints.lines,
                prints.tokens,
                prints.columns,
                wfp(job.text, job.path) if want_wfp else None,
            )
        )
    return out


def add_paths(
    index: Index,
    paths: Sequence[Path],
    name: str,
    *,
    mode: Mode | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    wfp_out: TextIO | None = None,
) -> AddReport:
    """Fingerprint the files under ``paths`` into collection ``name``, in one transaction.

    Directories are walked as ``custodes scan`` walks them (``.gitignore`` honoured, archives
    and source maps opened); each file is named by its path relative to the root it was found
    under. A file already indexed with the same content is not fingerprinted again. With more
    than a little text to fingerprint and ``jobs`` > 1, the work goes to a pool of ``jobs``
    processes while this one writes.
    """
    from custodes.sources import walk

    skipped: list[Skipped] = []
    duplicates: list[str] = []
    done_files = done_lines = 0

    with index.writer(name, mode=mode) as writer:

        def handle(results: list[_Result]) -> None:
            nonlocal done_files, done_lines
            for result in results:
                if result.skip is not None:
                    skipped.append(Skipped(result.path, result.skip, "not indexed"))
                    continue
                if writer.seen(result.path):
                    duplicates.append(result.path)
                writer.add(
                    result.path,
                    lines=result.lines,
                    tokens=result.tokens,
                    sha256=result.sha256,
                    columns=result.columns,
                )
                if wfp_out is not None and result.wfp is not None:
                    wfp_out.write(result.wfp)
                done_files += 1
                done_lines += result.lines
                if progress is not None:
                    progress(done_files, done_lines)

        with _Pipeline(jobs, want_wfp=wfp_out is not None, handle=handle) as pipeline:
            for root in paths:
                for item in walk(root):
                    if isinstance(item, Skipped):
                        skipped.append(item)
                        continue
                    sha = hashlib.sha256(item.text.encode("utf-8", "surrogatepass")).hexdigest()
                    if writer.is_unchanged(item.path, sha):
                        continue
                    pipeline.put(_Job(item.path, item.text, item.language, sha))
    return AddReport(writer.summary(), done_lines, tuple(skipped), tuple(duplicates))


class _Pipeline:
    """Batches of files to fingerprint, in order, inline or through a process pool."""

    def __init__(
        self, workers: int, *, want_wfp: bool, handle: Callable[[list[_Result]], None]
    ) -> None:
        self.workers = workers
        self.want_wfp = want_wfp
        self.handle = handle
        self.batch: list[_Job] = []
        self.batch_chars = 0
        self.held: list[list[_Job]] = []  # full batches kept until the pool is worth starting
        self.held_chars = 0
        self.pool: ProcessPoolExecutor | None = None
        self.futures: deque[tuple[list[_Job], Future[list[_Result]]]] = deque()

    def __enter__(self) -> _Pipeline:
        return self

    def put(self, job: _Job) -> None:
        self.batch.append(job)
        self.batch_chars += len(job.text)
        if self.batch_chars >= _BATCH_CHARS:
            self._dispatch(self.batch, self.batch_chars)
            self.batch, self.batch_chars = [], 0

    def _dispatch(self, batch: list[_Job], chars: int) -> None:
        if self.pool is None and self.workers > 1:
            self.held.append(batch)
            self.held_chars += chars
            if self.held_chars < _POOL_AFTER_CHARS:
                return
            context = _context()
            # The fork server imports custodes while this process fingerprints what it held
            # (first, in order); the workers then start without waiting for it. (Not started
            # earlier, as a scan does: this process's SQLite writes are the slowest part of
            # an add, and fingerprinting what it held costs it no time it would not wait.)
            _warm(context)
            held, self.held = self.held, []
            for job in held:
                self.handle(_fingerprint_jobs(job, self.want_wfp))
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return
        if self.pool is None:
            self.handle(_fingerprint_jobs(batch, self.want_wfp))
            return
        self._submit(batch)

    def _submit(self, batch: list[_Job]) -> None:
        assert self.pool is not None
        if self.workers == 1:  # the pool broke: what it had is settled in order first
            while self.futures:
                self._settle()
            self.handle(_fingerprint_jobs(batch, self.want_wfp))
            return
        future = self.pool.submit(_fingerprint_jobs, batch, self.want_wfp)
        self.futures.append((batch, future))
        while len(self.futures) > self.workers * _IN_FLIGHT:
            self._settle()

    def _settle(self) -> None:
        batch, future = self.futures.popleft()
        try:
            results = future.result()
        except BrokenProcessPool:
            # A worker died (killed, or the program cannot be re-imported by one): finish
            # here, in order, what the pool had.
            if self.workers > 1:
                _broken_pool()
                self.workers = 1
            results = _fingerprint_jobs(batch, self.want_wfp)
        self.handle(results)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                if self.batch and self.pool is None:
                    self.held.append(self.batch)
                elif self.batch:
                    self._submit(self.batch)
                for batch in self.held:  # the pool was never worth starting
                    self.handle(_fingerprint_jobs(batch, self.want_wfp))
                while self.futures:
                    self._settle()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


def _broken_pool() -> None:
    log.warning(
        "a fingerprinting worker process stopped; going on in this process "
        "(a program that uses custodes should start from an `if __name__ == \"__main__\":` block)"
    )


_prestarted = False  # prestart() started the fork server: a pool is cheap to start now


def prestart() -> None:
    """Start the worker pool's fork server now, because a large run is coming (a command was
    given folders to read): it imports custodes on the other core while this process starts
    up, and the run then hands every batch to the pool from the first one, instead of
    checking ``_POOL_AFTER_CHARS`` of text itself while the server starts."""
    global _prestarted
    context = _context()
    if context.get_start_method() == "forkserver" and _warm(context):
        _prestarted = True


def prestarted() -> bool:
    """Whether :func:`prestart` started the fork server (a run then starts its pool at once)."""
    return _prestarted


def _warm(context: multiprocessing.context.BaseContext) -> bool:
    """Start ``context``'s fork server now, if it has one: a pool created later starts its
    workers without waiting for the server to import custodes. Whether it was started."""
    # Not while a program is being re-imported by a fork server (one without a main guard):
    # that would start a server from the server, and so on.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        return False
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
        return True
    return False


def _context() -> multiprocessing.context.BaseContext:
    # Not fork: this process holds an open SQLite connection a child must never inherit.
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the fingerprinting and matching code once; each worker forked from it
    # starts with it imported ("__main__" is what the server preloads by default).
    context.set_forkserver_preload(["__main__", "custodes.fingerprint.ahead"])
    return context
