"""The regex rules' literal pre-filter and search windows against a plain ``finditer``.

A guard regex whose every match holds a literal is skipped on a text without it, and on a text
with it searched only in windows around the literal's occurrences; both must find exactly what
searching the whole text finds, case-insensitive letters beyond ASCII included.
"""

from __future__ import annotations

import re
import string
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.guard.checks import _IGNORECASE_ASCII, Part, _Lines, _PartScan, _Prefilter, _windowed

PIECES = [
    "ab", "abc", "kis", "s", "i", "k", "-", r"\.", "10", "[a-c]", r"\d", r"\w", r"\s", ".",
    r"\b", r"\B", "^", "$", r"\Z", "(?:abc|kis)", "(?:ab|c)?", "(?:is){1,3}", "a*", "b+",
    "(?<=a)", "(?<!b)", "(?=s)", "(?!a)", "(ab)", r"\1", "(?i:kis)", "[^a]",
]  # fmt: skip
TEXT = "abcKkisSIıİſ\u212a-.10 \n\u00e9x"
# Texts dense in the pieces' literals, so that matches, near misses and windows abound.
WORDS = ["abc", "kis", "KIS", "kiſ", "\u212ais", "İs", "ıs", "s", "is", "ab", "b", "c", "-", ".",
         "10", " ", "\n", "x", "\u00e9", "_"]  # fmt: skip
texts = st.one_of(
    st.text(TEXT, max_size=80), st.lists(st.sampled_from(WORDS), max_size=30).map("".join)
)


def _scan(text: str) -> _PartScan:
    return _PartScan(Part("p", text), _Lines(text))


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """What the guard's regex path searches: the pre-filter, then windows or the whole text."""
    prefilter = _Prefilter.of(pattern)
    scan = _scan(text)
    if prefilter is not None and not prefilter.may_match(scan):
        return []
    windows = prefilter.windows(scan) if prefilter is not None else None
    found = pattern.finditer(text) if windows is None else _windowed(pattern, text, windows)
    return [m.span() for m in found]


@st.composite
def patterns(draw: st.DrawFn) -> re.Pattern[str]:
    body = "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=6)))
    flags = re.MULTILINE | (re.IGNORECASE if draw(st.booleans()) else 0)
    try:
        compiled = re.compile(body, flags)
    except re.error:
        return draw(st.nothing())
    if compiled.fullmatch("") is not None:  # the schema refuses these
        return draw(st.nothing())
    return compiled


@settings(max_examples=1500, deadline=None)
@given(pattern=patterns(), text=texts)
def test_filtered_and_windowed_search_finds_what_finditer_finds(
    pattern: re.Pattern[str], text: str
) -> None:
    assert _spans(pattern, text) == [m.span() for m in pattern.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(TEXT, max_size=40),
    filler=st.integers(0, 600),
)
def test_windows_far_apart_in_a_long_text(text: str, filler: int) -> None:
    pattern = re.compile(r"(?i)\bkis[ -](?:abc|s)\b", re.MULTILINE)
    prefilter = _Prefilter.of(pattern)
    assert prefilter is not None
    assert prefilter.width is not None
    long = text + " x" * filler + "KIS-ABC " + text + "ſ" * 3 + " kiſ s" + " y" * filler + text
    assert _spans(pattern, long) == [m.span() for m in pattern.finditer(long)]


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        (r"kis\b", "kiss kis"),  # \b reads the character after the match
        (r"(?i)kis$", "KISs\nkis\n"),
        (r"(?i)\bkis", "akis kiſ"),  # \b reads the one before
        (r"(?<=a)bcx?", "abcx abc"),
        (r"abc|kis", "abkis abc"),
    ],
)
def test_edges_of_windows(expression: str, text: str) -> None:
    pattern = re.compile(expression, re.MULTILINE)
    assert _spans(pattern, text) == [m.span() for m in pattern.finditer(text)]


@pytest.mark.parametrize(
    ("expression", "windowed"),
    [
        (r"\bproject[ -](?:kestrel|bluebird)\b", True),
        (r"\bjira\.corp\.example\b(?=/)", False),  # a lookahead reads past the match
        (r"customer_\w+", False),  # unbounded
        (r"(abc)x\1", False),  # a backreference
        (r"abc\Z", False),
        (r"(?<=\s)abc\b", True),  # a lookbehind reads before; \b one character after
        (r"abc$", False),  # the parser's $ holds at a window's end without MULTILINE
    ],
)
def test_which_expressions_are_windowed(expression: str, windowed: bool) -> None:
    prefilter = _Prefilter.of(re.compile(expression, re.MULTILINE))
    assert prefilter is not None
    assert (prefilter.width is not None) is windowed


def test_the_ignorecase_table_is_every_non_ascii_letter_re_equates_with_ascii() -> None:
    letter = re.compile("[a-z]", re.IGNORECASE)
    found = {}
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if letter.fullmatch(char):
            (ascii_letter,) = [
                x for x in string.ascii_lowercase if re.fullmatch(x, char, re.IGNORECASE)
            ]
            found[char] = ascii_letter
    assert dict(_IGNORECASE_ASCII) == found
    # With them written as ASCII, lower-casing keeps every offset.
    for code in range(0x80, sys.maxunicode + 1):
        char = found.get(chr(code), chr(code))
        assert len(char.lower()) == 1, hex(code)
