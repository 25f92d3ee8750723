"""Providers: which backend serves each role (tokenizer, embedder, chat model, fine-tuner, vector store).

Each role is a typed Protocol (protocols.py); backends register by role and name through the
`workbench.providers` entry-point group (registry.py), and configs/providers.yaml picks one per role with
its own settings block, validated by the backend. Each role has an embedded default that runs offline
with no key; results from an offline stand-in are labelled as such wherever they appear.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import Strict, config_path, line_of, parse_model, read_yaml, validation_error
from ..errors import WorkbenchError
from .protocols import (ChatModel, ChatResult, Embedder, FineTuner, Grounding, JobEvent, JobRequest, JobStatus,
                        StoreStats, VectorHit, VectorStore)
from .registry import REGISTRY, ROLES, Backend, NoSettings, Registry

__all__ = ["Backend", "ChatModel", "ChatResult", "Embedder", "FineTuner", "Grounding", "JobEvent", "JobRequest",
           "JobStatus", "NoSettings", "ProviderInfo", "ProvidersConfig", "REGISTRY", "Registry", "StoreStats",
           "VectorHit", "VectorStore", "active_providers", "get_chat_model", "get_embedder", "get_fine_tuner",
           "get_vector_store", "load_providers_config", "check_connection", "Connection"]


class Choice(BaseModel):
    """One role's backend by name; its other keys are that backend's settings, checked by its own model."""

    model_config = ConfigDict(extra="allow")
    provider: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OpenAISettings(Strict):
    """How to reach an OpenAI-compatible server; shared by every backend that talks to one."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2


class ProvidersConfig(Strict):
    tokenizer: Choice = Choice(provider="tiktoken")
    embedder: Choice = Choice(provider="local")
    chat: Choice = Choice(provider="llamacpp")
    fine_tuner: Choice = Choice(provider="local")
    vector_store: Choice = Choice(provider="faiss")
    openai: OpenAISettings = OpenAISettings()

    def settings(self, role: str, name: str | None = None) -> BaseModel:
        """The validated settings block of a role's backend (the chosen one, or `name` with its defaults)."""
        choice = getattr(self, role)
        if name is not None and name != choice.provider:
            return REGISTRY.get(role, name).settings()
        return REGISTRY.get(role, choice.provider).settings.model_validate(choice.options())

    @property
    def chat_context_window(self) -> int | None:
        return getattr(self.settings("chat"), "context_window", None)


PROVIDERS_ENV = "WORKBENCH_PROVIDERS"


def providers_path() -> Path:
    """configs/providers.yaml, or the file named by $WORKBENCH_PROVIDERS."""
    return Path(os.environ.get(PROVIDERS_ENV) or config_path("providers.yaml"))


def load_providers_config(path: Path | str | None = None) -> ProvidersConfig:
    """configs/providers.yaml, or the file named by $WORKBENCH_PROVIDERS; each role's settings are checked by
    the backend it names, and an unknown name lists the registered ones."""
    path = Path(path) if path else providers_path()
    data, node = read_yaml(path)
    cfg = parse_model(ProvidersConfig, data, path, node)
    for role in ROLES:
        choice = getattr(cfg, role)
        try:
            backend = REGISTRY.get(role, choice.provider)
        except WorkbenchError as exc:
            raise WorkbenchError(exc.message, file=str(path), line=line_of(node, (role, "provider")),
                                 field=f"{role}.provider") from None
        try:
            backend.settings.model_validate(choice.options())
        except ValidationError as exc:
            err = validation_error(exc, backend.settings, path, _child(node, role))
            raise WorkbenchError(err.message, file=str(path), line=err.line,
                                 field=f"{role}.{err.field}" if err.field else role) from None
    return cfg


def _child(node: Any, key: str) -> Any:
    for key_node, value_node in getattr(node, "value", []) or []:
        if getattr(key_node, "value", None) == key:
            return value_node
    return None


@dataclass(frozen=True)
class ProviderInfo:
    """What the UI and reports say about the backend serving a role."""

    role: str
    name: str
    label: str
    offline: bool
    unavailable: str | None = None


def active_providers(cfg: ProvidersConfig) -> list[ProviderInfo]:
    """The backend serving each role, with its label from the registry."""
    out = []
    for role in ROLES:
        b = REGISTRY.get(role, getattr(cfg, role).provider)
        out.append(ProviderInfo(role, b.name, b.label, b.offline, b.why_unavailable()))
    return out


def _make(role: str, cfg: ProvidersConfig | None, name: str | None = None) -> Any:
    cfg = cfg or load_providers_config()
    backend = REGISTRY.get(role, name or getattr(cfg, role).provider)
    reason = backend.why_unavailable()
    if reason:
        raise WorkbenchError(f"the {role.replace('_', ' ')} provider '{backend.name}' cannot run here: {reason}",
                             field=f"{role}.provider")
    return backend.factory(cfg.settings(role, backend.name), cfg)


def get_embedder(cfg: ProvidersConfig | None = None) -> Embedder:
    """The configured embedder (the local one unless configs/providers.yaml says otherwise)."""
    return _make("embedder", cfg)


def get_chat_model(cfg: ProvidersConfig | None = None, name: str | None = None) -> ChatModel:
    """The configured chat model (the local LLM unless configured otherwise), or the backend named."""
    return _make("chat", cfg, name)


def get_fine_tuner(cfg: ProvidersConfig | None = None, name: str | None = None) -> FineTuner:
    """The configured fine-tuning backend, or the one named (as the Fine-tune page's choice)."""
    return _make("fine_tuner", cfg, name)


def get_vector_store(cfg: ProvidersConfig | None = None) -> Any:
    """The configured vector store's opener: `.open(index_dir, dimensions, approximate, fresh)` -> VectorStore."""
    return _make("vector_store", cfg)


@dataclass(frozen=True)
class Connection:
    """What an OpenAI-compatible server offers, and the configured models found there."""

    base_url: str
    models: list[str]
    checked: dict[str, str]          # role -> the configured model, offered by the server


def check_connection(cfg: ProvidersConfig | None = None) -> Connection:
    """Reach the configured OpenAI-compatible server, list its models and check the ones the roles use."""
    from .openai import DEFAULT_BASE_URL, list_models, require_model

    cfg = cfg or load_providers_config()
    models = list_models(cfg.openai)
    checked = {role: cfg.settings(role).model for role in ("embedder", "chat")
               if getattr(cfg, role).provider == "openai"}
    for model in checked.values():
        require_model(cfg.openai, models, model)
    return Connection(cfg.openai.base_url or DEFAULT_BASE_URL, models, checked)
