"""The ledger through its Python API, on both stores (SQLite file, PostgreSQL database).

Every expected hash is recomputed here from the stored leaves with the recursive RFC 9162
reference in ``ledgertools``; nothing is compared against custodes' own Merkle code.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from custodes.errors import (
    IndexOutOfRange,
    InvalidEntry,
    KeyMismatch,
    LedgerExists,
    VerificationError,
)
from custodes.ledger import Ledger, verify_ledger
from ledgertools import (
    RECORDED_AT_RE,
    LedgerDb,
    canonical_simple,
    consistency,
    leaf_hash,
    mth,
    note_signed_by,
    parse_checkpoint,
    path,
)


def _create(target: LedgerDb, **kwargs: object) -> Ledger:
    return Ledger.create(target.db, key=target.key, **kwargs)  # type: ignore[arg-type]


def _leaf_hashes(led: Ledger) -> list[bytes]:
    return [leaf_hash(led.entry(i).leaf) for i in range(led.size())]


def _decisions(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"decision": "allow" if i % 3 else "deny", "seq": i, "tool": f"t{i % 5}", "ok": i % 2 == 0}
        for i in range(start, start + n)
    ]


def test_create_writes_empty_signed_ledger(ledger_db: LedgerDb) -> None:
    with _create(ledger_db, name="example.com/audit") as led:
        assert led.origin == "example.com/audit"
        assert led.size() == 0
        assert led.root() == hashlib.sha256(b"").digest()
        vkey = led.verifier.to_string()
        note = led.checkpoint()
    assert ledger_db.key_path.exists()
    assert ledger_db.key_path.stat().st_mode & 0o777 == 0o600
    cp = parse_checkpoint(note)
    assert (cp.origin, cp.size, cp.root) == ("example.com/audit", 0, hashlib.sha256(b"").digest())
    assert note_signed_by(note, vkey)
    assert vkey.startswith("example.com/audit+")


def test_create_twice_is_refused_and_leaves_ledger_intact(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        led.append({"n": 1})
        key_text = ledger_db.key_path.read_text()
    with pytest.raises(LedgerExists):
        _create(ledger_db)
    assert ledger_db.key_path.read_text() == key_text
    with Ledger.open(ledger_db.db) as led:
        assert led.size() == 1
        verify_ledger(led)


def test_reopen_sees_the_same_log(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        receipts = led.append_many(_decisions(5))
        note, vkey = led.checkpoint(), led.verifier.to_string()
    with Ledger.open(ledger_db.db) as led:
        assert led.size() == 5
        assert led.checkpoint() == note
        assert led.verifier.to_string() == vkey
        assert [led.entry(r.index).leaf_hash for r in receipts] == [r.leaf_hash for r in receipts]
        led.append({"after": "reopen"})  # key path recorded at create time
        assert led.size() == 6


def test_append_receipts_are_consecutive_and_match_leaves(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        single = [led.append(d) for d in _decisions(3)]
        many = led.append_many(_decisions(7, start=3))
        one_more = led.append({"last": True})
        receipts = [*single, *many, one_more]
        assert [r.index for r in receipts] == list(range(11))
        assert led.size() == 11
        for receipt in receipts:
            stored = led.entry(receipt.index)
            assert stored.index == receipt.index
            assert receipt.leaf_hash == leaf_hash(stored.leaf) == stored.leaf_hash
        assert led.append_many([]) == []
        assert led.size() == 11


def test_entry_is_the_canonical_leaf_with_index_and_time(ledger_db: LedgerDb) -> None:
    data = {"zeta": "last", "alpha": 1, "nested": {"b": [1, 2, "x"], "a": None}, "flag": False}
    before = datetime.now(UTC)
    with _create(ledger_db) as led:
        led.append({"first": 0})
        receipt = led.append(data)
        after = datetime.now(UTC)
        stored = led.entry(receipt.index)
    assert stored.index == 1
    recorded_at = stored.data["recorded_at"]
    assert RECORDED_AT_RE.match(recorded_at), recorded_at
    when = datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= when <= after
    expected = canonical_simple({**data, "index": 1, "recorded_at": recorded_at})
    assert stored.leaf == expected
    assert stored.leaf_hash == hashlib.sha256(b"\x00" + expected).digest()
    assert stored.data == {**data, "index": 1, "recorded_at": recorded_at}


def test_unicode_entry_is_canonical(ledger_db: LedgerDb) -> None:
    data = {"é": "ünïcödé ✓", "a": "tab\tquote\"backslash\\"}
    with _create(ledger_db) as led:
        stored = led.entry(led.append(data).index)
    # RFC 8785: UTF-8, keys sorted by UTF-16 code units, minimal escapes.
    expected = (
        '{"a":"tab\\tquote\\"backslash\\\\","index":0,"recorded_at":"'
        + stored.data["recorded_at"]
        + '","é":"ünïcödé ✓"}'
    ).encode()
    assert stored.leaf == expected


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 13, 33])
def test_proofs_match_reference_tree(ledger_db: LedgerDb, count: int) -> None:
    with _create(ledger_db) as led:
        # Several commits of uneven size, so nodes span batches.
        for start in range(0, count, 5):
            led.append_many(_decisions(min(5, count - start), start=start))
        hashes = _leaf_hashes(led)
        assert len(hashes) == count
        assert led.root() == mth(hashes)
        note = led.checkpoint()
        cp = parse_checkpoint(note)
        assert (cp.size, cp.root) == (count, mth(hashes))
        assert note_signed_by(note, led.verifier.to_string())
        report = verify_ledger(led)
        assert (report.size, report.root, report.checkpoint_size) == (count, mth(hashes), count)

        for size in range(1, count + 1):
            assert led.root(size) == mth(hashes[:size])
            for index in range(size):
                proof = led.prove(index, size)
                assert proof.verify()
                assert (proof.index, proof.size) == (index, size)
                assert proof.leaf_hash == hashes[index]
                assert proof.root == mth(hashes[:size])
                assert list(proof.hashes) == path(index, hashes[:size])
        default = led.prove(0)
        assert default.size == count
        assert default.root == mth(hashes)

        for new in range(count + 1):
            for old in range(new + 1):
                cproof = led.consistency(old, new)
                assert cproof.verify()
                assert cproof.old_root == mth(hashes[:old])
                assert cproof.new_root == mth(hashes[:new])
                expected = consistency(old, hashes[:new]) if 0 < old < new else []
                assert list(cproof.hashes) == expected
        assert led.consistency(1).new_size == count


def test_proof_does_not_verify_against_other_root(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        led.append_many(_decisions(6))
        proof = led.prove(2)
        cproof = led.consistency(3)
    assert not replace(proof, leaf_hash=leaf_hash(b"other")).verify()
    assert not replace(proof, root=mth([leaf_hash(b"x")])).verify()
    assert not replace(proof, index=3).verify()
    assert not replace(cproof, old_root=leaf_hash(b"x")).verify()


def test_out_of_range(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        with pytest.raises(IndexOutOfRange):
            led.entry(0)
        with pytest.raises(IndexOutOfRange):
            led.prove(0)
        led.append_many(_decisions(4))
        for bad in (-1, 4, 5, 10**6):
            with pytest.raises(IndexOutOfRange):
                led.entry(bad)
            with pytest.raises(IndexOutOfRange):
                led.prove(bad)
        with pytest.raises(IndexOutOfRange):
            led.prove(2, 2)  # index beyond the given size
        with pytest.raises(IndexOutOfRange):
            led.prove(0, 5)  # size beyond the ledger
        with pytest.raises(IndexOutOfRange):
            led.consistency(5)
        with pytest.raises(IndexOutOfRange):
            led.consistency(3, 2)
        with pytest.raises(IndexOutOfRange):
            led.consistency(-1)
        with pytest.raises(IndexOutOfRange):
            led.consistency(1, 5)
        with pytest.raises(IndexOutOfRange):
            led.root(5)
        assert led.size() == 4


def test_group_commit_across_threads(ledger_db: LedgerDb) -> None:
    threads_n, per_thread = 8, 200
    results: dict[int, list[tuple[int, bytes]]] = {}
    errors: list[BaseException] = []
    with _create(ledger_db) as led:
        barrier = threading.Barrier(threads_n)

        def work(tid: int) -> None:
            try:
                barrier.wait()
                mine = []
                for seq in range(per_thread):
                    r = led.append({"thread": tid, "seq": seq})
                    mine.append((r.index, r.leaf_hash))
                results[tid] = mine
            except BaseException as exc:
                errors.append(exc)

        started = time.monotonic()
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        elapsed = time.monotonic() - started
        assert not errors, errors
        assert len(results) == threads_n

        total = threads_n * per_thread
        indices = [i for mine in results.values() for i, _ in mine]
        assert sorted(indices) == list(range(total))
        assert led.size() == total
        stamps = set()
        for tid, mine in results.items():
            assert [i for i, _ in mine] == sorted(i for i, _ in mine)  # a thread's appends in order
            for seq, (index, digest) in enumerate(mine):
                stored = led.entry(index)
                assert leaf_hash(stored.leaf) == digest
                assert stored.data["thread"] == tid
                assert stored.data["seq"] == seq
                stamps.add(stored.data["recorded_at"])
        # One commit stamps one recorded_at on its whole batch: fewer stamps than entries shows
        # that concurrent appends shared commits.
        assert len(stamps) < total, f"no group commit in {elapsed:.1f}s"
        report = verify_ledger(led)
        assert report.size == total
        assert report.root == mth(_leaf_hashes(led))


def test_payloads_kept_checked_and_erased(ledger_db: LedgerDb) -> None:
    prompt = "Charge card 4111 1111 1111 1111"
    completion = b"\x00binary\xffcompletion"
    with _create(ledger_db, keep_payloads=True) as led:
        led.append({"before": True})
        receipt = led.append(
            {"decision": "deny"}, payloads={"prompt": prompt, "completion": completion}
        )
        led.append({"after": True})
        stored = led.entry(receipt.index)
        digests = stored.data["digests"]
        assert set(digests) == {"prompt", "completion"}
        assert prompt not in stored.leaf.decode()
        kept = {p.name: p for p in led.payloads(receipt.index)}
        assert set(kept) == {"prompt", "completion"}
        assert kept["prompt"].content == prompt.encode()
        assert kept["completion"].content == completion
        for name, content in (("prompt", prompt.encode()), ("completion", completion)):
            salt = kept[name].salt
            assert len(salt) >= 16
            assert digests[name] == "sha256:" + hashlib.sha256(salt + content).hexdigest()
        assert kept["prompt"].salt != kept["completion"].salt

        assert led.check_payload(receipt.index, "prompt", prompt)
        assert led.check_payload(receipt.index, "completion", completion)
        assert not led.check_payload(receipt.index, "prompt", prompt + " ")
        assert not led.check_payload(receipt.index, "missing", prompt)
        assert led.payloads(0) == []

        leaf_before = stored.leaf
        root_before = led.root()
        assert led.erase(receipt.index) == 2
        assert led.payloads(receipt.index) == []
        assert not led.check_payload(receipt.index, "prompt", prompt)
        assert led.entry(receipt.index).leaf == leaf_before
        assert led.root() == root_before
        assert led.erase(receipt.index) == 0
        with pytest.raises(IndexOutOfRange):
            led.erase(99)
        verify_ledger(led)
    with Ledger.open(ledger_db.db) as led:
        assert led.payloads(receipt.index) == []
        verify_ledger(led)


def test_payloads_not_kept_by_default(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        assert not led.meta.keep_payloads
        receipt = led.append({"decision": "allow"}, payloads={"prompt": "secret prompt"})
        (record,) = led.payloads(receipt.index)
        assert record.name == "prompt"
        assert record.content is None
        digest = led.entry(receipt.index).data["digests"]["prompt"]
        assert digest == "sha256:" + hashlib.sha256(record.salt + b"secret prompt").hexdigest()
        assert led.check_payload(receipt.index, "prompt", "secret prompt")
        assert led.erase(receipt.index) == 1
        assert not led.check_payload(receipt.index, "prompt", "secret prompt")
        verify_ledger(led)


def test_wrong_key_file_is_refused(ledger_db: LedgerDb, tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "other.db"):
        pass
    other_key = tmp_path / "other.db.key"
    with _create(ledger_db) as led:
        led.append({"n": 0})
    with Ledger.open(ledger_db.db, key=other_key) as led:
        with pytest.raises(KeyMismatch):
            led.append({"n": 1})
        with pytest.raises(KeyMismatch):
            led.append_many([{"n": 1}, {"n": 2}])
        assert led.size() == 1
    with Ledger.open(ledger_db.db) as led:
        assert led.size() == 1
        verify_ledger(led)


def test_verify_with_other_verifier_fails(ledger_db: LedgerDb, tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "other.db") as other:
        foreign = other.verifier
    with _create(ledger_db) as led:
        led.append_many(_decisions(3))
        verify_ledger(led, verifier=led.verifier)
        with pytest.raises(VerificationError):
            verify_ledger(led, verifier=foreign)


def test_verify_with_earlier_checkpoint(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        empty = led.checkpoint()
        led.append_many(_decisions(5))
        early = led.checkpoint()
        led.append_many(_decisions(6, start=5))
        assert verify_ledger(led, checkpoint=early).earlier_checkpoint_size == 5
        assert verify_ledger(led, checkpoint=empty).earlier_checkpoint_size == 0
        latest = led.checkpoint()
        assert verify_ledger(led, checkpoint=latest).earlier_checkpoint_size == 11


def test_bad_entries_fail_alone_under_group_commit(ledger_db: LedgerDb) -> None:
    bad_entries = [
        {"n": 2**60},
        {"index": 1},
        {"recorded_at": "now"},
        {"f": float("nan")},
        {"s": "\ud800"},
        {"nested": {"deep": [1, {"x": 2**53}]}},
    ]
    good: dict[int, list[int]] = {}
    failures: list[BaseException] = []
    unexpected: list[BaseException] = []
    with _create(ledger_db) as led:

        def work(tid: int) -> None:
            mine = []
            for seq in range(60):
                try:
                    if seq % 10 == 3:
                        led.append(bad_entries[(tid + seq) % len(bad_entries)])
                        unexpected.append(AssertionError(f"bad entry accepted ({tid}, {seq})"))
                    else:
                        mine.append(led.append({"thread": tid, "seq": seq}).index)
                except InvalidEntry as exc:
                    failures.append(exc)
                except BaseException as exc:
                    unexpected.append(exc)
            good[tid] = mine

        workers = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not unexpected, unexpected
        assert len(failures) == 6 * 6
        indices = sorted(i for mine in good.values() for i in mine)
        assert indices == list(range(6 * 54))
        assert led.size() == 6 * 54
        verify_ledger(led)


def test_append_many_is_all_or_nothing(ledger_db: LedgerDb) -> None:
    with _create(ledger_db) as led:
        led.append({"first": True})
        with pytest.raises(InvalidEntry):
            led.append_many([{"ok": 1}, {"ok": 2}, {"n": 2**60}, {"ok": 3}])
        assert led.size() == 1
        with pytest.raises(InvalidEntry):
            led.append({"decision": "x", "digests": {}}, payloads={"prompt": "p"})
        assert led.append({"digests": "allowed without payloads"}).index == 1
        verify_ledger(led)
