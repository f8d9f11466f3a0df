"""`custodes baseline create` and `custodes scan --baseline`, end to end through the console script."""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

CUSTODES = str(Path(sys.executable).parent / "custodes")
B32 = string.ascii_uppercase + "234567"
_RNG = random.Random(7)
# Format-valid, generated, not real.
K1, K2, K3 = ("AKIA" + "".join(_RNG.choice(B32) for _ in range(16)) for _ in range(3))
AWS = "secret.aws-access-key-id"


def _custodes(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CUSTODES, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def _json_scan(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    done = _custodes("scan", "--no-ledger", "--format", "json", *args, cwd=cwd)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text(
        f'def connect():\n    key_id = "{K1}"\n    return key_id\n'
    )
    return repo


def _states(report: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(f["path"], f["start_line"], f["state"]) for f in report["findings"]]


def test_old_findings_are_debt_and_a_new_secret_is_drift(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    created = _custodes("baseline", "create", cwd=repo)
    assert created.returncode == 0, created.stderr
    assert "baseline written to .custodes/baseline.json: 1 finding(s) (1 secret)" in created.stdout
    baseline_text = (repo / ".custodes" / "baseline.json").read_text()
    assert K1 not in baseline_text
    assert K1[-4:] not in baseline_text  # not even the preview
    code, report = _json_scan(cwd=repo)
    assert code == 0
    assert report["passed"] is True
    assert _states(report) == [("src/app.py", 2, "debt")]
    card = report["scorecard"]
    assert (card["violations"]["count"], card["debt"]["count"]) == (0, 1)
    assert card["drift"]["against"] == "baseline"
    assert card["drift"]["count"] == 0
    assert report["score"] == 100 - 25 // 4
    assert report["baseline"]["path"] == ".custodes/baseline.json"

    (repo / "src" / "new.py").write_text(f'TOKEN = "{K2}"\n')
    code, report = _json_scan(cwd=repo)
    assert code == 1
    assert _states(report) == [("src/app.py", 2, "debt"), ("src/new.py", 1, "new")]
    assert report["reasons"] == ["1 new finding(s) at or above high severity"]
    assert report["scorecard"]["drift"]["count"] == 1
    assert report["score"] == 100 - 25 - 25 // 4
    text = _custodes("scan", "--no-ledger", cwd=repo)
    assert text.returncode == 1
    assert "src/app.py:2  secret.aws-access-key-id" in text.stdout
    assert "(debt: in the baseline)" in text.stdout
    assert "drift       1 new since the baseline" in text.stdout
    for out in (text.stdout, text.stderr):
        assert K1 not in out
        assert K2 not in out

    ignored = _custodes("scan", "--no-ledger", "--no-baseline", "--format", "json", cwd=repo)
    assert ignored.returncode == 1
    assert {f["state"] for f in json.loads(ignored.stdout)["findings"]} == {"new"}


def test_moving_a_secret_to_another_line_keeps_it_baselined(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert _custodes("baseline", "create", cwd=repo).returncode == 0
    (repo / "src" / "app.py").write_text(
        '"""A module docstring added above."""\n\nimport os\n\n\n'
        f'KEY_ID = "{K1}"  # moved to module level\n\n\ndef connect():\n    return KEY_ID\n'
    )
    code, report = _json_scan(cwd=repo)
    assert code == 0
    assert _states(report) == [("src/app.py", 6, "debt")]
    # The path is part of the identity: the same key in another file is a new finding.
    (repo / "src" / "copy.py").write_text(f'K = "{K1}"\n')
    code, report = _json_scan(cwd=repo)
    assert code == 1
    assert ("src/copy.py", 1, "new") in _states(report)


def test_an_explicit_baseline_and_targets_relative_to_the_scanned_root(tmp_path: Path) -> None:
    _repo(tmp_path)
    out = tmp_path / "debt.json"
    created = _custodes("baseline", "create", "repo", "--output", str(out), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    # No default baseline in tmp_path/.custodes: without --baseline the finding is new.
    assert _json_scan("repo", cwd=tmp_path)[0] == 1
    code, report = _json_scan("repo", "--baseline", str(out), cwd=tmp_path)
    assert code == 0
    assert _states(report) == [("src/app.py", 2, "debt")]


def test_recreating_an_unchanged_baseline_rewrites_the_same_bytes(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    path = repo / ".custodes" / "baseline.json"
    env = {"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1774915200"}
    assert _custodes("baseline", "create", cwd=repo, env=env).returncode == 0
    first = path.read_bytes()
    assert json.loads(first)["created"] == "2026-03-31T00:00:00Z"
    later = {**env, "SOURCE_DATE_EPOCH": "1780000000"}
    assert _custodes("baseline", "create", cwd=repo, env=later).returncode == 0
    assert path.read_bytes() == first
    (repo / "b.py").write_text(f'K = "{K2}"\n')
    assert _custodes("baseline", "create", cwd=repo, env=later).returncode == 0
    changed = json.loads(path.read_text())
    assert changed["created"] == "2026-05-28T20:26:40Z"
    assert [row["path"] for row in changed["findings"]] == ["b.py", "src/app.py"]


def test_a_malformed_baseline_is_a_usage_error_naming_file_and_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert _custodes("baseline", "create", cwd=repo).returncode == 0
    path = repo / ".custodes" / "baseline.json"
    lines = path.read_text().splitlines()
    assert lines[5].lstrip().startswith('{"id": "')
    lines[5] = lines[5].replace('"severity": "high"', '"severity": "urgent"')
    path.write_text("\n".join(lines) + "\n")
    done = _custodes("scan", "--no-ledger", cwd=repo)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(
        "custodes: error: .custodes/baseline.json:6: findings.0.severity: "
    )
    assert "custodes baseline create" in done.stderr
    assert "Traceback" not in done.stderr
    path.write_text("{\n  oops\n}\n")
    done = _custodes("scan", "--no-ledger", cwd=repo)
    assert done.returncode == 2
    assert done.stderr.startswith("custodes: error: .custodes/baseline.json:2: not JSON")
    # --no-baseline gets past a broken file; --baseline with a missing file does not.
    assert _custodes("scan", "--no-ledger", "--no-baseline", cwd=repo).returncode == 1
    missing = _custodes("scan", "--no-ledger", "--baseline", "nope.json", cwd=repo)
    assert missing.returncode == 2
    assert "no baseline at nope.json" in missing.stderr
    both = _custodes("scan", "--baseline", "a.json", "--no-baseline", cwd=repo)
    assert both.returncode == 2
    assert "exclude each other" in both.stderr


def test_create_reports_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x\n")
    missing = _custodes("baseline", "create", "nope", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope does not exist" in missing.stderr
    unwritable = _custodes("baseline", "create", ".", "--output", "f/baseline.json", cwd=tmp_path)
    assert unwritable.returncode == 2
    assert "cannot write the baseline f/baseline.json" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr
    helped = _custodes("baseline", "create", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert "custodes baseline create ." in helped.stdout
    assert "Exit codes" in helped.stdout


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def test_a_diff_scan_measures_drift_against_the_change(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "Dev")
    (repo / ".gitignore").write_text(".custodes/\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    assert _custodes("baseline", "create", cwd=repo).returncode == 0
    # The change moves the baselined key (its line is added) and adds a new one.
    (repo / "src" / "app.py").write_text(f'# config\nKEY_ID = "{K1}"\n')
    (repo / "src" / "b.py").write_text(f'B = "{K3}"\n')
    _git(repo, "add", ".")
    code, report = _json_scan("--staged", cwd=repo)
    assert code == 1
    assert _states(report) == [("src/app.py", 2, "debt"), ("src/b.py", 1, "new")]
    drift = report["scorecard"]["drift"]
    assert (drift["against"], drift["count"]) == ("change", 1)
    code, report = _json_scan("--staged", "--no-baseline", cwd=repo)
    assert report["scorecard"]["drift"]["count"] == 2


def test_suppressions_in_yaml_and_shell_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "ci.yaml").write_text(
        "env:\n"
        f"  # custodes: ignore[{AWS}] throwaway key of the CI sandbox\n"
        f"  AWS_ACCESS_KEY_ID: {K1}\n"
    )
    (tmp_path / "deploy.sh").write_text(f'export KEY="{K2}"  # custodes: ignore[{AWS}]\n')
    done = _custodes("scan", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert [f["path"] for f in report["findings"]] == ["deploy.sh"]
    (quiet,) = report["suppressed"]
    assert (quiet["path"], quiet["start_line"]) == ("ci.yaml", 3)
    assert quiet["suppression"] == {"reason": "throwaway key of the CI sandbox", "line": 2}
    (warning,) = report["warnings"]
    assert (warning["path"], warning["line"]) == ("deploy.sh", 1)
    assert report["scorecard"]["suppressed"] == 1
    assert report["score"] == 75
    for out in (done.stdout, done.stderr):
        assert K1 not in out
        assert K2 not in out
    # The ledger records the suppression and its reason, and the finding states.
    entry = _custodes(
        "ledger", "entry", "--db", ".custodes/ledger.db", "--index", "0", "--json", cwd=tmp_path
    )
    recorded = json.loads(entry.stdout)["entry"]
    assert recorded["suppressed"][0]["reason"] == "throwaway key of the CI sandbox"
    assert recorded["findings"][0]["state"] == "new"
    assert recorded["scorecard"]["suppressed"] == 1
    assert recorded["warnings"] == 1
    assert K1 not in entry.stdout
