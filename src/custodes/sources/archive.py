"""Archives (tar, tgz, zip, wheel, jar) and what their members hold, as subjects.

A release artifact is checked by what it ships: every text member, the members of archives
nested in it (up to ``max_depth``), and the original sources embedded in any source map inside
it. The leak this exists for reads ``pkg.tgz!package/dist/cli.js.map!src/tools/agent.ts``.
"""

from __future__ import annotations

from collections.abc import Iterator

from custodes.sources.content import (
    decode_text,
    is_archive_name,
    is_source_map_name,
    looks_binary,
    may_carry_inline_map,
)
from custodes.sources.languages import language_of
from custodes.sources.limits import DEFAULT_LIMITS, Limits
from custodes.sources.members import Budget, Entry, member_entries
from custodes.sources.sourcemap import (
    has_inline_source_map,
    inline_source_map,
    read_source_map,
)
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

__all__ = ["read_archive", "read_blob"]


def read_archive(
    data: bytes, display_path: str, *, limits: Limits = DEFAULT_LIMITS, depth: int = 0
) -> Iterator[Subject | Skipped]:
    """The subjects inside the archive ``data``, named ``display_path!member``.

    The format is sniffed from the content (zip, or tar plain or compressed with gzip, bzip2 or
    xz). ``depth`` is how deep this archive already sits inside others. Never raises for bad
    input: corruption and exceeded limits become :class:`Skipped` records.
    """
    yield from _read_archive(data, display_path, limits=limits, depth=depth, budget=Budget())


def _read_archive(
    data: bytes, display_path: str, *, limits: Limits, depth: int, budget: Budget
) -> Iterator[Subject | Skipped]:
    for item in member_entries(data, display_path, limits=limits, depth=depth, budget=budget):
        if isinstance(item, Entry):
            yield from read_blob(
                item.data,
                item.path,
                kind=SubjectKind.MEMBER,
                limits=limits,
                depth=depth + 1,
                budget=budget,
            )
        else:
            yield item
        if budget.exhausted:
            # A nested archive spent the budget of the whole top-level archive: stop here too.
            return


def read_blob(
    data: bytes,
    path: str,
    *,
    kind: SubjectKind,
    limits: Limits = DEFAULT_LIMITS,
    depth: int = 0,
    budget: Budget | None = None,
) -> Iterator[Subject | Skipped]:
    """The subjects of one file or member named ``path``, by what its name and content say.

    An archive yields its members; a source map its embedded sources; a text file itself, and
    a JavaScript file also the sources of an inline source map. ``depth`` is the nesting of an
    archive read here; ``budget`` is the top-level archive's, None to start a fresh one.
    """
    if is_archive_name(path):
        yield from _read_archive(data, path, limits=limits, depth=depth, budget=budget or Budget())
        return
    if looks_binary(data):
        yield Skipped(path, SkipReason.BINARY, "binary content")
        return
    text = decode_text(data)
    if is_source_map_name(path) and text.lstrip().startswith(("{", ")]}")):
        # A .map that is not JSON at all is some other format that happens to share the
        # extension; it is scanned as text below rather than lost.
        yield from read_source_map(text, path)
        return
    yield Subject(path=path, text=text, kind=kind, language=language_of(path))
    if may_carry_inline_map(path) and has_inline_source_map(text):
        map_text = inline_source_map(text)
        if map_text is None:
            yield Skipped(path, SkipReason.CORRUPT_ARCHIVE, "inline source map: undecodable")
        else:
            yield from read_source_map(map_text, path)
