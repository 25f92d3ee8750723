"""OpenAI-compatible backends (OpenAI, Azure OpenAI, Ollama, vLLM, LM Studio, llama.cpp server) via the openai SDK.

The key is read from the environment variable named in configs/providers.yaml and never stored, and it
is redacted (with anything shaped like a key) from every message built from a provider's answer.

Every request attempt has a total deadline of `timeout_s`: connecting, sending and reading the whole
answer must all end by then. The SDK's own timeout is per socket read, so a server that trickles a byte
every few seconds could hold a request open indefinitely; here each socket operation waits at most until
the attempt's deadline, then the attempt fails as a timeout and its connection is closed. The SDK retries a
failed attempt at most `max_retries` times, each with a fresh deadline, sleeping between attempts (0.5 s
doubling up to 8 s, or a server's retry-after up to 2 minutes), so a call ends within
(1 + max_retries) x timeout_s plus those sleeps. Answers are checked before use: vectors for shape and
finite values, chat replies for content, token usage for plausibility.
"""
from __future__ import annotations

import math
import os
import re
import time
import weakref
from typing import TYPE_CHECKING, Annotated, Any, Callable

from .. import tokens
from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .protocols import ChatResult, Grounding, JobEvent, JobRequest, JobStatus

if TYPE_CHECKING:
    import numpy as np

    from . import OpenAISettings

DUMMY_KEY_FOR_LOCAL = "not-needed"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


# --- keys never leave in a message --------------------------------------------------------------------

_KEY_SHAPES = [
    (re.compile(r"\b(Bearer|Basic)\s+(?!\[redacted\])[^\s'\",;)}\]]+", re.IGNORECASE), r"\1 [redacted]"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), "[redacted]"),
    (re.compile(r"\bAIza[A-Za-z0-9_\-]{30,}"), "[redacted]"),
    # a long hex/base64-like token (with a digit) after a word such as key, token, secret or password
    (re.compile(r"(?i)\b((?:api[_-]?)?key|token|secret|password|authorization)(\W{1,4}(?:is\s+|was\s+)?)"
                r"(?=[A-Za-z0-9+/_.=\-]*\d)[A-Za-z0-9+/_.=\-]{16,}"), r"\1\2[redacted]"),
]
_MIN_SECRET = 6   # shorter configured values would redact ordinary words


def redact(text: str, settings: OpenAISettings | None = None) -> str:
    """`text` without the configured key (the value of its environment variable) or anything shaped like a key."""
    text = str(text)
    key = os.environ.get(settings.api_key_env) if settings is not None else None
    if key and len(key) >= _MIN_SECRET and key != DUMMY_KEY_FOR_LOCAL:
        text = text.replace(key, "[redacted]")
    for pattern, replacement in _KEY_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def make_client(settings: OpenAISettings) -> Any:
    import httpx2
    import openai

    from .transport import DeadlineTransport, proxy_for

    key = os.environ.get(settings.api_key_env)
    if not key:
        if settings.base_url and any(h in settings.base_url for h in ("127.0.0.1", "localhost", "[::1]")):
            key = DUMMY_KEY_FOR_LOCAL  # local servers need no key, but the SDK insists on one
        else:
            raise WorkbenchError(f"no API key: set the environment variable {settings.api_key_env} "
                                 "(keys are never read from or written to files)", field="openai.api_key_env")
    base = settings.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    http_client = openai.DefaultHttpx2Client(
        timeout=httpx2.Timeout(settings.timeout_s),
        transport=DeadlineTransport(settings.timeout_s, proxy=proxy_for(base)))
    client = openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout_s,
                           max_retries=settings.max_retries, http_client=http_client)
    weakref.finalize(client, http_client.close)  # the SDK closes only the clients it made itself
    return client


def explain(exc: Exception, what: str, settings: OpenAISettings | None = None) -> WorkbenchError:
    """A provider failure as a message a user can act on (no key or request body in it)."""
    import openai

    where = "the OpenAI-compatible server"
    gave_up = "; gave up (retries are off)" if settings is not None and settings.max_retries == 0 \
        else "; retried and gave up"
    if isinstance(exc, openai.AuthenticationError):
        msg = f"{where} refused the API key (401) while {what}; check the key in the environment"
    elif isinstance(exc, openai.PermissionDeniedError):
        msg = f"{where} denied access (403) while {what}"
    elif isinstance(exc, openai.RateLimitError):
        msg = f"{where} is rate limiting or out of quota (429) while {what}{gave_up}, try again later"
    elif isinstance(exc, openai.NotFoundError):
        msg = f"{where} does not know the model or endpoint (404) while {what}"
    elif isinstance(exc, openai.BadRequestError):
        msg = f"{where} rejected the request (400) while {what}: {getattr(exc, 'message', exc)}"
    elif isinstance(exc, openai.InternalServerError):
        msg = f"{where} failed ({getattr(exc, 'status_code', '5xx')}) while {what}{gave_up}"
    elif isinstance(exc, openai.APITimeoutError):
        limit = f" ({settings.timeout_s:g} s)" if settings is not None else ""
        msg = f"{where} did not answer in time{limit} while {what}{gave_up}"
    elif isinstance(exc, openai.APIConnectionError):
        msg = f"could not connect to {where} while {what} (connection refused or dropped)"
    elif isinstance(exc, openai.APIStatusError):
        msg = f"{where} answered {exc.status_code} while {what}"
    else:
        msg = f"{where} sent an answer that could not be read while {what} ({type(exc).__name__})"
    return WorkbenchError(redact(msg, settings))


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

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.OpenAIError as exc:
            raise explain(exc, what, self.settings) from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise explain(exc, what, self.settings) from None

    def _error(self, message: str) -> WorkbenchError:
        return WorkbenchError(redact(f"{self.label} {message}", self.settings))

    def _token_count(self, reported: Any, own: int, what: str, notes: list[str], ceiling: int | None = None) -> int:
        """The server's token count if it is plausible, else our own tiktoken count (with a note saying so).

        Plausible: a non-negative whole number, at most `ceiling` (by default 10x our count plus 100) and
        not below a tenth of our count minus 10.
        """
        if reported is None:
            notes.append(f"{self.label} reported no {what}; counted {own:,} with tiktoken instead")
            return own
        number = reported if isinstance(reported, (int, float)) and not isinstance(reported, bool) else None
        if number is None or not math.isfinite(number) or number < 0 or number != int(number):
            notes.append(redact(f"{self.label} reported {reported!r} {what}, which is not a token count; "
                                f"counted {own:,} with tiktoken instead", self.settings))
            return own
        ceiling = 10 * own + 100 if ceiling is None else ceiling
        if number > max(ceiling, own) or 10 * number + 100 < own:
            shown = f"{number:,.0f}" if number < 1e12 else f"{number:.3g}"
            notes.append(f"{self.label} reported {shown} {what}, which the request could not hold "
                         f"(plausible: up to {max(ceiling, own):,}); counted {own:,} with tiktoken instead")
            return own
        return int(number)


class OpenAIEmbedder(_Backend):
    """Embeddings from /v1/embeddings, in batches, checked for shape and finite values, with token usage recorded."""

    def __init__(self, settings: OpenAISettings, model: str, batch_size: int = 128, dimensions: int | None = None):
        super().__init__(settings, model)
        self.batch_size = batch_size
        self.requested_dimensions = dimensions
        self.dimensions = dimensions or 0
        self.usage_tokens = 0
        self.usage_note: str | None = None   # set when the server's token usage was replaced by our own count

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            kwargs: dict[str, Any] = {"model": self.model_id, "input": batch, "encoding_format": "float"}
            if self.requested_dimensions:
                kwargs["dimensions"] = self.requested_dimensions
            resp = self._call("embedding", self.client.embeddings.create, **kwargs)
            rows.append(self._vectors(resp, len(batch), rows[0].shape[1] if rows else None))
            own, notes = sum(tokens.count_many(batch, self.model_id)), []
            self.usage_tokens += self._token_count(getattr(getattr(resp, "usage", None), "prompt_tokens", None),
                                                   own, "prompt tokens", notes)
            self.usage_note = notes[-1] if notes else self.usage_note
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        out = np.concatenate(rows)
        self.dimensions = out.shape[1]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def _vectors(self, resp: Any, count: int, earlier: int | None) -> np.ndarray:
        """The answer's vectors in input order, refused unless there is one per text, all of one length (the
        one asked for, or that of the earlier batches of this call), all finite and none all-zero.

        Whether that length is the index's is for the index to check (`index.check_vectors`)."""
        import numpy as np

        data = getattr(resp, "data", None)
        if not isinstance(data, list):
            raise self._error("sent an answer without a list of vectors while embedding")
        if len(data) != count:
            raise self._error(f"returned {len(data)} vectors for {count} texts while embedding")
        try:
            data = sorted(data, key=lambda d: d.index)
        except (AttributeError, TypeError):
            raise self._error("sent vectors without a valid index while embedding") from None
        vectors = []
        for n, item in enumerate(data, 1):
            values = getattr(item, "embedding", None)
            if not isinstance(values, list) or not values or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise self._error(f"returned a vector that is not a list of numbers (text {n} of {count}) "
                                  "while embedding")
            vectors.append(values)
        sizes = [len(v) for v in vectors]
        expected, whose = (self.requested_dimensions, "were requested") if self.requested_dimensions else \
            (earlier, "the earlier vectors of this request have")
        usual = expected or max(sizes, key=sizes.count)
        if not expected and len(set(sizes)) > 1 and sizes.count(usual) * 2 <= len(sizes):  # no majority to go by
            raise self._error(f"returned vectors of different lengths in one answer "
                              f"({' and '.join(str(n) for n in sorted(set(sizes)))} dimensions) while embedding")
        odd = next((n for n, size in enumerate(sizes, 1) if size != usual), None)
        if odd is not None:
            where = f"{whose} {usual}" if expected else f"the other vectors of the answer have {usual}"
            raise self._error(f"returned a vector of {sizes[odd - 1]} dimensions (text {odd} of {count}) where "
                              f"{where}; refusing the whole answer")
        with np.errstate(over="ignore"):
            matrix = np.asarray(vectors, dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if bad.size:
            raise self._error(f"returned a vector with NaN or infinite values (text {bad[0] + 1} of {count}) "
                              "while embedding")
        zero = np.flatnonzero(~matrix.any(axis=1))
        if zero.size:
            raise self._error(f"returned an all-zero vector (text {zero[0] + 1} of {count}) while embedding")
        return matrix


class OpenAIChat(_Backend):
    """A chat model behind /v1/chat/completions; refuses empty answers and replaces implausible token usage."""

    generative = True

    def __init__(self, settings: OpenAISettings, model: str):
        super().__init__(settings, model)
        self._window: int | None | bool = False

    def context_window(self) -> int | None:
        """The model's context window from the price list, if it knows the model."""
        if self._window is False:
            from ..pricing import load_pricing

            try:
                self._window = load_pricing().model(self.model_id).context_window
            except WorkbenchError:
                self._window = None
        return self._window  # type: ignore[return-value]

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512, grounding: Grounding | None = None, *,
                 schema: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> ChatResult:
        extra: dict[str, Any] = {}
        if schema is not None:   # structured outputs; servers without them ignore it and the caller's parser decides
            extra["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "reply", "schema": schema, "strict": True}}
        resp = self._call("answering", self.client.chat.completions.create, model=self.model_id, messages=messages,
                          max_tokens=max_tokens, temperature=0, **extra)
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise self._error("returned no answer (no choices) while answering")
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, list):  # content parts, as some servers send
            content = "".join(str(p.get("text") or "") if isinstance(p, dict) else str(getattr(p, "text", None) or "")
                              for p in content)
        if not isinstance(content, str) or not content.strip():
            finish = getattr(choices[0], "finish_reason", None)
            refusal = getattr(message, "refusal", None)
            kind = "null" if content is None else "empty" if isinstance(content, str) else "unreadable"
            raise self._error(f"returned an empty answer ({kind} message content"
                              + (f", finish reason '{finish}'" if isinstance(finish, str) else "") + ") while answering"
                              + (f"; it refused: {refusal}" if isinstance(refusal, str) and refusal else ""))
        usage = getattr(resp, "usage", None)
        notes: list[str] = []
        own_prompt = tokens.count_messages(messages, self.model_id)
        own_completion = tokens.count(content, self.model_id)
        window = self.context_window()
        prompt_ceiling = 10 * own_prompt + 100 if window is None else min(10 * own_prompt + 100, window)
        prompt_tokens = self._token_count(getattr(usage, "prompt_tokens", None), own_prompt, "prompt tokens", notes,
                                          prompt_ceiling)
        # reasoning models count hidden tokens as completion tokens: anything up to max_tokens is plausible
        completion_tokens = self._token_count(getattr(usage, "completion_tokens", None), own_completion,
                                              "completion tokens", notes, max(max_tokens, 10 * own_completion + 100))
        model = getattr(resp, "model", None)
        if on_token is not None:
            on_token(content)
        return ChatResult(text=content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          model=model if isinstance(model, str) and model else self.model_id, notes=notes)


TERMINAL_STATES = ("succeeded", "failed", "cancelled")


class OpenAIFineTuner(_Backend):
    """Fine-tuning jobs through the jobs API (OpenAI, or Azure OpenAI with base_url)."""

    def __init__(self, settings: OpenAISettings, model: str = "gpt-4o-mini-2024-07-18"):
        super().__init__(settings, model)
        self.label = "OpenAI fine-tuning jobs"

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

    def _job(self, job: Any) -> dict[str, Any]:
        error = getattr(job, "error", None)
        message = getattr(error, "message", None) if error else None
        return {"id": job.id, "state": job.status, "fine_tuned_model": job.fine_tuned_model,
                "trained_tokens": job.trained_tokens,
                "error": redact(message, self.settings) if message is not None else None}

    def retrieve(self, job_id: str) -> dict[str, Any]:
        return self._job(self._call("reading the job status", self.client.fine_tuning.jobs.retrieve, job_id))

    def events(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        page = self._call("reading job events", self.client.fine_tuning.jobs.list_events, job_id, limit=limit)
        return [{"created_at": e.created_at, "level": e.level, "message": redact(e.message or "", self.settings),
                 "type": getattr(e, "type", None), "data": getattr(e, "data", None)} for e in page.data]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        page = self._call("reading checkpoints", self.client.fine_tuning.jobs.checkpoints.list, job_id)
        out = []
        for c in page.data:
            metrics = c.metrics.model_dump() if getattr(c, "metrics", None) is not None else {}
            out.append({"step": c.step_number, "model": c.fine_tuned_model_checkpoint, **metrics})
        return sorted(out, key=lambda r: r["step"])

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus(**self._job(self._call("cancelling the job", self.client.fine_tuning.jobs.cancel, job_id)))

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        """OpenAI's chat fine-tuning format checks, with the model's per-example token limit."""
        from .rest import check_examples

        return check_examples(examples, model)

    def chat_model(self, fine_tuned_model: str) -> OpenAIChat:
        return OpenAIChat(self.settings, fine_tuned_model)

    def launch(self, job: JobRequest) -> JobStatus:
        """Upload the train side (and the dev side as the validation file), then create the job."""
        from ..exports import export

        train_id = self.upload("train.jsonl", export(job.train, "openai"))
        valid_id = self.upload("validation.jsonl", export(job.dev, "openai")) if job.dev else None
        created = self.create(job.model, train_id, valid_id, job.hyperparameters, job.suffix, job.seed)
        return JobStatus(**created, events=[JobEvent(time.time(), "info", f"uploaded {train_id}"
                                                     + (f" and {valid_id}" if valid_id else ""),
                                                     data={"training_file": train_id, "validation_file": valid_id})])

    def status(self, job_id: str) -> JobStatus:
        """State, events, and the loss curve from metric events (or checkpoints when there are none)."""
        status = JobStatus(**self.retrieve(job_id))
        events = sorted(self.events(job_id), key=lambda e: e["created_at"])
        status.events = [JobEvent(**e) for e in events]
        rows = [e["data"] for e in events if e.get("type") == "metrics" and e.get("data")]
        if not rows and status.state in ("running", "succeeded"):
            rows = self.checkpoints(job_id)
        status.metrics = sorted((_metric_row(m) for m in rows), key=lambda m: m["step"] or 0)
        return status


def _metric_row(m: dict[str, Any]) -> dict[str, Any]:
    return {"step": m.get("step") or m.get("step_number"), "train_loss": m.get("train_loss"),
            "valid_loss": m.get("valid_loss"),
            "train_accuracy": m.get("train_mean_token_accuracy", m.get("train_accuracy"))}


def list_models(settings: OpenAISettings) -> list[str]:
    """The models an OpenAI-compatible server offers (GET /models): a connection test with a clear error."""
    import openai

    client = make_client(settings)
    try:
        page = client.models.list()
        return sorted(str(m.id) for m in page.data)
    except openai.OpenAIError as exc:
        raise explain(exc, f"listing the models at {settings.base_url or DEFAULT_BASE_URL}", settings) from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise explain(exc, "listing the models", settings) from None


def require_model(settings: OpenAISettings, models: list[str], model: str) -> None:
    """Refuse a model the server does not offer (not pulled into Ollama, say), listing those it does."""
    if model not in models:
        shown = ", ".join(models[:20]) + (" ..." if len(models) > 20 else "") or "none"
        raise WorkbenchError(f"the server at {settings.base_url or DEFAULT_BASE_URL} does not offer the model "
                             f"'{model}' (pull or load it first, e.g. `ollama pull {model}`); it offers: {shown}")


# --- registration ----------------------------------------------------------------------------------------

class EmbedderSettings(Strict):
    model: str = "text-embedding-3-small"
    dimensions: Annotated[int, Field(gt=0)] | None = None


class ChatSettings(Strict):
    model: str = "gpt-4o-mini"
    context_window: Annotated[int, Field(gt=0)] | None = None   # for models the price list does not know


def register(registry: Any) -> None:
    """The OpenAI-compatible backends; all share the `openai:` block of configs/providers.yaml."""
    from .registry import Backend

    registry.add(Backend("embedder", "openai", "OpenAI-compatible embeddings", False,
                         lambda s, cfg: OpenAIEmbedder(cfg.openai, s.model, dimensions=s.dimensions), EmbedderSettings))
    registry.add(Backend("chat", "openai", "OpenAI-compatible chat model", False,
                         lambda s, cfg: OpenAIChat(cfg.openai, s.model), ChatSettings))
    registry.add(Backend("fine_tuner", "openai", "OpenAI fine-tuning jobs (also Azure OpenAI)", False,
                         lambda s, cfg: OpenAIFineTuner(cfg.openai)))
