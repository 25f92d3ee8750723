"""The Fine-tune step: training data from the workspace, cost preview, jobs on a provider, trained models.

A job is recorded in the workspace the moment it exists, and every status read is saved, so closing the
app or a crash loses nothing: refreshing a job resumes from its id. The local trainer is an offline
stand-in for a fine-tuned LLM and is named as such wherever it appears.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

from . import corpus, tokens
from .costs import Caution, auto_epochs, fine_tuning_lifecycle, format_usd
from .errors import WorkbenchError
from .overlap import TrainingRecord
from .parsing import QAPair
from .providers.protocols import FineTuner, JobRequest
from .pricing import DEFAULT_EXAMPLE_TOKEN_LIMIT, PriceBook, load_pricing
from .splits import Split, saved_split, sides
from .training_data import DataReport, check, example_count_issue, to_examples
from .workspace import Workspace

SETTINGS_KEY = "finetune_settings"
BYO_KEY = "finetune_byo_models"
LOCAL_LABEL = "Local trainer (offline stand-in for a fine-tuned LLM)"
LOCAL_BASE_MODEL = "all-MiniLM-L6-v2 + linear answer layer"
TERMINAL = ("succeeded", "failed", "cancelled")
IN_PROCESS = ("local", "lora")      # trainers that run in the app's process: no provider to ask for status
HOSTED_NAMES = {"openai": "OpenAI", "together": "Together AI", "fireworks": "Fireworks AI"}


@dataclass
class FineTuneSettings:
    system_prompt: str = "You answer questions about the product documentation briefly and exactly."
    model: str = "gpt-4o-mini-2024-07-18"

    @classmethod
    def load(cls, ws: Workspace) -> FineTuneSettings:
        return cls(**(ws.get_state(SETTINGS_KEY) or {}))

    def save(self, ws: Workspace) -> None:
        ws.set_state(SETTINGS_KEY, asdict(self))


def training_examples(ws: Workspace, split: Split | None = None,
                      side: Literal["train", "dev", "test", "all"] = "train",
                      settings: FineTuneSettings | None = None) -> list[dict[str, Any]]:
    """Chat examples from the workspace's pairs: one side of the split, or all of them."""
    settings = settings or FineTuneSettings.load(ws)
    split = split or saved_split(ws)
    pairs = corpus.qa_pairs(ws) if side == "all" or split is None else getattr(sides(ws, split), side)
    return to_examples(pairs, settings.system_prompt)


def check_workspace(ws: Workspace, model: str | None = None, book: PriceBook | None = None) -> DataReport:
    """Every check on the training side of the saved split (or on all pairs before a split is made)."""
    settings = FineTuneSettings.load(ws)
    model = model or settings.model
    limit = (book or load_pricing()).example_token_limit(model)
    return check(training_examples(ws, settings=settings), model, limit)


@dataclass
class CostPreview:
    model: str
    examples: int
    epochs: int
    epochs_rule: str
    billed_tokens: int
    training_cost_usd: float | None
    price_note: str
    cautions: list[Caution] = field(default_factory=list)
    basis: str = ""          # which examples were counted, e.g. "train side of the split: 187 examples"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(per_example_tokens: list[int], model: str, epochs: int | Literal["auto"] = "auto",
            book: PriceBook | None = None, today: dt.date | None = None, basis: str = "") -> CostPreview:
    """Epochs, billed tokens and price of a training run on these examples, before any job starts, with
    lifecycle cautions; `basis` names the examples, so two previews on different sets say so."""
    book = book or load_pricing()
    price = book.model(model, field="model")
    ft = price.fine_tuning
    n = len(per_example_tokens)
    if epochs == "auto":
        n_epochs, rule = int(auto_epochs(n)), "auto: 3, fewer for large sets, more for small ones"
    else:
        n_epochs, rule = int(epochs), "chosen"
    limit = ft.example_token_limit if ft else DEFAULT_EXAMPLE_TOKEN_LIMIT
    billed = sum(min(limit, t) for t in per_example_tokens) * n_epochs
    if ft is None:
        cost, note = None, f"{model} has no fine-tuning price"
    elif ft.training is not None:
        cost, note = billed * ft.training / 1e6, f"{format_usd(ft.training)} per 1M training tokens"
    elif ft.training_usd_per_hour is not None and ft.training_tokens_per_s:
        seconds = billed / ft.training_tokens_per_s
        cost = seconds / 3600 * ft.training_usd_per_hour
        note = (f"{training_time(seconds)} of GPU time at {format_usd(ft.training_usd_per_hour)}/h"
                if ft.training_usd_per_hour else
                f"{training_time(seconds)} on this machine at {ft.training_tokens_per_s:,.0f} training tokens/s")
    else:
        cost, note = None, f"no training price for {model}"
    cautions = fine_tuning_lifecycle(price, today or dt.date.today())
    issue = example_count_issue(n)
    if issue:
        cautions.append(Caution(issue[1], "fine_tuning", issue[2]))
    return CostPreview(model, n, n_epochs, rule, billed, cost, note, cautions, basis)


def training_time(seconds: float) -> str:
    """How long a training run takes, as a person says it: about 16 seconds, about 2 minutes, about 1.5 hours."""
    if seconds < 90:
        return f"about {seconds:,.0f} seconds"
    if seconds < 90 * 60:
        return f"about {seconds / 60:,.0f} minutes"
    return f"about {seconds / 3600:,.1f} hours"


def training_basis(ws: Workspace, examples: int) -> str:
    """Which examples the Fine-tune step trains on: the split's train side, or every answered pair before a split."""
    if saved_split(ws):
        return f"train side of the split: {examples:,} examples"
    return f"all {examples:,} answered pairs (no split yet)"


def workspace_preview(ws: Workspace, model: str | None = None, epochs: int | Literal["auto"] = "auto",
                      book: PriceBook | None = None, report: DataReport | None = None) -> CostPreview:
    """The training-cost preview of what the Fine-tune step trains on, naming those examples: the one figure
    the Fine-tune and Estimate pages show for the workspace's own data (`report`: its check, if already made)."""
    book = book or load_pricing()
    model = model or FineTuneSettings.load(ws).model
    report = report or check_workspace(ws, model, book)
    return preview(report.per_example_tokens, model, epochs, book, basis=training_basis(ws, report.examples))


# --- jobs ------------------------------------------------------------------------------------------

def _row(r: Any) -> dict[str, Any]:
    job = dict(r)
    for key in ("hyperparameters", "metrics", "events", "split", "settings", "trained_on"):
        job[key] = json.loads(job[key]) if job.get(key) else ([] if key in ("metrics", "events") else {})
    return job


def jobs(ws: Workspace) -> list[dict[str, Any]]:
    with ws.db() as db:
        return [_row(r) for r in db.execute("SELECT * FROM jobs ORDER BY created_at DESC")]


def get_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    with ws.db() as db:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise WorkbenchError(f"no job '{job_id}' in workspace '{ws.name}'")
    return _row(row)


def _save_job(ws: Workspace, job: dict[str, Any]) -> None:
    now = time.time()
    with ws.db() as db:
        db.execute(
            "INSERT INTO jobs (id, provider, base_model, state, created_at, updated_at, hyperparameters, training_file, "
            "validation_file, fine_tuned_model, trained_tokens, error, metrics, events, split, settings, trained_on) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "state = excluded.state, updated_at = excluded.updated_at, fine_tuned_model = excluded.fine_tuned_model, "
            "trained_tokens = excluded.trained_tokens, error = excluded.error, metrics = excluded.metrics, "
            "events = excluded.events",
            (job["id"], job["provider"], job["base_model"], job["state"], job.get("created_at", now), now,
             json.dumps(job.get("hyperparameters", {})), job.get("training_file"), job.get("validation_file"),
             job.get("fine_tuned_model"), job.get("trained_tokens"), job.get("error"),
             json.dumps(job.get("metrics", [])), json.dumps(job.get("events", [])),
             json.dumps(job.get("split", {})), json.dumps(job.get("settings", {})),
             json.dumps(job.get("trained_on", {}))))


def _require_split(ws: Workspace) -> Split:
    split = saved_split(ws)
    if split is None:
        raise WorkbenchError("make the train/dev/test split first (Fine-tune page, or `workbench finetune split`)")
    return split


def resplit_note(ws: Workspace) -> str | None:
    """What re-splitting means for the models already trained: Compare checks them against the new split."""
    models = trained_models(ws)
    if not models:
        return None
    return (f"{len(models)} trained model(s) exist. Compare checks each of them against the new split's test side "
            "and refuses to score a model on questions it was trained or tuned on.")


def run_local(ws: Workspace, hyperparameters: Any = None, embed: Callable[[list[str]], Any] | None = None,
              on_epoch: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Train the local stand-in on the training side of the split; the model is saved in the workspace."""
    from .providers.local_trainer import Hyperparameters, train

    split = _require_split(ws)
    hp = hyperparameters or Hyperparameters()
    side = sides(ws, split)
    train_pairs, dev_pairs = side.train, side.dev
    job_id = f"local-{uuid.uuid4().hex[:10]}"
    job = {"id": job_id, "provider": "local", "base_model": LOCAL_BASE_MODEL,
           "state": "running", "created_at": time.time(), "hyperparameters": asdict(hp), "split": split.to_dict(),
           "trained_on": TrainingRecord.of(train_pairs, dev_pairs).to_dict(),
           "metrics": [], "events": [{"created_at": time.time(), "level": "info", "message": "training started"}]}
    _save_job(ws, job)
    if embed is None:
        embed = local_model_embedder().embed

    def epoch_done(m: Any) -> None:
        job["metrics"].append({"step": m.epoch, "train_loss": m.train_loss, "valid_loss": m.valid_loss,
                               "train_accuracy": m.train_accuracy})
        _save_job(ws, job)  # the curve is kept as it grows
        if on_epoch:
            on_epoch(m)

    try:
        model, result = train([(p.question, p.answer) for p in train_pairs if p.answer],
                              [(p.question, p.answer) for p in dev_pairs if p.answer], embed, hp, epoch_done)
    except WorkbenchError as exc:
        job.update(state="failed", error=str(exc))
        _save_job(ws, job)
        raise
    ws.write_file(f"models/{job_id}.npz", model.to_bytes())
    job.update(state="succeeded", fine_tuned_model=job_id, trained_tokens=None)
    job["events"].append({"created_at": time.time(), "level": "info",
                          "message": f"done: {result.epochs_run} epochs in {result.seconds:.1f} s, best epoch "
                                     f"{result.best_epoch}" + (" (stopped early)" if result.stopped_early else "")})
    _save_job(ws, job)
    return get_job(ws, job_id)


def run_lora(ws: Workspace, settings: Any = None, on_step: Callable[[Any], None] | None = None,
             on_epoch: Callable[[Any], None] | None = None, should_stop: Callable[[], bool] | None = None,
             resume: str | None = None) -> dict[str, Any]:
    """Train a LoRA of the local model on the train side (early stopping on dev, never test); the job is
    saved first, a checkpoint per epoch after, so `resume=job_id` goes on after a crash or a cancel."""
    from .providers.lora_trainer import LoraSettings, base_source, train

    split = _require_split(ws)
    side = sides(ws, split)
    fts = FineTuneSettings.load(ws)
    if resume:
        job = get_job(ws, resume)
        settings = LoraSettings.model_validate(job["hyperparameters"])
    else:
        settings = settings or LoraSettings()
        folder, gguf = base_source(settings)
        job_id = f"lora-{uuid.uuid4().hex[:10]}"
        job = {"id": job_id, "provider": "lora", "base_model": gguf or folder, "state": "running",
               "created_at": time.time(), "hyperparameters": settings.model_dump(), "split": split.to_dict(),
               "trained_on": TrainingRecord.of(side.train, side.dev).to_dict(), "metrics": [],
               "events": [{"created_at": time.time(), "level": "info", "message": "training started"}]}
    job.update(state="running", error=None)
    _save_job(ws, job)

    def epoch_done(e: Any) -> None:
        job["metrics"] = [m for m in job["metrics"] if m["step"] != e.epoch] + [
            {"step": e.epoch, "train_loss": e.train_loss, "valid_loss": e.valid_loss, "seconds": e.seconds}]
        _save_job(ws, job)  # the curve is kept as it grows
        if on_epoch:
            on_epoch(e)

    train_examples = to_examples(side.train, fts.system_prompt)
    try:
        result = train(train_examples, to_examples(side.dev, fts.system_prompt),
                       settings, ws.file(f"models/{job['id']}"), on_step, epoch_done, should_stop)
    except BaseException as exc:   # Ctrl-C or the page's Stop button is a cancel, anything else a failure
        stopped = not isinstance(exc, Exception)
        job.update(state="cancelled" if stopped else "failed",
                   error=("stopped" if stopped else f"{type(exc).__name__}: {exc}")
                   + "; resume goes on from the last finished epoch")
        _save_job(ws, job)
        raise
    if result.cancelled:
        job.update(state="cancelled")
        job["events"].append({"created_at": time.time(), "level": "info",
                              "message": "cancelled; resume goes on from the last finished epoch"})
    else:
        job.update(state="succeeded", fine_tuned_model=job["id"])
        seconds = [m["seconds"] for m in job["metrics"] if m.get("seconds")]
        job["events"].append({"created_at": time.time(), "level": "info", "message":
                              f"done on {result.device}: {len(result.epochs)} epochs, best epoch {result.best_epoch}"
                              + (" (stopped early)" if result.stopped_early else "")
                              + (f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""),
                              # what the Estimate's local LoRA speed is measured from (tiktoken tokens, as it counts)
                              "data": {"train_tokens": sum(tokens.count_messages(e["messages"]) for e in train_examples),
                                       "train_examples": len(train_examples), "device": result.device,
                                       "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None}})
    _save_job(ws, job)
    return get_job(ws, job["id"])


LOCAL_LORA_PRICE = "smollm2-135m-lora-local"


def measured_lora_price(ws: Workspace, book: PriceBook | None = None) -> dict[str, Any] | None:
    """The local LoRA's price entry with the training speed measured by the workspace's last finished LoRA
    job on the bundled model (tokens per second = training tokens per epoch / seconds per epoch), as a
    custom price for the Estimate; None when no such job has been timed."""
    for job in jobs(ws):   # newest first
        if job["provider"] != "lora" or job["state"] != "succeeded":
            continue
        done = next((e.get("data") for e in reversed(job["events"]) if (e.get("data") or {}).get("train_tokens")), None)
        if not done or not done.get("seconds_per_epoch"):
            continue
        from .providers.lora_trainer import LoraSettings

        if LoraSettings.model_validate(job["hyperparameters"]).base_model is not None:
            continue   # another base model: its speed says nothing about the bundled one
        entry = (book or load_pricing()).model(LOCAL_LORA_PRICE).model_dump(mode="json", exclude_none=True)
        speed = done["train_tokens"] / done["seconds_per_epoch"]
        entry["fine_tuning"]["training_tokens_per_s"] = round(speed, 1)
        entry["source"] = (f"measured on this machine ({done.get('device', 'cpu')}): LoRA job {job['id']}, "
                           f"{done['seconds_per_epoch']:.0f} s per epoch on {done['train_examples']} examples "
                           f"({done['train_tokens']:,} tokens) = {speed:,.0f} training tokens/s")
        entry["as_of"] = dt.date.fromtimestamp(job["created_at"]).isoformat()
        return entry
    return None


def lora_chat(ws: Workspace, job_id: str) -> Any:
    """The trained adapter of a LoRA job as a chat model."""
    from .providers.lora_trainer import LoraChat, LoraSettings

    job = get_job(ws, job_id)
    return LoraChat(ws.file(f"models/{job_id}/adapter"), LoraSettings.model_validate(job["hyperparameters"]), job_id)


def start_job(ws: Workspace, tuner: FineTuner, model: str, hyperparameters: dict[str, Any] | None = None,
              suffix: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Start a job on a hosted fine-tuner with the split's train side (dev as validation, never test); the
    job is saved as soon as the provider has given it an id."""
    split = _require_split(ws)
    settings = FineTuneSettings.load(ws)
    side = sides(ws, split)
    train_examples = to_examples(side.train, settings.system_prompt)
    report = tuner.check(train_examples, model)
    if not report.ok:
        raise WorkbenchError("the training data has errors; fix them first: "
                             + "; ".join(f.message for f in report.findings if f.severity == "error"))
    created = tuner.launch(JobRequest(model, train_examples, to_examples(side.dev, settings.system_prompt),
                                      hyperparameters or {}, suffix, seed, ws))
    if tuner.offline:  # trained in this process: the job is saved already, with its curve
        return get_job(ws, created.id)
    files = next((e.data for e in created.events if e.data and "training_file" in e.data), {})
    job = {"id": created.id, "provider": tuner.name, "base_model": model, "state": created.state,
           "created_at": time.time(), "hyperparameters": hyperparameters or {},
           "training_file": files.get("training_file"), "validation_file": files.get("validation_file"),
           "split": split.to_dict(), "settings": asdict(settings),
           "trained_on": TrainingRecord.of(side.train, side.dev).to_dict(), "metrics": [], "events": []}
    _save_job(ws, job)
    return refresh(ws, created.id, tuner)


def refresh(ws: Workspace, job_id: str, tuner: FineTuner) -> dict[str, Any]:
    """Read a provider job's status, events and metrics, and save them."""
    job = get_job(ws, job_id)
    if job["provider"] in IN_PROCESS or job["state"] in TERMINAL and job.get("metrics"):
        return job
    status = tuner.status(job_id)
    job.update(state=status.state, fine_tuned_model=status.fine_tuned_model, trained_tokens=status.trained_tokens,
               error=status.error, events=[asdict(e) for e in status.events], metrics=status.metrics)
    _save_job(ws, job)
    return get_job(ws, job_id)


def cancel(ws: Workspace, job_id: str, tuner: FineTuner) -> dict[str, Any]:
    job = get_job(ws, job_id)
    if job["state"] in TERMINAL:
        raise WorkbenchError(f"job {job_id} already {job['state']}")
    job.update(state=tuner.cancel(job_id).state)
    _save_job(ws, job)
    return get_job(ws, job_id)


def open_jobs(ws: Workspace) -> list[dict[str, Any]]:
    """Provider jobs not finished yet: after a restart, refresh these to resume."""
    return [j for j in jobs(ws) if j["provider"] not in IN_PROCESS and j["state"] not in TERMINAL]


# --- trained models ---------------------------------------------------------------------------------

@dataclass
class TrainedModel:
    id: str
    kind: str               # local, lora, openai-compatible, or the hosted fine-tuner that trained it (openai, together, ...)
    label: str
    offline: bool
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int | None = None
    trained_on: TrainingRecord | None = None      # what it was trained and early-stopped on


def register_model(ws: Workspace, name: str, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                   context_window: int | None = None, trained_on: list[QAPair] | None = None) -> TrainedModel:
    """Bring your own fine-tuned model: any OpenAI-compatible chat model (e.g. a LoRA served by vLLM or Ollama).

    What it was trained on is recorded so Compare can check for overlap: the pairs given, or else the
    training and dev sides of the workspace's split (what the Fine-tune page exports for training).
    """
    if not name.strip() or not model.strip() or not base_url.strip():
        raise WorkbenchError("a registered model needs a name, a base_url and a model name")
    if not base_url.startswith(("http://", "https://")):
        raise WorkbenchError(f"base_url must start with http:// or https:// (got '{base_url}')", field="base_url")
    if trained_on is not None:
        record = TrainingRecord.of(trained_on, [], note="the training file given at registration")
    elif not corpus.qa_pairs(ws):
        record = TrainingRecord.of([], [], note="the workspace had no pairs at registration")
    else:
        side = sides(ws, _require_split(ws))
        record = TrainingRecord.of(side.train, side.dev, note="assumed: the train and dev sides of the split at "
                                                              "registration")
    byo = [m for m in (ws.get_state(BYO_KEY) or []) if m["name"] != name]
    byo.append({"name": name, "base_url": base_url, "model": model, "api_key_env": api_key_env,
                "context_window": context_window, "trained_on": record.to_dict()})
    ws.set_state(BYO_KEY, byo)
    return TrainedModel(model, "openai-compatible", f"{name}: {model} at {base_url}", False, base_url, api_key_env,
                        context_window, record)


def trained_models(ws: Workspace) -> list[TrainedModel]:
    out = []
    for j in jobs(ws):
        if j["state"] != "succeeded" or not j.get("fine_tuned_model"):
            continue
        record = TrainingRecord.from_dict(j.get("trained_on"))
        if j["provider"] == "local":
            out.append(TrainedModel(j["id"], "local", f"{LOCAL_LABEL}, trained {_when(j['created_at'])}", True,
                                    trained_on=record))
        elif j["provider"] == "lora":
            from .providers.lora_trainer import LoraSettings, base_name

            base = base_name(LoraSettings.model_validate(j["hyperparameters"]))
            out.append(TrainedModel(j["id"], "lora", f"LoRA {j['id']} of {base}, local (transformers + peft), "
                                                     f"trained {_when(j['created_at'])}", True, trained_on=record))
        else:
            out.append(TrainedModel(j["fine_tuned_model"], j["provider"], f"{j['fine_tuned_model']} "
                                    f"({HOSTED_NAMES.get(j['provider'], j['provider'])} fine-tune)", False,
                                    trained_on=record))
    for m in ws.get_state(BYO_KEY) or []:
        out.append(TrainedModel(m["model"], "openai-compatible", f"{m['name']}: {m['model']} at {m['base_url']}",
                                False, m["base_url"], m["api_key_env"], m.get("context_window"),
                                TrainingRecord.from_dict(m.get("trained_on"))))
    return out


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def local_model_embedder() -> Any:
    """The embedder the local trainer reads questions through, whatever embedder the RAG index uses."""
    from .providers.local_embedder import LocalEmbedder

    return LocalEmbedder()


def load_local_model(ws: Workspace, job_id: str) -> Any:
    from .providers.local_trainer import LocalModel

    path = ws.file(f"models/{job_id}.npz")
    if not path.exists():
        raise WorkbenchError(f"no saved model for {job_id}")
    return LocalModel.from_bytes(path.read_bytes())


def ask(ws: Workspace, question: str, model_id: str | None = None) -> Any:
    """One typed question answered by a trained model (the newest unless `model_id` names one) exactly as
    Compare's fine-tuned arm answers: no retrieval, the workspace's system message. Returns the arm's
    QuestionResult (answer, abstained, provider, latency_ms, cost_usd, tokens)."""
    from .evaluation import EvalSettings, build_arms

    if not question.strip():
        raise WorkbenchError("type a question to ask the trained model")
    arms = build_arms(ws, EvalSettings(arms=["ft"], ft_model=model_id))
    return arms.ft(QAPair(question=question.strip(), answer="", id="asked"))

