"""Invalid policies, pinned by golden files: tests/data/policy/<case>.yaml fails to load with
exactly the problems written in <case>.expected, each as FILE:LINE: where: what."""

from __future__ import annotations

from pathlib import Path

import pytest

from custodes.errors import UsageError
from custodes.policy import PolicyError, load_policy

DATA = Path(__file__).parent.parent / "data" / "policy"
CASES = sorted(p.stem for p in DATA.glob("*.yaml"))


def test_there_are_golden_cases_for_every_kind_of_fault() -> None:
    # Unknown key, bad value, unknown control, invalid regex, empty rules, duplicate ids,
    # YAML syntax, and more: each has its own golden file.
    assert {
        "unknown-key",
        "bad-severity",
        "unknown-control",
        "invalid-regex",
        "empty-rules",
        "duplicate-id",
        "yaml-syntax",
    } <= set(CASES)
    assert all((DATA / f"{case}.expected").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_invalid_policy_reports_every_problem_with_its_line(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA)  # messages name the file as given: "<case>.yaml:LINE: …"
    with pytest.raises(PolicyError) as caught:
        load_policy([f"{case}.yaml"])
    expected = (DATA / f"{case}.expected").read_text(encoding="utf-8").rstrip("\n")
    assert caught.value.message == expected
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2
    assert caught.value.hint is not None


def test_a_missing_file_or_pack_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy([tmp_path / "nope.yaml"])
    assert caught.value.message == f"{tmp_path / 'nope.yaml'}: no such policy file or built-in pack"
    assert caught.value.hint == "give a YAML policy file or a built-in pack: enterprise, owasp-llm"
    with pytest.raises(PolicyError, match="enterprize: no such policy file"):
        load_policy(["enterprize"])


def test_packs_combined_must_not_define_a_rule_twice(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "rules:\n  - id: enterprise.secrets\n    message: my own\n    secrets: {}\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(["enterprise", mine])
    assert caught.value.message == (
        f"{mine}:2: rules[0].id: rule id 'enterprise.secrets' is also defined in "
        "enterprise.yaml:15; rule ids are unique across the packs combined"
    )


def test_an_undecodable_file_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("rules: [] # caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin1.yaml: not UTF-8 text \(byte 15\)"):
        load_policy([bad])


def test_a_yaml_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    # Ten aliases of ten aliases, nine deep: 10**9 nodes once expanded.
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nrules: []\n")
    with pytest.raises(PolicyError) as caught:
        load_policy([bomb])
    assert caught.value.message == (
        f"{bomb}:1: the policy expands to more than 200,000 YAML nodes (aliases of aliases); "
        "write it out plainly"
    )


def test_nesting_too_deep_for_the_parser_is_reported(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("rules: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(PolicyError, match=r"deep\.yaml: YAML syntax: nested too deeply"):
        load_policy([deep])
