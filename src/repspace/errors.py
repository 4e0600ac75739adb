"""Exceptions raised for user errors. The CLI prints their message in one line and exits non-zero."""

from __future__ import annotations


class RepspaceError(Exception):
    """Base class for every error caused by input a user can fix.

    `param` (optional keyword) names the library argument at fault (e.g. "pairs"); library messages never
    name CLI flags, and a CLI command that maps that argument to a flag adds the flag to the message.
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        self.param = param


class SpaceFormatError(RepspaceError):
    """A space directory is missing, corrupt, truncated or foreign."""


class DimensionMismatchError(RepspaceError):
    """Vectors of different dimensions were combined."""


class InvalidVectorsError(RepspaceError):
    """Vectors contain NaN/inf, are empty, or have the wrong shape."""


class InvalidInputError(RepspaceError):
    """Input items (texts, images, ids, files) cannot be used."""


class NotFittedError(RepspaceError):
    """An estimator (translator, compressor, reducer) was used before `fit` or `load`.

    A programming error rather than bad user input, so deliberately *not* an InvalidInputError: code that
    catches InvalidInputError to report a user's mistake does not swallow it. It is still a RepspaceError,
    so the CLI prints it as one line."""


class UnknownNameError(RepspaceError):
    """An unknown model, dataset, view, split or method was named."""


class NotAvailableError(RepspaceError):
    """A built-in model or dataset is known but not installed on this machine."""


class OutputExistsError(RepspaceError):
    """The output path holds something else; refuse unless overwrite is asked for."""


class CollectionError(RepspaceError):
    """A collection operation cannot be done as asked (unknown slot, wrong state, conflicting upgrade)."""


class CollectionNotFoundError(UnknownNameError):
    """No collection exists at the given URI."""


class StoreUnavailableError(RepspaceError):
    """The vector store cannot be reached (database down, wrong password, unreadable directory)."""


class ConcurrentChangeError(CollectionError):
    """Another writer changed the collection's metadata between a read and a compare-and-set write."""


class EndpointError(RepspaceError):
    """A remote embedding endpoint (`openai:NAME@URL`) is down, refused the key, or answered wrongly."""


class ModelChangedError(CollectionError):
    """The model behind a name now makes other vectors than the ones recorded (its identity fingerprint changed)."""


class BackendCheckError(NotAvailableError):
    """An exported encoder backend (ONNX, OpenVINO, int8) failed its check against the torch output: refused."""
