"""HTTP endpoint: ``/`` landing page, ``/metrics`` exposition; optional TLS and basic auth.

A threaded WSGI server (one thread per request) in front of prometheus-client's own exposition
app, so content negotiation (text / OpenMetrics) and gzip are prometheus-client's.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import html
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter import __version__
from exporter.errors import ConfigError

REALM = "usage-exporter"


@dataclass(frozen=True)
class BasicAuth:
    """One user and the SHA-256 of its password (the clear password is not kept)."""

    user: str
    password_sha256: bytes

    @classmethod
    def from_password(cls, user: str, password: str) -> "BasicAuth":
        if not user or not password:
            raise ConfigError("basic auth needs a non-empty user and password")
        return cls(user, hashlib.sha256(password.encode()).digest())

    def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this user and password (constant time)."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(hashlib.sha256(password.encode()).digest(), self.password_sha256)
        return user_ok and password_ok


def landing_page(sites: list[str]) -> bytes:
    items = "".join(f"<li>{html.escape(site)}</li>" for site in sites)
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>OpenStack usage exporter</title></head>"
        f"<body><h1>OpenStack usage exporter</h1><p>Version {html.escape(__version__)}.</p>"
        "<p><a href=\"metrics\">Metrics</a></p>"
        f"<p>Sites:</p><ul>{items}</ul></body></html>\n"
    ).encode()


class CachedExposition:
    """WSGI app for ``/metrics`` that renders the registry once per published state.

    ``states()`` returns the objects the output depends on (the immutable site states); while
    they are the same objects, the encoded bytes per (content type, gzip) are reused, so a scrape
    costs a dictionary lookup. Anything unusual (``name[]`` filters, non-GET) goes to
    prometheus-client's own app.
    """

    def __init__(self, registry: CollectorRegistry, states: Callable[[], Sequence[object]]) -> None:
        self._registry = registry
        self._states = states
        self._fallback = make_wsgi_app(registry)
        self._cache: tuple[tuple[object, ...], dict[tuple[str, bool], bytes]] = ((), {})

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self._fallback(environ, start_response)
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        gzipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING"))
        body = self._body(encoder, content_type, gzipped)
        headers = [("Content-Type", content_type)] + ([("Content-Encoding", "gzip")] if gzipped else [])
        start_response("200 OK", headers)
        return [body]

    def _body(self, encoder, content_type: str, gzipped: bool) -> bytes:
        states = tuple(self._states())
        cached_states, bodies = self._cache
        if len(states) != len(cached_states) or any(a is not b for a, b in zip(states, cached_states)):
            bodies = {}
            self._cache = (states, bodies)  # holding the states keeps their identities unique
        body = bodies.get((content_type, gzipped))
        if body is None:
            body = encoder(self._registry)
            body = gzip.compress(body) if gzipped else body
            bodies[(content_type, gzipped)] = body
        return body


def exporter_app(registry: CollectorRegistry, *, sites: list[str], auth: BasicAuth | None = None,
                 states: Callable[[], Sequence[object]] | None = None):
    """WSGI app: ``/`` landing page, ``/metrics`` exposition, anything else 404.

    With ``states``, ``/metrics`` output is cached per published state (see CachedExposition).
    """
    metrics_app = CachedExposition(registry, states) if states is not None else make_wsgi_app(registry)
    landing = landing_page(sites)

    def app(environ, start_response):
        if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("WWW-Authenticate", f'Basic realm="{REALM}"'),
                                                ("Content-Type", "text/plain; charset=utf-8")])
            return [b"401 Unauthorized\n"]
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"404 Not Found: see /metrics\n"]

    return app


class _Handler(WSGIRequestHandler):
    """Quiet handler; finishes the TLS handshake in the request thread, not the accept loop."""

    timeout = 30  # a stuck client cannot hold a thread forever

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format, *args) -> None:  # noqa: A002 - signature from http.server
        pass


def parse_listen(listen: str) -> tuple[str, int]:
    """``:9188`` -> all interfaces; ``127.0.0.1:9188``; ``[::1]:9188``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {listen!r} is not [HOST]:PORT, e.g. :9188 or 127.0.0.1:9188")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class MetricsServer:
    """Serves ``app`` on ``listen`` in a background thread; ``stop()`` shuts it down."""

    def __init__(self, app, listen: str, *, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        host, port = parse_listen(listen)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            address_family = family

            def handle_error(self, request, client_address) -> None:
                """A client that hung up or spoke plain HTTP to TLS: no traceback on stderr."""

        try:
            self._httpd = make_server(host, port, app, Server, handler_class=_Handler)
        except OSError as err:
            raise ConfigError(f"cannot listen on {listen}: {err.strerror}") from None
        self.tls = bool(tls_cert)
        if tls_cert:
            self._httpd.socket = tls_context(tls_cert, tls_key).wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def tls_context(cert: str, key: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {getattr(err, 'strerror', None) or err}") \
            from None
    return context
