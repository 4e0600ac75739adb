"""Fine-tune a sentence-transformers encoder with MatryoshkaLoss so its prefixes work at every dimension.

The loss is repspace's `MatryoshkaLoss(InfoNCELoss)` over (query, document) pairs with in-batch
negatives (multiple-negatives ranking), applied to the model's pooled embeddings. The result is
saved as a sentence-transformers directory, usable as `repspace encode --model DIR`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repspace._io import atomic_dir
from repspace.errors import InvalidInputError
from repspace.ops.torchstate import seeded


def finetune_matryoshka(
    model: str,
    queries: Sequence[str],
    documents: Sequence[str],
    out: str | Path,
    dims: Sequence[int] = (32, 64, 128, 256),
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 2e-5,
    temperature: float = 0.05,
    max_seq_length: int = 128,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Train on row-aligned (query, document) texts; returns a summary (steps, seconds, loss per epoch)."""
    from repspace.encoders import get_encoder
    from repspace.encoders.sentence import SentenceTransformerEncoder

    if len(queries) != len(documents) or len(queries) < 2:
        raise InvalidInputError(f"need at least 2 row-aligned (query, document) pairs; got {len(queries)} / {len(documents)}")
    encoder = get_encoder(model, device=device)
    if not isinstance(encoder, SentenceTransformerEncoder):
        raise InvalidInputError(f"fine-tuning needs a sentence-transformers model; {model!r} is not one")
    st = encoder.model
    full = encoder.dim
    dims = sorted({int(d) for d in dims} | {full})
    if dims[0] < 1 or dims[-1] > full:
        raise InvalidInputError(f"dims must lie in 1..{full} for {model!r}", param="dims")
    with seeded(seed, threads):
        return _train(st, model, queries, documents, out, dims, epochs, batch_size, lr, temperature, max_seq_length,
                      seed, progress)


def _train(st: Any, model: str, queries: Sequence[str], documents: Sequence[str], out: str | Path, dims: list[int],
           epochs: int, batch_size: int, lr: float, temperature: float, max_seq_length: int, seed: int,
           progress: bool) -> dict[str, Any]:
    import torch

    from repspace.compress.losses import InfoNCELoss, MatryoshkaLoss
    from repspace.ops.progress import progress_bar

    encode_length = st.max_seq_length
    st.max_seq_length = max_seq_length  # training length; encoding keeps the model's own
    loss_fn = MatryoshkaLoss(InfoNCELoss(temperature), dims, [1.0] * len(dims))
    opt = torch.optim.AdamW(st.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    n = len(queries)
    steps_per_epoch = n // batch_size if n >= batch_size else 1
    history = []
    st.train()

    def embed(texts: list[str]) -> torch.Tensor:
        prep = getattr(st, "preprocess", None) or st.tokenize
        features = {k: (v.to(st.device) if hasattr(v, "to") else v) for k, v in prep(texts).items()}
        return st(features)["sentence_embedding"]

    with progress_bar(progress) as bar:
        task = bar.add_task("fine-tune", total=epochs * steps_per_epoch, rate="")
        for epoch in range(epochs):
            order = rng.permutation(n)
            t0, total = time.perf_counter(), 0.0
            for step in range(steps_per_epoch):
                rows = order[step * batch_size : (step + 1) * batch_size]
                loss = loss_fn(embed([queries[r] for r in rows]), embed([documents[r] for r in rows]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
                bar.update(task, advance=1, rate=f"loss {total / (step + 1):.3f}")
            history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, "seconds": time.perf_counter() - t0})
    st.eval()
    st.max_seq_length = encode_length
    out = Path(out)
    with atomic_dir(out) as tmp:
        st.save(str(tmp))
    return {"model": model, "out": str(out), "pairs": n, "dims": dims, "epochs": epochs, "batch_size": batch_size,
            "lr": lr, "history": history}
