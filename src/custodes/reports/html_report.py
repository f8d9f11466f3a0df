"""The HTML report: one self-contained page for people — a CI artifact, an e-mail, a printout.

It carries the same facts as the JSON report (verdict, score, scorecard, findings with their
state, suppressions with their reasons, warnings, files not scanned, ledger entry, baseline) and
nothing more: secrets as a redacted preview and a SHA-256, provenance as the collection's file
and lines, never protected text.

Paths, rule messages and suppression reasons come from scanned repositories, so an attacker
writes them. Every dynamic value is HTML-escaped, and the page holds no script and loads
nothing: its Content-Security-Policy (``default-src 'none'; style-src 'unsafe-inline'``) stops a
script from running even if an escaping bug let one in. Control and bidirectional-override
characters are shown as ``\\xNN`` / ``\\uNNNN`` escapes, so a file name cannot hide itself or
reorder what the reader sees (Trojan Source).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING

from custodes import __version__
from custodes.engine import DEBT_DIVISOR, Decision, Tally
from custodes.findings import Finding, Severity
from custodes.reports.json_report import finding_details

if TYPE_CHECKING:
    from custodes.reports import LedgerRef
    from custodes.subject import Skipped
    from custodes.suppress import Notice, Suppressed

__all__ = ["CONTENT_SECURITY_POLICY", "OPEN_LIMIT", "render_html"]

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
OPEN_LIMIT = 20
"""Lists longer than this (files not scanned, suppressions, warnings) start collapsed."""

_SEVERITIES = sorted(Severity, key=lambda s: -s.rank)
# C0 controls and DEL (invisible or garbling), and the bidi embeddings, overrides and isolates
# that reorder text on screen.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_STYLE = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de;
  --bg-soft: #f6f8fa; --pass: #1a7f37; --fail: #cf222e; --critical: #82071e; --high: #cf222e;
  --medium: #9a6700; --low: #0969da; --info: #57606a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; display: flex; gap: .75rem; align-items: center; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .25rem; text-transform: uppercase; }
h4 { font-size: .95rem; margin: .75rem 0 .25rem; font-weight: 600; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .85em; overflow-wrap: anywhere; }
.verdict { color: #fff; border-radius: .3rem; padding: .1rem .6rem; font-size: 1.1rem; }
.verdict.passed { background: var(--pass); }
.verdict.failed { background: var(--fail); }
.score { font-size: 1.15rem; margin: .25rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
  margin: .75rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .25rem 0 .75rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
thead th { background: var(--bg-soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.findings, table.suppressed { table-layout: fixed; }
table.findings th:nth-child(1) { width: 17%; }
table.findings th:nth-child(2) { width: 25%; }
table.findings th:nth-child(3) { width: 22%; }
table.findings th:nth-child(5) { width: 7%; }
table.suppressed th:nth-child(1) { width: 15%; }
table.suppressed th:nth-child(2) { width: 21%; }
table.suppressed th:nth-child(3) { width: 8%; }
.muted, .id { color: var(--muted); }
.id { font-size: .8em; }
.state { border-radius: .25rem; padding: 0 .35rem; border: 1px solid var(--line); }
.state.new { border-color: var(--fail); color: var(--fail); }
.state.debt { color: var(--muted); }
.sev-critical h3 { color: var(--critical); }
.sev-high h3 { color: var(--high); }
.sev-medium h3 { color: var(--medium); }
.sev-low h3 { color: var(--low); }
.sev-info h3 { color: var(--info); }
details > summary { cursor: pointer; font-weight: 600; margin: .25rem 0; }
footer { margin-top: 2rem; color: var(--muted); font-size: .85rem; }
@media print {
  @page { margin: 1.5cm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2, h3, h4 { break-after: avoid; }
  tr { break-inside: avoid; }
  .verdict, .state { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"""


def _visible(text: str) -> str:
    return _HIDDEN.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
    )


def _e(value: object) -> str:
    """Any value as HTML text: visible, escaped (quotes too, so it is safe in attributes)."""
    return html.escape(_visible(str(value)), quote=True)


def _code(value: object) -> str:
    return f"<code>{_e(value)}</code>"


def _lines(start: int, end: int) -> str:
    if start < 1:
        return ""
    return f"{start}" if end <= start else f"{start}-{end}"


def _where(path: str, start: int, end: int) -> str:
    lines = _lines(start, end)
    return _code(f"{path}:{lines}" if lines else path)


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{_e(term)}</dt><dd>{value}</dd>" for term, value in pairs)
    return f'<dl class="facts">{rows}</dl>'


def _table(head: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _evidence(finding: Finding) -> str:
    """The finding's optional facts (the same ones the JSON report adds) as HTML."""
    details = finding_details(finding)
    parts: list[str] = []
    if "preview" in details:
        parts.append(
            f'<div>preview {_code(details["preview"])}</div>'
            f'<div>sha256 {_code(details["sha256"])}</div>'
        )
    source = details.get("source")
    if source is not None:
        lines = _lines(source["start_line"], source["end_line"])
        parts.append(
            f"<div>from collection {_code(source['collection'])}: "
            f"{_code(source['path'])} lines {_e(lines or '?')}</div>"
        )
    if "similarity" in details:
        parts.append(f"<div>similarity {_e(details['similarity'])}</div>")
    if "controls" in details:
        controls = ", ".join(_code(c) for c in details["controls"])
        parts.append(f"<div>controls {controls}</div>")
    return "".join(parts) or '<span class="muted">—</span>'


def _rule_cell(finding: Finding) -> str:
    return (
        f"{_code(finding.rule)}<div class=\"muted\">{_e(finding.kind)}</div>"
        f'<div class="id">id {_code(finding.id)}</div>'
    )


def _header(decision: Decision, ledger: LedgerRef | None) -> str:
    verdict = "PASSED" if decision.passed else "FAILED"
    reasons = (
        "<ul class=\"reasons\">" + "".join(f"<li>{_e(r)}</li>" for r in decision.reasons) + "</ul>"
        if decision.reasons
        else ""
    )
    facts: list[tuple[str, str]] = [
        ("files scanned", _e(decision.scanned)),
        ("files not scanned", _e(len(decision.skipped))),
        ("findings", _e(len(decision.findings))),
        ("suppressed", _e(len(decision.suppressed))),
        ("tool", f"custodes {_e(__version__)}"),
    ]
    if ledger is None:
        facts.append(("ledger entry", '<span class="muted">not recorded</span>'))
    else:
        facts += [("ledger entry", _e(ledger.index)), ("ledger root", _code(ledger.root))]
    baseline = decision.baseline
    if baseline is None:
        facts.append(("baseline", '<span class="muted">none</span>'))
    else:
        facts += [
            ("baseline", _code(baseline.source) if baseline.source else "(not from a file)"),
            ("baseline findings", _e(len(baseline))),
        ]
        if baseline.sha256:
            facts.append(("baseline sha256", _code(baseline.sha256)))
    return (
        f'<header id="summary"><h1><span class="verdict {verdict.lower()}">{verdict}</span>'
        f" custodes scan</h1>"
        f'<p class="score">score <strong>{_e(decision.score)}</strong>/100</p>'
        f"{reasons}{_facts(facts)}</header>"
    )


def _scorecard(decision: Decision) -> str:
    card = decision.scorecard
    tallies: list[tuple[str, Tally | None]] = [
        ("violations", card.violations),
        ("debt", card.debt),
        ("drift", card.drift),
    ]
    kinds: list[str] = []
    for _, tally in tallies:
        for kind in tally.by_kind if tally is not None else ():
            if kind not in kinds:
                kinds.append(kind)
    severities = [s.value for s in _SEVERITIES]
    head = ["", "count", "weight", *kinds, *severities]
    width = len(head) - 1

    def row(name: str, cells: str) -> str:
        return f'<tr><th scope="row">{_e(name)}</th>{cells}</tr>'

    def numbers(values: Iterable[int]) -> str:
        return "".join(f'<td class="num">{_e(v)}</td>' for v in values)

    rows = []
    for name, tally in tallies:
        if tally is None:
            rows.append(row(name, f'<td colspan="{width}" class="muted">not measured</td>'))
            continue
        values = [tally.count, tally.weight]
        values += [tally.by_kind.get(k, 0) for k in kinds]
        values += [tally.by_severity.get(s, 0) for s in severities]
        rows.append(row(name, numbers(values)))
    rows.append(row("suppressed", numbers([card.suppressed]) + f'<td colspan="{width - 1}"></td>'))
    drift = (
        "not measured (no baseline, not a diff scan)"
        if card.drift_base is None or card.drift is None
        else card.drift_base.value
    )
    facts = _facts(
        [
            ("score", _e(card.score)),
            ("gate score (violations only)", _e(card.gate_score)),
            (f"debt penalty (⌊weight ÷ {DEBT_DIVISOR}⌋)", _e(card.debt_penalty)),
            ("drift measured against", _e(drift)),
        ]
    )
    formula = (
        f'<p class="formula">score = max(0, 100 − {_e(card.violations.weight)} − '
        f"⌊{_e(card.debt.weight)} ÷ {DEBT_DIVISOR}⌋) = {_e(card.score)}</p>"
    )
    return (
        '<section id="scorecard"><h2>Scorecard</h2>'
        f'{formula}{_table(head, rows, "scorecard")}{facts}</section>'
    )


def _findings(decision: Decision) -> str:
    title = f"<h2>Findings ({len(decision.findings)})</h2>"
    if not decision.findings:
        return f'<section id="findings">{title}<p class="muted">No findings.</p></section>'
    parts = []
    for severity in _SEVERITIES:
        found = sorted(
            (f for f in decision.findings if f.severity is severity),
            key=lambda f: (f.path, f.start_line, f.rule),
        )
        if not found:
            continue
        groups = []
        for path, items in groupby(found, key=lambda f: f.path):
            rows = []
            for f in items:
                state = "debt" if decision.is_debt(f) else "new"
                rows.append(
                    "<tr>"
                    f"<td>{_where(f.path, f.start_line, f.end_line)}</td>"
                    f"<td>{_rule_cell(f)}</td>"
                    f"<td>{_e(f.message)}</td>"
                    f"<td>{_evidence(f)}</td>"
                    f'<td><span class="state {state}">{state}</span></td>'
                    "</tr>"
                )
            groups.append(
                f"<h4>{_code(path)}</h4>"
                + _table(["location", "rule", "message", "evidence", "state"], rows, "findings")
            )
        parts.append(
            f'<section class="severity sev-{severity.value}">'
            f"<h3>{severity.value} ({len(found)})</h3>{''.join(groups)}</section>"
        )
    return f'<section id="findings">{title}{"".join(parts)}</section>'


def _listing(section: str, title: str, count: int, table: str, note: str = "") -> str:
    """A section whose list collapses (``<details>``) when long."""
    if not count:
        return ""
    opened = " open" if count <= OPEN_LIMIT else ""
    return (
        f'<section id="{section}"><h2>{_e(title)} ({count})</h2>{note}'
        f"<details{opened}><summary>the list ({count})</summary>{table}</details>"
        "</section>"
    )


def _suppressed(items: Sequence[Suppressed]) -> str:
    rows = []
    for s in items:
        f = s.finding
        rows.append(
            "<tr>"
            f"<td>{_where(f.path, f.start_line, f.end_line)}</td>"
            f"<td>{_rule_cell(f)}</td>"
            f"<td>{_e(f.severity.value)}</td>"
            f"<td>{_e(f.message)}</td>"
            f"<td>{_e(s.reason)}<div class=\"muted\">directive on line {_e(s.line)}</div></td>"
            f"<td>{_evidence(f)}</td>"
            "</tr>"
        )
    table = _table(
        ["location", "rule", "severity", "message", "reason", "evidence"], rows, "suppressed"
    )
    note = '<p class="muted">Excused inline with a reason: not scored, not gating.</p>'
    return _listing("suppressed", "Suppressed", len(items), table, note)


def _warnings(items: Sequence[Notice]) -> str:
    rows = [
        f"<tr><td>{_code(w.path)}</td><td class=\"num\">{_e(w.line)}</td><td>{_e(w.message)}</td>"
        "</tr>"
        for w in items
    ]
    table = _table(["path", "line", "message"], rows, "warnings")
    return _listing("warnings", "Warnings", len(items), table)


def _skipped(items: Sequence[Skipped]) -> str:
    rows = [
        f"<tr><td>{_code(s.path)}</td><td>{_e(s.reason.value)}</td><td>{_e(s.detail)}</td></tr>"
        for s in items
    ]
    table = _table(["path", "reason", "detail"], rows, "skipped")
    return _listing("skipped", "Not scanned", len(items), table)


def render_html(decision: Decision, *, ledger: LedgerRef | None) -> str:
    """The report as one HTML5 document: inline CSS, no script, nothing loaded from elsewhere."""
    verdict = "PASSED" if decision.passed else "FAILED"
    sections = [
        _scorecard(decision),
        _findings(decision),
        _suppressed(decision.suppressed),
        _warnings(decision.warnings),
        _skipped(decision.skipped),
    ]
    main = "\n".join(s for s in sections if s)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="custodes {_e(__version__)}">\n'
        f"<title>custodes scan: {verdict}, score {_e(decision.score)}/100</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{_header(decision, ledger)}\n<main>\n{main}\n</main>\n"
        f"<footer>custodes {_e(__version__)}. No secret or protected code is shown: secrets "
        "appear as a redacted preview and the SHA-256 of the value; provenance as the "
        "collection's file and lines.</footer>\n</body>\n</html>\n"
    )
