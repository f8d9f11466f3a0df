"""Merkle tree math of RFC 9162 §2.1: pure functions, no storage.

A tree over leaves ``D[0:n]`` hashes a leaf as ``SHA-256(0x00 || d)`` and an interior node as
``SHA-256(0x01 || left || right)``; the left subtree of a node over ``k + m`` leaves holds the
largest power of two ``k < k + m`` leaves.

Storage keeps only *perfect* subtrees: the node ``(level, i)`` is the hash of the ``2**level``
leaves starting at ``i * 2**level``. Every hash a proof needs is a perfect node or a fold of the
few perfect nodes along the tree's right edge, so a proof costs O(log n) node reads. The
functions here say which nodes are needed (``*_nodes``) and then combine them (``*_from``); the
verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "NodeId",
    "append_nodes",
    "consistency_proof_from",
    "consistency_proof_nodes",
    "hash_children",
    "hash_leaf",
    "inclusion_proof_from",
    "inclusion_proof_nodes",
    "range_hash_from",
    "range_nodes",
    "right_edge",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree: leaves ``index * 2**level`` … ``(index+1) * 2**level - 1``."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect nodes whose fold is the hash of leaves ``[start, end)``.

    Valid for the ranges RFC 9162's recursions produce: ``start`` is a multiple of a power of two
    that is at least ``end - start``, so greedy decomposition into decreasing powers of two yields
    aligned, perfect subtrees.
    """
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def range_hash_from(nodes: Sequence[NodeId], hashes: Mapping[NodeId, bytes]) -> bytes:
    """Fold the perfect nodes of :func:`range_nodes` into the range's Merkle tree hash."""
    if not nodes:
        return EMPTY_ROOT
    acc = hashes[nodes[-1]]
    for node in reversed(nodes[:-1]):
        acc = hash_children(hashes[node], acc)
    return acc


def right_edge(size: int) -> list[NodeId]:
    """The perfect nodes of a tree of ``size`` leaves, left to right (its "compact range")."""
    return range_nodes(0, size)


def _inclusion_ranges(index: int, lo: int, hi: int) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]); returns the ranges whose hashes form the path.
    path: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.4.1 PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true).
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        if m == hi - lo:
            if not complete:
                ranges.append((lo, hi))
            break
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    ranges.reverse()
    return ranges


def _nodes_of(ranges: Iterable[tuple[int, int]]) -> list[NodeId]:
    seen: dict[NodeId, None] = {}
    for start, end in ranges:
        for node in range_nodes(start, end):
            seen[node] = None
    return list(seen)


def inclusion_proof_nodes(index: int, size: int) -> list[NodeId]:
    """The perfect nodes needed to build the inclusion proof of leaf ``index`` in ``size``."""
    return _nodes_of(_inclusion_ranges(index, 0, size))


def inclusion_proof_from(index: int, size: int, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    return [
        range_hash_from(range_nodes(a, b), hashes) for a, b in _inclusion_ranges(index, 0, size)
    ]


def consistency_proof_nodes(old: int, new: int) -> list[NodeId]:
    if old == 0 or old == new:
        return []
    return _nodes_of(_consistency_ranges(old, new))


def consistency_proof_from(old: int, new: int, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    if old == 0 or old == new:
        return []
    return [range_hash_from(range_nodes(a, b), hashes) for a, b in _consistency_ranges(old, new)]


def append_nodes(
    size: int, edge: Mapping[NodeId, bytes], leaf_hashes: Sequence[bytes]
) -> dict[NodeId, bytes]:
    """The perfect nodes above level 0 that appending ``leaf_hashes`` to a tree of ``size`` creates.

    ``edge`` holds the nodes of :func:`right_edge` ``(size)``: the only existing nodes a new
    parent can have as its left child.
    """
    known: dict[NodeId, bytes] = dict(edge)
    created: dict[NodeId, bytes] = {}
    for offset, leaf in enumerate(leaf_hashes):
        index = size + offset
        known[(0, index)] = leaf
        level, node, acc = 0, index, leaf
        while node & 1:
            acc = hash_children(known[(level, node - 1)], acc)
            level, node = level + 1, node >> 1
            known[(level, node)] = acc
            created[(level, node)] = acc
    return created


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> tuple[bytes, int]:
    """Root and size of the tree over a stream of leaf hashes, in O(log n) memory."""
    stack: list[tuple[int, bytes]] = []  # (level, hash) of the compact range, left to right
    size = 0
    for leaf in leaf_hashes:
        level, acc = 0, leaf
        while stack and stack[-1][0] == level:
            acc = hash_children(stack.pop()[1], acc)
            level += 1
        stack.append((level, acc))
        size += 1
    if not stack:
        return EMPTY_ROOT, 0
    acc = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        acc = hash_children(left, acc)
    return acc, size


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` with ``leaf_hash`` in ``root``?"""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree ``old_root`` is a prefix of ``new_root``?"""
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
