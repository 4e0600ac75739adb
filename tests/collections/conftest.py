"""Fixtures for collection tests: a URI factory per backend (the real PostgreSQL + pgvector server is the
session fixture `pg_dsn` of tests/conftest.py)."""

import uuid

import pytest

from repspace.collections.choices import BACKENDS


@pytest.fixture(params=list(BACKENDS))
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
