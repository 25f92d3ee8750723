"""Supervised (LoRA) fine-tuning jobs on Fireworks AI over its REST API (no SDK); the tuned model answers
through Fireworks' OpenAI-compatible inference endpoint.

Every path is under the account (`accounts/{account_id}/...`): a dataset is created, its JSONL uploaded
(`datasets/{id}:upload`) and waited for until READY, then `supervisedFineTuningJobs` creates the job with an
id chosen here (so a retried create cannot make a second job). Fireworks reports state and progress (percent,
epoch) but no per-step loss over this API. A LoRA on Fireworks is served from an on-demand deployment:
deploy the job's output model before Compare asks it questions.
"""
from __future__ import annotations

import os
import time
import uuid
from typing import Annotated, Any

from pydantic import Field

from ..errors import WorkbenchError
from .protocols import JobEvent, JobRequest, JobStatus
from .rest import RestClient, ServiceSettings, check_examples, epoch_seconds, need, tuned_chat

DEFAULT_BASE_URL = "https://api.fireworks.ai/v1"
DEFAULT_INFERENCE_URL = "https://api.fireworks.ai/inference/v1"
LABEL = "Fireworks AI fine-tuning jobs (LoRA)"
SERVICE = "Fireworks AI"
_QUEUED = ("UNSPECIFIED", "CREATING", "PENDING", "VALIDATING", "CREATING_INPUT_DATASET", "RE_QUEUEING", "IDLE")
_RUNNING = ("RUNNING", "WRITING_RESULTS", "EVALUATION", "ROLLOUT", "POLICY_UPDATE")
STATES = {**{s: "queued" for s in _QUEUED}, **{s: "running" for s in _RUNNING},
          "CANCELLING": "cancelling", "DELETING": "cancelling", "DELETING_CLEANING_UP": "cancelling",
          "PAUSED": "paused", "COMPLETED": "succeeded", "EARLY_STOPPED": "succeeded", "FAILED": "failed",
          "FAILED_CLEANING_UP": "failed", "EXPIRED": "failed", "CANCELLED": "cancelled"}


class FireworksSettings(ServiceSettings):
    base_url: str | None = Field(default_factory=lambda: os.environ.get("FIREWORKS_BASE_URL") or DEFAULT_BASE_URL)
    inference_url: str = Field(default_factory=lambda: os.environ.get("FIREWORKS_INFERENCE_URL")
                               or DEFAULT_INFERENCE_URL)
    account_id: str | None = Field(default_factory=lambda: os.environ.get("FIREWORKS_ACCOUNT_ID"))
    api_key_env: str = "FIREWORKS_API_KEY"
    model: str = "accounts/fireworks/models/llama-v3p1-8b-instruct"
    lora_rank: Annotated[int, Field(gt=0, le=64)] = 8
    dataset_wait_s: Annotated[float, Field(gt=0, le=3600)] = 300     # how long an upload may take to become READY
    poll_s: Annotated[float, Field(gt=0, le=60)] = 2


def _state(job: dict[str, Any]) -> str:
    return str(job.get("state") or "JOB_STATE_UNSPECIFIED").removeprefix("JOB_STATE_")



class FireworksFineTuner:
    name = "fireworks"
    label = LABEL
    offline = False

    def __init__(self, settings: FireworksSettings):
        self.settings = settings
        self.model_id = settings.model
        self.api = RestClient(SERVICE, settings, settings.base_url or DEFAULT_BASE_URL)

    @property
    def account(self) -> str:
        if not self.settings.account_id:
            raise WorkbenchError("Fireworks needs the account id: set FIREWORKS_ACCOUNT_ID, or `account_id` under "
                                 "fine_tuner in configs/providers.yaml", field="fine_tuner.account_id")
        return f"accounts/{self.settings.account_id}"

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        return check_examples(examples, model)

    def _dataset(self, dataset_id: str, examples: list[dict[str, Any]], name: str) -> str:
        """Create a dataset, upload its JSONL and wait until Fireworks has it READY; its full name."""
        from ..exports import export

        what = f"uploading {name}"
        self.api.request("POST", f"{self.account}/datasets", what, idempotent=True, allow=(409,), json_body={
            "datasetId": dataset_id,
            "dataset": {"userUploaded": {}, "format": "CHAT", "exampleCount": str(len(examples))}})
        full = f"{self.account}/datasets/{dataset_id}"
        self.api.request("POST", f"{full}:upload", what, idempotent=True,
                         files={"file": (name, export(examples, "openai"), "application/jsonl")})
        deadline = time.monotonic() + self.settings.dataset_wait_s
        while True:
            answer = self.api.request("GET", full, f"waiting for {name}")
            state = str((answer or {}).get("state") or "STATE_UNSPECIFIED")
            if state == "READY":
                return full
            if state not in ("UPLOADING", "STATE_UNSPECIFIED"):
                message = ((answer or {}).get("status") or {}).get("message") or state
                raise self.api._error(f"Fireworks AI did not accept {name}: {message}")
            if time.monotonic() > deadline:
                raise WorkbenchError(f"Fireworks AI had not finished processing {name} after "
                                     f"{self.settings.dataset_wait_s:g} s; try again later")
            time.sleep(self.settings.poll_s)

    def launch(self, job: JobRequest) -> JobStatus:
        """Upload the train side (and dev as the evaluation dataset), then create the job."""
        from ..costs import auto_epochs

        tag = uuid.uuid4().hex[:10]
        train = self._dataset(f"wb-{tag}-train", job.train, "train.jsonl")
        dev = self._dataset(f"wb-{tag}-dev", job.dev, "validation.jsonl") if job.dev else None
        hp = {k: v for k, v in job.hyperparameters.items() if v not in (None, "auto")}
        job_id = f"wb-{tag}"
        body: dict[str, Any] = {"dataset": train, "baseModel": job.model,
                                "epochs": int(hp.get("n_epochs", auto_epochs(len(job.train)))),
                                "loraRank": int(hp.get("lora_rank", self.settings.lora_rank)),
                                "displayName": (job.suffix or "workbench")[:60]}
        if dev:
            body["evaluationDataset"] = dev
        if "learning_rate" in hp:
            body["learningRate"] = float(hp["learning_rate"])
        if "batch_size" in hp:
            body["batchSizeSamples"] = int(hp["batch_size"])
        if job.suffix:
            body["outputModel"] = f"{self.account}/models/{job.suffix.lower()[:40].strip('-')}-{tag}"
        # The id is ours, so a retried create finds the job (409) rather than making a second one.
        created = self.api.request("POST", f"{self.account}/supervisedFineTuningJobs", "creating the fine-tuning job",
                                   params={"supervisedFineTuningJobId": job_id}, json_body=body, idempotent=True,
                                   allow=(409,))
        state = STATES.get(_state(created), "queued") if created else "queued"
        return JobStatus(job_id, state, events=[
            JobEvent(time.time(), "info", f"uploaded {train}" + (f" and {dev}" if dev else ""),
                     data={"training_file": train, "validation_file": dev})])

    def status(self, job_id: str) -> JobStatus:
        job = self.api.request("GET", f"{self.account}/supervisedFineTuningJobs/{job_id}", "reading the job status")
        need(job, "state", SERVICE, "reading the job status")
        raw = _state(job)
        state = STATES.get(raw, "running")
        progress = job.get("jobProgress") if isinstance(job.get("jobProgress"), dict) else {}
        detail = ", ".join(f"{k} {progress[k]}" for k in ("percent", "epoch") if progress.get(k) is not None)
        message = (job.get("status") or {}).get("message") if isinstance(job.get("status"), dict) else None
        events = [JobEvent(epoch_seconds(job.get("createTime")), "info", "job created")]
        events.append(JobEvent(epoch_seconds(job.get("updateTime")), "error" if state == "failed" else "info",
                               f"state {raw.lower()}" + (f" ({detail})" if detail else "")
                               + (f": {message}" if message and state == "failed" else "")))
        if raw not in STATES:
            events.append(JobEvent(time.time(), "warning", f"Fireworks reported the state '{raw}', read as running"))
        return JobStatus(job_id, state, job.get("outputModel") if state == "succeeded" else None,
                         None, (message or f"the job ended with state {raw}") if state == "failed" else None, events)

    def cancel(self, job_id: str) -> JobStatus:
        """`:cancel`, or DELETE (which the API documents) where the server has no cancel verb."""
        path = f"{self.account}/supervisedFineTuningJobs/{job_id}"
        if self.api.request("POST", f"{path}:cancel", "cancelling the job", idempotent=True, allow=(404,)) is None:
            self.api.request("DELETE", path, "cancelling the job")
            return JobStatus(job_id, "cancelled")   # a deleted job may no longer be readable
        return self.status(job_id)

    def chat_model(self, fine_tuned_model: str) -> Any:
        """The tuned model (accounts/.../models/...) through the OpenAI-compatible inference endpoint."""
        return tuned_chat(self.settings.inference_url, self.settings, fine_tuned_model, SERVICE)


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("fine_tuner", "fireworks", LABEL, False, lambda s, cfg: FireworksFineTuner(s),
                         FireworksSettings))
