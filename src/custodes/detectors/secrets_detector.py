"""The secrets detector behind the engine's one interface."""

from __future__ import annotations

from collections.abc import Iterator

from custodes.detectors.secrets import scan_subject
from custodes.findings import Finding
from custodes.subject import Subject

__all__ = ["SecretsDetector"]


class SecretsDetector:
    """Credentials in any text subject: a redacted preview and a SHA-256, never the value."""

    name = "secrets"

    def scan(self, subject: Subject) -> Iterator[Finding]:
        for match in scan_subject(subject):
            yield Finding(
                kind="secret",
                rule=match.rule_id,
                severity=match.severity,
                path=subject.path,
                start_line=match.line,
                end_line=match.end_line,
                message=match.description,
                match_hash=match.sha256,
                preview=match.preview,
            )
