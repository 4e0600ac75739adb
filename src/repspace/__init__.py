"""repspace: embedding spaces as long-lived assets.

    from repspace import Space, get_encoder, load_dataset, encode_items
    items = load_dataset("bbc-news:title")
    space = encode_items(get_encoder("minilm-l6"), items, out="spaces/minilm-title")

The names below are loaded on first use (PEP 562), so `import repspace` stays light and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Encoder": "repspace.encoders.base",
    "Items": "repspace.datasets.items",
    "MODELS": "repspace.encoders.registry",
    "RepspaceError": "repspace.errors",
    "Space": "repspace.spaces.space",
    "encode_items": "repspace.encoders.job",
    "get_encoder": "repspace.encoders.registry",
    "load_dataset": "repspace.datasets.builtin",
    "read_input": "repspace.datasets.files",
}

__all__ = ["Encoder", "Items", "MODELS", "RepspaceError", "Space", "encode_items", "get_encoder", "load_dataset",
           "read_input", "__version__"]  # = the keys of _EXPORTS (a test checks), plus the version

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from repspace.datasets.builtin import load_dataset
    from repspace.datasets.files import read_input
    from repspace.datasets.items import Items
    from repspace.encoders.base import Encoder
    from repspace.encoders.job import encode_items
    from repspace.encoders.registry import MODELS, get_encoder
    from repspace.errors import RepspaceError
    from repspace.spaces.space import Space


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'repspace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
