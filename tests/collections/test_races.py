"""Administrative commands at once: metadata is written by compare-and-set, so a race ends in one consistent state
and the loser gets one clear error (ConcurrentChangeError, or the state's own refusal) — never a silent loss, an
orphan slot or a half-started upgrade. Deterministic library-level interleavings first, then real CLI processes
racing on both backends."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from repspace.collections import Collection
from repspace.collections import upgrade as up
from repspace.collections.ingest import upsert_items
from repspace.errors import CollectionError, ConcurrentChangeError

pytestmark = pytest.mark.real
OLD, NEW, OTHER = "glove-50", "minilm-l3-onnx", "minilm-l6"

RACER = ("import sys, time\n"
         "from repspace.cli.main import run\n"
         "import repspace.collections.collection, repspace.collections.upgrade\n"
         "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
         "sys.exit(run(sys.argv[2:]))\n")


@pytest.fixture(scope="module")
def items():
    from repspace.datasets import load_dataset

    return load_dataset("bbc-news:text@test").limit(80)


def _collection(uri, items, upgrade=False):
    c = Collection.create(uri, model=OLD)
    upsert_items(c, items, batch_size=80)
    if upgrade:
        up.start(c, NEW, sample=40, evaluate_gate=False)
    return c


def _consistent(uri):
    """The metadata's slots are exactly the store's vector columns, the upgrade (if any) names existing slots."""
    with Collection.open(uri) as c:
        slots = {s.column for s in c.slots}
        columns = set(c.store.columns())
        assert slots == columns, (slots, columns)
        names = {s.name for s in c.slots}
        assert c.active in names
        if c.upgrade is not None:
            assert {c.upgrade.old, c.upgrade.new} <= names and c.upgrade.state in ("open", "switched")
        return c.meta


def _race(a: list[str], b: list[str], delay: float = 5.0) -> list[subprocess.CompletedProcess]:
    """Two CLI processes, started together once both have imported repspace."""
    at = str(time.time() + delay)
    procs = [subprocess.Popen([sys.executable, "-c", RACER, at, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for cmd in (a, b)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _loser_says_why(res: subprocess.CompletedProcess, *why: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and any(w in lines[0] for w in why), res.stderr
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------ deterministic
def test_stale_write_is_refused_and_nothing_is_lost(new_uri, items):
    uri = new_uri()
    c = _collection(uri, items, upgrade=True)
    other = Collection.open(uri)
    read = other.reload()  # the other command read the metadata …
    up.rollback(c)  # … then this one rolled the upgrade back
    with pytest.raises(ConcurrentChangeError, match="changed since it was read"):
        other.commit(read, read.switched())
    meta = _consistent(uri)
    assert meta.upgrade is None and meta.active == OLD and [s.name for s in meta.slots] == [OLD]


def test_start_lost_to_another_start_leaves_no_slot(new_uri, items):
    uri = new_uri()
    c = _collection(uri, items)
    loser = Collection.open(uri)
    read = loser.reload()
    up.start(c, NEW, sample=40, evaluate_gate=False)
    with pytest.raises(ConcurrentChangeError):
        up.start_from(loser, read, OTHER, [], lambda ids, texts: None)
    meta = _consistent(uri)
    assert [s.name for s in meta.slots] == [OLD, NEW] and meta.upgrade.new == NEW and meta.upgrade.state == "open"


def test_failed_start_is_undone(new_uri, items):
    uri = new_uri()
    c = _collection(uri, items)

    def broken(ids, texts):
        raise RuntimeError("the new model's server went away")

    with pytest.raises(RuntimeError):
        up.start_from(c, c.reload(), NEW, items.ids[:40], broken)
    meta = _consistent(uri)
    assert meta.upgrade is None and [s.name for s in meta.slots] == [OLD] and meta.next_column == 2


def test_interrupted_start_serves_old_and_rolls_back(new_uri, items):
    """A process killed during start leaves the state "starting": searches serve the old slot, rollback clears it."""
    uri = new_uri()
    c = _collection(uri, items)
    from repspace.collections.slots import describe_model

    read = c.reload()
    claimed = c.commit(read, read.start_upgrade(describe_model(NEW, None, None), method="procrustes", seed=0, sample=40))
    c.create_column(claimed.slot(NEW))
    assert c.upgrade.state == "starting"
    want = Collection.open(uri).search(texts=["oil prices"], k=3, slot=OLD)
    assert c.search(texts=["oil prices"], k=3) == want
    with pytest.raises(CollectionError, match="still starting"):
        up.backfill(c)
    with pytest.raises(CollectionError, match="still starting"):
        up.switch(c, force=True)
    up.rollback(c)
    assert _consistent(uri).upgrade is None


def test_transitions_refuse_the_wrong_state(new_uri, items):
    uri = new_uri()
    c = _collection(uri, items, upgrade=True)
    with pytest.raises(CollectionError, match="switch to the new slot first"):
        up.finish(c, force=True)
    with pytest.raises(CollectionError, match="already open"):
        c.transition(lambda m: m.start_upgrade({"model": OTHER, "model_version": "x"}, method="procrustes", seed=0,
                                               sample=40))
    with pytest.raises(ConcurrentChangeError):  # a gate recorded into another upgrade than the one measured
        c.transition(lambda m: m.with_gate("another start time", {"passed": True}))
    c.transition(lambda m: replace(m, spec="Flat"))
    assert c.meta.revision >= 4


# ------------------------------------------------------------ real processes
def test_two_starts_race(new_uri, items):
    uri = new_uri()
    _collection(uri, items).close()
    a, b = _race(["upgrade", "start", uri, "--model", NEW, "--sample", "30", "--quiet", "--json"],
                 ["upgrade", "start", uri, "--model", OTHER, "--sample", "30", "--quiet", "--json"])
    assert sorted([a.returncode, b.returncode]) == [0, 2], (a.stderr, b.stderr)
    winner, loser = (a, b) if a.returncode == 0 else (b, a)
    _loser_says_why(loser, "changed", "already open")
    meta = _consistent(uri)
    assert len(meta.slots) == 2 and meta.upgrade is not None and meta.upgrade.state == "open"
    assert meta.upgrade.new == (NEW if winner is a else OTHER)


def test_switch_races_rollback(new_uri, items):
    uri = new_uri()
    _collection(uri, items, upgrade=True).close()
    a, b = _race(["upgrade", "switch", uri, "--force", "--json"], ["upgrade", "rollback", uri, "--json"])
    for res in (a, b):
        if res.returncode != 0:
            _loser_says_why(res, "changed", "no open upgrade")
    meta = _consistent(uri)
    if b.returncode == 0:  # the rollback ran (first, or after the switch): the old model alone
        assert meta.upgrade is None and meta.active == OLD and [s.name for s in meta.slots] == [OLD]
    else:  # the switch won and the rollback lost
        assert meta.upgrade.state == "switched" and meta.active == NEW


def test_upsert_races_finish(new_uri, items, tmp_path):
    uri = new_uri()
    c = _collection(uri, items, upgrade=True)
    up.backfill(c)
    up.switch(c, force=True)
    c.close()
    src = tmp_path / "late.jsonl"
    src.write_text("".join(f'{{"id": "late/{j}", "text": "a late article number {j} about markets"}}\n'
                           for j in range(40)))
    a, b = _race(["collection", "upsert", uri, "--input", str(src), "--quiet", "--json"],
                 ["upgrade", "finish", uri, "--json"])
    assert b.returncode == 0, b.stderr  # finish needs nothing the upsert takes away
    if a.returncode != 0:
        _loser_says_why(a, "changed")
    meta = _consistent(uri)
    assert meta.upgrade is None and [s.name for s in meta.slots] == [NEW]
    with Collection.open(uri) as c:
        late = c.get([f"late/{j}" for j in range(40)], vectors=True)
        if a.returncode == 0:  # every acknowledged item is searchable in the slot that stays
            assert len(late) == 40 and all(r["vector"] is not None for r in late)
        else:
            assert late == []


def test_searches_on_a_shared_handle_racing_switch_and_finish(new_uri, items):
    """The service's case: searches run at once on one shared handle (no collection lock) while administrative
    commands change it; every search answers, on the collection before or after each change."""
    import threading

    c = _collection(new_uri(), items, upgrade=True)
    up.backfill(c)
    errors, answers, done = [], [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                answers.append(len(c.search(texts=["markets and shares"], k=3)[0]))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return

    def settle(n: int) -> None:
        deadline = time.time() + 60
        seen = len(answers)
        while len(answers) < seen + n and not errors and time.time() < deadline:
            time.sleep(0.01)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        settle(2)
        up.switch(c, force=True)
        settle(2)
        up.finish(c)
        settle(2)
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(answers) >= 6 and all(a == 3 for a in answers)
    assert c.upgrade is None and [s.name for s in c.slots] == [NEW]
