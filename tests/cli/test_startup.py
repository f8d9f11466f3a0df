"""Start-up: each command imports what it uses, and nothing is lost by importing lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from custodes.cli import _DEFAULT_DB, cli
from custodes.cli.ledger import DEFAULT_DB

HEAVY = ("custodes.guard", "custodes.ledger", "pydantic", "cryptography")

# Runs the real entry point in a fresh interpreter and says, on stderr, which of HEAVY it loaded.
_PROBE = """
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print("LOADED", sorted(
    {{h for h in heavy for m in sys.modules if m == h or m.startswith(h + ".")}}), file=sys.stderr))
from custodes.cli import main
sys.argv = ["custodes", *{args!r}]
main()
"""


def _loaded(*args: str, cwd: Path) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY, args=list(args))],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED"))
    return proc.returncode, ast.literal_eval(line.removeprefix("LOADED "))


def test_the_default_ledger_path_is_the_ledger_commands_one() -> None:
    assert _DEFAULT_DB == DEFAULT_DB


def test_version_loads_none_of_the_heavy_parts(tmp_path: Path) -> None:
    code, loaded = _loaded("--version", cwd=tmp_path)
    assert code == 0
    assert loaded == []


def test_a_provenance_scan_without_a_ledger_loads_neither_guard_nor_ledger(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "schema: 1\nname: p\nrules:\n  - id: p.provenance\n    message: copied\n"
        "    provenance:\n      collections: [deny]\n"
    )
    code, loaded = _loaded("scan", "src", "--policy", str(policy), "--no-ledger", cwd=tmp_path)
    assert code == 0
    assert "custodes.guard" not in loaded
    assert "custodes.ledger" not in loaded
    assert "cryptography" not in loaded


def test_help_still_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("scan", "baseline", "index", "ledger", "demo", "guard", "token", "explain", "review"):
        assert f"\n  {name} " in result.output, name


def test_each_lazy_command_resolves_to_its_module() -> None:
    from click import Context

    ctx = Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.name == name
    assert cli.get_command(ctx, "no-such-command") is None
