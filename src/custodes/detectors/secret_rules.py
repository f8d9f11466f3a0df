"""The credential rule table: one rule per format, written from the providers' documented formats.

Each rule has a stable id (``secret.…``; baselines and policies refer to it), a severity,
lower-case keywords and one regex with a ``secret`` group. The scanner runs a rule only when one
of its keywords occurs in the text, and — for an *anchored* rule, whose every match contains a
keyword — only in windows of ``max_len`` characters around the keyword's occurrences. So every
quantifier is bounded: it keeps matching linear, and ``max_len`` true (a test checks both).

Severity: ``critical`` grants broad or production access on its own (cloud secrets, live payment
keys, private keys); ``high`` is a working credential of narrower reach; ``medium`` is likely a
credential that may be short-lived or scoped (JWTs, generic assignments); ``low`` is a test-mode
key. Stripe's ``sk_test_``/``rk_test_`` keys are reported at ``low``: they cannot move money but
they do expose an account's test data, and a policy can drop ``low`` if it wishes.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from custodes.detectors import secret_checks as checks
from custodes.findings import Severity

__all__ = ["RULES", "SecretRule", "Severity", "Validator", "value_openings"]


Validator = Callable[[re.Match[str]], bool]
"""Decides whether a regex match is a credential; sees the whole match (names, groups)."""


@dataclass(frozen=True)
class SecretRule:
    """One credential format.

    ``keywords`` are lower case; a rule runs only where one occurs. ``anchored`` promises that
    every match contains a keyword, so the scanner may search only near keyword occurrences;
    a rule whose keyword is file context (``twilio`` for a bare ``SK…`` key) is not anchored
    and is searched over the whole text. ``max_len`` bounds a match's length. ``shown_prefix``
    is how many leading characters of the secret are a fixed, public prefix (``ghp_``) that a
    preview may show; ``shown_tail`` how many trailing characters it may show at most.
    ``priority`` settles overlaps: a specific rule beats a generic one on the same characters.
    ``match_start``, for an anchored rule, maps a keyword occurrence to the only offset where a
    match containing it can begin (the generic rule: the start of the name holding it); the
    scanner then tries one anchored match there instead of searching a window.

    ``claims``, on a rule that knows its credential by the name of the setting holding it, says
    whether an assigned name names this rule's provider and credential
    (``AWS_SECRET_ACCESS_KEY``). A rule that ``defers_to_claims`` (the generic rule, whose
    pattern has a ``name`` group) leaves a value assigned to such a name to the claiming rule,
    if that rule ran on the text: the provider's format is authoritative, and a value it does
    not accept is no credential of the kind its name claims (a truncated paste, test data).
    """

    id: str
    description: str
    severity: Severity
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    secret_group: str = "secret"  # noqa: S105 (a regex group name)
    validate: Validator | None = None
    shown_prefix: int = 0
    shown_tail: int = 4
    max_len: int = 512
    anchored: bool = True
    priority: int = 50
    check_placeholder: bool = True
    skip_paths: re.Pattern[str] | None = None
    match_start: Callable[[str, int], int] | None = None
    claims: Callable[[str], bool] | None = None
    defers_to_claims: bool = False

    def __post_init__(self) -> None:
        if not self.id.startswith("secret."):
            raise ValueError(f"rule id {self.id!r} must start with 'secret.'")
        if not self.keywords or any(k != k.lower() or not k for k in self.keywords):
            raise ValueError(f"{self.id}: keywords must be non-empty and lower case")
        if self.secret_group not in self.pattern.groupindex:
            raise ValueError(f"{self.id}: pattern has no group {self.secret_group!r}")
        if not 0 <= self.shown_prefix <= 4 or not 0 <= self.shown_tail <= 4:
            raise ValueError(f"{self.id}: a preview shows at most 4 + 4 characters")
        if self.defers_to_claims and "name" not in self.pattern.groupindex:
            raise ValueError(f"{self.id}: a rule that defers to claims needs a 'name' group")


# -- building blocks ----------------------------------------------------------------------------

_WORD = "[A-Za-z0-9_]"  # a token does not start inside a word …
_END = r"(?![A-Za-z0-9_])"  # … nor end inside one
_END_DASH = r"(?![A-Za-z0-9_\-])"  # for formats whose alphabet includes '-'
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

# name, then a closing quote or bracket of a key, then = : := => or > (XML) …
_ASSIGN = r"[\"'`]?\]?[ \t]{0,4}(?P<sep>:=|=>|=|:|>)[ \t]{0,4}"
_SEPARATOR = _ASSIGN + r"[\"'`]?"  # … then an opening quote


# Every name is_secret_name accepts contains one of these (lower-cased), so the generic rule
# is anchored on them.
_GENERIC_KEYWORDS = (
    "pass", "pwd", "secret", "token", "auth", "credential", "bearer", "psk",
    "apikey", "api_key", "api-key", "api.key",
    "accesskey", "access_key", "access-key", "access.key",
    "privatekey", "private_key", "private-key", "private.key",
    "secretkey", "signingkey", "signing_key", "signing-key",
    "encryptionkey", "encryption_key", "encryption-key",
    "masterkey", "master_key", "master-key",
)  # fmt: skip

_GENERIC_KEYWORD = re.compile("|".join(map(re.escape, _GENERIC_KEYWORDS)))


def _assigned(name: str, value: str) -> str:
    """``value`` assigned to a (case-insensitive) ``name`` in code, config, JSON or env files."""
    return (
        r"(?<![A-Za-z0-9])(?i:" + name + r")[A-Za-z0-9_.\-]{0,16}" + _SEPARATOR
        + r"(?:(?i:bearer)[ \t]{1,4})?(?P<secret>" + value + ")"
    )  # fmt: skip


def _on_secret(check: Callable[[str], bool]) -> Validator:
    def validate(match: re.Match[str]) -> bool:
        return check(match.group("secret"))

    return validate


def _random(min_entropy: float, min_classes: int = 1) -> Validator:
    """A value drawn at random: enough entropy per character and a mix of character classes."""

    def check(value: str) -> bool:
        return (
            checks.shannon_entropy(value) >= min_entropy
            and checks.char_classes(value) >= min_classes
        )

    return _on_secret(check)


def _rule(
    rule_id: str,
    description: str,
    severity: Severity,
    keywords: tuple[str, ...],
    pattern: str,
    *,
    validate: Validator | None = None,
    shown_prefix: int = 0,
    shown_tail: int = 4,
    max_len: int = 512,
    anchored: bool = True,
    priority: int = 50,
    check_placeholder: bool = True,
    skip_paths: re.Pattern[str] | None = None,
    match_start: Callable[[str, int], int] | None = None,
    claims: Callable[[str], bool] | None = None,
    defers_to_claims: bool = False,
) -> SecretRule:
    return SecretRule(
        id="secret." + rule_id,
        description=description,
        severity=severity,
        keywords=keywords,
        pattern=re.compile(pattern),
        validate=validate,
        shown_prefix=shown_prefix,
        shown_tail=shown_tail,
        max_len=max_len,
        anchored=anchored,
        priority=priority,
        check_placeholder=check_placeholder,
        skip_paths=skip_paths,
        match_start=match_start,
        claims=claims,
        defers_to_claims=defers_to_claims,
    )


def _named(
    rule_id: str,
    description: str,
    severity: Severity,
    keywords: tuple[str, ...],
    name: str,
    value: str,
    *,
    validate: Validator | None = None,
    anchored: bool = True,
    priority: int = 50,
) -> SecretRule:
    """A credential known by the name of its setting: ``value`` assigned to ``name``.

    The rule claims the names that name its provider and its credential (see :func:`_claim`).
    """
    return _rule(
        rule_id,
        description,
        severity,
        keywords,
        _assigned(name, value),
        validate=validate,
        anchored=anchored,
        priority=priority,
        claims=_claim(rule_id, keywords, name, anchored=anchored),
    )


def _claim(
    rule_id: str, keywords: tuple[str, ...], name: str, *, anchored: bool
) -> Callable[[str], bool]:
    """Whether an assigned name names the provider and the credential of a ``_named`` rule.

    Derived from the rule itself: the provider is the first word of its id or one of its
    keywords that is not a mere credential word (``cf_``, ``dd_api``); the credential is the
    last two words of its id (``aws-secret-access-key``: access key). A name is claimed when

    * the rule's own name pattern takes it, as the rule's regex would;
    * it ends with the credential's words: ``OKTA_CLIENT_SECRET`` and ``ADYEN_HMAC_KEY`` hold
      other credentials of those providers, in other formats, which the rule never judges;
      no rule's credential is a password, which a person chooses in any format;
    * it names the provider: ``SECRET_ACCESS_KEY`` alone may hold any S3-compatible store's
      key. For a rule whose keyword is file context (``twilio``), the file names it.
    """
    provider, *id_words = rule_id.split("-")
    kind = id_words[-2:]
    kind_run_together = "".join(kind)
    marks = tuple(k for k in keywords if k not in _GENERIC_KEYWORDS)
    own_name = re.compile(r"(?<![A-Za-z0-9])(?i:" + name + r")[A-Za-z0-9_.\-]{0,16}\Z")

    def claims(assigned: str) -> bool:
        words = checks.name_words(assigned)
        if words[-len(kind) :] != kind and words[-1:] != [kind_run_together]:
            return False
        if anchored and provider not in words:
            lowered = assigned.lower()
            if not any(mark in lowered for mark in marks):
                return False
        return own_name.search(assigned) is not None

    return claims


def _token(
    rule_id: str,
    description: str,
    severity: Severity,
    keywords: tuple[str, ...],
    body: str,
    *,
    not_after: str = _WORD,
    end: str = _END,
    shown_prefix: int = 4,
    validate: Validator | None = None,
    max_len: int = 512,
    anchored: bool = True,
    priority: int = 50,
    check_placeholder: bool = True,
) -> SecretRule:
    """A self-identifying token: a fixed prefix and a body, delimited from what surrounds it."""
    return _rule(
        rule_id,
        description,
        severity,
        keywords,
        "(?P<secret>" + _not_after(not_after, body) + ")" + end,
        validate=validate,
        shown_prefix=shown_prefix,
        max_len=max_len,
        anchored=anchored,
        priority=priority,
        check_placeholder=check_placeholder,
    )


_LITERAL_PREFIX = re.compile(r"(?:[A-Za-z0-9_~:\"-]|\\[.\-$])+")


def _not_after(char_class: str, body: str) -> str:
    """``body``, not preceded by a character of ``char_class``.

    Where ``body`` opens with a literal (``ghp_``), the check goes after it as a lookbehind
    over the literal: the regex then starts with the literal, which the engine finds with a
    fast substring search instead of testing the lookbehind at every position (17× faster).
    """
    literal = _LITERAL_PREFIX.match(body)
    if literal is None or _has_top_level_alternation(body):
        return f"(?<!{char_class})(?:{body})"
    prefix = literal.group()
    return f"{prefix}(?<!{char_class}{prefix}){body[len(prefix) :]}"


def _has_top_level_alternation(body: str) -> bool:
    return len(_alternatives(body)) > 1


def _alternatives(body: str) -> list[str]:
    """``body`` split at its top-level ``|``."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(body, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts


def _class_end(regex: str, at: int) -> int:
    """The index after the character class that opens at ``regex[at]``."""
    i = at + 1
    while regex[i] != "]":
        i += 2 if regex[i] == "\\" else 1
    return i + 1


def _group_end(regex: str, at: int) -> int:
    """The index after the group that opens at ``regex[at]``."""
    depth, i = 0, at
    while True:
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(regex, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1


_ZERO_WIDTH = ("(?<!", "(?<=", "(?!", "(?=")
_QUANTIFIERS = frozenset("?*+{")
_SPECIAL = frozenset(".^$*+?{}[]()|\\")


def _openings(regex: str) -> tuple[list[str], bool]:
    """Literal strings one of which opens every match of ``regex``; and whether that is all of it.

    Reads what the table is written with: literals, escaped punctuation, lookarounds (they
    match nothing), groups of alternatives and small classes without ranges (``do[opr]_v1_``),
    unquantified. Anything else ends the opening: ``ghp_[A-Za-z0-9]{36}`` opens with ``ghp_``.
    """
    heads, i = [""], 0
    while i < len(regex):
        char = regex[i]
        if regex.startswith(_ZERO_WIDTH, i):
            i = _group_end(regex, i)
            continue
        if char == "(":
            end = _group_end(regex, i)
            body = regex[i + 1 : end - 1]
            if body.startswith("?P<"):
                body = body[body.index(">") + 1 :]
            elif body.startswith("?:"):
                body = body[2:]
            if body.startswith("?") or regex[end : end + 1] in _QUANTIFIERS:
                return heads, False  # an optional group, or flags: (?i:…)
            parts = [_openings(alternative) for alternative in _alternatives(body)]
            heads = [head + tail for head in heads for tails, _ in parts for tail in tails]
            if not all(whole for _, whole in parts):
                return heads, False
            i = end
            continue
        if char == "[":
            end = _class_end(regex, i)
            members = regex[i + 1 : end - 1]
            if not members.isalnum() or regex[end : end + 1] in _QUANTIFIERS:
                return heads, False  # a range, a negation or an escape: no fixed characters
            heads = [head + member for head in heads for member in members]
            i = end
            continue
        if char == "\\":
            literal, end = regex[i + 1 : i + 2], i + 2
            if literal.isalnum():
                return heads, False  # \d, \s, \n …
        elif char in _SPECIAL:
            return heads, False
        else:
            literal, end = char, i + 1
        if regex[end : end + 1] in _QUANTIFIERS:
            return heads, False
        heads = [head + literal for head in heads]
        i = end
    return heads, True


def value_openings(rule: SecretRule) -> tuple[str, ...]:
    """Literal strings one of which opens every credential ``rule`` reports (``ghp_``, ``AKIA``).

    Read off the rule's regex; ``("",)`` when its values open with no fixed characters.
    """
    pattern = rule.pattern.pattern
    start = pattern.index("(?P<" + rule.secret_group + ">")
    return tuple(_openings(pattern[start : _group_end(pattern, start)])[0])


def _uri_password(rule_id: str, name: str, schemes: str, keywords: tuple[str, ...]) -> SecretRule:
    """A connection URI with ``user:password@`` credentials for one database or broker."""
    return _rule(
        rule_id,
        f"{name} connection URI with an embedded password",
        Severity.HIGH,
        keywords,
        r"(?<![A-Za-z0-9+.\-])(?i:" + schemes + r")://"
        r"(?P<user>[^\s:/@'\"`<>]{0,64}):(?P<secret>[^\s:/@'\"`<>]{3,128})@"
        r"(?=[A-Za-z0-9\[_\-])",
        validate=_uri_password_ok,
    )


# Passwords that local-development defaults and tutorials use; in a URI they are noise.
_DEFAULT_PASSWORDS = frozenset(
    {"postgres", "mysql", "root", "admin", "guest", "pass", "password", "secret", "redis",
     "mongo", "mongodb", "rabbitmq", "user", "test", "example", "changeme", "pwd"}
)  # fmt: skip


def _uri_password_ok(match: re.Match[str]) -> bool:
    password = match.group("secret")
    return password.lower() not in _DEFAULT_PASSWORDS and password != match.group("user")


def _generic_ok(match: re.Match[str]) -> bool:
    name = match.group("name")
    # The rule is anchored on its keywords: keep only names that contain one, so searching
    # near keywords finds exactly what a whole-text search would.
    if not _GENERIC_KEYWORD.search(name.lower()):
        return False
    if match.group("sep") == ">" and not _is_xml_element(match):
        return False  # <password>@host… is a URI template, not <password>…</password>
    value = match.group("secret")
    if value.lower().startswith(_provider_prefixes()):
        return False  # a provider's format: its own rule matched it, or it is not one
    return checks.generic_value_ok(name, value, quoted=match.group("q") is not None)


@functools.cache
def _provider_prefixes() -> tuple[str, ...]:
    """Lower-case prefixes that mark a value as some provider's format.

    A keyword of a specific rule that opens every value of its format, as the rule's regex
    reads (``ghp_``, ``akia``, ``atatt3``, ``pypi-ageichlwas5vcmc``, ``dp.pt.``), if it is
    distinctive: four characters or more, or ending in a separator (``hf_``, but not ``pat``
    or ``eyj``). A value in such a format that its own rule did not report (wrong length, bad
    checksum) is not a credential of that kind, and the generic rule must not report it in that
    rule's place. Mapbox ``pk.`` tokens are public by design.
    """
    prefixes = {"pk.eyj"}
    for rule in RULES:
        if rule.defers_to_claims:
            continue
        openings = [opening.lower() for opening in value_openings(rule)]
        for keyword in rule.keywords:
            distinctive = len(keyword) >= 4 or keyword.endswith(("_", "-", "."))
            if (
                distinctive
                and keyword not in _SHARED_PREFIXES
                and any(opening.startswith(keyword) for opening in openings)
            ):
                prefixes.add(keyword)
    return tuple(sorted(prefixes))


# Openings other credentials share: "sk-" (OpenAI, DeepSeek …), "EAAA" (Square, and Facebook
# access tokens, which open with EAA), "key-" and "secret_" (Mailgun and Notion keys, and much
# else). The generic rule stays their fallback.
_SHARED_PREFIXES = frozenset({"eaaa", "key-", "secret_", "sk-", "v1.0-"})


_HEX_KEY = _random(3.0)


def _algolia_ok(match: re.Match[str]) -> bool:
    # Search-only keys are meant to ship to browsers; admin and write keys are secrets.
    return "search" not in match.group(0).lower() and _HEX_KEY(match)


_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_MAX_NAME = 80  # the generic rule's (?P<name>…) is at most this long


def _name_start(text: str, at: int) -> int:
    """Where the name holding the keyword at ``at`` begins: the generic rule's match start."""
    start, limit = at, max(0, at - _MAX_NAME)
    while start > limit and text[start - 1] in _NAME_CHARS:
        start -= 1
    return start


def _is_xml_element(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start("name"), match.end("secret")
    return text[start - 1 : start] == "<" and text[end : end + 2] == "</"


LOCK_FILES = re.compile(
    r"(?:^|[/!])(?:package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|bun\.lock"
    r"|Cargo\.lock|poetry\.lock|Pipfile\.lock|uv\.lock|pdm\.lock|Gemfile\.lock|composer\.lock"
    r"|go\.sum|packages\.lock\.json|flake\.lock|mix\.lock|pubspec\.lock|Podfile\.lock"
    r"|gradle\.lockfile)$"
)
"""Lock files: full of integrity hashes under names like ``integrity``; the generic rule skips them."""

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
_GITHUB = _on_secret(checks.github_checksum_ok)

# -- the table ----------------------------------------------------------------------------------

_CLOUD = (
    _rule(
        "aws-access-key-id",
        "AWS access key id (AKIA long-term, ASIA temporary)",
        H,
        ("akia", "asia", "abia", "acca"),
        # AWS key ids are a four-letter type prefix and 16 base32 characters.
        r"(?<![A-Za-z0-9])(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})(?![A-Za-z0-9])",
        shown_prefix=4,
    ),
    _named(
        "aws-secret-access-key",
        "AWS secret access key assigned to an aws_secret_access_key-like name",
        C,
        ("secret",),
        r"aws[_.\-]?secret(?:[_.\-]?access)?(?:[_.\-]?key)?|secret[_.\-]?access[_.\-]?key",
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        validate=_random(3.5, 2),
        priority=60,
    ),
    _token(
        "aws-session-token",
        "AWS STS session token",
        H,
        ("iqojb3jpz2lux2vj", "fwogzxivyxdz", "fqogzxivyxdz"),
        # The serialised token always opens with the same bytes, hence the same base64 prefix.
        r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9/+]{100,1400}={0,2}",
        end=r"(?![A-Za-z0-9/+=])",
        # Binary protobuf inside: runs like ////////// are normal, so skip the mask heuristics.
        check_placeholder=False,
        validate=_random(4.0),
        max_len=1500,
    ),
    _rule(
        "gcp-service-account-key",
        "Google Cloud service-account key file (private_key in its JSON)",
        C,
        ('"private_key"',),
        r"\"private_key\"[ \t]{0,4}:[ \t]{0,4}\""
        r"(?P<secret>-----BEGIN PRIVATE KEY-----\\n[A-Za-z0-9+/=\\]{200,8000}?"
        r"-----END PRIVATE KEY-----(?:\\n)?)\"",
        check_placeholder=False,
        validate=_on_secret(checks.pem_body_ok),
        max_len=8200,
        priority=60,  # more precise than the PEM rule that also sees this block
    ),
    _token(
        "google-api-key",
        "Google API key (Cloud, Maps, Firebase, Gemini)",
        H,
        ("aiza",),
        r"AIza[A-Za-z0-9_\-]{35}",
        end=_END_DASH,
    ),
    _token(
        "google-oauth-client-secret",
        "Google OAuth client secret",
        H,
        ("gocspx-",),
        r"GOCSPX-[A-Za-z0-9_\-]{28}",
        end=_END_DASH,
    ),
    _rule(
        "azure-storage-account-key",
        "Azure storage or Cosmos DB account key in a connection string (AccountKey=)",
        C,
        ("accountkey",),
        # A 64-byte key: 86 base64 characters and '==' padding.
        r"(?i:AccountKey)[ \t]?=[ \t]?(?P<secret>[A-Za-z0-9+/]{86}==)(?![A-Za-z0-9+/=])",
        validate=_random(4.0),
    ),
    _rule(
        "azure-shared-access-key",
        "Azure Service Bus / Event Hubs shared access key in a connection string",
        H,
        ("sharedaccesskey",),
        r"(?i:SharedAccessKey)[ \t]?=[ \t]?(?P<secret>[A-Za-z0-9+/]{43}=)(?![A-Za-z0-9+/=])",
        validate=_random(3.8),
    ),
    _token(
        "azure-ad-client-secret",
        "Microsoft Entra ID (Azure AD) application client secret",
        H,
        ("q~",),
        # Current-format client secrets carry a version digit and the marker 'Q~' at offset 3.
        r"[A-Za-z0-9_~.\-]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
        end=r"(?![A-Za-z0-9_~.\-])",
        shown_prefix=0,
        validate=_random(3.5, 3),
    ),
    _rule(
        "azure-sas-token",
        "Azure shared access signature (sv=…&sig=…)",
        H,
        ("sig=",),
        r"(?<![A-Za-z0-9_])sv=[0-9]{4}-[0-9]{2}-[0-9]{2}(?:&[A-Za-z0-9=%:._\-]{1,100}){0,12}?"
        r"&sig=(?P<secret>[A-Za-z0-9%+/=]{40,100})(?![A-Za-z0-9%+/=])",
        validate=_random(4.0),
        max_len=1400,
    ),
    _token(
        "digitalocean-token",
        "DigitalOcean personal access, OAuth or refresh token",
        C,
        ("dop_v1_", "doo_v1_", "dor_v1_"),
        r"do[opr]_v1_[a-f0-9]{64}",
    ),
    _named(
        "heroku-api-key",
        "Heroku API key assigned to a heroku-named setting",
        H,
        ("heroku",),
        r"heroku[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?key|key|token|secret|password)",
        r"(?:" + _UUID + r"|HRKU-[A-Za-z0-9_\-]{40,100})" + _END_DASH,
    ),
    _named(
        "cloudflare-api-token",
        "Cloudflare API token assigned to a cloudflare-named setting",
        H,
        ("cloudflare", "cf_", "cf-"),
        r"cloudflare[A-Za-z0-9_.\-]{0,20}?token|cf[_\-](?:api[_\-]?)?token",
        r"[A-Za-z0-9_\-]{40}" + _END_DASH,
        validate=_random(3.5, 2),
    ),
    _named(
        "cloudflare-global-api-key",
        "Cloudflare global API key assigned to a cloudflare-named setting",
        H,
        ("cloudflare", "cf_", "cf-"),
        r"(?:cloudflare|cf)[A-Za-z0-9_.\-]{0,20}?(?:api|global|auth)[_.\-]?key",
        r"[a-f0-9]{37}" + _END,
        validate=_random(3.0),
    ),
    _token(
        "cloudflare-origin-ca-key",
        "Cloudflare Origin CA key",
        H,
        ("v1.0-",),
        r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
    ),
    _token(
        "alibaba-access-key-id",
        "Alibaba Cloud AccessKey id",
        H,
        ("ltai",),
        r"LTAI[A-Za-z0-9]{12,20}",
        validate=_random(3.2, 2),
    ),
)

_VCS = (
    _token(
        "github-personal-access-token",
        "GitHub personal access token (classic)",
        C,
        ("ghp_",),
        r"ghp_[A-Za-z0-9]{36}",
        validate=_GITHUB,
    ),
    _token(
        "github-oauth-token",
        "GitHub OAuth access token",
        C,
        ("gho_",),
        r"gho_[A-Za-z0-9]{36}",
        validate=_GITHUB,
    ),
    _token(
        "github-user-to-server-token",
        "GitHub App user-to-server token",
        H,
        ("ghu_",),
        r"ghu_[A-Za-z0-9]{36}",
        validate=_GITHUB,
    ),
    _token(
        "github-server-to-server-token",
        "GitHub App installation (server-to-server) token",
        H,
        ("ghs_",),
        r"ghs_[A-Za-z0-9]{36}",
        validate=_GITHUB,
    ),
    _token(
        "github-refresh-token",
        "GitHub App refresh token",
        H,
        ("ghr_",),
        r"ghr_[A-Za-z0-9]{36}",
        validate=_GITHUB,
    ),
    _token(
        "github-fine-grained-token",
        "GitHub fine-grained personal access token",
        C,
        ("github_pat_",),
        r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
    ),
    _token(
        "gitlab-personal-access-token",
        "GitLab personal, project or group access token",
        C,
        ("glpat-",),
        # Classic: 20 characters. Routable (GitLab 17+): longer, with .<version>.<crc> suffix.
        r"glpat-[A-Za-z0-9_\-]{20,50}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?",
        end=_END_DASH,
    ),
    _token(
        "gitlab-runner-token",
        "GitLab runner authentication or registration token",
        H,
        ("glrt-", "gr1348941"),
        r"(?:glrt-|GR1348941)[A-Za-z0-9_\-]{20,50}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?",
        end=_END_DASH,
    ),
    _token(
        "gitlab-deploy-token",
        "GitLab deploy token",
        H,
        ("gldt-",),
        r"gldt-[A-Za-z0-9_\-]{20,50}",
        end=_END_DASH,
    ),
    _token(
        "gitlab-pipeline-trigger-token",
        "GitLab pipeline trigger token",
        H,
        ("glptt-",),
        r"glptt-[a-f0-9]{40}",
    ),
    _token(
        "gitlab-oauth-application-secret",
        "GitLab OAuth application secret",
        H,
        ("gloas-",),
        r"gloas-[a-f0-9]{64}",
    ),
    _token(
        "atlassian-api-token",
        "Atlassian (Jira, Confluence, Bitbucket) API token",
        H,
        ("atatt3",),
        r"ATATT3[A-Za-z0-9_\-=]{150,250}",
        end=r"(?![A-Za-z0-9_\-=])",
    ),
)

_CHAT = (
    _token(
        "slack-bot-token",
        "Slack bot token",
        H,
        ("xoxb-",),
        r"xoxb-[0-9]{8,13}(?:-[0-9]{8,13})?-[A-Za-z0-9]{24,34}",
    ),
    _token(
        "slack-user-token",
        "Slack user token",
        C,
        ("xoxp-",),
        r"xoxp-[0-9]{8,13}-[0-9]{8,13}-[0-9]{8,13}-[a-f0-9]{32}",
    ),
    _token(
        "slack-app-token",
        "Slack app-level token",
        H,
        ("xapp-",),
        r"xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,14}-[a-f0-9]{64}",
    ),
    _token(
        "slack-config-token",
        "Slack app configuration (refresh) token",
        H,
        ("xoxe",),
        r"xoxe(?:\.xox[bp])?-[0-9]-[A-Za-z0-9]{100,200}",
    ),
    _token(
        "slack-webhook-url",
        "Slack incoming webhook URL",
        H,
        ("hooks.slack.com",),
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{8,12}"
        r"/[A-Z0-9]{8,12}/[A-Za-z0-9]{20,48}",
    ),
    _token(
        "discord-bot-token",
        "Discord bot token",
        H,
        ("discord",),
        # base64(user id) . base64(timestamp) . HMAC
        r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}",
        end=_END_DASH,
        shown_prefix=0,
        anchored=False,  # nothing in the token names Discord: require the word in the file
        validate=_on_secret(checks.discord_token_ok),
    ),
    _token(
        "discord-webhook-url",
        "Discord webhook URL",
        H,
        ("discord.com/api/webhooks", "discordapp.com/api/webhooks"),
        r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}"
        r"/[A-Za-z0-9_\-]{60,70}",
        end=_END_DASH,
    ),
    _token(
        "telegram-bot-token",
        "Telegram bot token",
        H,
        (":aa",),
        r"[0-9]{8,12}:AA[A-Za-z0-9_\-]{33}",
        end=_END_DASH,
        shown_prefix=0,
    ),
    _token(
        "microsoft-teams-webhook-url",
        "Microsoft Teams incoming webhook URL",
        H,
        ("webhook.office.com", "outlook.office"),
        r"https://(?:[a-z0-9\-]{1,60}\.webhook\.office\.com/webhookb2|outlook\.office(?:365)?"
        r"\.com/webhook)/[a-f0-9\-]{36}@[a-f0-9\-]{36}/IncomingWebhook/[A-Za-z0-9]{32}"
        r"/[a-f0-9\-]{36}(?:/[A-Za-z0-9_\-]{30,80})?",
        end=_END_DASH,
    ),
)

_PAYMENTS = (
    _token(
        "stripe-secret-key",
        "Stripe live secret key",
        C,
        ("sk_live_",),
        r"sk_live_[A-Za-z0-9]{24,247}",
    ),
    _token(
        "stripe-restricted-key",
        "Stripe live restricted key",
        C,
        ("rk_live_",),
        r"rk_live_[A-Za-z0-9]{24,247}",
    ),
    _token(
        "stripe-test-key",
        "Stripe test-mode secret or restricted key (cannot move money)",
        L,
        ("sk_test_", "rk_test_"),
        r"[sr]k_test_[A-Za-z0-9]{24,247}",
    ),
    _token(
        "stripe-webhook-secret",
        "Stripe webhook signing secret",
        H,
        ("whsec_",),
        r"whsec_[A-Za-z0-9+/=]{32,88}",
        end=r"(?![A-Za-z0-9_+/=])",
        validate=_random(3.5),
    ),
    _token(
        "square-access-token",
        "Square access token",
        C,
        ("eaaa", "sq0atp-"),
        r"EAAA[A-Za-z0-9_\-]{60}|sq0atp-[A-Za-z0-9_\-]{22}",
        end=_END_DASH,
        validate=_random(3.5),
    ),
    _token(
        "square-oauth-secret",
        "Square OAuth application secret",
        C,
        ("sq0csp-",),
        r"sq0csp-[A-Za-z0-9_\-]{43}",
        end=_END_DASH,
    ),
    _token(
        "braintree-access-token",
        "PayPal Braintree production access token",
        C,
        ("access_token$production$",),
        r"access_token\$production\$[a-z0-9]{16}\$[a-f0-9]{32}",
    ),
    _named(
        "paypal-client-secret",
        "PayPal REST client secret assigned to a paypal-named setting",
        H,
        ("paypal",),
        r"paypal[A-Za-z0-9_.\-]{0,20}?secret",
        r"[A-Za-z0-9_\-]{60,90}" + _END_DASH,
        validate=_random(4.0, 2),
    ),
    _named(
        "adyen-api-key",
        "Adyen API key assigned to an adyen-named setting",
        H,
        ("adyen",),
        r"adyen[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?)?key",
        r"AQE[A-Za-z0-9+/=_\-.~]{60,250}(?![A-Za-z0-9+/=_\-.~])",
        validate=_random(4.0, 2),
    ),
    _token(
        "plaid-access-token",
        "Plaid production or development access token",
        H,
        ("access-production-", "access-development-"),
        r"access-(?:production|development)-" + _UUID,
        end=_END_DASH,
    ),
    _token(
        "shopify-access-token",
        "Shopify admin, custom-app or private-app access token",
        C,
        ("shpat_", "shpca_", "shppa_"),
        r"shp(?:at|ca|pa)_[a-fA-F0-9]{32}",
    ),
    _token(
        "shopify-shared-secret",
        "Shopify app shared secret",
        H,
        ("shpss_",),
        r"shpss_[a-fA-F0-9]{32}",
    ),
)

_AI = (
    _token(
        "openai-api-key",
        "OpenAI API key (project, service-account, admin or legacy)",
        C,
        ("sk-",),
        # 'T3BlbkFJ' is base64 for 'OpenAI' and sits inside every legacy key.
        r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,250}"
        r"|[A-Za-z0-9_\-]{16,120}T3BlbkFJ[A-Za-z0-9_\-]{16,120})",
        end=_END_DASH,
        shown_prefix=3,
        validate=_random(4.0, 2),
    ),
    _token(
        "anthropic-api-key",
        "Anthropic API or admin key",
        C,
        ("sk-ant-",),
        r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{86,100}AA",
        end=_END_DASH,
        priority=60,
    ),
    _token(
        "huggingface-token",
        "Hugging Face user or organisation access token",
        H,
        ("hf_", "api_org_"),
        r"(?:hf_|api_org_)[A-Za-z]{34}",
        shown_prefix=3,
        # Random mixed case, unlike a 34-letter identifier such as hf_loadPretrainedModelFromHub.
        validate=_on_secret(
            lambda v: sum(c.isupper() for c in v) >= 8 and sum(c.islower() for c in v) >= 8
        ),
    ),
    _named(
        "cohere-api-key",
        "Cohere API key assigned to a cohere-named setting",
        H,
        ("cohere", "co_api_key"),
        r"cohere[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?key|key|token)|co_api_key",
        r"[A-Za-z0-9]{40}" + _END,
        validate=_random(3.8, 2),
    ),
    _token(
        "replicate-api-token",
        "Replicate API token",
        H,
        ("r8_",),
        r"r8_[A-Za-z0-9]{37}",
        shown_prefix=3,
        validate=_random(3.8, 2),
    ),
    _token(
        "groq-api-key",
        "Groq API key",
        H,
        ("gsk_",),
        r"gsk_[A-Za-z0-9]{52}",
        validate=_random(4.0, 2),
    ),
    _named(
        "mistral-api-key",
        "Mistral AI API key assigned to a mistral-named setting",
        H,
        ("mistral",),
        r"mistral[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?key|key|token)",
        r"[A-Za-z0-9]{32}" + _END,
        validate=_random(3.8, 2),
    ),
    _token(
        "perplexity-api-key",
        "Perplexity API key",
        H,
        ("pplx-",),
        r"pplx-[A-Za-z0-9]{48}",
        validate=_random(3.8),
    ),
    _token(
        "xai-api-key",
        "xAI (Grok) API key",
        H,
        ("xai-",),
        r"xai-[A-Za-z0-9]{80}",
        validate=_random(4.0, 2),
    ),
    _token(
        "openrouter-api-key",
        "OpenRouter API key",
        H,
        ("sk-or-v1-",),
        r"sk-or-v1-[a-f0-9]{64}",
        end=_END_DASH,
        priority=60,
    ),
    _token(
        "langsmith-api-key",
        "LangSmith API key",
        H,
        ("lsv2_",),
        r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",
    ),
)

_REGISTRIES = (
    _token(
        "npm-access-token",
        "npm access token",
        C,
        ("npm_",),
        r"npm_[A-Za-z0-9]{36}",
        validate=_GITHUB,  # npm's tokens carry the same CRC32 as GitHub's
    ),
    _token(
        "pypi-api-token",
        "PyPI or TestPyPI API token",
        C,
        ("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"),
        # A macaroon whose serialised header names the index: base64 of 'pypi.org' / 'test.pypi.org'.
        r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,300}",
        end=_END_DASH,
    ),
    _token(
        "rubygems-api-key",
        "RubyGems API key",
        C,
        ("rubygems_",),
        r"rubygems_[a-f0-9]{48}",
    ),
    _token(
        "nuget-api-key",
        "NuGet API key",
        H,
        ("oy2",),
        r"oy2[a-z0-9]{43}",
        shown_prefix=3,
        validate=_random(4.0, 2),
    ),
    _token(
        "docker-hub-token",
        "Docker Hub personal or organisation access token",
        H,
        ("dckr_pat_", "dckr_oat_"),
        r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,40}",
        end=_END_DASH,
    ),
    _token(
        "jfrog-api-key",
        "JFrog Artifactory API key",
        H,
        ("akcp",),
        r"AKCp[A-Za-z0-9]{69}",
        validate=_random(4.0, 2),
    ),
    _token(
        "jfrog-reference-token",
        "JFrog Artifactory reference token",
        H,
        ("cmvmdgtuojaxoj",),
        r"cmVmdGtuOjAxOj[A-Za-z0-9]{40,80}",
    ),
    _token(
        "clojars-deploy-token",
        "Clojars deploy token",
        H,
        ("clojars_",),
        r"CLOJARS_[a-z0-9]{60}",
    ),
)

_MESSAGING = (
    _token(
        "sendgrid-api-key",
        "SendGrid API key",
        C,
        ("sg.",),
        r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        end=_END_DASH,
        shown_prefix=3,
    ),
    _token(
        "twilio-api-key",
        # The SID only names a key; the secret that goes with it has no format of its own.
        "Twilio API key SID (SK…) in a file that uses Twilio",
        M,
        ("twilio",),
        r"SK[0-9a-fA-F]{32}",
        shown_prefix=2,
        anchored=False,  # 'SK' + hex alone is too common; require Twilio in the file
        validate=_random(3.0),
    ),
    _named(
        "twilio-auth-token",
        "Twilio account auth token assigned to an auth_token-like name",
        C,
        ("twilio",),
        r"(?:twilio[A-Za-z0-9_.\-]{0,20}?)?auth[_.\-]?token|twilio[A-Za-z0-9_.\-]{0,20}?secret",
        r"[a-f0-9]{32}" + _END,
        anchored=False,
        validate=_random(3.0),
        priority=60,
    ),
    _token(
        "mailgun-api-key",
        "Mailgun API key",
        H,
        ("key-",),
        r"key-[a-f0-9]{32}",
        end=_END_DASH,
        validate=_random(3.0),
    ),
    _token(
        "mailchimp-api-key",
        "Mailchimp API key (hex key and data-centre suffix)",
        H,
        ("-us",),
        r"[a-f0-9]{32}-us[0-9]{1,2}",
        shown_prefix=0,
        validate=_random(3.0),
    ),
    _named(
        "postmark-server-token",
        "Postmark server or account token assigned to a postmark-named setting",
        H,
        ("postmark",),
        r"postmark[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?key|key|token|secret)",
        _UUID + _END_DASH,
    ),
    _token(
        "brevo-api-key",
        "Brevo (Sendinblue) API or SMTP key",
        H,
        ("xkeysib-", "xsmtpsib-"),
        r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}",
    ),
)

_PRIVATE_KEYS = (
    _rule(
        "private-key",
        "Private key in PEM form (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted PKCS#8)",
        C,
        ("private key-----",),
        # Real or \n-escaped (in JSON and string literals) line breaks. The body cannot run
        # over an armour line ('-----'), so an unclosed BEGIN costs only up to the next one.
        r"(?P<secret>-----BEGIN (?P<kind>(?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?)PRIVATE KEY-----"
        r"(?:[A-Za-z0-9+/=\s\\:,]|-(?!----)){64,16384}?-----END (?P=kind)PRIVATE KEY-----)",
        check_placeholder=False,
        validate=_on_secret(checks.pem_body_ok),
        max_len=16500,
    ),
    _rule(
        "pgp-private-key-block",
        "PGP/GPG private key block",
        C,
        ("pgp private key block",),
        r"(?P<secret>-----BEGIN PGP PRIVATE KEY BLOCK-----(?:[^-]|-(?!----)){64,65536}?"
        r"-----END PGP PRIVATE KEY BLOCK-----)",
        check_placeholder=False,
        validate=_on_secret(checks.pem_body_ok),
        max_len=65700,
    ),
    _rule(
        "putty-private-key",
        "PuTTY private key file (.ppk)",
        C,
        ("putty-user-key-file-",),
        # The body cannot run into another key file's header: linear on repeated headers.
        r"(?P<secret>PuTTY-User-Key-File-[23]: (?:(?!PuTTY-User-Key-File-)[\s\S]){64,16384}?"
        r"Private-MAC: [0-9a-fA-F]{40,64})",
        check_placeholder=False,
        max_len=16600,
    ),
    _token(
        "age-secret-key",
        "age encryption secret key",
        C,
        ("age-secret-key-1",),
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        validate=_on_secret(checks.bech32_ok),
    ),
    _token(
        "signed-note-signing-key",
        "Signing key of a transparency log or signed notes (Go sumdb/note, custodes ledger)",
        C,
        ("private+key+",),
        r"PRIVATE\+KEY\+[^\s+]{1,128}\+[0-9a-f]{8}\+[A-Za-z0-9+/]{43}[A-Za-z0-9+/=]",
        validate=_on_secret(checks.note_signer_ok),
        # The key id proves a real key pair; a log named example.com is still a real key.
        check_placeholder=False,
    ),
)

_TOKENS = (
    _token(
        "jwt",
        "JSON Web Token (signed)",
        M,
        ("eyj",),
        r"eyJ[A-Za-z0-9_\-]{10,2000}\.[A-Za-z0-9_\-]{4,8000}\.[A-Za-z0-9_\-]{16,1000}",
        # Not inside a longer dotted run: five-part JWE and base64 blobs are something else.
        not_after=r"[A-Za-z0-9_\-.]",
        end=r"(?![A-Za-z0-9_\-.])",
        shown_prefix=3,
        validate=_on_secret(checks.jwt_ok),
        max_len=11100,
    ),
    _token(
        "onepassword-service-account-token",
        "1Password service account token",
        C,
        ("ops_eyj",),
        r"ops_eyJ[A-Za-z0-9+/=_\-]{100,1500}",
        end=r"(?![A-Za-z0-9+/=_\-])",
        max_len=1600,
    ),
)

_DATABASES = (
    _uri_password(
        "postgres-uri-password",
        "PostgreSQL",
        r"postgres(?:ql)?(?:\+[a-z0-9]{1,20})?",
        ("postgres",),
    ),
    _uri_password(
        "mysql-uri-password",
        "MySQL/MariaDB",
        r"(?:mysql|mariadb)(?:\+[a-z0-9]{1,20})?",
        ("mysql", "mariadb"),
    ),
    _uri_password("mongodb-uri-password", "MongoDB", r"mongodb(?:\+srv)?", ("mongodb",)),
    _uri_password("redis-uri-password", "Redis", r"rediss?", ("redis",)),
    _uri_password("amqp-uri-password", "AMQP (RabbitMQ)", r"amqps?", ("amqp",)),
)

_PLATFORMS = (
    _named(
        "datadog-api-key",
        "Datadog API key assigned to a datadog-named setting",
        H,
        ("datadog", "dd_api", "dd-api", "dd.api", "ddapi"),
        r"(?:datadog|dd)[_.\-]?api[_.\-]?key|datadog[A-Za-z0-9_.\-]{0,20}?key",
        r"[a-f0-9]{32}" + _END,
        validate=_random(3.0),
    ),
    _named(
        "datadog-app-key",
        "Datadog application key assigned to a datadog-named setting",
        H,
        ("datadog", "dd_app", "dd-app", "dd.app", "ddapp"),
        r"(?:datadog|dd)[_.\-]?app(?:lication)?[_.\-]?key",
        r"[a-f0-9]{40}" + _END,
        validate=_random(3.0),
    ),
    _token(
        "newrelic-user-api-key",
        "New Relic user API key",
        H,
        ("nrak-",),
        r"NRAK-[A-Z0-9]{27}",
    ),
    _token(
        "newrelic-license-key",
        "New Relic ingest license key",
        H,
        ("nral",),
        r"[a-f0-9]{36}NRAL",
        shown_prefix=0,
        validate=_random(3.0),
    ),
    _token(
        "newrelic-insights-key",
        "New Relic Insights insert or query key",
        H,
        ("nrii-", "nriq-"),
        r"NRI[IQ]-[A-Za-z0-9_\-]{32}",
        end=_END_DASH,
    ),
    _rule(
        "sentry-dsn-secret",
        "Sentry DSN with its (legacy) secret key",
        H,
        ("sentry",),
        r"https?://[a-f0-9]{32}:(?P<secret>[a-f0-9]{32})@[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?/",
        anchored=False,  # self-hosted DSNs need not say 'sentry'; the file usually does
    ),
    _token(
        "sentry-auth-token",
        "Sentry organisation or user auth token",
        H,
        ("sntrys_", "sntryu_"),
        r"sntrys_[A-Za-z0-9+/=]{60,400}_[A-Za-z0-9+/]{43}|sntryu_[a-f0-9]{64}",
        end=r"(?![A-Za-z0-9_+/=])",
    ),
    _token(
        "vault-token",
        "HashiCorp Vault service, batch or recovery token",
        C,
        ("hvs.", "hvb.", "hvr."),
        r"hv[sbr]\.[A-Za-z0-9_\-]{24,500}",
        end=_END_DASH,
        validate=_random(4.0, 2),
    ),
    _token(
        "terraform-cloud-token",
        "Terraform Cloud / Enterprise API token",
        C,
        (".atlasv1.",),
        r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-]{60,70}",
        end=_END_DASH,
        shown_prefix=0,
    ),
    _named(
        "okta-api-token",
        "Okta API token assigned to an okta-named setting",
        H,
        ("okta",),
        r"okta[A-Za-z0-9_.\-]{0,20}?(?:api[_.\-]?)?(?:token|key|secret)",
        r"00[A-Za-z0-9_\-]{40}" + _END_DASH,
        validate=_random(4.0, 2),
    ),
    _token(
        "linear-api-key",
        "Linear API key or OAuth token",
        H,
        ("lin_api_", "lin_oauth_"),
        r"lin_(?:api_[A-Za-z0-9]{40}|oauth_[a-f0-9]{64})",
        validate=_random(3.5),
    ),
    _token(
        "notion-integration-token",
        "Notion integration token",
        H,
        ("secret_", "ntn_"),
        r"secret_[A-Za-z0-9]{43}|ntn_[A-Za-z0-9]{46}",
        validate=_random(4.0, 3),  # 'secret_' + an identifier is common; a random tail is not
    ),
    _token(
        "doppler-token",
        "Doppler personal, service, service-account, CLI, SCIM or audit token",
        H,
        ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."),
        r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_\-]{2,35}\.)?[A-Za-z0-9]{40,44}",
        validate=_random(4.0, 2),
    ),
    _token(
        "pulumi-access-token",
        "Pulumi access token",
        H,
        ("pul-",),
        r"pul-[a-f0-9]{40}",
    ),
    _token(
        "grafana-cloud-token",
        "Grafana Cloud access policy token",
        H,
        ("glc_",),
        r"glc_[A-Za-z0-9+/]{32,400}={0,2}",
        end=r"(?![A-Za-z0-9_+/=])",
        validate=_random(4.0, 2),
    ),
    _token(
        "grafana-service-account-token",
        "Grafana service account token",
        H,
        ("glsa_",),
        r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
    ),
    _token(
        "firebase-cloud-messaging-server-key",
        "Firebase Cloud Messaging legacy server key",
        H,
        (":apa91b",),
        r"AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{130,140}",
        end=_END_DASH,
    ),
    _named(
        "algolia-admin-api-key",
        "Algolia admin or write API key assigned to an algolia-named setting",
        H,
        ("algolia",),
        r"algolia[A-Za-z0-9_.\-]{0,20}?(?:admin|write|api|secret)[A-Za-z0-9_.\-]{0,10}?key",
        r"[a-f0-9]{32}" + _END,
        validate=_algolia_ok,
    ),
    _token(
        "postman-api-key",
        "Postman API key",
        H,
        ("pmak-",),
        r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    ),
    _token(
        "supabase-secret",
        "Supabase personal access token or secret API key",
        H,
        ("sbp_", "sb_secret_"),
        r"sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,60}",
        end=_END_DASH,
    ),
    _token(
        "planetscale-token",
        "PlanetScale service token, password or OAuth token",
        H,
        ("pscale_",),
        r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.\-]{32,64}",
        end=r"(?![A-Za-z0-9_.\-])",
        validate=_random(4.0, 2),
    ),
    _token(
        "databricks-token",
        "Databricks personal access token",
        H,
        ("dapi",),
        r"dapi[a-f0-9]{32}(?:-[0-9])?",
        end=_END_DASH,
        validate=_random(3.0),
    ),
    _token(
        "tailscale-key",
        "Tailscale API, auth or OAuth client key",
        H,
        ("tskey-",),
        r"tskey-(?:api|auth|client|webhook|scim)-[A-Za-z0-9]{8,20}-[A-Za-z0-9]{20,64}",
        end=_END_DASH,
    ),
    _token(
        "figma-token",
        "Figma personal access token",
        H,
        ("figd_",),
        r"figd_[A-Za-z0-9_\-]{40}",
        end=_END_DASH,
    ),
    _token(
        "mapbox-secret-token",
        "Mapbox secret access token",
        H,
        ("sk.eyj1ijoi",),
        r"sk\.eyJ1Ijoi[A-Za-z0-9_\-]{20,200}\.[A-Za-z0-9_\-]{20,30}",
        end=_END_DASH,
        shown_prefix=3,
    ),
    _token(
        "airtable-personal-access-token",
        "Airtable personal access token",
        H,
        ("pat",),
        r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}",
        shown_prefix=3,
    ),
)


_GENERIC = (
    _rule(
        "generic-assignment",
        "High-entropy value assigned to a password-, secret-, token- or key-like name",
        M,
        _GENERIC_KEYWORDS,
        # A name (an identifier, dotted or dashed path; not the tail of AWS::X::ApiKey), an
        # optional closing key quote, an
        # assignment, then a quoted value — or an unquoted one ending the token (env files,
        # YAML, INI, XML). Which names count is decided in Python (is_secret_name), which is
        # clearer than a regex and cheaper than a name alternation tried at every position.
        rf"(?<![A-Za-z0-9_.\-:])(?P<name>[A-Za-z_\-][A-Za-z0-9_.\-]{{0,{_MAX_NAME - 1}}})"
        + _ASSIGN
        + r"(?P<q>[\"'`])?(?:(?i:bearer|token|basic)[ \t]{1,4})?"
        r"(?P<secret>(?(q)[^\s\"'`\\]{8,200}|[^\s\"'`\\,;<>]{8,200}))"
        r"(?(q)(?P=q)|(?=[\s,;<]|\Z))",
        shown_prefix=0,
        shown_tail=2,
        check_placeholder=False,  # _generic_ok checks placeholders, after cheaper tests
        validate=_generic_ok,
        priority=0,
        skip_paths=LOCK_FILES,
        match_start=_name_start,
        defers_to_claims=True,
    ),
)

RULES: tuple[SecretRule, ...] = (
    _CLOUD
    + _VCS
    + _CHAT
    + _PAYMENTS
    + _AI
    + _REGISTRIES
    + _MESSAGING
    + _PRIVATE_KEYS
    + _TOKENS
    + _DATABASES
    + _PLATFORMS
    + _GENERIC
)
"""Every rule, specific formats first; ids are unique and stable."""
