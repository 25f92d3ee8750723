"""HTTP transport for the hosted clients: a total deadline on each request attempt, and the environment's proxy.

Kept apart from the provider modules so that listing providers does not import the HTTP stack.
"""
from __future__ import annotations

import contextvars
import time
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpcore2
import httpx2

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("workbench_openai_deadline", default=None)


def _until_deadline(timeout: float | None, error: type[Exception]) -> float | None:
    """The time a socket operation may wait: its own timeout, cut to what is left of the attempt's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore2.NetworkStream):
    """A connection whose reads, writes and TLS handshake each end by the current attempt's deadline."""

    WRITE_PIECE = 16 * 1024   # a large upload is sent in pieces, each under what is left of the deadline

    def __init__(self, inner: httpcore2.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _until_deadline(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), self.WRITE_PIECE):
            self._inner.write(bytes(view[start:start + self.WRITE_PIECE]),
                              _until_deadline(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _until_deadline(timeout, httpcore2.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    """Opens connections that honour the deadline (name resolution itself is not bounded)."""

    def __init__(self, inner: httpcore2.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore2.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _until_deadline(timeout, httpcore2.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore2.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _until_deadline(timeout, httpcore2.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineBody(httpx2.SyncByteStream):
    """An answer's body, read under the deadline of the attempt that asked for it."""

    def __init__(self, inner: Any, deadline: float):
        self._inner = inner
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            token = _DEADLINE.set(self._deadline)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                _DEADLINE.reset(token)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx2.HTTPTransport):
    """httpx2's transport with a total deadline on each request: connect, send and the whole answer.

    The deadline is enforced on every socket operation (each waits at most for what is left), so there is
    no watchdog thread; a request that runs out fails with a read/connect/write timeout, which closes
    its connection, and the SDK sees an ordinary timeout (retried, then APITimeoutError).
    """

    def __init__(self, total_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        pool = getattr(self, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore2.NetworkBackend):
            raise RuntimeError("httpx2/httpcore2 no longer keep the network backend where expected; the total "
                               "request deadline cannot be installed (pin the versions this was tested with)")
        pool._network_backend = _DeadlineBackend(backend)
        self.total_s = total_s

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self.total_s
        token = _DEADLINE.set(deadline)
        try:
            response = super().handle_request(request)
        finally:
            _DEADLINE.reset(token)
        response.stream = _DeadlineBody(response.stream, deadline)
        return response


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY, NO_PROXY), as httpx would use."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")
