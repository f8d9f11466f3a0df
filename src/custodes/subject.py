"""Subjects: the things custodes checks, as every source hands them to the engine.

A source (a directory walk, a git range, an archive, a source map, a prompt) turns its input
into :class:`Subject` items; what it could not read becomes a :class:`Skipped` record with a
reason — custodes never skips silently. Detectors see only subjects, never files, so one
detector serves every door.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MEMBER_SEPARATOR", "SkipReason", "Skipped", "Subject", "SubjectKind"]

MEMBER_SEPARATOR = "!"
"""Joins an archive (or source map) to a member: ``artifact.tgz!package/dist/cli.js.map!src/a.ts``."""


class SubjectKind(StrEnum):
    FILE = "file"  # a whole text file on disk
    HUNK = "hunk"  # the added lines of one file in a diff or commit range
    MEMBER = "member"  # a text member of an archive (tgz, zip, wheel, jar), possibly nested
    SOURCE = "source"  # an original source embedded in a source map's sourcesContent
    PROMPT = "prompt"
    COMPLETION = "completion"


class SkipReason(StrEnum):
    BINARY = "binary"
    TOO_LARGE = "too-large"
    UNREADABLE = "unreadable"
    NOT_UTF8 = "not-utf8"  # undecodable text that is not binary either
    SYMLINK_LOOP = "symlink-loop"
    SYMLINK_OUTSIDE = "symlink-outside-root"
    CORRUPT_ARCHIVE = "corrupt-archive"
    ARCHIVE_LIMIT = "archive-limit"  # a bomb: too many members, too large, ratio too high
    UNSAFE_PATH = "unsafe-path"  # an archive member named ../ or absolute
    MINIFIED = "minified"
    GENERATED = "generated"


@dataclass(frozen=True)
class Subject:
    """One thing to check.

    ``path`` is POSIX and relative to the scanned root; archive members and source-map sources
    are joined with :data:`MEMBER_SEPARATOR`. ``text`` is the decoded content. Line ``i``
    (1-based) of ``text`` is line ``line_numbers[i - 1]`` of the original when ``line_numbers``
    is given (a hunk's added lines are not contiguous), else ``first_line + i - 1``.
    """

    path: str
    text: str
    kind: SubjectKind = SubjectKind.FILE
    first_line: int = 1
    line_numbers: tuple[int, ...] | None = None
    language: str | None = None  # a lower-case name (python, typescript, …) when known

    def original_line(self, line: int) -> int:
        """The original line number of 1-based line ``line`` of ``text``."""
        if self.line_numbers is not None:
            return self.line_numbers[line - 1]
        return self.first_line + line - 1


@dataclass(frozen=True)
class Skipped:
    """Something a source did not hand over, and why (reports list these)."""

    path: str
    reason: SkipReason
    detail: str = ""
