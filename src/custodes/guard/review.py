"""The human review queue: outputs a rule marks high-risk wait here for a person's decision.

An item holds what a reviewer needs to find and judge the output, never the output itself: its
SHA-256, a redacted preview and, optionally, a reference into a separate (erasable) payload
store. A reviewer approves or rejects it with a reason; a pending item nobody decides within
the queue's review window is decided as ``expired``. The caller waits for the decision (with a
timeout) or polls :meth:`ReviewQueue.get`. Every decision is kept on the item (who, why, when)
and :meth:`ReviewItem.to_record` gives the entry to append to the ledger.

Errors::

    ReviewItemNotFound   (UsageError, 2)  no item with that id
    AlreadyDecided       (UsageError, 2)  the item was approved, rejected or expired before
    └── ItemExpired                       nobody decided it within the review window
    ReviewStoreError     (UsageError, 2)  the database cannot be opened or used
    ReviewTimeout        (Error, 1)       no decision within the wait; the output stays held
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from custodes.errors import Error, UsageError
from custodes.guard.review_sql import COLUMNS, ReviewStore, open_review_store

__all__ = [
    "DEFAULT_REVIEW_WINDOW",
    "REASON_PREVIEW",
    "AlreadyDecided",
    "ItemExpired",
    "ReviewItem",
    "ReviewItemNotFound",
    "ReviewOutcome",
    "ReviewPage",
    "ReviewQueue",
    "ReviewState",
    "ReviewTimeout",
    "redact_reason",
]

DEFAULT_REVIEW_WINDOW = 24 * 60 * 60

REASON_PREVIEW = 120
# A quotation longer than this is taken to quote what was held (the guarded output).
_QUOTE_KEEP = 12
_QUOTES = re.compile(
    r"\"[^\"]*\"|`[^`]*`|“[^”]*”|‘[^’]*’|«[^»]*»|„[^“”]*[“”]|(?<!\w)'[^']*'(?!\w)"
)

MAX_PREVIEW = 200
MAX_PAGE = 1000
# A redacted preview keeps at most this many characters of the output in a row (``ghp_…a1B2``).
_MAX_CLEAR_RUN = 12
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ANY_DUE = (
    "SELECT 1 FROM custodes_review_items WHERE state = 'pending' AND expires_at IS NOT NULL"
    " AND expires_at <= ? LIMIT 1"
)


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ReviewOutcome(StrEnum):
    """A reviewer's decision on a held item (the guard's own answer is
    :class:`custodes.guard.pipeline.Verdict`)."""

    APPROVE = "approve"
    REJECT = "reject"


_STATE_OF = {
    ReviewOutcome.APPROVE: ReviewState.APPROVED,
    ReviewOutcome.REJECT: ReviewState.REJECTED,
}


class ReviewItemNotFound(UsageError):
    pass


class AlreadyDecided(UsageError):
    """The item is no longer pending; ``item`` is how it stands now."""

    def __init__(self, message: str, *, item: ReviewItem, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.item = item


class ItemExpired(AlreadyDecided):
    pass


class ReviewTimeout(Error):
    """No decision arrived within the wait: the output stays held (fail closed)."""

    exit_code = 1

    def __init__(self, message: str, *, item: ReviewItem, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.item = item


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ReviewItem:
    """One held output and, once decided, the decision. Never holds the output's text."""

    id: str
    trace_id: str
    created_at: datetime
    rules: tuple[str, ...]
    reason: str
    output_sha256: str
    preview: str
    payload_ref: str | None
    state: ReviewState
    expires_at: datetime | None
    reviewer: str | None = None
    decision_reason: str | None = None
    decided_at: datetime | None = None

    @property
    def decided(self) -> bool:
        return self.state is not ReviewState.PENDING

    def to_record(self) -> dict[str, Any]:
        """A JSON object for the ledger: what was held, why, and who decided what."""
        return {
            "door": "guard",
            "event": "review",
            "review_id": self.id,
            "trace_id": self.trace_id,
            "rules": list(self.rules),
            "reason": self.reason,
            "output_sha256": self.output_sha256,
            "state": self.state.value,
            "created_at": _rfc3339(self.created_at),
            "reviewer": self.reviewer,
            "decision_reason": self.decision_reason,
            "decided_at": _rfc3339(self.decided_at),
        }


@dataclass(frozen=True)
class ReviewPage:
    """One page of a listing; pass ``next_cursor`` back for the next, None after the last."""

    items: tuple[ReviewItem, ...]
    next_cursor: str | None


def _row_item(row: Sequence[Any]) -> ReviewItem:
    (_, item_id, trace_id, created, rules, reason, digest, preview, ref, state, expires,
     reviewer, why, decided) = row  # fmt: skip
    return ReviewItem(
        id=str(item_id),
        trace_id=str(trace_id),
        created_at=datetime.fromtimestamp(float(created), UTC),
        rules=tuple(json.loads(rules)),
        reason=str(reason),
        output_sha256=str(digest),
        preview=str(preview),
        payload_ref=None if ref is None else str(ref),
        state=ReviewState(state),
        expires_at=_when(None if expires is None else float(expires)),
        reviewer=None if reviewer is None else str(reviewer),
        decision_reason=None if why is None else str(why),
        decided_at=_when(None if decided is None else float(decided)),
    )


def _text(value: object, what: str, *, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"the review {what} is empty", hint=f"give a non-empty {what}")
    if len(value) > limit or any(ord(ch) < 0x20 and ch not in "\t" for ch in value):
        raise UsageError(
            f"the review {what} is longer than {limit} characters or holds control characters",
            hint=f"give a shorter {what} on one line",
        )
    return value


def _item_id(item_id: object) -> str:
    try:
        return str(uuid.UUID(str(item_id)))
    except ValueError as exc:
        raise ReviewItemNotFound(
            f"{str(item_id)[:60]!r} is not a review item id",
            hint="review ids are UUIDs as `submit` or `list` return them",
        ) from exc


def _check_preview(preview: str, output: bytes | None) -> str:
    if len(preview) > MAX_PREVIEW or any(ord(ch) < 0x20 for ch in preview):
        raise UsageError(
            f"a review preview is at most {MAX_PREVIEW} characters on one line",
            hint="give a redacted preview such as a finding's (e.g. ghp_…a1B2)",
        )
    if output is not None:
        for run in re.split(r"…|\.\.\.|\*+|\[redacted\]", preview):
            run = run.strip()
            if len(run) > _MAX_CLEAR_RUN and run.encode() in output:
                raise UsageError(
                    "the review preview repeats the held output in clear",
                    hint=f"redact it: keep at most {_MAX_CLEAR_RUN} characters in a row, "
                    "e.g. ghp_…a1B2",
                )
    return preview


class ReviewQueue:
    """The review queue in a SQLite file or a PostgreSQL database. Thread-safe.

    ``review_window`` is how long a new item may stay pending before it is decided as expired
    (None: never). ``clock`` gives the current Unix time; tests move it.
    """

    def __init__(
        self,
        store: ReviewStore,
        *,
        review_window: float | None = DEFAULT_REVIEW_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if review_window is not None and review_window <= 0:
            raise UsageError("the review window must be a positive number of seconds")
        self._store = store
        self.review_window = review_window
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str],
        *,
        review_window: float | None = DEFAULT_REVIEW_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> ReviewQueue:
        """Open (creating its table if needed) the queue at a path (SQLite) or ``postgresql://…``."""
        return cls(open_review_store(os.fspath(url)), review_window=review_window, clock=clock)

    @property
    def url(self) -> str:
        return self._store.url

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations --
    def submit(
        self,
        *,
        trace_id: str,
        rules: Sequence[str],
        reason: str,
        output: str | bytes | None = None,
        output_sha256: str | None = None,
        preview: str | None = None,
        payload_ref: str | None = None,
    ) -> ReviewItem:
        """Hold an output for review; give the ``output`` (hashed, never stored) or its SHA-256.

        ``preview`` must already be redacted: one that repeats more than a dozen characters of
        ``output`` in a row is refused. Without one the preview says only how long the output is.
        """
        _text(trace_id, "trace id", limit=256)
        _text(reason, "reason", limit=2048)
        rule_ids = list(dict.fromkeys(rules)) if not isinstance(rules, str) else [rules]
        if not rule_ids or not all(isinstance(r, str) and _RULE_ID.fullmatch(r) for r in rule_ids):
            raise UsageError(
                "a held output names the rule ids that hold it",
                hint="give rule ids of lower-case letters, digits, '.', '-' and '_' (e.g. pii.card-number)",
            )
        if (output is None) == (output_sha256 is None):
            raise UsageError("give the held output or its SHA-256, not both or neither")
        raw: bytes | None = None
        if output is not None:
            raw = output.encode("utf-8", "surrogatepass") if isinstance(output, str) else output
            digest = hashlib.sha256(raw).hexdigest()
        else:
            digest = str(output_sha256).lower()
            if not _SHA256.fullmatch(digest):
                raise UsageError("output_sha256 is not 64 hexadecimal digits")
        if preview is None:
            preview = f"[held output: {len(raw)} bytes]" if raw is not None else "[held output]"
        _check_preview(preview, raw)
        if payload_ref is not None:
            _text(payload_ref, "payload reference", limit=1024)
        now = self._clock()
        expires = None if self.review_window is None else now + self.review_window
        item_id = str(uuid.uuid4())
        with self._store.transaction() as tx:
            tx.execute(
                "INSERT INTO custodes_review_items (id, trace_id, created_at, rules, reason,"
                " output_sha256, preview, payload_ref, state, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (item_id, trace_id, now, json.dumps(rule_ids), reason, digest, preview,
                 payload_ref, expires),
            )  # fmt: skip
            rows = tx.rows(
                f"SELECT {COLUMNS} FROM custodes_review_items WHERE id = ?",  # noqa: S608
                (item_id,),
            )
        return _row_item(rows[0])

    def get(self, item_id: str) -> ReviewItem:
        """The item as it stands now (a pending item past its window is expired first)."""
        key = _item_id(item_id)
        rows = self._read(
            f"SELECT {COLUMNS} FROM custodes_review_items WHERE id = ?",  # noqa: S608
            (key,),
        )
        if not rows:
            raise ReviewItemNotFound(
                f"no review item {key} in {self.url}",
                hint="check the id, or that this is the queue the item was submitted to",
            )
        return _row_item(rows[0])

    def list(
        self,
        *,
        state: ReviewState | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ReviewPage:
        """Items oldest first, ``limit`` at a time; ``cursor`` continues where a page ended."""
        wanted = None if state is None else _state(state)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise UsageError(f"a page holds 1 to {MAX_PAGE} items, not {limit!r}")
        after = 0
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 19:
                raise UsageError(
                    f"{str(cursor)[:40]!r} is not a review queue cursor",
                    hint="pass back the next_cursor of the previous page",
                )
            after = int(cursor)
        sql = f"SELECT {COLUMNS} FROM custodes_review_items WHERE seq > ?"  # noqa: S608
        params: builtins.list[Any] = [after]
        if wanted is not None:
            sql += " AND state = ?"
            params.append(wanted.value)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit + 1)
        rows = self._read(sql, params)
        more = len(rows) > limit
        rows = rows[:limit]
        return ReviewPage(
            tuple(_row_item(row) for row in rows), str(rows[-1][0]) if more and rows else None
        )

    def decide(
        self, item_id: str, verdict: ReviewOutcome | str, *, reviewer: str, reason: str
    ) -> ReviewItem:
        """Approve or reject a pending item; exactly one of several racing deciders wins."""
        key = _item_id(item_id)
        try:
            choice = ReviewOutcome(verdict)
        except ValueError as exc:
            raise UsageError(
                f"{str(verdict)[:40]!r} is not a verdict", hint="decide 'approve' or 'reject'"
            ) from exc
        _text(reviewer, "reviewer", limit=256)
        _text(reason, "decision reason", limit=2048)
        with self._store.transaction() as tx:
            self._expire_due(tx)
            won = tx.execute(
                "UPDATE custodes_review_items SET state = ?, reviewer = ?, decision_reason = ?,"
                " decided_at = ? WHERE id = ? AND state = 'pending'",
                (_STATE_OF[choice].value, reviewer, reason, self._clock(), key),
            ).rowcount == 1  # fmt: skip
            if won:
                self._store.notify(tx, key)
            rows = tx.rows(
                f"SELECT {COLUMNS} FROM custodes_review_items WHERE id = ?",  # noqa: S608
                (key,),
            )
        if not rows:
            raise ReviewItemNotFound(
                f"no review item {key} in {self.url}",
                hint="check the id, or that this is the queue the item was submitted to",
            )
        item = _row_item(rows[0])
        if won:
            return item
        if item.state is ReviewState.EXPIRED:
            raise ItemExpired(
                f"review item {key} expired at {_rfc3339(item.decided_at)} without a decision",
                item=item,
                hint="the output stays held; ask the caller to submit it again",
            )
        raise AlreadyDecided(
            f"review item {key} was already {item.state.value} by {item.reviewer} "
            f"at {_rfc3339(item.decided_at)}",
            item=item,
        )

    def expire(self) -> builtins.list[ReviewItem]:
        """Decide every pending item past its review window as expired; returns those items."""
        with self._store.transaction() as tx:
            ids = self._expire_due(tx)
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = tx.rows(
                f"SELECT {COLUMNS} FROM custodes_review_items WHERE id IN ({marks})"  # noqa: S608
                " ORDER BY seq",
                ids,
            )
        return [_row_item(row) for row in rows]

    def wait(
        self,
        item_id: str,
        timeout: float,
        *,
        poll: float = 0.02,
        max_poll: float = 1.0,
    ) -> ReviewItem:
        """Block until the item is decided (approved, rejected or expired) and return it.

        Polls with exponential backoff from ``poll`` up to ``max_poll`` seconds; on PostgreSQL
        a decision's NOTIFY wakes the waiter at once. :class:`ReviewTimeout` after ``timeout``.
        """
        if timeout < 0 or poll <= 0 or max_poll < poll:
            raise UsageError("wait needs timeout >= 0 and 0 < poll <= max_poll seconds")
        deadline = time.monotonic() + timeout
        delay = poll
        with self._store.listen() as listener:
            while True:
                item = self.get(item_id)
                if item.decided:
                    return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReviewTimeout(
                        f"no decision on review item {item.id} within {timeout:g} s",
                        item=item,
                        hint="the output stays held; wait again or poll the item later",
                    )
                listener.wait(min(delay, remaining))
                delay = min(delay * 2, max_poll)

    # -- internals --
    def _expire_due(self, tx: Any) -> builtins.list[str]:
        due = [
            str(row[0])
            for row in tx.rows(
                "UPDATE custodes_review_items SET state = 'expired', decided_at = expires_at,"
                " decision_reason = 'no decision within the review window'"
                " WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?"
                " RETURNING id",
                (self._clock(),),
            )
        ]
        for item_id in due:
            self._store.notify(tx, item_id)
        return due

    def _read(self, sql: str, params: Sequence[Any]) -> builtins.list[tuple[Any, ...]]:
        """Rows of a query, once every item past its review window is decided as expired."""
        # Readers (waiters poll) take no write lock unless something is actually due.
        with self._store.transaction(write=False) as tx:
            due = tx.rows(_ANY_DUE, (self._clock(),))
            if not due:
                return tx.rows(sql, params)
        with self._store.transaction() as tx:
            self._expire_due(tx)
            return tx.rows(sql, params)


def _state(value: ReviewState | str) -> ReviewState:
    try:
        return ReviewState(value)
    except ValueError as exc:
        raise UsageError(
            f"{str(value)[:40]!r} is not a review state",
            hint="use pending, approved, rejected or expired",
        ) from exc


def redact_reason(reason: str) -> str:
    """A reviewer's reason fit to show and record: no credential, personal data or quotation.

    Credentials and personal data are found by the detectors the guard itself uses; a quoted
    passage longer than a dozen characters is dropped whole, since a reviewer quotes the output
    they judged. The result keeps at most ``REASON_PREVIEW`` characters.
    """
    from custodes.guard.checks import pii_spans, redact_spans, secret_spans

    spans = [(start, end, "secret") for start, end, _ in secret_spans(reason)]
    spans += [(start, end, "pii") for start, end, _ in pii_spans(reason)]
    spans += [
        (m.start(), m.end(), "quote")
        for m in _QUOTES.finditer(reason)
        if m.end() - m.start() - 2 > _QUOTE_KEEP
    ]
    shown = redact_spans(reason, sorted(spans)) if spans else reason
    if len(shown) > REASON_PREVIEW:
        shown = shown[: REASON_PREVIEW - 1].rstrip() + "…"
    return shown
