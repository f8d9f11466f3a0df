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

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from custodes.errors import InvalidEntry

__all__ = [
    "RESERVED_FIELDS",
    "Entry",
    "Payload",
    "canonical",
    "make_payloads",
    "parse_entry_line",
    "payload_digest",
    "prepare_entry",
    "recorded_at_now",
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


def canonical(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``value``."""
    try:
        out: bytes = rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as exc:
        raise InvalidEntry(
            "entry holds an integer outside ±2**53, which JSON canonicalisation cannot represent",
            hint="write such numbers as strings",
        ) from exc
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
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


def parse_entry_line(line: str) -> dict[str, Any]:
    """Parse one line of input as a JSON object (strict: no NaN, no duplicate keys)."""
    try:
        value = json.loads(
            line, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
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


def make_payloads(
    payloads: Mapping[str, str | bytes], *, keep: bool
) -> tuple[dict[str, str], list[Payload]]:
    """Salted digests for the entry, and the payload records for the separate store."""
    digests: dict[str, str] = {}
    records: list[Payload] = []
    for name, content in payloads.items():
        data = content.encode() if isinstance(content, str) else bytes(content)
        salt = secrets.token_bytes(32)
        digests[name] = payload_digest(salt, data)
        records.append(Payload(name, salt, data if keep else None))
    return digests, records


_MAX_SAFE_INTEGER = 2**53 - 1


def _check_domain(value: Any, depth: int = 0) -> None:
    # What RFC 8785 cannot canonicalise, found before an entry joins a batch, so that one bad
    # entry never fails the others committed with it.
    if depth > 100:
        raise InvalidEntry("entry is nested more than 100 levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise InvalidEntry(
                f"integer {value} is outside ±2**53, which canonical JSON cannot represent",
                hint="write such numbers as strings",
            )
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEntry("entry holds NaN or an infinite number", hint="use a finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEntry(f"object key {key!r} is not a string")
            _check_domain(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_domain(item, depth + 1)
    else:
        raise InvalidEntry(f"a {type(value).__name__} is not a JSON value")


def validate_entry(entry: Any, *, with_digests: bool = False) -> None:
    """Raise :class:`InvalidEntry` unless ``entry`` can be recorded as it is."""
    if not isinstance(entry, Mapping):
        raise InvalidEntry(f"an entry must be a JSON object, not {type(entry).__name__}")
    clash = [field for field in RESERVED_FIELDS if field in entry]
    if with_digests and DIGESTS_FIELD in entry:
        clash.append(DIGESTS_FIELD)
    if clash:
        raise InvalidEntry(
            f"field {clash[0]!r} is set by the ledger",
            hint=f"rename it; {', '.join(RESERVED_FIELDS)} are reserved",
        )
    _check_domain(entry)


def prepare_entry(
    entry: Mapping[str, Any], index: int, recorded_at: str, digests: Mapping[str, str] | None
) -> bytes:
    """The leaf bytes of an entry, already validated, recorded at ``index``."""
    record = dict(entry)
    record["index"] = index
    record["recorded_at"] = recorded_at
    if digests:
        record[DIGESTS_FIELD] = dict(digests)
    return canonical(record)
