"""The provenance index store: collections, lookups, document frequency, replacement, atomicity,
and building a collection from real folders, git working trees and npm tarballs."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import subprocess
import sysconfig
import tarfile
from array import array
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import custodes.fingerprint.index as index_module
from custodes.errors import CollectionNotFound, FingerprintIndexError, UsageError
from custodes.fingerprint.index import Columns, Index, Mode, add_paths, columns_of
from custodes.fingerprint.winnow import FINGERPRINT_VERSION, fingerprint
from custodes.subject import SkipReason

STDLIB = Path(sysconfig.get_paths()["stdlib"])
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _columns(hashes: list[int], *, layer: int = 1, first_line: int = 1) -> Columns:
    n = len(hashes)
    return Columns(
        array("q", hashes),
        array("B", [layer] * n),
        array("l", range(n)),
        array("l", (first_line + i for i in range(n))),
        array("l", (first_line + i + 2 for i in range(n))),
    )


def _add(idx: Index, name: str, files: dict[str, list[int]], **kw: object) -> None:
    with idx.writer(name, **kw) as writer:  # type: ignore[arg-type]
        for path, hashes in files.items():
            writer.add(
                path,
                lines=len(hashes) + 2,
                tokens=10 * len(hashes),
                sha256=hashlib.sha256(repr(hashes).encode()).hexdigest(),
                columns=_columns(hashes),
            )


@pytest.fixture
def idx(tmp_path: Path) -> Index:
    return Index.open(tmp_path / "sub" / "index.db", create=True)


def test_a_collection_reports_its_totals(idx: Index) -> None:
    _add(idx, "leak", {"a.ts": [1, 2, 3], "b/c.ts": [4, 5]})
    (c,) = idx.collections()
    assert (c.name, c.mode, c.files, c.lines, c.fingerprints) == ("leak", Mode.DENY, 2, 9, 5)
    assert c.fingerprint_version == FINGERPRINT_VERSION
    assert RFC3339.match(c.created)
    _add(idx, "ours", {"x.py": [9]}, mode=Mode.WARN)
    assert [(c.name, c.mode) for c in idx.collections()] == [
        ("leak", Mode.DENY),
        ("ours", Mode.WARN),
    ]


def test_lookup_returns_every_posting_with_its_line_map(idx: Index) -> None:
    _add(idx, "leak", {"a.ts": [10, 20, 30]})
    postings = sorted(idx.lookup([20, 30, 99], max_files=5))
    (leak,) = idx.collections()
    (file_id,) = {p[2] for p in postings}
    # (hash, collection, file, layer, position, start line, end line)
    assert postings == [(20, leak.id, file_id, 1, 1, 2, 4), (30, leak.id, file_id, 1, 2, 3, 5)]
    (source,) = idx.files({file_id}).values()
    assert (source.path, source.lines) == ("a.ts", 5)


def test_hashes_in_more_than_max_files_are_boilerplate(idx: Index) -> None:
    _add(idx, "leak", {"a": [7, 1], "b": [7, 2], "c": [7, 3]})
    _add(idx, "other", {"z": [7]})
    ids = {c.name: c.id for c in idx.collections()}
    found = {(p[0], p[1]) for p in idx.lookup([7, 1], max_files=2)}
    # 7 is in three files of "leak" (dropped there) but one file of "other" (kept there).
    assert found == {(1, ids["leak"]), (7, ids["other"])}
    assert len(idx.lookup([7], max_files=3)) == 4
    assert idx.common([7, 1], max_files=2) == {(7, ids["leak"])}


files_strategy = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3),
    st.lists(st.integers(0, 40), max_size=12),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=files_strategy, max_files=st.integers(1, 4), probe=st.sets(st.integers(0, 45)))
def test_lookup_agrees_with_a_reference(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, list[int]],
    max_files: int,
    probe: set[int],
) -> None:
    idx = Index.open(tmp_path_factory.mktemp("prop") / "i.db", create=True)
    _add(idx, "c", files)
    # The reference: which files each hash is in, straight from the input.
    holders: dict[int, set[str]] = defaultdict(set)
    for path, hashes in files.items():
        for h in hashes:
            holders[h].add(path)
    expected = sorted(
        (h, path, pos)
        for path, hashes in files.items()
        for pos, h in enumerate(hashes)
        if h in probe and len(holders[h]) <= max_files
    )
    by_id = {v.id: v.path for v in idx.files(range(1, 100)).values()}
    got = sorted((p[0], by_id[p[2]], p[4]) for p in idx.lookup(probe, max_files=max_files))
    assert got == expected
    common = {h for h, _ in idx.common(probe, max_files=max_files)}
    assert common == {h for h in probe if len(holders[h]) > max_files}
    idx.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=files_strategy,
    second=files_strategy,
    max_files=st.integers(1, 4),
    probe=st.sets(st.integers(0, 45)),
)
def test_postings_for_a_batch_agree_with_a_reference(
    tmp_path_factory: pytest.TempPathFactory,
    first: dict[str, list[int]],
    second: dict[str, list[int]],
    max_files: int,
    probe: set[int],
) -> None:
    """The batched lookup a scan makes: by hash, every posting outside the collections where
    the hash is boilerplate, with the number of that collection's files holding it."""
    idx = Index.open(tmp_path_factory.mktemp("batch") / "i.db", create=True)
    _add(idx, "one", first)
    _add(idx, "two", second)
    ids = {c.name: c.id for c in idx.collections()}
    expected: set[tuple[int, str, str, int, int]] = set()
    common: dict[str, set[int]] = {}
    for name, files in (("one", first), ("two", second)):
        holders: dict[int, set[str]] = defaultdict(set)
        for path, hashes in files.items():
            for h in hashes:
                holders[h].add(path)
        common[name] = {h for h, paths in holders.items() if len(paths) > max_files}
        expected |= {
            (h, name, path, pos, len(holders[h]))
            for path, hashes in files.items()
            for pos, h in enumerate(hashes)
            if h in probe and len(holders[h]) <= max_files
        }
    names = {v: k for k, v in ids.items()}
    paths = {v.id: v.path for v in idx.files(range(1, 100)).values()}
    found = idx.postings_for(probe, max_files=max_files)
    got = {
        (row[0], names[row[1]], paths[row[2]], row[4], row[7])
        for h, rows in found.items()
        for row in rows
        if row[0] == h
    }
    assert got == expected
    assert all(rows for rows in found.values())
    assert {names[c]: set(hs) for c, hs in idx.boilerplate(max_files).items()} == {
        name: hashes for name, hashes in common.items() if hashes
    }
    idx.close()


def test_boilerplate_is_read_again_once_the_index_changes(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    reader = Index.open(db, create=True)
    _add(reader, "leak", {"a": [7, 1], "b": [7, 2]})
    leak = reader.collection("leak").id
    assert reader.boilerplate(1) == {leak: frozenset({7})}
    assert set(reader.postings_for([1, 7], max_files=1)) == {1}
    with Index.open(db) as writer:  # another connection, as another process would
        _add(writer, "leak", {"c": [1]})
    assert reader.boilerplate(1) == {leak: frozenset({7, 1})}
    assert reader.postings_for([1, 7], max_files=1) == {}
    _add(reader, "leak", {"d": [5], "e": [5]})  # and its own writes
    assert reader.boilerplate(1) == {leak: frozenset({7, 1, 5})}
    reader.remove("leak")
    assert reader.boilerplate(1) == {}
    reader.close()


def test_adding_a_path_again_replaces_it(idx: Index) -> None:
    _add(idx, "leak", {"a": [1, 2], "b": [2, 3]})
    _add(idx, "leak", {"a": [5, 6, 7]})
    (c,) = idx.collections()
    assert (c.files, c.fingerprints) == (2, 5)
    assert idx.lookup([1], max_files=9) == []
    assert {p[0] for p in idx.lookup([2, 5, 6, 7], max_files=9)} == {2, 5, 6, 7}
    # Hash 2 is now in one file only: the document frequency was recounted.
    assert idx.common([2], max_files=1) == set()


def test_unchanged_content_is_recognised(idx: Index) -> None:
    with idx.writer("leak") as writer:
        writer.add("a", lines=1, tokens=1, sha256="0" * 64, columns=_columns([1]))
    with idx.writer("leak") as writer:
        assert writer.is_unchanged("a", "0" * 64)
        assert not writer.is_unchanged("a", "1" * 64)
        assert not writer.is_unchanged("new", "0" * 64)
    assert writer.summary().unchanged == 1


def test_a_failed_add_leaves_the_index_as_it_was(idx: Index) -> None:
    _add(idx, "leak", {"a": [1]})

    def interrupted(name: str, hash_: int) -> None:
        with idx.writer(name) as writer:
            writer.add("b", lines=1, tokens=1, sha256="1" * 64, columns=_columns([hash_]))
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted("leak", 2)
    with pytest.raises(RuntimeError):
        interrupted("fresh", 3)
    assert [(c.name, c.files) for c in idx.collections()] == [("leak", 1)]
    assert idx.lookup([2, 3], max_files=9) == []


def test_mode_changes_only_when_asked(idx: Index) -> None:
    _add(idx, "ours", {"a": [1]}, mode=Mode.WARN)
    _add(idx, "ours", {"b": [2]})
    assert idx.collection("ours").mode is Mode.WARN
    _add(idx, "ours", {"c": [3]}, mode=Mode.DENY)
    assert idx.collection("ours").mode is Mode.DENY


def test_remove_deletes_everything_of_one_collection(idx: Index) -> None:
    _add(idx, "leak", {"a": [1, 2]})
    _add(idx, "ours", {"a": [1]})
    assert idx.remove("leak").files == 1
    assert [c.name for c in idx.collections()] == ["ours"]
    assert [p[0] for p in idx.lookup([1, 2], max_files=9)] == [1]
    with pytest.raises(CollectionNotFound, match="no collection 'leak'") as info:
        idx.remove("leak")
    assert "ours" in (info.value.hint or "")


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 65, "ünï"])
def test_collection_names_are_checked(idx: Index, name: str) -> None:
    with pytest.raises(UsageError, match="invalid collection name"):
        idx.writer(name)


def test_opening_what_is_not_an_index_fails_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(FingerprintIndexError, match="no provenance index") as info:
        Index.open(tmp_path / "missing.db")
    assert "custodes index add" in (info.value.hint or "")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(FingerprintIndexError, match="not a readable provenance index"):
        Index.open(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(FingerprintIndexError, match="not a custodes provenance index"):
        Index.open(other)
    # Another program's database is left as it was (not switched to WAL, say).
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone() == ("delete",)
    ours = tmp_path / "ours.db"
    Index.open(ours, create=True).close()
    with sqlite3.connect(ours) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(FingerprintIndexError, match="schema 99"):
        Index.open(ours)


def test_an_older_fingerprint_version_is_refused(idx: Index) -> None:
    _add(idx, "leak", {"a": [1]})
    idx._conn.execute("UPDATE collections SET fingerprint_version = fingerprint_version + 1")
    with pytest.raises(FingerprintIndexError, match="fingerprinted with version") as info:
        idx.check_version()
    assert "custodes index remove leak" in (info.value.hint or "")
    with pytest.raises(FingerprintIndexError, match="fingerprinted with version"):
        _add(idx, "leak", {"b": [2]})


def test_columns_keep_every_fingerprint_in_order() -> None:
    text = (STDLIB / "textwrap.py").read_text()
    prints = fingerprint(text, "python")
    cols = columns_of(prints)
    assert len(cols) == len(prints.fingerprints) > 100
    for i, fp in enumerate(prints.fingerprints):
        assert (cols.hashes[i], cols.positions[i], cols.start_lines[i], cols.end_lines[i]) == (
            fp.hash,
            fp.position,
            fp.start_line,
            fp.end_line,
        )


# -- building from real files ------------------------------------------------------------------

REAL = ["json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py"]


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    for rel in REAL:
        (root / "pkg" / Path(rel).name).write_text((STDLIB / rel).read_text())
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" + bytes(range(256)))
    (root / "bundle.js").write_text("var a=1;" * 2000 + "\n")  # one dense line: minified
    (root / "api_pb2.py").write_text("# generated\nx = 1\n")
    (root / "ignored").mkdir()
    (root / "ignored" / "x.py").write_text((STDLIB / "shlex.py").read_text())
    (root / ".gitignore").write_text("ignored/\n")
    return root


def test_add_paths_indexes_a_folder_and_says_what_it_skipped(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    with Index.open(tmp_path / "i.db", create=True) as idx:
        report = add_paths(idx, [root], "leak", jobs=1)
        files = {path for _, path, *_ in idx.file_rows(idx.collection("leak"))}
    assert files == {".gitignore", *(f"pkg/{Path(r).name}" for r in REAL)}
    assert {(s.path, s.reason) for s in report.skipped} == {
        ("logo.png", SkipReason.BINARY),
        ("bundle.js", SkipReason.MINIFIED),
        ("api_pb2.py", SkipReason.GENERATED),
    }
    expected_lines = sum(len((STDLIB / r).read_text().splitlines()) for r in REAL) + 1
    assert report.lines == expected_lines
    assert report.summary.added == 5


def test_adding_the_same_tree_again_fingerprints_only_what_changed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    with Index.open(tmp_path / "i.db", create=True) as idx:
        add_paths(idx, [root], "leak", jobs=1)
        (root / "pkg" / "shlex.py").write_text("def changed():\n    return 1\n")
        again = add_paths(idx, [root], "leak", jobs=1)
    s = again.summary
    assert (s.added, s.replaced, s.unchanged) == (0, 1, 4)


def test_a_process_pool_gives_the_same_index_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "src")
    # Tiny thresholds so that a few files are enough to start the pool.
    monkeypatch.setattr(index_module, "_BATCH_CHARS", 1)
    monkeypatch.setattr(index_module, "_POOL_AFTER_CHARS", 1)
    dumps = []
    for jobs in (1, 2):
        with Index.open(tmp_path / f"i{jobs}.db", create=True) as idx:
            report = add_paths(idx, [root], "leak", jobs=jobs)
            coll = idx.collection("leak")
            paths = {fid: path for fid, path, *_ in idx.file_rows(coll)}
            dumps.append(
                (
                    sorted(paths.values()),
                    sorted(
                        (paths[fid], sorted(zip(c.positions, c.hashes, c.start_lines, strict=True)))
                        for fid, c in idx.columns(coll).items()
                    ),
                    sorted((s.path, s.reason) for s in report.skipped),
                )
            )
    assert dumps[0] == dumps[1]
    assert len(dumps[0][0]) == 5  # .gitignore too, though it yields no fingerprint
    assert len(dumps[0][1]) == 4


def test_a_git_working_tree_is_indexed_without_its_history(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "main.py").write_text((STDLIB / "textwrap.py").read_text())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    with Index.open(tmp_path / "i.db", create=True) as idx:
        add_paths(idx, [repo], "leak", jobs=1)
        files = [path for _, path, *_ in idx.file_rows(idx.collection("leak"))]
    assert files == ["main.py"]


def _npm_tarball(path: Path, sources: dict[str, str]) -> None:
    source_map = json.dumps(
        {
            "version": 3,
            "file": "cli.js",
            "sources": list(sources),
            "sourcesContent": list(sources.values()),
            "mappings": "",
        }
    ).encode()
    bundle = b"#!/usr/bin/env node\nconsole.log('cli')\n//# sourceMappingURL=cli.js.map\n"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("package/package.json", b'{"name": "cli", "version": "2.1.88"}'),
            ("package/dist/cli.js", bundle),
            ("package/dist/cli.js.map", source_map),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_sources_inside_an_npm_tarball_source_map_are_indexed(tmp_path: Path) -> None:
    agent = (STDLIB / "json" / "decoder.py").read_text()
    _npm_tarball(tmp_path / "artifact.tgz", {"src/tools/agent.ts": agent})
    with Index.open(tmp_path / "i.db", create=True) as idx:
        add_paths(idx, [tmp_path / "artifact.tgz"], "leak", jobs=1)
        rows = {path: lines for _, path, lines, *_ in idx.file_rows(idx.collection("leak"))}
    assert rows["artifact.tgz!package/dist/cli.js.map!src/tools/agent.ts"] == len(
        agent.splitlines()
    )
    assert "artifact.tgz!package/package.json" in rows


def test_the_index_holds_no_source_text(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    db = tmp_path / "i.db"
    with Index.open(db, create=True) as idx:
        add_paths(idx, [root], "leak", jobs=1)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("i.db*"))
    for rel in REAL:
        for line in (STDLIB / rel).read_text().splitlines():
            if len(line.strip()) >= 12:  # shorter lines are words any file may hold
                assert line.strip().encode() not in stored, line


def _df_rows(idx: Index) -> set[tuple[int, int, int]]:
    conn = sqlite3.connect(idx.path)
    try:
        return set(conn.execute("SELECT hash, collection, files FROM df"))
    finally:
        conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    adds=st.lists(
        st.tuples(st.sampled_from("abcde"), st.lists(st.integers(0, 30), max_size=10)),
        min_size=1,
        max_size=8,
    ),
    later=st.lists(
        st.tuples(st.sampled_from("aefg"), st.lists(st.integers(0, 30), max_size=10)),
        max_size=4,
    ),
)
def test_document_frequency_agrees_with_a_reference(
    tmp_path_factory: pytest.TempPathFactory,
    adds: list[tuple[str, list[int]]],
    later: list[tuple[str, list[int]]],
) -> None:
    """``df`` holds, per collection, every hash in two files or more with its file count, after
    a collection is built, replaced into (a path twice in one writer) and added to."""
    idx = Index.open(tmp_path_factory.mktemp("df") / "i.db", create=True)
    _add(idx, "other", {"x": [1, 2, 3], "y": [1, 2]})
    current: dict[str, list[int]] = {}
    for step in (adds, later):
        if not step:
            continue
        with idx.writer("c") as writer:  # a path met twice in one writer replaces the first
            for path, hashes in step:
                writer.add(
                    path,
                    lines=len(hashes) + 2,
                    tokens=10 * len(hashes),
                    sha256=hashlib.sha256(repr((path, hashes)).encode()).hexdigest(),
                    columns=_columns(hashes),
                )
                current[path] = hashes
        ids = {c.name: c.id for c in idx.collections()}
        holders: dict[int, set[str]] = defaultdict(set)
        for path, hashes in current.items():
            for h in hashes:
                holders[h].add(path)
        expected = {(h, ids["c"], len(ps)) for h, ps in holders.items() if len(ps) > 1}
        expected |= {(1, ids["other"], 2), (2, ids["other"], 2)}
        assert _df_rows(idx) == expected
    idx.close()
