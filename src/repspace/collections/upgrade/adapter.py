"""The upgrade's adapter (new -> old), kept as a blob of the collection (a zip of the saved translator)."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from repspace.errors import CollectionError

ADAPTER_BLOB = "upgrade-adapter.zip"


def save_adapter(coll, adapter) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        adapter.save(Path(tmp) / "a")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted((Path(tmp) / "a").iterdir()):
                z.write(f, f.name)
        coll.store.put_blob(ADAPTER_BLOB, buf.getvalue())


def load_adapter(coll, up=None):
    """The open upgrade's adapter (of `up`, default the collection's), read once per upgrade (keyed by its start time)
    and kept on the collection."""
    up = up or coll.meta.open_upgrade()
    return coll.memo("adapter", up.started, lambda: _read(coll))


def _read(coll):
    from repspace.alignment import load_translator

    data = coll.store.get_blob(ADAPTER_BLOB)
    if data is None:
        raise CollectionError(f"the upgrade of {coll.name!r} has lost its adapter; roll it back and start again")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                if "/" in name or name.startswith("."):
                    raise CollectionError("the stored adapter archive is not repspace's")
                (Path(tmp) / name).write_bytes(z.read(name))
        return load_translator(tmp)
