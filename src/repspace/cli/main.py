"""Entry point: runs the typer app; user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import sys

import click

from repspace.cli import spaces  # noqa: F401  (registers commands)
from repspace.cli import demo  # noqa: F401
from repspace.cli import evaluate  # noqa: F401
from repspace.cli import align  # noqa: F401
from repspace.cli import index  # noqa: F401
from repspace.cli import compress  # noqa: F401
from repspace.cli import upgrade  # noqa: F401
from repspace.cli import train  # noqa: F401
from repspace.cli import collection  # noqa: F401
from repspace.cli import serve  # noqa: F401
from repspace.cli.app import app
from repspace.errors import RepspaceError

try:  # typer >= 0.29 vendors click: its usage errors are typer._click's classes, not click's
    from typer._click import exceptions as _tclick
except ImportError:  # pragma: no cover - older typer uses click itself
    _tclick = click.exceptions

_CLICK_ERRORS = tuple({click.ClickException, _tclick.ClickException})
_EXITS = tuple({click.exceptions.Exit, getattr(_tclick, "Exit", click.exceptions.Exit)})
_ABORTS = tuple({click.exceptions.Abort, getattr(_tclick, "Abort", click.exceptions.Abort)})


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (user errors: 2, one line on stderr, no traceback)."""
    try:
        result = app(args=argv, standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except RepspaceError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    except _EXITS as e:
        return e.exit_code
    except _CLICK_ERRORS as e:
        e.show()
        return e.exit_code
    except _ABORTS:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted; re-run the same command to resume", err=True)
        return 130
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        click.echo(f"error: {e}", err=True)
        return 2


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
