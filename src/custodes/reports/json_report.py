"""The JSON report: a contract other tools parse; keep its keys stable."""

from __future__ import annotations

import json
from typing import Any

from custodes import __version__
from custodes.engine import Decision
from custodes.findings import Finding

__all__ = ["finding_details", "finding_json", "render_json"]


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


def render_json(decision: Decision, *, ledger: Any) -> str:
    report = {
        "tool": {"name": "custodes", "version": __version__},
        "passed": decision.passed,
        "score": decision.score,
        "reasons": list(decision.reasons),
        "ledger": None if ledger is None else {"index": ledger.index, "root": ledger.root},
        "scanned": decision.scanned,
        "findings": [finding_json(f) for f in decision.findings],
        "skipped": [
            {"path": s.path, "reason": s.reason.value, **({"detail": s.detail} if s.detail else {})}
            for s in decision.skipped
        ],
    }
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
