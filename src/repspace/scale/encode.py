"""Encoding on Ray Data: shards of whole batches through an encoder actor pool.

The plan is the local engine's (`repspace.encoders.job`): items ordered by length (longest
first, ties by position) and cut into shards of whole batches of `batch_size`. A shard is one
row of a Ray dataset; `map_batches` sends one row at a time (`batch_size=1`) to an actor of an
`ActorPoolStrategy` pool, which loaded the model once and encodes the shard in the same batches
the local engine forms. Batches are therefore identical item for item, so vectors are
bit-identical to `encode_items` (measured: 0.0 max difference, also across torch thread counts).

Finished shards stream back to the driver (`on_shard(shard_id, ids, vectors)`, in completion
order); `encode_space` saves each as `chunk-NNNNNN.npy` in the same `.<out>.partial/` directory
and with the same job record as the local engine, so a killed driver re-run (with either engine)
redoes only the missing shards, and the final space is byte-for-byte the local engine's.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from repspace._io import save_npy
from repspace.datasets.items import Items
from repspace.encoders.base import Encoder
from repspace.encoders.job import (_check_output, _job_record, _space_meta, chunk_file, encode_order,
                                   open_partial, progress_bar, whole_batches)
from repspace.errors import InvalidInputError, RepspaceError
from repspace.scale.cluster import EngineError, Pool, connect, native_stderr_quiet, plan_pool
from repspace.spaces.space import Space

OnShard = Callable[[int, list, np.ndarray], None]


@dataclass
class ShardPlan:
    """Items in encoding order, cut into shards of whole batches (the local engine's chunks)."""

    order: np.ndarray  # item positions, longest first
    shard_items: int
    batch_size: int

    @property
    def n_shards(self) -> int:
        return (len(self.order) + self.shard_items - 1) // self.shard_items

    def positions(self, shard: int) -> np.ndarray:
        return self.order[shard * self.shard_items : (shard + 1) * self.shard_items]


def plan_shards(encoder: Encoder, items: Items, batch_size: int = 32, shard_items: int | None = None,
                order: np.ndarray | None = None) -> ShardPlan:
    """The shard plan both engines share: `encode_order` (or the caller's `order` of item positions, e.g. a
    backfill's), then `whole_batches(batch_size, shard_items)`."""
    if batch_size <= 0:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}", param="batch_size")
    order = encode_order(encoder, items) if order is None else np.asarray(order, dtype=np.int64)
    return ShardPlan(order, whole_batches(batch_size, shard_items), batch_size)


def _payload(items: Items, pos: np.ndarray) -> dict[str, Any]:
    if isinstance(items.data, np.ndarray):
        block = np.ascontiguousarray(items.data[pos])
        return {"texts": [], "blob": block.tobytes(), "shape": list(block.shape), "dtype": block.dtype.str}
    return {"texts": [str(items.data[p]) for p in pos], "blob": b"", "shape": [], "dtype": ""}


def _unpack(row: dict[str, Any]) -> Any:
    if len(row["blob"]):
        return np.frombuffer(row["blob"], dtype=np.dtype(str(row["dtype"]))).reshape([int(x) for x in row["shape"]])
    return [str(t) for t in row["texts"]]


class _EncodeActor:
    """One Ray actor: loads the model once, encodes whole shards in `batch_size` batches."""

    config: dict[str, Any] = {}

    def __init__(self) -> None:
        self._setup(**self.config)

    def _setup(self, model: str, device: str, version: str, batch_size: int, threads: int,
               fault_marker: str | None = None, fault_crashes: int = 1, fault_after: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        from repspace.encoders import get_encoder

        self.batch_size = batch_size
        self.fault_marker, self.fault_crashes, self.fault_after, self.calls = fault_marker, fault_crashes, fault_after, 0
        self.error = ""
        try:
            self.encoder = get_encoder(model, device=device)
            if self.encoder.version != version:
                self.error = (f"the worker on {os.uname().nodename} loaded model {model!r} version "
                              f"{self.encoder.version}, the driver has {version}; install the same model everywhere")
        except RepspaceError as e:
            self.error = f"the worker on {os.uname().nodename} cannot load model {model!r}: {e}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from repspace.spaces.space import check_finite

        out: dict[str, list] = {"shard": [], "vectors": [], "rows": [], "error": []}
        for r in range(len(batch["shard"])):
            self.calls += 1
            if self.fault_marker and self.calls > self.fault_after:  # test hook: die as a crashed worker would
                marker = Path(self.fault_marker)  # ... fault_crashes times in all
                if (marker.stat().st_size if marker.exists() else 0) < self.fault_crashes:
                    with marker.open("ab") as fh:
                        fh.write(b"x")
                    os._exit(1)
            row = {k: batch[k][r] for k in batch}
            err, block = self.error, np.zeros((0,), np.float32)
            if not err:
                try:
                    data = _unpack(row)
                    parts = [np.asarray(self.encoder.encode_batch(data[b : b + self.batch_size]), dtype=np.float32)
                             for b in range(0, len(data), self.batch_size)]
                    block = np.ascontiguousarray(np.concatenate(parts))
                    check_finite(block, what=f"vectors from {self.encoder.name}")
                except Exception as e:  # reported with the shard id by the driver, not retried
                    err = f"{type(e).__name__}: {e}" if not isinstance(e, RepspaceError) else str(e)
            out["shard"].append(int(row["shard"]))
            out["vectors"].append(block.tobytes() if not err else b"")
            out["rows"].append(len(block) if not err else 0)
            out["error"].append(err)
        return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return f"{type(e).__name__}: {line}"[:500]
    return type(e).__name__


def ray_encode(
    model: str,
    items: Items,
    batch_size: int = 32,
    workers: int | None = None,
    on_shard: OnShard | None = None,
    *,
    shard_items: int | None = None,
    skip: Iterable[int] = (),
    device: str = "cpu",
    encoder: Encoder | None = None,
    address: str | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
    max_retries: int = 3,
    progress: bool = True,
    order: np.ndarray | None = None,
    _fault_marker: str | None = None,
    _fault_crashes: int = 1,
    _fault_after: int = 1,
) -> ShardPlan:
    """Encode `items` on a Ray cluster; each finished shard goes to `on_shard(shard_id, ids, vectors)`.

    model: a built-in model name or a model directory every worker can read; `encoder` (optional)
    is the driver's instance of it (else loaded on the CPU here, for the length order and version).
    Shards are `plan_shards(encoder, items, batch_size, shard_items)`: vectors (m, dim) float32
    identical to the local engine's rows for `ids`. `on_shard` runs in the driver, in completion
    order, once per shard not in `skip`. Workers that die are restarted and their shard retried
    up to `max_retries` times; a shard that cannot be encoded raises `EngineError` naming it.
    Returns the plan (shard id -> item positions: `plan.positions(s)`). `order`: item positions in the order
    to shard them (default: the encode job's length order).
    `_fault_marker`/`_fault_crashes`/`_fault_after` are a test hook: an actor `os._exit`s after
    `_fault_after` shards while the marker file holds fewer than `_fault_crashes` bytes (one per crash).
    """
    from repspace.encoders import get_encoder

    if encoder is None:
        encoder = get_encoder(model, device="cpu")
    if items.modality != encoder.modality:
        raise InvalidInputError(f"model {encoder.name!r} encodes {encoder.modality}, but the input holds {items.modality}")
    plan = plan_shards(encoder, items, batch_size, shard_items, order)
    skip = {int(s) for s in skip}
    todo = [s for s in range(plan.n_shards) if s not in skip]
    n_done = sum(len(plan.positions(s)) for s in skip if 0 <= s < plan.n_shards)
    ray = connect(address)
    pool = plan_pool(ray, workers, cpus_per_worker, gpus_per_worker, device)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{encoder.name} on ray ({pool.workers} workers)", total=len(items), completed=n_done, rate="")
        if not todo:
            return plan
        with native_stderr_quiet():
            run_pool(ray, plan, items, todo, encoder, model, device, pool, max_retries, on_shard, bar, task,
                     dict(fault_marker=_fault_marker, fault_crashes=_fault_crashes, fault_after=_fault_after))
    return plan


def run_pool(ray: Any, plan: ShardPlan, items: Items, todo: list[int], encoder: Encoder, model: str, device: str,
             pool: Pool, max_retries: int, on_shard: OnShard | None, bar: Any, task: Any,
             faults: dict[str, Any] | None = None) -> None:
    """The Ray Data pipeline: from_items(shards) -> map_batches(actor pool) -> stream to the driver."""
    import ray.data

    rows = [{"shard": s, **_payload(items, plan.positions(s))} for s in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # The configuration travels inside the (dynamically defined) actor class, not as constructor
    # arguments: Ray keeps those in the object store, which a restarted actor may no longer find.
    config = dict(model=model, device=device, version=encoder.version, batch_size=plan.batch_size,
                  threads=pool.threads, **(faults or {}))
    actor = type("EncodeActor", (_EncodeActor,), {"config": config})
    kwargs = dict(
        batch_size=1,  # one shard per call; the actor cuts it into the encoder's batches
        compute=ray.data.ActorPoolStrategy(size=min(pool.workers, len(rows)), max_tasks_in_flight_per_actor=2),
        num_cpus=pool.cpus, num_gpus=pool.gpus or None,
    )
    with warnings.catch_warnings():
        # A dead actor is restarted and its shard retried a bounded number of times (Ray's default
        # is forever). Ray 2.60 accepts these only as the deprecated **ray_remote_args.
        warnings.simplefilter("ignore")
        try:
            ds = ds.map_batches(actor, max_restarts=max_retries, max_task_retries=max_retries, **kwargs)
        except TypeError:  # a Ray without **ray_remote_args: its own (unbounded) restarts
            ds = ds.map_batches(actor, **kwargs)
    pending = set(todo)
    t0 = time.perf_counter()
    done_items = 0
    try:
        for row in ds.iter_rows():
            s = int(row["shard"])
            if s not in pending:
                continue  # a retried shard delivered twice: keep the first (every item exactly once)
            pos = plan.positions(s)
            if row["error"]:
                raise EngineError(f"shard {s} (items {items.ids[pos[0]]!r} … {items.ids[pos[-1]]!r}) failed: {row['error']}")
            vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(int(row["rows"]), encoder.dim)
            if len(vectors) != len(pos):
                raise EngineError(f"shard {s} came back with {len(vectors)} vectors for {len(pos)} items")
            if on_shard is not None:
                on_shard(s, [items.ids[p] for p in pos], vectors.copy())
            pending.discard(s)
            done_items += len(pos)
            rate = done_items / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=len(pos), rate=f"{rate:,.1f} items/s")
    except (RepspaceError, KeyboardInterrupt):
        raise
    except Exception as e:  # Ray's errors: actor died past its restarts, object lost, ...
        first = min(pending) if pending else None
        where = (f"shard {first} (items {items.ids[plan.positions(first)[0]]!r} …) and {len(pending) - 1} more unfinished"
                 if first is not None else "after all shards")
        raise EngineError(f"the ray job failed at {where} after up to {max_retries} retries: {_first_line(e)}; "
                          "re-run the same command to resume the finished shards "
                          "(REPSPACE_RAY_VERBOSE=1 shows Ray's own logs)") from None
    if pending:
        raise EngineError(f"the ray job ended with {len(pending)} shard(s) never delivered, first: shard {min(pending)}")


def encode_space(
    model: str,
    items: Items,
    out: str | Path | None = None,
    batch_size: int = 32,
    chunk_items: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    *,
    workers: int | None = None,
    address: str | None = None,
    device: str = "cpu",
    encoder: Encoder | None = None,
    **kwargs: Any,
) -> Space:
    """`encode_items` on Ray: the same Space (same rows, same bytes), resumable per shard.

    Shards are the local engine's chunks (`chunk_items` rounded to whole batches); each finished
    shard is saved atomically in `.<out>.partial/` as it arrives, so a killed driver re-run (with
    either engine and the same batch and chunk sizes) encodes only the missing shards.
    kwargs go to `ray_encode` (cpus_per_worker, gpus_per_worker, max_retries, ...).
    """
    from repspace.encoders import get_encoder

    if encoder is None:
        encoder = get_encoder(model, device="cpu")
    if items.modality != encoder.modality:
        raise InvalidInputError(f"model {encoder.name!r} encodes {encoder.modality}, but the input holds {items.modality}")
    plan = plan_shards(encoder, items, batch_size, chunk_items)
    fingerprint = items.fingerprint()
    out_path = Path(out) if out is not None else None
    work = None
    if out_path is not None:
        finished = _check_output(out_path, encoder, fingerprint, overwrite)
        if finished is not None:
            return finished
        work = open_partial(out_path, _job_record(encoder, items, fingerprint, batch_size, plan.shard_items), overwrite)
    vectors = np.empty((len(items), encoder.dim), dtype=np.float32)
    done: list[int] = []
    if work is not None:
        for s in range(plan.n_shards):
            f = chunk_file(work, s)
            if not f.is_file():
                continue
            try:
                block = np.load(f, allow_pickle=False)
            except Exception:
                continue  # damaged chunk: encode it again
            pos = plan.positions(s)
            if block.shape == (len(pos), encoder.dim) and block.dtype == np.float32:
                vectors[pos] = block
                done.append(s)
        if done and progress:
            from rich.console import Console

            Console(stderr=True).print(f"resuming: {len(done)} of {plan.n_shards} shards already encoded in {work}")

    def on_shard(s: int, ids: list, block: np.ndarray) -> None:
        if work is not None:
            save_npy(chunk_file(work, s), block)
        vectors[plan.positions(s)] = block

    ray_encode(model, items, batch_size, workers, on_shard, shard_items=plan.shard_items, skip=done, device=device,
               encoder=encoder, address=address, progress=progress, **kwargs)
    space = Space(vectors, items.ids, items.labels, validate=False, **_space_meta(encoder, items, fingerprint))
    if out_path is not None:
        space.save(out_path, overwrite=True)
        shutil.rmtree(work, ignore_errors=True)
    return space
