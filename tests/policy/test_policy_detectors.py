"""The detectors a policy switches on: secrets and provenance under the policy's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from policytools import PACKS, aws_key, openai_key, subject

from custodes.detectors.provenance import ProvenanceDetector
from custodes.detectors.rules import PolicyDetector, policy_detectors
from custodes.findings import Severity
from custodes.fingerprint.index import Index, Mode, add_paths
from custodes.policy import load_policy

LEAKED = '''"""Task planner of the agent."""

from dataclasses import dataclass, field


@dataclass
class Step:
    tool: str
    arguments: dict[str, str] = field(default_factory=dict)
    done: bool = False


def plan(task: str, tools: list[str]) -> list[Step]:
    steps = []
    for word in task.split():
        candidates = [t for t in tools if t.startswith(word.lower())]
        if not candidates:
            continue
        best = sorted(candidates, key=len)[0]
        steps.append(Step(tool=best, arguments={"query": word}))
    if not steps:
        steps.append(Step(tool="ask_user", arguments={"question": task}))
    return steps


def run(steps: list[Step], registry: dict[str, object]) -> int:
    finished = 0
    for step in steps:
        handler = registry.get(step.tool)
        if handler is None:
            raise KeyError(f"no tool named {step.tool}")
        handler(**step.arguments)
        step.done = True
        finished += 1
    return finished
'''


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    root = tmp_path_factory.mktemp("collections")
    (root / "leak").mkdir()
    (root / "leak" / "planner.py").write_text(LEAKED)
    (root / "ours").mkdir()
    (root / "ours" / "planner.py").write_text(LEAKED.replace("Task planner", "Our planner"))
    opened = Index.open(root / "index.db", create=True)
    add_paths(opened, [root / "leak"], "leak-2026", mode=Mode.DENY, jobs=1)
    add_paths(opened, [root / "ours"], "ours", mode=Mode.WARN, jobs=1)
    return opened


def test_without_an_index_a_provenance_rule_is_not_run_and_says_so() -> None:
    detectors, notes = policy_detectors(PACKS)
    assert len(detectors) == 1
    assert notes == [
        "rule enterprise.provenance-deny not run: it needs a provenance index (give --index)",
        "rule enterprise.provenance-warn not run: it needs a provenance index (give --index)",
    ]


def test_a_policy_without_provenance_rules_never_builds_the_detector() -> None:
    built: list[int] = []

    def factory() -> ProvenanceDetector:
        built.append(1)
        raise AssertionError("not needed")

    _, notes = policy_detectors(load_policy(["owasp-llm"]), provenance=factory)
    assert (built, notes) == ([], [])


def test_copied_leaked_code_is_reported_under_the_deny_rule(index: Index) -> None:
    (detector,), notes = policy_detectors(PACKS, provenance=lambda: ProvenanceDetector(index))
    assert notes == []
    copied = "import logging\n\nLOG = logging.getLogger(__name__)\n\n\n" + LEAKED
    found = [f for f in detector.scan(subject("src/agent/planner.py", copied)) if f.kind == "provenance"]
    assert found, "the copy was not matched"
    # The code is in both collections: the deny one under the deny rule, ours under warn.
    assert {f.source.collection for f in found if f.source} == {"leak-2026", "ours"}
    for finding in found:
        assert finding.source is not None
        mode = {"leak-2026": "deny", "ours": "warn"}[finding.source.collection]
        assert finding.rule == f"provenance.{mode}"
        assert finding.controls == ("nist-ai-rmf:MANAGE-3.1", "iso-42001:A.10")
        assert finding.start_line >= 6  # the copy starts below the added header


def test_a_provenance_rule_keeps_only_the_collections_it_names(
    index: Index, tmp_path: Path
) -> None:
    policy_file = tmp_path / "warn-only.yaml"
    policy_file.write_text(
        "rules:\n  - id: acme.own-code\n    message: our code\n"
        "    controls: ['nist-ai-rmf:MANAGE-3.1']\n    provenance: {collections: [warn]}\n"
    )
    policy = load_policy([policy_file])
    detector = PolicyDetector(policy, provenance=ProvenanceDetector(index))
    # The code is in both collections; a rule over warn collections reports only ours.
    found = list(detector.scan(subject("src/planner.py", LEAKED)))
    assert found
    assert {(f.rule, f.source.collection if f.source else None) for f in found} == {
        ("provenance.warn", "ours")
    }
    by_name = tmp_path / "by-name.yaml"
    by_name.write_text(
        "rules:\n  - id: acme.leak\n    message: the 2026 leak\n    severity: critical\n"
        "    provenance: {collections: ['leak-*']}\n"
    )
    detector = PolicyDetector(load_policy([by_name]), provenance=ProvenanceDetector(index))
    found = list(detector.scan(subject("src/planner.py", LEAKED)))
    assert {(f.source.collection if f.source else None, f.severity) for f in found} == {
        ("leak-2026", Severity.CRITICAL)
    }


def test_a_secret_admitted_by_two_packs_carries_both_packs_controls() -> None:
    code = f'OPENAI_API_KEY = "{openai_key(11)}"\nAWS_ACCESS_KEY_ID = "{aws_key(12)}"\n'
    found = {f.rule: f for f in PolicyDetector(PACKS).scan(subject("src/keys.py", code))}
    assert set(found) == {"secret.openai-api-key", "secret.aws-access-key-id"}
    assert found["secret.openai-api-key"].controls == (
        "eu-ai-act:art15",
        "nist-ai-rmf:MEASURE-2.7",
        "owasp-llm:LLM02",
    )
    assert found["secret.aws-access-key-id"].controls == ("eu-ai-act:art15", "nist-ai-rmf:MEASURE-2.7")
    assert all(openai_key(11) not in repr(f) and aws_key(12) not in repr(f) for f in found.values())


def test_a_policy_without_a_secrets_rule_runs_no_secrets_detector() -> None:
    code = f'AWS_ACCESS_KEY_ID = "{aws_key(13)}"\n'
    assert list(PolicyDetector(load_policy(["owasp-llm"])).scan(subject("src/keys.py", code))) == []


def test_a_secrets_rule_can_override_severity_and_scope(tmp_path: Path) -> None:
    policy_file = tmp_path / "secrets.yaml"
    policy_file.write_text(
        "rules:\n  - id: acme.keys\n    message: keys\n    severity: low\n"
        "    paths: {exclude: ['fixtures/']}\n    secrets: {rules: ['secret.aws-*']}\n"
    )
    detector = PolicyDetector(load_policy([policy_file]))
    code = f'AWS_ACCESS_KEY_ID = "{aws_key(14)}"\nOPENAI_API_KEY = "{openai_key(15)}"\n'
    (finding,) = detector.scan(subject("src/keys.py", code))
    assert (finding.rule, finding.severity) == ("secret.aws-access-key-id", Severity.LOW)
    assert list(detector.scan(subject("fixtures/keys.py", code))) == []
