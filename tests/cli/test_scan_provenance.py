"""`custodes scan` with a provenance index: leaked code in a repository, a change and a report.

The protected code is real (a module of node's bundled npm) shipped, as in the 2026 leak, in
the ``sourcesContent`` of a source map inside an npm tarball; a fragment of it is copied into
an unrelated real file of a repository.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sysconfig
import tarfile
from pathlib import Path

import pytest

from fingerprint.clones import npm_package
from ledgertools import CUSTODES, cli_env

LEAK_PATH = "artifact.tgz!package/dist/cli.js.map!src/tools/agent.ts"
FRAGMENT = (99, 140)  # 0-based slice of the protected file: lines 100-140


def _npm_lib() -> Path:
    lib = npm_package() / "lib"
    assert (lib / "commands" / "doctor.js").is_file(), f"npm's doctor command is not in {lib}"
    return lib


def run(
    *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = cli_env()
    environ.pop("CUSTODES_INDEX", None)
    environ.update(env or {})
    return subprocess.run(
        [str(CUSTODES), *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _tarball(path: Path, agent: str) -> None:
    source_map = json.dumps(
        {
            "version": 3,
            "file": "cli.js",
            "sources": ["src/tools/agent.ts"],
            "sourcesContent": [agent],
            "mappings": "",
        }
    ).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("package/package.json", b'{"name": "cli", "version": "2.1.88"}'),
            ("package/dist/cli.js.map", source_map),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    """The leak indexed (deny), and a repository whose helper holds a fragment of it."""
    lib = _npm_lib()
    agent = (lib / "commands" / "doctor.js").read_text()
    host = (lib / "commands" / "cache.js").read_text().splitlines()
    _tarball(tmp_path / "artifact.tgz", agent)
    added = run("index", "add", "artifact.tgz", "--collection", "leak", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    fragment = agent.splitlines()[FRAGMENT[0] : FRAGMENT[1]]
    at = 60
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "cache.js").write_text("\n".join(host) + "\n")
    (repo / "src" / "helper.js").write_text("\n".join(host[:at] + fragment + host[at:]) + "\n")
    (repo / "dist").mkdir()
    (repo / "dist" / "app.js").write_text("var a=1;" * 3000 + "\n")  # minified
    return {
        "agent": agent,
        "repo": repo,
        "planted": (at + 1, at + len(fragment)),
        "origin": (FRAGMENT[0] + 1, FRAGMENT[1]),
    }


def _protected_lines(agent: str) -> list[str]:
    # Lines long enough to be the protected code's own (not "}" or "return x").
    return [line.strip() for line in agent.splitlines() if len(line.strip()) >= 16]


def test_a_copied_fragment_fails_the_gate_and_names_its_source(
    tmp_path: Path, world: dict[str, object]
) -> None:
    done = run("scan", "repo", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (finding,) = [f for f in report["findings"] if f["kind"] == "provenance"]
    assert (finding["rule"], finding["severity"], finding["path"]) == (
        "provenance.deny",
        "high",
        "src/helper.js",
    )
    first, last = world["planted"]  # type: ignore[misc]
    assert abs(finding["start_line"] - first) <= 2
    assert abs(finding["end_line"] - last) <= 2
    source = finding["source"]
    assert set(source) == {"collection", "path", "start_line", "end_line"}
    assert (source["collection"], source["path"]) == ("leak", LEAK_PATH)
    origin_first, origin_last = world["origin"]  # type: ignore[misc]
    assert abs(source["start_line"] - origin_first) <= 2
    assert abs(source["end_line"] - origin_last) <= 2
    assert isinstance(finding["similarity"], float)
    assert 0.9 <= finding["similarity"] <= 1.0
    assert finding["message"] == (
        f"lines {finding['start_line']}-{finding['end_line']} match leak:{LEAK_PATH}:"
        f"{source['start_line']}-{source['end_line']} "
        f"(similarity {finding['similarity']:.2f})"
    )
    assert "preview" not in finding
    # The untouched copy of the host file matches nothing; the minified bundle is listed.
    assert all(f["path"] != "src/cache.js" for f in report["findings"])
    skipped = {(s["path"], s["reason"]) for s in report["skipped"]}
    assert ("dist/app.js", "minified") in skipped


def test_no_protected_line_reaches_a_report_the_ledger_or_the_index(
    tmp_path: Path, world: dict[str, object]
) -> None:
    outputs = []
    for fmt in ("json", "sarif", "text"):
        done = run("scan", "repo", "--format", fmt, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        outputs.append(done.stdout + done.stderr)
    state = b"".join(p.read_bytes() for p in (tmp_path / ".custodes").iterdir() if p.is_file())
    assert (tmp_path / ".custodes" / "ledger.db").exists()
    for line in _protected_lines(str(world["agent"])):
        for output in outputs:
            assert line not in output, line
        assert line.encode() not in state, line


def test_a_warn_collection_reports_without_failing(
    tmp_path: Path, world: dict[str, object]
) -> None:
    run("index", "add", "artifact.tgz", "-c", "ours", "--mode", "warn", "--index", "warn.db", cwd=tmp_path)
    (tmp_path / "policy.yaml").write_text(
        "schema: 1\n"
        "name: provenance-all\n"
        "description: every provenance match\n"
        "rules:\n"
        "  - id: all.provenance\n"
        "    message: code from an indexed collection\n"
        "    provenance:\n"
        "      collections: [deny, warn]\n"
    )
    done = run(
        "scan", "repo", "--index", "warn.db", "--policy", "policy.yaml", "--format", "json",
        "--no-ledger", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (finding,) = [f for f in json.loads(done.stdout)["findings"] if f["kind"] == "provenance"]
    assert (finding["rule"], finding["severity"]) == ("provenance.warn", "medium")
    assert finding["source"]["collection"] == "ours"


def test_the_default_pack_reports_a_warn_collection_without_failing(
    tmp_path: Path, world: dict[str, object]
) -> None:
    run("index", "add", "artifact.tgz", "-c", "ours", "--mode", "warn", "--index", "warn.db", cwd=tmp_path)
    done = run(
        "scan", "repo", "--index", "warn.db", "--format", "json", "--no-ledger", cwd=tmp_path
    )
    report = json.loads(done.stdout)
    (finding,) = [f for f in report["findings"] if f["kind"] == "provenance"]
    assert (finding["rule"], finding["severity"]) == ("provenance.warn", "medium")
    assert finding["source"]["collection"] == "ours"
    assert not any("provenance" in reason for reason in report["reasons"])
    assert done.returncode == (0 if report["passed"] else 1), done.stderr


def test_a_named_index_must_exist(tmp_path: Path, world: dict[str, object]) -> None:
    for args, env in (
        (("--index", "missing.db"), None),
        ((), {"CUSTODES_INDEX": "missing.db"}),
    ):
        done = run("scan", "repo", "--no-ledger", *args, cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "no provenance index at missing.db" in done.stderr
        assert "custodes index add" in done.stderr
        assert "Traceback" not in done.stderr


def test_without_an_index_provenance_is_simply_off(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('hello')\n")
    done = run("scan", ".", "--no-ledger", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["findings"] == []
    assert "provenance" not in done.stderr  # no collection yet: nothing to say
    assert not (tmp_path / ".custodes" / "index.db").exists()


def test_a_staged_change_reports_the_lines_of_the_new_file(
    tmp_path: Path, world: dict[str, object]
) -> None:
    repo = world["repo"]
    assert isinstance(repo, Path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    (repo / "src" / "helper.js").unlink()
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "src/cache.js"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "host"], check=True)
    # The change: the fragment copied into cache.js after its 200th line.
    host = (repo / "src" / "cache.js").read_text().splitlines()
    fragment = str(world["agent"]).splitlines()[FRAGMENT[0] : FRAGMENT[1]]
    (repo / "src" / "cache.js").write_text("\n".join(host[:200] + fragment + host[200:]) + "\n")
    subprocess.run([*git, "add", "src/cache.js"], check=True)
    done = run(
        "scan", "repo", "--staged", "--index", ".custodes/index.db", "--no-ledger",
        "--format", "json", cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (finding,) = [f for f in json.loads(done.stdout)["findings"] if f["kind"] == "provenance"]
    assert finding["path"] == "src/cache.js"
    assert abs(finding["start_line"] - 201) <= 2
    assert abs(finding["end_line"] - (200 + len(fragment))) <= 2


# -- what the provenance benchmark found, end to end ---------------------------------------------

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PROVENANCE_ONLY = (
    "schema: 1\n"
    "name: provenance-only\n"
    "description: only the provenance check, as the benchmark runs it\n"
    "rules:\n"
    "  - id: only.provenance\n"
    "    message: code from an indexed collection\n"
    "    provenance:\n"
    "      collections: [deny, warn]\n"
)


def test_short_copies_and_copies_before_a_comment_block_are_reported_in_a_large_scan(
    tmp_path: Path,
) -> None:
    """Enough text that worker processes check it; among unrelated files, a 13-line exact copy
    (about 50 tokens) and a function copied before a long comment, an import and a statement
    that reads like what followed it in the source: both once went unreported."""
    leak = tmp_path / "leak"
    leak.mkdir()
    for rel in ("heapq.py", "pickletools.py"):
        shutil.copy(STDLIB / rel, leak / rel)
    added = run("index", "add", "leak", "--collection", "leak", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    repo = tmp_path / "repo"
    repo.mkdir()
    unrelated = ["difflib.py", "textwrap.py", "shlex.py", "string.py", "glob.py", "fnmatch.py"]
    for copy in range(12):  # about 1.7 MB: past the size where the scan starts workers
        for rel in unrelated:
            text = (STDLIB / rel).read_text()
            (repo / f"{Path(rel).stem}_{copy}.py").write_text(text + f"\n# copy {copy}\n")
    heapq = (STDLIB / "heapq.py").read_text().splitlines()
    start = next(i for i, line in enumerate(heapq) if line.startswith("def heappushpop("))
    (repo / "short.py").write_text("\n".join(heapq[start : start + 13]) + "\n")
    pickletools = (STDLIB / "pickletools.py").read_text().splitlines()
    first = next(i for i, line in enumerate(pickletools) if line.startswith("def read_stringnl("))
    last = next(i for i in range(first + 1, len(pickletools)) if pickletools[i].startswith("stringnl"))
    function = pickletools[first:last]
    while not function[-1].strip():
        function.pop()
    comment = [f"# option {i}: read by the command line front end" for i in range(40)]
    (repo / "before_comment.py").write_text(
        "\n".join([*function, "", *comment, "import os", "", "exported = build(flat)"]) + "\n"
    )
    (tmp_path / "policy.yaml").write_text(PROVENANCE_ONLY)
    done = run(
        "scan", "repo", "--policy", "policy.yaml", "--format", "json", "--no-ledger", cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert sorted(f["path"] for f in findings) == ["before_comment.py", "short.py"]
    by_path = {f["path"]: f for f in findings}
    short = by_path["short.py"]
    assert short["source"]["path"] == "heapq.py"
    assert short["start_line"] <= 2
    assert short["end_line"] >= 10
    assert short["similarity"] == 1.0
    copied = by_path["before_comment.py"]
    assert copied["source"]["path"] == "pickletools.py"
    assert copied["start_line"] <= 2
    assert len(function) - 3 <= copied["end_line"] <= len(function)  # not over the comment
    assert abs(copied["source"]["start_line"] - (first + 1)) <= 2


def test_only_a_folder_scan_with_an_index_starts_the_workers_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork server is started before the policy loads only when much text may be matched:
    folders are scanned and an index exists (given, or the default one)."""
    from custodes.cli.scan import _worth_prestarting

    folder, file = tmp_path / "src", tmp_path / "a.py"
    folder.mkdir()
    file.write_text("x = 1\n")
    index = tmp_path / "i.db"
    index.write_bytes(b"")
    assert _worth_prestarting([folder], index, git=False)
    assert _worth_prestarting([file, folder], index, git=False)
    assert not _worth_prestarting([file], index, git=False)  # a pre-commit hook's few files
    assert not _worth_prestarting([folder], index, git=True)  # a git change or history
    assert not _worth_prestarting([folder], tmp_path / "missing.db", git=False)
    monkeypatch.chdir(tmp_path)  # no --index: the default index, absent here
    assert not _worth_prestarting([folder], None, git=False)
    (tmp_path / ".custodes").mkdir()
    (tmp_path / ".custodes" / "index.db").write_bytes(b"")
    assert _worth_prestarting([folder], None, git=False)
