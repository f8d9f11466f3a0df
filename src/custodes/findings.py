"""Findings: what a detector reports about a subject, and their severities.

A finding is identified by rule + path + a hash of what matched (the secret, the matched
fragment), never by line number, so baselines and SARIF alerts survive unrelated edits above it.
No finding holds protected text in clear: only a redacted ``preview`` and hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Finding", "Severity", "SourceRef", "finding_id"]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def weight(self) -> int:
        """Points one finding of this severity takes off a run's score of 100."""
        return _WEIGHT[self]


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}
# One critical finding costs a passing grade; five medium ones as much as one critical.
_WEIGHT = {
    Severity.INFO: 0,
    Severity.LOW: 2,
    Severity.MEDIUM: 10,
    Severity.HIGH: 25,
    Severity.CRITICAL: 50,
}


@dataclass(frozen=True)
class SourceRef:
    """Where a provenance match comes from: a file of an indexed collection."""

    collection: str
    path: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Finding:
    kind: str  # "secret", "provenance", "policy"
    rule: str
    severity: Severity
    path: str
    start_line: int
    end_line: int
    message: str
    match_hash: str  # sha256 hex of what matched; with rule and path, the finding's identity
    preview: str | None = None  # redacted, e.g. "ghp_…a1B2"
    source: SourceRef | None = None
    similarity: float | None = None
    controls: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return finding_id(self.rule, self.path, self.match_hash)


def finding_id(rule: str, path: str, match_hash: str) -> str:
    """A stable identity: the same secret in the same file under the same rule, wherever it moves."""
    return hashlib.sha256(f"{rule}\0{path}\0{match_hash}".encode()).hexdigest()
