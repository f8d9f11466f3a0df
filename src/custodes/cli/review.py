"""``custodes review …``: the reviewer's side of the guard's human review queue.

The guard holds a high-risk output in the queue; a person lists what is held, reads one item,
then approves or rejects it. A decision is made in the queue first (one of several racing
reviewers wins) and then recorded in the ledger before it is reported, as the EU AI Act art. 14
human-oversight evidence.

The ledger entry names the reviewer and the decision in clear, and the reviewer's reason only
as a salted payload digest (``digests.reason``) plus a redacted preview (``decision_reason``).
A reason is not the guarded output, but a reviewer may quote it (the line of code, the card
number they checked), and the tree is append-only: what enters it cannot be erased. So the
preview drops detected credentials, personal data and any quotation longer than a few words,
and is cut short; the digest is salted because a short reason ("ok") is guessed from a plain
SHA-256, and its salt (and, with ``ledger init --keep-payloads``, the full reason) lives in the
erasable payload store, as prompts and completions do. The entry leaves out the queue's plain
SHA-256 of the held output for the same reason: the held step it names by ``review_id`` already
commits to the output through a salted digest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from custodes.cli.ledger import DEFAULT_DB
from custodes.errors import Error, UsageError
from custodes.guard.review import redact_reason

if TYPE_CHECKING:
    from custodes.guard.review import ReviewItem, ReviewQueue
    from custodes.ledger.log import Ledger, Receipt

__all__ = [
    "OVERSIGHT_CONTROLS",
    "ReviewNotRecorded",
    "decision_entry",
    "redact_reason",
    "review",
    "review_queue_url",
]

# The control a human decision on a held output is evidence for.
OVERSIGHT_CONTROLS: Final = ("eu-ai-act:art14",)
STATES: Final = ("pending", "approved", "rejected", "expired", "all")
_POSTGRES: Final = ("postgresql://", "postgres://")


class ReviewNotRecorded(Error):
    """The queue holds the decision but the ledger could not record it (exit 3)."""


def review_queue_url(ledger: str) -> str:
    """Where ``custodes guard`` keeps its review queue for ``ledger``.

    Mirrors the guard pipeline (which does not expose it): ``<ledger stem>.review.db`` beside
    a SQLite ledger, the ledger's own database for PostgreSQL.
    """
    if ledger.startswith(_POSTGRES):
        return ledger
    path = Path(ledger)
    return str(path.with_name(f"{path.stem}.review.db"))


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def decision_entry(item: ReviewItem) -> dict[str, Any]:
    """The ledger entry of a reviewer's decision on ``item`` (the reason goes as a payload)."""
    decision = {"approved": "approve", "rejected": "reject"}.get(item.state.value)
    if decision is None or item.reviewer is None or item.decision_reason is None:
        raise UsageError(f"review item {item.id} has no reviewer's decision to record")
    return {
        "door": "guard",
        "kind": "step",
        "step": "review",
        "trace_id": item.trace_id,
        "review_id": item.id,
        "decision": decision,
        "state": item.state.value,
        "reviewer": item.reviewer,
        "decision_reason": redact_reason(item.decision_reason),
        "rules": list(item.rules),
        "held_at": _rfc3339(item.created_at),
        "decided_at": _rfc3339(item.decided_at),
        "controls": list(OVERSIGHT_CONTROLS),
        "recorded_by": "custodes review",
    }


# -- opening the stores --------------------------------------------------------------------------


def _shown(url: str) -> str:
    """A database URL without its password (never printed)."""
    if url.startswith(_POSTGRES) and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


@dataclass(frozen=True)
class _Where:
    review: str
    ledger: str
    given: bool  # --review was given (else derived from the ledger)


def _where(review_db: str | None, ledger_db: str) -> _Where:
    if review_db is not None:
        return _Where(review_db, ledger_db, True)
    return _Where(review_queue_url(ledger_db), ledger_db, False)


@contextmanager
def _queue(where: _Where) -> Iterator[ReviewQueue]:
    from custodes.guard.review import ReviewQueue

    # Opening a SQLite queue creates it: a mistyped path must not leave an empty queue behind.
    if not where.review.startswith(_POSTGRES) and not Path(where.review).is_file():
        source = "--review" if where.given else f"beside the ledger {where.ledger}"
        raise UsageError(
            f"no review queue at {where.review} ({source})",
            hint="the guard creates it beside its ledger the first time it holds an output; "
            "give the guard's --ledger, or --review DB",
        )
    with ReviewQueue.open(where.review) as queue:
        yield queue


# -- showing items -------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _item_json(item: ReviewItem, now: float) -> dict[str, Any]:
    return {
        "id": item.id,
        "state": item.state.value,
        "trace_id": item.trace_id,
        "created_at": _rfc3339(item.created_at),
        "age_s": round(max(0.0, now - item.created_at.timestamp()), 3),
        "expires_at": _rfc3339(item.expires_at),
        "rules": list(item.rules),
        "reason": item.reason,
        "preview": item.preview,
        "output_sha256": item.output_sha256,
        "payload_ref": item.payload_ref,
        "reviewer": item.reviewer,
        "decision_reason": (
            None if item.decision_reason is None else redact_reason(item.decision_reason)
        ),
        "decided_at": _rfc3339(item.decided_at),
    }


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _item_lines(item: ReviewItem, now: float) -> list[str]:
    view = _item_json(item, now)
    lines = [
        f"{item.id}  {item.state.value:<8}  age {_age(view['age_s'])}  trace {item.trace_id}",
        f"  rules:    {', '.join(item.rules)}",
        f"  held:     {item.reason}",
        f"  preview:  {item.preview}",
    ]
    if item.decided:
        lines.append(
            f"  decided:  {item.state.value} by {item.reviewer or 'nobody'} at "
            f"{view['decided_at']}: {view['decision_reason']}"
        )
    return lines


# -- the commands --------------------------------------------------------------------------------

_review_option = click.option(
    "--review",
    "review_db",
    metavar="DB",
    help="The review queue: SQLite file or postgresql://… [default: beside the ledger, as "
    "`custodes guard serve` keeps it: LEDGER-STEM.review.db, or the ledger's own PostgreSQL].",
)
_ledger_option = click.option(
    "--ledger",
    "ledger_db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="The ledger the guard records to: SQLite file or postgresql://… Env: CUSTODES_LEDGER.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def review() -> None:
    """The human review queue: outputs the guard held for a person's decision.

    A policy rule with `action: review` (in the enterprise pack: generated authentication
    code, decisions about people) makes the guard hold a model's output instead of answering
    with it. The queue keeps a redacted preview and the output's SHA-256, never the output.
    A reviewer lists the queue, reads an item and approves or rejects it with a reason; the
    decision is recorded in the ledger (EU AI Act art. 14 human oversight) and the waiting
    caller gets the output, or the refusal.

    \b
    custodes review list
    custodes review show 0b7c3a52-4f3e-4d1a-9f25-6a1c2b3d4e5f
    custodes review approve 0b7c3a52-… --reviewer alice --reason "uses the vetted auth library"
    """


@review.command(name="list")
@_review_option
@_ledger_option
@click.option(
    "--state",
    type=click.Choice(STATES),
    default="pending",
    show_default=True,
    help="Which items to list.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="List at most this many items (oldest first).",
)
@_json_option
def list_items(
    review_db: str | None, ledger_db: str, state: str, limit: int, as_json: bool
) -> None:
    """List held outputs, oldest first: id, age, trace id, rules, why held, redacted preview.

    The held output itself is never shown: the queue does not keep it. A pending item past
    its review window is listed as expired.

    \b
    Example:
      custodes review list --state all --limit 20
      custodes review list --json | jq -r '.items[].id'

    Exit codes: 0 listed (also when nothing is held), 2 no queue there or bad usage,
    3 internal error.
    """
    where = _where(review_db, ledger_db)
    with _queue(where) as queue:
        page = queue.list(state=None if state == "all" else state, limit=limit)
        url = _shown(queue.url)
    now = time.time()
    more = page.next_cursor is not None
    if as_json:
        _emit(
            {
                "queue": url,
                "state": state,
                "items": [_item_json(item, now) for item in page.items],
                "more": more,
            }
        )
    else:
        which = "" if state == "all" else f"{state} "
        if not page.items:
            click.echo(f"no {which}items in the review queue {url}")
        for item in page.items:
            click.echo("\n".join(_item_lines(item, now)))
    if more:
        click.echo(
            f"custodes: more {'' if state == 'all' else state + ' '}items than --limit {limit}; "
            "decide these first or raise --limit",
            err=True,
        )


@review.command()
@click.argument("item_id", metavar="ID")
@_review_option
@_ledger_option
@_json_option
def show(item_id: str, review_db: str | None, ledger_db: str, as_json: bool) -> None:
    """Show one review item: why it was held, its redacted preview, its decision if any.

    \b
    Example:
      custodes review show 0b7c3a52-4f3e-4d1a-9f25-6a1c2b3d4e5f --json

    Exit codes: 0 shown, 2 unknown id, no queue there or bad usage, 3 internal error.
    """
    where = _where(review_db, ledger_db)
    with _queue(where) as queue:
        item = queue.get(item_id)
    now = time.time()
    if as_json:
        _emit(_item_json(item, now))
        return
    view = _item_json(item, now)
    rows = [
        ("id", item.id),
        ("state", item.state.value),
        ("trace id", item.trace_id),
        ("held at", f"{view['created_at']} ({_age(view['age_s'])} ago)"),
        ("expires at", view["expires_at"] or "never"),
        ("rules", ", ".join(item.rules)),
        ("held because", item.reason),
        ("preview", item.preview),
        ("output sha256", item.output_sha256),
    ]
    if item.payload_ref is not None:
        rows.append(("payload", item.payload_ref))
    if item.decided:
        rows += [
            ("reviewer", item.reviewer or "nobody"),
            ("decided at", view["decided_at"] or ""),
            ("reason", view["decision_reason"] or ""),
        ]
    for label, value in rows:
        click.echo(f"{label + ':':<15}{value}")


def _decide(
    verdict: str,
    item_id: str,
    reviewer: str,
    reason: str,
    review_db: str | None,
    ledger_db: str,
    key: Path | None,
    as_json: bool,
) -> None:
    from custodes.ledger.log import Ledger

    where = _where(review_db, ledger_db)
    with _queue(where) as queue, Ledger.open(ledger_db, key=key) as ledger:
        # No decision without its evidence: a ledger that cannot sign refuses before deciding.
        ledger.signer()
        item = _decided(queue, item_id, verdict, reviewer, reason)
        receipt = _record(ledger, item, reason)
        ledger_url = _shown(ledger.url)
    entry = decision_entry(item)
    if as_json:
        _emit(
            {
                "review_id": item.id,
                "trace_id": item.trace_id,
                "decision": entry["decision"],
                "state": item.state.value,
                "reviewer": item.reviewer,
                "decision_reason": entry["decision_reason"],
                "decided_at": entry["decided_at"],
                "controls": entry["controls"],
                "ledger": {
                    "url": ledger_url,
                    "index": receipt.index,
                    "leaf_hash": receipt.leaf_hash.hex(),
                },
            }
        )
        return
    click.echo(
        f"{item.state.value} review item {item.id} (trace {item.trace_id}) as {item.reviewer}"
    )
    click.echo(f"reason: {entry['decision_reason']}")
    click.echo(
        f"recorded in the ledger {ledger_url} at index {receipt.index} "
        f"({', '.join(OVERSIGHT_CONTROLS)} human oversight)"
    )


def _decided(
    queue: ReviewQueue, item_id: str, verdict: str, reviewer: str, reason: str
) -> ReviewItem:
    from custodes.guard.review import AlreadyDecided, ItemExpired

    try:
        return queue.decide(item_id, verdict, reviewer=reviewer, reason=reason)
    except ItemExpired:
        raise
    except AlreadyDecided as exc:
        if exc.hint is not None:
            raise
        raise AlreadyDecided(
            exc.message,
            item=exc.item,
            hint=f"a decision stands once made; `custodes review show {exc.item.id}` shows it",
        ) from exc


def _record(ledger: Ledger, item: ReviewItem, reason: str) -> Receipt:
    try:
        return ledger.append(decision_entry(item), payloads={"reason": reason})
    except Error as exc:
        raise ReviewNotRecorded(
            f"review item {item.id} is {item.state.value} in the queue, but the ledger "
            f"{_shown(ledger.url)} could not record the decision: {exc.message}",
            hint="fix the ledger, then record the decision by hand with `custodes ledger "
            "append`; the guard also records it when the caller collects the output",
        ) from exc


_EXAMPLE_REASON: Final = {
    "approve": "uses the vetted auth library",
    "reject": "stores passwords unhashed",
}
_DECISION_HELP: Final = """{Verdict} a held output, and record the decision in the ledger.

The item is {past} in the queue (of reviewers racing on one item exactly one wins), then the
decision is appended to the ledger as a guard "review" step mapped to eu-ai-act:art14 (human
oversight): trace id, review id, decision, reviewer, a redacted preview of the reason and its
salted digest. Only then is the result printed. A caller waiting on the item {caller}.

\b
Example:
  custodes review {verdict} 0b7c3a52-4f3e-4d1a-9f25-6a1c2b3d4e5f \\
      --reviewer alice --reason "{example}"

Exit codes: 0 {past} and recorded; 2 unknown id, an item already decided or expired, an empty
reason, no queue or ledger there (nothing is decided when the ledger cannot sign); 3 {past} in
the queue but the ledger failed to record it, or an internal error.
"""


def _decision_command(verdict: str, past: str) -> click.Command:
    @click.command(name=verdict)
    @click.argument("item_id", metavar="ID")
    @click.option(
        "--reviewer",
        required=True,
        metavar="NAME",
        help="Who decides (recorded in the ledger in clear, for accountability).",
    )
    @click.option(
        "--reason",
        required=True,
        metavar="TEXT",
        help="Why; the ledger keeps a salted digest and a redacted preview, never the clear "
        "text.",
    )
    @_review_option
    @_ledger_option
    @click.option(
        "--key",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="The ledger's signing key [default: the path the ledger records].",
    )
    @_json_option
    def command(
        item_id: str,
        reviewer: str,
        reason: str,
        review_db: str | None,
        ledger_db: str,
        key: Path | None,
        as_json: bool,
    ) -> None:
        _decide(verdict, item_id, reviewer, reason, review_db, ledger_db, key, as_json)

    command.help = _DECISION_HELP.format(
        verdict=verdict,
        Verdict=verdict.capitalize(),
        past=past,
        caller="gets the output" if verdict == "approve" else "is refused (HTTP 403)",
        example=_EXAMPLE_REASON[verdict],
    )
    return command


approve = _decision_command("approve", "approved")
reject = _decision_command("reject", "rejected")
review.add_command(approve)
review.add_command(reject)
