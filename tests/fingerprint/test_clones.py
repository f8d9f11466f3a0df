"""The clone generator does what each clone type promises, on real code, reproducibly."""

from __future__ import annotations

import difflib
import random

import pytest

from custodes.fingerprint import TokenKind, abstract, tokenize
from fingerprint.clones import corpus, pick_fragment, splice, type1, type2, type3

LANGUAGES = ["python", "javascript", "c"]


def _fragments(language: str, count: int, seed: int, lines: int = 30) -> list[str]:
    files = corpus(language)
    assert files, f"no real {language} code found on this machine"
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        fragment = pick_fragment(rng.choice(files).read_text("utf-8"), lines, rng, language)
        if fragment is not None:
            out.append(fragment.text)
    return out


def _texts(code: str, language: str) -> list[str]:
    return [t.text for t in tokenize(code, language)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_type1_changes_layout_only(language: str) -> None:
    rng = random.Random(f"t1-{language}")
    changed = 0
    for code in _fragments(language, 20, 1):
        clone = type1(code, language, rng)
        assert _texts(clone, language) == _texts(code, language)
        changed += clone != code
    assert changed >= 18


@pytest.mark.parametrize("language", LANGUAGES)
def test_type2_renames_consistently_and_keeps_the_shape(language: str) -> None:
    rng = random.Random(f"t2-{language}")
    renamed = names = 0
    for code in _fragments(language, 20, 2):
        clone = type2(code, language, rng)
        before, after = tokenize(code, language), tokenize(clone, language)
        assert abstract(after) == abstract(before)
        assert [t.text for t in after if t.kind is TokenKind.KEYWORD] == [
            t.text for t in before if t.kind is TokenKind.KEYWORD
        ]
        # Consistent: each old name maps to one new name, and most names changed.
        mapping: dict[str, set[str]] = {}
        for old, new in zip(before, after, strict=True):
            if old.kind is TokenKind.IDENTIFIER:
                mapping.setdefault(old.text, set()).add(new.text)
        assert all(len(news) == 1 for news in mapping.values())
        renamed += sum(1 for old, news in mapping.items() if news != {old})
        names += len(mapping)
    # Most names change; builtins and imported names do not.
    assert renamed >= 0.5 * names


def test_type2_leaves_builtins_and_imported_names() -> None:
    code = "import os\n\ndef size(self, path):\n    return len(os.listdir(path)) + self.extra\n"
    clone = type2(code, "python", random.Random(3))
    names = {t.text for t in tokenize(clone, "python") if t.kind is TokenKind.IDENTIFIER}
    assert {"os", "len", "self"} <= names
    assert "size" not in names or "path" not in names


@pytest.mark.parametrize("language", LANGUAGES)
def test_type3_edits_about_the_ratio(language: str) -> None:
    rng = random.Random(f"t3-{language}")
    similarities = []
    for code in _fragments(language, 20, 3):
        clone = type3(code, language, rng)
        matcher = difflib.SequenceMatcher(
            None, abstract(tokenize(code, language)), abstract(tokenize(clone, language)),
            autojunk=False,
        )  # fmt: skip
        similarities.append(matcher.ratio())
    assert all(s < 1.0 for s in similarities)  # something was edited in every clone
    assert 0.7 <= sum(similarities) / len(similarities) <= 0.97


def test_the_same_seed_makes_the_same_clone() -> None:
    (code,) = _fragments("python", 1, 4)
    assert type3(code, "python", random.Random(7)) == type3(code, "python", random.Random(7))


def test_pick_fragment_and_splice_say_where_the_lines_are() -> None:
    files = corpus("python")
    rng = random.Random(5)
    source = rng.choice(files).read_text("utf-8")
    fragment = None
    while fragment is None:
        fragment = pick_fragment(source, 12, rng, "python")
    lines = source.splitlines()
    assert fragment.text.splitlines() == lines[fragment.start_line - 1 : fragment.end_line]
    assert fragment.end_line - fragment.start_line == 11

    host = rng.choice(files).read_text("utf-8")
    spliced = splice(host, fragment.text, rng, "python")
    out = spliced.text.splitlines()
    assert out[spliced.start_line - 1 : spliced.end_line] == fragment.text.splitlines()
    rest = out[: spliced.start_line - 1] + out[spliced.end_line :]
    assert rest == host.splitlines()
    # The fragment landed between the host's tokens, not inside a string of the host.
    assert len(tokenize(spliced.text, "python")) == len(tokenize(host, "python")) + len(
        tokenize(fragment.text, "python")
    )


def test_pick_fragment_skips_docstrings_and_gives_up_on_short_files() -> None:
    text = '"""' + "words of prose\n" * 40 + '"""\n'
    assert pick_fragment(text, 6, random.Random(1), "python") is None
    assert pick_fragment("x = 1\n", 6, random.Random(1), "python") is None
