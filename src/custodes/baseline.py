"""Baselines: the findings a team has accepted as debt, so that only new ones fail the gate.

A baseline file lists finding identities — ``sha256(rule, path, hash of what matched)``, the
same :attr:`~custodes.findings.Finding.id` every report shows — with the rule, path, severity
and kind for a reader. Never a line number (an edit above a finding must not churn it), never a
preview or any matched text. ``custodes baseline create`` writes one; ``custodes scan`` reads
``.custodes/baseline.json`` when it exists and reports the findings it lists as debt.

The file is JSON, sorted and deterministic, one finding per line so that merges stay clean::

    {
      "version": 1,
      "tool": "custodes 0.1.0",
      "created": "2026-03-31T09:00:00Z",
      "findings": [
        {"id": "…", "kind": "secret", "path": "src/app.py", "rule": "secret.aws-…", "severity": "high"}
      ]
    }

``created`` comes from ``SOURCE_DATE_EPOCH`` when it is set (reproducible builds), and is kept
from the file being replaced when the findings did not change, so re-creating an unchanged
baseline rewrites the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from custodes.errors import MalformedBaseline
from custodes.findings import Finding, Severity

__all__ = ["BASELINE_VERSION", "DEFAULT_BASELINE", "Baseline", "BaselineEntry"]

BASELINE_VERSION = 1
DEFAULT_BASELINE = ".custodes/baseline.json"

_HINT = "fix the file, or write a fresh one with `custodes baseline create`"


@dataclass(frozen=True)
class BaselineEntry:
    id: str
    kind: str
    rule: str
    path: str
    severity: Severity

    @classmethod
    def of(cls, finding: Finding) -> BaselineEntry:
        return cls(finding.id, finding.kind, finding.rule, finding.path, finding.severity)

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "rule": self.rule,
            "severity": self.severity.value,
        }


@dataclass(frozen=True)
class Baseline:
    """Accepted findings by identity; ``source`` and ``sha256`` name the file read, if any."""

    entries: Mapping[str, BaselineEntry]
    created: str  # RFC 3339 UTC, seconds
    source: str | None = None
    sha256: str | None = None

    def __contains__(self, finding_id: object) -> bool:
        return finding_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[BaselineEntry]:
        return iter(self.entries.values())

    @classmethod
    def of(cls, findings: Iterable[Finding], *, created: str | None = None) -> Baseline:
        entries = {f.id: BaselineEntry.of(f) for f in findings}
        return cls(entries, created or _now())

    def same_findings(self, other: Baseline) -> bool:
        return dict(self.entries) == dict(other.entries)

    def dumps(self, *, tool: str) -> str:
        """The file's bytes as text: sorted by path, rule and id; one finding per line."""
        ordered = sorted(self.entries.values(), key=lambda e: (e.path, e.rule, e.id))
        rows = [json.dumps(e.as_json(), ensure_ascii=False, sort_keys=True) for e in ordered]
        body = ",\n    ".join(rows)
        findings = f"[\n    {body}\n  ]" if rows else "[]"
        return (
            "{\n"
            f'  "version": {BASELINE_VERSION},\n'
            f'  "tool": {json.dumps(tool)},\n'
            f'  "created": {json.dumps(self.created)},\n'
            f'  "findings": {findings}\n'
            "}\n"
        )

    def write(self, path: Path, *, tool: str) -> None:
        """Write atomically: a scan running beside never reads half a baseline."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.dumps(tool=tool), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise MalformedBaseline(
                f"cannot write the baseline {path}: {exc.strerror or exc}",
                hint="choose a writable --output",
            ) from exc

    @classmethod
    def load(cls, path: Path) -> Baseline:
        """Read a baseline file; :class:`MalformedBaseline` names the file and line if it is bad."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise MalformedBaseline(
                f"no baseline at {path}",
                hint="create one with `custodes baseline create`, or scan with --no-baseline",
            ) from None
        except OSError as exc:
            raise MalformedBaseline(
                f"cannot read the baseline {path}: {exc.strerror or exc}",
                hint="give a readable baseline file, or scan with --no-baseline",
            ) from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise MalformedBaseline(f"{path}:{line}: not UTF-8 text", hint=_HINT) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedBaseline(
                f"{path}:{exc.lineno}: not JSON: {exc.msg}", hint=_HINT
            ) from exc
        from pydantic import ValidationError

        try:
            parsed = _file_model().model_validate(data).model_dump()
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = tuple(error["loc"])
            where = ".".join(str(part) for part in loc) or "the file"
            line = _line_of(text, loc)
            raise MalformedBaseline(f"{path}:{line}: {where}: {error['msg']}", hint=_HINT) from exc
        entries: dict[str, BaselineEntry] = {}
        for entry in parsed["findings"]:
            entries[entry["id"]] = BaselineEntry(
                entry["id"], entry["kind"], entry["rule"], entry["path"], entry["severity"]
            )
        return cls(
            entries,
            parsed["created"],
            source=str(path),
            sha256=hashlib.sha256(raw).hexdigest(),
        )


if TYPE_CHECKING:
    from pydantic import BaseModel


@cache
def _file_model() -> type[BaseModel]:
    # Imported on first use: a scan without a baseline file never pays for pydantic.
    from pydantic import BaseModel, ConfigDict, Field

    class _Entry(BaseModel):
        model_config = ConfigDict(extra="ignore", frozen=True)

        id: str = Field(pattern=r"^[0-9a-f]{64}$")
        kind: str = Field(min_length=1)
        rule: str = Field(min_length=1)
        path: str
        severity: Severity

    class _File(BaseModel):
        model_config = ConfigDict(extra="ignore", frozen=True)

        version: Literal[1]
        created: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
        findings: list[_Entry]

    return _File


def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_WS = frozenset(" \t\n\r")  # JSON's whitespace
_DECODER = json.JSONDecoder()


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of the value at ``loc`` in the JSON ``text``, or of the deepest container found.

    Pydantic reports where in the data an error is, not where in the file; walking the text
    with the decoder's own scanner maps one to the other without a second JSON parser.
    """
    pos = _skip(text, 0)
    try:
        for key in loc:
            found = _member(text, pos, key)
            if found is None:
                break
            pos = found
    except (json.JSONDecodeError, IndexError):
        pass
    return text.count("\n", 0, pos) + 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _member(text: str, pos: int, key: Any) -> int | None:
    """Where the member ``key`` of the object or array at ``pos`` starts, if it is there."""
    opening = text[pos]
    if opening == "{" and isinstance(key, str):
        pos = _skip(text, pos + 1)
        while text[pos] != "}":
            name, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, _skip(text, pos) + 1)  # past the colon
            if name == key:
                return pos
            _, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
        return None
    if opening == "[" and isinstance(key, int):
        pos = _skip(text, pos + 1)
        index = 0
        while text[pos] != "]":
            if index == key:
                return pos
            _, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
            index += 1
        return None
    return None
