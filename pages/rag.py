"""RAG: build the index (chunk, embed, FAISS + BM25), set retrieval, and ask questions with citations."""
from __future__ import annotations

import json

import pandas as pd
from pydantic import ValidationError
import streamlit as st

from pageshell import chat_model, current_workspace
from workbench import charts, corpus, index, providers, rag
from workbench.chunking import STRATEGY_LABELS, ChunkSettings
from workbench.costs import format_usd
from workbench.errors import WorkbenchError
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/rag.py")


RELEVANCE_HELP = ("Relevance: the cosine similarity of the question's and the passage's embeddings, -1 to 1 (in "
                  "practice 0 to 1; higher is closer), whatever the retrieval mode.")


@st.cache_resource(max_entries=4, show_spinner="Loading the index...")
def _retriever(ws_path: str, built_at: float, embedder_key: str, store: str, _ws, _embedder) -> index.Retriever:
    return index.Retriever(_ws, _embedder)


@st.cache_resource(max_entries=32, show_spinner=False)
def _latency_chart(latency_ms: dict):
    """The answer's latency chart, built once per answer: a plotly figure takes tens of ms, and is only read."""
    return charts.answer_latency(latency_ms)


def _score_help(mode: str, rrf_k: int) -> str:
    """What a citation's score is in the retrieval mode that ranked it, and its range."""
    score = {"hybrid": f"reciprocal rank fusion of the dense and BM25 rankings: the sum over both of 1/({rrf_k} + "
                       f"rank), from 0 to {2 / (rrf_k + 1):.3f} (ranked first by both)",
             "dense": "the cosine similarity of the question's and the passage's embeddings, -1 to 1",
             "bm25": "the BM25 keyword score, 0 and up with no fixed top: it compares passages for one question, "
                     "not across questions"}[mode]
    return (f"Score: the ranking score of the {mode} retrieval that put the passages in this order, {score}. "
            f"{RELEVANCE_HELP} The answer abstains when the best relevance is under the threshold. ✅ marks the "
            "passages the answer quotes or cites.")


st.title("RAG: retrieve and answer with citations")
try:
    pcfg = providers.load_providers_config()
    embedder = providers.get_embedder(pcfg)
except WorkbenchError as exc:
    st.error(f"Provider configuration: {escape_markdown(exc)}")
    st.stop()
try:
    chat = chat_model()
except WorkbenchError as exc:   # e.g. the bundled model not installed: the page still answers, without an LLM
    st.warning(f"The configured chat model cannot run: {escape_markdown(exc)}. Answering with the extractive "
               "answerer (no language model) meanwhile.")
    chat = chat_model("extractive")

settings = index.load_settings(ws)
docs = corpus.documents(ws)
meta = index.index_meta(ws)


def _show_index_status(slot, meta) -> None:
    if meta:
        stale = index.index_is_stale(ws)
        slot.caption(f"Built with {escape_markdown(meta['embedder_label'])}: {meta['chunks']} chunks from "
                     f"{meta['documents']} documents, {'approximate HNSW' if meta['approximate'] else 'exact'} search"
                     + (" · **documents changed since; rebuild**" if stale else ""))
    else:
        slot.caption("No index yet.")


with st.container(border=True):
    st.markdown("**Index**")
    left, right = st.columns([4, 2])
    with left:
        c1, c2, c3 = st.columns([5, 2, 2])
        strategy = c1.selectbox("Chunking", list(STRATEGY_LABELS), format_func=STRATEGY_LABELS.get,
                                index=list(STRATEGY_LABELS).index(settings.index.chunking.strategy), key="rag_strategy")
        max_tokens = c2.number_input("Max tokens", 16, 8192, settings.index.chunking.max_tokens, step=20,
                                     key="rag_max_tokens")
        overlap = c3.number_input("Overlap", 0, 4096, settings.index.chunking.overlap_tokens, step=10,
                                  key="rag_overlap")
        st.caption(f"Embedder: **{escape_markdown(embedder.label)}**"
                   + (" · runs offline" if embedder.offline else ""))
    with right:
        index_status = st.empty()     # filled again after a build, so the line never contradicts it
        _show_index_status(index_status, meta)
        build = st.button("Build index" if not meta else "Rebuild index", type="primary", disabled=not docs,
                          key="rag_build", width="stretch")
    if not docs:
        st.info("No documents in this workspace yet: add some on the Data page.")
    if build:
        try:
            chunk_settings = ChunkSettings(strategy=strategy, max_tokens=max_tokens, overlap_tokens=overlap)
            bar = st.progress(0.0, text="Chunking documents...")

            def progress(done: int, total: int, what: str) -> None:
                bar.progress(min(1.0, done / total) if total else 1.0, text=what)

            report = index.build_index(ws, embedder, settings.index.model_copy(update={"chunking": chunk_settings}),
                                       progress=progress)
            bar.empty()
            cost = ("" if not report.embed_tokens else f" {report.embed_tokens:,} tokens embedded, cost "
                    + ("unknown (no price)" if report.embed_cost_usd is None
                       else escape_markdown(format_usd(report.embed_cost_usd)))   # $ would start LaTeX
                    + ".")
            st.success(f"Indexed {report.documents} documents as {report.chunks} chunks in {report.seconds:.1f} s: "
                       f"{report.embedded} embedded, {report.reused} reused from the cache.{cost}")
            settings = index.load_settings(ws)
            meta = index.index_meta(ws)
            _show_index_status(index_status, meta)
        except ValidationError as exc:
            st.error(exc.errors()[0]["msg"].removeprefix("Value error, "))
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))

if not meta:
    st.stop()

with st.expander("Retrieval settings", expanded=False):
    r = settings.retrieval
    s1, s2, s3 = st.columns(3)
    top_k = s1.slider("Passages to retrieve (top_k)", 1, 20, r.top_k, key="rag_top_k")
    mode = s2.radio("Mode", ["hybrid", "dense", "bm25"], index=["hybrid", "dense", "bm25"].index(r.mode),
                    horizontal=True, key="rag_mode",
                    help="hybrid fuses dense and BM25 rankings with reciprocal rank fusion")
    min_relevance = s3.slider("Relevance threshold (abstain below)", 0.0, 1.0, float(r.min_relevance), 0.01,
                              key="rag_min_relevance", help=RELEVANCE_HELP + " Below it for the best passage, the "
                              "answer says it cannot answer from the documents.")
    doc_filter = st.multiselect("Only search these documents (empty = all)", [d["doc_id"] for d in docs],
                                default=[d for d in r.doc_ids if d in {x["doc_id"] for x in docs}], key="rag_docs")
    retrieval = index.RetrievalSettings(top_k=top_k, mode=mode, min_relevance=min_relevance, doc_ids=doc_filter)
    if retrieval != settings.retrieval:
        index.save_settings(ws, settings.model_copy(update={"retrieval": retrieval}))

answerers = {chat.name: chat.label}
if chat.name != "extractive":
    answerers["extractive"] = providers.REGISTRY.get("chat", "extractive").label
if len(answerers) > 1:
    picked = st.radio("Answerer", list(answerers), format_func=answerers.get, horizontal=True, key="rag_answerer",
                      help="The configured chat model (configs/providers.yaml), or the extractive answerer, which "
                           "quotes the best matching sentence and uses no language model.")
    if picked != chat.name:
        try:
            chat = chat_model(picked)
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))
            st.stop()

examples = [p.question for p in corpus.qa_pairs(ws)][:60]
with st.form("ask"):
    if examples:
        st.selectbox("Try a question from the workspace's pairs", [""] + examples, key="rag_example")
    question = st.text_input("Your question", key="rag_question",
                             placeholder="e.g. When are new invoices due?")
    asked = st.form_submit_button("Ask", type="primary")

if asked:
    q = question.strip() or st.session_state.get("rag_example", "")
    try:
        if index.index_is_stale(ws):   # a cached retriever would answer from the old vectors
            raise WorkbenchError(index.STALE_MESSAGE)
        retriever = _retriever(str(ws.path), meta["built_at"], meta["embedder"], meta.get("vector_store", "faiss"),
                               ws, embedder)
        live, pieces = st.empty(), []

        def on_token(piece: str) -> None:   # the answer as the model writes it
            pieces.append(piece)
            live.markdown(f"#### {escape_markdown(''.join(pieces))} ▌")

        with st.spinner(f"Retrieving and answering with {chat.label}..."):
            answer = rag.ask(q, retriever, chat, retrieval, context_window=pcfg.chat_context_window,
                             on_token=on_token if chat.generative else None)
        live.empty()
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))
    else:
        st.session_state.setdefault("rag_history", []).insert(0, answer.to_dict())

history = st.session_state.get("rag_history", [])
if history:
    a = history[0]
    with st.container(border=True):
        st.caption(f"Question: {escape_markdown(a['question'])}")
        if a["abstained"]:
            st.warning(escape_markdown(a["text"]))
        else:
            st.markdown(f"#### {escape_markdown(a['text'])}")  # document text, shown as text
        if not a.get("generative", True):
            st.caption(f"Answered by the **{escape_markdown(a['provider'])}**. It quotes the best matching sentence; "
                       "pick the language model above, or configure one in configs/providers.yaml.")
        else:
            st.caption(f"Answered by **{escape_markdown(a['provider'])}**"
                       + (", on this machine." if a["offline"] else "."))
        cost = format_usd(a["cost_usd"]) if a["cost_usd"] is not None else "unknown"
        k1, k2, k3, k4 = st.columns(4)
        k1.metric("Latency", f"{a['latency_ms']['total']:,.0f} ms")
        k2.metric("Tokens in / out", f"{a['prompt_tokens']:,} / {a['output_tokens']:,}")
        k3.metric("Cost", cost)
        k4.metric("Best relevance", f"{a['best_relevance']:.2f}", help=RELEVANCE_HELP)
        st.caption(escape_markdown(a["cost_note"]))  # names the model, and $ would start LaTeX
        t = a.get("timings") or {}
        if t.get("tokens_per_s"):
            st.caption(f"Time to first token {t['time_to_first_token_ms']:,.0f} ms · {t['tokens_per_s']:,.0f} tokens/s "
                       "decoding, measured on this machine.")
        st.plotly_chart(_latency_chart(a["latency_ms"]), width="stretch", key="rag_latency_chart")
        st.markdown("**Citations**", help=_score_help(a["mode"], retrieval.rrf_k))
        for c in a["citations"]:
            mark = "✅ " if c["used"] else ""
            where = f" › {escape_markdown(c['heading_path'])}" if c["heading_path"] else ""
            with st.expander(f"{mark}[{c['n']}] {escape_markdown(c['doc_id'])}{where} · score {c['score']:.3f} · "
                             f"relevance {c['relevance']:.2f}"):
                st.text(c["text"])
    rows = [{"question": h["question"], "answer": h["text"], "abstained": h["abstained"],
             "documents": ", ".join(c["doc_id"] for c in h["citations"] if c["used"]),
             "latency_ms": round(h["latency_ms"]["total"]), "provider": h["provider"]} for h in history]
    with st.expander(f"This session's questions ({len(rows)})"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
            "question": st.column_config.TextColumn(width=200), "answer": st.column_config.TextColumn(width=280),
            "abstained": st.column_config.CheckboxColumn(width="small"),
            "documents": st.column_config.TextColumn(width=120),
            "latency_ms": st.column_config.NumberColumn("latency ms", width="small", format="%d")})
        d1, d2 = st.columns(2)
        d1.download_button("Answers (CSV)", dataframe_csv(pd.DataFrame(rows)), "answers.csv", "text/csv")
        d2.download_button("Answers with citations (JSON)", json.dumps(history, indent=2), "answers.json",
                           "application/json")
