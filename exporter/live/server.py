"""HTTP endpoint: ``/`` landing page, ``/metrics`` exposition, ``/explain``; optional TLS and basic auth.

Behaviour (documented in docs/live.md and docs/explain.md):
- ``GET`` and ``HEAD`` on ``/``, ``/metrics`` and (when wired) ``/explain``; any other method 405,
  any other path 404; basic auth and TLS guard every path alike;
- the only query parameter is ``name[]`` on ``/metrics`` (prometheus-client's filter: only the
  named families, repeatable, at most MAX_NAMES); ``/explain`` takes exactly its documented
  parameters (exporter.live.explain, which answers anything else with 400); so no query string
  can reach an undocumented code path;
- at most MAX_EXPLAINS ``/explain`` answers are computed at once (each reads parquet files for up
  to a second or two); more get 503 with Retry-After, so explains never take every worker from
  the scrapes;
- every ``/metrics`` response comes from CachedExposition: rendered once per published state and
  (format, gzip, filter), so a burst of scrapes costs dictionary lookups;
- basic auth failures are logged and throttled per client address (exporter.live.auth);
- connections are served by exporter.live.pool (bounded threads, listen backlog 512).
"""

from __future__ import annotations

import gzip
import html
import io
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.errors import ConfigError
from exporter.live.auth import AuthThrottle, BasicAuth
from exporter.live.pool import Limits, PooledServer

__all__ = ["AuthThrottle", "BasicAuth", "CachedExposition", "MetricsServer", "exporter_app", "parse_listen"]

REALM = "usage-exporter"
METHODS = ("GET", "HEAD")
FILTER = "name[]"
MAX_NAMES = 64  # name[] values per request
MAX_FILTERS = 32  # distinct name[] filters cached per published state
MAX_EXPLAINS = 2  # /explain answers computed at the same time (the pool has 8 workers)
JSON = (("Content-Type", "application/json"),)
Explain = Callable[[str], tuple[str, bytes]]  # query string -> (status line, body); JSON when 200


def landing_page(sites: list[str]) -> bytes:
    items = "".join(f"<li>{html.escape(site)}</li>" for site in sites)
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>OpenStack usage exporter</title></head>"
        f"<body><h1>OpenStack usage exporter</h1><p>Version {html.escape(__version__)}.</p>"
        "<p><a href=\"metrics\">Metrics</a></p>"
        f"<p>Sites:</p><ul>{items}</ul></body></html>\n"
    ).encode()


def metric_filter(query: str) -> tuple[str, ...] | None:
    """The sorted ``name[]`` values of a /metrics query ((): no filter); None if anything else is in it."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=MAX_NAMES)
    except ValueError:
        return None
    if any(key != FILTER for key, _ in pairs):
        return None
    return tuple(sorted({value for _, value in pairs}))


class CachedExposition:
    """Renders ``/metrics`` once per published state and (content type, gzip, name filter).

    ``states()`` returns the objects the output depends on (the immutable site states); while
    they are the same objects, the encoded bytes are reused, so a scrape costs a dictionary
    lookup. At most MAX_FILTERS distinct ``name[]`` filters are kept per state (more are rendered
    each time), so odd filters cannot grow memory.
    """

    def __init__(self, registry: CollectorRegistry, states: Callable[[], Sequence[object]]) -> None:
        self._registry = registry
        self._states = states
        self._cache: tuple[tuple[object, ...], dict[tuple, bytes]] = ((), {})

    def body(self, accept: str | None, accept_encoding: str | None, names: tuple[str, ...]
             ) -> tuple[bytes, list[tuple[str, str]]]:
        encoder, content_type = choose_encoder(accept)
        gzipped = gzip_accepted(accept_encoding)
        headers = [("Content-Type", content_type)] + ([("Content-Encoding", "gzip")] if gzipped else [])
        states = tuple(self._states())
        cached_states, bodies = self._cache
        if len(states) != len(cached_states) or any(a is not b for a, b in zip(states, cached_states)):
            bodies = {}
            self._cache = (states, bodies)  # holding the states keeps their identities unique
        key = (content_type, gzipped, names)
        body = bodies.get(key)
        if body is None:
            body = encoder(_Filtered(self._registry, names) if names else self._registry)
            body = gzip.compress(body, mtime=0) if gzipped else body
            if not names or sum(1 for cached in bodies if cached[2]) < MAX_FILTERS:
                bodies[key] = body
        return body, headers


class _Filtered:
    """The registry's families with only the samples named in ``names`` (prometheus-client's name[] rule).

    prometheus-client's own restricted registry skips collectors without described names, which
    is every collector here (describe() is empty so registering does not collect).
    """

    def __init__(self, registry: CollectorRegistry, names: tuple[str, ...]) -> None:
        self._registry = registry
        self._names = set(names)

    def collect(self):
        for metric in self._registry.collect():
            samples = [sample for sample in metric.samples if sample.name in self._names]
            if samples:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept


def exporter_app(registry: CollectorRegistry, *, sites: list[str], states: Callable[[], Sequence[object]],
                 auth: BasicAuth | None = None, explain: Explain | None = None):
    """WSGI app for ``/``, ``/metrics`` and ``/explain`` (see the module docstring for the rules)."""
    exposition = CachedExposition(registry, states)
    landing = landing_page(sites)
    paths = ("/", "/metrics", "/explain") if explain is not None else ("/", "/metrics")
    explaining = threading.BoundedSemaphore(MAX_EXPLAINS)

    def app(environ, start_response):
        def answer(status: str, body: bytes, headers=(("Content-Type", "text/plain; charset=utf-8"),)):
            start_response(status, [*headers, ("Content-Length", str(len(body)))])
            return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

        if auth is not None:
            refused = auth.check(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR", ""))
            if refused == 429:
                wait = str(auth.throttle.retry_after(environ.get("REMOTE_ADDR", "")) or 1)
                return answer("429 Too Many Requests", b"429 Too Many Requests: too many failed logins\n",
                              (("Retry-After", wait), ("Content-Type", "text/plain; charset=utf-8")))
            if refused == 401:
                return answer("401 Unauthorized", b"401 Unauthorized\n",
                              (("WWW-Authenticate", f'Basic realm="{REALM}"'),
                               ("Content-Type", "text/plain; charset=utf-8")))
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if path not in paths:
            return answer("404 Not Found", b"404 Not Found: see /metrics\n")
        if environ.get("REQUEST_METHOD") not in METHODS:
            return answer("405 Method Not Allowed", b"405 Method Not Allowed: use GET or HEAD\n",
                          (("Allow", ", ".join(METHODS)), ("Content-Type", "text/plain; charset=utf-8")))
        if path == "/explain":
            return explained(query, answer)
        names = metric_filter(query) if path == "/metrics" else (None if query else ())
        if names is None:
            return answer("400 Bad Request", f"400 Bad Request: the only query parameter is {FILTER} on /metrics "
                          f"(at most {MAX_NAMES} metric names)\n".encode())
        if path == "/":
            return answer("200 OK", landing, (("Content-Type", "text/html; charset=utf-8"),))
        body, headers = exposition.body(environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING"), names)
        return answer("200 OK", body, headers)

    def explained(query: str, answer):
        if not explaining.acquire(blocking=False):
            return answer("503 Service Unavailable", b"503 Service Unavailable: too many /explain requests at once\n",
                          (("Retry-After", "1"), ("Content-Type", "text/plain; charset=utf-8")))
        try:
            status, body = explain(query)
        finally:
            explaining.release()
        return answer(status, body, JSON if status.startswith("200") else
                      (("Content-Type", "text/plain; charset=utf-8"),))

    return app


class _Handler(WSGIRequestHandler):
    """One request whose head the pool already read: parse it, run the app, answer. No logging."""

    default_request_version = "HTTP/1.0"  # errors for garbage request lines get a status line

    def setup(self) -> None:
        self.connection, head = self.request
        self.rfile = io.BytesIO(head)
        self.wfile = self.connection.makefile("wb")

    def finish(self) -> None:
        try:
            self.wfile.flush()
        finally:
            self.wfile.close()

    def log_message(self, format, *args) -> None:  # noqa: A002 - signature from http.server
        pass


class _WsgiSite:
    """What WSGIRequestHandler needs from its server: the app and the base environment."""

    def __init__(self, app, host: str, port: int) -> None:
        self.app = app
        self.base_environ = {"SERVER_NAME": host, "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PORT": str(port),
                             "REMOTE_HOST": "", "CONTENT_LENGTH": "", "SCRIPT_NAME": ""}

    def get_app(self):
        return self.app


def parse_listen(listen: str) -> tuple[str, int]:
    """``:9188`` -> all interfaces; ``127.0.0.1:9188``; ``[::1]:9188``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {listen!r} is not [HOST]:PORT, e.g. :9188 or 127.0.0.1:9188")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class MetricsServer:
    """Serves the WSGI ``app`` on ``listen`` from background threads; ``stop()`` shuts it down."""

    def __init__(self, app, listen: str, *, tls_cert: str | None = None, tls_key: str | None = None,
                 header_timeout: float = Limits.header_timeout) -> None:
        host, port = parse_listen(listen)
        limits = Limits(header_timeout=header_timeout)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
            listener = socket.create_server((host, port), family=family, backlog=limits.backlog)
        except OSError as err:
            raise ConfigError(f"cannot listen on {listen}: {err.strerror}") from None
        self.tls = bool(tls_cert)
        context = tls_context(tls_cert, tls_key) if tls_cert else None
        self.host, self.port = host, listener.getsockname()[1]
        site = _WsgiSite(app, host, self.port)
        self._pool = PooledServer(listener, lambda sock, head, address: _Handler((sock, head), address, site),
                                  limits=limits, tls=context)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()


def tls_context(cert: str, key: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {getattr(err, 'strerror', None) or err}") \
            from None
    return context
