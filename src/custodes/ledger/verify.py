"""Full verification of a ledger: every leaf, every stored node, the signed checkpoints.

What it proves, on one consistent snapshot:

1. entries are indices ``0 … size-1``, none missing, none beyond the tree; each row's leaf is
   canonical JSON carrying its own index, and hashes to the stored leaf hash;
2. every stored interior node is the hash of its two children (level by level, streamed);
3. the latest checkpoint is signed by the trusted key, names this log, covers every entry and
   its root is the root of the entries it counts;
4. with an earlier checkpoint a verifier kept: it is signed, this ledger has at least its size,
   and the tree it signs is a prefix of this one (a consistency proof is built and checked).
   This catches a rolled-back or rewritten history even when whoever holds the key re-signed
   the database afterwards: the verifier's copy predates the rewrite.

It stops at the first failure, with a :class:`VerificationError` that names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from custodes.errors import InvalidEntry, MalformedNote, VerificationError
from custodes.ledger import merkle
from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.entry import canonical
from custodes.ledger.interface import Reader
from custodes.ledger.log import Ledger
from custodes.ledger.note import Verifier

__all__ = ["VerifyReport", "verify_ledger"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyReport:
    size: int
    root: bytes
    checkpoint_size: int
    earlier_checkpoint_size: int | None


def _fail(message: str) -> VerificationError:
    return VerificationError(message)


def _check_entries(reader: Reader, size: int, progress: Progress | None) -> None:
    expected = 0
    for index, leaf, leaf_hash in reader.entries(0):
        if index >= size:
            raise _fail(
                f"entry {index} lies beyond the tree's {size} entries: "
                "it was added behind custodes' back"
            )
        if index != expected:
            raise _fail(f"entry {expected} is missing: it was deleted")
        if merkle.hash_leaf(leaf) != leaf_hash:
            raise _fail(f"entry {index}: its content does not match its leaf hash: it was changed")
        try:
            data = json.loads(leaf)
            canonical_ok = isinstance(data, dict) and canonical(data) == leaf
        except (ValueError, InvalidEntry):
            canonical_ok, data = False, None
        if not canonical_ok or not isinstance(data, dict):
            raise _fail(f"entry {index}: its content is not canonical JSON: it was changed")
        if data.get("index") != index:
            raise _fail(
                f"entry {index}: holds the entry recorded as index {data.get('index')}: "
                "rows were reordered"
            )
        expected += 1
        if progress is not None and expected % 10_000 == 0:
            progress(expected, size)
    if expected < size:
        raise _fail(f"entry {expected} is missing: the log was truncated to {expected} entries")


def _level_hashes(reader: Reader, level: int) -> Iterator[tuple[int, bytes]]:
    if level == 0:
        return ((index, leaf_hash) for index, _, leaf_hash in reader.entries(0))
    return reader.level(level)


def _check_nodes(reader: Reader, size: int) -> None:
    level = 1
    while True:
        count = size >> level
        stored = reader.level(level)
        lower = _level_hashes(reader, level - 1)
        for index in range(count):
            (_, left), (_, right) = next(lower), next(lower)
            row = next(stored, None)
            if row is None or row[0] != index:
                raise _fail(f"tree node (level {level}, index {index}) is missing")
            if row[1] != merkle.hash_children(left, right):
                raise _fail(
                    f"tree node (level {level}, index {index}) does not match the entries "
                    "below it: it was changed"
                )
        extra = next(stored, None)
        if extra is not None:
            raise _fail(
                f"tree node (level {level}, index {extra[0]}) lies beyond the tree: "
                "it was added behind custodes' back"
            )
        if count == 0:
            return
        level += 1


def _root_at(reader: Reader, size: int) -> bytes:
    ids = merkle.right_edge(size)
    return merkle.range_hash_from(ids, reader.nodes(ids))


def verify_ledger(
    ledger: Ledger,
    *,
    checkpoint: str | None = None,
    verifier: Verifier | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the whole ledger; raise :class:`VerificationError` naming the first failure.

    ``verifier`` is the key trusted for signatures (default: the one the ledger records — pass
    one kept elsewhere to rule out a swapped key). ``checkpoint`` is an earlier signed
    checkpoint kept by a verifier; malformed input raises :class:`MalformedNote` (a usage error).
    """
    trusted = verifier or ledger.verifier
    earlier = Checkpoint.from_text(_text_of(checkpoint)) if checkpoint is not None else None
    with ledger.snapshot() as reader:
        size = reader.size()
        _check_entries(reader, size, progress)
        _check_nodes(reader, size)
        root = _root_at(reader, size)

        latest_text = reader.checkpoint()
        if latest_text is None:
            raise _fail("the ledger holds no signed checkpoint")
        try:
            latest = Checkpoint.open(latest_text, trusted)
        except MalformedNote as exc:
            raise _fail(
                f"the stored checkpoint is malformed ({exc.message}): it was changed"
            ) from exc
        if latest.origin != ledger.origin:
            raise _fail(f"the latest checkpoint is for {latest.origin!r}, not {ledger.origin!r}")
        if latest.size > size:
            raise _fail(
                f"the latest checkpoint signs {latest.size} entries but the ledger holds {size}: "
                "it was rolled back"
            )
        if latest.size < size:
            raise _fail(
                f"entries {latest.size}…{size - 1} are not covered by the signed checkpoint: "
                "they were added behind custodes' back"
            )
        if latest.root != root:
            raise _fail(
                "the latest checkpoint's root is not the root of the entries: history was rewritten"
            )

        earlier_size = None
        if checkpoint is not None and earlier is not None:
            Checkpoint.open(checkpoint, trusted)
            if earlier.origin != ledger.origin:
                raise _fail(
                    f"the given checkpoint is for {earlier.origin!r}, not this ledger "
                    f"({ledger.origin!r})"
                )
            if earlier.size > size:
                raise _fail(
                    f"the given checkpoint signs {earlier.size} entries but the ledger holds "
                    f"{size}: it was rolled back"
                )
            ids = merkle.consistency_proof_nodes(earlier.size, size) + merkle.right_edge(
                earlier.size
            )
            known = reader.nodes(ids)
            old_root = merkle.range_hash_from(merkle.right_edge(earlier.size), known)
            proof = merkle.consistency_proof_from(earlier.size, size, known)
            if old_root != earlier.root or not merkle.verify_consistency(
                earlier.size, size, earlier.root, root, proof
            ):
                raise _fail(
                    f"the ledger is not an extension of the given checkpoint (size {earlier.size}): "
                    "history was rewritten"
                )
            earlier_size = earlier.size
    return VerifyReport(size, root, latest.size, earlier_size)


def _text_of(signed: str) -> str:
    """The checkpoint text of a signed note, parsed strictly (raises MalformedNote)."""
    from custodes.ledger.note import parse_note

    return parse_note(signed).text
