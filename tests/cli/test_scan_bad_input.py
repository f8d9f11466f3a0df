"""Hostile and broken inputs through the real `custodes scan`: a clear report, a finished scan.

Each case checks the exit code, that no traceback reaches the user, and that whatever was not
scanned is listed with its reason in the text and the JSON report alike.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CUSTODES = str(Path(sys.executable).parent / "custodes")
B32 = string.ascii_uppercase + "234567"
_RNG = random.Random(404)
KEY, KEY2 = ("AKIA" + "".join(_RNG.choice(B32) for _ in range(16)) for _ in range(2))
MiB = 1 << 20
FILE_LIMIT = 16 * MiB  # the documented default limit for a text file
ARCHIVE_LIMIT = 256 * MiB  # and for an archive or a source map


def _scan(
    *args: str, cwd: Path, user: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The same scan as text and as JSON; returns the text run and the JSON report.

    ``user`` prefixes the command (e.g. ``setpriv …`` to scan with fewer privileges).
    """
    text = subprocess.run(
        [*user, CUSTODES, "scan", "--no-ledger", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    as_json = subprocess.run(
        [*user, CUSTODES, "scan", "--no-ledger", "--format", "json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    for done in (text, as_json):
        assert "Traceback" not in done.stderr
        assert done.returncode in (0, 1), done.stderr
    assert text.returncode == as_json.returncode
    return text, json.loads(as_json.stdout)


def _skipped(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["path"]: (s["reason"], s.get("detail", "")) for s in report["skipped"]}


def test_binary_files_are_listed_not_scanned(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64 + KEY.encode())
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 0
    assert report["findings"] == []
    assert _skipped(report) == {
        "app.bin": ("binary", "binary content"),
        "logo.png": ("binary", "binary content"),
    }
    assert "not scanned (2):" in text.stdout
    assert "  app.bin: binary (binary content)" in text.stdout


def test_invalid_utf8_is_scanned_around_the_bad_bytes(tmp_path: Path) -> None:
    (tmp_path / "latin1.py").write_bytes(
        b"# caf\xe9 \xff\xfe broken\n" + f'KEY = "{KEY}"\n'.encode() + b"\xc3\x28 end\n"
    )
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 1
    (finding,) = report["findings"]
    assert (finding["path"], finding["start_line"]) == ("latin1.py", 2)
    assert report["skipped"] == []
    assert KEY not in text.stdout


def test_a_file_name_that_is_not_utf8_is_reported_escaped(tmp_path: Path) -> None:
    # Linux filesystems take any byte but / and NUL in a name, as git checkouts and tarballs do.
    name = os.fsdecode(b"caf\xe9.py")
    (tmp_path / name).write_text(f'KEY = "{KEY}"\n')
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 1
    assert [f["path"] for f in report["findings"]] == ["caf\\xe9.py"]
    assert "caf\\xe9.py:1  secret.aws-access-key-id" in text.stdout
    ledger = subprocess.run(
        [CUSTODES, "scan", name, "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ledger.returncode == 1, ledger.stderr
    assert json.loads(ledger.stdout)["ledger"]["index"] == 0


def test_a_sparse_1gb_file_and_archive_are_skipped_unread(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text(f'KEY = "{KEY}"\n')
    for name in ("huge.log", "huge.tgz"):
        subprocess.run(["truncate", "-s", "1G", name], cwd=tmp_path, check=True, timeout=30)
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 1
    gib = 1 << 30
    assert _skipped(report) == {
        "huge.log": ("too-large", f"{gib} bytes > {FILE_LIMIT}"),
        "huge.tgz": ("too-large", f"{gib} bytes > {ARCHIVE_LIMIT}"),
    }
    assert f"  huge.log: too-large ({gib} bytes > {FILE_LIMIT})" in text.stdout
    assert [f["path"] for f in report["findings"]] == ["small.py"]


_RSS = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"rc": done.returncode, "peak_kib": peak, "out": done.stdout, "err": done.stderr}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_minified_single_line_bundles_keep_memory_bounded(tmp_path: Path) -> None:
    statement = "var a=function(b){return b*2+c.d(e,f)};"
    # 50 MB on one line: beyond the text-file limit, skipped without being read.
    with (tmp_path / "vendor.min.js").open("w") as out:
        for _ in range(50_000_000 // (len(statement) * 10_000) + 1):
            out.write(statement * 10_000)
    # Just under the limit, one line, a key at the very end: read and scanned.
    body = statement * ((FILE_LIMIT - 4096) // len(statement))
    (tmp_path / "app.min.js").write_text(body + f'var k="{KEY2}";')
    # A fresh interpreter measures only this scan's peak, not the test process's.
    wrapper = subprocess.run(
        [sys.executable, "-c", _RSS, CUSTODES, "scan", ".", "--no-ledger", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(wrapper.stdout)
    assert result["rc"] == 1, result["err"]
    report = json.loads(result["out"])
    size = (tmp_path / "vendor.min.js").stat().st_size
    assert size >= 50_000_000
    assert _skipped(report) == {"vendor.min.js": ("too-large", f"{size} bytes > {FILE_LIMIT}")}
    (finding,) = report["findings"]
    assert (finding["path"], finding["start_line"]) == ("app.min.js", 1)
    assert result["peak_kib"] < 400 * 1024, f"peak RSS {result['peak_kib'] // 1024} MiB"


def test_symlink_loops_end_the_walk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "key.py").write_text(f'KEY = "{KEY}"\n')
    (tmp_path / "a" / "b" / "up").symlink_to("../..")  # back to the root
    (tmp_path / "self").symlink_to("self")  # a link to itself: ELOOP when followed
    (tmp_path / "ping").symlink_to("pong")
    (tmp_path / "pong").symlink_to("ping")
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 1
    assert [f["path"] for f in report["findings"]] == ["a/b/key.py"]  # found once
    skipped = _skipped(report)
    assert skipped["a/b/up"][0] == "symlink-loop"
    assert {skipped[name][0] for name in ("self", "ping", "pong")} == {"unreadable"}
    assert "  a/b/up: symlink-loop (links to a folder that contains it)" in text.stdout


def test_an_unreadable_file_and_folder_are_reported(tmp_path: Path) -> None:
    # Root reads a file whatever its mode: as root, the scan runs without the two capabilities
    # that let it (setpriv drops them from the bounding set, so the scan never has them).
    user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        user = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    (tmp_path / "secret.py").write_text(f'KEY = "{KEY}"\n')
    (tmp_path / "locked").mkdir()
    (tmp_path / "ok.py").write_text("x = 1\n")
    os.chmod(tmp_path / "secret.py", 0)
    os.chmod(tmp_path / "locked", 0)
    try:
        text, report = _scan(".", cwd=tmp_path, user=user)
    finally:
        os.chmod(tmp_path / "secret.py", 0o600)
        os.chmod(tmp_path / "locked", 0o700)
    assert text.returncode == 0
    assert _skipped(report) == {
        "locked": ("unreadable", "Permission denied"),
        "secret.py": ("unreadable", "Permission denied"),
    }
    assert report["scanned"] == 1


def test_a_fifo_does_not_block_the_scan(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "ok.py").write_text("x = 1\n")
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 0
    assert _skipped(report) == {"pipe": ("unreadable", "not a regular file (FIFO)")}


def test_a_corrupt_archive_and_source_map_are_reported(tmp_path: Path) -> None:
    (tmp_path / "pkg.tgz").write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    (tmp_path / "cli.js.map").write_text('{"version": 3, "sourcesContent": [')
    (tmp_path / "ok.py").write_text(f'KEY = "{KEY}"\n')
    text, report = _scan(".", cwd=tmp_path)
    assert text.returncode == 1
    skipped = _skipped(report)
    assert skipped["pkg.tgz"][0] == "corrupt-archive"
    assert skipped["cli.js.map"][0] == "corrupt-archive"
    assert [f["path"] for f in report["findings"]] == ["ok.py"]
