"""Ledger entries: JSON objects whose leaf bytes are their RFC 8785 canonical JSON.

The ledger adds two fields to every entry before it is canonicalised: ``index`` (its position
in the log) and ``recorded_at`` (RFC 3339, UTC, microseconds). Both are inside the signed leaf,
so a row moved to another index or re-dated no longer matches the tree.

Clear payloads (prompts, completions, snippets) never enter a leaf. The entry carries a salted
digest per payload under ``digests``; the salt and, when kept, the payload live in a separate
store. Erasing them leaves the leaf, and so the tree, intact, while the digest no longer links to
anything (right to erasure).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import threading
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from custodes.errors import InvalidEntry

try:  # the optional C accelerator (setup.py); the Python path below yields the same bytes
    from custodes.ledger import _native
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _native = None  # type: ignore[assignment]

__all__ = [
    "RESERVED_FIELDS",
    "Entry",
    "LeafTemplate",
    "Payload",
    "TemplateBatch",
    "canonical",
    "make_payloads",
    "parse_entry_line",
    "payload_digest",
    "prepare_entry",
    "recorded_at_now",
    "template_from_line",
    "templates",
    "validate_entry",
]

RESERVED_FIELDS = ("index", "recorded_at")
DIGESTS_FIELD = "digests"


@dataclass(frozen=True)
class Entry:
    """A recorded entry: its index, canonical leaf bytes and leaf hash."""

    index: int
    leaf: bytes
    leaf_hash: bytes

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.leaf)
        return value


@dataclass(frozen=True)
class Payload:
    """A clear payload kept beside the tree: its salt and (optionally) its content."""

    name: str
    salt: bytes
    content: bytes | None


# json.dumps with these options writes RFC 8785 output for the JSON most entries hold: objects,
# arrays, strings, booleans, null, integers within ±2**53 and floats with a fraction written
# without an exponent (durations, scores). It differs only on integral floats, exponents,
# larger integers, and key order among characters from U+E000 up (code points vs UTF-16
# units): output that holds any of these takes the reference implementation instead. Reading
# the output back finds them exactly (the number hooks see only number tokens), and its
# equality with the input catches what json.dumps quietly converts (tuples, non-string keys).
# The property tests hold both paths to the same bytes.
_MAX_SAFE_INTEGER = 2**53 - 1
_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


class _NotPlain(Exception):
    pass


def _plain_float(token: str) -> float:
    # A float json.dumps wrote without an exponent and with a fraction ("0.412") is exactly
    # what RFC 8785 writes: both take the shortest digits that read back as the same double,
    # in plain notation from 1e-4 up to 1e16 (ECMAScript's range is wider). Integral values
    # ("2.0", which RFC 8785 writes as "2") and exponents take the reference implementation.
    if "e" in token or "E" in token or token.endswith(".0"):
        raise _NotPlain
    return float(token)


def _safe_int(token: str) -> int:
    value = int(token)
    if len(token) > 15 and abs(value) > _MAX_SAFE_INTEGER:
        raise _NotPlain
    return value


_read_back = json.JSONDecoder(parse_float=_plain_float, parse_int=_safe_int).decode


_MAX_DEPTH = 100


def _depth(value: Any, limit: int) -> int:
    if isinstance(value, Mapping):
        items: Any = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return 0
    if limit == 0:
        return 1
    return 1 + max((_depth(item, limit - 1) for item in items), default=0)


def _check_depth(value: Any, text: str) -> None:
    # Deep nesting would overflow the recursion of whoever reads the entry later (a verifier
    # in a deeper stack); counting brackets first keeps the walk off the common path.
    if text.count("[") + text.count("{") > _MAX_DEPTH and _depth(value, _MAX_DEPTH) > _MAX_DEPTH:
        raise InvalidEntry(
            f"entry is nested more than {_MAX_DEPTH} levels deep", hint="flatten the entry"
        )


def _fast_canonical(value: Any, *, parsed: bool = False) -> bytes | None:
    """``parsed``: ``value`` came from :func:`parse_entry_line` with no float or big integer,
    so only plain JSON types are in it and reading the output back would prove nothing new."""
    try:
        text = _dumps(value)
        _check_depth(value, text)
        out = text.encode("utf-8")
        if not out.isascii() and max(text) >= "\ue000":
            return None
        if not parsed and _read_back(text) != value:
            return None
    except (_NotPlain, TypeError, ValueError, RecursionError, UnicodeEncodeError):
        return None
    return out


def canonical(value: Mapping[str, Any], *, parsed: bool = False) -> bytes:
    """RFC 8785 canonical JSON of ``value``."""
    if _native is not None:
        out: bytes | None = _native.canonical(value)
        if out is not None:
            return out
    return py_canonical(value, parsed=parsed)


def py_canonical(value: Mapping[str, Any], *, parsed: bool = False) -> bytes:
    """:func:`canonical` without the C accelerator (what runs where it is not built)."""
    fast = _fast_canonical(value, parsed=parsed)
    if fast is not None:
        return fast
    if _depth(value, _MAX_DEPTH) > _MAX_DEPTH:
        raise InvalidEntry(
            f"entry is nested more than {_MAX_DEPTH} levels deep", hint="flatten the entry"
        )
    try:
        out: bytes = rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as exc:
        raise InvalidEntry(
            "entry holds an integer outside ±2**53, which JSON canonicalisation cannot represent",
            hint="write such numbers as strings",
        ) from exc
    except rfc8785.FloatDomainError as exc:
        raise InvalidEntry(
            "entry holds NaN or an infinite number", hint="use a finite number"
        ) from exc
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidEntry(f"entry cannot be canonicalised: {exc}") from exc
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def template_from_line(line: str) -> LeafTemplate:
    """Parse one input line and canonicalise it, in one pass where the JSON is plain."""
    plain = [True]

    def on_float(token: str) -> float:
        plain[0] = False
        return float(token)

    def on_int(token: str) -> int:
        if len(token) > 15:
            plain[0] = False
        return int(token)

    try:
        value = json.loads(
            line,
            parse_constant=_reject_constant,
            parse_float=on_float,
            parse_int=on_int,
            object_pairs_hook=_no_duplicates,
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidEntry(f"not valid JSON ({exc})", hint="give one JSON object per line") from exc
    if not isinstance(value, dict):
        raise InvalidEntry(
            f"a JSON {type(value).__name__}, not an object", hint="give one JSON object per line"
        )
    return LeafTemplate.of(value, parsed=plain[0])


def parse_entry_line(line: str) -> dict[str, Any]:
    """Parse one line of input as a JSON object (strict: no NaN, no duplicate keys)."""
    try:
        value = json.loads(line, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise InvalidEntry(f"not valid JSON ({exc})", hint="give one JSON object per line") from exc
    if not isinstance(value, dict):
        raise InvalidEntry(
            f"a JSON {type(value).__name__}, not an object", hint="give one JSON object per line"
        )
    return value


def recorded_at_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def payload_digest(salt: bytes, content: bytes) -> str:
    return "sha256:" + hashlib.sha256(salt + content).hexdigest()


_SALT = 32


class _SaltPool:
    """Salts cut from one read of the system's random source for many.

    Each ``os.urandom`` is a system call that lets go of the GIL; with many threads appending,
    taking it back waits behind the others, once per payload. A forked child forgets the pool,
    so it never hands out salts its parent also did.
    """

    _READ = _SALT * 128

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self) -> bytes:
        with self._lock:
            if self._offset + _SALT > len(self._buffer):
                self._buffer = os.urandom(self._READ)
                self._offset = 0
            start = self._offset
            self._offset = start + _SALT
            return self._buffer[start : start + _SALT]


_salts = _SaltPool()


def make_payloads(
    payloads: Mapping[str, str | bytes], *, keep: bool
) -> tuple[dict[str, str], list[Payload]]:
    """Salted digests for the entry, and the payload records for the separate store."""
    digests: dict[str, str] = {}
    records: list[Payload] = []
    for name, content in payloads.items():
        data = content.encode() if isinstance(content, str) else bytes(content)
        salt = _salts.take()
        digest = hashlib.sha256(salt)
        digest.update(data)  # the salt then the content, as payload_digest, without a copy
        digests[name] = "sha256:" + digest.hexdigest()
        records.append(Payload(name, salt, data if keep else None))
    return digests, records


def validate_entry(entry: Any, *, with_digests: bool = False) -> None:
    """Raise :class:`InvalidEntry` unless ``entry`` can be recorded as it is."""
    LeafTemplate.of(entry, {"_": "_"} if with_digests else None)


_INDEX_MARK = "\x00custodes:index\x00"
_TIME_MARK = "\x00custodes:recorded_at\x00"
_INDEX_SLOT = b'"index":"\\u0000custodes:index\\u0000"'
_TIME_SLOT = b'"recorded_at":"\\u0000custodes:recorded_at\\u0000"'


@dataclass(frozen=True)
class LeafTemplate:
    """An entry canonicalised once, before its index and time are known.

    The entry is canonicalised with marker values in ``index`` and ``recorded_at``; recording it
    then only splices the two values in, so the work inside the write transaction is a few
    concatenations, and a bad entry fails in its caller before it can spoil a shared batch.
    """

    parts: tuple[bytes, bytes, bytes] | None
    index_first: bool
    record: Mapping[str, Any]

    @classmethod
    def of(
        cls, entry: Any, digests: Mapping[str, str] | None = None, *, parsed: bool = False
    ) -> LeafTemplate:
        _check_fields(entry, digests)
        if _native is not None:
            record = dict(entry, digests=dict(digests)) if digests else entry
            blob, cuts = _native.templates((record,))
            a, b, end = _CUTS.unpack(cuts)
            if a >= 0:  # "index" sorts before "recorded_at": the C path always puts it first
                return cls((blob[:a], blob[a:b], blob[b:end]), True, record)
        return cls.py_of(entry, digests, parsed=parsed)

    @classmethod
    def py_of(
        cls, entry: Any, digests: Mapping[str, str] | None = None, *, parsed: bool = False
    ) -> LeafTemplate:
        """:meth:`of` without the C accelerator (what runs where it is not built)."""
        _check_fields(entry, digests)
        record = dict(entry)
        record["index"] = _INDEX_MARK
        record["recorded_at"] = _TIME_MARK
        if digests:
            record[DIGESTS_FIELD] = dict(digests)
        out = py_canonical(record, parsed=parsed)
        first, second = out.find(_INDEX_SLOT), out.find(_TIME_SLOT)
        if (
            first < 0
            or second < 0
            or out.count(b"\\u0000custodes:index\\u0000") != 1
            or out.count(b"\\u0000custodes:recorded_at\\u0000") != 1
        ):
            return cls(None, True, record)  # the markers also occur in the entry itself
        if first < second:
            a, b = first + len(b'"index":'), second + len(b'"recorded_at":')
            parts = (out[:a], out[first + len(_INDEX_SLOT) : b], out[second + len(_TIME_SLOT) :])
            return cls(parts, True, record)
        a, b = second + len(b'"recorded_at":'), first + len(b'"index":')
        parts = (out[:a], out[second + len(_TIME_SLOT) : b], out[first + len(_INDEX_SLOT) :])
        return cls(parts, False, record)

    def leaf(self, index: int, recorded_at: str) -> bytes:
        time_json = _time_json(recorded_at)
        if self.parts is None:
            record = dict(self.record, index=index, recorded_at=recorded_at)
            return canonical(record)
        head, mid, tail = self.parts
        if self.index_first:
            return head + str(index).encode() + mid + time_json + tail
        return head + time_json + mid + str(index).encode() + tail


def _check_fields(entry: Any, digests: Mapping[str, str] | None) -> None:
    if not isinstance(entry, Mapping):
        raise InvalidEntry(f"an entry must be a JSON object, not {type(entry).__name__}")
    clash = [field for field in RESERVED_FIELDS if field in entry]
    if digests and DIGESTS_FIELD in entry:
        clash.append(DIGESTS_FIELD)
    if clash:
        raise InvalidEntry(
            f"field {clash[0]!r} is set by the ledger",
            hint=f"rename it; {', '.join(RESERVED_FIELDS)} are reserved",
        )


_CUTS = struct.Struct("=3q")  # one entry's cuts, as the C accelerator writes them
_OPEN = -1  # cuts of an entry whose leaf is built in Python (LeafTemplate.leaf)


@dataclass(frozen=True)
class TemplateBatch:
    """Many entries canonicalised with ``index`` and ``recorded_at`` left open, in one buffer.

    Entry ``i`` is ``blob[prev:cuts[3i]]`` + its index + ``blob[cuts[3i]:cuts[3i+1]]`` + its
    time + ``blob[cuts[3i+1]:cuts[3i+2]]`` (``prev``: the previous entry's last cut). Entries
    whose cuts are -1 take their leaf from the next template of ``slow`` instead: an entry
    that holds the ledger's own marker strings, which only the Python path can fill in.
    One buffer instead of an object per entry keeps a batch of thousands cheap to carry from
    the caller, who canonicalises it, to the commit, which fills in indices and hashes it.
    """

    blob: bytes
    cuts: bytes  # three native int64 per entry
    slow: tuple[LeafTemplate, ...]
    count: int


def templates(
    entries: Sequence[Mapping[str, Any] | LeafTemplate],
    digests: Sequence[Mapping[str, str] | None] | None = None,
) -> TemplateBatch:
    """Canonicalise a batch of entries (raises :class:`InvalidEntry` for the first bad one)."""
    count = len(entries)
    if _native is not None and digests is None:
        blob, cuts = _native.templates(entries)
        if _OPEN_CUT not in cuts:  # every entry was plain JSON, the usual case
            return TemplateBatch(blob, cuts, (), count)
    else:
        blob, cuts = b"", b""
    pieces: list[bytes] = []
    out = array("q")
    slow: list[LeafTemplate] = []
    pos = 0
    prev = 0
    for i, entry in enumerate(entries):
        if cuts:
            a, b, end = _CUTS.unpack_from(cuts, 24 * i)
            if a >= 0:
                pieces.append(blob[prev:end])
                out.extend((pos + a - prev, pos + b - prev, pos + end - prev))
                pos += end - prev
                prev = end
                continue
        if isinstance(entry, LeafTemplate):
            template = entry
        else:
            template = LeafTemplate.of(entry, digests[i] if digests is not None else None)
        if template.parts is None or not template.index_first:
            slow.append(template)
            out.extend((_OPEN, _OPEN, _OPEN))
            continue
        head, mid, tail = template.parts
        pieces += (head, mid, tail)
        out.extend(
            (pos + len(head), pos + len(head) + len(mid), pos + len(head) + len(mid) + len(tail))
        )
        pos += len(head) + len(mid) + len(tail)
    return TemplateBatch(b"".join(pieces), out.tobytes(), tuple(slow), count)


_OPEN_CUT = _CUTS.pack(_OPEN, _OPEN, _OPEN)


@functools.lru_cache(maxsize=8)
def _time_json(recorded_at: str) -> bytes:
    # A commit stamps one time on every entry of its batch: encode it once.
    return json.dumps(recorded_at, ensure_ascii=False).encode("utf-8")


def prepare_entry(
    entry: Mapping[str, Any], index: int, recorded_at: str, digests: Mapping[str, str] | None
) -> bytes:
    """The leaf bytes of ``entry`` recorded at ``index`` at ``recorded_at``."""
    return LeafTemplate.of(entry, digests).leaf(index, recorded_at)
