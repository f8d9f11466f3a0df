"""Ledger entries: RFC 8785 canonical JSON, strict parsing, validation, payload digests.

Expected bytes are written by hand from RFC 8785 (its §3.2 examples and the number samples of
its Appendix B), or produced by ``ref_jcs`` below: a small serializer written from the RFC's
rules (UTF-16 key order, ECMAScript number formatting, the JSON.stringify string escapes) that
shares no code with :mod:`custodes.ledger.entry`, whose fast ``json.dumps`` path and
``rfc8785`` fallback it checks alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import InvalidEntry
from custodes.ledger.entry import (
    canonical,
    make_payloads,
    parse_entry_line,
    payload_digest,
    prepare_entry,
    recorded_at_now,
    template_from_line,
    validate_entry,
)

# --------------------------------------------------------------------------------------------
# Reference serializer (RFC 8785 §3.2).
# --------------------------------------------------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_SHORT_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def ref_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError("lone surrogate")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def ref_number(x: float) -> str:
    """ECMAScript Number::toString (ECMA-262 §7.1.12.1), as RFC 8785 §3.2.2.3 requires."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + ref_number(-x)
    # repr gives the shortest digit string that reads back as x (closest when tied).
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)  # type: ignore[operator]
    k = len(digits)
    n = exponent + k  # type: ignore[operator]
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def ref_jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise ValueError("integer outside the I-JSON range")
        return str(value)
    if isinstance(value, float):
        return ref_number(value)
    if isinstance(value, str):
        return ref_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(ref_jcs(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: key.encode("utf-16-be"))
        return "{" + ",".join(ref_string(k) + ":" + ref_jcs(value[k]) for k in keys) + "}"
    raise TypeError(type(value))


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


# RFC 8785 Appendix B: IEEE 754 binary64 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def test_reference_reproduces_appendix_b() -> None:
    for bits, text in APPENDIX_B:
        assert ref_number(_double(bits)) == text, bits


# --------------------------------------------------------------------------------------------
# Golden cases, by hand from RFC 8785.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "text"), APPENDIX_B)
def test_canonical_numbers_appendix_b(bits: str, text: str) -> None:
    assert canonical({"n": _double(bits)}) == b'{"n":' + text.encode() + b"}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"a": 1.0}, b'{"a":1}'),
        ({"a": 100.0}, b'{"a":100}'),
        ({"a": -0.0}, b'{"a":0}'),
        ({"a": 4.50}, b'{"a":4.5}'),
        ({"a": 2e-3}, b'{"a":0.002}'),
        ({"a": 1e-7}, b'{"a":1e-7}'),
        ({"a": 1e20}, b'{"a":100000000000000000000}'),
        ({"a": 1e21}, b'{"a":1e+21}'),
        ({"a": 1e30}, b'{"a":1e+30}'),
        ({"a": 1.5e300}, b'{"a":1.5e+300}'),
        ({"a": 0.1}, b'{"a":0.1}'),
        ({"a": 9007199254740991}, b'{"a":9007199254740991}'),
        ({"a": -9007199254740991}, b'{"a":-9007199254740991}'),
        ({"a": [3, 1, 2]}, b'{"a":[3,1,2]}'),
        ({"a": (1, "x")}, b'{"a":[1,"x"]}'),
        ({"a": [None, True, False]}, b'{"a":[null,true,false]}'),
        ({"z": {"b": [], "a": {}}, "a": ""}, b'{"a":"","z":{"a":{},"b":[]}}'),
        ({"k": "€$\x0f\nA'B\"\\/"}, b'{"k":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\/"}'),
        ({"k": "\b\t\f\r\x00\x1f\x7f"}, b'{"k":"\\b\\t\\f\\r\\u0000\\u001f\x7f"}'),
        ({"k": "\u2028\u2029"}, b'{"k":"\xe2\x80\xa8\xe2\x80\xa9"}'),
        ({"emoji": "😀"}, b'{"emoji":"\xf0\x9f\x98\x80"}'),
        ({}, b"{}"),
    ],
)
def test_canonical_golden(value: dict[str, Any], expected: bytes) -> None:
    assert canonical(value) == expected


def test_canonical_rfc8785_example() -> None:
    # RFC 8785 §3.2.3: the example input and its canonical form.
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],'
        '"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonical(parse_entry_line(text)) == expected


def test_canonical_sorts_keys_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+1F600 (UTF-16 D83D DE00) sorts before U+FB33, unlike by code point.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert canonical(value) == expected
    assert canonical({"\ue000": 1, "\U0001f600": 2}) == '{"😀":2,"\ue000":1}'.encode()


# --------------------------------------------------------------------------------------------
# Parsing.
# --------------------------------------------------------------------------------------------


def test_parse_entry_line_accepts_objects() -> None:
    assert parse_entry_line('  {"a": [1, 2.5, "x", null, true], "b": {}}\n') == {
        "a": [1, 2.5, "x", None, True],
        "b": {},
    }


@pytest.mark.parametrize(
    "line",
    [
        "[]",
        "[1]",
        "1",
        '"text"',
        "null",
        "true",
        "NaN",
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": [1, NaN]}',
        '{"a": 1, "a": 2}',
        '{"a": 1, "a": 1}',
        '{"x": {"a": 1, "a": 2}}',
        '[{"a": 1, "a": 2}]',
        '{"a":}',
        "",
        "   ",
        "{",
        "{'a': 1}",
        '{"a": 1} {"b": 2}',
        '{"a": 1},',
        "{a: 1}",
        '{"a": 01}',
        '{"a": "\x01"}',
        '{"a": .5}',
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
    ],
)
def test_parse_entry_line_rejects(line: str) -> None:
    with pytest.raises(InvalidEntry):
        parse_entry_line(line)


def test_overflowing_number_does_not_get_through() -> None:
    # 1e400 is valid JSON syntax but not a finite double: parsing plus validation refuses it.
    with pytest.raises(InvalidEntry):
        validate_entry(parse_entry_line('{"a": 1e400}'))
    with pytest.raises(InvalidEntry):
        validate_entry(parse_entry_line('{"a": -1e400}'))


# --------------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"a": 1},
        {"a": 2**53 - 1, "b": -(2**53 - 1)},
        {"a": [1, 2.5, "x", None, True, {"b": {}}]},
        {"nested": {"index": 1, "recorded_at": "x"}},  # only top-level names are reserved
        {"digests": {"x": "y"}},  # reserved only when the ledger adds digests
        {},
    ],
)
def test_validate_entry_accepts(entry: dict[str, Any]) -> None:
    validate_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        {"index": 1},
        {"recorded_at": "2024-01-01T00:00:00.000000Z"},
        {"a": 1, "index": None},
        {"a": 2**53},
        {"a": -(2**53)},
        {"a": 10**30},
        {"a": [1, 2, 2**64]},
        {"a": {"b": -(2**63)}},
        {1: "a"},
        {"a": {1: "b"}},
        {"a": [{None: 1}]},
        {"a": {True: 1}},
        {"a": {1.5: 1}},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": [float("-inf")]},
        {"a": b"bytes"},
        {"a": {1, 2}},
        {"a": object()},
        {"a": "\ud800"},
        {"\udc00": 1},
        [("a", 1)],
        "{}",
        None,
    ],
)
def test_validate_entry_rejects(entry: Any) -> None:
    with pytest.raises(InvalidEntry):
        validate_entry(entry)


def test_validate_entry_reserves_digests_when_the_ledger_adds_them() -> None:
    with pytest.raises(InvalidEntry):
        validate_entry({"digests": {}}, with_digests=True)
    validate_entry({"a": 1}, with_digests=True)


def _nested(depth: int) -> dict[str, Any]:
    """An entry whose containers (the entry object included) nest ``depth`` deep."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


def test_validate_entry_accepts_nesting_of_100() -> None:
    validate_entry(_nested(100))


@pytest.mark.parametrize("depth", [101, 150, 500])
def test_validate_entry_rejects_nesting_deeper_than_100(depth: int) -> None:
    with pytest.raises(InvalidEntry):
        validate_entry(_nested(depth))


def test_validate_entry_very_deep_nesting_is_invalid_entry() -> None:
    with pytest.raises(InvalidEntry):
        validate_entry(_nested(20_000))


# --------------------------------------------------------------------------------------------
# Leaf bytes.
# --------------------------------------------------------------------------------------------

TIME = "2024-05-06T07:08:09.123456Z"


def test_prepare_entry_golden() -> None:
    entry = {"z": 1, "b": "x", "j": [True], "a": None}
    assert prepare_entry(entry, 7, TIME, None) == (
        b'{"a":null,"b":"x","index":7,"j":[true],"recorded_at":"' + TIME.encode() + b'","z":1}'
    )
    digests = {"prompt": "sha256:00", "completion": "sha256:11"}
    assert prepare_entry({"m": 2.50}, 0, TIME, digests) == (
        b'{"digests":{"completion":"sha256:11","prompt":"sha256:00"},"index":0,"m":2.5,'
        b'"recorded_at":"' + TIME.encode() + b'"}'
    )


def test_prepare_entry_rejects_reserved_fields() -> None:
    for entry in ({"index": 1}, {"recorded_at": "x"}):
        with pytest.raises(InvalidEntry):
            prepare_entry(entry, 0, TIME, None)
    with pytest.raises(InvalidEntry):
        prepare_entry({"digests": 1}, 0, TIME, {"p": "sha256:00"})


def test_prepare_entry_with_ledger_markers_in_the_entry() -> None:
    # Strings that look like whatever placeholders an implementation might use for the two
    # fields must come out as ordinary data.
    entries = [
        {"a": "\x00custodes:index\x00"},
        {"b": {"index": "\x00custodes:index\x00", "recorded_at": "\x00custodes:recorded_at\x00"}},
        {"b": ["\x00custodes:recorded_at\x00"], "c": {"recorded_at": 1}},
        {"\x00custodes:index\x00": '"index":"\\u0000custodes:index\\u0000"'},
    ]
    for entry in entries:
        expected = ref_jcs({**entry, "index": 3, "recorded_at": TIME}).encode()
        assert prepare_entry(entry, 3, TIME, None) == expected, entry


@pytest.mark.parametrize("recorded_at", ['2024"01', "back\\slash", "tab\there", "café"])
def test_prepare_entry_escapes_recorded_at(recorded_at: str) -> None:
    # The leaf is canonical JSON whatever string the time is given as.
    expected = ref_jcs({"a": 1, "index": 0, "recorded_at": recorded_at}).encode()
    assert prepare_entry({"a": 1}, 0, recorded_at, None) == expected


def test_recorded_at_now_format() -> None:
    stamp = recorded_at_now()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", stamp)
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)


# --------------------------------------------------------------------------------------------
# Properties: both canonicalisation paths against the reference.
# --------------------------------------------------------------------------------------------

MARKERS = ["\x00custodes:index\x00", "\x00custodes:recorded_at\x00", "index", "recorded_at"]

_any_char = st.characters(blacklist_categories=("Cs",))
strings = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8),
    st.text(alphabet=_any_char, max_size=4),
    st.sampled_from(MARKERS),
)
keys = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
    st.text(alphabet=_any_char, max_size=3),
    st.sampled_from(["\ue000", "\uffff", "\U0001f600", "\U00010000", "\ud7ff", *MARKERS]),
)
integers = st.one_of(
    st.integers(-(2**53 - 1), 2**53 - 1),
    st.sampled_from([0, 1, -1, 2**53 - 1, -(2**53 - 1), 10**15, 9 * 10**15, -(10**15)]),
)
floats = st.floats(allow_nan=False, allow_infinity=False)


def _json_values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(keys, inner, max_size=4),
        ),
        max_leaves=16,
    )


_look_alikes = st.fixed_dictionaries(
    {"index": st.sampled_from(MARKERS)}, optional={"recorded_at": st.sampled_from(MARKERS)}
)
values = _json_values(st.one_of(st.none(), st.booleans(), integers, floats, strings, _look_alikes))
# Without floats: an integral double from 2**53 up prints as digits that read back as an int.
float_free_values = _json_values(st.one_of(st.none(), st.booleans(), integers, strings))
entries = st.dictionaries(
    keys.filter(lambda k: k not in ("index", "recorded_at", "digests")), values, max_size=6
)
timestamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
)
digest_maps = st.none() | st.dictionaries(
    keys,
    st.binary(max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest()),
    min_size=1,
    max_size=3,
)

PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(st.dictionaries(keys, values, max_size=6))
def test_canonical_matches_reference(value: dict[str, Any]) -> None:
    assert canonical(value) == ref_jcs(value).encode("utf-8")


@PROPS
@given(floats)
def test_canonical_numbers_match_reference(x: float) -> None:
    assert canonical({"n": x}) == b'{"n":' + ref_number(x).encode() + b"}"


@PROPS
@given(entries, st.integers(0, 2**53 - 1), timestamps, digest_maps)
def test_prepare_entry_matches_reference(
    entry: dict[str, Any], index: int, recorded_at: str, digests: dict[str, str] | None
) -> None:
    validate_entry(entry, with_digests=digests is not None)
    record: dict[str, Any] = {**entry, "index": index, "recorded_at": recorded_at}
    if digests:
        record["digests"] = digests
    leaf = prepare_entry(entry, index, recorded_at, digests)
    assert leaf == ref_jcs(record).encode("utf-8")


@PROPS
@given(st.dictionaries(keys, float_free_values, max_size=6))
def test_canonical_is_a_fixed_point(value: dict[str, Any]) -> None:
    # Canonical bytes parse back strictly, and canonicalise to themselves.
    out = canonical(value)
    again = parse_entry_line(out.decode("utf-8"))
    assert canonical(again) == out


# --------------------------------------------------------------------------------------------
# Payload digests.
# --------------------------------------------------------------------------------------------


def test_payload_digest() -> None:
    # SHA-256("abc"), the FIPS 180-2 example, split as salt "a" and content "bc".
    assert payload_digest(b"a", b"bc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert payload_digest(b"", b"") == "sha256:" + (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("keep", [True, False])
def test_make_payloads(keep: bool) -> None:
    payloads = {"prompt": "héllo wörld", "blob": b"\x00\x01\xff", "empty": ""}
    expected_bytes = {"prompt": "héllo wörld".encode(), "blob": b"\x00\x01\xff", "empty": b""}
    digests, records = make_payloads(payloads, keep=keep)
    assert set(digests) == set(payloads)
    assert [r.name for r in records] == list(payloads)
    for record in records:
        content = expected_bytes[record.name]
        assert len(record.salt) == 32
        expected = "sha256:" + hashlib.sha256(record.salt + content).hexdigest()
        assert digests[record.name] == expected
        assert record.content == (content if keep else None)
    assert len({r.salt for r in records}) == len(records)


def test_make_payloads_salts_hide_equal_contents() -> None:
    digests, records = make_payloads({"a": "same", "b": "same"}, keep=False)
    assert digests["a"] != digests["b"]
    again, _ = make_payloads({"a": "same"}, keep=False)
    assert again["a"] != digests["a"]
    assert all(r.content is None for r in records)


def test_make_payloads_empty() -> None:
    assert make_payloads({}, keep=True) == ({}, [])


@PROPS
@given(entries, st.integers(0, 2**53 - 1), timestamps)
def test_template_from_line_matches_reference(
    entry: dict[str, Any], index: int, recorded_at: str
) -> None:
    # The CLI's one-pass path: any JSON text of the entry (here Python's, with its own spacing,
    # key order and escapes) gives the reference canonical leaf.
    line = json.dumps(entry, ensure_ascii=bool(index % 2), indent=None if index % 3 else 1)
    parsed = json.loads(line)
    record = {**parsed, "index": index, "recorded_at": recorded_at}
    leaf = template_from_line(line.replace("\n", " ")).leaf(index, recorded_at)
    assert leaf == ref_jcs(record).encode("utf-8")


@pytest.mark.parametrize(
    "line", ["[1]", "{", '{"a": NaN}', '{"a": 1, "a": 2}', '{"index": 1}', '{"n": 9007199254740992}']
)
def test_template_from_line_rejects(line: str) -> None:
    with pytest.raises(InvalidEntry):
        template_from_line(line)
