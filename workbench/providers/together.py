"""LoRA fine-tuning jobs on Together AI over its REST API (no SDK); the tuned model answers through
Together's OpenAI-compatible chat endpoint.

Files go up with `POST /files/upload`, the job is `POST /fine-tunes` with `training_type: Lora`; status,
events (`/events`) and the loss curve (`/metrics`) are read back, `POST /fine-tunes/{id}/cancel` stops it.
Together now serves a fine-tuned model from a dedicated endpoint: start one for the job's output model
(Together's console or API) before Compare asks it questions.
"""
from __future__ import annotations

import os
import time
from typing import Annotated, Any

from pydantic import Field

from .protocols import JobEvent, JobRequest, JobStatus
from .rest import RestClient, ServiceSettings, check_examples, epoch_seconds, need, tuned_chat

DEFAULT_BASE_URL = "https://api.together.ai/v1"
LABEL = "Together AI fine-tuning jobs (LoRA)"
SERVICE = "Together AI"
# Together's job states -> the workbench's (validating_files, queued, running, cancelling, succeeded, ...)
STATES = {"pending": "queued", "queued": "queued", "running": "running", "compressing": "running",
          "uploading": "running", "cancel_requested": "cancelling", "cancelled": "cancelled", "error": "failed",
          "user_error": "failed", "completed": "succeeded"}


class TogetherSettings(ServiceSettings):
    base_url: str | None = Field(default_factory=lambda: os.environ.get("TOGETHER_BASE_URL") or DEFAULT_BASE_URL)
    api_key_env: str = "TOGETHER_API_KEY"
    model: str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    lora_rank: Annotated[int, Field(gt=0, le=64)] = 8
    lora_alpha: Annotated[int, Field(gt=0)] | None = None       # Together's default: twice the rank
    n_evals: Annotated[int, Field(ge=0, le=100)] = 1            # dev-loss evaluations (when there is a dev side)



class TogetherFineTuner:
    name = "together"
    label = LABEL
    offline = False

    def __init__(self, settings: TogetherSettings):
        self.settings = settings
        self.model_id = settings.model
        self.api = RestClient(SERVICE, settings, settings.base_url or DEFAULT_BASE_URL)

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        return check_examples(examples, model)

    def _upload(self, name: str, data: bytes) -> str:
        answer = self.api.request("POST", "files/upload", f"uploading {name}", idempotent=True,
                                  files={"file": (name, data, "application/jsonl")},
                                  data={"file_name": name, "purpose": "fine-tune", "file_type": "jsonl"})
        return need(answer, "id", SERVICE, f"uploading {name}")

    def launch(self, job: JobRequest) -> JobStatus:
        """Upload the train side (and dev as the validation file), then create the LoRA job."""
        from ..costs import auto_epochs
        from ..exports import export

        train_id = self._upload("train.jsonl", export(job.train, "openai"))
        valid_id = self._upload("validation.jsonl", export(job.dev, "openai")) if job.dev else None
        hp = {k: v for k, v in job.hyperparameters.items() if v not in (None, "auto")}
        rank = int(hp.get("lora_rank", self.settings.lora_rank))
        body: dict[str, Any] = {
            "model": job.model, "training_file": train_id,
            "n_epochs": int(hp.get("n_epochs", auto_epochs(len(job.train)))),
            "training_type": {"type": "Lora", "lora_r": rank,
                              "lora_alpha": int(hp.get("lora_alpha", self.settings.lora_alpha or 2 * rank)),
                              "lora_dropout": 0.0, "lora_trainable_modules": "all-linear"},
            "training_method": {"method": "sft", "train_on_inputs": False}}
        if valid_id:
            body.update(validation_file=valid_id, n_evals=self.settings.n_evals)
        if "learning_rate" in hp:
            body["learning_rate"] = float(hp["learning_rate"])
        if "batch_size" in hp:
            body["batch_size"] = int(hp["batch_size"])
        if job.suffix:
            body["suffix"] = job.suffix[:40]
        if job.seed is not None:
            body["random_seed"] = job.seed
        # Not retried on a time-out or a 5xx: the job may exist already, and a second one would be billed.
        created = self.api.request("POST", "fine-tunes", "creating the fine-tuning job", json_body=body,
                                   idempotent=False)
        job_id = need(created, "id", SERVICE, "creating the fine-tuning job")
        return JobStatus(job_id, STATES.get(str(created.get("status", "")).lower(), "queued"), events=[
            JobEvent(time.time(), "info", f"uploaded {train_id}" + (f" and {valid_id}" if valid_id else ""),
                     data={"training_file": train_id, "validation_file": valid_id})])

    def status(self, job_id: str) -> JobStatus:
        """State, events (errors come as events) and the loss curve."""
        job = self.api.request("GET", f"fine-tunes/{job_id}", "reading the job status")
        raw = str(need(job, "status", SERVICE, "reading the job status")).lower()
        answer = self.api.request("GET", f"fine-tunes/{job_id}/events", "reading job events", allow=(404,)) or {}
        events = [JobEvent(epoch_seconds(e.get("created_at")), str(e.get("level") or "info").lower(),
                           str(e.get("message") or ""), str(e.get("type") or "") or None)
                  for e in answer.get("data") or [] if isinstance(e, dict)]
        events.sort(key=lambda e: e.created_at)
        errors = [e.message for e in events if e.level == "error" or (e.type or "").lower() in
                  ("job_error", "job_user_error")]
        metrics = self._metrics(job_id) if raw in ("running", "compressing", "uploading", "completed") else []
        state = STATES.get(raw, "running")
        if raw not in STATES:
            events.append(JobEvent(time.time(), "warning", f"Together reported the state '{raw}', read as running"))
        return JobStatus(job_id, state, job.get("model_output_name") or None,
                         job.get("token_count") if isinstance(job.get("token_count"), int) else None,
                         (errors[-1] if errors else f"the job ended with state '{raw}'") if state == "failed" else None,
                         events, metrics)

    def _metrics(self, job_id: str) -> list[dict[str, Any]]:
        answer = self.api.request("GET", f"fine-tunes/{job_id}/metrics", "reading the loss curve", allow=(404,))
        by_step: dict[int, dict[str, Any]] = {}
        for m in (answer or {}).get("metrics") or []:
            if not isinstance(m, dict):
                continue
            step = m.get("train/global_step", m.get("eval/global_step", m.get("global_step")))
            if not isinstance(step, (int, float)):
                continue
            row = by_step.setdefault(int(step), {"step": int(step), "train_loss": None, "valid_loss": None,
                                                 "train_accuracy": None})
            if isinstance(m.get("train/loss"), (int, float)):
                row["train_loss"] = float(m["train/loss"])
            if isinstance(m.get("eval/loss"), (int, float)):
                row["valid_loss"] = float(m["eval/loss"])
        return [by_step[s] for s in sorted(by_step)]

    def cancel(self, job_id: str) -> JobStatus:
        answer = self.api.request("POST", f"fine-tunes/{job_id}/cancel", "cancelling the job", idempotent=True)
        return JobStatus(job_id, STATES.get(str((answer or {}).get("status", "")).lower(), "cancelling"))

    def chat_model(self, fine_tuned_model: str) -> Any:
        """The tuned model through Together's OpenAI-compatible chat endpoint (same base URL and key)."""
        return tuned_chat(self.api.base_url, self.settings, fine_tuned_model, SERVICE)


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("fine_tuner", "together", LABEL, False, lambda s, cfg: TogetherFineTuner(s),
                         TogetherSettings))
