"""repspace: embedding spaces as long-lived assets.

    from repspace import Space, get_encoder, load_dataset, encode_items
    items = load_dataset("bbc-news:title")
    space = encode_items(get_encoder("minilm-l6"), items, out="spaces/minilm-title")
"""

from repspace.datasets import Items, load_dataset, read_input
from repspace.encoders import MODELS, Encoder, get_encoder
from repspace.encoders.job import encode_items
from repspace.errors import RepspaceError
from repspace.spaces import Space

__version__ = "0.1.0"

__all__ = ["Encoder", "Items", "MODELS", "RepspaceError", "Space", "encode_items", "get_encoder",
           "load_dataset", "read_input", "__version__"]
