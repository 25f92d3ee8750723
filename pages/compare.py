"""Compare: every arm on the same held-out questions, with confidence intervals and a per-question view."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pageshell import chat_model, current_workspace
from workbench import capture, charts, corpus, evaluation, finetune, parsing, synthetic
from workbench.errors import WorkbenchError
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/compare.py")

SHOWN_FIRST = ("rag", "ft", "ft_rag", "router", evaluation.FROZEN, "base")   # the arms being decided between first
SCORE_HELP = ("score on the question, 0 to 1: token F1 of the answer against the gold answer; on an unanswerable "
              "question 1 for abstaining and 0 for answering anyway.")
RELEVANCE_HELP = ("The router sends a question to RAG when its best retrieved passage is at least this relevant. "
                  "Relevance: the cosine similarity of the question's and the passage's embeddings, -1 to 1 (in "
                  "practice 0 to 1; higher is closer).")


def _shown_first(arms: list[str]) -> list[str]:
    return sorted(arms, key=SHOWN_FIRST.index)


@st.cache_data(max_entries=16, show_spinner="Summarising the run...")
def _summary(ws_path: str, run_id: str, results: int, state: str, _ws) -> dict:
    """A run's summary, made again when the run has new results or a new state: it embeds every answer (seconds)."""
    return evaluation.summarize(_ws, run_id)


@st.cache_resource(max_entries=48, show_spinner=False)
def _chart(kind: str, run_key: tuple, arms: tuple[str, ...], metric: str, _data: dict):
    """A chart of a run, built once per run state and shared: each figure takes tens of ms, and is only read."""
    if kind == "metric_bars":
        return charts.metric_bars(_data, list(arms), metric)
    return {"latency_boxes": charts.latency_boxes, "quality_vs_cost": charts.quality_vs_cost}[kind](_data, list(arms))


@st.cache_data(max_entries=64, show_spinner=False)
def _csv(key: tuple, _table: pd.DataFrame) -> str:
    """A table's CSV export, made once for what `key` names (the run's state and the view)."""
    return dataframe_csv(_table)


@st.cache_data(max_entries=16, show_spinner=False)
def _summary_json(ws_path: str, run_id: str, results: int, state: str, _ws) -> str:
    """The run's figures as the JSON download, written once per run state."""
    return json.dumps(_summary(ws_path, run_id, results, state, _ws), indent=1, default=str)


st.title("Compare: the arms on the same test questions")
if not corpus.qa_pairs(ws):
    st.info("No question/answer pairs in this workspace yet: add some on the Data page.")
    st.stop()

with st.container(border=True):
    kept = capture.captures(ws)
    arm_choices = _shown_first(list(evaluation.ARMS) + ([evaluation.FROZEN] if kept else []))
    arms = st.multiselect("Arms", arm_choices, default=arm_choices, format_func=evaluation.ARM_LABELS.get,
                          key="cmp_arms")
    m1, m2 = st.columns([3, 2])
    models = finetune.trained_models(ws)
    ft_model = m1.selectbox("Fine-tuned arm", [m.id for m in models] or ["(none yet)"], key="cmp_ft",
                            format_func=lambda i: next((m.label for m in models if m.id == i), i))
    frozen = None
    if evaluation.FROZEN in arms:
        frozen = m2.selectbox("Captured answers", [k.id for k in kept], key="cmp_frozen",
                              format_func=lambda i: next(f"{k.label}: {k.answered} answers" for k in kept if k.id == i),
                              help="A retiring model's answers, kept to set a replacement against it.")
    c1, c2, c3 = st.columns([3, 3, 2])
    rule = c1.radio("Router rule", ["relevance", "classifier"], key="cmp_rule",
                    format_func={"relevance": "retrieval relevance threshold",
                                 "classifier": "question-type classifier"}.get)
    threshold = c2.slider("Send to RAG at relevance ≥", 0.0, 1.0, 0.45, 0.01, key="cmp_threshold",
                          disabled=rule != "relevance", help=RELEVANCE_HELP)
    concurrency = c3.number_input("Concurrent calls", 1, 32, 4, key="cmp_concurrency")
    limit = c3.number_input("Questions to score (0 = all)", 0, 100_000, 0, key="cmp_limit",
                            help="A seeded sample of the questions, answerable and unanswerable in their shares: a "
                                 "quicker first look with a slow local model. Fewer questions give wider intervals.")
    source = st.radio("Questions", ["test side of the Fine-tune split", "an uploaded evaluation file"],
                      horizontal=True, key="cmp_source")
    upload = None
    if source.startswith("an uploaded"):
        upload = st.file_uploader("Evaluation file (JSONL or CSV with question, answer, doc_ids)", type=["jsonl", "csv"],
                                  key="cmp_upload")
    labels_file = None
    if rule == "classifier":
        labels_file = st.file_uploader("Router training examples (CSV with question, label = rag or ft); "
                                       "without one, labels come from which arm did better on the training side",
                                       type=["csv"], key="cmp_labels")
    if not models and any(a in arms for a in evaluation.FT_ARMS):
        st.warning("No fine-tuned model yet: train one on the Fine-tune page (the local trainer takes seconds), "
                   "or leave the fine-tuned arms out.")
    allow_overlap = st.checkbox("Allow questions the fine-tuned model was trained or tuned on (the run is marked "
                                "contaminated)", key="cmp_allow_overlap")
    start = st.button("Run comparison", type="primary", key="cmp_run", disabled=not arms)


def _questions():
    if upload is None:
        return evaluation.default_questions(ws)
    parsed = parsing.parse_qa_file(upload.name, upload.getvalue())
    for p in parsed.problems:
        st.warning(escape_markdown(str(p)))
    for p in parsed.pairs:
        p.id = p.id or corpus.pair_id(upload.name, p.question)
    if not parsed.pairs:
        raise WorkbenchError(f"{upload.name}: no questions could be read")
    return parsed.pairs


def _router_examples(ctx) -> list[tuple[str, str]]:
    if labels_file is not None:
        return evaluation.read_router_labels(labels_file.name, labels_file.getvalue())
    from workbench import splits
    return evaluation.router_examples(ctx, splits.sides(ws, splits.saved_split(ws) or splits.make_split(ws)).dev)


def _run(run_id: str) -> None:
    settings = evaluation.run_settings(ws, run_id)   # a resumed run keeps the settings it was made with
    with st.status("Preparing the arms...", expanded=True) as status:
        ctx = evaluation.build_arms(ws, settings)
        if settings.router_rule == "classifier" and "router" in settings.arms:
            status.update(label="Training the router's question-type classifier on the dev side...")
            evaluation.train_router(ctx, _router_examples(ctx))
        bars = {a: st.progress(0.0, text=evaluation.ARM_LABELS[a]) for a in settings.arms}

        def progress(arm: str, done: int, total: int, eta: float) -> None:
            bars[arm].progress(done / total if total else 1.0,
                               text=f"{evaluation.ARM_LABELS[arm]}: {done}/{total} questions"
                                    + (f", about {eta:.0f} s left" if eta else ""))

        evaluation.run(ws, run_id, ctx, progress)
        status.update(label="Done", state="complete")
    # A resume that retried failed questions has as many results as before, and other figures.
    for cached in (_summary, _summary_json, _chart, _csv):
        cached.clear()


if start:
    try:
        settings = evaluation.EvalSettings(arms=arms, router_rule=rule, router_threshold=threshold,
                                           concurrency=int(concurrency), ft_model=ft_model if models else None,
                                           frozen=frozen, allow_overlap=allow_overlap)
        run_id = evaluation.create_run(ws, evaluation.sample_questions(_questions(), int(limit)), settings)
        st.session_state.cmp_run_id = run_id
        _run(run_id)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))

all_runs = evaluation.runs(ws)
if not all_runs:
    st.info("No comparison yet. Choose the arms and run it; results are saved per question as they come.")
    st.stop()
run_ids = [r["id"] for r in all_runs]
default = run_ids.index(st.session_state.get("cmp_run_id")) if st.session_state.get("cmp_run_id") in run_ids else 0
chosen = st.selectbox("Run", run_ids, index=default, key="cmp_pick",
                      format_func=lambda i: next(f"{r['id']} · {r['state']} · {r['results']} results" for r in all_runs
                                                 if r["id"] == i))
info = next(r for r in all_runs if r["id"] == chosen)
if info["state"] != "complete":
    st.warning(f"This run is {info['state']}: results so far are shown. Resume computes only what is missing.")
    if st.button("Resume", key="cmp_resume", help="Runs what is missing with the settings the run was made with"):
        try:
            _run(chosen)
            st.rerun()
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)))

run_key = (str(ws.path), chosen, info["results"], info["state"])
summary = _summary(*run_key, ws)
run_arms = [a for a in summary["run"]["arms"] if a in summary]
st.caption(f"{summary['run']['questions']} questions in this run; every figure says how many it rests on (n).")
if summary["run"]["contaminated"]:
    st.error(f"Contaminated run: {summary['run']['overlap_detail']['count']} of {summary['run']['questions']} "
             f"questions overlap what {escape_markdown(summary['run']['overlap_detail']['model'])} was trained or "
             "tuned on. Its "
             "fine-tuned figures are not evidence of how it does on new questions.")
for note in summary["run"]["notes"]:
    st.warning(escape_markdown(note))
for a in run_arms:
    if summary[a].get("cost_note"):
        st.warning(f"{summary[a]['label']}: {escape_markdown(summary[a]['cost_note'])}")
    if summary[a]["errors"]:
        st.warning(f"{summary[a]['label']}: {summary[a]['errors']} question(s) failed "
                   f"({escape_markdown(summary[a]['first_error'])}); "
                   "Resume tries them again.")
offline = [summary[a]["provider"] for a in run_arms
           if "stand-in" in summary[a]["provider"] or "demo quality" in summary[a]["provider"]]
if offline:
    st.caption("Offline stand-ins and tiny local models in this run: "
               + "; ".join(escape_markdown(o) for o in sorted(set(offline)))
               + ". Their figures show the workflow and the gap between the arms on this model, not what a larger "
                 "LLM would score.")

rows = []
for a in run_arms:
    m = summary[a]["metrics"]
    rows.append({"arm": summary[a]["label"], "exact match": m["exact_match"], "F1": m["f1"],
                 "F1 95% CI": f"{m['f1_ci_low']:.2f}–{m['f1_ci_high']:.2f}" if m["f1_ci_low"] is not None else "",
                 "n (answerable)": m["f1_n"], "n (unanswerable)": m["abstention_rate_n"],
                 "semantic sim.": m["semantic_similarity"],
                 "recall@5": m.get("recall_at_5"), "MRR": m.get("mrr"), "nDCG@10": m.get("ndcg_at_10"),
                 "grounded": m.get("groundedness"), "abstains (unanswerable)": m["abstention_rate"],
                 "fabricates (unanswerable)": m["fabrication_rate"], "p50 ms": m["latency_ms_p50"],
                 "p95 ms": m["latency_ms_p95"], "tokens in": m["prompt_tokens"], "tokens out": m["output_tokens"],
                 "$ / query": m["cost_per_query_usd"], "provider": summary[a]["provider"]})
table = pd.DataFrame(rows)
st.dataframe(table, hide_index=True, width="stretch", placeholder="–", column_config={
    "arm": st.column_config.TextColumn(pinned=True)} | {
    c: st.column_config.NumberColumn(format="%.3f") for c in ("exact match", "F1", "semantic sim.", "recall@5", "MRR",
                                                              "nDCG@10", "grounded", "abstains (unanswerable)",
                                                              "fabricates (unanswerable)")}
    | {"p50 ms": st.column_config.NumberColumn(format="%.0f"), "p95 ms": st.column_config.NumberColumn(format="%.0f"),
       "$ / query": st.column_config.NumberColumn(format="$%.6f")})
if "router" in run_arms and summary["router"].get("routed_share_rag") is not None:
    r = summary["router"]
    accuracy = "no question where exactly one of RAG and the fine-tuned arm was right" \
        if r["routing_accuracy"] is None else (
            f"on the {r['routing_accuracy_n']} questions ({r['arms_disagree_share']:.0%}) where exactly one of RAG and "
            f"the fine-tuned arm was right, it picked that one {r['routing_accuracy']:.0%} of the time" + (f" (95% CI {r['routing_accuracy_ci_low']:.0%}–{r['routing_accuracy_ci_high']:.0%})"
                             if r["routing_accuracy_ci_low"] is not None else " (too few for an interval)"))
    st.caption(f"Router: {r['routed_share_rag']:.0%} of questions sent to RAG; {accuracy}.")

d1, d2, d3 = st.columns(3)
d1.download_button("Summary (CSV)", _csv(("summary", *run_key), table), "compare_summary.csv", "text/csv",
                   width="stretch")
d2.download_button("Results (JSON)", _summary_json(*run_key, ws), "results.json",
                   "application/json", width="stretch")
if d3.button("Send measured figures to Estimate", width="stretch", key="cmp_to_estimate"):
    measured = evaluation.save_measured(ws, summary)
    st.success(f"Sent measured latency, tokens and cost per query for {len(measured)} option(s); the Estimate "
               "page shows them beside its figures.")

with st.expander("LLM judge (optional)"):
    try:
        judge_model = chat_model()
    except WorkbenchError as exc:
        judge_model = None
        st.error(escape_markdown(str(exc)))
    if judge_model is None or not judge_model.generative:
        st.caption("Needs a language model: the extractive answerer cannot grade. Set `chat` to `llamacpp` or an "
                   "OpenAI-compatible provider in configs/providers.yaml.")
    else:
        st.caption(f"{escape_markdown(judge_model.label)} grades each answered question for correctness (against "
                   "the gold answer) and faithfulness (against the retrieved context), replying in JSON constrained "
                   "to a schema; verdicts are saved with the run."
                   + (" A tiny local model's verdicts are demo quality: check their agreement with F1."
                      if "demo quality" in judge_model.label else ""))
        if st.button("Run the judge", key="cmp_judge"):
            try:
                st.session_state.cmp_judge_report = evaluation.judge(ws, chosen, judge_model)
            except WorkbenchError as exc:
                st.error(escape_markdown(str(exc)))
        report = st.session_state.get("cmp_judge_report")
        if report:
            st.dataframe(pd.DataFrame([{"arm": evaluation.ARM_LABELS[a], **v} for a, v in report.items()]),
                         hide_index=True, width="stretch")
            st.caption("agreement_with_f1: share of judged answers where the judge's verdict matches F1 ≥ 0.5.")

tabs = st.tabs(["Metrics", "Latency", "Quality vs cost", "Paired differences", "Per question"])
with tabs[0]:
    metric = st.selectbox("Metric", ["f1", "exact_match", "semantic_similarity", "abstention_rate", "fabrication_rate",
                                     "hit_at_5", "recall_at_5", "mrr", "ndcg_at_10", "groundedness"], key="cmp_metric")
    st.plotly_chart(_chart("metric_bars", run_key, tuple(run_arms), metric, summary), width="stretch")
    if summary.get("by_category"):
        st.dataframe(pd.DataFrame(summary["by_category"]).T.rename(index=evaluation.ARM_LABELS), width="stretch")
        st.caption("Score by question category: F1 on answerable questions, 1 for abstaining on unanswerable ones.")
    if summary.get("by_origin"):
        st.markdown("**Generated and hand-written questions apart**")
        st.dataframe(pd.DataFrame([{"arm": evaluation.ARM_LABELS[a], "questions": origin,
                                    "n": v["n"], "score": v["score"], "F1 (answerable)": v["f1"], "F1 n": v["f1_n"],
                                    "F1 95% interval": "" if v["f1_ci_low"] is None
                                    else f"[{v['f1_ci_low']:.2f}, {v['f1_ci_high']:.2f}]"}
                                   for a, by in summary["by_origin"].items() for origin, v in by.items()]),
                     hide_index=True, width="stretch", column_config={
                         "score": st.column_config.NumberColumn(format="%.2f"),
                         "F1 (answerable)": st.column_config.NumberColumn(format="%.2f")})
        st.caption("Synthetic pairs were generated from the documents (Data page); how they were made: "
                   + escape_markdown(synthetic.describe(ws) or "not recorded"))
with tabs[1]:
    st.plotly_chart(_chart("latency_boxes", run_key, tuple(run_arms), "", summary), width="stretch")
    for a in run_arms:
        speed = summary[a].get("model_speed")
        if speed:
            st.caption(f"{summary[a]['label']}, measured on this machine ({speed['n']} answers): first token after "
                       f"{speed['time_to_first_token_ms_p50']:,.0f} ms at the median prompt of "
                       f"{speed['prompt_tokens_p50']:,.0f} tokens, {speed['output_tokens_per_s']:,.0f} tokens/s "
                       "decoding. Send the figures to Estimate to use them there.")
with tabs[2]:
    st.plotly_chart(_chart("quality_vs_cost", run_key, tuple(run_arms), "", summary), width="stretch")
with tabs[3]:
    diffs = pd.DataFrame([{"A": evaluation.ARM_LABELS[c["a"]], "B": evaluation.ARM_LABELS[c["b"]],
                           "A minus B": c["difference"], "95% CI": f"{c['ci_low']:+.3f} to {c['ci_high']:+.3f}",
                           "larger than noise": "yes" if c["significant"] else "no", "questions": c["questions"]}
                          for c in summary["comparisons"]])
    st.dataframe(diffs, hide_index=True, width="stretch")
    st.caption("Paired bootstrap over the same questions of the per-question score (F1, or 1 for abstaining on an "
               "unanswerable question). 'Larger than noise' when the interval excludes zero.")
with tabs[4]:
    f1c, f2c = st.columns(2)
    filters = ["all questions"]
    if "rag" in run_arms and "ft" in run_arms:
        filters += ["RAG right, fine-tuned wrong", "fine-tuned right, RAG wrong"]
    flt = f1c.selectbox("Show", filters, key="cmp_filter")
    categories = sorted({r["category"] for a in run_arms for r in summary[a]["per_question"]})
    cat = f2c.selectbox("Category", ["all"] + categories, key="cmp_category")
    shown = _shown_first(run_arms)
    by_arm = {a: {r["question_id"]: r for r in summary[a]["per_question"]} for a in shown}
    rows = []
    for qid, base in by_arm[shown[0]].items():
        if cat != "all" and base["category"] != cat:
            continue
        if flt != "all questions":
            rag_r, ft_r = by_arm["rag"].get(qid), by_arm["ft"].get(qid)
            rag_ok, ft_ok = bool(rag_r and rag_r["score"] >= 0.5), bool(ft_r and ft_r["score"] >= 0.5)
            if flt.startswith("RAG right") and not (rag_ok and not ft_ok):
                continue
            if flt.startswith("fine-tuned right") and not (ft_ok and not rag_ok):
                continue
        row = {"question": base["question"], "gold": base["gold"] or "(unanswerable)"}
        for a in shown:
            r = by_arm[a].get(qid)
            row[f"{evaluation.ARM_LABELS[a]}: answer"] = r["answer"] if r else ""
            row[f"{evaluation.ARM_LABELS[a]}: score"] = r["score"] if r else None
        rows.append(row | {"category": base["category"]})
    st.caption(f"{len(rows)} question(s); long answers wrap, and the table scrolls sideways to the other arms.")
    per_question = pd.DataFrame(rows)
    columns = {"question": st.column_config.TextColumn(width=230, pinned=True),
               "gold": st.column_config.TextColumn("gold answer", width=170),
               "category": st.column_config.TextColumn(width="small")}
    for a in shown:
        label = evaluation.ARM_LABELS[a]
        columns[f"{label}: answer"] = st.column_config.TextColumn(label, width=210, help=f"The answer of the {label} arm")
        columns[f"{label}: score"] = st.column_config.NumberColumn("score", width=60, format="%.2f",
                                                                  help=f"The {label} arm's {SCORE_HELP}")
    st.dataframe(per_question, hide_index=True, width="stretch", height=520, row_height=84, column_config=columns)
    st.download_button("Per question (CSV)", _csv(("per_question", *run_key, flt, cat), per_question), "per_question.csv",
                       "text/csv")
