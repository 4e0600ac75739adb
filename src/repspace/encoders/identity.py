"""A model's identity when repspace cannot hash its weights: name + dimension + a fingerprint of its vector for a
fixed probe text.

Remote endpoints (`openai:NAME@URL`) and registered callables are black boxes: the server behind a URL can be
redeployed with another model under the same name. Their `version` is `probe-sha256:<16 hex>:<dim>d`, the sha256 of
the probe text's L2-normalised vector rounded to `DECIMALS` decimals. Spaces and collection slots record `version`
as `model_version`; encoding into them again re-probes, and a different fingerprint is refused
(`ModelChangedError`, or the collection's version check), with both fingerprints in the message.

Why one decimal: any other model (another checkpoint, another family) moves most coordinates by more than 0.05, so
the pattern changes for sure; numerical noise of the same model (other batch shapes on the server, 1e-7) almost
never crosses a rounding boundary (expected flips ≈ 7,000 × noise for 384-d vectors). GPU servers whose kernels are
not deterministic at 1e-4 can still flip one coordinate now and then; then the check refuses a model that did not
change, which is the safe side.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from repspace.errors import InvalidVectorsError, ModelChangedError

PROBE_TEXT = "repspace identity probe: a fixed sentence whose vector fingerprints the model that embeds it."
DECIMALS = 1
PREFIX = "probe-sha256:"


def fingerprint(vector: Any) -> str:
    """sha256 (16 hex digits) of the L2-normalised `vector` rounded to `DECIMALS` decimals (as int16 steps)."""
    v = np.asarray(vector, np.float64).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise InvalidVectorsError("the identity probe's vector is empty or holds NaN/inf")
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    steps = np.rint(v * 10**DECIMALS).astype("<i2")  # integers: no -0.0 / 0.0 ambiguity
    return hashlib.sha256(steps.tobytes()).hexdigest()[:16]


def probe_version(vector: Any) -> str:
    """The `version` string of a probed model: fingerprint and dimension."""
    v = np.asarray(vector).ravel()
    return f"{PREFIX}{fingerprint(v)}:{v.size}d"


def is_probe_version(version: str | None) -> bool:
    return bool(version) and str(version).startswith(PREFIX)


def check_same_model(model: str, recorded: str | None, current: str, where: str) -> None:
    """Refuse to add vectors of `model` at `current` identity to `where`, which holds vectors made at `recorded`."""
    if recorded and is_probe_version(current) and recorded != current:
        raise ModelChangedError(
            f"model {model!r} changed: {where} holds vectors made by fingerprint {recorded}, the model now answers "
            f"with fingerprint {current}; its new vectors would not be comparable (re-encode into a new output, or "
            "start an upgrade to the new model)", param="model")
