"""Where prepared models live: $REPSPACE_HOME (default: the user's cache dir / repspace)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from repspace._io import file_sha256, write_json


def repspace_home() -> Path:
    env = os.environ.get("REPSPACE_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "repspace"


def model_cache_dir(name: str) -> Path:
    return repspace_home() / "models" / name


def weights_fingerprint(path: Path) -> str:
    """sha256 of a weights file, cached by (path, size, mtime) so it is computed once."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    store = repspace_home() / "fingerprints.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = file_sha256(path)[:16]
        try:
            write_json(store, known)
        except OSError:
            pass  # read-only cache: still works, just recomputes next time
    return known[key]


def find_package_dir(name: str) -> Path | None:
    """A data directory installed into site-packages under a non-importable name (e.g. with dashes)."""
    for entry in map(Path, sys.path):
        cand = entry / name
        if cand.is_dir():
            return cand
    return None
