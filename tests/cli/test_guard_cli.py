"""`custodes guard serve` through the console script: start, serve, refuse bad options, stop."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from custodes.ledger import Ledger
from guard.upstream_app import (
    SECRET,
    TEST_POLICY,
    ServerThread,
    UpstreamApp,
    hello,
    proxy_process,
)
from ledgertools import run_cli

API_KEY = "sk-cli-test-abcdef0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[UpstreamApp, str]]:
    app = UpstreamApp()
    with ServerThread(app) as server:
        yield app, server.url


def test_help_teaches(tmp_path: Path) -> None:
    done = run_cli("guard", "serve", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for words in ("--upstream", "--max-body", "--review-timeout", "--workers", "Example:",
                  "Exit codes", "custodes_review_pending", "X-Custodes-Ledger-Index",
                  "/v1/custodes/check"):  # fmt: skip
        assert words in done.stdout, words
    assert "serve" in run_cli("guard", "--help", cwd=tmp_path).stdout
    assert "guard" in run_cli("--help", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--upstream", "ftp://model.local/v1"], "--upstream"),
        (["--upstream", "http://127.0.0.1:9/v1", "--max-body", "lots"], "--max-body"),
        (["--upstream", "http://127.0.0.1:9/v1", "--max-body", "10"], "too small"),
        (["--upstream", "http://127.0.0.1:9/v1", "--policy", "missing.yaml"], "missing.yaml"),
        (["--upstream", "http://127.0.0.1:9/v1", "--policy", "bad.yaml"], "bad.yaml:"),
        (["--upstream", "http://127.0.0.1:9/v1", "--workers", "0"], "--workers"),
        (["--upstream", "http://127.0.0.1:9/v1", "--token-verifier", "nope.pub"], "nope.pub"),
        ([], "--upstream"),
    ],
)
def test_bad_options_exit_2_before_listening(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "bad.yaml").write_text("schema: 1\nname: bad\nrules:\n  - id: Bad Id\n")
    done = run_cli("guard", "serve", "--port", "0", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "listening" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = run_cli(
            "guard", "serve", "--upstream", "http://127.0.0.1:9/v1", "--port", port, cwd=tmp_path
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_serve_then_sigterm(tmp_path: Path, upstream: tuple[UpstreamApp, str]) -> None:
    (tmp_path / "policy.yaml").write_text(TEST_POLICY)
    server = proxy_process(
        tmp_path,
        "--upstream",
        upstream[1] + "/v1",
        "--policy",
        "policy.yaml",
        "--review-timeout",
        "0.2",
    )
    with server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="test-model", messages=[{"role": "user", "content": "hello cli"}]
        )
        assert raw.parse().choices[0].message.content == hello("hello cli")
        index = int(raw.headers["x-custodes-ledger-index"])
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": f"key {SECRET}"}]
            )
        code = server.terminate()
    assert code == 0, "\n".join(server.lines)
    assert "custodes: guard stopped" in server.lines
    output = "\n".join(server.lines)
    assert API_KEY not in output
    assert SECRET not in output
    assert "Traceback" not in output
    # The default ledger was created in the working folder and holds what was answered.
    db = tmp_path / ".custodes" / "ledger.db"
    with Ledger.open(db) as ledger:
        assert ledger.entry(index).data["trace_id"] == raw.headers["x-custodes-trace-id"]
    verify = run_cli("ledger", "verify", "--db", str(db), "--json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["size"] == 4  # admission, call, validation; admission


def test_two_workers_share_one_ledger(tmp_path: Path, upstream: tuple[UpstreamApp, str]) -> None:
    db = tmp_path / "shared.db"
    server = proxy_process(
        tmp_path, "--upstream", upstream[1] + "/v1", "--ledger", str(db), "--workers", "2"
    )
    with server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
        seen: dict[int, str] = {}
        for number in range(12):
            raw = client.chat.completions.with_raw_response.create(
                model="test-model", messages=[{"role": "user", "content": f"hello {number}"}]
            )
            seen[int(raw.headers["x-custodes-ledger-index"])] = raw.headers["x-custodes-trace-id"]
        metrics = httpx.get(server.url + "/metrics", timeout=30).text
        assert server.terminate() == 0, "\n".join(server.lines)
    assert len(seen) == 12
    with Ledger.open(db) as ledger:
        for index, trace in seen.items():
            assert ledger.entry(index).data["trace_id"] == trace
    # Every worker's samples are summed, whichever worker answers the scrape.
    assert 'custodes_guard_requests_total{route="/v1/chat/completions",status="200"} 12.0' in metrics
    verify = run_cli("ledger", "verify", "--db", str(db), cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
