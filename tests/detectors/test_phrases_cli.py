"""``phrases`` rules through the real CLI: ``custodes scan`` finds them in code, redacted, and an
invalid list stops it with FILE:LINE and exit 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ledgertools import run_cli

POLICY = """\
rules:
  - id: acme.ban
    message: a banned phrase
    severity: high
    phrases: {list: [secret sauce, "Straße"]}
"""


def test_scan_reports_phrases_in_code(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x = 1\n# the Secret Sauce\ny = 'secret saucer'\n")
    (tmp_path / "src" / "de.md").write_text("Die STRASSE.\n")
    (tmp_path / "ban.yaml").write_text(POLICY)
    done = run_cli("scan", "src", "--policy", "ban.yaml", "--no-ledger", "--format", "json",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    found = sorted((f["path"], f["start_line"], f["rule"], f["sha256"]) for f in report["findings"])
    assert found == [
        ("app.py", 2, "acme.ban", hashlib.sha256(b"Secret Sauce").hexdigest()),
        ("de.md", 1, "acme.ban", hashlib.sha256(b"STRASSE").hexdigest()),
    ]
    assert "Secret Sauce" not in done.stdout
    assert "STRASSE" not in done.stdout


def test_an_invalid_list_is_a_usage_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(POLICY.replace('"Straße"', '"SECRET SAUCE"'))
    done = run_cli("scan", ".", "--policy", "bad.yaml", "--no-ledger", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "bad.yaml:5: rules[0].phrases: phrase 1 ('SECRET SAUCE') repeats phrase 0 (ignoring case)"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
