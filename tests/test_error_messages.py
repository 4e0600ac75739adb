"""Library errors name parameters, never CLI flags (issue #24 item 5).

A library error passes `param="batch_size"` and words its message without `--`; the CLI adds the flag
(`repspace.cli.app.flag_hints` / `FLAGS`) and the service names the JSON field (`error.param`). This test reads
every module of `src/repspace` outside `cli/` and fails on any `raise` whose exception call has a string (or
f-string) argument naming a `--flag`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "repspace"
FLAG = re.compile(r"--[a-z]")

PENDING: tuple[str, ...] = ()  # files exempt from the scan (none: every library message names parameters)


def _pending(rel: Path) -> bool:
    return any(rel.match(pattern) for pattern in PENDING)


def flagged_raises(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each `raise X(...)` in `path` whose arguments hold a string naming a --flag."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        args = [*node.exc.args, *(k.value for k in node.exc.keywords)]
        texts = [n.value for a in args for n in ast.walk(a) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        hit = next((t for t in texts if FLAG.search(t)), None)
        if hit is not None:
            out.append((node.lineno, hit))
    return sorted(out)


def library_modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "cli")


def test_library_errors_name_no_flags():
    found = [f"src/repspace/{p.relative_to(SRC)}:{line}: {text.strip()!r}"
             for p in library_modules() if not _pending(p.relative_to(SRC))
             for line, text in flagged_raises(p)]
    assert not found, ("library errors must name the parameter (param=...) and leave the flag to the CLI:\n"
                       + "\n".join(found))


def test_the_scan_finds_flags(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('def f(n, e):\n'
                 '    if n:\n'
                 '        raise ValueError(f"--batch-size must be positive, got {n}")\n'
                 '    raise KeyError("unknown " + "--method", param="m") from e\n'
                 'def g():\n'
                 '    raise ValueError("batch_size must be positive; a - b -- c", param="batch_size")\n')
    assert [line for line, _ in flagged_raises(f)] == [3, 4]


@pytest.mark.parametrize("param,flag", [("batch_size", "--batch-size"), ("address", "--ray-address"),
                                        ("text_column", "--text-column"), ("api_key_file", "--api-key-file")])
def test_cli_adds_the_flag_of_a_param(param, flag):
    from repspace.cli.app import flag_hints
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e, flag_hints():
        raise InvalidInputError(f"{param} is wrong", param=param)
    assert str(e.value) == f"{param} is wrong [{flag}]"


def test_a_command_flag_wins_and_is_added_once():
    from repspace.cli.app import flag_hints
    from repspace.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e, flag_hints(), flag_hints(items="--dataset"):
        raise InvalidInputError("no items", param="items")
    assert str(e.value) == "no items [--dataset]"


def test_every_command_runs_inside_flag_hints(cli, tmp_path):
    """Commands that set no hints of their own (or none for this parameter) still name the flag."""
    import numpy as np

    from repspace.spaces import Space

    Space(np.eye(4, dtype=np.float32), list("abcd"), None, model="m").save(tmp_path / "s")
    code, _, err = cli("eval", tmp_path / "s", "--engine", "spark")  # checked outside eval's own flag_hints
    assert code == 2 and err.startswith("error: unknown engine 'spark'") and err.rstrip().endswith("[--engine]")
    code, _, err = cli("serve", "--no-auth", "--port", "70000")  # serve sets no hints at all
    assert code == 2 and "port must be 1-65535; got 70000 [--port]" in err
    code, _, err = cli("serve", "--no-auth", "--models", "glove-50,glove-50")
    assert code == 2 and "models names a model twice" in err and "[--models]" in err
    code, _, err = cli("encode", "--model", "glove-50", "--dataset", "bbc-news:title", "--limit", "0",
                       "--out", tmp_path / "o")  # encode hints --overwrite and --batch-size itself
    assert code == 2 and "limit must be positive, got 0 [--limit]" in err
