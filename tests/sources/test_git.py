"""Git sources against real repositories built with the git command line in a temporary directory.

Expected line numbers come from how each file was built, never from the code under test; blob
ids are recomputed here with hashlib.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.errors import UsageError
from custodes.sources.git import (
    DEFAULT_MAX_BYTES,
    BlobSighting,
    diff_base_hunks,
    history_blobs,
    range_hunks,
    staged_hunks,
)
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _isolated_git() -> Iterator[None]:
    """Neither the user's git configuration nor a surrounding hook's GIT_* variables apply."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("GIT_"):
                mp.delenv(name)
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for role in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{role}_NAME", "Test Author")
            mp.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
        yield


class Repo:
    def __init__(self, root: Path, *, bare: bool = False) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", *(["--bare"] if bare else []))
        self.git("symbolic-ref", "HEAD", "refs/heads/main")
        self.git("config", "user.name", "Test Author")
        self.git("config", "user.email", "test@example.invalid")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {args}: {done.stderr.decode()}")
        return done.stdout.decode()

    def write(self, name: str, content: str | bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(self, message: str = "change", *, add: bool = True) -> str:
        if add:
            self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "--no-verify", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def lines(count: int, prefix: str = "line") -> list[str]:
    return [f"{prefix} {i}" for i in range(1, count + 1)]


def text(rows: list[str]) -> str:
    return "".join(row + "\n" for row in rows)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def by_path(items: list[Subject | Skipped]) -> dict[str, Subject | Skipped]:
    paths = [item.path for item in items]
    assert len(paths) == len(set(paths)), f"a path came twice: {paths}"
    return {item.path: item for item in items}


def added(item: Subject | Skipped) -> list[tuple[int, str]]:
    """The (new-file line number, text) pairs of a hunk subject."""
    assert isinstance(item, Subject), item
    assert item.kind is SubjectKind.HUNK
    assert item.line_numbers is not None
    rows = item.text.split("\n")
    assert len(rows) == len(item.line_numbers)
    return list(zip(item.line_numbers, rows, strict=True))


# -- ranges ---------------------------------------------------------------------------------------


def test_hunks_in_the_middle_carry_new_file_line_numbers(repo: Repo) -> None:
    old = lines(20)
    repo.write("src/app.py", text(old))
    base = repo.commit()
    new = list(old)
    new[4] = "changed five"  # line 5
    new[12:12] = ["new a", "new b"]  # become lines 13 and 14
    del new[19]  # old line 18, after the insert: removed, adds nothing
    repo.write("src/app.py", text(new))
    head = repo.commit()

    items = list(range_hunks(repo.root, f"{base}..{head}"))

    assert len(items) == 1
    assert items[0].path == "src/app.py"
    assert added(items[0]) == [(5, "changed five"), (13, "new a"), (14, "new b")]
    for number, row in added(items[0]):
        assert new[number - 1] == row


def test_several_hunks_first_and_last_line_without_final_newline(repo: Repo) -> None:
    repo.write("f.txt", text(lines(10)))
    repo.commit()
    new = ["top", *lines(10)]  # insert before line 1
    new[6] = "middle"  # replaces "line 6" (new line 7)
    repo.write("f.txt", "\n".join([*new, "tail"]))  # append a last line with no newline
    repo.commit()

    [item] = range_hunks(repo.root, "HEAD~1..HEAD")

    assert added(item) == [(1, "top"), (7, "middle"), (12, "tail")]


def test_added_modified_deleted_and_renamed_files(repo: Repo) -> None:
    repo.write("keep.txt", text(lines(5)))
    repo.write("gone.txt", text(lines(3, "gone")))
    repo.write("old name.py", text(lines(10, "code")))
    repo.write("moved.txt", text(lines(8, "moved")))
    repo.commit()
    repo.write("keep.txt", text([*lines(5), "appended"]))
    (repo.root / "gone.txt").unlink()
    renamed = lines(10, "code")
    renamed[2] = "edited three"
    (repo.root / "old name.py").unlink()
    repo.write("new dir/new name.py", text(renamed))
    (repo.root / "moved.txt").rename(repo.root / "moved-again.txt")  # pure rename
    repo.write("fresh.md", "# title\n\nbody\n")
    repo.commit()

    items = by_path(list(range_hunks(repo.root, "HEAD~1..HEAD")))

    assert set(items) == {"keep.txt", "new dir/new name.py", "fresh.md"}
    assert added(items["keep.txt"]) == [(6, "appended")]
    assert added(items["new dir/new name.py"]) == [(3, "edited three")]
    assert added(items["fresh.md"]) == [(1, "# title"), (2, ""), (3, "body")]


def test_only_removals_give_nothing(repo: Repo) -> None:
    repo.write("f.txt", text(lines(6)))
    repo.commit()
    repo.write("f.txt", text(lines(6)[:3]))
    repo.commit()

    assert list(range_hunks(repo.root, "HEAD~1..HEAD")) == []


NASTY_NAMES = [
    "with space.txt",
    "ünïcödé/fïlé.py",
    "日本語.txt",
    "new\nline.txt",
    "tab\there.txt",
    'quote"d.txt',
    "back\\slash.txt",
    " leading space",
    "trailing space ",
    "-dash.txt",
    "a b c/ d e",
    "ctrl\x01\x7f.txt",
    "escapes\a\b\f\v\r\x1b.txt",
]


def test_file_names_with_spaces_unicode_newlines_and_quotes(repo: Repo) -> None:
    repo.write("seed", "seed\n")
    repo.commit()
    for i, name in enumerate(NASTY_NAMES):
        repo.write(name, f"first {i}\n")
    repo.commit()
    for i, name in enumerate(NASTY_NAMES):
        repo.write(name, f"first {i}\nsecond {i}\n")
    repo.commit()
    (repo.root / NASTY_NAMES[0]).rename(repo.root / "renamed\nwith ünïcödé.txt")
    repo.write("renamed\nwith ünïcödé.txt", "first 0\nsecond 0\nthird\n")
    repo.commit()

    adds = by_path(list(range_hunks(repo.root, "HEAD~3..HEAD~2")))
    edits = by_path(list(range_hunks(repo.root, "HEAD~2..HEAD~1")))
    rename = list(range_hunks(repo.root, "HEAD"))

    assert set(adds) == set(NASTY_NAMES)
    assert set(edits) == set(NASTY_NAMES)
    for i, name in enumerate(NASTY_NAMES):
        assert added(adds[name]) == [(1, f"first {i}")]
        assert added(edits[name]) == [(2, f"second {i}")]
    assert [(item.path, added(item)) for item in rename] == [
        ("renamed\nwith ünïcödé.txt", [(3, "third")])
    ]


def test_binary_files_are_skipped(repo: Repo) -> None:
    repo.write("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    repo.write("data.bin", b"\0" * 10)
    repo.commit()
    repo.write("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR changed")
    repo.write("late.bin", b"text at first\0then binary")
    repo.commit()

    first = by_path(list(range_hunks(repo.root, "HEAD~1")))
    second = by_path(list(range_hunks(repo.root, "HEAD")))

    assert first == {
        "image.png": Skipped("image.png", SkipReason.BINARY),
        "data.bin": Skipped("data.bin", SkipReason.BINARY),
    }
    assert second == {
        "image.png": Skipped("image.png", SkipReason.BINARY),
        "late.bin": Skipped("late.bin", SkipReason.BINARY),
    }


def test_gitattributes_cannot_hide_text_as_binary(repo: Repo) -> None:
    repo.write(".gitattributes", "*.py binary\n*.js -diff\n")
    repo.write("leak.py", text(lines(4, "py")))
    repo.commit()
    new = lines(4, "py")
    new[1] = "secret = 'AKIA…'"
    repo.write("leak.py", text(new))
    repo.write("added.js", "const a = 1;\nconst b = 2;\n")
    repo.commit()

    items = by_path(list(range_hunks(repo.root, "HEAD")))

    assert set(items) == {"leak.py", "added.js"}
    assert added(items["leak.py"]) == [(2, "secret = 'AKIA…'")]
    assert added(items["added.js"]) == [(1, "const a = 1;"), (2, "const b = 2;")]


def test_binary_file_that_becomes_text_is_read(repo: Repo) -> None:
    repo.write("blob.dat", b"binary\0junk\nkeep\n")
    repo.commit()
    repo.write("blob.dat", b"keep\nnow text\n")
    repo.commit()

    [item] = range_hunks(repo.root, "HEAD")

    assert item.path == "blob.dat"
    reported = added(item)
    assert (2, "now text") in reported
    assert all(["keep", "now text"][n - 1] == row for n, row in reported)


def test_forced_text_recheck_respects_max_bytes(repo: Repo) -> None:
    repo.write(".gitattributes", "*.txt -diff\n")
    repo.write("big.txt", "x" * 100 + "\n")
    repo.commit()

    items = by_path(list(range_hunks(repo.root, "HEAD", max_bytes=50)))

    assert added(items[".gitattributes"]) == [(1, "*.txt -diff")]
    item = items["big.txt"]
    assert isinstance(item, Skipped)
    assert (item.path, item.reason) == ("big.txt", SkipReason.TOO_LARGE)
    assert "101 bytes" in item.detail


def test_crlf_and_undecodable_bytes_are_kept_line_for_line(repo: Repo) -> None:
    repo.write("win.txt", b"one\r\ntwo\r\n\xff\xfe bad\r\n")
    repo.commit()

    [item] = range_hunks(repo.root, "HEAD")

    assert added(item) == [(1, "one\r"), (2, "two\r"), (3, "\ufffd\ufffd bad\r")]


def test_submodule_changes_are_ignored(repo: Repo) -> None:
    repo.write("a.txt", "a\n")
    first = repo.commit()
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{first},vendor/lib")
    repo.write("b.txt", "b\n")
    repo.git("add", "b.txt")
    repo.commit(add=False)
    repo.git(
        "update-index", "--cacheinfo", f"160000,{repo.git('rev-parse', 'HEAD').strip()},vendor/lib"
    )
    repo.commit(add=False)

    assert [item.path for item in range_hunks(repo.root, "HEAD~1")] == ["b.txt"]
    assert list(range_hunks(repo.root, "HEAD")) == []
    assert [blob.path for _, blob in history_blobs(repo.root)] == ["a.txt", "b.txt"]


def test_symlink_replaced_by_a_file_is_read(repo: Repo) -> None:
    os.symlink("target.txt", repo.root / "link")
    repo.write("target.txt", "t\n")
    repo.commit()
    (repo.root / "link").unlink()
    repo.write("link", "now a file\nwith two lines\n")
    repo.commit()

    [item] = range_hunks(repo.root, "HEAD")

    assert item.path == "link"
    assert added(item) == [(1, "now a file"), (2, "with two lines")]


def test_single_commit_root_commit_and_merge(repo: Repo) -> None:
    repo.write("a.txt", "a1\na2\n")
    root = repo.commit()
    repo.git("checkout", "-q", "-b", "side")
    repo.write("side.txt", "from side\n")
    repo.commit()
    repo.git("checkout", "-q", "main")
    repo.write("a.txt", "a1\na2\na3\n")
    repo.commit()
    repo.git("merge", "-q", "--no-edit", "side")

    assert [added(i) for i in range_hunks(repo.root, root)] == [[(1, "a1"), (2, "a2")]]
    assert [added(i) for i in range_hunks(repo.root, f"{root}^!")] == [[(1, "a1"), (2, "a2")]]
    # A merge compared with its first parent: what the side branch brought in.
    merge = [(i.path, added(i)) for i in range_hunks(repo.root, "HEAD")]
    assert merge == [("side.txt", [(1, "from side")])]
    assert [i.path for i in range_hunks(repo.root, "HEAD^!")] == ["side.txt"]


def test_three_dots_and_diff_base_use_the_merge_base(repo: Repo) -> None:
    repo.write("shared.txt", text(lines(3)))
    repo.commit()
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("feature.txt", "feature work\n")
    repo.commit()
    repo.git("checkout", "-q", "main")
    repo.write("shared.txt", text(["main edit", *lines(3)[1:]]))
    repo.commit()
    repo.git("checkout", "-q", "feature")

    three = [(i.path, added(i)) for i in range_hunks(repo.root, "main...feature")]
    base = [(i.path, added(i)) for i in diff_base_hunks(repo.root, "main")]
    two = by_path(list(range_hunks(repo.root, "main..feature")))

    assert three == [("feature.txt", [(1, "feature work")])]
    assert base == three
    # Two dots compare the tips: main's edit shows up reversed, as "line 1" added back.
    assert added(two["shared.txt"]) == [(1, "line 1")]
    # An empty side means HEAD.
    assert [i.path for i in range_hunks(repo.root, "main...")] == ["feature.txt"]


def test_hostile_configuration_changes_nothing(repo: Repo) -> None:
    old = lines(12)
    repo.write("dir/f.py", text(old))
    repo.write("ü name.txt", "x\n")
    repo.commit()
    new = list(old)
    new[2] = "three"
    new[5] = "six"
    repo.write("dir/f.py", text(new))
    repo.write("ü name.txt", "x\ny\n")
    repo.commit()
    expected = {"dir/f.py": [(3, "three"), (6, "six")], "ü name.txt": [(2, "y")]}
    for key, value in [
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("color.ui", "always"),
        ("color.diff", "always"),
        ("diff.external", "echo hijacked"),
        ("diff.relative", "true"),
        ("diff.interHunkContext", "10"),
        ("diff.context", "5"),
        ("core.quotePath", "false"),
        ("diff.submodule", "log"),
        ("diff.renames", "false"),
        ("diff.algorithm", "patience"),
        ("diff.suppressBlankEmpty", "true"),
        ("diff.py.textconv", "tr a-z A-Z"),
        ("log.showSignature", "true"),
    ]:
        repo.git("config", key, value)
    repo.write(".git/info/attributes", "*.py diff=py\n")

    items = by_path(list(range_hunks(repo.root / "dir", "HEAD")))

    assert {path: added(item) for path, item in items.items()} == expected
    assert len(list(history_blobs(repo.root / "dir"))) == 4


# -- staged ---------------------------------------------------------------------------------------


def test_staged_in_a_repository_without_commits(repo: Repo) -> None:
    repo.write("a b/first.py", "one\ntwo\n")
    repo.write("second.txt", "only\n")
    repo.write("pic.bin", b"\0\1\2")
    repo.git("add", "-A")
    repo.write("second.txt", "only\nunstaged line\n")  # not staged: must not show
    repo.write("untracked.txt", "u\n")

    items = by_path(list(staged_hunks(repo.root)))

    assert set(items) == {"a b/first.py", "second.txt", "pic.bin"}
    assert added(items["a b/first.py"]) == [(1, "one"), (2, "two")]
    assert added(items["second.txt"]) == [(1, "only")]
    assert items["pic.bin"] == Skipped("pic.bin", SkipReason.BINARY)


def test_staged_after_commits_only_the_index(repo: Repo) -> None:
    repo.write("f.txt", text(lines(5)))
    repo.commit()
    repo.write("f.txt", text([*lines(5)[:2], "staged", *lines(5)[2:]]))
    repo.git("add", "f.txt")
    repo.write("f.txt", text(["unstaged", *lines(5)[:2], "staged", *lines(5)[2:]]))

    [item] = staged_hunks(repo.root)

    assert added(item) == [(3, "staged")]


def test_staged_follows_git_index_file(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("f.txt", "base\n")
    repo.commit()
    repo.write("other.txt", "in the other index\n")
    alternate = repo.root / ".git" / "alternate-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(alternate)}
    subprocess.run(["git", "-C", str(repo.root), "read-tree", "HEAD"], env=env, check=True)
    subprocess.run(["git", "-C", str(repo.root), "add", "other.txt"], env=env, check=True)

    assert list(staged_hunks(repo.root)) == []
    monkeypatch.setenv("GIT_INDEX_FILE", str(alternate))
    assert [i.path for i in staged_hunks(repo.root)] == ["other.txt"]


# -- errors ---------------------------------------------------------------------------------------


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for call in (
        lambda p: range_hunks(p, "HEAD"),
        staged_hunks,
        lambda p: diff_base_hunks(p, "main"),
        history_blobs,
    ):
        for where in (plain, tmp_path / "missing"):
            with pytest.raises(UsageError, match="not a git repository") as caught:
                call(where)  # raises on the call, before any iteration
            assert str(where) in str(caught.value)
            assert caught.value.hint


def test_bad_revisions(repo: Repo) -> None:
    repo.write("f.txt", "x\n")
    repo.commit()
    for spec in ("nope", "nope..HEAD", "HEAD..nope", "HEAD~5", "HEAD...nope", "-p", "--output=x"):
        with pytest.raises(UsageError) as caught:
            range_hunks(repo.root, spec)
        assert caught.value.hint
        assert str(repo.root) in caught.value.message
    with pytest.raises(UsageError, match="nope"):
        diff_base_hunks(repo.root, "nope")
    for rev in ("nope", "--output=x", "HEAD..nope"):
        with pytest.raises(UsageError):
            history_blobs(repo.root, rev=rev)
    assert not (repo.root / "x").exists()


def test_no_common_ancestor(repo: Repo) -> None:
    repo.write("f.txt", "x\n")
    repo.commit()
    repo.git("checkout", "-q", "--orphan", "lonely")
    repo.write("g.txt", "y\n")
    repo.commit()

    with pytest.raises(UsageError, match="no common ancestor"):
        range_hunks(repo.root, "main...lonely")
    with pytest.raises(UsageError, match="no common ancestor"):
        diff_base_hunks(repo.root, "main")


def test_unborn_head_and_bare_repository(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no commits"):
        diff_base_hunks(repo.root, "HEAD")
    bare = Repo(tmp_path / "bare.git", bare=True)
    with pytest.raises(UsageError, match="bare"):
        staged_hunks(bare.root)
    assert list(history_blobs(bare.root)) == []
    assert list(history_blobs(repo.root)) == []


# -- history --------------------------------------------------------------------------------------


def history(
    repo: Repo, *, rev: str = "--all", max_bytes: int = DEFAULT_MAX_BYTES
) -> list[tuple[Subject | Skipped, BlobSighting]]:
    return list(history_blobs(repo.root, rev=rev, max_bytes=max_bytes))


def test_history_yields_each_blob_once_with_its_first_sighting(repo: Repo) -> None:
    repo.write("a.txt", "same content\n")
    first = repo.commit()
    repo.write("copy/b.txt", "same content\n")
    repo.write("a.txt", "same content\n")  # unchanged
    repo.commit()
    repo.write("c.txt", "same content\n")
    repo.write("d.txt", "other\n")
    third = repo.commit()

    found = history(repo)

    assert [blob for _, blob in found] == [
        BlobSighting(blob_id(b"same content\n"), first, "a.txt"),
        BlobSighting(blob_id(b"other\n"), third, "d.txt"),
    ]
    assert [item for item, _ in found] == [
        Subject("a.txt", "same content\n"),
        Subject("d.txt", "other\n"),
    ]


def test_history_finds_deleted_and_overwritten_content(repo: Repo) -> None:
    repo.write("secret.env", "TOKEN=abc\n")
    repo.write("config.py", "v = 1\n")
    first = repo.commit()
    (repo.root / "secret.env").unlink()
    repo.write("config.py", "v = 2\n")
    second = repo.commit()

    found = {blob.blob: (item, blob) for item, blob in history(repo)}

    assert found[blob_id(b"TOKEN=abc\n")] == (
        Subject("secret.env", "TOKEN=abc\n"),
        BlobSighting(blob_id(b"TOKEN=abc\n"), first, "secret.env"),
    )
    assert found[blob_id(b"v = 1\n")][1].commit == first
    assert found[blob_id(b"v = 2\n")][1].commit == second
    assert len(found) == 3


def test_history_covers_every_ref_and_merge_resolutions(repo: Repo) -> None:
    repo.write("f.txt", "base\n")
    repo.commit()
    repo.git("checkout", "-q", "-b", "side")
    repo.write("f.txt", "side\n")
    repo.commit()
    repo.git("checkout", "-q", "-b", "unmerged", "main")
    repo.write("hidden.txt", "only on a branch\n")
    repo.commit()
    repo.git("checkout", "-q", "main")
    repo.write("f.txt", "main\n")
    repo.commit()
    repo.git("merge", "-q", "--no-edit", "side", check=False)  # conflicts
    repo.write("f.txt", "resolved by hand\n")
    merge = repo.commit("merge")

    everything = {blob.blob: blob for _, blob in history(repo)}
    main_only = {blob.blob for _, blob in history(repo, rev="main")}

    assert everything[blob_id(b"resolved by hand\n")] == BlobSighting(
        blob_id(b"resolved by hand\n"), merge, "f.txt"
    )
    assert blob_id(b"only on a branch\n") in everything
    assert blob_id(b"only on a branch\n") not in main_only
    assert blob_id(b"resolved by hand\n") in main_only
    expected = {b"base\n", b"side\n", b"main\n", b"resolved by hand\n", b"only on a branch\n"}
    assert set(everything) == {blob_id(data) for data in expected}


def test_history_skips_binary_and_too_large_blobs(repo: Repo) -> None:
    repo.write("ten.txt", "123456789\n")  # exactly 10 bytes: read
    repo.write("eleven.txt", "1234567890\n")  # 11 bytes: too large
    repo.write("bin.dat", b"ab\0cd")
    repo.write("late-nul.txt", b"a" * 9000 + b"\0")  # NUL beyond the first 8 KiB: text
    repo.write("mid-nul.txt", b"a" * 8000 + b"\0")  # NUL within the first 8 KiB: binary
    repo.commit()

    found = {item.path: item for item, _ in history(repo, max_bytes=10)}
    wide = {item.path: item for item, _ in history(repo)}

    assert found["ten.txt"] == Subject("ten.txt", "123456789\n")
    eleven = found["eleven.txt"]
    assert isinstance(eleven, Skipped)
    assert (eleven.path, eleven.reason) == ("eleven.txt", SkipReason.TOO_LARGE)
    assert "11 bytes" in eleven.detail
    assert found["bin.dat"] == Skipped("bin.dat", SkipReason.BINARY)
    assert isinstance(found["late-nul.txt"], Skipped)
    assert wide["late-nul.txt"] == Subject("late-nul.txt", "a" * 9000 + "\0")
    assert wide["mid-nul.txt"] == Skipped("mid-nul.txt", SkipReason.BINARY)
    assert wide["eleven.txt"] == Subject("eleven.txt", "1234567890\n")


def test_history_with_odd_names_and_ranges(repo: Repo) -> None:
    repo.write("seed", "seed\n")
    first = repo.commit()
    for i, name in enumerate(NASTY_NAMES):
        repo.write(name, f"content {i}\n")
    second = repo.commit()

    found = {blob.path: (item, blob) for item, blob in history(repo, rev=f"{first}..HEAD")}

    assert set(found) == set(NASTY_NAMES)
    for i, name in enumerate(NASTY_NAMES):
        item, blob = found[name]
        assert item == Subject(name, f"content {i}\n")
        assert blob == BlobSighting(blob_id(f"content {i}\n".encode()), second, name)


def test_history_can_stop_early(repo: Repo) -> None:
    for i in range(5):
        repo.write(f"f{i}.txt", f"{i}\n")
    repo.commit()

    iterator = history_blobs(repo.root)
    next(iterator)
    assert isinstance(iterator, Generator)
    iterator.close()  # the cat-file process goes with it


# -- property: reported lines are exactly new-file lines -------------------------------------------

ROWS = st.lists(
    st.sampled_from(["a", "b", "c", "", "  indented", "é ü", "tab\tx", "cr\r"]), max_size=25
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=ROWS,
    new=ROWS,
    old_eol=st.booleans(),
    new_eol=st.booleans(),
    extra=st.lists(
        st.text(st.characters(exclude_characters="\n\0", exclude_categories=["Cs"]), max_size=8),
        max_size=3,
    ),
    positions=st.lists(st.integers(0, 30), max_size=3),
)
def test_reported_lines_are_new_file_lines(
    tmp_path_factory: pytest.TempPathFactory,
    old: list[str],
    new: list[str],
    old_eol: bool,
    new_eol: bool,
    extra: list[str],
    positions: list[int],
) -> None:
    # Lines of arbitrary text, which the old file never has, inserted at random places.
    new = list(new)
    for row, at in zip(extra, positions, strict=False):
        new.insert(min(at, len(new)), row)
    property_repo = _property_repo(tmp_path_factory)
    property_repo.write("f.txt", _join(old, old_eol))
    property_repo.commit()
    property_repo.write("f.txt", _join(new, new_eol))
    property_repo.commit()
    new_rows = _join(new, new_eol).split("\n")
    if new_rows and new_rows[-1] == "":
        new_rows.pop()

    items = list(range_hunks(property_repo.root, "HEAD~1..HEAD"))

    assert len(items) <= 1
    reported = added(items[0]) if items else []
    assert all(item.path == "f.txt" for item in items)
    numbers = [n for n, _ in reported]
    assert numbers == sorted(set(numbers))
    for number, row in reported:
        assert 1 <= number <= len(new_rows)
        assert new_rows[number - 1] == row
    old_texts = set(old)
    for number, row in enumerate(new_rows, start=1):
        if row not in old_texts:
            assert (number, row) in reported
    # What is not reported is unchanged: the old file's lines, in order.
    kept = [row for number, row in enumerate(new_rows, start=1) if number not in set(numbers)]
    remaining = iter(old)
    assert all(any(row == candidate for candidate in remaining) for row in kept)


_PROPERTY_REPOS: dict[int, Repo] = {}


def _property_repo(factory: pytest.TempPathFactory) -> Repo:
    # One repository for all examples: each example adds two commits on top.
    key = id(factory)
    if key not in _PROPERTY_REPOS:
        _PROPERTY_REPOS[key] = Repo(factory.mktemp("property"))
    return _PROPERTY_REPOS[key]


def _join(rows: list[str], eol: bool) -> str:
    if not rows:
        return ""
    return "\n".join(rows) + ("\n" if eol else "")
