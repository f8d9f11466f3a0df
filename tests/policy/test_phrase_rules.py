"""``phrases`` rules in the policy: loading, the faults reported at FILE:LINE, and the code gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from policytools import scan

from custodes.policy import PolicyError, load_policy
from custodes.policy.model import PhraseCheck
from custodes.subject import SubjectKind

HEAD = "schema: 1\nrules:\n  - id: acme.ban\n    message: banned\n    severity: high\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ban.yaml"
    path.write_text(HEAD + body)
    return path


def test_a_phrase_rule_loads_with_its_defaults(tmp_path: Path) -> None:
    policy = load_policy([write(tmp_path, "    phrases: {list: [a keylogger, Straße]}\n")])
    (rule,) = policy.rules
    assert isinstance(rule.check, PhraseCheck)
    assert rule.check.phrases == ("a keylogger", "Straße")
    assert (rule.check.ignorecase, rule.check.words) == (True, True)
    assert rule.stages == frozenset({"code"})
    one = load_policy([write(tmp_path, "    phrases:\n      list: adware\n      words: false\n")])
    assert isinstance(one.rules[0].check, PhraseCheck)
    assert one.rules[0].check.phrases == ("adware",)
    assert one.rules[0].check.words is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "    phrases: {list: []}\n",
            "ban.yaml:6: rules[0].phrases: 'list' needs at least one phrase",
        ),
        (
            "    phrases:\n      list: [ok, '  ']\n",
            "ban.yaml:6: rules[0].phrases: phrase 1 is empty (or only spaces)",
        ),
        (
            "    phrases:\n      list: [Adware, x, ADWARE]\n",
            "ban.yaml:6: rules[0].phrases: phrase 2 ('ADWARE') repeats phrase 0 (ignoring case)",
        ),
        (
            "    phrases:\n      list: [x]\n      case: true\n",
            "ban.yaml:8: rules[0].phrases: unknown key 'case'; allowed here: list, ignorecase, words",
        ),
        (
            "    phrases: {ignorecase: false}\n",
            "ban.yaml:6: rules[0].phrases: missing required key 'list'",
        ),
    ],
)
def test_faults_are_reported_at_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    write(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as caught:
        load_policy(["ban.yaml"])
    assert caught.value.message == message
    assert caught.value.exit_code == 2


def test_case_sensitive_lists_may_differ_in_case_only(tmp_path: Path) -> None:
    body = "    phrases: {list: [Adware, ADWARE], ignorecase: false}\n"
    (rule,) = load_policy([write(tmp_path, body)]).rules
    assert isinstance(rule.check, PhraseCheck)


def test_the_code_gate_reports_phrases_redacted_with_lines(tmp_path: Path) -> None:
    policy = load_policy([write(tmp_path, "    phrases: {list: [secret sauce]}\n")])
    text = "x = 1\n# the SECRET SAUCE recipe\ny = 'secret saucer'\n"
    (finding,) = scan(policy, "src/app.py", text)
    assert (finding.rule, finding.kind, finding.start_line, finding.end_line) == (
        "acme.ban", "policy", 2, 2,
    )  # fmt: skip
    assert finding.match_hash == hashlib.sha256(b"SECRET SAUCE").hexdigest()
    assert finding.preview is not None
    assert "SECRET SAUCE" not in finding.preview
    # A rule for code does not read prompts.
    assert scan(policy, "prompt", "secret sauce", SubjectKind.PROMPT) == []
