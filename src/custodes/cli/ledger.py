"""``custodes ledger …``: create, append to, prove and verify the decision ledger.

The JSON these commands print is a contract other tools parse; keep it stable.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

import click

from custodes.errors import InvalidEntry, MalformedNote, UsageError
from custodes.ledger.entry import LeafTemplate, template_from_line
from custodes.ledger.log import Ledger
from custodes.ledger.note import Verifier
from custodes.ledger.verify import verify_ledger

__all__ = ["ledger"]

DEFAULT_DB = os.path.join(".custodes", "ledger.db")
_GROUP = 1024

db_option = click.option(
    "--db",
    "db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="SQLite file, or postgresql://user@host/dbname. Env: CUSTODES_LEDGER.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, separators=(", ", ": ")))


def _hex(data: bytes) -> str:
    return data.hex()


def _echo_hashes(hashes: list[str]) -> None:
    for number, digest in enumerate(hashes):
        click.echo(f"  {number:2d} {digest}")


@click.group()
def ledger() -> None:
    """The tamper-evident decision ledger.

    An append-only log of JSON entries in an RFC 9162 Merkle tree (SHA-256). Every append is
    durable before it is acknowledged and is covered by a C2SP checkpoint signed with the
    ledger's Ed25519 key; proofs need O(log n) reads.

    \b
    Keep a checkpoint and the verifier key somewhere else; later,
      custodes ledger verify --db DB --checkpoint OLD --key VERIFIER
    proves nothing recorded since was changed, removed or rolled back.
    """


@ledger.command()
@db_option
@click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signing key file: used if it exists, created (mode 0600) if not. "
    "Default for SQLite: DB.key beside the database.",
)
@click.option(
    "--name", "name", metavar="ORIGIN", help="Log origin and key name, e.g. example.com/audit."
)
@click.option(
    "--keep-payloads",
    is_flag=True,
    help="Keep clear payloads (prompts, completions) in the erasable payload store; "
    "by default only their salted digests are recorded.",
)
def init(db: str, key: Path | None, name: str | None, keep_payloads: bool) -> int:
    """Create a ledger and its signing key."""
    if db == DEFAULT_DB:
        Path(DEFAULT_DB).parent.mkdir(exist_ok=True)
    with Ledger.create(db, name=name, key=key, keep_payloads=keep_payloads) as led:
        click.echo(f"created ledger {led.origin} at {led.url}")
        click.echo(f"signing key:  {led.meta.key_path}  (keep it secret; mode 0600)")
        click.echo(f"verifier key: {led.verifier.to_string()}")
    return 0


MAX_LINE = 16 << 20


def _read_lines(fd: int, out: queue.Queue[tuple[int, bytes | None] | None]) -> None:
    """Put ``(line number, line)`` for each stdin line, ``(n, None)`` for an overlong one.

    Raw reads on the file descriptor, not sys.stdin: a daemon thread blocked inside a buffered
    reader's lock makes the interpreter abort at exit when the command stops early.
    """
    parts: list[bytes] = []
    held = 0
    number = 0
    try:
        while chunk := os.read(fd, 1 << 16):
            pieces = chunk.split(b"\n")
            for piece in pieces[:-1]:
                number += 1
                line = b"".join([*parts, piece]) if parts else piece
                parts, held = [], 0
                out.put((number, line))
            tail = pieces[-1]
            if tail:
                parts.append(tail)
                held += len(tail)
                if held > MAX_LINE:
                    out.put((number + 1, None))
                    return
        if parts:
            out.put((number + 1, b"".join(parts)))
    except OSError:
        pass  # stdin closed under us: the end of input
    finally:
        out.put(None)


@ledger.command()
@db_option
@click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signing key file, if not the one recorded at init.",
)
def append(db: str, key: Path | None) -> int:
    """Append JSON objects read from stdin, one per line.

    Prints {"index": N, "leaf_hash": "<hex>"} per entry once it is durable. Lines that
    arrive together are committed together (group commit). A line that is not a JSON object
    stops the command with exit 2, after the valid lines before it were appended.
    """
    lines: queue.Queue[tuple[int, bytes | None] | None] = queue.Queue(maxsize=4 * _GROUP)
    with Ledger.open(db, key=key) as led:
        led.signer()  # fail on a missing or wrong key before reading anything
        threading.Thread(target=_read_lines, args=(sys.stdin.fileno(), lines), daemon=True).start()
        failure: UsageError | None = None
        finished = False
        while not finished and failure is None:
            batch: list[LeafTemplate] = []
            item = lines.get()
            while True:
                if item is None:
                    finished = True
                    break
                number, raw = item
                if raw is None:
                    failure = InvalidEntry(
                        f"stdin line {number} is longer than {MAX_LINE >> 20} MiB",
                        hint="record large payloads through the API, which keeps only digests",
                    )
                    break
                try:
                    text = raw.decode("utf-8")
                    if text.strip():
                        batch.append(template_from_line(text))
                except UnicodeDecodeError:
                    failure = InvalidEntry(f"stdin line {number}: not UTF-8 text")
                    break
                except InvalidEntry as exc:
                    failure = InvalidEntry(f"stdin line {number}: {exc.message}", hint=exc.hint)
                    break
                if len(batch) >= _GROUP:
                    break
                try:
                    item = lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                receipts = led.append_many(batch)
                out = sys.stdout
                for receipt in receipts:
                    out.write(
                        f'{{"index": {receipt.index}, "leaf_hash": "{receipt.leaf_hash.hex()}"}}\n'
                    )
                out.flush()
        if failure is not None:
            raise failure
    return 0


@ledger.command()
@db_option
def checkpoint(db: str) -> int:
    """Print the latest signed checkpoint (C2SP tlog-checkpoint, signed note)."""
    with Ledger.open(db) as led:
        click.echo(led.checkpoint(), nl=False)
    return 0


@ledger.command()
@db_option
def key(db: str) -> int:
    """Print the verifier key: <name>+<key id>+<base64 public key>."""
    with Ledger.open(db) as led:
        click.echo(led.verifier.to_string())
    return 0


@ledger.command()
@db_option
@click.option("--index", "index", type=int, required=True, help="The entry's index.")
@json_option
def entry(db: str, index: int, as_json: bool) -> int:
    """Print one entry with its canonical leaf bytes and leaf hash."""
    with Ledger.open(db) as led:
        found = led.entry(index)
    obj = {
        "index": found.index,
        "leaf": base64.b64encode(found.leaf).decode(),
        "leaf_hash": _hex(found.leaf_hash),
        "entry": found.data,
    }
    if as_json:
        _emit(obj)
    else:
        click.echo(f"index      {found.index}")
        click.echo(f"leaf_hash  {_hex(found.leaf_hash)}")
        click.echo(
            "entry      "
            + json.dumps(found.data, indent=2, ensure_ascii=False).replace("\n", "\n           ")
        )
    return 0


@ledger.command()
@db_option
@click.option("--index", "index", type=int, required=True, help="The entry to prove.")
@click.option("--size", "size", type=int, help="Tree size to prove against (default: current).")
@json_option
def prove(db: str, index: int, size: int | None, as_json: bool) -> int:
    """Print the inclusion proof of an entry (RFC 9162 §2.1.3)."""
    with Ledger.open(db) as led:
        proof = led.prove(index, size)
    hashes = [_hex(h) for h in proof.hashes]
    obj = {
        "index": proof.index,
        "size": proof.size,
        "leaf_hash": _hex(proof.leaf_hash),
        "hashes": hashes,
        "root": _hex(proof.root),
    }
    if as_json:
        _emit(obj)
    else:
        click.echo(
            f"entry {proof.index} is in the tree of {proof.size} entries, root {obj['root']}"
        )
        click.echo(f"leaf_hash {obj['leaf_hash']}")
        _echo_hashes(hashes)
    return 0


@ledger.command()
@db_option
@click.option("--old", "old", type=int, required=True, help="The earlier tree size.")
@click.option("--new", "new", type=int, help="The later tree size (default: current).")
@json_option
def consistency(db: str, old: int, new: int | None, as_json: bool) -> int:
    """Print the consistency proof between two tree sizes (RFC 9162 §2.1.4)."""
    with Ledger.open(db) as led:
        proof = led.consistency(old, new)
    hashes = [_hex(h) for h in proof.hashes]
    obj = {
        "old_size": proof.old_size,
        "new_size": proof.new_size,
        "hashes": hashes,
        "old_root": _hex(proof.old_root),
        "new_root": _hex(proof.new_root),
    }
    if as_json:
        _emit(obj)
    else:
        click.echo(f"the tree of {proof.old_size} entries ({obj['old_root']})")
        click.echo(f"is a prefix of the tree of {proof.new_size} entries ({obj['new_root']})")
        _echo_hashes(hashes)
    return 0


def _read_text(value: str, what: str) -> str:
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{what} file {value} does not exist", hint="check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} file {value}: {exc}") from exc


def _verifier(value: str) -> Verifier:
    text = value if "+" in value and not Path(value).exists() else _read_text(value, "verifier key")
    try:
        return Verifier.from_string(text.strip())
    except MalformedNote as exc:
        raise MalformedNote(f"--key: {exc.message}", hint=exc.hint) from exc


@ledger.command()
@db_option
@click.option(
    "--checkpoint",
    "checkpoint_file",
    metavar="FILE",
    help="An earlier signed checkpoint to prove this ledger extends ('-' for stdin).",
)
@click.option(
    "--key",
    "verifier_key",
    metavar="VERIFIER",
    help="The trusted verifier key, or a file holding it (default: the key the ledger records).",
)
@json_option
def verify(db: str, checkpoint_file: str | None, verifier_key: str | None, as_json: bool) -> int:
    """Recheck every entry, node and signature; exit 1 naming the first failure.

    With --checkpoint, also prove the ledger is an extension of that earlier checkpoint, which
    catches rollback and rewritten history. With --key, trust only that verifier key.
    """
    checkpoint_text = _read_text(checkpoint_file, "checkpoint") if checkpoint_file else None
    verifier = _verifier(verifier_key) if verifier_key else None
    progress = None
    if sys.stderr.isatty():

        def progress(done: int, total: int) -> None:
            click.echo(f"\rchecked {done:,} of {total:,} entries", err=True, nl=False)

    with Ledger.open(db) as led:
        try:
            report = verify_ledger(
                led, checkpoint=checkpoint_text, verifier=verifier, progress=progress
            )
        finally:
            if progress is not None:
                click.echo("", err=True)
        origin = led.origin
    if as_json:
        _emit(
            {
                "ok": True,
                "size": report.size,
                "root": _hex(report.root),
                "origin": origin,
                "extends_checkpoint": report.earlier_checkpoint_size,
            }
        )
    else:
        click.echo(f"ok: {report.size} entries verified, root {_hex(report.root)}")
        click.echo(f"ok: latest checkpoint of {origin} signed and matching")
        if report.earlier_checkpoint_size is not None:
            click.echo(
                f"ok: extends the given checkpoint of {report.earlier_checkpoint_size} entries"
            )
    return 0


@ledger.command()
@db_option
@click.option("--index", "index", type=int, required=True, help="The entry whose payloads go.")
def erase(db: str, index: int) -> int:
    """Erase an entry's clear payloads and salts (right to erasure).

    The entry and its digests stay in the tree, so the ledger still verifies; the digests can
    no longer be linked to any content.
    """
    with Ledger.open(db) as led:
        count = led.erase(index)
    click.echo(f"erased {count} payload(s) of entry {index}")
    return 0
