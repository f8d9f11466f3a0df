"""The text report: the scorecard and findings a developer reads in a terminal or CI log."""

from __future__ import annotations

from typing import Any

import click

from custodes.engine import Decision
from custodes.findings import Severity

__all__ = ["render_text"]

_COLOURS = {
    Severity.CRITICAL: "red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "white",
}


def render_text(decision: Decision, *, ledger: Any, color: bool = False) -> str:
    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines: list[str] = []
    for f in decision.findings:
        where = f"{f.path}:{f.start_line}" + (
            f"-{f.end_line}" if f.end_line != f.start_line else ""
        )
        sev = style(f"{f.severity.value:<8}", fg=_COLOURS[f.severity], bold=True)
        detail = f" [{f.preview}]" if f.preview else ""
        lines.append(f"{sev} {where}  {f.rule}: {f.message}{detail}")
        if f.source is not None:
            similarity = f" ({f.similarity:.0%} similar)" if f.similarity is not None else ""
            lines.append(
                f"         from {f.source.collection}:{f.source.path}:"
                f"{f.source.start_line}-{f.source.end_line}{similarity}"
            )
    if decision.skipped:
        lines.append("")
        lines.append(f"not scanned ({len(decision.skipped)}):")
        for s in decision.skipped[:20]:
            detail = f" ({s.detail})" if s.detail else ""
            lines.append(f"  {s.path}: {s.reason.value}{detail}")
        if len(decision.skipped) > 20:
            lines.append(f"  … and {len(decision.skipped) - 20} more (see --format json)")
    counts = {sev: 0 for sev in Severity}
    for f in decision.findings:
        counts[f.severity] += 1
    summary = ", ".join(f"{n} {sev.value}" for sev, n in reversed(counts.items()) if n) or "none"
    lines.append("")
    verdict = (
        style("PASSED", fg="green", bold=True)
        if decision.passed
        else style("FAILED", fg="red", bold=True)
    )
    lines.append(
        f"{verdict}  score {decision.score}/100  files scanned {decision.scanned}  "
        f"findings: {summary}"
    )
    for reason in decision.reasons:
        lines.append(f"  - {reason}")
    if ledger is not None:
        lines.append(f"recorded in the ledger as entry {ledger.index} (root {ledger.root[:16]}…)")
    return "\n".join(lines) + "\n"
