"""Which inputs move the result most (tornado), and the result over a grid of two inputs (sweep).

Both run the vectorised cost model once over all variants, so they answer as fast as one estimate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from .costs import OPTIONS, compute
from .errors import WorkbenchError

# Inputs a user can vary, by parameter name (see costs.resolve), with what the page calls them.
INPUTS: dict[str, str] = {
    "queries": "Queries per month",
    "prompt": "Prompt tokens per query",
    "output": "Output tokens per query",
    "months": "Horizon (months)",
    "ft_n": "Training examples",
    "ft_tpe": "Tokens per training example",
    "ft_retrains_per_year": "Retrains per year",
    "ft_train_price": "Training price (USD / 1M tokens)",
    "ftm_in": "Fine-tuned model input price",
    "ftm_out": "Fine-tuned model output price",
    "ft_prep_hours": "Fine-tuning data preparation hours",
    "rag_corpus": "Corpus tokens",
    "rag_chunk": "Chunk tokens",
    "rag_top_k": "Retrieved chunks (top_k)",
    "rag_churn": "Monthly corpus churn",
    "rag_growth": "Monthly corpus growth",
    "ragm_in": "RAG model input price",
    "ragm_out": "RAG model output price",
    "emb_price": "Embedding price",
    "vs_machine_hr": "Vector store machine (USD / hour)",
    "vs_gb_month": "Vector storage (USD / GB-month)",
    "rag_prep_hours": "RAG data preparation hours",
    "share_rag": "Routing share to RAG",
    "rate": "Hourly rate for preparation (USD)",
}
INTEGER_INPUTS = {"months", "ft_n", "rag_top_k", "rag_chunk"}

Metric = Literal["monthly", "total", "cost_per_query", "latency"]


def metric_values(result: Mapping[str, Any], option: str, metric: Metric, queries: Any) -> np.ndarray:
    """One metric of one option from a compute() result."""
    o = result[option]
    if metric == "monthly":
        return o["monthly"]
    if metric == "total":
        return o["total"]
    if metric == "latency":
        return o["latency_total"]
    if metric == "cost_per_query":
        q = np.asarray(queries, dtype=float)
        return np.where(q > 0, o["monthly"] / np.where(q > 0, q, 1.0), 0.0)
    raise WorkbenchError(f"unknown metric '{metric}'; expected monthly, total, cost_per_query or latency")


def _check_option(name: str) -> None:
    if name not in OPTIONS:
        raise WorkbenchError(f"unknown option '{name}'; expected one of: {', '.join(OPTIONS)}")


@dataclass
class TornadoBar:
    input: str
    label: str
    base_value: float
    low_value: float
    high_value: float
    low_result: float
    high_result: float

    @property
    def swing(self) -> float:
        return abs(self.high_result - self.low_result)


@dataclass
class Tornado:
    option_a: str
    option_b: str | None
    metric: str
    base_result: float
    bars: list[TornadoBar]


def _varied(name: str, value: float) -> float:
    return float(round(value)) if name in INTEGER_INPUTS else value


def tornado(params: Mapping[str, float], option_a: str = "fine_tuning", option_b: str | None = "rag",
            metric: Metric = "monthly", change: float = 0.5, inputs: list[str] | None = None) -> Tornado:
    """Vary each input by +/- change (50 % by default) and see how far the result moves.

    The result is option_a's metric minus option_b's (or option_a's alone if option_b is None).
    Inputs at zero are skipped: a percentage of nothing moves nothing.
    """
    _check_option(option_a)
    if option_b:
        _check_option(option_b)
    requested = inputs or list(INPUTS)
    unknown = [n for n in requested if n not in params]
    if unknown:
        raise WorkbenchError(f"unknown input(s): {', '.join(unknown)}; expected any of: {', '.join(INPUTS)}")
    names = [n for n in requested if params[n]]
    rows = 1 + 2 * len(names)
    grid = {k: np.full(rows, float(v)) for k, v in params.items()}
    for i, name in enumerate(names):
        base = float(params[name])
        grid[name][1 + 2 * i] = _varied(name, base * (1 - change))
        grid[name][2 + 2 * i] = _varied(name, base * (1 + change))
    if "rag_chunk" in names:  # keep overlap below the chunk size
        grid["rag_overlap"] = np.minimum(grid["rag_overlap"], grid["rag_chunk"] - 1)
    if "share_rag" in names:
        grid["share_rag"] = np.clip(grid["share_rag"], 0, 1)
    result = compute(grid)
    values = metric_values(result, option_a, metric, grid["queries"])
    if option_b:
        values = values - metric_values(result, option_b, metric, grid["queries"])
    bars = [TornadoBar(name, INPUTS.get(name, name), float(params[name]), float(grid[name][1 + 2 * i]),
                       float(grid[name][2 + 2 * i]), float(values[1 + 2 * i]), float(values[2 + 2 * i]))
            for i, name in enumerate(names)]
    bars.sort(key=lambda b: -b.swing)
    return Tornado(option_a, option_b, metric, float(values[0]), bars)


@dataclass
class Sweep:
    x_input: str
    x_values: list[float]
    y_input: str
    y_values: list[float]
    metric: str
    option_a: str
    option_b: str | None
    values: list[list[float]]                 # [y][x]: option_a minus option_b (or option_a alone)
    cheapest: list[list[str]]                 # [y][x]: the option with the lowest metric


def sweep(params: Mapping[str, float], x_input: str, x_values: Any, y_input: str, y_values: Any,
          option_a: str = "fine_tuning", option_b: str | None = "rag", metric: Metric = "monthly") -> Sweep:
    """The metric over every combination of two inputs, in one vectorised evaluation."""
    for name in (x_input, y_input):
        if name not in params:
            raise WorkbenchError(f"unknown input '{name}'; expected one of: {', '.join(INPUTS)}")
    if x_input == y_input:
        raise WorkbenchError("choose two different inputs to sweep")
    _check_option(option_a)
    if option_b:
        _check_option(option_b)
    xs = np.asarray(x_values, dtype=float)
    ys = np.asarray(y_values, dtype=float)
    grid: dict[str, Any] = dict(params)
    grid[x_input] = xs[None, :]
    grid[y_input] = ys[:, None]
    if "rag_chunk" in (x_input, y_input):
        grid["rag_overlap"] = np.minimum(params["rag_overlap"], np.asarray(grid["rag_chunk"]) - 1)
    result = compute(grid)
    shape = (len(ys), len(xs))
    queries = np.broadcast_to(np.asarray(grid["queries"], dtype=float), shape)
    per_option = np.stack([np.broadcast_to(metric_values(result, o, metric, queries), shape) for o in OPTIONS])
    values = per_option[OPTIONS.index(option_a)]
    if option_b:
        values = values - per_option[OPTIONS.index(option_b)]
    cheapest = np.asarray(OPTIONS)[np.argmin(per_option, axis=0)]
    return Sweep(x_input, xs.tolist(), y_input, ys.tolist(), metric, option_a, option_b,
                 values.tolist(), cheapest.tolist())
