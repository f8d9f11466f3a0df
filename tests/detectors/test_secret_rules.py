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
from custodes.detectors.secret_rules import RULES, SecretRule, Severity, value_openings

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


# -- what a rule claims: the openings of its values and the names of its settings ------------------


def _reference_openings(rule: SecretRule) -> set[str]:
    """The fixed strings that open the rule's secret, read off the regex engine's own parse tree.

    An implementation independent of ``value_openings``: it walks sre's parsed form (which
    factors common prefixes and folds one-character branches into sets) instead of the text.
    """
    parsed = sre_parse.parse(rule.pattern.pattern)
    index = parsed.state.groupdict[rule.secret_group]

    def find(items: sre_parse.SubPattern) -> sre_parse.SubPattern | None:
        for op, av in items:
            children: list[sre_parse.SubPattern] = []
            if str(op) == "SUBPATTERN":
                if av[0] == index:
                    return av[3]
                children = [av[3]]
            elif str(op) == "BRANCH":
                children = list(av[1])
            elif str(op) in {"MAX_REPEAT", "MIN_REPEAT"}:
                children = [av[2]]
            for child in children:
                found = find(child)
                if found is not None:
                    return found
        return None

    def openings(items: sre_parse.SubPattern) -> tuple[set[str], bool]:
        heads = {""}
        for op, av in items:
            kind = str(op)
            if kind in {"ASSERT", "ASSERT_NOT"}:
                continue
            if kind == "LITERAL":
                heads = {h + chr(av) for h in heads}
            elif kind == "IN" and all(str(o) == "LITERAL" for o, _ in av):
                heads = {h + chr(c) for h in heads for _, c in av}
            elif kind == "SUBPATTERN" and not av[1] and not av[2]:  # no flags: case is fixed
                tails, whole = openings(av[3])
                heads = {h + t for h in heads for t in tails}
                if not whole:
                    return heads, False
            elif kind == "BRANCH":
                parts = [openings(alternative) for alternative in av[1]]
                heads = {h + t for h in heads for tails, _ in parts for t in tails}
                if not all(whole for _, whole in parts):
                    return heads, False
            else:
                return heads, False
        return heads, True

    group = find(parsed)
    assert group is not None
    return openings(group)[0]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_value_openings_agree_with_the_regex_engines_parse(rule: SecretRule) -> None:
    assert set(value_openings(rule)) == _reference_openings(rule)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_every_fake_opens_with_one_of_its_rules_openings(rule: SecretRule) -> None:
    _, secret = _sample(rule).positive(random.Random("open-" + rule.id))
    assert secret.startswith(value_openings(rule)), (secret[:20], value_openings(rule))


def test_a_few_openings_pinned() -> None:
    by_id = {_short(rule): value_openings(rule) for rule in RULES}
    assert set(by_id["aws-access-key-id"]) == {"AKIA", "ASIA", "ABIA", "ACCA"}
    assert set(by_id["digitalocean-token"]) == {"dop_v1_", "doo_v1_", "dor_v1_"}
    assert set(by_id["pypi-api-token"]) == {"pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"}
    assert by_id["atlassian-api-token"] == ("ATATT3",)
    assert by_id["aws-secret-access-key"] == ("",)  # a name, not its value, identifies it
    assert by_id["generic-assignment"] == ("",)


_CLAIMING = [rule for rule in RULES if rule.claims is not None]


def test_the_rules_known_by_a_settings_name_claim_names() -> None:
    assert {_short(rule) for rule in _CLAIMING} >= {
        "aws-secret-access-key",
        "heroku-api-key",
        "twilio-auth-token",
        "cloudflare-api-token",
        "datadog-api-key",
    }
    # A self-identifying token claims no name: OPENAI_API_KEY may hold any compatible
    # provider's key, MAILGUN_API_KEY Mailgun's newer keys, which its rule does not know.
    assert not {_short(rule) for rule in _CLAIMING} & {"openai-api-key", "mailgun-api-key"}


def _assigned_name(text: str) -> str:
    match = re.search(r"^\s*(?:client = Client\(\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*=", text, re.M)
    assert match is not None, text
    return match.group(1)


@pytest.mark.parametrize("rule", _CLAIMING, ids=lambda r: r.id)
def test_a_claiming_rule_claims_the_name_of_its_fake(rule: SecretRule) -> None:
    text, _ = _sample(rule).positive(random.Random(rule.id))
    text = text.replace("from twilio.rest import Client\n", "")
    name = _assigned_name(text.replace("client = Client(\n    ", ""))
    assert rule.claims is not None
    assert rule.claims(name), name


@pytest.mark.parametrize("rule", _CLAIMING, ids=lambda r: r.id)
def test_near_misses_under_a_claimed_name_are_not_reported_at_all(rule: SecretRule) -> None:
    for text in _sample(rule).negatives(random.Random("claimed-" + rule.id)):
        assert list(secrets.scan_text(text)) == [], text


@pytest.mark.parametrize(
    ("rule_id", "claimed", "not_claimed"),
    [
        (
            "aws-secret-access-key",
            ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "awsSecretAccessKey",
             "config.aws_secret_access_key", "MY_AWS_SECRET_ACCESS_KEY"],
            # no provider named; another credential; a password; not the rule's name
            ["SECRET_ACCESS_KEY", "aws_access_key_id", "AWS_RDS_PASSWORD", "draws_secret_access_key",
             "AWS_SESSION_TOKEN", "AWS_SECRET_ACCESS_KEY_2"],
        ),
        (
            "heroku-api-key",
            ["HEROKU_API_KEY", "heroku_apikey", "herokuApiKey"],
            ["HEROKU_PASSWORD", "HEROKU_OAUTH_SECRET", "API_KEY", "HEROKU_APP_ID"],
        ),
        (
            "twilio-auth-token",  # its keyword is file context: the name need not say twilio
            ["TWILIO_AUTH_TOKEN", "auth_token", "authToken"],
            ["TWILIO_API_SECRET", "TWILIO_ACCOUNT_SID", "token"],
        ),
        (
            "okta-api-token",
            ["OKTA_API_TOKEN", "okta_api_token"],
            ["OKTA_CLIENT_SECRET", "OKTA_TOKEN", "API_TOKEN"],
        ),
        (
            "cloudflare-global-api-key",
            ["CF_API_KEY", "CLOUDFLARE_API_KEY", "cloudflare_global_api_key"],
            ["CF_API_TOKEN", "API_KEY", "CF.API_KEY_ID"],
        ),
        ("datadog-api-key", ["DD_API_KEY", "DATADOG_API_KEY"], ["DD_APP_KEY", "DD_SITE"]),
        ("adyen-api-key", ["ADYEN_API_KEY"], ["ADYEN_HMAC_KEY", "ADYEN_CLIENT_KEY"]),
    ],
)  # fmt: skip
def test_claimed_names(rule_id: str, claimed: list[str], not_claimed: list[str]) -> None:
    [rule] = [r for r in RULES if r.id == "secret." + rule_id]
    assert rule.claims is not None
    assert [n for n in claimed if not rule.claims(n)] == []
    assert [n for n in not_claimed if rule.claims(n)] == []


def test_a_rule_that_defers_to_claims_needs_a_name_group() -> None:
    with pytest.raises(ValueError, match="name"):
        SecretRule(
            id="secret.x",
            description="x",
            severity=Severity.LOW,
            keywords=("x",),
            pattern=re.compile(r"x=(?P<secret>\w+)"),
            defers_to_claims=True,
        )
