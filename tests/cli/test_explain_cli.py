"""``custodes explain ID`` run as the real console script over a ledger the guard wrote.

Exit codes: 0 explained and proven, 1 the proof does not verify, 2 unknown id or bad usage.
"""

from __future__ import annotations

import json
import random
import sqlite3
import string
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from custodes.guard import Caller, Guard
from ledgertools import assert_cli_error, leaf_hash, mth, note_signed_by, path, raw_rows

Cli = Callable[..., subprocess.CompletedProcess[str]]
B32 = string.ascii_uppercase + "234567"


def aws_key(seed: int) -> str:
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str, str, str]:
    """A ledger with a blocked prompt among other steps: (db, explanation id, key, policy sha)."""
    db = tmp_path / "audit.db"
    key = aws_key(21)
    with Guard(["enterprise", "owasp-llm"], db) as guard:
        guard.check_prompt("a clean question")
        verdict = guard.check_prompt(f"use {key} to deploy", caller=Caller(id="ci-bot"))
        guard.check_prompt("mail jane.roe@acme-corp.de")
        assert verdict.explanation_id is not None
        assert guard.policy is not None
        return db, verdict.explanation_id, key, guard.policy.sha256


def test_explain_shows_rule_controls_policy_and_a_verified_proof(
    custodes_cli: Cli, recorded: tuple[Path, str, str, str]
) -> None:
    db, explanation_id, key, sha = recorded
    proc = custodes_cli("explain", explanation_id, "--ledger", db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert f"explanation {explanation_id}" in out
    assert "decision:   block at admission" in out
    assert "rule:       enterprise.prompt-secrets (block)" in out
    assert "rule:       owasp-llm.prompt-secrets (block)" in out
    assert "control owasp-llm:LLM02: Sensitive Information Disclosure" in out
    assert f"sha256 {sha}" in out
    assert "caller:     id=ci-bot" in out
    assert "secret.aws-access-key-id (high) in prompt characters 4-24: AKIA…" in out
    assert ": verified" in out
    assert key not in out
    assert key[4:] not in out

    verify = custodes_cli("ledger", "verify", "--db", db)
    assert verify.returncode == 0, verify.stderr


def test_explain_json_carries_a_proof_anyone_can_check(
    custodes_cli: Cli, recorded: tuple[Path, str, str, str]
) -> None:
    db, explanation_id, key, sha = recorded
    proc = custodes_cli("explain", explanation_id, "--ledger", db, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["explanation_id"] == explanation_id
    assert doc["policy"] == {"name": "enterprise+owasp-llm", "sha256": sha}
    assert [r["id"] for r in doc["rules"]] == ["enterprise.prompt-secrets", "owasp-llm.prompt-secrets"]
    assert {"id": "eu-ai-act:art15", "title": "Accuracy, robustness and cybersecurity"} in (
        doc["rules"][0]["controls"]
    )
    ledger = doc["ledger"]
    assert ledger["verified"] is True
    assert ledger["problem"] is None
    # Independently: the checkpoint is signed by the ledger's key, and the proof leads from
    # the stored leaf to the checkpoint's root (RFC 9162 reference).
    vkey = custodes_cli("ledger", "key", "--db", db).stdout.strip()
    assert note_signed_by(ledger["checkpoint"], vkey)
    rows, size, _ = raw_rows(str(db))
    hashes = [leaf_hash(leaf) for _, leaf, _ in rows]
    index = ledger["index"]
    assert ledger["proof"]["size"] == size == 3
    assert ledger["proof"]["root"] == mth(hashes).hex()
    assert ledger["proof"]["hashes"] == [h.hex() for h in path(index, hashes)]
    assert ledger["leaf_hash"] == hashes[index].hex()
    assert key not in proc.stdout


def test_an_unknown_id_and_a_missing_ledger_are_usage_errors(
    custodes_cli: Cli, recorded: tuple[Path, str, str, str], tmp_path: Path
) -> None:
    db, _, _, _ = recorded
    line = assert_cli_error(custodes_cli("explain", "ex-" + "f" * 32, "--ledger", db), 2)
    assert "has the explanation id" in line
    assert "check the id" in line
    line = assert_cli_error(custodes_cli("explain", "nope", "--ledger", db), 2)
    assert "is not an explanation id" in line
    line = assert_cli_error(
        custodes_cli("explain", "ex-" + "f" * 32, "--ledger", tmp_path / "missing.db"), 2
    )
    assert "no ledger at" in line


def test_an_edited_ledger_fails_the_explanation(
    custodes_cli: Cli, recorded: tuple[Path, str, str, str]
) -> None:
    db, explanation_id, _, _ = recorded
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE tail SET leaf = CAST(replace(CAST(leaf AS TEXT), '\"action\":\"block\"',"
            " '\"action\":\"allow\"') AS BLOB)"
        )
    conn.close()
    proc = custodes_cli("explain", explanation_id, "--ledger", db)
    line = assert_cli_error(proc, 1)
    assert line.startswith("custodes: verification failed: explanation")
    assert "NOT VERIFIED" in proc.stdout


def test_help_teaches_the_command(custodes_cli: Cli) -> None:
    proc = custodes_cli("explain", "--help")
    assert proc.returncode == 0
    assert "custodes explain ex-" in proc.stdout
    assert "Exit codes: 0 explained" in proc.stdout
