#!/usr/bin/env python3
"""Guard benchmarks: the proxy's added latency and throughput, the checks' cost beside LLM
Guard's, and detection quality on a labelled prompt set, in one run.

1. Proxy. The upstream (``benchmarks/guard_upstream.py``, a minimal OpenAI-compatible server
   answering at once) and ``custodes guard serve`` (the enterprise pack, a fresh SQLite ledger)
   run as separate uvicorn processes. A load generator in this process — plain asyncio, one
   keep-alive HTTP/1.1 connection per client, each client sending its next request when the
   last is answered — sends the same chat requests (2 KB prompts of real text that the
   admission step lets through) to the upstream directly and through the proxy, at 1, 50 and
   200 concurrent clients, for ``--seconds`` each, with ``--workers 1`` and ``--workers 2``.
   Added latency is the proxied percentile minus the direct one. Throughput is answered
   requests per second. Every response must be a 200 carrying the completion. The CPU time of
   the load generator, the upstream and the proxy is read per run: on 2 cores the three share
   the machine, so the load generator's CPU is CPU the proxy does not get.
2. Checks' cost. The same 2 KB prompts, a share of them carrying a planted credential, personal
   data, a regex hit or a banned phrase, are checked by custodes (``Guard.check_prompt``, no
   ledger, one policy per job) and by LLM Guard's offline scanners for the same jobs
   (``benchmarks/guard_llmguard_run.py`` in ``benchmarks/.work/llmguard-venv``): credentials,
   regular expressions, banned substrings, personal data by pattern, and all four at once.
   Each prompt is timed ``--rounds`` times; a prompt's cost is its median; the table shows
   the mean, median and 99th percentile over the prompts.
3. Detection. Every prompt of the labelled set (``benchmarks/guard_prompts.py``: attacks and
   benign prompts that PyPI packages ship as files) goes through the enterprise pack's
   admission step; a prompt is flagged when the prompt-injection rule matches. custodes' own
   ``tests/data/injection`` corpus is reported apart: its patterns were tuned on it.

Run ``.venv/bin/python benchmarks/guard_bench.py``; ``--quick`` for short runs and fewer
prompts; ``--json FILE`` to keep the figures; ``--parts proxy,cost,detection`` to run some.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "guard"
RUNS = WORK / "runs"
LLMGUARD_VENV = HERE / ".work" / "llmguard-venv"
LLMGUARD_PACKAGES = ("torch==2.13.0", "llm-guard==0.3.16")  # torch first: a CPU build
CUSTODES = ROOT / ".venv" / "bin" / "custodes"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "detectors"))
import secret_samples as samples  # noqa: E402

import guard_prompts as gp  # noqa: E402
from custodes.guard.pipeline import Guard  # noqa: E402

TARGET_ADDED_P50_MS = 2.0
TARGET_ADDED_P99_MS = 10.0
TARGET_RPS = 1000.0
TARGET_CHEAPER = 10.0
PROMPT_BYTES = 2048
CONCURRENCY = (1, 50, 200)
MAX_REQUESTS = 200_000  # a load run stops at this count or at its duration, whichever is first

REGEXES = [
    r"(?i)\bpii\.customers?\b",
    r"(?i)\bcustomers?_pii\b",
    r"(?i)\bcustomer_(?:ssn|dob|date_of_birth|national_id|passport)\b",
    r"(?i)\b(?:internal|confidential)[ -]only\b",
    r"(?i)\bproject[ -](?:nightingale|bluebird|kestrel)\b",
    r"\b10\.(?:\d{1,3}\.){2}\d{1,3}\b",
    r"(?i)\bjira\.corp\.example\b",
    r"\b[A-Z]{3,5}-\d{4,6}-(?:SECRET|RESTRICTED)\b",
]
BANNED = [
    "arbitrary code execution", "a backdoor", "code injection", "cross-site scripting",
    "email spoofing", "a keylogger", "privilege escalation", "a rootkit", "a bootkit",
    "screen scraping", "corrupting a disk partition", "cryptojacking", "a botnet", "adware",
    "ransomware", "etc/shadow", "escalate privilege", "read the encrypted system password file",
    "competitor pricing sheet", "unreleased earnings",
]  # fmt: skip
SECRET_KINDS = (
    "aws-access-key-id", "github-personal-access-token", "slack-bot-token", "stripe-secret-key",
    "jwt", "private-key", "npm-access-token", "sendgrid-api-key", "openai-api-key",
    "mailchimp-api-key",
)  # fmt: skip
REGEX_HITS = [
    "see the pii.customers table", "join on customer_ssn", "marked internal-only",
    "for Project Kestrel", "host 10.20.30.40", "ticket FIN-20431-RESTRICTED",
]
JOBS = ("secrets", "regex", "ban", "pii", "all")


# -- machine -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "custodes_commit": commit,
        "uvicorn": version("uvicorn"), "aiohttp": version("aiohttp"), "h11": version("h11"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    for row in cells:
        print("  " + fmt.format(*row))


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- processes -------------------------------------------------------------------------------


class Server:
    """A server process whose address is read from a line of its output."""

    def __init__(self, argv: list[str], pattern: str, *, stream: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.url = ""
        found = threading.Event()
        regex = re.compile(pattern)

        def drain(handle: Any, watch: bool) -> None:
            for line in handle:
                self.lines.append(line.rstrip("\n"))
                match = regex.search(line) if watch and not found.is_set() else None
                if match:
                    self.url = match[1]
                    found.set()
            if watch:
                found.set()

        watched, other = (
            (self.proc.stdout, self.proc.stderr)
            if stream == "stdout"
            else (self.proc.stderr, self.proc.stdout)
        )
        for handle, watch in ((watched, True), (other, False)):
            threading.Thread(target=drain, args=(handle, watch), daemon=True).start()
        found.wait(120)
        if not self.url:
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start:\n" + "\n".join(self.lines[-20:]))

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and every descendant still alive."""
        return sum(_cpu_of(pid) for pid in _tree(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _cpu_of(pid: int) -> float:
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def _tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODES_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_upstream() -> Server:
    return Server(
        [sys.executable, str(HERE / "guard_upstream.py"), "--port", "0"],
        r"listening on (http://[\d.]+:\d+)", stream="stdout", env=_env(),
    )  # fmt: skip


def start_proxy(upstream: str, ledger: Path, workers: int) -> Server:
    for leftover in ledger.parent.glob(ledger.stem + "*"):
        leftover.unlink()
    server = Server(
        [str(CUSTODES), "guard", "serve", "--upstream", upstream + "/v1", "--policy",
         "enterprise", "--ledger", str(ledger), "--port", "0", "--workers", str(workers)],
        r"guard listening on (http://[\d.]+:\d+)", stream="stderr", env=_env(),
    )  # fmt: skip
    # With several workers the port is open before they have loaded: wait for answers.
    deadline = time.monotonic() + 120
    host, port = _host_port(server.url)
    while time.monotonic() < deadline:
        try:
            status, _ = asyncio.run(_get(host, port, "/healthz"))
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the proxy did not answer /healthz:\n" + "\n".join(server.lines[-20:]))


# -- load generator --------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        return await asyncio.wait_for(_read_response(reader), 10)
    finally:
        writer.close()


def chat_requests(host: str, port: int, prompts: Sequence[str]) -> list[bytes]:
    out = []
    for prompt in prompts:
        body = json.dumps(
            {"model": "bench-model", "messages": [{"role": "user", "content": prompt}]}
        ).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


@dataclass
class Load:
    target: str
    workers: int
    clients: int
    seconds: float = 0.0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "target": self.target, "workers": self.workers, "clients": self.clients,
            "requests": self.ok, "errors": dict(self.errors), "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(pct(lat, 0.50), 3), "p90_ms": round(pct(lat, 0.90), 3),
            "p99_ms": round(pct(lat, 0.99), 3),
            "mean_ms": round(statistics.fmean(lat), 3) if lat else None,
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_s / max(1, self.ok), 3),
            "proxy_cpu_ms_per_request": round(1000 * self.server_cpu_s / max(1, self.ok), 3),
            "upstream_cpu_ms_per_request": round(1000 * self.upstream_cpu_s / max(1, self.ok), 3),
        }  # fmt: skip


async def _drive(
    host: str, port: int, requests: list[bytes], clients: int, seconds: float, load: Load
) -> None:
    conns = [await asyncio.open_connection(host, port) for _ in range(clients)]
    issued = 0
    stop_at = 0.0

    async def client(number: int, reader: asyncio.StreamReader, writer: Any) -> None:
        nonlocal issued
        turn = number
        while issued < MAX_REQUESTS and time.perf_counter() < stop_at:
            issued += 1
            request = requests[turn % len(requests)]
            turn += clients
            started = time.perf_counter()
            writer.write(request)
            try:
                status, body = await asyncio.wait_for(_read_response(reader), 120)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                load.errors[type(exc).__name__] += 1
                return
            elapsed = time.perf_counter() - started
            if status == 200 and b'"choices"' in body:
                load.ok += 1
                load.latencies_ms.append(elapsed * 1000)
            else:
                load.errors[f"http {status}"] += 1

    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*(client(n, r, w) for n, (r, w) in enumerate(conns)))
    load.seconds = time.perf_counter() - began
    for _, writer in conns:
        writer.close()


def run_load(
    url: str, prompts: Sequence[str], clients: int, seconds: float, *, target: str,
    workers: int, proxy: Server | None, upstream: Server,
) -> Load:  # fmt: skip
    host, port = _host_port(url)
    requests = chat_requests(host, port, prompts)
    warm = Load(target, workers, clients)
    asyncio.run(_drive(host, port, requests, clients, min(1.0, seconds / 4), warm))
    if warm.errors:
        raise RuntimeError(f"{target} answered errors while warming up: {dict(warm.errors)}")
    load = Load(target, workers, clients)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    proxy0 = proxy.cpu_seconds() if proxy else 0.0
    up0 = upstream.cpu_seconds()
    asyncio.run(_drive(host, port, requests, clients, seconds, load))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load.client_cpu_s = usage.ru_utime + usage.ru_stime - cpu0
    load.server_cpu_s = (proxy.cpu_seconds() - proxy0) if proxy else 0.0
    load.upstream_cpu_s = upstream.cpu_seconds() - up0
    return load


# -- the three parts ---------------------------------------------------------------------------


def admitted(prompts: Sequence[str]) -> list[str]:
    """The prompts the enterprise pack's admission step lets through unchanged."""
    with Guard("enterprise", ledger=None) as guard:
        return [p for p in prompts if guard.check_prompt(p).action == "allow"]


def part_proxy(
    prompts: Sequence[str], seconds: float, workers_list: Sequence[int], ledger_dir: Path
) -> dict[str, Any]:
    print(
        f"\n== 1. proxy: {len(prompts)} distinct 2 KB prompts, {seconds:g} s per run, "
        f"clients {', '.join(map(str, CONCURRENCY))}",
        flush=True,
    )
    RUNS.mkdir(parents=True, exist_ok=True)
    upstream = start_upstream()
    runs: list[Load] = []
    try:
        for workers in workers_list:
            proxy = start_proxy(upstream.url, ledger_dir / f"guard-bench-w{workers}.db", workers)
            try:
                for clients in CONCURRENCY:
                    for target, url, server in (
                        ("direct", upstream.url, None),
                        ("proxy", proxy.url, proxy),
                    ):
                        load = run_load(
                            url, prompts, clients, seconds, target=target, workers=workers,
                            proxy=server, upstream=upstream,
                        )  # fmt: skip
                        runs.append(load)
                        s = load.summary()
                        print(
                            f"  workers={workers} clients={clients:>3} {target:6}: "
                            f"{s['requests']:>6} ok, {sum(load.errors.values())} errors, "
                            f"{s['rps']:>7.1f} req/s, p50 {s['p50_ms']:.2f} ms, "
                            f"p99 {s['p99_ms']:.2f} ms",
                            flush=True,
                        )
            finally:
                proxy.stop()
    finally:
        upstream.stop()
    rows = []
    added: list[dict[str, Any]] = []
    for workers in workers_list:
        for clients in CONCURRENCY:
            d = next(r for r in runs if (r.target, r.workers, r.clients) == ("direct", workers, clients))
            p = next(r for r in runs if (r.target, r.workers, r.clients) == ("proxy", workers, clients))
            ds, ps = d.summary(), p.summary()
            entry = {
                "workers": workers, "clients": clients,
                "added_p50_ms": round(ps["p50_ms"] - ds["p50_ms"], 3),
                "added_p99_ms": round(ps["p99_ms"] - ds["p99_ms"], 3),
                "direct": ds, "proxy": ps,
            }  # fmt: skip
            added.append(entry)
            rows.append([
                f"w{workers} c{clients}", f"{ds['p50_ms']:.2f} / {ds['p99_ms']:.2f}",
                f"{ps['p50_ms']:.2f} / {ps['p99_ms']:.2f}",
                f"{entry['added_p50_ms']:.2f} / {entry['added_p99_ms']:.2f}",
                f"{ds['rps']:.0f}", f"{ps['rps']:.0f}",
                f"{ps['proxy_cpu_ms_per_request']:.2f}",
                f"{ps['client_cpu_ms_per_request']:.2f} / {ds['client_cpu_ms_per_request']:.2f}",
                str(sum(p.errors.values()) + sum(d.errors.values())),
            ])  # fmt: skip
    print()
    table(rows, ["run", "direct p50/p99 ms", "proxy p50/p99 ms", "added p50/p99 ms",
                 "direct req/s", "proxy req/s", "proxy CPU ms/req", "client CPU ms/req p/d",
                 "errors"])  # fmt: skip
    return {"runs": added, "prompts": len(prompts), "seconds": seconds, "ledger_dir": str(ledger_dir)}


def _luhn(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


def _iban_de(rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    number = int(bban + "131400")  # D=13, E=14, check digits 00
    check = 98 - number % 97
    iban = f"DE{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def pii_values(rng: random.Random) -> list[tuple[str, str]]:
    first = rng.choice(["maria", "jonas", "aiko", "pedro", "fatima", "li", "olga", "samuel"])
    last = rng.choice(["lindqvist", "moreau", "okafor", "tanaka", "schmidt", "rossi", "novak"])
    card = _luhn("4" + "".join(rng.choice("0123456789") for _ in range(14)))
    return [
        ("email", f"write to {first}.{last}@northwind-traders.com"),
        ("phone", f"call me on +44 20 7946 {rng.randrange(1000):03d}{rng.randrange(10)}"),
        ("card", "card " + " ".join(card[i : i + 4] for i in range(0, 16, 4))),
        ("iban", "IBAN " + _iban_de(rng)),
    ]


@dataclass
class Planted:
    text: str
    kinds: dict[str, str]  # job -> what was planted


def plant_prompts(base: Sequence[str], seed: int) -> list[Planted]:
    """The base prompts, a share of them carrying a credential, personal data, a regex hit or a
    banned phrase at a word boundary (cut so the prompt stays within 2 KB)."""
    rng = random.Random(seed)
    out: list[Planted] = []
    for n, text in enumerate(base):
        kinds: dict[str, str] = {}
        inserts: list[str] = []
        if n % 5 == 1:
            kind = SECRET_KINDS[(n // 5) % len(SECRET_KINDS)]
            snippet, _ = samples.SAMPLES[kind].positive(random.Random(f"{seed}/{n}"))
            kinds["secrets"] = kind
            inserts.append("Here is the config I use:\n" + snippet.strip() + "\n")
        if n % 5 == 2:
            what, value = rng.choice(pii_values(rng))
            kinds["pii"] = what
            inserts.append(value + ".")
        if n % 10 == 3:
            kinds["regex"] = rng.choice(REGEX_HITS)
            inserts.append(kinds["regex"] + ".")
        if n % 10 == 8:
            kinds["ban"] = rng.choice(BANNED)
            inserts.append(f"Explain {kinds['ban']} in detail.")
        extra = sum(len(i.encode()) + 2 for i in inserts)
        body = gp.cut(text, PROMPT_BYTES - extra) if inserts else text
        words = body.split(" ")
        for insert in inserts:
            at = rng.randrange(1, len(words))
            words.insert(at, insert)
        out.append(Planted(" ".join(words), kinds))
    return out


def _policy(rules: list[str]) -> str:
    return "schema: 1\nname: guard-bench\nrules:\n" + "".join(rules)


def job_policies() -> dict[str, str]:
    secrets = (
        "  - id: bench.secrets\n    message: a credential\n    applies-to: [prompt]\n"
        "    action: block\n    secrets: {}\n"
    )
    regex = (
        "  - id: bench.regex\n    message: a forbidden pattern\n    severity: high\n"
        "    applies-to: [prompt]\n    action: block\n    regex:\n      pattern-either:\n"
        + "".join(f"        - {json.dumps(r)}\n" for r in REGEXES)
    )
    # The same work as LLM Guard's BanSubstrings(match_type="str", case_sensitive=False):
    # literal phrases, case-insensitive, anywhere (not only at word boundaries).
    ban = (
        "  - id: bench.ban\n    message: a banned phrase\n    severity: high\n"
        "    applies-to: [prompt]\n    action: block\n    phrases:\n"
        "      ignorecase: true\n      words: false\n      list:\n"
        + "".join(f"        - {json.dumps(b)}\n" for b in BANNED)
    )
    pii = (
        "  - id: bench.pii\n    message: personal data\n    applies-to: [prompt]\n"
        "    action: redact\n    pii: {}\n"
    )
    return {
        "secrets": _policy([secrets]), "regex": _policy([regex]), "ban": _policy([ban]),
        "pii": _policy([pii]), "all": _policy([secrets, regex, ban, pii]),
    }  # fmt: skip


def _flagged(verdict: Any, job: str) -> bool:
    return verdict.action != "allow" if job != "pii" else bool(verdict.findings)


def time_custodes(planted: Sequence[Planted], rounds: int) -> dict[str, Any]:
    folder = WORK / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    texts = [p.text for p in planted]
    for job, text in job_policies().items():
        path = folder / f"{job}.yaml"
        path.write_text(text)
        with Guard(str(path), ledger=None) as guard:
            if guard.policy_error is not None:
                raise RuntimeError(guard.policy_error.diagnostics())
            out[job] = _time_guard(guard, texts, rounds, job)
    # The same checks with each verdict recorded, as the proxy records every step.
    db = WORK / "runs" / "cost-ledger.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for leftover in db.parent.glob(db.stem + "*"):
        leftover.unlink()
    with Guard(str(folder / "all.yaml"), ledger=str(db)) as guard:
        out["all+ledger"] = _time_guard(guard, texts, rounds, "all")
    # What the proxy's admission step runs: the enterprise pack (injection patterns too).
    with Guard("enterprise", ledger=None) as guard:
        out["enterprise"] = _time_guard(guard, texts, rounds, "all")
    return out


def _time_guard(guard: Guard, texts: Sequence[str], rounds: int, job: str) -> dict[str, Any]:
    for text in texts[:5]:
        guard.check_prompt(text)
    times = [[0.0] * rounds for _ in texts]
    flagged = [False] * len(texts)
    for r in range(rounds):
        for i, text in enumerate(texts):
            started = time.perf_counter()
            verdict = guard.check_prompt(text)
            times[i][r] = time.perf_counter() - started
            flagged[i] = _flagged(verdict, job)
    return {"times": times, "flagged": flagged}


def ensure_llmguard() -> Path | None:
    """LLM Guard in its own venv (PyTorch's CPU build first); None when it cannot be had."""
    python = LLMGUARD_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LLMGUARD_VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import llm_guard"], capture_output=True, check=False
    )
    if probe.returncode:
        for package in LLMGUARD_PACKAGES:
            print(f"pip install {package} into {LLMGUARD_VENV} ...", flush=True)
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", package],
                capture_output=True, text=True, check=False, timeout=3600,
            )  # fmt: skip
            if proc.returncode:
                print(f"  pip install failed: {proc.stderr.strip()[-400:]}", flush=True)
                return None
    return python


def run_llmguard(python: Path, planted: Sequence[Planted], rounds: int) -> dict[str, Any]:
    job = WORK / "llmguard-job.json"
    out = WORK / "llmguard-out.json"
    job.write_text(
        json.dumps(
            {"prompts": [p.text for p in planted], "rounds": rounds, "regex": REGEXES,
             "ban": BANNED}
        )
    )  # fmt: skip
    proc = subprocess.run(
        [str(python), str(HERE / "guard_llmguard_run.py"), str(job), str(out)],
        capture_output=True, text=True, check=False, timeout=7200,
    )  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"LLM Guard run failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _costs(times: list[list[float]]) -> dict[str, float]:
    per_prompt = [statistics.median(t) * 1000 for t in times]
    return {
        "mean_ms": statistics.fmean(per_prompt),
        "p50_ms": pct(per_prompt, 0.5),
        "p99_ms": pct(per_prompt, 0.99),
    }


def part_cost(base: Sequence[str], rounds: int, seed: int) -> dict[str, Any]:
    planted = plant_prompts(base, seed)
    planted_counts = Counter(job for p in planted for job in p.kinds)
    print(
        f"\n== 2. checks' cost: {len(planted)} prompts of about 2 KB ({rounds} rounds); planted: "
        + ", ".join(f"{planted_counts[j]} {j}" for j in ("secrets", "pii", "regex", "ban")),
        flush=True,
    )
    custodes = time_custodes(planted, rounds)
    python = ensure_llmguard()
    llmguard: dict[str, Any] | None = None
    if python is None:
        print("  LLM Guard: NOT RUN (cannot be installed)")
    else:
        llmguard = run_llmguard(python, planted, rounds)
        versions = ", ".join(f"{k} {v}" for k, v in llmguard["versions"].items())
        print(f"  LLM Guard venv: {versions}")
    rows = []
    result: dict[str, Any] = {"prompts": len(planted), "rounds": rounds, "jobs": {}}
    for job in (*JOBS, "all+ledger", "enterprise"):
        c = _costs(custodes[job]["times"])
        c_flag = sum(custodes[job]["flagged"])
        entry: dict[str, Any] = {"custodes": {**c, "flagged": c_flag}}
        lg_key = "all" if job == "all+ledger" else job
        if llmguard is not None and lg_key in llmguard["jobs"]:
            lg = _costs(llmguard["jobs"][lg_key]["times"])
            lg_flag = sum(llmguard["jobs"][lg_key]["flagged"])
            entry["llm_guard"] = {**lg, "flagged": lg_flag}
            entry["ratio"] = lg["mean_ms"] / c["mean_ms"]
            planted_job = [j for j in (job,) if j in planted_counts] or list(planted_counts)
            found = _found(planted, custodes[job]["flagged"], llmguard["jobs"][lg_key]["flagged"], planted_job)
            entry["planted_found"] = found
        result["jobs"][job] = entry
        lg_cells = (
            [f"{entry['llm_guard']['mean_ms']:.3f}", f"{entry['llm_guard']['p50_ms']:.3f}",
             f"{entry['llm_guard']['p99_ms']:.3f}", f"{entry['ratio']:.1f}x",
             f"{entry['planted_found']['custodes']} / {entry['planted_found']['llm_guard']}"
             f" of {entry['planted_found']['planted']}",
             f"{c_flag} / {entry['llm_guard']['flagged']}"]
            if "ratio" in entry else ["-"] * 5 + [str(c_flag)]
        )  # fmt: skip
        rows.append([job, f"{c['mean_ms']:.3f}", f"{c['p50_ms']:.3f}", f"{c['p99_ms']:.3f}", *lg_cells])
    print()
    table(rows, ["job", "custodes mean ms", "p50", "p99", "LLM Guard mean ms", "p50", "p99",
                 "LLM Guard / custodes", "planted found c / LG", "flagged c / LG"])  # fmt: skip
    if llmguard is not None:
        result["llm_guard_versions"] = llmguard["versions"]
        result["llm_guard_left_out"] = llmguard["left_out"]
    return result


def _found(
    planted: Sequence[Planted], c_flags: Sequence[bool], lg_flags: Sequence[bool], jobs: list[str]
) -> dict[str, Any]:
    idx = [i for i, p in enumerate(planted) if any(j in p.kinds for j in jobs)]

    def what(i: int) -> str:
        return ", ".join(f"{j}:{k}" for j, k in planted[i].kinds.items() if j in jobs)

    missed_c = Counter(what(i) for i in idx if not c_flags[i])
    missed_lg = Counter(what(i) for i in idx if not lg_flags[i])
    return {
        "planted": len(idx),
        "custodes": sum(c_flags[i] for i in idx),
        "llm_guard": sum(lg_flags[i] for i in idx),
        "custodes_missed": dict(missed_c),
        "llm_guard_missed": dict(missed_lg),
    }


def part_detection(prompts: Sequence[gp.Prompt], own: Sequence[gp.Prompt]) -> dict[str, Any]:
    print(f"\n== 3. detection: {len(prompts)} labelled prompts, enterprise pack", flush=True)
    rows = []
    per_source: dict[str, dict[str, Any]] = {}
    totals: Counter[str] = Counter()
    with Guard("enterprise", ledger=None) as guard:
        for number, prompt in enumerate([*own, *prompts]):
            verdict = guard.check_prompt(prompt.text)
            injection = any(f.kind == "injection" for f in verdict.findings)
            blocked = verdict.action == "block"
            s = per_source.setdefault(
                prompt.source, {"label": prompt.label, "n": 0, "flagged": 0, "blocked": 0}
            )
            s["n"] += 1
            s["flagged"] += injection
            s["blocked"] += blocked
            if number < len(own):
                totals[f"own-{prompt.label}.n"] += 1
                totals[f"own-{prompt.label}.flagged"] += injection
                continue
            key = prompt.label
            totals[f"{key}.n"] += 1
            totals[f"{key}.flagged"] += injection
            totals[f"{key}.blocked"] += blocked
            if prompt.label == "benign":
                sub = "hard" if prompt.hard else "plain"
                totals[f"benign-{sub}.n"] += 1
                totals[f"benign-{sub}.flagged"] += injection
                totals[f"benign-{prompt.lang}.n"] += 1
                totals[f"benign-{prompt.lang}.flagged"] += injection
    own_sources = {p.source for p in own}
    for source, s in per_source.items():
        if source in own_sources:
            continue
        share = s["flagged"] / s["n"]
        rows.append([source, s["label"], s["n"], s["flagged"], f"{share:.3f}", s["blocked"]])
    print()
    table(rows, ["source", "label", "prompts", "flagged", "rate", "blocked (any rule)"])

    def rate(key: str) -> float:
        return totals[f"{key}.flagged"] / totals[f"{key}.n"] if totals[f"{key}.n"] else float("nan")

    summary: dict[str, Any] = {
        "attacks": totals["attack.n"], "benign": totals["benign.n"],
        "tpr": rate("attack"), "fpr": rate("benign"),
        "fpr_hard": rate("benign-hard"), "hard_negatives": totals["benign-hard.n"],
        "fpr_plain": rate("benign-plain"),
        "fpr_en": rate("benign-en"), "fpr_zh": rate("benign-zh"),
        "benign_blocked_any_rule": totals["benign.blocked"],
        "own_corpus": {
            "attacks": totals["own-attack.n"], "benign": totals["own-benign.n"],
            "tpr": rate("own-attack"), "fpr": rate("own-benign"),
        },
    }  # fmt: skip
    print(
        f"\n  public set: TPR {summary['tpr']:.3f} ({totals['attack.flagged']}/{totals['attack.n']}), "
        f"FPR {summary['fpr']:.4f} ({totals['benign.flagged']}/{totals['benign.n']}); hard "
        f"negatives FPR {summary['fpr_hard']:.4f} of {totals['benign-hard.n']}; benign blocked "
        f"by any rule: {totals['benign.blocked']}"
    )
    print(
        f"  custodes' own corpus (tuned on): TPR {rate('own-attack'):.3f} of "
        f"{totals['own-attack.n']}, FPR {rate('own-benign'):.3f} of "
        f"{totals['own-benign.n']}"
    )
    return {"summary": summary, "sources": per_source}


# -- main --------------------------------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    proxy = results.get("proxy")
    if proxy:
        single = [r for r in proxy["runs"] if r["clients"] == 1]
        best50 = min(r["added_p50_ms"] for r in single)
        best99 = min(r["added_p99_ms"] for r in single)
        rows.append([f"added latency p50 <= {TARGET_ADDED_P50_MS:g} ms (1 client)",
                     f"{best50:.2f} ms", "PASS" if best50 <= TARGET_ADDED_P50_MS else "MISS"])
        rows.append([f"added latency p99 <= {TARGET_ADDED_P99_MS:g} ms (1 client)",
                     f"{best99:.2f} ms", "PASS" if best99 <= TARGET_ADDED_P99_MS else "MISS"])
        top = max(proxy["runs"], key=lambda r: r["proxy"]["rps"])
        rps = top["proxy"]["rps"]
        rows.append([f">= {TARGET_RPS:.0f} req/s through the proxy",
                     f"{rps:.0f} (w{top['workers']} c{top['clients']})",
                     "PASS" if rps >= TARGET_RPS else "MISS"])  # fmt: skip
    cost = results.get("cost")
    if cost and "ratio" in cost["jobs"].get("all", {}):
        for job in JOBS:
            ratio = cost["jobs"][job]["ratio"]
            rows.append([f"checks >= {TARGET_CHEAPER:g}x cheaper than LLM Guard: {job}",
                         f"{ratio:.1f}x", "PASS" if ratio >= TARGET_CHEAPER else "MISS"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs, fewer prompts")
    parser.add_argument("--seconds", type=float, default=None, help="per load run (8)")
    parser.add_argument("--prompts", type=int, default=None, help="2 KB prompts (200)")
    parser.add_argument("--rounds", type=int, default=None, help="timings per prompt (5)")
    parser.add_argument("--workers", default="1,2", help="proxy --workers to measure")
    parser.add_argument("--parts", default="proxy,cost,detection")
    parser.add_argument(
        "--ledger-dir", type=Path, default=RUNS,
        help="where the proxy's SQLite ledger goes (a tmpfs such as /dev/shm shows the cost "
        "of the disk's fsync)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    count = args.prompts or (40 if args.quick else 200)
    rounds = args.rounds or (2 if args.quick else 5)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    info = machine()
    print("== custodes guard benchmark")
    for key, value in info.items():
        print(f"  {key}: {value}")
    prompts, sources = gp.load()
    print("\n  labelled prompts (benchmarks/guard_prompts.py):")
    table(
        [[s.name, s.label, s.count, f"{s.package} {s.version}", s.licence] for s in sources],
        ["source", "label", "prompts", "package", "licence"],
    )
    base = gp.sized_prompts(prompts, PROMPT_BYTES, count, args.seed)
    results: dict[str, Any] = {"machine": info, "sources": [asdict(s) for s in sources]}
    if "proxy" in parts:
        let_through = admitted(base)[:64]
        args.ledger_dir.mkdir(parents=True, exist_ok=True)
        results["proxy"] = part_proxy(let_through, seconds, workers, args.ledger_dir)
    if "cost" in parts:
        results["cost"] = part_cost(base, rounds, args.seed)
    if "detection" in parts:
        results["detection"] = part_detection(prompts, gp.own_corpus())
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print("\n== targets")
    rows = verdicts(results)
    table(rows, ["target", "measured", "verdict"])
    results["targets"] = rows
    load = results["machine"]["load_average"]
    if max(load) > 1.0:
        print(f"\n  the machine was busy (load average {load}): the figures are provisional")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    shutil.rmtree(RUNS, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
