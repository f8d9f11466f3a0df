"""Governed ``openai`` clients: existing code is governed by changing one line.

::

    client = guard.wrap(OpenAI(base_url=..., api_key=...))
    reply = client.chat.completions.create(model="gpt-4o", messages=[...])

``chat.completions.create`` then checks the prompt (admission) before the model sees it — a
redacting rule sends the redacted messages on —, records the call, validates each choice's
output (validation) and hands back the response with outputs redacted where a rule says so. A
blocked prompt or output raises :class:`~custodes.guard.pipeline.GuardViolation`, as does an
output held for review that no reviewer approved in time. With ``stream=True`` the chunks are
validated as they flow (:class:`~custodes.guard.stream.StreamCheck`): a chunk carries only text
already checked. ``AsyncOpenAI`` clients are governed the same way, without blocking the event
loop. Per call, ``custodes_caller=Caller(...)`` and ``custodes_token="…"`` (a policy token) may
be given beside the usual arguments; they are not sent to the model.

Everything else on the client passes through unchanged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from custodes.guard.pipeline import Action, Caller, Guard, GuardViolation, Verdict
from custodes.guard.stream import StreamCheck

__all__ = ["wrap"]


def wrap(guard: Guard, client: Any, *, caller: Caller | None = None, token: str | None = None) -> Any:
    """``client`` (``openai.OpenAI`` or ``openai.AsyncOpenAI``) governed by ``guard``."""
    if _is_async(client):
        return _Governed(guard, client, caller, token, asynchronous=True)
    return _Governed(guard, client, caller, token, asynchronous=False)


def _is_async(client: Any) -> bool:
    try:
        import openai
    except ImportError:  # pragma: no cover - the guard extra installs it
        return type(client).__name__.startswith("Async")
    return isinstance(client, openai.AsyncOpenAI)


class _Passthrough:
    """Attributes not governed are the wrapped object's own."""

    _inner: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Governed(_Passthrough):
    def __init__(
        self,
        guard: Guard,
        client: Any,
        caller: Caller | None,
        token: str | None,
        *,
        asynchronous: bool,
    ) -> None:
        self._inner = client
        self._guard = guard
        self._caller = caller
        self._token = token
        self._async = asynchronous

    @property
    def chat(self) -> _Chat:
        return _Chat(self)

    def with_options(self, **options: Any) -> _Governed:
        return _Governed(
            self._guard,
            self._inner.with_options(**options),
            self._caller,
            self._token,
            asynchronous=self._async,
        )

    def __repr__(self) -> str:
        return f"<governed {self._inner!r}>"


class _Chat(_Passthrough):
    def __init__(self, governed: _Governed) -> None:
        self._governed = governed
        self._inner = governed._inner.chat

    @property
    def completions(self) -> Any:
        if self._governed._async:
            return _AsyncCompletions(self._governed)
        return _Completions(self._governed)


class _Call:
    """One governed request: who asks, what was admitted, how to record the call."""

    def __init__(self, governed: _Governed, kwargs: dict[str, Any]) -> None:
        self.guard = governed._guard
        self.caller = kwargs.pop("custodes_caller", None) or governed._caller or Caller()
        self.token = kwargs.pop("custodes_token", None) or governed._token
        self.model = kwargs.get("model")
        self.upstream = str(getattr(governed._inner, "base_url", "") or "openai")
        self.kwargs = kwargs
        self.started = 0.0
        self.trace_id = ""

    def messages(self) -> list[Any]:
        messages = self.kwargs.get("messages")
        if messages is None:
            return []
        return list(messages)

    def admitted(self, verdict: Verdict) -> None:
        if not verdict.allowed:
            raise GuardViolation(verdict)
        self.trace_id = verdict.trace_id
        if verdict.action is Action.REDACT and verdict.messages is not None:
            self.kwargs["messages"] = list(verdict.messages)
        self.started = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def failed(self, exc: BaseException) -> dict[str, Any]:
        status = getattr(exc, "status_code", None)
        return {
            "model": self.model,
            "upstream": self.upstream,
            "status": status if isinstance(status, int) else 0,
            "duration_ms": self.elapsed_ms(),
            "error": type(exc).__name__,
        }

    def stream_check(self) -> StreamCheck:
        return self.guard.stream(self.trace_id, caller=self.caller, model=self.model, token=self.token)


def _outputs(response: Any) -> list[tuple[Any, str]]:
    return [
        (choice, choice.message.content)
        for choice in getattr(response, "choices", None) or []
        if getattr(choice, "message", None) is not None and choice.message.content is not None
    ]


def _validated(response: Any, outputs: list[tuple[Any, str]], verdicts: list[Verdict]) -> Any:
    """``response`` with each output as validation passed it; the first refusal raised."""
    for (choice, _), verdict in zip(outputs, verdicts, strict=True):
        if not verdict.allowed:
            raise GuardViolation(verdict)
        choice.message.content = verdict.text
    return response


class _Completions(_Passthrough):
    def __init__(self, governed: _Governed) -> None:
        self._governed = governed
        self._inner = governed._inner.chat.completions

    def create(self, **kwargs: Any) -> Any:
        call = _Call(self._governed, kwargs)
        guard = call.guard
        call.admitted(
            guard.check_prompt(
                call.messages(), caller=call.caller, model=call.model, token=call.token
            )
        )
        try:
            response = self._inner.create(**call.kwargs)
        except Exception as exc:
            guard.record_call(call.trace_id, **call.failed(exc))
            raise
        if call.kwargs.get("stream"):
            return _Stream(call, response)
        outputs = _outputs(response)
        _, verdicts = guard.validate_call(
            call.trace_id,
            [text for _, text in outputs],
            model=call.model,
            upstream=call.upstream,
            status=200,
            duration_ms=call.elapsed_ms(),
            caller=call.caller,
            token=call.token,
        )
        return _validated(response, outputs, verdicts)


class _AsyncCompletions(_Passthrough):
    def __init__(self, governed: _Governed) -> None:
        self._governed = governed
        self._inner = governed._inner.chat.completions

    async def create(self, **kwargs: Any) -> Any:
        call = _Call(self._governed, kwargs)
        guard = call.guard
        call.admitted(
            await guard.acheck_prompt(
                call.messages(), caller=call.caller, model=call.model, token=call.token
            )
        )
        try:
            response = await self._inner.create(**call.kwargs)
        except Exception as exc:
            failed = call.failed(exc)
            await guard.run_async(lambda: guard.record_call(call.trace_id, **failed))
            raise
        if call.kwargs.get("stream"):
            return _AsyncStream(call, response)
        outputs = _outputs(response)
        duration = call.elapsed_ms()
        _, verdicts = await guard.run_async(
            lambda: guard.validate_call(
                call.trace_id,
                [text for _, text in outputs],
                model=call.model,
                upstream=call.upstream,
                status=200,
                duration_ms=duration,
                caller=call.caller,
                token=call.token,
            )
        )
        return _validated(response, outputs, verdicts)


class _StreamState:
    """What a governed stream has seen: one check per choice, the call recorded once."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.checks: dict[int, StreamCheck] = {}
        self.finished: set[int] = set()
        self.recorded = False
        self.last: Any = None

    def check(self, index: int) -> StreamCheck:
        if index not in self.checks:
            self.checks[index] = self.call.stream_check()
        return self.checks[index]

    def call_record(self, error: str | None = None) -> dict[str, Any]:
        self.recorded = True
        output = "".join(
            check._text for _, check in sorted(self.checks.items())
        )
        return {
            "model": self.call.model,
            "upstream": self.call.upstream,
            "status": 200 if error is None else 0,
            "duration_ms": self.call.elapsed_ms(),
            "output": output,
            "error": error,
        }

    def unfinished(self) -> list[int]:
        return [i for i in sorted(self.checks) if i not in self.finished]

    def tail_chunk(self, index: int, text: str) -> Any:
        """A chunk carrying a choice's held tail, shaped like the last one the model sent."""
        chunk = self.last.model_copy(deep=True)
        chunk.choices = [c for c in chunk.choices if c.index == index][:1] or chunk.choices[:1]
        choice = chunk.choices[0]
        choice.index = index
        choice.delta.content = text
        choice.finish_reason = None
        return chunk


class _Stream(_Passthrough):
    """A governed ``openai.Stream``: iterate it as the original; only checked text comes out."""

    def __init__(self, call: _Call, inner: Any) -> None:
        self._inner = inner
        self._state = _StreamState(call)
        self._iterator = self._chunks()

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._inner.close()

    def _chunks(self) -> Iterator[Any]:
        state = self._state
        guard = state.call.guard
        try:
            for chunk in self._inner:
                state.last = chunk
                for choice in chunk.choices:
                    check = state.check(choice.index)
                    delta = choice.delta.content if choice.delta is not None else None
                    released = check.feed(delta) if delta else ""
                    if choice.finish_reason is not None:
                        if not state.recorded:
                            guard.record_call(state.call.trace_id, **state.call_record())
                        released += _finished(check.finish())
                        state.finished.add(choice.index)
                    if choice.delta is not None and (delta or released):
                        choice.delta.content = released
                yield chunk
            if state.unfinished() and not state.recorded:
                guard.record_call(state.call.trace_id, **state.call_record())
            for index in state.unfinished():
                tail = _finished(state.checks[index].finish())
                state.finished.add(index)
                if tail and state.last is not None:
                    yield state.tail_chunk(index, tail)
        except GuardViolation:
            if not state.recorded:
                guard.record_call(state.call.trace_id, **state.call_record())
            self._inner.close()
            raise


class _AsyncStream(_Passthrough):
    """A governed ``openai.AsyncStream``."""

    def __init__(self, call: _Call, inner: Any) -> None:
        self._inner = inner
        self._state = _StreamState(call)
        self._iterator = self._chunks()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._inner.close()

    async def _record(self) -> None:
        state = self._state
        guard = state.call.guard
        record = state.call_record()
        await guard.run_async(lambda: guard.record_call(state.call.trace_id, **record))

    async def _chunks(self) -> AsyncIterator[Any]:
        state = self._state
        try:
            async for chunk in self._inner:
                state.last = chunk
                for choice in chunk.choices:
                    check = state.check(choice.index)
                    delta = choice.delta.content if choice.delta is not None else None
                    released = await check.afeed(delta) if delta else ""
                    if choice.finish_reason is not None:
                        if not state.recorded:
                            await self._record()
                        released += _finished(await check.afinish())
                        state.finished.add(choice.index)
                    if choice.delta is not None and (delta or released):
                        choice.delta.content = released
                yield chunk
            if state.unfinished() and not state.recorded:
                await self._record()
            for index in state.unfinished():
                tail = _finished(await state.checks[index].afinish())
                state.finished.add(index)
                if tail and state.last is not None:
                    yield state.tail_chunk(index, tail)
        except GuardViolation:
            if not state.recorded:
                await self._record()
            await self._inner.close()
            raise


def _finished(verdict: Verdict) -> str:
    if not verdict.allowed:
        raise GuardViolation(verdict)
    return verdict.text or ""
