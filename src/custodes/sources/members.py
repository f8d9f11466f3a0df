"""The members of a tar or zip archive held in memory, read within the limits.

Nothing is extracted to disk, so a member named ``../../etc/passwd`` cannot write anywhere; it
is still reported (unsafe-path), because an artifact that carries one is suspect. Sizes are
checked before a member is read and again while it is read, so an archive that lies about
itself (a zip bomb, a tar of a million empty files) never costs more than the limits allow.
Corruption ends the archive with a corrupt-archive record; what was read before it stands.
"""

from __future__ import annotations

import io
import posixpath
import re
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from custodes.sources.content import BINARY_SNIFF_BYTES, is_archive_name, looks_binary
from custodes.sources.limits import Limits
from custodes.subject import MEMBER_SEPARATOR, Skipped, SkipReason

__all__ = ["Budget", "Entry", "member_entries", "unsafe_reason"]

_CHUNK: Final = 64 * 1024
_DRIVE: Final = re.compile(r"^[A-Za-z]:")
_SEPARATORS: Final = re.compile(r"[/\\]")
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# A central directory entry is 46 bytes and a name; more than this per allowed member means
# the directory holds far more entries than the budget, or pads them to exhaust memory.
_MAX_DIRECTORY_BYTES_PER_MEMBER: Final = 512
# tarfile, zipfile and the decompressors are not hardened parsers: crafted input makes them
# raise IndexError, struct.error, KeyError, OverflowError and more besides their own errors.
# Wherever they read untrusted bytes, any Exception means "corrupt", never a crash.
_PARSE_ERRORS: Final = (Exception,)


class Budget:
    """What one top-level archive, nested archives included, has spent of the limits.

    Mutable on purpose: nested readers share it so that nesting cannot multiply the budgets.
    """

    __slots__ = ("exhausted", "members", "total_bytes")

    def __init__(self) -> None:
        self.members = 0
        self.total_bytes = 0
        self.exhausted = False  # once set, every reader of this top-level archive stops


@dataclass(frozen=True)
class Entry:
    """A regular member, read: its data is within the limits, and not binary unless an archive."""

    path: str  # display path: the archive's, then "!", then the member's POSIX name
    data: bytes


class _Stop(Exception):
    """The archive cannot be read further; carries the record that says why."""

    def __init__(self, record: Skipped) -> None:
        super().__init__(record.detail)
        self.record = record


def unsafe_reason(name: str) -> str | None:
    """Why a member name could escape an extraction directory, or None if it cannot."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL in name"
    if name.startswith(("/", "\\")):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    # Backslashes count as separators: Windows tools extract "..\\evil" as a climb.
    if ".." in _SEPARATORS.split(name):
        return "'..' segment"
    return None


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def member_entries(
    data: bytes, display_path: str, *, limits: Limits, depth: int, budget: Budget
) -> Iterator[Entry | Skipped]:
    """The members of the tar or zip archive ``data``, sniffed by content, not by name."""
    reader: _Reader
    if data.startswith(_ZIP_MAGIC):
        reader = _ZipReader(data, display_path, limits, depth, budget)
    else:
        reader = _TarReader(data, display_path, limits, depth, budget)
    try:
        yield from reader.entries()
    except _Stop as stop:
        yield stop.record


class _Reader:
    def __init__(
        self, data: bytes, display_path: str, limits: Limits, depth: int, budget: Budget
    ) -> None:
        self.data = data
        self.display_path = display_path
        self.limits = limits
        self.depth = depth
        self.budget = budget

    def path(self, name: str) -> str:
        return self.display_path + MEMBER_SEPARATOR + name

    def limit(self, path: str, detail: str) -> Skipped:
        return Skipped(path, SkipReason.ARCHIVE_LIMIT, detail)

    def corrupt(self, detail: str) -> _Stop:
        return _Stop(Skipped(self.display_path, SkipReason.CORRUPT_ARCHIVE, detail))

    def count_member(self) -> None:
        self.budget.members += 1
        if self.budget.members > self.limits.max_members:
            self.budget.exhausted = True
            raise _Stop(
                self.limit(
                    self.display_path,
                    f"max_members exceeded: more than {self.limits.max_members} entries",
                )
            )

    def spend(self, size: int) -> None:
        self.budget.total_bytes += size
        if self.budget.total_bytes > self.limits.max_total_bytes:
            self.budget.exhausted = True
            raise _Stop(
                self.limit(
                    self.display_path,
                    f"max_total_bytes exceeded: more than {self.limits.max_total_bytes} "
                    "uncompressed bytes",
                )
            )

    def refusal(self, name: str, size: int) -> Skipped | None:
        """Why a regular member of ``size`` bytes is not read, or None if it may be."""
        path = self.path(name)
        reason = unsafe_reason(name)
        if reason is not None:
            return Skipped(path, SkipReason.UNSAFE_PATH, reason)
        if is_archive_name(name) and self.depth + 1 > self.limits.max_depth:
            return self.limit(
                path, f"max_depth exceeded: archives nested more than {self.limits.max_depth}"
            )
        cap = self.limits.max_bytes_for(name)
        if size > cap:
            return Skipped(path, SkipReason.TOO_LARGE, f"{size} bytes > {cap}")
        return None

    def link_refusal(self, name: str, target: str, *, hard: bool) -> Skipped | None:
        """A record for a link whose target lies outside the archive, else None (ignored)."""
        # A hard link names another member from the archive's top; a symbolic link is
        # relative to its own folder.
        joined = target if hard else posixpath.join(posixpath.dirname(name), target)
        if target.startswith(("/", "\\")) or _DRIVE.match(target):
            escape = True
        else:
            escape = unsafe_reason(posixpath.normpath(joined.replace("\\", "/"))) is not None
        if not escape:
            return None
        kind = "hard link" if hard else "symbolic link"
        return Skipped(self.path(name), SkipReason.UNSAFE_PATH, f"{kind} to {target!r} outside")


class _TarReader(_Reader):
    def entries(self) -> Iterator[Entry | Skipped]:
        # Decompressing more than max_ratio times the compressed size is a bomb; the tar's own
        # headers and padding count, so a million empty members trip it too.
        ceiling = max(len(self.data) * self.limits.max_ratio, self.limits.ratio_floor_bytes)
        with self.open() as archive:
            while True:
                try:
                    info = archive.next()
                except _PARSE_ERRORS as exc:
                    raise self.corrupt(f"truncated or corrupt tar ({exc})") from None
                if info is None:
                    return
                # TarFile remembers every header it has read; this reader streams and never
                # looks back, so forgetting them keeps memory flat over a million members.
                archive.members.clear()  # type: ignore[attr-defined]  # absent from the stubs
                self.count_member()
                name = _clean(info.name)
                if info.offset_data + info.size > ceiling:
                    raise _Stop(
                        self.limit(
                            self.display_path,
                            f"max_ratio exceeded: more than {self.limits.max_ratio:g} times "
                            f"the {len(self.data)} compressed bytes",
                        )
                    )
                if info.issym() or info.islnk():
                    record = self.link_refusal(name, info.linkname, hard=info.islnk())
                    if record is not None:
                        yield record
                    continue
                if not info.isreg():
                    continue  # folders, devices, FIFOs: nothing to read
                # The stream is inflated through this member even when it is not read.
                self.spend(info.size)
                refusal = self.refusal(name, info.size)
                if refusal is not None:
                    yield refusal
                    continue
                yield from self.read(archive, info, name)

    def open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(fileobj=io.BytesIO(self.data), mode="r:*")
        except _PARSE_ERRORS as exc:
            raise self.corrupt(f"not a readable tar or zip archive ({exc})") from None

    def read(
        self, archive: tarfile.TarFile, info: tarfile.TarInfo, name: str
    ) -> Iterator[Entry | Skipped]:
        try:
            member = archive.extractfile(info)
            if member is None:
                return
            with member:
                head = member.read(BINARY_SNIFF_BYTES)
                if looks_binary(head) and not is_archive_name(name):
                    yield Skipped(self.path(name), SkipReason.BINARY, "binary content")
                    return
                # A tar header's size is what tarfile reads, and it was checked above.
                data = head + member.read()
        except _PARSE_ERRORS as exc:
            raise self.corrupt(f"truncated or corrupt tar ({exc})") from None
        yield Entry(self.path(name), data)


class _ZipReader(_Reader):
    def entries(self) -> Iterator[Entry | Skipped]:
        self.check_directory()
        try:
            archive = zipfile.ZipFile(io.BytesIO(self.data))
        except _PARSE_ERRORS as exc:
            raise self.corrupt(f"not a readable zip archive ({exc})") from None
        with archive:
            for info in archive.infolist():
                self.count_member()
                if info.filename.endswith("/"):  # not is_dir(), which fails on an empty name
                    continue
                name = _clean(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    yield from self.link(archive, info, name)
                    continue
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                    # A device or FIFO recorded by a Unix zip tool; many tools (zipfile among
                    # them) store permission bits with no file type at all, which is a file.
                    continue
                refusal = self.refusal(name, info.file_size) or self.ratio_refusal(info, name)
                if refusal is not None:
                    yield refusal
                    continue
                if info.flag_bits & 0x1:
                    yield Skipped(self.path(name), SkipReason.UNREADABLE, "encrypted member")
                    continue
                yield from self.read(archive, info, name)

    def check_directory(self) -> None:
        """Refuse, before zipfile parses it whole, a central directory beyond the member budget.

        zipfile builds an object per entry up front, so a directory of millions of entries
        would exhaust memory before the first member is counted.
        """
        directory = _central_directory(self.data)
        if directory is None:
            return  # zipfile will say what is wrong
        entries, size = directory
        left = self.limits.max_members - self.budget.members
        if entries > left or size > left * _MAX_DIRECTORY_BYTES_PER_MEMBER:
            self.budget.exhausted = True
            raise _Stop(
                self.limit(
                    self.display_path,
                    f"max_members exceeded: the zip declares {entries} entries in a "
                    f"{size}-byte directory; {left} are left of {self.limits.max_members}",
                )
            )

    def ratio_ceiling(self, info: zipfile.ZipInfo) -> float:
        return max(info.compress_size * self.limits.max_ratio, self.limits.ratio_floor_bytes)

    def ratio_refusal(self, info: zipfile.ZipInfo, name: str) -> Skipped | None:
        if info.file_size <= self.ratio_ceiling(info):
            return None
        return self.limit(
            self.path(name),
            f"max_ratio exceeded: {info.file_size} bytes from {info.compress_size} compressed",
        )

    def read(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str
    ) -> Iterator[Entry | Skipped]:
        path = self.path(name)
        cap = self.limits.max_bytes_for(name)
        ceiling = self.ratio_ceiling(info)
        data = bytearray()
        try:
            with archive.open(info) as member:
                # Read in chunks and count: the sizes above are the archive's claims, and a
                # member is dropped as soon as what it actually inflates to breaks a limit.
                while chunk := member.read(_CHUNK):
                    if not data and looks_binary(chunk) and not is_archive_name(name):
                        yield Skipped(path, SkipReason.BINARY, "binary content")
                        return
                    self.spend(len(chunk))
                    data += chunk
                    if len(data) > cap:
                        yield Skipped(path, SkipReason.TOO_LARGE, f"more than {cap} bytes")
                        return
                    if len(data) > ceiling:
                        yield self.limit(path, "max_ratio exceeded while inflating")
                        return
        except _Stop:
            raise  # a budget ran out: not this member's fault, and it ends the archive
        except NotImplementedError as exc:  # a compression method Python cannot read
            yield Skipped(path, SkipReason.UNREADABLE, str(exc))
            return
        except _PARSE_ERRORS as exc:
            # Members of a zip are independent: one bad member does not hide the others.
            yield Skipped(path, SkipReason.CORRUPT_ARCHIVE, f"corrupt zip member ({exc})")
            return
        yield Entry(path, bytes(data))

    def link(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Iterator[Skipped]:
        # A Unix zip tool stores a symbolic link as a member whose content is the target.
        try:
            with archive.open(info) as member:
                target = member.read(4096).decode("utf-8", errors="replace")
        except _PARSE_ERRORS:
            return
        record = self.link_refusal(name, target, hard=False)
        if record is not None:
            yield record


def _central_directory(data: bytes) -> tuple[int, int] | None:
    """The entry count and byte size a zip's end records declare, or None if unreadable."""
    # The end record is 22 bytes plus a comment of at most 65535 bytes, at the very end.
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or len(data) - at < 22:
        return None
    entries, size = struct.unpack_from("<HL", data, at + 10)
    if entries != 0xFFFF and size != 0xFFFFFFFF:
        return entries, size
    # ZIP64: a locator just before the end record gives the offset of the larger end record.
    locator = at - 20
    if locator < 0 or data[locator : locator + 4] != b"PK\x06\x07":
        return None
    (offset,) = struct.unpack_from("<Q", data, locator + 8)
    if offset + 56 > len(data) or data[offset : offset + 4] != b"PK\x06\x06":
        return None
    entries64, size64 = struct.unpack_from("<QQ", data, offset + 32)
    return int(entries64), int(size64)
