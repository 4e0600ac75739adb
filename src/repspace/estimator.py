"""The one estimator base, in scikit-learn's shape: translators, compressors and the sweep's reducers all derive from it.

- `__init__` takes hyper-parameters only and stores each under its own name (no validation, no work);
- `fit(X, y=None, ...)` learns, keeps what it learned in trailing-underscore attributes and returns self;
- `get_params()` / `set_params(**params)` read and write the hyper-parameters (the `__init__` signature);
- `check_is_fitted()` raises `NotFittedError` until `fit` (or `load`) has run — `transform` and `save` call it;
- `save(path)` writes `<family>.json` (format tag, method, params, the family's provenance fields, extra state)
  and `state.safetensors` (the arrays named in `_state_keys`) atomically; `Family.load(path)` rebuilds any
  registered estimator of that family from them. Nothing is ever pickled.

Registration, written once: a family base (Translator, Compressor, Reducer) sets `family` and its own
`registry = {}`; every subclass that sets `name` is registered in its family's registry under that name, so a
new estimator is one new class (one file) plus the import line that loads it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from repspace.errors import InvalidInputError, NotFittedError, SpaceFormatError

E = TypeVar("E", bound="Estimator")


class Estimator:
    """Base of every fitted object. Subclasses list their learned arrays in `_state_keys`."""

    family: ClassVar[str] = "estimator"  # translator | compressor | reducer: names the saved JSON file
    name: ClassVar[str] = "estimator"  # the registry key (`--method` in the CLI)
    registry: ClassVar[dict[str, type["Estimator"]]] = {}
    _state_keys: ClassVar[tuple[str, ...]] = ()  # arrays written to state.safetensors
    _meta_fields: ClassVar[dict[str, str]] = {}  # JSON key -> learned attribute, written beside the params
    _fitted_attr: ClassVar[str] = "source_dim_"  # set last by fit and by load

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "registry" not in cls.__dict__ and "name" in cls.__dict__:
            cls.registry[cls.name] = cls

    # ---------------------------------------------------------------- scikit-learn shape
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, as `__init__` takes them."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self: E, **params: Any) -> E:
        known = self._param_names()
        for k, v in params.items():
            if k not in known:
                raise InvalidInputError(f"{self.family} {self.name!r} has no parameter {k!r}; it has {', '.join(known) or 'none'}")
            setattr(self, k, v)
        return self

    def is_fitted(self) -> bool:
        return hasattr(self, self._fitted_attr)

    def check_is_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{self.family} {self.name!r} is not fitted yet; call fit first")

    @property
    def label(self) -> str:
        """How a sweep or a report names this estimator."""
        return self.name

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------- subclass hooks
    def _extra_state(self) -> dict[str, Any] | None:
        """JSON-able learned state beyond the arrays, saved under "extra" (None: no "extra" key)."""
        return None

    def _set_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------- storage
    @classmethod
    def _format(cls) -> str:
        return f"repspace.{cls.family}"

    def save(self, path: str | Path) -> Path:
        """Write `<family>.json` + `state.safetensors` to the directory `path` (atomically); returns it."""
        from repspace._io import save_estimator

        self.check_is_fitted()
        meta: dict[str, Any] = {"format": self._format(), "format_version": 1, "method": self.name,
                                "params": self.get_params()}
        meta.update({key: getattr(self, attr) for key, attr in self._meta_fields.items()})
        extra = self._extra_state()
        if extra is not None:
            meta["extra"] = extra
        return save_estimator(path, f"{self.family}.json", meta, {k: getattr(self, k) for k in self._state_keys})

    @classmethod
    def load(cls, path: str | Path) -> "Estimator":
        """Rebuild a saved estimator of this family (any registered method) from `path`."""
        from repspace._io import load_estimator, read_meta

        filename = f"{cls.family}.json"
        meta = read_meta(path, filename, cls._format(), cls.family)
        method = meta.get("method")
        if method not in cls.registry:
            raise SpaceFormatError(f"{path}: unknown {cls.family} method {method!r}")
        klass = cls.registry[method]
        meta, arrays = load_estimator(path, filename, cls._format(), cls.family, keys=klass._state_keys)
        try:
            obj = klass(**meta.get("params", {}))
            for key, attr in klass._meta_fields.items():
                setattr(obj, attr, meta[key])
        except (TypeError, KeyError) as e:
            raise SpaceFormatError(f"{path}/{filename} does not describe a {method!r} {cls.family}: {e}") from None
        for k in klass._state_keys:
            setattr(obj, k, arrays[k])
        obj._set_extra_state(meta.get("extra") or {})
        return obj
