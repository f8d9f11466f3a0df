"""`make run`'s job: the demo records, signs and verifies, through the real console script."""

import re
import subprocess
import sys
from pathlib import Path

CUSTODES = str(Path(sys.executable).parent / "custodes")


def test_demo_records_signs_and_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    done = subprocess.run(
        [CUSTODES, "demo", "--dir", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "verified: 6 entries" in done.stdout
    # The scan of the demo repository finds the key in the code and the one inside the
    # published package's source map, and fails the gate.
    assert "src/billing.py:5  secret.aws-access-key-id" in done.stdout
    assert (
        "release/acme-cli-1.0.0.tgz!package/dist/cli.js.map!acme-cli/src/config.ts:1  "
        "secret.stripe-secret-key"
    ) in done.stdout
    # The release rule that would have stopped the 2026 leak, a policy violation of the
    # enterprise pack, and the fragment pasted from the indexed demo leak, renamed.
    assert "release/acme-cli-1.0.0.tgz!package/dist/cli.js.map:1  enterprise.artifact-source-leak" in done.stdout
    assert "src/status.py:5  enterprise.python-tls-verify-disabled" in done.stdout
    assert re.search(
        r"src/pool\.ts:\d+-\d+  provenance\.deny: lines \d+-\d+ match demo-leak:src/tools/agent\.ts:",
        done.stdout,
    )
    assert "FAILED  score 0/100" in done.stdout
    assert "violations  6 new: 2 secret, 1 provenance, 3 policy" in done.stdout
    planted = re.findall(
        r"AKIA[A-Z2-7]{16}|sk_live_[A-Za-z0-9]{32}",
        (folder / "repo" / "src" / "billing.py").read_text(),
    )
    assert len(planted) == 1
    assert planted[0] not in done.stdout
    assert "— demo.custodes.local/ledger " in done.stdout
    # The clear prompt of the demo's blocked request never reaches the report or the database.
    assert "4111" not in done.stdout
    # Nor does a line of the leaked code, in the report, the ledger or the fingerprint index.
    leaked = "const message = err instanceof Error ? err.message : String(err);"
    pasted = "const detail = problem instanceof Error ? problem.message : String(problem);"
    assert pasted in (folder / "repo" / "src" / "pool.ts").read_text()
    assert leaked not in done.stdout
    assert pasted not in done.stdout
    db = folder / "ledger.db"
    stored = [path for path in folder.iterdir() if path.is_file()]
    assert db in stored
    assert folder / "index.db" in stored
    for path in stored:  # the ledger, the index, their WALs and the key file
        assert b"4111" not in path.read_bytes(), path
        assert planted[0].encode() not in path.read_bytes(), path
        assert leaked.encode() not in path.read_bytes(), path
        assert pasted.encode() not in path.read_bytes(), path
    again = subprocess.run(
        [CUSTODES, "ledger", "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("ok: 6 entries verified")


def test_demo_refuses_to_overwrite_a_ledger(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = subprocess.run([CUSTODES, "demo", "--dir", str(folder)], capture_output=True, timeout=120)
    assert first.returncode == 0
    second = subprocess.run(
        [CUSTODES, "demo", "--dir", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 2
    assert "already holds a custodes ledger" in second.stderr
    assert "Traceback" not in second.stderr
