"""Full verification of a ledger: every leaf, every stored node, the signed checkpoints.

What it proves, on one consistent snapshot:

1. entries are indices ``0 … size-1``, none missing, none beyond the tree; each row's leaf is
   canonical JSON carrying its own index, and hashes to the stored leaf hash;
2. every bundle's leaf hash tile matches its leaves, and every stored tile above holds exactly
   the hashes of the nodes below it (level by level);
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
from collections.abc import Callable
from dataclasses import dataclass

from custodes.errors import InvalidEntry, MalformedNote, VerificationError
from custodes.ledger import merkle, tiles
from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.entry import canonical
from custodes.ledger.interface import Reader
from custodes.ledger.log import Ledger
from custodes.ledger.note import Verifier
from custodes.ledger.sql import bundle_leaves

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


def _check_leaf(index: int, leaf: bytes, leaf_hash: bytes) -> None:
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


def _beyond(index: int, size: int) -> VerificationError:
    return _fail(
        f"entry {index} lies beyond the tree's {size} entries: it was added behind custodes' back"
    )


def _check_entries(reader: Reader, size: int, progress: Progress | None) -> list[bytes]:
    """Check every entry, bundles then tail; return the level-8 node hashes of the bundles."""
    full = size >> 8
    level8: list[bytes] = []
    expected = 0
    for k, leaves, ends, hashes in reader.bundles(0):
        first = k * tiles.BUNDLE
        if k >= full:
            raise _beyond(first, size)
        if first != expected:
            raise _fail(f"entry {expected} is missing: it was deleted")
        if hashes is None or len(hashes) != tiles.HASH * tiles.BUNDLE:
            raise _fail(f"entry {first}: the leaf hashes of its bundle are missing or cut short")
        for j, leaf in enumerate(bundle_leaves(k, leaves, ends)):
            _check_leaf(first + j, leaf, hashes[tiles.HASH * j : tiles.HASH * (j + 1)])
        level8.append(tiles.mth(hashes, 0, tiles.BUNDLE))
        expected += tiles.BUNDLE
        if progress is not None and expected % 10_240 == 0:
            progress(expected, size)
    tail: list[bytes] = []
    for index, leaf, leaf_hash in reader.tail_rows(0):
        if index >= size:
            raise _beyond(index, size)
        if index < expected:
            raise _fail(
                f"entry {index} has a second row beside its bundle: "
                "it was added behind custodes' back"
            )
        if index != expected:
            raise _fail(f"entry {expected} is missing: it was deleted")
        _check_leaf(index, leaf, leaf_hash)
        tail.append(leaf_hash)
        expected += 1
        if progress is not None and expected % 10_000 == 0:
            progress(expected, size)
    if expected < size:
        raise _fail(f"entry {expected} is missing: the log was truncated to {expected} entries")
    _check_tail_tile(reader, size, tail)
    return level8


def _check_tail_tile(reader: Reader, size: int, tail: list[bytes]) -> None:
    """The partial leaf hash tile of the tail holds exactly the tail's leaf hashes."""
    full = size >> 8
    first = full * tiles.BUNDLE
    stored = reader.tile(0, full)
    if not tail:
        if stored is not None:
            raise _fail(
                f"tree node (level 0, index {first}) lies beyond the tree: "
                "it was added behind custodes' back"
            )
        return
    if stored is None:
        raise _fail(f"tree node (level 0, index {first}) is missing")
    for j in range(max(len(tail), len(stored) // tiles.HASH + 1)):
        have = stored[tiles.HASH * j : tiles.HASH * (j + 1)]
        want = tail[j] if j < len(tail) else b""
        if have == want:
            continue
        if not want:
            raise _fail(
                f"tree node (level 0, index {first + j}) lies beyond the tree: "
                "it was added behind custodes' back"
            )
        if not have:
            raise _fail(f"tree node (level 0, index {first + j}) is missing")
        raise _fail(
            f"tree node (level 0, index {first + j}) does not match entry {first + j}'s "
            "leaf hash: it was changed"
        )


def _check_tiles(reader: Reader, size: int, level8: list[bytes]) -> None:
    """Every stored tile above the leaves holds exactly the hashes of the nodes below it."""
    below = level8  # hashes of tree level 8 * level, recomputed from the level under it
    stray_zero = next((k for k, _ in reader.tiles(0) if k > size >> 8), None)
    if stray_zero is not None:
        raise _fail(
            f"tree node (level 0, index {stray_zero * tiles.BUNDLE}) lies beyond the full "
            "bundles: it was added behind custodes' back"
        )
    level = 1
    while True:
        tree_level = 8 * level
        count = size >> tree_level
        stored = reader.tiles(level)
        for j in range(0, count, tiles.BUNDLE):
            want = b"".join(below[j : j + tiles.BUNDLE])
            row = next(stored, None)
            if row is None or row[0] != j // tiles.BUNDLE:
                raise _fail(f"tree node (level {tree_level}, index {j}) is missing")
            have = row[1]
            for i in range(0, max(len(want), len(have)), tiles.HASH):
                a, b = want[i : i + tiles.HASH], have[i : i + tiles.HASH]
                if a == b:
                    continue
                index = j + i // tiles.HASH
                if not b:
                    raise _fail(f"tree node (level {tree_level}, index {index}) is missing")
                if not a:
                    raise _fail(
                        f"tree node (level {tree_level}, index {index}) lies beyond the tree: "
                        "it was added behind custodes' back"
                    )
                raise _fail(
                    f"tree node (level {tree_level}, index {index}) does not match the "
                    "entries below it: it was changed"
                )
        extra = next(stored, None)
        if extra is not None:
            raise _fail(
                f"tree node (level {tree_level}, index {extra[0] * tiles.BUNDLE}) lies beyond "
                "the tree: it was added behind custodes' back"
            )
        if count == 0:
            if any(found > level for found in reader.tile_levels()):
                top = max(reader.tile_levels())
                raise _fail(
                    f"tree node (level {8 * top}, index 0) lies beyond the tree: "
                    "it was added behind custodes' back"
                )
            return
        below = [
            tiles.mth(b"".join(below[j : j + tiles.BUNDLE]), 0, tiles.BUNDLE)
            for j in range(0, count - tiles.BUNDLE + 1, tiles.BUNDLE)
        ]
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
        level8 = _check_entries(reader, size, progress)
        _check_tiles(reader, size, level8)
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
