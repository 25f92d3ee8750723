"""The registry of backends, by role and name.

Every backend, built-in or from another package, registers through the `workbench.providers` entry-point
group: an entry point names a function `register(registry)` that calls `registry.add(Backend(...))`.
Adding a backend is one module with that function, and one entry-point line in its package's metadata.
Listing the backends imports every backend module, so they import numpy and their SDKs inside the
functions that use them: the app's first page lists the providers and should not load the numeric stack.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from pydantic import BaseModel

from ..config import Strict
from ..errors import WorkbenchError

GROUP = "workbench.providers"
ROLES = ("tokenizer", "embedder", "chat", "fine_tuner", "vector_store")
# Used only when the package's own entry points are missing (a checkout run without `pip install -e .`).
BUILTIN = ("workbench.providers.tiktoken_counter", "workbench.providers.local_embedder", "workbench.providers.openai",
           "workbench.providers.sentence_transformers", "workbench.providers.extractive",
           "workbench.providers.llamacpp", "workbench.providers.local_trainer", "workbench.providers.faiss_store",
           "workbench.providers.qdrant_store", "workbench.providers.lora_trainer", "workbench.providers.together",
           "workbench.providers.fireworks")


class NoSettings(Strict):
    """A backend with nothing to configure."""


@dataclass(frozen=True)
class Backend:
    role: str
    name: str
    label: str
    offline: bool
    factory: Callable[[Any, Any], Any]          # (its validated settings, the whole providers config) -> provider
    settings: type[BaseModel] = NoSettings      # its settings block in configs/providers.yaml (extra keys refused)
    unavailable: Callable[[], str | None] | None = None   # why it cannot run here (e.g. an extra not installed)

    def why_unavailable(self) -> str | None:
        return self.unavailable() if self.unavailable else None


class Registry:
    """Backends by role and name; filled from the entry points on first use."""

    def __init__(self) -> None:
        self._backends: dict[str, dict[str, Backend]] = {role: {} for role in ROLES}
        self._loaded = False
        self.broken: dict[str, str] = {}      # entry point -> why it failed to load (a broken plugin stays out)

    def add(self, backend: Backend) -> None:
        if backend.role not in self._backends:
            raise WorkbenchError(f"unknown provider role '{backend.role}'; roles: {', '.join(ROLES)}")
        self._backends[backend.role][backend.name] = backend

    def load(self) -> Registry:
        """Run every registered entry point once (the built-in ones directly if the package is not installed)."""
        if self._loaded:
            return self
        self._loaded = True
        found = list(entry_points(group=GROUP))
        own = {ep.value.split(":")[0] for ep in found}
        for module in BUILTIN:
            if module not in own:
                importlib.import_module(module).register(self)
        for ep in found:
            try:
                ep.load()(self)
            except Exception as exc:  # a broken plugin is reported, and the others still load
                self.broken[f"{ep.name} ({ep.value})"] = f"{type(exc).__name__}: {exc}"
        return self

    def reset(self) -> None:
        """Forget every backend; the next use loads the entry points again (e.g. after installing a plugin)."""
        self.__init__()

    def get(self, role: str, name: str) -> Backend:
        backends = self.load()._backends[role]
        if name not in backends:
            raise WorkbenchError(f"unknown {role.replace('_', ' ')} provider '{name}'; registered: "
                                 f"{', '.join(sorted(backends)) or 'none'}", field=f"{role}.provider")
        return backends[name]

    def backends(self, role: str) -> list[Backend]:
        return list(self.load()._backends[role].values())


REGISTRY = Registry()
