"""The ledger: an append-only log of JSON entries in an RFC 9162 Merkle tree with signed checkpoints.

Every append is one write transaction that assigns indices, stores the canonical leaves, the
tree hashes they complete (bundles and tiles, see :mod:`custodes.ledger.tiles`) and a freshly
signed checkpoint, and commits durably: an
acknowledged entry is already covered by a signed checkpoint. Concurrent appends inside one
process are grouped into one transaction (group commit); appends from other processes queue on
the store's write lock.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from custodes.errors import (
    IndexOutOfRange,
    KeyFileError,
    KeyMismatch,
    MalformedNote,
    UsageError,
    VerificationError,
)
from custodes.ledger import merkle, tiles
from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.entry import (
    Entry,
    LeafTemplate,
    Payload,
    TemplateBatch,
    _time_json,
    make_payloads,
    payload_digest,
    recorded_at_now,
    templates,
)
from custodes.ledger.interface import LedgerMeta, Reader, Store
from custodes.ledger.note import Signer, Verifier, parse_note

try:  # the optional C accelerator (setup.py)
    from custodes.ledger import _native
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _native = None  # type: ignore[assignment]

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "Ledger",
    "Receipt",
    "Receipts",
    "make_receipts",
    "open_store",
    "py_receipts",
]

log = logging.getLogger("custodes.ledger")

_GROUP_MAX = 1024
_LINGER_MAX = 0.002


def open_store(db: str | os.PathLike[str]) -> Store:
    """The store behind ``db``: a PostgreSQL URL, or else a SQLite file path."""
    text = os.fspath(db)
    if text.startswith(("postgresql://", "postgres://")):
        from custodes.ledger.postgres import PostgresStore

        return PostgresStore(text)
    from custodes.ledger.sqlite import SqliteStore

    return SqliteStore(text)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an append returns once the entry is durable, and the signed tree that covers it.

    Slotted: batches make tens of thousands, and a receipt without a ``__dict__`` is smaller,
    cheaper to make and, made in C, can stay out of the cycle collector.
    """

    index: int
    leaf_hash: bytes
    tree_size: int = 0
    root: bytes = b""


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes

    def verify(self) -> bool:
        return merkle.verify_inclusion(
            self.index, self.size, self.leaf_hash, self.hashes, self.root
        )


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]
    old_root: bytes
    new_root: bytes

    def verify(self) -> bool:
        return merkle.verify_consistency(
            self.old_size, self.new_size, self.old_root, self.new_root, self.hashes
        )


class _Group:
    """Entries one caller appends together (one transaction, in order), and how it is woken.

    ``wake`` is held from the start; it is released once, either when the group is durable or
    when the group is handed the lead (``lead``): then its caller commits the next batch.
    Waking exactly the callers whose entries are done, instead of every waiting thread, keeps
    many concurrent appenders from stampeding for the lock after each commit. The entries
    travel as one :class:`TemplateBatch`, not an object each; the caller builds its receipts
    from the commit's result once woken, outside the commit.
    """

    __slots__ = (
        "batch",
        "count",
        "error",
        "hashes",
        "lead",
        "payloads",
        "root",
        "size",
        "start",
        "wake",
    )

    def __init__(self, batch: TemplateBatch, payloads: list[tuple[int, Payload]]) -> None:
        self.batch = batch
        self.count = batch.count
        self.payloads = payloads  # (offset in the group, payload)
        self.lead = False
        self.error: BaseException | None = None
        self.start = -1  # index of the first entry, once durable
        self.hashes = b""
        self.size = 0
        self.root = b""
        self.wake = threading.Lock()
        self.wake.acquire()

    def receipts(self) -> Receipts:
        if self.error is not None:
            raise self.error
        if self.start < 0:  # pragma: no cover - woken without a commit: a bug, not an input
            raise RuntimeError("append woken before its entries were committed")
        return Receipts(self.start, self.hashes, self.size, self.root)


class Receipts(Sequence[Receipt]):
    """The receipts of one :meth:`Ledger.append_many`, one per entry, in order.

    A read-only sequence over the batch's leaf hashes: a :class:`Receipt` is made when it is
    read (all at once, in C, when the sequence is iterated). A batch of 10,000 then costs one
    object, not 10,000, for callers that keep only some or none of them. Equal to any sequence
    of the same receipts, a list included.
    """

    __slots__ = ("_hashes", "_root", "_size", "_start")

    def __init__(self, start: int, hashes: bytes, size: int, root: bytes) -> None:
        self._start = start
        self._hashes = hashes
        self._size = size
        self._root = root

    def __len__(self) -> int:
        return len(self._hashes) // 32

    @overload
    def __getitem__(self, item: int) -> Receipt: ...

    @overload
    def __getitem__(self, item: slice) -> list[Receipt]: ...

    def __getitem__(self, item: int | slice) -> Receipt | list[Receipt]:
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        count = len(self)
        i = item + count if item < 0 else item
        if not 0 <= i < count:
            raise IndexError("receipt index out of range")
        return Receipt(self._start + i, self._hashes[32 * i : 32 * i + 32], self._size, self._root)

    def __iter__(self) -> Iterator[Receipt]:
        return iter(make_receipts(self._start, self._hashes, self._size, self._root))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Receipts):
            return (self._start, self._hashes, self._size, self._root) == (
                other._start, other._hashes, other._size, other._root,
            )  # fmt: skip
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which do not hash

    def __repr__(self) -> str:
        return (
            f"Receipts(first={self._start}, count={len(self)}, tree_size={self._size}, "
            f"root={self._root.hex()})"
        )


def py_receipts(start: int, hashes: bytes, size: int, root: bytes) -> list[Receipt]:
    """One :class:`Receipt` per 32-byte leaf hash, indices from ``start`` on."""
    return [
        Receipt(start + i, hashes[32 * i : 32 * i + 32], size, root)
        for i in range(len(hashes) // 32)
    ]


def make_receipts(start: int, hashes: bytes, size: int, root: bytes) -> list[Receipt]:
    # The frozen dataclass's __init__ costs about a microsecond a receipt, as much as the
    # rest of a batch append per entry; the C twin builds the same objects for a tenth, and
    # keeps them out of the cycle collector (they hold two ints and two bytes): a caller
    # holding a large batch's entries no longer pays full collections for its receipts.
    if _native is not None:
        return _native.receipts(Receipt, start, hashes, size, root)
    return py_receipts(start, hashes, size, root)


def _write_key_file(path: Path, signer: Signer) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:  # pragma: no cover - checked by the caller first
        raise KeyFileError(f"key file {path} already exists") from exc
    except OSError as exc:
        raise KeyFileError(
            f"cannot create key file {path}: {exc.strerror}", hint="check the folder exists"
        ) from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.to_string() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_signer(path: Path) -> Signer:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"signing key {path} does not exist",
            hint="give the ledger's key with --key FILE (created by `custodes ledger init`)",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read signing key {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by others; run: chmod 600 %s", path, path)
    try:
        return Signer.from_string(text)
    except MalformedNote as exc:
        raise KeyFileError(f"{path} is not a custodes signing key: {exc.message}") from exc


def _fold_root(size: int, known: Mapping[merkle.NodeId, bytes]) -> bytes:
    return merkle.range_hash_from(merkle.right_edge(size), known)


def _join(
    chunks: list[tuple[bytes, bytes, bytes]],
) -> tuple[bytes, bytes, bytes]:
    """One ``(leaves, ends, hashes)`` from several, the ends shifted to the joined leaves."""
    if len(chunks) == 1:
        return chunks[0]
    ends = array("q")
    offset = 0
    for leaves, chunk_ends, _ in chunks:
        part = array("q")
        part.frombytes(chunk_ends)
        ends.extend(array("q", (e + offset for e in part)) if offset else part)
        offset += len(leaves)
    return (
        b"".join(c[0] for c in chunks),
        ends.tobytes(),
        b"".join(c[2] for c in chunks),
    )


class Ledger:
    """An open ledger. Thread-safe; cheap reads; appends group-commit across threads."""

    def __init__(self, store: Store, *, key: str | os.PathLike[str] | None = None) -> None:
        self._store = store
        self.meta: LedgerMeta = store.meta()
        self.verifier = Verifier.from_string(self.meta.verifier)
        self._key_path = (
            Path(key)
            if key is not None
            else (Path(self.meta.key_path) if self.meta.key_path else None)
        )
        self._signer: Signer | None = None
        self._lock = threading.Lock()
        self._queue: deque[_Group] = deque()
        self._committing = False  # a leader is committing or about to: others queue
        self._arrived = threading.Condition(self._lock)  # wakes a lingering leader
        self._expect = 0  # how many queued callers a lingering leader waits for (0: none)
        self._last_batch = 0  # callers (groups) the last commit held
        self._tip: str | None = None  # the last checkpoint this process signed or checked
        self._tip_parsed: Checkpoint | None = None  # ``_tip`` read, once

    # -- opening --
    @classmethod
    def create(
        cls,
        db: str | os.PathLike[str],
        *,
        name: str | None = None,
        key: str | os.PathLike[str] | None = None,
        keep_payloads: bool = False,
    ) -> Ledger:
        """Create a ledger at ``db`` and its signing key (or take the existing key ``key``)."""
        store = open_store(db)
        if key is None:
            if not _is_sqlite(store):
                raise UsageError(
                    "a PostgreSQL ledger needs --key FILE for its signing key",
                    hint="give a path where custodes creates the key, or an existing key file",
                )
            key_path = Path(os.fspath(db) + ".key")
        else:
            key_path = Path(key)
        key_path = key_path.absolute()
        created_key = False
        if key_path.exists():
            signer = load_signer(key_path)
            if name is not None and name != signer.name:
                raise KeyMismatch(
                    f"key {key_path} is named {signer.name!r}, not {name!r}",
                    hint="leave out --name to use the key's name, or give another --key",
                )
        else:
            signer = Signer.generate(name or _default_origin())
            created_key = True
        meta = LedgerMeta(
            origin=signer.name,
            verifier=signer.verifier().to_string(),
            key_path=str(key_path),
            keep_payloads=keep_payloads,
            created_at=recorded_at_now(),
        )
        empty = Checkpoint(signer.name, 0, merkle.EMPTY_ROOT).sign(signer)
        if created_key:
            _write_key_file(key_path, signer)
        try:
            store.create(meta, empty)
        except BaseException:
            if created_key:  # a refused init leaves no stray key behind
                key_path.unlink(missing_ok=True)
            store.close()
            raise
        ledger = cls(store, key=key_path)
        ledger._signer = signer
        return ledger

    @classmethod
    def open(
        cls, db: str | os.PathLike[str], *, key: str | os.PathLike[str] | None = None
    ) -> Ledger:
        return cls(open_store(db), key=key)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def origin(self) -> str:
        return self.meta.origin

    @property
    def url(self) -> str:
        return self._store.url

    def signer(self) -> Signer:
        if self._signer is None:
            if self._key_path is None:
                raise KeyFileError(
                    f"{self.url} records no signing key path",
                    hint="give the ledger's key with --key FILE",
                )
            signer = load_signer(self._key_path)
            if signer.verifier() != self.verifier:
                raise KeyMismatch(
                    f"key {self._key_path} is not the signing key of {self.url}",
                    hint=f"the ledger's verifier key is {self.meta.verifier}",
                )
            self._signer = signer
        return self._signer

    # -- appending --
    def append(
        self, entry: Mapping[str, Any], *, payloads: Mapping[str, str | bytes] | None = None
    ) -> Receipt:
        """Append one entry; returns once it is durable. Concurrent callers share a commit."""
        return self._append(self._group([entry], [payloads] if payloads else None))[0]

    def append_many(
        self,
        entries: Sequence[Mapping[str, Any] | LeafTemplate],
        *,
        payloads: Sequence[Mapping[str, str | bytes] | None] | None = None,
    ) -> Receipts:
        """Append entries in one transaction, in order; all are durable when it returns.

        An entry may be given already canonicalised, as a :class:`LeafTemplate`. Concurrent
        callers share a commit, as with :meth:`append`; a group is never split. Returns the
        entries' :class:`Receipts`, a read-only sequence (``list(...)`` for a list).
        """
        if payloads is not None and len(payloads) != len(entries):
            raise UsageError("append_many needs one payload mapping (or None) per entry")
        if not entries:
            return Receipts(0, b"", 0, b"")
        return self._append(self._group(entries, payloads))

    def _group(
        self,
        entries: Sequence[Mapping[str, Any] | LeafTemplate],
        payloads: Sequence[Mapping[str, str | bytes] | None] | None,
    ) -> _Group:
        """Canonicalise in the caller, so a bad entry fails here, not in a shared commit."""
        if payloads is None or not any(payloads):
            return _Group(templates(entries), [])
        digests: list[Mapping[str, str] | None] = []
        records: list[tuple[int, Payload]] = []
        for offset, (entry, mapping) in enumerate(zip(entries, payloads, strict=True)):
            if not mapping:
                digests.append(None)
                continue
            if isinstance(entry, LeafTemplate):
                raise UsageError("payloads go with a plain entry, not a prepared LeafTemplate")
            found, kept = make_payloads(mapping, keep=self.meta.keep_payloads)
            digests.append(found)
            records.extend((offset, payload) for payload in kept)
        return _Group(templates(entries, digests), records)

    def _append(self, group: _Group) -> Receipts:
        """Queue ``group``; commit batches as the leader if no one is, else wait to be woken.

        One leader at a time takes the queue (up to ``_GROUP_MAX`` entries) into one
        transaction; when done it wakes the callers it committed for and hands the lead to the
        first group still queued, so a commit is always under way while appends wait.
        """
        with self._lock:
            self._queue.append(group)
            if self._expect and len(self._queue) >= self._expect:
                self._arrived.notify()
            lead = not self._committing
            self._committing = True
        if not lead:
            group.wake.acquire()
            if not group.lead:
                return group.receipts()
        self._lead(group)
        return group.receipts()

    def _lead(self, mine: _Group) -> None:
        """Commit one batch holding ``mine`` (first in the queue), then hand over the lead."""
        batch: list[_Group] = []
        successor: _Group | None = None
        try:
            with self._lock:
                if self._last_batch > 1:
                    self._linger()
                taken = 0
                queue = self._queue
                while queue and (not batch or taken + queue[0].count <= _GROUP_MAX):
                    group = queue.popleft()
                    batch.append(group)
                    taken += group.count
                self._last_batch = len(batch)
            self._commit(batch)
        finally:
            with self._lock:
                if not batch and mine in self._queue:  # interrupted before taking any
                    self._queue.remove(mine)
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                else:
                    self._committing = False
            for group in batch:
                if group is not mine:
                    group.wake.release()
            if successor is not None:
                successor.wake.release()

    def _linger(self) -> None:
        """Hold the commit until as many callers wait as shared the last one (lock held).

        Under concurrency, callers that just got their receipts append again a moment later;
        waiting for them (at most a couple of milliseconds) lets them share this commit instead
        of each paying for one. A lone caller never lingers: its last batch was its own (one
        group, however many entries). The leader is woken once, when enough have arrived, not
        by every arrival.
        """
        deadline = time.monotonic() + _LINGER_MAX
        self._expect = min(self._last_batch, _GROUP_MAX)
        try:
            while len(self._queue) < self._expect:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._arrived.wait(remaining)
        finally:
            self._expect = 0

    def _commit(self, batch: list[_Group]) -> None:
        try:
            signer = self.signer()
            with self._store.write() as tx:
                size = tx.size()
                partial = tx.edge(size)
                self._check_tip(tx.checkpoint(), size, partial)
                recorded_at = recorded_at_now()
                time_json = _time_json(recorded_at)
                chunks = []
                payloads: list[tuple[int, Payload]] = []
                index = size
                for group in batch:
                    group.start = index
                    chunks.append(tiles.batch_leaves(group.batch, index, recorded_at, time_json))
                    payloads.extend((index + offset, p) for offset, p in group.payloads)
                    index += group.count
                leaves, ends, hashes = _join(chunks)
                base = size - (size & (tiles.BUNDLE - 1))
                plan = tiles.plan_append(
                    size, partial or {}, lambda: tx.tail_leaves(base, size), leaves, ends, hashes
                )
                signed = Checkpoint(self.origin, index, plan.root)
                checkpoint = signed.sign(signer)
                tx.write(plan, payloads, index, checkpoint)
            self._tip, self._tip_parsed = checkpoint, signed
        except BaseException as exc:
            for group in batch:
                group.error = exc
            return
        for group, (_, _, group_hashes) in zip(batch, chunks, strict=True):
            group.hashes, group.size, group.root = group_hashes, index, plan.root

    def _check_tip(self, text: str | None, size: int, partial: Mapping[int, bytes] | None) -> None:
        """Refuse to extend a tree that no longer matches its own signed checkpoint.

        Otherwise a history rewritten behind custodes' back (nodes recomputed to match) would
        be covered by the next genuine signature. The signature is checked only when another
        writer signed since this process last did, which keeps single appends cheap.
        """
        hint = "run `custodes ledger verify` to see what changed; nothing was appended"
        if partial is None:
            raise VerificationError(
                f"{self.url}: rows at the tree's right edge are missing or damaged",
                hint="run `custodes ledger verify` to see what was removed",
            )
        if text is None:
            raise VerificationError(f"{self.url} holds no signed checkpoint", hint=hint)
        try:
            if text == self._tip and self._tip_parsed is not None:
                tip = self._tip_parsed  # what this process signed: read when it signed it
            elif text == self._tip:
                tip = Checkpoint.from_text(parse_note(text).text)
            else:
                tip = Checkpoint.open(text, self.verifier)
        except MalformedNote as exc:
            raise VerificationError(
                f"the stored checkpoint is malformed ({exc.message})", hint=hint
            ) from exc
        root = tiles.fold(tiles.right_edge_from(size, partial))
        if tip.origin != self.origin or tip.size != size or tip.root != root:
            raise VerificationError(
                "the stored tree does not match its signed checkpoint", hint=hint
            )
        self._tip, self._tip_parsed = text, tip

    # -- reading --
    def size(self) -> int:
        with self._store.snapshot() as reader:
            return reader.size()

    def checkpoint(self) -> str:
        """The latest signed checkpoint (C2SP tlog-checkpoint as a signed note)."""
        with self._store.snapshot() as reader:
            text = reader.checkpoint()
        if text is None:
            from custodes.errors import LedgerCorrupt

            raise LedgerCorrupt(f"{self.url} holds no checkpoint")
        return text

    def _check_size(self, reader: Reader, size: int | None) -> int:
        current = reader.size()
        if size is None:
            return current
        if size < 0 or size > current:
            raise IndexOutOfRange(
                f"tree size {size} is out of range: the ledger holds {current} entries",
                hint=f"give a size from 0 to {current}",
            )
        return size

    def _root(self, reader: Reader, size: int) -> bytes:
        return _fold_root(size, reader.nodes(merkle.right_edge(size)))

    def root(self, size: int | None = None) -> bytes:
        with self._store.snapshot() as reader:
            return self._root(reader, self._check_size(reader, size))

    def entry(self, index: int) -> Entry:
        with self._store.snapshot() as reader:
            current = reader.size()
            row = reader.entry(index) if 0 <= index < current else None
        if row is None:
            raise IndexOutOfRange(
                f"entry {index} is out of range: the ledger holds {current} entries",
                hint=f"give an index from 0 to {current - 1}"
                if current
                else "append entries first",
            )
        return Entry(index, row[0], row[1])

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """The inclusion proof of entry ``index`` in the tree of ``size`` (default: current)."""
        with self._store.snapshot() as reader:
            size = self._check_size(reader, size)
            if not 0 <= index < size:
                raise IndexOutOfRange(
                    f"entry {index} is not in a tree of {size} entries",
                    hint=f"give an index from 0 to {size - 1}" if size else "append entries first",
                )
            ids = merkle.inclusion_proof_nodes(index, size) + merkle.right_edge(size)
            ids.append((0, index))
            known = reader.nodes(ids)
        _require(known, ids, self.url)
        hashes = merkle.inclusion_proof_from(index, size, known)
        return InclusionProof(
            index, size, known[(0, index)], tuple(hashes), _fold_root(size, known)
        )

    def consistency(self, old: int, new: int | None = None) -> ConsistencyProof:
        """The consistency proof from the tree of ``old`` entries to the tree of ``new``."""
        with self._store.snapshot() as reader:
            new = self._check_size(reader, new)
            if not 0 <= old <= new:
                raise IndexOutOfRange(
                    f"old size {old} is out of range", hint=f"give a size from 0 to {new}"
                )
            ids = (
                merkle.consistency_proof_nodes(old, new)
                + merkle.right_edge(old)
                + merkle.right_edge(new)
            )
            known = reader.nodes(ids)
        _require(known, ids, self.url)
        hashes = merkle.consistency_proof_from(old, new, known)
        return ConsistencyProof(
            old, new, tuple(hashes), _fold_root(old, known), _fold_root(new, known)
        )

    # -- payloads (outside the tree) --
    def payloads(self, index: int) -> list[Payload]:
        self.entry(index)  # range check
        with self._store.snapshot() as reader:
            return reader.payloads(index)

    def check_payload(self, index: int, name: str, content: str | bytes) -> bool:
        """Does ``content`` match the digest entry ``index`` recorded for payload ``name``?"""
        digests = self.entry(index).data.get("digests") or {}
        data = content.encode() if isinstance(content, str) else content
        with self._store.snapshot() as reader:
            stored = reader.payloads(index)
        for payload in stored:
            if payload.name == name:
                return bool(digests.get(name) == payload_digest(payload.salt, data))
        return False

    def erase(self, index: int) -> int:
        """Erase the payloads and salts of entry ``index``; the tree stays verifiable."""
        self.entry(index)
        with self._store.write() as tx:
            return tx.erase_payloads(index)

    def snapshot(self) -> AbstractContextManager[Reader]:
        """A consistent read snapshot of the store, for verification."""
        return self._store.snapshot()


def _require(known: Mapping[merkle.NodeId, bytes], ids: Sequence[merkle.NodeId], url: str) -> None:
    missing = [node for node in ids if node not in known]
    if missing:
        level, idx = missing[0]
        raise VerificationError(
            f"{url}: tree node (level {level}, index {idx}) is missing",
            hint="run `custodes ledger verify` to see what was removed",
        )


def _is_sqlite(store: Store) -> bool:
    from custodes.ledger.sqlite import SqliteStore

    return isinstance(store, SqliteStore)


def _default_origin() -> str:
    import secrets

    return f"custodes.local/ledger/{secrets.token_hex(4)}"
