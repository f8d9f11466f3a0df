"""``guard.wrap(OpenAI(...))``: the real openai client, governed, against a local model.

The model is a small OpenAI-compatible ASGI app served by uvicorn on a loopback port (the one
stand-in the tests allow for a hosted model). It remembers what it received, so a test can prove
what reached the model and what did not.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn

from custodes.guard import Action, Caller, Guard, GuardViolation
from ledgertools import raw_rows

B32 = string.ascii_uppercase + "234567"


def aws_key(seed: int) -> str:
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


KEY = aws_key(31)
EMAIL = "jane.roe@acme-corp.de"
REPLIES = {
    "leak": f"Sure. The deploy key is {KEY}, keep it safe. " + "Then run the job. " * 30,
    "contact": f"Write to {EMAIL} for a refund.",
    "auth": "def login(user, password):\n    return bcrypt.checkpw(password, user.hash)\n",
}
CHUNK = 3


class Model:
    """An OpenAI-compatible chat endpoint; the reply is chosen by a word of the last message."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    def reply(self, body: dict[str, Any]) -> str:
        last = str(body["messages"][-1]["content"])
        for word, text in REPLIES.items():
            if f"please {word}" in last:
                return text
        return f"Hello! You sent {len(last)} characters."

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw)
        self.received.append(body)
        text = self.reply(body)
        common = {"id": "chatcmpl-1", "created": 1_700_000_000, "model": body["model"]}
        if not body.get("stream"):
            payload = {**common, "object": "chat.completion", "choices": [
                {"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": text}}]}  # fmt: skip
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": text[i : i + CHUNK]} for i in range(0, len(text), CHUNK)
        ]
        for n, delta in enumerate(pieces):
            last = n == len(pieces) - 1
            chunk = {**common, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}  # fmt: skip
            await send({"type": "http.response.body", "more_body": True,
                        "body": f"data: {json.dumps(chunk)}\n\n".encode()})  # fmt: skip
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[Model, str]]:
    app = Model()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield app, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def guard(db: Path) -> Iterator[Guard]:
    with Guard("enterprise", db, review_timeout=0.1) as g:
        yield g


def steps(db: Path) -> list[dict[str, Any]]:
    rows, _, _ = raw_rows(str(db))
    return [json.loads(leaf) for _, leaf, _ in rows]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_one_line_governs_a_clean_call_and_records_every_step(
    model: tuple[Model, str], guard: Guard, db: Path
) -> None:
    _app, url = model
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    reply = client.chat.completions.create(model="m1", messages=ask("hi there"))
    assert reply.choices[0].message.content == "Hello! You sent 8 characters."
    assert client.base_url == openai.OpenAI(base_url=url, api_key="x").base_url  # passes through
    recorded = steps(db)
    assert [e["step"] for e in recorded] == ["admission", "call", "validation"]
    assert len({e["trace_id"] for e in recorded}) == 1
    assert recorded[1]["status"] == 200
    assert recorded[1]["model"] == "m1"
    assert recorded[1]["upstream"].startswith("http://127.0.0.1:")


def test_a_prompt_with_a_secret_never_reaches_the_model(
    model: tuple[Model, str], guard: Guard
) -> None:
    app, url = model
    before = len(app.received)
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    with pytest.raises(GuardViolation) as caught:
        client.chat.completions.create(model="m1", messages=ask(f"deploy with {aws_key(32)}"))
    assert caught.value.verdict.action is Action.BLOCK
    assert caught.value.verdict.explanation_id is not None
    assert "custodes explain ex-" in (caught.value.hint or "")
    assert len(app.received) == before


def test_personal_data_is_redacted_before_the_model_sees_it(
    model: tuple[Model, str], guard: Guard
) -> None:
    app, url = model
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    client.chat.completions.create(model="m1", messages=ask(f"my address is {EMAIL}"))
    sent = app.received[-1]["messages"][-1]["content"]
    assert sent == "my address is [REDACTED:pii.email]"


def test_a_secret_in_the_output_is_redacted_in_the_response(
    model: tuple[Model, str], guard: Guard, db: Path
) -> None:
    _app, url = model
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    reply = client.chat.completions.create(model="m1", messages=ask("please leak"))
    content = reply.choices[0].message.content
    assert KEY not in content
    assert content == REPLIES["leak"].replace(KEY, "[REDACTED:secret.aws-access-key-id]")
    assert steps(db)[-1]["action"] == "redact"


def test_an_output_held_for_review_raises_with_the_review_item(
    model: tuple[Model, str], guard: Guard
) -> None:
    _app, url = model
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    with pytest.raises(GuardViolation) as caught:
        client.chat.completions.create(model="m1", messages=ask("please auth"))
    assert caught.value.verdict.action is Action.REVIEW
    assert caught.value.verdict.review_id is not None


def test_a_stream_is_validated_as_it_flows(
    model: tuple[Model, str], guard: Guard, db: Path
) -> None:
    _app, url = model
    client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
    stream = client.chat.completions.create(model="m1", messages=ask("please leak"), stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == REPLIES["leak"].replace(KEY, "[REDACTED:secret.aws-access-key-id]")
    streamed_before_end = "".join(pieces[:-1])
    assert KEY[:8] not in streamed_before_end
    assert KEY[-8:] not in "".join(pieces)
    assert sum(1 for p in pieces if p) > 3  # released progressively, not all at the end
    assert [e["step"] for e in steps(db)][-3:] == ["admission", "call", "validation"]


def test_a_stream_broken_by_a_blocking_rule_raises_mid_way(
    model: tuple[Model, str], tmp_path: Path
) -> None:
    _app, url = model
    policy = tmp_path / "block.yaml"
    policy.write_text(
        "rules:\n  - id: acme.no-secrets-out\n    message: no credential leaves\n"
        "    applies-to: [completion]\n    action: block\n    secrets: {}\n"
    )
    with Guard(policy, tmp_path / "ledger.db") as guard:
        client = guard.wrap(openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0))
        stream = client.chat.completions.create(model="m1", messages=ask("please leak"), stream=True)
        seen: list[str] = []

        def read() -> None:
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")

        with pytest.raises(GuardViolation) as caught:
            read()
    assert caught.value.verdict.action is Action.BLOCK
    assert KEY[:6] not in "".join(seen)
    recorded = steps(tmp_path / "ledger.db")
    assert {e["step"] for e in recorded} == {"admission", "validation", "call"}
    assert [e["action"] for e in recorded if e["step"] == "validation"] == ["block"]


def test_the_async_client_is_governed_too(model: tuple[Model, str], guard: Guard, db: Path) -> None:
    app, url = model

    async def run() -> tuple[str, str, GuardViolation]:
        client = guard.wrap(openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0))
        reply = await client.chat.completions.create(
            model="m1", messages=ask("please contact"), custodes_caller=Caller(id="svc-async")
        )
        stream = await client.chat.completions.create(
            model="m1", messages=ask("please leak"), stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream]
        with pytest.raises(GuardViolation) as caught:
            await client.chat.completions.create(model="m1", messages=ask(f"key {aws_key(33)}"))
        return reply.choices[0].message.content, "".join(pieces), caught.value

    content, streamed, blocked = asyncio.run(run())
    assert content == "Write to [REDACTED:pii.email] for a refund."
    assert streamed == REPLIES["leak"].replace(KEY, "[REDACTED:secret.aws-access-key-id]")
    assert blocked.verdict.action is Action.BLOCK
    assert "custodes_caller" not in app.received[-2]
    first = steps(db)[0]
    assert first["caller"] == {"id": "svc-async"}
