"""The engine's verdict, score and report, on findings built by hand."""

import json
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from custodes.engine import Gate, decide, run
from custodes.findings import Finding, Severity, SourceRef, finding_id
from custodes.reports import Format, LedgerRef, render
from custodes.subject import Skipped, SkipReason, Subject


def _finding(sev: Severity, *, path: str = "a.py", line: int = 1, h: str = "0" * 64) -> Finding:
    return Finding("secret", "secret.test", sev, path, line, line, "a test secret", h, "tst_…abcd")


def test_score_is_100_minus_weights_and_never_negative() -> None:
    assert decide([], [], Gate()).score == 100
    # Weights: low 2, medium 10, high 25, critical 50 (documented in findings.py).
    mixed = [_finding(Severity.LOW), _finding(Severity.MEDIUM, h="1" * 64)]
    assert decide(mixed, [], Gate()).score == 88
    many = [_finding(Severity.CRITICAL, h=str(i) * 64) for i in range(3)]
    assert decide(many, [], Gate()).score == 0


@pytest.mark.parametrize(
    ("severity", "fail_on", "passed"),
    [
        (Severity.HIGH, Severity.HIGH, False),
        (Severity.MEDIUM, Severity.HIGH, True),
        (Severity.CRITICAL, Severity.HIGH, False),
        (Severity.LOW, Severity.LOW, False),
        (Severity.INFO, Severity.LOW, True),
    ],
)
def test_gate_fails_at_or_above_the_threshold(
    severity: Severity, fail_on: Severity, passed: bool
) -> None:
    decision = decide([_finding(severity)], [], Gate(fail_on=fail_on))
    assert decision.passed is passed
    assert decision.action == ("allow" if passed else "block")


def test_min_score_gates_on_its_own() -> None:
    findings = [_finding(Severity.MEDIUM, h=str(i) * 64) for i in range(3)]  # score 70
    assert decide(findings, [], Gate(fail_on=Severity.CRITICAL, min_score=70)).passed
    failed = decide(findings, [], Gate(fail_on=Severity.CRITICAL, min_score=71))
    assert not failed.passed
    assert failed.reasons == ("score 70 is below the minimum of 71",)


def test_finding_identity_ignores_the_line() -> None:
    a = _finding(Severity.HIGH, line=3)
    b = _finding(Severity.HIGH, line=300)
    assert a.id == b.id == finding_id("secret.test", "a.py", "0" * 64)
    assert a.id != _finding(Severity.HIGH, path="b.py").id


@dataclass
class _Fixed:
    name: str
    per_subject: dict[str, list[Finding]]

    def scan(self, subject: Subject) -> Iterable[Finding]:
        return self.per_subject.get(subject.path, [])


def test_run_collects_findings_counts_subjects_and_keeps_skips() -> None:
    f1 = _finding(Severity.HIGH, path="a.py")
    f2 = _finding(Severity.LOW, path="b.py", h="2" * 64)
    detector = _Fixed("fixed", {"a.py": [f1, f1], "b.py": [f2]})
    items = [
        Subject("a.py", "x"),
        Skipped("img.png", SkipReason.BINARY),
        Subject("b.py", "y"),
    ]
    decision = run(items, [detector], Gate())
    assert decision.scanned == 2
    assert [f.path for f in decision.findings] == ["a.py", "b.py"]  # the duplicate counted once
    assert decision.skipped == (Skipped("img.png", SkipReason.BINARY),)
    assert not decision.passed


def test_json_report_contract() -> None:
    finding = Finding(
        "provenance",
        "provenance.deny",
        Severity.HIGH,
        "src/x.ts",
        10,
        40,
        "matches collection leak",
        "f" * 64,
        source=SourceRef("leak", "src/tools/agent.ts", 120, 150),
        similarity=0.93251,
    )
    decision = decide([finding], [Skipped("a.bin", SkipReason.BINARY, "NUL byte")], Gate())
    report = json.loads(render(decision, Format.JSON, ledger=LedgerRef(7, "ab" * 32)))
    assert set(report) >= {"tool", "passed", "score", "ledger", "findings", "skipped"}
    assert report["tool"]["name"] == "custodes"
    assert report["passed"] is False
    assert report["score"] == 75
    assert report["ledger"] == {"index": 7, "root": "ab" * 32}
    (entry,) = report["findings"]
    assert entry["kind"] == "provenance"
    assert (entry["path"], entry["start_line"], entry["end_line"]) == ("src/x.ts", 10, 40)
    assert entry["source"] == {
        "collection": "leak",
        "path": "src/tools/agent.ts",
        "start_line": 120,
        "end_line": 150,
    }
    assert entry["similarity"] == 0.9325
    assert report["skipped"] == [{"path": "a.bin", "reason": "binary", "detail": "NUL byte"}]
    text = render(decision, Format.TEXT, ledger=None)
    assert "FAILED" in text
    assert "score 75/100" in text
    assert "from leak:src/tools/agent.ts:120-150 (93% similar)" in text


def test_ledger_entry_holds_identities_not_text() -> None:
    finding = _finding(Severity.CRITICAL)
    entry = decide([finding], [], Gate()).ledger_entry(door="scan", targets=["."], version="0.1.0")
    assert entry["action"] == "block"
    assert entry["findings"][0]["id"] == finding.id
    assert "tst_…abcd" not in json.dumps(entry)
