"""A repspace collection as a LangChain `VectorStore`, and repspace encoders as LangChain `Embeddings`.

    from repspace.integrations.langchain import RepspaceEmbeddings, RepspaceVectorStore

    store = RepspaceVectorStore("./docs-collection", model="minilm-l6")      # the collection encodes
    store = RepspaceVectorStore("postgresql://u@host/db?collection=docs", embedding=OpenAIEmbeddings())  # your vectors
    store.add_documents(docs)                        # Document.id (or a new uuid) is the item id
    store.similarity_search("a question", k=4, filter={"label": "business"})
    retriever = store.as_retriever(search_kwargs={"k": 4})

Items: the item id is the LangChain document id, the item text is `page_content`, the payload is
`metadata` (a JSON object) — nothing else is stored with them, so `get_by_ids` and searches give back
exactly the documents that were added. `filter` is an equality mapping on metadata keys (both backends).

Two ways to get vectors:
  * `model=` a repspace model (or a collection whose active slot is one): the collection encodes texts
    itself. Queries are texts too, so during a model upgrade (`repspace upgrade start`) the searches of
    an unchanged application go through the upgrade's default strategy (fused) and, after the switch,
    to the new model — `model` only matters when the collection is created.
  * `embedding=` any LangChain `Embeddings`: bring-your-own vectors, in a slot named after the
    embedding class (its dimension probed by embedding one string).

Scores (`similarity_search_with_score`) are the collection's: cosine similarity, higher is closer
(during an upgrade, the fused strategy's calibrated score). Relevance scores map cosine c to (1 + c) / 2.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from repspace.errors import DimensionMismatchError, InvalidInputError
from repspace.integrations._encoders import load_model, truncate_normalize

__all__ = ["RepspaceEmbeddings", "RepspaceVectorStore", "external_model_name", "truncate_normalize"]


class RepspaceEmbeddings(Embeddings):
    """LangChain `Embeddings` over a repspace encoder (a built-in model name or a model directory).

    `dimensions` follows the embeddings service's rule (`repspace.service.embeddings.EmbeddingModel`):
    the output of a registered nested-prefix `adaptor` (a directory made by
    `repspace compress fit --method matryoshka|pca`) when it was fitted for that dimension, else the first
    `dimensions` components; every vector is re-normalised to unit length.

        emb = RepspaceEmbeddings("minilm-l6", dimensions=128)
        emb.embed_query("a question")          # 128 floats
    """

    def __init__(self, model: str = "minilm-l6", dimensions: int | None = None, *, adaptor: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 32) -> None:
        self.model = str(model)
        self.dimensions = dimensions
        self.adaptor = adaptor
        self.device = device
        self._model = load_model(self.model, adaptor=adaptor, device=device, micro_batch=batch_size)
        self.dimensions_method = self._model.dimensions_method(dimensions)  # fails early on an impossible value

    @property
    def dim(self) -> int:
        return int(self.dimensions or self._model.dim)

    def __repr__(self) -> str:
        extra = f", dimensions={self.dimensions}" if self.dimensions else ""
        return f"RepspaceEmbeddings({self.model!r}{extra})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        X, _ = self._model.reduce(self._model.encode(texts), self.dimensions)
        return X

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()


def external_model_name(embedding: Embeddings) -> str:
    """The slot model name for vectors made by a LangChain `Embeddings` object (never a repspace model name)."""
    if isinstance(embedding, RepspaceEmbeddings):
        base = f"langchain:repspace:{Path(embedding.model).name}"
        return base + (f"@{embedding.dimensions}" if embedding.dimensions else "")
    name = type(embedding).__name__
    model = getattr(embedding, "model", None) or getattr(embedding, "model_name", None)
    return f"langchain:{name}" + (f":{model}" if isinstance(model, str) and model else "")


def _probe_dim(embedding: Embeddings) -> int:
    v = embedding.embed_query("dimension probe")
    if not len(v):
        raise InvalidInputError(f"{type(embedding).__name__} returned an empty vector")
    return len(v)


class RepspaceVectorStore(VectorStore):
    """A repspace collection (LanceDB directory or PostgreSQL DSN with ?collection=NAME) as a LangChain store.

    Opens the collection at `uri`, creating it when missing: with `embedding` (any LangChain `Embeddings`)
    as a bring-your-own-vectors collection, with `model` (a repspace model) as one that encodes texts.
    An existing collection keeps its own models: `model` and `spec` only matter when it is created.
    """

    def __init__(self, uri: str | Path, embedding: Embeddings | None = None, *, model: str | None = None,
                 spec: str = "Flat", device: str = "cpu") -> None:
        from repspace.collections import Collection
        from repspace.collections.uri import parse_uri

        if embedding is not None and model is not None:
            raise InvalidInputError("give either embedding= (your vectors) or model= (a repspace model), not both")
        if embedding is not None and not isinstance(embedding, Embeddings):
            raise InvalidInputError(f"embedding must be a LangChain Embeddings object, got {type(embedding).__name__}")
        parsed = parse_uri(uri)
        existing = Collection.open_if_exists(uri, device)
        if existing is not None:
            self.collection = existing
        else:
            if embedding is None and model is None:
                raise InvalidInputError(f"no collection at {parsed}; give model= (a repspace model) or embedding= "
                                        "(a LangChain Embeddings) to create it")
            if embedding is not None and isinstance(embedding, RepspaceEmbeddings) and not embedding.dimensions:
                model = embedding.model  # the collection encodes with the same model: no vectors travel
            if model is not None:
                self.collection = Collection.create(uri, model=model, spec=spec, device=device)
            else:
                self.collection = Collection.create(uri, model=external_model_name(embedding), spec=spec,
                                                    dim=_probe_dim(embedding), device=device)
        self._embedding = embedding
        self._check_embedding()

    # ------------------------------------------------------------- setup
    def _check_embedding(self) -> None:
        s = self.collection.slot()
        emb = self._embedding
        if s.encodes:
            if emb is None:
                return
            if (isinstance(emb, RepspaceEmbeddings) and not emb.dimensions
                    and emb.model in (s.model, Path(s.model).name)):
                return  # same model: the collection encodes, the embedding is only reported
            raise InvalidInputError(f"collection {self.collection.name!r} encodes texts with {s.model!r}; open it "
                                    "without embedding= (its vectors would not be comparable with "
                                    f"{type(emb).__name__}'s)")
        if emb is None:
            raise InvalidInputError(f"collection {self.collection.name!r} holds vectors of an external model "
                                    f"({s.model!r}); pass the LangChain Embeddings that made them: "
                                    "RepspaceVectorStore(uri, embedding=...)")
        dim = _probe_dim(emb)
        if dim != s.dim:
            raise DimensionMismatchError(f"{type(emb).__name__} makes {dim}-d vectors; collection "
                                         f"{self.collection.name!r} holds {s.dim}-d vectors of {s.model!r}")

    @property
    def encodes(self) -> bool:
        """True when the collection encodes texts itself (a repspace model); False for bring-your-own vectors."""
        self.collection.reload()
        return self.collection.slot().encodes

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    def __repr__(self) -> str:
        return f"RepspaceVectorStore({str(self.collection.uri)!r}, active={self.collection.active!r})"

    # ------------------------------------------------------------ writes
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidInputError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise InvalidInputError(f"{len(ids)} ids for {len(texts)} texts")
        ids = [str(i) if i is not None and i != "" else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        if not texts:
            return []
        payloads = [dict(m) if m else {} for m in (metadatas or [None] * len(texts))]
        if self.encodes:
            self.collection.upsert(ids, texts=texts, payloads=payloads)
        else:
            vectors = np.asarray(self._embedding.embed_documents(texts), np.float32)
            self.collection.upsert(ids, texts=texts, vectors=vectors, payloads=payloads)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete items by id (missing ids are ignored); `ids=None` deletes every item."""
        if ids is None:
            ids = self.collection.ids()
        if ids:
            self.collection.delete(list(ids))
        return True

    # ------------------------------------------------------------- reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [Document(id=r["id"], page_content=r["text"] or "", metadata=r["payload"])
                for r in self.collection.get(list(ids))]

    def _documents(self, hits: list[dict[str, Any]]) -> list[tuple[Document, float]]:
        rows = {r["id"]: r for r in self.collection.get([h["id"] for h in hits])}
        out = []
        for h in hits:
            r = rows.get(h["id"])
            if r is None:  # deleted between the search and the read
                continue
            out.append((Document(id=r["id"], page_content=r["text"] or "", metadata=r["payload"]), float(h["score"])))
        return out

    def _query_vector(self, query: str) -> np.ndarray:
        if self.encodes:
            return self.collection.encode([query])[0]
        return np.asarray(self._embedding.embed_query(query), np.float32)

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """Documents nearest to `query` with the collection's score (higher is closer)."""
        if self.encodes:  # texts: during an upgrade the collection combines both models (fused)
            hits = self.collection.search(texts=[query], k=k, filter=filter)[0]
        else:
            hits = self.collection.search(vectors=[self._embedding.embed_query(query)], k=k, filter=filter)[0]
        return self._documents(hits)

    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_by_vector_with_score(self, embedding: list[float], k: int = 4,
                                               filter: dict[str, Any] | None = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        hits = self.collection.search(vectors=[embedding], k=k, filter=filter)[0]
        return self._documents(hits)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None,
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_by_vector_with_score(embedding, k, filter=filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: float(min(1.0, max(0.0, (1.0 + score) / 2.0)))

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: dict[str, Any] | None = None,
                                                **kwargs: Any) -> list[Document]:
        hits = self.collection.search(vectors=[embedding], k=max(k, fetch_k), filter=filter)[0]
        if not hits:
            return []
        rows = {r["id"]: r for r in self.collection.get([h["id"] for h in hits], vectors=True)}
        rows = [rows[h["id"]] for h in hits if h["id"] in rows and rows[h["id"]]["vector"] is not None]
        picked = maximal_marginal_relevance(np.asarray(embedding, np.float32),
                                            [r["vector"] for r in rows], lambda_mult=lambda_mult, k=k)
        return [Document(id=rows[j]["id"], page_content=rows[j]["text"] or "", metadata=rows[j]["payload"])
                for j in picked]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        """MMR over the active slot's vectors (during an upgrade: the old model's, the active one)."""
        return self.max_marginal_relevance_search_by_vector(self._query_vector(query).tolist(), k, fetch_k,
                                                            lambda_mult, filter=filter)

    # ------------------------------------------------------------ making
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None, metadatas: list[dict] | None = None,
                   *, ids: list[str] | None = None, uri: str | Path | None = None, model: str | None = None,
                   spec: str = "Flat", **kwargs: Any) -> "RepspaceVectorStore":
        """A store at `uri` (created when missing) holding `texts`: `embedding` or `model` as in the constructor."""
        if uri is None:
            raise InvalidInputError("RepspaceVectorStore.from_texts needs uri= (a directory or "
                                    "postgresql://…?collection=NAME)")
        store = cls(uri, embedding, model=model, spec=spec, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def close(self) -> None:
        self.collection.close()
