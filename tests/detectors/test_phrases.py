"""The literal-phrase matcher against a naive reference: every substring of the text whose case
folding equals a phrase's, at word boundaries when asked, found by trying every position."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.detectors.phrases import PhraseMatcher

# Letters whose folding is not one-to-one or not ASCII (ß → ss, İ → i̇, ﬁ → fi, final sigma),
# word and non-word characters, and a combining mark.
ALPHABET = "abisSß İıﬁfΣσς_1 -/.\u0307é\ud800"  # and a lone surrogate, which JSON allows


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def reference(
    phrases: list[str], text: str, *, ignorecase: bool, words: bool
) -> list[tuple[int, int, str]]:
    """Every (start, end, phrase) with ``text[start:end]`` equal to the phrase (folded)."""
    out = []
    for phrase in phrases:
        want = phrase.casefold() if ignorecase else phrase
        for start in range(len(text)):
            for end in range(start + 1, len(text) + 1):
                piece = text[start:end]
                if (piece.casefold() if ignorecase else piece) != want:
                    continue
                if words:
                    if _word(phrase[0]) and start > 0 and _word(text[start - 1]):
                        continue
                    if _word(phrase[-1]) and end < len(text) and _word(text[end]):
                        continue
                out.append((start, end, phrase))
    return sorted(out)


def _distinct(phrases: list[str], ignorecase: bool) -> list[str]:
    seen: dict[str, str] = {}
    for phrase in phrases:
        seen.setdefault(phrase.casefold() if ignorecase else phrase, phrase)
    return list(seen.values())


@settings(max_examples=400, deadline=None)
@given(
    phrases=st.lists(st.text(ALPHABET, min_size=1, max_size=4), min_size=1, max_size=5),
    text=st.text(ALPHABET, max_size=30),
    ignorecase=st.booleans(),
    words=st.booleans(),
    backend=st.sampled_from(["rs", "aho", "regex"]),
)
def test_matches_the_naive_reference(
    phrases: list[str], text: str, ignorecase: bool, words: bool, backend: str
) -> None:
    phrases = _distinct(phrases, ignorecase)
    if backend == "rs" and any("\ud800" in p for p in phrases):
        backend = "auto"  # the Rust automaton takes UTF-8 only: auto picks the keyword index
    matcher = PhraseMatcher(phrases, ignorecase=ignorecase, words=words, backend=backend)
    got = [(m.start, m.end, m.phrase) for m in matcher.find(text)]
    assert got == reference(phrases, text, ignorecase=ignorecase, words=words)


@settings(max_examples=200, deadline=None)
@given(
    phrases=st.lists(st.text("abc XYZ_", min_size=1, max_size=5), min_size=1, max_size=6),
    text=st.text("abcABC xyzXYZ_.", max_size=60),
    words=st.booleans(),
)
def test_ascii_fast_path_matches_the_reference(phrases: list[str], text: str, words: bool) -> None:
    phrases = _distinct(phrases, True)
    matcher = PhraseMatcher(phrases, ignorecase=True, words=words)
    got = [(m.start, m.end, m.phrase) for m in matcher.find(text)]
    assert got == reference(phrases, text, ignorecase=True, words=words)


@pytest.mark.parametrize(
    ("phrase", "text", "span"),
    [
        ("a keylogger", "Write A KEYLOGGER now", (6, 17)),
        ("straße", "die STRASSE hier", (4, 11)),
        ("/etc/shadow", "cat x/etc/shadow", (5, 16)),  # no word edge: nothing to check
        ("σίσυφος", "ΣΊΣΥΦΟΣ.", (0, 7)),
    ],
)
def test_examples(phrase: str, text: str, span: tuple[int, int]) -> None:
    (match,) = PhraseMatcher([phrase]).find(text)
    assert (match.start, match.end, match.phrase) == (*span, phrase)


def test_words_and_folding_limits() -> None:
    matcher = PhraseMatcher(["adware", "s"])
    assert matcher.find("badware and adwares") == []  # inside words
    assert matcher.find("ß") == []  # never half of one character's folding
    loose = PhraseMatcher(["adware"], words=False)
    assert [(m.start, m.end) for m in loose.find("badwares")] == [(1, 7)]
    assert PhraseMatcher(["Adware"], ignorecase=False).find("adware") == []
    assert PhraseMatcher(["ss"]).longest == 2
    assert PhraseMatcher(["ß"]).longest == 2  # ß folds to two characters


@pytest.mark.parametrize(
    ("phrases", "ignorecase"), [([], True), ([""], True), (["a", "A"], True), (["a", "a"], False)]
)
def test_bad_lists_are_refused(phrases: list[str], ignorecase: bool) -> None:
    with pytest.raises(ValueError, match="phrase"):
        PhraseMatcher(phrases, ignorecase=ignorecase)
