"""The value checks behind the secret rules, and the one-pass keyword index."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secret_samples import B62, age_key, b64url, base62, github_token, jwt, rand

from custodes.detectors import secret_checks as checks
from custodes.detectors.keywords import KeywordIndex

try:
    import ahocorasick  # noqa: F401  (only whether it imports)

    HAVE_AHO = True
except ImportError:
    HAVE_AHO = False
BACKENDS = [
    "regex",
    pytest.param(
        "aho", marks=pytest.mark.skipif(not HAVE_AHO, reason="pyahocorasick not installed")
    ),
]


# -- checksums and structure ----------------------------------------------------------------------


def test_base62_decode_inverts_base62_encode() -> None:
    for number in (0, 1, 61, 62, 2**32 - 1, 123456789):
        assert checks.base62_decode(base62(number, 6)) == number
    with pytest.raises(ValueError, match="base62"):
        checks.base62_decode("ab-c")


def test_github_checksum() -> None:
    rng = random.Random(1)
    for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "npm_"):
        assert checks.github_checksum_ok(github_token(rng, prefix))
        assert not checks.github_checksum_ok(github_token(rng, prefix, valid=False))
    token = github_token(rng, "ghp_")
    assert not checks.github_checksum_ok(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not checks.github_checksum_ok("ghp_short")
    assert not checks.github_checksum_ok("ghp_" + "a" * 30 + "!!!!!!")


def test_jwt_needs_a_json_header_with_a_signing_alg() -> None:
    rng = random.Random(2)
    assert checks.jwt_ok(jwt(rng, {"alg": "ES256", "kid": "k1"}))
    assert not checks.jwt_ok(jwt(rng, {"typ": "JWT"}))
    assert not checks.jwt_ok(jwt(rng, {"alg": "none"}))
    assert not checks.jwt_ok(b64url(b"[1, 2]") + ".e30.sig")
    assert not checks.jwt_ok("eyJ!!!!.e30.sig")


def test_discord_token_first_part_is_a_user_id() -> None:
    user_id = b64url(b"123456789012345678")
    assert checks.discord_token_ok(f"{user_id}.abcdef.{'x' * 27}")
    assert not checks.discord_token_ok(f"{b64url(b'not a number here!')}.abcdef.x")
    assert not checks.discord_token_ok("M%%%.abcdef.x")


def test_bech32_checksum_of_age_keys() -> None:
    key = age_key(random.Random(3))
    assert checks.bech32_ok(key)
    assert checks.bech32_ok(key.lower())
    flipped = key[:20] + ("Q" if key[20] != "Q" else "P") + key[21:]
    assert not checks.bech32_ok(flipped)
    assert not checks.bech32_ok("AGE-SECRET-KEY-1BIO")  # b, i, o are not bech32
    assert not checks.bech32_ok("no separator")


def test_pem_body_needs_real_base64() -> None:
    rng = random.Random(4)
    body = "\n".join(rand(rng, B62 + "+/", 64) for _ in range(4))
    assert checks.pem_body_ok(
        f"-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----"
    )
    assert not checks.pem_body_ok(
        "-----BEGIN EC PRIVATE KEY-----\n...\n-----END EC PRIVATE KEY-----"
    )
    assert not checks.pem_body_ok("-----BEGIN X-----\n" + "A" * 200 + "\n-----END X-----")


# -- placeholders, entropy, names ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "changeme", "CHANGEME", "<your-api-key>", "your_api_key_here", "YOUR-TOKEN",
        "xxxxxxxxxxxxxxxx", "XXXXXXXX-XXXX", "${SECRET}", "$SECRET", "{{ secret }}",
        "%(password)s", "os.environ['X']", "process.env.TOKEN", "********", "REDACTED",
        "dummy", "example", "test", "sk_live_EXAMPLEKEY1234", "abc...xyz", "0123456789abcdef",
        "abababababababab", "{0}", "null", "none",
    ],
)  # fmt: skip
def test_placeholders(value: str) -> None:
    assert checks.is_placeholder(value)


@pytest.mark.parametrize("seed", range(20))
def test_random_values_are_not_placeholders(seed: int) -> None:
    rng = random.Random(seed)
    assert not checks.is_placeholder(rand(rng, B62, 40))
    assert not checks.is_placeholder(rand(rng, "0123456789abcdef", 32))


def test_shannon_entropy() -> None:
    assert checks.shannon_entropy("") == 0.0
    assert checks.shannon_entropy("aaaa") == 0.0
    assert checks.shannon_entropy("abcd") == pytest.approx(2.0)
    assert checks.shannon_entropy(string.digits) == pytest.approx(3.3219, abs=1e-3)


def test_char_classes() -> None:
    assert checks.char_classes("abc") == 1
    assert checks.char_classes("aB3") == 3
    assert checks.char_classes("aB3!") == 4


@pytest.mark.parametrize(
    "name",
    [
        "password", "DB_PASSWORD", "dbPassword", "passwd", "pwd", "db_pass", "passphrase",
        "secret", "client_secret", "SECRET_KEY", "secretKeyBase", "token", "accessToken",
        "GITHUB_TOKEN", "api_key", "apiKey", "X-Api-Key", "API-KEY", "access_key", "privateKey",
        "auth", "Authorization", "basic_auth", "credentials", "signing_key", "masterKey", "psk",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert checks.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "author", "bypass", "compass", "passport", "tokenizer", "secretary", "key", "primary_key",
        "token_id", "password_hash", "hashed_password", "token_sha256", "public_key",
        "secret_name", "password_min_length", "token_url", "token_type", "max_tokens",
        "test_password", "fake_token", "checksum", "integrity", "reset_password_url",
    ],
)  # fmt: skip
def test_not_secret_names(name: str) -> None:
    assert not checks.is_secret_name(name)


def test_generic_values() -> None:
    rng = random.Random(5)
    good = rand(rng, B62, 20) + "1"
    assert checks.generic_value_ok("token", good, quoted=True)
    assert checks.generic_value_ok("password", "Xk9#mP2$vL7qZ", quoted=True)
    assert not checks.generic_value_ok("id", good, quoted=True)  # not a secret name
    assert not checks.generic_value_ok("token", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", quoted=True)
    assert not checks.generic_value_ok("token", "sha512-" + good, quoted=True)
    assert not checks.generic_value_ok("token", "https://x.org/" + good, quoted=True)
    assert not checks.generic_value_ok("token", "/run/secrets/" + good, quoted=True)
    assert not checks.generic_value_ok("token", "settings.GITHUB_TOKEN_VALUE", quoted=True)
    assert not checks.generic_value_ok("token", "ci-bot@example-corp.com", quoted=True)
    assert not checks.generic_value_ok("token", "load_token_from_env2", quoted=False)
    assert not checks.generic_value_ok("token", "read(token_file)", quoted=False)


# -- the keyword index ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_keyword_index_finds_every_occurrence(backend: str) -> None:
    index = KeywordIndex(["sk-", "sk-ant-", "dd_api", "api_key", "key"], backend=backend)
    text = "x sk-ant-1 dd_api_key sk- key"
    assert index.find(text) == {
        "sk-": [2, 22],
        "sk-ant-": [2],
        "dd_api": [11],
        "api_key": [14],
        "key": [18, 26],
    }
    assert index.find("nothing here") == {}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="abc-_", min_size=1, max_size=4), min_size=1, max_size=8),
    st.text(alphabet="abc-_ ", max_size=200),
)
def test_keyword_index_agrees_with_str_find(keywords: list[str], text: str) -> None:
    expected: dict[str, list[int]] = {}
    for keyword in set(keywords):
        at = text.find(keyword)
        while at != -1:
            expected.setdefault(keyword, []).append(at)
            at = text.find(keyword, at + 1)
    assert KeywordIndex(keywords, backend="regex").find(text) == expected
    if HAVE_AHO:
        assert KeywordIndex(keywords, backend="aho").find(text) == expected


def test_keyword_index_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        KeywordIndex(["a", ""])
    with pytest.raises(ValueError, match="backend"):
        KeywordIndex(["a"], backend="nope")
