"""A collection's metadata, typed: `Slot`, `UpgradeState`, `CollectionMeta`, serialised in one place.

The metadata is one JSON document per collection (LanceDB: `collection.json`; PostgreSQL: a row of
`repspace_collections`). Every change is a *transition* — a method that returns a new `CollectionMeta` and
refuses (with a `CollectionError`) when the state it starts from does not allow it — written by
compare-and-set: the store replaces the document only if its `revision` is still the one the caller read
(`Store.write_meta(doc, expected)`), so two administrative commands at once never silently lose one; the
loser gets `ConcurrentChangeError` and nothing of its change is written.

The JSON layout is the one collections have always had (plus `revision`), so older collections open as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from repspace.errors import CollectionError, SpaceFormatError, UnknownNameError

FORMAT = "repspace.collection"
UPGRADE_STATES = ("starting", "open", "switched")  # "starting": slot claimed, sample being fitted


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Record:
    """A JSON object as a frozen dataclass: its own fields typed, keys written by other versions kept in `extra`."""

    what = "a record"

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "the collection"):
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        own = cls._decode({k: v for k, v in doc.items() if k in names})
        try:
            return cls(**own, extra={k: v for k, v in doc.items() if k not in names})
        except TypeError as e:
            raise SpaceFormatError(f"{cls.what} in the metadata of {where} is incomplete: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **self._encode(d)}

    @classmethod
    def _decode(cls, own: dict[str, Any]) -> dict[str, Any]:
        return own

    @staticmethod
    def _encode(d: dict[str, Any]) -> dict[str, Any]:
        return d


@dataclass(frozen=True)
class Slot(_Record):
    """One model's vectors in a collection: the model (name, version, dimension) and its vector column."""

    name: str
    column: str
    model: str
    model_version: str
    dim: int
    modality: str = "text"
    normalized: bool = False
    encodes: bool = False  # repspace can encode texts for this model (else: bring-your-own vectors)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by other versions, kept as they are
    what = "a slot"

    def summary(self, count: int) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "model_version": self.model_version, "dim": self.dim,
                "count": count, "encodes": self.encodes}


def slot_name_for(model: str, model_version: str, taken: Iterable[str]) -> str:
    """A slot name for a model that no slot in `taken` has (the model's name, then name@version, name#2, …)."""
    taken = set(taken)
    base = Path(model).name if Path(model).is_dir() else model
    name = base if base not in taken else f"{base}@{(model_version or 'v')[:8]}"
    n = 2
    while name in taken:
        name, n = f"{base}#{n}", n + 1
    return name


@dataclass(frozen=True)
class UpgradeState(_Record):
    """An open model upgrade: old and new slot, how queries are adapted and fused, the gate's last verdict."""

    old: str
    new: str
    method: str
    seed: int
    sample: int
    started: str
    state: str = "starting"
    golden: tuple[tuple[str, str], ...] = ()
    uncertainty: dict[str, Any] | None = None  # UncertaintyModel.to_dict()
    fusion: dict[str, Any] | None = None  # ScoreFusion.to_dict()
    gate: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    what = "the upgrade state"

    @classmethod
    def _decode(cls, own: dict[str, Any]) -> dict[str, Any]:
        return {**own, "golden": tuple((str(q), str(r)) for q, r in own.get("golden") or ())}

    @staticmethod
    def _encode(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "golden": [list(g) for g in d["golden"]]}

    @property
    def serving(self) -> bool:
        """True once the adapter and the fusion are fitted (searches combine the slots)."""
        return self.state in ("open", "switched")


@dataclass(frozen=True)
class CollectionMeta(_Record):
    name: str
    spec: str
    active: str
    slots: tuple[Slot, ...]
    next_column: int
    upgrade: UpgradeState | None = None
    created: str = ""
    payload_index: tuple[str, ...] = ()  # payload keys the store indexes (`collections/payload_index.py`)
    revision: int = 0  # bumped by every compare-and-set write
    format: str = FORMAT
    format_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    what = "a field"

    # ------------------------------------------------------------ serialisation
    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "the collection") -> "CollectionMeta":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CollectionError(f"{where} is not a repspace collection")
        return super().from_dict(doc, where)

    @classmethod
    def _decode(cls, own: dict[str, Any]) -> dict[str, Any]:
        return {**own, "slots": tuple(Slot.from_dict(s) for s in own.get("slots") or ()),
                "upgrade": UpgradeState.from_dict(own["upgrade"]) if own.get("upgrade") else None,
                "payload_index": tuple(str(k) for k in own.get("payload_index") or ()),
                "revision": int(own.get("revision") or 0)}

    @staticmethod
    def _encode(d: dict[str, Any]) -> dict[str, Any]:
        keys = d.pop("payload_index")  # written only once declared: documents of collections without stay as they were
        return {**d, "slots": [s.to_dict() for s in d["slots"]], **({"payload_index": list(keys)} if keys else {}),
                "upgrade": d["upgrade"].to_dict() if d["upgrade"] else None}

    @classmethod
    def new(cls, name: str, spec: str, first: Slot) -> "CollectionMeta":
        return cls(name=name, spec=spec, active=first.name, slots=(first,), next_column=1, created=now())

    # ------------------------------------------------------------------- reads
    def slot(self, name: str | None = None) -> Slot:
        name = name or self.active
        for s in self.slots:
            if s.name == name:
                return s
        raise UnknownNameError(f"collection {self.name!r} has no slot {name!r}; slots: "
                               f"{', '.join(s.name for s in self.slots)}", param="slot")

    @property
    def attached(self) -> dict[str, Any] | None:
        """The record of an application's attached table (`collections.attach`), or None."""
        return self.extra.get("attached")

    def with_side_table(self, side_table: bool) -> "CollectionMeta":
        """Where an attached table's new slots go: a side table of repspace's (True) or a new column of the app's."""
        if self.attached is None:
            if side_table:
                raise CollectionError(f"collection {self.name!r} is repspace's own: a side table is for attached "
                                      "tables", param="side_table")
            return self
        return replace(self, extra={**self.extra, "attached": {**self.attached, "side_table": bool(side_table)}})

    def open_upgrade(self) -> UpgradeState:
        if self.upgrade is None:
            raise CollectionError(f"collection {self.name!r} has no open upgrade (start one first)")
        return self.upgrade

    # ------------------------------------------------------------- transitions
    def with_slot(self, model: dict[str, Any]) -> tuple["CollectionMeta", Slot]:
        """A new empty slot for `model` (a `describe_model` record), claiming the next vector column."""
        for s in self.slots:
            if s.model == model["model"] and s.model_version == model["model_version"]:
                raise CollectionError(f"collection {self.name!r} already has a slot for {model['model']!r} ({s.name!r})")
        slot = Slot(name=slot_name_for(model["model"], model["model_version"], (s.name for s in self.slots)),
                    column=f"v_{self.next_column}", created=now(), **model)
        return replace(self, slots=self.slots + (slot,), next_column=self.next_column + 1), slot

    def without_slot(self, name: str) -> "CollectionMeta":
        self.slot(name)
        if name == self.active:
            raise CollectionError(f"slot {name!r} is active; switch to another slot before dropping it")
        return replace(self, slots=tuple(s for s in self.slots if s.name != name))

    def with_payload_index(self, keys: Iterable[str]) -> "CollectionMeta":
        """More payload keys declared for indexing (those declared before are kept)."""
        return replace(self, payload_index=tuple(dict.fromkeys((*self.payload_index, *keys))))

    def with_active(self, name: str) -> "CollectionMeta":
        self.slot(name)
        return replace(self, active=name)

    def start_upgrade(self, model: dict[str, Any], *, method: str, seed: int, sample: int) -> "CollectionMeta":
        """starting: the new model's slot is claimed (searches still serve the old slot alone)."""
        if self.upgrade is not None:
            raise CollectionError(f"an upgrade to {self.upgrade.new!r} is already open on {self.name!r}; "
                                  "switch/finish or roll it back first")
        if self.slot().model == model["model"] and self.slot().model_version == model["model_version"]:
            raise CollectionError(f"{model['model']!r} is already the active model of {self.name!r}")
        meta, slot = self.with_slot(model)
        up = UpgradeState(old=self.active, new=slot.name, method=method, seed=seed, sample=sample, started=now())
        return replace(meta, upgrade=up)

    def fitted_upgrade(self, started: str, *, golden, uncertainty: dict[str, Any],
                       fusion: dict[str, Any]) -> "CollectionMeta":
        """starting -> open: the adapter, the uncertainty model and the fusion are fitted."""
        up = self._same_upgrade(started, "starting")
        return replace(self, upgrade=replace(up, state="open", golden=tuple(golden), uncertainty=uncertainty,
                                             fusion=fusion))

    def with_gate(self, started: str, gate: dict[str, Any]) -> "CollectionMeta":
        up = self._same_upgrade(started)
        return replace(self, upgrade=replace(up, gate=gate))

    def switched(self) -> "CollectionMeta":
        """open -> switched: the new slot serves (the old one is kept until finish)."""
        up = self.open_upgrade()
        if up.state == "starting":
            raise CollectionError(f"the upgrade of {self.name!r} is still starting; wait for it (or roll it back)")
        return replace(self, active=up.new, upgrade=replace(up, state="switched"))

    def rolled_back(self) -> "CollectionMeta":
        """any upgrade state -> none: the old slot active, the new slot gone from the metadata."""
        up = self.open_upgrade()
        meta = replace(self, active=up.old, upgrade=None)
        return replace(meta, slots=tuple(s for s in meta.slots if s.name != up.new))

    def finished(self) -> "CollectionMeta":
        """switched -> none: the old slot gone from the metadata."""
        up = self.open_upgrade()
        if up.state != "switched" or self.active != up.new:
            raise CollectionError("switch to the new slot first (upgrade switch)")
        return replace(self, upgrade=None, slots=tuple(s for s in self.slots if s.name != up.old))

    def adopted(self) -> "CollectionMeta":
        """open -> none, for an upgrade measured compatible (`upgrade/compatible.py`): the old slot keeps its vectors
        and takes the new slot's model version (the one it had is kept in `compatible_from`); the new slot is gone."""
        up = self.open_upgrade()
        if up.state != "open" or not ((up.gate or {}).get("compatible_upgrade") or {}).get("compatible"):
            raise CollectionError(f"the upgrade of {self.name!r} is not an open compatible upgrade")
        old, new = self.slot(up.old), self.slot(up.new)
        kept = replace(old, model_version=new.model_version,
                       extra={**old.extra, "compatible_from": [*old.extra.get("compatible_from", []), old.model_version]})
        return replace(self, active=old.name, upgrade=None,
                       slots=tuple(kept if s.name == old.name else s for s in self.slots if s.name != new.name))

    def _same_upgrade(self, started: str, state: str | None = None) -> UpgradeState:
        up = self.upgrade
        if up is None or up.started != started or (state is not None and up.state != state):
            from repspace.errors import ConcurrentChangeError

            raise ConcurrentChangeError(f"the upgrade of {self.name!r} changed meanwhile (rolled back, restarted or "
                                        "switched by another command); nothing was written")
        return up
