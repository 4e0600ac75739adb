"""Items to encode: built-in offline datasets and user files."""

from repspace.datasets.builtin import DATASETS, hash_split, load_dataset, split_ids, parse_dataset_spec
from repspace.datasets.files import read_input
from repspace.datasets.items import Items

__all__ = ["DATASETS", "Items", "hash_split", "load_dataset", "parse_dataset_spec", "read_input", "split_ids"]
