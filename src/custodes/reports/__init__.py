"""Report writers: one decision, several formats, the same facts in each.

Reports go to stdout (or ``--output``); diagnostics go to stderr. No report holds protected text
in clear: findings carry redacted previews and hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from custodes.engine import Decision

__all__ = ["Format", "LedgerRef", "render"]


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    HTML = "html"


@dataclass(frozen=True)
class LedgerRef:
    """Where the decision was recorded: its index and the tree root that covers it."""

    index: int
    root: str


def render(
    decision: Decision, fmt: Format, *, ledger: LedgerRef | None, color: bool = False
) -> str:
    if fmt is Format.JSON:
        from custodes.reports.json_report import render_json

        return render_json(decision, ledger=ledger)
    if fmt is Format.SARIF:
        from custodes.reports.sarif_report import render_sarif

        return render_sarif(decision, ledger=ledger)
    if fmt is Format.HTML:
        from custodes.reports.html_report import render_html

        return render_html(decision, ledger=ledger)
    from custodes.reports.text_report import render_text

    return render_text(decision, ledger=ledger, color=color)
