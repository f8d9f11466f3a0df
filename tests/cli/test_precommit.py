"""The pre-commit hook, run by the real ``pre-commit`` tool on a throwaway repository.

The manifest (.pre-commit-hooks.yaml) is checked with ``pre-commit validate-manifest``; the
behaviour runs its hook's entry as a ``repo: local`` / ``language: system`` hook against this
environment's console script, so no virtualenv is built and nothing is downloaded.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent
PRE_COMMIT = str(BIN / "pre-commit")
CUSTODES = str(BIN / "custodes")
# Format-valid but fake: AKIA + 16 base32 characters, not AWS's documented example key.
AWS_KEY = "AKIAQ3EGRXNVPB5OTXQA"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"),
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
        # The hook script runs pre-commit with this interpreter; keep the venv first on PATH.
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load(MANIFEST.read_text())
    (hook,) = (h for h in hooks if h["id"] == "custodes")
    assert isinstance(hook, dict)
    return hook


def test_manifest_is_valid() -> None:
    done = subprocess.run(
        [PRE_COMMIT, "validate-manifest", str(MANIFEST)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hook = _hook()
    assert hook["entry"] == "custodes scan --staged --no-ledger"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert hook["always_run"] is True
    assert hook["stages"] == ["pre-commit"]


@pytest.mark.slow
def test_commit_with_a_secret_is_blocked_and_a_clean_one_passes(tmp_path: Path) -> None:
    env = _env(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _run("git", "init", "-q", cwd=repo, env=env).returncode == 0
    hook = _hook()
    # The manifest's entry, with `custodes` resolved to this environment's console script.
    command, *args = shlex.split(hook["entry"])
    assert command == "custodes"
    config = {
        "repos": [
            {
                "repo": "local",
                "hooks": [
                    {
                        "id": hook["id"],
                        "name": hook["name"],
                        "entry": shlex.join([CUSTODES, *args]),
                        "language": "system",
                        "pass_filenames": hook["pass_filenames"],
                        "always_run": hook["always_run"],
                        "stages": hook["stages"],
                    }
                ],
            }
        ]
    }
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    validate = _run(PRE_COMMIT, "validate-config", ".pre-commit-config.yaml", cwd=repo, env=env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    install = _run(PRE_COMMIT, "install", cwd=repo, env=env)
    assert install.returncode == 0, install.stdout + install.stderr

    (repo / "app.py").write_text("print('hello')\n")
    _run("git", "add", ".", cwd=repo, env=env)
    clean = _run("git", "commit", "-q", "-m", "clean", cwd=repo, env=env)
    output = clean.stdout + clean.stderr
    assert clean.returncode == 0, output
    assert "custodes: secrets and leaked code in staged changes" in output
    assert "Passed" in output

    (repo / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    _run("git", "add", "settings.py", cwd=repo, env=env)
    blocked = _run("git", "commit", "-q", "-m", "leak", cwd=repo, env=env)
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "Failed" in output
    assert "secret.aws-access-key-id" in output
    assert "settings.py:1" in output
    assert AWS_KEY not in output
    log = _run("git", "log", "--format=%s", cwd=repo, env=env)
    assert log.stdout.split() == ["clean"]
    assert not (repo / ".custodes").exists()
