"""The secret scanner: findings never leak, lines are right, overlaps resolve, big inputs finish."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import string
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from secret_samples import (
    B62,
    B64,
    HEX,
    SAMPLES,
    age_key,
    github_token,
    jwt,
    pem,
    rand,
    uuid4,
)

from custodes.detectors import secrets
from custodes.detectors.secret_rules import RULES
from custodes.detectors.secrets import SecretMatch, redact, scan_subject, scan_text
from custodes.subject import Subject, SubjectKind

ALL_KEYWORDS = sorted({k for rule in RULES for k in rule.keywords})


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _ids(text: str, path: str = "") -> list[str]:
    return [f.rule_id for f in scan_text(text, path=path)]


# -- never the secret in clear ------------------------------------------------------------------


def _positives() -> list[tuple[str, str, str]]:
    out = []
    for name, sample in sorted(SAMPLES.items()):
        text, secret = sample.positive(random.Random("leak-" + name))
        out.append((name, text, secret))
    return out


@pytest.mark.parametrize(("name", "text", "secret"), _positives(), ids=lambda v: str(v)[:30])
def test_no_field_repr_or_str_holds_the_secret(name: str, text: str, secret: str) -> None:
    findings = list(scan_text(text))
    assert findings, name
    for finding in findings:
        shown = [repr(finding), str(finding)] + [
            str(getattr(finding, f.name)) for f in dataclasses.fields(finding)
        ]
        for piece in shown:
            assert secret not in piece
        # Not even a large part of it: the preview shows at most 8 characters of it.
        assert len(finding.preview.replace("…", "")) <= 8
        assert finding.preview.count("…") == 1


def test_preview_shows_a_known_prefix_and_the_last_four() -> None:
    token = github_token(random.Random(1), "ghp_")
    [finding] = scan_text(f"token: {token}\n")
    assert finding.preview == f"ghp_…{token[-4:]}"
    assert finding.sha256 == _sha(token)


def test_generic_preview_shows_two_characters_at_most() -> None:
    value = rand(random.Random(2), B62, 20) + "7f"
    [finding] = scan_text(f'db_password = "{value}"\n')
    assert finding.rule_id == "secret.generic-assignment"
    assert finding.preview == "…7f"


def test_redact_reveals_little_of_short_values() -> None:
    assert redact("abcdefgh", shown_prefix=4) == "…"
    assert redact("abcdefghijkl", shown_prefix=4) == "abc…"
    assert redact("ghp_" + "a" * 32 + "WXYZ", shown_prefix=4) == "ghp_…WXYZ"
    assert redact("x" * 40, shown_tail=2) == "…xx"


def test_fingerprint_is_the_sha256_of_the_exact_value() -> None:
    key = "AKIA" + rand(random.Random(3), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    [a] = scan_text(f"id={key}\n")
    [b] = scan_text(f"other file\n\n  '{key}'")
    assert a.sha256 == b.sha256 == _sha(key)


# -- positions ------------------------------------------------------------------------------------


def test_lines_and_columns_are_one_based_and_exact() -> None:
    rng = random.Random(4)
    gh, ak = github_token(rng, "ghp_"), "AKIA" + rand(rng, "QRSTUVWXYZ234567", 16)
    text = f"first\n\nsecond {gh}\r\nthird\n\tx = '{ak}'\n"
    found = list(scan_text(text))
    assert [(f.rule_id, f.line, f.column, f.end_line) for f in found] == [
        ("secret.github-personal-access-token", 3, 8, 3),
        ("secret.aws-access-key-id", 5, 7, 5),
    ]


def test_a_multi_line_secret_spans_its_lines() -> None:
    block = pem(random.Random(5), "EC PRIVATE KEY")
    [finding] = scan_text("a\nb\n" + block + "\n")
    assert (finding.rule_id, finding.line, finding.column) == ("secret.private-key", 3, 1)
    assert finding.end_line == 3 + block.count("\n")


def test_scan_subject_reports_original_line_numbers() -> None:
    rng = random.Random(6)
    gh = github_token(rng, "gho_")
    hunk = Subject(
        path="app/settings.py",
        text=f"import os\n\nTOKEN = '{gh}'\n",
        kind=SubjectKind.HUNK,
        line_numbers=(10, 11, 57),
    )
    [finding] = scan_subject(hunk)
    assert (finding.line, finding.end_line) == (57, 57)
    shifted = Subject(path="x.py", text=f"\n{gh}\n", first_line=100)
    [finding] = scan_subject(shifted)
    assert finding.line == 101


def test_scan_subject_maps_both_ends_of_a_block() -> None:
    block = pem(random.Random(8), "OPENSSH PRIVATE KEY")
    lines = block.count("\n") + 1
    subject = Subject(
        path="id", text=block, kind=SubjectKind.HUNK, line_numbers=tuple(range(200, 200 + lines))
    )
    [finding] = scan_subject(subject)
    assert (finding.line, finding.end_line) == (200, 200 + lines - 1)


def test_findings_come_in_text_order() -> None:
    rng = random.Random(9)
    tokens = [github_token(rng, "ghp_") for _ in range(5)]
    text = "\n".join(f"t{i} = '{t}'" for i, t in enumerate(tokens))
    assert [f.sha256 for f in scan_text(text)] == [_sha(t) for t in tokens]
    assert [f.line for f in scan_text(text)] == [1, 2, 3, 4, 5]


def test_offsets_survive_characters_whose_lower_case_is_longer() -> None:
    # 'İ'.lower() is two characters; keyword offsets must still line up with the text.
    gh = github_token(random.Random(19), "ghp_")
    [finding] = scan_text(f"İİİ ßẞ {gh}")
    assert (finding.rule_id, finding.column) == ("secret.github-personal-access-token", 8)


def test_empty_and_blank_texts() -> None:
    assert list(scan_text("")) == []
    assert list(scan_text("\n\n   \n")) == []


def test_private_keys_in_json_strings_and_legacy_encrypted_form() -> None:
    rng = random.Random(20)
    escaped = pem(rng, "EC PRIVATE KEY", sep="\\n")
    legacy = (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        f"DEK-Info: AES-128-CBC,{rand(rng, HEX, 32).upper()}\n\n"
        + "\n".join(rand(rng, B64, 64) for _ in range(10))
        + "\n-----END RSA PRIVATE KEY-----"
    )
    text = f'{{"key": "{escaped}"}}\n{legacy}\n{pem(rng, "PRIVATE KEY")}\n'
    found = list(scan_text(text))
    assert [f.rule_id for f in found] == ["secret.private-key"] * 3
    assert [f.sha256 for f in found][:2] == [_sha(escaped), _sha(legacy)]
    assert found[1].line == 2


# -- one finding per secret -----------------------------------------------------------------------


def test_a_specific_rule_beats_the_generic_one() -> None:
    rng = random.Random(10)
    for text in (
        f'GITHUB_TOKEN = "{github_token(rng, "ghp_")}"',
        f'token = "{jwt(rng, {"alg": "RS256"})}"',
        f"aws_secret_access_key = {rand(rng, B64, 40)}",
        f"password = sk_live_{rand(rng, B62, 40)}",
    ):
        assert len(_ids(text)) == 1, text
        assert _ids(text) != ["secret.generic-assignment"], text


def test_a_recognised_but_rejected_format_silences_the_generic_rule() -> None:
    # A ghp_ token with a wrong checksum is a fake GitHub token, not some generic secret.
    rng = random.Random(11)
    assert _ids(f'token = "{github_token(rng, "ghp_", valid=False)}"') == []
    assert _ids('api_key = "AKIAIOSFODNN7EXAMPLE"') == []


def test_the_same_secret_twice_is_two_findings() -> None:
    gh = github_token(random.Random(12), "ghu_")
    found = list(scan_text(f"{gh}\n{gh}\n"))
    assert [f.line for f in found] == [1, 2]
    assert found[0].sha256 == found[1].sha256


# -- precision: things that are not secrets --------------------------------------------------------


def _not_secrets() -> list[str]:
    rng = random.Random(13)
    return [
        # documented examples
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",
        "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3"
        "ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJ"
        "V_adQssw5c'",
        # placeholders
        'api_key = "<your-api-key>"',
        "API_KEY=your_api_key_here",
        "token: xxxxxxxxxxxxxxxxxxxxxxxx",
        'password = "${DB_PASSWORD}"',
        "password: $DB_PASSWORD",
        'password: "{{ vault_db_password }}"',
        'password = "%(password)s"',
        'password = os.environ["DB_PASSWORD"]',
        "const token = process.env.GITHUB_TOKEN;",
        'password = "********************"',
        "SECRET_KEY=REDACTED",
        'token = "dummy"',
        'password = "example"',
        'password = "test"',
        "password: changeme",
        'auth_token = "replace_me_with_a_real_token"',
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "OPENAI_API_KEY=sk-proj-...",
        # hashes, ids, integrity strings
        f'sha256 = "{rand(rng, HEX, 64)}"',
        f"checksum: {rand(rng, HEX, 40)}",
        f'token_digest = "{rand(rng, HEX, 64)}"',
        f'password_hash = "{rand(rng, HEX, 32)}"',
        f'hashed_password = "$2b$12${rand(rng, B62, 53)}"',
        f'request_token = "{uuid4(rng)}"',
        f'"integrity": "sha512-{rand(rng, B64, 86)}=="',
        f'session_token_url = "https://auth.example.com/{rand(rng, B62, 20)}"',
        # public keys and certificates
        pem(rng, "PUBLIC KEY"),
        pem(rng, "RSA PUBLIC KEY"),
        pem(rng, "CERTIFICATE"),
        f"ssh-rsa AAAAB3NzaC1yc2E{rand(rng, B64, 370)} user@host",
        f'public_key = "{rand(rng, B64, 43)}="',
        # ordinary code around secret-looking names
        "password = get_password(user)",
        "token = self.token_provider.current_token",
        "if len(password) < MIN_PASSWORD_LENGTH:",
        "def check_token(token: str) -> bool:",
        f"tokenizer_model = 'bert-base-{rand(rng, B62, 12)}'",
        "author = 'Jane Doe <jane@example.org>'",
        "secret_name = 'prod/db/credentials'",
        "MYSQL_URL=mysql://root:<password>@localhost/app",
        "postgres://postgres:postgres@localhost:5432/postgres",
    ]


@pytest.mark.parametrize("text", _not_secrets(), ids=lambda t: t[:40])
def test_not_a_secret(text: str) -> None:
    assert list(scan_text(text)) == []


def test_lock_files_skip_the_generic_rule_only() -> None:
    rng = random.Random(14)
    generic = f'"authToken": "{rand(rng, B62, 24)}1"\n'
    specific = f'"resolved": "https://npm.pkg.github.com/x?token={github_token(rng, "ghp_")}"\n'
    for path in ("package-lock.json", "web/yarn.lock", "pnpm-lock.yaml", "a.tgz!pkg/Cargo.lock"):
        assert _ids(generic, path) == []
        assert _ids(specific, path) == ["secret.github-personal-access-token"]
    assert _ids(generic, "config.json") == ["secret.generic-assignment"]


# -- generic assignments --------------------------------------------------------------------------


def _value(seed: int) -> str:
    # Starts with a letter, like an identifier: unquoted env values often do.
    return "k" + rand(random.Random(seed), B62, 20) + "9"


@pytest.mark.parametrize(
    "template",
    [
        'password = "{v}"',
        "password = '{v}'",
        'db_password: "{v}"',
        "db_password: {v}",
        '"api_key": "{v}"',
        "API_KEY={v}",
        "export SECRET_TOKEN={v}",
        "spring.datasource.password={v}",
        "$config['db_password'] = '{v}';",
        'client_secret := "{v}"',
        "'auth_token' => '{v}',",
        "<password>{v}</password>",
        "const apiKey = `{v}`;",
        "Authorization: Bearer {v}",
        "headers = {{'X-Api-Key': '{v}'}}",
        "--password={v} --verbose",
    ],
)
def test_generic_assignment_forms(template: str) -> None:
    value = _value(15)
    found = list(scan_text(template.format(v=value)))
    assert [(f.rule_id, f.sha256) for f in found] == [("secret.generic-assignment", _sha(value))]


@pytest.mark.parametrize(
    "text",
    [
        "password = db_password",
        "token = self.token",
        "api_key = API_KEY_FROM_ENVIRONMENT",
        "secret = settings.SECRET_KEY",
        "auth = oauth2_client_instance",
        "password = get_password(user)",
        "token = tokens[index_of_the_token]",
    ],
)
def test_unquoted_code_references_are_not_values(text: str) -> None:
    assert _ids(text) == []


def test_generic_rule_needs_the_name_not_just_entropy() -> None:
    value = _value(16)
    for text in (f'x = "{value}"', f"description: {value}", f"{value}\n", f"id = '{value}'"):
        assert _ids(text) == [], text


def test_generic_rule_needs_entropy_and_length() -> None:
    assert _ids('password = "aaaabbbbaaaabbbb1"') == []  # a pattern
    assert _ids('password = "Summer2024"') == []  # shorter than 12
    assert _ids('api_key = "abcdEFGH1234ij"') == []  # shorter than 16 for a non-password
    assert _ids('password = "correcthorsebatterystaple"') == []  # words, no digit or symbol


# -- large inputs ---------------------------------------------------------------------------------


def _minified(rng: random.Random, size: int) -> str:
    """A single line that looks like a minified bundle, now and then naming secret-ish things."""
    words = ["fn", "ret", "n", "el", "cb", "ctx", "opts", "val", "idx", "node"]
    secretish = ["token", "password", "apiKey", "secret", "auth", "key-up", "pat", "sk-"]
    parts, total = [], 0
    while total < size:
        w = rng.choice(secretish) if rng.random() < 0.05 else rng.choice(words)
        part = f'var {w}{rng.randrange(999)}="{rand(rng, B62, rng.randrange(4, 12))}";'
        parts.append(part)
        total += len(part)
    return "".join(parts)


def test_a_multi_megabyte_single_line_finishes_and_finds_the_planted_keys() -> None:
    rng = random.Random(17)
    gh, age = github_token(rng, "ghp_"), age_key(rng)
    body = _minified(rng, 6_000_000)
    middle = len(body) // 2
    text = body[:middle] + f'a="{gh}";' + body[middle:] + f"/*{age}*/"
    found = list(scan_text(text))
    assert [(f.rule_id, f.line) for f in found] == [
        ("secret.github-personal-access-token", 1),
        ("secret.age-secret-key", 1),
    ]
    assert found[0].column == middle + 4


def test_many_long_lines_finish_and_find_the_key_on_the_right_line() -> None:
    rng = random.Random(18)
    lines = [_minified(rng, 20_000) for _ in range(300)]
    key = "AKIA" + rand(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    lines[271] += f";k='{key}'"
    [finding] = scan_text("\n".join(lines))
    assert (finding.rule_id, finding.line) == ("secret.aws-access-key-id", 272)


@pytest.mark.parametrize(
    "unit",
    [
        "-----BEGIN RSA PRIVATE KEY-----\n",  # never closed
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
        "PuTTY-User-Key-File-3: ssh-rsa\n",
        "eyJ" + "a" * 50 + ".",  # never a third part
        "password=" + "a1" * 30,
        "sv=2020-01-01&" * 3,
        "ghp_" * 10,
        "postgres://u:",
    ],
)
def test_adversarial_repetition_stays_linear(unit: str) -> None:
    # Bounded quantifiers: a keyword repeated without a match costs at most max_len each.
    text = unit * (300_000 // len(unit))
    assert isinstance(list(scan_text(text)), list)


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=500))
def test_text_without_any_keyword_has_no_findings(text: str) -> None:
    lowered = text.lower()
    assume(not any(k in lowered for k in ALL_KEYWORDS))
    assert list(scan_text(text)) == []


_FRAGMENTS = [*ALL_KEYWORDS, "=", ": ", '"', "'", "\n", " ", "-----", ".", "@", "://", "_"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_FRAGMENTS),
            st.text(alphabet=B62 + "+/=_-.", min_size=1, max_size=60),
        ),
        max_size=60,
    )
)
def test_searching_near_keywords_equals_searching_everywhere(parts: list[str]) -> None:
    text = "".join(parts)
    windowed = secrets._scan(text, "", RULES, windowed=True)
    assert windowed == secrets._scan(text, "", RULES, windowed=False)
    for finding in windowed:
        assert isinstance(finding, SecretMatch)


def test_generic_rule_leaves_provider_formats_to_their_own_rules() -> None:
    # One character short of a classic GitHub token: not a GitHub token, and not reported
    # by the generic rule in its place either.
    near_miss = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI2k"[:35]
    assert list(scan_text(f'token = "{near_miss}"\n')) == []
    # Mapbox public tokens are meant to ship to browsers.
    mapbox = "pk.eyJ1IjoiZXhhbXBsZSIsImEiOiJjbGZ4eTEyMzQifQ.8q8Zt3Lw9XkP2rV7mN4bC1d"
    assert list(scan_text(f"MAPBOX_TOKEN: {mapbox}\n")) == []
    # "sk-" is too common a prefix to silence: an unknown provider's key is still caught.
    other = "sk-" + "9f3a7c1e5b2d8f4a6c0e1b7d3f9a5c2e"
    (match,) = scan_text(f'api_key = "{other}"\n')
    assert match.rule_id == "secret.generic-assignment"


# -- a name that names a provider leaves its value to that provider's rule --------------------------

_TWILIO_FILE = "from twilio.rest import Client\n"
_RNG = random.Random(2031)
_B64URL = B62 + "-_"
# Near misses of formats that only the setting's name identifies: wrong length, wrong shape.
_NEAR_MISSES = [
    ("aws_secret_access_key = '{v}'", rand(_RNG, B64, 39)),
    ("AWS_SECRET_ACCESS_KEY={v}", rand(_RNG, B64, 41)),
    ('"aws_secret_access_key": "{v}",', rand(_RNG, B64, 39)),
    ("  aws_secret_access_key: {v}", rand(_RNG, B64, 41)),
    ("HEROKU_API_KEY={v}", uuid4(_RNG)[:-1]),
    ('"HEROKU_API_KEY": "{v}"', uuid4(_RNG)[:-1]),
    (_TWILIO_FILE + "auth_token = '{v}'", rand(_RNG, HEX, 31)),
    (_TWILIO_FILE + "TWILIO_AUTH_TOKEN = '{v}'", rand(_RNG, HEX, 33)),
    ("CF_API_KEY={v}", rand(_RNG, HEX, 36)),
    ("CLOUDFLARE_API_TOKEN={v}", rand(_RNG, _B64URL, 39)),
    ("// DD_API_KEY: {v}", rand(_RNG, HEX, 31)),
    ('"COHERE_API_KEY": "{v}"', rand(_RNG, B62, 39)),
    ("OKTA_API_TOKEN={v}", "11" + rand(_RNG, _B64URL, 40)),
]


@pytest.mark.parametrize(("template", "value"), _NEAR_MISSES, ids=lambda v: str(v)[:28])
def test_a_near_miss_under_its_providers_name_is_not_reported(template: str, value: str) -> None:
    assert _ids(template.format(v=value)) == []


@pytest.mark.parametrize(("template", "value"), _NEAR_MISSES, ids=lambda v: str(v)[:28])
def test_the_same_value_under_a_password_is_reported(template: str, value: str) -> None:
    # The value is random enough to be a secret: only the name made it someone else's.
    for text in (f'password = "{value}"', f"DB_PASSWORD={value}", f"api_key: {value}"):
        found = list(scan_text(text))
        assert [(f.rule_id, f.sha256) for f in found] == [
            ("secret.generic-assignment", _sha(value))
        ], text


def test_real_formats_under_their_providers_names_are_reported_by_the_provider_rule() -> None:
    rng = random.Random(2032)
    cases = [
        ("aws_secret_access_key = '{v}'", rand(rng, B64, 40), "secret.aws-secret-access-key"),
        ("AWS_SECRET_ACCESS_KEY={v}", rand(rng, B64, 40), "secret.aws-secret-access-key"),
        ("HEROKU_API_KEY={v}", uuid4(rng), "secret.heroku-api-key"),
        (_TWILIO_FILE + "auth_token = '{v}'", rand(rng, HEX, 32), "secret.twilio-auth-token"),
        ("CF_API_KEY={v}", rand(rng, HEX, 37), "secret.cloudflare-global-api-key"),
    ]
    for template, value, rule_id in cases:
        found = list(scan_text(template.format(v=value)))
        assert [(f.rule_id, f.sha256) for f in found] == [(rule_id, _sha(value))], template


def test_another_providers_format_under_a_provider_name_is_still_found() -> None:
    # The claim silences only the generic rule: a GitHub token is a GitHub token wherever it is.
    rng = random.Random(2033)
    for name in ("aws_token", "AWS_SECRET_ACCESS_KEY", "HEROKU_API_KEY"):
        token = github_token(rng, "ghp_")
        found = list(scan_text(f"{name}={token}\n"))
        assert [(f.rule_id, f.sha256) for f in found] == [
            ("secret.github-personal-access-token", _sha(token))
        ], name


def test_a_password_beside_an_aws_name_is_still_reported() -> None:
    rng = random.Random(2034)
    near, password, rds = rand(rng, B64, 41), rand(rng, B62, 18) + "!", rand(rng, B62, 16) + "#1"
    text = (
        f"aws_access_key_id = AKIA{rand(rng, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}\n"
        f"aws_secret_access_key = {near}\n"
        f"password = {password}\n"
        f"AWS_RDS_PASSWORD = '{rds}'\n"
    )
    found = [(f.rule_id, f.line, f.sha256) for f in scan_text(text)]
    assert found[1:] == [
        ("secret.generic-assignment", 3, _sha(password)),
        ("secret.generic-assignment", 4, _sha(rds)),
    ]
    assert found[0][:2] == ("secret.aws-access-key-id", 1)


def test_the_twilio_claim_holds_only_in_a_file_that_uses_twilio() -> None:
    value = rand(random.Random(2035), HEX, 31)
    assert _ids(_TWILIO_FILE + f"auth_token = '{value}'\n") == []
    assert _ids(f"auth_token = '{value}'\n") == ["secret.generic-assignment"]


@pytest.mark.parametrize(
    "text",
    [
        # named provider, but another of its credentials, in a format the rule never judges
        "OKTA_CLIENT_SECRET = '{v}'",
        "HEROKU_OAUTH_SECRET = '{v}'",
        _TWILIO_FILE + "TWILIO_API_SECRET = '{v}'",
        # no provider named: any S3-compatible store's key goes by this name
        "SECRET_ACCESS_KEY={v}",
        "HEROKU_PASSWORD={v}",
    ],
)
def test_names_that_claim_nothing_keep_the_generic_rule(text: str) -> None:
    value = rand(random.Random(2036), B62, 43)
    found = list(scan_text(text.format(v=value)))
    assert [(f.rule_id, f.sha256) for f in found] == [("secret.generic-assignment", _sha(value))]


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("JIRA_API_TOKEN=ATATT3xFfGF0{v}", "secret.atlassian-api-token"),
        ("password = pypi-AgEIcHlwaS5vcmc{v}", "secret.pypi-api-token"),
        ("OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ{v}", "secret.onepassword-service-account-token"),
        ("ARTIFACTORY_API_KEY=AKCp{v}", "secret.jfrog-api-key"),
        ("JFROG_TOKEN=cmVmdGtuOjAxOj{v}", "secret.jfrog-reference-token"),
        ("AWS_SESSION_TOKEN=FwoGZXIvYXdz{v}", "secret.aws-session-token"),
    ],
)
def test_a_value_opening_like_a_provider_format_is_left_to_that_rule(
    text: str, rule_id: str
) -> None:
    # Too short for the format: not that credential, and not a generic one in its place.
    short = rand(random.Random(2037), B62, 30)
    assert _ids(text.format(v=short)) == []
    # Long enough, it is the provider's.
    long = rand(random.Random(2038), B62, 200) + "=" + rand(random.Random(2039), B62, 8)
    if rule_id in {"secret.jfrog-api-key"}:
        long = rand(random.Random(2038), B62, 69)
    elif rule_id in {"secret.jfrog-reference-token"}:
        long = rand(random.Random(2038), B62, 50)
    elif rule_id in {"secret.pypi-api-token", "secret.aws-session-token"}:
        long = rand(random.Random(2038), B62, 150)
    assert _ids(text.format(v=long)) == [rule_id]


_ANY_VALUE = st.text(alphabet=B64 + "-_.!#", min_size=12, max_size=60)
_CLAIMED_NAMES = ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "HEROKU_API_KEY",
                  "CF_API_KEY", "DD_API_KEY", "COHERE_API_KEY", "OKTA_API_TOKEN",
                  "MISTRAL_API_KEY", "PAYPAL_CLIENT_SECRET", "POSTMARK_SERVER_TOKEN"]  # fmt: skip
_UNCLAIMED_NAMES = ["password", "db_password", "api_key", "secret", "token", "access_token",
                    "SECRET_ACCESS_KEY", "OKTA_CLIENT_SECRET", "AWS_RDS_PASSWORD",
                    "TWILIO_API_SECRET", "HEROKU_PASSWORD", "ADYEN_HMAC_KEY"]  # fmt: skip
_WITHOUT_CLAIMS = [dataclasses.replace(rule, claims=None) for rule in RULES]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_CLAIMED_NAMES), _ANY_VALUE, st.sampled_from(["{n} = '{v}'", "{n}={v}"]))
def test_a_claimed_name_never_gets_a_generic_finding(name: str, value: str, form: str) -> None:
    text = form.format(n=name, v=value)
    assert "secret.generic-assignment" not in _ids(text)
    # The claim removes only generic findings: every other finding is as without it.
    without = [f for f in secrets._scan(text, "", _WITHOUT_CLAIMS, windowed=True)]
    assert list(scan_text(text)) == [
        f for f in without if f.rule_id != "secret.generic-assignment"
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_UNCLAIMED_NAMES),
    _ANY_VALUE,
    st.sampled_from(["{n} = '{v}'", "{n}={v}", "from twilio.rest import Client\n{n} = '{v}'"]),
)
def test_names_that_no_rule_claims_are_judged_as_before(name: str, value: str, form: str) -> None:
    text = form.format(n=name, v=value)
    assert list(scan_text(text)) == secrets._scan(text, "", _WITHOUT_CLAIMS, windowed=True)


def test_the_scan_door_leaves_near_misses_to_their_providers(
    tmp_path: Path, custodes_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    rng = random.Random(2040)
    near, password = rand(rng, B64, 39), rand(rng, B62, 20) + "!"
    (tmp_path / "settings.py").write_text(
        f'AWS_SECRET_ACCESS_KEY = "{near}"\nDB_PASSWORD = "{password}"\n'
        f'HEROKU_API_KEY = "{uuid4(rng)[:-1]}"\n'
    )
    (tmp_path / "notify.py").write_text(f"{_TWILIO_FILE}auth_token = '{rand(rng, HEX, 31)}'\n")
    proc = custodes_cli("scan", ".", "--format", "json", "--no-ledger", cwd=tmp_path)
    assert proc.returncode in {0, 1}, proc.stderr  # whether medium fails is the policy's call
    report = json.loads(proc.stdout)
    secret_findings = [
        (f["rule"], f["path"], f["start_line"], f["sha256"])
        for f in report["findings"]
        if f["kind"] == "secret"
    ]
    assert secret_findings == [
        ("secret.generic-assignment", "settings.py", 2, _sha(password))
    ]
    assert near not in proc.stdout
    assert password not in proc.stdout
