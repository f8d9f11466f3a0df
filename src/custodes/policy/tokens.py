"""Signed policy tokens: Ed25519-signed, expiring, audience-bound JWTs naming the rules a caller may pass.

A token is a JWS compact serialisation (RFC 7515) of a JWT (RFC 7519) signed with ``alg: EdDSA``
(RFC 8037, Ed25519), so any JOSE library verifies it. The signing key is a custodes key (the
ledger's, or one made by ``custodes token key``); the header's ``kid`` is that key's 4-byte key
id in 8 hex digits, and ``iss`` is the key's name::

    header  {"alg": "EdDSA", "kid": "1a2b3c4d", "typ": "JWT"}
    claims  {"iss", "sub" (the caller), "aud", "iat", "nbf", "exp", "jti" (random),
             "custodes_rules": [rule ids the caller may pass], "purpose" (optional)}

:func:`verify_token` accepts a token only if every check holds; each rejection is its own
error, all under :class:`TokenRejected` (a :class:`~custodes.errors.VerificationError`, exit 1)::

    TokenRejected          reason
    ├── MalformedToken     malformed       not three base64url parts, bad JSON, missing claims
    ├── UnsupportedAlgorithm algorithm     any alg but EdDSA (alg:none, HS256 key confusion)
    ├── UnknownKey         unknown-key     no trusted verifier has the header's kid
    ├── ForgedToken        bad-signature   the signature does not verify: forged or altered
    ├── WrongIssuer        issuer          iss is not the name of the key that signed it
    ├── ExpiredToken       expired         past exp (plus leeway)
    ├── TokenNotYetValid   not-yet-valid   before nbf or iat (minus leeway)
    ├── WrongAudience      audience        aud does not name this audience
    ├── LifetimeTooLong    lifetime        exp - iat beyond the maximum lifetime
    └── ReplayedToken      replayed        its jti was presented before, within its lifetime

A :class:`ReplayCache` remembers each accepted ``jti`` until the token expires, in SQLite by
default or PostgreSQL (``postgresql://…``), safely across processes and hosts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from custodes.errors import KeyFileError, UsageError, VerificationError
from custodes.ledger.note import Signer, Verifier

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "DEFAULT_TTL",
    "ExpiredToken",
    "ForgedToken",
    "LifetimeTooLong",
    "MalformedToken",
    "ReplayCache",
    "ReplayedToken",
    "TokenClaims",
    "TokenNotYetValid",
    "TokenRejected",
    "UnknownKey",
    "UnsupportedAlgorithm",
    "WrongAudience",
    "WrongIssuer",
    "create_token_key",
    "issue_token",
    "kid_of",
    "token_record",
    "token_sha256",
    "verify_token",
]

ALGORITHM = "EdDSA"
DEFAULT_TTL = 15 * 60
DEFAULT_LEEWAY = 60
DEFAULT_MAX_LIFETIME = 60 * 60
# Far above any real token (a few hundred bytes), far below what costs real work to parse.
MAX_TOKEN_BYTES = 16 * 1024
MAX_JTI_CHARS = 256

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# A rule id as policy packs write it (policy.schema): pii.customer-schema, secret.aws-access-key-id.
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_KNOWN_TYP = {"jwt", "application/jwt"}


# -- errors --------------------------------------------------------------------------------------


class TokenRejected(VerificationError):
    """A presented token was not accepted; ``reason`` is a stable code for records and metrics."""

    reason: ClassVar[str] = "rejected"

    def __init__(self, message: str, *, hint: str | None = None, kid: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kid = kid


class MalformedToken(TokenRejected):
    reason = "malformed"


class UnsupportedAlgorithm(TokenRejected):
    reason = "algorithm"


class UnknownKey(TokenRejected):
    reason = "unknown-key"


class ForgedToken(TokenRejected):
    reason = "bad-signature"


class WrongIssuer(TokenRejected):
    reason = "issuer"


class ExpiredToken(TokenRejected):
    reason = "expired"


class TokenNotYetValid(TokenRejected):
    reason = "not-yet-valid"


class WrongAudience(TokenRejected):
    reason = "audience"


class LifetimeTooLong(TokenRejected):
    reason = "lifetime"


class ReplayedToken(TokenRejected):
    reason = "replayed"


# -- claims --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of a policy token. Times are Unix seconds (JWT NumericDate)."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    jti: str
    rules: tuple[str, ...]
    kid: str
    purpose: str | None = None

    def allows(self, rule_id: str) -> bool:
        """Whether the token names ``rule_id`` among the rules its bearer may pass."""
        return rule_id in self.rules

    def to_json(self) -> dict[str, Any]:
        """The claims under their JWT names, plus the header's ``kid``."""
        out: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience[0] if len(self.audience) == 1 else list(self.audience),
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "jti": self.jti,
            "custodes_rules": list(self.rules),
            "kid": self.kid,
        }
        if self.purpose is not None:
            out["purpose"] = self.purpose
        return out


def kid_of(verifier: Verifier) -> str:
    """The ``kid`` a token signed by ``verifier``'s key carries: its C2SP key id in hex."""
    return f"{verifier.key_id:08x}"


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a token: what records name instead of the bearer credential itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- encoding ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(part: str, what: str) -> bytes:
    # Strict: the base64url alphabet, no padding, and the canonical encoding only, so that no
    # two strings decode to the same bytes (a changed character is always a changed token).
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise MalformedToken(f"the token's {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"the token's {what} is not base64url") from exc
    if _b64url(data) != part:
        raise MalformedToken(f"the token's {what} is not canonical base64url")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # RFC 7515 §4: a parser must reject or take the last; two readers taking different
            # members is how confusion attacks start, so reject.
            raise ValueError(f"duplicate member {key!r}")
        out[key] = value
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"the token's {what} is not a JSON object ({exc})") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"the token's {what} is not a JSON object")
    return value


def _compact_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# -- issuing -------------------------------------------------------------------------------------


def _check_text(value: object, what: str, *, limit: int = 256) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"the token's {what} is empty", hint=f"give a non-empty {what}")
    if len(value) > limit or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise UsageError(
            f"the token's {what} is longer than {limit} characters or holds control characters",
            hint=f"give a short, printable {what}",
        )
    return value


def _check_rules(rules: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for rule in rules:
        if not isinstance(rule, str) or not _RULE_ID.fullmatch(rule):
            raise UsageError(
                f"{str(rule)[:60]!r} is not a rule id",
                hint="rule ids are lower-case letters, digits, '.', '-' and '_' (e.g. pii.customer-schema)",
            )
        if rule not in out:
            out.append(rule)
    if not out:
        raise UsageError(
            "a policy token must name at least one rule",
            hint="give the rule ids the caller may pass, e.g. --rules pii.customer-schema",
        )
    return tuple(out)


def issue_token(
    signer: Signer,
    *,
    audience: str,
    subject: str,
    rules: Sequence[str],
    ttl: int = DEFAULT_TTL,
    purpose: str | None = None,
    now: float | None = None,
    allow_long: bool = False,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
    jti: str | None = None,
) -> str:
    """A compact JWS policy token signed by ``signer``, valid for ``ttl`` seconds from ``now``.

    ``ttl`` beyond ``max_lifetime`` (default one hour) is refused unless ``allow_long``: a
    long-lived bearer token is a standing exception, and verifiers refuse it by default too.
    """
    _check_text(audience, "audience")
    _check_text(subject, "subject")
    rule_ids = _check_rules(rules)
    if purpose is not None:
        _check_text(purpose, "purpose", limit=1024)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise UsageError(f"token lifetime {ttl!r} is not a positive number of seconds")
    if ttl > max_lifetime and not allow_long:
        raise UsageError(
            f"a token lifetime of {ttl} s is beyond the maximum of {max_lifetime} s",
            hint="issue a shorter --ttl, or pass --allow-long (verifiers then need "
            "--max-lifetime at least as long)",
        )
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": signer.name,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "custodes_rules": list(rule_ids),
    }
    _check_text(claims["jti"], "jti", limit=MAX_JTI_CHARS)
    if purpose is not None:
        claims["purpose"] = purpose
    header = {"alg": ALGORITHM, "kid": kid_of(signer.verifier()), "typ": "JWT"}
    signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(claims))}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"


def create_token_key(path: str | os.PathLike[str], name: str) -> Signer:
    """Create a new Ed25519 token key named ``name`` in ``path`` (mode 0600, never overwritten)."""
    from custodes.errors import MalformedNote

    try:
        signer = Signer.generate(name)
    except MalformedNote as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(
            f"key file {target} already exists",
            hint="keep the existing key, or give another --output",
        ) from exc
    except OSError as exc:
        raise KeyFileError(
            f"cannot create key file {target}: {exc.strerror}",
            hint="check that its folder exists and is writable",
        ) from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.to_string() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return signer


# -- verifying -----------------------------------------------------------------------------------


def _numeric_date(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedToken(f"the token's {name!r} claim is missing or not a number")
    if not -(2**53) < value < 2**53:
        raise MalformedToken(f"the token's {name!r} claim is out of range")
    return int(value)


def _string_claim(claims: dict[str, Any], name: str, *, limit: int = 1024) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MalformedToken(f"the token's {name!r} claim is missing or not a short string")
    return value


def _audience_claim(claims: dict[str, Any]) -> tuple[str, ...]:
    value = claims.get("aud")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(a, str) for a in items):
        raise MalformedToken("the token's 'aud' claim is missing or not a string or list of strings")
    return tuple(items)


def _rules_claim(claims: dict[str, Any]) -> tuple[str, ...]:
    value = claims.get("custodes_rules")
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise MalformedToken("the token's 'custodes_rules' claim is missing or not a list of rule ids")
    return tuple(value)


def _header(part: str) -> tuple[str, dict[str, Any]]:
    header = _json_object(_unb64url(part, "header"), "header")
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise UnsupportedAlgorithm(
            f"the token's algorithm is {str(alg)[:20]!r}, not {ALGORITHM!r}",
            hint="policy tokens are signed with Ed25519 (alg EdDSA); issue one with "
            "`custodes token issue`",
        )
    if "crit" in header:
        raise MalformedToken("the token's header names critical extensions custodes does not know")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _KNOWN_TYP):
        raise MalformedToken(f"the token's type {str(typ)[:40]!r} is not a JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise MalformedToken("the token's header has no key id (kid)")
    return kid[:64], header


def verify_token(
    token: str,
    *,
    verifiers: Iterable[Verifier],
    audience: str,
    now: float | None = None,
    replay: ReplayCache | None = None,
    leeway: int = DEFAULT_LEEWAY,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
) -> TokenClaims:
    """The claims of ``token`` if it is a valid policy token for ``audience``; else a :class:`TokenRejected`.

    Checks, in order: the compact form, ``alg`` (EdDSA only), the ``kid`` among ``verifiers``,
    the Ed25519 signature, the claims' types, ``iss`` against the key's name, ``exp``/``nbf``/
    ``iat`` against ``now`` give or take ``leeway`` seconds, the audience, the lifetime against
    ``max_lifetime``, and last, with ``replay``, that its ``jti`` was not seen before (which
    records it: a token passes once).
    """
    if leeway < 0 or max_lifetime <= 0:
        raise UsageError("leeway must be >= 0 and the maximum lifetime > 0 seconds")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise MalformedToken(f"the token is not a string of at most {MAX_TOKEN_BYTES} characters")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(
            f"a token has three dot-separated parts, this one has {len(parts)}",
            hint="pass the whole token `custodes token issue` printed",
        )
    kid, _ = _header(parts[0])
    candidates = [v for v in verifiers if kid_of(v) == kid]
    if not candidates:
        raise UnknownKey(
            f"no trusted key has the token's key id {kid!r}",
            hint="trust the issuer's verifier key (--verifier), or ask for a token signed by one",
            kid=kid,
        )
    payload = _unb64url(parts[1], "claims")
    signature = _unb64url(parts[2], "signature")
    if len(signature) != 64:
        raise MalformedToken(
            f"the token's signature is {len(signature)} bytes, an Ed25519 signature is 64", kid=kid
        )
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    signer_key = next(
        (v for v in candidates if v.verify(signing_input, signature)),
        None,
    )
    if signer_key is None:
        raise ForgedToken(
            "the token's signature does not verify: it was forged or altered", kid=kid
        )
    claims = _json_object(payload, "claims")
    try:
        result = _claims(claims, kid)
    except TokenRejected as exc:
        exc.kid = kid
        raise
    if result.issuer != signer_key.name:
        raise WrongIssuer(
            f"the token's issuer {result.issuer[:60]!r} is not the name of the key that signed "
            f"it ({signer_key.name!r})",
            kid=kid,
        )
    moment = time.time() if now is None else now
    if moment >= result.expires_at + leeway:
        raise ExpiredToken(
            f"the token expired at {_utc(result.expires_at)}",
            hint="ask the issuer for a fresh token",
            kid=kid,
        )
    starts = max(result.not_before, result.issued_at)
    if moment + leeway < starts:
        raise TokenNotYetValid(
            f"the token is not valid before {_utc(starts)}",
            hint="check the clocks of issuer and verifier, or raise the leeway",
            kid=kid,
        )
    if audience not in result.audience:
        raise WrongAudience(
            f"the token is for {', '.join(repr(a[:60]) for a in result.audience)}, "
            f"not {audience!r}",
            kid=kid,
        )
    lifetime = result.expires_at - min(result.issued_at, result.not_before)
    if lifetime > max_lifetime:
        raise LifetimeTooLong(
            f"the token lives {lifetime} s, beyond the maximum of {max_lifetime} s",
            hint="ask for a shorter-lived token, or raise --max-lifetime on purpose",
            kid=kid,
        )
    if replay is not None and not replay.remember(
        f"{result.issuer}\n{result.jti}", expires_at=result.expires_at + leeway, now=moment
    ):
        raise ReplayedToken(
            f"the token {result.jti[:40]!r} was presented before",
            hint="a policy token passes once; ask the issuer for a new one",
            kid=kid,
        )
    return result


def _claims(claims: dict[str, Any], kid: str) -> TokenClaims:
    issued_at = _numeric_date(claims, "iat")
    not_before = _numeric_date(claims, "nbf")
    expires_at = _numeric_date(claims, "exp")
    if expires_at <= not_before or expires_at <= issued_at:
        raise MalformedToken("the token expires before it becomes valid")
    purpose = claims.get("purpose")
    if purpose is not None and not isinstance(purpose, str):
        raise MalformedToken("the token's 'purpose' claim is not a string")
    return TokenClaims(
        issuer=_string_claim(claims, "iss"),
        subject=_string_claim(claims, "sub"),
        audience=_audience_claim(claims),
        issued_at=issued_at,
        not_before=not_before,
        expires_at=expires_at,
        jti=_string_claim(claims, "jti", limit=MAX_JTI_CHARS),
        rules=_rules_claim(claims),
        kid=kid,
        purpose=purpose,
    )


def token_record(
    token: str,
    *,
    audience: str,
    claims: TokenClaims | None = None,
    error: TokenRejected | None = None,
) -> dict[str, Any]:
    """The ledger entry for one presentation of ``token``: accepted with its claims, or the reason.

    Names the token by its SHA-256, never in clear; a rejected token's claims are not trusted,
    so only the header's key id (when it parsed) is kept.
    """
    record: dict[str, Any] = {
        "door": "token",
        "event": "token.verify",
        "audience": audience,
        "token_sha256": token_sha256(token.strip()),
        "accepted": error is None,
    }
    if error is not None:
        record.update(reason=error.reason, kid=error.kid)
    elif claims is not None:
        record.update(
            kid=claims.kid,
            iss=claims.issuer,
            sub=claims.subject,
            jti=claims.jti,
            rules=list(claims.rules),
            exp=claims.expires_at,
        )
    else:
        raise UsageError("a token record needs the verified claims or the rejection")
    return record


def _utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(0, min(seconds, 253402300799))))


# -- replay cache --------------------------------------------------------------------------------


class ReplayCache:
    """The ``jti`` of every accepted token until it expires, shared by every process on the store.

    ``ReplayCache.open(path)`` is a SQLite file; ``ReplayCache.open("postgresql://…")`` a
    PostgreSQL database (the ``postgres`` extra). Recording is one transaction that first drops
    expired entries and then inserts, so of two processes presenting one token exactly one wins.
    Thread-safe.
    """

    _TABLE = (
        "CREATE TABLE IF NOT EXISTS custodes_token_replay ("
        "id TEXT PRIMARY KEY, expires_at {real} NOT NULL)"
    )
    _INDEX = (
        "CREATE INDEX IF NOT EXISTS custodes_token_replay_expiry"
        " ON custodes_token_replay (expires_at)"
    )

    def __init__(self, url: str, conn: Any, *, postgres: bool) -> None:
        self.url = url
        self._conn = conn
        self._postgres = postgres
        self._lock = threading.Lock()
        self._mark = "%s" if postgres else "?"

    @classmethod
    def open(cls, url: str | os.PathLike[str]) -> ReplayCache:
        text = os.fspath(url)
        if text.startswith(("postgresql://", "postgres://")):
            cache = cls(text, _pg_connect(text), postgres=True)
        else:
            cache = cls(text, _sqlite_connect(Path(text)), postgres=False)
        cache._create()
        return cache

    def _create(self) -> None:
        real = "DOUBLE PRECISION" if self._postgres else "REAL"
        with self._transaction() as conn:
            if self._postgres:
                # Two processes creating the table at once collide in PostgreSQL's catalogue.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('custodes_token_replay'))")
            conn.execute(self._TABLE.format(real=real))
            conn.execute(self._INDEX)

    def _transaction(self) -> Any:
        return _Transaction(self)

    def remember(self, key: str, *, expires_at: float, now: float | None = None) -> bool:
        """Record ``key`` until ``expires_at``; False if it is already recorded and not expired."""
        moment = time.time() if now is None else now
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        m = self._mark
        with self._lock, self._transaction() as conn:
            conn.execute(
                f"DELETE FROM custodes_token_replay WHERE expires_at <= {m}",  # noqa: S608
                (moment,),
            )
            cursor = conn.execute(
                f"INSERT INTO custodes_token_replay (id, expires_at) VALUES ({m}, {m})"  # noqa: S608
                " ON CONFLICT (id) DO NOTHING",
                (digest, float(expires_at)),
            )
            return int(cursor.rowcount) == 1

    def __len__(self) -> int:
        with self._lock, self._transaction() as conn:
            row = conn.execute("SELECT count(*) FROM custodes_token_replay").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReplayCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """One write transaction on the cache's connection, its driver errors mapped to custodes'."""

    def __init__(self, cache: ReplayCache) -> None:
        self._cache = cache

    def __enter__(self) -> Any:
        conn = self._cache._conn
        try:
            conn.execute("BEGIN" if self._cache._postgres else "BEGIN IMMEDIATE")
        except Exception as exc:
            raise _store_error(self._cache.url, exc) from exc
        return conn

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        conn = self._cache._conn
        if exc is not None:
            with contextlib.suppress(Exception):  # the connection may be the thing that broke
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
                raise _store_error(self._cache.url, exc) from exc
            return
        try:
            conn.execute("COMMIT")
        except Exception as err:
            raise _store_error(self._cache.url, err) from err


def _store_error(url: str, exc: BaseException) -> UsageError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return UsageError(
        f"the token replay cache {_redact(url)} is unusable: {first}",
        hint="check the --replay-db path or URL, and that it is writable",
    )


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    if not path.parent.exists():
        raise UsageError(
            f"folder {path.parent} of the token replay cache does not exist",
            hint="create it or give another --replay-db",
        )
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=60.0
        )
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA journal_mode = WAL")
        # A jti lost in a crash is a token that passes twice: commit durably.
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise _store_error(str(path), exc) from exc
    return conn


def _pg_connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise UsageError(
            "a PostgreSQL replay cache needs psycopg",
            hint="install custodes with the postgres extra: pip install 'custodes[postgres]'",
        ) from exc
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise _store_error(url, exc) from exc
