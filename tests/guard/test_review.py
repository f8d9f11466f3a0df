"""The human review queue on real SQLite and PostgreSQL, with deciders and waiters in other processes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.errors import UsageError
from custodes.guard import (
    AlreadyDecided,
    ItemExpired,
    ReviewItem,
    ReviewItemNotFound,
    ReviewOutcome,
    ReviewQueue,
    ReviewState,
    ReviewStoreError,
    ReviewTimeout,
)

SECRET_OUTPUT = "Customer 4111 1111 1111 1111, born 1970-01-01, owes EUR 1,234.56 to ACME-7731"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def queue(queue_url: str) -> Iterator[ReviewQueue]:
    with ReviewQueue.open(queue_url) as q:
        yield q


def hold(queue: ReviewQueue, n: int = 0, **kwargs: Any) -> ReviewItem:
    kwargs.setdefault("trace_id", f"trace-{n}")
    kwargs.setdefault("rules", ["pii.card-number"])
    kwargs.setdefault("reason", "a card number in the completion")
    kwargs.setdefault("output", f"{SECRET_OUTPUT} #{n}")
    return queue.submit(**kwargs)


def raw_text(url: str) -> bytes:
    """Every byte the queue stored, read behind custodes' back."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT * FROM custodes_review_items").fetchall()
        return repr(rows).encode()
    return b"".join(p.read_bytes() for p in Path(url).parent.glob(Path(url).name + "*"))


# -- submit and get -------------------------------------------------------------------------------


def test_submit_holds_a_digest_and_a_redacted_preview_never_the_output(queue_url: str) -> None:
    clock = Clock()
    with ReviewQueue.open(queue_url, review_window=3600, clock=clock) as queue:
        item = queue.submit(
            trace_id="trace-42",
            rules=["pii.card-number", "pii.birth-date", "pii.card-number"],
            reason="card number and birth date in the completion",
            output=SECRET_OUTPUT,
            preview="Cust… 4111…1111, born …",
            payload_ref="payloads/trace-42/completion",
        )
        assert uuid.UUID(item.id).version == 4
        assert item.trace_id == "trace-42"
        assert item.rules == ("pii.card-number", "pii.birth-date")
        assert item.output_sha256 == hashlib.sha256(SECRET_OUTPUT.encode()).hexdigest()
        assert item.preview == "Cust… 4111…1111, born …"
        assert item.payload_ref == "payloads/trace-42/completion"
        assert item.state is ReviewState.PENDING
        assert not item.decided
        assert item.created_at == datetime.fromtimestamp(clock.now, UTC)
        assert item.expires_at == datetime.fromtimestamp(clock.now + 3600, UTC)
        assert (item.reviewer, item.decision_reason, item.decided_at) == (None, None, None)
        assert queue.get(item.id) == item
        assert queue.get(item.id.upper()) == item
    stored = raw_text(queue_url)
    assert item.id.encode() in stored  # the read-back works: the check below can fail
    for fragment in ("4111 1111 1111 1111", "1970-01-01", "ACME-7731", "1,234.56"):
        assert fragment.encode() not in stored


def test_default_preview_says_only_the_size(queue: ReviewQueue) -> None:
    item = hold(queue, output="x" * 321)
    assert item.preview == "[held output: 321 bytes]"
    digest = hashlib.sha256(b"anything").hexdigest()
    by_digest = queue.submit(trace_id="t", rules=["r"], reason="why", output_sha256=digest.upper())
    assert by_digest.output_sha256 == digest
    assert by_digest.preview == "[held output]"


def test_a_preview_in_clear_is_refused(queue: ReviewQueue) -> None:
    with pytest.raises(UsageError, match="in clear"):
        hold(queue, preview="Customer 4111 1111 1111 1111")
    with pytest.raises(UsageError, match="at most"):
        hold(queue, preview="x" * 201)
    assert queue.list().items == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_id": ""}, "trace id is empty"),
        ({"reason": "  "}, "reason is empty"),
        ({"rules": []}, "rule ids"),
        ({"rules": ["no spaces allowed"]}, "rule ids"),
        ({"output_sha256": "ab" * 32}, "not both"),
        ({"output": None}, "not both or neither"),
        ({"output": None, "output_sha256": "xyz"}, "64 hexadecimal"),
        ({"payload_ref": ""}, "payload reference is empty"),
        ({"reason": "line\nbreak"}, "control characters"),
    ],
)
def test_submit_refuses_bad_input(
    queue: ReviewQueue, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        hold(queue, **kwargs)


def test_unknown_and_malformed_ids(queue: ReviewQueue) -> None:
    hold(queue)
    missing = str(uuid.uuid4())
    with pytest.raises(ReviewItemNotFound, match=missing):
        queue.get(missing)
    with pytest.raises(ReviewItemNotFound, match="not a review item id"):
        queue.get("42; DROP TABLE custodes_review_items")
    with pytest.raises(ReviewItemNotFound):
        queue.decide(missing, "approve", reviewer="alice", reason="fine")
    assert isinstance(ReviewItemNotFound("x"), UsageError)


# -- decisions ----------------------------------------------------------------------------------


def test_approve_and_reject_record_who_why_and_when(queue_url: str) -> None:
    clock = Clock()
    with ReviewQueue.open(queue_url, clock=clock) as queue:
        first, second = hold(queue, 1), hold(queue, 2)
        clock.now += 30
        approved = queue.decide(first.id, ReviewOutcome.APPROVE, reviewer="alice", reason="test data")
        rejected = queue.decide(second.id, "reject", reviewer="bob", reason="real customer")
        assert approved.state is ReviewState.APPROVED
        assert (approved.reviewer, approved.decision_reason) == ("alice", "test data")
        assert approved.decided_at == datetime.fromtimestamp(clock.now, UTC)
        assert rejected.state is ReviewState.REJECTED
        assert (rejected.reviewer, rejected.decision_reason) == ("bob", "real customer")
        assert queue.get(first.id) == approved
        assert approved.to_record() == {
            "door": "guard",
            "event": "review",
            "review_id": first.id,
            "trace_id": "trace-1",
            "rules": ["pii.card-number"],
            "reason": "a card number in the completion",
            "output_sha256": hashlib.sha256(f"{SECRET_OUTPUT} #1".encode()).hexdigest(),
            "state": "approved",
            "created_at": "2027-01-15T08:00:00.000000Z",
            "reviewer": "alice",
            "decision_reason": "test data",
            "decided_at": "2027-01-15T08:00:30.000000Z",
        }
        json.dumps(approved.to_record())  # a ledger entry must be plain JSON


def test_deciding_twice_is_an_error_and_keeps_the_first_decision(queue: ReviewQueue) -> None:
    item = hold(queue)
    first = queue.decide(item.id, "approve", reviewer="alice", reason="ok")
    for verdict in ("approve", "reject"):
        with pytest.raises(AlreadyDecided, match="already approved by alice") as info:
            queue.decide(item.id, verdict, reviewer="bob", reason="no")
        assert info.value.item == first
    assert queue.get(item.id) == first


@pytest.mark.parametrize(
    ("verdict", "reviewer", "reason", "message"),
    [
        ("approve", "alice", "", "decision reason is empty"),
        ("approve", "alice", "   ", "decision reason is empty"),
        ("approve", "", "fine", "reviewer is empty"),
        ("approved", "alice", "fine", "not a verdict"),
        ("maybe", "alice", "fine", "not a verdict"),
    ],
)
def test_decide_refuses_bad_input(
    queue: ReviewQueue, verdict: str, reviewer: str, reason: str, message: str
) -> None:
    item = hold(queue)
    with pytest.raises(UsageError, match=message):
        queue.decide(item.id, verdict, reviewer=reviewer, reason=reason)
    assert queue.get(item.id).state is ReviewState.PENDING


# -- expiry -------------------------------------------------------------------------------------


def test_stale_items_are_decided_as_expired(queue_url: str) -> None:
    clock = Clock()
    with ReviewQueue.open(queue_url, review_window=600, clock=clock) as queue:
        stale = hold(queue, 1)
        clock.now += 300
        fresh = hold(queue, 2)
        clock.now += 300  # stale is exactly at the end of its window
        expired = queue.expire()
        assert [item.id for item in expired] == [stale.id]
        assert expired[0].state is ReviewState.EXPIRED
        assert expired[0].decided_at == stale.expires_at
        assert expired[0].reviewer is None
        assert expired[0].decision_reason == "no decision within the review window"
        assert expired[0].to_record()["state"] == "expired"
        assert queue.expire() == []
        with pytest.raises(ItemExpired, match="expired") as info:
            queue.decide(stale.id, "approve", reviewer="alice", reason="late")
        assert isinstance(info.value, AlreadyDecided)
        assert info.value.item.state is ReviewState.EXPIRED
        # Reads expire what is due without an explicit expire() call.
        clock.now += 300
        assert queue.get(fresh.id).state is ReviewState.EXPIRED
        assert queue.wait(fresh.id, timeout=0).state is ReviewState.EXPIRED


def test_a_queue_without_a_window_never_expires(queue_url: str) -> None:
    clock = Clock()
    with ReviewQueue.open(queue_url, review_window=None, clock=clock) as queue:
        item = hold(queue)
        assert item.expires_at is None
        clock.now += 10 * 365 * 86400
        assert queue.expire() == []
        assert queue.decide(item.id, "reject", reviewer="a", reason="b").state is ReviewState.REJECTED
    with pytest.raises(UsageError):
        ReviewQueue.open(queue_url, review_window=0)


# -- listing ------------------------------------------------------------------------------------


def test_list_pages_in_submission_order(queue: ReviewQueue) -> None:
    items = [hold(queue, n) for n in range(23)]
    for n in range(0, 23, 3):
        queue.decide(items[n].id, "approve", reviewer="alice", reason="ok")
    seen: list[ReviewItem] = []
    cursor = None
    pages = 0
    while True:
        page = queue.list(limit=5, cursor=cursor)
        pages += 1
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert [item.id for item in seen] == [item.id for item in items]
    pending = queue.list(state="pending", limit=100)
    assert [i.id for i in pending.items] == [i.id for n, i in enumerate(items) if n % 3]
    assert pending.next_cursor is None
    approved = queue.list(state=ReviewState.APPROVED, limit=8)
    assert [i.id for i in approved.items] == [i.id for n, i in enumerate(items) if n % 3 == 0]
    assert approved.next_cursor is None
    exact = queue.list(limit=23)
    assert len(exact.items) == 23
    assert exact.next_cursor is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "1 to 1000"),
        ({"limit": 1001}, "1 to 1000"),
        ({"cursor": "abc"}, "not a review queue cursor"),
        ({"cursor": "-1"}, "not a review queue cursor"),
        ({"state": "done"}, "not a review state"),
    ],
)
def test_list_refuses_bad_input(queue: ReviewQueue, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        queue.list(**kwargs)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(0, 0)),
        st.tuples(st.sampled_from(["approve", "reject"]), st.integers(0, 40)),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    limit=st.integers(1, 7),
    state=st.none() | st.sampled_from(["pending", "approved", "rejected"]),
)
def test_listing_matches_a_reference_model(
    ops: list[tuple[str, int]], limit: int, state: str | None
) -> None:
    model: list[list[str]] = []  # [id, state] in submission order
    with tempfile.TemporaryDirectory() as folder, ReviewQueue.open(f"{folder}/r.db") as queue:
        for op, pick in ops:
            if op == "submit":
                model.append([hold(queue, len(model)).id, "pending"])
            elif model:
                target = model[pick % len(model)]
                if target[1] == "pending":
                    queue.decide(target[0], op, reviewer="r", reason="why")
                    target[1] = {"approve": "approved", "reject": "rejected"}[op]
                else:
                    with pytest.raises(AlreadyDecided):
                        queue.decide(target[0], op, reviewer="r", reason="why")
        listed: list[tuple[str, str]] = []
        cursor = None
        while True:
            page = queue.list(state=state, limit=limit, cursor=cursor)
            assert len(page.items) <= limit
            listed.extend((item.id, item.state.value) for item in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert listed == [(i, s) for i, s in model if state is None or s == state]


# -- other processes: racing deciders, waiters ------------------------------------------------


def _decider(url: str, ids: list[str], who: str, start: Any, results: Any) -> None:
    try:
        won: list[str] = []
        with ReviewQueue.open(url) as queue:
            start.wait(timeout=60)
            for item_id in ids:
                verdict = "approve" if who == "alice" else "reject"
                try:
                    queue.decide(item_id, verdict, reviewer=who, reason=f"{who} decided")
                    won.append(item_id)
                except AlreadyDecided:
                    pass
        results.put((who, won, None))
    except BaseException as exc:
        results.put((who, [], repr(exc)))


def test_racing_deciders_in_two_processes_exactly_one_wins(queue: ReviewQueue) -> None:
    ids = [hold(queue, n).id for n in range(30)]
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_decider, args=(queue.url, ids, who, start, results))
        for who in ("alice", "bob")
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = {who: (won, error) for who, won, error in (results.get(timeout=180) for _ in procs)}
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    assert {who: error for who, (_, error) in outcomes.items()} == {"alice": None, "bob": None}
    alice, bob = set(outcomes["alice"][0]), set(outcomes["bob"][0])
    assert not alice & bob
    assert alice | bob == set(ids)
    for item_id in ids:
        item = queue.get(item_id)
        winner = "alice" if item_id in alice else "bob"
        assert item.reviewer == winner
        assert item.decision_reason == f"{winner} decided"
        assert item.state is (ReviewState.APPROVED if winner == "alice" else ReviewState.REJECTED)


def _late_reviewer(url: str, item_id: str, delay: float) -> None:
    time.sleep(delay)
    with ReviewQueue.open(url) as queue:
        queue.decide(item_id, "reject", reviewer="carol", reason="leaks a card number")


def test_wait_returns_a_decision_made_by_another_process(queue: ReviewQueue) -> None:
    item = hold(queue)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_late_reviewer, args=(queue.url, item.id, 0.5))
    proc.start()
    try:
        decided = queue.wait(item.id, timeout=120, max_poll=0.2)
    finally:
        proc.join(timeout=60)
    assert proc.exitcode == 0
    assert decided.state is ReviewState.REJECTED
    assert (decided.reviewer, decided.decision_reason) == ("carol", "leaks a card number")
    assert decided == queue.get(item.id)


def test_wait_times_out_and_leaves_the_item_held(queue: ReviewQueue) -> None:
    item = hold(queue)
    with pytest.raises(ReviewTimeout, match=r"within 0\.3 s") as info:
        queue.wait(item.id, timeout=0.3)
    assert info.value.exit_code == 1
    assert info.value.item.state is ReviewState.PENDING
    assert queue.get(item.id).state is ReviewState.PENDING
    decided = queue.decide(item.id, "approve", reviewer="alice", reason="fine")
    assert queue.wait(item.id, timeout=0) == decided
    with pytest.raises(UsageError):
        queue.wait(item.id, timeout=-1)
    with pytest.raises(ReviewItemNotFound):
        queue.wait(str(uuid.uuid4()), timeout=1)


def test_a_queue_in_a_missing_folder_or_a_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ReviewStoreError, match="does not exist"):
        ReviewQueue.open(tmp_path / "nowhere" / "review.db")
    bogus = tmp_path / "review.db"
    bogus.write_bytes(b"not a database" * 200)
    with pytest.raises(ReviewStoreError, match="unusable"):
        ReviewQueue.open(bogus)


@pytest.mark.postgres
def test_unreachable_postgresql_is_a_usage_error() -> None:
    with pytest.raises(ReviewStoreError, match="unusable") as info:
        ReviewQueue.open("postgresql://nobody:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in info.value.diagnostics()


@pytest.mark.postgres
def test_postgresql_decisions_notify_waiters(pg_url: str) -> None:
    import psycopg

    with ReviewQueue.open(pg_url) as queue, psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN custodes_review")
        item = hold(queue)
        queue.decide(item.id, "approve", reviewer="alice", reason="fine")
        payloads = [n.payload for n in listener.notifies(timeout=30, stop_after=1)]
    assert payloads == [item.id]
