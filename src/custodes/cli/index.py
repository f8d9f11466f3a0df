"""``custodes index …``: collections of protected code in the provenance index."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from custodes.cli import _DEFAULT_DB as DEFAULT_DB
from custodes.detectors.interface import Detector
from custodes.errors import FingerprintIndexError, MalformedNote, PackError, UsageError
from custodes.findings import Finding
from custodes.fingerprint.index import DEFAULT_INDEX, Index, Mode, add_paths
from custodes.subject import Skipped, Subject

if TYPE_CHECKING:
    from custodes.detectors.provenance import ProvenanceDetector
    from custodes.ledger.note import Verifier

__all__ = ["ProvenanceHook", "index", "index_option"]

index_option = click.option(
    "--index",
    "index_path",
    envvar="CUSTODES_INDEX",
    default=DEFAULT_INDEX,
    show_default=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The provenance index file. Env: CUSTODES_INDEX.",
)


@click.group()
def index() -> None:
    """The provenance index: protected code, kept as fingerprints only.

    A collection is a named set of fingerprinted files: a leaked codebase, or your own
    proprietary code. `custodes scan` reports code that matches one, after renaming,
    reformatting and small edits: a match in a `deny` collection is rule provenance.deny
    (high: fails the default gate), one in a `warn` collection provenance.warn (medium), as
    far as the policy's provenance rules collect them. No source text is stored in the index
    or in an exported pack. The index is .custodes/index.db unless CUSTODES_INDEX or
    --index name another file.

    \b
    Start here:
      custodes index add leak-mirror/ --collection leak
      custodes index add ../our-core --collection ours --mode warn
      custodes index list
      custodes scan .                      now also matches the collections
    """


@index.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--collection", "-c", "name", required=True, help="The collection to add to.")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    help="deny: a match fails the gate; warn: it is reported. "
    "[default: deny for a new collection, unchanged for an existing one]",
)
@index_option
@click.option("--verbose", "-v", is_flag=True, help="List every file not indexed and why.")
@click.option(
    "--wfp",
    "wfp_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the SCANOSS .wfp fingerprints of the files indexed by this run.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Worker processes when there is a lot to fingerprint.",
)
def add(
    paths: tuple[Path, ...],
    name: str,
    mode: str | None,
    index_path: Path,
    verbose: bool,
    wfp_file: Path | None,
    jobs: int,
) -> int:
    """Fingerprint folders, git working trees and release artifacts into a collection.

    PATHS may be folders (walked as `custodes scan` walks them: .gitignore honoured, .git
    never read), single files, or archives: npm tarballs, wheels, zips, jars, and source maps
    whose sourcesContent holds the original sources, named like
    cli.tgz!package/cli.js.map!src/tools/agent.ts. Each file is named by its path relative to
    the folder given. Adding to an existing collection adds new paths and replaces changed
    ones; unchanged files are not fingerprinted again. Files not indexed (binary, minified,
    generated, too large, unreadable) are counted by reason; --verbose lists them.

    \b
    Example:
      custodes index add leak/ cli-2.1.88.tgz --collection leak --mode deny

    \b
    Exit codes: 0 indexed, 2 usage error, 3 internal error.
    """
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist", hint="give folders, files or archives")
    progress = None
    if sys.stderr.isatty():

        def progress(files: int, lines: int) -> None:
            if files % 100 == 0:
                click.echo(f"\rfingerprinted {files:,} files, {lines:,} lines", err=True, nl=False)

    wfp_out: TextIO | None = None
    try:
        if wfp_file is not None:
            try:
                wfp_out = wfp_file.open("w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"cannot write {wfp_file}: {exc.strerror}", hint="choose another --wfp FILE"
                ) from exc
        with Index.open(index_path, create=True) as idx:
            report = add_paths(
                idx,
                list(paths),
                name,
                mode=Mode(mode) if mode else None,
                jobs=jobs,
                progress=progress,
                wfp_out=wfp_out,
            )
            collection = idx.collection(name)
    finally:
        if wfp_out is not None:
            wfp_out.close()
    if progress is not None:
        click.echo("\r", err=True, nl=False)
    s = report.summary
    click.echo(
        f"{'created' if s.created else 'updated'} collection {s.collection} ({collection.mode.value}) "
        f"in {index_path}: {s.added:,} added, {s.replaced:,} replaced, "
        f"{s.unchanged:,} unchanged; {report.lines:,} lines, {s.fingerprints:,} fingerprints"
    )
    click.echo(
        f"collection {s.collection} now holds {collection.files:,} files, {collection.lines:,} lines"
    )
    for twice in report.duplicates:
        click.echo(f"custodes: warning: {twice} was found twice; the later one was kept", err=True)
    if report.skipped:
        counts = Counter(item.reason.value for item in report.skipped)
        summary = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items()))
        click.echo(f"not indexed: {len(report.skipped):,} files ({summary})")
        if verbose:
            for item in report.skipped:
                detail = f" ({item.detail})" if item.detail else ""
                click.echo(f"  {item.path}: {item.reason.value}{detail}")
        else:
            click.echo("  (--verbose lists them)")
    return 0


@index.command("list")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def list_(ctx: click.Context, index_path: Path, as_json: bool) -> int:
    """List the collections: mode, files, lines, fingerprints, creation time.

    \b
    Example:
      custodes index list --json

    \b
    Exit codes: 0 listed, 2 usage error (e.g. --index names a missing file).
    """
    if not index_path.exists() and _is_default(ctx, "index_path"):
        collections = []
    else:
        with Index.open(index_path) as idx:
            collections = idx.collections()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "index": str(index_path),
                    "collections": [
                        {
                            "name": c.name,
                            "mode": c.mode.value,
                            "files": c.files,
                            "lines": c.lines,
                            "fingerprints": c.fingerprints,
                            "created": c.created,
                            "fingerprint_version": c.fingerprint_version,
                        }
                        for c in collections
                    ],
                },
                indent=2,
            )
        )
        return 0
    if not collections:
        click.echo(f"no collections in {index_path}", err=True)
        return 0
    rows = [("COLLECTION", "MODE", "FILES", "LINES", "FINGERPRINTS", "CREATED")]
    rows += [
        (c.name, c.mode.value, f"{c.files:,}", f"{c.lines:,}", f"{c.fingerprints:,}", c.created)
        for c in collections
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


@index.command()
@click.argument("name")
@index_option
def remove(name: str, index_path: Path) -> int:
    """Remove a collection and all its fingerprints.

    \b
    Example:
      custodes index remove leak

    \b
    Exit codes: 0 removed, 2 no such collection or index.
    """
    with Index.open(index_path) as idx:
        gone = idx.remove(name)
    click.echo(f"removed collection {gone.name} ({gone.files:,} files) from {index_path}")
    return 0


@index.command()
@click.argument("name")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the pack here.",
)
@index_option
@click.option(
    "--ledger",
    "ledger_db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="Sign with this ledger's key (the file DB.key).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sign with this key file instead of the ledger's.",
)
def export(
    name: str, output: Path, index_path: Path, ledger_db: str, key_file: Path | None
) -> int:
    """Write a collection as a signed, fingerprint-only pack.

    The pack holds hashes, line maps, relative paths and line counts, never source text, and
    is signed with the ledger's Ed25519 key, so a partner can match your code without
    receiving it. Give the partner your verifier key (`custodes ledger key`) separately.

    \b
    Example:
      custodes index export ours --output ours.pack
      custodes index import ours.pack --verifier "$(custodes ledger key)"

    \b
    Exit codes: 0 written, 2 usage error (no such collection, no signing key).
    """
    from custodes.fingerprint.pack import export_pack
    from custodes.ledger.log import load_signer

    if key_file is None:
        if "://" in ledger_db:
            raise UsageError(
                "a PostgreSQL ledger keeps no key file beside it",
                hint="give the signing key with --key FILE",
            )
        key_file = Path(ledger_db + ".key")
    signer = load_signer(key_file)
    with Index.open(index_path) as idx:
        data = export_pack(idx, name, signer)
        collection = idx.collection(name)
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}", hint="choose another --output") from exc
    verifier = signer.verifier()
    click.echo(
        f"exported collection {collection.name} ({collection.files:,} files, "
        f"{collection.fingerprints:,} fingerprints) to {output}, "
        f"signed by {verifier.name} (key id {verifier.key_id:08x})"
    )
    return 0


@index.command("import")
@click.argument("pack_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@index_option
@click.option(
    "--verifier",
    "verifier_key",
    metavar="VKEY",
    help="Accept only a pack signed by this key (name+keyid+base64, or a file holding it).",
)
@click.option("--collection", "-c", "name", help="Import under this name instead.")
def import_(pack_file: Path, index_path: Path, verifier_key: str | None, name: str | None) -> int:
    """Check a signed fingerprint pack and add its collection to the index.

    The signature, the payload's SHA-256 and the fingerprint version are checked first; a
    pack that fails any check is refused whole. Without --verifier the pack's own key is
    accepted and named on stderr: pin the key you expect for real use.

    \b
    Example:
      custodes index import partner.pack --verifier partner.example/audit+1a2b3c4d+AbC…

    \b
    Exit codes: 0 imported, 2 the pack is altered, wrongly signed or unreadable, or the
    collection exists already.
    """
    from custodes.fingerprint.pack import import_pack, read_pack

    verifier = _verifier(verifier_key) if verifier_key else None
    try:
        data = pack_file.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {pack_file}: {exc.strerror}", hint="give the file `index export` wrote"
        ) from exc
    pack = read_pack(data, verifier=verifier)
    if not pack.pinned:
        click.echo(
            f"custodes: warning: accepted the pack's own key {pack.signer.name} "
            f"(key id {pack.signer.key_id:08x}); pin it with --verifier "
            f"{pack.signer.to_string()}",
            err=True,
        )
    with Index.open(index_path, create=True) as idx:
        summary = import_pack(idx, pack, name=name)
    click.echo(
        f"imported collection {summary.collection} ({pack.mode.value}, {summary.added:,} files, "
        f"{summary.fingerprints:,} fingerprints) into {index_path}, "
        f"signed by {pack.signer.name} (key id {pack.signer.key_id:08x})"
    )
    return 0


def _verifier(value: str) -> Verifier:
    path = Path(value)
    if "+" not in value or path.exists():
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"--verifier: cannot read {value}: {exc}",
                hint="give the key `custodes ledger key` prints, or a file holding it",
            ) from exc
    try:
        from custodes.ledger.note import Verifier

        return Verifier.from_string(value.strip())
    except MalformedNote as exc:
        raise PackError(f"--verifier: {exc.message}", hint=exc.hint) from exc


def _is_default(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is click.core.ParameterSource.DEFAULT


class ProvenanceHook:
    """The provenance of one ``custodes scan``: the detector, built only when the policy asks
    for it, and the minified or generated subjects it passes by, listed as not checked."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: no index yet, so no collection to match
        self._detector: ProvenanceDetector | None = None

    @classmethod
    def for_scan(cls, index_path: Path | None) -> ProvenanceHook:
        """``index_path`` is what --index (or CUSTODES_INDEX) named, and it must exist; without
        it the default index is used when present, and its absence only means that no
        collection was added yet: provenance then matches nothing, and says nothing."""
        if index_path is None:
            index_path = Path(DEFAULT_INDEX)
            return cls(index_path if index_path.exists() else None)
        if not index_path.exists():
            raise FingerprintIndexError(
                f"no provenance index at {index_path}",
                hint="build one with `custodes index add PATH --collection NAME`, "
                "or leave out --index (and CUSTODES_INDEX)",
            )
        return cls(index_path)

    def detector(self) -> Detector:
        from custodes.detectors.provenance import ProvenanceDetector

        if self.path is None:
            return _NoCollections()
        if self._detector is None:
            # Two processes fingerprint and match ahead of the scan once there is enough to scan.
            self._detector = ProvenanceDetector(Index.open(self.path), jobs=2)
        return self._detector

    def items(self, items: Iterable[Subject | Skipped]) -> Iterator[Subject | Skipped]:
        # Runs once the scan starts reading, after the policy has built (or not) the detector.
        if self._detector is None:
            yield from items
        else:
            yield from self._detector.with_skips(items)


class _NoCollections:
    """Provenance before any collection was added: nothing to match, nothing skipped."""

    name = "provenance"

    def scan(self, subject: Subject) -> Iterator[Finding]:
        return iter(())
