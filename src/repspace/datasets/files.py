"""User input files: .txt, .jsonl, .csv, .parquet, and image folders (sub-folders are labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repspace._io import json_objects
from repspace.datasets.items import Items
from repspace.errors import InvalidInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InvalidInputError(
            f"{path} is not valid UTF-8 (byte {e.start}, line {line}); re-encode it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _check_texts(texts: list[str], path: Path) -> None:
    empty = [k for k, t in enumerate(texts) if not t.strip()]
    if empty:
        raise InvalidInputError(f"{path}: {len(empty)} empty text(s), first at row {empty[0] + 1}; drop or fill them")


def _read_txt(path: Path) -> Items:
    lines = _read_utf8(path).splitlines()
    rows = [(str(k + 1), line.strip()) for k, line in enumerate(lines) if line.strip()]
    return Items([r[0] for r in rows], [r[1] for r in rows], "text", None, {"input": str(path)})


def _read_jsonl(path: Path, text_column: str, id_column: str, label_column: str) -> Items:
    ids, texts, labels = [], [], []
    for n, obj in json_objects(path, _read_utf8(path).splitlines(), text_column, " (set text_column)",
                                param="text_column"):
        if not isinstance(obj[text_column], str):
            raise InvalidInputError(f"{path}: line {n}: {text_column!r} must be a string")
        ids.append(str(obj.get(id_column, n)))
        texts.append(obj[text_column])
        labels.append(obj.get(label_column))
    _check_texts(texts, path)
    has_labels = any(l is not None for l in labels)
    return Items(ids, texts, "text", np.asarray([str(l) for l in labels]) if has_labels else None, {"input": str(path)})


def _read_table(path: Path, text_column: str, id_column: str, label_column: str) -> Items:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".csv":
            _read_utf8(path)  # clear error for non-UTF-8 before arrow's
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
        else:
            table = pq.read_table(path)
    except InvalidInputError:
        raise
    except Exception as e:
        raise InvalidInputError(f"cannot read {path}: {e}") from None
    cols = table.column_names
    if text_column not in cols:
        raise InvalidInputError(f"{path} has no text column {text_column!r}; columns: {', '.join(cols)} (set text_column)",
                                param="text_column")
    texts = table.column(text_column).to_pylist()
    if any(t is None for t in texts):
        raise InvalidInputError(f"{path}: column {text_column!r} has missing values")
    texts = [str(t) for t in texts]
    _check_texts(texts, path)
    ids = [str(i) for i in table.column(id_column).to_pylist()] if id_column in cols else [str(k + 1) for k in range(len(texts))]
    labels = np.asarray([str(l) for l in table.column(label_column).to_pylist()]) if label_column in cols else None
    return Items(ids, texts, "text", labels, {"input": str(path)})


def _read_image_folder(path: Path) -> Items:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InvalidInputError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ids = [p.relative_to(path).with_suffix("").as_posix() for p in files]
    labels = [p.parent.relative_to(path).as_posix() for p in files]
    has_labels = any(l != "." for l in labels)
    return Items(ids, [str(p) for p in files], "image", np.asarray(labels) if has_labels else None, {"input": str(path)})


def read_input(path: str | Path, text_column: str = "text", id_column: str = "id", label_column: str = "label") -> Items:
    """Read items from a user file or image folder (format chosen by suffix)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input {path} does not exist")
    if path.is_dir():
        return _read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _read_txt(path)
    if suffix == ".jsonl":
        return _read_jsonl(path, text_column, id_column, label_column)
    if suffix in (".csv", ".parquet"):
        return _read_table(path, text_column, id_column, label_column)
    raise InvalidInputError(f"unsupported input {path.name!r}: use .txt, .jsonl, .csv, .parquet or an image folder")
