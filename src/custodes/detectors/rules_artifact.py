"""Release-artifact rules: what an npm tarball, wheel, zip or jar must not ship.

Two faults, both of the 31 March 2026 leak kind:

* a source map that carries its original sources (``sourcesContent``): the sources arrive as
  subjects of kind SOURCE named ``pkg.tgz!package/dist/cli.js.map!src/a.ts``; one finding is
  reported per map (its path ``pkg.tgz!package/dist/cli.js.map``), however many sources it
  holds;
* unminified sources of code marked proprietary: an archive member (kind MEMBER) whose path in
  the artifact matches the rule's ``proprietary`` patterns and that is not minified. npm packs
  everything under ``package/``; that first folder is dropped before matching, so
  ``src/**`` names ``package/src/a.ts``.

Only what sits inside an archive is an artifact here: a source map in a working tree is a build
output, not a release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from custodes.policy.model import ArtifactCheck
from custodes.sources.content import is_archive_name
from custodes.subject import MEMBER_SEPARATOR, Subject, SubjectKind

__all__ = ["ArtifactHit", "artifact_hits", "looks_minified"]

_NPM_ROOT: Final = "package/"
# Minifiers put a whole bundle on a few lines; hand-written code averages well under 80.
_MINIFIED_MEAN_LINE: Final = 250


@dataclass(frozen=True)
class ArtifactHit:
    path: str  # what the finding points at: the map, or the member
    start_line: int
    end_line: int
    match_hash: str
    preview: str


def artifact_hits(check: ArtifactCheck, subject: Subject) -> Iterator[ArtifactHit]:
    parts = subject.path.split(MEMBER_SEPARATOR)
    if len(parts) < 2 or not is_archive_name(parts[0]):
        return
    # The first part that is not an archive is the member: the map, or a file.
    member_at = next((i for i, part in enumerate(parts) if not is_archive_name(part)), len(parts))
    if subject.kind is SubjectKind.SOURCE and member_at < len(parts) - 1:
        map_path = MEMBER_SEPARATOR.join(parts[: member_at + 1])
        source_name = MEMBER_SEPARATOR.join(parts[member_at + 1 :])
        if check.sources_content:
            yield ArtifactHit(
                path=map_path,
                start_line=1,
                end_line=1,
                match_hash=_sha256(map_path),
                preview="sourcesContent",
            )
        elif check.proprietary is not None and check.proprietary.match_file(source_name):
            yield _member_hit(subject)
    elif subject.kind is SubjectKind.MEMBER and check.proprietary is not None:
        inner = parts[-1].removeprefix(_NPM_ROOT)
        if check.proprietary.match_file(inner) and not looks_minified(subject.path, subject.text):
            yield _member_hit(subject)


def looks_minified(path: str, text: str) -> bool:
    """Whether ``text`` is a minified bundle rather than readable source."""
    if ".min." in path.rsplit("/", 1)[-1]:
        return True
    lines = text.count("\n") + 1
    return len(text) / lines > _MINIFIED_MEAN_LINE


def _member_hit(subject: Subject) -> ArtifactHit:
    return ArtifactHit(
        path=subject.path,
        start_line=subject.original_line(1),
        end_line=subject.original_line(_line_count(subject.text)),
        match_hash=_sha256(subject.text),
        preview="unminified source",
    )


def _line_count(text: str) -> int:
    # A final newline ends the last line; it does not start another.
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
