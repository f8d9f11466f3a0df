"""Tampering behind custodes' back, caught by ``custodes ledger verify`` (end to end, CLI).

The ledger is built with the CLI, edited with the plain database driver, and verified with the
CLI: every edit must give exit 1 and a single stderr line naming what failed.

The small fixture ledger holds 11 entries appended in two commits (5, then 6): all of them are
tail rows (one row per entry of the incomplete first bundle), and no tile is stored. The bundled
fixture holds 779 entries (300, then 479): bundles 0…2 of 256 leaves with their leaf hash tiles
(0, 0…2), the level-1 tile (1, 0) with the level-8 nodes 0…2, and entries 768…778 as tail rows
with their partial leaf hash tile (0, 3). The small fixture's tail has its partial tile (0, 0).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from custodes.ledger import Checkpoint, Ledger, Signer
from ledgertools import (
    LedgerDb,
    assert_cli_error,
    canonical_simple,
    consistency,
    leaf_hash,
    mth,
    parse_checkpoint,
    path,
    raw_rows,
    run_cli,
)

SIZE = 11


@dataclass
class Built:
    target: LedgerDb
    early: Path  # checkpoint file at size 5
    latest: Path  # checkpoint file at size 11
    vkey: str
    tmp: Path


def _lines(start: int, count: int) -> str:
    return "".join(
        json.dumps({"decision": "allow" if i % 2 else "deny", "seq": i}) + "\n"
        for i in range(start, start + count)
    )


def _build(target: LedgerDb, tmp: Path) -> Built:
    init = run_cli("ledger", "init", *target.init_args(), "--name", "example.com/tamper")
    assert init.returncode == 0, init.stderr
    first = run_cli("ledger", "append", "--db", target.db, input=_lines(0, 5))
    assert first.returncode == 0, first.stderr
    early = tmp / "early.checkpoint"
    shown = run_cli("ledger", "checkpoint", "--db", target.db)
    assert shown.returncode == 0, shown.stderr
    early.write_text(shown.stdout)
    second = run_cli("ledger", "append", "--db", target.db, input=_lines(5, 6))
    assert second.returncode == 0, second.stderr
    latest = tmp / "latest.checkpoint"
    latest.write_text(run_cli("ledger", "checkpoint", "--db", target.db).stdout)
    assert parse_checkpoint(early.read_text()).size == 5
    assert parse_checkpoint(latest.read_text()).size == SIZE
    vkey = run_cli("ledger", "key", "--db", target.db).stdout.strip()
    ok = run_cli("ledger", "verify", "--db", target.db, "--checkpoint", early, "--key", vkey)
    assert ok.returncode == 0, ok.stderr
    return Built(target, early, latest, vkey, tmp)


# The ledger is built once per store with the CLI; each test edits a fresh copy of it.


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("tamper-sqlite")
    return _build(LedgerDb("sqlite", str(tmp / "ledger.db"), None), tmp)


@pytest.fixture(scope="module")
def pg_template(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, str]:
    tmp = tmp_path_factory.mktemp("tamper-pg")
    name = f"tamper_template_{os.getpid()}"
    _pg_admin(pg_server, f'CREATE DATABASE "{name}"')
    built = _build(LedgerDb("postgres", pg_server.url(name), tmp / "ledger.key"), tmp)
    return built, name


def _pg_admin(pg_server: Any, statement: str) -> None:
    import psycopg

    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


_copies = itertools.count()


def _copy(template: Built, tmp: Path, db: str) -> Built:
    early, latest = tmp / "early.checkpoint", tmp / "latest.checkpoint"
    shutil.copyfile(template.early, early)
    shutil.copyfile(template.latest, latest)
    key = tmp / "ledger.key" if template.target.key is not None else None
    return Built(LedgerDb(template.target.kind, db, key), early, latest, template.vkey, tmp)


def _sqlite_copy(template: Built, tmp: Path) -> Built:
    db = tmp / "ledger.db"
    src, dst = sqlite3.connect(template.target.db), sqlite3.connect(db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copyfile(template.target.key_path, f"{db}.key")
    return _copy(template, tmp, str(db))


@pytest.fixture
def sqlite_ledger(sqlite_template: Built, tmp_path: Path) -> Built:
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Built:
    if request.param == "sqlite":
        return _sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    pg_server = request.getfixturevalue("pg_server")
    template, template_name = request.getfixturevalue("pg_template")
    name = f"tamper_{os.getpid()}_{next(_copies)}"
    _pg_admin(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    shutil.copyfile(template.target.key_path, tmp_path / "ledger.key")
    return _copy(template, tmp_path, pg_server.url(name))


def _sql(db: str, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run one statement with the plain driver (``?`` placeholders) and commit."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description else []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
    finally:
        conn.close()
    return rows


def _row(db: str, index: int) -> tuple[bytes, bytes]:
    ((leaf, digest),) = _sql(db, "SELECT leaf, leaf_hash FROM tail WHERE idx = ?", (index,))
    return bytes(leaf), bytes(digest)


def _rewrite_entry(db: str, index: int) -> None:
    """Forge tail entry ``index``, its leaf hash and its place in the tail's leaf hash tile."""
    leaf = _forged_leaf(db, index)
    digest = leaf_hash(leaf)
    _sql(db, "UPDATE tail SET leaf = ?, leaf_hash = ? WHERE idx = ?", (leaf, digest, index))
    ((tile,),) = _sql(db, "SELECT hashes FROM tiles WHERE level = 0 AND idx = 0")
    tile = bytes(tile)
    tile = tile[: 32 * index] + digest + tile[32 * (index + 1) :]
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 0 AND idx = 0", (tile,))


def _forged_leaf(db: str, index: int, recorded_as: int | None = None) -> bytes:
    """A canonical leaf for ``index`` with another decision (same recorded_at)."""
    data = json.loads(_row(db, index)[0])
    data["decision"] = "forged"
    data["index"] = index if recorded_as is None else recorded_as
    return canonical_simple(data)


def _verify(cli: Callable[..., Any], built: Built, *extra: Any) -> str:
    proc = cli("ledger", "verify", "--db", built.target.db, *extra)
    line = assert_cli_error(proc, 1)
    assert line.startswith("custodes: verification failed: "), line
    return line


# -- the entries -----------------------------------------------------------------------------


def test_changed_leaf(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    db = any_ledger.target.db
    _sql(db, "UPDATE tail SET leaf = ? WHERE idx = 5", (_forged_leaf(db, 5),))
    line = _verify(custodes_cli, any_ledger)
    assert "entry 5:" in line
    assert "leaf hash" in line


def test_changed_leaf_and_hash_breaks_the_tail_tile(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    # The tail's partial leaf hash tile still holds the true hash.
    db = any_ledger.target.db
    leaf = _forged_leaf(db, 10)
    _sql(db, "UPDATE tail SET leaf = ?, leaf_hash = ? WHERE idx = 10", (leaf, leaf_hash(leaf)))
    line = _verify(custodes_cli, any_ledger)
    assert "tree node (level 0, index 10) does not match entry 10's leaf hash" in line


def test_rewritten_leaf_with_its_hash_fails_on_the_signed_root(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # Everything a database editor can recompute, recomputed: leaf, leaf hash, hash tile.
    db = sqlite_ledger.target.db
    _rewrite_entry(db, 3)
    line = _verify(custodes_cli, sqlite_ledger)
    assert "root" in line
    assert "checkpoint" in line


def test_deleted_middle_row(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    _sql(any_ledger.target.db, "DELETE FROM tail WHERE idx = 4")
    line = _verify(custodes_cli, any_ledger)
    assert "entry 4 is missing" in line


def test_swapped_rows(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    db = sqlite_ledger.target.db
    leaf2, hash2 = _row(db, 2)
    leaf3, hash3 = _row(db, 3)
    _sql(db, "UPDATE tail SET leaf = ?, leaf_hash = ? WHERE idx = 2", (leaf3, hash3))
    _sql(db, "UPDATE tail SET leaf = ?, leaf_hash = ? WHERE idx = 3", (leaf2, hash2))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "entry 2:" in line
    assert "index 3" in line


def test_swapped_leaves_only(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    db = sqlite_ledger.target.db
    leaf6, _ = _row(db, 6)
    leaf7, _ = _row(db, 7)
    _sql(db, "UPDATE tail SET leaf = ? WHERE idx = 6", (leaf7,))
    _sql(db, "UPDATE tail SET leaf = ? WHERE idx = 7", (leaf6,))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "entry 6:" in line


def test_row_inserted_beyond_the_size(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    db = any_ledger.target.db
    leaf = canonical_simple(
        {"decision": "allow", "index": SIZE, "recorded_at": "2030-01-01T00:00:00.000000Z"}
    )
    _sql(
        db,
        "INSERT INTO tail (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
        (SIZE, leaf, leaf_hash(leaf)),
    )
    line = _verify(custodes_cli, any_ledger)
    assert f"entry {SIZE} lies beyond" in line


def test_truncated_rows(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    _sql(any_ledger.target.db, "DELETE FROM tail WHERE idx >= 8")
    line = _verify(custodes_cli, any_ledger)
    assert "entry 8 is missing" in line
    assert "truncated" in line


def test_truncated_rows_nodes_and_size(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # A careful truncation to 8 entries: rows, the tail's hash tile and the size agree.
    db = sqlite_ledger.target.db
    _sql(db, "DELETE FROM tail WHERE idx >= 8")
    ((tile,),) = _sql(db, "SELECT hashes FROM tiles WHERE level = 0 AND idx = 0")
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 0 AND idx = 0", (bytes(tile)[: 32 * 8],))
    _sql(db, "UPDATE tree SET size = 8")
    line = _verify(custodes_cli, sqlite_ledger)
    assert "11" in line
    assert "8" in line
    assert "rolled back" in line


def test_tail_tile_deleted(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    _sql(sqlite_ledger.target.db, "DELETE FROM tiles WHERE level = 0 AND idx = 0")
    line = _verify(custodes_cli, sqlite_ledger)
    assert "tree node (level 0, index 0) is missing" in line
    proc = custodes_cli(
        "ledger", "append", "--db", sqlite_ledger.target.db, input='{"decision": "deny"}\n'
    )
    assert "right edge" in assert_cli_error(proc, 1)


def test_tail_tile_with_a_hash_too_many(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    db = sqlite_ledger.target.db
    ((tile,),) = _sql(db, "SELECT hashes FROM tiles WHERE level = 0 AND idx = 0")
    _sql(
        db,
        "UPDATE tiles SET hashes = ? WHERE level = 0 AND idx = 0",
        (bytes(tile) + leaf_hash(b"x"),),
    )
    line = _verify(custodes_cli, sqlite_ledger)
    assert f"tree node (level 0, index {SIZE}) lies beyond the tree" in line


# -- the tree row and its checkpoint ---------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "named"), [(10, "entry 10 lies beyond"), (12, "entry 11 is missing")]
)
def test_edited_size(
    custodes_cli: Callable[..., Any], any_ledger: Built, size: int, named: str
) -> None:
    _sql(any_ledger.target.db, "UPDATE tree SET size = ?", (size,))
    line = _verify(custodes_cli, any_ledger)
    assert named in line


def test_checkpoint_with_flipped_signature(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    db = any_ledger.target.db
    ((note,),) = _sql(db, "SELECT checkpoint FROM tree")
    _sql(db, "UPDATE tree SET checkpoint = ?", (_flip_signature(note),))
    line = _verify(custodes_cli, any_ledger)
    assert "signature" in line


def test_checkpoint_with_edited_text(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    db = sqlite_ledger.target.db
    ((note,),) = _sql(db, "SELECT checkpoint FROM tree")
    _sql(db, "UPDATE tree SET checkpoint = ?", (note.replace(f"\n{SIZE}\n", "\n10\n", 1),))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "signature" in line


def test_checkpoint_replaced_by_an_older_genuine_one(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    _sql(any_ledger.target.db, "UPDATE tree SET checkpoint = ?", (any_ledger.early.read_text(),))
    line = _verify(custodes_cli, any_ledger)
    assert "5" in line
    assert "not covered" in line


def test_checkpoint_removed(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    _sql(sqlite_ledger.target.db, "UPDATE tree SET checkpoint = NULL")
    line = _verify(custodes_cli, sqlite_ledger)
    assert "no signed checkpoint" in line


def test_checkpoint_signed_by_another_key(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # Same origin, same size, the true root: only the key differs.
    db = sqlite_ledger.target.db
    ((note,),) = _sql(db, "SELECT checkpoint FROM tree")
    cp = parse_checkpoint(note)
    forged = Checkpoint(cp.origin, cp.size, cp.root).sign(Signer.generate(cp.origin))
    _sql(db, "UPDATE tree SET checkpoint = ?", (forged,))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "trusted" in line


# -- checkpoints a verifier kept ---------------------------------------------------------------


def _flip_signature(note: str) -> str:
    text, _, block = note.partition("\n\n")
    prefix, _, b64 = block.rstrip("\n").rpartition(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[10] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key id
    return f"{text}\n\n{prefix} {base64.b64encode(bytes(blob)).decode()}\n"


def test_kept_checkpoint_with_flipped_signature_byte(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    bad = sqlite_ledger.tmp / "bad.checkpoint"
    bad.write_text(_flip_signature(sqlite_ledger.early.read_text()))
    line = _verify(custodes_cli, sqlite_ledger, "--checkpoint", bad)
    assert "signature" in line


@pytest.mark.parametrize("old_size", ["4", "6"])
def test_kept_checkpoint_with_altered_size(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built, old_size: str
) -> None:
    bad = sqlite_ledger.tmp / "bad.checkpoint"
    bad.write_text(sqlite_ledger.early.read_text().replace("\n5\n", f"\n{old_size}\n", 1))
    assert parse_checkpoint(bad.read_text()).size == int(old_size)
    _verify(custodes_cli, sqlite_ledger, "--checkpoint", bad)


def test_kept_checkpoint_with_altered_root(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    text = sqlite_ledger.early.read_text()
    cp = parse_checkpoint(text)
    other_root = base64.b64encode(leaf_hash(b"other")).decode()
    bad = sqlite_ledger.tmp / "bad.checkpoint"
    bad.write_text(text.replace(base64.b64encode(cp.root).decode(), other_root, 1))
    _verify(custodes_cli, sqlite_ledger, "--checkpoint", bad)


def test_rolled_back_ledger_fails_against_a_later_checkpoint(
    custodes_cli: Callable[..., Any], tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    assert custodes_cli("ledger", "init", "--db", db).returncode == 0
    assert custodes_cli("ledger", "append", "--db", db, input=_lines(0, 5)).returncode == 0
    backup = tmp_path / "backup.db"
    src, dst = sqlite3.connect(db), sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    assert custodes_cli("ledger", "append", "--db", db, input=_lines(5, 6)).returncode == 0
    later = tmp_path / "later.checkpoint"
    later.write_text(custodes_cli("ledger", "checkpoint", "--db", db).stdout)
    target = LedgerDb("sqlite", str(db), None)
    built = Built(target, later, later, "", tmp_path)
    assert custodes_cli("ledger", "verify", "--db", db, "--checkpoint", later).returncode == 0

    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, db)
    alone = custodes_cli("ledger", "verify", "--db", db)
    assert alone.returncode == 0, alone.stderr  # a rollback is internally consistent
    assert "ok: 5 entries verified" in alone.stdout
    line = _verify(custodes_cli, built, "--checkpoint", later)
    assert "rolled back" in line
    assert "11" in line


def test_history_rewritten_with_the_real_key(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built, tmp_path: Path
) -> None:
    # Whoever holds the key rebuilds the ledger with other content and signs it: it verifies on
    # its own, but not as an extension of a checkpoint a verifier kept.
    db = Path(sqlite_ledger.target.db)
    rebuilt = tmp_path / "rebuilt.db"
    with Ledger.create(rebuilt, key=Path(f"{db}.key")) as led:
        led.append_many([{"decision": "allow", "seq": i} for i in range(SIZE)])
    target = LedgerDb("sqlite", str(rebuilt), None)
    assert (
        custodes_cli("ledger", "verify", "--db", rebuilt, "--key", sqlite_ledger.vkey).returncode
        == 0
    )
    built = Built(target, sqlite_ledger.early, sqlite_ledger.latest, sqlite_ledger.vkey, tmp_path)
    line = _verify(custodes_cli, built, "--checkpoint", sqlite_ledger.early)
    assert "not an extension" in line
    assert "size 5" in line


def test_forged_checkpoint_file(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    cp = parse_checkpoint(sqlite_ledger.latest.read_text())
    forger = Signer.generate(cp.origin)
    for size, root in ((cp.size, cp.root), (cp.size + 1, leaf_hash(b"x"))):
        forged = sqlite_ledger.tmp / f"forged{size}.checkpoint"
        forged.write_text(Checkpoint(cp.origin, size, root).sign(forger))
        line = _verify(custodes_cli, sqlite_ledger, "--checkpoint", forged)
        assert "trusted" in line


def test_checkpoint_of_another_ledger(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    assert custodes_cli("ledger", "init", "--db", other).returncode == 0
    other_cp = tmp_path / "other.checkpoint"
    other_cp.write_text(custodes_cli("ledger", "checkpoint", "--db", other).stdout)
    _verify(custodes_cli, sqlite_ledger, "--checkpoint", other_cp)


def test_other_verifier_key(
    custodes_cli: Callable[..., Any], any_ledger: Built, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    assert custodes_cli("ledger", "init", "--db", other).returncode == 0
    other_vkey = custodes_cli("ledger", "key", "--db", other).stdout.strip()
    line = _verify(custodes_cli, any_ledger, "--key", other_vkey)
    assert "trusted" in line
    vkey_file = tmp_path / "other.vkey"
    vkey_file.write_text(other_vkey + "\n")
    _verify(custodes_cli, any_ledger, "--key", vkey_file)
    ok = custodes_cli("ledger", "verify", "--db", any_ledger.target.db, "--key", any_ledger.vkey)
    assert ok.returncode == 0, ok.stderr


def test_substituted_ledger_and_key(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built, tmp_path: Path
) -> None:
    # The whole database replaced by one with the same origin under a new key: it verifies
    # against the key it records, not against the verifier key or a checkpoint kept elsewhere.
    db = Path(sqlite_ledger.target.db)
    fake = tmp_path / "fake" / "ledger.db"
    fake.parent.mkdir()
    with Ledger.create(fake, name="example.com/tamper") as led:
        led.append_many([{"decision": "allow", "seq": i} for i in range(SIZE)])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(fake, db)
    assert custodes_cli("ledger", "verify", "--db", db).returncode == 0
    _verify(custodes_cli, sqlite_ledger, "--key", sqlite_ledger.vkey)
    _verify(custodes_cli, sqlite_ledger, "--checkpoint", sqlite_ledger.early)


# -- appending to a tampered ledger ------------------------------------------------------------


# Regressions: each of these once failed (a crash, a traceback or the wrong exit code), as the
# comments say; they pin the fixed behaviour.


def test_append_refuses_rows_in_its_way(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    db = any_ledger.target.db
    leaf = canonical_simple(
        {"decision": "allow", "index": SIZE, "recorded_at": "2030-01-01T00:00:00.000000Z"}
    )
    _sql(
        db,
        "INSERT INTO tail (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
        (SIZE, leaf, leaf_hash(leaf)),
    )
    proc = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    # On PostgreSQL the message used to carry psycopg's multi-line text ("…\nDETAIL:  Key
    # (idx)=(11) already exists."): two stderr lines where the contract says one.
    assert_cli_error(proc, 2)
    assert proc.stdout == ""
    ((size,),) = _sql(db, "SELECT size FROM tree")
    assert size == SIZE
    assert _row(db, SIZE)[0] == leaf


@pytest.mark.parametrize(
    ("statement", "codes", "named"),
    [
        # What the sqlite3 shell writes for a plain string literal: a TEXT value in the BLOB
        # column. verify used to crash: "internal error: TypeError: string argument without an
        # encoding", exit 3.
        ("UPDATE tail SET leaf = CAST(leaf AS TEXT) WHERE idx = 5", (1,), "entry 5"),
        ("UPDATE tail SET leaf_hash = hex(leaf_hash) WHERE idx = 5", (1,), "entry 5"),
        # Used to be "internal error: ValueError: invalid literal for int() with base 10:
        # 'eleven'".
        ("UPDATE tree SET size = 'eleven'", (1, 2), ""),
        # The stored checkpoint is not a signed note: used to exit 2 (usage error) with "signed
        # note has no blank line before its signatures", as if the user had given a bad file.
        ("UPDATE tree SET checkpoint = 42", (1,), "checkpoint"),
        ("UPDATE tree SET checkpoint = 'garbage'", (1,), "checkpoint"),
    ],
    ids=[
        "leaf as text",
        "leaf_hash as text",
        "size as text",
        "checkpoint as integer",
        "checkpoint as garbage",
    ],
)
def test_values_of_the_wrong_type_fail_verification_cleanly(
    custodes_cli: Callable[..., Any],
    sqlite_ledger: Built,
    statement: str,
    codes: tuple[int, ...],
    named: str,
) -> None:
    _sql(sqlite_ledger.target.db, statement)
    proc = custodes_cli("ledger", "verify", "--db", sqlite_ledger.target.db)
    assert proc.returncode in codes, proc.stderr
    line = assert_cli_error(proc, proc.returncode)
    assert "internal error" not in line
    assert named in line


# -- bundles and tiles (the 779-entry fixture) -------------------------------------------------

BIG = 3 * 256 + 11
BIG_EARLY = 300


def _build_big(target: LedgerDb, tmp: Path) -> Built:
    init = run_cli("ledger", "init", *target.init_args(), "--name", "example.com/tamper-big")
    assert init.returncode == 0, init.stderr
    first = run_cli("ledger", "append", "--db", target.db, input=_lines(0, BIG_EARLY))
    assert first.returncode == 0, first.stderr
    early = tmp / "early.checkpoint"
    early.write_text(run_cli("ledger", "checkpoint", "--db", target.db).stdout)
    second = run_cli(
        "ledger", "append", "--db", target.db, input=_lines(BIG_EARLY, BIG - BIG_EARLY)
    )
    assert second.returncode == 0, second.stderr
    latest = tmp / "latest.checkpoint"
    latest.write_text(run_cli("ledger", "checkpoint", "--db", target.db).stdout)
    assert parse_checkpoint(latest.read_text()).size == BIG
    vkey = run_cli("ledger", "key", "--db", target.db).stdout.strip()
    ok = run_cli("ledger", "verify", "--db", target.db, "--checkpoint", early, "--key", vkey)
    assert ok.returncode == 0, ok.stderr
    return Built(target, early, latest, vkey, tmp)


@pytest.fixture(scope="module")
def big_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("tamper-big-sqlite")
    return _build_big(LedgerDb("sqlite", str(tmp / "ledger.db"), None), tmp)


@pytest.fixture(scope="module")
def big_pg_template(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, str]:
    tmp = tmp_path_factory.mktemp("tamper-big-pg")
    name = f"tamper_big_template_{os.getpid()}"
    _pg_admin(pg_server, f'CREATE DATABASE "{name}"')
    built = _build_big(LedgerDb("postgres", pg_server.url(name), tmp / "ledger.key"), tmp)
    return built, name


@pytest.fixture
def big_sqlite(big_sqlite_template: Built, tmp_path: Path) -> Built:
    return _sqlite_copy(big_sqlite_template, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def big_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Built:
    if request.param == "sqlite":
        return _sqlite_copy(request.getfixturevalue("big_sqlite_template"), tmp_path)
    pg_server = request.getfixturevalue("pg_server")
    template, template_name = request.getfixturevalue("big_pg_template")
    name = f"tamper_big_{os.getpid()}_{next(_copies)}"
    _pg_admin(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    shutil.copyfile(template.target.key_path, tmp_path / "ledger.key")
    return _copy(template, tmp_path, pg_server.url(name))


def _bundle(db: str, k: int) -> tuple[list[bytes], list[bytes]]:
    """The leaves of bundle ``k`` and its leaf hash tile, read with the plain driver."""
    ((leaves, ends),) = _sql(db, "SELECT leaves, ends FROM bundles WHERE idx = ?", (k,))
    ((hashes,),) = _sql(db, "SELECT hashes FROM tiles WHERE level = 0 AND idx = ?", (k,))
    offsets = [int.from_bytes(bytes(ends)[4 * j : 4 * j + 4], "little") for j in range(256)]
    starts = [0, *offsets[:-1]]
    blob, digests = bytes(leaves), bytes(hashes)
    return (
        [blob[a:b] for a, b in zip(starts, offsets, strict=True)],
        [digests[32 * j : 32 * j + 32] for j in range(256)],
    )


def _put_bundle(db: str, k: int, leaves: list[bytes], hashes: list[bytes]) -> None:
    ends, pos = b"", 0
    for leaf in leaves:
        pos += len(leaf)
        ends += pos.to_bytes(4, "little")
    _sql(db, "UPDATE bundles SET leaves = ?, ends = ? WHERE idx = ?", (b"".join(leaves), ends, k))
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 0 AND idx = ?", (b"".join(hashes), k))


def _forge(leaf: bytes) -> bytes:
    data = json.loads(leaf)
    data["decision"] = "forged"
    return canonical_simple(data)


def _level8(db: str) -> list[bytes]:
    """The level-8 node hashes of the full bundles, recomputed from their leaf hash tiles."""
    rows = _sql(db, "SELECT hashes FROM tiles WHERE level = 0 ORDER BY idx")
    out = []
    for (blob,) in rows:
        blob = bytes(blob)
        if len(blob) == 32 * 256:  # the tail's partial tile has no node above it yet
            out.append(mth([blob[32 * j : 32 * j + 32] for j in range(256)]))
    return out


def test_bundled_changed_leaf(custodes_cli: Callable[..., Any], big_ledger: Built) -> None:
    db = big_ledger.target.db
    leaves, hashes = _bundle(db, 1)
    leaves[44] = _forge(leaves[44])  # entry 300
    _put_bundle(db, 1, leaves, hashes)
    line = _verify(custodes_cli, big_ledger)
    assert "entry 300:" in line
    assert "leaf hash" in line


def test_bundled_changed_leaf_and_hash_breaks_the_node_above(
    custodes_cli: Callable[..., Any], big_ledger: Built
) -> None:
    db = big_ledger.target.db
    leaves, hashes = _bundle(db, 1)
    leaves[44] = _forge(leaves[44])
    hashes[44] = leaf_hash(leaves[44])
    _put_bundle(db, 1, leaves, hashes)
    line = _verify(custodes_cli, big_ledger)
    assert "tree node (level 8, index 1)" in line  # the root of bundle 1, in tile (1, 0)
    assert "changed" in line


def _rewrite_bundled(db: str, index: int) -> None:
    """Forge entry ``index`` (in a full bundle), its leaf hash and the level-1 tile above."""
    k, j = divmod(index, 256)
    leaves, hashes = _bundle(db, k)
    leaves[j] = _forge(leaves[j])
    hashes[j] = leaf_hash(leaves[j])
    _put_bundle(db, k, leaves, hashes)
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 1 AND idx = 0", (b"".join(_level8(db)),))


def test_bundled_rewrite_with_recomputed_tiles_fails_on_the_signed_root(
    custodes_cli: Callable[..., Any], big_ledger: Built
) -> None:
    _rewrite_bundled(big_ledger.target.db, 3)
    line = _verify(custodes_cli, big_ledger)
    assert "root" in line
    assert "checkpoint" in line


def test_bundled_append_after_a_rewrite_does_not_launder_it(
    custodes_cli: Callable[..., Any], big_ledger: Built
) -> None:
    # Leaf, leaf hash and the tile above recomputed: the next ordinary append must not fold
    # the rewritten right edge into a root it signs.
    db = big_ledger.target.db
    _rewrite_bundled(db, 600)
    _verify(custodes_cli, big_ledger)
    appended = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    assert "does not match its signed checkpoint" in assert_cli_error(appended, 1)
    ((size,),) = _sql(db, "SELECT size FROM tree")
    assert size == BIG


def test_bundled_deleted_bundle(custodes_cli: Callable[..., Any], big_ledger: Built) -> None:
    _sql(big_ledger.target.db, "DELETE FROM bundles WHERE idx = 1")
    line = _verify(custodes_cli, big_ledger)
    assert "entry 256 is missing" in line


def test_bundled_swapped_entries(custodes_cli: Callable[..., Any], big_ledger: Built) -> None:
    db = big_ledger.target.db
    leaves, hashes = _bundle(db, 2)
    leaves[3], leaves[4] = leaves[4], leaves[3]
    hashes[3], hashes[4] = hashes[4], hashes[3]
    _put_bundle(db, 2, leaves, hashes)
    line = _verify(custodes_cli, big_ledger)
    assert "entry 515:" in line
    assert "index 516" in line


def test_bundled_offsets_changed(custodes_cli: Callable[..., Any], big_sqlite: Built) -> None:
    db = big_sqlite.target.db
    ((ends,),) = _sql(db, "SELECT ends FROM bundles WHERE idx = 0")
    ends = bytearray(ends)
    ends[40:44] = (10**6).to_bytes(4, "little")  # entry 10 ends beyond the bundle
    _sql(db, "UPDATE bundles SET ends = ? WHERE idx = 0", (bytes(ends),))
    line = _verify(custodes_cli, big_sqlite)
    assert "entry 10:" in line


def test_bundled_tail_row_beside_a_bundle(
    custodes_cli: Callable[..., Any], big_sqlite: Built
) -> None:
    db = big_sqlite.target.db
    leaves, hashes = _bundle(db, 0)
    _sql(db, "INSERT INTO tail (idx, leaf, leaf_hash) VALUES (5, ?, ?)", (leaves[5], hashes[5]))
    line = _verify(custodes_cli, big_sqlite)
    assert "entry 5 has a second row" in line


def test_bundled_changed_tile_node(custodes_cli: Callable[..., Any], big_ledger: Built) -> None:
    db = big_ledger.target.db
    level8 = _level8(db)
    level8[1] = leaf_hash(b"x")
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 1 AND idx = 0", (b"".join(level8),))
    line = _verify(custodes_cli, big_ledger)
    assert "tree node (level 8, index 1)" in line


def test_bundled_deleted_tile(custodes_cli: Callable[..., Any], big_sqlite: Built) -> None:
    _sql(big_sqlite.target.db, "DELETE FROM tiles WHERE level = 1 AND idx = 0")
    line = _verify(custodes_cli, big_sqlite)
    assert "tree node (level 8, index 0) is missing" in line


def test_bundled_tile_added_beyond_the_tree(
    custodes_cli: Callable[..., Any], big_sqlite: Built
) -> None:
    _sql(
        big_sqlite.target.db,
        "INSERT INTO tiles (level, idx, hashes) VALUES (2, 0, ?)",
        (leaf_hash(b"x"),),
    )
    line = _verify(custodes_cli, big_sqlite)
    assert "tree node (level 16, index 0) lies beyond" in line


def test_bundled_careful_truncation_is_a_rollback(
    custodes_cli: Callable[..., Any], big_sqlite: Built
) -> None:
    # Truncated to 512 entries: bundles, tiles, tail and size all agree; the signature does not.
    db = big_sqlite.target.db
    level8 = _level8(db)
    _sql(db, "DELETE FROM bundles WHERE idx = 2")
    _sql(db, "DELETE FROM tiles WHERE level = 0 AND idx >= 2")
    _sql(db, "DELETE FROM tail")
    _sql(db, "UPDATE tiles SET hashes = ? WHERE level = 1 AND idx = 0", (b"".join(level8[:2]),))
    _sql(db, "UPDATE tree SET size = 512")
    line = _verify(custodes_cli, big_sqlite)
    assert str(BIG) in line
    assert "512" in line
    assert "rolled back" in line


def test_bundled_append_and_prove_with_a_missing_edge_tile_fail_cleanly(
    custodes_cli: Callable[..., Any], big_ledger: Built
) -> None:
    # Tile (1, 0) holds node (9, 0), on the right edge of the 779-entry tree.
    db = big_ledger.target.db
    _sql(db, "DELETE FROM tiles WHERE level = 1 AND idx = 0")
    proved = custodes_cli("ledger", "prove", "--db", db, "--index", "0")
    line = assert_cli_error(proved, 1)
    assert "tree node (level 8, index 1)" in line
    assert "missing" in line
    proc = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    line = assert_cli_error(proc, 1)
    assert "right edge" in line
    ((size,),) = _sql(db, "SELECT size FROM tree")
    assert size == BIG


def test_bundled_consistency_and_proofs_still_verify(
    custodes_cli: Callable[..., Any], big_ledger: Built
) -> None:
    # The untouched copy: proofs read across bundles, tiles and tail rows.
    db = big_ledger.target.db
    rows, size, _ = raw_rows(db)
    assert size == BIG
    assert [index for index, _, _ in rows] == list(range(BIG))
    digests = [digest for _, _, digest in rows]
    assert all(leaf_hash(leaf) == digest for _, leaf, digest in rows)
    for index in (0, 255, 256, 300, 767, 768, BIG - 1):
        proc = custodes_cli("ledger", "prove", "--db", db, "--index", str(index), "--json")
        assert proc.returncode == 0, proc.stderr
        proof = json.loads(proc.stdout)
        assert [bytes.fromhex(h) for h in proof["hashes"]] == path(index, digests)
    proc = custodes_cli("ledger", "consistency", "--db", db, "--old", str(BIG_EARLY), "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [bytes.fromhex(h) for h in shown["hashes"]] == consistency(BIG_EARLY, digests)


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("UPDATE bundles SET leaves = CAST(leaves AS TEXT) WHERE idx = 1", "entry 256"),
        ("UPDATE tiles SET hashes = 'x' WHERE level = 1 AND idx = 0", "level 1, index 0"),
        ("UPDATE bundles SET ends = x'00' WHERE idx = 2", "entry 512"),
    ],
    ids=["leaves as text", "tile as text", "short offsets"],
)
def test_bundled_values_of_the_wrong_type_fail_verification_cleanly(
    custodes_cli: Callable[..., Any], big_sqlite: Built, statement: str, named: str
) -> None:
    _sql(big_sqlite.target.db, statement)
    proc = custodes_cli("ledger", "verify", "--db", big_sqlite.target.db)
    line = assert_cli_error(proc, 1)
    assert "internal error" not in line
    assert named in line


def test_a_ledger_of_the_old_format_gives_a_one_line_error(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # Schema 1 stored one row per entry and per node; custodes now refuses it by name.
    db = sqlite_ledger.target.db
    _sql(db, "UPDATE meta SET value = '1' WHERE key = 'schema'")
    for args in (("verify",), ("append",), ("prove", "--index", "0")):
        proc = custodes_cli("ledger", *args, "--db", db, input='{"a": 1}\n')
        line = assert_cli_error(proc, 2)
        assert "schema 1" in line
        assert "before bundled storage" in line
