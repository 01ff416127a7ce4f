"""Database URL text without a driver: where the userinfo ends, which query parameters are secret.

exporter.db parses URLs with SQLAlchemy; this is the part that needs only the standard library, so
a restarted ``serve`` can tell whether its saved state is for the same databases before it imports
SQLAlchemy (exporter.live.warm).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[^@/?:\[\]]*)(:[0-9]*)?([/?].*)?", re.DOTALL)
# Query parameters that hold a secret in some driver (pymysql password/passwd, libpq sslpassword, ...).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|credential|auth", re.IGNORECASE)


def userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the userinfo in ``rest`` (the URL after ``://``), None without one.

    Candidates are the ``@`` followed by ``host[:port]`` and then ``/``, ``?`` or the end; of those,
    the last whose userinfo holds no ``/`` or ``?`` (else the last): ``u:p@ss@h`` -> ``u:p@ss``,
    ``u@h/?password=a@b`` -> ``u``.
    """
    candidates = [i for i, char in enumerate(rest) if char == "@" and _HOST_PORT.fullmatch(rest, i + 1)]
    clean = [i for i in candidates if not set(rest[:i]) & set("/?")]
    return (clean or candidates or [None])[-1]


def location(url: str) -> str:
    """What a URL points at, with no secret in it: scheme, host, port, path and the query parameters
    that are not secret (sorted); the userinfo (user and password) is left out."""
    scheme, sep, rest = url.partition("://")
    at = userinfo_end(rest) if sep and not scheme.startswith("sqlite") else None
    head, _, query = rest[at + 1 if at is not None else 0:].partition("?")
    kept = sorted((key, value) for key, value in parse_qsl(query, keep_blank_values=True)
                  if not SECRET_PARAMETER.search(key))
    return f"{scheme}{sep}{head}" + (f"?{urlencode(kept)}" if kept else "")
