"""`IndexSpec`: the base of every index kind (one small frozen class per kind, in its own module).

A kind is the parsed form of a spec string (`HNSW32`, `funnel:64/256`, ...). It knows its grammar,
how to turn corpus and query vectors into what it searches (`encode`), how to build, search and size
its structure, and which files of its own it saves beside the index's space (`save` / `load`).
`repspace.index.Index` holds the space, the adaptor and the built structure, and delegates to its kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from repspace.errors import InvalidInputError, SpaceFormatError
from repspace.ops.search import _faiss, inner_products_by_idx, normalize_rows, topk_rows

MAX_OPTION = 1_000_000  # a search option past this is a typo (faiss takes a C int; no index probes or walks more)
OPTION_MAX = {"refine": 1000}  # tighter caps: k × refine rows re-ranked, past 1,000 a full scan by another name

Built = tuple[Any, Any]  # (base: what is searched, e.g. normalised vectors; state: the kind's structure)


_BY_NAME: dict[str, type] = {}  # every kind class defined, by name (`KINDS` in kinds/__init__.py orders them)


class _ByKind(type):
    """`IndexSpec("funnel", stages=(64, 768))` constructs the kind named "funnel"."""

    def __call__(cls, *args: Any, **kw: Any) -> Any:
        if cls is IndexSpec:
            kind = kw.pop("kind") if "kind" in kw else args[0]
            if kind not in _BY_NAME:
                raise InvalidInputError(f"unknown index kind {kind!r}; kinds: {', '.join(_BY_NAME)}")
            return _BY_NAME[kind](*args[1:], **kw)
        return super().__call__(*args, **kw)


class IndexSpec(metaclass=_ByKind):
    """One index kind with its parameters. Subclasses are frozen dataclasses registered in `KINDS`."""

    name: ClassVar[str]  # the kind's name (`spec.kind`), its key in KINDS
    pattern: ClassVar[str]  # the spec grammar, matched in full, case-insensitively
    usage: ClassVar[str]  # grammar shown in help texts, e.g. "int8[+rescore:R]"
    examples: ClassVar[str]  # examples named when a spec does not parse
    has_faiss_index: ClassVar[bool] = False  # saves a faiss index (faiss.index.npy; index.json's has_faiss_index)
    static_only: ClassVar[bool] = False  # only for static indexes (live collections refuse it)

    def __init_subclass__(cls, name: str | None = None, pattern: str | None = None, usage: str | None = None,
                          examples: str | None = None, **kw: Any) -> None:
        """A kind names itself in its class line: `class Flat(IndexSpec, name="flat", pattern=..., usage=..., examples=...)`."""
        super().__init_subclass__(**kw)
        for key, value in (("name", name), ("pattern", pattern), ("usage", usage), ("examples", examples)):
            if value is not None:
                setattr(cls, key, value)
        if name is not None:
            _BY_NAME[name] = cls

    @property
    def kind(self) -> str:
        return self.name

    @classmethod
    def from_match(cls, m: re.Match[str], text: str) -> IndexSpec:
        """The spec for a full match of `pattern` on `text` (the parameters checked)."""
        return cls()

    # ------------------------------------------------------------ search options (`+nprobe:64+refine:4`, `+ef:400`)
    options: ClassVar[tuple[str, ...]] = ()  # the search options a spec string may end with, in printing order
    option_fields: ClassVar[Mapping[str, str]] = {}  # an option's dataclass field where the names differ

    @classmethod
    def parse_options(cls, text: str, spec: str) -> dict[str, int]:
        """`+nprobe:64+refine:4` -> {"probe": 64, "refine": 4}; an option twice, unknown to the kind, or < 1 is refused."""
        out: dict[str, int] = {}
        for key, value in re.findall(r"\+(\w+):(\d+)", text):
            key = key.lower()
            field = cls.option_fields.get(key, key)
            if key not in cls.options or field in out:
                raise InvalidInputError(f"{spec!r}: option {key!r} " + ("given twice" if field in out else
                                        f"is not one of this kind's ({', '.join(cls.options)})"), param="spec")
            top = OPTION_MAX.get(key, MAX_OPTION)
            if not 1 <= int(value) <= top:
                raise InvalidInputError(f"{spec!r}: {key} must be >= 1 and <= {top:,}", param="spec")
            out[field] = int(value)
        return out

    def with_options(self, options: Mapping[str, int]) -> IndexSpec:
        """The same index searched with other search options (`{"nprobe": 256, "refine": 200}`); nothing rebuilt;
        checked like the options of a spec string."""
        if not options:
            return self
        if not self.options:
            raise InvalidInputError(f"spec {self} has no search options to set (got {', '.join(options)})",
                                    param="options")
        if any(not isinstance(v, int) or isinstance(v, bool) for v in options.values()):
            raise InvalidInputError(f"search options must be integers, got {dict(options)}", param="options")
        text = "".join(f"+{k}:{v}" for k, v in options.items())
        try:
            return replace(self, **self.parse_options(text, f"{self}{text}"))
        except InvalidInputError as e:
            raise InvalidInputError(str(e), param="options") from None

    def _options_str(self) -> str:
        """The options that differ from their defaults, in the kind's order (`+nprobe:64+refine:4`)."""
        fields = type(self).__dataclass_fields__
        named = [(key, self.option_fields.get(key, key)) for key in self.options]
        return "".join(f"+{key}:{getattr(self, f)}" for key, f in named if getattr(self, f) != fields[f].default)

    def for_candidates(self) -> IndexSpec:
        """The spec a fused upgrade search gathers each slot's candidates with (their union is then scored exactly
        from the stored vectors, `collections/upgrade/scorer.py`): the spec itself unless a kind's own re-rank is
        wasted there."""
        return self

    # ------------------------------------------------------------ vectors
    def check_adaptor(self, adaptor: Any) -> None:
        """Refuse an adaptor this kind cannot search through (dense kinds: sparse-code adaptors)."""
        if adaptor is not None and hasattr(adaptor, "encode_sparse"):
            raise InvalidInputError("a csr adaptor makes sparse codes: build its index with spec 'sparse'", param="spec")

    def check_dim(self, dim: int) -> None:
        """Refuse an indexed dimension the spec cannot serve."""

    def encode(self, x: np.ndarray, adaptor: Any, adaptor_dim: int | None) -> Any:
        """Corpus or query vectors of the index's model -> what this kind searches (unit rows)."""
        return normalize_rows(x if adaptor is None else adaptor.transform(x, adaptor_dim))

    # ------------------------------------------------------------ structure
    def build(self, base: Any) -> Any:
        """The searchable structure over `base` (n, dim); None when search reads `base` directly."""
        return None

    def search(self, state: Any, base: Any, q: Any, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        """Encoded queries (nq, dim) -> scores (nq, k) float32 and rows (nq, k) int64 (-1 = none); k <= n."""
        raise NotImplementedError

    def first_stage_bytes(self, n: int, dim: int) -> int:
        """Bytes of the structure searched first, for n rows of `dim`."""
        raise NotImplementedError

    def memory_bytes(self, base: Any) -> dict[str, int]:
        """Bytes of the first-stage structure searched, and of the float vectors kept for rescoring."""
        n, d = base.shape
        return {"first_stage": int(self.first_stage_bytes(n, d)), "float_vectors": n * d * 4}

    # ------------------------------------------------------------ storage
    def save(self, state: Any, base: Any, path: Path) -> None:
        """Write this kind's own files into the index directory `path` (the space is saved beside them)."""

    def load(self, path: Path, n: int, dim: int, encode: Callable[[], Any]) -> Built:
        """(base, state) for a saved index of n rows searched at `dim`; `encode()` recomputes base from the space."""
        base = encode()
        return base, self.build(base)


class FaissFactoryKind(IndexSpec):
    """A kind that is one `faiss.index_factory` string over inner product, saved as faiss.index.npy."""

    has_faiss_index: ClassVar[bool] = True

    def factory(self) -> str:
        """The faiss factory string, e.g. "HNSW32,Flat"."""
        raise NotImplementedError

    def build(self, base: np.ndarray) -> Any:
        faiss = _faiss()
        idx = faiss.index_factory(base.shape[1], self.factory(), faiss.METRIC_INNER_PRODUCT)
        self.configure(idx)
        idx.train(base)
        idx.add(base)
        return idx

    def configure(self, idx: Any) -> None:
        """Set build-time parameters on a fresh faiss index (before train/add)."""

    def save(self, state: Any, base: Any, path: Path) -> None:
        np.save(path / "faiss.index.npy", _faiss().serialize_index(state), allow_pickle=False)

    def load(self, path: Path, n: int, dim: int, encode: Callable[[], Any]) -> Built:
        try:
            raw = np.load(path / "faiss.index.npy", allow_pickle=False)
            idx = _faiss().deserialize_index(raw)
        except Exception as e:
            raise SpaceFormatError(f"{path}/faiss.index.npy is corrupt or missing: {e}") from None
        if idx.ntotal != n or idx.d != dim:
            raise SpaceFormatError(f"{path}: faiss index holds {idx.ntotal} x {idx.d}, vectors {n} x {dim}")
        return encode(), idx


def rescore(q: np.ndarray, base: np.ndarray, cand: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate rows (nq, K) by exact inner product of q (nq, d) with base rows; keep the top `keep`
    (gathered in faiss's C++: `ops.search.inner_products_by_idx`); candidates < 0 (none) score -inf."""
    scores = inner_products_by_idx(q, base, cand)
    top, pos = topk_rows(scores, keep)
    return top, np.take_along_axis(cand, pos, 1).astype(np.int64)
