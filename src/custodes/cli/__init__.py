"""The ``custodes`` command line: thin wrappers over the public API.

Reports go to stdout, diagnostics to stderr. Exit codes: 0 clean, 1 a policy or verification
check failed, 2 usage error (bad input or options), 3 internal error.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import click

from custodes import __version__
from custodes.errors import Error, UsageError

__all__ = ["cli", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# ``custodes.cli.ledger.DEFAULT_DB`` (tests/cli/test_startup.py pins the two equal), for the
# commands that only may write a ledger (scan, index): importing that module loads the whole
# ledger and its cryptography.
_DEFAULT_DB = os.path.join(".custodes", "ledger.db")


# Each subcommand's module, imported only when that command runs (or help lists them): the
# guard, the ledger and the policy toolchain cost a few hundred milliseconds to import, and a
# pre-commit `custodes scan` or a CI `custodes index add` should not pay for the others.
_COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("custodes.cli.scan", "scan"),
    "baseline": ("custodes.cli.baseline", "baseline"),
    "index": ("custodes.cli.index", "index"),
    "ledger": ("custodes.cli.ledger", "ledger"),
    "demo": ("custodes.cli.demo", "demo"),
    "guard": ("custodes.cli.guard", "guard"),
    "token": ("custodes.cli.token", "token"),
    "explain": ("custodes.cli.explain", "explain"),
    "review": ("custodes.cli.review", "review"),
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported when looked up, not when the CLI is."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *super().list_commands(ctx)})  # click's order: by name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _COMMANDS:
            return found
        import importlib

        module, attr = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):  # a wrong table entry is a bug, not input
            raise TypeError(f"{module}.{attr} is not a click command")
        self.add_command(command, cmd_name)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="custodes")
def cli() -> None:
    """custodes: a trust layer for AI-era software.

    Every decision custodes makes is recorded in a tamper-evident ledger that an auditor can
    verify without trusting the operator.

    \b
    Start here:
      custodes ledger init --db audit.db        create a ledger and its signing key
      echo '{"decision":"allow"}' | custodes ledger append --db audit.db
      custodes ledger verify --db audit.db      recheck every entry and signature
    """


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"custodes: {record.levelname.lower()}: {record.getMessage()}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    root = logging.getLogger("custodes")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script; never lets a traceback reach the user."""
    _setup_logging()
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="custodes",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "custodes"
        message = exc.format_message().rstrip(".")
        click.echo(f"custodes: error: {message}; see `{where} --help`", err=True)
        code = EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"custodes: error: {exc.format_message()}", err=True)
        code = EXIT_USAGE
    except click.Abort:
        click.echo("custodes: aborted", err=True)
        code = EXIT_USAGE
    except UsageError as exc:
        click.echo(f"custodes: error: {exc.diagnostics()}", err=True)
        code = exc.exit_code
    except Error as exc:
        label = "verification failed" if exc.exit_code == EXIT_FAILED else "error"
        click.echo(f"custodes: {label}: {exc.diagnostics()}", err=True)
        code = exc.exit_code
    except BrokenPipeError:
        code = EXIT_OK
    except KeyboardInterrupt:
        click.echo("custodes: interrupted", err=True)
        code = 130
    except Exception as exc:
        click.echo(
            f"custodes: internal error: {type(exc).__name__}: {exc} "
            "(a bug in custodes; please report it with the command you ran)",
            err=True,
        )
        code = EXIT_INTERNAL
    sys.exit(code if isinstance(code, int) else EXIT_OK)
