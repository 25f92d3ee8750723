"""Prices and lifecycle dates of models, embeddings and vector stores, from configs/pricing.yaml.

Prices are data with a source and date; users can add or override entries (saved in the workspace).
An unknown model is a clear, recoverable error that says how to add its price.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import Field, ValidationError

from .config import Strict, config_path, load_model, validation_error
from .errors import WorkbenchError

Usd = Annotated[float, Field(ge=0, le=1_000_000)]
Positive = Annotated[float, Field(gt=0)]


DEFAULT_EXAMPLE_TOKEN_LIMIT = 65536     # tokens per fine-tuning example, where a model's own limit is not known


class FineTuningPrice(Strict):
    snapshot: str | None = None
    training: Usd | None = None                    # per 1M billed training tokens (hosted)
    input: Usd | None = None                       # fine-tuned model, per 1M tokens
    cached_input: Usd | None = None
    output: Usd | None = None
    training_usd_per_hour: Usd | None = None      # self-hosted: GPU time
    training_tokens_per_s: Positive | None = None
    example_token_limit: Annotated[int, Field(gt=0)] = DEFAULT_EXAMPLE_TOKEN_LIMIT
    new_jobs_end: dt.date | None = None
    shutdown: dt.date | None = None


class Hosting(Strict):
    gpu: str = ""
    usd_per_hour: Usd
    output_tokens_per_s: Positive
    prompt_tokens_per_s: Positive
    min_replicas: Annotated[int, Field(ge=0)] = 1
    peak_to_average: Annotated[float, Field(ge=1)] = 1


class ModelPrice(Strict):
    id: str
    label: str = ""
    aliases: list[str] = []
    provider: Literal["openai", "azure-openai", "together", "fireworks", "self-hosted", "local", "other"] = "other"
    input: Usd = 0
    cached_input: Usd | None = None
    output: Usd = 0
    context_window: Annotated[int, Field(gt=0)] = 128000
    fine_tuning: FineTuningPrice | None = None
    hosting: Hosting | None = None
    deprecation: dt.date | None = None
    shutdown: dt.date | None = None
    unverified: str | None = None                  # why a figure here could not be confirmed (shown with it)
    source: str
    as_of: dt.date

    @property
    def self_hosted(self) -> bool:
        return self.hosting is not None


class EmbeddingPrice(Strict):
    id: str
    label: str = ""
    provider: str = "other"
    price: Usd
    dimensions: Annotated[int, Field(gt=0, le=65536)]
    max_input_tokens: Annotated[int, Field(gt=0)] = 8191
    source: str
    as_of: dt.date


class VectorStorePrice(Strict):
    id: str
    label: str = ""
    licence_usd_per_month: Usd = 0
    machine_usd_per_hour: Usd = 0
    storage_usd_per_gb_month: Usd = 0
    storage_usd_per_gb_day: Usd = 0
    free_gb: Annotated[float, Field(ge=0)] = 0
    read_usd_per_million: Usd = 0
    write_usd_per_million: Usd = 0
    usd_per_1k_queries: Usd = 0
    minimum_usd_per_month: Usd = 0
    source: str
    as_of: dt.date


class PriceBook(Strict):
    models: list[ModelPrice]
    embeddings: list[EmbeddingPrice]
    vector_stores: list[VectorStorePrice]

    def _find(self, items: Iterable[Any], name: str, kind: str, field: str) -> Any:
        items = list(items)
        for item in reversed(items):  # later entries (custom prices) win
            if item.id == name or name in getattr(item, "aliases", ()):
                return item
        known = ", ".join(i.id for i in items)
        raise WorkbenchError(f"no price for {kind} '{name}'; known: {known}. Add it as a custom price "
                             f"(Estimate page, or `custom_prices` in the scenario)", field=field)

    def model(self, name: str, field: str = "model") -> ModelPrice:
        return self._find(self.models, name, "model", field)

    def example_token_limit(self, name: str) -> int:
        """The per-example token limit of fine-tuning a model (the default for unknown models)."""
        try:
            ft = self.model(name).fine_tuning
        except WorkbenchError:
            return DEFAULT_EXAMPLE_TOKEN_LIMIT
        return ft.example_token_limit if ft else DEFAULT_EXAMPLE_TOKEN_LIMIT

    def embedding(self, name: str, field: str = "embedding_model") -> EmbeddingPrice:
        return self._find(self.embeddings, name, "embedding model", field)

    def vector_store(self, name: str, field: str = "vector_store") -> VectorStorePrice:
        return self._find(self.vector_stores, name, "vector store", field)

    def with_custom(self, custom: dict[str, list[dict[str, Any]]] | None, source: str = "custom prices"
                    ) -> PriceBook:
        """This book plus user-entered entries, which override entries of the same id."""
        if not custom:
            return self
        try:
            extra = PriceBook.model_validate({"models": [], "embeddings": [], "vector_stores": [], **custom})
        except ValidationError as exc:
            raise validation_error(exc, PriceBook, source, None) from None
        return PriceBook(models=self.models + extra.models, embeddings=self.embeddings + extra.embeddings,
                         vector_stores=self.vector_stores + extra.vector_stores)

    def sources(self) -> list[dict[str, str]]:
        """Every priced entry with its source and as-of date, for reports."""
        rows = []
        for kind, items in (("model", self.models), ("embedding", self.embeddings),
                            ("vector store", self.vector_stores)):
            rows += [{"kind": kind, "id": i.id, "source": i.source, "as_of": i.as_of.isoformat(),
                      "unverified": getattr(i, "unverified", None) or ""} for i in items]
        return rows


def load_pricing(path: Path | str | None = None) -> PriceBook:
    book = load_model(PriceBook, Path(path) if path else config_path("pricing.yaml"))
    for kind, items in (("models", book.models), ("embeddings", book.embeddings),
                        ("vector_stores", book.vector_stores)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            names = [item.id, *getattr(item, "aliases", [])]
            dup = [n for n in names if n in seen]
            if dup:
                raise WorkbenchError(f"duplicate id or alias '{dup[0]}'", file=str(path or config_path("pricing.yaml")),
                                     field=f"{kind}.{i}.id")
            seen.update(names)
    return book


CUSTOM_PRICES_KEY = "custom_prices"


def saved_custom_prices(ws: Any) -> dict[str, list[dict[str, Any]]]:
    return ws.get_state(CUSTOM_PRICES_KEY) or {}


def save_custom_price(ws: Any, kind: Literal["models", "embeddings", "vector_stores"], entry: dict[str, Any]) -> None:
    """Add or replace one custom price entry (validated first) in the workspace."""
    book = PriceBook(models=[], embeddings=[], vector_stores=[])
    book.with_custom({kind: [entry]}, source=f"custom {kind[:-1]} '{entry.get('id', '?')}'")
    custom = saved_custom_prices(ws)
    custom[kind] = [e for e in custom.get(kind, []) if e.get("id") != entry["id"]] + [entry]
    ws.set_state(CUSTOM_PRICES_KEY, custom)


def delete_custom_price(ws: Any, kind: str, entry_id: str) -> None:
    custom = saved_custom_prices(ws)
    custom[kind] = [e for e in custom.get(kind, []) if e.get("id") != entry_id]
    ws.set_state(CUSTOM_PRICES_KEY, custom)
