"""Streams: an output validated as it flows, whatever pieces it arrives in.

The reference for each case is the text the test wrote: what is released, joined, must be that
text (redacted where the test planted something), and a planted credential must never appear in
what was released, not even in part.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.guard import Action, Caller, Guard, GuardViolation
from ledgertools import raw_rows

B32 = string.ascii_uppercase + "234567"
FILLER = "The rollout finished and every health check passed on the first try. "


def aws_key(seed: int) -> str:
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


def chunked(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def run(check: object, pieces: list[str]) -> tuple[list[str], BaseException | None]:
    released: list[str] = []
    try:
        for piece in pieces:
            released.append(check.feed(piece))  # type: ignore[attr-defined]
    except GuardViolation as exc:
        return released, exc
    return released, None


def fragments(value: str, size: int = 6) -> list[str]:
    return [value[i : i + size] for i in range(len(value) - size + 1)]


@pytest.fixture(scope="module")
def redacting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guard]:
    with Guard("enterprise", tmp_path_factory.mktemp("stream") / "ledger.db") as guard:
        yield guard


@pytest.fixture(scope="module")
def blocking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guard]:
    folder = tmp_path_factory.mktemp("stream-block")
    policy = folder / "block.yaml"
    policy.write_text(
        "rules:\n  - id: acme.no-secrets-out\n    message: no credential leaves\n"
        "    applies-to: [completion]\n    action: block\n    secrets: {}\n"
    )
    with Guard(policy, folder / "ledger.db") as guard:
        yield guard


_cuts = st.lists(st.integers(0, 5000), max_size=80)
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                     HealthCheck.function_scoped_fixture])  # fmt: skip


@_settings
@given(seed=st.integers(0, 10**6), lead=st.integers(0, 12), cuts=_cuts, tiny=st.booleans())
def test_a_secret_split_across_pieces_is_never_released(
    redacting: Guard, seed: int, lead: int, cuts: list[int], tiny: bool
) -> None:
    key = aws_key(seed)
    text = FILLER * lead + f"Use AWS_ACCESS_KEY_ID={key} for the job.\n" + FILLER * 3
    pieces = [text[i : i + 1] for i in range(len(text))] if tiny else chunked(text, cuts)
    check = redacting.stream(f"trace-{seed}")
    released, error = run(check, pieces)
    assert error is None
    verdict = check.finish()
    assert verdict.action is Action.REDACT
    assert verdict.text is not None
    whole = "".join(released) + verdict.text
    assert whole == text.replace(key, "[REDACTED:secret.aws-access-key-id]")
    streamed = "".join(released)
    assert not any(piece in streamed for piece in fragments(key))
    assert check.released == whole


@_settings
@given(seed=st.integers(0, 10**6), lead=st.integers(0, 12), cuts=_cuts)
def test_a_blocking_rule_stops_the_stream_before_any_of_the_secret(
    blocking: Guard, seed: int, lead: int, cuts: list[int]
) -> None:
    key = aws_key(seed)
    text = FILLER * lead + f"key: {key}\n" + FILLER * 3
    check = blocking.stream(f"trace-b-{seed}")
    released, error = run(check, chunked(text, cuts))
    if error is None:  # the key completed only in the last piece: finish() judges it
        verdict = check.finish()
    else:
        assert isinstance(error, GuardViolation)
        verdict = error.verdict
        with pytest.raises(GuardViolation):
            check.feed("more")
        assert check.finish() == verdict  # recorded once, answered the same
    assert verdict.action is Action.BLOCK
    assert verdict.text is None
    streamed = "".join(released)
    assert not any(piece in streamed for piece in fragments(key))
    assert text.startswith(streamed)


@_settings
@given(text=st.text(st.sampled_from(list("abc defgh.,\n")), max_size=1500), cuts=_cuts)
def test_clean_text_is_released_in_full_and_in_order(
    redacting: Guard, text: str, cuts: list[int]
) -> None:
    check = redacting.stream("trace-clean")
    released, error = run(check, chunked(text, cuts))
    assert error is None
    verdict = check.finish()
    assert verdict.action is Action.ALLOW
    assert "".join(released) + (verdict.text or "") == text


def test_a_long_clean_stream_flows_before_it_ends(redacting: Guard) -> None:
    text = FILLER * 40
    check = redacting.stream("trace-flow")
    released, _ = run(check, chunked(text, list(range(0, len(text), 7))))
    assert len("".join(released)) >= len(text) - 1100  # held back at most the longest rule
    assert "".join(released) + (check.finish().text or "") == text


def test_a_finished_stream_is_recorded_once_as_one_validation_step(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Guard("enterprise", db) as guard:
        admitted = guard.check_prompt("hi")
        check = guard.stream(admitted.trace_id, model="m1")
        for piece in chunked(FILLER * 5 + "write to jane.roe@acme-corp.de", [3, 50, 51, 300]):
            check.feed(piece)
        verdict = check.finish()
        assert check.finish() is verdict
    rows, _, _ = raw_rows(str(db))
    recorded = [json.loads(leaf) for _, leaf, _ in rows]
    assert [e["step"] for e in recorded] == ["admission", "validation"]
    assert recorded[1]["action"] == "redact"
    assert recorded[1]["trace_id"] == admitted.trace_id
    assert verdict.ledger_index == 1
    assert b"jane.roe" not in b"".join(leaf for _, leaf, _ in rows)


def test_an_output_held_for_review_is_not_released_at_all(tmp_path: Path) -> None:
    with Guard("enterprise", tmp_path / "ledger.db") as guard:
        check = guard.stream("trace-hr", caller=Caller(purpose="employment"))
        released, error = run(check, chunked(FILLER * 20, list(range(0, 2000, 13))))
        verdict = check.finish()
    assert error is None
    assert "".join(released) == ""
    assert verdict.action is Action.REVIEW
    assert verdict.text is None
    assert verdict.review_id is not None


def test_without_a_policy_nothing_is_released_unchecked(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [")
    with Guard(broken, tmp_path / "ledger.db") as guard:
        check = guard.stream("trace-nopolicy")
        assert check.feed(FILLER * 10) == ""
        verdict = check.finish()
    assert verdict.action is Action.BLOCK
    assert verdict.http_status == 503


def test_a_rejected_token_in_a_stream_is_recorded_once(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Guard("enterprise", db, token_verifiers=[]) as guard:
        check = guard.stream("trace-token", token="not.a.token")
        for piece in chunked(FILLER * 10, list(range(0, 700, 9))):
            check.feed(piece)
        assert check.finish().action is Action.ALLOW
    rows, _, _ = raw_rows(str(db))
    recorded = [json.loads(leaf) for _, leaf, _ in rows]
    assert [(e["step"], e.get("accepted")) for e in recorded] == [
        ("token", False),
        ("validation", None),
    ]


def test_copied_code_in_a_stream_is_held_until_its_block_closes(
    tmp_path: Path, custodes_cli: object
) -> None:
    from guard.test_pipeline import LEAKED

    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "agent.py").write_text(LEAKED)
    index = tmp_path / "index.db"
    made = custodes_cli("index", "add", leak, "--collection", "leak", "--index", index)  # type: ignore[operator]
    assert made.returncode == 0, made.stderr
    text = FILLER * 8 + "Here is the scheduler:\n```python\n" + LEAKED + "```\n" + FILLER
    with Guard("enterprise", tmp_path / "ledger.db", index=index) as guard:
        check = guard.stream("trace-code")
        released, error = run(check, chunked(text, list(range(0, len(text), 5))))
    assert isinstance(error, GuardViolation)
    assert error.verdict.rules == ("enterprise.guard-provenance-deny",)
    streamed = "".join(released)
    assert streamed.startswith(FILLER)  # the prose before the block flowed
    assert "def schedule_agent_turn" not in streamed
    assert "```" not in streamed
