"""The one small interface every ledger store implements (SQLite, PostgreSQL).

A store knows tables, not trees: the Merkle math, canonical JSON and signing live in
:mod:`custodes.ledger.log`, shared by every store. A store guarantees two things:

* a write transaction is exclusive across processes and hosts, and once it returns the
  bundles, tiles, tail rows and checkpoint it wrote are durable together or not at all;
* a snapshot sees one committed state of the log, however many writers run meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from custodes.ledger.entry import Payload
from custodes.ledger.merkle import NodeId

if TYPE_CHECKING:
    from custodes.ledger.tiles import Plan

__all__ = ["LedgerMeta", "Reader", "Store", "WriteTx"]


@dataclass(frozen=True)
class LedgerMeta:
    """What a ledger is: its origin (checkpoint first line and key name) and verifier key."""

    origin: str
    verifier: str
    key_path: str | None
    keep_payloads: bool
    created_at: str


class Reader(Protocol):
    """Reads of one consistent snapshot of the log (rows as :mod:`custodes.ledger.tiles` says)."""

    def size(self) -> int: ...

    def checkpoint(self) -> str | None: ...

    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Hashes of perfect nodes of the current tree; level 0 is a leaf hash. Ids whose rows
        are missing (or not in the tree) are left out."""
        ...

    def edge(self, size: int) -> dict[int, bytes] | None:
        """Hashes of every incomplete tile of a tree of ``size``; None if one is damaged."""
        ...

    def entry(self, index: int) -> tuple[bytes, bytes] | None:
        """``(leaf, leaf_hash)`` as stored, or None."""
        ...

    def entries(self, start: int) -> Iterator[tuple[int, bytes, bytes]]:
        """``(index, leaf, leaf_hash)`` of every stored entry from ``start`` on, by index."""
        ...

    def bundles(self, start: int) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        """``(k, leaves, ends, leaf hashes)`` of every stored bundle from ``start`` on."""
        ...

    def tiles(self, level: int) -> Iterator[tuple[int, bytes]]:
        """``(index, hashes)`` of every stored tile of ``level``, by index."""
        ...

    def tile_levels(self) -> list[int]: ...

    def tile(self, level: int, index: int) -> bytes | None: ...

    def tail_rows(self, start: int = 0) -> list[tuple[int, bytes, bytes]]: ...

    def payloads(self, index: int) -> list[Payload]: ...


class WriteTx(Reader, Protocol):
    """An exclusive write transaction: reads see the latest state, writes commit together."""

    def tail_leaves(self, start: int, end: int) -> list[bytes]: ...

    def write(
        self,
        plan: Plan,
        payloads: Sequence[tuple[int, Payload]],
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
