"""The provenance detector: protected code (a leak, our own proprietary modules) in a subject.

Each subject is fingerprinted and matched against the provenance index
(:mod:`custodes.fingerprint.match`), in worker processes ahead of the scan when there is a lot
to scan (:mod:`custodes.fingerprint.ahead`). A match becomes one finding:

* rule ``provenance.deny`` (severity high, fails the default gate) for a collection in ``deny``
  mode, ``provenance.warn`` (medium) for one in ``warn`` mode;
* the subject's lines (original line numbers: a hunk's lines are not contiguous), the indexed
  file and lines as ``source``, and the containment as ``similarity``;
* identified by the SHA-256 of the collection, the indexed path and the matched fingerprint
  hashes, so the identity follows the copied code, not its line numbers.

No finding carries the matched text, not even a preview: the index holds none to give.
Minified and generated subjects are not matched; :meth:`ProvenanceDetector.skip_reason` says so,
and the caller lists them as not scanned for provenance.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from custodes.findings import Finding, Severity, SourceRef
from custodes.fingerprint.ahead import Checked, check, check_ahead
from custodes.fingerprint.index import Index, Mode
from custodes.fingerprint.match import Match, Matcher, MatchOptions
from custodes.subject import Skipped, SkipReason, Subject

__all__ = ["RULES", "ProvenanceDetector", "match_hash"]

_KEEP = 256  # checked subjects held for scan() (the engine scans each as soon as it is yielded)

RULES: dict[Mode, tuple[str, Severity]] = {
    Mode.DENY: ("provenance.deny", Severity.HIGH),
    Mode.WARN: ("provenance.warn", Severity.MEDIUM),
}
"""The rule id and severity of a match, by the mode of its collection."""


def match_hash(collection: str, path: str, hashes: tuple[int, ...]) -> str:
    """The identity of a match: what was matched, not where it sits in the scanned file."""
    digest = hashlib.sha256()
    digest.update(collection.encode() + b"\0" + path.encode() + b"\0")
    for value in sorted(set(hashes)):
        digest.update(value.to_bytes(8, "big"))
    return digest.hexdigest()


class ProvenanceDetector:
    """Finds fragments of indexed collections in any text subject."""

    name = "provenance"

    def __init__(
        self, index: Index, options: MatchOptions | None = None, *, jobs: int = 1
    ) -> None:
        index.check_version()
        self._matcher = Matcher(index, options)
        self._jobs = jobs
        # Subjects checked ahead by with_skips(), by identity, until scan() takes them; a
        # subject the policy never hands to scan() ages out.
        self._ready: OrderedDict[int, tuple[Subject, Checked]] = OrderedDict()

    def _check(self, subject: Subject) -> Checked:
        ready = self._ready.get(id(subject))
        if ready is not None and ready[0] is subject:
            return ready[1]
        checked = check(self._matcher, subject)
        self._keep(subject, checked)
        return checked

    def _keep(self, subject: Subject, checked: Checked) -> None:
        self._ready[id(subject)] = (subject, checked)
        while len(self._ready) > _KEEP:
            self._ready.popitem(last=False)

    def skip_reason(self, subject: Subject) -> SkipReason | None:
        """Why ``subject`` is not matched (minified, generated), or None when it is."""
        return self._check(subject).skip

    def with_skips(self, items: Iterable[Subject | Skipped]) -> Iterator[Subject | Skipped]:
        """``items``, each minified or generated subject preceded by a record saying so.

        The subject itself still goes to the other detectors (a minified bundle can hold a
        credential); only provenance passes it by, and the report lists it as not checked.
        Subjects are fingerprinted and matched here, ahead of :meth:`scan` and in worker
        processes once there is enough to do, so that this work runs beside the other
        detectors.
        """
        for item, checked in check_ahead(items, self._matcher, jobs=self._jobs):
            if isinstance(item, Subject) and checked is not None:
                self._keep(item, checked)
                if checked.skip is not None:
                    yield Skipped(item.path, checked.skip, "not checked for provenance")
            yield item

    def matches(self, subject: Subject) -> list[Match]:
        checked = self._check(subject)
        self._ready.pop(id(subject), None)
        return list(checked.matches)

    def scan(self, subject: Subject) -> Iterator[Finding]:
        for m in self.matches(subject):
            rule, severity = RULES[m.collection.mode]
            start = subject.original_line(m.start_line)
            end = subject.original_line(m.end_line)
            where = f"{m.collection.name}:{m.source.path}:{m.source_start}-{m.source_end}"
            yield Finding(
                kind="provenance",
                rule=rule,
                severity=severity,
                path=subject.path,
                start_line=start,
                end_line=end,
                message=f"lines {start}-{end} match {where} (similarity {m.similarity:.2f})",
                match_hash=match_hash(m.collection.name, m.source.path, m.hashes),
                source=SourceRef(m.collection.name, m.source.path, m.source_start, m.source_end),
                similarity=m.similarity,
            )
