"""Providers: which backend serves each role (tokenizer, embedder, chat model, fine-tuner).

Each role has an embedded default that runs offline with no key, and real backends switched on by
configs/providers.yaml. Results from an offline stand-in are labelled as such wherever they appear.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from ..config import Strict, config_path, load_model
from ..errors import WorkbenchError


@dataclass(frozen=True)
class ProviderInfo:
    """What the UI and reports say about a provider."""

    role: str
    name: str
    label: str
    offline: bool


# Every known backend by role and name. Adding a backend adds a line here and one module beside this file.
CATALOGUE: dict[str, dict[str, ProviderInfo]] = {
    "tokenizer": {
        "tiktoken": ProviderInfo("tokenizer", "tiktoken", "tiktoken (bundled BPE files)", True),
    },
    "embedder": {
        "local": ProviderInfo("embedder", "local", "all-MiniLM-L6-v2 int8, local (offline default)", True),
        "openai": ProviderInfo("embedder", "openai", "OpenAI-compatible embeddings", False),
        "sentence-transformers": ProviderInfo("embedder", "sentence-transformers",
                                              "sentence-transformers model from a local folder (optional, torch)",
                                              True),
    },
    "chat": {
        "extractive": ProviderInfo("chat", "extractive",
                                   "Extractive answerer (offline stand-in, not an LLM)", True),
        "openai": ProviderInfo("chat", "openai", "OpenAI-compatible chat model", False),
    },
    "fine_tuner": {
        "local": ProviderInfo("fine_tuner", "local",
                              "Local trainer (offline stand-in for a fine-tuned LLM)", True),
        "openai": ProviderInfo("fine_tuner", "openai", "OpenAI fine-tuning jobs", False),
    },
}


class Choice(Strict):
    provider: str
    model: str | None = None          # for OpenAI-compatible backends: the model name
    context_window: Annotated[int, Field(gt=0)] | None = None   # for models the price list does not know


class OpenAISettings(Strict):
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2


class ProvidersConfig(Strict):
    tokenizer: Choice = Choice(provider="tiktoken")
    embedder: Choice = Choice(provider="local")
    chat: Choice = Choice(provider="extractive")
    fine_tuner: Choice = Choice(provider="local")
    openai: OpenAISettings = OpenAISettings()


PROVIDERS_ENV = "WORKBENCH_PROVIDERS"


def load_providers_config(path: Path | str | None = None) -> ProvidersConfig:
    """configs/providers.yaml, or the file named by $WORKBENCH_PROVIDERS."""
    import os

    path = path or os.environ.get(PROVIDERS_ENV) or config_path("providers.yaml")
    return load_model(ProvidersConfig, Path(path))


def active_providers(cfg: ProvidersConfig) -> list[ProviderInfo]:
    """The provider serving each role, with its label; unknown names are shown as such."""
    out = []
    for role, names in CATALOGUE.items():
        name = getattr(cfg, role).provider
        out.append(names.get(name, ProviderInfo(role, name, f"{name} (unknown provider)", False)))
    return out


# --- what a provider is ------------------------------------------------------------------------------

@runtime_checkable
class Embedder(Protocol):
    name: str
    label: str
    offline: bool
    model_id: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, one row per text."""


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str


@runtime_checkable
class ChatModel(Protocol):
    name: str
    label: str
    offline: bool
    model_id: str

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512) -> ChatResult:
        """Answer a chat request."""


def get_embedder(cfg: ProvidersConfig | None = None) -> Any:
    """The configured embedder (the local one unless configs/providers.yaml says otherwise)."""
    cfg = cfg or load_providers_config()
    name = cfg.embedder.provider
    if name == "local":
        from .local_embedder import LocalEmbedder
        return LocalEmbedder()
    if name == "openai":
        from .openai import OpenAIEmbedder
        return OpenAIEmbedder(cfg.openai, cfg.embedder.model or "text-embedding-3-small")
    if name == "sentence-transformers":
        from .sentence_transformers import SentenceTransformersEmbedder
        return SentenceTransformersEmbedder(cfg.embedder.model)
    raise WorkbenchError(f"unknown embedder provider '{name}'; expected one of: {', '.join(CATALOGUE['embedder'])}",
                         field="embedder.provider")


def get_chat_model(cfg: ProvidersConfig | None = None) -> Any:
    """The configured chat model: the offline extractive answerer unless configured otherwise."""
    cfg = cfg or load_providers_config()
    name = cfg.chat.provider
    if name == "extractive":
        from .extractive import ExtractiveAnswerer
        return ExtractiveAnswerer()
    if name == "openai":
        from .openai import OpenAIChat
        return OpenAIChat(cfg.openai, cfg.chat.model or "gpt-4o-mini")
    raise WorkbenchError(f"unknown chat provider '{name}'; expected one of: {', '.join(CATALOGUE['chat'])}",
                         field="chat.provider")


def get_fine_tuner(cfg: ProvidersConfig | None = None) -> Any:
    """The hosted fine-tuning provider (OpenAI jobs API); the local trainer runs through workbench.finetune."""
    cfg = cfg or load_providers_config()
    from .openai import OpenAIFineTuner
    return OpenAIFineTuner(cfg.openai)
