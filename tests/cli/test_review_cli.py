"""`custodes review …` through the console script, on queues the real Guard filled.

The guard holds generated authentication code (the enterprise pack's
``enterprise.generated-auth-code``, ``action: review``); a reviewer lists, reads and decides it
with the CLI; the decision must be in the ledger (checked with `custodes ledger entry` and
`custodes ledger verify`) and reach a caller waiting on it. The held output's clear text must
appear in no output and no ledger entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.guard import Action, Caller, Guard, ReviewQueue, Verdict
from custodes.guard.review import REASON_PREVIEW, redact_reason
from custodes.ledger import Ledger
from custodes.policy.controls import CONTROLS
from ledgertools import CUSTODES, cli_env, raw_rows, run_cli

AUTH_CODE = "def check_password(user, password):\n    return bcrypt.checkpw(password, user.hash)\n"
# Pieces of the held output that must never be shown or recorded.
CLEAR = ("check_password", "bcrypt.checkpw", "user.hash", "def check_")
RULE = "enterprise.generated-auth-code"
HELD_BECAUSE = "generated code touches authentication or authorisation"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LEDGER = Path(".custodes") / "ledger.db"
QUEUE = Path(".custodes") / "ledger.review.db"
FAKE_KEY = "AKIAZ7VRSQ5MPLVWQ3XY"  # format-valid, not a real key


def hold(tmp_path: Path, trace_id: str, **guard_args: Any) -> Verdict:
    """Let the real guard hold AUTH_CODE in the default queue beside the default ledger."""
    with Guard("enterprise", tmp_path / LEDGER, **guard_args) as guard:
        verdict = guard.check_completion(AUTH_CODE, trace_id=trace_id)
    assert verdict.action is Action.REVIEW
    assert verdict.review_id is not None
    return verdict


def entries(db: str | Path) -> list[dict[str, Any]]:
    rows, _, _ = raw_rows(str(db))
    return [json.loads(leaf) for _, leaf, _ in rows]


def leaves(db: str | Path) -> str:
    rows, _, _ = raw_rows(str(db))
    return "\n".join(leaf.decode() for _, leaf, _ in rows)


def assert_no_clear_text(*texts: str) -> None:
    for text in texts:
        for piece in CLEAR:
            assert piece not in text, piece


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, cwd=tmp_path)
    assert "Traceback" not in done.stderr
    return done


def ledger_read(tmp_path: Path, index: int, db: str | None = None) -> dict[str, Any]:
    """`custodes ledger entry --json`: the entry, its leaf bytes and leaf hash."""
    done = cli(tmp_path, "ledger", "entry", "--db", db or str(LEDGER), "--index", str(index),
               "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    read: dict[str, Any] = json.loads(done.stdout)
    leaf = base64.b64decode(read["leaf"])
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == read["leaf_hash"]  # RFC 9162 leaf
    assert json.loads(leaf) == read["entry"]
    return read


def ledger_entry(tmp_path: Path, index: int, db: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = ledger_read(tmp_path, index, db)["entry"]
    return entry


# -- help ----------------------------------------------------------------------------------------


def test_help_teaches(tmp_path: Path) -> None:
    assert "review" in cli(tmp_path, "--help").stdout
    group = cli(tmp_path, "review", "--help")
    assert group.returncode == 0
    for command in ("list", "show", "approve", "reject"):
        assert command in group.stdout
        done = cli(tmp_path, "review", command, "--help")
        assert done.returncode == 0
        assert "Example:" in done.stdout, command
        assert "Exit codes" in done.stdout, command
    approve = cli(tmp_path, "review", "approve", "--help").stdout
    for words in ("--reviewer", "--reason", "--ledger", "--review", "eu-ai-act:art14"):
        assert words in approve, words


# -- list and show -------------------------------------------------------------------------------


def test_list_and_show_a_held_output_by_default_paths(tmp_path: Path) -> None:
    verdict = hold(tmp_path, "trace-list-1")
    assert (tmp_path / QUEUE).is_file()  # where the guard keeps it: beside the ledger
    done = cli(tmp_path, "review", "list")
    assert done.returncode == 0, done.stderr
    assert verdict.review_id in done.stdout
    for words in ("trace-list-1", RULE, HELD_BECAUSE, "pending", "age "):
        assert words in done.stdout, words
    listed = cli(tmp_path, "review", "list", "--json")
    assert listed.returncode == 0
    page = json.loads(listed.stdout)
    assert page["more"] is False
    (item,) = page["items"]
    assert item["id"] == verdict.review_id
    assert item["trace_id"] == "trace-list-1"
    assert item["state"] == "pending"
    assert item["rules"] == [RULE]
    assert item["reason"].startswith(HELD_BECAUSE)
    assert item["output_sha256"] == hashlib.sha256(AUTH_CODE.encode()).hexdigest()
    assert item["preview"] == f"[held output: {len(AUTH_CODE.encode())} bytes]"
    assert 0 <= item["age_s"] < 24 * 3600
    shown = cli(tmp_path, "review", "show", verdict.review_id)
    assert shown.returncode == 0
    assert f"id:            {verdict.review_id}" in shown.stdout
    assert "state:         pending" in shown.stdout
    as_json = json.loads(cli(tmp_path, "review", "show", verdict.review_id, "--json").stdout)
    assert as_json["id"] == verdict.review_id
    assert as_json["decided_at"] is None
    # Nothing else is pending under the other states.
    for state in ("approved", "rejected", "expired"):
        other = json.loads(cli(tmp_path, "review", "list", "--state", state, "--json").stdout)
        assert other["items"] == [], state
    assert_no_clear_text(done.stdout, listed.stdout, shown.stdout, done.stderr)


def test_limit_says_more_remain(tmp_path: Path) -> None:
    first = hold(tmp_path, "trace-lim-1")
    hold(tmp_path, "trace-lim-2")
    done = cli(tmp_path, "review", "list", "--limit", "1", "--json")
    assert done.returncode == 0
    page = json.loads(done.stdout)
    assert [i["id"] for i in page["items"]] == [first.review_id]  # oldest first
    assert page["more"] is True
    assert "--limit" in done.stderr
    everything = json.loads(cli(tmp_path, "review", "list", "--state", "all", "--json").stdout)
    assert [i["trace_id"] for i in everything["items"]] == ["trace-lim-1", "trace-lim-2"]


def test_the_ledger_env_var_locates_the_queue(tmp_path: Path) -> None:
    elsewhere = tmp_path / "audit" / "guard.db"
    with Guard("enterprise", elsewhere) as guard:
        verdict = guard.check_completion(AUTH_CODE, trace_id="trace-env")
    assert (tmp_path / "audit" / "guard.review.db").is_file()
    env = {**cli_env(), "CUSTODES_LEDGER": str(elsewhere)}
    done = subprocess.run([str(CUSTODES), "review", "list", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [i["id"] for i in json.loads(done.stdout)["items"]] == [verdict.review_id]


# -- deciding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_is_recorded_and_reaches_the_waiting_caller(
    tmp_path: Path, decision: str
) -> None:
    answers: list[Verdict] = []
    queue_url: list[str] = []
    ready = threading.Event()

    def caller() -> None:
        with Guard("enterprise", tmp_path / LEDGER, review_timeout=60) as guard:
            assert guard.review_queue is not None
            queue_url.append(guard.review_queue.url)
            ready.set()
            answers.append(guard.check_completion(AUTH_CODE, trace_id="trace-wait"))

    waiting = threading.Thread(target=caller)
    waiting.start()
    try:
        assert ready.wait(60)
        with ReviewQueue.open(queue_url[0]) as queue:
            deadline = time.monotonic() + 60
            while not (page := queue.list(state="pending")).items:
                assert time.monotonic() < deadline, "the guard never held the output"
                time.sleep(0.02)
        review_id = page.items[0].id
        # The reviewer quotes the held output: no ledger entry may keep the quotation.
        reason = 'checked "return bcrypt.checkpw(password, user.hash)"; the vetted library'
        done = cli(tmp_path, "review", decision, review_id, "--reviewer", "alice",
                   "--reason", reason)  # fmt: skip
    finally:
        waiting.join(90)
    assert done.returncode == 0, done.stderr
    state = "approved" if decision == "approve" else "rejected"
    assert f"{state} review item {review_id} (trace trace-wait) as alice" in done.stdout
    assert "at index 1" in done.stdout
    # The waiting caller got the decision.
    (answer,) = answers
    assert answer.review_id == review_id
    if decision == "approve":
        assert answer.action is Action.ALLOW
        assert answer.text == AUTH_CODE
    else:
        assert answer.action is Action.BLOCK
        assert answer.text is None
    # The ledger: the held step, the reviewer's decision, then the guard's release to the caller.
    recorded = entries(tmp_path / LEDGER)
    assert [e["step"] for e in recorded] == ["validation", "review", "review"]
    assert recorded[0]["review_id"] == review_id
    entry = ledger_entry(tmp_path, 1)
    assert entry["door"] == "guard"
    assert entry["kind"] == "step"
    assert entry["step"] == "review"
    assert entry["trace_id"] == "trace-wait"
    assert entry["review_id"] == review_id
    assert entry["decision"] == decision
    assert entry["state"] == state
    assert entry["reviewer"] == "alice"
    assert entry["controls"] == ["eu-ai-act:art14"]
    assert CONTROLS["eu-ai-act:art14"] == "Human oversight"
    assert entry["rules"] == [RULE]
    assert "bcrypt.checkpw" not in entry["decision_reason"]
    assert entry["decision_reason"].endswith("; the vetted library")
    # The guard's own entry, made when it hands the decision to the caller, redacts it alike
    # and names the output only through the held step's salted digest.
    assert recorded[2]["state"] == state
    assert recorded[2]["decision_reason"] == entry["decision_reason"]
    assert "output_sha256" not in recorded[2]
    assert "bcrypt.checkpw" not in leaves(tmp_path / LEDGER)
    verify = cli(tmp_path, "ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "3 entries verified" in verify.stdout
    assert_no_clear_text(done.stdout, done.stderr, leaves(tmp_path / LEDGER))
    # `custodes explain` finds the decision from the held step's explanation id.
    explained = cli(tmp_path, "explain", recorded[0]["explanation_id"], "--json")
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["review"]["reviewer"] == "alice"


def test_a_reason_is_recorded_as_a_salted_digest_and_a_redacted_preview(tmp_path: Path) -> None:
    verdict = hold(tmp_path, "trace-reason")
    assert verdict.review_id is not None
    quoted = "return bcrypt.checkpw(password, user.hash)"
    reason = f'the line "{quoted}" is fine; the fixture key {FAKE_KEY} is fake'
    done = cli(tmp_path, "review", "approve", verdict.review_id, "--reviewer", "bob",
               "--reason", reason, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["review_id"] == verdict.review_id
    assert answer["state"] == "approved"
    assert answer["controls"] == ["eu-ai-act:art14"]
    index = answer["ledger"]["index"]
    read = ledger_read(tmp_path, index)
    assert answer["ledger"]["leaf_hash"] == read["leaf_hash"]
    entry = read["entry"]
    preview = entry["decision_reason"]
    assert preview == answer["decision_reason"]
    assert preview.startswith("the line ")
    assert preview.endswith(" is fake")
    assert "[REDACTED:quote]" in preview
    assert "[REDACTED:secret]" in preview
    # The full reason is bound by a salted digest whose salt lives outside the tree.
    with sqlite3.connect(tmp_path / LEDGER) as conn:
        ((salt,),) = conn.execute(
            "SELECT salt FROM payloads WHERE idx = ? AND name = 'reason'", (index,)
        ).fetchall()
    assert len(salt) == 32
    expected = "sha256:" + hashlib.sha256(bytes(salt) + reason.encode()).hexdigest()
    assert entry["digests"] == {"reason": expected}
    assert hashlib.sha256(reason.encode()).hexdigest() not in leaves(tmp_path / LEDGER)
    shown = cli(tmp_path, "review", "show", verdict.review_id)
    assert "reason:        the line [REDACTED:quote]" in shown.stdout
    everything = (done.stdout, done.stderr, shown.stdout, leaves(tmp_path / LEDGER))
    for text in everything:
        assert quoted not in text
        assert FAKE_KEY not in text
    assert_no_clear_text(*everything)
    assert cli(tmp_path, "ledger", "verify").returncode == 0


@pytest.mark.postgres
def test_postgres_ledger_keeps_the_queue_in_the_same_database(tmp_path: Path, pg_url: str) -> None:
    Ledger.create(pg_url, key=tmp_path / "ledger.key").close()
    with Guard("enterprise", pg_url) as guard:
        verdict = guard.check_completion(AUTH_CODE, trace_id="trace-pg")
    assert verdict.review_id is not None
    listed = cli(tmp_path, "review", "list", "--ledger", pg_url, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["id"] for i in json.loads(listed.stdout)["items"]] == [verdict.review_id]
    done = cli(tmp_path, "review", "reject", verdict.review_id, "--ledger", pg_url,
               "--reviewer", "carol", "--reason", "not on the approved list")  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry = ledger_entry(tmp_path, 1, pg_url)
    assert (entry["decision"], entry["reviewer"]) == ("reject", "carol")
    assert cli(tmp_path, "ledger", "verify", "--db", pg_url).returncode == 0
    assert_no_clear_text(listed.stdout, done.stdout, leaves(pg_url))


# -- errors --------------------------------------------------------------------------------------


def test_deciding_twice_is_refused_and_records_nothing(tmp_path: Path) -> None:
    verdict = hold(tmp_path, "trace-twice")
    assert verdict.review_id is not None
    first = cli(tmp_path, "review", "reject", verdict.review_id, "--reviewer", "alice",
                "--reason", "no")  # fmt: skip
    assert first.returncode == 0, first.stderr
    for command in ("approve", "reject"):
        again = cli(tmp_path, "review", command, verdict.review_id, "--reviewer", "bob",
                    "--reason", "yes")  # fmt: skip
        assert again.returncode == 2
        assert f"review item {verdict.review_id} was already rejected by alice" in again.stderr
        assert "custodes review show" in again.stderr
    assert [e["step"] for e in entries(tmp_path / LEDGER)] == ["validation", "review"]
    assert cli(tmp_path, "ledger", "verify").returncode == 0


def test_an_expired_item_cannot_be_decided(tmp_path: Path) -> None:
    db = tmp_path / LEDGER
    db.parent.mkdir()
    # Held two hours ago with a one-hour review window: expired by now.
    past = ReviewQueue.open(tmp_path / QUEUE, review_window=3600, clock=lambda: time.time() - 7200)
    with past, Guard("enterprise", db, review=past) as guard:
        verdict = guard.check_completion(AUTH_CODE, trace_id="trace-expired")
    assert verdict.review_id is not None
    expired = json.loads(cli(tmp_path, "review", "list", "--state", "expired", "--json").stdout)
    assert [i["id"] for i in expired["items"]] == [verdict.review_id]
    assert json.loads(cli(tmp_path, "review", "list", "--json").stdout)["items"] == []
    done = cli(tmp_path, "review", "approve", verdict.review_id, "--reviewer", "alice",
               "--reason", "late")  # fmt: skip
    assert done.returncode == 2
    assert "expired" in done.stderr
    assert "without a decision" in done.stderr
    assert [e["step"] for e in entries(db)] == ["validation"]


def test_bad_input_exits_2_and_decides_nothing(tmp_path: Path) -> None:
    verdict = hold(tmp_path, "trace-bad")
    item = str(verdict.review_id)
    unknown = str(uuid.uuid4())
    cases = [
        (["review", "approve", unknown, "--reviewer", "a", "--reason", "r"], f"no review item {unknown}"),
        (["review", "show", unknown], f"no review item {unknown}"),
        (["review", "show", "not-an-id"], "is not a review item id"),
        (["review", "approve", item, "--reviewer", "a", "--reason", ""], "reason is empty"),
        (["review", "approve", item, "--reviewer", " ", "--reason", "ok"], "reviewer is empty"),
        (["review", "approve", item, "--reviewer", "a"], "--reason"),
        (["review", "reject", item, "--reason", "r"], "--reviewer"),
        (["review", "list", "--state", "maybe"], "--state"),
        (["review", "list", "--limit", "0"], "--limit"),
        (["review", "list", "--review", "nowhere.db"], "no review queue at nowhere.db"),
        (["review", "list", "--ledger", "other/ledger.db"], "other/ledger.review.db"),
        (["review", "approve", item, "--reviewer", "a", "--reason", "r", "--ledger", "x.db",
          "--review", str(QUEUE)], "no ledger at x.db"),
    ]  # fmt: skip
    for args, says in cases:
        done = cli(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
        assert done.stdout == "", args
    assert not (tmp_path / "nowhere.db").exists()  # a mistyped queue is not created
    assert not (tmp_path / "x.db").exists()
    shown = json.loads(cli(tmp_path, "review", "show", item, "--json").stdout)
    assert shown["state"] == "pending"
    assert [e["step"] for e in entries(tmp_path / LEDGER)] == ["validation"]


def test_no_decision_without_a_ledger_that_can_sign(tmp_path: Path) -> None:
    verdict = hold(tmp_path, "trace-nokey")
    item = str(verdict.review_id)
    key = tmp_path / ".custodes" / "ledger.db.key"
    key.rename(tmp_path / "moved.key")
    done = cli(tmp_path, "review", "approve", item, "--reviewer", "alice", "--reason", "fine")
    assert done.returncode == 2
    assert "key" in done.stderr
    shown = json.loads(cli(tmp_path, "review", "show", item, "--json").stdout)
    assert shown["state"] == "pending"  # the evidence could not be written: nothing decided
    # The key given explicitly: decided and recorded.
    done = cli(tmp_path, "review", "approve", item, "--reviewer", "alice", "--reason", "fine",
               "--key", "moved.key")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [e["step"] for e in entries(tmp_path / LEDGER)] == ["validation", "review"]


def test_a_high_risk_purpose_is_held_and_rejected(tmp_path: Path) -> None:
    """The other review rule: any answer about a person for a high-risk purpose is held."""
    text = "Candidate B fits the role best."
    with Guard("enterprise", tmp_path / LEDGER) as guard:
        verdict = guard.check_completion(
            text, trace_id="trace-hr", caller=Caller(id="hr-bot", purpose="employment")
        )
    assert verdict.review_id is not None
    done = cli(tmp_path, "review", "reject", verdict.review_id, "--reviewer", "dana",
               "--reason", "a person decides hiring", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "rejected"
    assert "fits the role" not in leaves(tmp_path / LEDGER)
    assert "fits the role" not in done.stdout


# -- the reason's preview ------------------------------------------------------------------------

WORDS = ["the", "code", "is", "fine", "uses", "vetted", "library", "approved", "by", "team",
         "no", "risk", "found", "after", "reading", "it", "hashing", "ok"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=20))
def test_a_plain_reason_is_kept_as_written(words: list[str]) -> None:
    reason = " ".join(words)
    expected = reason if len(reason) <= REASON_PREVIEW else None
    shown = redact_reason(reason)
    if expected is not None:
        assert shown == expected
    else:
        assert len(shown) == REASON_PREVIEW
        assert shown.endswith("…")
        assert reason.startswith(shown[:-1].rstrip())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS), max_size=8),
    st.lists(st.sampled_from(WORDS), max_size=8),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz(),._ =", min_size=13, max_size=60),
    st.sampled_from(['"{}"', "`{}`", "“{}”", "'{}'", "«{}»"]),
)
def test_a_quotation_never_survives(
    before: list[str], after: list[str], quote: str, marks: str
) -> None:
    reason = " ".join([*before, marks.format(quote), *after])
    shown = redact_reason(reason)
    assert len(shown) <= REASON_PREVIEW
    assert shown.count(quote) <= " ".join([*before, *after]).count(quote)
    if len(reason) <= REASON_PREVIEW:
        assert "[REDACTED:quote]" in shown
        assert shown.startswith(" ".join(before))


@pytest.mark.parametrize(
    "secret",
    [FAKE_KEY, "jane.roe@acme-corp.de", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"],
)  # fmt: skip
def test_credentials_and_personal_data_are_redacted(secret: str) -> None:
    shown = redact_reason(f"approved although it mentions {secret} in a comment")
    assert secret not in shown
    assert shown.startswith("approved although it mentions [REDACTED:")
    assert shown.endswith(" in a comment")
