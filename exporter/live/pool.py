"""A bounded HTTP front end: one thread reads request heads, a fixed pool of threads answers them.

A thread per connection lets slow clients (a request head sent a byte at a time, or never
finished) pin one thread each, without limit. Here one selector thread accepts connections and
collects each request head without blocking; only a complete head goes to one of ``workers``
threads, which never wait for a client to send. Every number is bounded:

- connections still sending their head: at most ``max_pending`` (the oldest is dropped first),
  each for at most ``header_timeout`` seconds in total (then 408), heads at most ``max_head``
  bytes (then 431);
- complete requests waiting for a worker: at most ``max_queued`` (then 503);
- threads: 1 + ``workers``, whatever clients do;
- the listen backlog is ``backlog`` (a burst of scrapers waits in the kernel, not in SYN retries).

TLS handshakes also happen in the selector thread, without blocking it.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Handle = Callable[[socket.socket, bytes, tuple], None]


@dataclass
class _Pending:
    sock: socket.socket
    address: tuple
    deadline: float
    handshaken: bool
    head: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Limits:
    workers: int = 8
    header_timeout: float = 10.0
    write_timeout: float = 10.0
    max_pending: int = 1024
    max_queued: int = 256
    max_head: int = 16 * 1024
    backlog: int = 512


class PooledServer:
    """Serves ``handle(sock, head, address)`` for every complete request head on ``listener``."""

    def __init__(self, listener: socket.socket, handle: Handle, *, limits: Limits = Limits(),
                 tls: ssl.SSLContext | None = None) -> None:
        self._listener = listener
        self._handle = handle
        self._limits = limits
        self._tls = tls
        self._queue: queue.Queue = queue.Queue(maxsize=limits.max_queued)
        self._selector = selectors.DefaultSelector()
        self._pending: dict[int, _Pending] = {}  # by file descriptor, oldest first
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept_loop, name="http-accept", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"http-worker-{n}", daemon=True)
                          for n in range(limits.workers)]

    def start(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for _ in range(self._limits.workers):
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1)
        for thread in self._threads:
            thread.join(5)
        for pending in list(self._pending.values()):
            _close(pending.sock)
        self._listener.close()
        self._selector.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data)
            self._expire(time.monotonic())

    def _accept(self) -> None:
        for _ in range(64):  # many per wake-up: a burst is drained quickly
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: leave the rest in the backlog for the next round
                return
            sock.setblocking(False)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            if len(self._pending) >= self._limits.max_pending:
                self._drop(next(iter(self._pending.values())))
            pending = _Pending(sock, address, time.monotonic() + self._limits.header_timeout, self._tls is None)
            self._pending[sock.fileno()] = pending
            self._selector.register(sock, selectors.EVENT_READ, pending)

    def _read(self, pending: _Pending) -> None:
        try:
            if not pending.handshaken:
                pending.sock.do_handshake()
                pending.handshaken = True
            while True:
                chunk = pending.sock.recv(65536)
                if not chunk:
                    return self._drop(pending)
                pending.head += chunk
                if b"\r\n\r\n" in pending.head or b"\n\n" in pending.head:
                    return self._dispatch(pending)
                if len(pending.head) > self._limits.max_head:
                    return self._drop(pending, b"431 Request Header Fields Too Large")
                if not (self._tls and pending.sock.pending()):
                    return None
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return None  # more bytes to come
        except OSError:  # reset, plain HTTP to the TLS port, a bad handshake
            return self._drop(pending)

    def _dispatch(self, pending: _Pending) -> None:
        self._forget(pending)
        pending.sock.setblocking(True)
        pending.sock.settimeout(self._limits.write_timeout)
        try:
            self._queue.put_nowait((pending.sock, bytes(pending.head), pending.address))
        except queue.Full:
            _answer(pending.sock, b"503 Service Unavailable")
            _close(pending.sock)

    def _expire(self, now: float) -> None:
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._drop(pending, b"408 Request Timeout" if pending.handshaken else None)

    def _drop(self, pending: _Pending, status: bytes | None = None) -> None:
        self._forget(pending)
        if status is not None:
            _answer(pending.sock, status)
        _close(pending.sock)

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            sock, head, address = item
            try:
                self._handle(sock, head, address)
            except OSError:
                pass  # the client went away mid-response
            finally:
                _close(sock)


def _answer(sock: socket.socket, status: bytes) -> None:
    """A minimal error response, best effort (the client may already be gone or not reading)."""
    with contextlib.suppress(OSError):
        sock.send(b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
