"""Fine-tune: check the training data, split it without leakage, preview the cost, train, watch it learn."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from pageshell import current_workspace
from workbench import capture, charts, corpus, costs, finetune, pricing, providers, splits, training_data, workspace
from workbench.errors import WorkbenchError
from workbench.exports import FORMATS, export
from workbench.providers import lora_trainer
from workbench.providers.local_trainer import Hyperparameters
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/finetune.py")



@st.cache_data(max_entries=8, show_spinner="Checking the training data...")
def _checks(revision: tuple, model: str) -> training_data.DataReport:
    """The training-data checks, made again only when the workspace or the configs changed."""
    book = pricing.load_pricing().with_custom(pricing.saved_custom_prices(ws), source="custom prices")
    return finetune.check_workspace(ws, model, book)


st.title("Fine-tune: data, cost, training")
book = pricing.load_pricing().with_custom(pricing.saved_custom_prices(ws), source="custom prices")
settings = finetune.FineTuneSettings.load(ws)
pairs = corpus.qa_pairs(ws)
if not pairs:
    st.info("No question/answer pairs in this workspace yet: add some on the Data page.")
    st.stop()

# --- 1. training data ------------------------------------------------------------------------------
st.subheader("1 · Training data")
c1, c2 = st.columns([3, 1])
system_prompt = c1.text_area("System message for every example (optional)", settings.system_prompt, height=70,
                             key="ft_system")
ft_models = [m.id for m in book.models if m.fine_tuning is not None]
model = c2.selectbox("Model to fine-tune", ft_models,
                     index=ft_models.index(settings.model) if settings.model in ft_models else 0, key="ft_model")
if system_prompt != settings.system_prompt or model != settings.model:
    settings = finetune.FineTuneSettings(system_prompt=system_prompt, model=model)
    settings.save(ws)

split = splits.saved_split(ws)
report = _checks(workspace.revision(ws), model)
side = "the training side of the split" if split else "all pairs (no split yet)"
st.caption(f"{report.examples} chat examples from {side}; unanswerable questions are not training material.")
severity_icon = {"error": "⛔ error", "warning": "⚠️ warning", "info": "ℹ️ info"}
if report.findings:
    checks = pd.DataFrame([{"severity": severity_icon[f.severity], "check": f.check, "finding": f.message,
                            "rows": ", ".join(map(str, f.rows[:30])) + (" ..." if len(f.rows) > 30 else "")}
                           for f in report.findings])
    st.dataframe(checks, hide_index=True, width="stretch")
    st.caption("Rows are example numbers: line numbers of the exported training JSONL.")
else:
    st.success("No problems found.")
if report.ok:
    st.success("The format checks pass: a provider would accept this file.")
h1, h2 = st.columns([2, 3])
TOKEN_COLUMNS = {  # the typical, the long and the longest example: what fits beside the histogram
    "measure": st.column_config.TextColumn("measure", width=185),
    "median": st.column_config.NumberColumn("median", format="%.0f", width=56),
    "p90": st.column_config.NumberColumn("p90", format="%.0f", width=52, help="9 in 10 examples are at most this"),
    "max": st.column_config.NumberColumn("max", format="%.0f", width=52, help="the longest example")}
h1.dataframe(pd.DataFrame(training_data.token_stats_table(report))[list(TOKEN_COLUMNS)], hide_index=True,
             width="stretch", column_config=TOKEN_COLUMNS)
with h1:
    row = st.number_input("Show example (row)", 1, max(1, report.examples), 1, key="ft_show_row")
    examples_all = finetune.training_examples(ws, split, "train", settings)
    if examples_all:
        st.json(examples_all[min(row, len(examples_all)) - 1], expanded=False)
with h2:
    measure = st.radio("Histogram of", ["total tokens", "assistant tokens"], horizontal=True, key="ft_hist")
    if measure == "total tokens":
        st.plotly_chart(charts.token_histogram(report.per_example_tokens, report.token_limit), width="stretch")
    else:
        st.plotly_chart(charts.token_histogram(report.per_example_assistant_tokens, None,
                                               "assistant tokens per example (what the model learns to write)",
                                               "Answers by length"),
                        width="stretch")

# --- 2. split --------------------------------------------------------------------------------------
st.subheader("2 · Train / dev / test split")
s1, s2, s3, s4 = st.columns([2, 2, 1, 1])
share = s1.slider("Test share (what Compare scores)", 0.1, 0.5, split.test_share if split and split.test_share else 0.2,
                  0.05, key="ft_share")
dev_share = s2.slider("Dev share of the rest (early stopping, tuning)", 0.0, 0.4,
                      split.dev_share if split and split.dev else 0.15, 0.05, key="ft_dev_share")
seed = s3.number_input("Seed", 0, 10_000, split.seed if split else 0, key="ft_seed")
if s4.button("Make split" if not split else "Re-split", width="stretch", key="ft_split"):
    st.session_state.ft_resplit_note = finetune.resplit_note(ws)
    split = splits.make_split(ws, share, int(seed), dev_share)
    st.rerun()
if st.session_state.get("ft_resplit_note"):
    st.warning(escape_markdown(st.session_state.ft_resplit_note))  # names the trained models
if split:
    side = splits.sides(ws, split)
    st.caption(f"{len(side.train)} pairs to train on, {len(side.dev)} dev (early stopping), {len(side.test)} test "
               f"({sum(1 for p in side.test if not p.answer)} of them unanswerable) · {split.groups} leakage groups, "
               f"{split.guarded_links} links (paraphrases, near-identical questions, shared answer passages) kept "
               "on one side · Compare scores the test side only, and checks every model against what it saw.")
else:
    st.info("Make the split before training: Compare scores the test side, so no model may train or tune on it.")

# --- 3. exports ------------------------------------------------------------------------------------
with st.expander("Export the training set for external trainers"):
    examples = examples_all
    cols = st.columns(len(FORMATS))
    for col, (fmt, (suffix, mime)) in zip(cols, FORMATS.items()):
        col.download_button(f"{fmt} (.{suffix})", export(examples, fmt), f"train_{fmt}.{suffix}", mime,
                            width="stretch", key=f"ft_export_{fmt}")

# --- 4. cost ---------------------------------------------------------------------------------------
st.subheader("3 · Cost preview")
p1, p2 = st.columns([1, 3])
auto = p1.checkbox("Epochs: auto", True, key="ft_auto_epochs")
n_epochs = p1.number_input("Epochs", 1, 50, 3, disabled=auto, key="ft_epochs")
cost = finetune.workspace_preview(ws, model, "auto" if auto else int(n_epochs), book, report)
with p2:
    k1, k2, k3 = st.columns(3)
    k1.metric("Epochs", cost.epochs, help=cost.epochs_rule)
    k2.metric("Billed training tokens", f"{cost.billed_tokens:,}")
    k3.metric("Training cost", "unknown" if cost.training_cost_usd is None else
              costs.format_usd(cost.training_cost_usd))
    # names the model (a custom price's id is typed in)
    per_example = cost.billed_tokens / (cost.examples * cost.epochs) if cost.examples and cost.epochs else 0
    st.caption(escape_markdown(f"{cost.basis.capitalize()}, {per_example:,.0f} tokens each on average, x "
                               f"{cost.epochs} epochs = {cost.billed_tokens:,} billed tokens in total; "
                               f"{cost.price_note}. The Estimate page shows the same preview for the model it plans "
                               "with."))
    for c in cost.cautions:
        {"error": st.error, "warning": st.warning, "info": st.info}[c.level](escape_markdown(c.message))

# --- 5. train --------------------------------------------------------------------------------------
st.subheader("4 · Train")
provider = st.radio("Provider", ["local", "lora", "together", "fireworks", "openai"], horizontal=True,
                    key="ft_provider", format_func={"local": finetune.LOCAL_LABEL, "lora": lora_trainer.LABEL,
                                                    "together": "Together AI (LoRA job)",
                                                    "fireworks": "Fireworks AI (LoRA job)",
                                                    "openai": "OpenAI fine-tuning jobs"}.get)
if provider == "lora":
    if lora_trainer.missing():
        st.info(f"The LoRA trainer is an optional extra: {escape_markdown(lora_trainer.missing())}")
    st.caption("A real LoRA of the local model (the chat role's SmolLM2-135M-Instruct, a tiny model: demo quality) "
               "on the training side, with the model's chat template and the loss on the answers only; dev loss "
               "per epoch stops it early (the test side is never seen). A checkpoint per epoch: a stopped or "
               "crashed run resumes from the last one. The adapter is saved in the workspace in PEFT format.")
    r1, r2, r3, r4, r5, r6 = st.columns(6)
    lora = lora_trainer.LoraSettings(
        rank=r1.number_input("Rank", 1, 256, 8, key="ft_lora_rank"),
        alpha=r2.number_input("Alpha", 1, 1024, 16, key="ft_lora_alpha"),
        learning_rate=r3.number_input("Learning rate", 1e-6, 1.0, 2e-4, format="%.5f", key="ft_lora_lr"),
        epochs=r4.number_input("Epochs", 1, 100, 3, key="ft_lora_epochs"),
        batch_size=r5.number_input("Batch size", 1, 512, 8, key="ft_lora_batch"),
        max_length=r6.number_input("Max tokens", 16, 32_768, 256, key="ft_lora_max"))
    resumable = [j for j in finetune.jobs(ws) if j["provider"] == "lora" and j["state"] in ("failed", "cancelled")]
    b1, b2 = st.columns(2)
    start = b1.button("Train the LoRA", type="primary", disabled=split is None or bool(lora_trainer.missing()),
                      key="ft_train_lora")
    resume = b2.button(f"Resume {resumable[-1]['id']}" if resumable else "Resume", disabled=not resumable,
                       key="ft_resume_lora", help="Goes on from the last finished epoch of the last stopped run.")
    if start or resume:
        bar = st.progress(0.0, text="Loading the base model...")
        st.caption("Stop the run with the page's Stop button; Resume goes on from the last finished epoch.")

        def on_step(m) -> None:
            total = m.steps * lora.epochs
            done = (m.epoch - 1) * m.steps + m.step
            bar.progress(min(1.0, done / total), text=f"epoch {m.epoch}, step {m.step}/{m.steps}: loss "
                         f"{m.train_loss:.3f}, about {m.seconds_left:,.0f} s left")

        try:
            job = finetune.run_lora(ws, lora, on_step=on_step, resume=resumable[-1]["id"] if resume else None)
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))
        else:
            bar.empty()
            st.success(escape_markdown(f"Trained {job['id']}: {job['events'][-1]['message']}"))
elif provider == "local":
    st.caption("Learns from the training pairs on this machine in seconds. It is not an LLM: it answers without "
               "retrieval and only knows what was in its training pairs, like a fine-tuned model would.")
    l1, l2, l3, l4 = st.columns(4)
    hp = Hyperparameters(epochs=l1.number_input("Epochs", 1, 500, 40, key="ft_local_epochs"),
                         learning_rate=l2.number_input("Learning rate", 0.0001, 1.0, 0.01, format="%.4f",
                                                       key="ft_local_lr"),
                         patience=l3.number_input("Early stopping patience", 1, 50, 5, key="ft_local_patience"),
                         seed=l4.number_input("Seed", 0, 10_000, 0, key="ft_local_seed"))
    if st.button("Train locally", type="primary", disabled=split is None, key="ft_train_local"):
        bar = st.progress(0.0, text="Training...")
        chart = st.empty()
        history: list[dict] = []

        def on_epoch(m) -> None:
            history.append({"step": m.epoch, "train_loss": m.train_loss, "valid_loss": m.valid_loss})
            bar.progress(min(1.0, m.epoch / hp.epochs), text=f"epoch {m.epoch}: train loss {m.train_loss:.3f}"
                         + (f", dev loss {m.valid_loss:.3f}" if m.valid_loss is not None else ""))
            chart.plotly_chart(charts.loss_curves(history, "epoch"), width="stretch", key=f"ft_live_{m.epoch}")

        try:
            job = finetune.run_local(ws, hp, on_epoch=on_epoch)
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))
        else:
            bar.empty()
            st.success(escape_markdown(f"Trained {job['id']}: {job['events'][-1]['message']}"))
        chart.empty()  # the job board below shows the saved curve
elif provider in ("together", "fireworks"):
    try:
        tuner = providers.get_fine_tuner(name=provider)
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))
        st.stop()
    name = finetune.HOSTED_NAMES[provider]
    st.caption(f"Uploads the split's training file and its dev side (as the validation set) to {name} and creates a "
               "LoRA job; the test side is never uploaded. The key is read from "
               f"`{tuner.settings.api_key_env}` in the environment. The job id is saved at once: close the app and "
               f"come back, and the job is picked up again. {name} serves a tuned LoRA from a dedicated deployment: "
               "start one for the job's model before Compare asks it questions (see the README).")
    h1, h2, h3, h4, h5, h6 = st.columns([3, 1, 1, 1, 1, 1])
    base = h1.text_input("Base model", tuner.model_id, key=f"ft_{provider}_model")
    hyper = {"n_epochs": "auto" if auto else int(n_epochs),
             "learning_rate": h2.number_input("Learning rate", 1e-7, 1.0, 1e-4, format="%.6f", key=f"ft_{provider}_lr"),
             "lora_rank": h3.selectbox("LoRA rank", [4, 8, 16, 32, 64], index=1, key=f"ft_{provider}_rank"),
             "batch_size": h4.number_input("Batch size", 1, 1024, 8, key=f"ft_{provider}_batch")}
    suffix = h5.text_input("Suffix", "workbench", key=f"ft_{provider}_suffix")
    if h6.button("Launch job", type="primary", disabled=split is None, key=f"ft_launch_{provider}"):
        try:
            job = finetune.start_job(ws, tuner, base, hyper, suffix or None)
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))  # may quote the provider's answer
        else:
            st.success(escape_markdown(f"Job {job['id']} created on {name} ({job['state']})."))
else:
    pcfg = providers.load_providers_config()
    where = pcfg.openai.base_url or "api.openai.com"
    st.caption("Uploads the split's training file and its dev side (as the validation file) to "
               f"{escape_markdown(where)} and creates a job; the test side is never uploaded. The job id "
               "is saved at once: close the app and come back, and the job is picked up again.")
    o1, o2, o3, o4, o5 = st.columns(5)
    hyper = {"n_epochs": "auto" if auto else int(n_epochs),
             "batch_size": o1.text_input("Batch size", "auto", key="ft_oa_batch"),
             "learning_rate_multiplier": o2.text_input("Learning-rate multiplier", "auto", key="ft_oa_lr")}
    suffix = o3.text_input("Suffix", "workbench", key="ft_oa_suffix")
    oa_seed = o4.number_input("Seed", 0, 2**31 - 1, 42, key="ft_oa_seed")
    if o5.button("Launch job", type="primary", disabled=split is None, key="ft_launch"):
        try:
            for key in ("batch_size", "learning_rate_multiplier"):
                if hyper[key] != "auto":
                    hyper[key] = float(hyper[key]) if key.startswith("learning") else int(hyper[key])
            job = finetune.start_job(ws, providers.get_fine_tuner(pcfg, name="openai"), model, hyper, suffix or None,
                                     int(oa_seed))
        except ValueError:
            st.error("Batch size must be a whole number and the learning-rate multiplier a number, or 'auto'.")
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))  # may quote the provider's answer
        else:
            st.success(escape_markdown(f"Job {job['id']} created ({job['state']})."))

# --- 6. jobs and models ----------------------------------------------------------------------------
st.subheader("5 · Jobs and trained models")
all_jobs = finetune.jobs(ws)


@st.fragment(run_every=dt.timedelta(seconds=5) if finetune.open_jobs(ws) else None)
def job_board() -> None:
    current = finetune.jobs(ws)
    if finetune.open_jobs(ws):
        try:
            for j in finetune.open_jobs(ws):
                finetune.refresh(ws, j["id"], providers.get_fine_tuner(name=j["provider"]))
        except WorkbenchError as exc:
            st.warning(f"Could not refresh running jobs: {escape_markdown(exc)} (the jobs are saved; they are read "
                       "again later)")
        current = finetune.jobs(ws)
    if not current:
        st.caption("No jobs yet.")
        return
    table = pd.DataFrame([{"job": j["id"], "provider": finetune.LOCAL_LABEL if j["provider"] == "local" else j["provider"],
                           "base model": j["base_model"], "state": j["state"],
                           "model": j["fine_tuned_model"] or "", "error": j["error"] or ""} for j in current])
    st.dataframe(table, hide_index=True, width="stretch")
    chosen = st.selectbox("Job", [j["id"] for j in current], key="ft_job_pick")
    job = next(j for j in current if j["id"] == chosen)
    if job["metrics"]:
        st.plotly_chart(charts.loss_curves(job["metrics"], "epoch" if job["provider"] in finetune.IN_PROCESS else "step"),
                        width="stretch", key="ft_job_curve")
    if job["events"]:
        with st.expander(f"Events ({len(job['events'])})"):
            st.dataframe(pd.DataFrame([{"time": dt.datetime.fromtimestamp(e["created_at"]).strftime("%H:%M:%S"),
                                        "level": e["level"], "message": e["message"]} for e in job["events"]]),
                         hide_index=True, width="stretch")
    if job["provider"] not in finetune.IN_PROCESS and job["state"] not in finetune.TERMINAL:
        if st.button("Cancel this job", key="ft_cancel"):
            try:
                finetune.cancel(ws, job["id"], providers.get_fine_tuner(name=job["provider"]))
            except WorkbenchError as exc:
                st.error(escape_markdown(exc))
            st.rerun()


job_board()

models = finetune.trained_models(ws)
if models:
    st.dataframe(pd.DataFrame([{"model": m.label, "kind": m.kind, "offline": m.offline,
                                "trained on": f"{len(m.trained_on.train_ids)} train + {len(m.trained_on.dev_ids)} dev"
                                              if m.trained_on else "not recorded"} for m in models]),
                 hide_index=True, width="stretch")
with st.expander("Keep the answers of a retiring model (OpenAI fine-tunes stop serving on 2027-01-14)"):
    st.caption("Asks a fine-tuned model every question of this workspace now and keeps its answers as a frozen arm, "
               "so Compare can set a replacement (a LoRA, a hosted job) against what it said after it stops "
               "serving. Answers are saved as they come: capturing again resumes. It uses the OpenAI-compatible "
               "server of configs/providers.yaml.")
    openai_models = [m.id for m in models if m.kind == "openai"]
    k1, k2 = st.columns([3, 1])
    to_capture = k1.text_input("Fine-tuned model id", openai_models[0] if openai_models else "",
                               placeholder="ft:gpt-4o-mini-2024-07-18:org:name:id", key="ft_capture_model")
    if k2.button("Capture answers", disabled=not to_capture.strip(), key="ft_capture", width="stretch"):
        bar = st.progress(0.0, text="Asking the model...")
        try:
            kept = capture.capture(ws, to_capture.strip(), on_answer=lambda n, total: bar.progress(
                n / total, text=f"{n}/{total} questions answered"))
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))  # may quote the provider's answer
        else:
            bar.empty()
            st.success(escape_markdown(f"Kept {kept.answered} answers of {kept.label}."))
    for kept in capture.captures(ws):
        st.caption(escape_markdown(f"{kept.label}: {kept.answered} of {kept.questions} answers"
                                   + ("" if kept.trained_on else " · what it was trained on is not recorded")))

with st.expander("Bring your own fine-tuned model (any OpenAI-compatible chat endpoint)"):
    with st.form("byo"):
        b1, b2, b3, b4 = st.columns(4)
        name = b1.text_input("Name", placeholder="support-lora")
        base_url = b2.text_input("base_url", placeholder="http://localhost:8000/v1")
        model_name = b3.text_input("Model", placeholder="support-lora")
        key_env = b4.text_input("API key variable", "OPENAI_API_KEY")
        if st.form_submit_button("Register"):
            try:
                finetune.register_model(ws, name, base_url, model_name, key_env)
            except WorkbenchError as exc:
                st.error(escape_markdown(exc))  # quotes what was typed
            else:
                st.success(f"Registered {escape_markdown(name)}.")
                st.rerun()

# --- 7. ask ----------------------------------------------------------------------------------------
st.subheader("6 · Ask the trained model")
ASK_NOTES = {"local": "an offline stand-in, not an LLM: it answers with the training answer it finds most likely",
             "lora": "a LoRA adapter answering on this machine (on the bundled SmolLM2-135M, a tiny model: demo quality)"}
if not models:
    st.caption("Train a model above (the local trainer takes seconds), or register one, to ask it questions here.")
else:
    labels = {m.id: m.label for m in models}
    kinds = {m.id: m.kind for m in models}
    asked_model = st.selectbox("Model (the newest first)", list(labels), format_func=labels.get, key="ft_ask_model")
    note = ASK_NOTES.get(kinds[asked_model], "a hosted model: each question is a request to its service, at its price")
    st.caption(escape_markdown(f"Answers as Compare's fine-tuned arm does, without retrieval: {note}."))
    with st.form("ft_ask"):
        question = st.text_input("Question", key="ft_ask_question", placeholder="How do I export my timesheets?")
        if st.form_submit_button("Ask"):
            try:
                with st.spinner("Asking the model..."):
                    got = finetune.ask(ws, question, asked_model)
            except WorkbenchError as exc:
                st.error(escape_markdown(exc))  # may quote the provider's answer
            else:
                st.session_state.ft_asked = {"model": asked_model, "question": got.question, "answer": got.answer,
                                             "abstained": got.abstained, "ms": sum(got.latency_ms.values()),
                                             "cost": got.cost_usd}
    asked = st.session_state.get("ft_asked")
    if asked and asked["model"] in labels:
        with st.container(border=True):
            st.markdown(f"**{escape_markdown(asked['question'])}**")
            st.markdown(escape_markdown(asked["answer"]) if asked["answer"] else "*(no answer)*")
        price = ("cost unknown (no price for this model)" if asked["cost"] is None
                 else "free (on this machine)" if asked["cost"] == 0 else costs.format_usd(asked["cost"]))
        st.caption(escape_markdown(f"Answered by {labels[asked['model']]} in {asked['ms']:,.0f} ms · {price}"
                                   + (" · it declined to answer" if asked["abstained"] else "")))
