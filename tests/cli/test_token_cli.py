"""``custodes token key|issue|verify`` run as the real console script.

Exit codes: 0 valid, 1 the token is rejected (one ``custodes: verification failed: …`` line),
2 bad usage. A token is printed by ``issue`` and nowhere else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custodes.ledger import Ledger
from custodes.ledger.note import Signer
from custodes.policy.tokens import issue_token
from ledgertools import assert_cli_error, cli_popen

Cli = Callable[..., subprocess.CompletedProcess[str]]

VKEY_RE = re.compile(r"^acme\.example/tokens\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$")
JWS_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture
def keys(custodes_cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    """``(signing key file, verifier key file)`` made by ``custodes token key``."""
    key = tmp_path / "tokens.key"
    made = custodes_cli("token", "key", "--output", key, "--name", "acme.example/tokens")
    assert made.returncode == 0, made.stderr
    assert VKEY_RE.match(made.stdout.strip()), made.stdout
    pub = tmp_path / "tokens.pub"
    pub.write_text(made.stdout)
    return key, pub


def _issue(cli: Cli, key: Path, *extra: str) -> str:
    proc = cli(
        "token", "issue", "--key", key, "--audience", "guard", "--subject", "billing-svc",
        "--rules", "pii.customer-schema, pii.card-number", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    token = proc.stdout.strip()
    assert proc.stdout == token + "\n"
    assert JWS_RE.match(token)
    return token


def test_key_file_is_private_and_never_overwritten(custodes_cli: Cli, tmp_path: Path) -> None:
    key = tmp_path / "k"
    first = custodes_cli("token", "key", "--output", key, "--name", "acme.example/tokens")
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = key.read_text()
    assert text.startswith("PRIVATE+KEY+acme.example/tokens+")
    assert text.split("+")[3] == first.stdout.split("+")[1]  # the same key id
    again = custodes_cli("token", "key", "--output", key)
    assert "already exists" in assert_cli_error(again, 2)
    assert key.read_text() == text
    bad = custodes_cli("token", "key", "--output", tmp_path / "k2", "--name", "has space")
    assert_cli_error(bad, 2)


def test_issue_then_verify_text_and_json(custodes_cli: Cli, keys: tuple[Path, Path]) -> None:
    key, pub = keys
    before = int(time.time())
    token = _issue(custodes_cli, key, "--ttl", "10m", "--purpose", "chargeback audit")
    shown = custodes_cli("token", "verify", token, "--verifier", pub, "--audience", "guard")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "valid policy token"
    assert "subject:   billing-svc" in lines
    assert "rules:     pii.customer-schema, pii.card-number" in lines
    assert "purpose:   chargeback audit" in lines
    assert token not in shown.stdout

    as_json = custodes_cli(
        "token", "verify", "-", "--verifier", pub.read_text().strip(), "--audience", "guard",
        "--json", input=token + "\n",
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    claims = json.loads(as_json.stdout)
    assert set(claims) == {
        "valid", "iss", "sub", "aud", "iat", "nbf", "exp", "jti", "custodes_rules", "purpose",
        "kid",
    }  # fmt: skip
    assert claims["valid"] is True
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        "acme.example/tokens", "billing-svc", "guard",
    )  # fmt: skip
    assert claims["custodes_rules"] == ["pii.customer-schema", "pii.card-number"]
    assert claims["exp"] - claims["iat"] == 600
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert claims["kid"] == pub.read_text().split("+")[1]

    with_key = custodes_cli("token", "verify", token, "--key", key, "--audience", "guard")
    assert with_key.returncode == 0, with_key.stderr


def test_pyjwt_reads_a_cli_token(custodes_cli: Cli, keys: tuple[Path, Path]) -> None:
    key, _ = keys
    token = _issue(custodes_cli, key)
    raw = base64.b64decode(key.read_text().strip().split("+", 4)[4])
    public = Ed25519PrivateKey.from_private_bytes(raw[1:]).public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="guard")
    assert claims["sub"] == "billing-svc"


def test_rejections_exit_1_with_the_reason(
    custodes_cli: Cli, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keys
    token = _issue(custodes_cli, key)

    def check(presented: str, *extra: str) -> str:
        proc = custodes_cli(
            "token", "verify", presented, "--verifier", pub, "--audience", "guard", *extra
        )
        line = assert_cli_error(proc, 1)
        assert line.startswith("custodes: verification failed: ")
        assert proc.stdout == ""
        assert token not in proc.stderr
        return line

    assert "'guard', not 'ledger'" in check(token, "--audience", "ledger")
    h, p, s = token.split(".")
    claims = json.loads(_b64url(p))
    claims["custodes_rules"].append("secrets.allow-all")
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert "forged or altered" in check(f"{h}.{forged_payload}.{s}")
    assert "three dot-separated parts" in check("not-a-token")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    assert "'none', not 'EdDSA'" in check(f"{none_header}.{p}.")

    other_key = tmp_path / "other.key"
    assert custodes_cli("token", "key", "--output", other_key).returncode == 0
    assert "no trusted key" in check(_issue(custodes_cli, other_key))

    signer = Signer.from_string(key.read_text())
    old = issue_token(
        signer, audience="guard", subject="s", rules=["r"], ttl=60, now=time.time() - 3600
    )
    assert "expired at" in check(old)
    assert check(old, "--leeway", "0s")
    future = issue_token(
        signer, audience="guard", subject="s", rules=["r"], ttl=60, now=time.time() + 3600
    )
    assert "not valid before" in check(future)

    as_json = custodes_cli(
        "token", "verify", old, "--verifier", pub, "--audience", "guard", "--json"
    )
    assert_cli_error(as_json, 1)
    assert json.loads(as_json.stdout) == {
        "valid": False,
        "reason": "expired",
        "error": json.loads(as_json.stdout)["error"],
    }
    assert json.loads(as_json.stdout)["error"].startswith("the token expired at ")


def test_long_tokens_need_allow_long_on_both_sides(
    custodes_cli: Cli, keys: tuple[Path, Path]
) -> None:
    key, pub = keys
    refused = custodes_cli(
        "token", "issue", "--key", key, "--audience", "guard", "--subject", "s", "--rules", "r",
        "--ttl", "2h",
    )  # fmt: skip
    assert "--allow-long" in assert_cli_error(refused, 2)
    token = _issue(custodes_cli, key, "--ttl", "2h", "--allow-long")
    verify = ["token", "verify", token, "--verifier", pub, "--audience", "guard"]
    assert "beyond the maximum" in assert_cli_error(custodes_cli(*verify), 1)
    assert custodes_cli(*verify, "--max-lifetime", "2h").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "soon"], "not a duration"),
        (["--ttl", "0s"], "positive"),
        (["--rules", " , "], "at least one rule"),
        (["--rules", "bad rule"], "not a rule id"),
        (["--key", "missing.key"], "does not exist"),
    ],
)
def test_issue_usage_errors_exit_2(
    custodes_cli: Cli, keys: tuple[Path, Path], args: list[str], message: str
) -> None:
    key, _ = keys
    base = {"--key": str(key), "--audience": "guard", "--subject": "s", "--rules": "r"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [part for pair in base.items() for part in pair]
    assert message in assert_cli_error(custodes_cli("token", "issue", *flat), 2)


def test_verify_usage_errors_exit_2(custodes_cli: Cli, keys: tuple[Path, Path]) -> None:
    key, pub = keys
    token = _issue(custodes_cli, key)
    cases = [
        ([], "no trusted key"),
        (["--verifier", "nonsense+key"], "--verifier"),
        (["--verifier", "missing.pub"], "does not exist"),
        (["--verifier", str(pub), "--leeway", "a while"], "not a duration"),
        (["--verifier", str(pub), "--max-lifetime", "0m"], "longer than 0"),
        (["--key", "missing.key"], "does not exist"),
    ]
    for extra, message in cases:
        proc = custodes_cli("token", "verify", token, "--audience", "guard", *extra)
        assert message in assert_cli_error(proc, 2), extra
    missing_audience = custodes_cli("token", "verify", token, "--verifier", pub)
    assert "--audience" in assert_cli_error(missing_audience, 2)


def test_replay_across_concurrent_processes(
    custodes_cli: Cli, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keys
    token = _issue(custodes_cli, key)
    seen = tmp_path / "seen.db"
    args = ["token", "verify", "-", "--verifier", pub, "--audience", "guard"]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs = [
        cli_popen(*args, "--replay-db", seen, "--json", cwd=tmp_path, **pipes) for _ in range(4)
    ]
    outcomes = [proc.communicate(token.encode(), timeout=120) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 1, 1, 1], outcomes
    assert [json.loads(out)["valid"] for out, _ in outcomes].count(True) == 1
    for (out, _), proc in zip(outcomes, procs, strict=True):
        if proc.returncode == 1:
            assert json.loads(out)["reason"] == "replayed"
    # A different token still passes on the same cache.
    fresh = _issue(custodes_cli, key)
    again = custodes_cli(
        "token", "verify", fresh, "--verifier", pub, "--audience", "guard", "--replay-db", seen
    )
    assert again.returncode == 0, again.stderr


def test_verify_records_outcomes_in_the_ledger_without_the_token(
    custodes_cli: Cli, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keys
    db = tmp_path / "audit.db"
    Ledger.create(db, name="acme.example/audit").close()
    token = _issue(custodes_cli, key)
    args = ["token", "verify", token, "--verifier", pub, "--ledger", db]
    assert custodes_cli(*args, "--audience", "guard").returncode == 0
    assert_cli_error(custodes_cli(*args, "--audience", "elsewhere"), 1)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with Ledger.open(db) as led:
        entries = [led.entry(i).data for i in range(2)]
    accepted, rejected = entries
    assert accepted["accepted"] is True
    assert accepted["token_sha256"] == digest
    assert accepted["sub"] == "billing-svc"
    assert accepted["rules"] == ["pii.customer-schema", "pii.card-number"]
    assert rejected["accepted"] is False
    assert rejected["reason"] == "audience"
    assert rejected["audience"] == "elsewhere"
    assert rejected["token_sha256"] == digest
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert digest.encode() in stored
    for part in token.split("."):
        assert part.encode() not in stored
    assert custodes_cli("ledger", "verify", "--db", db).returncode == 0


def test_help_teaches(custodes_cli: Cli) -> None:
    for sub in ("key", "issue", "verify"):
        shown = custodes_cli("token", sub, "--help")
        assert shown.returncode == 0
        assert "Example" in shown.stdout
        assert "Exit codes" in shown.stdout
    assert "token" in custodes_cli("--help").stdout
