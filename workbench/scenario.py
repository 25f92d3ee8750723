"""What a cost and latency estimate is computed from: the scenario, its defaults and prefills.

A scenario is plain data (YAML/JSON); `configs/estimate.yaml` holds the defaults, latency figures and
how Decide answers and measured data prefill it.
"""
from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, model_validator

from .config import Strict, config_path, load_model, parse_model, read_yaml
from .errors import WorkbenchError

NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=100_000_000_000)]


class FineTuningScenario(Strict):
    model: str = "llama-3.1-8b-lora-l4"      # outlives the horizon (configs/estimate.yaml says why)
    training_examples: Annotated[int, Field(ge=0, le=100_000_000)] = 500
    tokens_per_example: Annotated[float, Field(gt=0, le=10_000_000, allow_inf_nan=False)] = 400
    epochs: Literal["auto"] | Annotated[int, Field(ge=1, le=50)] = "auto"
    retrains_per_year: Annotated[float, Field(ge=0, le=365, allow_inf_nan=False)] = 4
    examples_added_per_retrain: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    prompt_tokens: Tokens | None = None      # the fine-tuned arm's prompt, if shorter than the shared one
    prep_hours: NonNeg = 0


class RagScenario(Strict):
    model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    corpus_tokens: Tokens = 2_000_000
    chunk_tokens: Annotated[int, Field(gt=0, le=1_000_000)] = 512
    chunk_overlap: Annotated[int, Field(ge=0)] = 0
    top_k: Annotated[int, Field(ge=0, le=1000)] = 4
    query_tokens: Tokens = 50                # tokens of the question that gets embedded
    monthly_churn: Share = 0.1              # share of the corpus changed (re-embedded) each month
    monthly_growth: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0  # share of the initial corpus added each month
    vector_store: str = "faiss-local"
    metadata_bytes_per_chunk: Annotated[int, Field(ge=0, le=10_000_000)] = 2048
    prep_hours: NonNeg = 0

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> RagScenario:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens "
                             f"({self.chunk_tokens})")
        return self


class HybridScenario(Strict):
    routing_share_rag: Share = 0.5          # hybrid routing: share of questions sent to RAG
    router_ms: NonNeg = 5


class ModelLatency(Strict):
    ttft_ms: NonNeg
    ms_per_1k_prompt_tokens: NonNeg
    output_tokens_per_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LatencyOverrides(Strict):
    """Per-stage figures that replace the configured defaults (for example measured ones)."""

    embed_query_ms: NonNeg | None = None
    vector_search_ms: NonNeg | None = None
    rag_model: ModelLatency | None = None
    ft_model: ModelLatency | None = None


class Scenario(Strict):
    name: str = "scenario"
    # At least one query a month: per-query figures divide by it (1e-300 queries made 300-digit costs).
    queries_per_month: Annotated[float, Field(ge=1, le=1e12, allow_inf_nan=False)] = 100_000
    prompt_tokens: Tokens = 200
    output_tokens: Tokens = 150
    cached_prompt_share: Share = 0
    months: Annotated[int, Field(ge=1, le=120)] = 12
    hourly_rate_usd: NonNeg = 0
    start_date: dt.date | None = None
    fine_tuning: FineTuningScenario = FineTuningScenario()
    rag: RagScenario = RagScenario()
    hybrid: HybridScenario = HybridScenario()
    latency: LatencyOverrides = LatencyOverrides()
    custom_prices: dict[str, list[dict[str, Any]]] | None = None

    def start(self) -> dt.date:
        return self.start_date or dt.date.today()


class StoreLatency(Strict):
    base_ms: NonNeg
    ms_per_100k_vectors: NonNeg


class LatencyDefaults(Strict):
    source: str
    default_model: ModelLatency
    models: dict[str, ModelLatency]
    embeddings: dict[str, NonNeg]
    default_embedding_ms: NonNeg
    vector_stores: dict[str, StoreLatency]
    default_vector_store: StoreLatency


class EstimateConfig(Strict):
    scenario: dict[str, Any]
    latency: LatencyDefaults
    prefill: dict[str, dict[str, dict[str, Any]]] = {}


def load_estimate_config(path: Path | str | None = None) -> EstimateConfig:
    path = Path(path) if path else config_path("estimate.yaml")
    cfg = load_model(EstimateConfig, path)
    parse_model(Scenario, cfg.scenario, f"{path} (scenario)")
    return cfg


def default_scenario(cfg: EstimateConfig | None = None) -> Scenario:
    cfg = cfg or load_estimate_config()
    return Scenario.model_validate(cfg.scenario)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_from_dict(data: Any, source: str = "scenario", base: Scenario | None = None,
                       node: Any = None) -> Scenario:
    """Validate a scenario mapping, filling what it leaves out from the defaults (or from base).

    `node` is the YAML node tree the data came from, so errors can name their line.
    """
    if not isinstance(data, Mapping):
        raise WorkbenchError("expected a mapping of scenario keys", file=source)
    start = base.model_dump(mode="json", exclude_none=True) if base else load_estimate_config().scenario
    return parse_model(Scenario, _merge(start, data), source, node)


def load_scenario(path: Path | str) -> Scenario:
    """Read a scenario YAML file; keys it does not give come from configs/estimate.yaml."""
    data, node = read_yaml(path)
    if data is None:
        raise WorkbenchError("the file is empty", file=str(path))
    return scenario_from_dict(data, str(path), node=node)


class DataStats(Strict):
    """Figures measured on a workspace's data, which replace guesses in the scenario."""

    corpus_tokens: Tokens | None = None
    training_examples: Annotated[int, Field(ge=0)] | None = None
    tokens_per_example: Annotated[float, Field(gt=0)] | None = None
    prompt_tokens: Tokens | None = None
    output_tokens: Tokens | None = None


def prefill(base: Scenario, answers: Mapping[str, str] | None = None, data: DataStats | None = None,
            cfg: EstimateConfig | None = None) -> tuple[Scenario, list[str]]:
    """A scenario adjusted by Decide answers, then by measured data; with a note for each change."""
    cfg = cfg or load_estimate_config()
    values = base.model_dump(mode="json", exclude_none=True)
    notes: list[str] = []
    for qid, aid in (answers or {}).items():
        change = cfg.prefill.get(qid, {}).get(aid)
        if change:
            values = _merge(values, change)
            notes.append(f"from Decide ({qid} = {aid}): {_flat(change)}")
    if data:
        measured: dict[str, Any] = {}
        for key in ("prompt_tokens", "output_tokens"):
            if getattr(data, key) is not None:
                measured[key] = getattr(data, key)
        if data.corpus_tokens is not None:
            measured.setdefault("rag", {})["corpus_tokens"] = data.corpus_tokens
        for key in ("training_examples", "tokens_per_example"):
            if getattr(data, key) is not None:
                measured.setdefault("fine_tuning", {})[key] = getattr(data, key)
        if measured:
            values = _merge(values, measured)
            notes.append(f"measured on the workspace data: {_flat(measured)}")
    return Scenario.model_validate(values), notes


def measured_speeds(measured: Mapping[str, Mapping[str, Any]]) -> tuple[LatencyOverrides, list[str]]:
    """Model speeds measured in Compare on this machine (a local model's own timings), as latency overrides
    for the RAG and fine-tuned models, with a note naming what each came from."""
    found: dict[str, ModelLatency] = {}
    notes = []
    for option, arm in (("rag", "rag_model"), ("fine_tuning", "ft_model")):
        speed = (measured.get(option) or {}).get("model_speed")
        if not speed:
            continue
        found[arm] = ModelLatency(ttft_ms=speed["ttft_ms"], ms_per_1k_prompt_tokens=speed["ms_per_1k_prompt_tokens"],
                                  output_tokens_per_s=speed["output_tokens_per_s"])
        notes.append(f"{arm.replace('_', ' ')} speed measured on this machine with {measured[option]['provider']} "
                     f"({speed['n']} answers): {speed['ttft_ms']:,.0f} ms + {speed['ms_per_1k_prompt_tokens']:,.0f} ms "
                     f"per 1k prompt tokens to the first token, {speed['output_tokens_per_s']:,.0f} tokens/s")
    return LatencyOverrides(**found), notes


def _flat(change: Mapping[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in change.items():
        if isinstance(value, Mapping):
            parts.append(_flat(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key} = {value:,}" if isinstance(value, (int, float)) else f"{prefix}{key} = {value}")
    return ", ".join(parts)


# --- named scenarios saved in a workspace ------------------------------------------------------------

SCENARIOS_KEY = "scenarios"


def saved_scenarios(ws: Any) -> dict[str, dict[str, Any]]:
    return ws.get_state(SCENARIOS_KEY) or {}


def save_scenario(ws: Any, scenario: Scenario) -> None:
    if not scenario.name.strip():
        raise WorkbenchError("a saved scenario needs a name", field="name")
    scenarios = saved_scenarios(ws)
    scenarios[scenario.name] = scenario.model_dump(mode="json", exclude_none=True)
    ws.set_state(SCENARIOS_KEY, scenarios)


def delete_scenario(ws: Any, name: str) -> None:
    scenarios = saved_scenarios(ws)
    scenarios.pop(name, None)
    ws.set_state(SCENARIOS_KEY, scenarios)


def get_saved_scenario(ws: Any, name: str) -> Scenario:
    scenarios = saved_scenarios(ws)
    if name not in scenarios:
        raise WorkbenchError(f"no saved scenario named '{name}'; saved: {', '.join(scenarios) or 'none'}")
    return Scenario.model_validate(scenarios[name])


# --- flat views, for forms and tables ----------------------------------------------------------------

def flatten(s: Scenario) -> dict[str, Any]:
    """The scenario as dotted paths -> values (e.g. 'rag.top_k': 4), without custom prices."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value

    walk("", s.model_dump(mode="json", exclude={"custom_prices"}))
    return out


def from_flat(values: Mapping[str, Any], source: str = "scenario") -> Scenario:
    """Build a scenario from dotted paths (None values are left out)."""
    nested: dict[str, Any] = {}
    for path, value in values.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_model(Scenario, nested, source)
