"""Data: upload documents and question/answer pairs, see what was read and what was not, inspect chunking."""
from __future__ import annotations

import math

import pandas as pd
from pydantic import ValidationError
import streamlit as st

from pageshell import chat_model, current_workspace
from workbench import charts, corpus, evaluation, index, parsing, providers, synthetic
from workbench.errors import WorkbenchError
from workbench.chunking import STRATEGY_LABELS, ChunkSettings, chunk_document, size_stats
from workbench.costs import format_usd
from workbench.exports import dataframe_csv
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/data.py")

st.title("Data: documents and question/answer pairs")
st.markdown("Upload the documents RAG will search and the question/answer pairs fine-tuning will learn from "
            "and Compare will test on. Files are kept exactly as uploaded; a file that cannot be read is "
            "reported and everything else is kept.")


CHUNKS_PER_PAGE = 20
QA_ROW_HEIGHT = 66          # px: over 64 px a cell wraps its text (two lines here)
CHUNKS_BOX_HEIGHT = 720     # px: a page of chunks scrolls inside this box, not the whole page


def _seed_inspector(saved: ChunkSettings, force: bool = False) -> None:
    """Start the chunk inspector on the settings the index uses (again when they or the workspace change)."""
    keys = {"data_inspect_strategy": saved.strategy, "data_inspect_max": saved.max_tokens,
            "data_inspect_overlap": saved.overlap_tokens}
    marker = (ws.name, saved.model_dump_json())
    if force or st.session_state.get("data_inspect_for") != marker or any(k not in st.session_state for k in keys):
        st.session_state.update(keys)
        st.session_state.data_inspect_for = marker


@st.cache_data(max_entries=32, show_spinner=False)
def _chunk_chart(sizes: tuple[int, ...], shown: tuple[int, ...], max_tokens: int):
    """The chunk-size chart, drawn again only when the sizes change."""
    return charts.chunk_sizes(list(sizes), list(shown), max_tokens)


@st.cache_data(max_entries=8, show_spinner=False)
def _chunk_sizes(content_hashes: tuple[str, ...], settings_json: str, _docs: list[dict]) -> list[int]:
    """Token sizes of every chunk of these documents under these settings, kept per content and settings."""
    settings = ChunkSettings.model_validate_json(settings_json)
    return [c.tokens for d in _docs for c in chunk_document(d["doc_id"], d["title"], d["text"], settings)]


def _build_index(settings: ChunkSettings) -> None:
    """Build the index before the page runs again, so everything the page then shows reads the new index."""
    try:
        rag = index.load_settings(ws).index
        report = index.build_index(ws, providers.get_embedder(), rag.model_copy(update={"chunking": settings}))
    except WorkbenchError as exc:
        st.session_state.data_inspect_built = (False, f"Could not build the index: {escape_markdown(exc)}")
    else:
        embedder = escape_markdown(report.embedder)
        done = f"Indexed {report.documents} documents as {report.chunks} chunks with {embedder}."
        st.session_state.data_inspect_built = (True, done)


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
        st.caption("Text, Markdown, HTML, PDF, Word (.docx), CSV or JSONL, or a .zip of those; up to 50 MB a file.")
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

tab_docs, tab_qa, tab_gen, tab_problems, tab_chunks = st.tabs(["Documents", "Question/answer pairs",
                                                               "Generate pairs", "Problems", "Chunk inspector"])
with tab_docs:
    if not docs:
        st.info("No documents yet. Upload some above, or use `workbench ingest PATH --workspace "
                f"{ws.name}`.")  # in a code span as it is: a workspace name has no backtick
    else:
        table = pd.DataFrame([{"document": d["doc_id"], "title": d["title"], "chunks": d["chunks"],
                               "tokens": d["tokens"], "characters": d["chars"], "format": d["fmt"],
                               "language": d["lang"], "source": d["source"]} for d in docs])
        st.dataframe(table, hide_index=True, width="stretch", column_order=[
            c for c in table.columns if c != "source" or (table["source"] != table["document"]).any()], column_config={
            "document": st.column_config.TextColumn(width=220),
            "title": st.column_config.TextColumn(width=230),
            "chunks": st.column_config.NumberColumn(width=70, help="Chunks of this document in the index (0 until "
                                                                   "the index is built; see the chunk inspector)"),
            "tokens": st.column_config.NumberColumn(width=70, help="o200k_base tokens"),
            "characters": st.column_config.NumberColumn(width=90),
            "format": st.column_config.TextColumn(width=85),
            "language": st.column_config.TextColumn(width=80),
            "source": st.column_config.TextColumn(width=200, help="The uploaded file (a zip's entry is zip/entry)")})
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
        st.dataframe(qa_table, hide_index=True, width="stretch", row_height=QA_ROW_HEIGHT, column_config={
            "id": st.column_config.TextColumn(width=60),
            "question": st.column_config.TextColumn(width=330),
            "answer": st.column_config.TextColumn(width=240),
            "documents": st.column_config.TextColumn(width=140),
            "category": st.column_config.TextColumn(width=90),
            "group": st.column_config.TextColumn(width=60, help="Pairs of a group stay on one side of the split")})
        st.download_button("Question/answer pairs (CSV)", dataframe_csv(qa_table), "qa_pairs.csv", "text/csv")
with tab_gen:
    if not docs:
        st.info("Upload documents first: pairs are written from their passages.")
    else:
        try:
            generator = chat_model()
        except WorkbenchError as exc:
            st.error(f"The configured chat model cannot run: {escape_markdown(exc)}")
            generator = None
        if generator is not None:
            st.caption(f"Written by **{escape_markdown(generator.label)}**, one pair per indexed passage, the reply "
                       "constrained to a JSON schema; each pair is kept only if its answer is in its passage, its "
                       "question does not give the answer away, it is not a near-duplicate, and (unanswerable "
                       "questions) retrieval does not answer it. Pairs are saved as they are made: generating "
                       "again with the same settings resumes.")
            g1, g2, g3, g4, g5 = st.columns([1, 1, 1, 1, 1])
            count = g1.number_input("Pairs", 1, 10_000, 20, key="data_gen_count")
            defaults = {"factual": 0.6, "paraphrase": 0.2, "changed": 0.0, "unanswerable": 0.2}
            shares = {k: col.slider(f"{k} share", 0.0, 1.0, v, 0.05, key=f"data_gen_share_{k}")
                      for col, (k, v) in zip((g2, g3, g4, g5), defaults.items())}
            h1, h2, h3 = st.columns([3, 1, 1.5])
            chosen_docs = h1.multiselect("Documents (none chosen: all)", [d["doc_id"] for d in docs],
                                         key="data_gen_docs")
            gen_seed = h2.number_input("Seed", 0, 1_000_000, 0, key="data_gen_seed")
            judge = h3.checkbox("Judge each answer", key="data_gen_judge",
                                help="Also ask the chat model whether each answer is supported by its passage.")
            try:
                gen_settings = synthetic.settings_of(count=int(count), kinds={k: v for k, v in shares.items() if v},
                                                     docs=chosen_docs, seed=int(gen_seed), judge=judge)
            except WorkbenchError as exc:
                st.error(escape_markdown(exc))
                gen_settings = None
            index_ready = index.index_meta(ws) is not None and not index.index_is_stale(ws)
            if gen_settings is not None and index_ready:
                try:
                    tasks, plan_notes = synthetic.plan(synthetic.indexed_chunks(ws), gen_settings)
                except WorkbenchError as exc:
                    st.error(escape_markdown(exc))
                else:
                    speed = (evaluation.measured_figures(ws).get("rag") or {}).get("model_speed")
                    pv = synthetic.preview(tasks, generator, notes=plan_notes, speed=speed)
                    p1, p2, p3 = st.columns(3)
                    p1.metric("Requests", pv.requests, help=", ".join(f"{n} {k}" for k, n in pv.counts.items()))
                    p2.metric("Tokens in / out (at most)", f"{pv.input_tokens:,} / {pv.output_tokens:,}")
                    p3.metric("Cost" if pv.cost_usd else "Time (about)",
                              format_usd(pv.cost_usd) if pv.cost_usd else
                              (f"{pv.seconds / 60:,.1f} min" if pv.seconds else "unknown"))
                    st.caption(escape_markdown(pv.basis))
                    for note in pv.notes:
                        st.info(escape_markdown(note))
            index_note = st.empty()   # says what the index holds once a generation has built it
            if gen_settings is not None and not index_ready:
                index_note.caption("The index is built first when you generate (RAG page settings).")
            if st.button("Generate pairs", type="primary", disabled=gen_settings is None, key="data_gen_run"):
                bar = st.progress(0.0, text="Generating...")
                st.caption("Stop with the page's Stop button: the pairs made so far are kept, and generating again "
                           "goes on.")
                try:
                    result = synthetic.generate(ws, gen_settings, chat=generator, on_item=lambda n, total, left:
                                                bar.progress(n / total, text=f"{n}/{total} pairs, about {left:,.0f} "
                                                                             "s left"))
                except WorkbenchError as exc:
                    st.error(escape_markdown(exc))
                else:
                    bar.empty()
                    index_note.caption(escape_markdown(index.status_line(ws)))
                    st.success(f"{len(result.kept)} of {result.planned} pairs kept by the checks; review them below.")
            made = synthetic.candidates(ws)
            reviewable = [c for c in made if c.status != "rejected"]
            if reviewable:
                st.markdown(f"**Review** ({len(reviewable)} pairs: accept, edit or drop, then add the accepted ones)")
                b1, b2, b3, b4 = st.columns([2, 2, 1, 1])
                by_kind = b1.selectbox("Kind", ["(all)", *sorted({c.kind for c in reviewable})], key="data_gen_bkind")
                by_doc = b2.selectbox("Document", ["(all)", *sorted({c.doc_id for c in reviewable})],
                                      key="data_gen_bdoc")
                for col, label, status in ((b3, "Accept these", "accepted"), (b4, "Drop these", "dropped")):
                    if col.button(label, key=f"data_gen_bulk_{status}", width="stretch"):
                        n = synthetic.bulk(ws, status, None if by_kind == "(all)" else by_kind,
                                           None if by_doc == "(all)" else by_doc)
                        st.toast(f"{n} pair(s) {status}")
                        st.rerun()
                frame = pd.DataFrame([{"id": c.id, "accept": c.status == "accepted", "drop": c.status == "dropped",
                                       "question": c.question, "answer": c.answer or "(unanswerable)",
                                       "kind": c.kind, "document": c.doc_id, "generator": c.generator}
                                      for c in reviewable])
                edited = st.data_editor(
                    frame, hide_index=True, width="stretch", key="data_gen_editor", row_height=QA_ROW_HEIGHT,
                    disabled=["id", "kind", "document", "generator"],
                    column_order=["accept", "drop", "question", "answer", "kind", "document", "generator", "id"],
                    column_config={"accept": st.column_config.CheckboxColumn(width=80),
                                   "drop": st.column_config.CheckboxColumn(width=70),
                                   "question": st.column_config.TextColumn(width=280),
                                   "answer": st.column_config.TextColumn(width=240),
                                   "kind": st.column_config.TextColumn(width=90),
                                   "document": st.column_config.TextColumn(width=150)})
                s1, s2 = st.columns(2)
                if s1.button("Save the review", key="data_gen_save", width="stretch"):
                    changes = {}
                    for row, c in zip(edited.to_dict("records"), reviewable):
                        change = {"status": "dropped" if row["drop"] else "accepted" if row["accept"] else "kept"}
                        if row["question"] != c.question:
                            change["question"] = row["question"]
                        if c.answer and row["answer"] != c.answer:
                            change["answer"] = row["answer"]
                        changes[c.id] = change
                    synthetic.review(ws, changes)
                    st.rerun()
                accepted = sum(1 for c in reviewable if c.status == "accepted")
                if s2.button(f"Add the {accepted} accepted pairs to the workspace", type="primary",
                             disabled=not accepted, key="data_gen_add", width="stretch"):
                    st.success(f"{synthetic.add_accepted(ws)} synthetic pairs are now in the workspace "
                               "(marked synthetic; a chunk's pairs share a group, so the split keeps them together).")
            rejected = [c for c in made if c.status == "rejected"]
            if rejected:
                with st.expander(f"Rejected by the checks ({len(rejected)})"):
                    st.dataframe(pd.DataFrame([{"why": c.reason, "question": c.question, "answer": c.answer,
                                                "kind": c.kind, "document": c.doc_id} for c in rejected]),
                                 hide_index=True, width="stretch", row_height=QA_ROW_HEIGHT, column_config={
                                     "why": st.column_config.TextColumn(width=260),
                                     "question": st.column_config.TextColumn(width=230),
                                     "answer": st.column_config.TextColumn(width=170),
                                     "kind": st.column_config.TextColumn(width=95),
                                     "document": st.column_config.TextColumn(width=140)})
            if made:
                st.download_button("Generated pairs with their checks (CSV)", dataframe_csv(pd.DataFrame(
                    [c.to_dict() for c in made])), "generated_pairs.csv", "text/csv", key="data_gen_download")
with tab_problems:
    if not problems:
        st.success("No problems found in the uploads.")
    else:
        ptable = pd.DataFrame(problems)
        st.dataframe(ptable, hide_index=True, width="stretch", row_height=QA_ROW_HEIGHT, placeholder="",
                     column_order=["file", "line", "level", "message", "upload"], column_config={
                         "file": st.column_config.TextColumn(width=180),
                         "line": st.column_config.NumberColumn(width=50),
                         "level": st.column_config.TextColumn(width=60),
                         "message": st.column_config.TextColumn(width=520),
                         "upload": st.column_config.TextColumn(width=120, help="The file uploaded (a zip, for its "
                                                                               "entries)")})
        p1, p2 = st.columns(2)
        p1.download_button("Problems (CSV)", dataframe_csv(ptable), "problems.csv", "text/csv")
        if p2.button("Clear the list", key="data_clear_problems"):
            corpus.clear_problems(ws)
            st.rerun()
with tab_chunks:
    if not docs:
        st.info("Upload documents to see how they are cut.")
    else:
        saved = index.load_settings(ws).index.chunking
        _seed_inspector(saved)
        c1, c2, c3, c4 = st.columns([5, 5, 2, 2])
        doc_id = c1.selectbox("Document", [d["doc_id"] for d in docs], key="data_inspect_doc")
        strategy = c2.selectbox("Strategy", list(STRATEGY_LABELS), format_func=STRATEGY_LABELS.get,
                                key="data_inspect_strategy")
        max_tokens = c3.number_input("Max tokens", 16, 8192, step=20, key="data_inspect_max")
        overlap = c4.number_input("Overlap", 0, 4096, step=10, key="data_inspect_overlap")
        try:
            settings = ChunkSettings(strategy=strategy, max_tokens=max_tokens, overlap_tokens=overlap)
        except ValidationError as exc:
            st.error(exc.errors()[0]["msg"].removeprefix("Value error, "))
        else:
            if "data_inspect_built" in st.session_state:
                built, message = st.session_state.pop("data_inspect_built")
                (st.success if built else st.error)(message)
            full = {d["doc_id"]: d for d in corpus.documents(ws, with_text=True)}
            doc = full[doc_id]
            chunks = chunk_document(doc["doc_id"], doc["title"], doc["text"], settings)
            status = index.chunks_status(ws, doc_id, chunks)
            if status != "no index":
                st.caption(escape_markdown(index.status_line(ws)))
            if status == "same":
                st.success("These are the chunks the index holds for this document.")
            else:
                st.info({"no index": "No index yet: these are the chunks a build with these settings would make.",
                         "stale": "The index is out of date with the documents: these are the chunks a rebuild with "
                                  "these settings would make.",
                         "different": "A preview: the index holds other chunks for this document."}[status])
                b1, b2 = st.columns(2)
                b1.button("Build the index with these settings", on_click=_build_index, args=(settings,),
                          key="data_inspect_build", width="stretch")
                if settings != saved:
                    b2.button("Back to the index's settings", on_click=_seed_inspector, args=(saved, True),
                              key="data_inspect_reset", width="stretch")
            stats = size_stats(chunks)
            pages = max(1, math.ceil(len(chunks) / CHUNKS_PER_PAGE))
            st.caption(f"**{stats['chunks']} chunks** in this document · tokens min {stats.get('min')}, median "
                       f"{stats.get('median')}, max {stats.get('max')}")
            sample_docs = list(full.values())[:500]
            all_sizes = _chunk_sizes(tuple(d["content_sha256"] for d in sample_docs), settings.model_dump_json(),
                                     sample_docs)
            st.plotly_chart(_chunk_chart(tuple(all_sizes), tuple(c.tokens for c in chunks), settings.max_tokens),
                            width="stretch")
            page = 0
            if pages > 1:
                def _span(p: int) -> str:
                    return f"{p * CHUNKS_PER_PAGE + 1}-{min(len(chunks), (p + 1) * CHUNKS_PER_PAGE)} of {len(chunks)}"
                page = st.selectbox("Chunks shown", range(pages), format_func=_span, key="data_inspect_page")
            with st.container(height=CHUNKS_BOX_HEIGHT if len(chunks) > 3 else "content", border=False):
                for c in chunks[page * CHUNKS_PER_PAGE:(page + 1) * CHUNKS_PER_PAGE]:
                    with st.container(border=True):
                        heading = f" · {escape_markdown(c.heading_path)}" if c.heading_path else ""
                        st.caption(f"Chunk {c.position + 1}{heading} · {c.tokens} tokens · "
                                   f"characters {c.start}-{c.end}")
                        st.text(c.text)
