"""Fake credentials for the secret rules: one format-valid positive and hard negatives per rule.

Nothing here is a real credential. Apart from the providers' published documentation examples
(which must be allowed), no credential-shaped literal is written down: every value is generated
from a seeded RNG (checksums computed, JWTs encoded from real JSON), so the repository itself
does not trip secret scanners. Negatives are near misses — a wrong checksum,
one character short, a placeholder, a documented example, a public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import urllib.parse
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
LOWER_DIGITS = string.ascii_lowercase + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
B32 = string.ascii_uppercase + "234567"
DIGITS = string.digits

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
    return digits.rjust(width, "0")


def github_token(rng: random.Random, prefix: str, *, valid: bool = True) -> str:
    """A token in GitHub's format: 30 random base62 characters and their base62 CRC32."""
    body = rand(rng, B62, 30)
    checksum = zlib.crc32(body.encode())
    if not valid:
        checksum = (checksum + 1) % 2**32
    return prefix + body + base62(checksum, 6)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random, header: dict[str, object]) -> str:
    payload = {"sub": rand(rng, DIGITS, 10), "name": "Fake User", "iat": rng.randrange(2**31)}
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(rng.randbytes(32)),
        )
    )


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(bytes=rng.randbytes(16), version=4))


# -- bech32 (BIP 173), written from the spec to build age keys -------------------------------------

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp: str, data: bytes) -> str:
    acc, bits, groups = 0, 0, []
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            groups.append((acc >> bits) & 31)
    if bits:
        groups.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    mod = _polymod([*expanded, *groups, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[g] for g in groups + checksum)


def age_key(rng: random.Random) -> str:
    return bech32_encode("age-secret-key-", rng.randbytes(32)).upper()


# -- PEM-like blocks ------------------------------------------------------------------------------


def b64_lines(rng: random.Random, lines: int, sep: str = "\n") -> str:
    return sep.join(rand(rng, B64, 64) for _ in range(lines))


def pem(rng: random.Random, label: str, sep: str = "\n") -> str:
    return f"-----BEGIN {label}-----{sep}{b64_lines(rng, 12, sep)}{sep}-----END {label}-----"


def pgp_block(rng: random.Random, kind: str) -> str:
    return (
        f"-----BEGIN PGP {kind} KEY BLOCK-----\n\n{b64_lines(rng, 10)}\n=Ab1c\n"
        f"-----END PGP {kind} KEY BLOCK-----"
    )


def putty_key(rng: random.Random, *, mac: bool = True) -> str:
    text = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: fake\n"
        f"Public-Lines: 2\n{b64_lines(rng, 2)}\nPrivate-Lines: 1\n{rand(rng, B64, 44)}\n"
    )
    return text + (f"Private-MAC: {rand(rng, HEX, 64)}\n" if mac else "")


# -- the table ------------------------------------------------------------------------------------

Positive = tuple[str, str]  # (text, the secret the rule must report)


@dataclass(frozen=True)
class Sample:
    positive: Callable[[random.Random], Positive]
    negatives: Callable[[random.Random], list[str]]


def env(name: str, secret: str) -> Positive:
    return f"# settings\n{name}={secret}\n", secret


def code(name: str, secret: str) -> Positive:
    return f'client = Client(\n    {name}="{secret}",\n)\n', secret


def note_signer(rng: random.Random) -> str:
    """A Go sumdb/note signing key, built from the format (not by the code under test)."""
    name = "audit.acme.internal/" + "".join(rng.choice("abcdefgh") for _ in range(6))
    seed = rng.randbytes(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4].hex()
    return f"PRIVATE+KEY+{name}+{key_id}+" + base64.b64encode(b"\x01" + seed).decode()


def plain(secret: str, before: str = "value: ", after: str = "\n") -> Positive:
    return f"{before}{secret}{after}", secret


def _github(prefix: str) -> Sample:
    return Sample(
        lambda r: env("GITHUB_TOKEN", github_token(r, prefix)),
        lambda r: [
            f"GITHUB_TOKEN={github_token(r, prefix, valid=False)}",  # checksum off by one
            f"token: {github_token(r, prefix)[:-1]}",  # one character short
            f"GITHUB_TOKEN={prefix}{'x' * 36}",
        ],
    )


def _uri(scheme: str, host: str, negatives: list[str]) -> Sample:
    def positive(r: random.Random) -> Positive:
        secret = rand(r, B62, 18)
        return f'DATABASE_URL="{scheme}://app_user:{secret}@{host}/app"\n', secret

    return Sample(positive, lambda r: negatives)


SAMPLES: dict[str, Sample] = {
    # -- cloud
    "aws-access-key-id": Sample(
        lambda r: env("AWS_ACCESS_KEY_ID", "AKIA" + rand(r, B32, 16)),
        lambda r: [
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
            "AWS_ACCESS_KEY_ID=AKIA" + rand(r, B32, 15),
            "AWS_ACCESS_KEY_ID=AKIA" + rand(r, B32, 15) + "0",  # 0 is not base32
        ],
    ),
    "aws-secret-access-key": Sample(
        lambda r: code("aws_secret_access_key", rand(r, B64, 40)),
        lambda r: [
            'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
            f'aws_secret_access_key = "{rand(r, B64, 41)}"',
            f'aws_secret_access_key = "{rand(r, B64, 39)}"',
        ],
    ),
    "aws-session-token": Sample(
        lambda r: env("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2Vj" + rand(r, B64, 400)),
        lambda r: ["AWS_SESSION_TOKEN=IQoJb3JpZ2luX2Vj" + rand(r, B64, 60)],
    ),
    "gcp-service-account-key": Sample(
        lambda r: (
            lambda key: (
                '{\n  "type": "service_account",\n  "project_id": "demo",\n'
                f'  "private_key": "{key}",\n  "client_email": "a@demo.iam.gserviceaccount.com"\n}}\n',
                key,
            )
        )(pem(r, "PRIVATE KEY", sep="\\n") + "\\n"),
        lambda r: [
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n...\\n'
            '-----END PRIVATE KEY-----\\n"}',
        ],
    ),
    "google-api-key": Sample(
        lambda r: code("api_key", "AIza" + rand(r, B64URL, 35)),
        lambda r: [f'key = "AIza{rand(r, B64URL, 34)}"', f"AIza{rand(r, B64URL, 36)}"],
    ),
    "google-oauth-client-secret": Sample(
        lambda r: env("GOOGLE_CLIENT_SECRET", "GOCSPX-" + rand(r, B64URL, 28)),
        lambda r: ["GOOGLE_CLIENT_SECRET=GOCSPX-" + rand(r, B64URL, 27)],
    ),
    "azure-storage-account-key": Sample(
        lambda r: (
            lambda key: (
                "DefaultEndpointsProtocol=https;AccountName=fakeacct;"
                f"AccountKey={key};EndpointSuffix=core.windows.net\n",
                key,
            )
        )(rand(r, B64, 86) + "=="),
        lambda r: [
            f"AccountName=fakeacct;AccountKey={rand(r, B64, 86)}=;EndpointSuffix=x",
            "AccountName=fakeacct;AccountKey=<your-account-key>;EndpointSuffix=x",
        ],
    ),
    "azure-shared-access-key": Sample(
        lambda r: (
            lambda key: (
                "Endpoint=sb://fake.servicebus.windows.net/;SharedAccessKeyName="
                f"RootManageSharedAccessKey;SharedAccessKey={key}\n",
                key,
            )
        )(rand(r, B64, 43) + "="),
        lambda r: [f"Endpoint=sb://fake/;SharedAccessKey={rand(r, B64, 42)}="],
    ),
    "azure-ad-client-secret": Sample(
        lambda r: env("AZURE_CLIENT_SECRET", rand(r, B62, 3) + "8Q~" + rand(r, B62 + "_-~", 34)),
        lambda r: [
            "AZURE_CLIENT_SECRET=" + rand(r, B62, 3) + "8Q~" + rand(r, B62, 20),
            "AZURE_CLIENT_SECRET=" + rand(r, B62, 4) + "Q~" + rand(r, B62, 34),  # no version
        ],
    ),
    "azure-sas-token": Sample(
        lambda r: (
            lambda sig: (
                "url = 'https://fake.blob.core.windows.net/c/b.txt?sp=r&st=2024-01-01T00:00:00Z"
                f"&se=2024-01-02T00:00:00Z&spr=https&sv=2022-11-02&sr=b&sig={sig}'\n",
                sig,
            )
        )(urllib.parse.quote(base64.b64encode(r.randbytes(32)).decode(), safe="")),
        lambda r: [
            "url = 'https://fake.blob.core.windows.net/c/b.txt?sig="
            + urllib.parse.quote(base64.b64encode(r.randbytes(32)).decode(), safe="")
            + "'"
        ],
    ),
    "digitalocean-token": Sample(
        lambda r: env("DIGITALOCEAN_TOKEN", "dop_v1_" + rand(r, HEX, 64)),
        lambda r: ["DIGITALOCEAN_TOKEN=dop_v1_" + rand(r, HEX, 63)],
    ),
    "heroku-api-key": Sample(
        lambda r: env("HEROKU_API_KEY", uuid4(r)),
        lambda r: [f"HEROKU_APP_ID={uuid4(r)}", "HEROKU_API_KEY=" + uuid4(r)[:-1]],
    ),
    "cloudflare-api-token": Sample(
        lambda r: env("CLOUDFLARE_API_TOKEN", rand(r, B64URL, 40)),
        lambda r: [f"CLOUDFLARE_API_TOKEN={rand(r, B64URL, 39)}"],
    ),
    "cloudflare-global-api-key": Sample(
        lambda r: env("CF_API_KEY", rand(r, HEX, 37)),
        lambda r: [f"CF_API_KEY={rand(r, HEX, 36)}", f"CF_ZONE_ID={rand(r, HEX, 37)}"],
    ),
    "cloudflare-origin-ca-key": Sample(
        lambda r: plain(f"v1.0-{rand(r, HEX, 24)}-{rand(r, HEX, 146)}"),
        lambda r: [f"v1.0-{rand(r, HEX, 24)}-{rand(r, HEX, 145)}"],
    ),
    "alibaba-access-key-id": Sample(
        lambda r: env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI" + rand(r, B62, 20)),
        lambda r: ["ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI" + rand(r, B62, 10)],
    ),
    # -- version control
    "github-personal-access-token": _github("ghp_"),
    "github-oauth-token": _github("gho_"),
    "github-user-to-server-token": _github("ghu_"),
    "github-server-to-server-token": _github("ghs_"),
    "github-refresh-token": _github("ghr_"),
    "github-fine-grained-token": Sample(
        lambda r: env("GH_TOKEN", f"github_pat_{rand(r, B62, 22)}_{rand(r, B62, 59)}"),
        lambda r: [f"GH_TOKEN=github_pat_{rand(r, B62, 22)}_{rand(r, B62, 58)}"],
    ),
    "gitlab-personal-access-token": Sample(
        lambda r: env("GITLAB_TOKEN", "glpat-" + rand(r, B62, 20)),
        lambda r: ["GITLAB_TOKEN=glpat-" + rand(r, B62, 19), "GITLAB_TOKEN=glpat-" + "x" * 20],
    ),
    "gitlab-runner-token": Sample(
        lambda r: env("RUNNER_TOKEN", "glrt-" + rand(r, B62, 20)),
        lambda r: ["RUNNER_TOKEN=glrt-" + rand(r, B62, 12)],
    ),
    "gitlab-deploy-token": Sample(
        lambda r: env("DEPLOY_TOKEN", "gldt-" + rand(r, B62, 20)),
        lambda r: ["DEPLOY_TOKEN=gldt-" + rand(r, B62, 12)],
    ),
    "gitlab-pipeline-trigger-token": Sample(
        lambda r: plain("glptt-" + rand(r, HEX, 40)),
        lambda r: ["value: glptt-" + rand(r, HEX, 39)],
    ),
    "gitlab-oauth-application-secret": Sample(
        lambda r: plain("gloas-" + rand(r, HEX, 64)),
        lambda r: ["value: gloas-" + rand(r, HEX, 63)],
    ),
    "atlassian-api-token": Sample(
        lambda r: env(
            "JIRA_API_TOKEN", "ATATT3xFfGF0" + rand(r, B64URL, 180) + "=" + rand(r, UPPER_DIGITS, 8)
        ),
        lambda r: ["JIRA_API_TOKEN=ATATT3xFfGF0" + rand(r, B64URL, 100)],
    ),
    # -- chat
    "slack-bot-token": Sample(
        lambda r: env(
            "SLACK_BOT_TOKEN",
            f"xoxb-{rand(r, DIGITS, 12)}-{rand(r, DIGITS, 13)}-{rand(r, B62, 24)}",
        ),
        lambda r: [f"SLACK_BOT_TOKEN=xoxb-{rand(r, DIGITS, 12)}-{rand(r, B62, 20)}"],
    ),
    "slack-user-token": Sample(
        lambda r: plain(
            f"xoxp-{rand(r, DIGITS, 12)}-{rand(r, DIGITS, 12)}-{rand(r, DIGITS, 13)}-"
            + rand(r, HEX, 32)
        ),
        lambda r: [
            f"xoxp-{rand(r, DIGITS, 12)}-{rand(r, DIGITS, 12)}-{rand(r, DIGITS, 13)}-"
            + rand(r, HEX, 31)
        ],
    ),
    "slack-app-token": Sample(
        lambda r: plain(
            f"xapp-1-A{rand(r, UPPER_DIGITS, 10)}-{rand(r, DIGITS, 13)}-{rand(r, HEX, 64)}"
        ),
        lambda r: [f"xapp-1-a{rand(r, LOWER_DIGITS, 10)}-{rand(r, DIGITS, 13)}-{rand(r, HEX, 64)}"],
    ),
    "slack-config-token": Sample(
        lambda r: plain("xoxe.xoxp-1-" + rand(r, B62, 160)),
        lambda r: ["value: xoxe.xoxp-1-" + rand(r, B62, 50)],
    ),
    "slack-webhook-url": Sample(
        lambda r: plain(
            f"https://hooks.slack.com/services/T{rand(r, UPPER_DIGITS, 8)}/"
            f"B{rand(r, UPPER_DIGITS, 10)}/{rand(r, B62, 24)}",
            'webhook = "',
            '"\n',
        ),
        lambda r: [
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/" + rand(r, B62, 24),
        ],
    ),
    "discord-bot-token": Sample(
        lambda r: env(
            "DISCORD_BOT_TOKEN",
            b64url(rand(r, DIGITS, 18).encode())
            + "."
            + rand(r, B64URL, 6)
            + "."
            + rand(r, B64URL, 38),
        ),
        lambda r: [
            # discord is mentioned, but the first part is not a base64 user id
            "discord: M" + rand(r, B62, 23) + "." + rand(r, B64URL, 6) + "." + rand(r, B62, 38),
        ],
    ),
    "discord-webhook-url": Sample(
        lambda r: plain(
            f"https://discord.com/api/webhooks/{rand(r, DIGITS, 18)}/{rand(r, B64URL, 68)}"
        ),
        lambda r: [f"https://discord.com/api/webhooks/{rand(r, DIGITS, 18)}/{rand(r, B62, 40)}"],
    ),
    "telegram-bot-token": Sample(
        lambda r: env("TELEGRAM_BOT_TOKEN", f"{rand(r, DIGITS, 10)}:AA{rand(r, B64URL, 33)}"),
        lambda r: [f"time: {rand(r, DIGITS, 10)}:AA{rand(r, B62, 20)}"],
    ),
    "microsoft-teams-webhook-url": Sample(
        lambda r: plain(
            f"https://fake.webhook.office.com/webhookb2/{uuid4(r)}@{uuid4(r)}/IncomingWebhook/"
            f"{rand(r, B62, 32)}/{uuid4(r)}"
        ),
        lambda r: [f"https://fake.webhook.office.com/webhookb2/{uuid4(r)}@{uuid4(r)}/"],
    ),
    # -- payments
    "stripe-secret-key": Sample(
        lambda r: env("STRIPE_SECRET_KEY", "sk_live_" + rand(r, B62, 99)),
        lambda r: ["STRIPE_SECRET_KEY=sk_live_" + rand(r, B62, 20)],
    ),
    "stripe-restricted-key": Sample(
        lambda r: env("STRIPE_KEY", "rk_live_" + rand(r, B62, 99)),
        lambda r: ["STRIPE_KEY=rk_live_" + rand(r, B62, 23)],
    ),
    "stripe-test-key": Sample(
        lambda r: env("STRIPE_SECRET_KEY", "sk_test_" + rand(r, B62, 24)),
        lambda r: [
            "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",  # Stripe's documented key
            "STRIPE_PUBLISHABLE_KEY=pk_test_" + rand(r, B62, 24),
        ],
    ),
    "stripe-webhook-secret": Sample(
        lambda r: env("STRIPE_WEBHOOK_SECRET", "whsec_" + rand(r, B62, 32)),
        lambda r: ["STRIPE_WEBHOOK_SECRET=whsec_" + rand(r, B62, 20)],
    ),
    "square-access-token": Sample(
        lambda r: env("SQUARE_ACCESS_TOKEN", "EAAA" + rand(r, B64URL, 60)),
        lambda r: [f'color = "EAAA{rand(r, B64URL, 59)}"'],
    ),
    "square-oauth-secret": Sample(
        lambda r: plain("sq0csp-" + rand(r, B64URL, 43)),
        lambda r: ["value: sq0csp-" + rand(r, B64URL, 42) + ";"],
    ),
    "braintree-access-token": Sample(
        lambda r: plain(f"access_token$production${rand(r, LOWER_DIGITS, 16)}${rand(r, HEX, 32)}"),
        lambda r: [f"access_token$sandbox${rand(r, LOWER_DIGITS, 16)}${rand(r, HEX, 32)}"],
    ),
    "paypal-client-secret": Sample(
        lambda r: env("PAYPAL_CLIENT_SECRET", "E" + rand(r, B64URL, 79)),
        lambda r: ["PAYPAL_CLIENT_ID=A" + rand(r, B64URL, 79)],
    ),
    "adyen-api-key": Sample(
        lambda r: env("ADYEN_API_KEY", "AQE" + rand(r, B64, 150)),
        lambda r: ["ADYEN_API_KEY=AQE" + rand(r, B64, 30)],
    ),
    "plaid-access-token": Sample(
        lambda r: plain("access-production-" + uuid4(r)),
        lambda r: ["access-sandbox-" + uuid4(r)],
    ),
    "shopify-access-token": Sample(
        lambda r: env("SHOPIFY_ACCESS_TOKEN", "shpat_" + rand(r, HEX, 32)),
        lambda r: ["SHOPIFY_ACCESS_TOKEN=shpat_" + rand(r, HEX, 31)],
    ),
    "shopify-shared-secret": Sample(
        lambda r: plain("shpss_" + rand(r, HEX, 32)),
        lambda r: ["value: shpss_" + rand(r, "ghijklmnopqrstuvwxyz", 32)],
    ),
    # -- AI providers
    "openai-api-key": Sample(
        lambda r: env(
            "OPENAI_API_KEY", "sk-proj-" + rand(r, B64URL, 74) + "T3BlbkFJ" + rand(r, B64URL, 74)
        ),
        lambda r: [
            "OPENAI_API_KEY=sk-proj-" + rand(r, B62, 20),
            "legacy: sk-" + rand(r, B62, 48),  # no T3BlbkFJ marker
            "OPENAI_API_KEY=sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    "anthropic-api-key": Sample(
        lambda r: env("ANTHROPIC_API_KEY", "sk-ant-api03-" + rand(r, B64URL, 93) + "AA"),
        lambda r: ["key: sk-ant-api03-" + rand(r, B64URL, 93) + "AB"],
    ),
    "huggingface-token": Sample(
        lambda r: env("HF_TOKEN", "hf_" + rand(r, string.ascii_letters, 34)),
        lambda r: [
            "HF_TOKEN=hf_" + rand(r, string.ascii_letters, 33) + "1",
            "hf_loadPretrainedModelFromTheHubNow = 1",  # 34 letters, but an identifier
        ],
    ),
    "cohere-api-key": Sample(
        lambda r: env("COHERE_API_KEY", rand(r, B62, 40)),
        lambda r: ["COHERE_API_KEY=" + rand(r, B62, 39)],
    ),
    "replicate-api-token": Sample(
        lambda r: env("REPLICATE_API_TOKEN", "r8_" + rand(r, B62, 37)),
        lambda r: ["REPLICATE_API_TOKEN=r8_" + rand(r, B62, 36)],
    ),
    "groq-api-key": Sample(
        lambda r: env("GROQ_API_KEY", "gsk_" + rand(r, B62, 52)),
        lambda r: ["GROQ_API_KEY=gsk_" + rand(r, B62, 51)],
    ),
    "mistral-api-key": Sample(
        lambda r: env("MISTRAL_API_KEY", rand(r, B62, 32)),
        lambda r: ["MISTRAL_API_KEY=" + rand(r, B62, 31), "MISTRAL_MODEL=mistral-large-2411"],
    ),
    "perplexity-api-key": Sample(
        lambda r: env("PPLX_API_KEY", "pplx-" + rand(r, B62, 48)),
        lambda r: ["PPLX_API_KEY=pplx-" + rand(r, B62, 47)],
    ),
    "xai-api-key": Sample(
        lambda r: env("XAI_API_KEY", "xai-" + rand(r, B62, 80)),
        lambda r: ["XAI_API_KEY=xai-" + rand(r, B62, 79)],
    ),
    "openrouter-api-key": Sample(
        lambda r: env("OPENROUTER_API_KEY", "sk-or-v1-" + rand(r, HEX, 64)),
        lambda r: ["OPENROUTER_API_KEY=sk-or-v1-" + rand(r, HEX, 63)],
    ),
    "langsmith-api-key": Sample(
        lambda r: env("LANGSMITH_API_KEY", f"lsv2_pt_{rand(r, HEX, 32)}_{rand(r, HEX, 10)}"),
        lambda r: [f"LANGSMITH_API_KEY=lsv2_pt_{rand(r, HEX, 32)}_{rand(r, HEX, 9)}"],
    ),
    # -- package registries
    "npm-access-token": Sample(
        lambda r: plain(github_token(r, "npm_"), "//registry.npmjs.org/:_authToken="),
        lambda r: [
            "//registry.npmjs.org/:_authToken=" + github_token(r, "npm_", valid=False),
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
        ],
    ),
    "pypi-api-token": Sample(
        lambda r: plain("pypi-AgEIcHlwaS5vcmc" + rand(r, B64URL, 150), "password = "),
        lambda r: ["password = pypi-AgEIcHlwaS5vcmc" + rand(r, B64URL, 30)],
    ),
    "rubygems-api-key": Sample(
        lambda r: plain("rubygems_" + rand(r, HEX, 48), ":rubygems_api_key: "),
        lambda r: [":rubygems_api_key: rubygems_" + rand(r, HEX, 47)],
    ),
    "nuget-api-key": Sample(
        lambda r: plain("oy2" + rand(r, LOWER_DIGITS, 43), "dotnet nuget push -k "),
        lambda r: ["dotnet nuget push -k oy2" + rand(r, LOWER_DIGITS, 42)],
    ),
    "docker-hub-token": Sample(
        lambda r: plain("dckr_pat_" + rand(r, B64URL, 27), "docker login -p "),
        lambda r: ["docker login -p dckr_pat_" + rand(r, B62, 20)],
    ),
    "jfrog-api-key": Sample(
        lambda r: env("ARTIFACTORY_API_KEY", "AKCp" + rand(r, B62, 69)),
        lambda r: ["ARTIFACTORY_API_KEY=AKCp" + rand(r, B62, 68)],
    ),
    "jfrog-reference-token": Sample(
        lambda r: env("JFROG_TOKEN", "cmVmdGtuOjAxOj" + rand(r, B62, 50)),
        lambda r: ["JFROG_TOKEN=cmVmdGtuOjAxOj" + rand(r, B62, 30)],
    ),
    "clojars-deploy-token": Sample(
        lambda r: env("CLOJARS_PASSWORD", "CLOJARS_" + rand(r, LOWER_DIGITS, 60)),
        lambda r: ["CLOJARS_PASSWORD=CLOJARS_" + rand(r, LOWER_DIGITS, 59)],
    ),
    # -- mail and SMS
    "sendgrid-api-key": Sample(
        lambda r: env("SENDGRID_API_KEY", f"SG.{rand(r, B64URL, 22)}.{rand(r, B64URL, 43)}"),
        lambda r: [f"SENDGRID_API_KEY=SG.{rand(r, B62, 22)}.{rand(r, B62, 42)}"],
    ),
    "twilio-api-key": Sample(
        lambda r: plain("SK" + rand(r, HEX, 32), "from twilio.rest import Client\nsid = '", "'\n"),
        lambda r: ["ref: SK" + rand(r, HEX, 32)],  # no Twilio in the file
    ),
    "twilio-auth-token": Sample(
        lambda r: plain(rand(r, HEX, 32), "from twilio.rest import Client\nauth_token = '", "'\n"),
        lambda r: [
            "from twilio.rest import Client\nauth_token = '" + rand(r, HEX, 31) + "'",
            "from twilio.rest import Client\nauth_token = os.environ['TWILIO_AUTH_TOKEN']",
        ],
    ),
    "mailgun-api-key": Sample(
        lambda r: env("MAILGUN_API_KEY", "key-" + rand(r, HEX, 32)),
        lambda r: [
            "MAILGUN_API_KEY=key-3ax6xnjp29jd6fds4gc373sgvjxteol0",  # Mailgun's documented key
            "MAILGUN_API_KEY=key-" + rand(r, HEX, 31),
        ],
    ),
    "mailchimp-api-key": Sample(
        lambda r: env("MAILCHIMP_API_KEY", rand(r, HEX, 32) + "-us12"),
        lambda r: ["MAILCHIMP_API_KEY=" + rand(r, HEX, 31) + "-us12"],
    ),
    "postmark-server-token": Sample(
        lambda r: env("POSTMARK_SERVER_TOKEN", uuid4(r)),
        lambda r: ["POSTMARK_SERVER_TOKEN=00000000-0000-0000-0000-000000000000"],
    ),
    "brevo-api-key": Sample(
        lambda r: env("BREVO_API_KEY", f"xkeysib-{rand(r, HEX, 64)}-{rand(r, B62, 16)}"),
        lambda r: [f"BREVO_API_KEY=xkeysib-{rand(r, HEX, 64)}-{rand(r, B62, 15)}"],
    ),
    # -- private keys
    "private-key": Sample(
        lambda r: plain(pem(r, "RSA PRIVATE KEY"), "key = '''\n", "\n'''\n"),
        lambda r: [
            pem(r, "PUBLIC KEY"),
            pem(r, "CERTIFICATE"),
            "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
            "ssh-rsa AAAAB3NzaC1yc2E" + rand(r, B64, 360) + " user@host",
        ],
    ),
    "pgp-private-key-block": Sample(
        lambda r: plain(pgp_block(r, "PRIVATE"), ""),
        lambda r: [pgp_block(r, "PUBLIC")],
    ),
    "putty-private-key": Sample(
        lambda r: (lambda key: (key, key.removesuffix("\n")))(putty_key(r)),
        lambda r: [putty_key(r, mac=False)],
    ),
    "age-secret-key": Sample(
        lambda r: plain(age_key(r), "# created: 2024-01-01\n"),
        lambda r: [
            (lambda k: k[:-1] + ("Q" if k[-1] != "Q" else "P"))(age_key(r)),  # bad checksum
            "age1" + bech32_encode("age", r.randbytes(32))[4:],  # a public recipient
        ],
    ),
    "signed-note-signing-key": Sample(
        lambda r: plain(note_signer(r), "LEDGER_KEY="),
        lambda r: [
            # A key id that does not match the name and key: not a key pair anyone made.
            (lambda p: "+".join([*p[:3], f"{int(p[3], 16) ^ 1:08x}", p[4]]))(
                note_signer(r).split("+", 4)
            ),
            note_signer(r).removeprefix("PRIVATE+KEY+"),  # shaped like a public verifier key
        ],
    ),
    # -- tokens
    "jwt": Sample(
        lambda r: plain(jwt(r, {"alg": "HS256", "typ": "JWT"}), "Authorization: Bearer "),
        lambda r: [
            "Authorization: Bearer " + jwt(r, {"typ": "JWT"}),  # no alg
            "Authorization: Bearer " + jwt(r, {"alg": "none"}),
            "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiw"
            "ibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_"
            "adQssw5c",  # jwt.io's example
        ],
    ),
    "onepassword-service-account-token": Sample(
        lambda r: env("OP_SERVICE_ACCOUNT_TOKEN", "ops_eyJ" + rand(r, B64, 300)),
        lambda r: ["OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ" + rand(r, B64, 50)],
    ),
    # -- connection URIs
    "postgres-uri-password": _uri(
        "postgresql+psycopg",
        "db.internal:5432",
        [
            "DATABASE_URL=postgres://postgres:postgres@localhost:5432/app",
            "DATABASE_URL=postgresql://app:${DB_PASSWORD}@db:5432/app",
            "DATABASE_URL=postgres://db.internal:5432/app",
        ],
    ),
    "mysql-uri-password": _uri(
        "mysql",
        "db.internal:3306",
        ["MYSQL_URL=mysql://root:<password>@localhost/app", "mysql://root:root@127.0.0.1/x"],
    ),
    "mongodb-uri-password": _uri(
        "mongodb+srv",
        "cluster0.fake.mongodb.net",
        ["MONGO_URL=mongodb+srv://user:<db_password>@cluster0.fake.mongodb.net/"],
    ),
    "redis-uri-password": _uri(
        "rediss", "cache.internal:6380", ["REDIS_URL=redis://:password@localhost:6379/0"]
    ),
    "amqp-uri-password": _uri(
        "amqps", "mq.internal:5671", ["BROKER_URL=amqp://guest:guest@localhost:5672//"]
    ),
    # -- platforms
    "datadog-api-key": Sample(
        lambda r: env("DD_API_KEY", rand(r, HEX, 32)),
        lambda r: ["DD_API_KEY=" + rand(r, HEX, 31), "DD_SITE=datadoghq.eu"],
    ),
    "datadog-app-key": Sample(
        lambda r: env("DATADOG_APP_KEY", rand(r, HEX, 40)),
        lambda r: ["DATADOG_APP_KEY=" + rand(r, HEX, 39)],
    ),
    "newrelic-user-api-key": Sample(
        lambda r: env("NEW_RELIC_API_KEY", "NRAK-" + rand(r, UPPER_DIGITS, 27)),
        lambda r: ["NEW_RELIC_API_KEY=NRAK-" + rand(r, UPPER_DIGITS, 26)],
    ),
    "newrelic-license-key": Sample(
        lambda r: env("NEW_RELIC_LICENSE_KEY", rand(r, HEX, 36) + "NRAL"),
        lambda r: ["NEW_RELIC_LICENSE_KEY=" + rand(r, HEX, 35) + "NRAL"],
    ),
    "newrelic-insights-key": Sample(
        lambda r: plain("NRII-" + rand(r, B64URL, 32)),
        lambda r: ["value: NRII-" + rand(r, B62, 31)],
    ),
    "sentry-dsn-secret": Sample(
        lambda r: plain(
            rand(r, HEX, 32), f"SENTRY_DSN=https://{rand(r, HEX, 32)}:", "@o1.ingest.sentry.io/42\n"
        ),
        lambda r: [f"SENTRY_DSN=https://{rand(r, HEX, 32)}@o1.ingest.sentry.io/42"],
    ),
    "sentry-auth-token": Sample(
        lambda r: env("SENTRY_AUTH_TOKEN", "sntryu_" + rand(r, HEX, 64)),
        lambda r: ["SENTRY_AUTH_TOKEN=sntryu_" + rand(r, HEX, 63)],
    ),
    "vault-token": Sample(
        lambda r: env("VAULT_TOKEN", "hvs." + rand(r, B64URL, 90)),
        lambda r: ["VAULT_TOKEN=hvs." + rand(r, B62, 20)],
    ),
    "terraform-cloud-token": Sample(
        lambda r: plain(f"{rand(r, B62, 14)}.atlasv1.{rand(r, B64URL, 67)}", 'token = "', '"\n'),
        lambda r: [f"value: {rand(r, B62, 14)}.atlasv1.{rand(r, B62, 40)}"],
    ),
    "okta-api-token": Sample(
        lambda r: env("OKTA_API_TOKEN", "00" + rand(r, B64URL, 40)),
        lambda r: ["OKTA_API_TOKEN=11" + rand(r, B64URL, 40)],
    ),
    "linear-api-key": Sample(
        lambda r: env("LINEAR_API_KEY", "lin_api_" + rand(r, B62, 40)),
        lambda r: ["LINEAR_API_KEY=lin_api_" + rand(r, B62, 39)],
    ),
    "notion-integration-token": Sample(
        lambda r: env("NOTION_TOKEN", "ntn_" + rand(r, B62, 46)),
        lambda r: [
            "value: secret_" + rand(r, string.ascii_lowercase, 43),  # an identifier
            "NOTION_TOKEN=ntn_" + rand(r, B62, 45),
        ],
    ),
    "doppler-token": Sample(
        lambda r: env("DOPPLER_TOKEN", "dp.pt." + rand(r, B62, 43)),
        lambda r: ["DOPPLER_TOKEN=dp.pt." + rand(r, B62, 30)],
    ),
    "pulumi-access-token": Sample(
        lambda r: env("PULUMI_ACCESS_TOKEN", "pul-" + rand(r, HEX, 40)),
        lambda r: ["PULUMI_ACCESS_TOKEN=pul-" + rand(r, HEX, 39)],
    ),
    "grafana-cloud-token": Sample(
        lambda r: env("GRAFANA_TOKEN", "glc_" + rand(r, B64, 80)),
        lambda r: ["GRAFANA_TOKEN=glc_" + rand(r, B64, 20)],
    ),
    "grafana-service-account-token": Sample(
        lambda r: env("GRAFANA_SA_TOKEN", f"glsa_{rand(r, B62, 32)}_{rand(r, HEX, 8)}"),
        lambda r: [f"GRAFANA_SA_TOKEN=glsa_{rand(r, B62, 32)}_{rand(r, HEX, 7)}"],
    ),
    "firebase-cloud-messaging-server-key": Sample(
        lambda r: env("FCM_SERVER_KEY", f"AAAA{rand(r, B64URL, 7)}:APA91b{rand(r, B64URL, 134)}"),
        lambda r: [f"FCM_SERVER_KEY=AAAA{rand(r, B64URL, 7)}:APA91b{rand(r, B64URL, 100)}"],
    ),
    "algolia-admin-api-key": Sample(
        lambda r: env("ALGOLIA_ADMIN_API_KEY", rand(r, HEX, 32)),
        lambda r: ["ALGOLIA_SEARCH_API_KEY=" + rand(r, HEX, 32)],  # search-only keys are public
    ),
    "postman-api-key": Sample(
        lambda r: env("POSTMAN_API_KEY", f"PMAK-{rand(r, HEX, 24)}-{rand(r, HEX, 34)}"),
        lambda r: [f"POSTMAN_API_KEY=PMAK-{rand(r, HEX, 24)}-{rand(r, HEX, 33)}"],
    ),
    "supabase-secret": Sample(
        lambda r: env("SUPABASE_ACCESS_TOKEN", "sbp_" + rand(r, HEX, 40)),
        lambda r: ["SUPABASE_ACCESS_TOKEN=sbp_" + rand(r, HEX, 39)],
    ),
    "planetscale-token": Sample(
        lambda r: env("PLANETSCALE_SERVICE_TOKEN", "pscale_tkn_" + rand(r, B64URL, 43)),
        lambda r: ["PLANETSCALE_SERVICE_TOKEN=pscale_tkn_" + rand(r, B64URL, 20)],
    ),
    "databricks-token": Sample(
        lambda r: env("DATABRICKS_TOKEN", "dapi" + rand(r, HEX, 32)),
        lambda r: ["DATABRICKS_TOKEN=dapi" + rand(r, HEX, 31)],
    ),
    "tailscale-key": Sample(
        lambda r: env("TS_AUTHKEY", f"tskey-auth-{rand(r, B62, 12)}-{rand(r, B62, 32)}"),
        lambda r: [f"TS_AUTHKEY=tskey-auth-{rand(r, B62, 12)}-{rand(r, B62, 10)}"],
    ),
    "figma-token": Sample(
        lambda r: env("FIGMA_TOKEN", "figd_" + rand(r, B64URL, 40)),
        lambda r: ["FIGMA_TOKEN=figd_" + rand(r, B62, 39)],
    ),
    "mapbox-secret-token": Sample(
        lambda r: env("MAPBOX_TOKEN", f"sk.eyJ1Ijoi{rand(r, B64URL, 60)}.{rand(r, B64URL, 22)}"),
        lambda r: [f"MAPBOX_TOKEN=pk.eyJ1Ijoi{rand(r, B64URL, 60)}.{rand(r, B64URL, 22)}"],
    ),
    "airtable-personal-access-token": Sample(
        lambda r: env("AIRTABLE_TOKEN", f"pat{rand(r, B62, 14)}.{rand(r, HEX, 64)}"),
        lambda r: [f"AIRTABLE_TOKEN=pat{rand(r, B62, 14)}.{rand(r, HEX, 63)}"],
    ),
    # -- generic
    "generic-assignment": Sample(
        lambda r: code("password", rand(r, B62, 14) + "!" + rand(r, B62, 5)),
        lambda r: [
            f'password_hash = "{rand(r, HEX, 64)}"',
            'password = "${DB_PASSWORD}"',
            f'session_token_id = "{rand(r, B62, 24)}"',
            'secret_name = "my-application-secret-v2"',
            f"tokenizer = '{rand(r, B62, 20)}1'",
        ],
    ),
}
