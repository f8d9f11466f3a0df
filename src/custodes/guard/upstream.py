"""The model behind the proxy: one shared ``aiohttp`` client session with keep-alive and timeouts.

Why aiohttp and not httpx: the client's CPU per request bounds the proxy on a small machine.
Measured against the same local model on 2 cores, httpx 0.28 spent 1.3 ms of CPU per request
one at a time and 4.1 ms at 50 concurrent (its pool scans every pooled connection per request);
aiohttp 3.14 spent 0.41 ms and 0.29 ms.

Retries are on connection failures only (the request never left, so a retried
``POST /chat/completions`` cannot run twice); a read that times out is a 504, a reply that is
not what an OpenAI-compatible server sends is a 502. The caller's ``Authorization`` header is
passed through and nothing here logs or keeps it.

Errors::

    UpstreamError          (Error, 3)  the model could not be used; ``status`` is the HTTP answer
    ├── UpstreamTimeout               no answer within the read timeout (504)
    ├── UpstreamUnreachable           no connection could be made (502)
    └── UpstreamBadResponse           the answer is not JSON / not server-sent events (502)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from custodes.errors import Error, UsageError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_REPLY",
    "Upstream",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamReply",
    "UpstreamStream",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "check_upstream_url",
]

DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_RETRIES: Final = 2
MAX_REPLY: Final = 64 * 1024 * 1024  # a completion body larger than this is not a completion
# Headers of the caller the model needs (its credentials and OpenAI account routing); every
# other header, custodes' own included, stays at the proxy.
_PASSED_HEADERS: Final = ("authorization", "openai-organization", "openai-project")
# Below the 5 s idle timeout of common servers (uvicorn, gunicorn): reusing a connection the
# server is closing would fail a request that cannot be safely retried.
_KEEPALIVE: Final = 4.0
_BACKOFF: Final = 0.05


class UpstreamError(Error):
    """The upstream model could not be used; ``status`` is the HTTP status to answer with."""

    status = 502
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    status = 502
    code = "upstream_unreachable"


class UpstreamBadResponse(UpstreamError):
    status = 502
    code = "upstream_bad_response"


def check_upstream_url(url: str) -> str:
    """The base URL without a trailing slash; a usage error unless it is http(s)://host[…]."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--upstream {url!r} is not an http(s) URL",
            hint="give the model's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1",
        )
    if parts.query or parts.fragment:
        raise UsageError(
            f"--upstream {url!r} holds a query or fragment",
            hint="give the base URL only, e.g. https://api.openai.com/v1",
        )
    return url.strip().rstrip("/")


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class UpstreamReply:
    """A complete answer of the upstream (any status)."""

    status: int
    body: bytes
    content_type: str
    duration_ms: float

    def json(self) -> Any:
        """The body as JSON; :class:`UpstreamBadResponse` when it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UpstreamBadResponse(
                f"the upstream answered HTTP {self.status} with a body that is not JSON",
                hint="check --upstream points at an OpenAI-compatible server",
            ) from exc


async def _read_all(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY:
            raise UpstreamBadResponse(f"the upstream's reply is larger than {MAX_REPLY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class UpstreamStream:
    """An open streamed answer; iterate :meth:`events` for the ``data:`` payloads."""

    def __init__(self, response: aiohttp.ClientResponse, start: float) -> None:
        self._response = response
        self._start = start
        self.status = response.status
        self.content_type = response.headers.get("content-type", "")

    @property
    def duration_ms(self) -> float:
        return _elapsed_ms(self._start)

    async def read(self) -> UpstreamReply:
        """The whole body, for an answer that is not a stream (an error, usually)."""
        async with _mapped("the upstream stopped answering mid-reply"):
            body = await _read_all(self._response)
        return UpstreamReply(self.status, body, self.content_type, self.duration_ms)

    async def events(self) -> AsyncIterator[str]:
        """The ``data`` of each server-sent event, ``[DONE]`` included, in order.

        Multi-line data fields are joined with newlines as the SSE specification says; event
        names, ids and comments carry nothing an OpenAI chat stream needs.
        """
        data: list[str] = []
        pending = b""
        async with _mapped("the upstream stopped streaming mid-reply"):
            async for chunk in self._response.content.iter_any():
                pending += chunk
                if len(pending) > MAX_REPLY:
                    raise UpstreamBadResponse("the upstream sent a stream line without an end")
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.rstrip(b"\r").decode("utf-8", "replace")
                    if not line:
                        if data:
                            yield "\n".join(data)
                            data = []
                    elif line.startswith("data:"):
                        value = line[5:]
                        data.append(value[1:] if value.startswith(" ") else value)
        if pending.startswith(b"data:"):
            value = pending[5:].rstrip(b"\r").decode("utf-8", "replace")
            data.append(value[1:] if value.startswith(" ") else value)
        if data:
            yield "\n".join(data)


@asynccontextmanager
async def _mapped(what: str) -> AsyncIterator[None]:
    """aiohttp's errors while a reply is read, as :class:`UpstreamError`."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout(what, hint="check the model is up, or raise --upstream-timeout") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamBadResponse(f"{what} ({type(exc).__name__})") from exc


class Upstream:
    """The OpenAI-compatible server behind the proxy, reached through one pooled session.

    ``url`` is its base URL as OpenAI clients take it (``https://api.openai.com/v1``); paths
    such as ``/chat/completions`` are appended. ``timeout`` bounds each read (a hanging model
    becomes a 504); ``retries`` reconnects when a connection cannot be made. The session is
    opened on first use, inside the server's event loop.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_connections: int = 512,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise UsageError("upstream timeouts must be positive numbers of seconds")
        if retries < 0:
            raise UsageError("upstream retries cannot be negative")
        self.url = check_upstream_url(url)
        self.retries = retries
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def pass_headers(headers: Mapping[str, str]) -> dict[str, str]:
        """The caller's headers the upstream gets (lower-case names in, as ASGI gives them)."""
        return {name: headers[name] for name in _PASSED_HEADERS if name in headers}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=_KEEPALIVE, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # The proxy decides which caller headers go on; none come from the environment.
                trust_env=False,
                raise_for_status=False,
            )
        return self._session

    async def _send(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> aiohttp.ClientResponse:
        sent = dict(headers)
        if body is not None:
            sent["content-type"] = "application/json"
        attempt = 0
        while True:
            try:
                return await self._client().request(
                    method, self.url + path, headers=sent, data=body, allow_redirects=False
                )
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent: safe to try again.
                if attempt >= self.retries:
                    raise UpstreamUnreachable(
                        "could not connect to the upstream",
                        hint="check --upstream and that the model is up",
                    ) from exc
            except TimeoutError as exc:
                raise UpstreamTimeout(
                    "the upstream did not answer in time",
                    hint="check the model is up, or raise --upstream-timeout",
                ) from exc
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
                raise UpstreamBadResponse(
                    "the upstream broke the HTTP protocol or closed the connection",
                    hint="check --upstream points at an OpenAI-compatible server",
                ) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamUnreachable(
                    f"the upstream request failed ({type(exc).__name__})"
                ) from exc
            await asyncio.sleep(_BACKOFF * 2**attempt)
            attempt += 1

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> UpstreamReply:
        """Send one request and read the whole answer."""
        start = time.perf_counter()
        response = await self._send(method, path, headers, body)
        try:
            async with _mapped("the upstream stopped answering mid-reply"):
                data = await _read_all(response)
        finally:
            response.release()
        return UpstreamReply(
            response.status, data, response.headers.get("content-type", ""), _elapsed_ms(start)
        )

    @asynccontextmanager
    async def stream(
        self, path: str, *, headers: Mapping[str, str], body: bytes
    ) -> AsyncIterator[UpstreamStream]:
        """POST and hold the answer open for reading as it arrives; closed on exit."""
        start = time.perf_counter()
        response = await self._send("POST", path, headers, body)
        try:
            yield UpstreamStream(response, start)
        finally:
            response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
