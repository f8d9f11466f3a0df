"""Checks on candidate credential values: placeholders, entropy, checksums and structure.

A regex finds something shaped like a credential; these functions decide whether it is one.
They are pure and work on the candidate value alone (or, for assignments, on the name it is
assigned to), so the rule table can combine them and the tests can call them directly.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
from collections import Counter

__all__ = [
    "DOCUMENTED_EXAMPLES",
    "base62_decode",
    "bech32_ok",
    "char_classes",
    "discord_token_ok",
    "generic_value_ok",
    "github_checksum_ok",
    "is_placeholder",
    "is_secret_name",
    "is_uuid",
    "jwt_ok",
    "name_words",
    "note_signer_ok",
    "pem_body_ok",
    "shannon_entropy",
]

DOCUMENTED_EXAMPLES: frozenset[str] = frozenset(
    {
        # AWS documentation (IAM user guide, CLI configuration examples).
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        # Stripe API reference test keys, shown to every reader of the docs.
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        # GitHub documentation's sample token.
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        # Mailgun documentation's sample API key.
        "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
        # The jwt.io debugger's default token.
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    }
)
"""Credentials published in providers' documentation: well known, never a leak."""

# -- placeholders -------------------------------------------------------------------------------

_PLACEHOLDER_VALUES = frozenset(
    {
        "changeme", "change_me", "change-me", "changeit", "password", "passwd", "secret",
        "token", "apikey", "api_key", "dummy", "example", "test", "testing", "sample",
        "placeholder", "redacted", "removed", "hidden", "masked", "none", "null", "nil",
        "undefined", "empty", "todo", "tbd", "fixme", "default", "notset", "not_set", "unset",
        "true", "false", "foo", "bar", "baz", "foobar", "letmein", "qwerty",
    }
)  # fmt: skip

# Substrings that only templates, docs and redacted dumps contain. A random credential contains
# any of them with negligible probability, so they cost no recall.
_PLACEHOLDER_MARKERS = (
    "example", "placeholder", "redacted", "changeme", "change_me", "dummy", "replace_me",
    "replaceme", "xxxxx", "*****", "...", "…", "<", ">", "${", "{{", "}}", "%(", "%s",
    "os.environ", "process.env", "getenv", "env(", "vault(", "secret(",
    "0123456", "1234567", "abcdefg", "qwerty",
)  # fmt: skip

_MARKER = re.compile("|".join(map(re.escape, _PLACEHOLDER_MARKERS)))
_YOUR_THING = re.compile(r"your[_\- ]?(?:api|key|token|secret|pass|access|own|app|client|org)")
_RUN = re.compile(r"(.)\1{5,}")  # six of a kind: padding or a mask, not randomness
_BRACED = re.compile(r"\{[^{}]{0,64}\}")  # {0}, {name}: format-string holes


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is a stand-in (template variable, mask, doc placeholder), not a secret."""
    lowered = value.lower()
    if lowered.strip("'\"` ") in _PLACEHOLDER_VALUES:
        return True
    # $VAR, ${VAR}, $(cmd) — and $2b$… password hashes, which are not credentials either.
    if value.startswith("$"):
        return True
    if _MARKER.search(lowered):
        return True
    if _YOUR_THING.search(lowered) or _RUN.search(value) or _BRACED.search(value):
        return True
    # A long value built from a handful of characters is a pattern (abab…, 0x0x…), not random.
    return len(value) >= 12 and len(set(lowered)) < 6


# -- randomness ---------------------------------------------------------------------------------


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value``'s characters, in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and other characters ``value`` mixes."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


# -- checksums and structure ----------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_INDEX = {c: i for i, c in enumerate(_BASE62)}


def base62_decode(digits: str) -> int:
    """The integer that ``digits`` spell in base 62 (``0-9A-Za-z``); ValueError if not base 62."""
    number = 0
    for c in digits:
        try:
            number = number * 62 + _BASE62_INDEX[c]
        except KeyError:
            raise ValueError(f"not a base62 digit: {c!r}") from None
    return number


def github_checksum_ok(token: str) -> bool:
    """Whether a GitHub-style token's last six base62 characters are the CRC32 of the rest.

    GitHub's classic tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``) and npm's
    ``npm_`` tokens carry 30 random characters and then that checksum, so a typo, a truncation
    or a made-up token fails it.
    """
    _, _, body = token.partition("_")
    if len(body) < 7:
        return False
    try:
        checksum = base62_decode(body[-6:])
    except ValueError:
        return False
    return checksum == binascii.crc32(body[:-6].encode("ascii", "replace"))


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_ok(token: str) -> bool:
    """Whether a three-part token's header decodes to a JSON object naming a signing ``alg``."""
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(_b64url_decode(header))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    alg = decoded.get("alg") if isinstance(decoded, dict) else None
    # alg "none" means unsigned: the token proves nothing and grants nothing.
    return isinstance(alg, str) and alg.lower() != "none"


def discord_token_ok(token: str) -> bool:
    """Whether a Discord bot token's first part is the base64 of a numeric user id (snowflake)."""
    first = token.split(".", 1)[0]
    try:
        user_id = _b64url_decode(first).decode("ascii")
    except ValueError:
        return False
    return 17 <= len(user_id) <= 20 and user_id.isdigit()


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_BECH32_GEN):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def note_signer_ok(value: str) -> bool:
    """Whether ``value`` is a signed-note signing key whose key id matches its name and key."""
    from custodes.errors import MalformedNote
    from custodes.ledger.note import Signer

    try:
        Signer.from_string(value)
    except MalformedNote:
        return False
    return True


def bech32_ok(value: str) -> bool:
    """Whether ``value`` is a bech32 string (BIP 173) with a valid checksum, as age keys are."""
    lowered = value.lower()
    hrp, sep, data = lowered.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(c not in _BECH32 for c in data):
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _bech32_polymod(expanded + [_BECH32.index(c) for c in data]) == 1


_PEM_ARMOUR = re.compile(r"-----[A-Z ]+-----")
_PEM_HEADER_LINE = re.compile(r"^[A-Za-z-]+:.*$", re.MULTILINE)


def pem_body_ok(block: str) -> bool:
    """Whether a PEM block holds a real-looking base64 body, not ``...`` or a short stub."""
    body = _PEM_ARMOUR.sub("", block).replace("\\n", "\n").replace("\\r", "")
    body = _PEM_HEADER_LINE.sub("", body)  # Proc-Type:, DEK-Info: of legacy encrypted keys
    payload = "".join(body.split())
    lowered = payload.lower()
    return (
        len(payload) >= 64
        and len(set(payload)) >= 20
        and "xxxxx" not in lowered
        and "example" not in lowered  # AWS's documentation samples: MIIEow…EXAMPLE…
    )


# -- generic assignments ----------------------------------------------------------------------------

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# A name is secret-looking when one of its words (or two adjacent words run together: api+key)
# ends with one of these …
_SECRET_STEMS = (
    "password", "passwd", "passphrase", "passwords", "secret", "secrets", "token", "tokens",
    "apikey", "apikeys", "accesskey", "privatekey", "secretkey", "authkey", "signingkey",
    "encryptionkey", "masterkey", "credential", "credentials",
)  # fmt: skip
# … or is one of these whole words (``pass`` but not ``bypass``, ``auth`` but not ``author``).
_SECRET_WORDS = frozenset({"pass", "pwd", "auth", "authorization", "bearer", "psk"})
# Words that make a secret-looking name about something else: a hash or public half, an id,
# a setting about the secret, or a deliberate fake.
_NOT_SECRET_WORDS = frozenset(
    {
        "public", "pub", "hash", "hashed", "hashes", "sha", "sha1", "sha256", "sha512", "md5",
        "checksum", "digest", "integrity", "fingerprint", "id", "ids", "name", "names", "type",
        "kind", "url", "uri", "urls", "endpoint", "host", "path", "file", "filename", "dir",
        "length", "len", "size", "count", "max", "min", "limit", "regex", "pattern", "prefix",
        "suffix", "header", "hdr", "field", "label", "format", "expires", "expiry", "expiration",
        "ttl", "timeout", "lifetime", "version", "mode", "policy", "prompt", "placeholder",
        "hint", "enabled", "required", "validator", "validation", "input", "env", "var",
        "param", "arn", "ref", "template", "example", "sample", "fake", "mock", "dummy",
        "test", "location", "provider", "manager", "reset", "forgot", "confirm", "confirmation",
        # pagination and anti-forgery tokens, and words that make the name a setting's kind
        "next", "page", "paging", "continuation", "cursor", "marker", "sync", "csrf", "xsrf",
        "verification", "strategy", "method", "scheme", "flow", "style", "level", "scope",
        "role", "rule", "state", "status", "spec", "algorithm", "alg", "last", "used", "date",
        "time", "created", "updated", "changed", "source", "store", "backend", "class",
        "handler", "loader",
    }
)  # fmt: skip


def name_words(name: str) -> list[str]:
    """The lower-case words of an identifier: ``dbPassword_v2`` → ``db``, ``password``, ``v``, ``2``."""
    return [w.lower() for w in _WORDS.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether an assigned name says its value is a credential (``db_password``, ``apiKey``)."""
    words = name_words(name)
    if not words or any(w in _NOT_SECRET_WORDS for w in words):
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    candidates = words + [a + b for a, b in itertools.pairwise(words)]
    return any(c.endswith(_SECRET_STEMS) for c in candidates)


GENERIC_MIN_ENTROPY = 3.0
"""Bits per character a generic value needs: random keys score 3.5–6, words and ids lower."""
GENERIC_MIN_LENGTH = 16
GENERIC_MIN_PASSWORD_LENGTH = 12  # people choose shorter passwords than machines issue keys
_PASSWORD_WORDS = frozenset({"password", "passwd", "passphrase", "pass", "pwd"})

# Words a random credential does not contain, but names, constants and made-up fixtures do
# ("SomeKindOfPassword123", "Access-Control-Allow-Credentials", "AWS4-HMAC-SHA256").
_WORDY_VALUE = re.compile(
    "password|passwd|secret|token|credential|auth|hmac|sha256|sha512|sample|default|mock|fake"
    "|test|1234|abcd|a1b2c3"
)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}")
_UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # a constant's name, as its value
_SEPARATORS = frozenset("-_.")
_DOTTED_REFERENCE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+")
_UNQUOTED_OK = re.compile(r"[A-Za-z0-9+/=_\-.~!@#%^&*:?]+")
_EMAIL = re.compile(r"[^@\s]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SRI = re.compile(r"(?:sha1|sha256|sha384|sha512)-", re.IGNORECASE)


def generic_value_ok(name: str, value: str, *, quoted: bool) -> bool:
    """Whether ``value`` assigned to ``name`` is plausibly a hard-coded credential.

    Entropy alone never decides: the name must be secret-looking first. Then the value must be
    long enough, mix character classes, be random enough, and not be a reference, path, URL,
    UUID, email or lock-file integrity string. Hex digests are left out by their names
    (``sha256``, ``token_hash``, ``checksum`` …), which :func:`is_secret_name` rejects.
    """
    # Cheapest and most selective tests first: most assignments fail one of them.
    if not quoted and not _UNQUOTED_OK.fullmatch(value):
        return False  # an unquoted expression in code (f(x), a[i]) is not a value
    # An unquoted identifier (password = db_password) is a variable in code but a value in an
    # env file (API_KEY=aB3x…); the word, digit and entropy tests below tell them apart.
    if len(value) < GENERIC_MIN_PASSWORD_LENGTH or not is_secret_name(name):
        return False
    words = name_words(name)
    password_like = any(w in _PASSWORD_WORDS or w.endswith("password") for w in words)
    if not password_like and len(value) < GENERIC_MIN_LENGTH:
        return False
    lowered = value.lower()
    if lowered == name.lower() or _UPPER_SNAKE.fullmatch(value) or _TIMESTAMP.match(value):
        return False  # PASSWORD_AUTH = "PASSWORD_AUTH", last_password_change = "2024-…"
    if _WORDY_VALUE.search(lowered):
        return False
    if any(len(word) >= 4 and word in lowered for word in words):
        return False  # copy_product_token = "copyproduct-…": made up from its own name
    if is_placeholder(value) or is_uuid(value) or _SRI.match(value) or _EMAIL.fullmatch(value):
        return False
    if "://" in value or value.startswith(("/", "./", "../", "~/", "arn:")) or value[1:3] == ":\\":
        return False  # URLs, paths, Amazon resource names
    if _DOTTED_REFERENCE.fullmatch(value):
        return False  # settings.SECRET_KEY, this.props.token
    if char_classes(value) < 2:
        return False
    if not any(c.isdigit() or (not c.isalpha() and c not in _SEPARATORS) for c in value):
        return False  # letters and separators only: words, identifiers, header names
    return shannon_entropy(value) >= GENERIC_MIN_ENTROPY
