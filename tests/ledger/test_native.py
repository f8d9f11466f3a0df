"""The C accelerator ``custodes.ledger._native`` against its Python twins and the references.

Every C function has a Python twin that runs where the extension is not built; both must give
the same bytes, and both must match an independent reference: the ``rfc8785`` package for
canonical JSON, ``hashlib`` and the RFC 9162 reference of ``ledgertools`` for hashes. The
extension is required here (CI has a C compiler): a missing build fails, it does not skip.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import struct
from collections import OrderedDict
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import InvalidEntry
from custodes.ledger import Receipt, tiles
from custodes.ledger.entry import (
    LeafTemplate,
    canonical,
    py_canonical,
    templates,
)
from custodes.ledger.log import py_receipts
from ledgertools import leaf_hash, mth


def _load_native() -> Any:
    # Fail, not skip: the accelerator must be built wherever the tests run.
    from custodes.ledger import _native as native

    return native


native = _load_native()

PROPS = settings(max_examples=300, deadline=None)

_any_char = st.characters(blacklist_categories=("Cs",))
MARKERS = ["\x00custodes:index\x00", "\x00custodes:recorded_at\x00"]
keys = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
    st.text(alphabet=_any_char, max_size=3),
    st.sampled_from(["\ue000", "\uffff", "\U0001f600", "\U00010000", "\ud7ff", "é", *MARKERS]),
)
strings = st.one_of(st.text(max_size=8), st.text(alphabet=_any_char, max_size=4))
integers = st.one_of(
    st.integers(-(2**53 - 1), 2**53 - 1),
    st.sampled_from([0, -1, 2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 2**64, 10**30]),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 1e16, 123.456]),
)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), integers, floats, strings),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)
objects = st.dictionaries(keys, values, max_size=8)
entries = st.dictionaries(
    keys.filter(lambda k: k not in ("index", "recorded_at")), values, max_size=8
)


def _split(leaves: bytes, ends: bytes) -> list[bytes]:
    offsets = struct.unpack(f"={len(ends) // 8}q", ends)
    return [leaves[a:b] for a, b in zip((0, *offsets), offsets)]  # noqa: B905 - one shorter


def _reference(value: Any) -> bytes | None:
    """rfc8785's bytes, or None where it refuses the value (big integers)."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return None


# -- canonical JSON -----------------------------------------------------------------------------


@PROPS
@given(objects)
def test_c_canonical_matches_python_and_rfc8785(value: dict[str, Any]) -> None:
    expected = _reference(value)
    out = native.canonical(value)
    if expected is None:
        assert out is None  # handed back: the Python path refuses it with its own message
        with pytest.raises(InvalidEntry):
            py_canonical(value)
        return
    assert out == expected
    assert py_canonical(value) == expected
    assert canonical(value) == expected


@PROPS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_c_floats_match_rfc8785(x: float) -> None:
    assert native.canonical(x) == rfc8785.dumps(x)


@PROPS
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_c_floats_from_any_bit_pattern(bits: int) -> None:
    x = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    if math.isfinite(x):
        assert native.canonical(x) == rfc8785.dumps(x)
    else:
        assert native.canonical(x) is None


def test_c_keys_sort_by_utf16_code_units() -> None:
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3, "\x7f": 4, "": 5}
    out = native.canonical(value)
    assert out == '{"":5,"a":3,"\x7f":4,"😀":2,"\ue000":1}'.encode()
    assert out == rfc8785.dumps(value)


def test_c_string_escapes() -> None:
    text = "".join(chr(c) for c in range(0x30)) + '"\\\u2028\x7f'
    assert native.canonical(text) == rfc8785.dumps(text)
    assert native.canonical(text) == json.dumps(text, ensure_ascii=False).encode()


class _Str(str):
    pass


class _Int(int):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {1: "non-str key"},
        {"t": (1, 2)},
        OrderedDict(a=1),
        {"s": _Str("x")},
        {"i": _Int(3)},
        {_Str("k"): 1},
        {"big": 2**53},
        {"small": -(2**53)},
        {"nan": float("nan")},
        {"inf": float("-inf")},
        {"lone": "\ud800"},
        {"\udfff": "lone key"},
        {"set": {1}},
        {"bytes": b"x"},
    ],
)
def test_c_hands_unusual_values_back(value: Any) -> None:
    assert native.canonical(value) is None
    blob, cuts = native.templates([value])
    assert struct.unpack("=3q", cuts) == (-1, -1, -1)
    assert blob == b""


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_c_nesting_up_to_the_python_limit_and_no_further() -> None:
    assert native.canonical(_nested(100)) == py_canonical(_nested(100))
    assert native.canonical(_nested(101)) is None
    with pytest.raises(InvalidEntry):
        canonical(_nested(101))
    deep: list[Any] = []
    for _ in range(10_000):  # far beyond any C stack the writer could use
        deep = [deep]
    assert native.canonical(deep) is None


# -- templates and leaves --------------------------------------------------------------------------


@PROPS
@given(entries, st.integers(0, 2**40), st.text(max_size=30))
def test_c_template_leaf_matches_python_and_rfc8785(
    entry: dict[str, Any], index: int, recorded_at: str
) -> None:
    record = dict(entry, index=index, recorded_at=recorded_at)
    expected = _reference(record)
    if expected is None:
        with pytest.raises(InvalidEntry):
            LeafTemplate.of(entry)
        return
    assert LeafTemplate.of(entry).leaf(index, recorded_at) == expected
    assert LeafTemplate.py_of(entry).leaf(index, recorded_at) == expected


@PROPS
@given(st.lists(entries, max_size=12), st.integers(0, 2**40), st.text(max_size=30))
def test_batch_leaves_match_python_and_rfc8785(
    batch: list[dict[str, Any]], start: int, recorded_at: str
) -> None:
    expected = [
        _reference(dict(e, index=start + i, recorded_at=recorded_at)) for i, e in enumerate(batch)
    ]
    if None in expected:
        with pytest.raises(InvalidEntry):
            templates(batch)
        return
    made = templates(batch)
    time_json = json.dumps(recorded_at, ensure_ascii=False).encode()
    leaves, ends, hashes = tiles.batch_leaves(made, start, recorded_at, time_json)
    assert _split(leaves, ends) == expected
    assert hashes == b"".join(leaf_hash(leaf) for leaf in expected if leaf is not None)
    # The Python twin, given the same batch, yields the same three buffers.
    opened = struct.unpack(f"={3 * len(batch)}q", made.cuts)
    slow_leaves = []
    templates_left = iter(made.slow)
    for i in range(len(batch)):
        if opened[3 * i] == -1:
            slow_leaves.append(next(templates_left).leaf(start + i, recorded_at))
    assert tiles.py_leaves(made.blob, made.cuts, start, time_json, slow_leaves) == (
        leaves,
        ends,
        hashes,
    )


def test_batches_share_keys_and_reorder_them() -> None:
    # Same key objects in another order, fewer keys, then a reserved one: the order cache of
    # the C path must never reuse a stale order.
    a, b, c = "alpha", "beta", "gamma"
    batch = [{a: 1, b: 2, c: 3}, {c: 3, b: 2, a: 1}, {a: 1, b: 2}, {b: [1], a: {c: None}}]
    made = templates(batch)
    leaves, ends, _ = tiles.batch_leaves(made, 7, "t", b'"t"')
    got = _split(leaves, ends)
    assert got == [
        rfc8785.dumps(dict(e, index=7 + i, recorded_at="t")) for i, e in enumerate(batch)
    ]
    with pytest.raises(InvalidEntry, match="'index' is set by the ledger"):
        templates([{a: 1}, {a: 1, "index": 2}])


def test_entries_holding_the_markers_take_the_python_path() -> None:
    batch = [{"note": MARKERS[0]}, {"k": 1}, {MARKERS[1]: MARKERS[0]}]
    made = templates(batch)
    leaves, ends, _ = tiles.batch_leaves(made, 0, "t", b'"t"')
    assert _split(leaves, ends) == [
        rfc8785.dumps(dict(e, index=i, recorded_at="t")) for i, e in enumerate(batch)
    ]


@pytest.mark.parametrize(
    ("blob", "cuts", "slow"),
    [
        (b"abc", struct.pack("=3q", 0, 1, 9), []),  # beyond the blob
        (b"abc", struct.pack("=3q", 2, 1, 3), []),  # out of order
        (b"abc", struct.pack("=2q", 0, 1), []),  # not three per entry
        (b"abc", struct.pack("=3q", -1, -1, -1), []),  # an open entry without its leaf
        (b"abc", struct.pack("=3q", 0, 1, 3), [b"x"]),  # a leaf too many
        (b"abc", struct.pack("=3q", -1, -1, -1), ["text"]),  # a leaf that is not bytes
    ],
)
def test_c_leaves_checks_its_arguments(blob: bytes, cuts: bytes, slow: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"cuts|slow"):
        native.leaves(blob, cuts, 0, b'"t"', slow)


def test_c_leaves_refuses_wrong_types() -> None:
    with pytest.raises(TypeError):
        native.leaves("text", b"", 0, b"", [])
    with pytest.raises(TypeError):
        native.leaves(b"", b"", 0, b"", ())


# -- tree hashes and receipts -----------------------------------------------------------------------


@PROPS
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70), st.data())
def test_c_mth_matches_python_and_the_reference(hashes: list[bytes], data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(hashes)))
    count = data.draw(st.integers(0, len(hashes) - start))
    blob = b"".join(hashes)
    expected = mth(hashes[start : start + count])
    assert native.mth(blob, start, count) == expected
    assert tiles.py_mth(blob, start, count) == expected


@pytest.mark.parametrize(("start", "count"), [(-1, 1), (0, 3), (3, 0), (0, -1), (1, 2)])
def test_c_mth_refuses_ranges_outside_the_hashes(start: int, count: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        native.mth(b"\x00" * 64, start, count)
    with pytest.raises(ValueError, match="outside"):
        native.mth(b"\x00" * 63, 0, 1)


def test_c_mth_of_nothing_is_the_empty_root() -> None:
    assert native.mth(b"", 0, 0) == hashlib.sha256(b"").digest()


@given(st.integers(0, 2**53), st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_c_receipts_match_python(start: int, hashes: list[bytes]) -> None:
    blob = b"".join(hashes)
    made = native.receipts(Receipt, start, blob, 99, b"root")
    assert made == py_receipts(start, blob, 99, b"root")
    assert all(type(r) is Receipt for r in made)
    assert [r.index for r in made] == list(range(start, start + len(hashes)))
    assert [r.leaf_hash for r in made] == hashes
    if made:
        with pytest.raises(AttributeError):  # still frozen
            made[0].index = 5  # type: ignore[misc]


@given(st.lists(st.integers(0, 2**31), max_size=40), st.data(), st.integers(-(2**31), 2**31))
def test_c_ends32_matches_python(values: list[int], data: st.DataObject, shift: int) -> None:
    ends = struct.pack(f"={len(values)}q", *values)
    first = data.draw(st.integers(0, len(values)))
    count = data.draw(st.integers(0, len(values) - first))
    shifted = [v + shift for v in values[first : first + count]]
    if all(0 <= v < 2**32 for v in shifted):
        expected = b"".join(v.to_bytes(4, "little") for v in shifted)
        assert native.ends32(ends, first, count, shift) == expected
        assert tiles.py_ends32(ends, first, count, shift) == expected
    else:
        with pytest.raises(ValueError, match="32 bits"):
            native.ends32(ends, first, count, shift)
        with pytest.raises(struct.error):
            tiles.py_ends32(ends, first, count, shift)


def test_c_ends32_refuses_ranges_outside_the_ends() -> None:
    with pytest.raises(ValueError, match="outside"):
        native.ends32(b"\x00" * 16, 1, 2, 0)
    with pytest.raises(ValueError, match="outside"):
        native.ends32(b"\x00" * 15, 0, 1, 0)


def test_c_receipts_leave_the_cycle_collector_alone() -> None:
    # A batch's receipts are tens of thousands of objects that cannot form cycles: tracked,
    # they made the collector walk the caller's whole heap again and again.
    made = native.receipts(Receipt, 7, b"\x01" * 64, 9, b"root")
    assert not hasattr(made[0], "__dict__")
    assert [gc.is_tracked(r) for r in made] == [False, False]
    assert made == py_receipts(7, b"\x01" * 64, 9, b"root")
    # Fields that are not an int and bytes could hold a cycle: those receipts stay tracked.
    odd = native.receipts(Receipt, 0, b"\x01" * 32, 9, [b"root"])
    assert gc.is_tracked(odd[0])
    assert odd[0].root == [b"root"]


def test_c_receipts_refuses_classes_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="plain class"):
        native.receipts(int, 0, b"\x00" * 32, 1, b"r")
    with pytest.raises(ValueError, match="32 bytes"):
        native.receipts(Receipt, 0, b"\x00" * 31, 1, b"r")
