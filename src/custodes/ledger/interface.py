"""The one small interface every ledger store implements (SQLite, PostgreSQL).

A store knows tables, not trees: the Merkle math, canonical JSON and signing live in
:mod:`custodes.ledger.log`, shared by every store. A store guarantees two things:

* a write transaction is exclusive across processes and hosts, and once it returns the
  entries, nodes and checkpoint it wrote are durable together or not at all;
* a snapshot sees one committed state of the log, however many writers run meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from custodes.ledger.entry import Payload
from custodes.ledger.merkle import NodeId

__all__ = ["LedgerMeta", "NewEntry", "Reader", "Store", "WriteTx"]


@dataclass(frozen=True)
class LedgerMeta:
    """What a ledger is: its origin (checkpoint first line and key name) and verifier key."""

    origin: str
    verifier: str
    key_path: str | None
    keep_payloads: bool
    created_at: str


@dataclass(frozen=True)
class NewEntry:
    index: int
    leaf: bytes
    leaf_hash: bytes
    payloads: Sequence[Payload] = ()


class Reader(Protocol):
    """Reads of one consistent snapshot of the log."""

    def size(self) -> int: ...

    def checkpoint(self) -> str | None: ...

    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Hashes of perfect nodes; level 0 is a leaf hash. Missing ids are left out."""
        ...

    def entry(self, index: int) -> tuple[bytes, bytes] | None:
        """``(leaf, leaf_hash)`` as stored, or None."""
        ...

    def entries(self, start: int) -> Iterator[tuple[int, bytes, bytes]]:
        """``(index, leaf, leaf_hash)`` of every stored row from ``start`` on, by index."""
        ...

    def level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """``(index, hash)`` of every stored node of ``level`` >= 1, by index."""
        ...

    def payloads(self, index: int) -> list[Payload]: ...


class WriteTx(Reader, Protocol):
    """An exclusive write transaction: reads see the latest state, writes commit together."""

    def write(
        self,
        entries: Sequence[NewEntry],
        nodes: Mapping[NodeId, bytes],
        size: int,
        checkpoint: str,
    ) -> None: ...

    def erase_payloads(self, index: int) -> int: ...


class Store(Protocol):
    url: str

    def create(self, meta: LedgerMeta, checkpoint: str) -> None:
        """Create the tables and the empty log; :class:`LedgerExists` if there is one."""
        ...

    def meta(self) -> LedgerMeta: ...

    def snapshot(self) -> AbstractContextManager[Reader]: ...

    def write(self) -> AbstractContextManager[WriteTx]: ...

    def close(self) -> None: ...
