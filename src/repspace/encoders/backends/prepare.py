"""Exports on first use, cached and checked.

An export lives in `$REPSPACE_HOME/models/exports/<model>-<backend>-<key>/`, where `key` hashes the model's weights
fingerprint, the backend and the code of its export recipe, the versions of the libraries that made it, the CPU flags that matter (another machine
kind exports again instead of running a build made for other kernels) and, for calibrated backends, the
calibration texts. The directory is written atomically (`_io.atomic_dir`) with `export.json`: the key, the
tokenizer settings, the backend's choices, the check's numbers and a sha256 of every file, verified on each load
(a corrupt file: exported again).

After export the artefact's vectors are compared with the torch backend's on `PROBES`; a mean cosine below the
backend's bound refuses the backend (`BackendCheckError`, with the measured numbers) and removes the artefact.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repspace._io import atomic_dir, file_sha256, write_json
from repspace.encoders.backends.base import Backend, ExportContext, relevant_flags
from repspace.errors import BackendCheckError, NotAvailableError

FORMAT = 1
MANIFEST = "export.json"
CALIBRATION_MAX = 64

PROBES = [
    "hello world",
    "Stocks fell sharply on Monday after the central bank raised interest rates.",
    "How do I reset my password?",
    "The film won three awards, including best actor, at the festival in Venice.",
    "A new vaccine trial shows promising results in early-stage patients.",
    "Qu'est-ce que c'est ? 東京 2020 — numbers 3.14159 and e-mail a.b@c.org",
    ("The committee said the proposals, which would change how schools are funded across the country, needed "
     "more work before they could be put to a vote. ") * 14,  # beyond the usual 256-token limit: truncation
    "Bank holiday traffic",
]

CALIBRATION = PROBES + [
    "Government announces plans to cut emissions by half within a decade.",
    "The striker scored twice as the home side came from behind to win.",
    "Chip maker reports record profits on strong demand for data centre processors.",
    "Parliament debates the new immigration bill late into the night.",
    "Band's comeback album tops the charts in its first week.",
    "Researchers find a link between sleep and memory in a study of 2,000 adults.",
    "best pizza near me",
    "what is the capital of australia",
    "Oil prices rose on fears of supply disruption in the Middle East, while gold hit a six-month high.",
    "The mobile phone operator said it would invest in faster networks in rural areas over the next five years, "
    "after regulators criticised gaps in coverage.",
    "Tennis star withdraws from the open with a wrist injury.",
    "Court rules that the company must pay compensation to former employees.",
] + [("Shares in the airline fell after it warned that higher fuel costs and weaker demand would hit profits, "
      "and analysts said further cuts to routes were likely. ") * k for k in (2, 4, 8)]


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:60] or "model"


def calibration_sample(texts: Sequence[str] | None) -> tuple[list[str], str]:
    """(calibration texts, their fingerprint): up to CALIBRATION_MAX texts spread over `texts`, or the built-in sample."""
    if not texts:
        return list(CALIBRATION), "builtin"
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        return list(CALIBRATION), "builtin"
    step = max(1, len(texts) // CALIBRATION_MAX)
    sample = texts[::step][:CALIBRATION_MAX]
    return sample, hashlib.sha256("\x00".join(sample).encode()).hexdigest()[:12]


def recipe(backend: Backend) -> str:
    """A fingerprint of the code that exports `backend` (its module and this one): a changed recipe exports again."""
    import inspect

    files = [Path(__file__), Path(inspect.getsourcefile(backend.export))]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:12]


def export_key(base_version: str, backend: Backend, calibration: str | None) -> dict[str, Any]:
    key = {"format": FORMAT, "model_version": base_version, "backend": backend.name, "recipe": recipe(backend),
           "libraries": backend.library_versions(), "cpu_flags": relevant_flags()}
    if backend.calibrated:
        key["calibration"] = calibration or "builtin"
    return key


def export_dir(name: str, backend: Backend, key: dict[str, Any]) -> Path:
    from repspace.encoders.cache import model_cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return model_cache_dir("exports") / f"{slug(name)}-{backend.name}-{digest}"


def make_tokenizer(record: dict[str, Any], directory: Path):
    """The model's fast tokenizer (tokenizer.json), truncating at the model's max length, padding to the longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok.enable_truncation(int(record["max_seq_length"]))
    tok.enable_padding(pad_id=int(record["pad_id"]), pad_token=record["pad_token"])
    lower = bool(record.get("lowercase"))

    def tokenize(texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = tok.encode_batch([t.lower() for t in texts] if lower else list(texts))
        return {"input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64)}

    return tokenize


def read_verified(directory: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a complete, intact export made for `key`; None when there is none (or it is corrupt)."""
    try:
        record = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key:
        return None
    for rel, digest in record.get("files", {}).items():
        path = directory / rel
        if not path.is_file() or file_sha256(path) != digest:
            print(f"repspace: the cached {key['backend']} export in {directory} is corrupt ({rel} does not match its "
                  "checksum); exporting it again", file=sys.stderr)
            return None
    return record


def _torch_model(path: Path):
    """The sentence-transformers model and a module (input_ids, attention_mask) -> its sentence embedding."""
    from repspace.encoders.sentence import _offline_env

    _offline_env()
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu", local_files_only=True).eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

    return st, SentenceEmbedding(st).eval()


def _tokenizer_record(st, out: Path) -> dict[str, Any]:
    hf = st.tokenizer
    src = Path(getattr(st[0], "model_name_or_path", "") or "") / "tokenizer.json"
    if src.is_file():
        shutil.copyfile(src, out / "tokenizer.json")
    else:
        backend = getattr(hf, "backend_tokenizer", None) or getattr(hf, "_tokenizer", None)
        if backend is None:
            raise NotAvailableError("exported backends need a fast tokenizer (tokenizer.json) in the model directory",
                                    param="backend")
        backend.save(str(out / "tokenizer.json"))
    getdim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return {"max_seq_length": int(st.max_seq_length), "pad_id": int(hf.pad_token_id or 0), "pad_token": str(hf.pad_token),
            "lowercase": bool(getattr(st[0], "do_lower_case", False)), "dim": int(getdim()),
            "normalized": any(type(m).__name__ == "Normalize" for m in st)}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def export_checked(path: Path, name: str, backend: Backend, key: dict[str, Any], directory: Path, threads: int,
                   calibration: list[str]) -> dict[str, Any]:
    """Export `path` (a sentence-transformers directory) for `backend` into `directory`, check it, write its manifest."""
    print(f"repspace: exporting {name} for backend {backend.name} (once; cached in {directory})", file=sys.stderr)
    st, module = _torch_model(path)
    try:
        with atomic_dir(directory) as tmp:
            record: dict[str, Any] = {"format": FORMAT, "key": key, "model": name, "backend": backend.name,
                                      **_tokenizer_record(st, tmp)}
            tokenize = make_tokenizer(record, tmp)
            from repspace.encoders.backends.base import cpu_flags

            ref = st.encode(PROBES, batch_size=len(PROBES), convert_to_numpy=True, show_progress_bar=False)

            def probe(run) -> np.ndarray:
                return np.concatenate([run(**tokenize(PROBES[s:s + 4])) for s in range(0, len(PROBES), 4)])

            ctx = ExportContext(module=module, tokenize=tokenize, calibration=calibration, flags=cpu_flags(), threads=threads,
                                probe_cos=lambda run: float(cosines(probe(run), ref).mean()), min_cos=backend.min_cos)
            try:
                record["export"] = backend.export(ctx, tmp)
                got = probe(backend.load(tmp, record["export"], threads))
            except NotAvailableError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of a runtime's exporter refuses the backend
                raise BackendCheckError(f"exporting model {name!r} for backend {backend.name!r} failed "
                                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the torch "
                                        "backend still works", param="backend") from None
            cos = cosines(got, ref)
            record["check"] = {"probes": len(PROBES), "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                               "bound": backend.min_cos}
            if not cos.mean() >= backend.min_cos:
                raise BackendCheckError(
                    f"backend {backend.name!r} for model {name!r} is refused: its vectors have a mean cosine of "
                    f"{cos.mean():.5f} (min {cos.min():.5f}) with the torch backend's on {len(PROBES)} probe texts, below "
                    f"the bound {backend.min_cos}; the export was removed and the torch backend still works",
                    param="backend")
            record["files"] = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*"))
                               if p.is_file() and p.name != MANIFEST}
            write_json(tmp / MANIFEST, record)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # no half-checked or stale artefact stays behind
        raise
    return record
