"""Matching: alignment of planted fragments (synthetic and real code), containment, boilerplate,
and the provenance detector's findings (lines, source, identity, no text)."""

from __future__ import annotations

import hashlib
import keyword
import random
import re
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.detectors.provenance import ProvenanceDetector, match_hash
from custodes.fingerprint.boilerplate import boilerplate_lines
from custodes.fingerprint.index import Index, Mode, columns_of
from custodes.fingerprint.match import Matcher, MatchOptions
from custodes.fingerprint.tokenize import abstract, tokenize
from custodes.fingerprint.winnow import FileFingerprints, Fingerprint, Layer, fingerprint
from custodes.subject import SkipReason, Subject, SubjectKind

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _index(path: Path, collections: dict[str, dict[str, str]], modes: dict[str, Mode]) -> Index:
    idx = Index.open(path, create=True)
    for name, files in collections.items():
        with idx.writer(name, mode=modes.get(name, Mode.DENY)) as writer:
            for rel, text in files.items():
                prints = fingerprint(text, "python")
                writer.add(
                    rel,
                    lines=prints.lines,
                    tokens=prints.tokens,
                    sha256=hashlib.sha256(text.encode()).hexdigest(),
                    columns=columns_of(prints),
                )
    return idx


def _lines(rel: str) -> list[str]:
    return (STDLIB / rel).read_text().splitlines()


def _splice(host: list[str], near: int, fragment: list[str]) -> tuple[str, int, int]:
    """The host with the fragment inserted before the first definition after line ``near``
    (never inside a docstring, which would make the fragment a string); the fragment's lines."""
    at = next(
        i
        for i in range(near, len(host))
        if not host[i].strip() and host[i + 1].lstrip().startswith(("def ", "class "))
    )
    text = "\n".join(host[:at] + fragment + host[at:]) + "\n"
    return text, at + 1, at + len(fragment)


# -- synthetic fingerprints: alignment alone ---------------------------------------------------


def _fp(h: int, i: int) -> Fingerprint:
    # The i-th fingerprint: a k-gram starting at token 10 * i (winnowing keeps about one k-gram
    # in ten) and spanning three lines, one line after the previous one.
    return Fingerprint(h, Layer.TOKENS, i + 1, i + 3, 10 * i)


def _prints(hashes: list[int]) -> FileFingerprints:
    fps = tuple(_fp(h, i) for i, h in enumerate(hashes))
    return FileFingerprints(fps, tokens=10 * len(fps) + 2, lines=len(fps) + 2)


def _add_synthetic(idx: Index, name: str, files: dict[str, list[int]]) -> None:
    with idx.writer(name) as writer:
        for rel, hashes in files.items():
            prints = _prints(hashes)
            writer.add(
                rel,
                lines=prints.lines,
                tokens=prints.tokens,
                sha256="0" * 64,
                columns=columns_of(prints),
            )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    source_len=st.integers(40, 160),
    frag_len=st.integers(10, 40),
    host_len=st.integers(10, 120),
    deletions=st.integers(0, 3),
    insertions=st.integers(0, 3),
)
def test_a_planted_fragment_is_found_where_it_was_planted(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    source_len: int,
    frag_len: int,
    host_len: int,
    deletions: int,
    insertions: int,
) -> None:
    rng = random.Random(seed)
    fresh = lambda: rng.getrandbits(61)  # noqa: E731 - never equal to another by chance
    source = [fresh() for _ in range(source_len)]
    start = rng.randrange(0, source_len - frag_len + 1)
    fragment = source[start : start + frag_len]
    # Type-3 edits inside the fragment: fingerprints lost, others that are new.
    for _ in range(deletions):
        del fragment[rng.randrange(1, len(fragment) - 1)]
    for _ in range(insertions):
        fragment.insert(rng.randrange(1, len(fragment)), fresh())
    host = [fresh() for _ in range(host_len)]
    at = rng.randrange(0, host_len + 1)
    scanned = host[:at] + fragment + host[at:]
    planted = range(at + 1, at + len(fragment) + 3)  # lines the fragment's k-grams cover

    idx = Index.open(tmp_path_factory.mktemp("m") / "i.db", create=True)
    distractor = [fresh() for _ in range(50)]
    _add_synthetic(idx, "leak", {"src/agent.ts": source, "src/other.ts": distractor})
    options = MatchOptions(min_lines=6, min_tokens=50, min_similarity=0.5)
    (m,) = Matcher(idx, options).match(_prints(scanned))
    assert m.source.path == "src/agent.ts"
    assert m.collection.name == "leak"
    assert planted.start <= m.start_line
    assert m.end_line <= planted.stop - 1
    # Most of the planted lines are reported (the edges depend on which k-grams survived).
    assert m.lines >= 0.8 * len(planted) - 4
    assert start + 1 <= m.source_start
    assert m.source_end <= start + frag_len + 2
    # Containment, recomputed here: scanned fingerprints inside the reported lines whose hash
    # occurs in the reported source lines.
    in_source = {
        h for i, h in enumerate(source) if m.source_start <= i + 1 and i + 3 <= m.source_end
    }
    inside = [h for i, h in enumerate(scanned) if m.start_line <= i + 1 and i + 3 <= m.end_line]
    assert m.similarity == pytest.approx(sum(h in in_source for h in inside) / len(inside))
    assert m.hashes == tuple(sorted(set(inside) & in_source))
    idx.close()


def test_unrelated_fingerprints_match_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    idx = Index.open(tmp_path / "i.db", create=True)
    _add_synthetic(idx, "leak", {"a": [rng.getrandbits(61) for _ in range(200)]})
    assert Matcher(idx).match(_prints([rng.getrandbits(61) for _ in range(300)])) == []
    assert Matcher(idx).match(FileFingerprints((), 0, 0)) == []


def test_fingerprints_common_to_many_files_count_for_nothing(tmp_path: Path) -> None:
    rng = random.Random(8)
    shared = [rng.getrandbits(61) for _ in range(30)]
    files = {f"f{i}": shared + [rng.getrandbits(61) for _ in range(20)] for i in range(4)}
    idx = Index.open(tmp_path / "i.db", create=True)
    _add_synthetic(idx, "leak", files)
    scanned = _prints([rng.getrandbits(61) for _ in range(10)] + shared)
    # In four files: boilerplate when at most three are allowed, evidence when four are.
    assert Matcher(idx, MatchOptions(max_files=3)).match(scanned) == []
    assert len(Matcher(idx, MatchOptions(max_files=4)).match(scanned)) == 1


def test_regions_below_the_minimum_size_are_not_reported(tmp_path: Path) -> None:
    rng = random.Random(9)
    source = [rng.getrandbits(61) for _ in range(100)]
    idx = Index.open(tmp_path / "i.db", create=True)
    _add_synthetic(idx, "leak", {"a": source})
    scanned = _prints([rng.getrandbits(61) for _ in range(20)] + source[10:18])  # 10 lines
    assert len(Matcher(idx, MatchOptions(min_lines=10, min_tokens=0)).match(scanned)) == 1
    assert Matcher(idx, MatchOptions(min_lines=11, min_tokens=0)).match(scanned) == []
    # 8 k-grams of 12 tokens (K_TOKENS), starting 10 tokens apart: 7 * 10 + 12 tokens.
    assert len(Matcher(idx, MatchOptions(min_lines=1, min_tokens=82)).match(scanned)) == 1
    assert Matcher(idx, MatchOptions(min_lines=1, min_tokens=83)).match(scanned) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"min_similarity": 1.5},
        {"min_lines": 0},
        {"max_files": 0},
        {"min_tokens": -1},
        {"max_gap_lines": -1},
        {"plain_variety": 1.5},
        {"plain_weight": -1},
    ],
)
def test_options_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        MatchOptions(**bad)  # type: ignore[arg-type]


# -- real code ---------------------------------------------------------------------------------

FRAGMENT = ("json/decoder.py", 318, 341)  # the end of JSONDecoder.__init__, and decode()
HOST = "textwrap.py"


def _fragment() -> list[str]:
    rel, a, b = FRAGMENT
    return _lines(rel)[a:b]


def test_a_verbatim_copy_is_found_with_its_lines(tmp_path: Path) -> None:
    idx = _index(
        tmp_path / "i.db",
        {"leak": {"json/decoder.py": (STDLIB / "json/decoder.py").read_text()}},
        {},
    )
    text, first, last = _splice(_lines(HOST), 120, _fragment())
    (m,) = Matcher(idx).match(fingerprint(text, "python"))
    # Winnowed k-grams blur the edges: the copy's last k-grams run on into the host's next
    # lines, which may or may not read like what followed in the source (here `def …(self, …)`
    # follows in both, as abstract tokens). An edge is right to within two lines.
    assert m.start_line == first
    assert abs(m.end_line - last) <= 2
    assert m.source_start == FRAGMENT[1] + 1
    assert m.source_end - m.source_start == m.end_line - m.start_line
    assert m.similarity >= 0.95  # all but a k-gram or two at the edge


def _rename(lines: list[str]) -> list[str]:
    """A Type-2 copy: every identifier of the fragment renamed, then re-indented."""
    names = sorted({w for line in lines for w in re.findall(r"\b[a-z_][a-z0-9_]{2,}\b", line)})
    keep = {"self", "def", "return", "not", "None", "and", "for", "if", "else", "raise", "isinstance"}
    mapping = {n: f"v{i}_{n[::-1]}" for i, n in enumerate(names) if n not in keep}
    out = []
    for line in lines:
        line = re.sub(r"\b[a-z_][a-z0-9_]{2,}\b", lambda mt: mapping.get(mt[0], mt[0]), line)
        out.append(("  " + line) if line.strip() else line)
    return out


def test_a_renamed_copy_is_found_by_the_token_layer(tmp_path: Path) -> None:
    idx = _index(
        tmp_path / "i.db",
        {"leak": {"json/decoder.py": (STDLIB / "json/decoder.py").read_text()}},
        {},
    )
    host = _lines(HOST)
    text, first, last = _splice(host, 40, _rename(_fragment()))
    (m,) = Matcher(idx).match(fingerprint(text, "python"))
    assert m.layer is Layer.TOKENS
    assert first - 2 <= m.start_line  # edges: see above
    assert m.end_line <= last + 2
    assert m.lines >= 0.8 * (last - first + 1)
    assert m.similarity >= 0.8


def test_each_collection_reports_its_own_match(tmp_path: Path) -> None:
    decoder = (STDLIB / "json/decoder.py").read_text()
    idx = _index(
        tmp_path / "i.db",
        {"leak": {"a/decoder.py": decoder}, "ours": {"b/decoder.py": decoder}},
        {"ours": Mode.WARN},
    )
    text, _, _ = _splice(_lines(HOST), 10, _fragment())
    found = Matcher(idx).match(fingerprint(text, "python"))
    assert sorted((m.collection.name, m.collection.mode, m.source.path) for m in found) == [
        ("leak", Mode.DENY, "a/decoder.py"),
        ("ours", Mode.WARN, "b/decoder.py"),
    ]


def test_unrelated_real_files_match_nothing(tmp_path: Path) -> None:
    indexed = ["json/decoder.py", "json/encoder.py", "shlex.py", "textwrap.py", "csv.py"]
    idx = _index(
        tmp_path / "i.db", {"leak": {rel: (STDLIB / rel).read_text() for rel in indexed}}, {}
    )
    matcher = Matcher(idx)
    for rel in ["json/scanner.py", "json/tool.py", "string.py", "glob.py", "fnmatch.py", "bisect.py"]:
        text = (STDLIB / rel).read_text()
        assert matcher.match(fingerprint(text, "python")) == [], rel


# -- what the provenance benchmark found -------------------------------------------------------

FOLLOWED = ["pickletools.py", "inspect.py", "selectors.py", "copy.py", "pkgutil.py"]


def _functions_followed_by_a_statement(rel: str) -> list[tuple[int, int]]:
    """(first, last) lines of the top-level functions of 15-40 lines in ``rel`` that the
    source follows with a statement starting with a name (``x = …``, ``f(…)``): what a copy's
    last k-grams run on into when the copy is followed by a statement of that shape too."""
    lines = _lines(rel)
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("def "):
            continue
        j = i + 1
        while j < len(lines) and (not lines[j] or lines[j][0] in " \t#"):
            j += 1
        word = re.match(r"[A-Za-z_]\w*", lines[j]) if j < len(lines) else None
        if word is None or keyword.iskeyword(word[0]):
            continue
        last = j - 1
        while not lines[last].strip():
            last -= 1
        code = [t for t in tokenize("\n".join(lines[i : last + 1]), "python")]
        if 15 <= last - i + 1 <= 40 and len(code) >= 60:  # code, not mostly a docstring
            out.append((i + 1, last + 1))
    return out


def _followed_by_a_comment(function: list[str], comment_lines: int) -> tuple[str, int, int]:
    """The function in a file of its own, then a comment block, an import and a statement
    starting with a name; the function's lines."""
    comment = [f"# note {i}: options parsed by the command line front end" for i in range(comment_lines)]
    head = ["def unrelated(a, b):", "    return a * b", "", ""]
    text = "\n".join([*head, *function, "", *comment, "import os", "", "exported = build(flat)"])
    return text + "\n", len(head) + 1, len(head) + len(function)


@pytest.mark.parametrize("comment_lines", [40, 12])
def test_a_copy_followed_by_a_comment_block_is_reported_with_its_own_lines(
    tmp_path: Path, comment_lines: int
) -> None:
    """A copy's last k-gram used to run on across the comment to the statement after it, when
    its first token read like what followed in the source: over a long comment the region
    grew to several times its source and was dropped (the copy was missed), over a shorter one
    it was reported with the comment's lines."""
    idx = _index(tmp_path / "i.db", {"leak": {rel: (STDLIB / rel).read_text() for rel in FOLLOWED}}, {})
    matcher = Matcher(idx)
    cases = [(rel, a, b) for rel in FOLLOWED for a, b in _functions_followed_by_a_statement(rel)]
    assert len(cases) >= 12
    for rel, a, b in cases:
        text, first, last = _followed_by_a_comment(_lines(rel)[a - 1 : b], comment_lines)
        found = [m for m in matcher.match(fingerprint(text, "python")) if m.source.path == rel]
        assert found, (rel, a, b)
        assert all(m.end_line <= last for m in found), (rel, a, b, found)
        assert all(m.source_start <= b and a <= m.source_end for m in found), (rel, a, b)
        best = max(found, key=lambda m: m.lines)
        assert best.start_line <= first + 2
        assert best.lines >= 0.6 * (last - first + 1)


def _functions(rel: str) -> list[int]:
    return [i + 1 for i, line in enumerate(_lines(rel)) if line.lstrip().startswith("def ")]


def test_a_short_exact_copy_is_reported(tmp_path: Path) -> None:
    """13 lines of a function, about 50 tokens, copied verbatim into a file of their own: the
    k-grams that survive winnowing span fewer tokens than the copy holds, and such copies went
    unreported when a region's size was estimated from them."""
    modules = ["textwrap.py", "heapq.py", "fractions.py", "glob.py", "shlex.py", "string.py"]
    idx = _index(tmp_path / "i.db", {"leak": {rel: (STDLIB / rel).read_text() for rel in modules}}, {})
    matcher = Matcher(idx)
    checked = 0
    for rel in modules:
        lines = _lines(rel)
        everywhere = "\0".join(abstract(tokenize("\n".join(lines), "python")))
        for first in _functions(rel):
            window = lines[first - 1 : first + 12]
            text = "\n".join(window) + "\n"
            masked = boilerplate_lines(text, "python")
            tokens = [t for t in tokenize(text, "python") if t.line not in masked]
            if len(window) < 13 or not 50 <= len(tokens) <= 60:
                continue
            if everywhere.count("\0".join(abstract(tokens))) > 1:
                continue  # the same code, names aside, is elsewhere in the module too
            checked += 1
            found = [m for m in matcher.match(fingerprint(text, "python")) if m.source.path == rel]
            assert found, (rel, first, len(tokens))
            (m,) = found
            assert m.similarity == 1.0
            assert m.start_line <= 3
            assert m.lines >= 8
            # The named source lines hold the window (edges: see above; where the module repeats
            # a method's shape, the alignment may take in its twin next door).
            assert min(m.source_end, first + 12) - max(m.source_start, first) + 1 >= 8
    assert checked >= 10


def test_look_alike_runs_of_exception_classes_are_not_copies(tmp_path: Path) -> None:
    """Runs of ``class XError(Base): \"\"\"doc\"\"\"`` read the same once names are abstracted:
    plain code (few distinct symbols, one pattern repeated) needs rare evidence — fingerprints
    few files of the collection share — unless the raw layer (the text itself) agrees."""
    modules = [
        "asyncio/exceptions.py", "http/client.py", "configparser.py", "zipfile.py",
        "tarfile.py", "shutil.py", "smtplib.py",
    ]  # fmt: skip
    idx = _index(tmp_path / "i.db", {"leak": {rel: (STDLIB / rel).read_text() for rel in modules}}, {})
    matcher = Matcher(idx)
    assert matcher.match(fingerprint((STDLIB / "email/errors.py").read_text(), "python")) == []
    # The same run copied verbatim is a copy.
    run = (STDLIB / "asyncio/exceptions.py").read_text().split("\n")
    first = next(i for i, line in enumerate(run) if line.startswith("class "))
    copy = run[first : first + 30]
    text, a, b = _splice(_lines(HOST), 120, copy)
    (m,) = matcher.match(fingerprint(text, "python"))
    assert m.source.path == "asyncio/exceptions.py"
    assert a <= m.start_line
    assert m.end_line <= b
    assert m.lines >= 20
    assert m.similarity >= 0.9


# -- the detector ------------------------------------------------------------------------------


def _detector(tmp_path: Path, mode: Mode = Mode.DENY) -> ProvenanceDetector:
    idx = _index(
        tmp_path / "i.db",
        {"leak": {"src/tools/agent.py": (STDLIB / "json/decoder.py").read_text()}},
        {"leak": mode},
    )
    return ProvenanceDetector(idx)


@pytest.mark.parametrize(("mode", "rule", "severity"), [(Mode.DENY, "provenance.deny", "high"), (Mode.WARN, "provenance.warn", "medium")])
def test_a_finding_names_lines_source_and_similarity_only(
    tmp_path: Path, mode: Mode, rule: str, severity: str
) -> None:
    detector = _detector(tmp_path, mode)
    text, first, last = _splice(_lines(HOST), 120, _fragment())
    (f,) = detector.scan(Subject("app/wrap.py", text, language="python"))
    assert (f.kind, f.rule, f.severity.value) == ("provenance", rule, severity)
    assert (f.path, f.start_line) == ("app/wrap.py", first)
    assert abs(f.end_line - last) <= 2
    assert f.source is not None
    assert (f.source.collection, f.source.path) == ("leak", "src/tools/agent.py")
    src_end = FRAGMENT[1] + 1 + f.end_line - first
    assert (f.source.start_line, f.source.end_line) == (FRAGMENT[1] + 1, src_end)
    assert f.similarity is not None
    assert 0.95 <= f.similarity <= 1.0
    assert f.message == (
        f"lines {first}-{f.end_line} match leak:src/tools/agent.py:"
        f"{FRAGMENT[1] + 1}-{src_end} (similarity {f.similarity:.2f})"
    )
    assert f.preview is None
    assert re.fullmatch(r"[0-9a-f]{64}", f.match_hash)


def test_the_identity_follows_the_code_not_its_lines(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    host = _lines(HOST)
    text, _, _ = _splice(host, 120, _fragment())
    moved = "\n".join(["# a new comment line"] * 7) + "\n" + text
    (a,) = detector.scan(Subject("wrap.py", text, language="python"))
    (b,) = detector.scan(Subject("wrap.py", moved, language="python"))
    assert b.start_line == a.start_line + 7
    assert a.id == b.id
    # The identity is the SHA-256 of collection, source path and the matched hashes.
    assert match_hash("leak", "src/tools/agent.py", (3, 1, 2)) == hashlib.sha256(
        b"leak\0src/tools/agent.py\0" + b"".join(i.to_bytes(8, "big") for i in (1, 2, 3))
    ).hexdigest()


def test_a_hunk_reports_original_line_numbers(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    fragment = _fragment()
    # The added lines of a hunk: lines 500.. of the new file, with a gap after the 10th.
    numbers = tuple(range(500, 510)) + tuple(range(520, 520 + len(fragment) - 10))
    subject = Subject(
        "wrap.py",
        "\n".join(fragment) + "\n",
        kind=SubjectKind.HUNK,
        line_numbers=numbers,
        language="python",
    )
    (f,) = detector.scan(subject)
    assert f.start_line == 500
    assert f.end_line in numbers[-2:]


def test_minified_and_generated_subjects_are_passed_by_and_listed(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    minified = Subject("dist/app.min.js", "var a=1;" * 3000)
    generated = Subject("api_pb2.py", "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n")
    plain = Subject("ok.py", "print('hello')\n")
    items = list(detector.with_skips([minified, generated, plain]))
    skipped = [(i.path, i.reason) for i in items if not isinstance(i, Subject)]
    assert skipped == [
        ("dist/app.min.js", SkipReason.GENERATED),
        ("api_pb2.py", SkipReason.GENERATED),
    ]
    # The subjects still go on (to the secrets detector); provenance finds nothing in them.
    assert [i.path for i in items if isinstance(i, Subject)] == ["dist/app.min.js", "api_pb2.py", "ok.py"]
    assert list(detector.scan(minified)) == []
    dense = Subject("dist/bundle.js", "var a=1;" * 3000)
    assert detector.skip_reason(dense) is SkipReason.MINIFIED
