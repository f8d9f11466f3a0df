"""Winnowed fingerprints: the winnowing guarantee, stable hashes, clones kept, strangers apart."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from custodes.fingerprint import (
    FINGERPRINT_VERSION,
    K_RAW,
    K_TOKENS,
    W_RAW,
    W_TOKENS,
    Layer,
    abstract,
    boilerplate_lines,
    fingerprint,
    kgram_hashes,
    symbol_value,
    tokenize,
    wfp,
)
from custodes.fingerprint.winnow import winnow
from fingerprint.clones import corpus, pick_fragment, type1, type2, type3

DATA = Path(__file__).parent.parent / "data" / "fingerprint"


def _layer(text: str, language: str | None, layer: Layer = Layer.TOKENS) -> set[int]:
    return {f.hash for f in fingerprint(text, language).fingerprints if f.layer is layer}


# -- winnowing against a brute-force reference -------------------------------------------------


def _reference_winnow(hashes: list[int], window: int) -> list[int]:
    """Schleimer et al.'s robust winnowing, window by window, as the paper states it."""
    if not hashes:
        return []
    if len(hashes) <= window:
        windows = [range(len(hashes))]
    else:
        windows = [range(s, s + window) for s in range(len(hashes) - window + 1)]
    picked: list[int] = []
    for positions in windows:
        smallest = min(hashes[p] for p in positions)
        rightmost = max(p for p in positions if hashes[p] == smallest)
        if not picked or picked[-1] != rightmost:
            picked.append(rightmost)
    return picked


@settings(max_examples=300, deadline=None)
@given(
    hashes=st.lists(st.integers(min_value=0, max_value=20), max_size=80),
    window=st.integers(min_value=1, max_value=12),
)
def test_winnow_selects_what_the_reference_selects(hashes: list[int], window: int) -> None:
    # Small values: many ties, where "rightmost" matters.
    assert winnow(hashes, window) == _reference_winnow(hashes, window)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(min_value=0, max_value=2**61 - 2), min_size=1, max_size=60),
       k=st.integers(min_value=1, max_value=15))  # fmt: skip
def test_rolling_kgram_hashes_equal_hashing_each_kgram_alone(values: list[int], k: int) -> None:
    hashes = kgram_hashes(values, k)
    assert len(hashes) == max(0, len(values) - k + 1)
    for i, h in enumerate(hashes):
        assert h == kgram_hashes(values[i : i + k], k)[0]
        assert 0 <= h < 2**61


_SYMBOLS = ["x", "y", "z", "(", ")", "+", "=", ";", "1", "'s'", "if", "while", "{", "}", ","]


@settings(max_examples=200, deadline=None)
@given(
    shared=st.lists(st.sampled_from(_SYMBOLS), min_size=W_TOKENS + K_TOKENS - 1, max_size=40),
    left=st.lists(st.sampled_from(_SYMBOLS), max_size=30),
    right=st.lists(st.sampled_from(_SYMBOLS), max_size=30),
    other=st.lists(st.sampled_from(_SYMBOLS), max_size=30),
)
def test_any_long_enough_shared_run_shares_a_fingerprint(
    shared: list[str], left: list[str], right: list[str], other: list[str]
) -> None:
    """The winnowing guarantee, through fingerprint(): W + K - 1 shared tokens, one shared hash."""
    first = " ".join(left + shared + right)
    second = " ".join(other + shared)
    assert _layer(first, "c") & _layer(second, "c")


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.text("abcdefgh 0123(){};=", min_size=1, max_size=12), min_size=8,
                      max_size=30))  # fmt: skip
def test_raw_layer_guarantee_over_lines(lines: list[str]) -> None:
    """W_RAW + K_RAW - 1 shared non-blank lines share a RAW fingerprint, however re-spaced."""
    normalised = ["".join(ch for ch in line if ch.isalnum()) for line in lines]
    assume(all(normalised))
    shared = lines[: W_RAW + K_RAW - 1]
    respaced = ["  " + line.replace(" ", "") + " ;" for line in shared]
    assert _layer("\n".join(lines), None, Layer.RAW) & _layer(
        "zzz top\n" + "\n".join(respaced) + "\nqqq end", None, Layer.RAW
    )


# -- what a fingerprint says -------------------------------------------------------------------


def _core_lines(spans: list[tuple[int, int]]) -> tuple[int, int]:
    """Reference: the lines of the block of a k-gram's items (first line, last line each)
    holding most of them, blocks being cut where more than three lines carry no item."""
    blocks: list[list[tuple[int, int]]] = [[spans[0]]]
    for span in spans[1:]:
        if span[0] - blocks[-1][-1][1] > 3:
            blocks.append([])
        blocks[-1].append(span)
    widest = max(blocks, key=len)  # the first of equals
    return widest[0][0], widest[-1][1]


def test_fingerprints_point_at_their_kgrams() -> None:
    path = Path(__file__).parent / "clones.py"
    text = path.read_text("utf-8")
    result = fingerprint(text, "python")
    masked = boilerplate_lines(text, "python")
    tokens = [t for t in tokenize(text, "python") if t.line not in masked]
    assert result.tokens == len(tokens)
    assert result.lines == text.count("\n")
    assert list(result.token_lines) == [t.line for t in tokens]
    values = [symbol_value(s) for s in abstract(tokens)]
    assert list(result.token_symbols) == values
    hashes = kgram_hashes(values, K_TOKENS)
    positions = [f.position for f in result.fingerprints if f.layer is Layer.TOKENS]
    assert positions == sorted(positions)
    assert positions == winnow(hashes, W_TOKENS)
    raw_lines = [
        n for n, line in enumerate(text.split("\n"), 1)
        if any(c.isalnum() for c in line.replace("_", "")) and n not in masked
    ]  # fmt: skip
    trimmed = 0
    for f in result.fingerprints:
        assert 0 <= f.hash < 2**63
        if f.layer is Layer.TOKENS:
            assert f.hash == hashes[f.position] < 2**61
            gram = tokens[f.position : f.position + K_TOKENS]
            # A docstring spans lines.
            spans = [(t.line, t.line + t.text.count("\n")) for t in gram]
        else:
            assert f.hash >= 2**62
            spans = [(n, n) for n in raw_lines[f.position : f.position + K_RAW]]
        assert (f.start_line, f.end_line) == _core_lines(spans)
        trimmed += (f.start_line, f.end_line) != (spans[0][0], spans[-1][1])
    assert trimmed  # the file has blocks of comments and blank lines that k-grams run across


def test_line_and_token_counts() -> None:
    assert fingerprint("", "python").lines == 0
    assert fingerprint("x = 1", "python").lines == 1
    assert fingerprint("x = 1\n", "python").lines == 1
    assert fingerprint("x = 1\n\ny = 2", "python").lines == 3
    assert fingerprint("import os\nx = 1\n", "python").tokens == 3


def test_boilerplate_yields_no_fingerprint() -> None:
    header = "# Copyright 2024 Example Corp.\n# SPDX-License-Identifier: MIT\n\n"
    imports = "".join(f"import module_{i}\nfrom package_{i} import name_{i}\n" for i in range(30))
    assert fingerprint(header + imports, "python").fingerprints == ()
    code = "def f(a, b):\n    total = a + b * 2\n    return total - a\n" * 3
    with_boilerplate = fingerprint(header + imports + code, "python")
    alone = fingerprint(code, "python")
    assert {f.hash for f in with_boilerplate.fingerprints} == {f.hash for f in alone.fingerprints}


def test_a_short_text_still_gets_a_fingerprint() -> None:
    text = "total = first + second * third - fourth;"  # 10 tokens < K_TOKENS
    assert not _layer(text, "c")
    assert len(_layer(text + " more = less;", "c")) == 1


# -- stable across processes and versions ------------------------------------------------------


def _summary(text: str) -> list[list[object]]:
    return [
        [f.hash, f.layer.value, f.start_line, f.end_line, f.position]
        for f in fingerprint(text, "python").fingerprints
    ]


def test_fingerprints_are_pinned() -> None:
    """The golden file pins the hashes: a change to them must bump FINGERPRINT_VERSION."""
    golden = json.loads((DATA / "fingerprints-sample.py.golden").read_text("utf-8"))
    text = (DATA / "sample.py").read_text("utf-8") * 3
    assert golden["version"] == FINGERPRINT_VERSION
    assert golden["fingerprints"] == _summary(text)


def test_fingerprints_are_the_same_in_another_process() -> None:
    text = (Path(__file__).parent / "clones.py").read_text("utf-8")
    script = (
        "import json, sys\n"
        "from custodes.fingerprint import fingerprint\n"
        "text = sys.stdin.read()\n"
        "print(json.dumps([[f.hash, f.layer.value, f.start_line, f.end_line, f.position]"
        " for f in fingerprint(text, 'python').fingerprints]))\n"
    )
    for seed in ("0", "12345"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        assert json.loads(done.stdout) == _summary(text)


# -- clones of real code keep their fingerprints; strangers share few ---------------------------

LANGUAGES = ["python", "javascript", "c"]


def _fragments(language: str, count: int, lines: int, seed: int) -> list[str]:
    files = corpus(language)
    assert files, f"no real {language} code found on this machine"
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        fragment = pick_fragment(rng.choice(files).read_text("utf-8"), lines, rng, language)
        if fragment is not None:
            out.append(fragment.text)
    return out


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("clone", [type1, type2], ids=["type1", "type2"])
def test_type1_and_type2_clones_keep_their_token_fingerprints(language: str, clone: object) -> None:
    rng = random.Random(f"{language}-{getattr(clone, '__name__', '')}")
    for text in _fragments(language, 25, 30, seed=1):
        original = _layer(text, language)
        copy = _layer(clone(text, language, rng), language)  # type: ignore[operator]
        assert original
        assert len(original & copy) >= 0.9 * len(original)


@pytest.mark.parametrize("language", LANGUAGES)
def test_type3_clones_keep_many_token_fingerprints(language: str) -> None:
    rng = random.Random(f"type3-{language}")
    kept = []
    for text in _fragments(language, 25, 30, seed=2):
        original = _layer(text, language)
        kept.append(len(original & _layer(type3(text, language, rng), language)) / len(original))
    # Editing 15% of the lines breaks the k-grams across each edit; the rest survive.
    assert statistics.mean(kept) >= 0.45
    assert sum(1 for k in kept if k == 0) <= 2  # a short fragment can lose all to its edits


@pytest.mark.parametrize("language", LANGUAGES)
def test_small_type3_fragments_are_still_found(language: str) -> None:
    """A 6-line fragment with Type-3 edits keeps several fingerprints of its source file."""
    files = corpus(language)
    rng = random.Random(f"small-{language}")
    shared = []
    while len(shared) < 40:
        text = rng.choice(files).read_text("utf-8")
        fragment = pick_fragment(text, 6, rng, language, min_tokens=45)
        if fragment is None:
            continue
        clone = type3(fragment.text, language, rng)
        shared.append(len(_layer(clone, language) & _layer(text, language)))
    assert statistics.median(shared) >= 4
    assert sum(1 for n in shared if n >= 2) >= 0.8 * len(shared)


@pytest.mark.parametrize("language", LANGUAGES)
def test_unrelated_real_files_share_few_fingerprints(language: str) -> None:
    """Files of different folders share few fingerprints once those common to many files (which
    a matcher drops: idioms, test scaffolding) are left out."""
    files = corpus(language)
    assert len(files) >= 160, f"too little real {language} code on this machine"
    rng = random.Random(f"unrelated-{language}")
    paths = rng.sample(files, 160)
    layers = [_layer(p.read_text("utf-8"), language) for p in paths]
    seen = Counter(h for layer in layers[60:] for h in layer)
    common = {h for h, files_with_it in seen.items() if files_with_it >= 5}
    overlaps = []
    for i in range(0, 60, 2):
        if paths[i].parent == paths[i + 1].parent:
            continue  # one package's files can share code (encodings/ share a template)
        a, b = layers[i] - common, layers[i + 1] - common
        if a and b:
            overlaps.append(len(a & b) / min(len(a), len(b)))
    assert len(overlaps) >= 20
    assert statistics.median(overlaps) <= 0.02
    assert max(overlaps) <= 0.25


# -- SCANOSS .wfp --------------------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _reference_wfp(data: bytes, path: str) -> str:
    """SCANOSS's published winnowing, byte by byte (scanoss.py's winnowing.py, 2021-2025)."""
    import hashlib

    out = f"file={hashlib.md5(data, usedforsecurity=False).hexdigest()},{len(data)},{path}\n"
    gram, window, line, last_hash, last_line, entry = "", [], 1, 2**32, 0, ""
    for byte in data:
        if byte == 10:
            line += 1
            continue
        if 48 <= byte <= 57 or 97 <= byte <= 122:
            char = chr(byte)
        elif 65 <= byte <= 90:
            char = chr(byte + 32)
        else:
            continue
        gram += char
        if len(gram) >= 30:
            window.append(_crc32c(gram.encode()))
            if len(window) >= 64:
                smallest = min(window)
                if smallest != last_hash:
                    crc = f"{_crc32c(smallest.to_bytes(4, 'little')):08x}"
                    if last_line != line:
                        if entry:
                            out += entry + "\n"
                        entry = f"{line}={crc}"
                    else:
                        entry += "," + crc
                    last_line, last_hash = line, smallest
                window.pop(0)
            gram = gram[1:]
    return out + (entry + "\n" if entry else "")


def test_reference_crc32c_is_crc32c() -> None:
    assert _crc32c(b"123456789") == 0xE3069283  # the standard check value


@pytest.mark.parametrize("name", ["wfp-ringbuffer.c", "wfp-crlf-accents.py"])
def test_wfp_matches_scanoss_golden_vector(name: str) -> None:
    """The golden .wfp files were written by SCANOSS's own client (scanoss.py 1.x,
    ``Winnowing(all_extensions=True).wfp_for_contents``), its ``fh2=`` line left out."""
    data = (DATA / name).read_bytes()
    expected = (DATA / f"{name}.wfp").read_text("utf-8")
    assert wfp(data.decode("utf-8"), f"src/{name}") == expected
    assert _reference_wfp(data, f"src/{name}") == expected


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("abcXYZ019 \n\t{}();=_é€")), max_size=700))
def test_wfp_matches_the_published_algorithm(text: str) -> None:
    assert wfp(text, "a/b.c") == _reference_wfp(text.encode("utf-8"), "a/b.c")


def test_wfp_header_keeps_one_line_per_file() -> None:
    block = wfp("x", "odd\nname.c")
    assert block.splitlines()[0] == "file=9dd4e461268c8034f5c8564e155c67a6,1,odd\\nname.c"
