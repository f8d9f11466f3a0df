"""Git as a source: the added lines of a range, of the staged change, of a pull request; every blob of history.

Everything goes through the ``git`` command line (no library binding), byte-exact: raw diff
records and ``ls``/``log`` output are read with ``-z`` so that file names with spaces, newlines
or any other byte come through verbatim, and blob contents are read as bytes and decoded as
UTF-8 with replacement only at the end.

Hunks. ``git diff --raw --patch -z -U0`` prints, in one run, the NUL-separated raw records
(modes, blob ids, status, exact paths) and then the patch. A patch names its files only in a
quoted, space-ambiguous header, so each patch is tied to its raw record by rendering the header
git would print for that record and looking it up, never by guessing where a name ends. Hunk
bodies are consumed by the counts in their ``@@`` lines, so a content line can never be taken
for a header. Only added lines count, numbered as in the new file.

Git calls a file binary when either side has a NUL near the start, or when ``.gitattributes``
says so (``-diff``, ``binary``) — which a leaker controls. So a patch git reports as binary is
checked again here: the new blob is read (size first) and only a NUL in its first 8 KiB skips
it; otherwise its added lines are taken from a forced-text diff of the two blobs.

History. ``git log --raw -m --root`` over the revisions names every blob each commit brought in
(against each parent of a merge, so content that only a merge resolution introduced is seen);
each blob id is kept once, with the commit and path of its first sighting in topological order,
oldest first. Sizes come from one ``cat-file --batch-check`` run, and contents from one
long-lived ``cat-file --batch`` process, so a huge blob is never read to be skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from custodes.errors import Error, UsageError
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BlobSighting",
    "diff_base_hunks",
    "history_blobs",
    "range_hunks",
    "staged_hunks",
]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Blobs larger than this are skipped as too large without being read."""

BINARY_SNIFF_BYTES = 8 * 1024
"""A NUL within this many leading bytes makes a blob binary."""

_GITLINK_MODE = "160000"  # a submodule commit: not content of this repository
_HISTORY_REVISION_OPTIONS = frozenset({"--all", "--branches", "--tags", "--remotes"})

# Settings that change what `git diff` or `git log` print, pinned so a user's or a repository's
# configuration can neither break the parser nor hide lines. Keys an older git does not know are
# ignored by it, which is why these are settings and not newer command-line flags.
_CONFIG = (
    "core.quotePath=true",  # the header renderer below quotes the way this setting says
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.relative=false",  # paths stay relative to the repository root, not to `repo`
    "diff.suppressBlankEmpty=false",
    "diff.submodule=short",  # `log` would print submodule summaries instead of patches
    "log.showSignature=false",  # signature checks would print into the record stream
)

_DIFF_OPTIONS = (
    "--raw",
    "--patch",
    "-z",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",  # a textconv driver could turn leaked code into anything at all
    "-U0",
    "--inter-hunk-context=0",
    "--no-abbrev",
    "-M",
    "--diff-filter=AMRT",
    "--ignore-submodules=all",
    "--submodule=short",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)

_HUNK_HEADER = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class BlobSighting:
    """Where a blob of history was first seen: a commit that introduced it, and the path there."""

    blob: str
    commit: str
    path: str


# -- running git ----------------------------------------------------------------------------------


class _Git:
    """``git`` run against one repository, with the pinned settings.

    The environment is inherited on purpose: inside a commit hook ``GIT_INDEX_FILE`` names the
    index being committed, which is the one a pre-commit scan must read.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        env = dict(os.environ)
        # A scan must not take locks that a running `git commit` (whose hook runs us) holds.
        env["GIT_OPTIONAL_LOCKS"] = "0"
        env.pop("GIT_EXTERNAL_DIFF", None)
        self._env = env

    def argv(self, args: Sequence[str]) -> list[str]:
        config = [item for setting in _CONFIG for item in ("-c", setting)]
        # Replacement refs could show a scan different objects from the ones that are pushed.
        return ["git", "--no-replace-objects", *config, "-C", os.fspath(self.repo), *args]

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            done = subprocess.run(
                self.argv(args), input=input, capture_output=True, env=self._env, check=False
            )
        except FileNotFoundError as exc:
            raise UsageError(
                "git is not installed or not on PATH", hint="install git to scan repositories"
            ) from exc
        if check and done.returncode != 0:
            raise Error(
                f"`git {args[0]}` failed in {self.repo}: {_first_line(done.stderr)}",
                hint="check the repository with `git status` and `git fsck`",
            )
        return done

    def popen(
        self, *args: str, stdin: int | None = None, stderr: IO[bytes] | int | None = None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(args),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            env=self._env,
        )


def _first_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ") if lines else "no message"


def _open(repo: Path) -> _Git:
    """A runner for ``repo``, or a UsageError when it is not (inside) a git repository."""
    git = _Git(Path(repo))
    done = git.run("rev-parse", "--git-dir", check=False)
    if done.returncode != 0:
        raise UsageError(
            f"{repo} is not a git repository ({_first_line(done.stderr)})",
            hint="run custodes inside a git work tree, or pass the path of one",
        )
    return git


def _check_revision_text(git: _Git, rev: str) -> None:
    # A revision that starts with '-' would be read by git as an option.
    if not rev or rev.startswith("-"):
        raise UsageError(
            f"{rev!r} is not a revision of {git.repo}",
            hint="name a commit: a branch, a tag or a commit id",
        )


def _resolve_commit(git: _Git, rev: str) -> str:
    """The commit id that ``rev`` names, or a UsageError naming the revision."""
    _check_revision_text(git, rev)
    done = git.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if done.returncode != 0:
        raise UsageError(
            f"unknown revision {rev!r} in {git.repo}",
            hint=(
                "check the name with `git log -1 REV`; in CI, fetch the history it needs "
                "(a shallow clone lacks older commits: use fetch-depth: 0)"
            ),
        )
    return done.stdout.decode("ascii").strip()


def _head(git: _Git) -> str | None:
    done = git.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return done.stdout.decode("ascii").strip() if done.returncode == 0 else None


def _empty_tree(git: _Git) -> str:
    # Hashed rather than hard-coded, so that SHA-256 repositories get their own id.
    return git.run("hash-object", "-t", "tree", "--stdin", input=b"").stdout.decode().strip()


def _merge_base(git: _Git, left: str, right: str, names: tuple[str, str]) -> str:
    done = git.run("merge-base", left, right, check=False)
    if done.returncode != 0:
        raise UsageError(
            f"{names[0]!r} and {names[1]!r} have no common ancestor in {git.repo}",
            hint="fetch the full history of both (a shallow clone cuts it: use fetch-depth: 0)",
        )
    return done.stdout.decode("ascii").split()[0]


# -- reading blobs --------------------------------------------------------------------------------


class _CatFile:
    """One long-lived ``git cat-file --batch`` process for reading blobs by id, plus size checks."""

    def __init__(self, git: _Git) -> None:
        self._git = git
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _CatFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        proc.wait()

    def sizes(self, oids: Sequence[str]) -> dict[str, int]:
        """Sizes of the blobs among ``oids`` (missing and non-blob objects are left out)."""
        if not oids:
            return {}
        listing = self._git.run(
            "cat-file", "--batch-check", input="".join(f"{oid}\n" for oid in oids).encode()
        ).stdout
        found: dict[str, int] = {}
        for line in listing.splitlines():
            fields = line.decode("ascii", "replace").split()
            if len(fields) == 3 and fields[1] == "blob":
                found[fields[0]] = int(fields[2])
        return found

    def read(self, oid: str) -> bytes | None:
        """The content of blob ``oid``, or None when it is missing or not a blob."""
        if self._proc is None:
            self._proc = self._git.popen("cat-file", "--batch", stdin=subprocess.PIPE)
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(f"{oid}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline()
        fields = header.split()
        if len(fields) != 3:  # "<oid> missing" (or ambiguous): nothing follows
            if not header:
                raise Error(f"`git cat-file` ended early in {self._git.repo}")
            return None
        data = self._proc.stdout.read(int(fields[2]))
        self._proc.stdout.read(1)  # the newline git puts after each object
        return data if fields[1] == b"blob" else None


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _path(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


# -- parsing diffs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    """One raw diff record: ``:old_mode new_mode old_oid new_oid status`` and its path(s)."""

    status: str
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str
    old_path: bytes
    new_path: bytes

    def header(self) -> bytes:
        """The ``diff --git`` line git prints for this record's patch."""
        return b"diff --git " + _quote(b"a/", self.old_path) + b" " + _quote(b"b/", self.new_path)


@dataclass
class _Patch:
    """One ``diff --git`` section of a patch."""

    header: bytes
    deleted: bool = False  # the deletion half of a type change: nothing added
    binary: bool = False
    added: list[tuple[int, bytes]] = field(default_factory=list)


# How git's quote_c_style escapes a byte; every other control byte, DEL and (with core.quotePath)
# every byte from 0x80 up is written as a three-digit octal escape.
_ESCAPES = {
    0x07: b"a",
    0x08: b"b",
    0x09: b"t",
    0x0A: b"n",
    0x0B: b"v",
    0x0C: b"f",
    0x0D: b"r",
    0x22: b'"',
    0x5C: b"\\",
}


def _needs_quote(byte: int) -> bool:
    return byte < 0x20 or byte >= 0x7F or byte in (0x22, 0x5C)


def _quote(prefix: bytes, name: bytes) -> bytes:
    """``prefix + name`` as git quotes one side of a ``diff --git`` line."""
    whole = prefix + name
    if not any(_needs_quote(byte) for byte in whole):
        return whole
    out = bytearray(b'"')
    for byte in whole:
        if byte in _ESCAPES:
            out += b"\\" + _ESCAPES[byte]
        elif _needs_quote(byte):
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _split_raw(data: bytes) -> tuple[list[_Change], bytes]:
    """The raw records at the start of ``git diff --raw --patch -z`` output, and the patch after."""
    changes: list[_Change] = []
    pos = 0

    def take() -> bytes:
        nonlocal pos
        end = data.index(b"\0", pos)
        token, pos = data[pos:end], end + 1
        return token

    try:
        while data.startswith(b":", pos):
            fields = take()[1:].decode("ascii").split(" ")
            old_mode, new_mode, old_oid, new_oid, status = fields
            old_path = take()
            new_path = take() if status[:1] in ("R", "C") else old_path
            changes.append(
                _Change(status[:1], old_mode, new_mode, old_oid, new_oid, old_path, new_path)
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise Error(f"unexpected raw record from git diff at byte {pos}") from exc
    if data.startswith(b"\0", pos):  # the separator between the records and the patch
        pos += 1
    return changes, data[pos:]


def _parse_patch(data: bytes) -> list[_Patch]:
    """The sections of a ``-U0`` patch, with each added line and its new-file line number."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    patches: list[_Patch] = []
    i, count = 0, len(lines)
    while i < count:
        if not lines[i].startswith(b"diff --git "):
            if lines[i].startswith(b"* Unmerged path "):  # a conflict in the index: no content
                i += 1
                continue
            raise Error(f"unexpected line in git diff output: {lines[i][:80]!r}")
        patch = _Patch(lines[i])
        patches.append(patch)
        i += 1
        while i < count and not lines[i].startswith(b"diff --git "):
            line = lines[i]
            i += 1
            if line.startswith(b"@@ "):
                i = _read_hunk(line, lines, i, patch)
            elif line.startswith(b"deleted file mode "):
                patch.deleted = True
            elif line.startswith(b"Binary files ") and line.endswith(b" differ"):
                patch.binary = True
            # Other lines are extended headers (index, mode, rename, ---/+++): nothing to take.
    return patches


def _read_hunk(header: bytes, lines: list[bytes], i: int, patch: _Patch) -> int:
    """Consume the body of the hunk ``header`` starting at ``lines[i]``; return the next index."""
    match = _HUNK_HEADER.match(header)
    if match is None:
        raise Error(f"malformed hunk header from git diff: {header[:80]!r}")
    old_left = int(match[2]) if match[2] is not None else 1
    new_left = int(match[4]) if match[4] is not None else 1
    number = int(match[3])
    while old_left > 0 or new_left > 0:
        if i >= len(lines):
            raise Error("git diff output ended inside a hunk")
        line = lines[i]
        i += 1
        tag = line[:1]
        if tag == b"+":
            patch.added.append((number, line[1:]))
            number += 1
            new_left -= 1
        elif tag == b"-":
            old_left -= 1
        elif tag in (b" ", b""):  # context, which -U0 should not print, but counted if it does
            number += 1
            old_left -= 1
            new_left -= 1
        elif tag != b"\\":  # "\ No newline at end of file" belongs to the line before it
            raise Error(f"unexpected line in a git diff hunk: {line[:80]!r}")
        if old_left < 0 or new_left < 0:
            raise Error(f"git diff hunk longer than its header says: {header[:80]!r}")
    while i < len(lines) and lines[i].startswith(b"\\"):
        i += 1
    return i


# -- hunks ----------------------------------------------------------------------------------------


def _diff(git: _Git, args: Sequence[str], max_bytes: int) -> Iterator[Subject | Skipped]:
    """Run ``git diff`` with ``args`` (the sides to compare) and return its added lines per file."""
    output = git.run("diff", *_DIFF_OPTIONS, *args, "--").stdout
    changes, patch_text = _split_raw(output)
    by_header = {change.header(): change for change in changes}
    sections: dict[bytes, list[_Patch]] = {}
    for patch in _parse_patch(patch_text):
        if patch.header not in by_header:
            raise Error(f"git diff printed a patch for no listed file: {patch.header[:120]!r}")
        sections.setdefault(patch.header, []).append(patch)
    return _hunks(git, changes, sections, max_bytes)


def _hunks(
    git: _Git, changes: list[_Change], sections: dict[bytes, list[_Patch]], max_bytes: int
) -> Iterator[Subject | Skipped]:
    with _CatFile(git) as cat:
        for change in changes:
            if change.new_mode == _GITLINK_MODE:
                continue
            patches = [p for p in sections.get(change.header(), []) if not p.deleted]
            if any(patch.binary for patch in patches):
                item = _recheck_binary(git, cat, change, max_bytes)
                if item is not None:
                    yield item
                continue
            added = [line for patch in patches for line in patch.added]
            if added:
                yield _hunk_subject(_path(change.new_path), added)


def _hunk_subject(path: str, added: list[tuple[int, bytes]]) -> Subject:
    return Subject(
        path=path,
        text=_decode(b"\n".join(text for _, text in added)),
        kind=SubjectKind.HUNK,
        line_numbers=tuple(number for number, _ in added),
    )


def _recheck_binary(
    git: _Git, cat: _CatFile, change: _Change, max_bytes: int
) -> Subject | Skipped | None:
    """Decide for ourselves about a file git called binary (attributes can say so of any file)."""
    path = _path(change.new_path)
    size = cat.sizes([change.new_oid]).get(change.new_oid)
    if size is None:
        return Skipped(path, SkipReason.UNREADABLE, f"blob {change.new_oid} is missing")
    if size > max_bytes:
        return Skipped(path, SkipReason.TOO_LARGE, f"{size} bytes, over {max_bytes}")
    data = cat.read(change.new_oid)
    if data is None:
        return Skipped(path, SkipReason.UNREADABLE, f"blob {change.new_oid} is missing")
    if _is_binary(data):
        return Skipped(path, SkipReason.BINARY)
    if change.status in ("A", "T"):  # no earlier content of the same kind: every line is new
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        added = list(enumerate(lines, start=1))
    else:
        blobs = git.run("diff", *_DIFF_OPTIONS, "--text", change.old_oid, change.new_oid).stdout
        _, patch_text = _split_raw(blobs)
        added = [line for patch in _parse_patch(patch_text) for line in patch.added]
    return _hunk_subject(path, added) if added else None


def _parse_range(git: _Git, spec: str) -> tuple[str, str]:
    """The two sides to compare for ``A..B``, ``A...B`` or a single commit (``C`` or ``C^!``)."""
    for separator in ("...", ".."):
        if separator in spec:
            left, right = spec.split(separator, 1)
            left_id = _resolve_commit(git, left or "HEAD")
            right_id = _resolve_commit(git, right or "HEAD")
            if separator == "...":
                left_id = _merge_base(git, left_id, right_id, (left or "HEAD", right or "HEAD"))
            return left_id, right_id
    single = spec.removesuffix("^!")
    commit = _resolve_commit(git, single)
    parents = git.run("rev-list", "--parents", "-n", "1", commit).stdout.decode("ascii").split()
    # A merge is compared with its first parent: what it brought into the mainline.
    return (parents[1] if len(parents) > 1 else _empty_tree(git)), commit


def range_hunks(
    repo: Path, spec: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Subject | Skipped]:
    """The lines added by the commit range ``spec``, one HUNK subject per changed file.

    ``A..B`` compares the two commits, ``A...B`` compares ``B`` with the merge base of both, and a
    single commit ``C`` (or ``C^!``) compares it with its first parent (or with nothing, for a
    root commit). A side left out is ``HEAD``. Deleted files and files whose changes only remove
    lines give nothing; renamed files are named by their new path; submodules are ignored.
    """
    git = _open(repo)
    if not spec:
        raise UsageError(f"empty commit range for {repo}", hint="pass A..B, A...B or a commit")
    old, new = _parse_range(git, spec)
    return _diff(git, [old, new], max_bytes)


def staged_hunks(repo: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Subject | Skipped]:
    """The lines the staged change adds (what ``git commit`` would record), for pre-commit.

    In a repository with no commits yet everything staged is added. The index git uses is the
    one in ``GIT_INDEX_FILE`` when set, as it is inside a commit hook.
    """
    git = _open(repo)
    bare = git.run("rev-parse", "--is-bare-repository").stdout.strip()
    if bare == b"true":
        raise UsageError(
            f"{repo} is a bare repository and has no staged change",
            hint="scan a range (A..B) instead, or run in a work tree",
        )
    base = _head(git) or _empty_tree(git)
    return _diff(git, ["--cached", base], max_bytes)


def diff_base_hunks(
    repo: Path, base: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Subject | Skipped]:
    """The lines ``HEAD`` adds since it forked from ``base`` (a pull request against ``base``)."""
    git = _open(repo)
    head = _head(git)
    if head is None:
        raise UsageError(f"{repo} has no commits (HEAD is unborn)", hint="commit first")
    base_id = _resolve_commit(git, base)
    return _diff(git, [_merge_base(git, base_id, head, (base, "HEAD")), head], max_bytes)


# -- history --------------------------------------------------------------------------------------


def _check_history_rev(git: _Git, rev: str) -> None:
    if rev in _HISTORY_REVISION_OPTIONS:
        return
    _check_revision_text(git, rev)
    done = git.run("rev-list", "-n", "1", rev, "--", check=False)
    if done.returncode != 0:
        raise UsageError(
            f"unknown revision {rev!r} in {git.repo} ({_first_line(done.stderr)})",
            hint="name a branch, tag, commit or range (A..B), or scan --all",
        )


def _tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """NUL-terminated tokens of ``stream``, read a block at a time."""
    rest = b""
    while block := stream.read(1 << 16):
        parts = (rest + block).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest.strip():
        yield rest


def _introductions(git: _Git, rev: str) -> Iterator[tuple[str, str, str, bytes]]:
    """``(commit, new_mode, blob, path)`` for every blob each commit brings in, oldest first."""
    with tempfile.TemporaryFile() as errors:
        proc = git.popen(
            "log", rev, "--reverse", "--topo-order", "--format=%H", "--raw", "-r", "-m",
            "--root", "--no-renames", "--no-abbrev", "-z", "--no-color", "--",
            stderr=errors,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            commit = ""
            pending: list[str] | None = None  # a raw record waiting for its path token
            for token in _tokens(proc.stdout):
                if pending is not None:
                    yield commit, pending[1], pending[3], token
                    pending = None
                    continue
                # After a commit line git puts a newline before its first record.
                text = token.lstrip(b"\n")
                if text.startswith(b":"):
                    pending = text[1:].decode("ascii").split(" ")
                elif text.strip():
                    commit = text.strip().decode("ascii")
        finally:
            proc.stdout.close()
            returncode = proc.wait()
        if returncode not in (0, -13):  # -13: SIGPIPE, when our reader stopped early
            errors.seek(0)
            raise Error(f"`git log` failed in {git.repo}: {_first_line(errors.read())}")


def history_blobs(
    repo: Path, *, rev: str = "--all", max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[tuple[Subject | Skipped, BlobSighting]]:
    """Every distinct file blob in the history of ``rev``, once each, as a whole-file subject.

    ``rev`` is ``--all`` (every ref and ``HEAD``; also ``--branches``, ``--tags``, ``--remotes``), a
    commit, or a range ``A..B``. Each blob comes with where it was first seen: the oldest commit
    (in topological order) that brought it in and its path there. Blobs over ``max_bytes`` are
    skipped as too large without being read; binary blobs are skipped as binary. Submodule
    commits are not blobs of this repository and are left out.
    """
    git = _open(repo)
    _check_history_rev(git, rev)
    return _history(git, rev, max_bytes)


def _history(
    git: _Git, rev: str, max_bytes: int
) -> Iterator[tuple[Subject | Skipped, BlobSighting]]:
    first: dict[str, tuple[str, bytes]] = {}
    for commit, mode, oid, raw_path in _introductions(git, rev):
        if mode != _GITLINK_MODE and set(oid) != {"0"} and oid not in first:
            first[oid] = (commit, raw_path)
    with _CatFile(git) as cat:
        sizes = cat.sizes(list(first))
        for oid, (commit, raw_path) in first.items():
            path = _path(raw_path)
            sighting = BlobSighting(blob=oid, commit=commit, path=path)
            yield _history_item(cat, oid, path, sizes.get(oid), max_bytes), sighting


def _history_item(
    cat: _CatFile, oid: str, path: str, size: int | None, max_bytes: int
) -> Subject | Skipped:
    if size is None:
        return Skipped(path, SkipReason.UNREADABLE, f"blob {oid} is missing")
    if size > max_bytes:
        return Skipped(path, SkipReason.TOO_LARGE, f"{size} bytes, over {max_bytes}")
    data = cat.read(oid)
    if data is None:
        return Skipped(path, SkipReason.UNREADABLE, f"blob {oid} is missing")
    if _is_binary(data):
        return Skipped(path, SkipReason.BINARY)
    return Subject(path=path, text=_decode(data), kind=SubjectKind.FILE)
