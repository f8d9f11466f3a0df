"""`custodes scan` end to end through the console script: verdict, report, ledger, no leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CUSTODES = str(Path(sys.executable).parent / "custodes")
# Format-valid but fake: AKIA + 16 base32 characters, not AWS's documented example key.
AWS_KEY = "AKIAQ3EGRXNVPB5OTXQA"


def _scan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CUSTODES, "scan", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text(
        "import os\n\n\ndef connect():\n"
        f'    key_id = "{AWS_KEY}"\n'
        "    return key_id\n"
    )
    (repo / "README.md").write_text("# demo\n")
    return repo


def test_a_secret_fails_the_gate_and_is_recorded(tmp_path: Path) -> None:
    _repo(tmp_path)
    done = _scan("repo", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is False
    (finding,) = report["findings"]
    assert finding["kind"] == "secret"
    assert finding["rule"] == "secret.aws-access-key-id"
    assert (finding["path"], finding["start_line"]) == ("src/app.py", 5)
    assert AWS_KEY not in done.stdout
    assert AWS_KEY not in done.stderr
    assert report["ledger"]["index"] == 0
    # Every file custodes wrote holds no clear secret either.
    state = tmp_path / ".custodes"
    for path in state.iterdir():
        assert AWS_KEY.encode() not in path.read_bytes(), path
    verify = subprocess.run(
        [CUSTODES, "ledger", "entry", "--db", str(state / "ledger.db"), "--index", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    entry = json.loads(verify.stdout)["entry"]
    assert entry["door"] == "scan"
    assert entry["action"] == "block"
    assert entry["findings"][0]["id"] == finding["id"]


def test_clean_tree_passes_with_exit_0(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("print('hello')\n")
    done = _scan("--no-ledger", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stdout
    assert "score 100/100" in done.stdout
    assert not (tmp_path / ".custodes").exists()


def test_fail_on_critical_lets_a_high_finding_pass(tmp_path: Path) -> None:
    _repo(tmp_path)
    done = _scan("repo", "--no-ledger", "--fail-on", "critical", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "score 75/100" in done.stdout


def test_report_to_a_file(tmp_path: Path) -> None:
    _repo(tmp_path)
    out = tmp_path / "report.json"
    done = _scan("repo", "--no-ledger", "--format", "json", "--output", str(out), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert json.loads(out.read_text())["findings"][0]["path"] == "src/app.py"


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    missing = _scan("nope", "--no-ledger", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("custodes: error: nope does not exist")
    bad_option = _scan("--fail-on", "severe", cwd=tmp_path)
    assert bad_option.returncode == 2
    assert "Traceback" not in bad_option.stderr
    no_ledger = _scan(".", "--ledger", str(tmp_path / "missing.db"), cwd=tmp_path)
    assert no_ledger.returncode == 2
    assert "no ledger at" in no_ledger.stderr


def test_custodes_state_and_binary_files_are_not_findings(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 100 + AWS_KEY.encode())
    first = _scan(".", "--format", "json", cwd=tmp_path)  # creates .custodes/ with a key
    second = _scan(".", "--format", "json", cwd=tmp_path)
    for done in (first, second):
        report = json.loads(done.stdout)
        assert report["findings"] == []
        assert {"path": "blob.bin", "reason": "binary"}.items() <= report["skipped"][0].items()
        assert all(not s["path"].startswith(".custodes") for s in report["skipped"])
    assert json.loads(second.stdout)["ledger"]["index"] == 1


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def test_git_modes_scan_only_added_lines(tmp_path: Path) -> None:
    repo = tmp_path / "g"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "Dev")
    # A key already in the base commit is history, not part of the change.
    (repo / "old.py").write_text(f'OLD = "{AWS_KEY}"\n')
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    (repo / "a.py").write_text(f'x = 1\ny = 2\nkey = "{AWS_KEY.replace("Q3", "Q4")}"\n')
    _git(repo, "add", "a.py")
    staged = _scan("--staged", "--no-ledger", "--format", "json", cwd=repo)
    assert staged.returncode == 1, staged.stderr
    (finding,) = json.loads(staged.stdout)["findings"]
    assert (finding["path"], finding["start_line"]) == ("a.py", 3)
    _git(repo, "commit", "-qm", "change")
    ranged = _scan("--git-range", "HEAD~1..HEAD", "--no-ledger", "--format", "json", cwd=repo)
    assert [(f["path"], f["start_line"]) for f in json.loads(ranged.stdout)["findings"]] == [
        ("a.py", 3)
    ]
    history = _scan("--history", "--no-ledger", "--format", "json", cwd=repo)
    paths = sorted(f["path"] for f in json.loads(history.stdout)["findings"])
    assert paths == ["a.py", "old.py"]
    both = _scan("--staged", "--history", "--no-ledger", cwd=repo)
    assert both.returncode == 2
    bad = _scan("--git-range", "nope..HEAD", "--no-ledger", cwd=repo)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
