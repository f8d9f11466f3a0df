"""The directory walk: order, .gitignore, symbolic links, unreadable, binary and large files."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest

from custodes.errors import UsageError
from custodes.sources import Limits, language_of, walk
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

MiB = 1 << 20


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


def paths(items: Iterable[Subject | Skipped]) -> list[str]:
    return [item.path for item in items if isinstance(item, Subject)]


def skips(items: Iterable[Subject | Skipped]) -> dict[str, SkipReason]:
    return {item.path: item.reason for item in items if isinstance(item, Skipped)}


def test_every_file_in_sorted_order_with_posix_relative_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.py": "print(1)\n",
            "a/x.ts": "let x = 1;\n",
            "a.txt": "text\n",
            "a/b/c.go": "package c\n",
            "Z.rs": "fn main() {}\n",
            "empty": "",
        },
    )
    items = list(walk(tmp_path))
    assert paths(items) == ["Z.rs", "a.txt", "a/b/c.go", "a/x.ts", "b.py", "empty"]
    assert skips(items) == {}
    by_path = {item.path: item for item in items if isinstance(item, Subject)}
    assert by_path["a/b/c.go"].text == "package c\n"
    assert by_path["a/b/c.go"].kind is SubjectKind.FILE
    assert {p: s.language for p, s in by_path.items()} == {
        "Z.rs": "rust",
        "a.txt": None,
        "a/b/c.go": "go",
        "a/x.ts": "typescript",
        "b.py": "python",
        "empty": None,
    }


def test_a_file_root_is_named_by_its_name(tmp_path: Path) -> None:
    write(tmp_path, {"deep/tool.py": "x = 1\n"})
    items = list(walk(tmp_path / "deep" / "tool.py"))
    assert items == [Subject(path="tool.py", text="x = 1\n", language="python")]


def test_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        list(walk(tmp_path / "nope"))


def test_gitignore_at_every_level_with_negation(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/top.txt\n# a comment\n",
            "app.log": "x",
            "keep.log": "kept",
            "top.txt": "ignored at the top only",
            "build/out.js": "ignored folder",
            "src/top.txt": "kept: /top.txt is anchored to the root",
            "src/build": "a file named build: 'build/' matches folders only",
            "src/debug.log": "ignored by the root's *.log",
            "src/.gitignore": "secret.txt\n!important.log\n",
            "src/secret.txt": "ignored by the nested file",
            "src/important.log": "re-included by the nested negation",
            "src/deeper/secret.txt": "ignored: the nested pattern has no slash, so any depth",
            "other/secret.txt": "kept: the nested .gitignore does not reach here",
            "vendor/.gitignore": "*\n!.gitignore\n",
            "vendor/lib.js": "ignored",
            ".git/config": "[core]\n",
            ".git/HEAD": "ref: refs/heads/main\n",
            "sub/.git": "gitdir: ../.git/worktrees/sub\n",
        },
    )
    assert paths(walk(tmp_path)) == [
        ".gitignore",
        "keep.log",
        "other/secret.txt",
        "src/.gitignore",
        "src/build",
        "src/important.log",
        "src/top.txt",
        "vendor/.gitignore",
    ]


def test_an_ignored_folder_cannot_be_reincluded_from_inside(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "dist/\n",
            "dist/.gitignore": "!*\n",
            "dist/cli.js": "ignored, as git would",
        },
    )
    assert paths(walk(tmp_path)) == [".gitignore"]


def test_gitignore_can_be_turned_off_but_git_is_still_skipped(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "dist/\n", "dist/cli.js": "x", ".git/config": "[core]\n"})
    assert paths(walk(tmp_path, gitignore=False)) == [".gitignore", "dist/cli.js"]


def test_a_malformed_pattern_does_not_void_the_others(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "***/\n!\n*.log\n", "a.log": "x", "a.py": "y"})
    assert paths(walk(tmp_path)) == [".gitignore", "a.py"]


@pytest.mark.timeout(30)
def test_a_symlink_loop_ends_with_symlink_loop(tmp_path: Path) -> None:
    write(tmp_path, {"a/file.py": "x = 1\n"})
    (tmp_path / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "a" / "self").symlink_to(".", target_is_directory=True)
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "root").symlink_to(tmp_path, target_is_directory=True)
    items = list(walk(tmp_path))
    assert paths(items) == ["a/file.py"]
    assert skips(items) == {
        "a/b/root": SkipReason.SYMLINK_LOOP,
        "a/self": SkipReason.SYMLINK_LOOP,
        "a/up": SkipReason.SYMLINK_LOOP,
    }
    details = {item.path: item.detail for item in items if isinstance(item, Skipped)}
    assert set(details.values()) == {"links to a folder that contains it"}


@pytest.mark.timeout(30)
def test_mutually_linked_folders_terminate(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "to_y").symlink_to(tmp_path / "y", target_is_directory=True)
    (tmp_path / "y" / "to_x").symlink_to(tmp_path / "x", target_is_directory=True)
    write(tmp_path, {"x/a.txt": "a", "y/b.txt": "b"})
    items = list(walk(tmp_path))
    assert paths(items) == ["x/a.txt", "y/b.txt"]
    assert set(skips(items).values()) == {SkipReason.SYMLINK_LOOP}


def test_symlinks_inside_are_read_outside_are_not(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside, {"secret.key": "outside the root", "dir/x.py": "outside"})
    write(
        root,
        {"real/code.py": "inside = True\n", ".gitignore": "hidden/\n", "hidden/h.py": "h = 1\n"},
    )
    (root / "alias.py").symlink_to(root / "real" / "code.py")
    (root / "key").symlink_to(outside / "secret.key")
    (root / "ext").symlink_to(outside / "dir", target_is_directory=True)
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "again").symlink_to(root / "real", target_is_directory=True)
    (root / "peek").symlink_to(root / "hidden", target_is_directory=True)
    items = list(walk(root))
    subjects = {item.path: item for item in items if isinstance(item, Subject)}
    assert list(subjects) == [".gitignore", "alias.py", "peek/h.py", "real/code.py"]
    assert subjects["alias.py"].text == "inside = True\n"
    assert skips(items) == {
        "again": SkipReason.SYMLINK_LOOP,  # its target is walked as real/ already
        "dangling": SkipReason.UNREADABLE,
        "ext": SkipReason.SYMLINK_OUTSIDE,
        "key": SkipReason.SYMLINK_OUTSIDE,
    }


@pytest.mark.timeout(30)
def test_a_fifo_is_unreadable_and_does_not_block(tmp_path: Path) -> None:
    write(tmp_path, {"a.txt": "a", "z.txt": "z"})
    os.mkfifo(tmp_path / "pipe")
    items = list(walk(tmp_path))
    assert paths(items) == ["a.txt", "z.txt"]
    (record,) = [item for item in items if isinstance(item, Skipped)]
    assert record == Skipped("pipe", SkipReason.UNREADABLE, "not a regular file (FIFO)")
    # The records come in path order with the subjects.
    assert [item.path for item in items] == ["a.txt", "pipe", "z.txt"]


def _walk_as_nobody(root: Path) -> list[list[object]]:
    """Walk ``root`` in a forked child that has dropped root's privileges, which read anything."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            found = [
                [i.path, getattr(i, "reason", None), getattr(i, "detail", "")] for i in walk(root)
            ]
            os.write(writer, json.dumps(found).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    result: list[list[object]] = json.loads(output)
    return result


def test_permission_denied_is_reported_and_the_walk_goes_on() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        write(root, {"a.txt": "a", "locked.txt": "secret", "shut/x.txt": "x", "z.txt": "z"})
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "locked.txt").chmod(0o000)
        (root / "shut").chmod(0o000)
        if os.geteuid() == 0:
            items = _walk_as_nobody(root)
        else:
            items = [
                [i.path, getattr(i, "reason", None), getattr(i, "detail", "")] for i in walk(root)
            ]
        (root / "shut").chmod(0o755)
    assert items == [
        ["a.txt", None, ""],
        ["locked.txt", "unreadable", "Permission denied"],
        ["shut", "unreadable", "Permission denied"],
        ["z.txt", None, ""],
    ]


def test_binary_files_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "nul.bin": b"PK" + b"\x00" * 20 + b"text after",
            "control.dat": bytes(range(1, 32)) * 10,
            "ansi.log": "\x1b[31mred\x1b[0m\tok\r\n" * 20,
            "late_nul.txt": "a" * 9000 + "\x00",  # a NUL past the first 8 KiB does not count
        },
    )
    items = list(walk(tmp_path))
    assert skips(items) == {"control.dat": SkipReason.BINARY, "nul.bin": SkipReason.BINARY}
    assert paths(items) == ["ansi.log", "late_nul.txt"]


def test_a_huge_file_is_skipped_without_being_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:  # sparse: a 1 GiB file that costs no disk
        handle.truncate(1024 * MiB)
    write(tmp_path, {"small.txt": "s"})
    tracemalloc.start()
    try:
        items = list(walk(tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert skips(items) == {"huge.txt": SkipReason.TOO_LARGE}
    assert paths(items) == ["small.txt"]
    assert peak < 1 * MiB, peak


def test_the_size_limit_is_the_callers(tmp_path: Path) -> None:
    write(tmp_path, {"big.py": "x = 1\n" * 1000, "ok.py": "y = 2\n"})
    items = list(walk(tmp_path, limits=Limits(max_file_bytes=4096)))
    assert skips(items) == {"big.py": SkipReason.TOO_LARGE}
    assert paths(items) == ["ok.py"]


def test_invalid_utf8_is_scanned_with_replacement_characters(tmp_path: Path) -> None:
    write(tmp_path, {"latin1.py": b"name = 'Jos\xe9'\nkey = 'AKIA1234'\n"})
    (subject,) = list(walk(tmp_path))
    assert isinstance(subject, Subject)
    assert subject.text == "name = 'Jos\ufffd'\nkey = 'AKIA1234'\n"


def test_a_utf8_bom_is_dropped(tmp_path: Path) -> None:
    write(tmp_path, {"bom.cs": b"\xef\xbb\xbfclass A {}\n"})
    (subject,) = list(walk(tmp_path))
    assert isinstance(subject, Subject)
    assert subject.text == "class A {}\n"
    assert subject.language == "csharp"


def test_inline_source_map_in_a_js_file(tmp_path: Path) -> None:
    original = "export const key = 'proprietary';\nexport function f() {}\n"
    document = {"version": 3, "sources": ["webpack:///./src/key.ts"], "sourcesContent": [original]}
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    js = f"var k='proprietary';\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,{encoded}\n"
    write(tmp_path, {"dist/app.min.js": js})
    items = list(walk(tmp_path))
    subjects = {item.path: item for item in items if isinstance(item, Subject)}
    assert list(subjects) == ["dist/app.min.js", "dist/app.min.js!src/key.ts"]
    assert subjects["dist/app.min.js"].kind is SubjectKind.FILE
    assert subjects["dist/app.min.js!src/key.ts"].text == original
    assert subjects["dist/app.min.js!src/key.ts"].kind is SubjectKind.SOURCE
    assert subjects["dist/app.min.js!src/key.ts"].language == "typescript"


def test_undecodable_inline_map_is_reported(tmp_path: Path) -> None:
    write(tmp_path, {"a.js": "x();\n//# sourceMappingURL=data:application/json;base64,a\n"})
    items = list(walk(tmp_path))
    assert paths(items) == ["a.js"]
    assert skips(items) == {"a.js": SkipReason.CORRUPT_ARCHIVE}


def test_source_map_files_yield_their_sources(tmp_path: Path) -> None:
    document = {"version": 3, "sources": ["../src/a.py"], "sourcesContent": ["a = 1\n"]}
    write(
        tmp_path,
        {
            "dist/a.js.map": json.dumps(document),
            "broken.js.map": "{ not json",
            "world.map": "MAP\n  NAME 'world'\nEND\n",  # another format that uses .map
        },
    )
    items = list(walk(tmp_path))
    assert paths(items) == ["dist/a.js.map!src/a.py", "world.map"]
    assert skips(items) == {"broken.js.map": SkipReason.CORRUPT_ARCHIVE}


def test_archives_on_disk_yield_their_members_only(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        data = b"SECRET = 'x'\n"
        info = tarfile.TarInfo("package/index.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    write(
        tmp_path,
        {"pkg.tgz": buf.getvalue(), "README.md": "# readme\n", "broken.zip": b"PK\x03\x04xx"},
    )
    items = list(walk(tmp_path))
    assert paths(items) == ["README.md", "pkg.tgz!package/index.py"]
    assert skips(items) == {"broken.zip": SkipReason.CORRUPT_ARCHIVE}


def test_archives_get_their_own_size_limit(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:  # uncompressed: 10 KiB and more
        info = tarfile.TarInfo("a.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    write(tmp_path, {"a.tar": buf.getvalue()})
    limits = Limits(max_file_bytes=1024, max_archive_bytes=64 * 1024)
    assert paths(walk(tmp_path, limits=limits)) == ["a.tar!a.txt"]
    limits = Limits(max_file_bytes=64 * 1024, max_archive_bytes=1024)
    assert skips(walk(tmp_path, limits=limits)) == {"a.tar": SkipReason.TOO_LARGE}


def test_source_maps_get_the_container_size_limit(tmp_path: Path) -> None:
    # Published maps are often far larger than any source file (tens of MiB): they are read
    # up to the archive limit, while a text file of the same size is too large.
    body = "x = 1\n" * 1000
    document = {"version": 3, "sources": ["src/big.py"], "sourcesContent": [body]}
    write(tmp_path, {"dist/a.js.map": json.dumps(document), "big.py": body})
    items = list(walk(tmp_path, limits=Limits(max_file_bytes=4096, max_archive_bytes=MiB)))
    assert paths(items) == ["dist/a.js.map!src/big.py"]
    assert skips(items) == {"big.py": SkipReason.TOO_LARGE}


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a.py", "python"),
        ("x/y/Z.JAVA", "java"),
        ("a.tsx", "tsx"),
        ("a.jsx", "javascript"),
        ("a.mjs", "javascript"),
        ("a.hpp", "cpp"),
        ("a.h", "c"),
        ("a.cs", "csharp"),
        ("a.kts", "kotlin"),
        ("a.rb", "ruby"),
        ("a.swift", "swift"),
        ("a.php", "php"),
        ("pkg.tgz!src/a.ts", "typescript"),
        ("a.zip!b", None),
        ("Makefile", None),
        (".bashrc", None),
        ("notes.txt", None),
        ("dir.py/file", None),
    ],
)
def test_language_of(path: str, language: str | None) -> None:
    assert language_of(path) == language
