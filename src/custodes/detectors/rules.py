"""The policy's rules as one detector: regular expressions, code rules, artifact rules, and the
secrets and provenance detectors the policy switches on.

Each subject is read once per kind of reader: the Python or JavaScript sites are extracted once
and every code rule judges them; the secrets detector runs once and each of its findings is
kept if a ``secrets`` rule admits it, carrying the controls (and any severity override) of every
rule that does. A policy without a ``secrets`` rule runs no secrets detector, and one without a
``provenance`` rule no provenance detector.

Findings of the rules themselves are of kind ``policy``: the rule id, the original lines, the
rule's message and controls, the SHA-256 of what matched and a preview that never shows it in
full (a call as ``requests.get(…)``, a regular-expression match masked).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from custodes.detectors.interface import Detector
from custodes.detectors.rules_artifact import artifact_hits
from custodes.detectors.rules_code import (
    Reading,
    Site,
    matches,
    possible,
    preview,
    reading_for,
    words_of,
)
from custodes.findings import Finding
from custodes.policy.model import (
    ArtifactCheck,
    CodeCheck,
    NamePatterns,
    PhraseCheck,
    Policy,
    ProvenanceCheck,
    RegexCheck,
    Rule,
    SecretsCheck,
)
from custodes.subject import Subject

__all__ = ["PolicyDetector", "ProvenanceFactory", "policy_detectors"]

ProvenanceFactory = Callable[[], Detector]
"""Builds the provenance detector (the scan door owns the index); called once, and only when
the policy has a ``provenance`` rule."""


def policy_detectors(
    policy: Policy, *, provenance: ProvenanceFactory | None = None
) -> tuple[list[Detector], list[str]]:
    """The detectors ``policy`` asks for, and a note for each rule that cannot run here.

    A ``provenance`` rule needs an index: without ``provenance`` it is not run, and the note
    says so (a skipped check is never silent).
    """
    notes: list[str] = []
    wanted = [
        r
        for r in policy.rules
        if isinstance(r.check, ProvenanceCheck) and "code" in r.scope.stages  # not guard rules
    ]
    detector = None
    if wanted and provenance is None:
        notes.extend(
            f"rule {r.id} not run: it needs a provenance index (give --index)" for r in wanted
        )
    elif wanted and provenance is not None:
        detector = provenance()
    return [PolicyDetector(policy, provenance=detector)], notes


@dataclass(frozen=True)
class _Regex:
    rule: Rule
    check: RegexCheck


@dataclass(frozen=True)
class _Code:
    rule: Rule
    check: CodeCheck
    words: tuple[tuple[frozenset[str], ...], ...]


class PolicyDetector:
    """Every rule of a policy over one subject."""

    name = "policy"

    def __init__(
        self,
        policy: Policy,
        *,
        secrets: Detector | None = None,
        provenance: Detector | None = None,
    ) -> None:
        self.policy = policy
        self._regex = [_Regex(r, r.check) for r in policy.rules if isinstance(r.check, RegexCheck)]
        self._code = [
            _Code(r, r.check, words_of(r.check))
            for r in policy.rules
            if isinstance(r.check, CodeCheck)
        ]
        self._artifact = [r for r in policy.rules if isinstance(r.check, ArtifactCheck)]
        self._phrases = [r for r in policy.rules if isinstance(r.check, PhraseCheck)]
        self._secret_rules = [r for r in policy.rules if isinstance(r.check, SecretsCheck)]
        self._secrets = secrets
        if self._secret_rules and secrets is None:
            from custodes.detectors.secrets_detector import SecretsDetector

            self._secrets = SecretsDetector()
        self._provenance_rules = [r for r in policy.rules if isinstance(r.check, ProvenanceCheck)]
        self._provenance = provenance if self._provenance_rules else None

    def scan(self, subject: Subject) -> Iterator[Finding]:
        yield from self._scan_secrets(subject)
        yield from self._scan_provenance(subject)
        lines = _Lines(subject)
        for item in self._regex:
            if item.rule.scope.admits(subject):
                yield from _regex_findings(item.rule, item.check, subject, lines)
        for phrase_rule in self._phrases:
            if phrase_rule.scope.admits(subject):
                yield from _phrase_findings(phrase_rule, subject, lines)
        yield from self._scan_code(subject)
        for rule in self._artifact:
            if rule.scope.admits(subject):
                assert isinstance(rule.check, ArtifactCheck)
                for hit in artifact_hits(rule.check, subject):
                    yield _finding(
                        rule,
                        path=hit.path,
                        start_line=hit.start_line,
                        end_line=hit.end_line,
                        match_hash=hit.match_hash,
                        preview=hit.preview,
                    )

    def _scan_secrets(self, subject: Subject) -> Iterator[Finding]:
        if self._secrets is None:
            return
        admitting = [r for r in self._secret_rules if r.scope.admits(subject)]
        if not admitting:
            return
        for finding in self._secrets.scan(subject):
            rules = [
                r
                for r in admitting
                if isinstance(r.check, SecretsCheck)
                and (not r.check.rules or r.check.rules.match(finding.rule))
            ]
            if rules:
                yield _adopt(finding, rules)

    def _scan_provenance(self, subject: Subject) -> Iterator[Finding]:
        if self._provenance is None:
            return
        admitting = [r for r in self._provenance_rules if r.scope.admits(subject)]
        if not admitting:
            return
        for finding in self._provenance.scan(subject):
            rules = [r for r in admitting if _collects(r, finding)]
            if rules:
                yield _adopt(finding, rules)

    def _scan_code(self, subject: Subject) -> Iterator[Finding]:
        if subject.language is None:
            return
        wanted = [
            item
            for item in self._code
            if subject.language in (item.rule.scope.languages or ())
            and possible(item.words, subject.text)
            and item.rule.scope.admits(subject)
        ]
        if not wanted:
            return
        sites, data = _sites(subject, reading_for([item.check for item in wanted]))
        for item in wanted:
            for site in sites:
                if matches(item.check, site):
                    yield _finding(
                        item.rule,
                        path=subject.path,
                        start_line=subject.original_line(site.line),
                        end_line=subject.original_line(site.end_line),
                        match_hash=hashlib.sha256(data[site.start : site.end]).hexdigest(),
                        preview=preview(site),
                    )


def _sites(subject: Subject, reading: Reading) -> tuple[list[Site], bytes]:
    if subject.language == "python":
        from custodes.detectors.rules_python import python_sites

        return python_sites(subject.text, reading)
    from custodes.detectors.rules_js import js_sites

    return js_sites(subject.text, subject.language or "javascript", reading)


def _finding(
    rule: Rule,
    *,
    path: str,
    start_line: int,
    end_line: int,
    match_hash: str,
    preview: str | None,
) -> Finding:
    assert rule.severity is not None  # the schema requires it of every rule reporting here
    return Finding(
        kind="policy",
        rule=rule.id,
        severity=rule.severity,
        path=path,
        start_line=start_line,
        end_line=end_line,
        message=rule.message,
        match_hash=match_hash,
        preview=preview,
        controls=rule.controls,
    )


_MODES = ("deny", "warn")


def _collects(rule: Rule, finding: Finding) -> bool:
    """Whether a provenance rule covers a match: by collection mode or name, and similarity."""
    check = rule.check
    assert isinstance(check, ProvenanceCheck)
    if (
        check.min_similarity is not None
        and finding.similarity is not None
        and finding.similarity < check.min_similarity
    ):
        return False
    collection = finding.source.collection if finding.source is not None else ""
    for entry in check.collections:
        if entry in _MODES:
            if finding.rule == f"provenance.{entry}":
                return True
        elif NamePatterns((entry,)).match(collection):
            return True
    return False


def _adopt(finding: Finding, rules: Sequence[Rule]) -> Finding:
    """A detector's finding under the policy: the rules' controls, and their severity if set."""
    overrides = [r.severity for r in rules if r.severity is not None]
    severity = max(overrides, key=lambda s: s.rank) if overrides else finding.severity
    controls = tuple(dict.fromkeys([*finding.controls, *(c for r in rules for c in r.controls)]))
    return replace(finding, severity=severity, controls=controls)


class _Lines:
    """Line numbers of offsets in a subject's text, counted once and only when needed."""

    def __init__(self, subject: Subject) -> None:
        self.text = subject.text
        self._newlines: list[int] | None = None

    @property
    def newlines(self) -> list[int]:
        if self._newlines is None:
            newlines, at = [], self.text.find("\n")
            while at >= 0:
                newlines.append(at)
                at = self.text.find("\n", at + 1)
            self._newlines = newlines
        return self._newlines

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def bounds(self, first: int, last: int) -> tuple[int, int]:
        """Start and end offsets of lines ``first`` to ``last`` (1-based), newline excluded."""
        newlines = self.newlines
        start = 0 if first == 1 else newlines[first - 2] + 1
        end = newlines[last - 1] if last - 1 < len(newlines) else len(self.text)
        return start, end


def _regex_findings(
    rule: Rule, check: RegexCheck, subject: Subject, lines: _Lines
) -> Iterator[Finding]:
    text = subject.text
    for pattern in check.patterns:
        for match in pattern.finditer(text):
            value = match.group(0)
            first = lines.line_of(match.start())
            last = lines.line_of(max(match.start(), match.end() - 1))
            if check.excluded:
                lo, hi = lines.bounds(first, last)
                # A pattern-not that matches on the match's own lines drops it.
                if any(p.search(text, lo, hi) for p in check.excluded):
                    continue
            # Imported here: the secrets module compiles every credential rule, which a
            # policy without secrets (a provenance-only scan) should not pay for.
            from custodes.detectors.secrets import redact

            yield _finding(
                rule,
                path=subject.path,
                start_line=subject.original_line(first),
                end_line=subject.original_line(last),
                match_hash=hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
                preview=redact(value),
            )


def _phrase_findings(rule: Rule, subject: Subject, lines: _Lines) -> Iterator[Finding]:
    """A ``phrases`` rule's matches, reported like a regular expression's."""
    from custodes.detectors.secrets import redact

    assert isinstance(rule.check, PhraseCheck)
    text = subject.text
    for match in rule.check.matcher.find(text):
        value = text[match.start : match.end]
        first = lines.line_of(match.start)
        last = lines.line_of(max(match.start, match.end - 1))
        yield _finding(
            rule,
            path=subject.path,
            start_line=subject.original_line(first),
            end_line=subject.original_line(last),
            match_hash=hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
            preview=redact(value),
        )
