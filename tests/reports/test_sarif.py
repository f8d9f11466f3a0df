"""The SARIF report validates against the SARIF 2.1.0 JSON schema and keeps GitHub's contract.

tests/data/sarif-schema-2.1.0.json is Microsoft's SARIF 2.1.0 (rtm.5) JSON schema, byte for byte
as the npm package @microsoft/jest-sarif 1.0.0-beta.0 ships it (lib/schemas/sarif-2.1.0-rtm.5.json;
sha256 2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from custodes.baseline import Baseline
from custodes.engine import Decision, Gate, decide
from custodes.findings import Finding, Severity, SourceRef
from custodes.reports import Format, LedgerRef, render
from custodes.reports.sarif_report import FINGERPRINT_KEY, render_sarif
from custodes.subject import Skipped, SkipReason
from custodes.suppress import Notice, Suppressed

SCHEMA_PATH = Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8"
CUSTODES = str(Path(sys.executable).parent / "custodes")
# Format-valid but fake: AKIA + 16 base32 characters, not AWS's documented example key.
AWS_KEY = "AKIAQ3EGRXNVPB5OTXQA"


@cache
def _schema() -> dict[str, Any]:
    raw = SCHEMA_PATH.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "the vendored schema was changed"
    schema: dict[str, Any] = json.loads(raw)
    return schema


def _validate(text: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(text)
    validator_cls = jsonschema.validators.validator_for(_schema())
    validator_cls.check_schema(_schema())
    # FormatChecker() with every known format, so "uri-reference" is checked too.
    validator = validator_cls(_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return log


def _finding(
    severity: Severity = Severity.HIGH,
    *,
    rule: str = "secret.aws-access-key-id",
    path: str = "src/app.py",
    line: int = 5,
    secret: str = AWS_KEY,
) -> Finding:
    return Finding(
        kind="secret",
        rule=rule,
        severity=severity,
        path=path,
        start_line=line,
        end_line=line,
        message="AWS access key id",
        match_hash=hashlib.sha256(secret.encode()).hexdigest(),
        preview="AKIA…XQA",
    )


def _provenance() -> Finding:
    return Finding(
        kind="provenance",
        rule="provenance.leaked-code",
        severity=Severity.CRITICAL,
        path="lib/agent.ts",
        start_line=10,
        end_line=42,
        message="code copied from a leaked collection",
        match_hash=hashlib.sha256(b"fragment").hexdigest(),
        source=SourceRef("leaks/acme", "src/tools/agent.ts", 100, 132),
        similarity=0.97312,
        controls=("SOC2-CC6.1",),
    )


def _decision(*findings: Finding, skipped: tuple[Skipped, ...] = ()) -> Decision:
    score = max(0, 100 - sum(f.severity.weight for f in findings))
    failing = [f for f in findings if f.severity.rank >= Severity.HIGH.rank]
    return Decision(
        passed=not failing,
        score=score,
        findings=tuple(findings),
        skipped=skipped,
        reasons=(f"{len(failing)} finding(s) at or above high severity",) if failing else (),
        scanned=3,
    )


def test_secret_and_provenance_findings_validate() -> None:
    decision = _decision(
        _finding(),
        _provenance(),
        _finding(line=9, secret="AKIAQ3EGRXNVPB5OTXQB"),
        skipped=(
            Skipped("logo.png", SkipReason.BINARY),
            Skipped("big.js", SkipReason.TOO_LARGE, "2 MB"),
        ),
    )
    text = render_sarif(decision, ledger=LedgerRef(7, "ab" * 32))
    log = _validate(text)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "custodes"
    assert [r["id"] for r in driver["rules"]] == [
        "secret.aws-access-key-id",
        "provenance.leaked-code",
    ]
    assert [r["ruleIndex"] for r in run["results"]] == [0, 1, 0]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    first, prov, _ = run["results"]
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "src/app.py"
    assert location["region"] == {"startLine": 5, "endLine": 5}
    assert first["message"]["text"] == "AWS access key id"
    assert first["partialFingerprints"] == {FINGERPRINT_KEY: decision.findings[0].id}
    assert first["properties"]["preview"] == "AKIA…XQA"
    assert first["properties"]["sha256"] == decision.findings[0].match_hash
    assert prov["locations"][0]["physicalLocation"]["region"] == {"startLine": 10, "endLine": 42}
    assert prov["properties"]["source"]["collection"] == "leaks/acme"
    assert prov["properties"]["similarity"] == 0.9731
    assert prov["properties"]["controls"] == ["SOC2-CC6.1"]
    assert "sha256" not in prov["properties"]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    assert len(invocation["toolExecutionNotifications"]) == 2
    scorecard = run["properties"].pop("scorecard")
    assert (scorecard["score"], scorecard["violations"]["count"]) == (0, 3)
    assert run["properties"] == {
        "passed": False,
        "score": 0,
        "reasons": ["3 finding(s) at or above high severity"],
        "scanned": 3,
        "skipped": 2,
        "ledger": {"index": 7, "root": "ab" * 32},
    }
    assert AWS_KEY not in text


def test_empty_decision_validates() -> None:
    log = _validate(render_sarif(_decision(), ledger=None))
    (run,) = log["runs"]
    assert run["results"] == []
    assert run["tool"]["driver"]["rules"] == []
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert run["properties"]["passed"] is True
    assert run["properties"]["score"] == 100
    assert "ledger" not in run["properties"]


@pytest.mark.parametrize(
    ("severity", "level", "security_severity"),
    [
        (Severity.CRITICAL, "error", "9.5"),
        (Severity.HIGH, "error", "8.0"),
        (Severity.MEDIUM, "warning", "5.5"),
        (Severity.LOW, "note", "3.0"),
        (Severity.INFO, "note", "0.0"),
    ],
)
def test_levels_and_security_severity(
    severity: Severity, level: str, security_severity: str
) -> None:
    log = _validate(render_sarif(_decision(_finding(severity)), ledger=None))
    (run,) = log["runs"]
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["defaultConfiguration"]["level"] == level
    assert rule["properties"]["security-severity"] == security_severity
    float(rule["properties"]["security-severity"])  # GitHub parses it as a number
    assert rule["properties"]["tags"] == ["security"]
    assert rule["shortDescription"]["text"] == "AWS access key id"
    assert run["results"][0]["level"] == level


def test_fingerprint_does_not_depend_on_the_line() -> None:
    before = _finding(line=5)
    after = dataclasses.replace(before, start_line=40, end_line=40)

    def fingerprint(finding: Finding) -> dict[str, str]:
        log = _validate(render_sarif(_decision(finding), ledger=None))
        result = log["runs"][0]["results"][0]
        fp: dict[str, str] = result["partialFingerprints"]
        return fp

    assert fingerprint(before) == fingerprint(after)
    other_file = dataclasses.replace(before, path="src/other.py")
    assert fingerprint(other_file) != fingerprint(before)


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("docs/my notes.txt", "docs/my%20notes.txt"),
        (
            "pkg.tgz!package/dist/cli.js.map!src/tools/agent.ts",
            "pkg.tgz!package/dist/cli.js.map!src/tools/agent.ts",
        ),
        ("dist/a b.zip!x/100%#?.js", "dist/a%20b.zip!x/100%25%23%3F.js"),
        ("c:odd/ünï.py", "c%3Aodd/%C3%BCn%C3%AF.py"),
    ],
)
def test_paths_become_valid_uri_references(path: str, uri: str) -> None:
    log = _validate(render_sarif(_decision(_finding(path=path)), ledger=None))
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == uri


def test_a_space_in_a_path_is_invalid_unencoded() -> None:
    """The check above means something: the schema's format check rejects a raw space."""
    text = render_sarif(_decision(_finding(path="a b.py")), ledger=None)
    broken = text.replace("a%20b.py", "a b.py")
    with pytest.raises(AssertionError, match="uri-reference"):
        _validate(broken)


def test_render_dispatches_sarif() -> None:
    decision = _decision(_finding())
    assert Format("sarif") is Format.SARIF
    assert render(decision, Format.SARIF, ledger=None) == render_sarif(decision, ledger=None)


def test_scan_cli_writes_sarif(tmp_path: Path) -> None:
    src = tmp_path / "proj" / "src"
    src.mkdir(parents=True)
    (src / "app.py").write_text(f'KEY_ID = "{AWS_KEY}"\n')
    (tmp_path / "proj" / "clean.py").write_text("print('hello')\n")
    done = subprocess.run(
        [CUSTODES, "scan", "proj", "--format", "sarif", "--no-ledger"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert AWS_KEY not in done.stdout
    assert AWS_KEY not in done.stderr
    log = _validate(done.stdout)
    (run,) = log["runs"]
    (result,) = run["results"]
    assert result["ruleId"] == "secret.aws-access-key-id"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "src/app.py"
    assert location["region"]["startLine"] == 1
    assert run["properties"]["passed"] is False
    assert not (tmp_path / ".custodes").exists()


def test_baseline_state_suppressions_and_warnings_validate() -> None:
    debt = _finding(line=3)
    new = _finding(line=9, secret="AKIAQ3EGRXNVPB5OTXQB")
    quiet = _finding(line=12, secret="AKIAQ3EGRXNVPB5OTXQC")
    decision = decide(
        [debt, new],
        [],
        Gate(),
        suppressed=[Suppressed(quiet, "fixture of the SDK docs", 11)],
        warnings=[Notice("src/app.py", 20, "a suppression of x has no reason")],
        baseline=Baseline.of([debt]),
    )
    log = _validate(render_sarif(decision, ledger=None))
    (run,) = log["runs"]
    by_line = {
        r["locations"][0]["physicalLocation"]["region"]["startLine"]: r for r in run["results"]
    }
    assert sorted(by_line) == [3, 9, 12]
    assert by_line[3]["baselineState"] == "unchanged"
    assert by_line[9]["baselineState"] == "new"
    assert "suppressions" not in by_line[9]
    (suppression,) = by_line[12]["suppressions"]
    assert suppression["kind"] == "inSource"
    assert suppression["justification"] == "fixture of the SDK docs"
    assert suppression["location"]["physicalLocation"]["region"]["startLine"] == 11
    (warning,) = run["invocations"][0]["toolExecutionNotifications"]
    assert warning["level"] == "warning"
    assert warning["locations"][0]["physicalLocation"]["region"]["startLine"] == 20
    assert run["properties"]["scorecard"]["debt"]["count"] == 1
    assert run["properties"]["scorecard"]["suppressed"] == 1


def test_without_a_baseline_results_have_no_baseline_state() -> None:
    log = _validate(render_sarif(decide([_finding()], [], Gate()), ledger=None))
    assert "baselineState" not in log["runs"][0]["results"][0]
