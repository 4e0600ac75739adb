"""`Checkpoint`: the whole training state after an epoch, written atomically as safetensors + JSON (no pickle)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from repspace._io import atomic_dir
from repspace.errors import InvalidInputError


def fingerprint(settings: dict[str, Any], x: torch.Tensor) -> str:
    """A short hash of a run's settings (JSON-able) and its first 64 training inputs."""
    data = hashlib.sha256(x[: min(len(x), 64)].numpy().tobytes()).hexdigest()
    return hashlib.sha256(json.dumps({**settings, "x": data}, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoint:
    """A partial run in directory `path`: the loss's state (model, heads, teachers, buffers), the optimiser's,
    the schedule's, the order's generator, torch's global RNG, the epochs done and their history.

    `fingerprint` names the run's settings; a checkpoint written with another fingerprint is refused, so a
    re-run resumes only the run it belongs to. `beside(out, …)` puts it at ``.<out name>.partial/``."""

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path, self.fingerprint = Path(path), fingerprint

    @classmethod
    def beside(cls, out: str | Path, fingerprint: str) -> "Checkpoint":
        out = Path(out)
        return cls(out.parent / f".{out.name}.partial", fingerprint)

    def exists(self) -> bool:
        return (self.path / "state.json").is_file()

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def save(self, loss: torch.nn.Module, opt: torch.optim.Optimizer, schedule: Any, order: Any, epoch: int,
             history: list[dict]) -> None:
        from safetensors.torch import save_file

        tensors = {f"obj.{k}": v.detach().cpu().contiguous().clone() for k, v in loss.state_dict().items()}
        opt_state = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in opt_state["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"opt.{idx}.{k}"] = v.detach().cpu().contiguous().clone()
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        tensors["rng.torch"] = torch.random.get_rng_state()
        order_json = {}
        for k, v in order.state_dict().items():
            if torch.is_tensor(v):
                tensors[f"order.{k}"] = v
            else:
                order_json[k] = v
        meta = {"epoch": epoch, "history": history, "fingerprint": self.fingerprint, "opt_scalars": scalars,
                "opt_groups": opt_state["param_groups"], "schedule": schedule.state_dict(), "order": order_json}
        with atomic_dir(self.path) as tmp:
            save_file(tensors, str(tmp / "state.safetensors"))
            (tmp / "state.json").write_text(json.dumps(meta, indent=1))

    def load(self, loss: torch.nn.Module, opt: torch.optim.Optimizer, schedule: Any,
             order: Any) -> tuple[int, list[dict]] | None:
        """Restore the state; returns (epochs done, their history), or None when there is no checkpoint."""
        from safetensors.torch import load_file

        if not self.exists():
            return None
        meta = json.loads((self.path / "state.json").read_text())
        if meta.get("fingerprint") != self.fingerprint:
            raise InvalidInputError(f"{self.path} holds a partial run with other settings (method, data, epochs, …); "
                                    "re-run with the same arguments to resume it, or delete it to start over")
        tensors = load_file(str(self.path / "state.safetensors"))
        loss.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("obj.")})
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        for idx, sc in meta["opt_scalars"].items():
            state.setdefault(int(idx), {}).update(sc)
        opt.load_state_dict({"state": state, "param_groups": meta["opt_groups"]})
        schedule.load_state_dict(meta.get("schedule") or {})
        order.load_state_dict({**meta.get("order", {}),
                               **{k[6:]: v for k, v in tensors.items() if k.startswith("order.")}})
        if "rng.torch" in tensors:  # checkpoints written before the loop kept it lack it
            torch.random.set_rng_state(tensors["rng.torch"])
        return int(meta["epoch"]), list(meta["history"])
