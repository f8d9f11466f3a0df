"""The guard's rules over prompts and completions: which rule matches where, and what it asks.

The guard reads a request as *parts* — a plain prompt, the text of each chat message, a
completion — and runs the policy's rules for the stage (``applies-to: prompt`` before the
model, ``completion`` after it) over each part. Unlike the code gate it needs the character
span of every match, to redact it and to hold a stream back before it; so each detector runs
once per part and its matches come back with spans:

* ``regex`` — the rule's own patterns (``pattern-not`` drops a match on the same lines);
* ``phrases`` — the rule's literal phrases, all found in one pass by its automaton;
* ``secrets`` — the credentials scanner (the secret rules the rule names, or all);
* ``pii`` — the personal-data scanner (the kinds the rule names, or all);
* ``injection`` — the prompt-injection scanner, families at the rule's ``min-confidence``;
  a family's span is the lines it was found on;
* ``provenance`` — the provenance index, when the guard has one; a match's span is its lines.

What a match asks for is the rule's ``action``; without one (see :func:`default_action`):
personal data is **redacted**; a credential is **blocked** at high or critical severity and
redacted below; anything else is blocked at high or critical and only recorded (``allow``)
below. A rule with ``bypass-with-token`` is passed, and recorded as bypassed, when the caller
presents a valid policy token naming it.

Findings never hold matched text: a redacted preview and a digest keyed with the ledger's
secret (HMAC-SHA-256), because a plain SHA-256 of a card or phone number is reversed by trying
every number.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

from custodes.detectors import injection as _injection
from custodes.detectors import pii as _pii
from custodes.detectors import secrets as _secrets
from custodes.detectors.interface import Detector
from custodes.findings import Finding, Severity
from custodes.policy.model import (
    InjectionCheck,
    PhraseCheck,
    PiiCheck,
    Policy,
    ProvenanceCheck,
    RegexCheck,
    Rule,
    SecretsCheck,
)
from custodes.subject import Subject, SubjectKind

__all__ = [
    "Action",
    "Hit",
    "Part",
    "RuleSet",
    "default_action",
    "redact_spans",
]

_BASE_HOLD: Final = 256  # an e-mail address (254), an IBAN, a phrase of the injection patterns
_REGEX_HOLD_CAP: Final = 1024  # an unbounded regular expression is held back this far at most
_KEYWORD_LEAD: Final = 64  # how far before its keyword a credential may start (a URL scheme)
_FENCE = re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.MULTILINE)
_CONDITION_MEMORY: Final = 4096  # (stage, caller, model) whose applicable rules are kept


class Action(StrEnum):
    """What the guard does with a request or an output, from the mildest to the strictest."""

    ALLOW = "allow"
    REDACT = "redact"
    REVIEW = "review"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Action.ALLOW: 0, Action.REDACT: 1, Action.REVIEW: 2, Action.BLOCK: 3}


@dataclass(frozen=True)
class Part:
    """One text the guard reads, and where it sits in the request (``messages[1].content``)."""

    path: str
    text: str


@dataclass(frozen=True)
class Hit:
    """One match of one rule: the finding, its span in part ``part``, and what it asks for."""

    rule: Rule
    finding: Finding
    part: int
    start: int
    end: int
    action: Action
    bypassed: bool = False


def default_action(rule: Rule, severity: Severity) -> Action:
    """What a guard rule without an ``action`` does with a match of ``severity``."""
    if rule.action is not None:
        return Action(rule.action)
    if isinstance(rule.check, PiiCheck):
        return Action.REDACT
    high = severity.rank >= Severity.HIGH.rank
    if isinstance(rule.check, SecretsCheck):
        return Action.BLOCK if high else Action.REDACT
    return Action.BLOCK if high else Action.ALLOW


def redact_spans(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, label)`` span replaced by ``[REDACTED:label]``.

    Overlapping spans are merged; the merged span takes the first one's label.
    """
    out: list[str] = []
    position = 0
    for start, end, label in _merge(spans):
        out.append(text[position:start])
        out.append(f"[REDACTED:{label}]")
        position = end
    out.append(text[position:])
    return "".join(out)


def _merge(spans: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    merged: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans):
        if merged and start < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end, merged[-1][2])
        else:
            merged.append((start, end, label))
    return merged


class _Lines:
    """Line numbers of offsets and offsets of lines in one text, counted once, and only when
    asked: most texts have no finding to place."""

    def __init__(self, text: str) -> None:
        self.text = text

    @functools.cached_property
    def newlines(self) -> list[int]:
        return [m.start() for m in re.finditer("\n", self.text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def span_of_lines(self, first: int, last: int) -> tuple[int, int]:
        start = 0 if first <= 1 else self.newlines[min(first, len(self.newlines) + 1) - 2] + 1
        end = self.newlines[last - 1] if last - 1 < len(self.newlines) else len(self.text)
        return start, max(start, end)

    def offset(self, line: int, column: int) -> int:
        return (0 if line <= 1 else self.newlines[line - 2] + 1) + column - 1


@dataclass
class _PartScan:
    """What each detector found in one part, computed only when a rule asks for it."""

    part: Part
    lines: _Lines
    cache: dict[str, Any] = field(default_factory=dict)
    _folded: str | None = None
    _folding: bool = False  # whether ``_folded`` was computed (None is an answer)

    @property
    def folded(self) -> str | None:
        """The part's text as a case-insensitive regex sees its ASCII letters, offset for
        offset: lower-cased, with the four other letters ``re.IGNORECASE`` equates with an
        ASCII one (``İ ı ſ K``) written as that letter. None if that would shift an offset
        (no Unicode version does so far). For the literal pre-filters of regex rules."""
        if not self._folding:
            self._folding = True
            text = original = self.part.text
            if not text.isascii():
                # str.replace, not str.translate: a translation table costs ~50 ns a character.
                for letter, ascii_letter in _IGNORECASE_ASCII:
                    text = text.replace(letter, ascii_letter)
            folded = text.lower()
            self._folded = folded if len(folded) == len(original) else None
        return self._folded


class RuleSet:
    """The guard rules of one policy, ready to run over parts. Thread-safe."""

    def __init__(
        self,
        policy: Policy,
        *,
        provenance: Callable[[], Detector] | None = None,
        digest_key: bytes,
    ) -> None:
        self.policy = policy
        self._key = digest_key
        self.rules: Mapping[str, tuple[Rule, ...]] = {
            stage: tuple(r for r in policy.rules if stage in r.stages)
            for stage in ("prompt", "completion")
        }
        self._provenance: Detector | None = None
        self.notes: dict[str, tuple[str, ...]] = {"prompt": (), "completion": ()}
        wanted = [r for r in policy.rules if isinstance(r.check, ProvenanceCheck)]
        if any(stage in r.stages for r in wanted for stage in ("prompt", "completion")):
            if provenance is None:
                for stage in ("prompt", "completion"):
                    self.notes[stage] = tuple(
                        f"rule {r.id} not run: it needs a provenance index"
                        for r in self.rules[stage]
                        if isinstance(r.check, ProvenanceCheck)
                    )
            else:
                self._provenance = provenance()
        # The provenance detector keeps per-call state and shares one SQLite connection.
        self._provenance_lock = threading.Lock()
        # Computed once here rather than per request: what a regex needs before it can match,
        # the injection scanner's threshold, and which rules have conditions at all.
        self._prefilters: dict[re.Pattern[str], _Prefilter | None] = {
            pattern: _Prefilter.of(pattern)
            for rule in policy.rules
            if isinstance(rule.check, RegexCheck)
            for pattern in rule.check.patterns
        }
        self._injection_threshold = min(
            (
                r.check.min_confidence
                for rules in self.rules.values()
                for r in rules
                if isinstance(r.check, InjectionCheck)
            ),
            default=0.5,
        )
        self._conditional = {
            stage: any(r.scope.when is not None for r in rules)
            for stage, rules in self.rules.items()
        }
        # CEL conditions are pure functions of the variables: a caller's requests ask the same.
        self._applicable: dict[tuple[object, ...], tuple[Rule, ...]] = {}

    @property
    def reads_index(self) -> bool:
        """Whether a rule reads the provenance index (a query that may wait for its lock)."""
        return self._provenance is not None

    # -- evaluation --
    def evaluate(
        self,
        stage: str,
        parts: Sequence[Part],
        variables: Mapping[str, object],
        *,
        token_rules: frozenset[str] = frozenset(),
    ) -> list[Hit]:
        """Every match of the stage's rules whose condition holds, in part and span order."""
        rules = self.applicable(stage, variables)
        if not rules:
            return []
        hits: list[Hit] = []
        seen: set[tuple[str, str, int, int, int]] = set()
        for number, part in enumerate(parts):
            if not part.text:
                continue
            scan = _PartScan(part, _Lines(part.text))
            for rule in rules:
                for finding, start, end in self._matches(rule, scan):
                    key = (rule.id, finding.rule, number, start, end)
                    if key in seen:
                        continue
                    seen.add(key)
                    hits.append(
                        Hit(
                            rule=rule,
                            finding=finding,
                            part=number,
                            start=start,
                            end=end,
                            action=default_action(rule, finding.severity),
                            bypassed=rule.bypass_with_token and rule.id in token_rules,
                        )
                    )
        hits.sort(key=lambda h: (h.part, h.start, h.end, h.rule.id))
        return hits

    def _matches(self, rule: Rule, scan: _PartScan) -> Iterator[tuple[Finding, int, int]]:
        check = rule.check
        if isinstance(check, RegexCheck):
            yield from self._regex(rule, check, scan)
        elif isinstance(check, PhraseCheck):
            yield from self._phrases(rule, check, scan)
        elif isinstance(check, SecretsCheck):
            for start, end, match in self._secret_spans(scan):
                if not check.rules or check.rules.match(match.rule_id):
                    yield self._finding(
                        rule, scan, start, end,
                        kind="secret", detector_rule=match.rule_id, severity=match.severity,
                        message=match.description, digest=match.sha256, preview=match.preview,
                    )  # fmt: skip
        elif isinstance(check, PiiCheck):
            for start, end, pii_match in self._pii_spans(scan):
                if not check.kinds or check.kinds.match(pii_match.rule_id):
                    yield self._finding(
                        rule, scan, start, end,
                        kind="pii", detector_rule=pii_match.rule_id, severity=pii_match.severity,
                        message=pii_match.description, digest=pii_match.sha256,
                        preview=pii_match.preview, controls=_pii.CONTROLS,
                    )  # fmt: skip
        elif isinstance(check, InjectionCheck):
            for found in self._injection(scan):
                if found.confidence >= check.min_confidence:
                    start, end = scan.lines.span_of_lines(found.line, found.end_line)
                    yield self._finding(
                        rule, scan, start, end,
                        kind="injection", detector_rule=found.rule_id, severity=found.severity,
                        message=found.message, digest=found.sha256, preview=None,
                        controls=_injection.RULES[found.rule_id].controls,
                    )  # fmt: skip
        elif isinstance(check, ProvenanceCheck):
            yield from self._provenance_matches(rule, check, scan)

    def _finding(
        self,
        rule: Rule,
        scan: _PartScan,
        start: int,
        end: int,
        *,
        kind: str,
        detector_rule: str,
        severity: Severity,
        message: str,
        digest: str,
        preview: str | None,
        controls: tuple[str, ...] = (),
    ) -> tuple[Finding, int, int]:
        finding = Finding(
            kind=kind,
            rule=detector_rule,
            severity=rule.severity or severity,
            path=scan.part.path,
            start_line=scan.lines.line_of(start),
            end_line=scan.lines.line_of(max(start, end - 1)),
            message=message,
            match_hash=self.keyed(digest),
            preview=preview,
            controls=tuple(dict.fromkeys([*controls, *rule.controls])),
        )
        return finding, start, end

    def keyed(self, digest: str) -> str:
        """A detector's digest keyed with the guard's secret, so it cannot be reversed."""
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()

    def _regex(self, rule: Rule, check: RegexCheck, scan: _PartScan) -> Iterator[tuple[Finding, int, int]]:
        text = scan.part.text
        for pattern in check.patterns:
            prefilter = self._prefilters.get(pattern)
            if prefilter is not None and not prefilter.may_match(scan):
                continue
            windows = prefilter.windows(scan) if prefilter is not None else None
            found = pattern.finditer(text) if windows is None else _windowed(pattern, text, windows)
            for match in found:
                start, end = match.span()
                if check.excluded:
                    lo, hi = scan.lines.span_of_lines(
                        scan.lines.line_of(start), scan.lines.line_of(max(start, end - 1))
                    )
                    if any(p.search(text, lo, hi) for p in check.excluded):
                        continue
                value = match.group(0)
                assert rule.severity is not None  # the schema requires it of regex rules
                yield self._finding(
                    rule, scan, start, end,
                    kind="policy", detector_rule=rule.id, severity=rule.severity,
                    message=rule.message,
                    digest=hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
                    preview=_secrets.redact(value),
                )  # fmt: skip

    def _phrases(
        self, rule: Rule, check: PhraseCheck, scan: _PartScan
    ) -> Iterator[tuple[Finding, int, int]]:
        text = scan.part.text
        assert rule.severity is not None  # the schema requires it of phrase rules
        for match in check.matcher.find(text):
            value = text[match.start : match.end]
            # What the text holds, not the phrase as listed: the digest then pins the words
            # the caller wrote (their case), and the preview masks them like a regex match.
            yield self._finding(
                rule, scan, match.start, match.end,
                kind="policy", detector_rule=rule.id, severity=rule.severity,
                message=rule.message,
                digest=hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
                preview=_secrets.redact(value),
            )  # fmt: skip

    @staticmethod
    def _secret_spans(scan: _PartScan) -> list[tuple[int, int, _secrets.SecretMatch]]:
        if "secrets" not in scan.cache:
            scan.cache["secrets"] = secret_spans(scan.part.text, scan.part.path)
        found: list[tuple[int, int, _secrets.SecretMatch]] = scan.cache["secrets"]
        return found

    @staticmethod
    def _pii_spans(scan: _PartScan) -> list[tuple[int, int, _pii.PiiMatch]]:
        if "pii" not in scan.cache:
            scan.cache["pii"] = pii_spans(scan.part.text)
        found: list[tuple[int, int, _pii.PiiMatch]] = scan.cache["pii"]
        return found

    def _injection(self, scan: _PartScan) -> list[_injection.InjectionMatch]:
        if "injection" not in scan.cache:
            scan.cache["injection"] = list(
                _injection.scan_text(scan.part.text, threshold=self._injection_threshold)
            )
        found: list[_injection.InjectionMatch] = scan.cache["injection"]
        return found

    def _provenance_matches(
        self, rule: Rule, check: ProvenanceCheck, scan: _PartScan
    ) -> Iterator[tuple[Finding, int, int]]:
        if self._provenance is None:
            return
        if "provenance" not in scan.cache:
            subject = Subject(scan.part.path, scan.part.text, SubjectKind.COMPLETION)
            with self._provenance_lock:
                scan.cache["provenance"] = list(self._provenance.scan(subject))
        from custodes.detectors.rules import _collects

        for found in scan.cache["provenance"]:
            if not _collects(rule, found):
                continue
            start, end = scan.lines.span_of_lines(found.start_line, found.end_line)
            finding = Finding(
                kind="provenance",
                rule=found.rule,
                severity=rule.severity or found.severity,
                path=scan.part.path,
                start_line=found.start_line,
                end_line=found.end_line,
                message=found.message,
                match_hash=self.keyed(found.match_hash),
                source=found.source,
                similarity=found.similarity,
                controls=tuple(dict.fromkeys([*found.controls, *rule.controls])),
            )
            yield finding, start, end

    # -- streams --
    def applicable(self, stage: str, variables: Mapping[str, object]) -> tuple[Rule, ...]:
        """The stage's rules whose condition holds for ``variables``."""
        rules = self.rules[stage]
        if not self._conditional[stage]:
            return rules
        key = _variables_key(stage, variables)
        if key is None:
            return self._evaluate_conditions(rules, variables)
        found = self._applicable.get(key)
        if found is None:
            found = self._evaluate_conditions(rules, variables)
            if len(self._applicable) >= _CONDITION_MEMORY:
                self._applicable.clear()
            self._applicable[key] = found
        return found

    @staticmethod
    def _evaluate_conditions(
        rules: tuple[Rule, ...], variables: Mapping[str, object]
    ) -> tuple[Rule, ...]:
        return tuple(r for r in rules if r.scope.when is None or r.scope.when.holds(variables))

    def hold_start(
        self, rules: Sequence[Rule], text: str, handled: Sequence[tuple[int, int]]
    ) -> int:
        """The first offset of ``text`` that must stay held back: a match of one of ``rules``
        that begins there or later may still be incomplete.

        ``handled`` are spans already matched (a credential found is no longer in the making).
        """
        n = len(text)
        hold = max(0, n - _hold_of(rules))
        if any(isinstance(r.check, SecretsCheck) for r in rules):
            hold = min(hold, _secret_keyword_hold(text, handled))
        if self._provenance is not None and any(
            isinstance(r.check, ProvenanceCheck) for r in rules
        ):
            # Copied code is recognised by many fingerprints together: hold an open code
            # block until it closes.
            fences = [m.start() for m in _FENCE.finditer(text)]
            if len(fences) % 2 == 1:
                hold = min(hold, fences[-1])
        return hold


def _hold_of(rules: Sequence[Rule]) -> int:
    hold = _BASE_HOLD
    for rule in rules:
        if isinstance(rule.check, RegexCheck):
            for pattern in rule.check.patterns:
                hold = max(hold, _regex_width(pattern))
        elif isinstance(rule.check, PhraseCheck):
            # One more character: the ``words`` test reads the one after a match.
            hold = max(hold, rule.check.matcher.longest + 1)
    return hold


@functools.lru_cache(maxsize=1024)
def _regex_width(pattern: re.Pattern[str]) -> int:
    # Parsed once per pattern: a stream asks again on every piece it is fed.
    try:
        from re import _parser  # type: ignore[attr-defined, unused-ignore]

        width = int(_parser.parse(pattern.pattern, pattern.flags).getwidth()[1])
    except Exception:  # an internal API: a changed one only costs a longer hold
        return _REGEX_HOLD_CAP
    return min(width + 1, _REGEX_HOLD_CAP)  # one more for a lookahead at its end


_SECRET_KEYWORDS: Final = {
    keyword: max(r.max_len for r in _secrets.RULES if keyword in r.keywords)
    for rule in _secrets.RULES
    for keyword in rule.keywords
}


_SECRET_KEYWORD_SET: Final = frozenset(_SECRET_KEYWORDS)
_SECRET_REACH: Final = max(_SECRET_KEYWORDS.values())


def _secret_keyword_hold(text: str, handled: Sequence[tuple[int, int]]) -> int:
    """Where a credential still in the making may begin: before a keyword of a secret rule
    seen less than that rule's longest match ago and not yet part of a match."""
    from custodes.detectors.keywords import keyword_index

    n = len(text)
    lo = max(0, n - _SECRET_REACH - _KEYWORD_LEAD)
    window = text[lo:].lower()
    if len(window) != n - lo:
        window = text[lo:].translate(_ASCII_LOWER)
    hold = n
    positions = keyword_index(_SECRET_KEYWORD_SET).find(window)
    for keyword, places in positions.items():
        longest = _SECRET_KEYWORDS[keyword]
        for at in places:
            absolute = lo + at
            if n - absolute >= longest:
                continue
            if any(start <= absolute < end for start, end in handled):
                continue
            hold = min(hold, max(0, absolute - _KEYWORD_LEAD))
    return hold


_ASCII_LOWER: Final = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
)


# -- spans from the detectors ----------------------------------------------------------------------
# The scanners report lines and columns; redaction needs character spans. Both come from the
# scanners' own candidate lists, through the same calls their ``scan_text`` makes. Those calls
# are private to the scanners, so before the first use each reading is checked against the
# public ``scan_text`` on a sample; should they ever disagree, spans are taken from the public
# results instead, from the match's first character to the end of its last line: redacting a
# little more, never less.

_SAMPLE: Final = (
    "mail jane.roe@acme-corp.de or call +44 20 7946 0958\n"
    "card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32\n"
    "token ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6 and AKIAZ7VRSQ5MPLVWQ3XY\n"
)


def secret_spans(text: str, path: str = "") -> list[tuple[int, int, _secrets.SecretMatch]]:
    """``(start, end, match)`` for every credential ``secrets.scan_text`` reports in ``text``."""
    if not text:
        return []
    if _reading_ok("secrets"):
        try:
            return _secret_reading(text, path)
        except Exception:  # a changed private reading: the public one still works
            _READINGS["secrets"] = False
    return _from_public(text, list(_secrets.scan_text(text, path=path)))


def pii_spans(text: str) -> list[tuple[int, int, _pii.PiiMatch]]:
    """``(start, end, match)`` for every identifier ``pii.scan_text`` reports in ``text``."""
    if not text:
        return []
    if _reading_ok("pii"):
        try:
            return _pii_reading(text)
        except Exception:  # a changed private reading: the public one still works
            _READINGS["pii"] = False
    return _from_public(text, list(_pii.scan_text(text)))


def _secret_reading(text: str, path: str) -> list[tuple[int, int, _secrets.SecretMatch]]:
    finder = _secrets._Finder(text, _secrets.RULES, windowed=True)
    kept = _secrets._resolve_overlaps(finder.candidates(path, _secrets.RULES))
    matches = _secrets._to_matches(text, kept)
    return [(c.start, c.end, m) for c, m in zip(kept, matches, strict=True)]


def _pii_reading(text: str) -> list[tuple[int, int, _pii.PiiMatch]]:
    found: list[Any] = []
    shape = _Shape.of(text)
    for finder in _pii._FINDERS:
        gate = _PII_GATES.get(finder.__name__)
        if gate is None or gate(shape):
            found.extend(finder(text))
    gate = _PII_GATES.get("_phones")
    if gate is None or gate(shape):
        found.extend(_pii._phones(text, _PHONE_REGIONS))
    kept = _pii._resolve_overlaps(found)
    matches = _pii._to_matches(text, kept, None)
    return [(c.start, c.end, m) for c, m in zip(kept, matches, strict=True)]


_PHONE_REGIONS: Final = tuple(r.upper() for r in _pii.DEFAULT_REGIONS)


# -- pre-filters -----------------------------------------------------------------------------------
# Most prompts hold few digits, yet most personal-data finders need a run of them, and each runs
# a regular expression over the whole text (a lookbehind tried at every character). One pass over
# the digit runs tells which finders can match at all. Each gate is a necessary condition for its
# finder's regular expression to match, read from that expression; it applies only while the
# finder and its expression are the ones it was read from (their source's SHA-256), so an edited
# finder runs ungated until its gate is checked again.


@dataclass(frozen=True)
class _Shape:
    """What the gates read of a text: its digit runs, where they sit, and six capitals.

    ``longest`` and ``digits``: the longest run and all digits. The other flags each say that
    the runs are laid out as one finder's expression needs (see ``_PII_GATE_SPECS``): a run
    of a given length, a run right after letters, runs one separator apart.
    """

    longest: int
    digits: int
    capitals: bool
    card: bool = True
    iban: bool = True
    ssn: bool = True
    nino: bool = True
    steuer: bool = True
    nir: bool = True
    phone: bool = True

    @classmethod
    def of(cls, text: str) -> _Shape:
        runs = [m.span() for m in _DIGIT_RUN.finditer(text)]
        flags = dict.fromkeys(("card", "iban", "ssn", "nino", "steuer", "nir", "phone"), False)
        cluster = 0  # digits of the runs joined by phone separators so far
        for number, (start, end) in enumerate(runs):
            size = end - start
            # The next run, when exactly one character (``sep``) parts it from this one.
            after = runs[number + 1] if number + 1 < len(runs) else (-1, -1)
            sep = text[end] if after[0] == end + 1 else ""
            follow = after[1] - after[0] if sep else 0
            before = text[start - 1] if start else ""
            before2 = text[start - 2] if start > 1 else ""
            if 13 <= size <= 19 or (size == 4 and sep in _DASH_OR_SPACE and follow in (4, 6)):
                flags["card"] = True
            if size >= 2 and before in _ASCII_LETTERS and before2 in _ASCII_LETTERS:
                flags["iban"] = True
            if size == 9 or (size == 3 and sep in _DASH_OR_SPACE and follow == 2):
                flags["ssn"] = True
            if (size == 6 or (size == 2 and sep == " ")) and (
                before in _CAPITAL_LETTERS or (before == " " and before2 in _CAPITAL_LETTERS)
            ):
                flags["nino"] = True
            if size == 11 or (size == 2 and sep == " " and follow == 3):
                flags["steuer"] = True
            if (
                size == 15
                or (size == 1 and sep == " " and follow == 2)
                or (size == 6 and end < len(text) and text[end] in "AB")
            ):
                flags["nir"] = True
            if number and _joins_phone(text[runs[number - 1][1] : start]):
                cluster += size
            else:
                cluster = size
            if cluster >= 7:
                flags["phone"] = True
        return cls(
            longest=max((end - start for start, end in runs), default=0),
            digits=sum(end - start for start, end in runs),
            capitals=_CAPITALS.search(text) is not None,
            **flags,
        )


def _joins_phone(gap: str) -> bool:
    # Inside a phone match only separators part two digits, 22 characters at most in all.
    return len(gap) <= 22 and not gap.strip(_PHONE_SEPARATORS)


_DIGIT_RUN: Final = re.compile(r"\d+")  # the finders' \d: any Unicode decimal digit
_CAPITALS: Final = re.compile(r"[A-Z]{6}")
_DASH_OR_SPACE: Final = (" ", "-")
_ASCII_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_CAPITAL_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PHONE_SEPARATORS: Final = " -.()\u00a0"

# finder: (its regular expression, source digest, what any match of that expression needs).
# The lookbehinds and lookaheads that forbid a digit (\w) beside a group make each group of
# digits a whole run, so a match needs runs of those lengths, parted by its separators.
_PII_GATE_SPECS: Final[dict[str, tuple[str, str, Callable[[_Shape], bool]]]] = {
    # \d{13,19} | \d{4}([ -])\d{4}\1… | \d{4}([ -])\d{6}…
    "_cards": ("_CARD", "e1b7e9c5f2ee9f6d", lambda s: s.card),
    # [A-Za-z]{2}\d{2}…: a run right after two ASCII letters
    "_ibans": ("_IBAN", "45fed77cd0959c1c", lambda s: s.iban),
    # \d{3}([ -]?)\d{2}\1\d{4}: nine digits, or three then two
    "_ssns": ("_SSN", "98685767b15d6896", lambda s: s.ssn),
    # [A-Z]{2}( ?)\d{2}\1\d{2}\1\d{2}\1[A-D]: six digits, or two then a space, after capitals
    "_ninos": ("_NINO", "7d3353c3edc0186b", lambda s: s.nino),
    # \d{8} | [XYZ]-?\d{7}
    "_spanish_ids": ("_SPANISH_ID", "b49d8aee8668e66d", lambda s: s.longest >= 7),
    # \d{2}( ?)\d{3}\1\d{3}\1\d{3}: eleven digits, or two, a space, three
    "_steuer_ids": ("_STEUER_ID", "696ce01b6e8b7c2a", lambda s: s.steuer),
    # [A-Z]{6}…
    "_codici_fiscali": ("_CODICE_FISCALE", "852b5e0178c0bf73", lambda s: s.capitals),
    # [12378]( ?)\d{2}\1\d{2}\1(\d{2}|2[AB])\1\d{3}…: fifteen digits, six then A or B, or one,
    # a space, two
    "_nirs": ("_NIR", "ffc5382f161bcfdd", lambda s: s.nir),
    # a candidate is dropped unless it holds 7 to 17 digits, parted only by separators
    "_phones": ("_PHONE", "47088e06b09b1703", lambda s: s.phone),
}


def _pii_gates() -> dict[str, Callable[[_Shape], bool]]:
    import inspect

    gates: dict[str, Callable[[_Shape], bool]] = {}
    for name, (regex, digest, gate) in _PII_GATE_SPECS.items():
        try:
            source = inspect.getsource(getattr(_pii, name)) + "\0" + getattr(_pii, regex).pattern
        except (AttributeError, OSError, TypeError):  # changed, or no source: run ungated
            continue
        if hashlib.sha256(source.encode()).hexdigest()[:16] == digest:
            gates[name] = gate
    return gates


_PII_GATES: Final = _pii_gates()


@dataclass(frozen=True)
class _Prefilter:
    """Strings of which every match of a regular expression holds one; with none of them in a
    text, the expression is not run over it (a literal search costs a fraction of a regex
    scan whose pattern starts with ``\\b`` or a lookbehind).

    ``folded``: the expression matches some letters case-insensitively, so ``needles`` are in
    lower case and compared with the text as :attr:`_PartScan.folded` gives it: lower-cased,
    and the four non-ASCII letters that the regex engine equates with ASCII ones but
    ``str.lower`` keeps apart (``ſ`` and ``s``) written as those. A needle is ASCII, so a
    text matching it case-insensitively holds it there, at the same offset.

    ``width``: the most characters a match can span, when that is bounded and the expression
    reads nothing beyond its match but one character (``\\b``, ``$``; no lookahead, ``\\Z``
    or backreference). Then a text holding a needle is searched only in windows around the
    needle's occurrences (:meth:`windows`), not from end to end: every match holds a needle,
    so it starts at most ``width`` before one and ends at most ``width`` after. A search
    bounded at ``endpos`` sees the text as ending there; a window reaching one character past
    any match it can hold keeps ``\\b`` and ``$`` honest, and a lookbehind or ``\\b`` at its
    start reads the text before it as usual.
    """

    needles: tuple[str, ...]
    folded: bool
    width: int | None = None

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> _Prefilter | None:
        try:
            from re import _parser  # type: ignore[attr-defined, unused-ignore]

            parsed = _parser.parse(pattern.pattern, pattern.flags)
            folded = bool(pattern.flags & re.IGNORECASE) or _scoped_flags(parsed.data)
            needs = _needs(parsed.data)
        except Exception:  # an internal API: a changed one only loses the pre-filter
            return None
        if not needs or min(map(len, needs)) < _NEEDLE_MIN or len(needs) > _NEEDLES_MAX:
            return None
        if folded:
            needs = frozenset(n.lower() for n in needs)
        # A needle holding another is found whenever that one is: searching it adds nothing
        # (and a match holding the longer one holds the shorter, for the windows too).
        kept = [n for n in needs if not any(o != n and o in n for o in needs)]
        return cls(tuple(sorted(kept)), folded, _window_width(parsed))

    def windows(self, scan: _PartScan) -> list[tuple[int, int]] | None:
        """Where matches can be, as ``(pos, endpos)`` spans in order, disjoint; None: anywhere.

        Call after :meth:`may_match` said true.
        """
        width = self.width
        if width is None:
            return None
        if self.folded:
            folded = scan.folded
            if folded is None:
                return None
            text = folded
        else:
            text = scan.part.text
        n = len(text)
        starts: list[tuple[int, int]] = []
        for needle in self.needles:
            at = text.find(needle)
            while at >= 0:
                # A match holding this occurrence starts no earlier than ``width`` before its
                # end and ends no later than ``width`` after its start; one more character
                # for what ``\b`` or ``$`` reads after the match.
                starts.append((max(0, at + len(needle) - width), min(n, at + width + 1)))
                at = text.find(needle, at + 1)
        starts.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in starts:
            if merged and lo <= merged[-1][1]:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def may_match(self, scan: _PartScan) -> bool:
        """False only when the expression cannot match the part's text."""
        if self.folded:
            folded = scan.folded
            if folded is None:
                return True
            text = folded
        else:
            text = scan.part.text
        return any(needle in text for needle in self.needles)


_IGNORECASE_ASCII: Final = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"), ("\u212a", "k"))
"""The non-ASCII characters that ``re.IGNORECASE`` matches with an ASCII letter, and which
(tests/guard/test_regex_windows.py finds them among every code point)."""
_NEEDLE_MIN: Final = 3  # shorter strings are in most texts: searching them saves nothing
_WINDOW_MAX: Final = 512  # a wider expression is searched from end to end


def _windowed(
    pattern: re.Pattern[str], text: str, windows: Sequence[tuple[int, int]]
) -> Iterator[re.Match[str]]:
    """What ``pattern.finditer(text)`` yields, searching only ``windows`` (see
    :meth:`_Prefilter.windows`). A match never leaves its window and the windows are disjoint,
    so each is searched from its start, resuming after each match as ``finditer`` does."""
    search = pattern.search
    for position, end in windows:
        while position < end:
            match = search(text, position, end)
            if match is None:
                break
            yield match
            position = match.end()  # every match holds a needle, so none is empty


def _groups_within(code: Any, value: Any) -> list[Any] | None:
    """The parsed sub-sequences a group, atomic group, repeat or alternation holds (None for
    any other node): the walk the regex readers below share."""
    from re import _constants as op  # type: ignore[attr-defined, unused-ignore]

    if code is op.SUBPATTERN:
        return [value[-1]]
    if code is op.ATOMIC_GROUP:
        return [value]
    if code in (op.MAX_REPEAT, op.MIN_REPEAT, op.POSSESSIVE_REPEAT):
        return [value[2]]
    if code is op.BRANCH:
        return list(value[1])
    return None


def _window_width(parsed: Any) -> int | None:
    """The most characters a match of the parsed expression spans, if bounded (and at most
    :data:`_WINDOW_MAX`) and nothing in it reads further than one character past the match."""
    from re import _constants as op  # type: ignore[attr-defined, unused-ignore]

    def reads_ahead(items: Sequence[tuple[Any, Any]]) -> bool:
        for code, value in items:
            if code is op.ASSERT or code is op.ASSERT_NOT:
                # A lookahead reads past the match; a lookbehind only before it.
                inner = [value[1]] if value[0] < 0 else None
            elif code in (op.GROUPREF, op.GROUPREF_EXISTS):
                inner = None  # a backreference's width is not the parser's to know
            elif code is op.AT:
                # ``$`` without MULTILINE and ``\Z`` hold at a window's end that is not the text's.
                inner = [] if value not in (op.AT_END, op.AT_END_STRING) else None
            else:
                inner = _groups_within(code, value)
                if inner is None:
                    continue
            if inner is None or any(reads_ahead(sub.data) for sub in inner):
                return True
        return False

    width = int(parsed.getwidth()[1])
    if width > _WINDOW_MAX or reads_ahead(parsed.data):
        return None
    return width
_NEEDLES_MAX: Final = 32


def _needs(items: Sequence[tuple[Any, Any]]) -> frozenset[str] | None:
    """Strings of which every match of the parsed sequence ``items`` holds one (None: unknown).

    A run of ASCII literals is such a string; a group, or a repeat at least once, needs what
    its body needs; an alternation needs one of what each branch needs. Of the candidates the
    one whose shortest string is longest is kept. Anything else (classes, anchors, lookaround)
    needs nothing known and ends a run of literals.
    """
    from re import _constants as op  # type: ignore[attr-defined, unused-ignore]

    best: frozenset[str] | None = None

    def consider(found: frozenset[str] | None) -> None:
        nonlocal best
        if not found:
            return
        if best is None or (min(map(len, found)), -len(found)) > (
            min(map(len, best)),
            -len(best),
        ):
            best = found

    run: list[str] = []
    for code, value in items:
        if code is op.LITERAL and value < 0x80:
            run.append(chr(value))
            continue
        if run:
            consider(frozenset(["".join(run)]))
            run = []
        if code is op.SUBPATTERN:
            consider(_needs(value[-1].data))
        elif code is op.ATOMIC_GROUP:
            consider(_needs(value.data))
        elif code in (op.MAX_REPEAT, op.MIN_REPEAT, op.POSSESSIVE_REPEAT) and value[0] >= 1:
            consider(_needs(value[2].data))
        elif code is op.BRANCH:
            branches = [_needs(branch.data) for branch in value[1]]
            if all(branches):
                consider(frozenset().union(*[b for b in branches if b]))
    if run:
        consider(frozenset(["".join(run)]))
    return best


def _scoped_flags(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether a group anywhere in ``items`` sets or clears flags (``(?i:…)``)."""
    from re import _constants as op  # type: ignore[attr-defined, unused-ignore]

    for code, value in items:
        if code is op.SUBPATTERN and (value[1] or value[2]):
            return True
        inner = [value[-1]] if code in (op.ASSERT, op.ASSERT_NOT) else _groups_within(code, value)
        if inner is None:
            continue
        if any(_scoped_flags(sub.data) for sub in inner):
            return True
    return False


def _variables_key(stage: str, variables: Mapping[str, object]) -> tuple[object, ...] | None:
    """``variables`` as a key, when they are plain text (or maps of text): None otherwise."""
    key: list[object] = [stage]
    for name in sorted(variables):
        value = variables[name]
        if isinstance(value, str):
            key.append((name, value))
        elif isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            key.append((name, tuple(sorted(value.items()))))
        else:
            return None
    return tuple(key)


_READINGS: dict[str, bool] = {}
_READINGS_LOCK = threading.Lock()


def _reading_ok(which: str) -> bool:
    """Whether the private reading of a scanner gives what its public ``scan_text`` does."""
    known = _READINGS.get(which)
    if known is not None:
        return known
    with _READINGS_LOCK:
        if which not in _READINGS:
            try:
                if which == "secrets":
                    spans: list[Any] = _secret_reading(_SAMPLE, "")
                    public: list[Any] = list(_secrets.scan_text(_SAMPLE))
                else:
                    spans = _pii_reading(_SAMPLE)
                    public = list(_pii.scan_text(_SAMPLE))
                lines = _Lines(_SAMPLE)
                _READINGS[which] = bool(public) and [m for _, _, m in spans] == public and all(
                    lines.offset(m.line, m.column) == start for start, _, m in spans
                )
            except Exception:  # the private reading changed shape
                _READINGS[which] = False
        return _READINGS[which]


_M = TypeVar("_M", _secrets.SecretMatch, _pii.PiiMatch)


def _from_public(text: str, matches: list[_M]) -> list[tuple[int, int, _M]]:
    lines = _Lines(text)
    out = []
    for m in matches:
        start = lines.offset(m.line, m.column)
        out.append((start, lines.span_of_lines(m.end_line, m.end_line)[1], m))
    return out
