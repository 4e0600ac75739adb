"""Fine-tune a sentence-transformers encoder with MatryoshkaLoss so its prefixes work at every dimension.

The loss is repspace's `MatryoshkaLoss(InfoNCELoss)` over (query, document) pairs with in-batch
negatives (multiple-negatives ranking), applied to the model's pooled embeddings (`compress.losses.PairLoss`),
trained in `repspace.training.fit` at a constant learning rate. The result is
saved as a sentence-transformers directory, usable as `repspace encode --model DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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

    from repspace.compress.losses import InfoNCELoss, MatryoshkaLoss, PairLoss
    from repspace.training import Shuffle, fit

    encode_length = st.max_seq_length
    st.max_seq_length = max_seq_length  # training length; encoding keeps the model's own
    loss = PairLoss(st, MatryoshkaLoss(InfoNCELoss(temperature), dims, [1.0] * len(dims)))
    opt = torch.optim.AdamW(loss.param_groups(), lr=lr)
    n = len(queries)
    history = fit(loss, (list(queries), list(documents)), None,
                  order=Shuffle(n, batch_size, seed, rng="numpy", drop_last=True), optimizer=opt, epochs=epochs,
                  label="fine-tune", progress=progress)
    st.eval()
    st.max_seq_length = encode_length
    out = Path(out)
    with atomic_dir(out) as tmp:
        st.save(str(tmp))
    return {"model": model, "out": str(out), "pairs": n, "dims": dims, "epochs": epochs, "batch_size": batch_size,
            "lr": lr, "history": history}
