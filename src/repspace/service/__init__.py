"""`repspace serve`: OpenAI-compatible embeddings (with `dimensions` for every model) over HTTP.

Library part (no web framework needed): `EmbeddingModel`, `format_embeddings`, `DynamicBatcher`.
Web part: `create_app(ServeConfig(...))` (FastAPI) and `serve(config)` (uvicorn).
"""

from repspace.service.batching import DynamicBatcher, QueueFullError
from repspace.service.config import Limits, ServeConfig
from repspace.service.embeddings import ENCODING_FORMATS, EmbeddingModel, EmbeddingResult, format_embeddings

__all__ = ["DynamicBatcher", "ENCODING_FORMATS", "EmbeddingModel", "EmbeddingResult", "Limits", "QueueFullError",
           "ServeConfig", "create_app", "format_embeddings", "serve"]


def __getattr__(name: str):
    if name in ("create_app", "serve"):
        from repspace.service import app

        return getattr(app, name)
    raise AttributeError(name)
