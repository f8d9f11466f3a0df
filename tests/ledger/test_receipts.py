"""Receipts: the lazy sequence an append_many returns reads as the list of receipts would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.ledger import Ledger, Receipt, Receipts


def _reference(start: int, hashes: list[bytes], size: int, root: bytes) -> list[Receipt]:
    # Written out by hand, not through custodes' own builders.
    return [Receipt(start + i, h, size, root) for i, h in enumerate(hashes)]


@given(
    st.integers(0, 2**53),
    st.lists(st.binary(min_size=32, max_size=32), max_size=12),
    st.integers(-15, 15),
    st.integers(-15, 15),
    st.sampled_from([None, 1, 2, -1, 3]),
)
def test_receipts_read_as_the_list_does(
    start: int, hashes: list[bytes], i: int, j: int, step: int | None
) -> None:
    ref = _reference(start, hashes, 77, b"r" * 32)
    got = Receipts(start, b"".join(hashes), 77, b"r" * 32)
    assert len(got) == len(ref)
    assert list(got) == ref
    assert got == ref
    assert ref == got
    assert got[i:j:step] == ref[i:j:step]
    if -len(ref) <= i < len(ref):
        assert got[i] == ref[i]
    else:
        with pytest.raises(IndexError):
            got[i]
    assert list(reversed(got)) == ref[::-1]
    if ref:
        assert ref[-1] in got
        assert got.index(ref[-1]) == len(ref) - 1
    assert got != [*ref, Receipt(0, b"x" * 32, 1, b"")]


def test_append_many_returns_receipts_that_prove(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.db", name="test.example/receipts") as led:
        assert led.append_many([]) == []
        receipts = led.append_many([{"n": n} for n in range(300)])
        assert isinstance(receipts, Receipts)
        assert [r.index for r in receipts] == list(range(300))
        last = receipts[-1]
        assert last.tree_size == 300
        proof = led.prove(last.index, last.tree_size)
        assert proof.leaf_hash == last.leaf_hash
        assert proof.root == last.root
        assert proof.verify()
        with pytest.raises(TypeError):
            hash(receipts)
