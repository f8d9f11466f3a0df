"""Several OS processes appending to one ledger at once: one tree, no lost or duplicated entry.

Two shapes of writer, on both stores:

* ``custodes ledger append`` processes, each fed one line at a time (written and flushed by the
  parent), so the command's group commit sees batches of every size;
* ``spawn``-ed Python processes appending through the API from several threads each.

Afterwards the tables are read with the plain database driver and checked against every
acknowledgement, and ``custodes ledger verify`` must pass.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from custodes.ledger import Ledger
from ledgertools import (
    ACK_RE,
    CUSTODES,
    LedgerDb,
    cli_popen,
    leaf_hash,
    mth,
    parse_checkpoint,
    raw_rows,
)

PROCS = 4
PER_PROC = 2000
TOTAL = PROCS * PER_PROC

Acks = dict[int, list[tuple[int, bytes]]]  # writer id -> [(index, leaf_hash)] in input order


def _check_ledger(
    target: LedgerDb, acks: Acks, seq_of: Callable[[dict[str, Any]], tuple[int, int]]
) -> int:
    """Check the tables against the acknowledgements; returns the number of distinct commits.

    One commit stamps one ``recorded_at`` on its whole batch, so distinct stamps count commits.
    """
    rows, size, note = raw_rows(target.db)
    assert size == TOTAL
    assert [idx for idx, _, _ in rows] == list(range(TOTAL))
    by_index = {}
    stamps = set()
    for idx, leaf, digest in rows:
        assert leaf_hash(leaf) == digest, idx
        data = json.loads(leaf)
        assert data["index"] == idx
        by_index[idx] = (seq_of(data), digest)
        stamps.add(data["recorded_at"])
    acked = [index for mine in acks.values() for index, _ in mine]
    assert len(acked) == TOTAL
    assert len(set(acked)) == TOTAL
    for writer, mine in acks.items():
        assert len(mine) == PER_PROC
        for position, (index, digest) in enumerate(mine):
            assert by_index[index][1] == digest, (writer, position, index)
            assert by_index[index][0] == (writer, position), (writer, position, index)
    assert note is not None
    cp = parse_checkpoint(note)
    assert cp.size == TOTAL
    assert cp.root == mth([digest for _, _, digest in rows])
    return len(stamps)


def _cli_verify(target: LedgerDb) -> None:
    proc = subprocess.run(
        [str(CUSTODES), "ledger", "verify", "--db", target.db],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"ok: {TOTAL} entries verified" in proc.stdout


def _init(target: LedgerDb) -> None:
    with Ledger.create(target.db, key=target.key):
        pass


# -- CLI writers, fed one line at a time ---------------------------------------------------------


def _line(writer: int, seq: int) -> bytes:
    return json.dumps({"writer": writer, "seq": seq}).encode() + b"\n"


def _feed(proc: subprocess.Popen[bytes], writer: int, ready: threading.Event) -> None:
    # One line per write() and flush(). The first line alone, until its acknowledgement shows
    # the command is up (else the pipe fills during start-up and the first batch is all of
    # it); then bursts of mostly one to a few lines with short pauses, now and then a long
    # burst: the command sees batches of every size, interleaved with the other writers.
    rng = random.Random(writer)
    assert proc.stdin is not None
    proc.stdin.write(_line(writer, 0))
    proc.stdin.flush()
    if not ready.wait(timeout=60):
        return
    seq = 1
    while seq < PER_PROC:
        burst = rng.choice((1, 1, 1, 1, 2, 2, 3, 5, 8, 100))
        for _ in range(min(burst, PER_PROC - seq)):
            proc.stdin.write(_line(writer, seq))
            proc.stdin.flush()
            seq += 1
        time.sleep(rng.uniform(0, 0.008))
    proc.stdin.close()


def _drain(proc: subprocess.Popen[bytes], out: list[bytes], ready: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        ready.set()
    ready.set()


@pytest.mark.slow
def test_cli_appenders_one_line_at_a_time(ledger_db: LedgerDb) -> None:
    _init(ledger_db)
    procs = [
        cli_popen(
            "ledger", "append", "--db", ledger_db.db,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(PROCS)
    ]
    outputs: list[list[bytes]] = [[] for _ in procs]
    threads = []
    for writer, proc in enumerate(procs):
        ready = threading.Event()
        threads.append(threading.Thread(target=_feed, args=(proc, writer, ready), daemon=True))
        threads.append(
            threading.Thread(target=_drain, args=(proc, outputs[writer], ready), daemon=True)
        )
    # Meanwhile a reader verifies the whole ledger again and again: every snapshot it sees
    # must be one committed state (sizes only grow, every check passes).
    verifies: list[tuple[int, str]] = []
    writing = threading.Event()
    writing.set()

    def verify_loop() -> None:
        while writing.is_set():
            proc = subprocess.run(
                [str(CUSTODES), "ledger", "verify", "--db", ledger_db.db, "--json"],
                capture_output=True, text=True, timeout=120, check=False,
            )
            verifies.append((proc.returncode, proc.stdout if proc.returncode == 0 else proc.stderr))

    verifier = threading.Thread(target=verify_loop, daemon=True)
    started = time.monotonic()
    for t in threads:
        t.start()
    verifier.start()
    try:
        for t in threads:
            t.join(timeout=240)
            assert not t.is_alive(), "an appender hung"
        writing.clear()
        verifier.join(timeout=120)
        for proc in procs:
            proc.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    acks: Acks = {}
    for writer, proc in enumerate(procs):
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        mine = []
        for line in outputs[writer]:
            match = ACK_RE.match(line.decode().rstrip("\n"))
            assert match, line
            mine.append((int(match[1]), bytes.fromhex(match[2])))
        assert len(mine) == PER_PROC
        acks[writer] = mine
    commits = _check_ledger(ledger_db, acks, lambda d: (d["writer"], d["seq"]))
    print(
        f"{TOTAL} CLI appends on {ledger_db.kind} in {elapsed:.1f}s, {commits} commits, "
        f"{len(verifies)} concurrent verifies"
    )
    assert verifies
    sizes = []
    for code, out in verifies:
        assert code == 0, out
        sizes.append(json.loads(out)["size"])
    assert sizes == sorted(sizes)
    # Each commit stamps one recorded_at on its batch: fewer stamps than entries shows that
    # lines arriving together were committed together.
    assert commits < TOTAL
    _cli_verify(ledger_db)


# -- API writers in spawned processes ------------------------------------------------------------

THREADS = 4


def _api_worker(db: str, key: str | None, writer: int, results: Any) -> None:
    # Runs in a spawned process: THREADS threads share one Ledger (group commit in-process,
    # the store's lock across processes). Seq numbers are per writer, in acknowledgement order
    # per thread.
    try:
        per_thread = PER_PROC // THREADS
        acks: dict[int, list[tuple[int, str]]] = {}
        with Ledger.open(db, key=key) as led:

            def run(tid: int) -> None:
                mine = []
                for n in range(per_thread):
                    receipt = led.append({"writer": writer, "seq": tid * per_thread + n})
                    mine.append((receipt.index, receipt.leaf_hash.hex()))
                acks[tid] = mine

            threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        ordered = [ack for tid in range(THREADS) for ack in acks[tid]]
        results.put((writer, ordered, None))
    except BaseException as exc:
        results.put((writer, [], repr(exc)))


@pytest.mark.slow
def test_spawned_api_processes(ledger_db: LedgerDb) -> None:
    _init(ledger_db)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    key = str(ledger_db.key) if ledger_db.key is not None else None
    procs = [
        ctx.Process(target=_api_worker, args=(ledger_db.db, key, writer, results))
        for writer in range(PROCS)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    acks: Acks = {}
    try:
        for _ in procs:
            writer, ordered, error = results.get(timeout=240)
            assert error is None, f"writer {writer}: {error}"
            acks[writer] = [(index, bytes.fromhex(digest)) for index, digest in ordered]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    elapsed = time.monotonic() - started
    for mine in acks.values():
        assert len(mine) == PER_PROC
    commits = _check_ledger(ledger_db, acks, lambda d: (d["writer"], d["seq"]))
    print(f"{TOTAL} API appends on {ledger_db.kind} in {elapsed:.1f}s, {commits} commits")
    _cli_verify(ledger_db)
