"""What a cost and latency estimate is computed from: the scenario, its defaults and prefills.

A scenario is plain data (YAML/JSON); `configs/estimate.yaml` holds the defaults, latency figures and
how Decide answers and measured data prefill it.
"""
from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
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
    in_process_index: bool = False          # the index lives in the app's own process: no machine of its own
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


class MeasuredRules(Strict):
    """When figures measured on a workspace's data replace the scenario's: only where they can stand for production."""

    min_pairs: Annotated[int, Field(ge=0)] = 20
    min_output_tokens: NonNeg = 40
    min_tokens_per_example: NonNeg = 100
    in_process_max_corpus_tokens: Tokens = 20_000_000
    in_process_store: str = "faiss-local"


class EstimateConfig(Strict):
    scenario: dict[str, Any]
    latency: LatencyDefaults
    prefill: dict[str, dict[str, dict[str, Any]]] = {}
    measured: MeasuredRules = MeasuredRules()


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


def load_scenario(path: Path | str, base: Scenario | None = None) -> Scenario:
    """Read a scenario YAML file; keys it does not give come from base, else from configs/estimate.yaml."""
    data, node = read_yaml(path)
    if data is None:
        raise WorkbenchError("the file is empty", file=str(path))
    return scenario_from_dict(data, str(path), base=base, node=node)


PRESETS_DIR = "scenarios"


def preset_names() -> list[str]:
    """The example scenarios shipped in configs/scenarios/, by file name without .yaml."""
    folder = config_path(PRESETS_DIR)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_preset(name: str) -> Scenario:
    """One of the shipped example scenarios (see preset_names)."""
    names = preset_names()
    if name not in names:
        raise WorkbenchError(f"no preset scenario '{name}'; shipped: {', '.join(names) or 'none'}")
    return load_scenario(config_path(PRESETS_DIR) / f"{name}.yaml")


class DataStats(Strict):
    """Figures measured on a workspace's data, which replace guesses in the scenario."""

    corpus_tokens: Tokens | None = None
    training_examples: Annotated[int, Field(ge=0)] | None = None
    tokens_per_example: Annotated[float, Field(gt=0)] | None = None
    prompt_tokens: Tokens | None = None
    output_tokens: Tokens | None = None


# What the page and the memo call the figures a prefill sets.
FIELD_LABELS = {
    "queries_per_month": "Queries per month", "prompt_tokens": "Prompt tokens per query",
    "output_tokens": "Output tokens per answer", "fine_tuning.training_examples": "Training examples",
    "fine_tuning.tokens_per_example": "Tokens per example", "fine_tuning.retrains_per_year": "Retrains per year",
    "rag.corpus_tokens": "Corpus tokens", "rag.monthly_churn": "Monthly churn", "rag.monthly_growth": "Monthly growth",
    "rag.vector_store": "Vector store", "rag.in_process_index": "Index in the app's process",
}
MEASURED_FIELDS = ("queries_per_month", "prompt_tokens", "output_tokens", "fine_tuning.training_examples",
                   "fine_tuning.tokens_per_example", "rag.corpus_tokens", "rag.vector_store", "rag.in_process_index")


@dataclass
class Prefill:
    """A prefilled scenario, where each prefilled figure came from, and a sentence per figure worth reading."""

    scenario: Scenario
    sources: dict[str, str] = field(default_factory=dict)   # dotted path -> "default", "from your Decide answer ..."
    notes: list[str] = field(default_factory=list)


def _get(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a nested mapping ({} where the path does not exist)."""
    for part in path.split("."):
        values = values.get(part, {}) if isinstance(values, Mapping) else {}
    return values


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[leaf] = value


def _shown(value: Any) -> str:
    """A prefilled value as a person reads it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, (int, float)) else str(value)


def explain_prefill(base: Scenario, answers: Mapping[str, str] | None = None, data: DataStats | None = None,
                    cfg: EstimateConfig | None = None) -> Prefill:
    """A scenario adjusted by Decide answers, then by measured data where it can stand for production traffic.

    Terse test answers or a handful of pairs say little about production: such measurements leave the
    figure as it was (configs/estimate.yaml `measured` draws the line), and the figure's source says why.
    """
    cfg = cfg or load_estimate_config()
    rules = cfg.measured
    default = default_scenario(cfg).model_dump(mode="json")
    values = base.model_dump(mode="json", exclude_none=True)
    decide_paths = [path for answers_of in cfg.prefill.values() for change in answers_of.values()
                    for path, _ in _leaves(change)]
    sources = {path: ("default" if _get(values, path) == _get(default, path) else "as entered")
               for path in dict.fromkeys([*decide_paths, *MEASURED_FIELDS])}
    touched: dict[str, None] = {}

    def put(path: str, value: Any, source: str) -> None:
        _set(values, path, value)
        sources[path] = source
        touched[path] = None

    def keep(path: str, why: str) -> None:
        sources[path] = f"{sources[path]}: {why}"
        touched[path] = None

    for qid, aid in (answers or {}).items():
        for path, value in _leaves(cfg.prefill.get(qid, {}).get(aid) or {}):
            put(path, value, f"from your Decide answer {_answer_words(qid, aid)}")
    data = data or DataStats()
    if data.corpus_tokens is not None:
        put("rag.corpus_tokens", data.corpus_tokens, "measured on the workspace's documents")
        if data.corpus_tokens <= rules.in_process_max_corpus_tokens:
            why = f"a {data.corpus_tokens:,}-token corpus fits in the app's own process: no machine of its own"
            put("rag.vector_store", rules.in_process_store, why)
            put("rag.in_process_index", True, why)
            touched.pop("rag.in_process_index")   # one note says both
        elif _get(values, "rag.in_process_index"):
            put("rag.in_process_index", False, f"a {data.corpus_tokens:,}-token corpus is more than the app's "
                f"process holds ({rules.in_process_max_corpus_tokens:,} at most): the index needs its machine")
    if data.prompt_tokens is not None:
        put("prompt_tokens", data.prompt_tokens, "measured on the workspace's questions")
    pairs = data.training_examples or 0
    if pairs >= max(1, rules.min_pairs):
        put("fine_tuning.training_examples", pairs, f"measured from the workspace's {pairs:,} answered pairs")
        for path, measured, floor, why in (
                ("fine_tuning.tokens_per_example", data.tokens_per_example, rules.min_tokens_per_example,
                 "examples under {floor:,g} tokens are shorter than a production training set's"),
                ("output_tokens", data.output_tokens, rules.min_output_tokens,
                 "reference answers under {floor:,g} tokens are terser than what a model writes")):
            if measured is None:
                continue
            if measured >= floor:
                put(path, measured, f"measured on the workspace's {pairs:,} answered pairs")
            else:
                keep(path, f"not the measured {measured:,}; " + why.format(floor=floor))
    elif pairs:
        keep("fine_tuning.training_examples", f"not the measured {pairs:,}; fewer answered pairs than the "
                                              f"{rules.min_pairs} a plan can rest on")
    last = []
    if not pairs:
        was = sources["fine_tuning.training_examples"]
        sources["fine_tuning.training_examples"] = f"{was}; the workspace has no question/answer pairs yet"
        touched.pop("fine_tuning.training_examples", None)    # the sentence below says it
        last.append(f"Fine-tuning is costed at {_shown(_get(values, 'fine_tuning.training_examples'))} training "
                    f"examples ({was}): the workspace has no question/answer pairs yet.")
    shown = {path: _shown(_get(values, path)) for path in touched}
    if values["rag"].get("in_process_index") and "rag.vector_store" in shown:
        shown["rag.vector_store"] += ", in the app's process"
    notes = [f"{FIELD_LABELS.get(path, path)}: {shown[path]} ({sources[path]})" for path in touched] + last
    return Prefill(Scenario.model_validate(values), sources, notes)


def _answer_words(qid: str, aid: str) -> str:
    """A Decide answer as the questionnaire words it: “answer” to “question” (ids if the question is gone)."""
    from . import decision

    try:
        q = decision.load_decision_config().question(qid)
        return f"“{q.answer(aid).label}” to “{q.text}”"
    except StopIteration:
        return f"{qid} = {aid}"


def prefill(base: Scenario, answers: Mapping[str, str] | None = None, data: DataStats | None = None,
            cfg: EstimateConfig | None = None) -> tuple[Scenario, list[str]]:
    """A scenario adjusted by Decide answers, then by measured data; with a note for each figure it set or kept."""
    p = explain_prefill(base, answers, data, cfg)
    return p.scenario, p.notes


def prefill_workspace(ws: Any, base: Scenario | None = None, cfg: EstimateConfig | None = None) -> Prefill:
    """The prefill of a workspace: its Decide answers, and its data measured as the Fine-tune step counts it
    (each pair as a chat example with the Fine-tune system message)."""
    from . import corpus, decision, finetune

    cfg = cfg or load_estimate_config()
    stats = corpus.data_stats(ws, finetune.FineTuneSettings.load(ws).system_prompt)
    return explain_prefill(base or default_scenario(cfg), decision.saved_answers(ws), stats, cfg)


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


def _leaves(change: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every leaf of a nested mapping, e.g. ('rag.monthly_churn', 0.5)."""
    out = []
    for key, value in change.items():
        if isinstance(value, Mapping):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


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
