"""Test helpers: an independent RFC 9162 reference, note parsing, the console script.

Nothing here imports custodes: these are the reference implementations the tests compare
custodes against, written straight from RFC 9162, C2SP tlog-checkpoint and C2SP signed-note.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CUSTODES = Path(sys.executable).parent / "custodes"

ACK_RE = re.compile(r'^\{"index": (0|[1-9][0-9]*), "leaf_hash": "([0-9a-f]{64})"\}$')
RECORDED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CUSTODES_LEDGER", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    *args: str | os.PathLike[str],
    input: str | bytes | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``custodes ARGS…`` to completion; text-mode result (output decoded with replacement).

    ``input`` may be ``str`` or ``bytes`` (for invalid UTF-8).
    """
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [str(CUSTODES), *map(str, args)],
        input=data if data is not None else b"",
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(),
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def cli_popen(*args: str | os.PathLike[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``custodes ARGS…`` (binary pipes as given in ``kwargs``)."""
    return subprocess.Popen([str(CUSTODES), *map(str, args)], env=cli_env(), **kwargs)


@dataclass(frozen=True)
class LedgerDb:
    """Where a test ledger lives: ``db`` for --db, ``key`` for --key (None: SQLite's default)."""

    kind: str
    db: str
    key: Path | None

    @property
    def key_path(self) -> Path:
        """The signing key file custodes uses for this ledger."""
        return self.key if self.key is not None else Path(self.db + ".key")

    def init_args(self) -> list[str]:
        """``--db DB`` plus ``--key KEY`` when the store needs one."""
        args = ["--db", self.db]
        if self.key is not None:
            args += ["--key", str(self.key)]
        return args


# -- RFC 9162 §2.1, recursively, exactly as written ---------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes: list[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf m."""
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, hashes[:k]), mth(hashes[k:])]
    return [*path(m - k, hashes[k:]), mth(hashes[:k])]


def _subproof(m: int, hashes: list[bytes], b: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if b else [mth(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], b), mth(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), mth(hashes[:k])]


def consistency(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from the first m leaves (0 < m <= n)."""
    return _subproof(m, hashes, True)


def canonical_simple(obj: dict[str, Any]) -> bytes:
    """RFC 8785 for objects of ASCII keys, strings, small integers, booleans and null."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- C2SP checkpoints and signed notes -----------------------------------------------------------


@dataclass(frozen=True)
class ParsedCheckpoint:
    origin: str
    size: int
    root: bytes
    text: str
    signatures: list[tuple[str, bytes]]  # (key name, key id || signature)


def parse_checkpoint(note: str) -> ParsedCheckpoint:
    text, sep, block = note.partition("\n\n")
    assert sep, f"no blank line in {note!r}"
    text += "\n"
    lines = text.split("\n")
    assert len(lines) >= 4
    assert lines[-1] == ""
    sigs = []
    for line in block.splitlines():
        assert line.startswith("\u2014 "), line
        name, _, b64 = line[2:].partition(" ")
        sigs.append((name, base64.b64decode(b64, validate=True)))
    return ParsedCheckpoint(lines[0], int(lines[1]), base64.b64decode(lines[2]), text, sigs)


def note_signed_by(note: str, vkey: str) -> bool:
    """Is ``note`` validly signed by the verifier key ``name+hexid+base64(0x01||pub)``?"""
    name, hex_id, b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 1
    assert len(raw) == 33
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw[1:]).digest()[:4]
    assert key_id.hex() == hex_id
    parsed = parse_checkpoint(note)
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    for sig_name, blob in parsed.signatures:
        if sig_name == name and blob[:4] == key_id:
            try:
                public.verify(blob[4:], parsed.text.encode())
            except InvalidSignature:
                return False
            return True
    return False


def assert_cli_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The process exited ``code`` with one ``custodes: `` line on stderr; returns that line."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("custodes: "), proc.stderr
    return lines[0]


# -- reading a ledger's tables behind custodes' back ---------------------------------------------


def _bundle_rows(
    k: int, leaves: bytes, ends: bytes, hashes: bytes
) -> list[tuple[int, bytes, bytes]]:
    # The stored layout, read independently of custodes: 256 little-endian uint32 end offsets
    # relative to the bundle's start, and 256 leaf hashes of 32 bytes in tile (0, k).
    offsets = [int.from_bytes(ends[4 * j : 4 * j + 4], "little") for j in range(256)]
    starts = [0, *offsets[:-1]]
    return [
        (256 * k + j, leaves[starts[j] : offsets[j]], hashes[32 * j : 32 * j + 32])
        for j in range(256)
    ]


_RAW_BUNDLES = (
    "SELECT b.idx, b.leaves, b.ends, t.hashes FROM bundles b JOIN tiles t"
    " ON t.level = 0 AND t.idx = b.idx ORDER BY b.idx"
)


def raw_rows(db: str) -> tuple[list[tuple[int, bytes, bytes]], int, str | None]:
    """``(entries as (idx, leaf, leaf_hash), tree size, checkpoint)`` read with the plain driver.

    Entries come from the full bundles (with their leaf hash tiles), then the tail rows."""
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db) as conn:
            bundles = conn.execute(_RAW_BUNDLES).fetchall()
            rows = conn.execute("SELECT idx, leaf, leaf_hash FROM tail ORDER BY idx").fetchall()
            size, note = conn.execute("SELECT size, checkpoint FROM tree WHERE id = 1").fetchone()
    else:
        import sqlite3

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            bundles = conn.execute(_RAW_BUNDLES).fetchall()
            rows = conn.execute("SELECT idx, leaf, leaf_hash FROM tail ORDER BY idx").fetchall()
            size, note = conn.execute("SELECT size, checkpoint FROM tree WHERE id = 1").fetchone()
        finally:
            conn.close()
    out: list[tuple[int, bytes, bytes]] = []
    for k, leaves, ends, hashes in bundles:
        out.extend(_bundle_rows(int(k), bytes(leaves), bytes(ends), bytes(hashes)))
    out.extend((int(i), bytes(leaf), bytes(h)) for i, leaf, h in rows)
    return out, int(size), note
