"""``custodes token …``: make and check signed policy tokens.

A token is a bearer credential: it is printed once, by ``issue``, and never again; records name
its SHA-256.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from custodes.errors import MalformedNote, UsageError
from custodes.ledger.note import Signer, Verifier
from custodes.policy.tokens import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_TTL,
    ReplayCache,
    TokenClaims,
    TokenRejected,
    create_token_key,
    issue_token,
    token_record,
    verify_token,
)

__all__ = ["token"]

_DURATION = re.compile(r"(\d{1,9})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: str, option: str) -> int:
    match = _DURATION.fullmatch(value.strip().lower())
    if match is None:
        raise UsageError(
            f"{option} {value!r} is not a duration",
            hint="write a whole number with s, m, h or d, e.g. 90s, 15m, 1h",
        )
    return int(match[1]) * _UNIT[match[2]]


def _load_signer(path: Path) -> Signer:
    from custodes.ledger.log import load_signer

    return load_signer(path)


def _read_verifier(value: str) -> Verifier:
    text = value
    if not ("+" in value and not Path(value).exists()):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise UsageError(
                f"verifier key file {value} does not exist",
                hint="give the key as printed by `custodes token key` or a file holding it",
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read verifier key file {value}: {exc}") from exc
    try:
        return Verifier.from_string(text.strip())
    except MalformedNote as exc:
        raise MalformedNote(f"--verifier: {exc.message}", hint=exc.hint) from exc


def _utc(seconds: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group()
def token() -> None:
    """Signed policy tokens: let an authorised caller pass named rules.

    A policy token is a JWT signed with Ed25519 (alg EdDSA, RFC 8037): it names the caller
    (sub), the service it is for (aud), the rule ids the caller may pass (custodes_rules), and
    expires (15 minutes by default, at most 1 hour unless --allow-long). Any JOSE library
    verifies it with the issuer's public key.

    \b
    custodes token key --output tokens.key --name acme.example/tokens
    custodes token issue --key tokens.key --audience guard --subject billing-svc \\
        --rules pii.customer-schema --ttl 10m > token.txt
    custodes token verify - --verifier "acme.example/tokens+…" --audience guard < token.txt
    """


@token.command()
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the new signing key (mode 0600; never overwritten).",
)
@click.option(
    "--name",
    "name",
    default="custodes.local/tokens",
    show_default=True,
    metavar="NAME",
    help="Key name: the tokens' issuer (iss). No spaces, no '+'.",
)
def key(output: Path, name: str) -> int:
    """Create a token signing key and print its verifier key.

    The key file has the format of a ledger key (a ledger's key can sign tokens too). Give the
    printed verifier key to every service that checks tokens; keep the key file secret.

    \b
    Example:
      custodes token key --output tokens.key --name acme.example/tokens > tokens.pub

    Exit codes: 0 created, 2 the file exists or the name is invalid.
    """
    signer = create_token_key(output, name)
    click.echo(signer.verifier().to_string())
    if sys.stderr.isatty():
        click.echo(f"custodes: wrote the signing key {output} (keep it secret)", err=True)
    return 0


@token.command()
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signing key file (from `custodes token key` or `custodes ledger init`).",
)
@click.option("--audience", required=True, metavar="AUD", help="The service the token is for.")
@click.option("--subject", required=True, metavar="CALLER", help="The caller the token names.")
@click.option(
    "--rules",
    required=True,
    metavar="R1,R2",
    help="Comma-separated rule ids the caller may pass, e.g. pii.customer-schema.",
)
@click.option(
    "--ttl", default=f"{DEFAULT_TTL // 60}m", show_default=True, metavar="DURATION", help="Lifetime: 90s, 15m, 1h."
)
@click.option("--purpose", metavar="TEXT", help="Why the caller needs the exception (recorded).")
@click.option(
    "--allow-long",
    is_flag=True,
    help=f"Allow a lifetime beyond {DEFAULT_MAX_LIFETIME // 60} minutes (verifiers must allow it too).",
)
def issue(
    key_file: Path,
    audience: str,
    subject: str,
    rules: str,
    ttl: str,
    purpose: str | None,
    allow_long: bool,
) -> int:
    """Print a new policy token signed with --key.

    \b
    Example:
      custodes token issue --key tokens.key --audience guard --subject billing-svc \\
          --rules pii.customer-schema,pii.card-number --ttl 10m --purpose "chargeback audit"

    The token is a bearer credential: store it as a secret. Exit codes: 0 printed, 2 bad
    options (unknown key file, empty rules, a lifetime beyond 1 hour without --allow-long).
    """
    lifetime = _seconds(ttl, "--ttl")
    rule_ids = [part.strip() for part in rules.split(",") if part.strip()]
    signer = _load_signer(key_file)
    click.echo(
        issue_token(
            signer,
            audience=audience,
            subject=subject,
            rules=rule_ids,
            ttl=lifetime,
            purpose=purpose,
            allow_long=allow_long,
        )
    )
    return 0


def _record(ledger_db: str, record: dict[str, Any]) -> None:
    from custodes.ledger.log import Ledger

    with Ledger.open(ledger_db) as led:
        led.append(record)


@token.command()
@click.argument("presented", metavar="TOKEN")
@click.option(
    "--verifier",
    "verifier_keys",
    multiple=True,
    metavar="VKEY",
    help="A trusted verifier key, or a file holding one; repeat to trust several (rotation).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust the public half of this signing key file instead.",
)
@click.option("--audience", required=True, metavar="AUD", help="This service's name.")
@click.option(
    "--leeway",
    default=f"{DEFAULT_LEEWAY}s",
    show_default=True,
    metavar="DURATION",
    help="Clock skew allowed around iat, nbf and exp.",
)
@click.option(
    "--max-lifetime",
    default=f"{DEFAULT_MAX_LIFETIME // 60}m",
    show_default=True,
    metavar="DURATION",
    help="Refuse tokens that live longer than this.",
)
@click.option(
    "--replay-db",
    metavar="DB",
    help="Replay cache (SQLite file or postgresql://…): accept each token once. "
    "Without it, verify only inspects.",
)
@click.option(
    "--ledger",
    "ledger_db",
    metavar="DB",
    help="Record the outcome (accepted or the reason for rejection) in this ledger.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(
    presented: str,
    verifier_keys: tuple[str, ...],
    key_file: Path | None,
    audience: str,
    leeway: str,
    max_lifetime: str,
    replay_db: str | None,
    ledger_db: str | None,
    as_json: bool,
) -> int:
    """Check a policy token and print its claims; TOKEN '-' reads it from stdin.

    Checks the signature (EdDSA only) against the trusted keys, expiry and not-before (give or
    take --leeway), the audience, the lifetime and, with --replay-db, that the token was not
    presented before.

    \b
    Example:
      custodes token verify - --verifier tokens.pub --audience guard --replay-db seen.db < token.txt

    Exit codes: 0 valid, 1 rejected (the reason on stderr: forged, expired, not yet valid,
    wrong audience, replayed, malformed, unsupported algorithm, unknown key), 2 bad options.
    """
    if not verifier_keys and key_file is None:
        raise UsageError(
            "no trusted key to check the token with",
            hint="give --verifier VKEY (from `custodes token key`) or --key FILE",
        )
    verifiers = [_read_verifier(value) for value in verifier_keys]
    if key_file is not None:
        verifiers.append(_load_signer(key_file).verifier())
    skew = _seconds(leeway, "--leeway")
    longest = _seconds(max_lifetime, "--max-lifetime")
    if longest <= 0:
        raise UsageError("--max-lifetime must be longer than 0 seconds")
    text = sys.stdin.read().strip() if presented == "-" else presented.strip()
    cache = ReplayCache.open(replay_db) if replay_db else None
    try:
        claims: TokenClaims = verify_token(
            text,
            verifiers=verifiers,
            audience=audience,
            replay=cache,
            leeway=skew,
            max_lifetime=longest,
        )
    except TokenRejected as exc:
        if ledger_db:  # recorded before the answer, as every door does
            _record(ledger_db, token_record(text, audience=audience, error=exc))
        if as_json:
            click.echo(json.dumps({"valid": False, "reason": exc.reason, "error": exc.message}))
        raise
    finally:
        if cache is not None:
            cache.close()
    if ledger_db:
        _record(ledger_db, token_record(text, audience=audience, claims=claims))
    if as_json:
        click.echo(json.dumps({"valid": True, **claims.to_json()}))
        return 0
    click.echo("valid policy token")
    click.echo(f"issuer:    {claims.issuer} (key {claims.kid})")
    click.echo(f"subject:   {claims.subject}")
    click.echo(f"audience:  {', '.join(claims.audience)}")
    click.echo(f"rules:     {', '.join(claims.rules)}")
    if claims.purpose is not None:
        click.echo(f"purpose:   {claims.purpose}")
    click.echo(f"issued:    {_utc(claims.issued_at)}")
    click.echo(f"expires:   {_utc(claims.expires_at)}")
    click.echo(f"jti:       {claims.jti}")
    return 0
