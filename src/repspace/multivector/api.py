"""MUVERA jobs: texts -> a space of FDEs (plus the token embeddings for re-ranking), and the retrieval evaluation
of FDE shortlists against exact MaxSim and mean pooling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from repspace._io import atomic_dir
from repspace.datasets.items import Items
from repspace.encoders.base import Encoder
from repspace.errors import InvalidInputError, OutputExistsError, SpaceFormatError
from repspace.evaluation.metrics import ranking_metrics
from repspace.multivector.embed import TokenEmbeddings, embed_tokens, token_model
from repspace.multivector.fde import FDEConfig, encode_documents, encode_queries
from repspace.multivector.maxsim import maxsim_scores, rerank
from repspace.multivector.tokens import TOKENS_FILE, TokenSet
from repspace.ops.search import topk
from repspace.spaces.space import Space, read_manifest

SIDES = ("query", "document")


def fde_config(dim: int, repetitions: int = 20, simhash: int = 5, proj: int | None = 16,
               final_dim: int | None = None, seed: int = 1) -> FDEConfig:
    """The FDE config of the CLI's options (documents always fill empty buckets; queries never do)."""
    return FDEConfig(dim=dim, num_repetitions=repetitions, num_simhash_projections=simhash, seed=seed,
                     projection_dimension=proj, fill_empty_partitions=True, final_projection_dimension=final_dim)


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise InvalidInputError(f"side must be one of {', '.join(SIDES)}; got {side!r}", param="side")


def encode_fde(tokens: TokenSet, config: FDEConfig, side: str) -> np.ndarray:
    _check_side(side)
    return encode_queries(tokens, config) if side == "query" else encode_documents(tokens, config)


def encode_muvera_space(encoder: Encoder, items: Items, out: str | Path, config: FDEConfig, side: str = "document",
                        batch_size: int = 32, overwrite: bool = False) -> Space:
    """Write `out`: a normal space of the items' FDEs (any index or collection takes it) with the items' token
    embeddings next to the vectors (`tokens.safetensors`, same row order) for exact MaxSim re-ranking."""
    _check_side(side)
    token_model(encoder)
    if items.modality != "text":
        raise InvalidInputError("MUVERA encodes texts; the input holds images", param="items")
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists; choose another output or pass overwrite=True", param="overwrite")
    if config.dim != encoder.dim:
        raise InvalidInputError(f"the FDE config is for {config.dim}-d tokens but {encoder.name!r} gives "
                                f"{encoder.dim}-d ones", param="config")
    emb = embed_tokens(encoder, list(items.data), batch_size=batch_size)
    vectors = encode_fde(emb.tokens, config, side)
    src = items.source
    space = Space(vectors, items.ids, items.labels, model=f"{encoder.name}+muvera", model_version=encoder.version,
                  dataset=src.get("dataset") or src.get("input"), view=src.get("view"), split=src.get("split"),
                  normalized=False, validate=False,
                  extra={"muvera": {**config.to_dict(), "side": side, "token_model": encoder.name,
                                    "tokens_file": TOKENS_FILE, "token_count": int(emb.tokens.offsets[-1])},
                         "modality": "text"})
    with atomic_dir(out) as tmp:
        space.save(tmp, overwrite=True)
        emb.tokens.save(tmp / TOKENS_FILE)
    return space


def load_muvera_space(path: str | Path) -> tuple[Space, TokenSet, FDEConfig, str]:
    """A space written by `encode_muvera_space`: (space, its token embeddings, its FDE config, its side)."""
    manifest = read_manifest(path)
    meta = (manifest.get("extra") or {}).get("muvera")
    if not isinstance(meta, dict):
        raise SpaceFormatError(f"{path} is a space but not a MUVERA one (no muvera entry in its manifest)")
    space = Space.load(path)
    tokens = TokenSet.load(Path(path) / meta.get("tokens_file", TOKENS_FILE))
    if len(tokens) != space.count:
        raise SpaceFormatError(f"{path}: {len(tokens)} token sets for {space.count} vectors; the space is corrupt")
    return space, tokens, FDEConfig.from_dict(meta), meta.get("side", "document")


def _ndcg(ranked_rows: np.ndarray, relevant_rows: np.ndarray, k: int) -> float:
    ranked = [[str(r) for r in row] for row in ranked_rows]
    return round(float(ranking_metrics(ranked, [str(r) for r in relevant_rows], k=k)[f"ndcg@{k}"].mean()), 4)


def evaluate_muvera(encoder: Encoder, queries: Items, corpus: Items, config: FDEConfig, k: int = 10,
                    shortlist: int = 100, batch_size: int = 32) -> dict[str, Any]:
    """Query texts against corpus texts (relevant = the corpus item with the query's id): how many of the exact
    MaxSim top k the FDE top `shortlist` holds, and nDCG@k of exact MaxSim, FDE alone, FDE + MaxSim re-ranking
    and the model's mean pooling."""
    if not 1 <= k <= shortlist:
        raise InvalidInputError(f"k must be in 1..shortlist ({shortlist}), got {k}", param="k")
    if shortlist > len(corpus):
        raise InvalidInputError(f"shortlist {shortlist} is more than the {len(corpus)} corpus items", param="shortlist")
    if config.dim != encoder.dim:
        raise InvalidInputError(f"the FDE config is for {config.dim}-d tokens but {encoder.name!r} gives "
                                f"{encoder.dim}-d ones", param="config")
    where = {i: r for r, i in enumerate(corpus.ids)}
    keep = [j for j, i in enumerate(queries.ids) if i in where]
    if not keep:
        raise InvalidInputError("no query id is a corpus id; relevance is by shared id", param="queries")
    queries = queries.subset(keep) if len(keep) < len(queries) else queries
    relevant = np.asarray([where[i] for i in queries.ids])
    t0 = time.perf_counter()
    q_emb = embed_tokens(encoder, list(queries.data), batch_size)
    d_emb = embed_tokens(encoder, list(corpus.data), batch_size)
    out = evaluate_embeddings(q_emb, d_emb, relevant, config, k, shortlist)
    out["seconds"] = {"token_embeddings": round(time.perf_counter() - t0 - sum(out["seconds"].values()), 2),
                      **out["seconds"]}
    return out


def exact_top(q: TokenEmbeddings, d: TokenEmbeddings, k: int) -> np.ndarray:
    """(nq, k) corpus rows of the exact MaxSim top k."""
    return np.argsort(-maxsim_scores(q.tokens, d.tokens), axis=1, kind="stable")[:, :k]


def evaluate_embeddings(q: TokenEmbeddings, d: TokenEmbeddings, relevant: np.ndarray, config: FDEConfig,
                        k: int = 10, shortlist: int = 100, exact: np.ndarray | None = None) -> dict[str, Any]:
    """`evaluate_muvera` on token embeddings already computed; `exact`: the exact MaxSim top k if known."""
    t0 = time.perf_counter()
    exact = exact_top(q, d, k) if exact is None else exact
    t1 = time.perf_counter()
    q_fde, d_fde = encode_queries(q.tokens, config), encode_documents(d.tokens, config)
    t2 = time.perf_counter()
    _, fde_rows = topk(q_fde, d_fde, shortlist)
    t3 = time.perf_counter()
    _, reranked = rerank(q.tokens, d.tokens, fde_rows, k)
    t4 = time.perf_counter()
    _, pooled_top = topk(q.pooled, d.pooled, k)
    recall = np.mean([len(set(e) & set(s)) / k for e, s in zip(exact.tolist(), fde_rows.tolist())])
    return {
        "queries": len(q.tokens), "corpus": len(d.tokens), "k": k, "shortlist": shortlist,
        "fde_dim": config.output_dim, "token_dim": config.dim, "config": config.to_dict(),
        "tokens_per_item": {"queries": round(float(q.tokens.lengths.mean()), 1),
                            "corpus": round(float(d.tokens.lengths.mean()), 1)},
        f"shortlist_recall@{shortlist}_of_maxsim_top{k}": round(float(recall), 4),
        f"ndcg@{k}": {"maxsim": _ndcg(exact, relevant, k), "fde_rerank": _ndcg(reranked, relevant, k),
                      "fde": _ndcg(fde_rows[:, :k], relevant, k), "mean_pooling": _ndcg(pooled_top, relevant, k)},
        "seconds": {"exact_maxsim_all": round(t1 - t0, 2), "fde_encode": round(t2 - t1, 2),
                    "fde_search": round(t3 - t2, 2), "rerank": round(t4 - t3, 2)},
    }
