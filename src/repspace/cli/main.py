"""Entry point: the whole command tree composed in one place, then run; user errors become one line on stderr
and exit code 2.

Every command of `repspace`, in the order `repspace --help` lists them, is registered in `compose` below: a
command module defines plain typer functions (or a `typer.Typer` sub-app for a group) and imports nothing of
the root app; adding a command is one line here.
"""

from __future__ import annotations

import sys

import click
import typer

from repspace.cli.app import app
from repspace.errors import RepspaceError

try:  # typer >= 0.29 vendors click: its usage errors are typer._click's classes, not click's
    from typer._click import exceptions as _tclick
except ImportError:  # pragma: no cover - older typer uses click itself
    _tclick = click.exceptions

_CLICK_ERRORS = tuple({click.ClickException, _tclick.ClickException})
_EXITS = tuple({click.exceptions.Exit, getattr(_tclick, "Exit", click.exceptions.Exit)})
_ABORTS = tuple({click.exceptions.Abort, getattr(_tclick, "Abort", click.exceptions.Abort)})


def compose(root: typer.Typer) -> typer.Typer:
    """Register every command and command group on `root`, in help order (once; later calls return it as is)."""
    if any(c.name == "encode" for c in root.registered_commands):
        return root
    from repspace.cli import (align, collection, compress, demo, evaluate, index, limit, muvera, serve, spaces, train,
                              upgrade)

    for name, command in (("encode", spaces.encode), ("info", spaces.info), ("models", spaces.models),
                          ("datasets", spaces.datasets), ("demo", demo.demo), ("eval", evaluate.eval_cmd),
                          ("compare", evaluate.compare), ("compat", evaluate.compat), ("report", evaluate.report)):
        root.command(name)(command)
    root.add_typer(align.align_app, name="align")
    root.add_typer(index.index_app, name="index")
    root.command("search")(index.search)
    root.add_typer(compress.compress_app, name="compress")
    root.add_typer(muvera.muvera_app, name="muvera")
    root.add_typer(upgrade.upgrade_app, name="upgrade")
    root.command("train")(train.train)
    root.add_typer(collection.collection_app, name="collection")
    root.command("import")(collection.import_vectors)
    root.command("serve")(serve.serve)
    root.add_typer(limit.limit_app, name="limit")
    return root


compose(app)


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
