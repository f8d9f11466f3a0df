"""The README's examples do what the README says they do."""

import re
from pathlib import Path

import pytest

from custodes.policy import load_policy

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_policy_example_loads(tmp_path: Path) -> None:
    [example] = [b for b in _blocks("yaml") if b.startswith("schema: 1")]
    path = tmp_path / "acme.yaml"
    path.write_text(example, encoding="utf-8")
    policy = load_policy([path])
    assert [rule.id for rule in policy.rules] == [
        "acme.no-network-in-src",
        "acme.no-network-in-src-js",
        "acme.internal-hosts",
    ]


def test_the_sdk_example_redacts_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from custodes import Caller, Guard

    [example] = [b for b in _blocks("python") if "guard.check_prompt" in b]
    prompt = re.search(r'check_prompt\("([^"]+)"', example)
    shown = re.search(r"# (\w+)\s+(.+)$", example.split("guard.check_prompt", 1)[1].splitlines()[1])
    assert prompt is not None
    assert shown is not None
    monkeypatch.chdir(tmp_path)
    guard = Guard(policy="enterprise", ledger=str(tmp_path / "ledger.db"))
    try:
        verdict = guard.check_prompt(prompt.group(1), caller=Caller(id="alice"))
    finally:
        guard.close()
    assert verdict.action.value == shown.group(1)
    assert verdict.text == shown.group(2)
