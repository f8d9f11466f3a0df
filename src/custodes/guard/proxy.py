"""The guard proxy: an OpenAI-compatible HTTP front for any model, in plain ASGI.

Routes::

    POST /v1/chat/completions   admission → upstream → validation; ``"stream": true`` too
    GET  /v1/models             the upstream's list, passed through
    POST /v1/custodes/check     checks only: ``{"prompt": …}`` or ``{"completion": …}`` → verdict
    GET  /healthz               ``{"status": "ok"}``
    GET  /metrics               Prometheus text format

A refused prompt never reaches the upstream and a completion that breaks a rule never reaches
the caller: a refusal is OpenAI's error body (``{"error": {"message", "type", "code",
"param"}}``) plus ``"custodes": {"rules", "explanation_id", …}``, with HTTP 403 (policy) or 400
(bad input). A completion held for human review is answered, once ``review_timeout`` passes
without a decision, with 403 ``custodes_review_pending`` and the review id, so OpenAI clients
keep working. Every answer of a ``/v1/`` route is recorded in the ledger before it is sent and
carries ``X-Custodes-Ledger-Index`` and ``X-Custodes-Trace-Id``; a stream's headers name the
admission entry, and its last event (an SSE comment) the validation entry.

Streams are checked as they flow: the guard holds back a tail long enough for any rule to match
across chunk borders, and a violation ends the stream with an error event (OpenAI clients raise
it) instead of ``[DONE]``.

Configuration is computed once (:func:`create_app`); per request there is no policy loading.
A request that reaches the model makes one durable ledger commit: the admission entry of an
admitted prompt is staged (:meth:`Guard.aadmit`) and committed with the call and validation
entries, or with the upstream's failure, before any answer is sent; a refusal is committed
before it is answered, and a stream's admission before its headers (they name it). A short
prompt is checked on the event loop; commits, and checks that are long or need I/O, run on the
guard's thread pool, where concurrent requests share group commits. The trade: a crash between
the model call and the commit loses the admission record of a request never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from custodes.errors import Error, UsageError
from custodes.findings import Finding
from custodes.guard.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from custodes.guard.metrics import Metrics
from custodes.guard.upstream import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Upstream,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamStream,
)

if TYPE_CHECKING:
    from custodes.guard.pipeline import Caller, Guard, Verdict

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_LEDGER",
    "DEFAULT_MAX_BODY",
    "GuardProxy",
    "ProxyConfig",
    "app_from_env",
    "create_app",
]

log = logging.getLogger("custodes.guard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")
_Handler = Callable[["_Exchange", Receive, Send], Awaitable[None]]

DEFAULT_LEDGER: Final = os.path.join(".custodes", "ledger.db")
DEFAULT_MAX_BODY: Final = 1024 * 1024
CONFIG_ENV: Final = "CUSTODES_GUARD_CONFIG"
LEDGER_HEADER: Final = "x-custodes-ledger-index"
TRACE_HEADER: Final = "x-custodes-trace-id"
_HEADER_MAX = 256
_CHAT = "/v1/chat/completions"
_CHECK = "/v1/custodes/check"
_MODELS = "/v1/models"
_JSON = b"application/json"
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_TRACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyConfig:
    """Everything ``custodes guard serve`` is told; turned into a running proxy once."""

    upstream: str
    policy: tuple[str, ...] = ("enterprise",)
    ledger: str | None = DEFAULT_LEDGER
    index: str | None = None
    review: str | None = None
    token_verifiers: tuple[str, ...] = ()
    audience: str = "custodes-guard"
    fail_closed: bool = True
    review_timeout: float = 0.0
    max_body: int = DEFAULT_MAX_BODY
    upstream_timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProxyConfig:
        data = json.loads(text)
        for name in ("policy", "token_verifiers"):
            data[name] = tuple(data[name])
        return cls(**data)


def create_app(config: ProxyConfig) -> GuardProxy:
    """Load the policy, open the ledger and the upstream client: a proxy ready to serve."""
    from custodes.guard.pipeline import Guard

    if config.max_body < 1024:
        raise UsageError(
            f"--max-body {config.max_body} is too small", hint="give at least 1KiB, e.g. 1MiB"
        )
    if config.review_timeout < 0:
        raise UsageError("--review-timeout cannot be negative", hint="give seconds, 0 to not wait")
    upstream = Upstream(
        config.upstream,
        timeout=config.upstream_timeout,
        connect_timeout=config.connect_timeout,
        retries=config.retries,
    )
    policy: str | Sequence[str] = config.policy[0] if len(config.policy) == 1 else config.policy
    guard = Guard(
        policy,
        config.ledger,
        index=config.index,
        review=config.review,
        token_verifiers=config.token_verifiers,
        audience=config.audience,
        fail_closed=config.fail_closed,
        review_timeout=config.review_timeout,
    )
    problem = guard.policy_error.diagnostics() if guard.policy_error is not None else None
    if problem is None and config.ledger is not None and guard.ledger is None:
        problem = guard.ledger_error or f"the ledger {config.ledger} cannot be opened"
    if problem is not None:
        guard.close()
        raise UsageError(f"the guard cannot start: {problem}")
    return GuardProxy(guard, upstream, max_body=config.max_body, owns=True)


def app_from_env() -> GuardProxy:
    """The factory each ``--workers`` process calls: the configuration comes in ``CONFIG_ENV``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise UsageError(
            f"{CONFIG_ENV} is not set", hint="start the proxy with `custodes guard serve`"
        )
    return create_app(ProxyConfig.from_json(text))


# -- HTTP edges ------------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr = Field(min_length=1, max_length=256)
    messages: list[_Message] = Field(min_length=1)
    stream: StrictBool = False


class _CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: StrictStr | list[_Message] | None = None
    completion: StrictStr | None = None
    model: StrictStr | None = Field(default=None, max_length=256)
    trace_id: StrictStr | None = Field(default=None, pattern=_TRACE_ID.pattern)


class _HttpError(Exception):
    """An answer the proxy gives itself: bad input, an upstream failure."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        upstream_body: Mapping[str, Any] | None = None,
        called: bool = False,
    ) -> None:
        super().__init__(message)
        self.called = called  # the upstream was called: recorded as the call step
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.param = param
        self.upstream_body = upstream_body


class _ClientGone(Exception):
    pass


@dataclass
class _Exchange:
    """One request as it goes through the proxy."""

    path: str
    headers: dict[str, str]
    trace_id: str
    started: float
    status: int = 0
    model: str | None = None
    upstream_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _error_object(
    message: str, kind: str, code: str | None, param: str | None
) -> dict[str, Any]:
    return {"message": message, "type": kind, "code": code, "param": param}


def _not_json(name: str) -> Any:
    # Python reads NaN and Infinity; JSON (RFC 8259) and the models behind us do not.
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _validation_error(exc: ValidationError) -> _HttpError:
    # Never str(exc): pydantic quotes the input, which may hold what we guard.
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return _HttpError(
        400,
        "invalid_request",
        f"{where or 'the body'}: {first['msg']}",
        param=where or None,
    )


def _finding_view(finding: Finding) -> dict[str, Any]:
    view: dict[str, Any] = {
        "detector": finding.rule,
        "kind": finding.kind,
        "severity": str(finding.severity),
        "digest": finding.match_hash,
    }
    # As in the ledger: personal data shows no preview at all, not even a partial one.
    if finding.preview is not None and finding.kind != "pii":
        view["preview"] = finding.preview
    return view


def _verdict_view(verdict: Verdict) -> dict[str, Any]:
    return {
        "action": str(verdict.action),
        "allowed": verdict.allowed,
        "stage": verdict.stage,
        "trace_id": verdict.trace_id,
        "rules": list(verdict.rules),
        "findings": [_finding_view(f) for f in verdict.findings],
        "explanation_id": verdict.explanation_id,
        "ledger_index": verdict.ledger_index,
        "review_id": verdict.review_id,
    }


def _refusal(verdict: Verdict) -> tuple[int, dict[str, Any]]:
    """The OpenAI-style error body a refusing verdict is answered with, and its status."""
    action = str(verdict.action)
    what = "prompt" if verdict.stage == "admission" else "completion"
    rules = ", ".join(verdict.rules) or "policy"
    status = verdict.http_status if verdict.http_status >= 400 else 403
    if action == "review":
        code = "custodes_review_pending"
        message = (
            f"the {what} is held for human review (review {verdict.review_id}); "
            "ask a reviewer, then retry"
        )
    elif status == 400:
        code = "custodes_invalid_request"
        message = f"custodes could not accept the request ({rules})"
    elif status >= 500:
        code = "custodes_unavailable"
        message = f"custodes could not check the {what} and fails closed ({rules})"
    else:
        code = f"custodes_{what}_blocked"
        message = f"custodes blocked the {what}: {rules}"
    if verdict.explanation_id:
        message += f" (see `custodes explain {verdict.explanation_id}`)"
    kind = {400: "invalid_request_error", 403: "permission_error"}.get(status, "server_error")
    custodes = _verdict_view(verdict)
    return status, {"error": _error_object(message, kind, code, None), "custodes": custodes}


def _caller_headers(headers: Mapping[str, str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for name in ("caller", "role", "purpose", "tenant"):
        value = headers.get(f"x-custodes-{name}")
        if value is not None and (
            not value.strip() or len(value) > _HEADER_MAX or not value.isprintable()
        ):
            raise _HttpError(
                400,
                "invalid_header",
                f"X-Custodes-{name.title()} must be printable text of 1 to {_HEADER_MAX} "
                "characters",
                param=f"X-Custodes-{name.title()}",
            )
        values[name] = value.strip() if value is not None else None
    return values


# -- the application -------------------------------------------------------------------------


class GuardProxy:
    """The ASGI application. ``owns``: close the guard when the server shuts down."""

    def __init__(
        self,
        guard: Guard,
        upstream: Upstream,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        metrics: Metrics | None = None,
        owns: bool = False,
    ) -> None:
        self.guard = guard
        self.upstream = upstream
        self.max_body = max_body
        self.metrics = metrics or Metrics()
        self._owns = owns
        self._closed = False
        self._active = 0  # HTTP requests in flight in this process (this event loop)
        self._handlers: dict[tuple[str, str], _Handler] = {
            (_CHAT, "POST"): self._chat,
            (_CHECK, "POST"): self._check,
            (_MODELS, "GET"): self._models,
        }

    # -- ASGI --
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close the upstream client, and the guard if this proxy owns it (flushes the ledger)."""
        if self._closed:
            return
        self._closed = True
        await self.upstream.aclose()
        if self._owns:
            # Not on the guard's own pool: closing shuts that pool down.
            await asyncio.to_thread(self.guard.close)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        ex = _Exchange(scope["path"], headers, uuid.uuid4().hex, time.perf_counter())

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = int(message["status"])
            await send(message)

        self.metrics.started()
        self._active += 1
        try:
            await self._route(scope["method"], ex, receive, sending)
        except _ClientGone:
            ex.status = ex.status or 499
        finally:
            self._active -= 1
            seconds = time.perf_counter() - ex.started
            self.metrics.finished(ex.path, ex.status, seconds)
            if ex.path == _CHAT and ex.upstream_ms is not None:
                self.metrics.overhead(seconds - ex.upstream_ms / 1000.0)

    async def _route(self, method: str, ex: _Exchange, receive: Receive, send: Send) -> None:
        path = ex.path
        if path == "/healthz" and method in ("GET", "HEAD"):
            await _respond(send, 200, _dumps({"status": "ok"}))
            return
        if path == "/metrics" and method == "GET":
            body = await asyncio.to_thread(self.metrics.exposition)
            await _respond(send, 200, body, METRICS_CONTENT_TYPE.encode())
            return
        handler = self._handlers.get((path, method))
        if handler is None:
            known = path in (_CHAT, _CHECK, _MODELS)
            status, code = (405, "method_not_allowed") if known else (404, "not_found")
            message = (
                f"{method} is not allowed on {path}"
                if known
                else "no such route; the proxy serves /v1/chat/completions, /v1/models, "
                "/v1/custodes/check, /healthz and /metrics"
            )
            body = _dumps({"error": _error_object(message, "invalid_request_error", code, None)})
            await _respond(send, status, body)
            return
        try:
            await handler(ex, receive, send)
        except _HttpError as exc:
            await self._answer_error(ex, send, exc)
        except _ClientGone:
            gone = _HttpError(499, "client_disconnected", "the client closed the connection")
            await self._record_refused(ex, gone)
            raise
        except Error as exc:
            # The guard failed (a ledger that cannot be written, a detector that broke): fail
            # closed, say why without what was guarded.
            log.error("guard failure on %s: %s", path, exc.diagnostics())
            await self._answer_error(
                ex,
                send,
                _HttpError(503, "custodes_unavailable", "custodes could not check the request "
                           "and fails closed; see the proxy's log", kind="server_error"),
            )  # fmt: skip
        except Exception as exc:
            if ex.status:  # a stream already under way: nothing more can be said
                raise
            # Where, not what: an exception's message may quote the request.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "internal error on %s (trace %s): %s at %s:%s",
                path, ex.trace_id, type(exc).__name__, where.filename, where.lineno,
            )  # fmt: skip
            await self._answer_error(
                ex,
                send,
                _HttpError(500, "custodes_internal_error", "custodes failed on this request "
                           "(a bug); see the proxy's log", kind="server_error"),
            )  # fmt: skip

    async def _offload(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # The guard's pool: ledger appends from its threads share group commits.
        return await self.guard.run_async(partial(func, *args, **kwargs))

    # -- recording and answering --
    async def _record(
        self,
        ex: _Exchange,
        *,
        status: int,
        duration_ms: float = 0.0,
        output: str | None = None,
        error: str | None = None,
    ) -> int | None:
        """Record the upstream call of ``ex``; None (logged) when the ledger cannot."""
        try:
            index = await self._offload(
                self.guard.record_call,
                ex.trace_id,
                model=ex.model,
                upstream=self.upstream.url,
                status=status,
                duration_ms=duration_ms,
                output=output,
                error=error,
            )
        except Error as exc:
            log.error("cannot record trace %s in the ledger: %s", ex.trace_id, exc.diagnostics())
            return None
        return index if index >= 0 else None

    async def _record_refused(self, ex: _Exchange, exc: _HttpError) -> int | None:
        """Record a request the proxy refused before any call (bad input, a bug), after the
        trace's staged admission if there is one."""
        if self.guard.ledger is None:
            return None
        entry = {
            "door": "guard",
            "kind": "step",
            "step": "request",
            "trace_id": ex.trace_id,
            "route": ex.path,
            "model": ex.model,
            "status": exc.status,
            "error": {"code": exc.code, "message": exc.message},
        }
        try:
            return await self._offload(self.guard.record, entry)
        except Error as err:
            log.error("cannot record trace %s in the ledger: %s", ex.trace_id, err.diagnostics())
            return None

    async def _answer_error(self, ex: _Exchange, send: Send, exc: _HttpError) -> None:
        # An upstream's own error code is its to choose: label it by status only.
        self.metrics.error(exc.code if exc.upstream_body is None else f"upstream_{exc.status}")
        if exc.called:
            # An upstream's own message may quote the request: the ledger keeps its code only.
            said = exc.message if exc.upstream_body is None else f"the upstream answered {exc.status}"
            index = await self._record(
                ex,
                status=exc.status,
                duration_ms=ex.upstream_ms or 0.0,
                error=f"{exc.code}: {said}",
            )
        else:
            index = await self._record_refused(ex, exc)
        if exc.upstream_body is not None:
            body = dict(exc.upstream_body)
        else:
            body = {"error": _error_object(exc.message, exc.kind, exc.code, exc.param)}
        body["custodes"] = {"trace_id": ex.trace_id, "ledger_index": index}
        await _respond(send, exc.status, _dumps(body), headers=_trace_headers(ex, index))

    async def _refuse(self, ex: _Exchange, send: Send, verdict: Verdict) -> None:
        status, body = _refusal(verdict)
        self.metrics.error(body["error"]["code"])
        await _respond(send, status, _dumps(body), headers=_trace_headers(ex, verdict.ledger_index))

    def _observe(self, verdict: Verdict) -> Verdict:
        self.metrics.verdict(verdict.stage, str(verdict.action))
        return verdict

    # -- reading requests --
    async def _read_json(self, ex: _Exchange, receive: Receive) -> Any:
        content_type = ex.headers.get("content-type", "")
        mime, _, params = content_type.partition(";")
        charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
        if mime.strip().lower() != "application/json" or (
            charset is not None and charset[1].lower() not in ("utf-8", "utf8")
        ):
            raise _HttpError(
                415,
                "unsupported_media_type",
                f"the body must be JSON in UTF-8 (Content-Type: application/json), not "
                f"{content_type[:80] or 'unlabelled'}",
            )
        declared = ex.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        ex.extra["raw"] = raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _HttpError(
                400, "invalid_utf8", f"the body is not valid UTF-8 (byte {exc.start})"
            ) from exc
        try:
            value = json.loads(text, parse_constant=_not_json)
        except json.JSONDecodeError as exc:
            raise _HttpError(
                400,
                "invalid_json",
                f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            ) from exc
        if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(value):
            raise _HttpError(
                400, "invalid_utf8", "the body escapes a lone UTF-16 surrogate (\\uD800–\\uDFFF)"
            )
        if not isinstance(value, dict):
            raise _HttpError(400, "invalid_request", "the body must be a JSON object")
        return value

    def _too_large(self) -> _HttpError:
        return _HttpError(
            413,
            "body_too_large",
            f"the body is larger than the proxy's limit of {self.max_body} bytes",
        )

    def _caller(self, ex: _Exchange) -> tuple[Caller, str | None]:
        from custodes.guard.pipeline import Caller

        values = _caller_headers(ex.headers)
        caller = Caller(
            id=values["caller"], role=values["role"], purpose=values["purpose"],
            tenant=values["tenant"],
        )  # fmt: skip
        token = ex.headers.get("x-custodes-token")
        return caller, token.strip() if token else None

    # -- /v1/chat/completions --
    async def _chat(self, ex: _Exchange, receive: Receive, send: Send) -> None:
        body = await self._read_json(ex, receive)
        try:
            request = _ChatRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        ex.model = request.model
        caller, token = self._caller(ex)
        if request.stream:
            # A stream's headers name the admission entry: recorded before they go out.
            checking = self.guard.acheck_prompt(
                body["messages"], caller=caller, model=request.model, token=token,
                trace_id=ex.trace_id,
            )  # fmt: skip
        else:
            # Staged: recorded in one commit with the call and the validation, or with the
            # upstream's failure, before any answer; a refusal is recorded at once.
            checking = self.guard.aadmit(
                body["messages"], caller=caller, model=request.model, token=token,
                trace_id=ex.trace_id,
            )  # fmt: skip
        admission = self._observe(await checking)
        if not admission.allowed:
            await self._refuse(ex, send, admission)
            return
        raw: bytes = ex.extra["raw"]
        if admission.action == "redact" and admission.messages is not None:
            # Only the redacted messages go on; the rest of the request as the caller sent it.
            raw = _dumps({**body, "messages": list(admission.messages)})
        passed = self.upstream.pass_headers(ex.headers)
        if request.stream:
            await self._chat_stream(ex, receive, send, raw, passed, caller, token, admission)
        else:
            await self._chat_once(ex, send, raw, passed, caller, token)

    async def _call_failed(self, ex: _Exchange, exc: UpstreamError) -> _HttpError:
        self.metrics.upstream(exc.code)
        kind = "timeout_error" if exc.status == 504 else "upstream_error"
        return _HttpError(exc.status, exc.code, exc.diagnostics(), kind=kind, called=True)

    async def _chat_once(
        self,
        ex: _Exchange,
        send: Send,
        raw: bytes,
        passed: Mapping[str, str],
        caller: Caller,
        token: str | None,
    ) -> None:
        try:
            reply = await self.upstream.request("POST", "/chat/completions", headers=passed, body=raw)
        except UpstreamError as exc:
            raise await self._call_failed(ex, exc) from exc
        ex.upstream_ms = reply.duration_ms
        self.metrics.upstream(reply.status, reply.duration_ms / 1000.0)
        if reply.status != 200:
            raise _upstream_refused(reply.status, reply.body)
        try:
            data = reply.json()
            texts = _completion_texts(data)
        except UpstreamBadResponse as exc:
            self.metrics.upstream("bad_response")
            raise _HttpError(
                502, exc.code, exc.diagnostics(), kind="upstream_error", called=True
            ) from exc
        from custodes.guard.pipeline import GuardViolation

        try:
            # One ledger commit for the call and its checks: on the guard's pool, where
            # concurrent requests share commits, or on the loop when this request is alone.
            recorded, verdicts = await self.guard.avalidate_call(
                ex.trace_id,
                [text for _, text in texts],
                model=ex.model,
                upstream=self.upstream.url,
                status=reply.status,
                duration_ms=reply.duration_ms,
                caller=caller,
                token=token,
                alone=self._active == 1,
            )
        except GuardViolation as exc:  # the ledger cannot record: fail closed
            log.error("cannot record trace %s in the ledger", ex.trace_id)
            await self._refuse(ex, send, exc.verdict)
            return
        index = recorded if recorded >= 0 else None
        changed = False
        for (setter, _), verdict in zip(texts, verdicts, strict=True):
            self._observe(verdict)
            if not verdict.allowed:
                await self._refuse(ex, send, verdict)
                return
            if str(verdict.action) == "redact" and verdict.text is not None:
                setter(verdict.text)
                changed = True
            index = verdict.ledger_index if verdict.ledger_index is not None else index
        if index is None:
            raise _HttpError(
                503, "custodes_unavailable", "custodes could not record the answer and fails "
                "closed; see the proxy's log", kind="server_error",
            )  # fmt: skip
        out = _dumps(data) if changed else reply.body
        await _respond(send, 200, out, headers=_trace_headers(ex, index))

    # -- streaming --
    async def _chat_stream(
        self,
        ex: _Exchange,
        receive: Receive,
        send: Send,
        raw: bytes,
        passed: Mapping[str, str],
        caller: Caller,
        token: str | None,
        admission: Verdict,
    ) -> None:
        try:
            async with self.upstream.stream("/chat/completions", headers=passed, body=raw) as up:
                if up.status != 200 or "text/event-stream" not in up.content_type:
                    reply = await up.read()
                    ex.upstream_ms = reply.duration_ms
                    self.metrics.upstream(reply.status, reply.duration_ms / 1000.0)
                    if reply.status != 200:
                        raise _upstream_refused(reply.status, reply.body)
                    self.metrics.upstream("bad_response")
                    raise _HttpError(
                        502,
                        "upstream_bad_response",
                        "the upstream answered a streaming request without server-sent events",
                        kind="upstream_error",
                        called=True,
                    )
                headers = [
                    *_SSE_HEADERS,
                    *_trace_headers(ex, admission.ledger_index),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await _StreamRelay(self, ex, send, up, caller, token).run(receive)
        except UpstreamError as exc:
            raise await self._call_failed(ex, exc) from exc

    # -- /v1/models --
    async def _models(self, ex: _Exchange, receive: Receive, send: Send) -> None:
        passed = self.upstream.pass_headers(ex.headers)
        try:
            reply = await self.upstream.request("GET", "/models", headers=passed)
        except UpstreamError as exc:
            raise await self._call_failed(ex, exc) from exc
        ex.upstream_ms = reply.duration_ms
        self.metrics.upstream(reply.status, reply.duration_ms / 1000.0)
        if reply.status != 200:
            raise _upstream_refused(reply.status, reply.body)
        data = reply.json() if reply.body else None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise _HttpError(
                502, "upstream_bad_response", "the upstream's model list is not "
                '{"object": "list", "data": [...]}', kind="upstream_error", called=True,
            )  # fmt: skip
        index = await self._record(ex, status=200, duration_ms=reply.duration_ms)
        if index is None:
            raise _HttpError(
                503, "custodes_unavailable", "custodes could not record the answer and fails "
                "closed; see the proxy's log", kind="server_error",
            )  # fmt: skip
        await _respond(send, 200, reply.body, headers=_trace_headers(ex, index))

    # -- /v1/custodes/check --
    async def _check(self, ex: _Exchange, receive: Receive, send: Send) -> None:
        body = await self._read_json(ex, receive)
        try:
            request = _CheckRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        if (request.prompt is None) == (request.completion is None):
            raise _HttpError(
                400,
                "invalid_request",
                'give exactly one of "prompt" (text or chat messages) and "completion"',
                param="prompt",
            )
        ex.model = request.model
        if request.trace_id is not None:
            ex.trace_id = request.trace_id
        caller, token = self._caller(ex)
        if request.prompt is not None:
            verdict = await self.guard.acheck_prompt(
                body["prompt"], caller=caller, model=request.model, token=token,
                trace_id=ex.trace_id,
            )  # fmt: skip
        else:
            assert request.completion is not None
            verdict = await self.guard.acheck_completion(
                request.completion, trace_id=ex.trace_id, caller=caller, model=request.model,
                token=token,
            )  # fmt: skip
        self._observe(verdict)
        view = _verdict_view(verdict)
        view["text"] = verdict.text
        view["http_status"] = verdict.http_status
        await _respond(send, 200, _dumps(view), headers=_trace_headers(ex, verdict.ledger_index))


class _StreamRelay:
    """Relays one upstream stream, releasing only text the guard has passed."""

    def __init__(
        self,
        proxy: GuardProxy,
        ex: _Exchange,
        send: Send,
        upstream: UpstreamStream,
        caller: Caller,
        token: str | None,
    ) -> None:
        self.proxy = proxy
        self.ex = ex
        self.send = send
        self.upstream = upstream
        self.caller = caller
        self.token = token
        self.checks: dict[int, Any] = {}  # choice index → StreamCheck
        self.texts: dict[int, list[str]] = {}
        self.index: int | None = None
        self.envelope: dict[str, Any] = {"object": "chat.completion.chunk"}
        self.closing = False  # checking the end and recording: no longer cancelled

    async def _event(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def _end(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    def _check(self, choice: int) -> Any:
        check = self.checks.get(choice)
        if check is None:
            check = self.proxy.guard.stream(
                self.ex.trace_id, caller=self.caller, model=self.ex.model, token=self.token
            )
            self.checks[choice] = check
            self.texts[choice] = []
        return check

    async def _finish(self, choice: int) -> str:
        """Check what the guard still holds of ``choice``; the text it releases."""
        check = self.checks.pop(choice)
        verdict: Verdict = self.proxy._observe(await self.proxy._offload(check.finish))
        if verdict.ledger_index is not None:
            self.index = verdict.ledger_index
        if not verdict.allowed:
            raise _Refused(verdict)
        return verdict.text or ""

    async def run(self, receive: Receive) -> None:
        """Relay until the stream ends; a client that leaves stops it (what was seen is
        still checked and recorded)."""
        relay = asyncio.ensure_future(self._run())
        left = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({relay, left}, return_when=asyncio.FIRST_COMPLETED)
            if not relay.done() and not self.closing:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
                await self._gone()
                return
            await relay
        finally:
            left.cancel()

    async def _run(self) -> None:
        from custodes.guard.pipeline import GuardViolation

        try:
            try:
                await self._relay()
            finally:
                self.ex.upstream_ms = self.upstream.duration_ms
        except (GuardViolation, _Refused) as exc:
            self.closing = True
            await self._stop_refused(exc.verdict)
            return
        except UpstreamError as exc:
            self.closing = True
            self.proxy.metrics.upstream(exc.code)
            await self._stop_error(exc.status, exc.code, exc.diagnostics())
            return
        self.proxy.metrics.upstream(200, self.upstream.duration_ms / 1000.0)
        call_index = await self._record_call()
        index = self.index if self.index is not None else call_index
        trailer = {"trace_id": self.ex.trace_id, "ledger_index": index}
        await self._event(b": custodes " + _dumps(trailer) + b"\n\n")
        await self._end(b"data: [DONE]\n\n")

    async def _gone(self) -> None:
        """The client left mid-stream: check what arrived so far and record the call."""
        self.proxy.metrics.error("client_disconnected")
        for choice in sorted(self.checks):
            check = self.checks.pop(choice)
            self.proxy._observe(await self.proxy._offload(check.finish))
        await self._record_call("client_disconnected: the client closed the stream", status=499)

    async def _record_call(self, error: str | None = None, *, status: int = 200) -> int | None:
        output = "\n".join("".join(parts) for parts in self.texts.values())
        return await self.proxy._record(
            self.ex,
            status=status,
            duration_ms=self.upstream.duration_ms,
            output=output,
            error=error,
        )

    async def _relay(self) -> None:
        async for data in self.upstream.events():
            if data.strip() == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise UpstreamBadResponse(
                    "the upstream sent a stream event that is not JSON"
                ) from exc
            if not isinstance(chunk, dict):
                raise UpstreamBadResponse("the upstream sent a stream event that is not an object")
            if "error" in chunk:
                raise UpstreamBadResponse("the upstream ended its stream with an error")
            self.envelope = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
            out = await self._pass(chunk)
            if out is not None:
                await self._event(b"data: " + _dumps(out) + b"\n\n")
        self.closing = True
        for choice in sorted(self.checks):
            tail = await self._finish(choice)
            if tail:
                out = {**self.envelope, "choices": [_tail_choice(choice, tail)]}
                await self._event(b"data: " + _dumps(out) + b"\n\n")

    async def _pass(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send on (its text replaced by what the guard releases), or None."""
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise UpstreamBadResponse("the upstream sent a stream chunk without choices")
        keep = not choices  # a usage-only chunk goes on as it is
        for choice in choices:
            if not isinstance(choice, dict):
                raise UpstreamBadResponse("the upstream sent a malformed stream choice")
            number = choice.get("index", 0)
            if choice.get("delta") is None:
                choice["delta"] = {}
            delta = choice["delta"]
            if not isinstance(number, int) or not isinstance(delta, dict):
                raise UpstreamBadResponse("the upstream sent a malformed stream choice")
            check = self._check(number)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.texts[number].append(content)
                # On the guard's pool: the check reads the text, and records a blocking match.
                delta["content"] = await self.proxy._offload(check.feed, content)
            if choice.get("finish_reason") is not None:
                delta["content"] = (delta.get("content") or "") + await self._finish(number)
            if delta.get("content") == "" and content:
                del delta["content"]
            if delta or choice.get("finish_reason") is not None:
                keep = True
        return chunk if keep else None

    async def _stop_refused(self, verdict: Verdict) -> None:
        self.proxy._observe(verdict)
        await self._record_call()
        _, body = _refusal(verdict)
        self.proxy.metrics.error(body["error"]["code"])
        await self._end(b"data: " + _dumps(body) + b"\n\n")

    async def _stop_error(self, status: int, code: str, message: str) -> None:
        self.proxy.metrics.error(code)
        index = await self._record_call(f"{code}: {message}", status=status)
        kind = "timeout_error" if status == 504 else "upstream_error"
        body = {
            "error": _error_object(message, kind, code, None),
            "custodes": {"trace_id": self.ex.trace_id, "ledger_index": index},
        }
        await self._end(b"data: " + _dumps(body) + b"\n\n")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(str(verdict.action))
        self.verdict = verdict


def _tail_choice(choice: int, text: str) -> dict[str, Any]:
    return {"index": choice, "delta": {"content": text}, "finish_reason": None}


def _completion_texts(data: Any) -> list[tuple[Callable[[str], None], str]]:
    """Each text of a completion the guard must validate, with a way to replace it."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise UpstreamBadResponse("the upstream's completion has no choices")
    found: list[tuple[Callable[[str], None], str]] = []
    for choice in data["choices"]:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise UpstreamBadResponse("the upstream's completion has a choice without a message")
        content = message.get("content")
        if isinstance(content, str):
            found.append((partial(message.__setitem__, "content"), content))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                found.append((partial(function.__setitem__, "arguments"), function["arguments"]))
    return found


def _upstream_refused(status: int, body: bytes) -> _HttpError:
    """The upstream's own error (unknown model, bad key…) passed through in OpenAI's shape."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        return _HttpError(
            status,
            str(error.get("code") or "upstream_error"),
            str(error.get("message") or f"the upstream answered HTTP {status}"),
            kind=str(error.get("type") or "upstream_error"),
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            upstream_body={"error": error},
            called=True,
        )
    if 400 <= status < 600:
        return _HttpError(
            status,
            "upstream_error",
            f"the upstream answered HTTP {status}",
            kind="upstream_error",
            called=True,
        )
    return _HttpError(
        502,
        "upstream_bad_response",
        f"the upstream answered HTTP {status}",
        kind="upstream_error",
        called=True,
    )


def _trace_headers(ex: _Exchange, index: int | None) -> list[tuple[bytes, bytes]]:
    headers = [(TRACE_HEADER.encode(), ex.trace_id.encode())]
    if index is not None:
        headers.append((LEDGER_HEADER.encode(), str(index).encode()))
    return headers


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
