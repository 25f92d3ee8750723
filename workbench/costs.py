"""The cost and latency model of fine-tuning, RAG and the two hybrids.

`resolve` turns a scenario and a price book into flat numeric parameters; `compute` evaluates the model
on them with numpy, so one call can price one scenario or a whole grid of them (sweeps, tornado,
break-even volume). `estimate` wraps both for one scenario and explains the result.
Token prices are USD per 1M tokens; a month is 730 hours (8,760 / 12).
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from .pricing import FineTuningPrice, ModelPrice, PriceBook, load_pricing
from .training_data import example_count_issue
from .scenario import EstimateConfig, Scenario, load_estimate_config

OPTIONS = ("fine_tuning", "rag", "hybrid_sequential", "hybrid_routing")
OPTION_LABELS = {"fine_tuning": "Fine-tuning", "rag": "RAG", "hybrid_sequential": "Hybrid (fine-tune, then RAG)",
                 "hybrid_routing": "Hybrid (routing)"}
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 365 / 12
M = 1e6


# --- parameters -------------------------------------------------------------------------------------

def fine_tuned_prices(price: ModelPrice) -> tuple[float, float | None, float, list[str]]:
    """Fine-tuned input, cached input and output prices, and which of input/output fell back to the base model's.

    A missing fine-tuned price is never $0: the base model's price stands in, and warnings_for says so.
    """
    ft = price.fine_tuning or FineTuningPrice()
    missing = [name for name in ("input", "output") if getattr(ft, name) is None]
    inp, cached = (price.input, price.cached_input) if ft.input is None else (ft.input, ft.cached_input)
    out = price.output if ft.output is None else ft.output
    return inp, cached, out, missing


def _model_params(prefix: str, price: ModelPrice, fine_tuned: bool) -> dict[str, float]:
    """Per-token prices and hosting of a model; fine-tuned prices when the arm uses a fine-tuned model."""
    if fine_tuned and not price.self_hosted:
        inp, cached, out, _ = fine_tuned_prices(price)
    else:
        inp, cached, out = price.input, price.cached_input, price.output
    host = price.hosting
    return {
        f"{prefix}_in": inp,
        f"{prefix}_cached_in": inp if cached is None else cached,
        f"{prefix}_out": out,
        f"{prefix}_host_usd_hr": host.usd_per_hour if host else 0.0,
        f"{prefix}_host_out_tps": host.output_tokens_per_s if host else 1.0,
        f"{prefix}_host_prompt_tps": host.prompt_tokens_per_s if host else 1.0,
        f"{prefix}_host_min_replicas": float(host.min_replicas) if host else 0.0,
        f"{prefix}_host_peak": host.peak_to_average if host else 1.0,
        f"{prefix}_self_hosted": 1.0 if host else 0.0,
    }


def resolve(s: Scenario, book: PriceBook | None = None, cfg: EstimateConfig | None = None) -> dict[str, float]:
    """Flat numeric parameters of a scenario: its inputs, the prices it uses, and latency figures."""
    book = (book or load_pricing()).with_custom(s.custom_prices, source="custom_prices")
    cfg = cfg or load_estimate_config()
    lat = cfg.latency
    ft_price = book.model(s.fine_tuning.model, field="fine_tuning.model")
    rag_price = book.model(s.rag.model, field="rag.model")
    emb = book.embedding(s.rag.embedding_model, field="rag.embedding_model")
    vs = book.vector_store(s.rag.vector_store, field="rag.vector_store")
    ftp = ft_price.fine_tuning
    ft_lat = s.latency.ft_model or lat.models.get(ft_price.id, lat.default_model)
    rag_lat = s.latency.rag_model or lat.models.get(rag_price.id, lat.default_model)
    store_lat = lat.vector_stores.get(vs.id, lat.default_vector_store)
    p = {
        "queries": s.queries_per_month, "prompt": s.prompt_tokens, "output": s.output_tokens,
        "cached_share": s.cached_prompt_share, "months": s.months, "rate": s.hourly_rate_usd,
        # fine-tuning
        "ft_n": s.fine_tuning.training_examples, "ft_tpe": s.fine_tuning.tokens_per_example,
        "ft_epochs": 0.0 if s.fine_tuning.epochs == "auto" else s.fine_tuning.epochs,
        "ft_retrains_per_year": s.fine_tuning.retrains_per_year,
        "ft_added_per_retrain": s.fine_tuning.examples_added_per_retrain,
        "ft_prompt": s.prompt_tokens if s.fine_tuning.prompt_tokens is None else s.fine_tuning.prompt_tokens,
        "ft_prep_hours": s.fine_tuning.prep_hours,
        "ft_limit": ftp.example_token_limit if ftp else math.inf,
        "ft_train_price": (ftp.training or 0.0) if ftp else 0.0,
        "ft_train_usd_hr": (ftp.training_usd_per_hour or 0.0) if ftp else 0.0,
        "ft_train_tps": (ftp.training_tokens_per_s or 1.0) if ftp else 1.0,
        **_model_params("ftm", ft_price, fine_tuned=True),
        # rag
        "rag_corpus": s.rag.corpus_tokens, "rag_chunk": s.rag.chunk_tokens, "rag_overlap": s.rag.chunk_overlap,
        "rag_top_k": s.rag.top_k, "rag_query_tokens": s.rag.query_tokens, "rag_churn": s.rag.monthly_churn,
        "rag_growth": s.rag.monthly_growth, "rag_meta_bytes": s.rag.metadata_bytes_per_chunk,
        "rag_prep_hours": s.rag.prep_hours, "emb_price": emb.price, "emb_dims": emb.dimensions,
        **_model_params("ragm", rag_price, fine_tuned=False),
        "vs_licence_month": vs.licence_usd_per_month,
        "vs_machine_hr": 0.0 if s.rag.in_process_index else vs.machine_usd_per_hour,   # the app's machine holds it
        "vs_gb_month": vs.storage_usd_per_gb_month, "vs_gb_day": vs.storage_usd_per_gb_day,
        "vs_free_gb": vs.free_gb, "vs_read_m": vs.read_usd_per_million, "vs_write_m": vs.write_usd_per_million,
        "vs_per_1k_queries": vs.usd_per_1k_queries, "vs_min_month": vs.minimum_usd_per_month,
        # hybrids
        "share_rag": s.hybrid.routing_share_rag,
        # latency
        "lat_router_ms": s.hybrid.router_ms,
        "lat_embed_ms": (s.latency.embed_query_ms if s.latency.embed_query_ms is not None
                         else lat.embeddings.get(emb.id, lat.default_embedding_ms)),
        "lat_search_fixed_ms": s.latency.vector_search_ms if s.latency.vector_search_ms is not None else -1.0,
        "lat_search_base_ms": store_lat.base_ms, "lat_search_ms_per_100k": store_lat.ms_per_100k_vectors,
        "lat_ft_ttft_ms": ft_lat.ttft_ms, "lat_ft_ms_per_1k": ft_lat.ms_per_1k_prompt_tokens,
        "lat_ft_tps": ft_lat.output_tokens_per_s,
        "lat_rag_ttft_ms": rag_lat.ttft_ms, "lat_rag_ms_per_1k": rag_lat.ms_per_1k_prompt_tokens,
        "lat_rag_tps": rag_lat.output_tokens_per_s,
    }
    return {k: float(v) for k, v in p.items()}


# --- the vectorised model ---------------------------------------------------------------------------

def auto_epochs(n: Any) -> np.ndarray:
    """OpenAI's published "auto" epochs: 3, but min(25, 100 // n) when 3n < 100 and max(1, 25000 // n) when 3n > 25000."""
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    small = np.minimum(25.0, np.floor(100.0 / safe))
    large = np.maximum(1.0, np.floor(25000.0 / safe))
    return np.where(3 * n < 100, small, np.where(3 * n > 25000, large, 3.0))


def _training(p: Mapping[str, np.ndarray], n: np.ndarray) -> dict[str, np.ndarray]:
    epochs = np.where(p["ft_epochs"] > 0, p["ft_epochs"], auto_epochs(n))
    billed = n * np.minimum(p["ft_limit"], p["ft_tpe"]) * epochs
    hosted_cost = billed / M * p["ft_train_price"]
    self_cost = billed / p["ft_train_tps"] / 3600.0 * p["ft_train_usd_hr"]
    cost = np.where(p["ft_train_usd_hr"] > 0, self_cost, hosted_cost)   # GPU hours, else per token
    return {"epochs": epochs, "billed_tokens": billed, "cost": cost}


def _per_query_tokens_usd(p: Mapping[str, np.ndarray], model: str, prompt: np.ndarray) -> np.ndarray:
    """Token cost of one call: the cached share of the shared prompt at the cached price."""
    cached = np.minimum(prompt, p["prompt"] * p["cached_share"])
    return ((prompt - cached) * p[f"{model}_in"] + cached * p[f"{model}_cached_in"]
            + p["output"] * p[f"{model}_out"]) / M


def _hosting_usd(p: Mapping[str, np.ndarray], model: str, queries: np.ndarray, prompt: np.ndarray) -> np.ndarray:
    """Self-hosted GPUs for a month: enough replicas for the peak load, at least the minimum."""
    gpu_seconds = queries * (p["output"] / p[f"{model}_host_out_tps"] + prompt / p[f"{model}_host_prompt_tps"])
    replicas = np.maximum(p[f"{model}_host_min_replicas"],
                          np.ceil(gpu_seconds * p[f"{model}_host_peak"] / (HOURS_PER_MONTH * 3600.0)))
    return np.where(p[f"{model}_self_hosted"] > 0, replicas * HOURS_PER_MONTH * p[f"{model}_host_usd_hr"], 0.0)


def _ttft_gen(p: Mapping[str, np.ndarray], which: str, prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ttft = p[f"lat_{which}_ttft_ms"] + prompt / 1000.0 * p[f"lat_{which}_ms_per_1k"]
    gen = p["output"] / p[f"lat_{which}_tps"] * 1000.0
    return ttft, gen


class _WithMonthAxis(dict):
    """Parameters viewed with a trailing month axis, expanded on first use."""

    def __init__(self, p: Mapping[str, np.ndarray]):
        super().__init__()
        self._p = p

    def __missing__(self, key: str) -> np.ndarray:
        value = self[key] = self._p[key][..., None]
        return value


def compute(params: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate the model; every parameter may be a scalar or an array (all broadcast together).

    Returns per option: setup, prompt tokens billed per query, monthly series by component (last axis =
    month), totals, latency by stage. The routing hybrid embeds and searches every query to route it.
    """
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    shape = np.broadcast_shapes(*(v.shape for v in p.values()))
    months_max = int(np.max(p["months"]))
    m = np.arange(1, months_max + 1, dtype=float)
    ex = _WithMonthAxis(p)
    in_horizon = (m <= ex["months"]).astype(float)
    Q = p["queries"]

    # Fine-tuning: initial training, then retrains at the cadence, on a dataset that may grow.
    initial = _training(p, p["ft_n"])
    retrains_by = np.floor(m * ex["ft_retrains_per_year"] / 12.0)
    retrains_in_month = retrains_by - np.floor((m - 1) * ex["ft_retrains_per_year"] / 12.0)
    n_at = ex["ft_n"] + ex["ft_added_per_retrain"] * retrains_by
    retrain_monthly = retrains_in_month * _training(ex, n_at)["cost"] * in_horizon
    ft_setup = p["ft_prep_hours"] * p["rate"] + initial["cost"]

    # RAG: chunk the corpus, embed it once, keep it fresh, store the vectors.
    stride = np.maximum(p["rag_chunk"] - p["rag_overlap"], 1.0)
    expand = p["rag_chunk"] / stride                    # overlap makes embedded tokens exceed the corpus
    context = p["rag_top_k"] * p["rag_chunk"]
    chunks0 = np.ceil(p["rag_corpus"] / stride)
    corpus_at = ex["rag_corpus"] * (1.0 + ex["rag_growth"] * m)
    chunks_at = np.ceil(corpus_at / stride[..., None])
    embed_setup = p["rag_corpus"] * expand / M * p["emb_price"]
    rag_setup = p["rag_prep_hours"] * p["rate"] + embed_setup
    changed_tokens = (ex["rag_churn"] * ex["rag_corpus"] * (1.0 + ex["rag_growth"] * (m - 1))
                      + ex["rag_growth"] * ex["rag_corpus"])
    reembed_monthly = changed_tokens * expand[..., None] / M * ex["emb_price"] * in_horizon
    gb_at = chunks_at * (ex["emb_dims"] * 4.0 + ex["rag_meta_bytes"]) / 1e9

    def store_monthly(rag_queries: np.ndarray) -> np.ndarray:
        rq = rag_queries[..., None]
        writes = changed_tokens / stride[..., None]
        usage = (gb_at * ex["vs_gb_month"] + np.maximum(0.0, gb_at - ex["vs_free_gb"]) * ex["vs_gb_day"] * DAYS_PER_MONTH
                 + rq / M * ex["vs_read_m"] + writes / M * ex["vs_write_m"] + rq / 1000.0 * ex["vs_per_1k_queries"])
        fixed = ex["vs_licence_month"] + ex["vs_machine_hr"] * HOURS_PER_MONTH
        return (fixed + np.maximum(usage, ex["vs_min_month"])) * in_horizon

    query_embed_usd = p["rag_query_tokens"] / M * p["emb_price"]
    rag_prompt = p["prompt"] + context
    seq_prompt = p["ft_prompt"] + context
    ft_q = _per_query_tokens_usd(p, "ftm", p["ft_prompt"])
    rag_q = _per_query_tokens_usd(p, "ragm", rag_prompt)
    seq_q = _per_query_tokens_usd(p, "ftm", seq_prompt)
    s = p["share_rag"]
    prompt_tokens = {"fine_tuning": p["ft_prompt"], "rag": rag_prompt, "hybrid_sequential": seq_prompt,
                     "hybrid_routing": s * rag_prompt + (1 - s) * p["ft_prompt"]}

    def monthly(value: np.ndarray) -> np.ndarray:
        return value[..., None] * in_horizon

    components = {
        "fine_tuning": {
            "inference": monthly(Q * ft_q),
            "hosting": monthly(_hosting_usd(p, "ftm", Q, p["ft_prompt"])),
            "retraining": retrain_monthly,
        },
        "rag": {
            "inference": monthly(Q * rag_q),
            "hosting": monthly(_hosting_usd(p, "ragm", Q, rag_prompt)),
            "query embedding": monthly(Q * query_embed_usd),
            "re-embedding": reembed_monthly,
            "vector store": store_monthly(Q),
        },
        "hybrid_sequential": {
            "inference": monthly(Q * seq_q),
            "hosting": monthly(_hosting_usd(p, "ftm", Q, seq_prompt)),
            "query embedding": monthly(Q * query_embed_usd),
            "retraining": retrain_monthly,
            "re-embedding": reembed_monthly,
            "vector store": store_monthly(Q),
        },
        "hybrid_routing": {
            "inference": monthly(Q * (s * rag_q + (1 - s) * ft_q)),
            "hosting": monthly(_hosting_usd(p, "ragm", s * Q, rag_prompt)
                               + _hosting_usd(p, "ftm", (1 - s) * Q, p["ft_prompt"])),
            "query embedding": monthly(Q * query_embed_usd),
            "retraining": retrain_monthly,
            "re-embedding": reembed_monthly,
            "vector store": store_monthly(Q),
        },
    }
    setup = {
        "fine_tuning": ft_setup,
        "rag": rag_setup,
        "hybrid_sequential": ft_setup + rag_setup,
        "hybrid_routing": ft_setup + rag_setup,
    }

    # Latency by stage (ms per query).
    search_ms = np.where(p["lat_search_fixed_ms"] >= 0, p["lat_search_fixed_ms"],
                         p["lat_search_base_ms"] + p["lat_search_ms_per_100k"] * chunks0 / 1e5)
    ft_ttft, ft_gen = _ttft_gen(p, "ft", p["ft_prompt"])
    rag_ttft, rag_gen = _ttft_gen(p, "rag", rag_prompt)
    seq_ttft, seq_gen = _ttft_gen(p, "ft", seq_prompt)
    zero = np.zeros(shape)
    latency = {
        "fine_tuning": {"route": zero, "embed query": zero, "vector search": zero,
                        "time to first token": ft_ttft, "generation": ft_gen},
        "rag": {"route": zero, "embed query": p["lat_embed_ms"], "vector search": search_ms,
                "time to first token": rag_ttft, "generation": rag_gen},
        "hybrid_sequential": {"route": zero, "embed query": p["lat_embed_ms"], "vector search": search_ms,
                              "time to first token": seq_ttft, "generation": seq_gen},
        "hybrid_routing": {"route": p["lat_router_ms"], "embed query": p["lat_embed_ms"],
                           "vector search": search_ms,
                           "time to first token": s * rag_ttft + (1 - s) * ft_ttft,
                           "generation": s * rag_gen + (1 - s) * ft_gen},
    }

    def full(value: Any, months: bool = False) -> np.ndarray:
        return np.broadcast_to(value, shape + (months_max,) if months else shape)

    out: dict[str, Any] = {"months": m, "training": {k: full(v) for k, v in initial.items()},
                           "chunks": full(chunks0), "context_tokens": full(context)}
    for opt in OPTIONS:
        series = full(sum(components[opt].values()), months=True)
        recurring = series.sum(axis=-1)
        out[opt] = {
            "setup": full(setup[opt]),
            "prompt_tokens": full(prompt_tokens[opt]),
            "components": {k: full(v, months=True) for k, v in components[opt].items()},
            "monthly_series": series,
            "monthly": recurring / p["months"],
            "total": setup[opt] + recurring,
            "latency": {k: full(v) for k, v in latency[opt].items()},
            "latency_total": full(sum(latency[opt].values())),
        }
    return out


# --- one scenario, explained ------------------------------------------------------------------------

@dataclass
class OptionEstimate:
    option: str
    label: str
    setup_cost_usd: float
    monthly_cost_usd: float
    cost_per_query_usd: float
    total_cost_usd: float
    tco_per_query_usd: float
    monthly_by_component: dict[str, float]
    monthly_series_usd: list[float]
    cumulative_usd: list[float]
    latency_ms: dict[str, float]
    prompt_tokens_per_query: float
    epochs: int | None = None
    billed_training_tokens: float | None = None
    training_cost_usd: float | None = None


@dataclass
class BreakEven:
    a: str
    b: str
    cheaper_at_start: str | None      # lower setup cost
    cheaper_at_end: str | None        # lower total over the horizon
    month: int | None                 # first month the other option is cheaper cumulatively; None = never
    monthly_queries: float | None     # volume at which totals over the horizon are equal; None = never


@dataclass
class Caution:
    level: str                        # "error" | "warning" | "info"
    option: str | None
    message: str


@dataclass
class Estimate:
    scenario: dict[str, Any]
    options: dict[str, OptionEstimate]
    break_even: list[BreakEven]
    warnings: list[Caution]
    chunks: int
    context_tokens: int
    latency_source: str
    params: dict[str, float] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {"scenario": self.scenario}
        for opt, est in self.options.items():
            row = asdict(est)
            row["latency_ms"] = dict(est.latency_ms)
            data[opt] = row
        data["break_even"] = [asdict(b) for b in self.break_even]
        data["warnings"] = [asdict(w) for w in self.warnings]
        data["chunks"] = self.chunks
        data["context_tokens"] = self.context_tokens
        return data


def format_usd(x: float | None) -> str:
    """Dollars for people: cents from ten cents up ($7,008.33, $0.10), two significant figures below
    ($0.067, $0.00024), so a small per-query or training cost never reads as $0.000000."""
    if x is None or math.isnan(x):      # NaN: a table's missing figure
        return "n/a"
    sign, amount = ("-" if x < 0 else ""), abs(x)
    if amount < 1e-10:   # below a ten-billionth of a dollar (a token costs far more): rounding noise
        return "$0.00"
    decimals = 1 - math.floor(math.log10(amount))
    if round(amount, decimals) >= 0.1:
        return f"{sign}${amount:,.2f}"
    if math.floor(math.log10(round(amount, decimals))) > math.floor(math.log10(amount)):
        decimals -= 1    # 0.000996 rounds up to 0.0010: two figures, not three
    return f"{sign}${amount:.{decimals}f}"


def break_even_sentence(b: BreakEven, queries_per_month: float, months: int) -> str:
    """A break-even as a sentence: from which month, or above or below which volume, the order of cost flips."""
    la, lb = OPTION_LABELS[b.a], OPTION_LABELS[b.b]
    if b.month:
        later = OPTION_LABELS[b.a if b.cheaper_at_start == b.b else b.b]
        other = lb if later == la else la
        return f"{later} becomes cheaper than {other} from month {b.month} at {queries_per_month:,.0f} queries a month."
    if b.monthly_queries is None:
        cheaper = OPTION_LABELS.get(b.cheaper_at_end or "", "")
        if not cheaper:
            return f"{la} and {lb} cost the same at any volume."
        other = lb if cheaper == la else la
        return f"{cheaper} stays cheaper than {other} at any volume over {months} months."
    now = OPTION_LABELS.get(b.cheaper_at_end or "", la)
    other = lb if now == la else la
    side = "above" if queries_per_month < b.monthly_queries else "below"
    return (f"{other} would cost less than {now} over {months} months {side} {b.monthly_queries:,.0f} queries a "
            f"month (now {queries_per_month:,.0f}).")


def _cheaper(a: str, b: str, va: float, vb: float) -> str | None:
    if math.isclose(va, vb, rel_tol=1e-12, abs_tol=1e-9):
        return None
    return a if va < vb else b


def break_even_month(cum_a: np.ndarray, cum_b: np.ndarray) -> int | None:
    """First month at which the cumulative cost order flips from what it was at month 0 (setup)."""
    diff = np.asarray(cum_a) - np.asarray(cum_b)
    if np.isclose(diff[0], 0.0):
        return None
    flipped = np.nonzero(np.sign(diff[1:]) != np.sign(diff[0]))[0]
    return int(flipped[0] + 1) if flipped.size else None


VOLUME_GRID = np.concatenate([[0.0], np.logspace(0, 11, 111)])
FINE_POINTS = 41


def _first_crossing(q: np.ndarray, diff: np.ndarray) -> int | None:
    """Index i of the first segment [q[i], q[i+1]] over which diff changes sign (or reaches zero)."""
    sign = np.sign(np.where(np.abs(diff) < 1e-9, 0.0, diff))
    hits = np.nonzero((sign[:-1] != 0) & (sign[1:] != sign[:-1]))[0]
    return int(hits[0]) if hits.size else None


def break_even_volumes(params: Mapping[str, float], coarse: Mapping[str, Any] | None = None
                       ) -> dict[tuple[str, str], float | None]:
    """For each pair of options, the monthly query volume at which their totals over the horizon are equal.

    Evaluates the model on a log grid of volumes (or takes `coarse`, compute() over VOLUME_GRID), then
    on a fine grid inside each bracket, and interpolates linearly: cost is linear in volume between the
    steps of self-hosted replicas and vendor minimums.
    """
    pairs = list(itertools.combinations(OPTIONS, 2))
    coarse = coarse or compute({**params, "queries": VOLUME_GRID})
    brackets = {}
    for a, b in pairs:
        i = _first_crossing(VOLUME_GRID, coarse[a]["total"] - coarse[b]["total"])
        if i is not None:
            brackets[(a, b)] = (VOLUME_GRID[i], VOLUME_GRID[i + 1])
    result: dict[tuple[str, str], float | None] = {pair: None for pair in pairs}
    if not brackets:
        return result
    grid = np.concatenate([np.linspace(lo, hi, FINE_POINTS) for lo, hi in brackets.values()])
    fine = compute({**params, "queries": grid})
    for k, (a, b) in enumerate(brackets):
        part = slice(k * FINE_POINTS, (k + 1) * FINE_POINTS)
        q, diff = grid[part], (fine[a]["total"] - fine[b]["total"])[part]
        i = _first_crossing(q, diff)
        if i is None:
            continue
        d0, d1 = diff[i], diff[i + 1]
        result[(a, b)] = float(q[i + 1] if d1 == d0 else q[i] - d0 * (q[i + 1] - q[i]) / (d1 - d0))
    return result


def _months_between(start: dt.date, day: dt.date) -> float:
    return (day - start).days / (365.25 / 12)


def _when(start: dt.date, day: dt.date) -> tuple[str, float]:
    months = _months_between(start, day)
    if months <= 0:
        return f"on {day.isoformat()} (already past)", months
    return f"on {day.isoformat()} (in {months:.1f} months)", months


def fine_tuning_lifecycle(model: ModelPrice, start: dt.date, horizon_months: float | None = None,
                          retrains_per_year: float = 0, option: str = "fine_tuning") -> list[Caution]:
    """Cautions about fine-tuning a model: closed or closing to new jobs, fine-tuned models shutting down."""
    ftp = model.fine_tuning
    if ftp is None:
        return [Caution("error", option, f"{model.id} cannot be fine-tuned (no fine-tuning price); "
                                         "choose a fine-tunable model")]
    out = []
    if ftp.new_jobs_end:
        text, months = _when(start, ftp.new_jobs_end)
        if months <= 0:
            out.append(Caution("error", option, f"Fine-tuning {model.id} closed to new jobs {text}; "
                                                "no training or retraining is possible with this provider"))
        else:
            extra = ""
            if horizon_months and retrains_per_year:
                before = math.floor(min(months, horizon_months) * retrains_per_year / 12)
                planned = math.floor(horizon_months * retrains_per_year / 12)
                if planned > before:
                    extra = f"; {planned - before} of the {planned} planned retrains fall after that date"
            out.append(Caution("warning", option, f"No new fine-tuning jobs for {model.id} {text}{extra}. "
                                                  "Plan another provider for the fine-tuning arm."))
    if ftp.shutdown:
        text, months = _when(start, ftp.shutdown)
        if horizon_months is None or months <= horizon_months:
            inside = f", inside the {horizon_months:g}-month horizon" if horizon_months else ""
            out.append(Caution("error" if months <= 0 else "warning", option,
                               f"Fine-tuned {model.id} models stop serving {text}{inside}"))
    return out


def fine_tuned_price_gap(model: ModelPrice, option: str = "fine_tuning") -> list[Caution]:
    """A warning when fine-tuned inference is priced at the base model's prices for want of its own."""
    if model.self_hosted:
        return []
    inp, _, out, missing = fine_tuned_prices(model)
    if not missing:
        return []
    what = "no fine_tuning block" if model.fine_tuning is None else f"no fine-tuned {' or '.join(missing)} price"
    assumed = ", ".join(f"{name} ${value:.4g}" for name, value in (("input", inp), ("output", out)) if name in missing)
    return [Caution("warning", option, f"{model.id} has {what}: the fine-tuned model's inference is priced at the "
                                       f"base model's {assumed} per 1M tokens. Add its fine-tuned prices as a "
                                       "custom price for a real figure.")]


def lasting(model: ModelPrice, s: Scenario) -> bool:
    """Whether fine-tuning this model stays possible, and its tuned model served, over the scenario's horizon."""
    ftp = model.fine_tuning
    days = (ftp.new_jobs_end, ftp.shutdown, model.deprecation, model.shutdown) if ftp else ()
    return ftp is not None and not any(day and _months_between(s.start(), day) <= s.months for day in days)


@dataclass
class Alternative:
    model: ModelPrice
    total_usd: float          # the fine-tuning option over the horizon, in this scenario


def cheapest_lasting_alternative(s: Scenario, book: PriceBook, cfg: EstimateConfig | None = None
                                 ) -> Alternative | None:
    """The fine-tunable model that outlives the horizon with the lowest fine-tuning total in this scenario.

    The tiny model on this machine is left out: it is a demo, not a replacement for a production model.
    """
    book = book.with_custom(s.custom_prices, source="custom_prices")
    best: Alternative | None = None
    for model in book.models:
        if model.fine_tuning is None or model.provider == "local" or model.id == book.model(s.fine_tuning.model).id \
                or not lasting(model, s):
            continue
        other = s.model_copy(update={"fine_tuning": s.fine_tuning.model_copy(update={"model": model.id}),
                                     "latency": s.latency.model_copy(update={"ft_model": None})})
        result = compute({**resolve(other, book, cfg), "queries": np.array([s.queries_per_month])})
        total = float(result["fine_tuning"]["total"][0])
        if best is None or total < best.total_usd:
            best = Alternative(model, total)
    return best


def warnings_for(s: Scenario, book: PriceBook, params: Mapping[str, float],
                 cfg: EstimateConfig | None = None) -> list[Caution]:
    """Risky choices: lifecycle dates (with the cheapest lasting alternative), unconfirmed or missing prices,
    context overflow, too few or too long training examples."""
    book = book.with_custom(s.custom_prices, source="custom_prices")
    start, end_months = s.start(), s.months
    ft_model = book.model(s.fine_tuning.model)
    rag_model = book.model(s.rag.model)
    ft_arms = "fine_tuning"
    ftp = ft_model.fine_tuning
    out = fine_tuning_lifecycle(ft_model, start, end_months, s.fine_tuning.retrains_per_year)
    if out and ftp is not None:
        alt = cheapest_lasting_alternative(s, book, cfg)
        if alt is not None:
            now = float(compute({**params, "queries": np.array([s.queries_per_month])})["fine_tuning"]["total"][0])
            out.append(Caution("warning", ft_arms, f"Cheapest fine-tuning that outlives the {s.months}-month horizon: "
                                                   f"{alt.model.label or alt.model.id} ({alt.model.id}), "
                                                   f"{format_usd(alt.total_usd)} over the horizon in this scenario "
                                                   f"(against {format_usd(now)} with {ft_model.id})"
                                                   + (" - its prices are not confirmed" if alt.model.unverified
                                                      else "")))
    for model, arm in ((ft_model, ft_arms), (rag_model, "rag")):
        if model.unverified and not (arm == "rag" and model.id == ft_model.id):
            out.append(Caution("info", arm, f"{model.id}: prices not confirmed - {model.unverified}"))
    out += fine_tuned_price_gap(ft_model, ft_arms)
    if ftp is not None:
        limit = ftp.example_token_limit
        if s.fine_tuning.tokens_per_example > limit:
            out.append(Caution("warning", ft_arms, f"Examples of {s.fine_tuning.tokens_per_example:,.0f} tokens "
                                                   f"exceed the {limit:,}-token limit per example of "
                                                   f"{ft_model.id}; they will be truncated (billed at {limit:,})"))
    for model, arm in ((rag_model, "rag"), (ft_model, ft_arms)):
        for label, day in (("is deprecated", model.deprecation), ("shuts down", model.shutdown)):
            if day:
                text, months = _when(start, day)
                if months <= end_months:
                    out.append(Caution("error" if months <= 0 and label == "shuts down" else "warning", arm,
                                       f"{model.id} {label} {text}"))
    issue = example_count_issue(s.fine_tuning.training_examples)
    if issue:
        out.append(Caution(issue[1], ft_arms, issue[2]))
    context = s.rag.top_k * s.rag.chunk_tokens
    for arm, model, prompt in (("rag", rag_model, s.prompt_tokens),
                               ("hybrid_sequential", ft_model, params["ft_prompt"])):
        need = prompt + context + s.output_tokens
        if need > model.context_window:
            out.append(Caution("error", arm,
                               f"Prompt ({prompt:,.0f}) + retrieved context ({s.rag.top_k} x {s.rag.chunk_tokens:,} "
                               f"= {context:,}) + output ({s.output_tokens:,}) = {need:,.0f} tokens does not fit "
                               f"{model.id}'s context window of {model.context_window:,} "
                               f"(over by {need - model.context_window:,.0f}); lower top_k or chunk size"))
    return out


def _rows(result: Mapping[str, Any], index: Any) -> dict[str, Any]:
    """Rows of a compute() result evaluated over a 1-d vector of scenarios (the month axis stays)."""
    def take(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: take(v) for k, v in value.items()}
        return value[index]

    return {k: (v if k == "months" else take(v)) for k, v in result.items()}


def estimate(s: Scenario, book: PriceBook | None = None, cfg: EstimateConfig | None = None) -> Estimate:
    """Cost, latency, break-even and warnings for one scenario."""
    book = book or load_pricing()
    cfg = cfg or load_estimate_config()
    params = resolve(s, book, cfg)
    # One evaluation for the scenario (row 0) and the volume grid of the break-even search (rows 1..).
    both = compute({**params, "queries": np.concatenate([[params["queries"]], VOLUME_GRID])})
    r, grid = _rows(both, 0), _rows(both, slice(1, None))
    options: dict[str, OptionEstimate] = {}
    queries = s.queries_per_month
    for opt in OPTIONS:
        o = r[opt]
        series = o["monthly_series"]
        monthly = float(o["monthly"])
        total = float(o["total"])
        est = OptionEstimate(
            option=opt,
            label=OPTION_LABELS[opt],
            setup_cost_usd=float(o["setup"]),
            monthly_cost_usd=monthly,
            cost_per_query_usd=monthly / queries if queries else 0.0,
            total_cost_usd=total,
            tco_per_query_usd=total / (queries * s.months) if queries else 0.0,
            monthly_by_component={k: float(v.sum()) / s.months for k, v in o["components"].items()},
            monthly_series_usd=[float(x) for x in series],
            cumulative_usd=[float(x) for x in np.concatenate([[o["setup"]], o["setup"] + np.cumsum(series)])],
            latency_ms={**{k: float(v) for k, v in o["latency"].items()}, "total": float(o["latency_total"])},
            prompt_tokens_per_query=float(o["prompt_tokens"]),
        )
        if opt == "fine_tuning":
            est.epochs = int(r["training"]["epochs"])
            est.billed_training_tokens = float(r["training"]["billed_tokens"])
            est.training_cost_usd = float(r["training"]["cost"])
        options[opt] = est
    volumes = break_even_volumes(params, grid)
    breaks = []
    for a, b in itertools.combinations(OPTIONS, 2):
        ea, eb = options[a], options[b]
        breaks.append(BreakEven(
            a=a, b=b,
            cheaper_at_start=_cheaper(a, b, ea.setup_cost_usd, eb.setup_cost_usd),
            cheaper_at_end=_cheaper(a, b, ea.total_cost_usd, eb.total_cost_usd),
            month=break_even_month(np.array(ea.cumulative_usd), np.array(eb.cumulative_usd)),
            monthly_queries=volumes[(a, b)],
        ))
    return Estimate(
        scenario=s.model_dump(mode="json", exclude_none=True),
        options=options,
        break_even=breaks,
        warnings=warnings_for(s, book, params, cfg),
        chunks=int(r["chunks"]),
        context_tokens=int(r["context_tokens"]),
        latency_source=cfg.latency.source,
        params=params,
    )


def estimate_vs_measured(est: Estimate, measured: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows putting the estimated latency, prompt tokens and cost per query beside those measured in Compare."""
    rows = []
    for option, m in measured.items():
        if option not in est.options:
            continue
        o = est.options[option]
        inference = o.monthly_by_component.get("inference", 0.0) / est.scenario["queries_per_month"] \
            if est.scenario["queries_per_month"] else 0.0
        rows.append({"option": o.label, "measured with": m.get("provider", ""),
                     "latency ms (estimate)": o.latency_ms["total"], "latency ms p50 (measured)": m["latency_ms_p50"],
                     "prompt tokens (estimate)": o.prompt_tokens_per_query,
                     "prompt tokens (measured)": m["prompt_tokens"],
                     "$ inference / query (estimate)": inference,
                     "$ / query (measured)": m["cost_per_query_usd"]})
    return rows


def summary_rows(est: Estimate) -> list[dict[str, Any]]:
    """Per option: set-up, average monthly, per-query and total cost (USD) and latency (ms), for tables and CSV."""
    return [{"option": o.label, "setup": o.setup_cost_usd, "monthly": o.monthly_cost_usd,
             "per query": o.cost_per_query_usd, "total": o.total_cost_usd, "latency ms": o.latency_ms["total"]}
            for o in est.options.values()]


def component_rows(est: Estimate) -> list[dict[str, Any]]:
    """Per option, the average monthly cost of each component (USD), the largest components first; a component
    that costs nothing in any option is left out, so the table holds what moves the bill."""
    totals: dict[str, float] = {}
    for o in est.options.values():
        for name, value in o.monthly_by_component.items():
            totals[name] = totals.get(name, 0.0) + value
    order = [name for name in sorted(totals, key=lambda n: -totals[n]) if totals[name] > 0]
    return [{"option": o.label, **{name: o.monthly_by_component.get(name, 0.0) for name in order}}
            for o in est.options.values()]


def break_even_rows(est: Estimate) -> list[dict[str, Any]]:
    """Each pair of options: which is cheaper to set up and over the horizon, and where their costs cross."""
    return [{"options": f"{OPTION_LABELS[b.a]} vs {OPTION_LABELS[b.b]}",
             "cheaper to set up": OPTION_LABELS.get(b.cheaper_at_start, "equal"),
             "cheaper over the horizon": OPTION_LABELS.get(b.cheaper_at_end, "equal"),
             "break-even month": str(b.month) if b.month is not None else "never",
             "break-even queries / month": f"{b.monthly_queries:,.0f}" if b.monthly_queries is not None else "never"}
            for b in est.break_even]
