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

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from crc32c import crc32c

from custodes.fingerprint.boilerplate import boilerplate_lines
from custodes.fingerprint.tokenize import _symbols

__all__ = [
    "FINGERPRINT_VERSION",
    "K_RAW",
    "K_TOKENS",
    "W_RAW",
    "W_TOKENS",
    "FileFingerprints",
    "Fingerprint",
    "Layer",
    "fingerprint",
    "kgram_hashes",
    "symbol_value",
    "wfp",
    "winnow",
]

FINGERPRINT_VERSION: Final = 1
"""Bumped whenever the fingerprints of a text change (lexing, normalisation, hashing, K, W)."""

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
    """The fingerprints of one text: both layers, winnowed, boilerplate left out."""

    fingerprints: tuple[Fingerprint, ...]
    tokens: int  # tokens that count (boilerplate lines left out)
    lines: int  # lines of the text


_PRIME: Final = (1 << 61) - 1
_RAW_TAG: Final = 1 << 62


def symbol_value(symbol: str) -> int:
    """The stable value in ``[0, 2**61 - 1)`` that a symbol (or a normalised line) hashes as."""
    digest = hashlib.blake2b(
        symbol.encode("utf-8", "surrogatepass"), digest_size=8, person=b"custodes-fp"
    ).digest()
    return int.from_bytes(digest, "big") % _PRIME


class _Values(dict[str, int]):
    """Symbol values computed once per process; symbols are few (keywords, operators)."""

    def __missing__(self, symbol: str) -> int:
        value = self[symbol] = symbol_value(symbol)
        return value


_VALUES: Final = _Values()
_BASE: Final = symbol_value("custodes polynomial base") | 1


def kgram_hashes(values: Sequence[int], k: int) -> list[int]:
    """The polynomial hash modulo 2**61 - 1 of every run of ``k`` consecutive values."""
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


def fingerprint(text: str, language: str | None) -> FileFingerprints:
    """Both layers of fingerprints of ``text`` (see the module's docstring). Never raises."""
    masked = boilerplate_lines(text, language)
    symbols, lines, last_lines = _symbols(language, text)
    if masked:
        keep = [i for i, line in enumerate(lines) if line not in masked]
        if len(keep) != len(lines):
            spans = {kept: last_lines[old] for kept, old in enumerate(keep) if old in last_lines}
            symbols = [symbols[i] for i in keep]
            lines = [lines[i] for i in keep]
            last_lines = spans
    out: list[Fingerprint] = []
    add = out.append
    tokens_layer = Layer.TOKENS
    hashes = kgram_hashes(list(map(_VALUES.__getitem__, symbols)), K_TOKENS)
    last = K_TOKENS - 1
    for position in winnow(hashes, W_TOKENS):
        end = position + last
        add(
            Fingerprint(
                hashes[position],
                tokens_layer,
                lines[position],
                last_lines.get(end, lines[end]),
                position,
            )
        )

    raw_values: list[int] = []
    raw_lines: list[int] = []
    for number, normalised in enumerate(_RAW_DROP.sub("", text.lower()).split("\n"), 1):
        if normalised and number not in masked:
            raw_values.append(symbol_value(normalised))
            raw_lines.append(number)
    hashes = kgram_hashes(raw_values, K_RAW)
    raw_layer = Layer.RAW
    last = K_RAW - 1
    for position in winnow(hashes, W_RAW):
        add(
            Fingerprint(
                hashes[position] | _RAW_TAG,
                raw_layer,
                raw_lines[position],
                raw_lines[position + last],
                position,
            )
        )
    return FileFingerprints(tuple(out), len(symbols), _count_lines(text))


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
