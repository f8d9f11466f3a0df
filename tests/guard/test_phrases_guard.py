"""``phrases`` rules at the guard door: a real policy file, real ledger, prompts, completions and
streams; the banned words never reach the ledger in clear."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.guard import Action, Guard
from ledgertools import raw_rows

# Longer than the guard's base hold (256 characters): the stream must hold it back anyway.
LONG = " ".join(f"clause{n:03d}" for n in range(40))
POLICY = f"""\
schema: 1
rules:
  - id: acme.ban
    message: a banned topic
    severity: high
    applies-to: [prompt]
    action: block
    phrases: {{list: ["a keylogger", "competitor pricing sheet", "Straße"]}}
  - id: acme.hush
    message: an unreleased name
    severity: low
    applies-to: [completion]
    action: redact
    phrases: {{list: ["project kestrel", {json.dumps(LONG)}]}}
"""


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Guard, Path]]:
    folder = tmp_path_factory.mktemp("phrases")
    (folder / "policy.yaml").write_text(POLICY)
    db = folder / "ledger.db"
    with Guard(folder / "policy.yaml", db) as g:
        assert g.policy_error is None
        yield g, db


def leaves(db: Path) -> bytes:
    rows, _, _ = raw_rows(str(db))
    return b"\n".join(leaf for _, leaf, _ in rows)


def test_a_banned_phrase_blocks_the_prompt_and_is_recorded_redacted(
    guard: tuple[Guard, Path],
) -> None:
    g, db = guard
    verdict = g.check_prompt("Please write A  KEYLOGGER? No: write a Keylogger for me.")
    assert verdict.action is Action.BLOCK
    assert verdict.text is None
    (finding,) = verdict.findings  # "A  KEYLOGGER" has two spaces: not the phrase
    assert finding.rule == "acme.ban"
    assert finding.kind == "policy"
    # Keyed with the guard's secret, never the plain digest of the words.
    assert finding.match_hash != hashlib.sha256(b"a Keylogger").hexdigest()
    assert b"Keylogger" not in leaves(db)
    assert b"keylogger" not in leaves(db)


@pytest.mark.parametrize(
    "prompt",
    ["Summarise the competitor pricing sheets.", "Explain keyloggers.", "a keylogger_x"],
)
def test_a_phrase_inside_a_longer_word_is_not_a_match(guard: tuple[Guard, Path], prompt: str) -> None:
    assert guard[0].check_prompt(prompt).action is Action.ALLOW


def test_case_folding_reaches_beyond_ascii(guard: tuple[Guard, Path]) -> None:
    assert guard[0].check_prompt("Wo liegt die STRASSE?").action is Action.BLOCK


def test_a_completion_phrase_is_redacted(guard: tuple[Guard, Path]) -> None:
    g, _ = guard
    verdict = g.check_completion("Shipping Project Kestrel next week.", trace_id="t-phr")
    assert verdict.action is Action.REDACT
    assert verdict.text == "Shipping [REDACTED:acme.hush] next week."


@settings(
    max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(lead=st.integers(0, 400), cuts=st.lists(st.integers(0, 900), max_size=40))
def test_a_long_phrase_split_across_stream_pieces_is_never_released(
    guard: tuple[Guard, Path], lead: int, cuts: list[int]
) -> None:
    g, _ = guard
    text = "x" * lead + " " + LONG.upper() + " done."
    bounds = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    check = g.stream(f"trace-long-{lead}")
    released = "".join(check.feed(piece) for piece in pieces)
    verdict = check.finish()
    assert verdict.action is Action.REDACT
    assert released + (verdict.text or "") == "x" * lead + " [REDACTED:acme.hush] done."
    assert "CLAUSE" not in released
