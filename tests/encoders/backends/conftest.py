"""REPSPACE_HOME for the backend tests: the session-wide exports home (`exports_home`, tests/conftest.py), so each
export (a few seconds of MiniLM-L6) is paid once, or a fresh one for tests that damage exports."""

import os

import pytest


@pytest.fixture
def home(exports_home, monkeypatch):
    """REPSPACE_HOME = the shared exports home for one test (tests that damage exports use their own home)."""
    monkeypatch.setenv("REPSPACE_HOME", exports_home)
    return exports_home


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSPACE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def require(*modules):
    import importlib

    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            pytest.skip(f"{m} not installed")
    from repspace.encoders import MODELS

    if not MODELS["minilm-l6"].available():
        pytest.skip("minilm-l6 not installed")


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
