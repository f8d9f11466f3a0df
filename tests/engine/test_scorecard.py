"""The scorecard: violations, debt and drift, against golden files written from the definition.

The golden files in tests/data/scorecard/ were written by hand from the definition in
custodes.engine (score = max(0, 100 − V − ⌊D / 4⌋), weights 0/2/10/25/50), not from the code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.baseline import Baseline
from custodes.engine import Decision, DriftBase, Gate, decide
from custodes.findings import Finding, Severity
from custodes.reports import Format, render
from custodes.suppress import Suppressed

GOLDEN = Path(__file__).parents[1] / "data" / "scorecard"
# The documented weights, restated here so that the test does not read them from the code.
WEIGHTS = {"info": 0, "low": 2, "medium": 10, "high": 25, "critical": 50}
RANKS = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _f(kind: str, severity: str, path: str, line: int, tag: str) -> Finding:
    return Finding(
        kind,
        f"{kind}.test-{tag}",
        Severity(severity),
        path,
        line,
        line,
        f"a {kind} finding",
        hashlib.sha256(tag.encode()).hexdigest(),
    )


def _case(name: str) -> Decision:
    if name == "baseline-debt-and-drift":
        new = [
            _f("secret", "critical", "src/a.py", 3, "n1"),
            _f("policy", "medium", "src/b.py", 7, "n2"),
        ]
        debt = [
            _f("secret", "high", "src/a.py", 10, "d1"),
            _f("provenance", "low", "lib/x.ts", 1, "d2"),
        ]
        gone = _f("secret", "critical", "old.py", 1, "gone")  # in the baseline, no longer found
        quiet = Suppressed(_f("secret", "high", "t/fixture.py", 2, "s1"), "a fixture", 1)
        return decide(
            new + debt,
            [],
            Gate(),
            suppressed=[quiet],
            baseline=Baseline.of([*debt, gone], created="2026-03-31T00:00:00Z"),
        )
    if name == "change-drift-below-min-score":
        findings = [_f("secret", "high", "a.py", 1, "h"), _f("secret", "low", "a.py", 2, "l")]
        return decide(findings, [], Gate(min_score=80), drift_base=DriftBase.CHANGE)
    if name == "debt-only-passes-min-score-100":
        debt = [
            _f("provenance", "critical", "a.ts", 1, "c1"),
            _f("provenance", "critical", "b.ts", 1, "c2"),
        ]
        return decide(
            debt, [], Gate(fail_on=Severity.LOW, min_score=100), baseline=Baseline.of(debt)
        )
    if name == "full-scan-without-a-base":
        return decide([_f("secret", "medium", "a.py", 1, "m")], [], Gate())
    raise AssertionError(name)  # fmt: skip


CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def test_every_golden_file_has_a_case() -> None:
    assert CASES == [
        "baseline-debt-and-drift",
        "change-drift-below-min-score",
        "debt-only-passes-min-score-100",
        "full-scan-without-a-base",
    ]


@pytest.mark.parametrize("case", CASES)
def test_scorecard_matches_the_golden_file(case: str) -> None:
    golden = json.loads((GOLDEN / f"{case}.json").read_text())
    decision = _case(case)
    report = json.loads(render(decision, Format.JSON, ledger=None))
    assert {key: report[key] for key in golden} == golden
    entry = decision.ledger_entry(door="scan", targets=["."], version="0.1.0")
    assert entry["scorecard"] == golden["scorecard"]
    assert entry["score"] == golden["score"]
    sarif = json.loads(render(decision, Format.SARIF, ledger=None))
    assert sarif["runs"][0]["properties"]["scorecard"] == golden["scorecard"]


def test_the_text_report_shows_the_parts() -> None:
    text = render(_case("baseline-debt-and-drift"), Format.TEXT, ledger=None)
    assert "scorecard: 34/100 = 100 − 60 violations − 6 debt (weight 27 ÷ 4)" in text
    assert "violations  2 new: 1 secret, 0 provenance, 1 policy" in text
    assert "debt        2 baselined, still present (of 3 in the baseline)" in text
    assert "drift       2 new since the baseline" in text
    assert "suppressed  1 inline, with a reason" in text
    assert "src/a.py:10  secret.test-d1: a secret finding (debt: in the baseline)" in text
    assert "t/fixture.py:2  secret.test-s1: a fixture" in text
    change = render(_case("change-drift-below-min-score"), Format.TEXT, ledger=None)
    assert "drift       2 added by the change" in change
    plain = render(_case("full-scan-without-a-base"), Format.TEXT, ledger=None)
    assert "drift       not measured" in plain


def test_json_findings_say_new_or_debt_and_list_the_suppressed() -> None:
    report = json.loads(render(_case("baseline-debt-and-drift"), Format.JSON, ledger=None))
    assert [(f["path"], f["start_line"], f["state"]) for f in report["findings"]] == [
        ("lib/x.ts", 1, "debt"),
        ("src/a.py", 3, "new"),
        ("src/a.py", 10, "debt"),
        ("src/b.py", 7, "new"),
    ]
    (quiet,) = report["suppressed"]
    assert quiet["path"] == "t/fixture.py"
    assert quiet["suppression"] == {"reason": "a fixture", "line": 1}
    assert report["baseline"] == {"path": None, "sha256": None, "findings": 3}


def test_the_ledger_entry_records_states_suppressions_and_the_policy() -> None:
    decision = _case("baseline-debt-and-drift")
    policy = {"name": "acme-default", "sha256": "ab" * 32}
    entry = decision.ledger_entry(door="scan", targets=["."], version="0.1.0", policy=policy)
    assert entry["policy"] == policy
    assert [f["state"] for f in entry["findings"]] == ["debt", "new", "debt", "new"]
    (quiet,) = entry["suppressed"]
    assert (quiet["rule"], quiet["path"], quiet["reason"]) == (
        "secret.test-s1",
        "t/fixture.py",
        "a fixture",
    )
    assert entry["baseline"]["findings"] == 3
    without = decision.ledger_entry(door="scan", targets=["."], version="0.1.0")
    assert "policy" not in without


_finding = st.builds(
    lambda kind, severity, tag, debt: (_f(kind, severity, "p.py", 1, str(tag)), debt),
    st.sampled_from(["secret", "provenance", "policy"]),
    st.sampled_from(sorted(WEIGHTS)),
    st.integers(0, 10**9),
    st.booleans(),
)


def _reference(
    items: list[tuple[Finding, bool]], fail_on: str, min_score: int
) -> tuple[int, bool, dict[str, Any]]:
    unique = {f.id: (f, debt) for f, debt in items}.values()
    new = [f for f, debt in unique if not debt]
    old = [f for f, debt in unique if debt]
    v = sum(WEIGHTS[f.severity.value] for f in new)
    d = sum(WEIGHTS[f.severity.value] for f in old)
    score = max(0, 100 - v - d // 4)
    passed = (
        all(RANKS[f.severity.value] < RANKS[fail_on] for f in new) and max(0, 100 - v) >= min_score
    )
    return score, passed, {"violations": len(new), "debt": len(old), "v": v, "d": d}


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(_finding, max_size=12),
    fail_on=st.sampled_from(sorted(WEIGHTS)),
    min_score=st.integers(0, 100),
)
def test_score_and_gate_follow_the_definition(
    items: list[tuple[Finding, bool]], fail_on: str, min_score: int
) -> None:
    findings = list({f.id: f for f, _ in items}.values())
    debt = [f for f, is_debt in {f.id: (f, d) for f, d in items}.values() if is_debt]
    decision = decide(findings, [], Gate(Severity(fail_on), min_score), baseline=Baseline.of(debt))
    score, passed, parts = _reference(items, fail_on, min_score)
    assert decision.score == score
    assert decision.passed is passed
    card = decision.scorecard
    assert (card.violations.count, card.debt.count) == (parts["violations"], parts["debt"])
    assert (card.violations.weight, card.debt.weight) == (parts["v"], parts["d"])
    assert card.drift is not None
    assert card.drift.count == parts["violations"]


@settings(max_examples=100, deadline=None)
@given(items=st.lists(_finding, max_size=12), min_score=st.integers(0, 100))
def test_debt_alone_never_fails_the_gate(items: list[tuple[Finding, bool]], min_score: int) -> None:
    findings = list({f.id: f for f, _ in items}.values())
    decision = decide(findings, [], Gate(Severity.INFO, min_score), baseline=Baseline.of(findings))
    assert decision.passed
    assert decision.scorecard.violations.count == 0
