"""Real offline encoders behind one registry."""

from repspace.encoders.base import Encoder
from repspace.encoders.registry import MODELS, get_encoder

__all__ = ["Encoder", "MODELS", "get_encoder"]
