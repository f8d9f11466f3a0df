"""The one engine every door shares: subjects → detectors → findings → decision.

A door (scan, guard) turns its input into subjects, runs the detectors its policy names over
them, and gets back one :class:`Decision`: the verdict, the score and why. Recording the
decision in the ledger is the door's job, and it records before it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from custodes.detectors.interface import Detector
from custodes.findings import Finding, Severity
from custodes.subject import Skipped, Subject

__all__ = ["Decision", "Gate", "decide", "run"]

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class Gate:
    """When a run fails: any finding at or above ``fail_on``, or a score below ``min_score``."""

    fail_on: Severity = Severity.HIGH
    min_score: int = 0


@dataclass(frozen=True)
class Decision:
    passed: bool
    score: int
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]
    reasons: tuple[str, ...] = ()  # why the gate failed, one line each
    scanned: int = 0  # subjects the detectors saw
    gate: Gate = field(default_factory=Gate)

    @property
    def action(self) -> str:
        return "allow" if self.passed else "block"

    def ledger_entry(self, *, door: str, targets: Sequence[str], version: str) -> dict[str, Any]:
        """What the ledger records: identities and locations, never matched text."""
        return {
            "door": door,
            "kind": "decision",
            "action": self.action,
            "passed": self.passed,
            "score": self.score,
            "targets": list(targets),
            "gate": {"fail_on": self.gate.fail_on.value, "min_score": self.gate.min_score},
            "reasons": list(self.reasons),
            "scanned": self.scanned,
            "skipped": len(self.skipped),
            "findings": [
                {
                    "id": f.id,
                    "kind": f.kind,
                    "rule": f.rule,
                    "severity": f.severity.value,
                    "path": f.path,
                    "start_line": f.start_line,
                    "end_line": f.end_line,
                }
                for f in self.findings
            ],
            "custodes": version,
        }


def score_of(findings: Iterable[Finding]) -> int:
    return max(0, 100 - sum(f.severity.weight for f in findings))


def decide(
    findings: Iterable[Finding], skipped: Iterable[Skipped], gate: Gate, *, scanned: int = 0
) -> Decision:
    ordered = tuple(sorted(findings, key=lambda f: (f.path, f.start_line, f.rule, f.match_hash)))
    score = score_of(ordered)
    reasons = []
    failing = [f for f in ordered if f.severity.rank >= gate.fail_on.rank]
    if failing:
        reasons.append(f"{len(failing)} finding(s) at or above {gate.fail_on.value} severity")
    if score < gate.min_score:
        reasons.append(f"score {score} is below the minimum of {gate.min_score}")
    return Decision(
        passed=not reasons,
        score=score,
        findings=ordered,
        skipped=tuple(skipped),
        reasons=tuple(reasons),
        scanned=scanned,
        gate=gate,
    )


def run(
    items: Iterable[Subject | Skipped],
    detectors: Sequence[Detector],
    gate: Gate,
    *,
    progress: Progress | None = None,
) -> Decision:
    """Run every detector over every subject; one finding per (rule, path, match) identity."""
    findings: dict[str, Finding] = {}
    skipped: list[Skipped] = []
    scanned = 0
    for item in items:
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        scanned += 1
        for detector in detectors:
            for finding in detector.scan(item):
                findings.setdefault(finding.id, finding)
        if progress is not None:
            progress(scanned, item.path)
    return decide(findings.values(), skipped, gate, scanned=scanned)
