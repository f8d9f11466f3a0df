"""Loading packs: the control list, the built-in packs, the policy's identity, rule scopes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import rfc8785
import yaml
from policytools import scan

from custodes.policy import CONTROLS, DEFAULT_PACKS, PACKS, load_policy
from custodes.policy.loader import pack_text
from custodes.subject import SubjectKind

# Typed from CONTROLS.md, not copied from the code.
GOLDEN_CONTROLS = {
    *(f"owasp-llm:LLM{n:02d}" for n in range(1, 11)),
    *(
        f"eu-ai-act:art{n}"
        for n in (4, 9, 10, 11, 12, 13, 14, 15, 17, 19, 26, 27, 50, 86)
    ),
    "nist-ai-rmf:GOVERN-1.5",
    "nist-ai-rmf:GOVERN-1.6",
    "nist-ai-rmf:GOVERN-4.3",
    "nist-ai-rmf:MAP-3.5",
    "nist-ai-rmf:MEASURE-2.4",
    "nist-ai-rmf:MEASURE-2.6",
    "nist-ai-rmf:MEASURE-2.7",
    "nist-ai-rmf:MEASURE-2.8",
    "nist-ai-rmf:MEASURE-3.1",
    "nist-ai-rmf:MEASURE-3.3",
    "nist-ai-rmf:MANAGE-2.4",
    "nist-ai-rmf:MANAGE-3.1",
    "nist-ai-rmf:MANAGE-4.1",
    "nist-ai-rmf:MANAGE-4.3",
    "iso-42001:A.6.2.6",
    "iso-42001:A.6.2.8",
    "iso-42001:A.8.3",
    "iso-42001:A.8.4",
    "iso-42001:A.9",
    "iso-42001:A.10",
}


def test_the_control_list_is_the_one_of_controls_md() -> None:
    assert set(CONTROLS) == GOLDEN_CONTROLS
    assert all(CONTROLS[c] for c in CONTROLS)  # each has its title


@pytest.mark.parametrize("pack", PACKS)
def test_every_rule_of_every_pack_maps_to_valid_controls(pack: str) -> None:
    policy = load_policy([pack])
    assert policy.rules
    for rule in policy.rules:
        assert rule.controls, rule.id
        assert set(rule.controls) <= GOLDEN_CONTROLS, rule.id
        assert rule.id.startswith(f"{pack}."), rule.id
        if pack == "owasp-llm":
            assert any(c.startswith("owasp-llm:LLM") for c in rule.controls), rule.id


def test_the_owasp_pack_covers_the_code_side_entries() -> None:
    named = {c for r in load_policy(["owasp-llm"]).rules for c in r.controls}
    assert {f"owasp-llm:LLM{n:02d}" for n in (1, 2, 3, 5, 6, 7, 10)} <= named


def _reference_sha256(*texts: str) -> str:
    return hashlib.sha256(rfc8785.dumps([yaml.safe_load(t) for t in texts])).hexdigest()


def test_the_policy_hash_is_that_of_the_canonical_content_of_its_packs() -> None:
    both = load_policy(["enterprise", "owasp-llm"])
    assert both.name == "enterprise+owasp-llm"
    assert both.sha256 == _reference_sha256(pack_text("enterprise"), pack_text("owasp-llm"))
    assert both.ref == {"name": "enterprise+owasp-llm", "sha256": both.sha256}
    reversed_ = load_policy(["owasp-llm", "enterprise"])
    assert reversed_.sha256 != both.sha256  # the order rules are applied in is part of it


def test_no_policy_means_the_enterprise_pack() -> None:
    assert DEFAULT_PACKS == ("enterprise",)
    default = load_policy()
    assert (default.name, default.sha256) == ("enterprise", load_policy(["enterprise"]).sha256)
    assert load_policy(["enterprise", "enterprise"]).sha256 == default.sha256


RULE = """\
name: acme
rules:
  - id: acme.todo
    message: a TODO left behind
    severity: low
    regex: {pattern: 'TODO'}
"""


def test_layout_and_comments_do_not_change_the_hash_but_a_rule_does(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(RULE)
    same = tmp_path / "b.yaml"
    same.write_text(
        "# our rules\nname:   acme\nrules:\n- {id: acme.todo, message: a TODO left behind,\n"
        "   severity: low, regex: {pattern: TODO}}   # flow style\n"
    )
    changed = tmp_path / "c.yaml"
    changed.write_text(RULE.replace("severity: low", "severity: medium"))
    hashes = [load_policy([p]).sha256 for p in (first, same, changed)]
    assert hashes[0] == hashes[1] == _reference_sha256(RULE)
    assert hashes[2] != hashes[0]


def test_a_file_named_like_a_pack_wins_over_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "enterprise").write_text(RULE)
    monkeypatch.chdir(tmp_path)
    assert load_policy(["enterprise"]).name == "acme"


def test_the_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "team-rules.yaml"
    path.write_text(RULE.replace("name: acme\n", ""))
    assert load_policy([path]).name == "team-rules"


# -- scopes: paths, kinds, languages, conditions ---------------------------------------------------

SCOPED = """\
rules:
  - id: t.prod
    message: eval in production code
    severity: high
    paths: {include: ["src/"], exclude: ["tests/", "**/test_*.py"]}
    python: {calls: [eval]}
  - id: t.members
    message: TODO in an archive member
    severity: low
    kinds: [member]
    regex: {pattern: TODO}
  - id: t.ts-only
    message: TODO in TypeScript
    severity: low
    languages: [typescript]
    regex: {pattern: TODO}
  - id: t.when
    message: TODO outside generated code
    severity: low
    when: '!path.contains("/generated/") && kind == "file" && language != "markdown"'
    regex: {pattern: FIXME}
"""


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("scoped") / "scoped.yaml"
    path.write_text(SCOPED)
    return load_policy([path])


@pytest.mark.parametrize(
    ("path", "fires"),
    [
        ("src/app.py", True),
        ("src/pkg/deep/app.py", True),
        ("src/tests/test_app.py", False),
        ("src/pkg/test_app.py", False),
        ("tests/app.py", False),
        ("lib/app.py", False),
        ("app.py", False),
    ],
)
def test_paths_include_production_code_and_exclude_tests(scoped, path: str, fires: bool) -> None:  # type: ignore[no-untyped-def]
    found = [f.rule for f in scan(scoped, path, "eval(source)\n")]
    assert found == (["t.prod"] if fires else [])


def test_kinds_and_languages_restrict_a_rule(scoped) -> None:  # type: ignore[no-untyped-def]
    assert [f.rule for f in scan(scoped, "pkg.tgz!package/a.txt", "TODO\n", SubjectKind.MEMBER)] == ["t.members"]
    assert [f.rule for f in scan(scoped, "a.txt", "TODO\n")] == []
    assert [f.rule for f in scan(scoped, "web/a.ts", "// TODO\n")] == ["t.ts-only"]
    assert [f.rule for f in scan(scoped, "web/a.js", "// TODO\n")] == []


@pytest.mark.parametrize(
    ("path", "kind", "fires"),
    [
        ("src/app.py", SubjectKind.FILE, True),
        ("src/generated/app.py", SubjectKind.FILE, False),
        ("src/app.py", SubjectKind.HUNK, False),
        ("notes.txt", SubjectKind.FILE, True),  # no language: "" in the condition
    ],
)
def test_a_cel_condition_decides_per_subject(scoped, path: str, kind: SubjectKind, fires: bool) -> None:  # type: ignore[no-untyped-def]
    found = [f.rule for f in scan(scoped, path, "# FIXME\n", kind)]
    assert found == (["t.when"] if fires else [])


def test_a_condition_that_fails_at_run_time_applies_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "fails.yaml"
    # Index 3 of a path of fewer parts fails in CEL; the rule then applies (fail closed).
    path.write_text(
        "rules:\n  - id: t.deep\n    message: m\n    severity: low\n"
        "    when: 'path.split(\"/\")[3] == \"x\"'\n    regex: {pattern: FIXME}\n"
    )
    policy = load_policy([path])
    assert [f.rule for f in scan(policy, "a/b.py", "FIXME\n")] == ["t.deep"]


def test_regex_flags_apply_to_pattern_and_pattern_not(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        "rules:\n  - id: t.todo\n    message: m\n    severity: low\n"
        "    regex:\n      pattern: 'todo:.+'\n      pattern-not: ['wontfix']\n"
        "      flags: [ignorecase]\n"
    )
    policy = load_policy([path])
    text = "# TODO: one\n# ToDo: two (WONTFIX)\n# todo three\n"
    assert [f.start_line for f in scan(policy, "a.py", text)] == [1]
