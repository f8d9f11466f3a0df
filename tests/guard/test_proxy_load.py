"""Under load, no answer leaves the proxy without its ledger entry, and the ledger verifies.

The proxy runs as `custodes guard serve` and the model as its own process; many clients hit
the proxy at once with allowed prompts, refused prompts and streams. Afterwards every
response's X-Custodes-Ledger-Index must name an entry carrying that response's trace id, no
two responses may claim one entry, and `custodes ledger verify` must pass.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from custodes.ledger import Ledger
from guard.upstream_app import SECRET, TEST_POLICY, hello, proxy_process, upstream_process
from ledgertools import run_cli


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int
    trace: str | None
    index: int | None
    content_ok: bool


async def _client(http: httpx.AsyncClient, number: int, until: float, out: list[Answer]) -> None:
    turn = 0
    while time.monotonic() < until:
        turn += 1
        prompt = f"client {number} turn {turn}"
        slot = (number * 3 + turn) % 10  # every kind early on, however few turns each gets
        if slot == 0:
            kind, body = "refused", {"messages": [{"role": "user", "content": f"k {SECRET}"}]}
        elif slot == 1:
            kind, body = "stream", {"messages": [{"role": "user", "content": prompt}], "stream": True}
        else:
            kind, body = "chat", {"messages": [{"role": "user", "content": prompt}]}
        body["model"] = "test-model"
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            data = await response.aread()
        headers = response.headers
        index = headers.get("x-custodes-ledger-index")
        if kind == "chat":
            ok = response.status_code == 200 and response.json()["choices"][0]["message"][
                "content"
            ] == hello(prompt)
        elif kind == "stream":
            ok = response.status_code == 200 and data.rstrip().endswith(b"data: [DONE]")
        else:
            ok = response.status_code == 403
        out.append(
            Answer(
                kind,
                response.status_code,
                headers.get("x-custodes-trace-id"),
                int(index) if index is not None else None,
                ok,
            )
        )


async def _load(url: str, clients: int, seconds: float) -> list[Answer]:
    answers: list[Answer] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_client(http, n, until, answers) for n in range(clients)))
    return answers


def _run(tmp_path: Path, clients: int, seconds: float, *extra: str) -> None:
    (tmp_path / "policy.yaml").write_text(TEST_POLICY)
    db = tmp_path / "load.db"
    with upstream_process(tmp_path) as upstream:
        server = proxy_process(
            tmp_path,
            "--upstream", upstream.url + "/v1", "--policy", "policy.yaml", "--ledger", str(db),
            *extra,
        )  # fmt: skip
        with server:
            try:
                answers = asyncio.run(_load(server.url, clients, seconds))
            except httpx.TransportError as exc:
                # The proxy dropped a connection: what it logged says why.
                server.terminate()
                raise AssertionError(
                    f"{type(exc).__name__}; the proxy said:\n" + "\n".join(server.lines[-40:])
                ) from exc
            assert server.terminate() == 0, "\n".join(server.lines)
    assert answers
    bad = [a for a in answers if not a.content_ok]
    assert not bad, bad[:5]
    assert {a.kind for a in answers} == {"chat", "stream", "refused"}
    unrecorded = [a for a in answers if a.index is None or a.trace is None]
    assert not unrecorded, unrecorded[:5]
    indices = [a.index for a in answers]
    assert len(set(indices)) == len(indices), "two responses claim one ledger entry"
    with Ledger.open(db) as ledger:
        for answer in answers:
            assert answer.index is not None
            assert ledger.entry(answer.index).data["trace_id"] == answer.trace, answer
    verify = run_cli("ledger", "verify", "--db", str(db), cwd=tmp_path, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    rate = len(answers) / seconds
    print(f"{len(answers)} answers from {clients} clients in {seconds:.0f} s ({rate:.0f}/s)")


def test_every_answer_under_load_is_in_the_ledger(tmp_path: Path) -> None:
    _run(tmp_path, 50, 5)


@pytest.mark.slow
def test_every_answer_under_heavy_load_is_in_the_ledger(tmp_path: Path) -> None:
    _run(tmp_path, 200, 30, "--workers", "2")


def _healthz(sock: socket.socket, host: str) -> bytes:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        if not chunk:
            break  # the proxy closed the connection
        answer += chunk
    return answer


def test_an_idle_connection_outlasts_the_clients_keep_alive(tmp_path: Path) -> None:
    # httpx (and so the openai client) reuses a connection idle for up to 5 s. A proxy that
    # closed it at that instant would reset a request the client cannot safely send again:
    # under load some answers were lost that way (httpx.ReadError).
    (tmp_path / "policy.yaml").write_text(TEST_POLICY)
    with upstream_process(tmp_path) as upstream, proxy_process(
        tmp_path, "--upstream", upstream.url + "/v1", "--policy", "policy.yaml",
        "--ledger", str(tmp_path / "idle.db"),
    ) as server:  # fmt: skip
        host, port = server.url.split("://", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            assert _healthz(sock, host).startswith(b"HTTP/1.1 200")
            time.sleep(6.0)
            assert _healthz(sock, host).startswith(b"HTTP/1.1 200")
