"""Literal phrases (a ban list) found in one pass, with their spans in the original text.

A policy's ``phrases`` rule lists words or phrases that must not appear (``a keylogger``,
``competitor pricing sheet``). They are matched literally — no regular-expression syntax to
escape — by one Aho–Corasick automaton over all of them (:mod:`custodes.detectors.keywords`:
``pyahocorasick``, or a trie-shaped regex where it has no wheel), built once per policy, so the
cost of a text is one pass whatever the number of phrases.

What ``ignorecase`` folds, exactly: Unicode *full* case folding (:meth:`str.casefold`) of the
phrases and of the text, so ``STRASSE`` matches ``straße`` and ``ΣΊΣΥΦΟΣ`` matches
``σίσυφος``. A character that folds to several (``ß`` to ``ss``) is matched whole: a match
begins and ends on the text's own characters, never inside one's folding (the phrase ``s``
is not found in ``ß``). No other normalisation is done: no accents are stripped, no
compatibility forms (``ﬁ``, full-width letters) unified, no spaces collapsed.

With ``words`` a match may not extend a word: where the phrase begins (ends) with a word
character — a letter, digit or ``_`` (:meth:`str.isalnum`) — the text's character just before
(after) the match must not be one. A phrase's edge that is not a word character (``/etc/shadow``)
needs nothing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from custodes.detectors.keywords import KeywordIndex

_rs: Any
try:  # a compiled extension; optional at run time (a platform without a wheel)
    import ahocorasick_rs as _rs
except ImportError:  # pragma: no cover - depends on the environment
    _rs = None

__all__ = ["PhraseMatch", "PhraseMatcher", "is_word_char"]


def is_word_char(char: str) -> bool:
    """Whether ``char`` is a word character for the ``words`` option."""
    return char.isalnum() or char == "_"


@dataclass(frozen=True)
class PhraseMatch:
    """One occurrence: ``phrase`` (as written in the policy) at ``text[start:end]``."""

    start: int
    end: int
    phrase: str


class PhraseMatcher:
    """Finds every occurrence of a fixed list of phrases. Immutable, thread-safe."""

    __slots__ = ("_automaton", "_bytes_automaton", "_edges", "_index", "_keys", "_number",
                 "backend", "ignorecase", "longest", "phrases", "words")

    def __init__(
        self,
        phrases: Iterable[str],
        *,
        ignorecase: bool = True,
        words: bool = True,
        backend: str = "auto",
    ) -> None:
        self.phrases = tuple(phrases)
        self.ignorecase = ignorecase
        self.words = words
        if not self.phrases or any(not p for p in self.phrases):
            raise ValueError("phrases must be a non-empty list of non-empty strings")
        keys = [self._fold(p) for p in self.phrases]
        if len(set(keys)) != len(keys):
            raise ValueError("two phrases are the same (after case folding)")
        self._keys = keys
        # The most characters of a text one match can span (a stream holds this much back):
        # folding never shortens a character, so no more than the longest folded phrase.
        self.longest = max(map(len, keys))
        self._number = {key: i for i, key in enumerate(keys)}
        # Whether each phrase's edges are word characters (the ``words`` test is per edge).
        self._edges = [(is_word_char(p[0]), is_word_char(p[-1])) for p in self.phrases]
        if backend == "auto":
            backend = "rs" if _rs is not None and all(map(_utf8, keys)) else "keywords"
        if backend == "rs" and (_rs is None or not all(map(_utf8, keys))):
            raise ValueError("the rs backend needs ahocorasick-rs and phrases in UTF-8")
        self.backend = backend
        self._automaton: Any = None
        self._bytes_automaton: Any = None
        self._index: KeywordIndex | None = None
        if backend == "rs":
            # Standard match semantics: the only kind that reports overlapping matches.
            self._automaton = _rs.AhoCorasick(keys)
            # For ASCII text, where byte offsets are character offsets: a quarter cheaper than
            # handing the automaton a str, which it converts to UTF-8 and its offsets back.
            self._bytes_automaton = _rs.BytesAhoCorasick([key.encode() for key in keys])
        else:
            self._index = KeywordIndex(keys, backend="auto" if backend == "keywords" else backend)

    def _keyword_index(self) -> KeywordIndex:
        if self._index is None:  # built twice by two threads at worst: the same either way
            self._index = KeywordIndex(self._keys)
        return self._index

    def _fold(self, text: str) -> str:
        return text.casefold() if self.ignorecase else text

    def find(self, text: str) -> list[PhraseMatch]:
        """Every occurrence in ``text``, overlapping ones included, by (start, end, phrase)."""
        if not text:
            return []
        if not self.ignorecase:
            return self._collect(text, self._raw(text), None)
        folded = text.casefold()
        if len(folded) == len(text):
            # Folding never shortens a character, so no character grew: offsets in the folded
            # text are the text's own (almost every text: only ß, ligatures, İ and a few
            # others fold to several characters).
            return self._collect(text, self._raw(folded), None)
        folded, origin = _fold_mapped(text)
        return self._collect(text, self._raw(folded), origin)

    def _raw(self, folded: str) -> list[tuple[int, int, int]]:
        """(phrase number, start, end) of every occurrence in the folded text, overlaps too."""
        if self._automaton is not None:
            if folded.isascii():
                ascii_found: list[tuple[int, int, int]] = (
                    self._bytes_automaton.find_matches_as_indexes(
                        folded.encode("ascii"), overlapping=True
                    )
                )
                return ascii_found
            try:
                found: list[tuple[int, int, int]] = self._automaton.find_matches_as_indexes(
                    folded, overlapping=True
                )
            except UnicodeEncodeError:
                pass  # a lone surrogate (JSON allows one) is no UTF-8 for the Rust automaton
            else:
                return found
        number = self._number
        return [
            (number[key], start, start + len(key))
            for key, starts in self._keyword_index().find(folded).items()
            for start in starts
        ]

    def _collect(
        self, text: str, found: list[tuple[int, int, int]], origin: list[int] | None
    ) -> list[PhraseMatch]:
        out: list[PhraseMatch] = []
        n = len(text)
        for number, folded_start, folded_end in found:
            if origin is None:
                start, end = folded_start, folded_end
            else:
                # Both ends must fall on the boundary of one of the text's characters.
                start, end = origin[folded_start], origin[folded_end]
                if start < 0 or end < 0:
                    continue
            if self.words:
                head, tail = self._edges[number]
                if (head and start > 0 and is_word_char(text[start - 1])) or (
                    tail and end < n and is_word_char(text[end])
                ):
                    continue
            out.append(PhraseMatch(start, end, self.phrases[number]))
        out.sort(key=lambda m: (m.start, m.end, m.phrase))
        return out


def _utf8(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (no lone surrogate), as the Rust automaton needs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fold_mapped(text: str) -> tuple[str, list[int]]:
    """``text`` case-folded, and for each offset of the folded text (and its end) the offset of
    the text it begins, or -1 where it lies inside one character's folding."""
    pieces: list[str] = []
    origin: list[int] = []
    for position, char in enumerate(text):
        folded = char.casefold()
        pieces.append(folded)
        origin.append(position)
        if len(folded) > 1:
            origin.extend([-1] * (len(folded) - 1))
    origin.append(len(text))
    return "".join(pieces), origin
