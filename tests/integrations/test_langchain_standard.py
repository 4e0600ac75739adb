"""LangChain's own standard suites, unchanged, for `RepspaceVectorStore` (on LanceDB and on a real
PostgreSQL + pgvector) and `RepspaceEmbeddings`. Every test of the suites runs; none is overridden."""

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import EmbeddingsUnitTests  # noqa: E402

from repspace.integrations.langchain import RepspaceEmbeddings, RepspaceVectorStore  # noqa: E402

from .conftest import make_uri  # noqa: E402


class _Store(VectorStoreIntegrationTests):
    backend = "lancedb"

    @pytest.fixture
    def vectorstore(self, request, tmp_path):
        """An empty store on a fresh collection, with the suite's own embeddings (bring-your-own vectors)."""
        store = RepspaceVectorStore(make_uri(request, self.backend, tmp_path), embedding=self.get_embeddings())
        try:
            yield store
        finally:
            store.collection.store.drop()  # each test gets its own collection; leave nothing behind
            store.close()


class TestLanceDBVectorStore(_Store):
    backend = "lancedb"


class TestPgVectorStore(_Store):
    backend = "pgvector"


class TestRepspaceEmbeddingsUnit(EmbeddingsUnitTests):
    pytestmark = [pytest.mark.real]

    @property
    def embeddings_class(self):
        return RepspaceEmbeddings

    @property
    def embedding_model_params(self):
        return {"model": "glove-50"}


class TestRepspaceEmbeddings(EmbeddingsIntegrationTests):
    pytestmark = [pytest.mark.real]

    @property
    def embeddings_class(self):
        return RepspaceEmbeddings

    @property
    def embedding_model_params(self):
        return {"model": "minilm-l6", "dimensions": 64}
