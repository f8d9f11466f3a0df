"""The C accelerators (``_lex.c``, ``_winnow.c``, ``_match.c``) against the pure-Python path they replace.

Both paths must yield the same symbols, lines and fingerprints, byte for byte: an index built
where the extension is built is matched by a scan where it is not. Python is the reference
here; the Python path itself is pinned against independent references and golden files in
test_tokenize.py and test_winnow.py (which run through the C path when it is built).

The extensions are built wherever a C compiler is (CI has one): these tests fail, not skip,
when they are missing.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.fingerprint import LANGUAGES
from custodes.sources.languages import language_of
from fingerprint.clones import corpus

tokmod = importlib.import_module("custodes.fingerprint.tokenize")  # the package hides the name
winmod = importlib.import_module("custodes.fingerprint.winnow")

DATA = Path(__file__).parent.parent / "data" / "fingerprint"
SAMPLES = sorted(DATA.glob("sample.*"))
ALL_LANGUAGES = [*sorted(LANGUAGES), ""]  # "" is the generic lexer
PRIME = (1 << 61) - 1


def _c(module: ModuleType, name: str) -> ModuleType:
    ext = getattr(module, name)
    assert ext is not None, (
        f"{module.__name__}: the C accelerator is not built "
        "(pip install -e . with a C compiler; CI has one)"
    )
    assert isinstance(ext, ModuleType)
    return ext


def test_the_accelerators_are_built_and_used() -> None:
    lex = _c(tokmod, "_c_lex")
    win = _c(winmod, "_c")
    assert lex.__name__ == "custodes.fingerprint._lex"
    assert win.__name__ == "custodes.fingerprint._winnow"
    assert _c(importlib.import_module("custodes.fingerprint.match"), "_c").__name__ == (
        "custodes.fingerprint._match"
    )


# -- the lexer ----------------------------------------------------------------------------------


def _both_symbols(
    language: str | None, text: str
) -> tuple[tuple[list[str], list[int], dict[int, int]], tuple[list[str], list[int], dict[int, int]]]:
    lex = _c(tokmod, "_c_lex")
    fast = tokmod._symbols(language, text)
    tokmod._c_lex = None
    try:
        slow = tokmod._symbols(language, text)
    finally:
        tokmod._c_lex = lex
    return fast, slow


def _assert_same_symbols(language: str | None, text: str) -> None:
    fast, slow = _both_symbols(language, text)
    assert fast[0] == slow[0], (language, text[:200])
    assert fast[1] == slow[1], (language, text[:200])
    assert fast[2] == slow[2], (language, text[:200])


# Pieces that open, close or prefix every construct some lexer knows, and the characters the
# C lexer hands over or reads itself: random texts of them hit each decision it makes.
PIECES = [
    '"', "'", "`", '"""', "'''", "#", "//", "/*", "*/", "\\", "\\\n", "\n", " ", "\t", "\r",
    "\f", "\v", "\x00", "\x7f", "é", "€", "١", "\u00a0", "\u2028", "\ufeff", "$", "$$", "@",
    "@@", "@\"", '$"', '$@"', "<<", "<<<", "<<~EOS\n", "EOS", "<<-'X'\n", "X", "=begin",
    "=end", "r", "rb", "b", "f", "u8", "L", "R", 'R"x(', ')x"', 'r#"', '"#', "#include",
    "# define", "#[", "'a", "?", "!", "?=", ".", "..", "...", ".5", "0x1F", "1e-3", "12_3",
    "=", "==", "===", ">>>=", "->", "=>", "::", "?.", "??=", "(", ")", "{", "}", "[", "]",
    ";", ",", "def", "return", "if", "IF", "function", "x", "_y1", "λ", "name?", "a!",
    "${x}", "/re[/]g/", "%", "&&", "|", "~", "^",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    language=st.sampled_from(ALL_LANGUAGES),
    pieces=st.lists(st.sampled_from(PIECES), max_size=60),
)
def test_c_lexer_equals_python_on_delimiter_soup(language: str, pieces: list[str]) -> None:
    _assert_same_symbols(language or None, "".join(pieces))


@settings(max_examples=300, deadline=None)
@given(language=st.sampled_from(ALL_LANGUAGES), text=st.text(max_size=300))
def test_c_lexer_equals_python_on_any_text(language: str, text: str) -> None:
    _assert_same_symbols(language or None, text)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_c_lexer_equals_python_on_each_language_sample(sample: Path) -> None:
    text = sample.read_text("utf-8")
    language = language_of(sample.name)
    _assert_same_symbols(language, text)
    # Snippets cut anywhere (inside strings, comments, docstrings): where lexing starts is
    # decided in Python, the rest must still agree.
    rng = random.Random(sample.name)
    for _ in range(40):
        start = rng.randrange(len(text))
        end = rng.randrange(start, len(text) + 1)
        _assert_same_symbols(language, text[start:end])


def _real_files() -> Iterator[Path]:
    for language in ("python", "javascript", "c"):
        files = corpus(language)
        assert files, f"no real {language} code on this machine"
        yield from random.Random(language).sample(list(files), min(40, len(files)))


def test_c_lexer_equals_python_on_real_code_and_snippets_of_it() -> None:
    for path in _real_files():
        text = path.read_text("utf-8")
        language = language_of(path.name)
        _assert_same_symbols(language, text)
        lines = text.splitlines(keepends=True)
        rng = random.Random(str(path))
        for _ in range(5):  # whole-line hunks, as a diff gives them
            first = rng.randrange(len(lines))
            _assert_same_symbols(language, "".join(lines[first : first + rng.randint(1, 40)]))


def test_c_lexer_rejects_bad_arguments_with_python_errors() -> None:
    lex = _c(tokmod, "_c_lex")
    table = tokmod._lexer_for("python").c_table
    with pytest.raises(IndexError):
        lex.symbols(table, "x = 1", 99, 1, [], [], {})
    with pytest.raises(TypeError):
        lex.symbols(table, b"x = 1", 0, 1, [], [], {})
    with pytest.raises(TypeError):
        lex.symbols(("not", "a", "table"), "x", 0, 1, [], [], {})


# -- winnowing ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=80),
    k=st.integers(min_value=-1, max_value=14),
)
def test_c_kgram_hashes_equal_python(values: list[int], k: int) -> None:
    win = _c(winmod, "_c")
    assert win.kgram_hashes(values, k, winmod._BASE) == winmod._kgram_hashes(values, k)


def test_values_beyond_64_bits_fall_back_to_python() -> None:
    values = [2**70, 3, -(2**80), 5]
    assert winmod.kgram_hashes(values, 2) == winmod._kgram_hashes(values, 2)
    assert winmod.winnow([2**64, 1, 2], 2) == winmod._winnow([2**64, 1, 2], 2)


@settings(max_examples=300, deadline=None)
@given(
    hashes=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(0, 5),
                    max_size=80),
    window=st.integers(min_value=-1, max_value=10),
)  # fmt: skip
def test_c_winnow_equals_python(hashes: list[int], window: int) -> None:
    win = _c(winmod, "_c")
    assert win.winnow(hashes, window) == winmod._winnow(hashes, window)


@st.composite
def _layers(draw: st.DrawFn) -> tuple[list[int], list[int], dict[int, int]]:
    n = draw(st.integers(min_value=0, max_value=70))
    values = draw(st.lists(st.integers(min_value=0, max_value=PRIME - 1) | st.integers(0, 3),
                           min_size=n, max_size=n))  # fmt: skip
    steps = draw(st.lists(st.sampled_from([0, 0, 0, 1, 1, 2, 4, 5, 9]), min_size=n, max_size=n))
    lines, line = [], 1
    for step in steps:
        line += step
        lines.append(line)
    ends = {
        i: lines[i] + draw(st.integers(min_value=0, max_value=6))
        for i in draw(st.sets(st.integers(min_value=0, max_value=max(n - 1, 0)), max_size=8))
        if i < n
    }
    return values, lines, ends


@settings(max_examples=400, deadline=None)
@given(
    layer=_layers(),
    k=st.integers(min_value=1, max_value=13),
    window=st.integers(min_value=1, max_value=8),
    tag=st.sampled_from([0, 1 << 62]),
)
def test_c_layer_equals_python(
    layer: tuple[list[int], list[int], dict[int, int]], k: int, window: int, tag: int
) -> None:
    win = _c(winmod, "_c")
    values, lines, ends = layer
    fast = win.layer(values, lines, ends, k, window, winmod._BASE, winmod._SPLIT, tag)
    slow = winmod._py_layer(values, lines, ends, k, window, tag)
    assert fast == slow


def test_c_layer_rejects_bad_arguments_with_python_errors() -> None:
    win = _c(winmod, "_c")
    with pytest.raises(ValueError, match="differ in length"):
        win.layer([1, 2, 3], [1, 2], {}, 1, 1, winmod._BASE, 3, 0)
    with pytest.raises(ValueError, match="in order"):
        win.layer([1, 2, 3], [3, 2, 1], {}, 1, 1, winmod._BASE, 3, 0)
    with pytest.raises(ValueError, match="base"):
        win.kgram_hashes([1], 1, PRIME)
    with pytest.raises(TypeError):
        win.winnow([1, "2"], 1)


def test_c_and_python_fingerprint_real_code_alike() -> None:
    """The whole of winnowed(): both layers, lines, token counts and symbol values."""
    lex, win = _c(tokmod, "_c_lex"), _c(winmod, "_c")
    texts = [(p.read_text("utf-8"), language_of(p.name)) for p in [*SAMPLES, *_real_files()]]
    fast = [winmod.winnowed(text, language) for text, language in texts]
    tokmod._c_lex = winmod._c = None
    try:
        slow = [winmod.winnowed(text, language) for text, language in texts]
    finally:
        tokmod._c_lex, winmod._c = lex, win
    for a, b in zip(fast, slow, strict=True):
        assert a == b


# -- chaining -----------------------------------------------------------------------------------

matchmod = importlib.import_module("custodes.fingerprint.match")


@st.composite
def _pairs(draw: st.DrawFn) -> list[tuple[int, int, int, int, int, int]]:
    """Pairs as alignment makes them: near-diagonal runs, repeats and noise, lines near each
    position, so that gaps, ties and look-back limits all occur."""
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=90))):
        s = draw(st.integers(min_value=0, max_value=120))
        t = s + draw(st.sampled_from([0, 0, 0, 1, -1, 3, 40])) + draw(st.integers(0, 2))
        s_line, t_line = s // 3 + 1, max(t, 0) // 3 + 1
        out.append((s, t, s_line, s_line + draw(st.integers(0, 3)), t_line,
                    t_line + draw(st.integers(0, 3))))  # fmt: skip
    return out


@settings(max_examples=400, deadline=None)
@given(pairs=_pairs(), gap=st.integers(min_value=0, max_value=12))
def test_c_chain_equals_python(pairs: list[tuple[int, int, int, int, int, int]], gap: int) -> None:
    ext = _c(matchmod, "_c")
    pairs.sort()
    fast = [tuple(r) for r in ext.chain(pairs, gap, matchmod._LOOKBACK)]
    if len(pairs) < 2:  # no chain; the Python loop is never reached with fewer
        assert fast == []
        return
    slow = [(r.s0, r.s1, r.t0, r.t1) for r in matchmod._py_chain(pairs, gap)]
    assert fast == slow


def test_c_chain_rejects_bad_pairs_with_python_errors() -> None:
    ext = _c(matchmod, "_c")
    with pytest.raises(TypeError):
        ext.chain([(1, 2, 3), (4, 5, 6)], 3, 48)
    with pytest.raises(TypeError):
        ext.chain([(1, 2, 3, 4, 5, "6"), (1, 2, 3, 4, 5, 6)], 3, 48)
    with pytest.raises(OverflowError):
        ext.chain([(2**64, 2, 3, 4, 5, 6), (1, 2, 3, 4, 5, 6)], 3, 48)


# -- the RAW layer's line values ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400) | st.text("ab\n", max_size=400))
def test_c_blake2b_values_equal_hashlib(text: str) -> None:
    win = _c(winmod, "_c")
    data = text.encode("utf-8", "surrogatepass")
    assert win.symbol_value(data) == winmod.symbol_value(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.sampled_from(list("abc01 \n\né\u2028\udc80")), max_size=300),
    masked=st.frozensets(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_c_raw_items_equal_python(text: str, masked: frozenset[int]) -> None:
    win = _c(winmod, "_c")
    fast = win.raw_values(text.encode("utf-8", "surrogatepass"), masked)
    assert fast == winmod._py_raw_items(text, masked)


def test_lines_beyond_the_c_range_fall_back_to_python() -> None:
    values, lines, ends = [5, 6, 7, 8], [1, 2, 2**62, 2**62 + 9], {1: 2**70}
    assert winmod._layer(values, lines, ends, 2, 2, 0) == winmod._py_layer(values, lines, ends, 2, 2, 0)
    pairs = [(0, 0, 2**62, 2**62, 1, 1), (1, 1, 2**62 + 1, 2**62 + 1, 2, 2)]
    got = [(r.s0, r.s1, r.t0, r.t1) for r in matchmod._chain(list(pairs), 3)]
    assert got == [(r.s0, r.s1, r.t0, r.t1) for r in matchmod._py_chain(sorted(pairs), 3)]
