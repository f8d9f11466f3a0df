"""Every credential rule finds a format-valid fake and rejects its hard negatives.

The tests are parametrised over the rule table, so a rule added without a positive and a
negative in ``secret_samples.SAMPLES`` fails here.
"""

from __future__ import annotations

import hashlib
import random
import re
import re._parser as sre_parse  # the regex engine's own parser: pattern widths

import pytest
from secret_samples import SAMPLES, Sample

from custodes.detectors import secrets
from custodes.detectors.secret_rules import RULES, SecretRule, Severity

RULE_IDS = [rule.id for rule in RULES]


def _short(rule: SecretRule) -> str:
    return rule.id.removeprefix("secret.")


def _sample(rule: SecretRule) -> Sample:
    sample = SAMPLES.get(_short(rule))
    if sample is None:
        pytest.fail(f"{rule.id} has no sample: add a positive and hard negatives")
    return sample


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_the_table_is_large_and_its_ids_unique_and_stable() -> None:
    assert len(RULES) >= 60
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    for rule_id in RULE_IDS:
        assert re.fullmatch(r"secret\.[a-z0-9]+(?:-[a-z0-9]+)*", rule_id), rule_id


def test_every_rule_has_samples_and_no_sample_is_orphaned() -> None:
    assert set(SAMPLES) == {_short(rule) for rule in RULES}


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_fields(rule: SecretRule) -> None:
    assert rule.description
    assert rule.description == rule.description.strip()
    assert isinstance(rule.severity, Severity)
    assert rule.keywords
    assert all(k == k.lower() for k in rule.keywords)
    assert "secret" in rule.pattern.groupindex


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_every_quantifier_is_bounded_by_max_len(rule: SecretRule) -> None:
    # Bounded widths keep each attempt linear and make keyword windows exact.
    _, high = sre_parse.parse(rule.pattern.pattern).getwidth()
    assert high <= rule.max_len, f"{rule.id}: a match can reach {high} > max_len {rule.max_len}"


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_finds_a_format_valid_fake(rule: SecretRule) -> None:
    text, secret = _sample(rule).positive(random.Random(rule.id))
    findings = list(secrets.scan_text(text))
    assert [f.rule_id for f in findings if f.sha256 == _sha(secret)] == [rule.id]
    [finding] = [f for f in findings if f.rule_id == rule.id]
    assert finding.severity == rule.severity
    assert finding.description == rule.description
    # The rule alone finds it too: it does not lean on another rule's keywords.
    assert [f.sha256 for f in secrets.scan_text(text, rules=[rule])] == [_sha(secret)]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rejects_hard_negatives(rule: SecretRule) -> None:
    negatives = _sample(rule).negatives(random.Random(rule.id))
    assert negatives, f"{rule.id} needs at least one hard negative"
    for text in negatives:
        found = {f.rule_id for f in secrets.scan_text(text)}
        assert rule.id not in found, text


@pytest.mark.parametrize("rule", [r for r in RULES if r.anchored], ids=lambda r: r.id)
def test_anchored_rules_match_around_a_keyword(rule: SecretRule) -> None:
    # The promise windowed scanning relies on: every match contains one of the keywords.
    text, _ = _sample(rule).positive(random.Random(rule.id))
    for match in rule.pattern.finditer(text):
        assert any(k in match.group(0).lower() for k in rule.keywords), match.group(0)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_windowed_scan_equals_whole_text_scan(rule: SecretRule) -> None:
    rng = random.Random(rule.id)
    sample = _sample(rule)
    texts = [sample.positive(rng)[0], *sample.negatives(rng)]
    for text in texts:
        padded = "x = 1\n" * 50 + text + "\ny = 2" * 50
        assert secrets._scan(padded, "", RULES, windowed=True) == secrets._scan(
            padded, "", RULES, windowed=False
        )


def test_github_classic_tokens_are_checked_against_their_crc32() -> None:
    from secret_samples import github_token

    rng = random.Random(7)
    good, bad = github_token(rng, "ghp_"), github_token(rng, "ghp_", valid=False)
    assert [f.rule_id for f in secrets.scan_text(f"t {good} ")] == [
        "secret.github-personal-access-token"
    ]
    assert list(secrets.scan_text(f"t {bad} ")) == []


def test_stripe_test_keys_are_low_severity() -> None:
    rng = random.Random(3)
    text, _ = SAMPLES["stripe-test-key"].positive(rng)
    [finding] = secrets.scan_text(text)
    assert finding.severity is Severity.LOW
