"""Validation of an output that arrives in pieces: nothing is released before it is checked.

:class:`StreamCheck` keeps the whole output seen so far and, on every piece, runs the
completion rules over the part not yet released (with some released context before it). It
releases text only up to where no rule could still be matching — a credential, an e-mail
address, a phrase still arriving:

* always the last few hundred characters (more when a policy regex can match a longer text);
* from a keyword of a secret rule (``-----BEGIN``, ``ghp_``, ``password``…) for as long as
  that rule's longest match could still be arriving, unless a match already covers it;
* from an unclosed code fence, when a provenance rule reads completions (copied code is
  recognised by many fingerprints together);
* from the first match of a rule asking for review: held for the reviewer.

A match asking for a block stops the stream at once (:class:`GuardViolation`, the step
recorded); one asking for redaction is released redacted. :meth:`StreamCheck.finish` checks the
whole output once more, releases the held tail and records the validation step: a stream is
never recorded as passed unless all of it was checked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from custodes.errors import UsageError
from custodes.guard.checks import Action, Hit, Part, redact_spans
from custodes.guard.pipeline import (
    Caller,
    GuardViolation,
    Verdict,
    _Outcome,
    _Request,
    decide,
)

if TYPE_CHECKING:
    from custodes.guard.pipeline import Guard

__all__ = ["StreamCheck"]

_CONTEXT = 512  # released text scanned again before the new text, for context-bound rules


class StreamCheck:
    """Feed pieces of an output with :meth:`feed`; release what it returns; then :meth:`finish`.

    Not for several threads at once (one stream is one sequence of pieces).
    """

    def __init__(
        self,
        guard: Guard,
        trace_id: str,
        *,
        caller: Caller,
        model: str | None = None,
        token: str | None = None,
    ) -> None:
        self._guard = guard
        self.trace_id = trace_id
        self.caller = caller
        self.model = model
        self.token = token
        self._text = ""
        self._released = 0  # characters of the output released so far (before redaction)
        self._out: list[str] = []  # what was released, redacted
        self._redactions: dict[tuple[int, int], str] = {}  # absolute spans to redact
        self._review_from: int | None = None
        self._verdict: Verdict | None = None
        self._started = time.perf_counter()
        self._lock = threading.Lock()

    @property
    def released(self) -> str:
        """Everything released so far, as released (redacted)."""
        return "".join(self._out)

    @property
    def text_seen(self) -> int:
        return len(self._text)

    def feed(self, delta: str) -> str:
        """Take the next piece; return the text now safe to release (possibly empty).

        Raises :class:`GuardViolation` when the output breaks a rule that blocks; the
        validation step is then recorded and nothing more is released.
        """
        with self._lock:
            if self._verdict is not None:
                if self._verdict.action is Action.BLOCK:
                    raise GuardViolation(self._verdict)
                raise UsageError("this stream is finished; start another with Guard.stream")
            if not isinstance(delta, str):
                raise UsageError(f"a stream piece is text, not {type(delta).__name__}")
            self._text += delta
            rules = self._guard._rules
            if rules is None:
                # No policy: nothing can be checked, so nothing is released before finish().
                return ""
            lo = max(0, self._released - _CONTEXT)
            hits = self._evaluate(self._text[lo:], lo)
            live = [h for h in hits if not h.bypassed]
            if any(h.action is Action.BLOCK for h in live):
                self._verdict = self._record(Action.BLOCK, hits, lo)
                raise GuardViolation(self._verdict)
            for hit in live:
                if hit.action is Action.REDACT:
                    self._redactions.setdefault((hit.start, hit.end), hit.finding.rule)
                elif hit.action is Action.REVIEW:
                    start = max(hit.start, self._released)
                    if self._review_from is None or start < self._review_from:
                        self._review_from = start
            applicable = rules.applicable("completion", self._variables())
            safe = rules.hold_start(applicable, self._text, list(self._redactions))
            if self._review_from is not None:
                safe = min(safe, self._review_from)
            return self._release(safe)

    def finish(self) -> Verdict:
        """Check the whole output, record the validation step, and release the held tail.

        The verdict's ``text`` is the tail to release (redacted as needed); it is None when the
        output is blocked or held for review.
        """
        with self._lock:
            if self._verdict is not None:
                return self._verdict
            guard = self._guard
            if guard._rules is None:  # no policy: fail closed or open as the guard says
                verdict = guard._check(
                    "validation", self._text, self.caller, self.model, self.token, self.trace_id
                )
                if verdict.allowed:
                    verdict = replace(verdict, text=self._release_all())
                self._verdict = verdict
                return verdict
            hits = self._evaluate(self._text, 0, everything=True)
            outcome = decide(hits, [self._text])
            outcome.notes.extend(guard._rules.notes["completion"])
            request = _Request((Part("completion", self._text),), self._text)
            verdict = guard._finish(
                "validation", self.trace_id, self.caller, self.model, request, outcome,
                self._started,
            )  # fmt: skip
            if verdict.allowed:
                for hit in hits:
                    if hit.action is Action.REDACT and not hit.bypassed:
                        self._redactions.setdefault((hit.start, hit.end), hit.finding.rule)
                verdict = replace(verdict, text=self._release_all(), messages=None)
            self._verdict = verdict
            return verdict

    async def afeed(self, delta: str) -> str:
        """:meth:`feed` on the guard's thread pool."""
        return await self._guard.run_async(lambda: self.feed(delta))

    async def afinish(self) -> Verdict:
        """:meth:`finish` on the guard's thread pool."""
        return await self._guard.run_async(self.finish)

    # -- internals --
    def _evaluate(self, window: str, offset: int, *, everything: bool = False) -> list[Hit]:
        guard = self._guard
        assert guard._rules is not None
        claims = None
        if self.token:
            claims = guard._token(self.token, self.trace_id, self.caller, self.model, [])
        hits = guard._rules.evaluate(
            "completion",
            [Part("completion", window)],
            self._variables(),
            token_rules=frozenset(claims.rules) if claims is not None else frozenset(),
        )
        return [
            replace(h, start=h.start + offset, end=h.end + offset)
            for h in hits
            if everything or h.end + offset > self._released or h.action is Action.BLOCK
        ]

    def _variables(self) -> dict[str, object]:
        return {"caller": self.caller.variables(), "model": self.model or "", "stage": "completion"}

    def _release(self, upto: int) -> str:
        """Release the text up to ``upto``, never cutting a redacted span in two."""
        upto = max(self._released, min(upto, len(self._text)))
        for start, end in self._redactions:
            if start < upto < end:
                upto = max(self._released, start)
        if upto <= self._released:
            return ""
        piece = self._render(self._released, upto)
        self._released = upto
        self._out.append(piece)
        return piece

    def _render(self, start: int, end: int) -> str:
        spans = [
            (max(s, start) - start, min(e, end) - start, label)
            for (s, e), label in self._redactions.items()
            if s < end and e > start
        ]
        return redact_spans(self._text[start:end], spans)

    def _release_all(self) -> str:
        tail = self._render(self._released, len(self._text))
        self._released = len(self._text)
        self._out.append(tail)
        return tail

    def _record(self, action: Action, hits: list[Hit], offset: int) -> Verdict:
        """Record the validation step of a stream stopped at a blocking match."""
        guard = self._guard
        request = _Request((Part("completion", self._text),), self._text)
        outcome: _Outcome = decide(hits, [self._text])
        outcome.notes.append(
            f"stream stopped after {len(self._text)} characters, {self._released} released"
        )
        return guard._finish(
            "validation",
            self.trace_id,
            self.caller,
            self.model,
            request,
            outcome,
            self._started,
        )
