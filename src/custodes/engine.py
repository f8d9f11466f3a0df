"""The one engine every door shares: subjects → detectors → findings → decision.

A door (scan, guard) turns its input into subjects, runs the detectors its policy names over
them, and gets back one :class:`Decision`: the verdict, the score and why. Recording the
decision in the ledger is the door's job, and it records before it answers.

Each finding a run keeps is in exactly one of three states:

* **suppressed** — an inline ``custodes: ignore[rule] reason`` directive in the subject's own
  text covers it (:mod:`custodes.suppress`); listed with its reason, never counted;
* **debt** — its identity is in the baseline (:mod:`custodes.baseline`): accepted earlier,
  still present; it stays in the report but does not fail the gate;
* **violation** — everything else: a new finding, which the gate judges.

The scorecard (one per run) is defined as::

    score = max(0, 100 − V − ⌊D / 4⌋)

where ``V`` is the sum of :attr:`Severity.weight <custodes.findings.Severity.weight>` over the
violations and ``D`` the same sum over the debt (weights: info 0, low 2, medium 10, high 25,
critical 50), so accepted debt still lowers the score, at a quarter of the rate. **Drift** is
the violations measured against a base: the change's base when only the lines a change adds
were scanned (``--staged``, ``--diff-base``, ``--git-range``), else the baseline; without
either there is no base and drift is not measured. The gate judges violations only: it fails on
a violation at or above ``Gate.fail_on``, or when ``max(0, 100 − V)`` is below
``Gate.min_score`` — debt never fails it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from custodes.baseline import Baseline
from custodes.detectors.interface import Detector
from custodes.findings import Finding, Severity
from custodes.subject import Skipped, Subject
from custodes.suppress import Notice, Suppressed, Suppressions

__all__ = [
    "DEBT_DIVISOR",
    "Decision",
    "DriftBase",
    "Gate",
    "Scorecard",
    "Tally",
    "decide",
    "run",
]

Progress = Callable[[int, str], None]

DEBT_DIVISOR = 4
"""Debt weighs on the score at 1/DEBT_DIVISOR of a violation's weight (rounded down, in sum)."""

# Kinds every scorecard names, found or not, so a reader sees a zero rather than a gap.
_KINDS = ("secret", "provenance", "policy")


class DriftBase(StrEnum):
    """What drift is measured against."""

    CHANGE = "change"  # only the lines a change adds were scanned: every violation is drift
    BASELINE = "baseline"  # a full scan: violations are what is not in the baseline


@dataclass(frozen=True)
class Gate:
    """When a run fails: a new finding at or above ``fail_on``, or new findings scoring below
    ``min_score``."""

    fail_on: Severity = Severity.HIGH
    min_score: int = 0


@dataclass(frozen=True)
class Tally:
    """A set of findings summed up: how many, their weight, by kind and by severity."""

    count: int
    weight: int
    by_kind: Mapping[str, int]
    by_severity: Mapping[str, int]

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> Tally:
        by_kind = dict.fromkeys(_KINDS, 0)
        by_severity = {sev.value: 0 for sev in sorted(Severity, key=lambda s: -s.rank)}
        count = weight = 0
        for f in findings:
            count += 1
            weight += f.severity.weight
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
            by_severity[f.severity.value] += 1
        return cls(count, weight, by_kind, by_severity)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "weight": self.weight,
            "by_kind": dict(self.by_kind),
            "by_severity": dict(self.by_severity),
        }


@dataclass(frozen=True)
class Scorecard:
    """A run's score and its parts (the definition is in this module's docstring)."""

    score: int
    violations: Tally
    debt: Tally
    drift: Tally | None  # None: no base to measure drift against
    drift_base: DriftBase | None
    suppressed: int

    @property
    def debt_penalty(self) -> int:
        return self.debt.weight // DEBT_DIVISOR

    @property
    def gate_score(self) -> int:
        """The score of the violations alone, which ``--min-score`` judges."""
        return max(0, 100 - self.violations.weight)

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "violations": {**self.violations.as_json(), "score": self.gate_score},
            "debt": {**self.debt.as_json(), "penalty": self.debt_penalty},
            "drift": None
            if self.drift is None or self.drift_base is None
            else {"against": self.drift_base.value, **self.drift.as_json()},
            "suppressed": self.suppressed,
        }


def scorecard_of(
    violations: Sequence[Finding],
    debt: Sequence[Finding],
    *,
    drift_base: DriftBase | None,
    suppressed: int = 0,
) -> Scorecard:
    v, d = Tally.of(violations), Tally.of(debt)
    score = max(0, 100 - v.weight - d.weight // DEBT_DIVISOR)
    return Scorecard(score, v, d, v if drift_base is not None else None, drift_base, suppressed)


@dataclass(frozen=True)
class Decision:
    passed: bool
    score: int
    findings: tuple[Finding, ...]  # every finding present and not suppressed: violations and debt
    skipped: tuple[Skipped, ...]
    reasons: tuple[str, ...] = ()  # why the gate failed, one line each
    scanned: int = 0  # subjects the detectors saw
    gate: Gate = field(default_factory=Gate)
    suppressed: tuple[Suppressed, ...] = ()
    warnings: tuple[Notice, ...] = ()
    baseline: Baseline | None = None
    drift_base: DriftBase | None = None

    @property
    def action(self) -> str:
        return "allow" if self.passed else "block"

    def is_debt(self, finding: Finding) -> bool:
        return self.baseline is not None and finding.id in self.baseline

    @property
    def violations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not self.is_debt(f))

    @property
    def debt(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if self.is_debt(f))

    @property
    def scorecard(self) -> Scorecard:
        return scorecard_of(
            self.violations,
            self.debt,
            drift_base=self.drift_base,
            suppressed=len(self.suppressed),
        )

    def ledger_entry(
        self,
        *,
        door: str,
        targets: Sequence[str],
        version: str,
        policy: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """What the ledger records: identities and locations, never matched text.

        ``policy`` (e.g. the policy's name and sha256) is recorded as given.
        """
        entry: dict[str, Any] = {
            "door": door,
            "kind": "decision",
            "action": self.action,
            "passed": self.passed,
            "score": self.score,
            "scorecard": self.scorecard.as_json(),
            "targets": [_printable(t) for t in targets],
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
                    "state": "debt" if self.is_debt(f) else "new",
                }
                for f in self.findings
            ],
            "suppressed": [
                {
                    "id": s.finding.id,
                    "kind": s.finding.kind,
                    "rule": s.finding.rule,
                    "severity": s.finding.severity.value,
                    "path": s.finding.path,
                    "start_line": s.finding.start_line,
                    "reason": s.reason,
                    "directive_line": s.line,
                }
                for s in self.suppressed
            ],
            "warnings": len(self.warnings),
            "custodes": version,
        }
        if self.baseline is not None:
            entry["baseline"] = {
                "path": self.baseline.source,
                "sha256": self.baseline.sha256,
                "findings": len(self.baseline),
            }
        if policy is not None:
            entry["policy"] = dict(policy)
        return entry


def score_of(findings: Iterable[Finding]) -> int:
    return max(0, 100 - sum(f.severity.weight for f in findings))


def _order(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (f.path, f.start_line, f.rule, f.match_hash)))


def decide(
    findings: Iterable[Finding],
    skipped: Iterable[Skipped],
    gate: Gate,
    *,
    scanned: int = 0,
    suppressed: Iterable[Suppressed] = (),
    warnings: Iterable[Notice] = (),
    baseline: Baseline | None = None,
    drift_base: DriftBase | None = None,
) -> Decision:
    """The verdict on ``findings`` (suppressed ones already taken out) under ``gate``.

    With a ``baseline``, drift is measured against it unless ``drift_base`` says otherwise.
    """
    if drift_base is None and baseline is not None:
        drift_base = DriftBase.BASELINE
    draft = Decision(
        passed=True,
        score=100,
        findings=_order(findings),
        skipped=tuple(skipped),
        scanned=scanned,
        gate=gate,
        suppressed=tuple(
            sorted(suppressed, key=lambda s: (s.finding.path, s.finding.start_line, s.finding.rule))
        ),
        warnings=tuple(sorted(warnings, key=lambda w: (w.path, w.line))),
        baseline=baseline,
        drift_base=drift_base,
    )
    card = draft.scorecard
    new = "new " if baseline is not None else ""
    reasons = []
    failing = [f for f in draft.violations if f.severity.rank >= gate.fail_on.rank]
    if failing:
        reasons.append(f"{len(failing)} {new}finding(s) at or above {gate.fail_on.value} severity")
    if card.gate_score < gate.min_score:
        which = "score" if not card.debt.count else "score of the new findings"
        reasons.append(f"{which} {card.gate_score} is below the minimum of {gate.min_score}")
    return Decision(
        passed=not reasons,
        score=card.score,
        findings=draft.findings,
        skipped=draft.skipped,
        reasons=tuple(reasons),
        scanned=scanned,
        gate=gate,
        suppressed=draft.suppressed,
        warnings=draft.warnings,
        baseline=baseline,
        drift_base=drift_base,
    )


def _printable(path: str) -> str:
    """``path`` as text every report, identity hash and ledger entry can encode.

    A file name that is not UTF-8 (from a filesystem, an argument or a tar member) reaches
    Python as lone surrogates, which UTF-8 cannot encode; such bytes become ``\\xNN`` escapes.
    """
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def _printable_path(item: Subject | Skipped) -> Subject | Skipped:
    path = _printable(item.path)
    return item if path is item.path else replace(item, path=path)


def run(
    items: Iterable[Subject | Skipped],
    detectors: Sequence[Detector],
    gate: Gate,
    *,
    progress: Progress | None = None,
    baseline: Baseline | None = None,
    drift_base: DriftBase | None = None,
) -> Decision:
    """Run every detector over every subject; one finding per (rule, path, match) identity.

    Inline suppressions are read from each subject's own text as its findings come out, so a
    secret inside an archive member or a source map's embedded source is suppressed the same
    way as one in a file. An identity stays live if any one of its occurrences is not covered.
    """
    live: dict[str, Finding] = {}
    quiet: dict[str, Suppressed] = {}
    warnings: list[Notice] = []
    skipped: list[Skipped] = []
    scanned = 0
    for item in items:
        item = _printable_path(item)
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        scanned += 1
        directives = Suppressions.of(item)
        warnings.extend(directives.notices)
        for detector in detectors:
            for finding in detector.scan(item):
                directive = directives.match(finding) if directives.directives else None
                if directive is None:
                    live.setdefault(finding.id, finding)
                else:
                    quiet.setdefault(
                        finding.id, Suppressed(finding, directive.reason, directive.line)
                    )
        if progress is not None:
            progress(scanned, item.path)
    return decide(
        live.values(),
        skipped,
        gate,
        scanned=scanned,
        suppressed=[s for key, s in quiet.items() if key not in live],
        warnings=warnings,
        baseline=baseline,
        drift_base=drift_base,
    )
