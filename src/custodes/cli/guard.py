"""``custodes guard …``: the AI gate in front of an OpenAI-compatible model."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

from custodes.cli.ledger import DEFAULT_DB
from custodes.errors import UsageError

__all__ = ["guard"]

_SIZE = re.compile(r"(\d{1,12})\s*(b|kb|kib|k|mb|mib|m|gb|gib|g)?", re.IGNORECASE)
_UNIT = {
    "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
}  # fmt: skip


def _size(value: str) -> int:
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise UsageError(
            f"--max-body {value!r} is not a size", hint="write bytes or a unit, e.g. 1MiB, 512KiB"
        )
    return int(match[1]) * _UNIT[(match[2] or "b").lower()]


def _verifier_text(value: str) -> str:
    path = Path(value)
    if "+" in value and not path.exists():
        return value.strip()
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"verifier key file {value} does not exist",
            hint="give the key as printed by `custodes token key` or a file holding it",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read verifier key file {value}: {exc}") from exc


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r} does not resolve: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port (0 picks a free one) or stop what uses it",
        ) from exc
    # Listening now, before the workers start: early clients wait in the backlog.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _shown(url: str) -> str:
    """A URL without user information (credentials never reach a log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def _ensure_default_ledger(db: str) -> None:
    """Create the default ledger on first use, as `custodes scan` does."""
    if db != DEFAULT_DB or Path(db).exists():
        return
    from custodes.ledger.log import Ledger

    Path(db).parent.mkdir(exist_ok=True)
    Ledger.create(db).close()
    click.echo(f"custodes: created the ledger {db} (signing key {db}.key)", err=True)


@click.group()
def guard() -> None:
    """The AI gate: govern what reaches a model and what comes back.

    \b
    custodes guard serve --upstream http://127.0.0.1:8000/v1
    OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_app.py   # unchanged app, governed
    """


@guard.command()
@click.option(
    "--upstream",
    required=True,
    metavar="URL",
    envvar="CUSTODES_UPSTREAM",
    help="The model's OpenAI-compatible base URL, e.g. https://api.openai.com/v1. "
    "Env: CUSTODES_UPSTREAM.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="FILE|PACK",
    help="Policy pack: a YAML file or a built-in pack (enterprise, owasp-llm). Repeat to "
    "combine [default: enterprise].",
)
@click.option(
    "--ledger",
    "ledger_db",
    envvar="CUSTODES_LEDGER",
    default=DEFAULT_DB,
    show_default=True,
    metavar="DB",
    help="Record every step here: SQLite file (created if missing) or postgresql://…. "
    "Env: CUSTODES_LEDGER.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the address is printed on stderr).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the port and the ledger.",
)
@click.option(
    "--max-body",
    default="1MiB",
    show_default=True,
    metavar="SIZE",
    help="Largest request body accepted (413 above it), e.g. 512KiB, 4MiB.",
)
@click.option(
    "--review-timeout",
    type=click.FloatRange(0, 3600),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a reviewer when a completion is held for review (then 403 "
    "custodes_review_pending).",
)
@click.option(
    "--upstream-timeout",
    type=click.FloatRange(0.001, 3600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest wait for each read from the model (then 504).",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Reconnect attempts when the model cannot be reached (a request is never sent twice).",
)
@click.option(
    "--index",
    "index_path",
    envvar="CUSTODES_INDEX",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Provenance index for completions [default: .custodes/index.db when it exists].",
)
@click.option(
    "--review",
    "review_db",
    metavar="DB",
    help="Review queue: SQLite file or postgresql://… [default: beside the ledger].",
)
@click.option(
    "--token-verifier",
    "token_verifiers",
    multiple=True,
    metavar="KEY|FILE",
    help="Verifier key allowed to sign policy tokens (`custodes token key`). Repeatable.",
)
@click.option(
    "--fail-open",
    is_flag=True,
    help="Let requests through when a check itself fails (default: fail closed, 503).",
)
def serve(
    upstream: str,
    policies: tuple[str, ...],
    ledger_db: str,
    host: str,
    port: int,
    workers: int,
    max_body: str,
    review_timeout: float,
    upstream_timeout: float,
    retries: int,
    index_path: Path | None,
    review_db: str | None,
    token_verifiers: tuple[str, ...],
    fail_open: bool,
) -> int:
    """Serve an OpenAI-compatible proxy that checks prompts and completions.

    Point any OpenAI client at http://HOST:PORT/v1 instead of the model. Each prompt passes
    the policy's admission rules before it reaches the model (a refused prompt never does);
    each completion is validated before it reaches the caller (a secret is redacted or the
    answer refused); streamed completions are checked as they flow, and a violation ends the
    stream with an error event. Every step is recorded in the ledger before the answer is
    sent: responses carry X-Custodes-Ledger-Index and X-Custodes-Trace-Id.

    \b
    Routes:
      POST /v1/chat/completions   the governed chat (stream too)
      GET  /v1/models             the model's list, passed through
      POST /v1/custodes/check     checks only: {"prompt": …} or {"completion": …} → verdict
      GET  /healthz, GET /metrics liveness, Prometheus metrics

    \b
    A refusal is OpenAI's error body plus "custodes": {"rules", "explanation_id", …}:
    403 for a policy refusal, 400 for bad input. A completion held for human review is
    answered, after --review-timeout, with 403 code custodes_review_pending and its review
    id (decide it with the review queue, then retry). Bad input (malformed JSON, a body over
    --max-body, another content type, invalid UTF-8) is a 4xx, an unknown model the model's
    404, a hanging model 504, a garbled one 502 — each recorded in the ledger.

    \b
    Caller identity comes from headers: X-Custodes-Caller, X-Custodes-Role,
    X-Custodes-Purpose, X-Custodes-Tenant; a signed policy token in X-Custodes-Token. The
    Authorization header goes on to the model and is never logged or recorded.

    \b
    Example:
      custodes guard serve --upstream https://api.openai.com/v1 --port 8787 \\
          --policy enterprise --ledger .custodes/ledger.db --workers 2

    SIGTERM or Ctrl-C stops it gracefully. Exit codes: 0 stopped cleanly, 2 usage error (bad
    option, policy, ledger or port), 3 internal error.
    """
    try:
        from custodes.guard.proxy import CONFIG_ENV, ProxyConfig, create_app
        from custodes.guard.upstream import check_upstream_url
    except ImportError as exc:
        raise UsageError(
            f"the guard proxy needs {exc.name or 'a package'} (the server extra)",
            hint="pip install 'custodes[server]'",
        ) from exc

    config = ProxyConfig(
        upstream=check_upstream_url(upstream),
        policy=policies or ("enterprise",),
        ledger=ledger_db,
        index=None if index_path is None else str(index_path),
        review=review_db,
        token_verifiers=tuple(_verifier_text(v) for v in token_verifiers),
        fail_closed=not fail_open,
        review_timeout=review_timeout,
        max_body=_size(max_body),
        upstream_timeout=upstream_timeout,
        retries=retries,
    )
    _ensure_default_ledger(ledger_db)
    # Load the policy and open the ledger here, so a bad option fails before the port opens.
    app = create_app(config)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    click.echo(f"custodes: guard listening on http://{shown_host}:{bound_port}", err=True)
    click.echo(
        f"custodes: upstream {_shown(config.upstream)}, policy {', '.join(config.policy)}, "
        f"ledger {_shown(ledger_db) if '://' in ledger_db else ledger_db}, "
        f"{workers} worker(s)",
        err=True,
    )
    stopped: list[int] = []

    def note_signal(sig: int, frame: FrameType | None) -> None:
        # uvicorn shuts down gracefully on these, then raises them again: end with exit 0.
        stopped.append(sig)

    previous = {sig: signal.signal(sig, note_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if workers == 1:
            _serve_one(app, sock)
        else:
            import asyncio

            asyncio.run(app.aclose())
            os.environ[CONFIG_ENV] = config.to_json()
            _serve_many(sock, workers)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    click.echo("custodes: guard stopped", err=True)
    return 0


# How long an idle client connection stays open. It must outlast the clients' own idle limit
# (httpx, and so the openai client, keeps a connection 5 s; uvicorn's default is also 5 s): a
# client that reuses a connection the server is closing at that instant gets a reset, and
# cannot safely send a POST again. 75 s, as nginx keeps them.
_KEEP_ALIVE = 75


def _uvicorn_config(app: object, **extra: object) -> object:
    import uvicorn

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=_KEEP_ALIVE,
        # loop and http stay "auto": uvloop and httptools (the server extra) where installed,
        # about 15% less CPU per proxied request than asyncio's loop and h11.
        server_header=False,
        **extra,  # type: ignore[arg-type]
    )


def _serve_one(app: object, sock: socket.socket) -> None:
    import uvicorn

    config = _uvicorn_config(app)
    assert isinstance(config, uvicorn.Config)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise UsageError("the guard proxy did not start", hint="see the messages above")


def _serve_many(sock: socket.socket, workers: int) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from custodes.guard.metrics import MULTIPROC_ENV

    metrics_dir = tempfile.mkdtemp(prefix="custodes-guard-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        config = _uvicorn_config(
            "custodes.guard.proxy:app_from_env", factory=True, workers=workers
        )
        assert isinstance(config, uvicorn.Config)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
