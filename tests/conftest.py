"""Shared fixtures: the real console script, a throwaway PostgreSQL cluster, ledger databases."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgertools import CUSTODES, LedgerDb, run_cli

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def custodes_path() -> Path:
    if not CUSTODES.exists():
        pytest.fail(f"console script {CUSTODES} is missing; run `pip install -e .[all,dev]`")
    return CUSTODES


@pytest.fixture
def custodes_cli(custodes_path: Path, tmp_path: Path) -> CliRunner:
    """Run ``custodes ARGS…`` as a subprocess (in ``tmp_path`` unless ``cwd`` is given).

    Call as ``custodes_cli(*args, input=str|bytes, timeout=…, cwd=…)``; returns a text-mode
    CompletedProcess.
    """

    def run(
        *args: str | os.PathLike[str],
        input: str | bytes | None = None,
        timeout: float = 120,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, input=input, timeout=timeout, cwd=cwd or tmp_path)

    return run


# -- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"


def _pg_bindir() -> Path | None:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            version = float(path.parent.name)
        except ValueError:
            continue
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            candidates.append((version, path))
    if not candidates:
        found = shutil.which("initdb")
        return Path(found).parent if found and shutil.which("pg_ctl") else None
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package "
            "(apt-get install postgresql); CI installs it"
        )
    as_root = os.geteuid() == 0
    # A fresh folder of its own, traversable by the postgres user when we run as root.
    base = Path(tempfile.mkdtemp(prefix="custodes-pg-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = base / "cluster"
        root.mkdir()
        data, sockdir, logfile = root / "data", root / "sock", root / "postgres.log"
        sockdir.mkdir()
        prefix: list[str] = []
        if as_root:
            # PostgreSQL refuses to run as root.
            prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(sockdir, "postgres", "postgres")

        def run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*prefix, *cmd], capture_output=True, text=True, timeout=120, check=False
            )

        def log_tail() -> str:
            return logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""

        user = "custodes"
        init = run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user,
                    "-E", "UTF8"])
        if init.returncode != 0:
            pytest.fail(f"initdb failed (exit {init.returncode}): {init.stdout}\n{init.stderr}")
        pg_ctl = str(bindir / "pg_ctl")
        try:
            for attempt in range(3):  # the free port may be taken before the server binds it
                port = _free_port()
                options = (
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {sockdir} -c fsync=on "
                    "-c max_connections=200"
                )
                start = run([pg_ctl, "-D", str(data), "-o", options, "-l", str(logfile),
                             "-w", "-t", "60", "start"])
                if start.returncode == 0:
                    break
                run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
                if attempt == 2:
                    pytest.fail(
                        f"pg_ctl start failed (exit {start.returncode}): {start.stdout}\n"
                        f"{start.stderr}\n{log_tail()}"
                    )
            yield PgServer("127.0.0.1", port, user)
        finally:
            run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


_db_counter = itertools.count()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_server.url(name)


# -- ledger databases ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerDb:
    if request.param == "sqlite":
        return LedgerDb("sqlite", str(tmp_path / "ledger.db"), None)
    url = request.getfixturevalue("pg_url")
    return LedgerDb("postgres", url, tmp_path / "ledger.key")
