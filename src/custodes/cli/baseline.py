"""``custodes baseline``: accept today's findings as debt, so that only new ones fail the gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custodes import __version__
from custodes.baseline import DEFAULT_BASELINE, Baseline
from custodes.errors import MalformedBaseline, UsageError

__all__ = ["baseline", "baseline_for_scan"]


def baseline_for_scan(path: Path | None, *, no_baseline: bool) -> Baseline | None:
    """The baseline ``custodes scan`` applies: ``path``, else the default file if it exists."""
    if no_baseline:
        if path is not None:
            raise UsageError(
                "--baseline and --no-baseline exclude each other", hint="choose one"
            )
        return None
    if path is not None:
        return Baseline.load(path)
    default = Path(DEFAULT_BASELINE)
    if default.exists() or default.is_symlink():
        return Baseline.load(default)
    return None


@click.group()
def baseline() -> None:
    """Accept the current findings as debt, so that only new findings fail `custodes scan`.

    \b
    A baseline lists finding identities (rule + path + SHA-256 of what matched), never line
    numbers and never secret text, so moving a finding to another line keeps it baselined.
    `custodes scan` reads .custodes/baseline.json when it exists (or --baseline FILE) and
    reports the findings it lists as debt: shown, scored at a quarter, never failing the gate.
    """


@baseline.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_BASELINE,
    show_default=True,
    help="Write the baseline here.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="FILE|PACK",
    help="The policy the scans will apply, as for `custodes scan` [default: enterprise].",
)
@click.option(
    "--index",
    "index_path",
    envvar="CUSTODES_INDEX",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Provenance index, as for `custodes scan` [default: .custodes/index.db when it exists].",
)
def create(
    paths: tuple[Path, ...], output: Path, policies: tuple[str, ...], index_path: Path | None
) -> int:
    """Scan PATHs (default .) as `custodes scan` does and write their findings as a baseline.

    \b
    Findings an inline `custodes: ignore[rule] reason` directive suppresses are left out:
    they are handled already. Re-creating a baseline whose findings did not change rewrites
    the same bytes; set SOURCE_DATE_EPOCH to pin the timestamp of a new one.

    \b
    Example:
      custodes baseline create .                  # writes .custodes/baseline.json
      git add .custodes/baseline.json             # review it like code
      custodes scan .                             # fails only on findings not in it

    \b
    Exit codes: 0 written, 2 usage error (a missing path, an unwritable --output).
    """
    from custodes.cli.index import ProvenanceHook
    from custodes.cli.scan import _detectors, _items
    from custodes.engine import Gate, run
    from custodes.policy import load_policy

    # The same checks as the scans the baseline will serve, or its identities would not match.
    policy = load_policy(policies)
    hook = ProvenanceHook.for_scan(index_path)
    targets = list(paths) or [Path(".")]
    for target in targets:
        if not target.exists() and not target.is_symlink():
            raise UsageError(f"{target} does not exist", hint="give files or folders to scan")
    progress = None
    if sys.stderr.isatty():

        def progress(count: int, path: str) -> None:
            if count % 200 == 0:
                click.echo(f"\rscanned {count:,} files", err=True, nl=False)

    decision = run(
        hook.items(_items(targets)), _detectors(policy, hook.detector), Gate(), progress=progress
    )
    if progress is not None:
        click.echo("\r", err=True, nl=False)
    fresh = Baseline.of(decision.findings)
    try:
        previous = Baseline.load(output) if output.is_file() else None
    except MalformedBaseline:
        previous = None  # replaced by a valid one
    if previous is not None and previous.same_findings(fresh):
        fresh = Baseline(fresh.entries, previous.created)
    fresh.write(output, tool=f"custodes {__version__}")
    kinds: dict[str, int] = {}
    for entry in fresh:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    click.echo(
        f"baseline written to {output}: {len(fresh)} finding(s)"
        + (f" ({detail})" if detail else "")
        + f", {len(decision.suppressed)} suppressed inline left out"
    )
    if decision.skipped:
        click.echo(
            f"custodes: {len(decision.skipped)} file(s) not scanned; "
            "`custodes scan --format json` lists them with the reason",
            err=True,
        )
    return 0
