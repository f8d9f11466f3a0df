"""Bundled storage (bundles of 256 entries, tiles of 256 hashes, tail rows) on both stores.

Batches of uneven size cross bundle and tile boundaries; the roots, proofs and stored rows are
checked against the RFC 9162 reference of ``ledgertools`` over the leaves read back with the
plain database driver, not through custodes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.ledger import Ledger, verify_ledger
from ledgertools import LedgerDb, consistency, leaf_hash, mth, path, raw_rows


def _entries(start: int, n: int) -> list[dict[str, object]]:
    return [{"seq": i, "kind": "decision", "score": i % 7 / 4} for i in range(start, start + n)]


def _check_against_reference(led: Ledger, target: LedgerDb, rng: random.Random) -> None:
    rows, size, _ = raw_rows(target.db)
    assert [index for index, _, _ in rows] == list(range(size))
    assert all(leaf_hash(leaf) == digest for _, leaf, digest in rows)
    hashes = [digest for _, _, digest in rows]
    assert led.root() == mth(hashes)
    assert verify_ledger(led).root == mth(hashes)
    picks = {0, size - 1, *(rng.randrange(size) for _ in range(8))}
    for index in sorted(picks):
        tree = rng.randint(index + 1, size)
        proof = led.prove(index, tree)
        assert list(proof.hashes) == path(index, hashes[:tree])
        assert proof.root == mth(hashes[:tree])
    for _ in range(6):
        new = rng.randint(1, size)
        old = rng.randint(1, new)
        cproof = led.consistency(old, new)
        expected = consistency(old, hashes[:new]) if old < new else []
        assert list(cproof.hashes) == expected
        assert cproof.verify()


@settings(max_examples=8, deadline=None)
@given(
    batches=st.lists(
        st.one_of(st.integers(1, 4), st.integers(250, 260), st.integers(500, 800)),
        min_size=1,
        max_size=6,
    ),
    singles=st.integers(0, 20),
    seed=st.integers(0, 2**32),
)
def test_batches_across_bundles_match_the_reference(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int], singles: int, seed: int
) -> None:
    # SQLite, a fresh file per example; PostgreSQL runs the fixed-size test below.
    target = LedgerDb("sqlite", str(tmp_path_factory.mktemp("bundles") / "l.db"), None)
    with Ledger.create(target.db, key=target.key) as led:
        size = 0
        for n in batches:
            receipts = led.append_many(_entries(size, n))
            assert [r.index for r in receipts] == list(range(size, size + n))
            size += n
            for _ in range(singles if n < 5 else 0):
                assert led.append({"single": size}).index == size
                size += 1
        assert led.size() == size
        _check_against_reference(led, target, random.Random(seed))


def test_two_levels_of_tiles(ledger_db: LedgerDb) -> None:
    # 66,000 entries: 257 full bundles, so tile (1, 0) is full and tile (2, 0) holds one hash.
    rng = random.Random(7)
    with Ledger.create(ledger_db.db, key=ledger_db.key) as led:
        size = 0
        for n in (300, 65_236, 1, 463):
            led.append_many(_entries(size, n))
            size += n
        assert led.size() == 66_000
        _check_against_reference(led, ledger_db, rng)
        old = led.checkpoint()
        led.append({"after": True})
        report = verify_ledger(led, checkpoint=old)
        assert report.size == 66_001


def _force_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the ledger as it runs where the C accelerator is not built."""
    from custodes.ledger import entry, log, tiles

    monkeypatch.setattr(entry, "_native", None)
    monkeypatch.setattr(log, "_native", None)
    monkeypatch.setattr(tiles, "leaves", tiles.py_leaves)
    monkeypatch.setattr(tiles, "mth", tiles.py_mth)
    monkeypatch.setattr(tiles, "ends32", tiles.py_ends32)


def _tables(db: str) -> dict[str, list[tuple[object, ...]]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
            for table in ("bundles", "tiles", "tail", "tree")
        }
    finally:
        conn.close()


def test_python_path_stores_the_same_bytes_as_the_c_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custodes.ledger import log
    from custodes.ledger.note import Signer

    monkeypatch.setattr(log, "recorded_at_now", lambda: "2026-11-25T12:00:00.000000Z")
    signer = Signer.generate("example.com/twins")
    key = tmp_path_factory.mktemp("key") / "ledger.key"
    key.write_text(signer.to_string() + "\n")
    key.chmod(0o600)
    batch = [
        {"seq": i, "f": i / 3, "s": "é\u2028\U0001f600" * (i % 3), "l": [None, True], "n": {}}
        for i in range(700)
    ]
    batch[5] = {"note": "\x00custodes:index\x00"}  # only the Python path can fill this one in
    dbs = []
    for python in (False, True):
        if python:
            _force_python(monkeypatch)
        db = str(tmp_path_factory.mktemp("twin") / "l.db")
        with Ledger.create(db, key=key) as led:
            led.append_many(batch[:300])
            led.append(batch[300])
            receipts = led.append_many(batch[301:])
            assert receipts[-1].index == 699
            verify_ledger(led)
        dbs.append(db)
    c_rows, py_rows = _tables(dbs[0]), _tables(dbs[1])
    # Signatures are Ed25519 (deterministic), so even the tree rows must agree byte for byte.
    assert c_rows == py_rows


def test_the_wal_is_checkpointed_while_the_ledger_stays_open(tmp_path: Path) -> None:
    # Past ~4 MiB of WAL a background thread copies it into the database file; the ledger
    # reads the same either way.
    import os
    import time

    db = tmp_path / "l.db"
    with Ledger.create(db, name="example.com/wal") as led:
        start = os.path.getsize(db)
        for k in range(4):  # about 8 MiB of leaves
            led.append_many(_entries(k * 10_000, 10_000))
        deadline = time.monotonic() + 30
        while os.path.getsize(db) < start + (4 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(db) >= start + (4 << 20), "no checkpoint reached the database"
        assert os.path.getsize(f"{db}-wal") < 64 << 20
        assert verify_ledger(led).size == 40_000
