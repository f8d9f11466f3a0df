"""The SARIF 2.1.0 report: what GitHub code scanning and other SARIF viewers read.

One run, one rule per distinct rule id, one result per finding. A result's
``partialFingerprints`` hold the finding's identity (rule + path + hash of what matched), never a
line number, so an alert survives unrelated edits above it. Like every report, no secret in clear:
results carry the redacted preview and the SHA-256 only.

With a baseline, each result says ``baselineState``: ``unchanged`` for debt, ``new`` otherwise.
A finding an inline directive silenced is still a result, with ``suppressions: [{"kind":
"inSource", "justification": reason}]``, SARIF's own mark of a suppressed result. Directives
that do not count are tool notifications at level ``warning``; the run's
``properties.scorecard`` holds the score's parts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from custodes import __version__
from custodes.engine import Decision
from custodes.findings import Finding, Severity
from custodes.reports.json_report import finding_details

if TYPE_CHECKING:
    from custodes.reports import LedgerRef
    from custodes.suppress import Suppressed

__all__ = ["FINGERPRINT_KEY", "SARIF_SCHEMA", "render_sarif", "sarif_level", "sarif_uri"]

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY = "custodes/v1"

_LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub's scale: 9.0 and above critical, 7.0 high, 4.0 medium, above 0 low.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
# RFC 3986 pchar less ":" (a colon in a first segment would read as a scheme) plus "/"; "!" — the
# archive member separator — is a sub-delim and stays as it is. Everything else is percent-encoded
# as UTF-8, "%" included.
_URI_SAFE = "/!$&'()*+,;=@-._~"


def sarif_level(severity: Severity) -> str:
    return _LEVELS[severity]


def sarif_uri(path: str) -> str:
    """A finding path as a URI reference: ``pkg.tgz!package/a b.js`` → ``pkg.tgz!package/a%20b.js``."""
    return quote(path.replace("\\", "/"), safe=_URI_SAFE)


def _rule(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.rule,
        "shortDescription": {"text": finding.message},
        "defaultConfiguration": {"level": sarif_level(finding.severity)},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[finding.severity],
            "tags": ["security"],
        },
    }


def _physical(path: str, start_line: int, end_line: int) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": sarif_uri(path)}}
    if start_line >= 1:
        physical["region"] = {"startLine": start_line, "endLine": max(end_line, start_line)}
    return physical


def _result(
    finding: Finding,
    rule_index: int,
    *,
    baseline_state: str | None = None,
    suppressed: Suppressed | None = None,
) -> dict[str, Any]:
    physical = _physical(finding.path, finding.start_line, finding.end_line)
    properties: dict[str, Any] = {"kind": finding.kind, "severity": finding.severity.value}
    properties.update(finding_details(finding))
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": sarif_level(finding.severity),
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: finding.id},
        "properties": properties,
    }
    if baseline_state is not None:
        result["baselineState"] = baseline_state
    if suppressed is not None:
        result["suppressions"] = [
            {
                "kind": "inSource",
                "justification": suppressed.reason,
                "location": {
                    "physicalLocation": _physical(finding.path, suppressed.line, suppressed.line)
                },
            }
        ]
    return result


def render_sarif(decision: Decision, *, ledger: LedgerRef | None) -> str:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []

    def rule_index(finding: Finding) -> int:
        if finding.rule not in index:
            index[finding.rule] = len(rules)
            rules.append(_rule(finding))
        return index[finding.rule]

    def state(finding: Finding) -> str | None:
        if decision.baseline is None:
            return None
        return "unchanged" if decision.is_debt(finding) else "new"

    for finding in decision.findings:
        results.append(_result(finding, rule_index(finding), baseline_state=state(finding)))
    for item in decision.suppressed:
        results.append(
            _result(
                item.finding,
                rule_index(item.finding),
                baseline_state=state(item.finding),
                suppressed=item,
            )
        )
    notifications = [
        {
            "level": "warning",
            "message": {"text": w.message},
            "locations": [{"physicalLocation": _physical(w.path, w.line, w.line)}],
        }
        for w in decision.warnings
    ]
    notifications += [
        {
            "level": "note",
            "message": {
                "text": f"not scanned: {s.reason.value}" + (f" ({s.detail})" if s.detail else "")
            },
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(s.path)}}}],
        }
        for s in decision.skipped
    ]
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run_properties: dict[str, Any] = {
        "passed": decision.passed,
        "score": decision.score,
        "reasons": list(decision.reasons),
        "scanned": decision.scanned,
        "skipped": len(decision.skipped),
        "scorecard": decision.scorecard.as_json(),
    }
    if ledger is not None:
        run_properties["ledger"] = {"index": ledger.index, "root": ledger.root}
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "custodes",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "invocations": [invocation],
                "results": results,
                "columnKind": "unicodeCodePoints",
                "properties": run_properties,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
