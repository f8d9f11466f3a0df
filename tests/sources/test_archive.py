"""Archives read in memory: members, nesting, source maps inside, and hostile archives."""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.sources import Limits, read_archive
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

MiB = 1 << 20

AGENT_TS = (
    "// Copyright Acme Corp. Proprietary and confidential.\n"
    "import { plan } from './plan';\n"
    "\n"
    "export async function agent(goal: string): Promise<void> {\n"
    "  const steps = await plan(goal);\n"
    "  for (const step of steps) await step.run();\n"
    "}\n"
)
CLI_JS = "#!/usr/bin/env node\n(()=>{console.log('cli')})();\n//# sourceMappingURL=cli.js.map\n"


def tar_bytes(
    members: Iterable[tuple[str, bytes]],
    *,
    mode: str = "w:gz",
    extra: Iterable[tarfile.TarInfo] = (),
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return buf.getvalue()


def zip_bytes(members: Iterable[tuple[str, bytes]], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def split(items: Iterable[Subject | Skipped]) -> tuple[dict[str, Subject], list[Skipped]]:
    subjects: dict[str, Subject] = {}
    skipped: list[Skipped] = []
    for item in items:
        if isinstance(item, Subject):
            assert item.path not in subjects, item.path
            subjects[item.path] = item
        else:
            skipped.append(item)
    return subjects, skipped


def npm_tarball() -> bytes:
    source_map = {
        "version": 3,
        "file": "cli.js",
        "sources": ["webpack:///./src/tools/agent.ts", 'webpack:///external "fs"'],
        "sourcesContent": [AGENT_TS, None],
        "names": [],
        "mappings": "AAAA",
    }
    return tar_bytes(
        [
            ("package/package.json", b'{"name": "pkg", "version": "1.0.0", "bin": "dist/cli.js"}'),
            ("package/dist/cli.js", CLI_JS.encode()),
            ("package/dist/cli.js.map", json.dumps(source_map).encode()),
        ]
    )


def test_npm_tarball_leaks_its_sources_through_the_source_map() -> None:
    subjects, skipped = split(read_archive(npm_tarball(), "pkg-1.0.0.tgz"))
    assert skipped == []
    assert sorted(subjects) == [
        "pkg-1.0.0.tgz!package/dist/cli.js",
        "pkg-1.0.0.tgz!package/dist/cli.js.map!src/tools/agent.ts",
        "pkg-1.0.0.tgz!package/package.json",
    ]
    agent = subjects["pkg-1.0.0.tgz!package/dist/cli.js.map!src/tools/agent.ts"]
    assert agent.kind is SubjectKind.SOURCE
    assert agent.language == "typescript"
    assert agent.text == AGENT_TS
    # Line numbers are the original file's, 1-based.
    lines = agent.text.splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if "step.run()" in text)
    assert line == 6
    assert agent.original_line(line) == 6
    assert AGENT_TS.splitlines()[agent.original_line(line) - 1] == lines[line - 1]
    cli = subjects["pkg-1.0.0.tgz!package/dist/cli.js"]
    assert cli.kind is SubjectKind.MEMBER
    assert cli.language == "javascript"
    assert cli.text == CLI_JS


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_compressions_are_sniffed(mode: str) -> None:
    data = tar_bytes([("a/b.py", b"print('hi')\n"), ("c.txt", b"x")], mode=mode)
    subjects, skipped = split(read_archive(data, "release.tar"))
    assert skipped == []
    assert list(subjects) == ["release.tar!a/b.py", "release.tar!c.txt"]
    assert subjects["release.tar!a/b.py"].language == "python"


@pytest.mark.parametrize("name", ["pkg-1.0-py3-none-any.whl", "app.jar", "bundle.zip"])
def test_zip_family(name: str) -> None:
    data = zip_bytes(
        [
            ("pkg/__init__.py", b"SECRET = 'x'\n"),
            ("pkg/data.bin", b"\x00\x01\x02" * 100),
            ("pkg/", b""),
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
        ]
    )
    subjects, skipped = split(read_archive(data, name))
    assert sorted(subjects) == [f"{name}!META-INF/MANIFEST.MF", f"{name}!pkg/__init__.py"]
    assert subjects[f"{name}!pkg/__init__.py"].kind is SubjectKind.MEMBER
    assert skipped == [Skipped(f"{name}!pkg/data.bin", SkipReason.BINARY, "binary content")]


def test_invalid_utf8_member_is_scanned_with_replacement_characters() -> None:
    data = zip_bytes([("a.py", b"ok = 1\nbad = '\xff\xfe'\n")])
    subjects, _ = split(read_archive(data, "x.zip"))
    assert subjects["x.zip!a.py"].text == "ok = 1\nbad = '\ufffd\ufffd'\n"


def test_inline_source_map_inside_an_archive() -> None:
    import base64

    document = json.dumps(
        {"version": 3, "sources": ["src/x.ts"], "sourcesContent": ["let x = 1;\n"]}
    )
    js = (
        "let a=1;\n//# sourceMappingURL=data:application/json;base64,"
        + base64.b64encode(document.encode()).decode()
    )
    subjects, _ = split(read_archive(zip_bytes([("dist/a.js", js.encode())]), "w.zip"))
    assert sorted(subjects) == ["w.zip!dist/a.js", "w.zip!dist/a.js!src/x.ts"]


def test_nested_archives_are_read_with_joined_paths() -> None:
    wheel = zip_bytes([("lib/mod.py", b"def f():\n    return 1\n")])
    outer = tar_bytes([("dist/lib.whl", wheel), ("README", b"hello\n")])
    subjects, skipped = split(read_archive(outer, "release.tgz"))
    assert skipped == []
    assert sorted(subjects) == ["release.tgz!README", "release.tgz!dist/lib.whl!lib/mod.py"]
    assert subjects["release.tgz!dist/lib.whl!lib/mod.py"].language == "python"


def nest(depth: int) -> bytes:
    """An archive ``depth`` levels deep: level0.zip holds level1.zip … holding secret.py."""
    data = zip_bytes([("secret.py", b"KEY = 1\n")])
    for level in range(depth, 0, -1):
        data = zip_bytes([(f"level{level}.zip", data), (f"note{level}.txt", b"n\n")])
    return data


def test_nesting_deeper_than_max_depth_is_refused() -> None:
    subjects, skipped = split(read_archive(nest(4), "top.zip", limits=Limits(max_depth=2)))
    # top.zip is depth 0; level1.zip is depth 1; level2.zip is depth 2; level3.zip would be 3.
    assert "top.zip!level1.zip!level2.zip!note3.txt" in subjects
    assert not any("secret.py" in path for path in subjects)
    assert skipped == [
        Skipped(
            "top.zip!level1.zip!level2.zip!level3.zip",
            SkipReason.ARCHIVE_LIMIT,
            "max_depth exceeded: archives nested more than 2",
        )
    ]
    subjects, skipped = split(read_archive(nest(3), "top.zip"))  # default max_depth is 3
    assert skipped == []
    assert "top.zip!level1.zip!level2.zip!level3.zip!secret.py" in subjects


def test_path_traversal_members_are_reported_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    evil = [
        ("../evil.sh", b"echo pwned\n"),
        ("../../evil2.sh", b"echo pwned\n"),
        ("/etc/passwd", b"root:x:0:0\n"),
        ("ok/../../evil3.sh", b"echo pwned\n"),
        ("safe/ok.txt", b"fine\n"),
    ]
    symlink = tarfile.TarInfo("safe/link")
    symlink.type = tarfile.SYMTYPE
    symlink.linkname = "../../../etc/shadow"
    inner_link = tarfile.TarInfo("safe/inner")
    inner_link.type = tarfile.SYMTYPE
    inner_link.linkname = "ok.txt"
    hardlink = tarfile.TarInfo("safe/hard")
    hardlink.type = tarfile.LNKTYPE
    hardlink.linkname = "../outside"
    fifo = tarfile.TarInfo("safe/fifo")
    fifo.type = tarfile.FIFOTYPE
    data = tar_bytes(evil, extra=[symlink, inner_link, hardlink, fifo])
    before = sorted(str(p) for p in tmp_path.rglob("*"))

    subjects, skipped = split(read_archive(data, "x.tgz"))

    assert list(subjects) == ["x.tgz!safe/ok.txt"]
    assert {(s.path, s.reason) for s in skipped} == {
        ("x.tgz!../evil.sh", SkipReason.UNSAFE_PATH),
        ("x.tgz!../../evil2.sh", SkipReason.UNSAFE_PATH),
        ("x.tgz!/etc/passwd", SkipReason.UNSAFE_PATH),
        ("x.tgz!ok/../../evil3.sh", SkipReason.UNSAFE_PATH),
        ("x.tgz!safe/link", SkipReason.UNSAFE_PATH),
        ("x.tgz!safe/hard", SkipReason.UNSAFE_PATH),
    }
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not any(Path(tmp_path, name).exists() for name in ("evil.sh", "a/evil.sh", "evil2.sh"))


@pytest.mark.parametrize(
    "name",
    ["C:\\Windows\\evil.dll", "..\\evil.bat", "d:/evil", "\\\\server\\share\\x", "a/../../x"],
)
def test_windows_style_unsafe_zip_members(name: str) -> None:
    # zipfile.writestr keeps the name as given when handed a ZipInfo.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), b"payload\n")
        archive.writestr("fine.txt", b"ok\n")
    subjects, skipped = split(read_archive(buf.getvalue(), "w.zip"))
    assert list(subjects) == ["w.zip!fine.txt"]
    assert [(s.path, s.reason) for s in skipped] == [(f"w.zip!{name}", SkipReason.UNSAFE_PATH)]


def test_zip_symlink_member_pointing_outside() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        outside = zipfile.ZipInfo("bin/tool")
        outside.external_attr = 0o120777 << 16  # S_IFLNK: the content is the target
        archive.writestr(outside, "../../../../etc/passwd")
        inside = zipfile.ZipInfo("bin/alias")
        inside.external_attr = 0o120777 << 16
        archive.writestr(inside, "tool")
    subjects, skipped = split(read_archive(buf.getvalue(), "l.zip"))
    assert subjects == {}
    assert [(s.path, s.reason) for s in skipped] == [("l.zip!bin/tool", SkipReason.UNSAFE_PATH)]


def peak_bytes(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def drain(items: Iterator[Subject | Skipped], sink: list[Skipped]) -> int:
    """Count subjects without keeping them, keep the records."""
    count = 0
    for item in items:
        if isinstance(item, Subject):
            count += 1
        else:
            sink.append(item)
    return count


def test_zip_bomb_member_is_refused_before_it_is_inflated() -> None:
    size = 256 * MiB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.txt", "w", force_zip64=True) as member:
            chunk = b"a" * MiB
            for _ in range(size // MiB):
                member.write(chunk)
        archive.writestr("after.txt", b"still scanned\n")
    data = buf.getvalue()
    assert len(data) < size // 500
    limits = Limits(max_file_bytes=512 * MiB, max_archive_bytes=512 * MiB)
    records: list[Skipped] = []
    counted: list[int] = []
    peak = peak_bytes(
        lambda: counted.append(drain(read_archive(data, "b.zip", limits=limits), records))
    )
    assert counted == [1]  # after.txt
    assert [(s.path, s.reason) for s in records] == [("b.zip!bomb.txt", SkipReason.ARCHIVE_LIMIT)]
    assert "max_ratio" in records[0].detail
    assert peak < 4 * MiB, peak


def test_zip_member_lying_about_its_size_inflates_no_more_than_it_declared() -> None:
    size = 64 * MiB
    data = bytearray(zip_bytes([("liar.txt", b"a" * size), ("ok.txt", b"ok\n")]))
    # Rewrite the declared uncompressed size (local header and central directory) to 100.
    packed = size.to_bytes(4, "little")
    assert data.count(packed) == 2
    data = bytearray(bytes(data).replace(packed, (100).to_bytes(4, "little")))
    records: list[Skipped] = []
    counted: list[int] = []
    peak = peak_bytes(lambda: counted.append(drain(read_archive(bytes(data), "l.zip"), records)))
    assert counted == [1]
    assert [(s.path, s.reason) for s in records] == [("l.zip!liar.txt", SkipReason.CORRUPT_ARCHIVE)]
    assert peak < 4 * MiB, peak


def test_total_uncompressed_bytes_are_bounded_across_members() -> None:
    chunk = b"x = 1\n" * (MiB // 6)
    data = zip_bytes([(f"m{i}.py", chunk) for i in range(40)])
    limits = Limits(max_total_bytes=8 * MiB)
    records: list[Skipped] = []
    counted: list[int] = []
    peak = peak_bytes(
        lambda: counted.append(drain(read_archive(data, "t.zip", limits=limits), records))
    )
    assert counted == [8]  # each member is just under 1 MiB: the ninth crosses 8 MiB
    assert [(s.path, s.reason) for s in records] == [("t.zip", SkipReason.ARCHIVE_LIMIT)]
    assert "max_total_bytes" in records[0].detail
    assert peak < 6 * MiB, peak


def many_member_tgz(count: int) -> bytes:
    """A tgz of ``count`` one-byte members, built block by block without holding it inflated."""
    header = tar_bytes([("f.txt", b"x")], mode="w")[:1024]  # one header block, one data block
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    parts = [compressor.compress(header) for _ in range(count)]
    parts.append(compressor.compress(bytes(1024)))  # the end-of-archive blocks
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def tar_of_200k_members() -> bytes:
    return many_member_tgz(200_000)


def test_tar_with_200k_members_stops_at_max_members_in_flat_memory(
    tar_of_200k_members: bytes,
) -> None:
    inflated = 200_000 * 1024
    records: list[Skipped] = []
    counted: list[int] = []
    limits = Limits(max_members=5_000)
    peak = peak_bytes(
        lambda: counted.append(
            drain(read_archive(tar_of_200k_members, "m.tgz", limits=limits), records)
        )
    )
    assert counted == [5_000]
    assert records == [
        Skipped("m.tgz", SkipReason.ARCHIVE_LIMIT, "max_members exceeded: more than 5000 entries")
    ]
    # Flat: no per-member state is kept (tarfile alone would keep ~450 bytes per header).
    assert peak < min(inflated // 400, 512 * 1024), peak


def test_tar_inflating_past_max_ratio_is_stopped(tar_of_200k_members: bytes) -> None:
    limits = Limits(max_ratio=5)
    records: list[Skipped] = []
    counted: list[int] = []
    peak = peak_bytes(
        lambda: counted.append(
            drain(read_archive(tar_of_200k_members, "m.tgz", limits=limits), records)
        )
    )
    ceiling = len(tar_of_200k_members) * 5
    assert [(s.path, s.reason) for s in records] == [("m.tgz", SkipReason.ARCHIVE_LIMIT)]
    assert "max_ratio" in records[0].detail
    # Every member read ended within the ceiling; the one that would cross it was not read.
    assert counted[0] * 1024 <= ceiling < (counted[0] + 1) * 1024 + 1024
    assert peak < 4 * MiB, peak


def test_zip_declaring_too_many_entries_is_refused_before_parsing() -> None:
    data = zip_bytes([(f"f{i}.txt", b"x") for i in range(20_000)], method=zipfile.ZIP_STORED)
    records: list[Skipped] = []
    counted: list[int] = []
    peak = peak_bytes(
        lambda: counted.append(
            drain(read_archive(data, "z.zip", limits=Limits(max_members=1000)), records)
        )
    )
    assert counted == [0]
    assert [(s.path, s.reason) for s in records] == [("z.zip", SkipReason.ARCHIVE_LIMIT)]
    assert "20000 entries" in records[0].detail
    assert peak < 1 * MiB, peak  # zipfile never built its 20,000 entry objects


def test_budget_is_shared_with_nested_archives() -> None:
    inner = zip_bytes([(f"i{i}.txt", b"x\n") for i in range(30)])
    outer = tar_bytes([("a.zip", inner), ("b.zip", inner), ("z.txt", b"last\n")])
    subjects, skipped = split(read_archive(outer, "o.tgz", limits=Limits(max_members=40)))
    # Counted: a.zip (1) + its 30 entries, b.zip (1); b.zip's directory of 30 exceeds the 8 left.
    assert len(subjects) == 30
    assert all(path.startswith("o.tgz!a.zip!") for path in subjects)
    assert [(s.path, s.reason) for s in skipped] == [("o.tgz!b.zip", SkipReason.ARCHIVE_LIMIT)]
    assert "o.tgz!z.txt" not in subjects  # the whole top-level archive stopped


def test_too_large_member_is_skipped_and_the_rest_read() -> None:
    data = tar_bytes([("big.txt", b"b" * 5000), ("small.txt", b"s\n")])
    subjects, skipped = split(read_archive(data, "s.tgz", limits=Limits(max_file_bytes=4096)))
    assert list(subjects) == ["s.tgz!small.txt"]
    assert [(s.path, s.reason) for s in skipped] == [("s.tgz!big.txt", SkipReason.TOO_LARGE)]


def incompressible_text(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz0123456789\n") for _ in range(size)
    ).encode()


def test_truncated_tgz_keeps_members_before_the_cut() -> None:
    members = [(f"src/m{i}.py", incompressible_text(i, 40_000)) for i in range(4)]
    data = tar_bytes(members)
    cut = data[: len(data) * 2 // 3]
    subjects, skipped = split(read_archive(cut, "t.tgz"))
    assert "t.tgz!src/m0.py" in subjects
    assert subjects["t.tgz!src/m0.py"].text.encode() == members[0][1]
    assert "t.tgz!src/m3.py" not in subjects
    assert len(skipped) == 1
    assert skipped[0].path == "t.tgz"
    assert skipped[0].reason is SkipReason.CORRUPT_ARCHIVE


@pytest.mark.parametrize(
    "data",
    [b"", b"not an archive at all", b"\x1f\x8b\x08\x00garbage", b"PK\x03\x04garbage"],
)
def test_garbage_is_a_corrupt_archive(data: bytes) -> None:
    items = list(read_archive(data, "g.tgz"))
    assert len(items) == 1
    assert isinstance(items[0], Skipped)
    assert items[0].reason is SkipReason.CORRUPT_ARCHIVE


def test_truncated_zip_is_a_corrupt_archive() -> None:
    data = zip_bytes([("a.txt", b"a" * 1000), ("b.txt", b"b" * 1000)])
    items = list(read_archive(data[: len(data) - 30], "t.zip"))
    assert [(i.path, getattr(i, "reason", None)) for i in items] == [
        ("t.zip", SkipReason.CORRUPT_ARCHIVE)
    ]


def test_corrupt_zip_member_does_not_hide_the_others() -> None:
    first = incompressible_text(1, 5000)
    data = bytearray(zip_bytes([("a.txt", first), ("b.txt", b"fine\n")]))
    at = bytes(data).index(b"a.txt") + 5 + 100  # inside a.txt's compressed data
    data[at] ^= 0xFF
    subjects, skipped = split(read_archive(bytes(data), "c.zip"))
    assert list(subjects) == ["c.zip!b.txt"]
    assert [(s.path, s.reason) for s in skipped] == [("c.zip!a.txt", SkipReason.CORRUPT_ARCHIVE)]


def test_encrypted_zip_member_is_unreadable() -> None:
    data = bytearray(zip_bytes([("sealed.txt", b"secret"), ("open.txt", b"open\n")]))
    # zipfile cannot encrypt; set the encryption flag of sealed.txt in both of its headers.
    local = bytes(data).index(b"PK\x03\x04")
    central = bytes(data).index(b"PK\x01\x02")
    assert data[central + 46 : central + 56] == b"sealed.txt"
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    subjects, skipped = split(read_archive(bytes(data), "e.zip"))
    assert list(subjects) == ["e.zip!open.txt"]
    assert [(s.path, s.reason) for s in skipped] == [("e.zip!sealed.txt", SkipReason.UNREADABLE)]


SEED_ARCHIVES = [npm_tarball(), zip_bytes([("a.py", b"x = 1\n"), ("b/c.js", b"y()\n")])]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEED_ARCHIVES),
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=8
    ),
    st.one_of(st.none(), st.integers(min_value=0)),
)
def test_damaged_archives_never_raise(
    seed: bytes, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for at, value in flips:
        data[at % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    for item in read_archive(bytes(data), "fuzz.tgz"):
        assert isinstance(item, Subject | Skipped)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_members"):
        Limits(max_members=0)
    with pytest.raises(ValueError, match="max_ratio"):
        Limits(max_ratio=0.5)
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=-1)
    assert Limits(max_depth=0).max_depth == 0


def test_nothing_is_extracted_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    list(read_archive(npm_tarball(), "pkg.tgz"))
    assert os.listdir(tmp_path) == []
