"""A small OpenAI-compatible server standing in for the model behind the guard proxy.

Plain ASGI, served by uvicorn on a loopback port, in a thread (:class:`ServerThread`) or as a
subprocess (``python tests/guard/upstream_app.py --port 0`` prints ``listening on URL``).

What it answers is scripted by the last user message:

* contains ``please leak``     the reply carries a (fake, format-valid) AWS access key id
* contains ``please write long`` a reply of about 2,400 characters
* contains ``please contact``  the reply carries an e-mail address (personal data)
* contains ``please wire``     the reply gives wire transfer instructions (held for review)
* contains ``please hang``     no answer at all (the proxy's read timeout must fire)
* contains ``please garbage``  HTTP 200 with a body that is neither JSON nor server-sent events
* contains ``hang midway``     (streaming) the first chunk, then nothing
* anything else                ``Hello! You sent N characters.``

Models other than :data:`MODELS` get OpenAI's 404 ``model_not_found``. Streams split the reply
into chunks of :data:`CHUNK` characters, so the secret straddles chunk borders. Every request
is remembered (``GET /_calls``) so tests can prove what reached the model and what did not.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ("test-model", "test-model-2")
CHUNK = 4
# Format-valid (AKIA + 16 base32 characters) but not a real key, nor AWS's documented example.
SECRET = "AKIAQ3EGRXNVPB5OTXQA"
RUNBOOK = "Step {n}: check the deployment dashboard, then confirm the rollout is healthy. "
# Long enough that a stream releases text well before the secret arrives.
LEAK_REPLY = (
    "".join(RUNBOOK.format(n=n) for n in range(1, 11))
    + f"The deploy key is {SECRET} and it must stay private."
)
LONG_REPLY = "".join(RUNBOOK.format(n=n) for n in range(1, 31))
EMAIL = "jane.roe@northwind-traders.com"
CONTACT_REPLY = f"You can write to {EMAIL} for the contract."
WIRE_REPLY = "Send a wire transfer of 9,000 EUR to the account on file today."


def hello(prompt: str) -> str:
    return f"Hello! You sent {len(prompt)} characters."


def _reply_for(prompt: str) -> str:
    if "please leak" in prompt:
        return LEAK_REPLY
    if "please contact" in prompt:
        return CONTACT_REPLY
    if "please write long" in prompt:
        return LONG_REPLY
    if "please wire" in prompt:
        return WIRE_REPLY
    return hello(prompt)


class UpstreamApp:
    """The ASGI application; ``calls`` lists every request it received, in order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def prompts(self) -> list[str]:
        with self._lock:
            return [call["prompt"] for call in self.calls]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        if path == "/_calls" and method == "GET":
            with self._lock:
                await _json(send, 200, self.calls)
            return
        if path == "/v1/models" and method == "GET":
            self._remember(path, headers, {})
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in MODELS]
            await _json(send, 200, {"object": "list", "data": data})
            return
        if path != "/v1/chat/completions" or method != "POST":
            await _json(send, 404, _error("no such route", "invalid_request_error", None, None))
            return
        request = json.loads(body)
        prompt = _last_user(request.get("messages") or [])
        self._remember(path, headers, request, prompt)
        model = request.get("model")
        if model not in MODELS:
            await _json(
                send,
                404,
                _error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model",
                    "model_not_found",
                ),
            )
            return
        if "please hang" in prompt:
            await asyncio.sleep(3600)
            return
        if "please garbage" in prompt:
            await _raw(send, 200, b"text/html", b"<html><body>502 Bad Gateway?</body></html>")
            return
        reply = _reply_for(prompt)
        if request.get("stream"):
            await self._stream(send, model, reply, hang_after_first="hang midway" in prompt)
            return
        await _json(
            send,
            200,
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            },
        )

    def _remember(
        self, path: str, headers: dict[str, str], request: dict[str, Any], prompt: str = ""
    ) -> None:
        with self._lock:
            self.calls.append(
                {
                    "path": path,
                    "model": request.get("model"),
                    "stream": bool(request.get("stream")),
                    "prompt": prompt,
                    "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
                    "authorization": headers.get("authorization"),
                    "custodes_headers": sorted(h for h in headers if h.startswith("x-custodes")),
                }
            )

    async def _stream(self, send: Send, model: str, reply: str, *, hang_after_first: bool) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": reply[i : i + CHUNK]}) for i in range(0, len(reply), CHUNK)]
        events.append(chunk({}, "stop"))
        for number, event in enumerate(events):
            data = f"data: {json.dumps(event)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if hang_after_first and number == 1:
                await asyncio.sleep(3600)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _error(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


async def _json(send: Send, status: int, obj: Any) -> None:
    await _raw(send, status, b"application/json", json.dumps(obj).encode())


async def _raw(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """Serve an ASGI app with uvicorn on a free loopback port in a daemon thread."""

    def __init__(self, app: Any, *, lifespan: str = "on") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(2048)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan=lifespan, access_log=False, timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


# -- harness for the proxy tests ------------------------------------------------------------

# Guard rules of the proxy tests, independent of how the built-in packs evolve.
TEST_POLICY = """\
schema: 1
name: proxy-test
rules:
  - id: test.secrets
    message: a credential in clear
    applies-to: [prompt, completion]
    secrets: {}
  - id: test.pii
    message: personal data
    applies-to: [prompt, completion]
    action: redact
    pii: {}
  - id: test.wire
    message: wire transfer instructions need a human
    severity: medium
    applies-to: [completion]
    action: review
    regex: {pattern: "wire transfer"}
  - id: test.intern-payroll
    message: interns may not ask about payroll
    severity: high
    applies-to: [prompt]
    action: block
    when: caller.role == 'intern'
    regex: {pattern: "(?i)payroll"}
"""


@dataclass(frozen=True)
class ProxyHandle:
    url: str
    ledger: Path
    review: Path
    app: Any


@contextmanager
def running_proxy(
    folder: Path, upstream_url: str, **config: Any
) -> Iterator[ProxyHandle]:
    """The real proxy (its policy :data:`TEST_POLICY`, a fresh ledger) in a server thread."""
    from custodes.guard.proxy import ProxyConfig, create_app
    from custodes.ledger import Ledger

    folder.mkdir(parents=True, exist_ok=True)
    ledger, review, policy = folder / "ledger.db", folder / "review.db", folder / "policy.yaml"
    Ledger.create(ledger, name="test.custodes.local/guard").close()
    policy.write_text(TEST_POLICY)
    settings: dict[str, Any] = {
        "upstream": upstream_url + "/v1",
        "policy": (str(policy),),
        "ledger": str(ledger),
        "review": str(review),
        "upstream_timeout": 2.0,
        "retries": 0,
        **config,
    }
    app = create_app(ProxyConfig(**settings))
    with ServerThread(app) as server:
        yield ProxyHandle(server.url, ledger, review, app)


class Process:
    """A server started as a subprocess, its address read from its stderr (or stdout)."""

    def __init__(self, argv: list[str], *, cwd: Path, pattern: str, stream: str = "stderr") -> None:
        import os
        import re
        import subprocess

        env = dict(os.environ)
        env.pop("CUSTODES_LEDGER", None)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._found = threading.Event()
        self.url = ""
        regex = re.compile(pattern)
        watched = self.proc.stderr if stream == "stderr" else self.proc.stdout
        other = self.proc.stdout if stream == "stderr" else self.proc.stderr

        def drain(handle: Any, watch: bool) -> None:
            for line in handle:
                self.lines.append(line.rstrip("\n"))
                match = regex.search(line) if watch and not self._found.is_set() else None
                if match is not None:
                    self.url = match[1]
                    self._found.set()
            if watch:
                self._found.set()  # ended without the address: let the waiter see why

        self._threads = [
            threading.Thread(target=drain, args=(watched, True), daemon=True),
            threading.Thread(target=drain, args=(other, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def wait_ready(self, timeout: float = 60) -> str:
        self._found.wait(timeout)
        if not self.url:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "\n".join(self.lines))
        return self.url

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (output drained)."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def __enter__(self) -> Process:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upstream_process(cwd: Path) -> Process:
    """This module as a server process (``listening on URL`` on stdout)."""
    return Process(
        [sys.executable, __file__, "--port", "0"],
        cwd=cwd,
        pattern=r"listening on (http://[\d.]+:\d+)",
        stream="stdout",
    )


def proxy_process(cwd: Path, *args: str) -> Process:
    """``custodes guard serve ARGS…`` (the real console script), found by its stderr line."""
    custodes = str(Path(sys.executable).parent / "custodes")
    return Process(
        [custodes, "guard", "serve", "--port", "0", *args],
        cwd=cwd,
        pattern=r"guard listening on (http://[\d.]+:\d+)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)  # before the address is printed: early clients wait in the backlog
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(UpstreamApp(), log_level="warning", access_log=False, lifespan="on")
    )
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
