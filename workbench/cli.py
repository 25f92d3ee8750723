"""The `workbench` command: every step of the app, from a terminal."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import click

from . import (corpus, costs, decision, evaluation, exports, finetune, index, jsonl, notebook, pricing, providers,
               rag, report, scenario, sensitivity, splits, synthetic, tokens, workspace)
from .chunking import ChunkSettings
from .errors import WorkbenchError


class _Group(click.Group):
    """Shows WorkbenchError as a one-line message and exit code 1 rather than a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            raise click.ClickException(str(exc)) from None


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group(cls=_Group)
@click.version_option(package_name="workbench")
def main() -> None:
    """Decide between fine-tuning, RAG or a hybrid; estimate it; prototype it on your data."""


@main.command()
@click.option("--port", default=8501, show_default=True, help="Port to serve on.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--workspace", "ws_name", help="Workspace every new session opens (created if missing; default: "
                                             "the one named in the link, else the last used, else the sample).")
def app(port: int, address: str, ws_name: str | None) -> None:
    """Start the app in headless mode on localhost."""
    script = Path(__file__).resolve().parent.parent / "app.py"
    if not script.is_file():
        raise WorkbenchError(f"app.py not found next to the package ({script}); run from a source checkout")
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
           *(["--", "--workspace", ws_name] if ws_name else [])]
    raise SystemExit(subprocess.call(cmd))


# --- workspaces -------------------------------------------------------------------------------------

@main.group("workspace")
def workspace_group() -> None:
    """List, create and delete workspaces (in $WORKBENCH_HOME, default the per-user data folder: see `home`)."""


@workspace_group.command("home")
def workspace_home() -> None:
    """Print the folder holding the workspaces (the app and every command use the same one)."""
    click.echo(workspace.home_dir())


@workspace_group.command("list")
def workspace_list() -> None:
    for name in workspace.list_workspaces():
        click.echo(name)


@workspace_group.command("create")
@click.argument("name")
def workspace_create(name: str) -> None:
    ws = workspace.create_workspace(name)
    click.echo(f"created {ws.path}")


@workspace_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def workspace_delete(name: str, yes: bool) -> None:
    if not yes:
        click.confirm(f"Delete workspace '{name}' and everything in it?", abort=True)
    workspace.delete_workspace(name)
    click.echo(f"deleted {name}")


# --- decide -----------------------------------------------------------------------------------------

@main.command()
@click.argument("answers_file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--list-questions", is_flag=True, help="List question ids and their answer ids.")
@click.option("--preset", help="Start from a preset's answers (answers in the file override them).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Another decision.yaml.")
@click.option("--workspace", "ws_name", help="Also save the answers and result in this workspace (made if missing).")
def decide(answers_file: str | None, as_json: bool, list_questions: bool, preset: str | None,
           config_file: str | None, ws_name: str | None) -> None:
    """Recommend fine-tuning, RAG or a hybrid from an answers file (question id: answer id)."""
    cfg = decision.load_decision_config(config_file)
    if list_questions:
        table = decision.questions_table(cfg)
        if as_json:
            _echo_json(table)
            return
        for q in table:
            click.echo(f"{q['question']}  [{q['group']}, weight {q['weight']:g}]  {q['text']}")
            for a in q["answers"]:
                click.echo(f"    {a['id']}: {a['label']}")
        return
    if not answers_file and not preset:
        raise click.UsageError("give an ANSWERS_FILE or --preset (or --list-questions)")
    answers = dict(cfg.preset(preset).answers) if preset else {}
    if answers_file:
        answers.update(decision.load_answers(cfg, answers_file))
    result = decision.recommend(cfg, answers)
    if ws_name:
        decision.save_decision(_open(ws_name, create=True), answers, result)
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"Recommendation: {result.label} ({result.confidence}, margin {result.margin:g} "
               f"over {cfg.option_label(result.runner_up)})")
    click.echo("Scores: " + ", ".join(f"{cfg.option_label(o)} {s:g}" for o, s in result.scores.items()))
    click.echo("Top drivers:")
    for d in [d for d in result.drivers if d.contribution > 0][:5]:
        click.echo(f"  +{d.contribution:g}  {d.question} = {d.answer}")
    if result.flips:
        click.echo("Would flip with:")
        for f in result.flips:
            changes = "; ".join(f"{c.question}: {c.from_answer or '(unanswered)'} -> {c.to_answer}"
                                for c in f.changes)
            click.echo(f"  {changes}  => {cfg.option_label(f.recommendation)}")
    if result.unanswered:
        click.echo(f"Unanswered (counted as neutral): {', '.join(result.unanswered)}")


# --- data and RAG -----------------------------------------------------------------------------------

def _workspace_option(f):
    return click.option("--workspace", "ws_name", default=workspace.DEFAULT_WORKSPACE, show_default=True,
                        help="Workspace to use (it must exist: `workbench workspace list`).")(f)


def _read(path: Path | str) -> bytes:
    """A file given on the command line, its size checked before it is read (the upload limit applies)."""
    data = corpus.load_corpus_path(Path(path))[0][1]
    if isinstance(data, corpus.Unread):
        raise WorkbenchError(data.problem.message, file=str(path))
    return data


def _open(ws_name: str, create: bool = False) -> workspace.Workspace:
    """The named workspace. A missing one is an error saying how to make it, unless the command adds to it
    (create=True): then it is made, and said so. Only `workbench sample` and the app make the sample."""
    if workspace.workspace_exists(ws_name):
        return workspace.open_workspace(ws_name)
    if ws_name == workspace.DEFAULT_WORKSPACE:
        raise WorkbenchError(f"{workspace.missing_message(ws_name)}. The sample workspace is made from the bundled "
                             "documents by `workbench sample` or by opening the app (`workbench app`); or name "
                             "another workspace with --workspace NAME", field="workspace")
    if not create:
        raise WorkbenchError(f"{workspace.missing_message(ws_name)}. Make it with `workbench workspace create "
                             f"{ws_name}` or add documents with `workbench ingest PATH --workspace {ws_name}`, or "
                             f"set {workspace.HOME_ENV} to the folder that holds it", field="workspace")
    ws = workspace.create_workspace(ws_name)
    click.echo(f"created workspace '{ws.name}' in {ws.path.parent}", err=True)
    return ws


@main.command("sample")
def sample_cmd() -> None:
    """Make the sample workspace from the bundled documents and pairs (the app does it when it opens it)."""
    from .sample import open_sample

    existed = workspace.workspace_exists(workspace.DEFAULT_WORKSPACE)
    ws = open_sample()
    click.echo(f"{'sample workspace already in' if existed else 'made the sample workspace in'} {ws.path}: "
               f"{len(corpus.documents(ws))} documents, {len(corpus.qa_pairs(ws))} question/answer pairs")


def _say_progress(done: int, total: int, what: str) -> None:
    click.echo(f"  {what}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--workspace", "ws_name", default=workspace.DEFAULT_WORKSPACE, show_default=True,
              help="Workspace to add to (made if missing, except the sample: `workbench sample`).")
@click.option("--qa", is_flag=True, help="The files hold question/answer pairs (.csv, .jsonl, chat .jsonl).")
@click.option("--text-column", help="For .csv/.jsonl documents: the column holding the text.")
def ingest(paths: tuple[Path, ...], ws_name: str, qa: bool, text_column: str | None) -> None:
    """Add documents (files or folders; a corpus.jsonl with id/title/text per line works too)."""
    ws = _open(ws_name, create=True)
    files = [f for p in paths for f in corpus.load_corpus_path(p)]
    report = corpus.ingest(ws, files, kind="qa" if qa else "documents", text_column=text_column)
    for line in report.lines():
        click.echo(line)
    docs = corpus.documents(ws)
    click.echo(f"{ws.name}: {len(docs)} documents, {sum(d['tokens'] for d in docs):,} tokens, "
               f"{len(corpus.qa_pairs(ws))} question/answer pairs")


@main.command("index")
@_workspace_option
@click.option("--chunking", type=click.Choice(["headings", "sentences", "fixed"]), help="Chunking strategy.")
@click.option("--max-tokens", type=int, help="Largest chunk, in tokens.")
@click.option("--overlap", type=int, help="Overlap between chunks, in tokens.")
def index_cmd(ws_name: str, chunking: str | None, max_tokens: int | None, overlap: int | None) -> None:
    """Chunk, embed (reusing cached embeddings) and index the workspace's documents."""
    ws = _open(ws_name)
    settings = index.load_settings(ws)
    changes = {k: v for k, v in {"strategy": chunking, "max_tokens": max_tokens, "overlap_tokens": overlap}.items()
               if v is not None}
    chunk_settings = ChunkSettings.model_validate({**settings.index.chunking.model_dump(), **changes})
    embedder = providers.get_embedder()
    report = index.build_index(ws, embedder, settings.index.model_copy(update={"chunking": chunk_settings}),
                               progress=_say_progress)
    cost = "unknown (no price for the model)" if report.embed_cost_usd is None else costs.format_usd(report.embed_cost_usd)
    click.echo(f"indexed {report.documents} documents as {report.chunks} chunks with {report.embedder}: "
               f"{report.embedded} embedded, {report.reused} reused from cache, {report.seconds:.1f} s"
               + (" (approximate HNSW index)" if report.approximate else "")
               + (f"; {report.embed_tokens:,} tokens embedded, cost {cost}" if report.embed_tokens else ""))


@main.command()
@click.argument("question")
@_workspace_option
@click.option("--top-k", type=int, help="Passages to retrieve.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), help="Retrieval mode.")
@click.option("--min-relevance", type=float, help="Abstain below this cosine relevance (extractive answerer).")
@click.option("--doc", "doc_ids", multiple=True, help="Only search these documents (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--chat", "chat_name", help="Answer with this chat backend instead of the configured one "
                                          "(e.g. extractive: no language model).")
def ask(question: str, ws_name: str, top_k: int | None, mode: str | None, min_relevance: float | None,
        doc_ids: tuple[str, ...], as_json: bool, chat_name: str | None) -> None:
    """Answer a question from the workspace's index, with citations."""
    ws = _open(ws_name)
    cfg = providers.load_providers_config()
    embedder = providers.get_embedder(cfg)
    if index.index_meta(ws) is None or index.index_is_stale(ws):
        click.echo(("no index yet; building it first" if index.index_meta(ws) is None
                    else "the index is out of date with the documents; rebuilding it first")
                   + f" ({len(corpus.documents(ws))} documents of workspace '{ws.name}' in {ws.path.parent})", err=True)
        built = index.build_index(ws, embedder, progress=_say_progress)
        click.echo(f"  indexed {built.documents} documents as {built.chunks} chunks in {built.seconds:.1f} s", err=True)
    settings = index.load_settings(ws).retrieval
    changes = {k: v for k, v in {"top_k": top_k, "mode": mode, "min_relevance": min_relevance,
                                 "doc_ids": list(doc_ids) or None}.items() if v is not None}
    settings = index.RetrievalSettings.model_validate({**settings.model_dump(), **changes})
    chat = providers.get_chat_model(cfg, name=chat_name)
    prompts = rag.load_prompts()
    stream = not as_json and chat.generative and prompts.schema_for(chat) is None   # JSON replies print parsed

    def on_token(piece: str) -> None:
        click.echo(piece, nl=False)
    answer = rag.ask(question, index.Retriever(ws, embedder), chat, settings, prompts,
                     context_window=cfg.chat_context_window, on_token=on_token if stream else None)
    if as_json:
        _echo_json(answer.to_dict())
        return
    click.echo("" if stream else answer.text)
    click.echo(f"-- {answer.provider}; {answer.mode} retrieval; best relevance {answer.best_relevance:.2f}")
    for c in answer.citations:
        mark = "*" if c.used else " "
        where = f" > {c.heading_path}" if c.heading_path else ""
        click.echo(f" {mark}[{c.n}] {c.doc_id}{where}  (score {c.score:.3f}, relevance {c.relevance:.2f})")
    lat = answer.latency_ms
    cost = costs.format_usd(answer.cost_usd) if answer.cost_usd is not None else "unknown"
    click.echo(f"latency {lat['total']:.0f} ms (embed {lat['embed query']:.0f}, search {lat['search']:.0f}, "
               f"generate {lat['generate']:.0f}); tokens {answer.prompt_tokens} in, {answer.output_tokens} out; "
               f"cost {cost} ({answer.cost_note})")
    if answer.timings.get("tokens_per_s"):
        click.echo(f"time to first token {answer.timings['time_to_first_token_ms']:.0f} ms, "
                   f"{answer.timings['tokens_per_s']:.0f} tokens/s (measured on this machine)")


# --- providers --------------------------------------------------------------------------------------

@main.group("providers")
def providers_group() -> None:
    """The backend serving each role, and the connection to an OpenAI-compatible server."""


@providers_group.command("list")
def providers_list() -> None:
    for p in providers.active_providers(providers.load_providers_config()):
        click.echo(f"{p.role:<13}{p.name:<22}{p.label}" + (f"  (cannot run here: {p.unavailable})"
                                                            if p.unavailable else ""))


@providers_group.command("test")
def providers_test() -> None:
    """Reach the OpenAI-compatible server of configs/providers.yaml, list its models, check the configured ones."""
    found = providers.check_connection()
    click.echo(f"{found.base_url}: {len(found.models)} model(s): {', '.join(found.models)}")
    for role, model in found.checked.items():
        click.echo(f"  {role}: {model} is offered")


# --- fine-tune --------------------------------------------------------------------------------------

@main.group("finetune")
def finetune_group() -> None:
    """Check training data, split it, export it, train, and follow jobs."""


@finetune_group.command("check")
@_workspace_option
@click.option("--model", help="Model to fine-tune (default: the workspace's setting).")
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False), help="Check a chat JSONL file instead.")
@click.option("--json", "as_json", is_flag=True)
def finetune_check(ws_name: str, model: str | None, file_: str | None, as_json: bool) -> None:
    """Validate the training data (the published format checks, duplicates, contradictions, sensitive data)."""
    ws = None if file_ and not workspace.workspace_exists(ws_name) else _open(ws_name)   # a file needs none
    model = model or (finetune.FineTuneSettings.load(ws) if ws else finetune.FineTuneSettings()).model
    if file_:
        from .training_data import check, read_jsonl

        examples, parse_findings = read_jsonl(_read(file_))
        report = check(examples, model, parse_findings=parse_findings)
    else:
        report = finetune.check_workspace(ws, model)
    preview = finetune.preview(report.per_example_tokens, model)
    if as_json:
        _echo_json({"report": report.to_dict(), "cost_preview": preview.to_dict()})
    else:
        click.echo(f"{report.examples} examples; format {'OK' if report.ok else 'has errors'}")
        for f in report.findings:
            rows = f" (rows {', '.join(map(str, f.rows[:20]))}{' ...' if len(f.rows) > 20 else ''})" if f.rows else ""
            click.echo(f"  {f.severity.upper():<8}{f.check}: {f.message}{rows}")
        t = report.total_tokens
        click.echo(f"tokens per example: min {t.min:g}, median {t.median:g}, mean {t.mean:g}, p90 {t.p90:g}, max {t.max:g}")
        cost = "unknown" if preview.training_cost_usd is None else costs.format_usd(preview.training_cost_usd)
        click.echo(f"{model}: {preview.epochs} epochs, {preview.billed_tokens:,} billed tokens, {cost} ({preview.price_note})")
        for c in preview.cautions:
            click.echo(f"{c.level.upper()}: {c.message}")
    if not report.ok:
        raise SystemExit(1)


@finetune_group.command("split")
@_workspace_option
@click.option("--test-share", default=0.2, show_default=True, type=float, help="Share of the pairs Compare scores.")
@click.option("--dev-share", default=0.15, show_default=True, type=float,
              help="Share of the training side kept for early stopping and tuning.")
@click.option("--seed", default=0, show_default=True, type=int)
def finetune_split(ws_name: str, test_share: float, dev_share: float, seed: int) -> None:
    """Split the pairs into train, dev and test, keeping paraphrases and shared passages on one side."""
    ws = _open(ws_name)
    note = finetune.resplit_note(ws)
    split = splits.make_split(ws, test_share, seed, dev_share)
    click.echo(f"{len(split.train)} train, {len(split.dev)} dev, {len(split.test)} test ({split.groups} leakage "
               f"groups, {split.guarded_links} links kept together)")
    if note:
        click.echo(f"warning: {note}", err=True)


@finetune_group.command("export")
@_workspace_option
@click.option("--format", "fmt", type=click.Choice(list(exports.FORMATS)), default="openai", show_default=True)
@click.option("--side", type=click.Choice(["train", "dev", "test", "all"]), default="train", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def finetune_export(ws_name: str, fmt: str, side: str, out: str | None) -> None:
    """Export the training set as OpenAI chat JSONL, Alpaca JSON, ShareGPT JSON or CSV."""
    ws = _open(ws_name)
    data = exports.export(finetune.training_examples(ws, side=side), fmt)
    if out:
        workspace.atomic_write_bytes(Path(out), data)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(data.decode("utf-8"), nl=False)


def _read_pairs(path: Path) -> list:
    """Question/answer pairs from a JSONL or CSV file, with ids; problems go to stderr."""
    from .parsing import parse_qa_file

    parsed = parse_qa_file(path.name, _read(path))
    for p in parsed.problems:
        click.echo(f"{p.level}: {p}", err=True)
    if not parsed.pairs:
        raise WorkbenchError("no question/answer pairs could be read", file=str(path))
    for p in parsed.pairs:
        p.id = p.id or corpus.pair_id(p.source, p.question)
    return parsed.pairs


@finetune_group.command("register")
@click.argument("name")
@_workspace_option
@click.option("--base-url", required=True, help="The OpenAI-compatible server, e.g. http://localhost:8000/v1.")
@click.option("--model", "model_name", required=True, help="The model name the server knows it by.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, help="Environment variable with its key.")
@click.option("--trained-on", "trained_on", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The pairs it was trained on (JSONL or CSV); default: the train and dev sides of the split.")
def finetune_register(name: str, ws_name: str, base_url: str, model_name: str, api_key_env: str,
                      trained_on: Path | None) -> None:
    """Bring your own fine-tuned model (any OpenAI-compatible chat model) as the fine-tuned arm."""
    ws = _open(ws_name)
    pairs = _read_pairs(trained_on) if trained_on is not None else None
    model = finetune.register_model(ws, name, base_url, model_name, api_key_env, trained_on=pairs)
    click.echo(f"registered {model.label}; trained on {len(model.trained_on.pairs)} recorded pair(s)")


@finetune_group.command("capture")
@click.argument("model_id")
@_workspace_option
@click.option("--trained-on", "trained_on", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The pairs it was trained on (JSONL or CSV), when no job of this workspace trained it.")
@click.option("--json", "as_json", is_flag=True)
def finetune_capture(model_id: str, ws_name: str, trained_on: Path | None, as_json: bool) -> None:
    """Keep a fine-tuned model's answers to every question of the workspace as a frozen arm for Compare
    (`eval --arms ...,frozen`), before the model stops serving. Running it again resumes."""
    from . import capture

    ws = _open(ws_name)
    pairs = _read_pairs(trained_on) if trained_on is not None else None
    kept = capture.capture(ws, model_id, on_answer=lambda n, total: click.echo(f"  {n}/{total} answered", err=True)
                           if n == total or n % 25 == 0 else None)
    if pairs is not None:
        kept = capture.record_training(ws, kept.id, pairs)
    if as_json:
        _echo_json(capture.to_dict(kept))
        return
    click.echo(f"{kept.id}: {kept.label}, {kept.answered}/{kept.questions} answers kept"
               + ("" if kept.trained_on else "; what it was trained on is not recorded, so Compare refuses it unless "
                                             "overlap is allowed (give --trained-on)"))


@finetune_group.command("run")
@_workspace_option
@click.option("--provider", type=click.Choice(["local", "lora", "together", "fireworks", "openai"]), default="local",
              show_default=True, help="local: the offline stand-in; lora: a real LoRA on this machine; together, "
                                      "fireworks: hosted LoRA jobs; openai: until it closes to new jobs.")
@click.option("--model", help="Hosted: the base model to fine-tune (default: the provider's default).")
@click.option("--base-model", help="LoRA: a Hugging Face model folder or GGUF (default: the bundled "
                                   "SmolLM2-135M-Instruct); hosted: the same as --model.")
@click.option("--lora-rank", type=int, help="LoRA, together, fireworks: the adapter's rank.")
@click.option("--resume", "resume_job", metavar="JOB_ID", help="LoRA: go on with a stopped job from its last epoch.")
@click.option("--epochs", help="Epochs (a number, or auto).", default="auto", show_default=True)
@click.option("--learning-rate", type=float, help="Learning rate (openai: the learning-rate multiplier).")
@click.option("--batch-size", type=int)
@click.option("--suffix", help="Suffix of the fine-tuned model's name (hosted).")
@click.option("--seed", type=int)
def finetune_run(ws_name: str, provider: str, model: str | None, base_model: str | None, lora_rank: int | None,
                 resume_job: str | None, epochs: str, learning_rate: float | None, batch_size: int | None,
                 suffix: str | None, seed: int | None) -> None:
    """Train on the training side of the split (making the split first if there is none)."""
    ws = _open(ws_name)
    if splits.saved_split(ws) is None:
        splits.make_split(ws)
        click.echo("made the train/dev/test split", err=True)
    if provider == "local":
        from .providers.local_trainer import Hyperparameters

        hp = Hyperparameters()
        if epochs != "auto":
            hp.epochs = int(epochs)
        if learning_rate:
            hp.learning_rate = learning_rate
        if batch_size:
            hp.batch_size = batch_size
        if seed is not None:
            hp.seed = seed
        job = finetune.run_local(ws, hp, on_epoch=lambda m: click.echo(
            f"  epoch {m.epoch}: train loss {m.train_loss:.4f}"
            + (f", dev loss {m.valid_loss:.4f}" if m.valid_loss is not None else ""), err=True))
    elif provider == "lora":
        from .providers.lora_trainer import LoraSettings, missing

        if missing():
            raise WorkbenchError(f"the LoRA trainer cannot run here: {missing()}")
        given = {"base_model": base_model, "rank": lora_rank, "learning_rate": learning_rate,
                 "batch_size": batch_size, "seed": seed, "epochs": None if epochs == "auto" else int(epochs)}
        settings = LoraSettings.model_validate({k: v for k, v in given.items() if v is not None})
        job = finetune.run_lora(ws, settings, resume=resume_job, on_step=lambda m: click.echo(
            f"  epoch {m.epoch} step {m.step}/{m.steps}: loss {m.train_loss:.4f}, about {m.seconds_left:.0f} s left",
            err=True), on_epoch=lambda e: click.echo(
            f"  epoch {e.epoch}: train loss {e.train_loss:.4f}"
            + (f", dev loss {e.valid_loss:.4f}" if e.valid_loss is not None else "") + f" ({e.seconds:.0f} s)",
            err=True))
    else:
        tuner = providers.get_fine_tuner(name=provider)
        hyper = {"n_epochs": epochs if epochs == "auto" else int(epochs), "batch_size": batch_size,
                 "learning_rate_multiplier" if provider == "openai" else "learning_rate": learning_rate}
        if provider != "openai":
            hyper["lora_rank"] = lora_rank
        default = finetune.FineTuneSettings.load(ws).model if provider == "openai" else tuner.model_id
        job = finetune.start_job(ws, tuner, model or base_model or default, hyper, suffix, seed)
    click.echo(f"{job['id']}: {job['state']}" + (f" -> {job['fine_tuned_model']}" if job["fine_tuned_model"] else ""))


@finetune_group.command("status")
@click.argument("job_id", required=False)
@_workspace_option
@click.option("--json", "as_json", is_flag=True)
def finetune_status(job_id: str | None, ws_name: str, as_json: bool) -> None:
    """A job's state, events and metrics (reading the provider again for jobs still running); all jobs without JOB_ID."""
    ws = _open(ws_name)
    if job_id is None and as_json:
        _echo_json([{k: j.get(k) for k in ("id", "provider", "state", "base_model", "fine_tuned_model", "error",
                                           "metrics")} for j in finetune.jobs(ws)])
        return
    if job_id is None:
        for j in finetune.jobs(ws):
            click.echo(f"{j['id']}  {j['provider']:<7} {j['state']:<10} {j['fine_tuned_model'] or ''}")
        return
    job = finetune.get_job(ws, job_id)
    if job["provider"] not in finetune.IN_PROCESS and job["state"] not in finetune.TERMINAL:
        job = finetune.refresh(ws, job_id, providers.get_fine_tuner(name=job["provider"]))
    if as_json:
        _echo_json(job)
        return
    click.echo(f"{job['id']} ({job['provider']}, {job['base_model']}): {job['state']}"
               + (f" -> {job['fine_tuned_model']}" if job["fine_tuned_model"] else "")
               + (f"; error: {job['error']}" if job["error"] else ""))
    for e in job["events"][-10:]:
        click.echo(f"  [{e['level']}] {e['message']}")
    if job["metrics"]:
        last = job["metrics"][-1]
        unit = "epoch" if job["provider"] in finetune.IN_PROCESS else "step"   # local runs record one row per epoch
        click.echo(f"  {unit} {last['step']}: train loss {last['train_loss']}, dev loss {last['valid_loss']}")


@finetune_group.command("ask")
@click.argument("question")
@_workspace_option
@click.option("--model", "model_id", help="A trained model's id (`finetune status`; default: the newest one).")
@click.option("--json", "as_json", is_flag=True)
def finetune_ask(question: str, ws_name: str, model_id: str | None, as_json: bool) -> None:
    """Ask a trained model one question, as Compare's fine-tuned arm asks it (no retrieval)."""
    r = finetune.ask(_open(ws_name), question, model_id)
    if as_json:
        _echo_json({k: getattr(r, k) for k in ("question", "answer", "abstained", "provider", "latency_ms",
                                               "prompt_tokens", "output_tokens", "cost_usd")})
        return
    click.echo(r.answer or "(no answer)")
    click.echo(f"  answered by {r.provider} in {sum(r.latency_ms.values()):,.0f} ms"
               + ("" if r.cost_usd is None else f", {costs.format_usd(r.cost_usd)}")
               + ("; it declined to answer" if r.abstained else ""), err=True)


# --- eval -------------------------------------------------------------------------------------------

@main.command("generate-qa")
@_workspace_option
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Pairs to ask for.")
@click.option("--kinds", default="factual=0.6,paraphrase=0.2,unanswerable=0.2", show_default=True,
              help="Shares by kind: factual, paraphrase, changed (answers that differ between versions), unanswerable.")
@click.option("--docs", "doc_ids", help="Comma-separated document ids (default: every document).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--judge", is_flag=True, help="Also ask the chat model whether each answer is supported by its passage.")
@click.option("--dry-run", is_flag=True, help="Print the pairs; add nothing to the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print the pairs (question, answer, doc_id, chunk_id, kind, "
                                                     "synthetic) and the rejected ones with their reasons, as JSON.")
def generate_qa(ws_name: str, count: int, kinds: str, doc_ids: str | None, seed: int, judge: bool, dry_run: bool,
                as_json: bool) -> None:
    """Write question/answer pairs from the workspace's documents with the configured chat model, check
    each, and add the ones kept to the workspace's pairs (marked synthetic). Running it again resumes."""
    ws = _open(ws_name)
    settings = synthetic.settings_of(count=count, kinds=synthetic.parse_kinds(kinds), seed=seed, judge=judge,
                                     docs=[d.strip() for d in (doc_ids or "").split(",") if d.strip()])
    result = synthetic.generate(ws, settings, on_item=lambda n, total, left: click.echo(
        f"  {n}/{total} pairs made, about {left:.0f} s left", err=True))
    added = None
    if not dry_run:
        synthetic.review(ws, {c.id: {"status": "accepted"} for c in result.kept if c.status == "kept"})
        added = synthetic.add_accepted(ws)
    if as_json:
        keys = ("question", "answer", "doc_id", "chunk_id", "kind", "synthetic", "generator", "status", "reason")
        _echo_json({"run_id": result.run_id, "generator": result.generator, "planned": result.planned,
                    "pairs": [{k: c.to_dict()[k] for k in keys} for c in result.kept],
                    "rejected": [{k: c.to_dict()[k] for k in keys} for c in result.rejected],
                    "added": added, "notes": result.notes})
        return
    click.echo(f"{result.run_id}: {len(result.kept)} of {result.planned} pairs kept by the checks "
               f"({result.generator}){'' if added is None else f'; {added} synthetic pairs now in the workspace'}")
    for c in result.kept:
        click.echo(f"  kept [{c.kind}] {c.question} -> {c.answer or '(unanswerable)'}  ({c.doc_id})")
    for c in result.rejected:
        click.echo(f"  rejected [{c.kind}] {c.question or '-'}: {c.reason}")
    for note in result.notes:
        click.echo(f"note: {note}")


@main.command("eval")
@click.option("--docs", "docs_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="A folder of documents, or a corpus.jsonl with id/title/text per line.")
@click.option("--qa", "qa_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Questions: JSONL with question, answer, doc_ids (an empty answer = unanswerable).")
@click.option("--train", "train_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pairs to fine-tune on; without it, a leakage-guarded split of --qa when a fine-tuned arm runs.")
@click.option("--arms", default=",".join(evaluation.ARMS), show_default=True,
              help="Comma-separated arms; `frozen` adds the workspace's newest captured answers (finetune capture).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--workspace", "ws_name", help="Workspace to keep everything in (default: one named after the inputs, "
                                             "so running the same command again resumes).")
@click.option("--router", "router_rule", type=click.Choice(["relevance", "classifier"]), default="relevance",
              show_default=True)
@click.option("--concurrency", default=4, show_default=True, type=int)
@click.option("--judge", is_flag=True, help="Also grade answers with the configured chat model (LLM judge).")
@click.option("--allow-overlap", is_flag=True,
              help="Score the fine-tuned arm even on questions it was trained or tuned on (the run is marked "
                   "contaminated).")
@click.option("--limit", default=0, type=click.IntRange(min=0),
              help="Score a seeded sample of this many questions (answerable and unanswerable in their shares).")
def eval_cmd(docs_path: Path, qa_path: Path, train_path: Path | None, arms: str, out_path: Path,
             ws_name: str | None, router_rule: str, concurrency: int, judge: bool, allow_overlap: bool,
             limit: int) -> None:
    """Evaluate every arm on the same questions of any corpus and write RESULTS.json."""
    import hashlib

    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    known = (*evaluation.ARMS, evaluation.FROZEN)
    unknown = [a for a in arm_list if a not in known]
    if unknown:
        raise WorkbenchError(f"unknown arm(s): {', '.join(unknown)}; expected: {', '.join(known)}", field="arms")
    if train_path and train_path.name == qa_path.name:
        raise WorkbenchError("--train and --qa need different file names (pairs are kept per file name)")
    docs = corpus.load_corpus_path(docs_path)
    inputs = docs + corpus.load_corpus_path(qa_path) + (corpus.load_corpus_path(train_path) if train_path else [])
    digest = hashlib.sha256()
    for name, data in inputs:
        digest.update(name.encode() + data)
    ws = workspace.open_workspace(ws_name or f"eval-{digest.hexdigest()[:10]}", create=True)
    for report_ in (corpus.ingest(ws, docs), corpus.ingest(ws, inputs[len(docs):], kind="qa")):
        for p in report_.problems:
            click.echo(f"{p.level}: {p}", err=True)
    questions, why = _eval_questions(ws, qa_path.name, train_path.name if train_path else None, arm_list)
    if limit and limit < len(questions):
        questions = evaluation.sample_questions(questions, limit)
        why += f"; a seeded sample of {len(questions)} (--limit)"
    click.echo(f"scoring {len(questions)} question(s): {why}", err=True)
    if any(a in arm_list for a in evaluation.FT_ARMS) and not finetune.trained_models(ws):
        click.echo("training the local stand-in for the fine-tuned arm", err=True)
        finetune.run_local(ws)
    ids = {q.id for q in questions}
    pending = [r for r in evaluation.runs(ws) if r["state"] != "complete"
               and json.loads(r["settings"])["arms"] == arm_list
               and {q.id for q in evaluation.run_questions(ws, r["id"])} == ids]
    if pending:
        run_id = pending[0]["id"]
        click.echo(f"resuming {run_id} with the settings it was started with", err=True)
    else:
        try:
            run_id = evaluation.create_run(ws, questions, evaluation.EvalSettings(
                arms=arm_list, router_rule=router_rule, concurrency=concurrency, allow_overlap=allow_overlap))
        except evaluation.OverlapError as exc:
            raise WorkbenchError(f"{exc.overlap.message()}; refused (pass --allow-overlap to score it anyway, "
                                 "marked contaminated)") from None
    settings = evaluation.run_settings(ws, run_id)
    ctx = evaluation.build_arms(ws, settings)
    if settings.router_rule == "classifier" and "router" in settings.arms:
        evaluation.train_router(ctx, evaluation.router_examples(ctx, splits.sides(ws, splits.saved_split(ws)).dev))
    last: dict[str, int] = {}

    def progress(arm: str, done: int, total: int, eta: float) -> None:
        if done == total or done - last.get(arm, -10) >= 10:
            last[arm] = done
            click.echo(f"  {arm}: {done}/{total}" + (f", about {eta:.0f} s left" if eta else ""), err=True)

    evaluation.run(ws, run_id, ctx, progress)
    summary = evaluation.summarize(ws, run_id, ctx.embedder)
    summary["run"].update(workspace=ws.name, question_ids=sorted(ids), scored=why)
    if judge:
        summary["judge"] = evaluation.judge(ws, run_id, ctx.chat, concurrency)
    workspace.atomic_write_text(out_path, json.dumps(summary, indent=1, default=str))
    for arm in settings.arms:
        m, a = summary[arm]["metrics"], summary[arm]
        f1 = "n/a" if m["f1"] is None else f"{m['f1']:.3f}" + (
            f" [{m['f1_ci_low']:.3f}, {m['f1_ci_high']:.3f}]" if m["f1_ci_low"] is not None else "")
        abstains = "n/a" if m["abstention_rate"] is None else f"{m['abstention_rate']:.2f}"
        p50 = "n/a" if m["latency_ms_p50"] is None else f"{m['latency_ms_p50']:.0f} ms"
        errors = f"  {a['errors']} error(s)" if a["errors"] else ""
        click.echo(f"{arm:<8} F1 {f1} (n={m['f1_n']})  abstains {abstains}  p50 {p50}  ({a['provider']}){errors}")
    for note in summary["run"]["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out_path}")
    failed = [arm for arm in settings.arms if summary[arm]["questions"] and
              summary[arm]["errors"] == summary[arm]["questions"]]
    if failed:
        raise WorkbenchError(f"every question failed for {', '.join(failed)}: {summary[failed[0]]['first_error']}")


def _eval_questions(ws: workspace.Workspace, qa_name: str, train_name: str | None,
                    arms: list[str]) -> tuple[list, str]:
    """The questions to score and why: all of QA.jsonl, unless a fine-tuned arm must learn from part of it."""
    qa = [p for p in corpus.qa_pairs(ws) if p.source == qa_name]
    if train_name:
        train = [p for p in corpus.qa_pairs(ws) if p.source == train_name]
        carve = splits.split_pairs(train, test_share=0.15, dev_share=0.0)  # dev: early stopping, never scored
        splits.save_split(ws, splits.Split(train=carve.train, dev=carve.test, test=[p.id for p in qa],
                                           test_share=0.0, dev_share=0.15, seed=0, groups=carve.groups,
                                           guarded_links=carve.guarded_links))
        return qa, (f"all {len(qa)} questions of {qa_name}; the fine-tuned arm learns from {train_name} "
                    f"({len(carve.train)} train, {len(carve.test)} dev)")
    if not any(a in arms for a in evaluation.FT_ARMS):
        return qa, f"all {len(qa)} questions of {qa_name} (no fine-tuned arm, so nothing is held out)"
    split = splits.saved_split(ws) or splits.make_split(ws)
    side = splits.sides(ws, split)
    return side.test, (f"{len(side.test)} of {len(qa)} questions, the test side of a leakage-guarded split: the "
                       f"other {len(side.train)} train and {len(side.dev)} early-stop the fine-tuned arm "
                       "(pass --train to score every question)")


# --- report and notebook ----------------------------------------------------------------------------

@main.command("report")
@_workspace_option
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the whole memo here; without it only the verdict is printed.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def report_cmd(ws_name: str, fmt: str, out_path: Path | None, as_json: bool) -> None:
    """Print the verdict (fit, cost and latency, measured quality) and write the decision memo (Markdown, or one
    self-contained HTML file with interactive charts)."""
    data = report.build(_open(ws_name))
    if as_json:
        _echo_json(dataclasses.asdict(data.verdict))
    else:
        click.echo(report.verdict_text(data.verdict))
    if out_path:
        text = report.to_html(data) if fmt == "html" else report.to_markdown(data)
        workspace.atomic_write_text(out_path, text)
        click.echo(f"wrote {out_path} ({len(text.encode()) / 1e6:.1f} MB)" if fmt == "html" else f"wrote {out_path}",
                   err=as_json)


@main.command("notebook")
@_workspace_option
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def notebook_cmd(ws_name: str, out_path: Path) -> None:
    """Export a Jupyter notebook that reproduces the workspace's analysis."""
    workspace.atomic_write_text(out_path, notebook.to_json(_open(ws_name)))
    click.echo(f"wrote {out_path}")


# --- tokens -----------------------------------------------------------------------------------------

@main.command("tokens")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--text", help="Count this text instead of files.")
@click.option("--model", default="gpt-4o-mini", show_default=True, help="Model whose tokenizer counts.")
@click.option("--chat", is_flag=True, help="Files are chat JSONL ({\"messages\": [...]} per line), billed framing included.")
def tokens_cmd(files: tuple[str, ...], text: str | None, model: str, chat: bool) -> None:
    """Count tokens offline, as the model's tokenizer does."""
    choice = tokens.encoding_for_model(model)
    if choice.note:
        click.echo(f"note: {choice.note}", err=True)
    if text is not None:
        click.echo(tokens.count(text, model))
        return
    if not files:
        raise click.UsageError("give FILES or --text")
    total = 0
    for name in files:
        if chat:
            n = 0
            for line in jsonl.parse(_read(name).decode("utf-8", errors="replace")):
                try:
                    n += tokens.count_messages(line.value["messages"], model)
                except (KeyError, TypeError, AttributeError):
                    raise WorkbenchError(line.error or "expected a JSON object with a 'messages' list", file=name,
                                         line=line.number) from None
        else:
            n = tokens.count(_read(name).decode("utf-8", errors="replace"), model)
        total += n
        click.echo(f"{n:>12,}  {name}")
    if len(files) > 1:
        click.echo(f"{total:>12,}  total ({choice.encoding})")


# --- estimate ---------------------------------------------------------------------------------------



@main.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False), required=False)
@click.option("--preset", type=click.Choice(scenario.preset_names()),
              help="Start from a shipped example scenario (configs/scenarios/); a SCENARIO_FILE given too overrides "
                   "its keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
@click.option("--workspace", "ws_name", help="Use this workspace's custom prices and save the scenario there.")
@click.option("--tornado", "tornado_pair", metavar="A,B", help="Also print the inputs that move A minus B most.")
@click.option("--measured-speeds", is_flag=True,
              help="Use the model speeds measured in the workspace's last Compare run (a local model on this machine) "
                   "and the training speed of its last LoRA run.")
def estimate(scenario_file: str | None, preset: str | None, as_json: bool, ws_name: str | None,
             tornado_pair: str | None, measured_speeds: bool) -> None:
    """Cost and latency of fine-tuning, RAG and the hybrids for a scenario (YAML) or a shipped preset."""
    if not scenario_file and not preset:
        raise click.UsageError(f"give a scenario file or --preset NAME ({', '.join(scenario.preset_names())})")
    s = scenario.load_preset(preset) if preset else None
    if scenario_file:
        s = scenario.load_scenario(scenario_file, base=s)
    book = pricing.load_pricing()
    speed_notes: list[str] = []
    if measured_speeds and not ws_name:
        raise click.UsageError("--measured-speeds needs --workspace (the speeds come from its Compare run)")
    if ws_name:
        ws = workspace.open_workspace(ws_name, create=True)
        book = book.with_custom(pricing.saved_custom_prices(ws), source=f"workspace {ws_name}")
        if measured_speeds:
            speeds, speed_notes = scenario.measured_speeds(evaluation.measured_figures(ws))
            lora = finetune.measured_lora_price(ws, book)
            if lora:
                book = book.with_custom({"models": [lora]}, source="measured LoRA speed")
                speed_notes.append(f"local LoRA training speed: {lora['source']}")
            if not speed_notes:
                raise WorkbenchError(f"workspace {ws_name} has no model speeds measured: run Compare with a local "
                                     "model (the llamacpp chat provider) or train a LoRA first")
            s = s.model_copy(update={"latency": s.latency.model_copy(update={
                k: v for k, v in (("rag_model", speeds.rag_model), ("ft_model", speeds.ft_model)) if v})})
        scenario.save_scenario(ws, s)
    try:
        est = costs.estimate(s, book)
    except WorkbenchError as exc:
        exc.file = exc.file or scenario_file or f"preset {preset}"
        raise
    data = est.to_dict()
    if speed_notes:
        data["measured_speeds"] = speed_notes
    if tornado_pair:
        a, _, b = tornado_pair.partition(",")
        t = sensitivity.tornado(est.params, a.strip(), b.strip() or None)
        data["tornado"] = {"base": t.base_result, "bars": [
            {"input": x.input, "low_value": x.low_value, "high_value": x.high_value,
             "low_result": x.low_result, "high_result": x.high_result} for x in t.bars]}
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{s.name}: {s.queries_per_month:,.0f} queries/month over {s.months} months")
    for note in speed_notes:
        click.echo(f"Latency: {note}")
    click.echo(f"{'option':<30}{'setup':>12}{'monthly':>12}{'per query':>12}{'total':>14}{'latency':>10}")
    for o in est.options.values():
        click.echo(f"{o.label:<30}{costs.format_usd(o.setup_cost_usd):>12}{costs.format_usd(o.monthly_cost_usd):>12}"
                   f"{costs.format_usd(o.cost_per_query_usd):>12}{costs.format_usd(o.total_cost_usd):>14}"
                   f"{o.latency_ms['total']:>8,.0f}ms")
    ft = est.options["fine_tuning"]
    click.echo(f"Fine-tuning: {ft.epochs} epochs, {ft.billed_training_tokens:,.0f} billed training tokens, "
               f"{costs.format_usd(ft.training_cost_usd)} per training run")
    click.echo("Break-even:")
    for b in est.break_even:
        click.echo(f"  {costs.break_even_sentence(b, s.queries_per_month, s.months)}")
    for w in est.warnings:
        click.echo(f"{w.level.upper()}: {w.message}")
    if tornado_pair:
        click.echo("Inputs that move the monthly difference most (-50% / +50%):")
        for x in data["tornado"]["bars"][:8]:
            click.echo(f"  {x['input']:<24}{costs.format_usd(x['low_result']):>14}{costs.format_usd(x['high_result']):>14}")


if __name__ == "__main__":
    main()
