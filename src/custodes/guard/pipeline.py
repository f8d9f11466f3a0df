"""The guard pipeline: every governed LLM request passes named steps, each recorded in the ledger.

::

    token       a signed policy token, when the caller presents one: accepted or rejected
    admission   the policy's ``applies-to: prompt`` rules over the prompt, before the model
    call        the model call itself, as the SDK or the proxy made it (:meth:`Guard.record_call`)
    validation  the ``applies-to: completion`` rules over the output, after the model
    review      a held output's submission to the review queue, and a reviewer's decision

Each step appends one ledger entry under the request's trace id (:meth:`Guard.validate_call`
records a call and the validation of its outputs in one commit, still one entry per step; an
admission checked with ``defer=True`` or :meth:`Guard.aadmit` is staged and joins the commit of
its trace's next step)::

    {"door": "guard", "kind": "step", "step": "admission", "trace_id": "…",
     "caller": {"id": …, "role": …, "purpose": …, "tenant": …}, "model": "…",
     "policy": {"name": "…", "sha256": "…"}, "action": "redact",
     "findings": [{"id", "rule", "detector", "severity", "kind", "part", "span": [start, end],
                   "action", "preview"?, "bypassed"?}],
     "rules": [{"id", "action", "message", "controls"}], "explanation_id": "ex-…",
     "duration_ms": 0.412, "digests": {"input": "sha256:…", "output": "sha256:…"}, …}

No clear text enters the ledger. The prompt and the output are named by the ledger's salted
payload digests (``digests.input``, ``digests.output``: :func:`custodes.ledger.entry.make_payloads`,
a fresh 32-byte salt per payload kept outside the tree), because a prompt or a completion can
often be guessed, and a salt can be erased for a right-to-erasure request without breaking the
tree. A finding's digest is an HMAC keyed by a secret derived from the ledger's signing key, so
equal values still correlate for whoever runs custodes, while a reader of the ledger cannot test
guesses. Personal data shows no preview at all in the ledger; a credential or a regex match a
redacted one (``ghp_…a1B2``).

**Fail closed.** When the policy cannot load or the ledger cannot record, a request is refused
(``BLOCK``, HTTP 503) — or, with ``fail_closed=False``, allowed with the failure recorded as a
warning. A ledger that cannot record is reported on stderr as one JSON line, since it cannot
record its own failure.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from custodes.errors import Error, UsageError
from custodes.findings import Finding
from custodes.guard.checks import Action, Hit, Part, RuleSet, redact_spans
from custodes.guard.review import (
    ReviewItem,
    ReviewQueue,
    ReviewState,
    ReviewTimeout,
    redact_reason,
)
from custodes.ledger.log import Ledger
from custodes.ledger.note import Verifier
from custodes.policy.condition import CALLER_FIELDS
from custodes.policy.loader import load_policy
from custodes.policy.model import Policy
from custodes.policy.tokens import (
    ReplayCache,
    TokenClaims,
    TokenRejected,
    token_record,
    token_sha256,
    verify_token,
)

if TYPE_CHECKING:
    from custodes.guard.explain import Explanation
    from custodes.guard.stream import StreamCheck

__all__ = [
    "Action",
    "Caller",
    "Guard",
    "GuardViolation",
    "Verdict",
]

_log = logging.getLogger("custodes.guard")
_T = TypeVar("_T")

DEFAULT_LEDGER: Final = os.path.join(".custodes", "ledger.db")
POLICY_UNAVAILABLE: Final = "guard.policy-unavailable"
LEDGER_UNAVAILABLE: Final = "guard.ledger-unavailable"
BAD_INPUT: Final = "guard.bad-input"
NO_REVIEW_QUEUE: Final = "guard.no-review-queue"

_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STATUS = {Action.ALLOW: 200, Action.REDACT: 200, Action.REVIEW: 202, Action.BLOCK: 403}
_TOKEN_MEMORY = 4096  # accepted tokens remembered per trace, so a request's steps share one
_HELD_MEMORY = 4096  # texts held for review in this process, to release once approved
_STAGE_OF_STEP = {"admission": "prompt", "validation": "completion"}
_STAGED_MEMORY = 65536  # traces whose admission waits for its call; beyond, the oldest commits
_INLINE_CHARS = 8192  # a prompt this short is checked on the event loop (see Guard.aadmit)


@dataclass(frozen=True)
class Caller:
    """Who is asking; CEL conditions see these as ``caller.id``, ``caller.role`` …"""

    id: str | None = None
    role: str | None = None
    purpose: str | None = None
    tenant: str | None = None

    def as_json(self) -> dict[str, str]:
        """What the ledger records of the caller: the fields given, no more."""
        return {name: value for name in CALLER_FIELDS if (value := getattr(self, name))}

    def variables(self) -> dict[str, str]:
        return {name: getattr(self, name) or "" for name in CALLER_FIELDS}


@dataclass(frozen=True)
class Verdict:
    """The guard's answer for one step of one request.

    ``text`` is what may be passed on (redacted when the action is ``REDACT``; None when it is
    ``BLOCK`` or a ``REVIEW`` still pending; for :meth:`StreamCheck.finish`, the held tail).
    For a prompt given as chat messages, ``messages`` holds them as they may be passed on, and
    ``text`` their checked texts as ``role: text`` lines (for display).
    ``notes`` say what the guard could not do (a rule without its index, a rejected token).
    """

    action: Action
    trace_id: str
    stage: str
    findings: tuple[Finding, ...]
    rules: tuple[str, ...]
    text: str | None
    explanation_id: str | None
    ledger_index: int | None
    review_id: str | None = None
    http_status: int = 200
    messages: tuple[dict[str, Any], ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """Whether the text may be passed on (``ALLOW`` or ``REDACT``)."""
        return self.action in (Action.ALLOW, Action.REDACT)


class GuardViolation(Error):
    """A request or output the guard did not let through; ``verdict`` says why."""

    exit_code = 1

    def __init__(self, verdict: Verdict) -> None:
        what = {
            Action.BLOCK: "blocked",
            Action.REVIEW: "held for review",
        }.get(verdict.action, verdict.action.value)
        rules = ", ".join(verdict.rules) or "the guard"
        message = f"the {verdict.stage} was {what} by {rules} (trace {verdict.trace_id})"
        if verdict.review_id:
            message += f"; review item {verdict.review_id}"
        hint = (
            f"run `custodes explain {verdict.explanation_id}` to see why"
            if verdict.explanation_id
            else None
        )
        super().__init__(message, hint=hint)
        self.verdict = verdict


class _Unrecorded(Exception):
    """The ledger did not record a step."""


@dataclass(frozen=True)
class _Request:
    """A prompt or a completion as parts, and how to put (redacted) parts back together."""

    parts: tuple[Part, ...]
    digest_input: str  # what the input digest is taken over
    messages: tuple[Mapping[str, Any], ...] | None = None
    slots: tuple[tuple[int, int | None], ...] = ()  # (message, content part) of each part

    @classmethod
    def of_text(cls, text: object, path: str) -> _Request:
        if not isinstance(text, str):
            raise _BadInput(f"the {path} is a {type(text).__name__}, not text")
        return cls((Part(path, text),), text)

    @classmethod
    def of_prompt(cls, prompt: object) -> _Request:
        if isinstance(prompt, str):
            return cls((Part("prompt", prompt),), prompt)
        if isinstance(prompt, bytes | bytearray) or not isinstance(prompt, Sequence):
            raise _BadInput(
                f"a prompt is text or a list of chat messages, not a {type(prompt).__name__}"
            )
        parts: list[Part] = []
        slots: list[tuple[int, int | None]] = []
        messages: list[Mapping[str, Any]] = []
        for i, message in enumerate(prompt):
            if not isinstance(message, Mapping):
                raise _BadInput(f"message {i} is a {type(message).__name__}, not an object")
            messages.append(message)
            content = message.get("content")
            if content is None:
                continue
            if isinstance(content, str):
                parts.append(Part(f"messages[{i}].content", content))
                slots.append((i, None))
            elif isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
                for j, piece in enumerate(content):
                    if not isinstance(piece, Mapping):
                        raise _BadInput(f"message {i} content part {j} is not an object")
                    if piece.get("type") == "text":
                        text = piece.get("text")
                        if not isinstance(text, str):
                            raise _BadInput(f"message {i} content part {j} has no text")
                        parts.append(Part(f"messages[{i}].content[{j}].text", text))
                        slots.append((i, j))
            else:
                raise _BadInput(f"message {i} content is a {type(content).__name__}")
        try:
            canonical = json.dumps(
                messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except (TypeError, ValueError) as exc:
            raise _BadInput(f"the messages are not JSON: {exc}") from exc
        return cls(tuple(parts), canonical, tuple(messages), tuple(slots))

    def rebuild(self, texts: Sequence[str]) -> tuple[str, tuple[dict[str, Any], ...] | None]:
        """The text and (for chat messages) the messages with each part's text replaced."""
        if self.messages is None:
            return texts[0], None
        out = [dict(m) for m in self.messages]
        for (i, j), text in zip(self.slots, texts, strict=True):
            if j is None:
                out[i]["content"] = text
            else:
                pieces = [dict(p) for p in out[i]["content"]]
                pieces[j]["text"] = text
                out[i]["content"] = pieces
        joined = "\n".join(
            f"{m.get('role', '?')}: {t}" for (i, _), t in zip(self.slots, texts, strict=True)
            for m in (out[i],)
        )
        return joined, tuple(out)


class _BadInput(Exception):
    pass


@dataclass
class _Held:
    text: str | None
    messages: tuple[dict[str, Any], ...] | None
    redacted: bool


@dataclass
class _Outcome:
    """A step's decision before it is recorded."""

    action: Action
    hits: list[Hit] = field(default_factory=list)
    rules: tuple[str, ...] = ()
    texts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None


@dataclass
class _Step:
    """A step decided, with its ledger entry, before it is recorded."""

    step: str
    trace_id: str
    outcome: _Outcome
    action: Action
    text: str | None
    messages: tuple[dict[str, Any], ...] | None
    item: ReviewItem | None
    explanation_id: str | None
    status: int | None
    entry: dict[str, Any]
    payloads: dict[str, str | bytes] | None


@dataclass(frozen=True)
class _Recorded:
    """Steps recorded together: their verdicts, the index of the entry recorded before them
    (None when there was none, or nothing was recorded) and why nothing was, if so."""

    verdicts: list[Verdict]
    first: int | None
    error: str | None


class Guard:
    """The guard door's SDK: check prompts and completions against a policy, record every step.

    ``policy`` is built-in pack names or YAML files (or a loaded :class:`Policy`); ``ledger`` a
    SQLite path (created when missing), a ``postgresql://`` URL, an open :class:`Ledger`, or
    None to record nothing. ``review`` is the review queue (None: beside a file ledger, in the
    same database for PostgreSQL); ``review_timeout`` how long a check waits for a reviewer
    (0: return ``REVIEW`` at once). ``token_verifiers`` are the verifier keys (or files holding
    them) trusted to sign policy tokens for ``audience``.
    """

    def __init__(
        self,
        policy: str | Path | Sequence[str | Path] | Policy = "enterprise",
        ledger: str | Path | Ledger | None = DEFAULT_LEDGER,
        *,
        index: str | Path | None = None,
        review: str | ReviewQueue | None = None,
        token_verifiers: Sequence[str] = (),
        audience: str = "custodes-guard",
        fail_closed: bool = True,
        review_timeout: float = 0.0,
    ) -> None:
        if review_timeout < 0:
            raise UsageError("review_timeout is a number of seconds, 0 or more")
        self.fail_closed = fail_closed
        self.audience = audience
        self.review_timeout = review_timeout
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # Each token presented for a trace is verified and recorded once (None: rejected).
        self._tokens: OrderedDict[tuple[str, str], TokenClaims | None] = OrderedDict()
        self._held: OrderedDict[str, _Held] = OrderedDict()
        # Admission entries staged to be recorded with their trace's next step (defer=True).
        self._staged: OrderedDict[str, list[_Step]] = OrderedDict()
        # Whether the last commit worked: after a failure nothing is staged until one does, so
        # no prompt reaches the model before its admission is known to be recorded.
        self._recording = True
        self._closers: list[Callable[[], None]] = []
        self.ledger: Ledger | None = None
        self.ledger_error: str | None = None
        self._open_ledger(ledger)
        self.policy: Policy | None = None
        self.policy_error: Error | None = None
        self._policy_label = _policy_label(policy)
        self._rules: RuleSet | None = None
        self._load_policy(policy, index)
        self._verifiers = tuple(_verifier(v) for v in token_verifiers)
        self._replay: ReplayCache | None = None
        self._replay_url = self._beside_ledger("replay")
        self.review_queue: ReviewQueue | None = None
        self._open_review(review)

    # -- set-up --
    def _open_ledger(self, ledger: str | Path | Ledger | None) -> None:
        if ledger is None or isinstance(ledger, Ledger):
            self.ledger = ledger
            return
        text = os.fspath(ledger)
        try:
            if text.startswith(("postgresql://", "postgres://")) or Path(text).exists():
                opened = Ledger.open(text)
            else:
                Path(text).parent.mkdir(parents=True, exist_ok=True)
                opened = Ledger.create(text)
            opened.signer()  # a ledger whose key cannot be read cannot record
        except Error as exc:
            self.ledger_error = exc.diagnostics()
            _emit("ledger-unavailable", error=self.ledger_error, ledger=text)
            return
        except OSError as exc:
            self.ledger_error = f"cannot create {text}: {exc.strerror}"
            _emit("ledger-unavailable", error=self.ledger_error, ledger=text)
            return
        self.ledger = opened
        self._closers.append(opened.close)

    def _digest_key(self) -> bytes:
        if self.ledger is not None:
            try:
                seed = self.ledger.signer().to_string().encode()
            except Error:
                seed = b""
            if seed:
                return hashlib.sha256(b"custodes guard finding digest\0" + seed).digest()
        return os.urandom(32)

    def _load_policy(
        self, policy: str | Path | Sequence[str | Path] | Policy, index: str | Path | None
    ) -> None:
        try:
            if isinstance(policy, Policy):
                loaded = policy
            else:
                specs = [policy] if isinstance(policy, str | Path) else list(policy)
                loaded = load_policy(specs)
            provenance = _provenance_factory(index)
            self._rules = RuleSet(loaded, provenance=provenance, digest_key=self._digest_key())
        except Error as exc:
            self.policy_error = exc
            _log.warning(
                "the guard policy %s cannot load (%s): requests are %s",
                self._policy_label,
                exc.diagnostics().splitlines()[0],
                "refused" if self.fail_closed else "allowed unchecked",
            )
            return
        self.policy = loaded

    def _beside_ledger(self, what: str) -> str:
        """Where the guard's own state lives: beside a file ledger, in a PostgreSQL one."""
        if self.ledger is None:
            return ":memory:"
        url = self.ledger.url
        if url.startswith(("postgresql://", "postgres://")):
            return url
        path = Path(url)
        return str(path.with_name(f"{path.stem}.{what}.db"))

    def _open_review(self, review: str | ReviewQueue | None) -> None:
        if isinstance(review, ReviewQueue):
            self.review_queue = review
            return
        url = review if review is not None else self._beside_ledger("review")
        if url == ":memory:":
            return  # no ledger, no queue: a rule asking for review blocks (fail closed)
        try:
            self.review_queue = ReviewQueue.open(url)
        except Error as exc:
            _log.warning("the review queue %s cannot open (%s)", url, exc.diagnostics())
            return
        self._closers.append(self.review_queue.close)

    @property
    def policy_ref(self) -> dict[str, str | None]:
        if self.policy is None:
            return {"name": self._policy_label, "sha256": None}
        return {"name": self.policy.name, "sha256": self.policy.sha256}

    def close(self) -> None:
        """Close what the guard opened (the ledger, queue and caches it opened itself); staged
        admission entries are recorded first."""
        self.flush()
        with self._lock:
            executor, self._executor = self._executor, None
            closers, self._closers = self._closers, []
            replay, self._replay = self._replay, None
        if executor is not None:
            executor.shutdown(wait=True)
        if replay is not None:
            replay.close()
        for close in reversed(closers):
            close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the steps --
    def check_prompt(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
        trace_id: str | None = None,
        defer: bool = False,
    ) -> Verdict:
        """Admission: the policy's prompt rules over ``prompt`` (text or chat messages).

        With ``defer``, an admitted prompt's entry is *staged*: recorded in the same commit as
        the trace's next step (:meth:`record_call`, :meth:`validate_call`, :meth:`record`,
        :meth:`flush`), and the verdict's ``ledger_index`` is None. That saves a durable commit
        per request, at a price: a crash between the model call and that commit loses the
        admission record of a request that was never answered. A refusal, a review or a
        guard without a ledger records at once, as without ``defer``.
        """
        decided = self._decide("admission", prompt, caller, model, token, trace_id)
        if defer and self._stage(decided):
            return self._conclude(decided, None)
        return self._record_steps([decided]).verdicts[0]

    def check_completion(
        self,
        text: str,
        *,
        trace_id: str,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
    ) -> Verdict:
        """Validation: the policy's completion rules over the model's output ``text``."""
        return self._check("validation", text, caller, model, token, trace_id)

    async def acheck_prompt(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
        trace_id: str | None = None,
        defer: bool = False,
    ) -> Verdict:
        """:meth:`check_prompt` on the guard's thread pool, not blocking the event loop."""
        return await self.run_async(
            functools.partial(
                self.check_prompt,
                prompt,
                caller=caller,
                model=model,
                token=token,
                trace_id=trace_id,
                defer=defer,
            )
        )

    async def aadmit(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
        trace_id: str | None = None,
    ) -> Verdict:
        """:meth:`check_prompt` with ``defer=True``, for an event loop.

        A short prompt presented without a token is checked on the loop itself: its checks
        cost less than the hop to a thread and back, and an admitted prompt's staged entry
        needs no I/O. What blocks goes to the guard's pool: a long prompt, a token to verify,
        a provenance index to query, a refusal to record, a review to submit.
        """
        rules = self._rules
        if token is None and (rules is None or not rules.reads_index) and _short(prompt):
            decided = self._assess(
                "admission", prompt, caller, model, None, trace_id, submit=False
            )
            if decided is not None:
                if self._stage(decided):
                    return self._conclude(decided, None)
                return await self.run_async(lambda: self._record_steps([decided]).verdicts[0])
        return await self.acheck_prompt(
            prompt, caller=caller, model=model, token=token, trace_id=trace_id, defer=True
        )

    async def acheck_completion(
        self,
        text: str,
        *,
        trace_id: str,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
    ) -> Verdict:
        """:meth:`check_completion` on the guard's thread pool."""
        return await self.run_async(
            functools.partial(
                self.check_completion,
                text,
                trace_id=trace_id,
                caller=caller,
                model=model,
                token=token,
            )
        )

    async def run_async(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` on the guard's thread pool (ledger appends from many threads share a
        commit)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=min(64, (os.cpu_count() or 2) * 8),
                    thread_name_prefix="custodes-guard",
                )
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def record_call(
        self,
        trace_id: str,
        *,
        model: str | None,
        upstream: str,
        status: int,
        duration_ms: float,
        output: str | None = None,
        error: str | None = None,
    ) -> int:
        """Record the model call of ``trace_id``; returns its ledger index (-1: no ledger).

        With ``fail_closed``, a ledger that cannot record raises :class:`GuardViolation`
        (HTTP 503): the output must not be returned.
        """
        entry = _call_entry(trace_id, model, upstream, status, duration_ms, error)
        recorded = self._record_steps(
            [], (entry, {"output": output} if output is not None else None)
        )
        if recorded.error is not None:
            _emit("ledger-unavailable", trace_id=trace_id, step="call", error=recorded.error)
            if self.fail_closed:
                raise GuardViolation(self._unavailable("validation", trace_id, recorded.error))
            return -1
        return -1 if recorded.first is None else recorded.first

    def record(self, entry: Mapping[str, Any]) -> int | None:
        """Append ``entry`` (a step of ``entry["trace_id"]``, after that trace's staged
        admission, in one commit); its index, None without a ledger.

        Raises :class:`GuardViolation` (HTTP 503) when the ledger cannot record.
        """
        trace_id = str(entry.get("trace_id") or "")
        recorded = self._record_steps([], (entry, None))
        if recorded.error is not None:
            _emit("ledger-unavailable", trace_id=trace_id, step="request", error=recorded.error)
            raise GuardViolation(self._unavailable("request", trace_id, recorded.error))
        return recorded.first

    def flush(self, trace_id: str | None = None) -> None:
        """Record the staged admission entries of ``trace_id`` (of every trace when None) now."""
        with self._lock:
            if trace_id is None:
                traces = list(self._staged)
            else:
                traces = [trace_id] if trace_id in self._staged else []
        for trace in traces:
            self._record_steps([], None, trace)

    def _stage(self, decided: _Step) -> bool:
        """Stage an admitted step to be recorded with its trace's next step; False when it
        must be recorded now (a refusal, a review, no ledger to stage for)."""
        if (
            self.ledger is None
            or not self._recording
            or decided.item is not None
            or decided.action not in (Action.ALLOW, Action.REDACT)
        ):
            return False
        with self._lock:
            self._staged.setdefault(decided.trace_id, []).append(decided)
            self._staged.move_to_end(decided.trace_id)
            oldest = next(iter(self._staged)) if len(self._staged) > _STAGED_MEMORY else None
        if oldest is not None:  # a trace whose next step never came: record it alone
            self._record_steps([], None, oldest)
        return True

    def _take_staged(self, traces: set[str]) -> list[_Step]:
        if not self._staged:  # read without the lock: a trace stages before its next step
            return []
        with self._lock:
            return [step for trace in traces for step in self._staged.pop(trace, ())]

    def validate_call(
        self,
        trace_id: str,
        outputs: Sequence[str],
        *,
        model: str | None,
        upstream: str,
        status: int,
        duration_ms: float,
        caller: Caller | None = None,
        token: str | None = None,
    ) -> tuple[int, list[Verdict]]:
        """Record the model call of ``trace_id`` and validate each of its ``outputs``.

        What :meth:`record_call` (with the outputs joined by newlines) and then
        :meth:`check_completion` on each output record, in one ledger commit instead of one
        per step: the call's entry first, then one validation entry per output. Returns the
        call's ledger index (-1: no ledger) and a verdict per output. With ``fail_closed``, a
        ledger that cannot record raises :class:`GuardViolation` (HTTP 503).
        """
        steps = [
            self._decide("validation", text, caller, model, token, trace_id) for text in outputs
        ]
        return self._record_call_steps(
            trace_id, outputs, steps, model, upstream, status, duration_ms
        )

    async def avalidate_call(
        self,
        trace_id: str,
        outputs: Sequence[str],
        *,
        model: str | None,
        upstream: str,
        status: int,
        duration_ms: float,
        caller: Caller | None = None,
        token: str | None = None,
        alone: bool = False,
    ) -> tuple[int, list[Verdict]]:
        """:meth:`validate_call` for an event loop; ``alone``: the caller has no other request
        in flight.

        Alone, with short outputs, no token and no provenance index to query, the checks and
        the durable commit run on the loop itself: the hop to the guard's pool and back costs
        about 0.2 ms (a thread wake-up each way), a tenth of a one-client request, and buys
        nothing then: no other request's commit to share, nothing else for the loop to serve.
        The commit is the same one, done before the answer. An output held for review (its
        submission is I/O, its wait may be long) and every other case go to the pool.
        """
        rules = self._rules
        if (
            alone
            and token is None
            and (rules is None or not rules.reads_index)
            and all(isinstance(text, str) for text in outputs)
            and sum(len(text) for text in outputs) <= _INLINE_CHARS
        ):
            assessed = [
                self._assess("validation", text, caller, model, None, trace_id, submit=False)
                for text in outputs
            ]
            steps = [step for step in assessed if step is not None]
            if len(steps) == len(assessed):
                return self._record_call_steps(
                    trace_id, outputs, steps, model, upstream, status, duration_ms
                )
        return await self.run_async(
            functools.partial(
                self.validate_call, trace_id, outputs, model=model, upstream=upstream,
                status=status, duration_ms=duration_ms, caller=caller, token=token,
            )
        )

    def _record_call_steps(
        self,
        trace_id: str,
        outputs: Sequence[str],
        steps: list[_Step],
        model: str | None,
        upstream: str,
        status: int,
        duration_ms: float,
    ) -> tuple[int, list[Verdict]]:
        """The commit of :meth:`validate_call`: the call's entry, then ``steps``."""
        entry = _call_entry(trace_id, model, upstream, status, duration_ms, None)
        output = "\n".join(text for text in outputs if isinstance(text, str))
        recorded = self._record_steps(steps, (entry, {"output": output}))
        if recorded.error is not None:
            _emit("ledger-unavailable", trace_id=trace_id, step="call", error=recorded.error)
            if self.fail_closed:
                raise GuardViolation(self._unavailable("validation", trace_id, recorded.error))
            return -1, recorded.verdicts
        return (-1 if recorded.first is None else recorded.first), recorded.verdicts

    def stream(
        self,
        trace_id: str,
        *,
        caller: Caller | None = None,
        model: str | None = None,
        token: str | None = None,
    ) -> StreamCheck:
        """Validation of an output that arrives in pieces: see :class:`StreamCheck`."""
        from custodes.guard.stream import StreamCheck

        return StreamCheck(self, trace_id, caller=caller or Caller(), model=model, token=token)

    def explain(self, explanation_id: str) -> Explanation:
        """The rule, redacted match, controls, policy hash and verified ledger proof of a
        block, redaction or review."""
        from custodes.guard.explain import explain

        if self.ledger is None:
            raise UsageError(
                "this guard records to no ledger, so it has no explanations",
                hint="give the guard a ledger",
            )
        return explain(self.ledger, explanation_id)

    def wrap(self, client: Any, *, caller: Caller | None = None, token: str | None = None) -> Any:
        """A governed ``openai.OpenAI`` / ``AsyncOpenAI`` client: ``client = guard.wrap(client)``."""
        from custodes.guard.sdk import wrap

        return wrap(self, client, caller=caller, token=token)

    def resolve_review(
        self, verdict: Verdict, *, text: str | None = None, timeout: float = 0.0
    ) -> Verdict:
        """The verdict once a held item is decided (waiting up to ``timeout`` seconds).

        Still undecided: ``verdict`` itself. ``text`` is the held output when this process did
        not hold it (it must match the digest the queue keeps).
        """
        if verdict.action is not Action.REVIEW or verdict.review_id is None:
            return verdict
        queue = self.review_queue
        if queue is None:
            raise UsageError("this guard has no review queue", hint="give the guard review=…")
        try:
            item = queue.wait(verdict.review_id, timeout) if timeout > 0 else queue.get(
                verdict.review_id
            )
        except ReviewTimeout:
            return verdict
        if not item.decided:
            return verdict
        with self._lock:
            held = self._held.pop(verdict.review_id, None)
        if held is None:
            if text is None or hashlib.sha256(text.encode()).hexdigest() != item.output_sha256:
                raise UsageError(
                    "give the held output: this process did not hold it",
                    hint="pass text= exactly as it was submitted for review",
                )
            held = _Held(text, None, False)
        return self._decided(verdict, item, held)

    # -- internals --
    def _check(
        self,
        step: str,
        given: object,
        caller: Caller | None,
        model: str | None,
        token: str | None,
        trace_id: str | None,
    ) -> Verdict:
        decided = self._decide(step, given, caller, model, token, trace_id)
        return self._record_steps([decided]).verdicts[0]

    def _decide(
        self,
        step: str,
        given: object,
        caller: Caller | None,
        model: str | None,
        token: str | None,
        trace_id: str | None,
    ) -> _Step:
        """Check ``given`` for ``step``: the decision and its entry, not yet recorded."""
        decided = self._assess(step, given, caller, model, token, trace_id, submit=True)
        assert decided is not None  # only a review left unsubmitted is None
        return decided

    def _assess(
        self,
        step: str,
        given: object,
        caller: Caller | None,
        model: str | None,
        token: str | None,
        trace_id: str | None,
        *,
        submit: bool,
    ) -> _Step | None:
        """:meth:`_decide`; without ``submit``, None for an output the rules hold for review
        (submitting it to the queue is I/O)."""
        started = time.perf_counter()
        caller = caller or Caller()
        bad_trace = trace_id is not None and (
            not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id)
        )
        if trace_id is None or bad_trace:
            trace_id = _new_id()
        try:
            if bad_trace:
                raise _BadInput("a trace id is 1 to 128 letters, digits and . _ : -")
            if step == "admission":
                request = _Request.of_prompt(given)
            else:
                request = _Request.of_text(given, "completion")
        except _BadInput as exc:
            outcome = _Outcome(
                Action.BLOCK, rules=(BAD_INPUT,), error={"kind": "bad-input", "message": str(exc)}
            )
            return self._prepare(step, trace_id, caller, model, None, outcome, started, 400)
        if self._rules is None:
            return self._unloaded(step, trace_id, caller, model, request, started)
        notes: list[str] = []
        claims = self._token(token, trace_id, caller, model, notes) if token else None
        stage = _STAGE_OF_STEP[step]
        variables = {"caller": caller.variables(), "model": model or "", "stage": stage}
        hits = self._rules.evaluate(
            stage,
            request.parts,
            variables,
            token_rules=frozenset(claims.rules) if claims is not None else frozenset(),
        )
        notes.extend(self._rules.notes[stage])
        outcome = decide(hits, [p.text for p in request.parts])
        if not submit and outcome.action is Action.REVIEW:
            return None
        outcome.notes.extend(notes)
        return self._prepare(step, trace_id, caller, model, request, outcome, started)

    def _unloaded(
        self,
        step: str,
        trace_id: str,
        caller: Caller,
        model: str | None,
        request: _Request,
        started: float,
    ) -> _Step:
        assert self.policy_error is not None
        message = self.policy_error.diagnostics()
        if self.fail_closed:
            outcome = _Outcome(
                Action.BLOCK,
                rules=(POLICY_UNAVAILABLE,),
                error={"kind": "policy-unavailable", "message": message},
            )
            return self._prepare(step, trace_id, caller, model, request, outcome, started, 503)
        outcome = _Outcome(
            Action.ALLOW,
            texts=[p.text for p in request.parts],
            notes=[f"unchecked: the policy cannot load ({message.splitlines()[0]})"],
            error={"kind": "policy-unavailable", "message": message, "fail": "open"},
        )
        return self._prepare(step, trace_id, caller, model, request, outcome, started)

    def _finish(
        self,
        step: str,
        trace_id: str,
        caller: Caller,
        model: str | None,
        request: _Request | None,
        outcome: _Outcome,
        started: float,
        status: int | None = None,
    ) -> Verdict:
        """Hold for review if asked, record the step, and answer."""
        prepared = self._prepare(step, trace_id, caller, model, request, outcome, started, status)
        return self._record_steps([prepared]).verdicts[0]

    def _prepare(
        self,
        step: str,
        trace_id: str,
        caller: Caller,
        model: str | None,
        request: _Request | None,
        outcome: _Outcome,
        started: float,
        status: int | None = None,
    ) -> _Step:
        """Hold for review if asked; the step's entry and payloads, ready to record."""
        action = outcome.action
        text: str | None = None
        messages: tuple[dict[str, Any], ...] | None = None
        if request is not None and action is not Action.BLOCK:
            text, messages = request.rebuild(outcome.texts)
        item: ReviewItem | None = None
        if action is Action.REVIEW:
            item = self._submit(trace_id, outcome, text, outcome.notes)
            if item is None:
                action = Action.BLOCK
                outcome.rules = (*outcome.rules, NO_REVIEW_QUEUE)
        explanation_id = None if action is Action.ALLOW else f"ex-{_new_id()}"
        entry = self._entry(step, trace_id, caller, model, outcome, action, started)
        if explanation_id is not None:
            entry["explanation_id"] = explanation_id
        if item is not None:
            entry["review_id"] = item.id
        if status is not None:
            entry["http_status"] = status
        payloads: dict[str, str | bytes] = {}
        if request is not None:
            payloads["input"] = request.digest_input
            if text is not None:
                payloads["output"] = text
        return _Step(
            step, trace_id, outcome, action, text, messages, item, explanation_id, status,
            entry, payloads or None,
        )  # fmt: skip

    def _record_steps(
        self,
        steps: Sequence[_Step],
        first: tuple[Mapping[str, Any], Mapping[str, str | bytes] | None] | None = None,
        trace_id: str | None = None,
    ) -> _Recorded:
        """Record ``steps`` in one commit, after ``first`` (an entry and its payloads); answer.

        The staged admission entries of the traces involved (``trace_id``, ``first``'s and the
        steps') go first in the same commit. A ledger that cannot record fails each step
        closed (or, with ``fail_closed=False``, lets it pass with a note), having said so on
        stderr; a staged entry it could not record is said so there too.
        """
        traces = {prepared.trace_id for prepared in steps}
        if first is not None and isinstance(first[0].get("trace_id"), str):
            traces.add(first[0]["trace_id"])
        if trace_id is not None:
            traces.add(trace_id)
        staged = self._take_staged(traces)
        records: list[tuple[Mapping[str, Any], Mapping[str, str | bytes] | None]] = [
            (prepared.entry, prepared.payloads) for prepared in staged
        ]
        if first is not None:
            records.append(first)
        records.extend((prepared.entry, prepared.payloads) for prepared in steps)
        try:
            indices = self._record_many(records) if records else []
        except _Unrecorded as exc:
            for prepared in staged:
                _emit(
                    "ledger-unavailable",
                    trace_id=prepared.trace_id,
                    step=prepared.step,
                    error=str(exc),
                )
            verdicts: list[Verdict] = []
            for prepared in steps:
                _emit(
                    "ledger-unavailable",
                    trace_id=prepared.trace_id,
                    step=prepared.step,
                    error=str(exc),
                )
                if self.fail_closed:
                    verdicts.append(self._unavailable(prepared.step, prepared.trace_id, str(exc)))
                else:
                    prepared.outcome.notes.append("not recorded: the ledger is unavailable")
                    verdicts.append(self._conclude(prepared, None))
            return _Recorded(verdicts, None, str(exc))
        own = indices[len(records) - len(steps) :]
        verdicts = [self._conclude(step, index) for step, index in zip(steps, own, strict=True)]
        return _Recorded(verdicts, indices[len(staged)] if first is not None else None, None)

    def _conclude(self, prepared: _Step, index: int | None) -> Verdict:
        """The verdict of a recorded step; a held output waits for its reviewer if asked."""
        action = prepared.action
        outcome = prepared.outcome
        item = prepared.item
        verdict = Verdict(
            action=action,
            trace_id=prepared.trace_id,
            stage=prepared.step,
            findings=tuple([h.finding for h in outcome.hits]) if outcome.hits else (),
            rules=outcome.rules,
            text=None if action in (Action.BLOCK, Action.REVIEW) else prepared.text,
            explanation_id=prepared.explanation_id,
            ledger_index=index,
            review_id=item.id if item is not None else None,
            http_status=prepared.status or _STATUS[action],
            messages=None if action in (Action.BLOCK, Action.REVIEW) else prepared.messages,
            notes=tuple(outcome.notes),
        )
        if item is not None:
            redacted = any(h.action is Action.REDACT for h in outcome.hits)
            held = _Held(prepared.text, prepared.messages, redacted)
            with self._lock:
                self._held[item.id] = held
                while len(self._held) > _HELD_MEMORY:
                    self._held.popitem(last=False)
            if self.review_timeout > 0:
                return self.resolve_review(verdict, timeout=self.review_timeout)
        return verdict

    def _submit(
        self, trace_id: str, outcome: _Outcome, text: str | None, notes: list[str]
    ) -> ReviewItem | None:
        if self.review_queue is None:
            notes.append("no review queue: a held output is blocked")
            return None
        reasons = sorted({h.rule.message for h in outcome.hits if h.action is Action.REVIEW})
        try:
            return self.review_queue.submit(
                trace_id=trace_id,
                rules=list(outcome.rules),
                reason="; ".join(reasons)[:2048] or "held by the guard policy",
                output=text or "",
            )
        except Error as exc:
            notes.append(f"the review queue is unavailable ({exc.message}): blocked")
            return None

    def _decided(self, verdict: Verdict, item: ReviewItem, held: _Held) -> Verdict:
        """Record a reviewer's decision (or the queue's expiry) and answer with it."""
        entry = {
            **item.to_record(),
            "kind": "step",
            "step": "review",
            "explains": verdict.explanation_id,
        }
        entry.pop("event", None)
        # A reviewer may quote the held output: the ledger keeps a redacted reason, and the
        # output itself only through the validation step's salted digest.
        entry.pop("output_sha256", None)
        if item.decision_reason is not None:
            entry["decision_reason"] = redact_reason(item.decision_reason)
        try:
            index: int | None = self._record(entry, None)
        except _Unrecorded as exc:
            _emit("ledger-unavailable", trace_id=verdict.trace_id, step="review", error=str(exc))
            if self.fail_closed:
                return self._unavailable(verdict.stage, verdict.trace_id, str(exc))
            index = None
        approved = item.state is ReviewState.APPROVED
        action = (Action.REDACT if held.redacted else Action.ALLOW) if approved else Action.BLOCK
        return replace(
            verdict,
            action=action,
            text=held.text if approved else None,
            messages=held.messages if approved else None,
            ledger_index=index,
            http_status=_STATUS[action],
        )

    def _unavailable(self, step: str, trace_id: str, error: str) -> Verdict:
        """The answer when the ledger cannot record (the caller has said so on stderr)."""
        return Verdict(
            action=Action.BLOCK,
            trace_id=trace_id,
            stage=step,
            findings=(),
            rules=(LEDGER_UNAVAILABLE,),
            text=None,
            explanation_id=None,
            ledger_index=None,
            http_status=503,
            notes=("the ledger cannot record: the request is refused",),
        )

    def _entry(
        self,
        step: str,
        trace_id: str,
        caller: Caller,
        model: str | None,
        outcome: _Outcome,
        action: Action,
        started: float,
    ) -> dict[str, Any]:
        hits = outcome.hits
        # Without hits (most requests) the comprehensions below have nothing to do; skipping
        # them is a tenth of an admission's fixed cost. The entry is the same either way.
        deciding = {h.rule.id: h.rule for h in hits if h.rule.id in outcome.rules} if hits else {}
        entry: dict[str, Any] = {
            "door": "guard",
            "kind": "step",
            "step": step,
            "trace_id": trace_id,
            "caller": caller.as_json(),
            "model": model,
            "policy": self.policy_ref,
            "action": action.value,
            "findings": [_finding_record(h) for h in hits] if hits else [],
            "rules": [
                {
                    "id": rule_id,
                    "action": outcome.action.value,
                    "message": rule.message,
                    "controls": list(rule.controls),
                }
                for rule_id, rule in deciding.items()
            ]
            + [
                {"id": rule_id, "action": action.value}
                for rule_id in outcome.rules
                if rule_id not in deciding
            ],
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if outcome.notes:
            entry["notes"] = list(outcome.notes)
        if outcome.error is not None:
            entry["error"] = dict(outcome.error)
        return entry

    def _record(self, entry: Mapping[str, Any], payloads: Mapping[str, str | bytes] | None) -> int | None:
        """Append ``entry``; its index, None without a ledger; :class:`_Unrecorded` on failure."""
        if self.ledger is None:
            if self.ledger_error is not None:
                raise _Unrecorded(self.ledger_error)
            return None
        try:
            return self.ledger.append(entry, payloads=payloads).index
        except Error as exc:
            raise _Unrecorded(exc.diagnostics()) from exc
        except Exception as exc:  # a driver error the store did not map: still not recorded
            raise _Unrecorded(f"{type(exc).__name__}: {exc}") from exc

    def _record_many(
        self, records: Sequence[tuple[Mapping[str, Any], Mapping[str, str | bytes] | None]]
    ) -> list[int | None]:
        """Append ``records`` in one commit, in order; their indices (None without a ledger)."""
        if self.ledger is None:
            if self.ledger_error is not None:
                raise _Unrecorded(self.ledger_error)
            return [None] * len(records)
        try:
            receipts = self.ledger.append_many(
                [entry for entry, _ in records], payloads=[payloads for _, payloads in records]
            )
        except Error as exc:
            self._recording = False
            raise _Unrecorded(exc.diagnostics()) from exc
        except Exception as exc:  # a driver error the store did not map: still not recorded
            self._recording = False
            raise _Unrecorded(f"{type(exc).__name__}: {exc}") from exc
        self._recording = True
        return [receipt.index for receipt in receipts]

    def _token(
        self,
        token: str,
        trace_id: str,
        caller: Caller,
        model: str | None,
        notes: list[str],
    ) -> TokenClaims | None:
        """Verify a presented token once per trace, and record the verification."""
        key = (trace_id, token_sha256(token.strip()))
        with self._lock:
            seen = key in self._tokens
            known = self._tokens.get(key)
        if seen:
            if known is None:
                notes.append("token rejected (see the token step of this trace)")
                return None
            return known if known.expires_at > time.time() else None
        claims: TokenClaims | None = None
        try:
            claims = verify_token(
                token, verifiers=self._verifiers, audience=self.audience, replay=self._replay_cache()
            )
            if caller.id and claims.subject != caller.id:
                raise _WrongSubject(
                    f"the token is for {claims.subject[:60]!r}, not the caller {caller.id[:60]!r}",
                    kid=claims.kid,
                )
            record = token_record(token, audience=self.audience, claims=claims)
        except TokenRejected as exc:
            claims = None
            record = token_record(token, audience=self.audience, error=exc)
            notes.append(f"token rejected ({exc.reason}): {exc.message}")
        except Error as exc:  # the replay cache is unusable: a token could pass twice
            claims = None
            record = {
                "event": "token.verify",
                "audience": self.audience,
                "token_sha256": token_sha256(token.strip()),
                "accepted": False,
                "reason": "replay-cache-unavailable",
            }
            notes.append(f"token not checked: {exc.message}")
        entry = {
            **record,
            "door": "guard",
            "kind": "step",
            "step": "token",
            "trace_id": trace_id,
            "caller": caller.as_json(),
            "model": model,
        }
        try:
            self._record(entry, None)
        except _Unrecorded as exc:
            # The admission step that follows fails closed on the same ledger.
            _emit("ledger-unavailable", trace_id=trace_id, step="token", error=str(exc))
        with self._lock:
            self._tokens[key] = claims
            while len(self._tokens) > _TOKEN_MEMORY:
                self._tokens.popitem(last=False)
        return claims

    def _replay_cache(self) -> ReplayCache:
        with self._lock:
            if self._replay is None:
                self._replay = ReplayCache.open(self._replay_url)
            return self._replay


class _WrongSubject(TokenRejected):
    reason = "subject"


def decide(hits: Sequence[Hit], texts: Sequence[str]) -> _Outcome:
    """The strictest action the live (not bypassed) hits ask for, and the texts redacted."""
    if not hits:  # most requests: nothing to weigh (the general path costs ~2 µs of it)
        return _Outcome(Action.ALLOW, [], (), list(texts))
    live = [h for h in hits if not h.bypassed]
    action = max((h.action for h in live), key=lambda a: a.rank, default=Action.ALLOW)
    rules = tuple(dict.fromkeys(h.rule.id for h in live if h.action is action))
    out = list(texts)
    if action in (Action.REDACT, Action.REVIEW):
        for number, text in enumerate(texts):
            spans = [
                (h.start, h.end, h.finding.rule)
                for h in live
                if h.part == number and h.action is Action.REDACT
            ]
            if spans:
                out[number] = redact_spans(text, spans)
    return _Outcome(action, list(hits), rules, out)


def _short(prompt: object) -> bool:
    """Whether a prompt's texts are short enough to check on an event loop."""
    if isinstance(prompt, str):
        return len(prompt) <= _INLINE_CHARS
    if not isinstance(prompt, list | tuple):
        return False
    total = 0
    for message in prompt:
        content = message.get("content") if isinstance(message, Mapping) else None
        if content is not None and not isinstance(content, str):
            return False  # content parts: let the pool's check sort them out
        total += len(content or "")
    return total <= _INLINE_CHARS


def _call_entry(
    trace_id: str,
    model: str | None,
    upstream: str,
    status: int,
    duration_ms: float,
    error: str | None,
) -> dict[str, Any]:
    """The ledger entry of a model call (its output is a payload beside it)."""
    entry: dict[str, Any] = {
        "door": "guard",
        "kind": "step",
        "step": "call",
        "trace_id": trace_id,
        "model": model,
        "upstream": _without_credentials(upstream),
        "status": status,
        "duration_ms": round(float(duration_ms), 3),
    }
    if error is not None:
        entry["error"] = error[:500]
    return entry


def _new_id() -> str:
    """A random version-4 UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives, without building
    a ``UUID`` object (a quarter of the cost; every request takes a trace id)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _finding_record(hit: Hit) -> dict[str, Any]:
    f = hit.finding
    record: dict[str, Any] = {
        "id": f.id,
        "rule": hit.rule.id,
        "detector": f.rule,
        "severity": f.severity.value,
        "kind": f.kind,
        "part": f.path,
        "span": [hit.start, hit.end],
        "action": hit.action.value,
        "controls": list(f.controls),
    }
    # Personal data leaves no trace of its value in the tree, not even a partial preview.
    if f.preview is not None and f.kind != "pii":
        record["preview"] = f.preview
    if f.source is not None:
        record["source"] = {"collection": f.source.collection, "path": f.source.path}
    if hit.bypassed:
        record["bypassed"] = True
    return record


def _policy_label(policy: object) -> str:
    if isinstance(policy, Policy):
        return policy.name
    if isinstance(policy, str | Path):
        return os.fspath(policy)
    if isinstance(policy, Sequence):
        return "+".join(os.fspath(p) for p in policy)
    return repr(policy)


def _provenance_factory(index: str | Path | None) -> Callable[[], Any] | None:
    from custodes.fingerprint.index import DEFAULT_INDEX

    path = Path(index) if index is not None else Path(DEFAULT_INDEX)
    if index is None and not path.exists():
        return None

    def build() -> Any:
        from custodes.detectors.provenance import ProvenanceDetector
        from custodes.fingerprint.index import Index

        return ProvenanceDetector(Index.open(path))

    return build


def _verifier(value: str) -> Verifier:
    from custodes.errors import MalformedNote

    text = value
    if "+" not in value or Path(value).is_file():
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read the token verifier key {value}",
                hint="give a verifier key as `custodes token key` prints it, or a file holding one",
            ) from exc
    try:
        return Verifier.from_string(text.strip())
    except MalformedNote as exc:
        raise UsageError(f"token verifier: {exc.message}", hint=exc.hint) from exc


def _without_credentials(url: str) -> str:
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


_emit_lock = threading.Lock()


def _emit(event: str, **fields: object) -> None:
    """One JSON line on stderr: how the guard reports what its ledger cannot record."""
    line = json.dumps(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "level": "error",
            "logger": "custodes.guard",
            "event": event,
            **fields,
        },
        ensure_ascii=False,
        default=str,
    )
    with _emit_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
