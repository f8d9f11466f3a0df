"""The stored form of the tree: bundles of 256 entries and tiles of 256 hashes (Tessera-style).

Rows, whatever the store::

    bundle k        entries 256k … 256k+255: their canonical leaves end to end, and 256 end
                    offsets (little-endian uint32, relative to the bundle's start)
    tile (L, j)     the hashes of the perfect nodes (8L, 256j …) as far as they exist: level 0
                    holds leaf hashes. A full tile is written once; the last, partial tile of a
                    level is rewritten as it grows (level 0 by every commit, level L >= 1 once
                    per 256**L entries), so the right edge is always one row per level
    tail            one row per entry of the last, incomplete bundle: (index, leaf, leaf hash);
                    folded into a bundle when it fills

Any perfect node ``(level, i)`` is the Merkle tree hash of ``2**(level % 8)`` hashes of one tile
at level ``8 * (level // 8)`` (or of tail rows), so a proof reads O(log n / 8) rows and hashes
at most 255 pairs per row. One row per 256 entries instead of one per entry and per node is
what makes a batch append cheap; the tail keeps a single durable append cheap too.

This module is pure (no storage): it plans what a commit writes and computes nodes from rows.
``leaves`` and ``mth`` run in C where the accelerator is built; ``py_leaves`` and ``py_mth`` are
the Python twins that give the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from custodes.ledger import merkle
from custodes.ledger.entry import TemplateBatch
from custodes.ledger.merkle import NodeId

try:  # the optional C accelerator (setup.py)
    from custodes.ledger import _native
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _native = None  # type: ignore[assignment]

__all__ = [
    "BUNDLE",
    "HASH",
    "Plan",
    "edge_state_levels",
    "ends32",
    "leaves",
    "mth",
    "node_source",
    "plan_append",
    "py_ends32",
    "py_leaves",
    "py_mth",
    "right_edge_from",
    "unpack_ends",
]

BUNDLE = 256
HASH = 32
_BITS = 8  # levels per tile: 2**8 == BUNDLE
_ENDS = struct.Struct("<256I")


def unpack_ends(blob: bytes) -> tuple[int, ...] | None:
    """The 256 end offsets of a bundle, or None if the blob is not 256 uint32."""
    if len(blob) != _ENDS.size:
        return None
    return _ENDS.unpack(blob)


# -- leaves and hashes: C with a Python twin ------------------------------------------------


def py_leaves(
    blob: bytes, cuts: bytes, start: int, time_json: bytes, slow: list[bytes]
) -> tuple[bytes, bytes, bytes]:
    """``(leaves, ends, hashes)`` of a batch: see ``_native.leaves``."""
    offsets = array("q")
    offsets.frombytes(cuts)
    out: list[bytes] = []
    ends = array("q")
    hashes: list[bytes] = []
    pos = prev = taken = 0
    for i in range(len(offsets) // 3):
        a, b, end = offsets[3 * i : 3 * i + 3]
        if a == -1:
            leaf = slow[taken]
            taken += 1
        else:
            leaf = b"".join(
                (blob[prev:a], str(start + i).encode(), blob[a:b], time_json, blob[b:end])
            )
            prev = end
        out.append(leaf)
        pos += len(leaf)
        ends.append(pos)
        hashes.append(merkle.hash_leaf(leaf))
    return b"".join(out), ends.tobytes(), b"".join(hashes)


def py_mth(hashes: bytes, start: int, count: int) -> bytes:
    """RFC 9162 Merkle tree hash of ``count`` 32-byte leaf hashes from hash ``start`` on."""
    return merkle.root_from_leaf_hashes(
        hashes[HASH * i : HASH * (i + 1)] for i in range(start, start + count)
    )[0]


def py_ends32(ends: bytes, first: int, count: int, shift: int) -> bytes:
    """``count`` little-endian uint32 ``ends[first + i] + shift`` (``ends``: native int64)."""
    values = array("q")
    values.frombytes(ends)
    if first < 0 or count < 0 or first + count > len(values):
        raise ValueError("ends32: range outside the ends")
    return struct.pack(f"<{count}I", *(e + shift for e in values[first : first + count]))


if _native is not None:
    _c_ends32: Callable[[bytes, int, int, int], bytes] = _native.ends32

    def ends32(ends: bytes, first: int, count: int, shift: int) -> bytes:
        return _c_ends32(ends, first, count, shift)

    _c_leaves: Callable[..., tuple[bytes, bytes, bytes]] = _native.leaves
    _c_mth: Callable[[bytes, int, int], bytes] = _native.mth

    def leaves(
        blob: bytes, cuts: bytes, start: int, time_json: bytes, slow: list[bytes]
    ) -> tuple[bytes, bytes, bytes]:
        return _c_leaves(blob, cuts, start, time_json, slow)

    def mth(hashes: bytes, start: int, count: int) -> bytes:
        return _c_mth(hashes, start, count)

else:  # pragma: no cover - the accelerator is built wherever a C compiler is found
    leaves = py_leaves
    mth = py_mth
    ends32 = py_ends32


def batch_leaves(
    batch: TemplateBatch, start: int, recorded_at: str, time_json: bytes
) -> tuple[bytes, bytes, bytes]:
    """Fill in a batch's indices (from ``start``) and time; hash every leaf."""
    slow: list[bytes] = []
    if batch.slow:
        opened = array("q")
        opened.frombytes(batch.cuts)
        templates = iter(batch.slow)
        for i in range(batch.count):
            if opened[3 * i] == -1:
                slow.append(next(templates).leaf(start + i, recorded_at))
    return leaves(batch.blob, batch.cuts, start, time_json, slow)


# -- where a node's hashes are --------------------------------------------------------------


def node_source(node: NodeId) -> tuple[int, int, int, int]:
    """``(tile level, tile index, first hash, count)``: node = MTH of those tile hashes."""
    level, index = node
    tile_level, rest = divmod(level, _BITS)
    first = index << rest
    return tile_level, first >> _BITS, first & (BUNDLE - 1), 1 << rest


def right_edge_from(size: int, partial: Mapping[int, bytes]) -> list[tuple[NodeId, bytes]]:
    """The right edge of a tree of ``size`` (as :func:`merkle.right_edge`) with its hashes.

    ``partial[L]`` holds the hashes of the last, incomplete tile of level ``L`` (the tail's
    leaf hashes for level 0): the perfect nodes of the right edge are runs of it.
    """
    edge: list[tuple[NodeId, bytes]] = []
    for node in merkle.right_edge(size):
        tile_level, _, first, count = node_source(node)
        edge.append((node, mth(partial[tile_level], first, count)))
    return edge


def edge_state_levels(size: int) -> list[tuple[int, int, int]]:
    """``(level, tile index, hashes)`` of each incomplete tile a tree of ``size`` has."""
    out = []
    level = 0
    while size >> (_BITS * level):
        count = size >> (_BITS * level)
        if count & (BUNDLE - 1):
            out.append((level, count >> _BITS, count & (BUNDLE - 1)))
        level += 1
    return out


# -- planning a commit ---------------------------------------------------------------------


@dataclass
class Plan:
    """The rows one commit writes, and the tree it makes."""

    bundles: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (k, leaves, ends)
    tiles: list[tuple[int, int, bytes]] = field(default_factory=list)  # (level, index, hashes)
    tail: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (index, leaf, hash)
    clear_tail: bool = False  # the old tail was folded into a bundle: delete its rows
    edge: list[tuple[NodeId, bytes]] = field(default_factory=list)
    root: bytes = b""


def plan_append(
    size: int,
    partial: Mapping[int, bytes],
    tail_leaves: Callable[[], list[bytes]],
    new_leaves: bytes,
    new_ends: bytes,
    new_hashes: bytes,
) -> Plan:
    """What appending a batch to a tree of ``size`` writes.

    ``partial`` holds the hashes of every incomplete tile (level 0: the tail's leaf hashes);
    ``tail_leaves`` reads the tail's leaves, only called when a bundle fills.
    """
    plan = Plan()
    ends = array("q")
    ends.frombytes(new_ends)
    n = len(ends)
    t = size & (BUNDLE - 1)
    base = size - t
    level0 = partial.get(0, b"") + new_hashes
    new_size = size + n
    full_end = new_size - (new_size & (BUNDLE - 1))  # entries below are in full bundles
    # The leaves of entries base … new_size-1, as (blob, offset of each end) pieces
    if full_end > base:
        old = tail_leaves() if t else []
        plan.clear_tail = bool(t)
        first_new = 0  # index into the new entries
        k = base >> _BITS
        while (k + 1) * BUNDLE <= new_size:
            start = k * BUNDLE
            take_old = old if start == base else []
            need_new = BUNDLE - len(take_old)
            lo = ends[first_new - 1] if first_new else 0
            hi = ends[first_new + need_new - 1]
            old_bytes = b"".join(take_old)
            pieces = old_bytes + new_leaves[lo:hi]
            old_ends: list[int] = []
            pos = 0
            for leaf in take_old:
                pos += len(leaf)
                old_ends.append(pos)
            packed = struct.pack(f"<{len(old_ends)}I", *old_ends) + ends32(
                new_ends, first_new, need_new, pos - lo
            )
            plan.bundles.append((k, pieces, packed))
            tile = level0[HASH * (start - base) : HASH * (start - base + BUNDLE)]
            plan.tiles.append((0, k, tile))
            first_new += need_new
            k += 1
        tail_from = first_new
    else:
        tail_from = 0
    for i in range(tail_from, n):
        lo = ends[i - 1] if i else 0
        plan.tail.append(
            (size + i, new_leaves[lo : ends[i]], new_hashes[HASH * i : HASH * (i + 1)])
        )
    if plan.tail:  # the partial leaf hash tile of the tail, rewritten whole
        plan.tiles.append((0, full_end >> _BITS, level0[HASH * (full_end - base) :]))
    # Levels above: each full tile of level L-1 adds one hash to level L.
    state: dict[int, bytes] = {0: level0[HASH * (full_end - base) :]}
    added = [tile for _, _, tile in plan.tiles if len(tile) == HASH * BUNDLE]
    level = 1
    while added or new_size >> (_BITS * level):
        count_before = size >> (_BITS * level)
        current = partial.get(level, b"") if count_before & (BUNDLE - 1) else b""
        next_added: list[bytes] = []
        if added:
            grown = current + b"".join(mth(tile, 0, BUNDLE) for tile in added)
            first_tile = count_before >> _BITS
            for j in range(0, len(grown), HASH * BUNDLE):
                chunk = grown[j : j + HASH * BUNDLE]
                plan.tiles.append((level, first_tile + j // (HASH * BUNDLE), chunk))
                if len(chunk) == HASH * BUNDLE:
                    next_added.append(chunk)
                else:
                    state[level] = chunk
        elif current:
            state[level] = current
        added = next_added
        level += 1
    plan.edge = right_edge_from(new_size, state)
    plan.root = _fold(plan.edge)
    return plan


def _fold(edge: Sequence[tuple[NodeId, bytes]]) -> bytes:
    if not edge:
        return merkle.EMPTY_ROOT
    acc = edge[-1][1]
    for _, digest in reversed(edge[:-1]):
        acc = merkle.hash_children(digest, acc)
    return acc


def fold(edge: Sequence[tuple[NodeId, bytes]]) -> bytes:
    """The root of a tree from its right edge (as :func:`merkle.range_hash_from`)."""
    return _fold(edge)


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()
