"""Usage errors on every command group print typer's usage line and exit 2, never a traceback; the command
tree is composed in one place (`repspace.cli.main.compose`) with every command name it always had."""

import pytest

GROUPS = ["align", "index", "compress", "muvera", "upgrade", "collection", "limit"]
COMMANDS = ["encode", "info", "models", "datasets", "demo", "eval", "compare", "compat", "report", "search", "train",
            "import", "serve"]


def _usage_error(code, err):
    assert code == 2 and "Traceback" not in err and "Usage:" in err, err


@pytest.mark.parametrize("group", [None, *GROUPS])
def test_unknown_command(cli, group):
    code, _, err = cli(*([group] if group else []), "no-such-command")
    _usage_error(code, err)
    assert "No such command" in err


@pytest.mark.parametrize("command", [["info"], ["eval"], ["align", "fit"], ["index", "build"], ["compress", "fit"],
                                     ["upgrade", "fit"], ["upgrade", "status"], ["collection", "info"]])
def test_missing_argument_and_unknown_option(cli, command):
    code, _, err = cli(*command)
    _usage_error(code, err)
    assert "Missing argument" in err
    code, _, err = cli(*command, "--bogus-flag")
    _usage_error(code, err)
    assert "--bogus-flag" in err


def test_every_command_is_registered_once_in_help_order():
    from typer.main import get_command

    from repspace.cli.app import app
    from repspace.cli.main import compose

    assert compose(app) is app  # composing again changes nothing
    root = get_command(app)
    assert list(root.commands) == COMMANDS + GROUPS
    assert set(root.commands["upgrade"].commands) == {"fit", "eval", "start", "status", "evaluate", "rollback", "finish",
                                                      "backfill", "switch"}


def test_train_help_lists_the_registered_methods(cli):
    from repspace.compat.losses import METHODS
    from repspace.objectives import METHODS as SSL_METHODS

    code, out, _ = cli("train", "--help")
    assert code == 0
    text = " ".join(out.split())
    for method in (*METHODS, *SSL_METHODS):
        assert method in text, method


def test_a_repspace_process_imports_only_the_command_it_runs():
    """`main()` (the `repspace` script) registers only the invoked command: its help works, other command modules
    are not imported; an unknown command still lists every command."""
    import subprocess
    import sys

    code = ("import sys\nfrom repspace.cli import main\nsys.argv = ['repspace'] + sys.argv[1:]\n"
            "try:\n    main.main()\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('RC', rc, 'collection' in sys.modules.get('repspace.cli', object()).__dict__, "
            "'repspace.cli.collection' in sys.modules)\n")
    got = subprocess.run([sys.executable, "-c", code, "limit", "--help"], capture_output=True, text=True)
    assert "Usage:" in got.stdout and "limit" in got.stdout and got.stdout.strip().endswith("RC 0 False False")
    bad = subprocess.run([sys.executable, "-c", code, "nosuchcommand"], capture_output=True, text=True)
    assert "No such command" in bad.stderr and "RC 2" in bad.stdout


def test_composing_after_one_command_gives_the_whole_tree_in_help_order():
    import typer
    from typer.main import get_command

    from repspace.cli.main import compose

    one, whole = typer.Typer(), typer.Typer()
    compose(one, "limit")
    assert list(get_command(one).commands) == ["limit"]
    compose(one)
    assert list(get_command(one).commands) == list(get_command(compose(whole)).commands) == COMMANDS + GROUPS
