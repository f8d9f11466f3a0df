"""Winnowed fingerprints of a file, in two layers, and the SCANOSS ``.wfp`` export.

Winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003) hashes every k-gram of a sequence and
keeps, in each window of ``w`` consecutive k-gram hashes, the rightmost smallest one. Any
stretch of at least ``w + k - 1`` symbols shared by two files then shares a fingerprint, and a
file keeps about ``2 / (w + 1)`` of its k-grams.

Two layers, each for the copies it catches best:

* ``TOKENS``: k-grams of :func:`~custodes.fingerprint.tokenize.abstract` symbols. Names and
  literals are gone, so renamed and reformatted copies (Type-1, Type-2) keep every fingerprint
  and edited ones (Type-3) keep those of their unedited stretches.
* ``RAW``: k-grams of lines of the text lower-cased and stripped of everything but letters and
  digits. It needs no lexer, so it also holds for a hunk that begins in a string, and it keeps
  comments, which an exact copy shares.

Licence headers, import-like lines and blank lines (see :mod:`.boilerplate`) yield nothing:
every file has them and they prove no copying.

Hashes are stable across processes, platforms and Python versions (symbols are mapped once to
64-bit values by BLAKE2b, then rolled as a polynomial modulo the Mersenne prime 2**61 - 1): an
index built today matches a scan run next year. :data:`FINGERPRINT_VERSION` changes whenever
a fingerprint of the same text would.
"""

from __future__ import annotations

import functools
import hashlib
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Final

from custodes.fingerprint.boilerplate import boilerplate_lines
from custodes.fingerprint.tokenize import _symbols

try:  # the C accelerator (src/custodes/fingerprint/_winnow.c): the same results, faster
    from custodes.fingerprint import _winnow as _c
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _c = None  # type: ignore[assignment]

__all__ = [
    "FINGERPRINT_VERSION",
    "K_RAW",
    "K_TOKENS",
    "LAYERS_BY_CODE",
    "LAYER_CODES",
    "W_RAW",
    "W_TOKENS",
    "Columns",
    "FileFingerprints",
    "Fingerprint",
    "Layer",
    "Winnowed",
    "columns_of",
    "fingerprint",
    "kgram_hashes",
    "symbol_value",
    "wfp",
    "winnow",
    "winnowed",
]

FINGERPRINT_VERSION: Final = 2
"""Bumped whenever the fingerprints of a text change (lexing, normalisation, hashing, K, W, or
the lines a fingerprint is said to cover)."""

K_TOKENS: Final = 12
"""Symbols per k-gram of the TOKENS layer: long enough that a k-gram is rarely shared by chance."""
W_TOKENS: Final = 6
"""Window of the TOKENS layer: any 17 (K + W - 1) shared symbols — about two lines — share a
fingerprint, and a fragment keeps about 2 / 7 of its k-grams: a 50-token one about eleven.
Measured on Type-3 clones of 6-line fragments of real Python, JavaScript and C (after dropping
fingerprints found in more than 2% of the files): about 6.5 fingerprints shared with the
original against 1.6 with the closest of 400 unrelated files; K=12/W=8 kept 5 against 1.2,
K=10/W=6 kept 6.5 against 2.0."""
K_RAW: Final = 3
"""Normalised lines per k-gram of the RAW layer."""
W_RAW: Final = 3
"""Window of the RAW layer: any five shared non-blank lines share a fingerprint."""


class Layer(StrEnum):
    RAW = "raw"
    TOKENS = "tokens"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One winnowed k-gram hash and where it lies.

    ``hash`` is in ``[0, 2**63)`` (a SQLite INTEGER); TOKENS hashes are below ``2**61`` and RAW
    hashes at or above ``2**62``, so the two layers never collide even in one column.
    ``position`` is the ordinal of the k-gram in its layer's sequence, which lets a matcher check
    that fingerprints shared by two files come in the same order.
    """

    hash: int
    layer: Layer
    start_line: int  # first line (1-based, of the text) the k-gram covers
    end_line: int  # last line it covers
    position: int


@dataclass(frozen=True, slots=True)
class FileFingerprints:
    """The fingerprints of one text: both layers, winnowed, boilerplate left out.

    ``token_lines`` holds the line of each token that counts, in order, so that a matcher can
    count the tokens of any run of lines; ``token_symbols`` the stable value of each one's
    abstract symbol (see :func:`symbol_value`), so that it can tell varied code from a
    pattern repeated. Both are empty when not known (fingerprints read back from an index).
    """

    fingerprints: tuple[Fingerprint, ...]
    tokens: int  # tokens that count (boilerplate lines left out)
    lines: int  # lines of the text
    token_lines: array[int] = field(default_factory=lambda: array("l"))
    token_symbols: array[int] = field(default_factory=lambda: array("q"))


LAYER_CODES: Final[dict[Layer, int]] = {Layer.RAW: 0, Layer.TOKENS: 1}
"""How a layer is stored (the index's ``layer`` column, a pack's layer bytes)."""
LAYERS_BY_CODE: Final[dict[int, Layer]] = {code: layer for layer, code in LAYER_CODES.items()}


@dataclass(frozen=True)
class Columns:
    """Fingerprints as packed columns: cheap to pickle, insert and export."""

    hashes: array[int]  # 'q'
    layers: array[int]  # 'B', LAYER_CODES
    positions: array[int]  # 'l'
    start_lines: array[int]  # 'l'
    end_lines: array[int]  # 'l'

    def __len__(self) -> int:
        return len(self.hashes)

    def validate(self) -> None:
        n = len(self.hashes)
        columns = (self.layers, self.positions, self.start_lines, self.end_lines)
        if any(len(column) != n for column in columns):
            raise ValueError("fingerprint columns differ in length")

    @classmethod
    def empty(cls) -> Columns:
        return cls(array("q"), array("B"), array("l"), array("l"), array("l"))


def columns_of(prints: FileFingerprints) -> Columns:
    """Pack a file's fingerprints into columns."""
    fps = prints.fingerprints
    return Columns(
        array("q", [fp.hash for fp in fps]),
        array("B", [LAYER_CODES[fp.layer] for fp in fps]),
        array("l", [fp.position for fp in fps]),
        array("l", [fp.start_line for fp in fps]),
        array("l", [fp.end_line for fp in fps]),
    )


@dataclass(frozen=True)
class Winnowed:
    """One text's fingerprints as columns (tokens layer first, each layer in text order) and
    what a matcher needs besides: see :class:`FileFingerprints`."""

    columns: Columns
    tokens: int
    lines: int
    token_lines: array[int]
    token_symbols: array[int]

    @classmethod
    def of(cls, prints: FileFingerprints) -> Winnowed:
        return cls(
            columns_of(prints), prints.tokens, prints.lines, prints.token_lines,
            prints.token_symbols,
        )  # fmt: skip


_PRIME: Final = (1 << 61) - 1
_RAW_TAG: Final = 1 << 62


_BLAKE: Final = hashlib.blake2b(digest_size=8, person=b"custodes-fp")  # copied: cheaper


def symbol_value(symbol: str) -> int:
    """The stable value in ``[0, 2**61 - 1)`` that a symbol (or a normalised line) hashes as:
    BLAKE2b-64 personalised ``custodes-fp``, modulo 2**61 - 1."""
    hasher = _BLAKE.copy()
    hasher.update(symbol.encode("utf-8", "surrogatepass"))
    return int.from_bytes(hasher.digest(), "big") % _PRIME


class _Values(dict[str, int]):
    """Symbol values computed once per process; symbols are few (keywords, operators)."""

    def __missing__(self, symbol: str) -> int:
        value = self[symbol] = symbol_value(symbol)
        return value


_VALUES: Final = _Values()
_BASE: Final = symbol_value("custodes polynomial base") | 1


def kgram_hashes(values: Sequence[int], k: int) -> list[int]:
    """The polynomial hash modulo 2**61 - 1 of every run of ``k`` consecutive values."""
    if _c is not None:
        try:
            return _c.kgram_hashes(values, k, _BASE)
        except OverflowError:  # a value beyond 64 bits: Python's integers take it
            pass
    return _kgram_hashes(values, k)


def _kgram_hashes(values: Sequence[int], k: int) -> list[int]:
    count = len(values)
    if k < 1 or count < k:
        return []
    prime, base = _PRIME, _BASE
    top = pow(base, k - 1, prime)
    h = 0
    for value in values[:k]:
        h = (h * base + value) % prime
    out = [h]
    add = out.append
    for i in range(k, count):
        h = ((h - values[i - k] * top) * base + values[i]) % prime
        add(h)
    return out


def winnow(hashes: Sequence[int], window: int) -> list[int]:
    """Positions that robust winnowing selects: the rightmost minimum of each window.

    A position is listed once even when it is the minimum of several windows. A sequence
    shorter than a window is one window (so a short text still gets one fingerprint).
    """
    if _c is not None:
        try:
            return _c.winnow(hashes, window)
        except OverflowError:
            pass
    return _winnow(hashes, window)


def _winnow(hashes: Sequence[int], window: int) -> list[int]:
    count = len(hashes)
    if count == 0 or window < 1:
        return []
    if count <= window:
        smallest = min(hashes)
        return [max(i for i, h in enumerate(hashes) if h == smallest)]
    selected: list[int] = []
    chosen = -1  # position of the current window's minimum
    for end in range(window - 1, count):
        start = end - window + 1
        if chosen < start:
            # The minimum left the window: search the whole window again. With random hashes
            # this happens about once per window, so the search costs O(1) per step on average.
            part = hashes[start : end + 1]
            smallest = min(part)
            chosen = start + window - 1 - part[::-1].index(smallest)
        elif hashes[end] <= hashes[chosen]:
            chosen = end
        if not selected or selected[-1] != chosen:
            selected.append(chosen)
    return selected


def _count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (not text.endswith("\n"))


_RAW_DROP: Final = re.compile(r"[^\w\n]+|_+")
# The same for ASCII, by table (several times faster than the pattern); the pattern then only
# sees what is left of a text that is not ASCII.
_RAW_DROP_ASCII: Final = {c: None for c in range(128) if not chr(c).isalnum() and c != 10}


def _raw_text(text: str) -> str:
    """``text`` lower-cased, with only letters, digits and newlines left."""
    kept = text.lower().translate(_RAW_DROP_ASCII)
    return kept if kept.isascii() else _RAW_DROP.sub("", kept)


# Normalised lines repeat across files (``return``, ``else``, ``}`` reduce to little).
_raw_value: Final = functools.lru_cache(maxsize=1 << 16)(symbol_value)

_SPLIT: Final = 3
"""Lines without a token (blank, comment, boilerplate) that split a k-gram's lines. A k-gram
that runs on across a longer gap covers, as far as its lines say, only the side holding most
of its items: a match must not stretch over a comment block on the strength of the first
tokens beyond it."""


def _splits(starts: list[int], ends: dict[int, int]) -> list[int]:
    """Indices of the items that start a new block: more than ``_SPLIT`` lines after the end
    of the item before (``starts`` in order; ``ends`` gives the last line of items that span
    lines). Only a jump between two distinct lines can be one, so lines are compared, not
    items (a line holds several tokens)."""
    distinct = sorted(set(starts))
    out: list[int] = []
    for before, line in pairwise(distinct):
        if line - before > _SPLIT:
            i = bisect_left(starts, line)
            if line - ends.get(i - 1, starts[i - 1]) > _SPLIT:
                out.append(i)
    return out


def _spans(
    positions: list[int], k: int, starts: list[int], ends: dict[int, int]
) -> tuple[list[int], list[int]]:
    """The first and last line of the k-gram at each position (see ``_SPLIT``)."""
    splits = _splits(starts, ends)
    if not splits:  # the usual case for a k-gram: no gap inside it
        return [starts[p] for p in positions], [ends.get(p + k - 1, starts[p + k - 1]) for p in positions]
    first_lines: list[int] = []
    last_lines: list[int] = []
    after = iter(splits)
    cut = next(after)  # the first block start after the current k-gram's first item
    none = len(starts)
    for p in positions:
        while cut <= p:
            cut = next(after, none)
        first, last = p, p + k - 1
        if cut <= last:
            first, last = _core(splits, first, last)
        first_lines.append(starts[first])
        last_lines.append(ends.get(last, starts[last]))
    return first_lines, last_lines


def _unmasked(
    masked: frozenset[int], symbols: list[str], lines: list[int], last_lines: dict[int, int]
) -> tuple[list[str], list[int], dict[int, int]]:
    """The tokens whose line is not in ``masked``. Lines are in order and masked lines come in
    runs (a header, a block of imports), so whole runs of tokens are cut at once."""
    cuts: list[tuple[int, int]] = []  # [from, to) token indices to drop
    for first, last in _runs(sorted(masked)):
        i, j = bisect_left(lines, first), bisect_right(lines, last)
        if i < j:
            cuts.append((i, j))
    if not cuts:
        return symbols, lines, last_lines
    kept_symbols: list[str] = []
    kept_lines: list[int] = []
    spans: dict[int, int] = {}
    begin = 0
    for i, j in [*cuts, (len(lines), len(lines))]:
        offset = len(kept_lines) - begin
        for old, last in last_lines.items():
            if begin <= old < i:
                spans[old + offset] = last
        kept_symbols += symbols[begin:i]
        kept_lines += lines[begin:i]
        begin = j
    return kept_symbols, kept_lines, spans


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted ``numbers`` as runs of consecutive ones: (first, last) each."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _core(splits: list[int], first: int, last: int) -> tuple[int, int]:
    """The first and last item of the block of items ``first``..``last`` that holds most of
    them (the earliest of equals), given where blocks start."""
    lo, hi = bisect_right(splits, first), bisect_right(splits, last)
    if lo == hi:
        return first, last
    bounds = [first, *splits[lo:hi], last + 1]
    widest = max(range(len(bounds) - 1), key=lambda b: bounds[b + 1] - bounds[b])
    return bounds[widest], bounds[widest + 1] - 1


def _raw_items(normalised: str, masked: frozenset[int]) -> tuple[list[int], list[int]]:
    """The value and the number of each non-empty line of the normalised text that is not
    ``masked``: the items of the RAW layer."""
    if _c is not None:
        return _c.raw_values(normalised.encode("utf-8", "surrogatepass"), masked)
    return _py_raw_items(normalised, masked)


def _py_raw_items(normalised: str, masked: frozenset[int]) -> tuple[list[int], list[int]]:
    values: list[int] = []
    lines: list[int] = []
    for number, line in enumerate(normalised.split("\n"), 1):
        if line and number not in masked:
            values.append(_raw_value(line))
            lines.append(number)
    return values, lines


def _layer(
    values: list[int], lines: list[int], ends: dict[int, int], k: int, window: int, tag: int
) -> tuple[list[int], list[int], list[int], list[int]]:
    """One layer's fingerprints: the selected k-gram hashes (``| tag``), their positions, and
    the first and last line each covers. ``lines`` holds each item's line, in order; ``ends``
    the last line of items that span lines."""
    if _c is not None:
        try:
            return _c.layer(values, lines, ends, k, window, _BASE, _SPLIT, tag)
        except OverflowError:  # beyond 64 bits (never from a text): Python's integers take it
            pass
    return _py_layer(values, lines, ends, k, window, tag)


def _py_layer(
    values: list[int], lines: list[int], ends: dict[int, int], k: int, window: int, tag: int
) -> tuple[list[int], list[int], list[int], list[int]]:
    """:func:`_layer` in Python: the path without the C accelerator, and its reference."""
    hashes = _kgram_hashes(values, k)
    positions = _winnow(hashes, window)
    firsts, lasts = _spans(positions, k, lines, ends)
    return [hashes[p] | tag for p in positions], positions, firsts, lasts


def winnowed(text: str, language: str | None) -> Winnowed:
    """:func:`fingerprint` as packed columns, the form indexing and matching use."""
    masked = boilerplate_lines(text, language)
    symbols, lines, last_lines = _symbols(language, text)
    if masked:
        symbols, lines, last_lines = _unmasked(masked, symbols, lines, last_lines)
    values = list(map(_VALUES.__getitem__, symbols))
    out_hashes, positions, starts, ends = _layer(values, lines, last_lines, K_TOKENS, W_TOKENS, 0)
    token_count = len(out_hashes)

    raw_values, raw_lines = _raw_items(_raw_text(text), masked)
    raw_hashes, raw_positions, raw_starts, raw_ends = _layer(
        raw_values, raw_lines, {}, K_RAW, W_RAW, _RAW_TAG
    )
    out_hashes += raw_hashes
    starts += raw_starts
    ends += raw_ends
    layers = array("B", bytes([LAYER_CODES[Layer.TOKENS]]) * token_count)
    layers.frombytes(bytes([LAYER_CODES[Layer.RAW]]) * len(raw_positions))
    columns = Columns(
        array("q", out_hashes),
        layers,
        array("l", positions + raw_positions),
        array("l", starts),
        array("l", ends),
    )
    return Winnowed(
        columns, len(symbols), _count_lines(text), array("l", lines), array("q", values)
    )


def fingerprint(text: str, language: str | None) -> FileFingerprints:
    """Both layers of fingerprints of ``text`` (see the module's docstring). Never raises."""
    w = winnowed(text, language)
    c = w.columns
    by_code = LAYERS_BY_CODE
    return FileFingerprints(
        tuple(
            Fingerprint(h, by_code[layer], start, end, position)
            for h, layer, position, start, end in zip(
                c.hashes, c.layers, c.positions, c.start_lines, c.end_lines, strict=True
            )
        ),
        w.tokens,
        w.lines,
        w.token_lines,
        w.token_symbols,
    )


# -- SCANOSS .wfp -------------------------------------------------------------------------------

_WFP_GRAM: Final = 30
_WFP_WINDOW: Final = 64
# SCANOSS keeps ASCII digits and letters, lower-cased; every other byte is skipped.
_WFP_KEEP: Final = b"0123456789abcdefghijklmnopqrstuvwxyz"
_WFP_TABLE: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_WFP_DELETE: Final = bytes(b for b in range(256) if b not in _WFP_KEEP and not (0x41 <= b <= 0x5A))


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # the original bytes of a lossy decode
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def wfp(text: str, path: str) -> str:
    """The SCANOSS winnowing fingerprint (``.wfp``) block of one file, ready to concatenate.

    ``file=<md5>,<size in bytes>,<path>`` then ``<line>=<crc32c hex>,…`` lines, computed over
    the UTF-8 bytes of ``text`` exactly as SCANOSS's clients do (GRAM 30, WINDOW 64, CRC-32C,
    one line per source line that completes a new window minimum), so that a SCANOSS engine or
    knowledge base reads it unchanged. The clients' own choices of which files to skip (small,
    binary, JSON…) are left to the caller.
    """
    from crc32c import crc32c  # only here: an import a scan without ``.wfp`` export skips

    data = _encode(text)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    # As SCANOSS writes a path: printable, one line, without the quotes repr() adds.
    out = [f"file={md5},{len(data)},{repr(path).strip(chr(39))}\n"]
    normalised = bytearray()
    line_of: list[int] = []
    for number, chunk in enumerate(data.split(b"\n"), 1):
        kept = chunk.translate(_WFP_TABLE, _WFP_DELETE)
        normalised += kept
        line_of.extend([number] * len(kept))
    grams = [crc32c(normalised[i : i + _WFP_GRAM]) for i in range(len(normalised) - _WFP_GRAM + 1)]
    last_hash = -1
    last_line = 0
    entry: list[str] = []
    chosen = -1
    for end in range(_WFP_WINDOW - 1, len(grams)):
        start = end - _WFP_WINDOW + 1
        if chosen < start:
            part = grams[start : end + 1]
            chosen = start + part.index(min(part))
        elif grams[end] < grams[chosen]:
            chosen = end
        smallest = grams[chosen]
        if smallest == last_hash:
            continue
        # SCANOSS hashes the minimum once more (little-endian) to spread the selected values.
        crc = f"{crc32c(smallest.to_bytes(4, 'little')):08x}"
        line = line_of[end + _WFP_GRAM - 1]
        if line != last_line:
            if entry:
                out.append(",".join(entry) + "\n")
            entry = [f"{line}={crc}"]
        else:
            entry.append(crc)
        last_line = line
        last_hash = smallest
    if entry:
        out.append(",".join(entry) + "\n")
    return "".join(out)
