"""Fine-tune a sentence-transformers encoder with MatryoshkaLoss so its prefixes work at every dimension — and, with
`layers`, its first L transformer layers too (2D Matryoshka: `compress.losses.LayerPairLoss`), optionally taught
further by distillation on unlabelled text (`distill_layers`, `compress.losses.LayerDistillLoss`).

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
    distill: Sequence[str] | None = None,
    distill_epochs: int = 1,
    distill_lr: float = 1e-4,
) -> dict[str, Any]:
    """Train on row-aligned (query, document) texts; returns a summary (steps, seconds, loss per epoch).

    layers: also train the model's first L transformer layers for each L (the last layer is always trained); the
    saved model is whole, `get_encoder(out, layers=L)` runs only L of them. kl_weight: see `LayerPairLoss`.
    distill (with layers): unlabelled texts; after the pairs, the model as they left it is the teacher and every
    listed depth learns its embeddings of these texts (`distill_layers`, `distill_epochs` at `distill_lr`)."""
    if len(queries) != len(documents) or len(queries) < 2:
        raise InvalidInputError(f"need at least 2 row-aligned (query, document) pairs; got {len(queries)} / {len(documents)}")
    if distill is not None and layers is None:
        raise InvalidInputError("distillation teaches the model's shallow layers: give layers too", param="distill")
    if distill is not None:
        _check_texts(distill, batch_size)
    st, full = _load(model, device)
    dims = _dims(dims, full, model)
    layers = None if layers is None else _layers(st, layers, model)
    with seeded(seed, threads):
        result = _train(st, queries, documents, dims, epochs, batch_size, lr, temperature, max_seq_length,
                        seed, progress, layers, kl_weight)
        if distill is not None:
            result["distill"] = _distill(st, st, distill, layers, dims, distill_epochs, batch_size, distill_lr, 1.0,
                                         max_seq_length, seed, progress)
    _save(st, out)
    return {"model": model, "out": str(out), **result}


def distill_layers(
    model: str,
    texts: Sequence[str],
    out: str | Path,
    layers: Sequence[int],
    dims: Sequence[int] = (32, 64, 128, 256),
    teacher: str | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 1e-4,
    rank_weight: float = 1.0,
    max_seq_length: int = 128,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """2D Matryoshka's depth axis by distillation on unlabelled `texts` (`compress.losses.LayerDistillLoss`): the
    teacher (a model name or directory of the same dimension; default `model` itself as it is now) embeds every text
    once with all its layers, then `model`'s first L layers learn those embeddings for each L in `layers` (its last
    layer added, so the full model stays the teacher's). Saved to `out` like `finetune_matryoshka`; returns a
    summary with the loss per epoch."""
    _check_texts(texts, batch_size)
    st, full = _load(model, device)
    dims = _dims(dims, full, model)
    layers = _layers(st, layers, model)
    teacher_st = st
    if teacher is not None:
        teacher_st, teacher_dim = _load(teacher, device)
        if teacher_dim != full:
            raise InvalidInputError(f"the teacher {teacher!r} makes {teacher_dim}-d vectors and {model!r} {full}-d; "
                                    "they must be equal", param="teacher")
    with seeded(seed, threads):
        result = _distill(st, teacher_st, texts, layers, dims, epochs, batch_size, lr, rank_weight, max_seq_length,
                          seed, progress)
    _save(st, out)
    return {"model": model, "teacher": teacher or model, "out": str(out), "layers": layers, "dims": dims, **result}


def _load(model: str, device: str) -> tuple[Any, int]:
    from repspace.encoders import get_encoder
    from repspace.encoders.sentence import SentenceTransformerEncoder

    encoder = get_encoder(model, device=device)
    if not isinstance(encoder, SentenceTransformerEncoder):
        raise InvalidInputError(f"fine-tuning needs a sentence-transformers model; {model!r} is not one")
    return encoder.model, encoder.dim


def _dims(dims: Sequence[int], full: int, model: str) -> list[int]:
    dims = sorted({int(d) for d in dims} | {full})
    if dims[0] < 1 or dims[-1] > full:
        raise InvalidInputError(f"dims must lie in 1..{full} for {model!r}", param="dims")
    return dims


def _layers(st: Any, layers: Sequence[int], model: str) -> list[int]:
    from repspace.encoders.sentence import layer_list

    n_layers = len(layer_list(st)[2])
    layers = sorted({int(layer) for layer in layers} | {n_layers})
    if layers[0] < 1 or layers[-1] > n_layers:
        raise InvalidInputError(f"layers must lie in 1..{n_layers} for {model!r}", param="layers")
    return layers


def _check_texts(texts: Sequence[str], batch_size: int) -> None:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidInputError("distillation texts must be a list of strings", param="distill")
    if len(texts) < 2:
        raise InvalidInputError(f"distillation needs at least 2 texts; got {len(texts)}", param="distill")
    if batch_size < 2:
        raise InvalidInputError(f"batch_size must be at least 2 (in-batch neighbourhoods); got {batch_size}",
                                param="batch_size")


def _save(st: Any, out: str | Path) -> None:
    with atomic_dir(Path(out)) as tmp:
        st.save(str(tmp))


def _train(st: Any, queries: Sequence[str], documents: Sequence[str], dims: list[int], epochs: int,
           batch_size: int, lr: float, temperature: float, max_seq_length: int, seed: int, progress: bool,
           layers: list[int] | None = None, kl_weight: float = 1.0) -> dict[str, Any]:
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
    return {"pairs": n, "dims": dims, "layers": layers, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "history": history}


def _distill(st: Any, teacher: Any, texts: Sequence[str], layers: list[int], dims: list[int], epochs: int,
             batch_size: int, lr: float, rank_weight: float, max_seq_length: int, seed: int,
             progress: bool) -> dict[str, Any]:
    """Embed `texts` with `teacher` (whole, at the training length, unit-normalised), then train `st`'s depths."""
    import time

    import torch

    from repspace.compress.losses import LayerDistillLoss
    from repspace.training import Shuffle, fit

    texts = list(texts)
    encode_lengths = st.max_seq_length, teacher.max_seq_length
    st.max_seq_length = teacher.max_seq_length = max_seq_length
    t0 = time.perf_counter()
    teacher.eval()
    with torch.no_grad():
        target = torch.as_tensor(teacher.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                                show_progress_bar=False)).to(st.device)
    teacher_seconds = time.perf_counter() - t0
    loss = LayerDistillLoss(st, layers, dims, rank_weight=rank_weight)
    opt = torch.optim.AdamW(loss.param_groups(), lr=lr)
    batch = min(batch_size, len(texts))
    history = fit(loss, texts, target, order=Shuffle(len(texts), batch, seed, rng="numpy", drop_last=True),
                  optimizer=opt, epochs=epochs, label="distil", progress=progress)
    st.eval()
    st.max_seq_length, teacher.max_seq_length = encode_lengths
    return {"texts": len(texts), "epochs": epochs, "batch_size": batch, "lr": lr, "teacher_seconds": teacher_seconds,
            "history": history}
