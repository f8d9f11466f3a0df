"""``custodes demo``: the main job on the bundled demo, for ``make run``."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import string
import tarfile
from importlib import resources
from pathlib import Path

import click

from custodes.ledger.log import Ledger
from custodes.ledger.verify import verify_ledger

__all__ = ["demo"]


def _fake(prefix: str, alphabet: str, length: int) -> str:
    # Generated at run time so that no credential-shaped literal lives in custodes' own source.
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


# The demo's "leak": a method of the bundled demo-leak collection (data/demo_leak), copied into
# the demo repository with its names changed and its layout redone, as a pasted fragment is.
_PASTED = """\
import { Job, Outcome, Worker } from "./types";

export class JobPool {
  private readonly workers = new Map<string, Worker>();
  private running = 0;

  constructor(private readonly limit = 8) {}

  async execute(jobs: Job[], abort: AbortSignal): Promise<Outcome[]> {
    const done: Outcome[] = [];
    const pending = [...jobs];
    const lanes: Promise<void>[] = [];
    const pump = async (): Promise<void> => {
      while (pending.length > 0 && !abort.aborted) {
        const job = pending.shift()!;
        this.running += 1;
        try {
          const worker = this.workers.get(job.kind);
          if (worker === undefined) {
            done.push({ jobId: job.key, text: `no worker ${job.kind}`, failed: true });
            continue;
          }
          const text = await worker(job.args, abort);
          done.push({ jobId: job.key, text: text.slice(0, 30000), failed: false });
        } catch (problem) {
          const detail = problem instanceof Error ? problem.message : String(problem);
          done.push({ jobId: job.key, text: detail, failed: true });
        } finally {
          this.running -= 1;
        }
      }
    };
    for (let n = 0; n < Math.min(this.limit, jobs.length); n += 1) {
      lanes.push(pump());
    }
    await Promise.all(lanes);
    return done;
  }
}
"""


def _build_demo_repo(repo: Path) -> None:
    """A small repository with what the gate exists to catch, made fresh for each run."""
    (repo / "src").mkdir(parents=True)
    (repo / "release").mkdir()
    aws = _fake("AKIA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    stripe = _fake("sk_live_", string.ascii_letters + string.digits, 32)
    (repo / "src" / "billing.py").write_text(
        "import boto3\n\n\n"
        "def client():\n"
        f'    return boto3.client("s3", aws_access_key_id="{aws}")\n'
    )
    (repo / "src" / "app.py").write_text("def main() -> None:\n    print('hello')\n")
    # A policy violation of the enterprise pack: TLS verification switched off in production code.
    (repo / "src" / "status.py").write_text(
        "import requests\n\n\n"
        "def health(url: str) -> int:\n"
        "    return requests.get(url, timeout=5, verify=False).status_code\n"
    )
    (repo / "src" / "pool.ts").write_text(_PASTED)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build").mkdir()
    (repo / "build" / "cache.txt").write_text("ignored by .gitignore\n")
    # The 2026 leak in miniature: a published npm package whose source map carries the
    # original sources, one of them holding a live payment key.
    original = f'export const stripeKey = "{stripe}";\nexport const retries = 3;\n'
    source_map = {
        "version": 3,
        "file": "cli.js",
        "sources": ["webpack://acme-cli/./src/config.ts"],
        "sourcesContent": [original],
        "mappings": "",
    }
    members = {
        "package/package.json": b'{"name": "acme-cli", "version": "1.0.0"}\n',
        "package/dist/cli.js": b"console.log('acme');\n//# sourceMappingURL=cli.js.map\n",
        "package/dist/cli.js.map": json.dumps(source_map).encode(),
    }
    with tarfile.open(repo / "release" / "acme-cli-1.0.0.tgz", "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _demo_index(folder: Path) -> Path:
    """Index the bundled stand-in for a leaked codebase as a `deny` collection."""
    from custodes.fingerprint.index import Index, Mode, add_paths

    db = folder / "index.db"
    db.unlink(missing_ok=True)
    leak = resources.files("custodes.data").joinpath("demo_leak")
    with resources.as_file(leak) as leak_dir, Index.open(db, create=True) as index:
        report = add_paths(index, [leak_dir], "demo-leak", mode=Mode.DENY)
    click.secho("$ custodes index add demo_leak --collection demo-leak --mode deny", bold=True)
    click.echo(
        f"  {report.summary.added} file(s), {report.lines} lines, "
        f"{report.summary.fingerprints} fingerprints into {db}\n"
    )
    return db


def _demo_scan(repo: Path, index_db: Path, led: Ledger) -> None:
    from custodes import __version__
    from custodes.cli.index import ProvenanceHook
    from custodes.detectors.rules import policy_detectors
    from custodes.engine import Gate, run
    from custodes.policy import load_policy
    from custodes.reports import Format, LedgerRef, render
    from custodes.sources import walk

    policy = load_policy(["enterprise"])
    hook = ProvenanceHook.for_scan(index_db)
    detectors, _notes = policy_detectors(policy, provenance=hook.detector)
    decision = run(hook.items(walk(repo)), detectors, Gate())
    receipt = led.append(
        decision.ledger_entry(
            door="scan", targets=["repo"], version=__version__, policy=policy.ref
        )
    )
    click.secho(f"$ custodes scan {repo} --policy enterprise --index {index_db}", bold=True)
    report = render(decision, Format.TEXT, ledger=LedgerRef(receipt.index, receipt.root.hex()))
    click.echo(report)


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
    """Scan a demo repository, record the demo decisions, then prove and verify the ledger.

    The demo repository is made fresh in DIR/repo: an AWS key in the code, TLS verification
    switched off, a fragment pasted (renamed and reformatted) from the bundled stand-in for a
    leaked codebase, and a release tarball whose source map carries a live payment key in its
    original sources. It is scanned with the enterprise pack against an index of the leak; the
    verdict is the ledger's first entry, and the guard and review decisions follow.
    """
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "ledger.db"
    decisions = _demo_decisions()
    with Ledger.create(db, name="demo.custodes.local/ledger", keep_payloads=False) as led:
        repo = folder / "repo"
        if repo.exists():
            shutil.rmtree(repo)
        _build_demo_repo(repo)
        _demo_scan(repo, _demo_index(folder), led)
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
