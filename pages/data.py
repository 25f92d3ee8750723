"""Data: upload documents and question/answer pairs, see what was read and what was not, inspect chunking."""
from __future__ import annotations

import pandas as pd
from pydantic import ValidationError
import streamlit as st

from pageshell import current_workspace
from workbench import charts, corpus, parsing
from workbench.chunking import STRATEGY_LABELS, ChunkSettings, chunk_document, size_stats
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/data.py")

st.title("Data: documents and question/answer pairs")
st.markdown("Upload the documents RAG will search and the question/answer pairs fine-tuning will learn from "
            "and Compare will test on. Files are kept exactly as uploaded; a file that cannot be read is "
            "reported and everything else is kept.")


def _show_report(report: corpus.IngestReport) -> None:
    added = len(report.added) + len(report.updated)
    if added or report.pairs_added:
        st.success(f"Added {len(report.added)} and updated {len(report.updated)} documents"
                   + (f", {report.pairs_added} question/answer pairs" if report.pairs_added else "") + ".")
    if report.duplicates:
        st.info("Already uploaded, nothing to do: " + ", ".join(escape_markdown(n) for n in report.duplicates))
    for p in report.problems:
        (st.error if p.level == "error" else st.info)(escape_markdown(p))  # names the file, may quote it


up_docs, up_qa = st.columns(2, gap="large")
with up_docs:
    with st.form("upload_docs", clear_on_submit=True):
        st.markdown("**Documents**")
        files = st.file_uploader("Documents", accept_multiple_files=True, label_visibility="collapsed",
                                 type=[f.lstrip(".") for f in parsing.DOC_FORMATS], key="data_docs_upload")
        column = st.text_input("Text column for .csv / .jsonl (default: `text`, else the longest)",
                               key="data_text_column")
        submitted = st.form_submit_button("Add documents", type="primary")
    if submitted and files:
        with st.spinner(f"Reading {len(files)} file(s)..."):
            report = corpus.ingest(ws, [(f.name, f.getvalue()) for f in files], kind="documents",
                                   text_column=column.strip() or None)
        _show_report(report)
with up_qa:
    with st.form("upload_qa", clear_on_submit=True):
        st.markdown("**Question/answer pairs**")
        qa_files = st.file_uploader("Question/answer pairs", accept_multiple_files=True, label_visibility="collapsed",
                                    type=[f.lstrip(".") for f in parsing.QA_FORMATS], key="data_qa_upload")
        st.caption("CSV with `question`, `answer` (optional `doc_id`, `context`, `system`); JSONL with "
                   "`question`/`answer` (optional `doc_ids`); or OpenAI chat JSONL. An empty answer marks a "
                   "question the documents cannot answer.")
        qa_submitted = st.form_submit_button("Add pairs", type="primary")
    if qa_submitted and qa_files:
        _show_report(corpus.ingest(ws, [(f.name, f.getvalue()) for f in qa_files], kind="qa"))

docs = corpus.documents(ws)
pairs = corpus.qa_pairs(ws)
problems = corpus.problems(ws)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Documents", len(docs))
m2.metric("Tokens", f"{sum(d['tokens'] for d in docs):,}")
m3.metric("Question/answer pairs", len(pairs))
m4.metric("Problems found", sum(1 for p in problems if p["level"] == "error"))

tab_docs, tab_qa, tab_problems, tab_chunks = st.tabs(["Documents", "Question/answer pairs", "Problems",
                                                      "Chunk inspector"])
with tab_docs:
    if not docs:
        st.info("No documents yet. Upload some above, or use `workbench ingest PATH --workspace "
                f"{ws.name}`.")  # in a code span as it is: a workspace name has no backtick
    else:
        table = pd.DataFrame([{"document": d["doc_id"], "title": d["title"], "format": d["fmt"],
                               "characters": d["chars"], "tokens": d["tokens"], "language": d["lang"],
                               "chunks": d["chunks"], "source": d["source"]} for d in docs])
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("Documents (CSV)", dataframe_csv(table), "documents.csv", "text/csv")
        with st.expander("Remove documents"):
            doomed = st.multiselect("Documents to remove (their chunks go too; the uploaded files are kept)",
                                    [d["doc_id"] for d in docs], key="data_remove")
            if st.button("Remove", disabled=not doomed, key="data_remove_button"):
                for doc_id in doomed:
                    corpus.remove_document(ws, doc_id)
                st.success(f"Removed {len(doomed)} document(s). Rebuild the index on the RAG page.")
                st.rerun()
with tab_qa:
    if not pairs:
        st.info("No question/answer pairs yet.")
    else:
        qa_table = pd.DataFrame([{"id": p.id, "question": p.question, "answer": p.answer or "(unanswerable)",
                                  "documents": ", ".join(p.doc_ids), "category": p.category, "group": p.group}
                                 for p in pairs])
        by_category = qa_table["category"].replace("", "(none)").value_counts()
        st.caption(" · ".join(f"{escape_markdown(k)}: {v}" for k, v in by_category.items()))
        st.dataframe(qa_table, hide_index=True, width="stretch")
        st.download_button("Question/answer pairs (CSV)", dataframe_csv(qa_table), "qa_pairs.csv", "text/csv")
with tab_problems:
    if not problems:
        st.success("No problems found in the uploads.")
    else:
        ptable = pd.DataFrame(problems)
        st.dataframe(ptable, hide_index=True, width="stretch")
        p1, p2 = st.columns(2)
        p1.download_button("Problems (CSV)", dataframe_csv(ptable), "problems.csv", "text/csv")
        if p2.button("Clear the list", key="data_clear_problems"):
            corpus.clear_problems(ws)
            st.rerun()
with tab_chunks:
    if not docs:
        st.info("Upload documents to see how they are cut.")
    else:
        c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
        doc_id = c1.selectbox("Document", [d["doc_id"] for d in docs], key="data_inspect_doc")
        strategy = c2.selectbox("Strategy", list(STRATEGY_LABELS), format_func=STRATEGY_LABELS.get,
                                key="data_inspect_strategy")
        max_tokens = c3.number_input("Max tokens", 16, 8192, 200, step=20, key="data_inspect_max")
        overlap = c4.number_input("Overlap", 0, 4096, 30, step=10, key="data_inspect_overlap")
        try:
            settings = ChunkSettings(strategy=strategy, max_tokens=max_tokens, overlap_tokens=overlap)
        except ValidationError as exc:
            st.error(exc.errors()[0]["msg"].removeprefix("Value error, "))
        else:
            full = {d["doc_id"]: d for d in corpus.documents(ws, with_text=True)}
            doc = full[doc_id]
            chunks = chunk_document(doc["doc_id"], doc["title"], doc["text"], settings)
            stats = size_stats(chunks)
            st.caption(f"{stats['chunks']} chunks · tokens min {stats.get('min')}, median {stats.get('median')}, "
                       f"max {stats.get('max')} · the same settings apply when you build the index on the RAG page")
            all_sizes = [c.tokens for d in list(full.values())[:500]
                         for c in chunk_document(d["doc_id"], d["title"], d["text"], settings)]
            st.plotly_chart(charts.chunk_sizes(all_sizes, [c.tokens for c in chunks], settings.max_tokens),
                            width="stretch")
            for c in chunks:
                with st.container(border=True):
                    heading = f" · {escape_markdown(c.heading_path)}" if c.heading_path else ""
                    st.caption(f"Chunk {c.position + 1}{heading} · {c.tokens} tokens · characters {c.start}-{c.end}")
                    st.text(c.text)
