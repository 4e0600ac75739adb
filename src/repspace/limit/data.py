"""LIMIT-style data (Weller et al., 2025, §5.2): people who like things, where every pair of a few documents is
the relevant set of some query.

Documents are "Jon Durben likes A, B, ... and Z."; queries are "Who likes A?". The qrel pattern is the paper's
*dense* one: the n_rel documents with C(n_rel, 2) >= queries (46 for 1,000 queries) are relevant in pairs, one
query per pair (the first `queries` pairs of a seeded shuffle), and each query's attribute is written into both of
its documents. Every document is then filled with further attributes, drawn from attributes no query asks for,
until all documents have as many as the most loaded relevant one (n_rel - 1 = 45 for 1,000 queries). The other
`docs - n_rel` documents are relevant to no query (the paper's full LIMIT has 50k documents; its "small" version
only the 46).

Attributes: the paper asked an LLM for 1,850 likeable things. Offline, the default list is nouns of the GNU
dictionary (dataset `gcide`, Debian dict-gcide) ranked by how often their headword occurs in the dictionary's own
definitions, skipping the most frequent; pass `attributes` (e.g. lines of a file) to use another list.

    data = limit_data(docs=1000, queries=1000, seed=0)
    data.doc_texts[0], data.query_texts[0], data.qrels[data.query_ids[0]]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Sequence

import numpy as np

from repspace.errors import InvalidInputError

FIRST = ("Ada Alan Alice Amir Anna Ben Bianca Carlos Chen Chloe Dan Dara Elena Emma Eric Farah Felix Grace Hana Hugo "
         "Ines Ivan Jon Julia Kai Kemal Lara Leo Lina Lucas Maya Mei Nadia Noah Olga Omar Paula Pedro Quinn Rafael "
         "Rosa Sam Sara Tariq Tom Una Vera Victor Wen Yara Yusuf Zoe").split()
LAST = ("Abbott Bauer Becker Brandt Castillo Chandra Cohen Dalton Dubois Durben Eriksen Fischer Garza Gupta Hale "
        "Hansen Ibarra Ito Jansen Kaur Keller Kowalski Lam Larsen Moreau Murphy Nakamura Novak Okafor Olsen Park "
        "Petrov Quintero Rossi Sato Schmidt Silva Singh Tanaka Torres Ueda Varga Vogel Walsh Weber Xu Yilmaz Young "
        "Zhang Ziegler").split()
_STOP = {"likes", "like", "who", "and", "the"}


@dataclass(frozen=True)
class LimitData:
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, float]]
    relevant_docs: int
    attributes_per_doc: int


@lru_cache(maxsize=4)
def dictionary_attributes(skip: int = 500, count: int = 6000) -> tuple[str, ...]:
    """Single-word nouns of the GNU dictionary (first entry a noun), most frequent in its definitions first,
    after skipping the `skip` most frequent (generic words); NotAvailableError without dict-gcide."""
    from repspace.datasets import gcide

    entries = gcide.entries()
    freq: Counter[str] = Counter()
    for _, _, definition in entries:
        freq.update(re.findall(r"[a-z]+", definition.lower()))
    nouns: dict[str, int] = {}
    seen: set[str] = set()
    for _, head, definition in entries:
        word = head.lower()
        if word in seen:
            continue
        seen.add(word)
        if head.isalpha() and head[1:] == head[1:].lower() and 4 <= len(head) <= 12 and definition.startswith("n.") \
                and word not in _STOP:
            nouns[word] = freq[word]
    ranked = sorted(nouns, key=lambda w: (-nouns[w], w))
    return tuple(ranked[skip : skip + count])


def relevant_count(queries: int, k: int = 2) -> int:
    """The smallest n with C(n, k) >= queries (46 for 1,000 queries and k = 2)."""
    n = k
    while math.comb(n, k) < queries:
        n += 1
    return n


def limit_data(docs: int = 1000, queries: int = 1000, attributes: Sequence[str] | None = None,
               seed: int = 0) -> LimitData:
    """The dense LIMIT pattern for k = 2 at `docs` documents and `queries` queries (see the module docstring)."""
    for name, value, low in (("docs", docs, 3), ("queries", queries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}; got {value!r}", param=name)
    n_rel = relevant_count(queries)
    if n_rel > docs:
        raise InvalidInputError(f"{queries} queries need {n_rel} relevant documents (every pair a query's relevant "
                                f"set); docs is {docs}", param="docs")
    vocab = list(dict.fromkeys(a.strip() for a in (attributes if attributes is not None else dictionary_attributes())
                               if a and a.strip()))
    per_doc = n_rel - 1
    need = queries + per_doc + 1
    if len(vocab) < need:
        raise InvalidInputError(f"{queries} queries need at least {need} distinct attributes; got {len(vocab)}",
                                param="attributes")
    rng = np.random.default_rng(seed)
    vocab = [vocab[i] for i in rng.permutation(len(vocab))]
    asked, filler = vocab[:queries], vocab[queries:]
    pairs = list(combinations(range(n_rel), 2))
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:queries]]
    liked: list[list[str]] = [[] for _ in range(docs)]
    for attr, (a, b) in zip(asked, pairs):
        liked[a].append(attr)
        liked[b].append(attr)
    per_doc = max(len(x) for x in liked)
    for x in liked:
        have = set(x)
        extra = [filler[i] for i in rng.permutation(len(filler)) if filler[i] not in have][: per_doc - len(x)]
        x.extend(extra)
        rng.shuffle(x)
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    if docs > len(names):
        names = [f"{n} {i // len(names) + 1}" if i >= len(names) else n for i, n in enumerate(names * (docs // len(names) + 1))]
    order = rng.permutation(len(names))[:docs]
    place = rng.permutation(docs)  # document j of the pattern is doc_ids[place[j]]: relevant ones anywhere
    texts = [f"{names[order[j]]} likes {', '.join(x[:-1])} and {x[-1]}." if len(x) > 1 else
             f"{names[order[j]]} likes {x[0]}." for j, x in enumerate(liked)]
    doc_ids = [f"d{i:05d}" for i in range(docs)]
    doc_texts = [""] * docs
    for j, text in enumerate(texts):
        doc_texts[place[j]] = text
    query_ids = [f"q{i:05d}" for i in range(queries)]
    query_texts = [f"Who likes {a}?" for a in asked]
    qrels = {q: {doc_ids[place[a]]: 1.0, doc_ids[place[b]]: 1.0} for q, (a, b) in zip(query_ids, pairs)}
    return LimitData(doc_ids, doc_texts, query_ids, query_texts, qrels, n_rel, per_doc)
