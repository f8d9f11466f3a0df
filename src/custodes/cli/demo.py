"""``custodes demo``: the main job on the bundled demo, for ``make run``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import click

from custodes.ledger.log import Ledger
from custodes.ledger.verify import verify_ledger

__all__ = ["demo"]


def _demo_decisions() -> list[dict[str, object]]:
    text = resources.files("custodes.data").joinpath("demo_decisions.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".custodes/demo"),
    show_default=True,
    help="Folder for the demo ledger and its key (created if missing; must hold no ledger).",
)
def demo(folder: Path) -> int:
    """Record the bundled demo decisions in a fresh ledger, then prove and verify it."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "ledger.db"
    decisions = _demo_decisions()
    with Ledger.create(db, name="demo.custodes.local/ledger", keep_payloads=False) as led:
        click.secho(f"ledger {led.origin} at {db}", bold=True)
        prompt = "Charge card 4111 1111 1111 1111 for the renewal"
        for decision in decisions:
            payloads = {"prompt": prompt} if decision["kind"] == "prompt" else None
            receipt = led.append(decision, payloads=payloads)
            click.echo(
                f"  #{receipt.index}  {decision['door']:<5} {decision['kind']:<10} "
                f"{decision['action']:<8} leaf {receipt.leaf_hash.hex()[:16]}…"
            )
        click.secho("\nsigned checkpoint (C2SP tlog-checkpoint):", bold=True)
        click.echo(led.checkpoint(), nl=False)
        proof = led.prove(0)
        click.secho("\ninclusion proof of entry #0:", bold=True)
        click.echo(f"  {len(proof.hashes)} hashes, verifies: {proof.verify()}")
        report = verify_ledger(led)
        click.secho(
            f"\nverified: {report.size} entries, every leaf, node and signature; "
            f"root {report.root.hex()}",
            fg="green",
        )
        click.echo(f"verifier key: {led.verifier.to_string()}")
        click.echo(f"try: .venv/bin/custodes ledger verify --db {db}")
    return 0
