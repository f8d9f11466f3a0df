"""A directory (or one file) as subjects: every regular file, in sorted path order.

``.gitignore`` files are honoured at every level, as git does; ``.git`` is never entered.
Symbolic links are followed only while they stay inside the root, and a linked folder is
entered once, so a link to its own parent ends the walk rather than looping it. What cannot be
read becomes a :class:`~custodes.subject.Skipped` record with the operating system's reason,
and the walk goes on. Archives and source maps are opened and yield what they contain.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from custodes.errors import UsageError
from custodes.sources.content import BINARY_SNIFF_BYTES, is_archive_name, looks_binary
from custodes.sources.limits import DEFAULT_LIMITS, Limits
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

# pathspec (for a .gitignore) and the archive readers are imported where used: processes that
# import this package only for its language table (fingerprinting workers) skip them.

__all__ = ["walk"]

# Git's object store, and custodes' own state (ledger, signing key, index): never content.
_NEVER_WALKED = frozenset({".git", ".custodes"})

_GITIGNORE = ".gitignore"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Ignore:
    """The patterns of one .gitignore, which apply to paths below its folder."""

    base: str  # the folder, relative to the root ("" for the root itself)
    spec: GitIgnoreSpec

    def verdict(self, rel: str, *, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a negation; None: no pattern matches."""
        inside = rel[len(self.base) + 1 :] if self.base else rel
        return self.spec.check_file(inside + "/" if is_dir else inside).include


def _ignored(rules: tuple[_Ignore, ...], rel: str, *, is_dir: bool) -> bool:
    # As in git, the deepest .gitignore with a matching pattern decides, and within one file
    # the last matching pattern does. A folder that is ignored is not entered, so nothing
    # below it can be re-included, which is git's rule too.
    for rule in reversed(rules):
        verdict = rule.verdict(rel, is_dir=is_dir)
        if verdict is not None:
            return verdict
    return False


@dataclass(frozen=True)
class _Dir:
    path: str  # as reached on disk (through a link if one was followed)
    rel: str
    real: str
    rules: tuple[_Ignore, ...]
    ancestors: frozenset[str]  # real paths of the folders above, to recognise a cycle


@dataclass(frozen=True)
class _File:
    path: str
    rel: str


@dataclass(frozen=True)
class _Report:
    """A record queued in the walk, so that it comes out in path order with the subjects."""

    record: Skipped


@dataclass(frozen=True)
class _Link:
    """A symbolic link, resolved once the plain folders beside it are known."""

    path: str
    rel: str
    is_dir: bool


_Item = _Dir | _File | _Report


def walk(
    root: Path | str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    gitignore: bool = True,
) -> Iterator[Subject | Skipped]:
    """The subjects under ``root``, or of ``root`` itself if it is a file.

    Paths are POSIX and relative to ``root`` (a file root is named by its own name). With
    ``gitignore`` false, .gitignore files are not consulted (``.git`` is still skipped).
    Raises :class:`~custodes.errors.UsageError` if ``root`` does not exist.
    """
    root = Path(root)
    try:
        info = root.stat()
    except FileNotFoundError:
        raise UsageError(
            f"{root}: no such file or directory", hint="give an existing folder or file to scan"
        ) from None
    except OSError as exc:
        yield Skipped(root.name or str(root), SkipReason.UNREADABLE, _reason(exc))
        return
    if not stat.S_ISDIR(info.st_mode):
        yield from _read_file(str(root), root.name or str(root), limits)
        return
    yield from _Walker(root, limits, gitignore=gitignore).run()


class _Walker:
    def __init__(self, root: Path, limits: Limits, *, gitignore: bool) -> None:
        self.root = str(root)
        self.root_real = os.path.realpath(root)
        self.limits = limits
        self.gitignore = gitignore
        # Real paths of every folder queued so far: a link to one of them is not followed.
        self.queued: set[str] = {self.root_real}

    def run(self) -> Iterator[Subject | Skipped]:
        # An explicit stack, not recursion: a deep tree cannot exhaust Python's call stack.
        stack: list[_Item] = [_Dir(self.root, "", self.root_real, (), frozenset())]
        while stack:
            item = stack.pop()
            if isinstance(item, _File):
                yield from _read_file(item.path, item.rel, self.limits)
            elif isinstance(item, _Report):
                yield item.record
            else:
                stack.extend(reversed(self.expand(item)))

    def expand(self, folder: _Dir) -> list[_Item]:
        """The contents of ``folder`` still to walk, in sorted order."""
        try:
            with os.scandir(folder.path) as listing:
                entries = [entry for entry in listing if entry.name not in _NEVER_WALKED]
        except OSError as exc:
            return [_Report(Skipped(folder.rel or ".", SkipReason.UNREADABLE, _reason(exc)))]
        rules = folder.rules
        if self.gitignore:
            rule = _load_gitignore(folder.path, folder.rel, self.limits)
            if rule is not None:
                rules = (*rules, rule)
        is_dir = {entry.name: _is_dir(entry) for entry in entries}
        # A folder sorts as its name plus "/", so paths come in the order of their full
        # relative paths ("a.txt" before "a/x"), as git lists them.
        entries.sort(key=lambda entry: entry.name + "/" if is_dir[entry.name] else entry.name)
        ancestors = folder.ancestors | {folder.real}
        found: list[_Item | _Link] = []
        for entry in entries:
            rel = f"{folder.rel}/{entry.name}" if folder.rel else entry.name
            if _ignored(rules, rel, is_dir=is_dir[entry.name]):
                continue
            if entry.is_symlink():
                found.append(_Link(entry.path, rel, is_dir[entry.name]))
            elif is_dir[entry.name]:
                real = os.path.realpath(entry.path)
                self.queued.add(real)
                found.append(_Dir(entry.path, rel, real, rules, ancestors))
            else:
                found.append(_File(entry.path, rel))
        # Links are resolved after the plain folders beside them are queued, so that a link to
        # a sibling folder is reported rather than walking that folder twice.
        return [
            self.follow(item, rules, ancestors) if isinstance(item, _Link) else item
            for item in found
        ]

    def follow(self, link: _Link, rules: tuple[_Ignore, ...], ancestors: frozenset[str]) -> _Item:
        """What to do with a symbolic link: walk its target, or report why not."""
        real = os.path.realpath(link.path)
        if not os.path.exists(real):
            try:
                target = os.readlink(link.path)
            except OSError:
                target = "?"
            return _Report(
                Skipped(link.rel, SkipReason.UNREADABLE, f"dangling symbolic link to {target!r}")
            )
        if os.path.commonpath([real, self.root_real]) != self.root_real:
            return _Report(
                Skipped(link.rel, SkipReason.SYMLINK_OUTSIDE, f"links to {real}, outside the root")
            )
        if not link.is_dir:
            return _File(real, link.rel)
        if real in ancestors:
            return _Report(
                Skipped(link.rel, SkipReason.SYMLINK_LOOP, "links to a folder that contains it")
            )
        if real in self.queued:
            return _Report(
                Skipped(link.rel, SkipReason.SYMLINK_LOOP, "links to a folder walked already")
            )
        self.queued.add(real)
        return _Dir(link.path, link.rel, real, rules, ancestors)


def _load_gitignore(folder: str, rel: str, limits: Limits) -> _Ignore | None:
    path = os.path.join(folder, _GITIGNORE)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limits.max_file_bytes:
            return None
        with open(path, "rb") as handle:
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None  # the walk reports the file itself as unreadable
    from pathspec import GitIgnoreSpec

    try:
        spec = GitIgnoreSpec.from_lines(lines)
    except ValueError:
        # git ignores a malformed pattern and keeps the rest; so does this.
        spec = GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)])
    return _Ignore(rel, spec)


def _valid_pattern(line: str) -> bool:
    from pathspec import GitIgnoreSpec

    try:
        GitIgnoreSpec.from_lines([line])
    except ValueError:
        return False
    return True


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows a symbolic link, so a link to a folder counts
    except OSError:
        return False


def _read_file(path: str, rel: str, limits: Limits) -> Iterator[Subject | Skipped]:
    """The subjects of the file at ``path``, read within the limits."""
    cap = limits.max_bytes_for(rel)
    try:
        # Opening a FIFO blocks and opening a device can act on it: look before opening, and
        # open without blocking (a regular file ignores the flag) in case the file was swapped.
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            yield Skipped(rel, SkipReason.UNREADABLE, f"not a regular file ({_kind(info)})")
            return
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        yield Skipped(rel, SkipReason.UNREADABLE, _reason(exc))
        return
    try:
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                yield Skipped(rel, SkipReason.UNREADABLE, f"not a regular file ({_kind(info)})")
                return
            if info.st_size > cap:
                yield Skipped(rel, SkipReason.TOO_LARGE, f"{info.st_size} bytes > {cap}")
                return
            head = handle.read(BINARY_SNIFF_BYTES)
            if looks_binary(head) and not is_archive_name(rel):
                yield Skipped(rel, SkipReason.BINARY, "binary content")
                return
            data = _read_rest(handle, head, cap=cap, expected=info.st_size)
    except OSError as exc:
        yield Skipped(rel, SkipReason.UNREADABLE, _reason(exc))
        return
    if len(data) > cap:
        yield Skipped(rel, SkipReason.TOO_LARGE, f"more than {cap} bytes")
        return
    from custodes.sources.archive import read_blob

    yield from read_blob(data, rel, kind=SubjectKind.FILE, limits=limits)


def _read_rest(handle: BinaryIO, head: bytes, *, cap: int, expected: int) -> bytes:
    """``head`` and the rest of the file, stopping one byte past ``cap``.

    Reads are sized by the file's measured size, not by the cap: a buffered read of n bytes
    reserves n bytes up front, and a 16 MiB reservation per small file would be wasteful.
    The byte past the cap tells a file that grew since it was measured.
    """
    data = bytearray(head)
    while len(data) <= cap:
        want = min(cap + 1 - len(data), max(expected + 1 - len(data), _CHUNK))
        chunk = handle.read(want)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
