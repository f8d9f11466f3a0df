"""Inline suppressions: a reviewed exception written next to the code it excuses.

A directive is a comment in the scanned text itself::

    key = load_fixture()  # custodes: ignore[secret.aws-access-key-id] fake key of the test suite

    // custodes: ignore[secret.jwt, secret.generic-assignment] signed by the test CA, expires 2020
    const token = "eyJ…";

It silences the named rules on its own line, and, when the comment is alone on its line, on the
line below. Any comment leader works: ``#``, ``//``, ``--``, ``;``, ``/* … */`` and
``<!-- … -->``, so one syntax serves Python, shell, YAML, JavaScript, SQL, INI and HTML — and the
sources inside archives and source maps, which are subjects like any file.

Rules are named, always: ``ignore[*]`` is refused, because a blanket exception outlives the
finding it was written for and hides the next one. A directive must give a reason after the
bracket; one without a reason (or naming no valid rule) suppresses nothing and becomes a
:class:`Notice` that names the file and line and says how to fix it. A reason that itself holds
a credential is refused too, since reports and the ledger quote reasons.

A suppressed finding is not counted in the score or the gate, but reports and the ledger list it
with its reason: an exception is a decision an auditor can read, not a silent skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from custodes.findings import Finding
from custodes.subject import Subject

__all__ = ["MAX_REASON_CHARS", "Directive", "Notice", "Suppressed", "Suppressions"]

MAX_REASON_CHARS = 200
"""Reasons longer than this are cut (with "…") where reports and the ledger quote them."""

_MARK = "custodes:"
# The leader, then "custodes: ignore[ids]" and the rest of the line; the leader must precede
# the directive so that prose that merely mentions the syntax is not taken for one.
_DIRECTIVE = re.compile(
    r"(?P<leader>#|//|--|/\*|<!--|;)[ \t]*custodes:[ \t]*ignore[ \t]*\[(?P<ids>[^\]\n]*)\]"
    r"(?P<rest>[^\n]*)"
)
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]*")
# What a reason may start with (": fake key", "-- fake key") and what closes a block comment.
_REASON_LEAD = " \t:-–—=,"
_CLOSERS = {"/*": "*/", "<!--": "-->"}
_EXAMPLE = "# custodes: ignore[RULE-ID] why this is safe"


@dataclass(frozen=True)
class Directive:
    """One valid directive: the rules it silences, why, and where it is."""

    line: int  # the original line number of the comment (a hunk's own numbering)
    rules: frozenset[str]
    reason: str
    alone: bool  # the comment is the whole line, so it covers the line below as well

    def covers(self, finding: Finding) -> bool:
        if finding.rule not in self.rules:
            return False
        return finding.start_line == self.line or (
            self.alone and finding.start_line == self.line + 1
        )


@dataclass(frozen=True)
class Suppressed:
    """A finding a directive silenced, with the directive's reason and line."""

    finding: Finding
    reason: str
    line: int


@dataclass(frozen=True)
class Notice:
    """Something in the scanned text the user should fix; it never changes the verdict."""

    path: str
    line: int
    message: str


@dataclass(frozen=True)
class Suppressions:
    """The directives of one subject, and notices for the ones that do not count."""

    path: str
    directives: tuple[Directive, ...] = ()
    notices: tuple[Notice, ...] = ()

    @classmethod
    def of(cls, subject: Subject) -> Suppressions:
        """Read the directives in ``subject``'s text.

        Costs one substring search when the text has none, so it runs on every subject,
        whatever its size; lines are counted only up to the directives found.
        """
        text = subject.text
        start = text.find(_MARK)
        if start < 0:
            return cls(subject.path)
        directives: list[Directive] = []
        notices: list[Notice] = []
        line, counted = 1, 0
        while start >= 0:
            line_start = text.rfind("\n", 0, start) + 1
            line_end = text.find("\n", start)
            if line_end < 0:
                line_end = len(text)
            line += text.count("\n", counted, line_start)
            counted = line_start
            original = subject.original_line(line)
            for match in _DIRECTIVE.finditer(text, line_start, line_end):
                alone = not text[line_start : match.start()].strip()
                parsed = _parse(match, original, alone, subject.path)
                if isinstance(parsed, Directive):
                    directives.append(parsed)
                else:
                    notices.append(parsed)
            start = text.find(_MARK, line_end)
        return cls(subject.path, tuple(directives), tuple(notices))

    def match(self, finding: Finding) -> Directive | None:
        """The directive that silences ``finding``, if one does."""
        if finding.path != self.path:
            return None
        for directive in self.directives:
            if directive.covers(finding):
                return directive
        return None


def _parse(match: re.Match[str], line: int, alone: bool, path: str) -> Directive | Notice:
    ids = [part.strip() for part in match["ids"].split(",") if part.strip()]
    if not ids:
        return Notice(path, line, f"a suppression names no rule; write {_EXAMPLE}")
    if "*" in ids or any("*" in part for part in ids):
        return Notice(
            path,
            line,
            "ignore[*] is not accepted: name each rule to ignore, as the finding reports it "
            f"({_EXAMPLE})",
        )
    bad = [part for part in ids if not _RULE_ID.fullmatch(part)]
    if bad:
        return Notice(
            path,
            line,
            f"a suppression names {len(bad)} invalid rule id(s); use the rule ids the report "
            f"shows ({_EXAMPLE})",
        )
    reason = _reason(match["rest"], match["leader"])
    if not reason:
        return Notice(
            path,
            line,
            f"a suppression of {', '.join(ids)} has no reason, so it does not suppress; "
            f"write the reason after the bracket: {match['leader']} custodes: "
            f"ignore[{', '.join(ids)}] why this is safe",
        )
    if _holds_credential(reason):
        return Notice(
            path,
            line,
            f"the reason of a suppression of {', '.join(ids)} holds a credential, so it does "
            "not suppress; reports quote reasons: write it without the value",
        )
    return Directive(line, frozenset(ids), _shorten(reason), alone)


def _reason(rest: str, leader: str) -> str:
    reason = rest.strip()
    # Only the closer of this comment's own kind ends it: "*/" after "#" is text.
    closer = _CLOSERS.get(leader)
    if closer is not None and closer in reason:
        reason = reason[: reason.index(closer)]
    reason = reason.strip().lstrip(_REASON_LEAD).strip()
    # Punctuation alone ("-", "...") explains nothing.
    return reason if any(ch.isalnum() for ch in reason) else ""


def _shorten(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 1].rstrip() + "…"


def _holds_credential(reason: str) -> bool:
    from custodes.detectors.secrets import scan_text

    return next(iter(scan_text(reason)), None) is not None
