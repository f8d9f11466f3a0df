"""The text report: the scorecard and findings a developer reads in a terminal or CI log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from custodes.engine import DEBT_DIVISOR, Decision, DriftBase, Tally
from custodes.findings import Finding, Severity

__all__ = ["render_text"]

_COLOURS = {
    Severity.CRITICAL: "red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "white",
}
_LISTED = 20  # skipped files, suppressions and warnings shown before "… and N more"


def _where(f: Finding) -> str:
    return f"{f.path}:{f.start_line}" + (f"-{f.end_line}" if f.end_line != f.start_line else "")


def _more(lines: list[str], total: int) -> None:
    if total > _LISTED:
        lines.append(f"  … and {total - _LISTED} more (see --format json)")


def _kinds(tally: Tally) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in tally.by_kind.items())


def _scorecard(decision: Decision) -> list[str]:
    card = decision.scorecard
    v, d = card.violations, card.debt
    formula = f"scorecard: {card.score}/100 = 100 − {v.weight} violations"
    if decision.baseline is not None or d.count:
        formula += f" − {card.debt_penalty} debt (weight {d.weight} ÷ {DEBT_DIVISOR})"
    lines = [formula, f"  violations  {v.count} new: {_kinds(v)}"]
    if decision.baseline is not None:
        lines.append(
            f"  debt        {d.count} baselined, still present "
            f"(of {len(decision.baseline)} in {decision.baseline.source or 'the baseline'})"
        )
    if card.drift is None:
        lines.append("  drift       not measured (no baseline, not a diff scan)")
    elif card.drift_base is DriftBase.CHANGE:
        lines.append(f"  drift       {card.drift.count} added by the change")
    else:
        lines.append(f"  drift       {card.drift.count} new since the baseline")
    lines.append(f"  suppressed  {card.suppressed} inline, with a reason")
    return lines


def render_text(decision: Decision, *, ledger: Any, color: bool = False) -> str:
    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines: list[str] = []
    for f in decision.findings:
        sev = style(f"{f.severity.value:<8}", fg=_COLOURS[f.severity], bold=True)
        detail = f" [{f.preview}]" if f.preview else ""
        debt = style(" (debt: in the baseline)", dim=True) if decision.is_debt(f) else ""
        lines.append(f"{sev} {_where(f)}  {f.rule}: {f.message}{detail}{debt}")
        if f.source is not None:
            similarity = f" ({f.similarity:.0%} similar)" if f.similarity is not None else ""
            lines.append(
                f"         from {f.source.collection}:{f.source.path}:"
                f"{f.source.start_line}-{f.source.end_line}{similarity}"
            )
    _section(
        lines,
        "suppressed",
        [
            f"  {_where(s.finding)}  {s.finding.rule}: {s.reason}"
            + (f" [{s.finding.preview}]" if s.finding.preview else "")
            for s in decision.suppressed
        ],
    )
    _section(lines, "warnings", [f"  {w.path}:{w.line}: {w.message}" for w in decision.warnings])
    _section(
        lines,
        "not scanned",
        [
            f"  {s.path}: {s.reason.value}" + (f" ({s.detail})" if s.detail else "")
            for s in decision.skipped
        ],
    )
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
    lines.extend(_scorecard(decision))
    if ledger is not None:
        lines.append(f"recorded in the ledger as entry {ledger.index} (root {ledger.root[:16]}…)")
    return "\n".join(lines) + "\n"


def _section(lines: list[str], title: str, rows: Sequence[str]) -> None:
    if not rows:
        return
    lines.append("")
    lines.append(f"{title} ({len(rows)}):")
    lines.extend(rows[:_LISTED])
    _more(lines, len(rows))
