"""Entry point: the whole command tree composed in one place, then run; user errors become one line on stderr
and exit code 2.

Every command of `repspace`, in the order `repspace --help` lists them, is one line of `COMMANDS` below: a
command module defines plain typer functions (or a `typer.Typer` sub-app for a group) and imports nothing of
the root app; adding a command is one line there. A `repspace` process registers (and imports) only the command it
runs; `run()` in-process and `from repspace.cli.main import app` compose the whole tree.
"""

from __future__ import annotations

import sys

import click
import typer

from repspace.cli.app import app as _app
from repspace.errors import RepspaceError

try:  # typer >= 0.29 vendors click: its usage errors are typer._click's classes, not click's
    from typer._click import exceptions as _tclick
except ImportError:  # pragma: no cover - older typer uses click itself
    _tclick = click.exceptions

_CLICK_ERRORS = tuple({click.ClickException, _tclick.ClickException})
_EXITS = tuple({click.exceptions.Exit, getattr(_tclick, "Exit", click.exceptions.Exit)})
_ABORTS = tuple({click.exceptions.Abort, getattr(_tclick, "Abort", click.exceptions.Abort)})


#: every command and command group, in `repspace --help` order: (name, module in `repspace.cli`, attribute, group?)
COMMANDS: tuple[tuple[str, str, str, bool], ...] = (
    ("encode", "spaces", "encode", False), ("info", "spaces", "info", False), ("models", "spaces", "models", False),
    ("datasets", "spaces", "datasets", False), ("demo", "demo", "demo", False), ("eval", "evaluate", "eval_cmd", False),
    ("compare", "evaluate", "compare", False), ("compat", "evaluate", "compat", False),
    ("report", "evaluate", "report", False), ("align", "align", "align_app", True), ("index", "index", "index_app", True),
    ("search", "index", "search", False), ("compress", "compress", "compress_app", True),
    ("muvera", "muvera", "muvera_app", True), ("upgrade", "upgrade", "upgrade_app", True),
    ("train", "train", "train", False), ("collection", "collection", "collection_app", True),
    ("import", "collection", "import_vectors", False), ("serve", "serve", "serve", False),
    ("limit", "limit", "limit_app", True),
)


def compose(root: typer.Typer, only: str | None = None) -> typer.Typer:
    """Register every command and command group on `root`, in help order (once; later calls return it as is).

    `only`: register just that command (a one-off process that runs one command imports only its module: the
    others' imports cost a cold `collection search` ~0.1 s); an unknown name registers them all, so the usage error
    lists every command."""
    import importlib

    known = {c.name for c in root.registered_commands} | {g.name for g in root.registered_groups}
    chosen = [c for c in COMMANDS if c[0] == only] or COMMANDS
    if chosen is COMMANDS and 0 < len(known) < len(COMMANDS):  # partly composed (after `only`): again, in help order
        root.registered_commands.clear()
        root.registered_groups.clear()
        known = set()
    for name, module, attr, group in chosen:
        if name in known:
            continue
        target = getattr(importlib.import_module(f"repspace.cli.{module}"), attr)
        if group:
            root.add_typer(target, name=name)
        else:
            root.command(name)(target)
    return root


def __getattr__(name: str):  # `from repspace.cli.main import app`: the whole command tree
    if name == "app":
        return compose(_app)
    raise AttributeError(name)


def run(argv: list[str] | None = None, only: str | None = None) -> int:
    """Run the CLI and return its exit code (user errors: 2, one line on stderr, no traceback); `only`: see
    `compose`."""
    app = compose(_app, only)
    from repspace.cli.app import _QUICK_EXIT

    _QUICK_EXIT.clear()  # only the command run now may ask for it
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
    """The `repspace` process: only the invoked command's module is imported."""
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    code = run(only=command)
    from repspace.cli.app import wants_quick_exit

    if code == 0 and wants_quick_exit():  # a read-only one-off (`read_only_one_off`): no interpreter teardown
        import os

        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe (`| head`): the normal exit reports it as Python does
            sys.exit(code)
        os._exit(0)
    sys.exit(code)


if __name__ == "__main__":
    main()
