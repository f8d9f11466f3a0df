"""Recall and precision of provenance matching on real code, by clone type.

Real files of three languages (CPython's standard library, node's bundled npm, C headers and
sources) are indexed; fragments of 10-40 lines are cut from them, turned into Type-1, Type-2 and
Type-3 clones by the clone generator, and spliced into unrelated real files, which are then
scanned. The ground truth is decided here, with the tokenizer but without the matcher:

* a host is *unrelated* when it shares no run of five non-trivial lines, and no run of
  ``SHARED_RUN`` tokens with names and literals abstracted, with any indexed file: it shares
  boilerplate and short idioms at most;
* a fragment is planted only when it can identify its origin: its abstract tokens are not one
  short pattern repeated (data tables, runs of ``self.x = x``), and not in another indexed file
  too (a table of one codec is the table of every codec);
* a splice must keep the clone's tokens (the generator can put it inside a host's comment).

Targets: recall >= 0.95 for Type-1 and Type-2, >= 0.85 for Type-3; line precision (reported
lines inside planted fragments / all reported lines) >= 0.90; no finding at all on the hosts
before anything is planted in them.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from custodes.detectors.provenance import ProvenanceDetector
from custodes.findings import Finding
from custodes.fingerprint.index import Index, columns_of
from custodes.fingerprint.tokenize import abstract, tokenize
from custodes.fingerprint.winnow import fingerprint
from custodes.subject import Subject
from fingerprint.clones import corpus, pick_fragment, splice, type1, type2, type3

LANGUAGES = ("python", "javascript", "c")
INDEXED = 25  # files indexed per language
PER_TYPE = 10  # fragments planted per clone type and language
HOSTS = 30  # unrelated host files per language
SEED = 20260331

Clone = Callable[[str, "str | None", random.Random], str]
TYPES: dict[str, Clone] = {"type1": type1, "type2": type2, "type3": type3}


@dataclass(frozen=True)
class Planted:
    kind: str
    language: str
    source: str  # indexed path
    host: str
    start_line: int  # of the clone in the scanned text
    end_line: int


@dataclass
class Outcome:
    planted: list[Planted]
    findings: dict[str, list[Finding]]  # by scanned path
    clean_findings: list[Finding]  # on the hosts as they were


SHARED_RUN = 24  # abstract tokens: two or three lines
WINDOW = 10  # abstract tokens per window when judging a fragment


def _windows(text: str, size: int = 5) -> set[str]:
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if len(line) > 3 and not re.fullmatch(r"[\W_]+", line)]
    return {"\n".join(lines[i : i + size]) for i in range(len(lines) - size + 1)}


def _grams(text: str, language: str, size: int) -> list[tuple[str, ...]]:
    symbols = abstract(tokenize(text, language))
    return [tuple(symbols[i : i + size]) for i in range(len(symbols) - size + 1)]


def _identifiable(fragment: str, language: str, others: set[tuple[str, ...]]) -> bool:
    grams = _grams(fragment, language, WINDOW)
    if not grams:
        return False
    distinct = set(grams)
    return len(distinct) >= 0.6 * len(grams) and len(distinct & others) <= 0.2 * len(distinct)


def _read(path: Path) -> str:
    return path.read_text("utf-8")


def _experiment(language: str, tmp: Path) -> Outcome:
    rng = random.Random(f"{SEED}-{language}")
    files = list(corpus(language, 800))
    assert len(files) >= INDEXED + HOSTS, f"not enough real {language} code on this machine"
    rng.shuffle(files)
    indexed = files[:INDEXED]
    texts = {f"{language}/{i}/{p.name}": _read(p) for i, p in enumerate(indexed)}
    shared: set[str] = set()
    runs: set[tuple[str, ...]] = set()
    for text in texts.values():
        shared |= _windows(text)
        runs.update(_grams(text, language, SHARED_RUN))
    hosts = []
    for path in files[INDEXED:]:
        text = _read(path)
        if (
            40 <= text.count("\n") <= 3000
            and _windows(text).isdisjoint(shared)
            and runs.isdisjoint(_grams(text, language, SHARED_RUN))
        ):
            hosts.append((path.name, text))
        if len(hosts) == HOSTS:
            break
    grams_of = {rel: set(_grams(text, language, WINDOW)) for rel, text in texts.items()}

    idx = Index.open(tmp / f"{language}.db", create=True)
    with idx.writer("leak") as writer:
        for rel, text in texts.items():
            prints = fingerprint(text, language)
            writer.add(
                rel,
                lines=prints.lines,
                tokens=prints.tokens,
                sha256=hashlib.sha256(text.encode()).hexdigest(),
                columns=columns_of(prints),
            )
    detector = ProvenanceDetector(idx)

    clean: list[Finding] = []
    for name, text in hosts:
        clean.extend(detector.scan(Subject(f"clean/{name}", text, language=language)))

    planted: list[Planted] = []
    findings: dict[str, list[Finding]] = {}
    sources = sorted(texts)
    for kind, clone in TYPES.items():
        made = 0
        while made < PER_TYPE:
            source = rng.choice(sources)
            fragment = pick_fragment(
                texts[source], rng.randint(10, 40), rng, language, min_tokens=60
            )
            if fragment is None:
                continue
            others = set().union(*(g for rel, g in grams_of.items() if rel != source))
            if not _identifiable(fragment.text, language, others):
                continue
            copy = clone(fragment.text, language, rng)
            host_name, host_text = rng.choice(hosts)
            spliced = splice(host_text, copy, rng, language)
            expected = len(tokenize(host_text, language)) + len(tokenize(copy, language))
            if len(tokenize(spliced.text, language)) != expected:
                continue  # the clone landed inside a comment or string of the host
            scanned = f"{kind}/{made}/{host_name}"
            planted.append(
                Planted(kind, language, source, scanned, spliced.start_line, spliced.end_line)
            )
            subject = Subject(scanned, spliced.text, language=language)
            findings[scanned] = list(detector.scan(subject))
            made += 1
    idx.close()
    return Outcome(planted, findings, clean)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    tmp = tmp_path_factory.mktemp("recall")
    return {language: _experiment(language, tmp) for language in LANGUAGES}


def _found(p: Planted, findings: list[Finding]) -> bool:
    return any(
        f.source is not None
        and f.source.path == p.source
        and f.start_line <= p.end_line
        and f.end_line >= p.start_line
        for f in findings
    )


def _recall(outcomes: dict[str, Outcome], kind: str) -> tuple[float, list[Planted]]:
    planted = [p for o in outcomes.values() for p in o.planted if p.kind == kind]
    missed = [
        p
        for o in outcomes.values()
        for p in o.planted
        if p.kind == kind and not _found(p, o.findings[p.host])
    ]
    return 1 - len(missed) / len(planted), missed


@pytest.mark.parametrize(("kind", "target"), [("type1", 0.95), ("type2", 0.95), ("type3", 0.85)])
def test_recall_by_clone_type(outcomes: dict[str, Outcome], kind: str, target: float) -> None:
    recall, missed = _recall(outcomes, kind)
    print(f"\n{kind}: recall {recall:.3f} ({len(missed)} missed)")
    assert recall >= target, missed


def test_reported_lines_are_planted_lines(outcomes: dict[str, Outcome]) -> None:
    inside = reported = 0
    for outcome in outcomes.values():
        spans = {p.host: (p.start_line, p.end_line) for p in outcome.planted}
        for host, findings in outcome.findings.items():
            first, last = spans[host]
            for f in findings:
                reported += f.end_line - f.start_line + 1
                inside += max(0, min(f.end_line, last) - max(f.start_line, first) + 1)
    precision = inside / reported
    print(f"\nline precision {precision:.3f} ({inside} of {reported} lines)")
    assert precision >= 0.90


def test_similarity_is_a_containment(outcomes: dict[str, Outcome]) -> None:
    findings = [f for o in outcomes.values() for fs in o.findings.values() for f in fs]
    assert findings
    assert all(f.similarity is not None and 0.0 < f.similarity <= 1.0 for f in findings)
    # A copy with the same tokens (Type-1) is contained in its source but for the k-grams
    # that straddle its edges, half in the host (and for a fragment cut inside a docstring,
    # whose words the generator may respace): most score near 1.
    type1 = sorted(
        f.similarity or 0.0
        for o in outcomes.values()
        for h, fs in o.findings.items()
        if h.startswith("type1/")
        for f in fs
    )
    assert type1[len(type1) // 2] >= 0.95


def test_unrelated_real_files_yield_no_finding(outcomes: dict[str, Outcome]) -> None:
    for language, outcome in outcomes.items():
        assert outcome.clean_findings == [], language
