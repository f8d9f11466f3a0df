"""Crash safety: ``custodes ledger append`` killed with SIGKILL at random moments.

An acknowledgement line promises the entry is durable and covered by a signed checkpoint. Each
round starts the command on the same ledger, feeds it lines from a writer thread, kills it at a
random moment, and then checks that every acknowledged entry is there with the acknowledged
leaf hash and that the whole ledger still verifies; the next round appends to what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from custodes.ledger import Ledger
from ledgertools import ACK_RE, CUSTODES, LedgerDb, cli_env, cli_popen, leaf_hash, raw_rows

ROUNDS = {"sqlite": 25, "postgres": 12}


def _writer(proc: subprocess.Popen[bytes], round_no: int, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    assert proc.stdin is not None
    seq = 0
    try:
        while not stop.is_set():
            for _ in range(rng.choice((1, 1, 2, 3, 5, 10, 100))):
                line = json.dumps({"round": round_no, "seq": seq, "pad": "x" * rng.randrange(64)})
                proc.stdin.write(line.encode() + b"\n")
                proc.stdin.flush()
                seq += 1
            time.sleep(rng.uniform(0.001, 0.01))
    except (BrokenPipeError, OSError, ValueError):
        return  # the command was killed


def _reader(proc: subprocess.Popen[bytes], out: list[bytes]) -> None:
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(65536)
        if not chunk:
            return
        out.append(chunk)


def _run_round(target: LedgerDb, round_no: int, rng: random.Random) -> list[tuple[int, bytes]]:
    proc = cli_popen(
        "ledger", "append", "--db", target.db,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    chunks: list[bytes] = []
    stop = threading.Event()
    writer = threading.Thread(
        target=_writer, args=(proc, round_no, stop, rng.randrange(2**32)), daemon=True
    )
    reader = threading.Thread(target=_reader, args=(proc, chunks), daemon=True)
    writer.start()
    reader.start()
    # Start-up takes a few hundred milliseconds: some kills land before the first commit,
    # most during a stream of commits.
    time.sleep(rng.uniform(0.05, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stop.set()
    reader.join(timeout=30)
    writer.join(timeout=30)
    assert proc.stdin is not None
    assert proc.stdout is not None
    with contextlib.suppress(OSError):
        proc.stdin.close()
    proc.stdout.close()
    assert not reader.is_alive()
    assert not writer.is_alive()
    assert proc.returncode == -signal.SIGKILL
    text = b"".join(chunks).decode()
    lines = text.split("\n")
    # A line cut short by the kill was never a whole acknowledgement; every whole one counts.
    acks = []
    for line in lines[:-1]:
        match = ACK_RE.match(line)
        assert match, line
        acks.append((int(match[1]), bytes.fromhex(match[2])))
    return acks


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CUSTODES), *args], capture_output=True, text=True, timeout=120, env=cli_env(),
        check=False,
    )


@pytest.mark.slow
def test_sigkill_during_append_loses_no_acknowledged_entry(ledger_db: LedgerDb) -> None:
    seed = int(os.environ.get("CUSTODES_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    print(f"crash test seed {seed} (set CUSTODES_CRASH_SEED to replay)")
    with Ledger.create(ledger_db.db, key=ledger_db.key):
        pass

    acknowledged: dict[int, bytes] = {}
    rounds = ROUNDS[ledger_db.kind]
    started = time.monotonic()
    killed_before_first_ack = 0
    for round_no in range(rounds):
        size_before = len(raw_rows(ledger_db.db)[0])
        acks = _run_round(ledger_db, round_no, rng)
        if not acks:
            killed_before_first_ack += 1
        # One writer: this round's acknowledgements are consecutive from the old size on,
        # in the order of its input lines.
        assert [i for i, _ in acks] == list(range(size_before, size_before + len(acks)))
        for index, digest in acks:
            assert index not in acknowledged
            acknowledged[index] = digest

        rows, size, note = raw_rows(ledger_db.db)
        assert note is not None
        assert size == len(rows) >= len(acknowledged)
        stored = {idx: (leaf, digest) for idx, leaf, digest in rows}
        for index, digest in acknowledged.items():
            leaf, stored_hash = stored[index]
            assert stored_hash == digest, f"round {round_no}: entry {index} changed"
            assert leaf_hash(leaf) == digest
        for seq, (index, _) in enumerate(acks):
            data = json.loads(stored[index][0])
            assert (data["round"], data["seq"], data["index"]) == (round_no, seq, index)

        verify = _cli("ledger", "verify", "--db", ledger_db.db)
        assert verify.returncode == 0, f"round {round_no} (seed {seed}): {verify.stderr}"
        assert f"ok: {size} entries verified" in verify.stdout

    # The API sees the same thing, and the CLI's entry --json agrees on a sample.
    with Ledger.open(ledger_db.db) as led:
        for index, digest in acknowledged.items():
            assert led.entry(index).leaf_hash == digest
        final_size = led.size()
    for index in random.Random(seed).sample(sorted(acknowledged), min(5, len(acknowledged))):
        shown = _cli("ledger", "entry", "--db", ledger_db.db, "--index", str(index), "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["leaf_hash"] == acknowledged[index].hex()
    print(
        f"{rounds} kills on {ledger_db.kind} in {time.monotonic() - started:.1f}s: "
        f"{len(acknowledged)} acknowledged, {final_size} stored, "
        f"{killed_before_first_ack} rounds killed before the first acknowledgement"
    )
    assert len(acknowledged) > 0
