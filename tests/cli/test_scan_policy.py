"""`custodes scan --policy` end to end through the console script."""

from __future__ import annotations

import hashlib
import io
import json
import random
import string
import subprocess
import sys
import tarfile
from pathlib import Path

import rfc8785
import yaml

CUSTODES = str(Path(sys.executable).parent / "custodes")
PACKS = Path(__file__).parents[2] / "src" / "custodes" / "policy" / "packs"


def _scan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CUSTODES, "scan", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _aws_key() -> str:
    rng = random.Random(2026)
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _llm_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src" / "agent").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "src" / "agent" / "run.py").write_text(
        "import subprocess\n\nfrom openai import OpenAI\n\nclient = OpenAI()\n\n\n"
        "def act(task: str) -> str:\n"
        "    reply = client.chat.completions.create(\n"
        '        model="gpt-4o",\n'
        '        messages=[{"role": "user", "content": f"Plan the shell command for: {task}"}],\n'
        "    )\n"
        "    command = reply.choices[0].message.content\n"
        "    return subprocess.check_output(command, shell=True, text=True)\n"
    )
    (repo / "src" / "agent" / "models.py").write_text(
        "from transformers import AutoModel\n\n"
        'model = AutoModel.from_pretrained("acme/planner", trust_remote_code=True)\n'
    )
    # The same code in a test is not production code: the owasp-llm code rules skip it.
    (repo / "tests" / "test_run.py").write_text((repo / "src" / "agent" / "run.py").read_text())
    (repo / "README.md").write_text("# agent\n")
    return repo


def test_an_invalid_policy_stops_the_scan_before_anything_is_read(tmp_path: Path) -> None:
    repo = _llm_repo(tmp_path)
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: acme.no-eval\n    message: eval of dynamic input\n"
        "    severity: urgent\n    python: {calls: [eval]}\n"
    )
    done = _scan("repo", "--policy", "bad.yaml", "--format", "json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "bad.yaml:4: rules[0].severity: 'urgent' is not allowed" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / ".custodes").exists()  # no decision recorded: nothing was scanned
    assert repo.exists()


def test_a_policy_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    _llm_repo(tmp_path)
    done = _scan("repo", "--policy", "owasp", "--no-ledger", cwd=tmp_path)
    assert done.returncode == 2
    assert "owasp: no such policy file or built-in pack" in done.stderr
    assert "enterprise, owasp-llm" in done.stderr


def test_the_owasp_pack_fails_the_gate_with_its_rule_ids(tmp_path: Path) -> None:
    _llm_repo(tmp_path)
    done = _scan("repo", "--policy", "owasp-llm", "--format", "json", "--no-ledger", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is False
    found = {(f["rule"], f["path"], f["start_line"]) for f in report["findings"]}
    assert found == {
        ("owasp-llm.python-prompt-formatting", "src/agent/run.py", 9),
        ("owasp-llm.python-no-max-tokens", "src/agent/run.py", 9),
        ("owasp-llm.python-model-output-execution", "src/agent/run.py", 14),
        ("owasp-llm.trust-remote-code", "src/agent/models.py", 3),
        ("owasp-llm.unpinned-model-download", "src/agent/models.py", 3),
    }
    by_rule = {f["rule"]: f for f in report["findings"]}
    execution = by_rule["owasp-llm.python-model-output-execution"]
    assert execution["severity"] == "high"
    assert execution["kind"] == "policy"
    assert execution["controls"] == ["owasp-llm:LLM05", "eu-ai-act:art15", "nist-ai-rmf:MEASURE-2.7"]
    assert execution["preview"] == "subprocess.check_output(…)"
    assert len(execution["sha256"]) == 64


def _reference_sha256(*packs: str) -> str:
    texts = [(PACKS / f"{p}.yaml").read_text(encoding="utf-8") for p in packs]
    return hashlib.sha256(rfc8785.dumps([yaml.safe_load(t) for t in texts])).hexdigest()


def test_a_bare_scan_applies_the_enterprise_pack_and_records_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "sync.py").write_text(
        "import requests\n\n"
        f'KEY_ID = "{_aws_key()}"\n\n\n'
        "def push(url, body):\n"
        "    return requests.post(url, json=body, verify=False)\n"
    )
    done = _scan("repo", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert {(f["kind"], f["rule"], f["start_line"]) for f in report["findings"]} == {
        ("secret", "secret.aws-access-key-id", 3),
        ("policy", "enterprise.python-network-call", 7),
        ("policy", "enterprise.python-tls-verify-disabled", 7),
    }
    assert _aws_key() not in done.stdout + done.stderr
    entry = subprocess.run(
        [CUSTODES, "ledger", "entry", "--db", ".custodes/ledger.db", "--index", "0", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    recorded = json.loads(entry.stdout)["entry"]
    assert recorded["policy"] == {"name": "enterprise", "sha256": _reference_sha256("enterprise")}


def test_packs_combine_and_the_decision_names_them_all(tmp_path: Path) -> None:
    _llm_repo(tmp_path)
    done = _scan(
        "repo", "--policy", "enterprise", "--policy", "owasp-llm", "--format", "json", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    rules = {f["rule"] for f in json.loads(done.stdout)["findings"]}
    assert "enterprise.python-shell-injection" in rules
    assert "owasp-llm.python-model-output-execution" in rules
    entry = subprocess.run(
        [CUSTODES, "ledger", "entry", "--db", ".custodes/ledger.db", "--index", "0", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(entry.stdout)["entry"]["policy"] == {
        "name": "enterprise+owasp-llm",
        "sha256": _reference_sha256("enterprise", "owasp-llm"),
    }


def test_a_policy_file_of_our_own(tmp_path: Path) -> None:
    repo = _llm_repo(tmp_path)
    (repo / "src" / "agent" / "notes.py").write_text("# TODO(bob): remove the debug hook\n")
    (tmp_path / "acme.yaml").write_text(
        "name: acme\nrules:\n"
        "  - id: acme.todo-owner\n    message: a TODO with an owner left in production code\n"
        "    severity: low\n    controls: ['nist-ai-rmf:GOVERN-1.5']\n"
        "    paths: {include: ['src/'], exclude: ['tests/']}\n"
        "    regex: {pattern: 'TODO\\(\\w+\\)', pattern-not: ['TODO\\(ci\\)']}\n"
    )
    done = _scan("repo", "--policy", "acme.yaml", "--format", "json", "--no-ledger", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # a low finding does not fail the default gate
    (finding,) = json.loads(done.stdout)["findings"]
    assert (finding["rule"], finding["path"], finding["start_line"]) == (
        "acme.todo-owner",
        "src/agent/notes.py",
        1,
    )
    assert finding["preview"] != "TODO(bob)"  # masked, as a regex may match a secret


def test_the_leaked_tarball_of_2026_is_stopped(tmp_path: Path) -> None:
    source_map = {
        "version": 3,
        "sources": ["../src/tools/agent.ts"],
        "sourcesContent": ["export const plan = (task: string) => task.split(' ');\n"],
        "mappings": "AAAA",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {
            "package/package.json": b'{"name": "cli", "version": "2.1.88"}',
            "package/cli.js": b"export const plan=t=>t.split(' ');\n//# sourceMappingURL=cli.js.map\n",
            "package/cli.js.map": json.dumps(source_map).encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "cli-2.1.88.tgz").write_bytes(buffer.getvalue())
    done = _scan("cli-2.1.88.tgz", "--format", "json", "--no-ledger", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    (finding,) = json.loads(done.stdout)["findings"]
    assert finding["rule"] == "enterprise.artifact-source-leak"
    assert finding["severity"] == "critical"
    assert finding["path"] == "cli-2.1.88.tgz!package/cli.js.map"


def test_help_teaches_the_policy_option() -> None:
    done = subprocess.run([CUSTODES, "scan", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "--policy FILE|PACK" in done.stdout
    assert "custodes scan . --policy enterprise --policy owasp-llm" in done.stdout
