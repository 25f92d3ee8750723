"""Together AI's and Fireworks AI's fine-tuning endpoints for the local test server (standard library only).

Mixed into ``OpenAIServer``, so the same server, key and fault injection (``server.inject``) serve them:

Together (under /v1, as its API is):
- ``POST /files/upload`` (multipart ``file``, ``file_name``, ``purpose``, ``file_type``): Together's file shape.
- ``POST /fine-tunes``, ``GET /fine-tunes``, ``GET /fine-tunes/{id}`` (each GET moves the job on:
  pending -> queued -> running x ``running_steps`` -> uploading -> completed, with ``model_output_name``),
  ``GET /fine-tunes/{id}/events`` (``{"data": [...]}``, ISO times), ``GET /fine-tunes/{id}/metrics``
  (``train/loss``, ``eval/loss`` by ``train/global_step``), ``POST /fine-tunes/{id}/cancel``
  (cancel_requested, then cancelled on the next read).

Fireworks (under /v1/accounts/{account}, account ``server.fireworks_account``):
- ``POST datasets`` (``datasetId``, ``dataset``), ``POST datasets/{id}:upload`` (multipart ``file``),
  ``GET datasets/{id}`` (UPLOADING until uploaded and read once more, then READY).
- ``POST supervisedFineTuningJobs?supervisedFineTuningJobId=ID`` (409 for an id that exists),
  ``GET supervisedFineTuningJobs/{id}`` (CREATING -> PENDING -> RUNNING x ``running_steps`` -> COMPLETED with
  ``outputModel``), ``POST .../{id}:cancel`` (unless ``fireworks_cancel_verb`` is False: then 404, as on a
  server without it) and ``DELETE .../{id}``. Errors are ``{"code", "message"}``.
- Chat for the tuned model: ``POST /inference/v1/chat/completions``.

``server.fail_next_job(message)``: the next job created on either service fails while running, with
``message`` (Together: an error event; Fireworks: ``status.message``).
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

FIREWORKS_ACCOUNT = "test-acct"
_TOGETHER_FINISHED = ("completed", "cancelled", "error", "user_error")
_FIREWORKS_FINISHED = ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def _iso(ts: float | None = None) -> str:
    return dt.datetime.fromtimestamp(ts or time.time(), dt.timezone.utc).isoformat().replace("+00:00", "Z")


class FireworksError(Exception):
    """An error in Fireworks' shape (google.rpc status: numeric code and message)."""

    CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13}

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"code": self.CODES.get(status, 2), "message": message, "details": []}
        self.headers: dict = {}


class HostedFineTuning:
    """The Together and Fireworks routes; state lives on the server (reset with it)."""

    fireworks_account = FIREWORKS_ACCOUNT
    fireworks_cancel_verb = True

    def _hosted_init(self) -> None:
        self.together_jobs: dict[str, dict] = {}
        self.fireworks_datasets: dict[str, dict] = {}
        self.fireworks_jobs: dict[str, dict] = {}
        self._fail_next: str | None = None

    def fail_next_job(self, message: str = "the training data could not be tokenized") -> None:
        self._fail_next = message

    def _take_failure(self) -> str | None:
        message, self._fail_next = self._fail_next, None
        return message

    # -- Together ---------------------------------------------------------------------------------

    def _together_upload(self, raw: bytes, headers: dict) -> dict:
        from openai_server import _APIError, _parse_multipart

        fields = _parse_multipart(raw, headers.get("content-type", ""))
        for name in ("file", "file_name", "purpose"):
            if name not in fields:
                raise _APIError(400, f"missing form field '{name}'", param=name)
        data = fields["file"]["data"]
        problem = self._fine_tune_file_problem(data)
        if problem:
            raise _APIError(400, problem, param="file")
        stored = self._upload(raw, headers.get("content-type", ""))   # kept with the OpenAI-shaped files
        return {"id": stored["id"], "object": "file", "created_at": stored["created_at"],
                "filename": fields["file_name"]["data"].decode(), "bytes": len(data),
                "purpose": fields["purpose"]["data"].decode(), "Processed": True, "FileType": "jsonl",
                "LineCount": len([line for line in data.splitlines() if line.strip()])}

    def _together_route(self, method: str, rest: list[str], body: Any) -> tuple[int, Any, str | None]:
        from openai_server import _APIError

        if method == "POST" and not rest:
            return 200, self._together_create(self._json_object(body)), None
        if method == "GET" and not rest:
            return 200, {"data": [self._together_public(j) for j in self.together_jobs.values()]}, None
        with self._lock:
            job = self.together_jobs.get(rest[0]) if rest else None
            if job is None:
                raise _APIError(404, f"fine-tune job {rest[0] if rest else ''} not found")
            if method == "GET" and len(rest) == 1:
                self._together_advance(job)
                return 200, self._together_public(job), None
            if method == "GET" and rest[1:] == ["events"]:
                return 200, {"data": list(job["events"])}, None
            if method == "GET" and rest[1:] == ["metrics"]:
                return 200, {"metrics": list(job["metrics"])}, None
            if method == "POST" and rest[1:] == ["cancel"]:
                if job["status"] in _TOGETHER_FINISHED:
                    raise _APIError(400, f"job {job['id']} is {job['status']} and cannot be cancelled")
                job["status"] = "cancel_requested"
                self._together_event(job, "cancel requested", "cancel_requested")
                return 200, self._together_public(job), None
        raise _APIError(404, f"Invalid URL ({method} /v1/fine-tunes/{'/'.join(rest)})")

    def _together_create(self, body: dict) -> dict:
        from openai_server import _APIError

        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _APIError(400, "model is required", param="model")
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                raise _APIError(400, f"{key} {body[key]} does not exist", param=key)
        if not body.get("training_file"):
            raise _APIError(400, "training_file is required", param="training_file")
        training_type = body.get("training_type") or {"type": "Lora", "lora_r": 8, "lora_alpha": 16}
        if training_type.get("type") == "Lora" and not all(isinstance(training_type.get(k), int)
                                                           for k in ("lora_r", "lora_alpha")):
            raise _APIError(400, "training_type Lora needs lora_r and lora_alpha", param="training_type")
        epochs = body.get("n_epochs", 1)
        if not isinstance(epochs, int) or not 1 <= epochs <= 20:
            raise _APIError(400, f"n_epochs must be between 1 and 20 (got {epochs!r})", param="n_epochs")
        if body.get("suffix") is not None and len(str(body["suffix"])) > 40:
            raise _APIError(400, "suffix is longer than 40 characters", param="suffix")
        job_id = self._new_id("ft-", 20)
        now = _iso()
        job = {"id": job_id, "status": "pending", "created_at": now, "updated_at": now, "model": body["model"],
               "training_file": body["training_file"], "validation_file": body.get("validation_file"),
               "n_epochs": epochs, "n_evals": body.get("n_evals", 0), "learning_rate": body.get("learning_rate", 1e-5),
               "batch_size": body.get("batch_size", "max"), "training_type": training_type,
               "training_method": body.get("training_method"), "suffix": body.get("suffix"),
               "model_output_name": None, "token_count": None, "events": [], "metrics": [], "step": 0,
               "fail": self._take_failure()}
        with self._lock:
            self.together_jobs[job_id] = job
            self._together_event(job, "Fine tune request created", "job_pending")
        return self._together_public(job)

    def _together_advance(self, job: dict) -> None:
        status = job["status"]
        job["updated_at"] = _iso()
        if status == "pending":
            job["status"] = "queued"
        elif status == "queued":
            job["status"] = "running"
            self._together_event(job, "Training started", "training_start")
        elif status == "running":
            if job["fail"]:
                job["status"] = "error"
                self._together_event(job, job["fail"], "job_error", level="error")
            elif job["step"] < max(1, self.running_steps):
                job["step"] += 1
                loss = round(2.0 * 0.7 ** job["step"], 4)
                job["metrics"].append({"train/loss": loss, "train/learning_rate": 1e-4,
                                       "train/global_step": job["step"]})
                if job["validation_file"]:
                    job["metrics"].append({"eval/loss": round(loss * 1.1 + 0.05, 4), "eval/global_step": job["step"]})
                self._together_event(job, f"Epoch completed, at step {job['step']}", "epoch_complete")
            else:
                job["status"] = "uploading"
                self._together_event(job, "Uploading model", "model_uploading")
        elif status == "uploading":
            job["status"] = "completed"
            job["model_output_name"] = f"test-org/{job['model'].split('/')[-1]}-{job['suffix'] or 'ft'}-{job['id'][-6:]}"
            stored = self.files.get(job["training_file"])
            job["token_count"] = len(stored["data"].split()) * job["n_epochs"] if stored else 0
            self._together_event(job, "Job finished", "job_complete")
        elif status == "cancel_requested":
            job["status"] = "cancelled"
            self._together_event(job, "Job cancelled", "job_stopped")

    def _together_event(self, job: dict, message: str, type_: str, level: str = "info") -> None:
        job["events"].append({"object": "fine-tune-event", "created_at": _iso(), "level": level,
                              "message": message, "type": type_})

    @staticmethod
    def _together_public(job: dict) -> dict:
        return {k: v for k, v in job.items() if k not in ("events", "metrics", "step", "fail")}

    # -- Fireworks --------------------------------------------------------------------------------

    def _fireworks_route(self, method: str, parts: list[str], body: Any, raw: bytes, headers: dict,
                         q: dict[str, str]) -> tuple[int, Any, str | None]:
        """``parts`` after accounts/{account}: e.g. ["datasets", "d:upload"]."""
        if not parts:
            raise FireworksError(404, "not found")
        kind, rest = parts[0], parts[1:]
        with self._lock:
            if kind == "datasets":
                return 200, self._fireworks_dataset(method, rest, body, raw, headers), None
            if kind == "supervisedFineTuningJobs":
                return 200, self._fireworks_job(method, rest, body, q), None
        raise FireworksError(404, f"no such resource collection '{kind}'")

    def _fireworks_dataset(self, method: str, rest: list[str], body: Any, raw: bytes, headers: dict) -> dict:
        from openai_server import _parse_multipart

        if method == "POST" and not rest:
            body = body if isinstance(body, dict) else {}
            ds_id, spec = body.get("datasetId"), body.get("dataset")
            if not isinstance(ds_id, str) or not isinstance(spec, dict):
                raise FireworksError(400, "datasetId and dataset are required")
            if ds_id in self.fireworks_datasets:
                raise FireworksError(409, f"dataset {ds_id} already exists")
            self.fireworks_datasets[ds_id] = {"name": f"accounts/{self.fireworks_account}/datasets/{ds_id}",
                                              "state": "UPLOADING", "exampleCount": spec.get("exampleCount"),
                                              "format": spec.get("format"), "createTime": _iso(),
                                              "uploaded": False, "reads": 0}
            return self._fireworks_public(self.fireworks_datasets[ds_id])
        if not rest:
            raise FireworksError(404, "not found")
        ds_id, _, verb = rest[0].partition(":")
        dataset = self.fireworks_datasets.get(ds_id)
        if dataset is None:
            raise FireworksError(404, f"dataset {ds_id} not found")
        if method == "POST" and verb == "upload":
            upload = _parse_multipart(raw, headers.get("content-type", "")).get("file")
            if upload is None:
                raise FireworksError(400, "missing form field 'file'")
            problem = self._fine_tune_file_problem(upload["data"])
            if problem:
                raise FireworksError(400, problem)
            dataset["uploaded"] = True
            dataset["data"] = upload["data"]
            return {"filename": upload["filename"], "bytes": len(upload["data"])}
        if method == "GET" and not verb:
            if dataset["uploaded"]:
                dataset["reads"] += 1
                if dataset["reads"] >= 1:
                    dataset["state"] = "READY"
            return self._fireworks_public(dataset)
        raise FireworksError(404, f"no route {method} datasets/{rest[0]}")

    def _fireworks_job(self, method: str, rest: list[str], body: Any, q: dict[str, str]) -> dict:
        prefix = f"accounts/{self.fireworks_account}"
        if method == "POST" and not rest:
            body = body if isinstance(body, dict) else {}
            job_id = q.get("supervisedFineTuningJobId") or self._new_id("j", 12)
            if job_id in self.fireworks_jobs:
                raise FireworksError(409, f"supervisedFineTuningJob {job_id} already exists")
            dataset = str(body.get("dataset") or "")
            ds = self.fireworks_datasets.get(dataset.rsplit("/", 1)[-1])
            if ds is None or ds["state"] != "READY":
                raise FireworksError(400, f"dataset '{dataset}' does not exist or is not READY")
            if not body.get("baseModel"):
                raise FireworksError(400, "baseModel is required")
            now = _iso()
            job = {"name": f"{prefix}/supervisedFineTuningJobs/{job_id}", "state": "JOB_STATE_CREATING",
                   "dataset": dataset, "evaluationDataset": body.get("evaluationDataset"),
                   "baseModel": body["baseModel"], "epochs": body.get("epochs", 1),
                   "loraRank": body.get("loraRank", 8), "learningRate": body.get("learningRate"),
                   "displayName": body.get("displayName"),
                   "outputModel": body.get("outputModel") or f"{prefix}/models/{job_id}",
                   "createTime": now, "updateTime": now, "status": {"code": "OK", "message": ""},
                   "step": 0, "fail": self._take_failure()}
            self.fireworks_jobs[job_id] = job
            return self._fireworks_public(job)
        if not rest:
            raise FireworksError(404, "not found")
        job_id, _, verb = rest[0].partition(":")
        job = self.fireworks_jobs.get(job_id)
        if job is None:
            raise FireworksError(404, f"supervisedFineTuningJob {job_id} not found")
        if method == "GET" and not verb:
            self._fireworks_advance(job)
            return self._fireworks_public(job)
        if method == "POST" and verb == "cancel" and self.fireworks_cancel_verb:
            if job["state"] in _FIREWORKS_FINISHED:
                raise FireworksError(400, f"job {job_id} is {job['state']}")
            job["state"] = "JOB_STATE_CANCELLING"
            return {}
        if method == "DELETE" and not verb:
            job["state"] = "JOB_STATE_CANCELLED" if job["state"] not in _FIREWORKS_FINISHED else job["state"]
            return {}
        raise FireworksError(404, f"no route {method} supervisedFineTuningJobs/{rest[0]}")

    def _fireworks_advance(self, job: dict) -> None:
        state = job["state"]
        job["updateTime"] = _iso()
        if state == "JOB_STATE_CREATING":
            job["state"] = "JOB_STATE_PENDING"
        elif state == "JOB_STATE_PENDING":
            job["state"] = "JOB_STATE_RUNNING"
        elif state == "JOB_STATE_RUNNING":
            if job["fail"]:
                job["state"] = "JOB_STATE_FAILED"
                job["status"] = {"code": "INVALID_ARGUMENT", "message": job["fail"]}
            elif job["step"] < max(1, self.running_steps):
                job["step"] += 1
                job["jobProgress"] = {"percent": round(100 * job["step"] / (max(1, self.running_steps) + 1)),
                                      "epoch": job["step"]}
            else:
                job["state"] = "JOB_STATE_COMPLETED"
                job["jobProgress"] = {"percent": 100, "epoch": job["epochs"]}
                job["completedTime"] = _iso()
        elif state == "JOB_STATE_CANCELLING":
            job["state"] = "JOB_STATE_CANCELLED"

    @staticmethod
    def _fireworks_public(item: dict) -> dict:
        out = {k: v for k, v in item.items() if k not in ("step", "fail", "uploaded", "reads", "data")}
        if out.get("state") != "JOB_STATE_COMPLETED" and "supervisedFineTuningJobs" in out.get("name", ""):
            out.pop("outputModel", None)   # set on completion
        return out
