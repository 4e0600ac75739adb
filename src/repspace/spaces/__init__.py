"""Embedding spaces: storage, validation and selection."""

from repspace.spaces.space import Space, read_manifest

__all__ = ["Space", "read_manifest"]
