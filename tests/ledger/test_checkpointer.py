"""The SQLite store's background WAL checkpointer across fork and process exit.

The checkpointer is a daemon thread with its own connection, started once the WAL passes a few
MiB. Here writers exit while theirs copies pages (normally, with ``os._exit`` and killed by
SIGKILL) beside a process that keeps appending with its own checkpointer running and forks
meanwhile. None of that may lose an acknowledged entry, break the tree or let the WAL grow
without bound.

A forked child never touches the ledger its parent has open: SQLite keeps its POSIX lock state
per process in memory, and a child (even with a connection of its own) inherits the parent's
picture of who holds which lock; found by this test's first version, whose children hung on a
write lock no process held. The children here check that forking and exiting leave the
parent's appends and checkpoints working. The forking runs in a fresh interpreter, not in
pytest's, whose threads would be copied into the children in whatever state they were.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from custodes.ledger import Ledger
from ledgertools import leaf_hash, raw_rows, run_cli

_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from custodes.ledger import Ledger

    db, no = sys.argv[1], int(sys.argv[2])
    PAD = "x" * 1500  # ~1.6 KiB entries: 3,000 of them pass the checkpointer's 4 MiB mark
    led = Ledger.open(db)
    receipts = led.append_many([{"who": f"writer-{no}", "seq": i, "pad": PAD} for i in range(3000)])
    sys.stdout.write("".join(f"{r.index} {r.leaf_hash.hex()}\\n" for r in receipts))
    sys.stdout.flush()
    if no % 3 == 0:
        os._exit(0)  # no cleanup at all: the checkpointer thread just vanishes
    if no % 3 == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(0)  # interpreter shutdown with the daemon thread possibly mid-checkpoint
    """
)

_PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, threading
    from custodes.ledger import Ledger

    db, writer_script = sys.argv[1], sys.argv[2]
    PAD = "x" * 1500
    parent = Ledger.open(db)
    acked = list(parent.append_many([{"who": "parent", "pad": PAD}] * 3000))  # checkpointer running
    stop = threading.Event()

    def keep_appending():
        while not stop.is_set():
            acked.extend(parent.append_many([{"who": "parent", "pad": PAD}] * 500))

    appender = threading.Thread(target=keep_appending)
    appender.start()
    writers = [
        subprocess.Popen([sys.executable, "-c", writer_script, db, str(no)],
                         stdout=subprocess.PIPE, text=True)
        for no in range(6)
    ]
    codes = []
    for no in range(6):  # forked while the appender and the checkpointer work
        pid = os.fork()
        if pid == 0:
            if no % 2:
                sys.exit(0)  # runs the interpreter's exit handlers in the child
            os._exit(0)
        codes.append(os.waitpid(pid, 0)[1])
    outputs = [w.communicate()[0] for w in writers]
    stop.set()
    appender.join()
    acked.extend(parent.append_many([{"who": "parent", "last": True}]))  # still appends
    parent.close()
    print(" ".join(str(c) for c in codes + [w.returncode for w in writers]))
    print(" ".join(f"{r.index}:{r.leaf_hash.hex()}" for r in acked))
    for out in outputs:
        sys.stdout.write(out)
    """
)


def test_fork_and_exit_with_the_checkpointer_running(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    Ledger.create(db, name="example.com/checkpointer").close()
    proc = subprocess.run(
        [sys.executable, "-c", _PARENT, str(db), _WRITER],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    codes_line, parent_line, *writer_lines = proc.stdout.splitlines()
    # forked children exit 0; writers: os._exit(0), SIGKILL (-9), sys.exit(0)
    assert codes_line.split() == ["0"] * 6 + ["0", "-9", "0"] * 2, proc.stderr

    acked: dict[int, bytes] = {}
    for item in parent_line.split():
        index, digest = item.split(":")
        acked[int(index)] = bytes.fromhex(digest)
    parent_count = len(acked)
    for line in writer_lines:
        index, digest = line.split()
        acked[int(index)] = bytes.fromhex(digest)
    assert len(acked) == parent_count + 6 * 3000  # no index handed out twice

    rows, size, _ = raw_rows(str(db))
    assert size == len(rows) == len(acked)
    assert [index for index, _, _ in rows] == list(range(size))
    for index, leaf, digest in rows:
        assert digest == leaf_hash(leaf)
        assert digest == acked[index], f"entry {index} is not what was acknowledged"
    # Bounded: a writer checkpoints itself past 64 MiB when the threads fall behind.
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size < 80 << 20
    check = run_cli("ledger", "verify", "--db", db)
    assert check.returncode == 0, check.stderr
