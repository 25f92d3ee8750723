"""A JSON-over-HTTPS client for services without an SDK here (hosted fine-tuning on Together AI, Fireworks AI).

It shares the OpenAI backend's guarantees: the key comes from the environment variable the settings name
and is redacted (with anything shaped like a key) from every message; each attempt has a total deadline
of `timeout_s` (connect, send and the whole answer, via the same deadline transport); a failed attempt is
retried at most `max_retries` times (0.5 s doubling up to 8 s, or the server's retry-after up to 30 s), and
only when retrying cannot repeat an effect: reads always, writes only when the server refused before
doing anything (429, a refused connection) unless the caller says the write is idempotent.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
import weakref
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .openai import DUMMY_KEY_FOR_LOCAL, redact

if TYPE_CHECKING:
    import httpx2

RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 30.0
MAX_MESSAGE = 300          # characters of a provider's error message quoted back


class ServiceSettings(Strict):
    """Where a hosted service is and how to reach it; the key itself is only ever in the environment."""

    base_url: str | None = None
    api_key_env: str
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2


def _is_local(url: str) -> bool:
    return any(h in url for h in ("127.0.0.1", "localhost", "[::1]"))


def _retry_after(response: httpx2.Response | None, attempt: int) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(header))) if header is not None else min(8.0, 0.5 * 2 ** attempt)
    except ValueError:
        return min(8.0, 0.5 * 2 ** attempt)


class RestClient:
    """Requests to one service, answered as parsed JSON or a WorkbenchError that says what went wrong."""

    def __init__(self, service: str, settings: ServiceSettings, base_url: str):
        self.service = service
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self._http: httpx2.Client | None = None

    def _key(self) -> str:
        key = os.environ.get(self.settings.api_key_env)
        if key:
            return key
        if _is_local(self.base_url):
            return DUMMY_KEY_FOR_LOCAL
        raise WorkbenchError(f"no API key for {self.service}: set the environment variable "
                             f"{self.settings.api_key_env} (keys are never read from or written to files)",
                             field="fine_tuner.api_key_env")

    @property
    def http(self) -> httpx2.Client:
        if self._http is None:
            import httpx2

            from .transport import DeadlineTransport, proxy_for

            self._http = httpx2.Client(timeout=httpx2.Timeout(self.settings.timeout_s),
                                       transport=DeadlineTransport(self.settings.timeout_s,
                                                                   proxy=proxy_for(self.base_url)))
            weakref.finalize(self, self._http.close)   # its connections close with the client, as make_client's do
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _error(self, message: str) -> WorkbenchError:
        return WorkbenchError(redact(message, self.settings))

    def request(self, method: str, path: str, what: str, *, json_body: Any = None, files: Any = None,
                data: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                idempotent: bool | None = None, allow: tuple[int, ...] = ()) -> Any:
        """The parsed JSON answer of `method path` (a statuses in `allow` returns None instead of failing)."""
        import httpx2   # imported on first use: listing the providers does not load the HTTP stack

        idempotent = method in ("GET", "DELETE") if idempotent is None else idempotent
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self._key()}", "Accept": "application/json"}
        gave_up = "; retries are off" if self.settings.max_retries == 0 else "; retried and gave up"
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                response = self.http.request(method, url, headers=headers, json=json_body, files=files, data=data,
                                             params=params)
            except httpx2.ConnectError:
                if last:
                    raise self._error(f"could not connect to {self.service} at {self.base_url} while {what} "
                                      "(connection refused or dropped)") from None
                time.sleep(_retry_after(None, attempt))
                continue
            except httpx2.TimeoutException:
                if last or not idempotent:
                    raise self._error(f"{self.service} did not answer in time ({self.settings.timeout_s:g} s) "
                                      f"while {what}{gave_up if idempotent else ''}"
                                      + ("" if idempotent else f"; it may have done it all the same: check "
                                                               f"{self.service}'s console before trying again")) from None
                time.sleep(_retry_after(None, attempt))
                continue
            except httpx2.TransportError as exc:
                if last or not idempotent:
                    raise self._error(f"the connection to {self.service} broke while {what} "
                                      f"({type(exc).__name__})") from None
                time.sleep(_retry_after(None, attempt))
                continue
            status = response.status_code
            if status in allow:
                return None
            retryable = status in RETRY_STATUSES and (idempotent or status == 429)
            if retryable and not last:
                time.sleep(_retry_after(response, attempt))
                continue
            if status >= 400:
                raise self._status_error(status, response, what, gave_up if retryable else "")
            if not response.content.strip():
                return {}
            try:
                return response.json()
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
                raise self._error(f"{self.service} sent an answer that is not JSON while {what} "
                                  f"(HTTP {status}, {len(response.content):,} bytes)") from None
        raise AssertionError("unreachable")

    def _status_error(self, status: int, response: httpx2.Response, what: str, gave_up: str) -> WorkbenchError:
        detail = _provider_message(response)
        kinds = {401: "refused the API key (401)", 403: "denied access (403)", 404: "does not know it (404)",
                 429: "is rate limiting or out of quota (429)"}
        kind = kinds.get(status) or (f"failed ({status})" if status >= 500 else f"rejected the request ({status})")
        hint = f"; check {self.settings.api_key_env}" if status == 401 else ""
        return self._error(f"{self.service} {kind} while {what}{gave_up}{hint}" + (f": {detail}" if detail else ""))


def _provider_message(response: httpx2.Response) -> str:
    """The message of an error answer ({"error": {"message"}}, {"message"} or {"error": "..."}), shortened."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return ""
    message: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else body.get("message")
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    return message[:MAX_MESSAGE] + ("..." if len(message) > MAX_MESSAGE else "")


def need(payload: Any, key: str, service: str, what: str) -> Any:
    """`payload[key]`, or a clear error when the answer lacks it (a wrong-shaped answer)."""
    if not isinstance(payload, dict) or payload.get(key) in (None, ""):
        raise WorkbenchError(f"{service} answered without '{key}' while {what}; the answer could not be used")
    return payload[key]


def epoch_seconds(value: Any) -> float:
    """A service's timestamp (ISO 8601 text or epoch seconds) as epoch seconds; now when it cannot be read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def check_examples(examples: list[dict[str, Any]], model: str) -> Any:
    """The chat-format checks of training data, with the model's per-example token limit where it is priced."""
    from ..pricing import load_pricing
    from ..training_data import check

    return check(examples, model, load_pricing().example_token_limit(model))


def tuned_chat(base_url: str, settings: ServiceSettings, model: str, service: str) -> Any:
    """A model a hosted fine-tuning job yielded, through the service's OpenAI-compatible chat endpoint."""
    from . import OpenAISettings
    from .openai import OpenAIChat

    chat = OpenAIChat(OpenAISettings(base_url=base_url, api_key_env=settings.api_key_env,
                                     timeout_s=settings.timeout_s, max_retries=settings.max_retries), model)
    chat.label = f"{model} ({service} fine-tune)"
    return chat
