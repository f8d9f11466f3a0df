"""Signed policy tokens: round trips, every rejection, interop with an RFC reader and PyJWT, replay.

The reference reader below is written from RFC 7515 (JWS compact serialisation), RFC 7519 and
RFC 8037 (EdDSA with Ed25519) using only ``base64``, ``json`` and ``cryptography``; the key id
is recomputed from C2SP signed-note. Nothing in it comes from custodes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import stat
import string
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.errors import KeyFileError, UsageError, VerificationError
from custodes.ledger.log import load_signer
from custodes.ledger.note import Signer, Verifier
from custodes.policy.tokens import (
    ExpiredToken,
    ForgedToken,
    LifetimeTooLong,
    MalformedToken,
    ReplayCache,
    ReplayedToken,
    TokenClaims,
    TokenNotYetValid,
    TokenRejected,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    create_token_key,
    issue_token,
    token_record,
    verify_token,
)

NOW = 1_800_000_000
NAME = "acme.example/tokens"


# -- an independent reader, from the RFCs ---------------------------------------------------------


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def key_from_file_text(text: str) -> tuple[str, bytes, bytes]:
    """``(name, seed, public key)`` of a ``PRIVATE+KEY+name+id+base64(0x01 || seed)`` key."""
    _, _, name, _, b64 = text.strip().split("+", 4)
    raw = base64.b64decode(b64)
    assert raw[0] == 1
    seed = raw[1:]
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return name, seed, public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def c2sp_key_id(name: str, public: bytes) -> str:
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4].hex()


def rfc_read(token: str, public: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """RFC 7515 §5.2 validation of a compact JWS with an Ed25519 key: ``(header, claims)``."""
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "EdDSA"
    Ed25519PublicKey.from_public_bytes(public).verify(
        b64url_decode(sig_b64), f"{header_b64}.{payload_b64}".encode("ascii")
    )
    return header, json.loads(b64url_decode(payload_b64))


def raw_token(header: dict[str, Any], claims: dict[str, Any], seed: bytes) -> str:
    """A compact JWS signed with Ed25519 straight from the RFC, for tokens custodes won't issue."""
    signing_input = (
        f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(claims).encode())}"
    )
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode())
    return f"{signing_input}.{b64url_encode(signature)}"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(NAME)


@pytest.fixture(scope="module")
def other() -> Signer:
    return Signer.generate("mallory.example/tokens")


def claims_for(signer: Signer, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": signer.name,
        "sub": "billing-svc",
        "aud": "guard",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "j-1",
        "custodes_rules": ["pii.customer-schema"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def header_for(signer: Signer, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "EdDSA", "kid": kid(signer), "typ": "JWT"}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def kid(signer: Signer) -> str:
    name, _, public = key_from_file_text(signer.to_string())
    return c2sp_key_id(name, public)


def verify(token: str, signer: Signer, **kwargs: Any) -> TokenClaims:
    kwargs.setdefault("audience", "guard")
    kwargs.setdefault("now", NOW + 10)
    return verify_token(token, verifiers=[signer.verifier()], **kwargs)


def issue(signer: Signer, **kwargs: Any) -> str:
    kwargs.setdefault("audience", "guard")
    kwargs.setdefault("subject", "billing-svc")
    kwargs.setdefault("rules", ["pii.customer-schema"])
    kwargs.setdefault("now", NOW)
    return issue_token(signer, **kwargs)


# -- round trip and format --------------------------------------------------------------------


def test_round_trip_with_reference_reader(signer: Signer) -> None:
    token = issue(
        signer, rules=["pii.customer-schema", "pii.card-number"], ttl=900, purpose="chargeback audit"
    )
    name, _, public = key_from_file_text(signer.to_string())
    header, claims = rfc_read(token, public)
    assert header == {"alg": "EdDSA", "kid": c2sp_key_id(name, public), "typ": "JWT"}
    assert set(claims) == {
        "iss", "sub", "aud", "iat", "nbf", "exp", "jti", "custodes_rules", "purpose",
    }  # fmt: skip
    assert claims["iss"] == NAME
    assert claims["sub"] == "billing-svc"
    assert claims["aud"] == "guard"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 900)
    assert claims["custodes_rules"] == ["pii.customer-schema", "pii.card-number"]
    assert claims["purpose"] == "chargeback audit"
    assert len(b64url_decode(claims["jti"])) >= 16  # 128 random bits at least

    got = verify(token, signer)
    assert got == TokenClaims(
        issuer=NAME,
        subject="billing-svc",
        audience=("guard",),
        issued_at=NOW,
        not_before=NOW,
        expires_at=NOW + 900,
        jti=claims["jti"],
        rules=("pii.customer-schema", "pii.card-number"),
        kid=c2sp_key_id(name, public),
        purpose="chargeback audit",
    )
    assert got.allows("pii.card-number")
    assert not got.allows("pii.other")
    assert got.to_json() == {**claims, "kid": header["kid"]}


def test_every_token_gets_a_fresh_jti(signer: Signer) -> None:
    jtis = {verify(issue(signer), signer).jti for _ in range(50)}
    assert len(jtis) == 50


rule_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True)
printable = st.text(
    alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=40,
).filter(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=printable,
    audience=printable,
    rules=st.lists(rule_ids, min_size=1, max_size=6, unique=True),
    purpose=st.none() | printable,
    ttl=st.integers(min_value=1, max_value=3600),
)
def test_round_trip_property(
    signer: Signer,
    subject: str,
    audience: str,
    rules: list[str],
    purpose: str | None,
    ttl: int,
) -> None:
    token = issue(signer, subject=subject, audience=audience, rules=rules, purpose=purpose, ttl=ttl)
    _, _, public = key_from_file_text(signer.to_string())
    _, claims = rfc_read(token, public)
    assert (claims["sub"], claims["aud"], claims["custodes_rules"]) == (subject, audience, rules)
    assert claims.get("purpose") == purpose
    assert claims["exp"] - claims["iat"] == ttl
    got = verify(token, signer, audience=audience, now=NOW)
    assert (got.subject, got.audience, got.rules, got.purpose) == (
        subject, (audience,), tuple(rules), purpose,
    )  # fmt: skip


# -- interop with PyJWT ---------------------------------------------------------------------------


def test_pyjwt_verifies_our_token(signer: Signer) -> None:
    token = issue(signer, now=None, purpose="interop")
    _, seed, _ = key_from_file_text(signer.to_string())
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="guard", issuer=NAME)
    assert claims["sub"] == "billing-svc"
    assert claims["custodes_rules"] == ["pii.customer-schema"]
    assert jwt.get_unverified_header(token)["kid"] == kid(signer)


def test_we_verify_a_pyjwt_token(signer: Signer) -> None:
    _, seed, _ = key_from_file_text(signer.to_string())
    private = Ed25519PrivateKey.from_private_bytes(seed)
    claims = claims_for(signer, aud=["other-svc", "guard"], purpose="made by PyJWT")
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid(signer)})
    got = verify(token, signer)
    assert got.audience == ("other-svc", "guard")
    assert got.purpose == "made by PyJWT"
    assert got.jti == "j-1"


# -- rejections -----------------------------------------------------------------------------------


def test_token_forged_with_another_key_claiming_the_trusted_kid(
    signer: Signer, other: Signer
) -> None:
    _, other_seed, _ = key_from_file_text(other.to_string())
    forged = raw_token(header_for(signer), claims_for(signer), other_seed)
    with pytest.raises(ForgedToken) as info:
        verify(forged, signer)
    assert info.value.reason == "bad-signature"
    assert info.value.kid == kid(signer)


def test_token_by_an_untrusted_key_is_an_unknown_key(signer: Signer, other: Signer) -> None:
    token = issue(other)
    with pytest.raises(UnknownKey, match=kid(other)):
        verify(token, signer)
    # Trusting both keys accepts it: key rotation is several verifiers.
    assert verify_token(
        token, verifiers=[signer.verifier(), other.verifier()], audience="guard", now=NOW
    ).issuer == other.name


def test_issuer_must_be_the_signing_key_name(signer: Signer) -> None:
    _, seed, _ = key_from_file_text(signer.to_string())
    token = raw_token(header_for(signer), claims_for(signer, iss="someone-else"), seed)
    with pytest.raises(WrongIssuer):
        verify(token, signer)


def _reencode(part: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(part).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"sub": "mallory"},
        {"custodes_rules": ["pii.customer-schema", "secrets.allow-all"]},
        {"exp": NOW + 10**6},
        {"aud": "guard2"},
    ],
    ids=["subject", "rules", "expiry", "audience"],
)
def test_payload_tampering_is_forgery(signer: Signer, change: dict[str, Any]) -> None:
    header_b64, payload_b64, sig = issue(signer).split(".")
    claims = json.loads(b64url_decode(payload_b64))
    tampered = f"{header_b64}.{_reencode({**claims, **change})}.{sig}"
    with pytest.raises(ForgedToken):
        verify(tampered, signer, max_lifetime=10**7)


def test_header_tampering_is_forgery(signer: Signer) -> None:
    header_b64, payload_b64, sig = issue(signer).split(".")
    header = json.loads(b64url_decode(header_b64))
    for change in ({"typ": "jwt"}, {"x5u": "https://evil.example/key"}, {"cty": "JWT"}):
        tampered = f"{_reencode({**header, **change})}.{payload_b64}.{sig}"
        with pytest.raises(ForgedToken):
            verify(tampered, signer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_character_is_rejected(signer: Signer, data: st.DataObject) -> None:
    token = issue(signer, jti="fixed")
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(
        st.sampled_from(string.ascii_letters + string.digits + "-_.=+/ ").filter(
            lambda ch: ch != token[position]
        )
    )
    changed = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(TokenRejected):
        verify(changed, signer)


def test_alg_none_is_refused(signer: Signer) -> None:
    _, _, sig = issue(signer).split(".")
    payload = _reencode(claims_for(signer))
    for alg in ("none", "None", "NONE", "", None, "EdDSA ", "eddsa", "Ed25519"):
        header = header_for(signer, alg=alg) if alg is not None else header_for(signer, alg=None)
        for signature in ("", sig):
            with pytest.raises(UnsupportedAlgorithm) as info:
                verify(f"{_reencode(header)}.{payload}.{signature}", signer)
            assert info.value.reason == "algorithm"


def test_hs256_confusion_with_the_public_key_is_refused(signer: Signer) -> None:
    # The classic attack: HMAC-sign with the verifier's *public* key as the shared secret.
    _, _, public = key_from_file_text(signer.to_string())
    header = _reencode({"alg": "HS256", "kid": kid(signer), "typ": "JWT"})
    payload = _reencode(claims_for(signer))
    mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(UnsupportedAlgorithm):
        verify(f"{header}.{payload}.{b64url_encode(mac)}", signer)
    # PyJWT refuses to build one from an Ed25519 key at all; the raw-bytes variant is above.
    with pytest.raises(UnsupportedAlgorithm):
        verify(jwt.encode(claims_for(signer), public, algorithm="HS256"), signer)


def test_expiry_and_leeway(signer: Signer) -> None:
    token = issue(signer, ttl=600)  # exp = NOW + 600
    assert verify(token, signer, now=NOW + 600 + 59).subject == "billing-svc"
    with pytest.raises(ExpiredToken) as info:
        verify(token, signer, now=NOW + 600 + 60)
    assert info.value.reason == "expired"
    assert verify(token, signer, now=NOW + 600 + 299, leeway=300).jti
    with pytest.raises(ExpiredToken):
        verify(token, signer, now=NOW + 600, leeway=0)


def test_not_yet_valid_and_leeway(signer: Signer) -> None:
    token = issue(signer, ttl=600)  # nbf = iat = NOW
    assert verify(token, signer, now=NOW - 60).jti
    with pytest.raises(TokenNotYetValid) as info:
        verify(token, signer, now=NOW - 61)
    assert info.value.reason == "not-yet-valid"
    with pytest.raises(TokenNotYetValid):
        verify(token, signer, now=NOW - 1, leeway=0)
    _, seed, _ = key_from_file_text(signer.to_string())
    later_nbf = raw_token(header_for(signer), claims_for(signer, nbf=NOW + 300), seed)
    with pytest.raises(TokenNotYetValid):
        verify(later_nbf, signer, now=NOW + 100)
    assert verify(later_nbf, signer, now=NOW + 240).jti == "j-1"


def test_wrong_audience(signer: Signer) -> None:
    with pytest.raises(WrongAudience, match="'guard'"):
        verify(issue(signer), signer, audience="ledger-api")
    _, seed, _ = key_from_file_text(signer.to_string())
    many = raw_token(header_for(signer), claims_for(signer, aud=["a", "b"]), seed)
    assert verify(many, signer, audience="b").audience == ("a", "b")
    with pytest.raises(WrongAudience):
        verify(many, signer, audience="guard")


def test_max_lifetime(signer: Signer) -> None:
    with pytest.raises(UsageError, match="beyond the maximum of 3600 s") as refused:
        issue(signer, ttl=3601)
    assert "--allow-long" in refused.value.diagnostics()
    long_token = issue(signer, ttl=7200, allow_long=True)
    with pytest.raises(LifetimeTooLong) as info:
        verify(long_token, signer)
    assert info.value.reason == "lifetime"
    assert verify(long_token, signer, max_lifetime=7200).expires_at == NOW + 7200
    # A backdated nbf counts towards the lifetime too.
    _, seed, _ = key_from_file_text(signer.to_string())
    backdated = raw_token(header_for(signer), claims_for(signer, nbf=NOW - 3600), seed)
    with pytest.raises(LifetimeTooLong):
        verify(backdated, signer)


def _malformed_cases(signer: Signer) -> dict[str, str]:
    _, seed, _ = key_from_file_text(signer.to_string())
    good = issue(signer)
    h, p, s = good.split(".")
    header = header_for(signer)

    def signed(hdr: dict[str, Any] | str, claims: dict[str, Any] | str) -> str:
        hb = b64url_encode(hdr.encode() if isinstance(hdr, str) else json.dumps(hdr).encode())
        pb = b64url_encode(
            claims.encode() if isinstance(claims, str) else json.dumps(claims).encode()
        )
        sig = Ed25519PrivateKey.from_private_bytes(seed).sign(f"{hb}.{pb}".encode())
        return f"{hb}.{pb}.{b64url_encode(sig)}"

    # Flip a bit the base64url alphabet ignores: the last signature character carries 4 data
    # bits and 2 padding bits; a lax decoder reads both spellings as one signature.
    last = s[-1]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    lax_twin = alphabet[alphabet.index(last) ^ 1]
    return {
        "empty": "",
        "one part": "abc",
        "two parts": f"{h}.{p}",
        "four parts": f"{good}.{s}",
        "padding": f"{h}.{p}.{s}==",
        "standard base64": f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}+",
        "non-ascii": f"{h}.{p}é.{s}",
        "lax base64 twin": f"{h}.{p}.{s[:-1]}{lax_twin}",
        "short signature": f"{h}.{p}.{s[:40]}",
        "header not json": f"{b64url_encode(b'not json')}.{p}.{s}",
        "header is a list": f"{b64url_encode(b'[1]')}.{p}.{s}",
        "duplicate alg": signed('{"alg":"EdDSA","alg":"none","kid":"%s"}' % header["kid"], claims_for(signer)),  # noqa: UP031
        "no kid": signed({"alg": "EdDSA"}, claims_for(signer)),
        "crit": signed({**header, "crit": ["exp"]}, claims_for(signer)),
        "typ not jwt": signed({**header, "typ": "at+jwt"}, claims_for(signer)),
        "claims not json": signed(header, "{"),
        "claims a string": signed(header, '"x"'),
        "no exp": signed(header, claims_for(signer, exp=None)),
        "exp a string": signed(header, claims_for(signer, exp=str(NOW + 600))),
        "exp a bool": signed(header, claims_for(signer, exp=True)),
        "no jti": signed(header, claims_for(signer, jti=None)),
        "no sub": signed(header, claims_for(signer, sub=None)),
        "rules not a list": signed(header, claims_for(signer, custodes_rules="pii.x")),
        "no rules": signed(header, claims_for(signer, custodes_rules=None)),
        "aud a number": signed(header, claims_for(signer, aud=7)),
        "aud empty list": signed(header, claims_for(signer, aud=[])),
        "purpose a list": signed(header, claims_for(signer, purpose=["x"])),
        "exp before nbf": signed(header, claims_for(signer, exp=NOW - 1)),
        "duplicate claim": signed(header, json.dumps(claims_for(signer))[:-1] + ', "sub": "root"}'),
        "oversized": f"{h}.{'A' * 20_000}.{s}",
    }


def test_malformed_tokens(signer: Signer) -> None:
    cases = _malformed_cases(signer)
    for name, token in cases.items():
        with pytest.raises(TokenRejected) as info:
            verify(token, signer)
        assert info.value.reason == "malformed", (name, info.value)
        assert isinstance(info.value, VerificationError), name


def test_rejections_are_verification_errors_with_exit_code_1() -> None:
    kinds = [
        MalformedToken, UnsupportedAlgorithm, UnknownKey, ForgedToken, WrongIssuer, ExpiredToken,
        TokenNotYetValid, WrongAudience, LifetimeTooLong, ReplayedToken,
    ]  # fmt: skip
    assert len({k.reason for k in kinds}) == len(kinds)
    for kind in kinds:
        assert issubclass(kind, VerificationError)
        assert kind("x").exit_code == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rules": []}, "at least one rule"),
        ({"rules": ["has space"]}, "not a rule id"),
        ({"rules": ["PII.Upper"]}, "not a rule id"),
        ({"subject": " "}, "subject is empty"),
        ({"audience": ""}, "audience is empty"),
        ({"subject": "a\nb"}, "control characters"),
        ({"ttl": 0}, "positive"),
    ],
)
def test_issue_refuses_bad_requests(signer: Signer, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        issue(signer, **kwargs)


# -- replay -----------------------------------------------------------------------------------


def test_replay_is_rejected_and_expires_with_the_token(signer: Signer, tmp_path: Path) -> None:
    with ReplayCache.open(tmp_path / "seen.db") as cache:
        first, second = issue(signer, ttl=600), issue(signer, ttl=600)
        assert verify(first, signer, replay=cache).jti
        with pytest.raises(ReplayedToken) as info:
            verify(first, signer, replay=cache)
        assert info.value.reason == "replayed"
        assert verify(second, signer, replay=cache).jti
        assert len(cache) == 2
        # A rejected token is not recorded: it may be presented again once it is valid.
        early = issue(signer, now=NOW + 1000)
        with pytest.raises(TokenNotYetValid):
            verify(early, signer, replay=cache)
        assert len(cache) == 2
        # Entries live until exp + leeway, then go: the cache does not grow without bound.
        later = issue(signer, now=NOW + 5000)
        verify(later, signer, replay=cache, now=NOW + 5000)
        assert len(cache) == 1
    with ReplayCache.open(tmp_path / "seen.db") as reopened, pytest.raises(ReplayedToken):
        verify(later, signer, replay=reopened, now=NOW + 5001)


def test_same_jti_from_two_issuers_are_two_tokens(
    signer: Signer, other: Signer, tmp_path: Path
) -> None:
    trusted = [signer.verifier(), other.verifier()]
    with ReplayCache.open(tmp_path / "seen.db") as cache:
        for who in (signer, other):
            token = issue(who, jti="shared")
            verify_token(token, verifiers=trusted, audience="guard", now=NOW, replay=cache)


def _replay_worker(
    cache_url: str, tokens: list[str], vkey: str, start: Any, results: Any
) -> None:
    try:
        verifier = Verifier.from_string(vkey)
        accepted, replayed = [], 0
        with ReplayCache.open(cache_url) as cache:
            start.wait(timeout=60)
            for token in tokens:
                try:
                    verify_token(
                        token, verifiers=[verifier], audience="guard", now=NOW, replay=cache
                    )
                    accepted.append(token)
                except ReplayedToken:
                    replayed += 1
        results.put((accepted, replayed, None))
    except BaseException as exc:
        results.put(([], 0, repr(exc)))


def _race(cache_url: str, signer: Signer, procs: int = 2, count: int = 40) -> None:
    tokens = [issue(signer) for _ in range(count)]
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(
            target=_replay_worker,
            args=(cache_url, tokens, signer.verifier().to_string(), start, results),
        )
        for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=180) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    assert [error for _, _, error in outcomes] == [None] * procs
    accepted = [token for mine, _, _ in outcomes for token in mine]
    assert sorted(accepted) == sorted(tokens)  # each token accepted exactly once in all
    assert sum(replayed for _, replayed, _ in outcomes) == count * (procs - 1)


def test_replay_across_processes_sharing_a_sqlite_file(signer: Signer, tmp_path: Path) -> None:
    _race(str(tmp_path / "seen.db"), signer)


@pytest.mark.postgres
def test_replay_across_processes_on_postgresql(signer: Signer, pg_url: str) -> None:
    _race(pg_url, signer, procs=3)


def test_replay_cache_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        ReplayCache.open(tmp_path / "nowhere" / "seen.db")


def test_replay_cache_on_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bogus = tmp_path / "seen.db"
    bogus.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageError, match="replay cache"):
        ReplayCache.open(bogus)


# -- keys -------------------------------------------------------------------------------------


def test_token_key_file_is_private_and_a_custodes_key(tmp_path: Path) -> None:
    path = tmp_path / "tokens.key"
    made = create_token_key(path, NAME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    name, _, public = key_from_file_text(text)
    assert name == NAME
    assert load_signer(path).verifier() == made.verifier()
    assert made.verifier().to_string().split("+")[1] == c2sp_key_id(name, public)
    token = issue(load_signer(path))
    assert rfc_read(token, public)[0]["kid"] == c2sp_key_id(name, public)
    with pytest.raises(KeyFileError, match="already exists"):
        create_token_key(path, NAME)
    assert path.read_text() == text
    with pytest.raises(UsageError):
        create_token_key(tmp_path / "bad.key", "has space")
    assert not (tmp_path / "bad.key").exists()


def test_a_tampered_signature_never_verifies_under_the_reference(signer: Signer) -> None:
    # Guards the reference reader itself: it must be able to fail.
    h, p, s = issue(signer).split(".")
    sig = bytearray(b64url_decode(s))
    sig[0] ^= 1
    _, _, public = key_from_file_text(signer.to_string())
    with pytest.raises(InvalidSignature):
        rfc_read(f"{h}.{p}.{b64url_encode(bytes(sig))}", public)


def test_records_name_the_token_by_digest_only(signer: Signer) -> None:
    token = issue(signer)
    digest = hashlib.sha256(token.encode()).hexdigest()
    accepted = token_record(token, audience="guard", claims=verify(token, signer))
    assert accepted == {
        "door": "token",
        "event": "token.verify",
        "audience": "guard",
        "token_sha256": digest,
        "accepted": True,
        "kid": kid(signer),
        "iss": NAME,
        "sub": "billing-svc",
        "jti": json.loads(b64url_decode(token.split(".")[1]))["jti"],
        "rules": ["pii.customer-schema"],
        "exp": NOW + 900,
    }
    with pytest.raises(WrongAudience) as info:
        verify(token, signer, audience="other")
    rejected = token_record(token, audience="other", error=info.value)
    assert rejected == {
        "door": "token",
        "event": "token.verify",
        "audience": "other",
        "token_sha256": digest,
        "accepted": False,
        "reason": "audience",
        "kid": kid(signer),
    }
    for part in token.split("."):
        assert part not in json.dumps([accepted, rejected])
