"""``custodes explain ID``: why the guard blocked, redacted or held a request, with its proof."""

from __future__ import annotations

import json

import click

from custodes.cli.ledger import DEFAULT_DB

__all__ = ["explain"]


@click.command()
@click.argument("explanation_id", metavar="ID")
@click.option(
    "--ledger",
    "db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="The ledger the guard records to: a SQLite file or postgresql://… Env: CUSTODES_LEDGER.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def explain(explanation_id: str, db: str, as_json: bool) -> None:
    """Explain a guard decision: the rule, the redacted match, its controls and the proof.

    ID is the explanation id of a verdict that blocked, redacted or held a prompt or an output
    (ex- and 32 hex digits; the SDK's Verdict.explanation_id, the proxy's error body). The
    explanation is rebuilt from the ledger alone: the decision, each deciding rule and the
    controls it maps to, each match as a redacted preview and a span (personal data is never
    shown), the policy's SHA-256, a reviewer's decision, and the entry's inclusion proof in the
    latest signed checkpoint, checked.

    \b
    Example:
      custodes explain ex-5f0c1e6a2b7d4c0f9e8a7b6c5d4e3f21 --ledger .custodes/ledger.db
      custodes explain ex-5f0c1e6a2b7d4c0f9e8a7b6c5d4e3f21 --json | jq .rules

    Exit codes: 0 explained and the proof verifies, 1 the proof does not verify, 2 unknown id,
    missing ledger or bad usage, 3 internal error.
    """
    from custodes.guard.explain import explain as explain_id
    from custodes.ledger.log import Ledger

    with Ledger.open(db) as ledger:
        found = explain_id(ledger, explanation_id)
    if as_json:
        click.echo(json.dumps(found.as_json(), ensure_ascii=False))
    else:
        click.echo(found.render())
    if not found.verified:
        click.echo(
            f"custodes: verification failed: explanation {found.id}: {found.problem}; "
            "run `custodes ledger verify` to see what changed",
            err=True,
        )
        raise click.exceptions.Exit(1)
