"""Estimate: cost and latency of fine-tuning, RAG and the hybrids, with break-even and sensitivity."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import streamlit as st

from pageshell import current_workspace
from workbench import charts, costs, evaluation, finetune, pricing, scenario, sensitivity
from workbench.config import config_path
from workbench.errors import WorkbenchError
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/estimate.py")
WORKING_KEY = "estimate_working"
PREFILL_KEY = "estimate_prefill"     # where the prefilled figures came from, kept beside the working scenario
PROVIDER_LABELS = {"openai": "OpenAI", "azure-openai": "Azure OpenAI", "together": "Together AI (LoRA)",
                   "fireworks": "Fireworks AI (LoRA)", "self-hosted": "Self-hosted LoRA (GPU hours)",
                   "local": "Local LoRA (tiny model, here)", "other": "Other (custom prices)"}
LATENCY_KEYS = ("embed_query_ms", "vector_search_ms")
METRICS = ["monthly", "total", "cost_per_query", "latency"]
MONEY = ("setup", "monthly", "per query", "total")
OPTION_WIDTH = 190    # pixels: the longest option label, "Hybrid (fine-tune, then RAG)", in full
TAB_CHOICES = {"est_tornado_a": "fine_tuning", "est_tornado_b": "rag", "est_tornado_metric": "monthly",
               "est_sweep_x": "queries", "est_sweep_y": "rag_top_k", "est_sweep_a": "fine_tuning", "est_sweep_b": "rag",
               "est_sweep_metric": "monthly"}


# Everything below the inputs is derived from (scenario, prices): cached on their JSON, so a rerun after a
# widget change computes only what that change touched. Figures are cached as objects (cache_resource):
# unpickling a plotly figure re-validates it, which costs more than drawing it.

def _mtimes() -> tuple[float, ...]:
    return tuple(config_path(n).stat().st_mtime for n in ("pricing.yaml", "estimate.yaml"))


@st.cache_resource
def _config(mtimes: tuple[float, ...]):
    return pricing.load_pricing(), scenario.load_estimate_config()


@st.cache_resource(max_entries=16)
def _book(mtimes: tuple[float, ...], custom_json: str) -> pricing.PriceBook:
    return _config(mtimes)[0].with_custom(json.loads(custom_json), source="custom prices")


@st.cache_data(max_entries=64, show_spinner=False)
def _estimate(scenario_json: str, custom_json: str, mtimes: tuple[float, ...]) -> costs.Estimate:
    return costs.estimate(scenario.Scenario.model_validate_json(scenario_json), _book(mtimes, custom_json),
                          _config(mtimes)[1])


FIGURES = {"monthly": charts.monthly_by_component, "cumulative": charts.cumulative_cost,
           "per query": charts.cost_per_query, "latency": charts.latency_by_stage}


@st.cache_resource(max_entries=32, show_spinner=False)
def _figure(kind: str, scenario_json: str, custom_json: str, mtimes: tuple[float, ...]):
    return FIGURES[kind](_estimate(scenario_json, custom_json, mtimes))


def _money(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """A table's money columns as text by format_usd, so $0.00024 never shows as $0.00."""
    return frame.assign(**{c: frame[c].map(costs.format_usd) for c in columns if c in frame})


@st.cache_data(max_entries=32, show_spinner=False)
def _tables(scenario_json: str, custom_json: str, mtimes: tuple[float, ...]) -> dict:
    """Each table of the estimate as shown (money as text) and as downloaded (numbers, CSV)."""
    e = _estimate(scenario_json, custom_json, mtimes)
    summary = pd.DataFrame(costs.summary_rows(e))
    comp = pd.DataFrame(costs.component_rows(e))
    be = pd.DataFrame(costs.break_even_rows(e))
    cum = pd.DataFrame({o.label: o.cumulative_usd for o in e.options.values()}).rename_axis("month")
    lat = pd.DataFrame([{"option": o.label, **{k: round(v) for k, v in o.latency_ms.items()}}
                        for o in e.options.values()])
    return {"summary": _money(summary, MONEY), "summary_csv": dataframe_csv(summary),
            "components": _money(comp, comp.columns[1:]), "components_csv": dataframe_csv(comp),
            "break_even": be, "break_even_csv": dataframe_csv(be), "cumulative_csv": dataframe_csv(cum, index=True),
            "latency": lat, "latency_csv": dataframe_csv(lat), "json": json.dumps(e.to_dict(), indent=2)}


@st.cache_data(max_entries=32, show_spinner=False)
def _tornado(scenario_json: str, custom_json: str, mtimes: tuple[float, ...], a: str, b: str | None,
             metric: str) -> tuple[sensitivity.Tornado, bytes]:
    tor = sensitivity.tornado(_estimate(scenario_json, custom_json, mtimes).params, a, b, metric)
    rows = pd.DataFrame([{"input": x.label, "value": x.base_value, "at -50 %": x.low_result, "at +50 %": x.high_result,
                          "swing": x.swing} for x in tor.bars])
    return tor, dataframe_csv(rows)


def _axis(params: dict, name: str) -> np.ndarray:
    base = params[name] or 1.0
    if name == "share_rag":
        return np.linspace(0, 1, 21)
    values = np.geomspace(base / 4, base * 4, 25)
    return np.unique(np.round(values)) if name in sensitivity.INTEGER_INPUTS else values


@st.cache_data(max_entries=32, show_spinner=False)
def _sweep(scenario_json: str, custom_json: str, mtimes: tuple[float, ...], x: str, y: str, a: str, b: str | None,
           metric: str) -> tuple[sensitivity.Sweep, bytes]:
    params = _estimate(scenario_json, custom_json, mtimes).params
    sw = sensitivity.sweep(params, x, _axis(params, x), y, _axis(params, y), a, b, metric)
    grid = pd.DataFrame(sw.values, index=pd.Index(sw.y_values, name=y), columns=pd.Index(sw.x_values, name=x))
    return sw, dataframe_csv(grid, index=True)


@st.cache_resource(max_entries=16, show_spinner=False)
def _chart(kind: str, key: str, _data: object):
    """A tornado or sweep figure, drawn once per key: the key names what `_data` was computed from."""
    if kind == "tornado":
        return charts.tornado_chart(_data)
    return charts.sweep_heatmap(_data, sensitivity.INPUTS[_data.x_input], sensitivity.INPUTS[_data.y_input])


@st.cache_data(max_entries=8, show_spinner=False)
def _sources(mtimes: tuple[float, ...], custom_json: str) -> tuple[pd.DataFrame, bytes]:
    src = pd.DataFrame(_book(mtimes, custom_json).sources())
    return src, dataframe_csv(src)


mtimes = _mtimes()
shipped_book, est_cfg = _config(mtimes)
custom = pricing.saved_custom_prices(ws)
custom_json = json.dumps(custom, sort_keys=True)
try:
    book = _book(mtimes, custom_json)
except WorkbenchError as exc:
    st.error(f"Saved custom prices are invalid and were ignored: {escape_markdown(exc)}")
    custom_json, book = "{}", shipped_book


def _key(path: str) -> str:
    return f"est:{path}"


def _load_into_widgets(s: scenario.Scenario) -> None:
    for path, value in scenario.flatten(s).items():
        if path.startswith("latency.") and path.split(".")[1] not in LATENCY_KEYS:
            continue
        if path == "start_date":
            value = dt.date.fromisoformat(value) if value else dt.date.today()
        st.session_state[_key(path)] = value
    st.session_state[_key("epochs_auto")] = s.fine_tuning.epochs == "auto"
    st.session_state[_key("fine_tuning.epochs_n")] = 3 if s.fine_tuning.epochs == "auto" else s.fine_tuning.epochs
    st.session_state[_key("latency_custom")] = s.latency.rag_model is not None or s.latency.ft_model is not None
    for arm in ("rag_model", "ft_model"):
        figures = getattr(s.latency, arm)
        if figures:
            for field, value in figures.model_dump().items():
                st.session_state[_key(f"latency.{arm}.{field}")] = value


def _prefilled(p: scenario.Prefill) -> dict:
    """A prefill as kept in the workspace: its notes, and each figure's value and source."""
    flat = scenario.flatten(p.scenario)
    return {"notes": p.notes, "sources": p.sources, "values": {path: flat.get(path) for path in p.sources}}


def _load_page() -> None:
    """Fill the inputs from the working scenario, or prefill them; measure the workspace's training examples."""
    working = ws.get_state(WORKING_KEY)
    start, pre = None, ws.get_state(PREFILL_KEY)
    if working:
        try:
            start = scenario.Scenario.model_validate(working)
        except ValueError:
            st.warning("The saved working scenario no longer validates; starting from the defaults.")
    if start is None:
        p = scenario.prefill_workspace(ws, cfg=est_cfg)
        start, pre = p.scenario, _prefilled(p)
        ws.set_state(PREFILL_KEY, pre)
    _load_into_widgets(start)
    st.session_state.est_prefill = pre or {}
    st.session_state.est_prefill_notes = (pre or {}).get("notes", [])
    # Counted once per visit: the pairs change on the Data and Fine-tune pages, not here.
    report = finetune.check_workspace(ws, book=book)
    st.session_state.est_training = report if report.examples else None


# Streamlit drops widget state when another page is shown, so reload whenever it is gone.
if st.session_state.get("est_loaded_for") != ws.name or _key("queries_per_month") not in st.session_state:
    _load_page()
    st.session_state.est_loaded_for = ws.name


def _apply_prefill() -> None:
    current = scenario.Scenario.model_validate(ws.get_state(WORKING_KEY) or {})
    p = scenario.prefill_workspace(ws, base=current, cfg=est_cfg)
    _load_into_widgets(p.scenario)
    pre = _prefilled(p)
    ws.set_state(PREFILL_KEY, pre)
    st.session_state.est_prefill = pre
    st.session_state.est_prefill_notes = p.notes


def _use_measured_speeds() -> None:
    speeds, notes = scenario.measured_speeds(evaluation.measured_figures(ws))
    st.session_state[_key("latency_custom")] = True
    for arm in ("rag_model", "ft_model"):
        figures = getattr(speeds, arm)
        if figures:
            for field, value in figures.model_dump().items():
                st.session_state[_key(f"latency.{arm}.{field}")] = value
    st.session_state.est_prefill_notes = notes


def _load_saved(name: str) -> None:
    _load_into_widgets(scenario.get_saved_scenario(ws, name))
    st.session_state.est_prefill_notes = [f"Loaded saved scenario '{name}'."]


def _source(path: str) -> None:
    """Where a prefilled figure came from, under its input, while the input still holds that figure."""
    pre = st.session_state.get("est_prefill") or {}
    source = pre.get("sources", {}).get(path)
    if source and st.session_state.get(_key(path)) == pre["values"].get(path):
        st.caption(f"↳ {escape_markdown(source)}")


ft_models = [m.id for m in book.models if m.fine_tuning is not None]
ft_providers = list(dict.fromkeys(m.provider for m in book.models if m.fine_tuning is not None))
all_models = [m.id for m in book.models]
measured = evaluation.measured_figures(ws)
saved = scenario.saved_scenarios(ws)    # after the callbacks: a scenario saved by this click is in it


def _price_or_none(model_id: str | None):
    try:
        return book.model(model_id) if model_id else None
    except WorkbenchError:
        return None


def _provider_of(model_id: str | None) -> str:
    price = _price_or_none(model_id)
    return price.provider if price is not None else ft_providers[0]


def _provider_label(provider: str) -> str:
    ends = sorted({m.fine_tuning.new_jobs_end for m in book.models
                   if m.provider == provider and m.fine_tuning and m.fine_tuning.new_jobs_end})
    closing = f" (jobs end {ends[0].isoformat()})" if ends else ""   # short: the closed box shows it whole
    return PROVIDER_LABELS.get(provider, provider) + closing


def _provider_changed() -> None:
    provider = st.session_state.est_ft_provider
    st.session_state[_key("fine_tuning.model")] = next(m for m in ft_models if _provider_of(m) == provider)


def _use_measured_lora(entry: dict) -> None:
    pricing.save_custom_price(ws, "models", entry)
    st.session_state.est_prefill_notes = [f"Local LoRA training speed: {entry['source']}"]


def _choice(label: str, path: str, options: list[str], **kw):
    current = st.session_state.get(_key(path))
    if current is not None and current not in options:
        options = options + [current]  # an unknown id stays visible; the estimate explains what is missing
    return st.selectbox(label, options, key=_key(path), **kw)


def _start_box() -> None:
    """Load a saved scenario, prefill, and what the prefill said."""
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Saved scenarios", list(saved), index=None, placeholder="Choose one", key="est_pick")
    c2.button("Load", disabled=pick is None, on_click=_load_saved, args=(pick,), width="stretch")
    st.button("Prefill from Decide answers and data", on_click=_apply_prefill, width="stretch",
              help="Query volume, freshness and growth from the Decide step; corpus tokens, training examples "
                   "and their size measured on the workspace's data where they can stand for production.")
    notes = st.session_state.get("est_prefill_notes", [])
    if notes:
        with st.expander("Where the prefilled figures come from"):
            for note in notes:
                st.caption(escape_markdown(note))   # names models and saved scenarios, typed in


def _traffic_inputs() -> None:
    st.text_input("Scenario name", key=_key("name"))
    st.number_input("Queries per month", min_value=0.0, step=10_000.0, format="%.0f", key=_key("queries_per_month"))
    _source("queries_per_month")
    st.number_input("Prompt tokens per query (system + user, before context)", min_value=0, step=50,
                    key=_key("prompt_tokens"))
    _source("prompt_tokens")
    st.number_input("Output tokens per answer", min_value=0, step=25, key=_key("output_tokens"))
    _source("output_tokens")
    st.slider("Share of prompt tokens served from cache", 0.0, 1.0, step=0.05, key=_key("cached_prompt_share"))


def _fine_tuning_inputs() -> None:
    # the provider always follows the model
    st.session_state.est_ft_provider = _provider_of(st.session_state.get(_key("fine_tuning.model")))
    st.selectbox("Fine-tuning provider", ft_providers, key="est_ft_provider", on_change=_provider_changed,
                 format_func=_provider_label, help="Where the model is trained and served. OpenAI takes no new "
                 "fine-tuning jobs from 2027-01-06; the others are LoRA on open-weight models.")
    _choice("Model to fine-tune", "fine_tuning.model",
            [m for m in ft_models if _provider_of(m) == st.session_state.est_ft_provider])
    chosen = _price_or_none(st.session_state.get(_key("fine_tuning.model")))
    if chosen is not None and chosen.label:
        st.caption(escape_markdown(chosen.label))
    if chosen is not None and chosen.unverified:
        st.caption(f"⚠️ Prices not confirmed: {escape_markdown(chosen.unverified)}")
    lora_price = finetune.measured_lora_price(ws, book) if chosen is not None and chosen.provider == "local" else None
    if lora_price:
        st.button("Use the LoRA training speed measured on this machine", key="est_measured_lora",
                  on_click=_use_measured_lora, args=(lora_price,), help=lora_price["source"])
    st.number_input("Training examples", min_value=0, step=50, key=_key("fine_tuning.training_examples"))
    _source("fine_tuning.training_examples")
    st.number_input("Tokens per example", min_value=1.0, step=50.0, key=_key("fine_tuning.tokens_per_example"))
    _source("fine_tuning.tokens_per_example")
    auto = st.checkbox("Epochs: auto (OpenAI's rule)", key=_key("epochs_auto"))
    st.number_input("Epochs", min_value=1, max_value=50, disabled=auto, key=_key("fine_tuning.epochs_n"))
    st.slider("Retrains per year", 0.0, 52.0, step=1.0, key=_key("fine_tuning.retrains_per_year"))
    _source("fine_tuning.retrains_per_year")
    st.number_input("Examples added per retrain", min_value=0, step=50,
                    key=_key("fine_tuning.examples_added_per_retrain"))
    st.number_input("Data preparation hours", min_value=0.0, step=4.0, key=_key("fine_tuning.prep_hours"))


def _rag_inputs() -> None:
    _choice("Answering model", "rag.model", all_models)
    _choice("Embedding model", "rag.embedding_model", [e.id for e in book.embeddings])
    _choice("Vector store", "rag.vector_store", [v.id for v in book.vector_stores])
    st.checkbox("Index in the app's own process (no machine of its own)", key=_key("rag.in_process_index"),
                help="FAISS in memory beside the app: fine for a small corpus. Unticked, a self-run index is priced "
                     "with a machine of its own.")
    _source("rag.vector_store")
    st.number_input("Corpus tokens", min_value=0, step=100_000, key=_key("rag.corpus_tokens"))
    _source("rag.corpus_tokens")
    st.number_input("Chunk tokens", min_value=1, step=64, key=_key("rag.chunk_tokens"))
    st.number_input("Chunk overlap tokens", min_value=0, step=16, key=_key("rag.chunk_overlap"))
    st.slider("Retrieved chunks per query (top_k)", 0, 50, key=_key("rag.top_k"))
    st.slider("Monthly churn (share of corpus re-embedded)", 0.0, 1.0, step=0.01, key=_key("rag.monthly_churn"))
    _source("rag.monthly_churn")
    st.slider("Monthly growth (share of initial corpus added)", 0.0, 1.0, step=0.01, key=_key("rag.monthly_growth"))
    _source("rag.monthly_growth")
    st.number_input("Query tokens embedded per question", min_value=0, step=10, key=_key("rag.query_tokens"))
    st.number_input("Data preparation hours", min_value=0.0, step=4.0, key=_key("rag.prep_hours"))


def _latency_inputs() -> None:
    st.caption(est_cfg.latency.source)
    st.number_input("Embed query (ms); empty = configured default", min_value=0.0, step=5.0,
                    key=_key("latency.embed_query_ms"))
    st.number_input("Vector search (ms); empty = configured default", min_value=0.0, step=1.0,
                    key=_key("latency.vector_search_ms"))
    speeds, _ = scenario.measured_speeds(measured)
    if speeds.rag_model or speeds.ft_model:
        st.button("Use the model speeds measured on this machine", key="est_measured_speeds",
                  on_click=_use_measured_speeds,
                  help="Time to first token and tokens per second of the local model, from its answers in the "
                       "last Compare run: what a self-hosted model on hardware like this would do.")
    if not st.checkbox("Set model speeds myself", key=_key("latency_custom")):
        return
    for arm, label, model in (("rag_model", "RAG model", st.session_state[_key("rag.model")]),
                              ("ft_model", "Fine-tuned model", st.session_state[_key("fine_tuning.model")])):
        default = est_cfg.latency.models.get(book.model(model).id if model in all_models else model,
                                             est_cfg.latency.default_model)
        for field, text in (("ttft_ms", "time to first token (ms)"),
                            ("ms_per_1k_prompt_tokens", "ms per 1k prompt tokens"),
                            ("output_tokens_per_s", "output tokens per second")):
            k = _key(f"latency.{arm}.{field}")
            st.session_state.setdefault(k, float(getattr(default, field)))
            st.number_input(f"{label}: {text}", min_value=0.0 if field != "output_tokens_per_s" else 0.1, key=k)


def _inputs() -> None:
    with st.container(border=True):
        _start_box()
    with st.expander("Traffic", expanded=True):
        _traffic_inputs()
    with st.expander("Fine-tuning", expanded=True):
        _fine_tuning_inputs()
    with st.expander("RAG", expanded=True):
        _rag_inputs()
    with st.expander("Hybrid"):
        st.slider("Routing: share of questions sent to RAG", 0.0, 1.0, step=0.05, key=_key("hybrid.routing_share_rag"))
        st.number_input("Routing decision (ms)", min_value=0.0, step=1.0, key=_key("hybrid.router_ms"))
    with st.expander("Horizon", expanded=True):
        st.slider("Months", 1, 60, key=_key("months"))
        st.date_input("Start date (for lifecycle dates)", key=_key("start_date"))
        st.number_input("Hourly rate for data preparation (USD)", min_value=0.0, step=10.0, key=_key("hourly_rate_usd"))
    with st.expander("Latency figures"):
        _latency_inputs()


def _scenario_from_widgets() -> scenario.Scenario:
    flat = {}
    for path in scenario.flatten(scenario.default_scenario(est_cfg)):
        if path in ("fine_tuning.epochs", "latency.rag_model", "latency.ft_model", "fine_tuning.prompt_tokens"):
            continue
        value = st.session_state.get(_key(path))
        flat[path] = value.isoformat() if path == "start_date" and value is not None else value
    flat["fine_tuning.epochs"] = "auto" if st.session_state[_key("epochs_auto")] else \
        st.session_state[_key("fine_tuning.epochs_n")]
    if st.session_state.get(_key("latency_custom")):
        for arm in ("rag_model", "ft_model"):
            for field in ("ttft_ms", "ms_per_1k_prompt_tokens", "output_tokens_per_s"):
                flat[f"latency.{arm}.{field}"] = st.session_state.get(_key(f"latency.{arm}.{field}"))
    return scenario.from_flat(flat, source="Estimate inputs")


def _training_captions(current: scenario.Scenario, ft: costs.OptionEstimate) -> None:
    """What one training run counts, and the same figure on the workspace's own examples (the Fine-tune page's)."""
    trained = book.model(current.fine_tuning.model)
    tpe = min(current.fine_tuning.tokens_per_example, book.example_token_limit(trained.id))
    speed = trained.fine_tuning.training_tokens_per_s if trained.fine_tuning else None
    took = (f", {finetune.training_time(ft.billed_training_tokens / speed)} at {speed:,.0f} training tokens/s "
            f"({trained.source})" if speed else "")
    st.caption(escape_markdown(f"One training run: {current.fine_tuning.training_examples:,} examples x {tpe:,.0f} "
                               f"tokens x {ft.epochs} epochs = {ft.billed_training_tokens:,.0f} tokens{took}."))
    report = st.session_state.get("est_training")
    if report is None:
        return
    own = finetune.workspace_preview(ws, trained.id, current.fine_tuning.epochs, book, report)
    cost = "no training price" if own.training_cost_usd is None else costs.format_usd(own.training_cost_usd)
    st.caption(escape_markdown(f"On this workspace's own examples, {own.basis}, as the Fine-tune page previews "
                               f"them: {own.epochs} epochs, {own.billed_tokens:,} tokens, {cost} with {trained.id}."))


def _headline(current: scenario.Scenario, est: costs.Estimate, tables: dict) -> None:
    """Warnings, the three figures that answer the question, and the summary table."""
    show = {"error": st.error, "warning": st.warning, "info": st.info}
    for w in est.warnings:
        arm = f"**{costs.OPTION_LABELS[w.option]}**: " if w.option else ""
        show[w.level](arm + escape_markdown(w.message))  # names models, custom ones too
    cheapest = min(est.options.values(), key=lambda o: o.total_cost_usd)
    fastest = min(est.options.values(), key=lambda o: o.latency_ms["total"])
    ft = est.options["fine_tuning"]
    m1, m2, m3 = st.columns(3)
    m1.metric("Cheapest over the horizon", cheapest.label, costs.format_usd(cheapest.total_cost_usd),
              delta_color="off", delta_arrow="off")
    m2.metric("Fastest answer", fastest.label, f"{fastest.latency_ms['total']:,.0f} ms", delta_color="off",
              delta_arrow="off")
    m3.metric("One training run", costs.format_usd(ft.training_cost_usd or 0),
              f"{ft.epochs} epochs, {ft.billed_training_tokens:,.0f} tokens", delta_color="off", delta_arrow="off")
    _training_captions(current, ft)
    st.dataframe(tables["summary"], hide_index=True, width="stretch", column_config={
        "option": st.column_config.TextColumn(pinned=True, width=OPTION_WIDTH),
        "setup": st.column_config.TextColumn(alignment="right"),
        "monthly": st.column_config.TextColumn(alignment="right", help="average over the horizon"),
        "per query": st.column_config.TextColumn(alignment="right", help="running cost per query"),
        "total": st.column_config.TextColumn(alignment="right", help=f"set-up + {current.months} months"),
        "latency ms": st.column_config.NumberColumn(format="%.0f")})
    st.caption(f"USD. Monthly is the average over {current.months} months; total adds the set-up.")


MEASURED_PAIRS = {"latency ms: estimate / measured": ("latency ms (estimate)", "latency ms p50 (measured)"),
                  "$ per query: estimate / measured": ("$ inference / query (estimate)", "$ / query (measured)"),
                  "prompt tokens: estimate / measured": ("prompt tokens (estimate)", "prompt tokens (measured)")}


def _count(x: float | None) -> str:
    """A latency or token figure; an arm with no successful answer has none."""
    return "n/a" if x is None or pd.isna(x) else f"{x:,.0f}"


def _measured_table(est: costs.Estimate) -> None:
    """The estimate beside what Compare measured, each figure as "estimate / measured" so the table fits."""
    side = pd.DataFrame(costs.estimate_vs_measured(est, measured))
    for column, (e, m) in MEASURED_PAIRS.items():
        shown = costs.format_usd if column.startswith("$") else _count
        side[column] = [f"{shown(a)} / {shown(b)}" for a, b in zip(side[e], side[m])]
    st.markdown("**Estimate and measurement** (from the Compare step)")
    st.dataframe(side, hide_index=True, width="stretch", column_order=["option", *MEASURED_PAIRS],
                 column_config={"option": st.column_config.TextColumn(pinned=True, width=OPTION_WIDTH), **{
                     c: st.column_config.TextColumn(c.split(":")[0], alignment="right", help=c)
                     for c in MEASURED_PAIRS}})
    st.caption(escape_markdown(  # provider names come from the providers' config
        "Each cell: estimate / measured. Latency is the median measured; the estimated cost is inference only. "
        "Measured with "
        + "; ".join(f"{r['option']}: {r['measured with']}" for r in side.to_dict("records"))
        + ", on the workspace's held-out questions; offline stand-ins answer locally for free, so their cost is "
        "not what a hosted model would charge."))


def _keep_tab_choices(choices: list[str]) -> None:
    """Keep the tabs' selections while their tab is closed (a widget not drawn loses its state)."""
    for k, v in TAB_CHOICES.items():
        st.session_state[k] = st.session_state.get(k, v)
    for k, fallback in (("est_cmp_left", choices[0]), ("est_cmp_right", choices[min(1, len(choices) - 1)])):
        if st.session_state.get(k) not in choices:
            st.session_state[k] = fallback


def _side_by_side(current_json: str, names: tuple[str, str]) -> tuple[list, pd.DataFrame | None, str | None]:
    """Two scenarios (the current inputs or saved ones) priced side by side."""
    try:
        jsons = [current_json if n == "(current inputs)" else
                 scenario.get_saved_scenario(ws, n).model_dump_json(exclude_none=True) for n in names]
        pair = [(n, j, _estimate(j, custom_json, mtimes)) for n, j in zip(names, jsons)]
    except WorkbenchError as exc:
        return [], None, str(exc)
    rows = [{"option": costs.OPTION_LABELS[opt], **{
        k: v for n, _, e in pair for k, v in ((f"{n}: monthly", e.options[opt].monthly_cost_usd),
                                              (f"{n}: total", e.options[opt].total_cost_usd),
                                              (f"{n}: latency ms", e.options[opt].latency_ms["total"]))}}
            for opt in costs.OPTIONS]
    return pair, pd.DataFrame(rows), None


def _tab_monthly(est: costs.Estimate, tables: dict, current_json: str) -> None:
    st.plotly_chart(_figure("monthly", current_json, custom_json, mtimes), width="stretch")
    comp = tables["components"]
    st.table(comp, hide_index=True)   # a static table wraps its headers: every component stays in view
    every = dict.fromkeys(c for o in est.options.values() for c in o.monthly_by_component)
    left_out = [c for c in every if c not in comp.columns]
    st.caption("USD per month, averaged over the horizon; largest components first."
               + (f" Nothing is spent on: {', '.join(left_out)}." if left_out else ""))


def _tab_break_even(tables: dict, current_json: str) -> None:
    st.plotly_chart(_figure("cumulative", current_json, custom_json, mtimes), width="stretch")
    st.table(tables["break_even"], hide_index=True)
    st.caption("Break-even month: when the cumulative costs cross. Break-even volume: the monthly queries at which "
               "the totals over the horizon are equal.")


def _tab_latency(est: costs.Estimate, tables: dict, current_json: str) -> None:
    st.plotly_chart(_figure("latency", current_json, custom_json, mtimes), width="stretch")
    st.table(tables["latency"], hide_index=True)
    st.caption(f"Milliseconds per answer. Latency figures: {est.latency_source}.")


def _option_pickers(prefix: str, columns) -> None:
    labels = {o: costs.OPTION_LABELS[o] for o in costs.OPTIONS}
    columns[0].selectbox("Option", costs.OPTIONS, format_func=labels.get, key=f"{prefix}_a")
    columns[1].selectbox("minus", [None, *costs.OPTIONS], key=f"{prefix}_b",
                         format_func=lambda o: "(nothing)" if o is None else labels[o])
    columns[2].selectbox("Metric", METRICS, key=f"{prefix}_metric")


def _tab_sensitivity(tor: sensitivity.Tornado, key: str) -> None:
    _option_pickers("est_tornado", st.columns(3))
    st.plotly_chart(_chart("tornado", key, tor), width="stretch")


def _tab_sweep(sw: sensitivity.Sweep | None, key: str) -> None:
    names = list(sensitivity.INPUTS)
    s1, s2 = st.columns(2)
    s1.selectbox("Across (x)", names, format_func=sensitivity.INPUTS.get, key="est_sweep_x")
    s2.selectbox("Down (y)", names, format_func=sensitivity.INPUTS.get, key="est_sweep_y")
    _option_pickers("est_sweep", st.columns(3))
    if sw is None:
        st.info("Choose two different inputs.")
    else:
        st.plotly_chart(_chart("sweep", key, sw), width="stretch")


def _save_current() -> None:
    try:
        saved = _scenario_from_widgets()
    except WorkbenchError:
        return   # the page shows what is wrong with the inputs
    scenario.save_scenario(ws, saved)
    st.session_state.est_saved = saved.name


def _tab_scenarios(current: scenario.Scenario, choices: list[str], compared: tuple) -> None:
    with st.form("save_scenario", clear_on_submit=False):
        st.caption(f"Save the inputs on the left as **{escape_markdown(current.name)}** (a saved scenario of the "
                   "same name is replaced).")
        st.form_submit_button("Save scenario", on_click=_save_current)   # before the run: the choices include it
        if st.session_state.get("est_saved"):
            st.success(f"Saved '{escape_markdown(st.session_state.pop('est_saved'))}'.")
    k1, k2 = st.columns(2)
    k1.selectbox("Left", choices, key="est_cmp_left")
    k2.selectbox("Right", choices, key="est_cmp_right")
    pair, side, error = compared
    if error:
        st.error(escape_markdown(error))
    if side is not None:
        shown = _money(side, [c for c in side.columns if c.endswith((": monthly", ": total"))])
        st.table(shown.assign(**{c: side[c].round().astype(int) for c in side.columns if c.endswith(": latency ms")}),
                 hide_index=True)
        for i, (col, (name, j, _)) in enumerate(zip(st.columns(2), pair)):
            col.markdown(f"**{escape_markdown(name)}**")
            col.plotly_chart(_figure("monthly", j, custom_json, mtimes), width="stretch", key=f"est_cmp_chart_{i}")
    for name in choices[1:]:
        if st.button(f"Delete saved scenario '{escape_markdown(name)}'", key=f"est_del_{name}"):
            scenario.delete_scenario(ws, name)
            st.rerun()


def _downloads(items: list[tuple[str, object, str]]) -> None:
    cols = st.columns(2)
    for i, (label, data, name) in enumerate(x for x in items if x[1] is not None):
        cols[i % 2].download_button(label, data, name, "application/json" if name.endswith(".json") else "text/csv",
                                    width="stretch")
    st.caption("Tornado, sweep and side by side as last chosen in their tabs.")


def _results() -> None:
    try:
        current = _scenario_from_widgets()
        current_json = current.model_dump_json(exclude_none=True)
        est = _estimate(current_json, custom_json, mtimes)
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))  # may quote a typed model id or scenario value
        st.info("Fix the input above, or add the missing price under **Custom prices** below.")
        return
    working = current.model_dump(mode="json", exclude_none=True)
    if ws.get_state(WORKING_KEY) != working:
        ws.set_state(WORKING_KEY, working)
    tables = _tables(current_json, custom_json, mtimes)
    _headline(current, est, tables)
    if measured:
        _measured_table(est)

    # Only the open tab runs, so a figure is drawn only when it is seen; the downloads below need no figure.
    choices = ["(current inputs)", *saved]
    _keep_tab_choices(choices)
    ss = st.session_state
    tornado = (ss.est_tornado_a, ss.est_tornado_b if ss.est_tornado_b != ss.est_tornado_a else None,
               ss.est_tornado_metric)
    tor, tornado_csv = _tornado(current_json, custom_json, mtimes, *tornado)
    sweep = (ss.est_sweep_x, ss.est_sweep_y, ss.est_sweep_a, ss.est_sweep_b if ss.est_sweep_b != ss.est_sweep_a
             else None, ss.est_sweep_metric)
    sw, sweep_csv = _sweep(current_json, custom_json, mtimes, *sweep) if sweep[0] != sweep[1] else (None, None)
    compared = _side_by_side(current_json, (ss.est_cmp_left, ss.est_cmp_right))
    src, src_csv = _sources(mtimes, custom_json)

    tabs = st.tabs(["Monthly cost", "Break-even", "Cost per query", "Latency", "Sensitivity", "Sweep", "Scenarios",
                    "Prices"], key="est_tab", on_change="rerun")
    draw = [lambda: _tab_monthly(est, tables, current_json),
            lambda: _tab_break_even(tables, current_json),
            lambda: st.plotly_chart(_figure("per query", current_json, custom_json, mtimes), width="stretch"),
            lambda: _tab_latency(est, tables, current_json),
            lambda: _tab_sensitivity(tor, json.dumps([current_json, custom_json, mtimes, *tornado])),
            lambda: _tab_sweep(sw, json.dumps([current_json, custom_json, mtimes, *sweep])),
            lambda: _tab_scenarios(current, choices, compared),
            lambda: st.dataframe(src, hide_index=True, width="stretch",
                                 column_order=["id", "as_of", "source", "unverified", "kind"],
                                 column_config={"id": st.column_config.TextColumn(pinned=True)})]
    for tab, body in zip(tabs, draw):
        if tab.open:
            with tab:
                body()
    with st.expander("Download the tables (CSV) and the estimate (JSON)"):
        side = compared[1]
        _downloads([("Summary (CSV)", tables["summary_csv"], "estimate_summary.csv"),
                    ("Full estimate (JSON)", tables["json"], "estimate.json"),
                    ("Monthly cost by component (CSV)", tables["components_csv"], "monthly_by_component.csv"),
                    ("Break-even (CSV)", tables["break_even_csv"], "break_even.csv"),
                    ("Cumulative cost by month (CSV)", tables["cumulative_csv"], "cumulative_cost.csv"),
                    ("Latency by stage (CSV)", tables["latency_csv"], "latency_by_stage.csv"),
                    ("Tornado (CSV)", tornado_csv, "tornado.csv"), ("Sweep (CSV)", sweep_csv, "sweep.csv"),
                    ("Side by side (CSV)", None if side is None else dataframe_csv(side), "scenarios_side_by_side.csv"),
                    ("Price sources (CSV)", src_csv, "price_sources.csv")])


def _custom_prices() -> None:
    st.caption("Add a model that is not in the price list, or override a listed one (same id). USD per 1M tokens.")
    with st.form("custom_price"):
        f1, f2, f3 = st.columns(3)
        cid = f1.text_input("Model id")
        cin = f2.number_input("Input price", min_value=0.0, step=0.05)
        cout = f3.number_input("Output price", min_value=0.0, step=0.05)
        g1, g2, g3 = st.columns(3)
        cctx = g1.number_input("Context window (tokens)", min_value=1, value=128_000, step=1000)
        ctrain = g2.number_input("Fine-tuning: training price (0 = not fine-tunable)", min_value=0.0, step=0.5)
        cftin = g3.number_input("Fine-tuned input price", min_value=0.0, step=0.05)
        h1, h2 = st.columns(2)
        cftout = h1.number_input("Fine-tuned output price", min_value=0.0, step=0.05)
        csrc = h2.text_input("Source (e.g. contract, vendor page)")
        if st.form_submit_button("Save price"):
            entry = {"id": cid.strip(), "input": cin, "output": cout, "context_window": int(cctx),
                     "source": csrc.strip() or "entered on the Estimate page", "as_of": dt.date.today().isoformat()}
            if ctrain > 0:
                entry["fine_tuning"] = {"training": ctrain, "input": cftin, "output": cftout}
            _save_price(entry)
    for entry in custom.get("models", []):
        e1, e2 = st.columns([4, 1])
        # Id and source are typed in, so no code span around the id: a backtick in it would close one.
        e1.write(f"**{escape_markdown(entry['id'])}**: input {entry.get('input', 0)}, "
                 f"output {entry.get('output', 0)} ({escape_markdown(entry.get('source', ''))})")
        if e2.button("Remove", key=f"est_rm_price_{entry['id']}"):
            pricing.delete_custom_price(ws, "models", entry["id"])
            st.rerun()


def _save_price(entry: dict) -> None:
    if not entry["id"]:
        st.error("Give the model an id.")
        return
    try:
        pricing.save_custom_price(ws, "models", entry)
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))  # quotes what was typed
        return
    st.success(f"Saved a price for '{escape_markdown(entry['id'])}'.")
    st.rerun()


st.title("Estimate: cost and latency")
st.markdown("What each option costs to set up and to run, how fast it answers, when one overtakes another, "
            "and which inputs matter most. Every figure below is editable; prices come from "
            "`configs/pricing.yaml` with their sources.")
inputs, results = st.columns([1, 2], gap="large")
with inputs:
    _inputs()
with results:
    _results()
with st.expander("Custom prices (saved in this workspace)"):
    _custom_prices()
