"""Tampering behind custodes' back, caught by ``custodes ledger verify`` (end to end, CLI).

The ledger is built with the CLI, edited with the plain database driver, and verified with the
CLI: every edit must give exit 1 and a single stderr line naming what failed.

The fixture ledger holds 11 entries appended in two commits (5, then 6), so its stored tree has
level-1 nodes 0…4, level-2 nodes 0…1, level-3 node 0, and entry 10 under no stored node.
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
    leaf_hash,
    node_hash,
    parse_checkpoint,
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
    ((leaf, digest),) = _sql(db, "SELECT leaf, leaf_hash FROM entries WHERE idx = ?", (index,))
    return bytes(leaf), bytes(digest)


def _rewrite_entry_and_nodes(db: str, index: int) -> None:
    """Forge entry ``index`` and recompute its leaf hash and every node above it."""
    leaf = _forged_leaf(db, index)
    _sql(
        db,
        "UPDATE entries SET leaf = ?, leaf_hash = ? WHERE idx = ?",
        (leaf, leaf_hash(leaf), index),
    )
    row = [bytes(h) for (h,) in _sql(db, "SELECT leaf_hash FROM entries ORDER BY idx")]
    level = 0
    while len(row) >= 2:
        level += 1
        row = [node_hash(row[2 * i], row[2 * i + 1]) for i in range(len(row) // 2)]
        for idx, digest in enumerate(row):
            _sql(db, "UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?", (digest, level, idx))


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
    _sql(db, "UPDATE entries SET leaf = ? WHERE idx = 5", (_forged_leaf(db, 5),))
    line = _verify(custodes_cli, any_ledger)
    assert "entry 5:" in line
    assert "leaf hash" in line


def test_changed_leaf_and_hash_breaks_the_node_above(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    db = any_ledger.target.db
    leaf = _forged_leaf(db, 5)
    _sql(db, "UPDATE entries SET leaf = ?, leaf_hash = ? WHERE idx = 5", (leaf, leaf_hash(leaf)))
    line = _verify(custodes_cli, any_ledger)
    assert "tree node (level 1, index 2)" in line  # the parent of leaves 4 and 5


def test_changed_leaf_and_hash_under_no_stored_node(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # Entry 10 of 11 has no stored parent: only the signed root can catch the rewrite.
    db = sqlite_ledger.target.db
    leaf = _forged_leaf(db, 10)
    _sql(db, "UPDATE entries SET leaf = ?, leaf_hash = ? WHERE idx = 10", (leaf, leaf_hash(leaf)))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "root" in line
    assert "checkpoint" in line


def test_rewritten_leaf_with_recomputed_nodes_fails_on_the_signed_root(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # Everything a database editor can recompute, recomputed: leaf, leaf hash, every node above.
    db = sqlite_ledger.target.db
    _rewrite_entry_and_nodes(db, 3)
    line = _verify(custodes_cli, sqlite_ledger)
    assert "root" in line
    assert "checkpoint" in line


def test_deleted_middle_row(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    _sql(any_ledger.target.db, "DELETE FROM entries WHERE idx = 4")
    line = _verify(custodes_cli, any_ledger)
    assert "entry 4 is missing" in line


def test_swapped_rows(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    db = sqlite_ledger.target.db
    leaf2, hash2 = _row(db, 2)
    leaf3, hash3 = _row(db, 3)
    _sql(db, "UPDATE entries SET leaf = ?, leaf_hash = ? WHERE idx = 2", (leaf3, hash3))
    _sql(db, "UPDATE entries SET leaf = ?, leaf_hash = ? WHERE idx = 3", (leaf2, hash2))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "entry 2:" in line
    assert "index 3" in line


def test_swapped_leaves_only(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    db = sqlite_ledger.target.db
    leaf6, _ = _row(db, 6)
    leaf7, _ = _row(db, 7)
    _sql(db, "UPDATE entries SET leaf = ? WHERE idx = 6", (leaf7,))
    _sql(db, "UPDATE entries SET leaf = ? WHERE idx = 7", (leaf6,))
    line = _verify(custodes_cli, sqlite_ledger)
    assert "entry 6:" in line


def test_row_inserted_beyond_the_size(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    db = any_ledger.target.db
    leaf = canonical_simple(
        {"decision": "allow", "index": SIZE, "recorded_at": "2030-01-01T00:00:00.000000Z"}
    )
    _sql(
        db,
        "INSERT INTO entries (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
        (SIZE, leaf, leaf_hash(leaf)),
    )
    line = _verify(custodes_cli, any_ledger)
    assert f"entry {SIZE} lies beyond" in line


def test_truncated_rows(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    _sql(any_ledger.target.db, "DELETE FROM entries WHERE idx >= 8")
    line = _verify(custodes_cli, any_ledger)
    assert "entry 8 is missing" in line
    assert "truncated" in line


def test_truncated_rows_nodes_and_size(
    custodes_cli: Callable[..., Any], sqlite_ledger: Built
) -> None:
    # A careful truncation to 8 entries: rows, the nodes above them and the size all agree.
    db = sqlite_ledger.target.db
    _sql(db, "DELETE FROM entries WHERE idx >= 8")
    _sql(db, "DELETE FROM nodes WHERE idx * (1 << level) >= 8")
    _sql(db, "UPDATE tree SET size = 8")
    line = _verify(custodes_cli, sqlite_ledger)
    assert "11" in line
    assert "8" in line
    assert "rolled back" in line


# -- the nodes -------------------------------------------------------------------------------


def test_changed_node(custodes_cli: Callable[..., Any], any_ledger: Built) -> None:
    db = any_ledger.target.db
    _sql(db, "UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 1", (leaf_hash(b"x"),))
    line = _verify(custodes_cli, any_ledger)
    assert "tree node (level 2, index 1)" in line


def test_deleted_node(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    _sql(sqlite_ledger.target.db, "DELETE FROM nodes WHERE level = 3 AND idx = 0")
    line = _verify(custodes_cli, sqlite_ledger)
    assert "tree node (level 3, index 0)" in line
    assert "missing" in line


def test_node_added_beyond_the_tree(custodes_cli: Callable[..., Any], sqlite_ledger: Built) -> None:
    _sql(
        sqlite_ledger.target.db,
        "INSERT INTO nodes (level, idx, hash) VALUES (1, 5, ?)",
        (leaf_hash(b"x"),),
    )
    line = _verify(custodes_cli, sqlite_ledger)
    assert "tree node (level 1, index 5)" in line


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


# Known failures, kept on purpose (see the report). Last in the file, so -x reaches the rest.


def test_append_refuses_rows_in_its_way(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    db = any_ledger.target.db
    leaf = canonical_simple(
        {"decision": "allow", "index": SIZE, "recorded_at": "2030-01-01T00:00:00.000000Z"}
    )
    _sql(
        db,
        "INSERT INTO entries (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
        (SIZE, leaf, leaf_hash(leaf)),
    )
    proc = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    # On PostgreSQL the message carries psycopg's multi-line text ("…\nDETAIL:  Key (idx)=(11)
    # already exists."): two stderr lines where the contract says one.
    assert_cli_error(proc, 2)
    assert proc.stdout == ""
    ((size,),) = _sql(db, "SELECT size FROM tree")
    assert size == SIZE
    assert _row(db, SIZE)[0] == leaf


def test_append_with_a_missing_edge_node_fails_cleanly(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    # Node (3, 0) is on the right edge of the 11-entry tree. `prove` reports it missing as a
    # verification failure; `append` crashed with "internal error: KeyError: (3, 0)", exit 3.
    db = any_ledger.target.db
    _sql(db, "DELETE FROM nodes WHERE level = 3 AND idx = 0")
    proved = custodes_cli("ledger", "prove", "--db", db, "--index", "0")
    assert "tree node (level 3, index 0)" in assert_cli_error(proved, 1)
    proc = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    assert proc.returncode in (1, 2), proc.stderr
    line = assert_cli_error(proc, proc.returncode)
    assert "internal error" not in line
    ((size,),) = _sql(db, "SELECT size FROM tree")
    assert size == SIZE


def test_append_after_a_rewrite_does_not_launder_it(
    custodes_cli: Callable[..., Any], any_ledger: Built
) -> None:
    # Someone with write access to the database, but not the key, rewrites entry 3 and every
    # node above it. `verify` catches that (the signed root no longer matches) -- until the next
    # ordinary append: it folds the stored right-edge nodes into the new root and signs it, so
    # the forged history is now covered by a genuine signature and `verify` passes.
    # An append must not extend a tree whose stored root is not the signed one.
    db = any_ledger.target.db
    _rewrite_entry_and_nodes(db, 3)
    _verify(custodes_cli, any_ledger)  # caught before the next append

    appended = custodes_cli("ledger", "append", "--db", db, input='{"decision": "deny"}\n')
    after = custodes_cli("ledger", "verify", "--db", db)
    assert appended.returncode != 0 or after.returncode == 1, (
        "an append re-signed a rewritten history: verify now passes with entry 3 forged "
        f"({after.stdout.strip()!r})"
    )


@pytest.mark.parametrize(
    ("statement", "codes", "named"),
    [
        # What the sqlite3 shell writes for a plain string literal: a TEXT value in the BLOB
        # column. verify crashed: "internal error: TypeError: string argument without an
        # encoding", exit 3.
        ("UPDATE entries SET leaf = CAST(leaf AS TEXT) WHERE idx = 5", (1,), "entry 5"),
        ("UPDATE entries SET leaf_hash = hex(leaf_hash) WHERE idx = 5", (1,), "entry 5"),
        ("UPDATE nodes SET hash = 'x' WHERE level = 2 AND idx = 1", (1,), "level 2, index 1"),
        # "internal error: ValueError: invalid literal for int() with base 10: 'eleven'".
        ("UPDATE tree SET size = 'eleven'", (1, 2), ""),
        # The stored checkpoint is not a signed note: exit 2 (usage error) with "signed note
        # has no blank line before its signatures", as if the user had given a bad file.
        ("UPDATE tree SET checkpoint = 42", (1,), "checkpoint"),
        ("UPDATE tree SET checkpoint = 'garbage'", (1,), "checkpoint"),
    ],
    ids=[
        "leaf as text",
        "leaf_hash as text",
        "node as text",
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
