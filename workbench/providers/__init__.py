"""Providers: which backend serves each role (tokenizer, embedder, chat model, fine-tuner).

Each role has an embedded default that runs offline with no key, and real backends switched on by
configs/providers.yaml. Results from an offline stand-in are labelled as such wherever they appear.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..config import Strict, config_path, load_model


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
        "local": ProviderInfo("embedder", "local", "Local embedder (offline default)", True),
        "openai": ProviderInfo("embedder", "openai", "OpenAI-compatible embeddings", False),
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


def load_providers_config(path: Path | str | None = None) -> ProvidersConfig:
    return load_model(ProvidersConfig, Path(path) if path else config_path("providers.yaml"))


def active_providers(cfg: ProvidersConfig) -> list[ProviderInfo]:
    """The provider serving each role, with its label; unknown names are shown as such."""
    out = []
    for role, names in CATALOGUE.items():
        name = getattr(cfg, role).provider
        out.append(names.get(name, ProviderInfo(role, name, f"{name} (unknown provider)", False)))
    return out
