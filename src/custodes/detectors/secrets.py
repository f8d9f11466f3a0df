"""Find credentials in text: API keys, tokens, private keys, passwords in URIs and assignments.

:func:`scan_text` runs the rules of :mod:`custodes.detectors.secret_rules` over a text and
yields one :class:`SecretMatch` per credential occurrence. A match never holds the credential:
only a short redacted preview and the SHA-256 of the exact value, which baselines use as a
stable fingerprint.

How a scan stays fast on large inputs (a 50 MB minified bundle is one line):

* the text is lower-cased once and every rule keyword is located in one pass over it
  (:mod:`custodes.detectors.keywords`); a rule runs only if one of its keywords occurs;
* an anchored rule (every match contains a keyword) is searched only in windows of
  ``max_len`` characters around the keyword's occurrences, merged where they overlap;
* every rule's quantifiers are bounded, so each regex attempt costs at most ``max_len`` steps;
* line and column numbers come from one left-to-right pass over the sorted matches.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from custodes.detectors.keywords import keyword_index
from custodes.detectors.secret_checks import DOCUMENTED_EXAMPLES, is_placeholder
from custodes.detectors.secret_rules import RULES, SecretRule, Severity
from custodes.subject import Subject

__all__ = ["RULES", "SecretMatch", "SecretRule", "Severity", "redact", "scan_subject", "scan_text"]

# Room for a regex's lookarounds beyond a window's declared reach (they read one or two
# characters); a match this close to a window's inner edge may be cut short by it.
_SLACK = 16

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _keywords(rules: Sequence[SecretRule]) -> frozenset[str]:
    return frozenset(keyword for rule in rules for keyword in rule.keywords)


_RULES_KEYWORDS = _keywords(RULES)
# Which of RULES (by position) each keyword wakes: a text wakes a handful of the ~110 rules,
# and looking its keywords up here costs a tenth of asking every rule for its own.
_RULES_BY_KEYWORD: dict[str, tuple[int, ...]] = {
    keyword: tuple(i for i, rule in enumerate(RULES) if keyword in rule.keywords)
    for keyword in _RULES_KEYWORDS
}


@dataclass(frozen=True)
class SecretMatch:
    """One credential occurrence: where it is and which rule found it, but not its value.

    ``line`` and ``end_line`` (1-based) are the lines of the credential's first and last
    characters; ``column`` (1-based, in characters) is where it starts. ``preview`` shows at
    most a public prefix and a few trailing characters (``ghp_…a1B2``); ``sha256`` is the hex
    SHA-256 of the exact value (UTF-8), the fingerprint that baselines record.
    """

    rule_id: str
    severity: Severity
    line: int
    column: int
    end_line: int
    preview: str
    sha256: str
    description: str


def redact(value: str, *, shown_prefix: int = 0, shown_tail: int = 4) -> str:
    """A preview of ``value`` that reveals at most a quarter of it, and never more than 8 chars.

    The prefix shown is the rule's fixed public prefix (``ghp_``), capped at four characters;
    the tail gives a person something to recognise the credential by.
    """
    budget = len(value) // 4 if len(value) >= 12 else 0
    head = min(shown_prefix, 4, budget)
    tail = min(shown_tail, 4, budget - head)
    return value[:head] + "…" + (value[-tail:] if tail > 0 else "")


def fingerprint(value: str) -> str:
    # surrogatepass: text decoded with surrogateescape still hashes, deterministically.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def scan_text(
    text: str, *, path: str = "", rules: Sequence[SecretRule] = RULES
) -> Iterator[SecretMatch]:
    """Credentials in ``text``, in order of position; lines are those of ``text`` itself.

    ``path`` lets rules skip files they do not apply to (the generic rule skips lock files).
    Lines are separated by ``\\n`` (a ``\\r`` before it belongs to the line).
    """
    return iter(_scan(text, path, rules, windowed=True))


def scan_subject(subject: Subject) -> Iterator[SecretMatch]:
    """Credentials in a subject, with line numbers of the original (file, hunk or member)."""
    for match in scan_text(subject.text, path=subject.path):
        yield replace(
            match,
            line=subject.original_line(match.line),
            end_line=subject.original_line(match.end_line),
        )


@dataclass(frozen=True)
class _Candidate:
    start: int  # of the secret itself, not of the whole regex match
    end: int
    rule: SecretRule
    value: str
    # False when the rule recognised its format but rejected the value (a documented example,
    # a placeholder, a failed checksum), or left it to a rule that claims its name. Such a
    # candidate is never reported, but it still silences lower-priority rules on its
    # characters: a ghp_ token with a bad checksum is a fake GitHub token, not a generic
    # high-entropy secret.
    reported: bool = True


def _scan(
    text: str, path: str, rules: Sequence[SecretRule], *, windowed: bool
) -> list[SecretMatch]:
    if not text:
        return []
    found = _Finder(text, rules, windowed=windowed).candidates(path, rules)
    return _to_matches(text, _resolve_overlaps(found))


class _Finder:
    """Runs rules over one text, sharing the lower-cased copy and the keyword positions."""

    def __init__(self, text: str, rules: Sequence[SecretRule], *, windowed: bool) -> None:
        self.text = text
        self.windowed = windowed
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters lower-case to two (İ); keyword offsets must line up with text.
            lowered = text.translate(_ASCII_LOWER)
        keywords = _RULES_KEYWORDS if rules is RULES else _keywords(rules)
        self.positions = keyword_index(keywords).find(lowered)

    def windows(self, keywords: Sequence[str], reach: int) -> list[tuple[int, int]]:
        """Merged spans of ``reach`` characters either side of every keyword occurrence."""
        n = len(self.text)
        return _union(
            [
                (max(0, at - reach), min(n, at + len(keyword) + reach))
                for keyword in keywords
                for at in self.positions[keyword]
            ]
        )

    def candidates(self, path: str, rules: Sequence[SecretRule]) -> list[_Candidate]:
        found: list[_Candidate] = []
        runs: list[tuple[SecretRule, list[str]]] = []
        if rules is RULES:  # only the rules a found keyword wakes, in the same order
            woken = {i for keyword in self.positions for i in _RULES_BY_KEYWORD.get(keyword, ())}
            rules = [RULES[i] for i in sorted(woken)]
        for rule in rules:
            if rule.skip_paths is not None and rule.skip_paths.search(path):
                continue
            keywords = [k for k in rule.keywords if k in self.positions]
            if keywords:
                runs.append((rule, keywords))
        # Only a rule that runs on this text speaks for the names it claims: the Twilio rule
        # claims auth_token only in a file that mentions Twilio.
        claims = tuple(rule.claims for rule, _ in runs if rule.claims is not None)
        for rule, keywords in runs:
            found.extend(self._run(rule, keywords, claims if rule.defers_to_claims else ()))
        return found

    def _run(
        self,
        rule: SecretRule,
        keywords: Sequence[str],
        claims: Sequence[Callable[[str], bool]],
    ) -> Iterator[_Candidate]:
        group = rule.secret_group
        for match in self._matches(rule, keywords):
            start, end = match.span(group)
            if start < 0:
                continue
            value = match.group(group)
            reported = not (
                value in DOCUMENTED_EXAMPLES
                # AWS and others mark made-up credentials in their docs with EXAMPLE, also in
                # formats the placeholder check leaves alone (PEM bodies, session tokens).
                or "example" in value.lower()
                or (rule.validate is not None and not rule.validate(match))
                or (rule.check_placeholder and is_placeholder(value))
            )
            if reported and claims:
                # The name names a provider whose rule judged this assignment: had the value
                # been a credential of that format, that rule would have reported it.
                name = match.group("name")
                reported = not any(claim(name) for claim in claims)
            yield _Candidate(start, end, rule, value, reported)

    def _matches(self, rule: SecretRule, keywords: Sequence[str]) -> Iterator[re.Match[str]]:
        text, n = self.text, len(self.text)
        if not self.windowed and rule.match_start is not None:
            # The reference semantics of such a rule: a match may begin anywhere, also inside
            # another (overlaps are resolved later). Quadratic; used to check the fast path.
            for start in range(n):
                match = rule.pattern.match(text, start)
                if match is not None:
                    yield match
        elif not (self.windowed and rule.anchored):
            yield from rule.pattern.finditer(text)
        elif rule.match_start is not None:
            # The rule knows where a match around a keyword must begin: one anchored attempt
            # per occurrence instead of a search through its window.
            starts = {rule.match_start(text, at) for k in keywords for at in self.positions[k]}
            for start in sorted(starts):
                match = rule.pattern.match(text, start)
                if match is not None:
                    yield match
        else:
            for lo, hi in self.windows(keywords, rule.max_len + _SLACK):
                for match in rule.pattern.finditer(text, lo, hi):
                    # A match that nears a window's end may be a truncation of a longer run.
                    # Any whole match lies at least _SLACK inside the window of the keyword it
                    # contains, so dropping these loses nothing.
                    if hi == n or match.end() <= hi - _SLACK:
                        yield match


def _resolve_overlaps(found: list[_Candidate]) -> list[_Candidate]:
    """One reported candidate per stretch of text.

    Higher priority wins, then the earlier and longer candidate. A rejected candidate is not
    reported, but it silences lower-priority rules on its characters.
    """
    found.sort(key=lambda c: (-c.rule.priority, c.start, c.start - c.end))
    kept: list[_Candidate] = []
    taken: list[tuple[int, int]] = []  # sorted, disjoint spans of kept candidates
    vetoed: list[tuple[int, int]] = []  # the union of rejected higher-priority spans
    rejected_here: list[tuple[int, int]] = []
    priority = None
    for candidate in found:
        if candidate.rule.priority != priority:
            vetoed = _union(vetoed + rejected_here)
            rejected_here, priority = [], candidate.rule.priority
        span = (candidate.start, candidate.end)
        if not candidate.reported:
            rejected_here.append(span)
        elif not _overlaps(taken, *span) and not _overlaps(vetoed, *span):
            _insert(taken, span)
            kept.append(candidate)
    kept.sort(key=lambda c: (c.start, c.end, c.rule.id))
    return kept


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint spans covering the same characters as ``spans``."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _overlaps(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` meets one of ``taken``, sorted and disjoint spans."""
    i = bisect.bisect_right(taken, start, key=_span_start)
    # Only the span starting at or before `start` and the one right after it can overlap.
    if i > 0 and taken[i - 1][1] > start:
        return True
    return i < len(taken) and taken[i][0] < end


def _insert(taken: list[tuple[int, int]], span: tuple[int, int]) -> None:
    taken.insert(bisect.bisect_right(taken, span[0], key=_span_start), span)


def _span_start(span: tuple[int, int]) -> int:
    return span[0]


def _to_matches(text: str, kept: list[_Candidate]) -> list[SecretMatch]:
    """Matches with line and column numbers, counted in one pass over the sorted candidates."""
    matches: list[SecretMatch] = []
    line, line_start, position = 1, 0, 0
    for candidate in kept:
        # Candidates are sorted by start, so each newline is counted once overall.
        newlines = text.count("\n", position, candidate.start)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", position, candidate.start) + 1
        position = candidate.start
        rule = candidate.rule
        matches.append(
            SecretMatch(
                rule_id=rule.id,
                severity=rule.severity,
                line=line,
                column=candidate.start - line_start + 1,
                end_line=line + candidate.value.count("\n"),
                preview=redact(
                    candidate.value, shown_prefix=rule.shown_prefix, shown_tail=rule.shown_tail
                ),
                sha256=fingerprint(candidate.value),
                description=rule.description,
            )
        )
    return matches
