"""Estimate: cost and latency of fine-tuning, RAG and the hybrids, with break-even and sensitivity."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import streamlit as st

from pageshell import current_workspace
from workbench import charts, corpus, costs, decision, evaluation, finetune, pricing, scenario, sensitivity
from workbench.errors import WorkbenchError
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/estimate.py")
WORKING_KEY = "estimate_working"
PROVIDER_LABELS = {"openai": "OpenAI", "azure-openai": "Azure OpenAI", "together": "Together AI (LoRA)",
                   "fireworks": "Fireworks AI (LoRA)", "self-hosted": "Self-hosted LoRA (GPU by the hour)",
                   "local": "Local LoRA on this machine (tiny model)", "other": "Other (custom prices)"}
LATENCY_KEYS = ("embed_query_ms", "vector_search_ms")


@st.cache_resource
def _config(_mtime: tuple[float, ...]):
    return pricing.load_pricing(), scenario.load_estimate_config()


def _mtimes() -> tuple[float, ...]:
    from workbench.config import config_path
    return tuple(config_path(n).stat().st_mtime for n in ("pricing.yaml", "estimate.yaml"))


shipped_book, est_cfg = _config(_mtimes())
custom = pricing.saved_custom_prices(ws)
try:
    book = shipped_book.with_custom(custom, source="custom prices")
except WorkbenchError as exc:
    st.error(f"Saved custom prices are invalid and were ignored: {escape_markdown(exc)}")
    book = shipped_book


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


def _starting_scenario() -> tuple[scenario.Scenario, list[str]]:
    saved = ws.get_state(WORKING_KEY)
    if saved:
        try:
            return scenario.Scenario.model_validate(saved), []
        except ValueError:
            st.warning("The saved working scenario no longer validates; starting from the defaults.")
    return scenario.prefill(scenario.default_scenario(est_cfg), decision.saved_answers(ws), corpus.data_stats(ws),
                            cfg=est_cfg)


# Streamlit drops widget state when another page is shown, so reload whenever it is gone.
if st.session_state.get("est_loaded_for") != ws.name or _key("queries_per_month") not in st.session_state:
    start, notes = _starting_scenario()
    _load_into_widgets(start)
    st.session_state.est_prefill_notes = notes
    st.session_state.est_loaded_for = ws.name


def _apply_prefill() -> None:
    current = scenario.Scenario.model_validate(ws.get_state(WORKING_KEY) or {})
    s, notes = scenario.prefill(current, decision.saved_answers(ws), corpus.data_stats(ws), cfg=est_cfg)
    _load_into_widgets(s)
    st.session_state.est_prefill_notes = notes or ["No Decide answers or workspace data that change the scenario."]


def _use_measured_speeds() -> None:
    speeds, notes = scenario.measured_speeds(evaluation.measured_figures(ws))
    st.session_state[_key("latency_custom")] = True
    for arm in ("rag_model", "ft_model"):
        figures = getattr(speeds, arm)
        if figures:
            for field, value in figures.model_dump().items():
                st.session_state[_key(f"latency.{arm}.{field}")] = value
    st.session_state.est_prefill_notes = [escape_markdown(n) for n in notes]


def _load_saved(name: str) -> None:
    _load_into_widgets(scenario.get_saved_scenario(ws, name))
    st.session_state.est_prefill_notes = [f"Loaded saved scenario '{escape_markdown(name)}'."]


st.title("Estimate: cost and latency")
st.markdown("What each option costs to set up and to run, how fast it answers, when one overtakes another, "
            "and which inputs matter most. Every figure below is editable; prices come from "
            "`configs/pricing.yaml` with their sources.")

ft_models = [m.id for m in book.models if m.fine_tuning is not None]
ft_providers = list(dict.fromkeys(m.provider for m in book.models if m.fine_tuning is not None))


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
    closing = f" (no new jobs from {ends[0].isoformat()})" if ends else ""
    return PROVIDER_LABELS.get(provider, provider) + closing


def _provider_changed() -> None:
    provider = st.session_state.est_ft_provider
    st.session_state[_key("fine_tuning.model")] = next(m for m in ft_models if _provider_of(m) == provider)


def _use_measured_lora(entry: dict) -> None:
    pricing.save_custom_price(ws, "models", entry)
    st.session_state.est_prefill_notes = [escape_markdown(f"Local LoRA training speed: {entry['source']}")]


all_models = [m.id for m in book.models]
embeddings = [e.id for e in book.embeddings]
stores = [v.id for v in book.vector_stores]


def _choice(label: str, path: str, options: list[str], container=st, **kw):
    current = st.session_state.get(_key(path))
    if current is not None and current not in options:
        options = options + [current]  # an unknown id stays visible; the estimate explains what is missing
    return container.selectbox(label, options, key=_key(path), **kw)


inputs, results = st.columns([1, 2], gap="large")

with inputs:
    top = st.container(border=True)
    saved = scenario.saved_scenarios(ws)
    c1, c2 = top.columns([3, 2])
    pick = c1.selectbox("Saved scenarios", list(saved), index=None, placeholder="Load a saved scenario",
                        key="est_pick")
    c2.button("Load", disabled=pick is None, on_click=_load_saved, args=(pick,), width="stretch")
    top.button("Prefill from Decide answers and data", on_click=_apply_prefill, width="stretch",
               help="Query volume, freshness and growth from the Decide step; corpus tokens, training examples "
                    "and their size measured on the workspace's data.")
    notes = st.session_state.get("est_prefill_notes", [])
    if notes:
        with top.expander(f"{len(notes)} value(s) prefilled"):
            for note in notes:
                st.caption(note)

    with st.expander("Traffic", expanded=True):
        st.text_input("Scenario name", key=_key("name"))
        st.number_input("Queries per month", min_value=0.0, step=10_000.0, format="%.0f", key=_key("queries_per_month"))
        st.number_input("Prompt tokens per query (system + user, before context)", min_value=0, step=50,
                        key=_key("prompt_tokens"))
        st.number_input("Output tokens per answer", min_value=0, step=25, key=_key("output_tokens"))
        st.slider("Share of prompt tokens served from cache", 0.0, 1.0, step=0.05, key=_key("cached_prompt_share"))
    with st.expander("Fine-tuning", expanded=True):
        model_now = st.session_state.get(_key("fine_tuning.model"))
        st.session_state.est_ft_provider = _provider_of(model_now)   # the provider always follows the model
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
        lora_price = finetune.measured_lora_price(ws, book) if chosen is not None and chosen.provider == "local" \
            else None
        if lora_price:
            st.button("Use the LoRA training speed measured on this machine", key="est_measured_lora",
                      on_click=_use_measured_lora, args=(lora_price,), help=lora_price["source"])
        st.number_input("Training examples", min_value=0, step=50, key=_key("fine_tuning.training_examples"))
        st.number_input("Tokens per example", min_value=1.0, step=50.0, key=_key("fine_tuning.tokens_per_example"))
        auto = st.checkbox("Epochs: auto (OpenAI's rule)", key=_key("epochs_auto"))
        st.number_input("Epochs", min_value=1, max_value=50, disabled=auto, key=_key("fine_tuning.epochs_n"))
        st.slider("Retrains per year", 0.0, 52.0, step=1.0, key=_key("fine_tuning.retrains_per_year"))
        st.number_input("Examples added per retrain", min_value=0, step=50,
                        key=_key("fine_tuning.examples_added_per_retrain"))
        st.number_input("Data preparation hours", min_value=0.0, step=4.0, key=_key("fine_tuning.prep_hours"))
    with st.expander("RAG", expanded=True):
        _choice("Answering model", "rag.model", all_models)
        _choice("Embedding model", "rag.embedding_model", embeddings)
        _choice("Vector store", "rag.vector_store", stores)
        st.number_input("Corpus tokens", min_value=0, step=100_000, key=_key("rag.corpus_tokens"))
        st.number_input("Chunk tokens", min_value=1, step=64, key=_key("rag.chunk_tokens"))
        st.number_input("Chunk overlap tokens", min_value=0, step=16, key=_key("rag.chunk_overlap"))
        st.slider("Retrieved chunks per query (top_k)", 0, 50, key=_key("rag.top_k"))
        st.slider("Monthly churn (share of corpus re-embedded)", 0.0, 1.0, step=0.01, key=_key("rag.monthly_churn"))
        st.slider("Monthly growth (share of initial corpus added)", 0.0, 1.0, step=0.01, key=_key("rag.monthly_growth"))
        st.number_input("Query tokens embedded per question", min_value=0, step=10, key=_key("rag.query_tokens"))
        st.number_input("Data preparation hours", min_value=0.0, step=4.0, key=_key("rag.prep_hours"))
    with st.expander("Hybrid"):
        st.slider("Routing: share of questions sent to RAG", 0.0, 1.0, step=0.05, key=_key("hybrid.routing_share_rag"))
        st.number_input("Routing decision (ms)", min_value=0.0, step=1.0, key=_key("hybrid.router_ms"))
    with st.expander("Horizon", expanded=True):
        st.slider("Months", 1, 60, key=_key("months"))
        st.date_input("Start date (for lifecycle dates)", key=_key("start_date"))
        st.number_input("Hourly rate for data preparation (USD)", min_value=0.0, step=10.0, key=_key("hourly_rate_usd"))
    with st.expander("Latency figures"):
        st.caption(est_cfg.latency.source)
        st.number_input("Embed query (ms); empty = configured default", min_value=0.0, step=5.0,
                        key=_key("latency.embed_query_ms"))
        st.number_input("Vector search (ms); empty = configured default", min_value=0.0, step=1.0,
                        key=_key("latency.vector_search_ms"))
        speeds, _ = scenario.measured_speeds(evaluation.measured_figures(ws))
        if speeds.rag_model or speeds.ft_model:
            st.button("Use the model speeds measured on this machine", key="est_measured_speeds",
                      on_click=_use_measured_speeds,
                      help="Time to first token and tokens per second of the local model, from its answers in the "
                           "last Compare run: what a self-hosted model on hardware like this would do.")
        custom_latency = st.checkbox("Set model speeds myself", key=_key("latency_custom"))
        if custom_latency:
            for arm, label, model in (("rag_model", "RAG model", st.session_state[_key("rag.model")]),
                                      ("ft_model", "Fine-tuned model", st.session_state[_key("fine_tuning.model")])):
                default = est_cfg.latency.models.get(book.model(model).id if model in all_models else model,
                                                     est_cfg.latency.default_model)
                for field, text in (("ttft_ms", "time to first token (ms)"),
                                    ("ms_per_1k_prompt_tokens", "ms per 1k prompt tokens"),
                                    ("output_tokens_per_s", "output tokens per second")):
                    k = _key(f"latency.{arm}.{field}")
                    st.session_state.setdefault(k, float(getattr(default, field)))
                    st.number_input(f"{label}: {text}", min_value=0.0 if field != "output_tokens_per_s" else 0.1,
                                    key=k)


def _scenario_from_widgets() -> scenario.Scenario:
    flat = {}
    for path in scenario.flatten(scenario.default_scenario(est_cfg)):
        if path in ("fine_tuning.epochs", "latency.rag_model", "latency.ft_model", "fine_tuning.prompt_tokens"):
            continue
        value = st.session_state.get(_key(path))
        if path == "start_date" and value is not None:
            value = value.isoformat()
        flat[path] = value
    flat["fine_tuning.epochs"] = "auto" if st.session_state[_key("epochs_auto")] else \
        st.session_state[_key("fine_tuning.epochs_n")]
    if st.session_state.get(_key("latency_custom")):
        for arm in ("rag_model", "ft_model"):
            for field in ("ttft_ms", "ms_per_1k_prompt_tokens", "output_tokens_per_s"):
                flat[f"latency.{arm}.{field}"] = st.session_state.get(_key(f"latency.{arm}.{field}"))
    return scenario.from_flat(flat, source="Estimate inputs")




with results:
    try:
        current = _scenario_from_widgets()
        est = costs.estimate(current, book, est_cfg)
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))  # may quote a typed model id or scenario value
        st.info("Fix the input above, or add the missing price under **Custom prices** below.")
        est = None
    if est is not None:
        if ws.get_state(WORKING_KEY) != current.model_dump(mode="json", exclude_none=True):
            ws.set_state(WORKING_KEY, current.model_dump(mode="json", exclude_none=True))
        show = {"error": st.error, "warning": st.warning, "info": st.info}
        for w in est.warnings:
            arm = f"**{costs.OPTION_LABELS[w.option]}**: " if w.option else ""
            show[w.level](arm + escape_markdown(w.message))  # names models, custom ones too

        summary = pd.DataFrame([{
            "option": o.label, "setup": o.setup_cost_usd, "monthly": o.monthly_cost_usd,
            "per query": o.cost_per_query_usd, "total": o.total_cost_usd,
            "latency ms": o.latency_ms["total"]} for o in est.options.values()])
        cheapest = min(est.options.values(), key=lambda o: o.total_cost_usd)
        fastest = min(est.options.values(), key=lambda o: o.latency_ms["total"])
        m1, m2, m3 = st.columns(3)
        m1.metric("Cheapest over the horizon", cheapest.label, costs.format_usd(cheapest.total_cost_usd), delta_color="off", delta_arrow="off")
        m2.metric("Fastest answer", fastest.label, f"{fastest.latency_ms['total']:,.0f} ms", delta_color="off", delta_arrow="off")
        ft = est.options["fine_tuning"]
        m3.metric("One training run", costs.format_usd(ft.training_cost_usd or 0),
                  f"{ft.epochs} epochs, {ft.billed_training_tokens:,.0f} tokens", delta_color="off", delta_arrow="off")
        trained = book.model(current.fine_tuning.model)
        if trained.fine_tuning and trained.fine_tuning.training_tokens_per_s:
            minutes = ft.billed_training_tokens / trained.fine_tuning.training_tokens_per_s / 60
            st.caption(f"One training run takes about {minutes:,.0f} minutes at "
                       f"{trained.fine_tuning.training_tokens_per_s:,.0f} training tokens/s "
                       f"({escape_markdown(trained.source)}).")
        st.dataframe(summary, hide_index=True, width="stretch", column_config={
            "setup": st.column_config.NumberColumn(format="$%.2f"),
            "monthly": st.column_config.NumberColumn(format="$%.2f", help="average over the horizon"),
            "per query": st.column_config.NumberColumn(format="$%.5f", help="running cost per query"),
            "total": st.column_config.NumberColumn(format="$%.2f", help=f"set-up + {current.months} months"),
            "latency ms": st.column_config.NumberColumn(format="%.0f")})
        st.caption(f"USD. Monthly is the average over {current.months} months; total adds the set-up.")
        measured = evaluation.measured_figures(ws)
        if measured:
            side = pd.DataFrame(costs.estimate_vs_measured(est, measured))
            st.markdown("**Estimate and measurement** (from the Compare step)")
            st.dataframe(side, hide_index=True, width="stretch", column_config={
                c: st.column_config.NumberColumn(format="%.0f") for c in side.columns if "ms" in c or "tokens" in c}
                | {c: st.column_config.NumberColumn(format="$%.6f") for c in side.columns if "$" in c})
            st.caption("Measured on the workspace's held-out questions with the providers configured then; offline "
                       "stand-ins answer locally for free, so their cost is not what a hosted model would charge.")
        d1, d2 = st.columns(2)
        d1.download_button("Summary (CSV)", dataframe_csv(summary), "estimate_summary.csv", "text/csv",
                           width="stretch")
        d2.download_button("Full estimate (JSON)", json.dumps(est.to_dict(), indent=2), "estimate.json",
                           "application/json", width="stretch")

        tabs = st.tabs(["Monthly cost", "Cumulative & break-even", "Cost per query", "Latency", "Sensitivity",
                        "Two-input sweep", "Compare scenarios", "Prices"])
        with tabs[0]:
            st.plotly_chart(charts.monthly_by_component(est), width="stretch")
            comp = pd.DataFrame({o.label: o.monthly_by_component for o in est.options.values()}).fillna(0).T
            st.dataframe(comp, width="stretch")
            st.download_button("Monthly cost by component (CSV)", dataframe_csv(comp, index=True),
                               "monthly_by_component.csv", "text/csv")
        with tabs[1]:
            st.plotly_chart(charts.cumulative_cost(est), width="stretch")
            be = pd.DataFrame([{
                "option A": costs.OPTION_LABELS[b.a], "option B": costs.OPTION_LABELS[b.b],
                "cheaper to set up": costs.OPTION_LABELS.get(b.cheaper_at_start, "equal"),
                "cheaper over the horizon": costs.OPTION_LABELS.get(b.cheaper_at_end, "equal"),
                "break-even month": str(b.month) if b.month is not None else "never",
                "break-even queries / month": f"{b.monthly_queries:,.0f}" if b.monthly_queries is not None else "never",
            } for b in est.break_even])
            st.dataframe(be, hide_index=True, width="stretch")
            st.caption("Break-even month: when the cumulative costs cross. Break-even volume: the monthly "
                       "queries at which the totals over the horizon are equal.")
            cum = pd.DataFrame({o.label: o.cumulative_usd for o in est.options.values()})
            cum.index.name = "month"
            st.download_button("Break-even (CSV)", dataframe_csv(be), "break_even.csv", "text/csv")
            st.download_button("Cumulative cost by month (CSV)", dataframe_csv(cum, index=True), "cumulative_cost.csv",
                               "text/csv")
        with tabs[2]:
            st.plotly_chart(charts.cost_per_query(est), width="stretch")
        with tabs[3]:
            st.plotly_chart(charts.latency_by_stage(est), width="stretch")
            lat = pd.DataFrame({o.label: o.latency_ms for o in est.options.values()}).T
            st.dataframe(lat.style.format("{:,.0f}"), width="stretch")
            st.download_button("Latency by stage (CSV)", dataframe_csv(lat, index=True), "latency_by_stage.csv",
                               "text/csv")
            st.caption(f"Latency figures: {est.latency_source}.")
        with tabs[4]:
            labels = {o: costs.OPTION_LABELS[o] for o in costs.OPTIONS}
            t1, t2, t3 = st.columns(3)
            a = t1.selectbox("Option", costs.OPTIONS, format_func=labels.get, key="est_tornado_a")
            b = t2.selectbox("minus", [None, *costs.OPTIONS], index=2, key="est_tornado_b",
                             format_func=lambda o: "(nothing)" if o is None else labels[o])
            metric = t3.selectbox("Metric", ["monthly", "total", "cost_per_query", "latency"], key="est_tornado_metric")
            tor = sensitivity.tornado(est.params, a, b if b != a else None, metric)
            st.plotly_chart(charts.tornado_chart(tor), width="stretch")
            tor_df = pd.DataFrame([{"input": x.label, "value": x.base_value, "at -50 %": x.low_result,
                                    "at +50 %": x.high_result, "swing": x.swing} for x in tor.bars])
            st.download_button("Tornado (CSV)", dataframe_csv(tor_df), "tornado.csv", "text/csv")
        with tabs[5]:
            names = list(sensitivity.INPUTS)
            s1, s2 = st.columns(2)
            x_in = s1.selectbox("Across (x)", names, index=names.index("queries"),
                                format_func=sensitivity.INPUTS.get, key="est_sweep_x")
            y_in = s2.selectbox("Down (y)", names, index=names.index("rag_top_k"),
                                format_func=sensitivity.INPUTS.get, key="est_sweep_y")
            s3, s4, s5 = st.columns(3)
            sa = s3.selectbox("Option", costs.OPTIONS, format_func=labels.get, key="est_sweep_a")
            sb = s4.selectbox("minus", [None, *costs.OPTIONS], index=2, key="est_sweep_b",
                              format_func=lambda o: "(nothing)" if o is None else labels[o])
            smetric = s5.selectbox("Metric", ["monthly", "total", "cost_per_query", "latency"], key="est_sweep_metric")

            def _axis(name: str) -> np.ndarray:
                base = est.params[name] or 1.0
                if name == "share_rag":
                    return np.linspace(0, 1, 21)
                values = np.geomspace(base / 4, base * 4, 25)
                return np.unique(np.round(values)) if name in sensitivity.INTEGER_INPUTS else values

            if x_in == y_in:
                st.info("Choose two different inputs.")
            else:
                sw = sensitivity.sweep(est.params, x_in, _axis(x_in), y_in, _axis(y_in), sa,
                                       sb if sb != sa else None, smetric)
                st.plotly_chart(charts.sweep_heatmap(sw, sensitivity.INPUTS[x_in], sensitivity.INPUTS[y_in]),
                                width="stretch")
                grid = pd.DataFrame(sw.values, index=pd.Index(sw.y_values, name=y_in),
                                    columns=pd.Index(sw.x_values, name=x_in))
                st.download_button("Sweep (CSV)", dataframe_csv(grid, index=True), "sweep.csv", "text/csv")
        with tabs[6]:
            with st.form("save_scenario", clear_on_submit=False):
                st.caption(f"Save the inputs on the left as **{escape_markdown(current.name)}** (a saved scenario "
                           "of the same name is replaced).")
                if st.form_submit_button("Save scenario"):
                    scenario.save_scenario(ws, current)
                    st.success(f"Saved '{escape_markdown(current.name)}'.")
            saved = scenario.saved_scenarios(ws)
            choices = ["(current inputs)", *saved]
            k1, k2 = st.columns(2)
            left_name = k1.selectbox("Left", choices, key="est_cmp_left")
            right_name = k2.selectbox("Right", choices, index=min(1, len(choices) - 1), key="est_cmp_right")

            def _est(name: str) -> costs.Estimate:
                return est if name == "(current inputs)" else costs.estimate(
                    scenario.get_saved_scenario(ws, name), book, est_cfg)

            try:
                pair = [(left_name, _est(left_name)), (right_name, _est(right_name))]
            except WorkbenchError as exc:
                st.error(escape_markdown(exc))
                pair = []
            if pair:
                rows = []
                for opt in costs.OPTIONS:
                    row = {"option": costs.OPTION_LABELS[opt]}
                    for name, e in pair:
                        o = e.options[opt]
                        row[f"{name}: monthly"] = o.monthly_cost_usd
                        row[f"{name}: total"] = o.total_cost_usd
                        row[f"{name}: latency ms"] = o.latency_ms["total"]
                    rows.append(row)
                side = pd.DataFrame(rows)
                st.dataframe(side, hide_index=True, width="stretch")
                st.download_button("Side by side (CSV)", dataframe_csv(side), "scenarios_side_by_side.csv",
                                   "text/csv")
                cols = st.columns(2)
                for i, (col, (name, e)) in enumerate(zip(cols, pair)):
                    col.markdown(f"**{escape_markdown(name)}**")
                    col.plotly_chart(charts.monthly_by_component(e), width="stretch", key=f"est_cmp_chart_{i}")
            for name in saved:
                if st.button(f"Delete saved scenario '{escape_markdown(name)}'", key=f"est_del_{name}"):
                    scenario.delete_scenario(ws, name)
                    st.rerun()
        with tabs[7]:
            src = pd.DataFrame(book.sources())
            st.dataframe(src, hide_index=True, width="stretch")
            st.download_button("Price sources (CSV)", dataframe_csv(src), "price_sources.csv", "text/csv")

with st.expander("Custom prices (saved in this workspace)"):
    st.caption("Add a model that is not in the price list, or override a listed one (same id). "
               "USD per 1M tokens.")
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
            if not entry["id"]:
                st.error("Give the model an id.")
            else:
                try:
                    pricing.save_custom_price(ws, "models", entry)
                except WorkbenchError as exc:
                    st.error(escape_markdown(exc))  # quotes what was typed
                else:
                    st.success(f"Saved a price for '{escape_markdown(entry['id'])}'.")
                    st.rerun()
    for entry in custom.get("models", []):
        e1, e2 = st.columns([4, 1])
        # Id and source are typed in, so no code span around the id: a backtick in it would close one.
        e1.write(f"**{escape_markdown(entry['id'])}**: input {entry.get('input', 0)}, "
                 f"output {entry.get('output', 0)} ({escape_markdown(entry.get('source', ''))})")
        if e2.button("Remove", key=f"est_rm_price_{entry['id']}"):
            pricing.delete_custom_price(ws, "models", entry["id"])
            st.rerun()
