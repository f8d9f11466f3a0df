"""The JSON report: a contract other tools parse; keep its keys stable (add, never rename).

Keys: ``tool``, ``passed``, ``score``, ``reasons``, ``ledger``, ``scanned``, ``findings`` (each
with ``state``: ``new`` or ``debt``), ``skipped``; and ``scorecard`` (the score's parts),
``suppressed`` (findings an inline directive silenced, each with its ``suppression``),
``warnings`` (directives that do not count, by path and line) and ``baseline`` (the file read,
or null).
"""

from __future__ import annotations

import json
from typing import Any

from custodes import __version__
from custodes.engine import Decision
from custodes.findings import Finding
from custodes.suppress import Suppressed

__all__ = ["finding_details", "finding_json", "render_json", "suppressed_json"]


def finding_json(finding: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": finding.kind,
        "rule": finding.rule,
        "severity": finding.severity.value,
        "path": finding.path,
        "start_line": finding.start_line,
        "end_line": finding.end_line,
        "message": finding.message,
        "id": finding.id,
    }
    out.update(finding_details(finding))
    return out


def finding_details(finding: Finding) -> dict[str, Any]:
    """The optional facts of a finding, shared by the JSON and SARIF reports."""
    out: dict[str, Any] = {}
    if finding.preview is not None:
        out["preview"] = finding.preview
        out["sha256"] = finding.match_hash
    if finding.source is not None:
        out["source"] = {
            "collection": finding.source.collection,
            "path": finding.source.path,
            "start_line": finding.source.start_line,
            "end_line": finding.source.end_line,
        }
    if finding.similarity is not None:
        out["similarity"] = round(finding.similarity, 4)
    if finding.controls:
        out["controls"] = list(finding.controls)
    return out


def suppressed_json(item: Suppressed) -> dict[str, Any]:
    out = finding_json(item.finding)
    out["suppression"] = {"reason": item.reason, "line": item.line}
    return out


def render_json(decision: Decision, *, ledger: Any) -> str:
    baseline = decision.baseline
    report = {
        "tool": {"name": "custodes", "version": __version__},
        "passed": decision.passed,
        "score": decision.score,
        "reasons": list(decision.reasons),
        "ledger": None if ledger is None else {"index": ledger.index, "root": ledger.root},
        "scanned": decision.scanned,
        "findings": [
            {**finding_json(f), "state": "debt" if decision.is_debt(f) else "new"}
            for f in decision.findings
        ],
        "skipped": [
            {"path": s.path, "reason": s.reason.value, **({"detail": s.detail} if s.detail else {})}
            for s in decision.skipped
        ],
        "scorecard": decision.scorecard.as_json(),
        "suppressed": [suppressed_json(s) for s in decision.suppressed],
        "warnings": [
            {"path": w.path, "line": w.line, "message": w.message} for w in decision.warnings
        ],
        "baseline": None
        if baseline is None
        else {"path": baseline.source, "sha256": baseline.sha256, "findings": len(baseline)},
    }
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
