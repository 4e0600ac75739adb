"""`import repspace` stays light: no torch, the public names load on first use, no import cycles at start-up."""

import subprocess
import sys
import time

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_repspace_does_not_import_torch():
    t0 = time.perf_counter()
    res = _run("import repspace, sys; assert 'torch' not in sys.modules, 'torch imported'; "
               "print(sorted(m for m in sys.modules if m.startswith('repspace')))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['repspace']"  # nothing else of repspace is loaded until it is used
    assert time.perf_counter() - t0 < 60  # a generous sanity bound; speed is measured in benchmarks/


def test_cli_start_up_does_not_import_torch():
    res = _run("import repspace.cli.main, sys; assert 'torch' not in sys.modules, 'torch imported'")
    assert res.returncode == 0, res.stderr


def test_lazy_exports_are_the_real_objects():
    import repspace
    from repspace.datasets import Items, load_dataset, read_input
    from repspace.encoders import MODELS, Encoder, get_encoder
    from repspace.encoders.job import encode_items
    from repspace.errors import RepspaceError
    from repspace.spaces import Space

    want = {"Encoder": Encoder, "Items": Items, "MODELS": MODELS, "RepspaceError": RepspaceError, "Space": Space,
            "encode_items": encode_items, "get_encoder": get_encoder, "load_dataset": load_dataset,
            "read_input": read_input}
    assert set(repspace.__all__) == {*want, "__version__"}
    for name, obj in want.items():
        assert getattr(repspace, name) is obj, name
    assert set(want) <= set(dir(repspace))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        repspace.nope  # noqa: B018


def test_listing_training_methods_does_not_import_torch():
    res = _run("import sys; from repspace.compat.methods import COMPAT_METHODS, SELF_SUPERVISED_METHODS; "
               "assert 'torch' not in sys.modules; print(','.join(COMPAT_METHODS))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "independent,dsimplex,bct,bt2"


def test_encoder_registry_and_trained_encoder_do_not_import_each_other():
    """The registry opens model directories through its loaders; the trained encoder is handed the base
    encoder's factory instead of importing the registry (no encoders.registry <-> trained/compat cycle)."""
    import ast
    import inspect

    import repspace.encoders.trained as trained

    def imported(module) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not {m for m in imported(trained) if m.startswith("repspace.encoders.registry")}
    import pkgutil

    import repspace.encoders as encoders

    for info in pkgutil.iter_modules(encoders.__path__):  # encoders/ builds on repspace.nets, never on compat/
        module = __import__(f"repspace.encoders.{info.name}", fromlist=["_"])
        assert not {m for m in imported(module) if m.startswith("repspace.compat")}, info.name
