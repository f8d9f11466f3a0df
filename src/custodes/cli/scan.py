"""``custodes scan``: the code gate for CI and pre-commit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from custodes import __version__
from custodes.cli import _DEFAULT_DB as DEFAULT_DB
from custodes.detectors.interface import Detector
from custodes.engine import Decision, Gate, run
from custodes.errors import UsageError
from custodes.findings import Severity
from custodes.reports import Format, LedgerRef, render
from custodes.subject import Skipped, Subject

if TYPE_CHECKING:
    from custodes.detectors.rules import ProvenanceFactory
    from custodes.policy import Policy

__all__ = ["scan"]


def _items(paths: list[Path]) -> Iterator[Subject | Skipped]:
    from custodes.sources import walk

    for path in paths:
        yield from walk(path)


def _git_items(
    repo: Path, git_range: str | None, staged: bool, diff_base: str | None, history: bool
) -> Iterator[Subject | Skipped]:
    from custodes.sources import git

    if git_range is not None:
        return git.range_hunks(repo, git_range)
    if staged:
        return git.staged_hunks(repo)
    if diff_base is not None:
        return git.diff_base_hunks(repo, diff_base)
    assert history
    return (item for item, _ in git.history_blobs(repo))


def _worth_prestarting(targets: list[Path], index_path: Path | None, *, git: bool) -> bool:
    """Whether the scan will likely match much text against an index: folders are read and an
    index is at hand (files or a git change are little to match: no pool is started early)."""
    if git:
        return False
    if index_path is None:
        from custodes.fingerprint.index import DEFAULT_INDEX

        index_path = Path(DEFAULT_INDEX)
    return index_path.is_file() and any(t.is_dir() for t in targets)


def _detectors(
    policy: Policy, provenance: ProvenanceFactory | None = None
) -> list[Detector]:
    """The detectors the policy switches on; a rule that cannot run here is said on stderr."""
    from custodes.detectors.rules import policy_detectors

    detectors, notes = policy_detectors(policy, provenance=provenance)
    for note in notes:
        click.echo(f"custodes: note: {note}", err=True)
    return detectors


def _record(
    decision: Decision, db: str, targets: list[str], policy: Policy | None = None
) -> LedgerRef:
    from custodes.ledger.log import Ledger

    if db == DEFAULT_DB and not Path(db).exists():
        Path(db).parent.mkdir(exist_ok=True)
        led = Ledger.create(db)
        click.echo(f"custodes: created the ledger {db} (signing key {db}.key)", err=True)
    else:
        led = Ledger.open(db)
    with led:
        receipt = led.append(
            decision.ledger_entry(
                door="scan",
                targets=targets,
                version=__version__,
                policy=policy.ref if policy is not None else None,
            )
        )
    return LedgerRef(receipt.index, receipt.root.hex())


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    default=Format.TEXT.value,
    show_default=True,
    help="Report format; html is one self-contained page (no script) for a CI artifact.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option(
    "--ledger",
    "ledger_db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="Record the decision in this ledger (created at the default path if missing).",
)
@click.option("--no-ledger", is_flag=True, help="Do not record the decision.")
@click.option("--git-range", metavar="A..B", help="Scan only the lines added between two commits.")
@click.option("--staged", is_flag=True, help="Scan only the lines added in the staged change.")
@click.option(
    "--diff-base",
    metavar="REF",
    help="Scan only the lines added since the merge base with REF (a pull request).",
)
@click.option(
    "--history", is_flag=True, help="Scan every file version in the repository's history."
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.HIGH.value,
    show_default=True,
    help="Fail on any finding of this severity or above.",
)
@click.option(
    "--min-score",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Fail when the score (100 minus weighted findings) is below this.",
)
@click.option(
    "--baseline",
    "baseline_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Findings listed here are debt: reported, never failing the gate "
    "[default: .custodes/baseline.json when it exists].",
)
@click.option("--no-baseline", is_flag=True, help="Ignore any baseline: every finding is new.")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="FILE|PACK",
    help="Policy pack to apply: a YAML file or a built-in pack (enterprise, owasp-llm). "
    "Repeat to combine packs [default: enterprise].",
)
@click.option(
    "--index",
    "index_path",
    envvar="CUSTODES_INDEX",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Provenance index to match against (custodes index add) "
    "[default: .custodes/index.db when it exists]. Env: CUSTODES_INDEX.",
)
def scan(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    ledger_db: str,
    no_ledger: bool,
    git_range: str | None,
    staged: bool,
    diff_base: str | None,
    history: bool,
    fail_on: str,
    min_score: int,
    baseline_file: Path | None,
    no_baseline: bool,
    policies: tuple[str, ...],
    index_path: Path | None,
) -> int:
    """Scan files, directories and release artifacts; exit 1 when the gate fails.

    \b
    Reads directories (honouring .gitignore), npm tarballs, wheels, zips, jars and
    JavaScript source maps (the sources inside are scanned too), or, with --git-range,
    --staged or --diff-base, only the lines a change adds. Secrets are reported as
    a redacted preview and a SHA-256, never in clear. Files not scanned are listed with
    the reason. The decision is recorded in the ledger before the report is printed.

    \b
    A finding can be excused inline, with a reason, on its line or the line above:
      key = "…"  # custodes: ignore[secret.generic-assignment] fake key of the test suite
    Findings in the baseline (custodes baseline create) are debt: reported, scored at a
    quarter, never failing the gate. The scorecard shows violations, debt and drift.

    \b
    The policy (--policy, default the built-in enterprise pack) says which checks run:
    secrets, provenance, regular expressions, literal phrases, Python and JavaScript/TypeScript
    call rules and release-artifact rules, each with its severity, paths and controls. A rule:
      - id: acme.no-eval
        message: eval of dynamic input
        severity: high                      # info, low, medium, high, critical
        controls: ["owasp-llm:LLM05"]
        paths: {include: ["src/"], exclude: ["tests/"]}
        python: {calls: [eval, exec], arguments: dynamic}
    Other detectors: regex (pattern, pattern-either, pattern-not, flags), phrases (list,
    ignorecase, words), javascript (as python), artifact (sources-content, proprietary),
    secrets (rules), provenance (collections); optional languages, kinds and when (a CEL
    condition on path, language and kind). An invalid policy stops the scan (exit 2)
    naming FILE:LINE.
      custodes scan . --policy enterprise --policy owasp-llm --policy acme.yaml

    \b
    Provenance: with an index (custodes index add; .custodes/index.db when it exists, or
    --index FILE), code copied from a collection is reported after renaming, reformatting
    and small edits, with the collection's file and lines and the similarity, never the code.

    \b
    Exit codes: 0 passed, 1 the gate failed, 2 usage error, 3 internal error.
    """
    targets = list(paths) or [Path(".")]
    git_scan = git_range is not None or staged or diff_base is not None or history
    if _worth_prestarting(targets, index_path, git=git_scan):
        from custodes.fingerprint.index import prestart

        # Provenance workers get ready on the other core while the policy loads.
        prestart()
    from custodes.policy import load_policy

    policy = load_policy(policies)  # before anything is read: a bad policy scans nothing
    for target in targets:
        if not target.exists() and not target.is_symlink():
            raise UsageError(f"{target} does not exist", hint="give files or folders to scan")
    git_modes = [git_range is not None, staged, diff_base is not None, history]
    if sum(git_modes) > 1:
        raise UsageError(
            "--git-range, --staged, --diff-base and --history exclude each other",
            hint="choose one",
        )
    if any(git_modes) and len(targets) > 1:
        raise UsageError("a git scan takes one repository path", hint="give one PATH (default .)")
    progress = None
    if sys.stderr.isatty():

        def progress(count: int, path: str) -> None:
            if count % 200 == 0:
                click.echo(f"\rscanned {count:,} files", err=True, nl=False)

    gate = Gate(fail_on=Severity(fail_on), min_score=min_score)
    items = (
        _git_items(targets[0], git_range, staged, diff_base, history)
        if any(git_modes)
        else _items(targets)
    )
    from custodes.cli.baseline import baseline_for_scan
    from custodes.cli.index import ProvenanceHook
    from custodes.engine import DriftBase

    hook = ProvenanceHook.for_scan(index_path)  # a missing --index stops here, before reading
    decision = run(
        hook.items(items),
        _detectors(policy, hook.detector),
        gate,
        progress=progress,
        baseline=baseline_for_scan(baseline_file, no_baseline=no_baseline),
        # Only added lines were read: every new finding is drift against the change's base.
        drift_base=DriftBase.CHANGE if any(git_modes[:3]) else None,
    )
    if progress is not None:
        click.echo("\r", err=True, nl=False)
    ledger = (
        None
        if no_ledger
        else _record(decision, ledger_db, [t.as_posix() for t in targets], policy)
    )
    report = render(
        decision,
        Format(fmt),
        ledger=ledger,
        color=output is None and fmt == Format.TEXT and sys.stdout.isatty(),
    )
    if output is not None:
        try:
            output.write_text(report, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the report to {output}: {exc.strerror}") from exc
        click.echo(f"report written to {output}", err=True)
    else:
        click.echo(report, nl=False)
    return 0 if decision.passed else 1
