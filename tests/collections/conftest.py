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


def bbc_leads(n: int) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, labels) of n bbc-news test articles with distinct leads (first 40 words: cheap to encode), chosen
    by a hash of the id and kept in dataset order."""
    import hashlib

    from repspace.datasets import load_dataset

    it = load_dataset("bbc-news:text@test")
    seen, rows = set(), []
    leads = [" ".join(x.split()[:40]) for x in it.data]
    for j, txt in enumerate(leads):
        if txt not in seen:
            seen.add(txt)
            rows.append(j)
    rows = sorted(sorted(rows, key=lambda j: hashlib.sha256(it.ids[j].encode()).hexdigest())[:n])
    return [it.ids[j] for j in rows], [leads[j] for j in rows], [str(it.labels[j]) for j in rows]
