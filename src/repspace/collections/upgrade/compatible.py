"""A compatible upgrade: the same model on another encoder backend (e.g. minilm-l6 torch -> onnx-int8).

`upgrade start --backend B` on a collection whose slot holds the same model on another backend runs the normal start
(new slot, sample re-embedded, adapter and fusion fitted, gate measured) and also measures `repspace compat`'s
criterion on the golden queries: the new backend's queries searching the *old* gallery must do at least as well as
the old queries (recall@10 and nDCG@10, no tolerance). When they do, the upgrade is recorded as compatible and
`switch` adopts the new backend without backfilling: the old slot keeps its vectors and records the new backend's
version (its previous one kept in `compatible_from`), the new slot is dropped. When they do not, the normal fused
upgrade runs (backfill, switch, finish).
"""

from __future__ import annotations

from typing import Any, Callable

from repspace.collections.upgrade.search import search_encoded

CRITERION = "its queries on the old gallery >= the old queries on the old gallery (recall@10 and nDCG@10; repspace compat)"


def is_backend_switch(meta, up) -> bool:
    """The upgrade's new slot is the old slot's model and weights on another encoder backend."""
    from repspace.encoders.backends import backend_of_version, base_of_version

    old, new = meta.slot(up.old), meta.slot(up.new)
    return (old.model == new.model and base_of_version(old.model_version) == base_of_version(new.model_version)
            and backend_of_version(old.model_version) != backend_of_version(new.model_version))


def measure_compatible(coll, up, metrics: Callable[[list, list], dict[str, float]]) -> dict[str, Any] | None:
    """For a backend switch with golden queries: both backends' queries on the old gallery (scored by `metrics`,
    the gate's), and the verdict."""
    from repspace.encoders.backends import backend_of_version

    meta = coll.reload()
    if not up.golden or not is_backend_switch(meta, up):
        return None
    texts, rel = [g[0] for g in up.golden], [g[1] for g in up.golden]
    q_old, q_new = coll.encode(texts, up.old), coll.encode(texts, up.new)
    old = metrics(search_encoded(coll, q_old, q_old, 10, {}, "old"), rel)
    new = metrics(search_encoded(coll, q_new, q_new, 10, {}, "old"), rel)
    ok = all(new[k] >= old[k] - 1e-12 for k in ("recall@10", "ndcg@10"))
    return {"compatible": bool(ok), "criterion": CRITERION, "old_on_old": old, "new_on_old": new,
            "from_backend": backend_of_version(meta.slot(up.old).model_version),
            "to_backend": backend_of_version(meta.slot(up.new).model_version), "backfill_needed": not ok}


def adopt(coll, read, up) -> dict[str, Any]:
    """Switch a compatible upgrade: the old slot takes the new backend (its vectors kept), the new slot is dropped."""
    new_slot = read.slot(up.new)
    coll.commit(read, read.adopted())
    coll.drop_column(new_slot)
    return {"active": coll.active, "previous": up.old, "dropped": up.new, "state": "adopted", "backfilled": False,
            "compatible_upgrade": (up.gate or {}).get("compatible_upgrade")}
