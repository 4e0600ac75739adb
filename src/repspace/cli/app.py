"""The typer application object and shared CLI helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

class _App(typer.Typer):
    """The root app: every command runs inside `flag_hints()` given the command line, so a library error whose
    `param` is in `FLAGS`, or is the name of one of the invoked command's options, names its flag even in a command
    that sets no hints of its own."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args")
        with flag_hints(_argv=list(argv) if argv is not None else sys.argv[1:]):
            return super().__call__(*args, **kwargs)


app = _App(
    name="repspace",
    help="Embedding spaces as long-lived assets: encode, inspect, evaluate, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:  # a group even when one command is registered (`cli/main.py` registers only the invoked one)
    pass


_QUICK_EXIT: list[bool] = []


def read_only_one_off() -> None:
    """Called by a command that has written nothing and holds nothing to release (a one-off search): the `repspace`
    process (`cli/main.py` `main()`, not an in-process `run()`) then ends right after its output is flushed, without
    the interpreter's teardown (freeing a loaded index and LanceDB's runtime: ~0.15-0.2 s of a cold search at 10M)."""
    _QUICK_EXIT.append(True)


def wants_quick_exit() -> bool:
    return bool(_QUICK_EXIT)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (NaN-free, stable key order)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def parse_int_list(text: str | None, what: str) -> list[int] | None:
    """'16,32,64' -> [16, 32, 64] with a clear error."""
    from repspace.errors import InvalidInputError

    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"{what} must be comma-separated integers, e.g. 16,32,64; got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise InvalidInputError(f"{what} must be positive integers; got {text!r}")
    return values


def read_items(dataset: str | None, input: Any, text_column: str = "text", id_column: str = "id",
               label_column: str = "label", required: bool = True):
    """Items from exactly one of --dataset / --input (or None when neither is given and not required)."""
    from repspace.datasets import load_dataset, read_input
    from repspace.errors import InvalidInputError

    if dataset is not None and input is not None or (required and dataset is None and input is None):
        raise InvalidInputError("give exactly one of --dataset NAME[:VIEW][@SPLIT] or --input FILE"
                                if required else "give at most one of --dataset or --input")
    if dataset is not None:
        return load_dataset(dataset)
    return read_input(input, text_column, id_column, label_column) if input is not None else None


# The flag of a library parameter (a RepspaceError's `param`) where every command spells it the same way.
# A command whose flag for a parameter differs (or that has more) passes its own to `flag_hints`, which win.
FLAGS: dict[str, str] = {
    "adaptors": "--adaptor", "address": "--ray-address", "api_key_file": "--api-key-file", "api_keys": "--api-key-file",
    "batch_size": "--batch-size", "concurrency": "--concurrency", "device": "--device", "dimensions": "--dim",
    "encode_batch": "--encode-batch", "engine": "--engine", "force": "--force",
    "id_column": "--id-column", "ids_file": "--ids", "items": "--dataset or --input", "limit": "--limit",
    "max_inputs": "--max-inputs", "model": "--model", "models": "--models", "no_auth": "--no-auth", "out": "--out",
    "overwrite": "--overwrite", "port": "--port", "qrels": "--qrels", "spec": "--spec", "text_column": "--text-column",
    "vector_column": "--vector-column", "workers": "--workers", "write_items": "--chunk-items", "backend": "--backend", "threads": "--threads",
}


def backend_help() -> str:
    """The --backend help text, from the encoder backends' registry."""
    from repspace.encoders.backends import BACKENDS

    return ("How a sentence-transformers model runs: " + ", ".join(BACKENDS) + " (exported offline on first use, "
            "cached, checked against torch).")


def _option_flag(argv: list[str], param: str) -> str | None:
    """The flag of the option named `param` of the command `argv` invokes (its longest spelling), if it has one."""
    try:
        cmd = typer.main.get_command(app)
        for token in argv:
            sub = getattr(cmd, "commands", {}).get(token)
            if sub is None:
                break
            cmd = sub
        return next((max(p.opts, key=len) for p in cmd.params if p.name == param and getattr(p, "opts", None)), None)
    except Exception:  # noqa: BLE001 - a hint only; never hide the error itself
        return None


def flag_hints(_argv: list[str] | None = None, **flags: str):
    """Context manager: a RepspaceError raised inside whose `param` (the library argument at fault) is one of
    `flags` (this command's flags) or of `FLAGS` — or, given the command line `_argv`, the name of an option of the
    invoked command — gets that flag added to its message, e.g. flag_hints(pairs="--pairs"). The innermost
    `flag_hints` that finds a flag decides; outer ones leave the error alone."""
    import contextlib

    from repspace.errors import RepspaceError

    hinted = {**FLAGS, **flags}

    @contextlib.contextmanager
    def hints():
        try:
            yield
        except RepspaceError as e:
            param = getattr(e, "param", None) or ""
            if param and not getattr(e, "_flag_hinted", False):
                flag = hinted.get(param) or (_option_flag(_argv, param) if _argv is not None else None)
                if flag:
                    e._flag_hinted = True
                    if flag not in str(e):
                        e.args = (f"{e} [{flag}]",)
            raise

    return hints()
