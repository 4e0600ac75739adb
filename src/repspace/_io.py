"""Atomic file and directory writes, and content checksums."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so that a rename inside it survives a crash."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator[Any]:
    """Write `path` through a temporary sibling, renamed over it only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    with atomic_file(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Atomically write one array as .npy (no pickle)."""
    with atomic_file(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` as a whole on success.

    The old directory (if any) is renamed aside first and deleted only after the new
    one is in place, so a crash leaves either the old or the new content, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.iterdir():
            if child.is_file():
                with open(child, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def checksum_arrays(vectors: np.ndarray, ids: list[str], chunk_rows: int = 65536) -> str:
    """sha256 over the vectors' bytes (row chunks, so memory maps stay cheap) and the ids."""
    h = hashlib.sha256()
    h.update(f"{vectors.shape}|{vectors.dtype.str}|".encode())
    for start in range(0, vectors.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(vectors[start : start + chunk_rows]).tobytes())
    for i in ids:
        h.update(i.encode("utf-8"))
        h.update(b"\x00")
    return "sha256:" + h.hexdigest()


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def read_meta(path: str | Path, filename: str, fmt: str, what: str) -> dict[str, Any]:
    """Read `path/filename` as a JSON object tagged {"format": fmt}; SpaceFormatError otherwise."""
    from repspace.errors import SpaceFormatError

    path = Path(path)
    meta_path = path / filename
    if not meta_path.is_file():
        raise SpaceFormatError(f"{path} is not a repspace {what} ({filename} is missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SpaceFormatError(f"{meta_path} is corrupt: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise SpaceFormatError(f"{path} is not a repspace {what} (format {found!r})")
    return meta


def save_estimator(path: str | Path, filename: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write an estimator directory: `filename` (JSON meta) + state.safetensors (arrays)."""
    from safetensors.numpy import save_file

    path = Path(path)
    with atomic_dir(path) as tmp:
        (tmp / filename).write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n")
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / "state.safetensors"))
    return path


def load_estimator(path: str | Path, filename: str, fmt: str, what: str,
                   keys: tuple[str, ...] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what `save_estimator` wrote; clear SpaceFormatError for missing, foreign or corrupt parts."""
    from safetensors.numpy import load_file

    from repspace.errors import SpaceFormatError

    meta = read_meta(path, filename, fmt, what)
    try:
        arrays = load_file(str(Path(path) / "state.safetensors"))
    except Exception as e:
        raise SpaceFormatError(f"{path}/state.safetensors is corrupt or missing: {e}") from None
    missing = [k for k in (keys or ()) if k not in arrays]
    if missing:
        raise SpaceFormatError(f"{path} lacks the array {missing[0]!r}; the {what} is corrupt")
    return meta, arrays


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def json_objects(path: Path, lines, field: str, hint: str = "", param: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a .jsonl file (`lines`: its lines, a list or an open
    file); one readable error for a line that is not JSON or is not an object with `field` (that error names
    `param`, the caller's argument that chose `field`)."""
    from repspace.errors import InvalidInputError

    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InvalidInputError(f"{path}: line {n} is not valid JSON ({e})") from None
        if not isinstance(obj, dict) or field not in obj:
            raise InvalidInputError(f"{path}: line {n} has no {field!r} field{hint}", param=param)
        yield n, obj
