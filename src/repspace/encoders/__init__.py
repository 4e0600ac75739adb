"""Real offline encoders behind one registry; remote models (`openai:NAME@URL`) and registered callables."""

from repspace.encoders.base import Encoder
from repspace.encoders.registry import MODELS, get_encoder, is_model, register_encoder

__all__ = ["Encoder", "MODELS", "get_encoder", "is_model", "register_encoder"]
