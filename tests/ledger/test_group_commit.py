"""The append path under many threads: grouped commits, failures, salts, number formatting.

Appenders share commits (one transaction per batch); each is woken once its own entries are
durable, and a commit that fails fails exactly the appends it held, after which the ledger goes
on. Expected values come from the stored rows (read with the plain driver) and from the RFC
8785 reference implementation, never from custodes' own code.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import LedgerCorrupt
from custodes.ledger import Ledger, verify_ledger
from custodes.ledger.entry import _fast_canonical, canonical, make_payloads, payload_digest
from ledgertools import leaf_hash, mth, raw_rows


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(tmp_path / "ledger.db", name="test.custodes.local/group")


def _run(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an appender never returned"


def test_groups_from_many_threads_stay_whole_and_in_order(tmp_path: Path) -> None:
    """append and append_many from 12 threads: every receipt names its own stored entry, a
    group's entries are consecutive and share one commit (one recorded_at)."""
    receipts: dict[tuple[int, int], list[int]] = {}
    errors: list[BaseException] = []
    with _ledger(tmp_path) as led:
        barrier = threading.Barrier(12)

        def work(tid: int) -> None:
            try:
                barrier.wait()
                for seq in range(40):
                    size = 1 + (tid + seq) % 4  # groups of 1 to 4 entries
                    group = [{"thread": tid, "seq": seq, "part": n} for n in range(size)]
                    if size == 1:
                        receipts[tid, seq] = [led.append(group[0]).index]
                    else:
                        receipts[tid, seq] = [r.index for r in led.append_many(group)]
            except BaseException as exc:
                errors.append(exc)

        _run([threading.Thread(target=work, args=(t,)) for t in range(12)])
        assert not errors, errors
        rows, size, _ = raw_rows(str(tmp_path / "ledger.db"))
        entries = {index: json.loads(leaf) for index, leaf, _ in rows}
        assert size == len(entries) == sum(len(v) for v in receipts.values())
        assert sorted(i for v in receipts.values() for i in v) == list(range(size))
        for (tid, seq), indices in receipts.items():
            assert indices == list(range(indices[0], indices[0] + len(indices)))
            recorded = [entries[i] for i in indices]
            assert [(e["thread"], e["seq"], e["part"]) for e in recorded] == [
                (tid, seq, n) for n in range(len(indices))
            ]
            assert len({e["recorded_at"] for e in recorded}) == 1  # one commit for the group
        stamps = {e["recorded_at"] for e in entries.values()}
        assert len(stamps) < len(receipts), "no two callers ever shared a commit"
        assert verify_ledger(led).root == mth([leaf_hash(leaf) for _, leaf, _ in rows])


def test_a_failed_commit_fails_only_its_appends_and_the_ledger_goes_on(tmp_path: Path) -> None:
    """A row planted where the next entries go makes their commit fail; every appender of that
    batch gets the error, none hangs, and once the row is gone appends succeed again."""
    db = tmp_path / "ledger.db"
    with _ledger(tmp_path) as led:
        led.append({"first": True})
        with sqlite3.connect(db) as conn:  # an outsider's row at index 1
            conn.execute("INSERT INTO tail (idx, leaf, leaf_hash) VALUES (1, x'00', x'00')")
        outcomes: list[str] = []
        lock = threading.Lock()

        def work(tid: int) -> None:
            try:
                led.append({"thread": tid})
                result = "ok"
            except LedgerCorrupt:
                result = "refused"
            with lock:
                outcomes.append(result)

        _run([threading.Thread(target=work, args=(t,)) for t in range(8)])
        assert outcomes == ["refused"] * 8
        assert led.size() == 1
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM tail WHERE idx = 1")
        outcomes.clear()
        _run([threading.Thread(target=work, args=(t,)) for t in range(8)])
        assert outcomes == ["ok"] * 8
        assert led.size() == 9
        verify_ledger(led)


def test_salts_are_fresh_for_every_payload_and_digest_as_specified() -> None:
    contents = [f"prompt {n}" for n in range(600)]  # more salts than one read of the pool
    salts = []
    for content in contents:
        digests, records = make_payloads({"input": content, "output": content}, keep=True)
        for record in records:
            assert len(record.salt) == 32
            assert digests[record.name] == payload_digest(record.salt, content.encode())
            salts.append(record.salt)
    assert len(set(salts)) == len(salts)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_never_reuses_its_parents_salts() -> None:
    make_payloads({"warm": "the pool holds unused salts now"}, keep=False)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next salts, then leave at once
        try:
            _, records = make_payloads({f"p{n}": "x" for n in range(4)}, keep=False)
            os.write(write, b"".join(r.salt for r in records))
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {data[i : i + 32] for i in range(0, len(data), 32)}
    _, records = make_payloads({f"p{n}": "x" for n in range(4)}, keep=False)
    assert len(child) == 4
    assert child.isdisjoint({r.salt for r in records})


# Durations, scores and other fractions a guard entry holds: plain notation, no exponent.
plain_fractions = st.floats(min_value=1e-4, max_value=1e15, allow_nan=False).filter(
    lambda x: x != int(x)
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(plain_fractions, plain_fractions.map(lambda x: -x)))
def test_plain_fractions_take_the_fast_path_with_the_reference_bytes(x: float) -> None:
    value = {"duration_ms": x, "nested": [x, {"y": x}]}
    expected = rfc8785.dumps(value)
    assert canonical(value) == expected
    assert _fast_canonical(value) == expected  # not left to the slow reference path


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_gets_the_reference_bytes(x: float) -> None:
    assert canonical({"n": x, "list": [x]}) == rfc8785.dumps({"n": x, "list": [x]})


@pytest.mark.parametrize("x", [0.0, -0.0, 2.0, 1e16, 1e-5, 1.5e300, 123456789.0])
def test_floats_json_writes_otherwise_leave_the_fast_path(x: float) -> None:
    assert _fast_canonical({"n": x}) is None
    assert canonical({"n": x}) == rfc8785.dumps({"n": x})


def test_a_lone_caller_never_waits_for_company(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lingering is for callers arriving together: one caller alternating groups of several
    entries and single entries must never hold its own commit waiting for others."""
    lingered: list[int] = []
    real = Ledger._linger

    def spy(self: Ledger) -> None:
        lingered.append(len(self._queue))
        real(self)

    monkeypatch.setattr(Ledger, "_linger", spy)
    with _ledger(tmp_path) as led:
        for n in range(20):
            led.append_many([{"call": n}, {"validation": n}])
            led.append({"admission": n + 1})
        assert led.size() == 60
    assert lingered == []
