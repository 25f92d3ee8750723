"""A local, OpenAI-compatible HTTP server for tests (standard library only).

It lets tests drive the real ``openai`` SDK without the internet::

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, timeout=2, max_retries=0)
        client.embeddings.create(model="text-embedding-3-small", input="hello world")
        assert server.requests[-1]["path"] == "/v1/embeddings"

Endpoints (all under /v1, all needing ``Authorization: Bearer <api_key>``):

- ``POST /embeddings``: deterministic unit vectors built from hashed lower-cased words, so texts
  sharing words are more similar. ``encoding_format`` "float" (the default) or "base64" (which the
  SDK asks for when the caller gives no format; it decodes the float32 bytes back to floats).
- ``POST /chat/completions``: a deterministic, extractive-looking reply (see ``_chat_reply``);
  ``stream: true`` is refused with 400.
- ``GET /models``, ``GET /models/{id}``.
- ``POST /files`` (multipart), ``GET /files``, ``GET /files/{id}``, ``GET /files/{id}/content``,
  ``DELETE /files/{id}``. Fine-tune files are checked line by line ("messages" list per line).
- ``POST /fine_tuning/jobs``, ``GET /fine_tuning/jobs``, ``GET /fine_tuning/jobs/{id}`` (each GET moves
  the job one state on: validating_files -> queued -> running x ``running_steps`` -> succeeded),
  ``POST /fine_tuning/jobs/{id}/cancel``, ``GET /fine_tuning/jobs/{id}/events`` and ``.../checkpoints``.

Faults: ``server.inject(fault, times=1, path=None)`` queues a fault for the next ``times`` requests
(whose path starts with ``path``, if given; "/fine_tuning" and "/v1/fine_tuning" both work):

- ``{"status": 429, "retry_after": 0}`` / ``"429"`` / ``429``; likewise 500, 503 or any other status.
  Optional keys: ``retry_after`` (sets the retry-after header), ``message``, ``headers``.
- ``"timeout"`` / ``{"type": "timeout", "delay": 2}``: sleep ``delay`` seconds (default 5), then answer
  normally. ``stop()`` cuts the sleep short.
- ``"malformed"``: 200, content-type application/json, a body that is not valid JSON.
- ``"drop"``: close the connection without sending any response.
- ``"wrong_shape"``: 200 with valid JSON that lacks the fields the endpoint should return.
- ``"trickle"`` / ``{"type": "trickle", "interval": 0.1, "chunk": 1, "pad": 0, "headers": False}``: the
  normal answer, but its body goes out ``chunk`` bytes every ``interval`` seconds (after ``pad`` bytes of
  trailing JSON whitespace are added), so every read gets a byte in time yet the answer takes minutes;
  ``"headers": True`` trickles the status line and headers too. ``stop()`` cuts it short.
- ``{"type": "embedding_dimensions", "dimensions": 7, "index": 0}``: the vector for input ``index`` has
  ``dimensions`` values instead of the requested number (the others are normal).
- ``"ragged_embeddings"``: every odd-numbered vector loses its last value (ask for two or more inputs).
- ``{"type": "nonfinite_embedding", "value": "nan", "index": 0, "position": 0}``: one value of one
  vector is NaN (``"inf"``, ``"-inf"`` or any number, e.g. 1e39 which overflows float32, also work);
  sent as the JSON literals NaN / Infinity that Python's and the SDK's parsers accept.
- ``{"type": "usage", "prompt_tokens": 1e30, "completion_tokens": -5}``: the answer with these usage
  figures (any keys given replace the computed ones; ``None`` sends null).
- ``"null_content"``: a chat completion whose message content is null; ``"no_choices"``: one with an
  empty ``choices`` list.
- ``{"type": "echo_auth", "status": 400}``: an error whose message echoes the request's Authorization
  header (as some proxies and self-hosted servers do), e.g. "... got 'Bearer sk-...'".

Together AI's and Fireworks AI's fine-tuning endpoints (and Fireworks' ``/inference/v1`` chat) are served too;
see tests/hosted_finetune_server.py.

``server.requests`` records every request received (faulted and unauthorised ones included) as
``{"method", "path", "query", "headers" (lower-cased names), "json"}``; ``json`` is None for bodies
that are not JSON (e.g. multipart uploads). ``server.errors`` collects exceptions raised inside the
handler (a server bug, not a client one), which a test can assert to be empty.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from email.parser import BytesHeaderParser
from email.policy import HTTP as HTTP_POLICY
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hosted_finetune_server import FireworksError, HostedFineTuning

__all__ = ["OpenAIServer", "embed_text"]

DEFAULT_API_KEY = "test-key"
DEFAULT_EMBEDDING_DIMENSIONS = 64
DEFAULT_RUNNING_STEPS = 3
DEFAULT_TIMEOUT_DELAY = 5.0
ORG = "test-org"

MODELS = [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"},
]

FILE_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
FINISHED_JOB_STATES = {"succeeded", "failed", "cancelled"}
DEFAULT_HYPERPARAMETERS = {"batch_size": 1, "learning_rate_multiplier": 2.0, "n_epochs": 3}

_WORD_RE = re.compile(r"\w+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


# --------------------------------------------------------------------------------------------- text


def _count_words(text: str) -> int:
    return len(text.split())


def _tokens(text: str) -> list[str]:
    words = _WORD_RE.findall(text.lower())
    return words or [text.lower()]


@lru_cache(maxsize=65536)
def _word_vector(word: str, dimensions: int) -> tuple[float, ...]:
    rng = random.Random(zlib.crc32(word.encode("utf-8")))
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dimensions))


def embed_text(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """The unit vector the server returns for ``text``: the L2-normalised sum of per-word vectors."""
    total = [0.0] * dimensions
    for word in _tokens(text):
        for i, value in enumerate(_word_vector(word, dimensions)):
            total[i] += value
    norm = math.sqrt(sum(v * v for v in total)) or 1.0
    return [v / norm for v in total]


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return _SENTENCE_END_RE.split(text, maxsplit=1)[0] if text else text


def _message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of parts with "text"."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def _context_block(text: str) -> str:
    """Text following a line that starts with "Context:", up to a "Question:"-style label line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("context:"):
            block = [line.strip()[len("context:"):].strip()]
            for following in lines[i + 1:]:
                if re.match(r"^\s*(question|query|answer)\s*:", following, re.IGNORECASE):
                    break
                block.append(following)
            return "\n".join(block).strip()
    return ""


def _chat_reply(messages: list[dict]) -> str:
    """The deterministic assistant reply.

    Candidates are every message other than the last user message, plus the "Context:" block of
    the last user message if it has one. With any candidate, the reply is the first sentence of the
    longest one (an extractive-looking answer for RAG-style prompts); otherwise it is
    "Echo: " + the last user message.
    """
    texts = [(m.get("role"), _message_text(m.get("content"))) for m in messages]
    last_user = max((i for i, (role, _) in enumerate(texts) if role == "user"), default=None)
    candidates = [text for i, (_, text) in enumerate(texts) if i != last_user and text.strip()]
    last_text = texts[last_user][1] if last_user is not None else ""
    context = _context_block(last_text)
    if context:
        candidates.append(context)
    if candidates:
        return _first_sentence(max(candidates, key=len))
    return "Echo: " + last_text


# ---------------------------------------------------------------------------------------- multipart


def _parse_multipart(body: bytes, content_type: str) -> dict[str, dict]:
    """Split a multipart/form-data body into {field name: {"filename", "content_type", "data"}}."""
    header = BytesHeaderParser(policy=HTTP_POLICY).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode())
    boundary = header.get_param("boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + str(boundary).encode("latin-1")
    fields: dict[str, dict] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        part = BytesHeaderParser(policy=HTTP_POLICY).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        fields[str(name)] = {
            "filename": part.get_filename(),
            "content_type": part.get_content_type() if part.get("content-type") else None,
            "data": data,
        }
    return fields


# ------------------------------------------------------------------------------------------- errors


class _APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


def _not_found(kind: str, ident: str, param: str = "id") -> _APIError:
    return _APIError(404, f"No such {kind}: {ident}", param=param)


# ------------------------------------------------------------------------------- answer transforms


def _bad_dimensions(payload: dict, fault: dict) -> dict:
    for item in payload.get("data") or []:
        if item.get("index") == fault["index"] and isinstance(item.get("embedding"), list):
            size = fault["dimensions"]
            vector = item["embedding"]
            item["embedding"] = (vector + [0.01] * size)[:size]
    return payload


def _ragged(payload: dict, fault: dict) -> dict:
    for item in payload.get("data") or []:
        if item.get("index", 0) % 2 == 1 and isinstance(item.get("embedding"), list):
            item["embedding"] = item["embedding"][:-1]
    return payload


def _nonfinite(payload: dict, fault: dict) -> dict:
    for item in payload.get("data") or []:
        if item.get("index") == fault["index"] and isinstance(item.get("embedding"), list):
            item["embedding"][fault["position"]] = fault["value"]
    return payload


def _usage(payload: dict, fault: dict) -> dict:
    if isinstance(payload.get("usage"), dict):
        payload["usage"].update(fault["usage"])
    return payload


def _null_content(payload: dict, fault: dict) -> dict:
    for choice in payload.get("choices") or []:
        choice["message"]["content"] = None
    return payload


def _no_choices(payload: dict, fault: dict) -> dict:
    if "choices" in payload:
        payload["choices"] = []
    return payload


# Faults that let the endpoint answer, then spoil its answer (the embedding ones need encoding_format "float").
_TRANSFORMS = {"embedding_dimensions": _bad_dimensions, "ragged_embeddings": _ragged,
               "nonfinite_embedding": _nonfinite, "usage": _usage, "null_content": _null_content,
               "no_choices": _no_choices}


# --------------------------------------------------------------------------------------- request log


class RequestLog(list):
    """A list of request records whose appends, clears and snapshots hold a lock."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def append(self, item: dict) -> None:
        with self._lock:
            super().append(item)

    def clear(self) -> None:
        with self._lock:
            super().clear()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(super().__iter__())

    def __iter__(self):
        return iter(self.snapshot())


# ------------------------------------------------------------------------------------------ handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OpenAITestServer/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't let Nagle delay the second
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    # -- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: Any = None, *, raw: bytes | None = None,
              content_type: str = "application/json", headers: dict | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode("utf-8")
        trickle = getattr(self, "_trickle", None)
        if trickle is not None:
            return self._send_trickle(status, body + b" " * trickle["pad"], content_type, headers or {}, trickle)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client went away (e.g. it timed out): nothing to tell it
            self.close_connection = True

    def _send_trickle(self, status: int, body: bytes, content_type: str, headers: dict, trickle: dict) -> None:
        """Send the answer ``chunk`` bytes every ``interval`` seconds (the head at once unless "headers")."""
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                 "x-request-id: req_" + uuid.uuid4().hex] + [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        pieces = [] if trickle["headers"] else [head]
        data = head + body if trickle["headers"] else body
        pieces += [data[i:i + trickle["chunk"]] for i in range(0, len(data), trickle["chunk"])]
        stopping = self.server.owner._stopping
        try:
            for n, piece in enumerate(pieces):
                if n and stopping.wait(trickle["interval"]):
                    return self._drop()
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:  # the client gave up and closed the connection, as it should
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        raw_body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: Any = None
        if raw_body and "json" in headers.get("content-type", "application/json"):
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = None
        owner.requests.append({
            "method": self.command,
            "path": path,
            "query": {k: v[-1] for k, v in parse_qs(split.query).items()},
            "headers": headers,
            "json": body,
        })

        if path.startswith("/inference/v1/"):  # Fireworks' OpenAI-compatible inference base (logged as asked)
            path = path[len("/inference"):]
        fault = owner._take_fault(path)
        self._trickle: dict | None = None
        transform: dict | None = None
        if fault is not None:
            kind = fault["type"]
            if kind == "echo_auth":
                return self._send(fault["status"], {"error": {
                    "message": f"Invalid request: the header Authorization was {headers.get('authorization')!r}",
                    "type": "invalid_request_error", "param": None, "code": None}})
            if kind == "trickle":
                self._trickle = fault
            if kind in _TRANSFORMS:
                transform = fault
            if kind == "drop":
                return self._drop()
            if kind == "malformed":
                return self._send(200, raw=b'{"id": "broken", "object": "list", "data": [{"index": 0,')
            if kind == "wrong_shape":
                return self._send(200, {"unexpected": True, "note": "this is not the shape you asked for"})
            if kind == "status":
                return self._send(fault["status"], fault["body"], headers=fault["headers"])
            if kind == "timeout":
                if owner._stopping.wait(fault["delay"]):
                    return self._drop()
                # then answer normally

        if not path.startswith("/v1/") and path != "/v1":
            return self._send(404, _APIError(404, f"Invalid URL ({self.command} {path})").body)
        if headers.get("authorization", "") != f"Bearer {owner.api_key}":
            return self._send(401, {"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}})
        if raw_body and body is None and "json" in headers.get("content-type", "application/json"):
            return self._send(400, _APIError(400, "We could not parse the JSON body of your request.").body)

        try:
            status, payload, extra = owner._route(self.command, path[len("/v1"):] or "/", body, raw_body,
                                                  headers, parse_qs(split.query))
        except (_APIError, FireworksError) as err:
            return self._send(err.status, err.body, headers=err.headers)
        except Exception as exc:  # a bug in this server: report it as a 500 and keep it for the test
            owner.errors.append(exc)
            return self._send(500, _APIError(500, f"test server error: {exc!r}", type_="server_error").body)
        if isinstance(payload, (bytes, bytearray)):
            return self._send(status, raw=bytes(payload), content_type=extra or "application/octet-stream")
        if transform is not None and isinstance(payload, dict):
            payload = _TRANSFORMS[transform["type"]](payload, transform)
        return self._send(status, payload)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "OpenAIServer"

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: no tracebacks on stderr
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            self.owner.errors.append(exc)


# ------------------------------------------------------------------------------------------- server


class OpenAIServer(HostedFineTuning):
    """An in-process OpenAI-compatible server on 127.0.0.1 (a free port)."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1", port: int = 0,
                 embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
                 running_steps: int = DEFAULT_RUNNING_STEPS) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.embedding_dimensions = embedding_dimensions
        self.running_steps = running_steps
        self.base_url: str | None = None
        self.requests = RequestLog()
        self.errors: list[BaseException] = []
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._faults: list[dict] = []
        self._counter = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hosted_init()

    # -- lifecycle

    def start(self) -> "OpenAIServer":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"openai-test-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # cuts "timeout" sleeps short
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake handler threads idling on keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget requests, faults, errors, files and jobs (e.g. between tests sharing one server)."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.errors.clear()
            self.files.clear()
            self.jobs.clear()
            self._hosted_init()

    @property
    def open_connections(self) -> int:
        """Client connections the server still holds open (a client that abandons a request must close its own)."""
        with self._lock:
            return len(self._connections)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _new_id(self, prefix: str, length: int = 24) -> str:
        with self._lock:
            self._counter += 1
            n = self._counter
        return prefix + hashlib.sha1(f"{prefix}{n}".encode()).hexdigest()[:length]

    # -- faults

    def inject(self, fault: Any, times: int = 1, path: str | None = None) -> None:
        """Queue ``fault`` for the next ``times`` requests (whose path starts with ``path``, if given)."""
        if times < 1:
            raise ValueError("times must be at least 1")
        spec = self._normalise_fault(fault)
        with self._lock:
            self._faults.append({"fault": spec, "remaining": times, "path": path})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @staticmethod
    def _normalise_fault(fault: Any) -> dict:
        if isinstance(fault, int) and not isinstance(fault, bool):
            fault = {"status": fault}
        elif isinstance(fault, str):
            fault = {"status": int(fault)} if fault.strip().isdigit() else {"type": fault.strip().lower()}
        if not isinstance(fault, dict):
            raise TypeError(f"a fault is a dict, a status code or a name, not {fault!r}")
        fault = dict(fault)
        if "status" in fault and fault.get("type") in (None, "status"):
            status = int(fault["status"])
            headers = {str(k): str(v) for k, v in (fault.get("headers") or {}).items()}
            if fault.get("retry_after") is not None:
                headers["retry-after"] = str(fault["retry_after"])
            if status == 429:
                error = {"message": fault.get("message", "Rate limit reached for requests"),
                         "type": "requests", "param": None, "code": "rate_limit_exceeded"}
            elif status >= 500:
                error = {"message": fault.get("message", "The server had an error while processing your request. "
                                                         "Sorry about that!"),
                         "type": "server_error", "param": None, "code": None}
            else:
                phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
                error = {"message": fault.get("message", phrase), "type": "invalid_request_error",
                         "param": None, "code": None}
            return {"type": "status", "status": status, "headers": headers, "body": {"error": error}}
        kind = str(fault.get("type", "")).lower().replace("-", "_")
        if kind == "timeout":
            return {"type": "timeout", "delay": float(fault.get("delay", DEFAULT_TIMEOUT_DELAY))}
        if kind in ("malformed", "drop", "wrong_shape", "ragged_embeddings", "null_content", "no_choices"):
            return {"type": kind}
        if kind == "trickle":
            return {"type": kind, "interval": float(fault.get("interval", 0.1)),
                    "chunk": max(1, int(fault.get("chunk", 1))), "pad": max(0, int(fault.get("pad", 0))),
                    "headers": bool(fault.get("headers", False))}
        if kind == "embedding_dimensions":
            return {"type": kind, "dimensions": int(fault.get("dimensions", 7)), "index": int(fault.get("index", 0))}
        if kind == "nonfinite_embedding":
            value = fault.get("value", "nan")
            return {"type": kind, "value": float(value), "index": int(fault.get("index", 0)),
                    "position": int(fault.get("position", 0))}
        if kind == "usage":
            return {"type": kind, "usage": {k: fault[k] for k in ("prompt_tokens", "completion_tokens",
                                                                  "total_tokens") if k in fault}}
        if kind == "echo_auth":
            return {"type": kind, "status": int(fault.get("status", 400))}
        raise ValueError(f"unknown fault {fault!r}")

    def _take_fault(self, path: str) -> dict | None:
        with self._lock:
            for entry in self._faults:
                prefix = entry["path"]
                if prefix is None or path.startswith(prefix) or path.startswith("/v1" + prefix):
                    entry["remaining"] -= 1
                    if entry["remaining"] <= 0:
                        self._faults.remove(entry)
                    return entry["fault"]
        return None

    # -- routing

    def _route(self, method: str, path: str, body: Any, raw: bytes, headers: dict,
               query: dict[str, list[str]]) -> tuple[int, Any, str | None]:
        parts = [p for p in path.split("/") if p]
        q = {k: v[-1] for k, v in query.items()}
        if method == "POST" and parts == ["embeddings"]:
            return 200, self._embeddings(self._json_object(body)), None
        if method == "POST" and parts == ["chat", "completions"]:
            return 200, self._chat(self._json_object(body)), None
        if parts and parts[0] == "models" and method == "GET":
            if len(parts) == 1:
                return 200, {"object": "list", "data": self._models()}, None
            if len(parts) == 2:
                for model in self._models():
                    if model["id"] == parts[1]:
                        return 200, model, None
                raise _APIError(404, f"The model '{parts[1]}' does not exist", code="model_not_found", param="model")
        if method == "POST" and parts == ["files", "upload"]:
            return 200, self._together_upload(raw, headers), None
        if parts and parts[0] == "fine-tunes":
            return self._together_route(method, parts[1:], body)
        if parts and parts[0] == "accounts":
            if parts[1:2] != [self.fireworks_account]:
                raise FireworksError(403, f"the key has no access to account '{'/'.join(parts[1:2])}'")
            return self._fireworks_route(method, parts[2:], body, raw, headers, q)
        if parts and parts[0] == "files":
            return self._files_route(method, parts[1:], raw, headers, q)
        if parts[:2] == ["fine_tuning", "jobs"]:
            return self._jobs_route(method, parts[2:], body, q)
        raise _APIError(404, f"Invalid URL ({method} /v1{path})")

    @staticmethod
    def _json_object(body: Any) -> dict:
        if not isinstance(body, dict):
            raise _APIError(400, "The request body must be a JSON object.")
        return body

    # -- embeddings

    def _embeddings(self, body: dict) -> dict:
        if "model" not in body:
            raise _APIError(400, "you must provide a model parameter", param="model")
        raw_input = body.get("input")
        texts: list[str]
        words: int
        if isinstance(raw_input, str):
            texts, words = [raw_input], _count_words(raw_input)
        elif isinstance(raw_input, list) and raw_input and all(isinstance(x, str) for x in raw_input):
            texts, words = list(raw_input), sum(_count_words(x) for x in raw_input)
        elif isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input):
            texts, words = [" ".join(f"tok{t}" for t in raw_input)], len(raw_input)
        elif (isinstance(raw_input, list) and raw_input
              and all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in raw_input)):
            texts = [" ".join(f"tok{t}" for t in x) for x in raw_input]
            words = sum(len(x) for x in raw_input)
        else:
            raise _APIError(400, "'$.input' is invalid. Please check the API reference.", param="input")
        if any(not t.strip() for t in texts):
            raise _APIError(400, "'$.input' is invalid: empty strings cannot be embedded.", param="input")
        dimensions = body.get("dimensions", self.embedding_dimensions)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise _APIError(400, f"Invalid value for 'dimensions': {dimensions!r}.", param="dimensions")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _APIError(400, f"Invalid value for 'encoding_format': {encoding!r}.", param="encoding_format")
        data = []
        for index, text in enumerate(texts):
            vector: Any = embed_text(text, dimensions)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": words, "total_tokens": words}}

    # -- chat

    def _chat(self, body: dict) -> dict:
        if "model" not in body:
            raise _APIError(400, "you must provide a model parameter", param="model")
        if body.get("stream"):
            raise _APIError(400, "Streaming is not supported by the test server.", param="stream",
                            code="unsupported_value")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _APIError(400, "'messages' must be a non-empty array of message objects.", param="messages")
        content = _chat_reply(messages)
        prompt_tokens = sum(_count_words(_message_text(m.get("content"))) for m in messages)
        completion_tokens = _count_words(content)
        return {
            "id": self._new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": "fp_test",
        }

    def _models(self) -> list[dict]:
        with self._lock:
            tuned = [{"id": job["fine_tuned_model"], "object": "model", "created": job["finished_at"],
                      "owned_by": ORG} for job in self.jobs.values() if job["fine_tuned_model"]]
        return [dict(m) for m in MODELS] + tuned

    # -- files

    def _files_route(self, method: str, rest: list[str], raw: bytes, headers: dict,
                     q: dict[str, str]) -> tuple[int, Any, str | None]:
        if method == "POST" and not rest:
            return 200, self._upload(raw, headers.get("content-type", "")), None
        if method == "GET" and not rest:
            with self._lock:
                files = [self._public_file(f) for f in self.files.values()]
            if q.get("purpose"):
                files = [f for f in files if f["purpose"] == q["purpose"]]
            if q.get("order", "desc") == "desc":  # the dict keeps upload order
                files.reverse()
            return 200, self._page(files, q), None
        if len(rest) >= 1:
            with self._lock:
                stored = self.files.get(rest[0])
            if stored is None:
                raise _not_found("File", rest[0], param="file_id")
            if method == "GET" and len(rest) == 1:
                return 200, self._public_file(stored), None
            if method == "GET" and rest[1:] == ["content"]:
                return 200, stored["data"], "application/octet-stream"
            if method == "DELETE" and len(rest) == 1:
                with self._lock:
                    self.files.pop(rest[0], None)
                return 200, {"id": rest[0], "object": "file", "deleted": True}, None
        raise _APIError(404, f"Invalid URL ({method} /v1/files/{'/'.join(rest)})")

    def _upload(self, raw: bytes, content_type: str) -> dict:
        if not content_type.lower().startswith("multipart/form-data"):
            raise _APIError(400, "File uploads must be multipart/form-data.")
        try:
            fields = _parse_multipart(raw, content_type)
        except ValueError as err:
            raise _APIError(400, f"Could not parse the multipart body: {err}") from None
        purpose = fields.get("purpose", {}).get("data", b"").decode("utf-8", "replace").strip()
        if not purpose:
            raise _APIError(400, "Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in FILE_PURPOSES:
            raise _APIError(400, f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'", param="purpose")
        upload = fields.get("file")
        if upload is None:
            raise _APIError(400, "Missing required parameter: 'file'.", param="file")
        data = upload["data"]
        status, details = "processed", None
        if purpose == "fine-tune":
            details = self._fine_tune_file_problem(data)
            if details:
                status = "error"
        stored = {
            "id": self._new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": upload["filename"] or "upload",
            "purpose": purpose,
            "status": status,
            "status_details": details,
            "expires_at": None,
            "data": data,
        }
        with self._lock:
            self.files[stored["id"]] = stored
        return self._public_file(stored)

    @staticmethod
    def _fine_tune_file_problem(data: bytes) -> str | None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return "Invalid file format. The file is not UTF-8 encoded."
        examples = 0
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                return f"Invalid file format. Line {number} is not valid JSON."
            if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                return f"Invalid file format. Line {number}, key \"messages\": a list of messages is required."
            examples += 1
        if not examples:
            return "Invalid file format. The file has no training examples."
        return None

    @staticmethod
    def _public_file(stored: dict) -> dict:
        return {k: v for k, v in stored.items() if k != "data"}

    @staticmethod
    def _page(items: list[dict], q: dict[str, str]) -> dict:
        """A cursor page: ``after`` (an id) and ``limit`` (default 20) over the items in order."""
        if q.get("after"):
            ids = [item["id"] for item in items]
            items = items[ids.index(q["after"]) + 1:] if q["after"] in ids else []
        try:
            limit = max(1, int(q.get("limit", 20)))
        except ValueError:
            raise _APIError(400, f"Invalid value for 'limit': {q.get('limit')!r}.", param="limit") from None
        page = items[:limit]
        return {"object": "list", "data": page, "has_more": len(items) > limit,
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    # -- fine-tuning jobs

    def _jobs_route(self, method: str, rest: list[str], body: Any, q: dict[str, str]) -> tuple[int, Any, str | None]:
        if method == "POST" and not rest:
            return 200, self._create_job(self._json_object(body)), None
        if method == "GET" and not rest:
            with self._lock:
                jobs = [self._public_job(j) for j in self.jobs.values()]
            jobs.reverse()  # newest first; the dict keeps creation order
            return 200, self._page(jobs, q), None
        if not rest:
            raise _APIError(404, f"Invalid URL ({method} /v1/fine_tuning/jobs)")
        job_id = rest[0]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise _not_found("fine-tuning job", job_id, param="fine_tuning_job_id")
            if method == "GET" and len(rest) == 1:
                self.advance_job(job_id)
                return 200, self._public_job(job), None
            if method == "POST" and rest[1:] == ["cancel"]:
                if job["status"] in FINISHED_JOB_STATES:
                    raise _APIError(400, f"Job {job_id} has already {job['status']} and cannot be cancelled.",
                                    param="fine_tuning_job_id")
                job["status"] = "cancelled"
                job["finished_at"] = int(time.time())
                self._event(job, "The job has been cancelled")
                return 200, self._public_job(job), None
            if method == "GET" and rest[1:] == ["events"]:
                return 200, self._page(list(reversed(job["events"])), q), None
            if method == "GET" and rest[1:] == ["checkpoints"]:
                return 200, self._page(list(reversed(job["checkpoints"])), q), None
        raise _APIError(404, f"Invalid URL ({method} /v1/fine_tuning/jobs/{'/'.join(rest)})")

    def _create_job(self, body: dict) -> dict:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _APIError(400, "Missing required parameter: 'model'.", param="model")
        training_file = body.get("training_file")
        validation_file = body.get("validation_file")
        with self._lock:
            if not isinstance(training_file, str) or training_file not in self.files:
                raise _APIError(400, f"invalid training_file: {training_file}", param="training_file",
                                code="invalid_training_file")
            if validation_file is not None and validation_file not in self.files:
                raise _APIError(400, f"invalid validation_file: {validation_file}", param="validation_file",
                                code="invalid_validation_file")
        method = body.get("method") if isinstance(body.get("method"), dict) else None
        requested = body.get("hyperparameters") or {}
        if method and isinstance(method.get(method.get("type", "")), dict):
            requested = method[method["type"]].get("hyperparameters") or requested
        hyperparameters = {key: (requested.get(key) if requested.get(key) not in (None, "auto") else default)
                           for key, default in DEFAULT_HYPERPARAMETERS.items()}
        if method is None:
            method = {"type": "supervised", "supervised": {"hyperparameters": dict(hyperparameters)}}
        job_id = self._new_id("ftjob-")
        seed = body.get("seed")
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "status": "validating_files",
            "training_file": training_file,
            "validation_file": validation_file,
            "hyperparameters": hyperparameters,
            "method": method,
            "fine_tuned_model": None,
            "trained_tokens": None,
            "error": None,
            "seed": seed if isinstance(seed, int) else zlib.crc32(job_id.encode()) % 2**31,
            "estimated_finish": None,
            "result_files": [],
            "organization_id": "org-test",
            "integrations": body.get("integrations") or None,
            "metadata": body.get("metadata"),
            "user_provided_suffix": body.get("suffix"),
            "suffix": body.get("suffix"),
            "events": [],
            "checkpoints": [],
            "step": 0,
        }
        with self._lock:
            self.jobs[job_id] = job
            self._event(job, f"Validating training file: {training_file}")
        return self._public_job(job)

    def advance_job(self, job_id: str, steps: int = 1) -> dict:
        """Move a job ``steps`` states on (as that many GETs of it would) and return its public form."""
        with self._lock:
            job = self.jobs[job_id]
            for _ in range(steps):
                self._advance(job)
            return self._public_job(job)

    def _advance(self, job: dict) -> None:
        status = job["status"]
        if status == "validating_files":
            training = self.files.get(job["training_file"])
            if training is not None and training["status"] == "error":
                job["status"] = "failed"
                job["finished_at"] = int(time.time())
                job["error"] = {"code": "invalid_training_file", "param": "training_file",
                                "message": training["status_details"] or "The training file is invalid."}
                self._event(job, f"Training file {job['training_file']} failed validation", level="error")
                return
            job["status"] = "queued"
            self._event(job, "Files validated, moving job to queued state")
        elif status == "queued":
            job["status"] = "running"
            self._event(job, "Fine-tuning job started")
            self._run_step(job)
        elif status == "running":
            if job["step"] < max(1, self.running_steps):
                self._run_step(job)
                return
            job["status"] = "succeeded"
            job["finished_at"] = int(time.time())
            job["fine_tuned_model"] = self._model_name(job)
            job["trained_tokens"] = self._trained_tokens(job)
            job["result_files"] = [self._result_file(job)]
            self._event(job, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job, "The job has successfully completed")

    def _run_step(self, job: dict) -> None:
        job["step"] += 1
        step = job["step"]
        total = max(1, self.running_steps)
        train_loss = round(2.0 * 0.7 ** step, 4)
        valid_loss = round(train_loss * 1.1 + 0.05, 4)
        accuracy = round(1 - 0.5 * 0.7 ** step, 4)
        valid_accuracy = round(accuracy - 0.02, 4)
        metrics = {"step": step, "train_loss": train_loss, "valid_loss": valid_loss,
                   "train_mean_token_accuracy": accuracy, "valid_mean_token_accuracy": valid_accuracy,
                   "total_steps": total}
        self._event(job, f"Step {step}/{total}: training loss={train_loss}", type_="metrics", data=metrics)
        job["checkpoints"].append({
            "object": "fine_tuning.job.checkpoint",
            "id": self._new_id("ftckpt_"),
            "created_at": int(time.time()),
            "fine_tuned_model_checkpoint": f"{self._model_name(job)}:ckpt-step-{step}",
            "fine_tuning_job_id": job["id"],
            "step_number": step,
            "metrics": {"step": float(step), "train_loss": train_loss, "train_mean_token_accuracy": accuracy,
                        "valid_loss": valid_loss, "valid_mean_token_accuracy": valid_accuracy,
                        "full_valid_loss": round(valid_loss + 0.02, 4),
                        "full_valid_mean_token_accuracy": round(valid_accuracy - 0.01, 4)},
        })

    def _event(self, job: dict, message: str, *, level: str = "info", type_: str = "message",
               data: dict | None = None) -> None:
        job["events"].append({"object": "fine_tuning.job.event", "id": self._new_id("ftevent-"),
                              "created_at": int(time.time()), "level": level, "message": message,
                              "type": type_, "data": data or {}})

    @staticmethod
    def _model_name(job: dict) -> str:
        return f"ft:{job['model']}:{ORG}:{job['suffix'] or 'custom'}:{job['id'][-8:]}"

    def _trained_tokens(self, job: dict) -> int:
        stored = self.files.get(job["training_file"])
        words = _count_words(stored["data"].decode("utf-8", "replace")) if stored else 0
        return words * int(job["hyperparameters"]["n_epochs"])

    def _result_file(self, job: dict) -> str:
        lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        for ckpt in job["checkpoints"]:
            m = ckpt["metrics"]
            lines.append(f"{ckpt['step_number']},{m['train_loss']},{m['train_mean_token_accuracy']},"
                         f"{m['valid_loss']},{m['valid_mean_token_accuracy']}")
        data = ("\n".join(lines) + "\n").encode()
        stored = {"id": self._new_id("file-"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                  "filename": "step_metrics.csv", "purpose": "fine-tune-results", "status": "processed",
                  "status_details": None, "expires_at": None, "data": data}
        self.files[stored["id"]] = stored
        return stored["id"]

    @staticmethod
    def _public_job(job: dict) -> dict:
        return {k: v for k, v in job.items() if k not in ("events", "checkpoints", "step", "suffix")}
