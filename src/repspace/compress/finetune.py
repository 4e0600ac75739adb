"""Fine-tune a sentence-transformers encoder with MatryoshkaLoss so its prefixes work at every dimension — and, with
`layers`, its first L transformer layers too (2D Matryoshka: `compress.losses.LayerPairLoss`).

The loss is repspace's `MatryoshkaLoss(InfoNCELoss)` over (query, document) pairs with in-batch
negatives (multiple-negatives ranking), applied to the model's pooled embeddings (`compress.losses.PairLoss`),
trained in `repspace.training.fit` at a constant learning rate. The result is
saved as a sentence-transformers directory, usable as `repspace encode --model DIR` (with `--layers L --dim d` for
one point of a 2D Matryoshka model: only L layers run).
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
    layers: Sequence[int] | None = None,
    kl_weight: float = 1.0,
) -> dict[str, Any]:
    """Train on row-aligned (query, document) texts; returns a summary (steps, seconds, loss per epoch).

    layers: also train the model's first L transformer layers for each L (the last layer is always trained); the
    saved model is whole, `get_encoder(out, layers=L)` runs only L of them. kl_weight: see `LayerPairLoss`."""
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
    if layers is not None:
        from repspace.encoders.sentence import layer_list

        n_layers = len(layer_list(st)[2])
        layers = sorted({int(layer) for layer in layers} | {n_layers})
        if layers[0] < 1 or layers[-1] > n_layers:
            raise InvalidInputError(f"layers must lie in 1..{n_layers} for {model!r}", param="layers")
    with seeded(seed, threads):
        return _train(st, model, queries, documents, out, dims, epochs, batch_size, lr, temperature, max_seq_length,
                      seed, progress, layers, kl_weight)


def _train(st: Any, model: str, queries: Sequence[str], documents: Sequence[str], out: str | Path, dims: list[int],
           epochs: int, batch_size: int, lr: float, temperature: float, max_seq_length: int, seed: int,
           progress: bool, layers: list[int] | None = None, kl_weight: float = 1.0) -> dict[str, Any]:
    import torch

    from repspace.compress.losses import InfoNCELoss, LayerPairLoss, MatryoshkaLoss, PairLoss
    from repspace.training import Shuffle, fit

    encode_length = st.max_seq_length
    st.max_seq_length = max_seq_length  # training length; encoding keeps the model's own
    criterion = MatryoshkaLoss(InfoNCELoss(temperature), dims, [1.0] * len(dims))
    loss = (PairLoss(st, criterion) if layers is None else
            LayerPairLoss(st, criterion, layers, kl_weight=kl_weight, kl_temperature=temperature))
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
    return {"model": model, "out": str(out), "pairs": n, "dims": dims, "layers": layers, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "history": history}
