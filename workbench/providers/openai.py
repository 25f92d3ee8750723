"""OpenAI-compatible backends (OpenAI, Azure OpenAI, Ollama, vLLM, LM Studio, llama.cpp server) via the openai SDK.

The key is read from the environment variable named in configs/providers.yaml and never stored.
Every client has an explicit timeout and a bounded number of retries (the SDK backs off on 429 and 5xx
and honours retry-after), so a silent server cannot hang the app.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import WorkbenchError
from . import ChatResult, OpenAISettings

DUMMY_KEY_FOR_LOCAL = "not-needed"


def make_client(settings: OpenAISettings) -> Any:
    import openai

    key = os.environ.get(settings.api_key_env)
    if not key:
        if settings.base_url and any(h in settings.base_url for h in ("127.0.0.1", "localhost", "[::1]")):
            key = DUMMY_KEY_FOR_LOCAL  # local servers need no key, but the SDK insists on one
        else:
            raise WorkbenchError(f"no API key: set the environment variable {settings.api_key_env} "
                                 "(keys are never read from or written to files)", field="openai.api_key_env")
    return openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout_s,
                         max_retries=settings.max_retries)


def explain(exc: Exception, what: str) -> WorkbenchError:
    """A provider failure as a message a user can act on (no key or request body in it)."""
    import openai

    where = "the OpenAI-compatible server"
    if isinstance(exc, openai.AuthenticationError):
        msg = f"{where} refused the API key (401) while {what}; check the key in the environment"
    elif isinstance(exc, openai.PermissionDeniedError):
        msg = f"{where} denied access (403) while {what}"
    elif isinstance(exc, openai.RateLimitError):
        msg = f"{where} is rate limiting or out of quota (429) while {what}; retried and gave up, try again later"
    elif isinstance(exc, openai.NotFoundError):
        msg = f"{where} does not know the model or endpoint (404) while {what}"
    elif isinstance(exc, openai.BadRequestError):
        msg = f"{where} rejected the request (400) while {what}: {getattr(exc, 'message', exc)}"
    elif isinstance(exc, openai.InternalServerError):
        msg = f"{where} failed ({getattr(exc, 'status_code', '5xx')}) while {what}; retried and gave up"
    elif isinstance(exc, openai.APITimeoutError):
        msg = f"{where} did not answer in time while {what}; retried and gave up"
    elif isinstance(exc, openai.APIConnectionError):
        msg = f"could not connect to {where} while {what} (connection refused or dropped)"
    elif isinstance(exc, openai.APIStatusError):
        msg = f"{where} answered {exc.status_code} while {what}"
    else:
        msg = f"{where} sent an answer that could not be read while {what} ({type(exc).__name__})"
    return WorkbenchError(msg)


class _Backend:
    """A model behind an OpenAI-compatible server; the client is made on first use."""

    name = "openai"
    offline = False

    def __init__(self, settings: OpenAISettings, model: str):
        self.settings = settings
        self.model_id = model
        self.label = f"{model} (OpenAI-compatible)"
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client


class OpenAIEmbedder(_Backend):
    """Embeddings from /v1/embeddings, in batches, with token usage recorded."""

    def __init__(self, settings: OpenAISettings, model: str, batch_size: int = 128, dimensions: int | None = None):
        super().__init__(settings, model)
        self.batch_size = batch_size
        self.requested_dimensions = dimensions
        self.dimensions = dimensions or 0
        self.usage_tokens = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            kwargs: dict[str, Any] = {"model": self.model_id, "input": batch, "encoding_format": "float"}
            if self.requested_dimensions:
                kwargs["dimensions"] = self.requested_dimensions
            try:
                resp = self.client.embeddings.create(**kwargs)
                data = sorted(resp.data, key=lambda d: d.index)
                vectors = [list(d.embedding) for d in data]
            except openai.OpenAIError as exc:
                raise explain(exc, "embedding") from None
            except (AttributeError, TypeError, ValueError) as exc:
                raise explain(exc, "embedding") from None
            if len(vectors) != len(batch):
                raise WorkbenchError(f"the embeddings server returned {len(vectors)} vectors for {len(batch)} texts")
            rows.extend(vectors)
            usage = getattr(resp, "usage", None)
            self.usage_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        out = np.asarray(rows, dtype=np.float32)
        self.dimensions = out.shape[1]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class OpenAIChat(_Backend):
    """A chat model behind /v1/chat/completions."""

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512) -> ChatResult:
        import openai

        try:
            resp = self.client.chat.completions.create(model=self.model_id, messages=messages,
                                                       max_tokens=max_tokens, temperature=0)
            text = resp.choices[0].message.content or ""
            usage = resp.usage
            return ChatResult(text=text, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                              completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                              model=getattr(resp, "model", None) or self.model_id)
        except openai.OpenAIError as exc:
            raise explain(exc, "answering") from None
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise explain(exc, "answering") from None


TERMINAL_STATES = ("succeeded", "failed", "cancelled")


class OpenAIFineTuner(_Backend):
    """Fine-tuning jobs through the jobs API (OpenAI, or Azure OpenAI with base_url)."""

    def __init__(self, settings: OpenAISettings, model: str = "gpt-4o-mini-2024-07-18"):
        super().__init__(settings, model)
        self.label = "OpenAI fine-tuning jobs"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.OpenAIError as exc:
            raise explain(exc, what) from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise explain(exc, what) from None

    def upload(self, name: str, data: bytes) -> str:
        f = self._call("uploading the training file", self.client.files.create, file=(name, data),
                       purpose="fine-tune")
        return f.id

    def create(self, model: str, training_file: str, validation_file: str | None, hyperparameters: dict[str, Any],
               suffix: str | None = None, seed: int | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "training_file": training_file}
        if validation_file:
            kwargs["validation_file"] = validation_file
        hp = {k: v for k, v in hyperparameters.items() if v not in (None, "auto")}
        if hp:
            kwargs["method"] = {"type": "supervised", "supervised": {"hyperparameters": hp}}
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        job = self._call("creating the fine-tuning job", self.client.fine_tuning.jobs.create, **kwargs)
        return self._job(job)

    @staticmethod
    def _job(job: Any) -> dict[str, Any]:
        error = getattr(job, "error", None)
        message = getattr(error, "message", None) if error else None
        return {"id": job.id, "state": job.status, "fine_tuned_model": job.fine_tuned_model,
                "trained_tokens": job.trained_tokens, "error": message}

    def retrieve(self, job_id: str) -> dict[str, Any]:
        return self._job(self._call("reading the job status", self.client.fine_tuning.jobs.retrieve, job_id))

    def events(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        page = self._call("reading job events", self.client.fine_tuning.jobs.list_events, job_id, limit=limit)
        return [{"created_at": e.created_at, "level": e.level, "message": e.message,
                 "type": getattr(e, "type", None), "data": getattr(e, "data", None)} for e in page.data]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        page = self._call("reading checkpoints", self.client.fine_tuning.jobs.checkpoints.list, job_id)
        out = []
        for c in page.data:
            metrics = c.metrics.model_dump() if getattr(c, "metrics", None) is not None else {}
            out.append({"step": c.step_number, "model": c.fine_tuned_model_checkpoint, **metrics})
        return sorted(out, key=lambda r: r["step"])

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._job(self._call("cancelling the job", self.client.fine_tuning.jobs.cancel, job_id))
