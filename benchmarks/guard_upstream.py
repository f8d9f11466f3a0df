"""The model behind the proxy in the guard benchmark: a minimal OpenAI-compatible server.

usage: python guard_upstream.py [--port 0]   (prints ``listening on http://127.0.0.1:PORT``)

Plain ASGI on uvicorn, as small as an upstream can be, so that what the benchmark measures is
the proxy and not the model. ``POST /v1/chat/completions`` reads the whole body and answers
at once with a fixed completion of about 300 characters (no model, no sleep); ``GET
/v1/models`` lists the one model. It keeps no state per request.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODEL = "bench-model"
REPLY = (
    "Here is a short summary of the document you sent. It describes the quarterly planning "
    "process, the owners of each workstream and the dates by which drafts are due. The main "
    "open question is the budget for the second half of the year, which the team will settle "
    "at the next review meeting."
)
_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 512, "completion_tokens": 60, "total_tokens": 572},
    }
).encode()
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}
).encode()
_NOT_FOUND = b'{"error": {"message": "no such route", "type": "invalid_request_error"}}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # the whole request body is read, as a real model server does
        message = await receive()
        more = bool(message.get("more_body"))
    if scope["path"] == "/v1/chat/completions" and scope["method"] == "POST":
        status, body = 200, _COMPLETION
    elif scope["path"] == "/v1/models" and scope["method"] == "GET":
        status, body = 200, _MODELS
    else:
        status, body = 404, _NOT_FOUND
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket's protocol says TCP, and without it every keep-alive answer after the first waits
    # 40 ms for a delayed ACK (the headers and the body leave in two writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)  # listening before the address is printed: early clients wait
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", server_header=False,
        date_header=False,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
