"""Opening site databases: one logical schema name per OpenStack database, any SQLAlchemy URL.

Logical schemas are ``nova``, ``nova_api``, ``blazar``, ... — queries always say
``<schema>.<table>``. ``databases`` maps a logical schema to its physical name
(e.g. ``{"nova": "test_nova"}``), so several sites or test runs can share one server.

- MySQL/MariaDB: one database per schema on the server named by the URL; physical names are
  applied with SQLAlchemy's ``schema_translate_map``.
- SQLite: the URL names a main file; each schema is the sibling file ``<physical>.sqlite``,
  ATTACHed under its logical name (read-only unless ``writable``).

This is the only module besides ``extract``/``sitegen`` that knows about engines.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from exporter.config import KNOWN_SCHEMAS
from exporter.dburl import SECRET_PARAMETER, userinfo_end
from exporter.errors import ConfigError, DatabaseError


def parse_url(url: str | URL) -> URL:
    """A database URL, read the way people write them.

    The password may hold any character, also a raw ``@``, ``:``, ``/`` or ``?``: the userinfo
    ends at the ``@`` followed by a plausible ``host[:port]`` (SQLAlchemy alone takes a raw ``@``'s
    tail as the host and prints it in "cannot connect to" messages); a ``?password=`` value may
    hold them too. An unparsable URL is a ConfigError that does not repeat it.
    """
    if isinstance(url, URL):
        return url
    text = str(url)
    scheme, sep, rest = text.partition("://")
    at = userinfo_end(rest) if sep and not scheme.startswith("sqlite") else None
    try:
        if at is None:
            return make_url(text)
        user, colon, password = rest[:at].partition(":")
        userinfo = quote(unquote(user), safe="") + (colon + quote(unquote(password), safe="") if colon else "")
        head, mark, query = rest[at + 1:].partition("?")
        parsed = make_url(f"{scheme}://{userinfo}@{head}")
        return parsed.update_query_string(query) if mark else parsed
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise ConfigError("the database URL cannot be parsed (not shown: it may hold a password); "
                          "percent-encode special characters in user and password") from None


_seen_secrets: set[str] = set()  # every password open_engine was given, scrubbed from messages


def _remember_secrets(url: URL) -> URL:
    values = [url.password] + [v for k, v in url.query.items() if SECRET_PARAMETER.search(k)]
    for value in values:
        for item in (value,) if isinstance(value, str) else (value or ()):
            if item and len(item) >= 3:
                _seen_secrets.add(item)
    return url


def masked(url: str | URL) -> str:
    """The URL as text with every password (userinfo or query parameter) replaced by ``***``."""
    try:
        parsed = parse_url(url)
    except ConfigError:  # an unparsable URL: show nothing that could be secret
        return "<unparsable database URL>"
    query = {key: ("***" if SECRET_PARAMETER.search(key) else value) for key, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def redact(text: str) -> str:
    """``text`` with every URL in it masked and every password seen so far replaced by ``***``."""
    def masked_match(match: re.Match) -> str:
        token = match.group(0)
        core = token.rstrip(":;,.)'\"")
        return masked(core) + token[len(core):]

    text = _URL_IN_TEXT.sub(masked_match, text)
    for secret in sorted(_seen_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _scrub(text)


def is_sqlite(url: str | URL) -> bool:
    return parse_url(url).get_backend_name() == "sqlite"


def sqlite_schema_file(url: str | URL, physical: str) -> Path:
    """Where a schema lives for a SQLite URL: beside the main file, as ``<physical>.sqlite``."""
    main = parse_url(url).database
    if not main or main == ":memory:":
        raise DatabaseError("SQLite URLs must name a file, e.g. sqlite:///demo/site.sqlite", kind="connection_error")
    return _schema_file(Path(main).resolve().parent, physical)


def open_engine(
    url: str | URL,
    databases: Mapping[str, str] | None = None,
    *,
    writable: bool = False,
    connect_timeout: float = 10,
    read_timeout: float | None = None,
) -> Engine:
    """An engine on which ``<logical schema>.<table>`` resolves to the right database.

    Read-only engines (the default) start every transaction READ ONLY on MySQL and open SQLite
    files with ``mode=ro``, so a bug here cannot write to a production database.
    """
    url = _remember_secrets(parse_url(url))
    mapping = {schema: (databases or {}).get(schema, schema) for schema in KNOWN_SCHEMAS}
    mapping.update(databases or {})
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, mapping, writable=writable)
    if backend in ("mysql", "mariadb"):
        connect_args: dict[str, object] = {"connect_timeout": int(connect_timeout)}
        if read_timeout is not None:
            connect_args["read_timeout"] = int(read_timeout)
        engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)

        @sa.event.listens_for(engine, "connect")
        def _utc_session(dbapi_conn, _record):  # TIMESTAMP columns are converted to the session zone
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")

        if not writable:
            @sa.event.listens_for(engine, "begin")
            def _read_only(conn):  # every transaction, including the implicit ones
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        translate = {logical: physical for logical, physical in mapping.items() if logical != physical}
        return engine.execution_options(schema_translate_map=translate) if translate else engine
    raise DatabaseError(f"unsupported database URL {masked(url)} (use mysql+pymysql:// or sqlite:///)",
                        kind="connection_error")


def _sqlite_engine(url: URL, mapping: Mapping[str, str], *, writable: bool) -> Engine:
    main = url.database
    if not main or main == ":memory:":
        raise DatabaseError("SQLite URLs must name a file, e.g. sqlite:///demo/site.sqlite", kind="connection_error")
    main_path = Path(main).resolve()
    if writable:
        main_path.parent.mkdir(parents=True, exist_ok=True)
    elif not main_path.exists():
        raise DatabaseError(f"SQLite database {main_path} does not exist", kind="connection_error")
    mode = "rwc" if writable else "ro"
    schema_files = {logical: _schema_file(main_path.parent, physical) for logical, physical in mapping.items()}

    def connect() -> sqlite3.Connection:
        # URIs from Path.as_uri() percent-encode ?, # and %, so no file name can add URI parameters
        # (mode=rw); the URI is bound as a parameter and the alias quoted, so no name becomes SQL.
        conn = sqlite3.connect(f"{main_path.as_uri()}?mode={mode}", uri=True, check_same_thread=False)
        for logical, path in schema_files.items():
            if writable or path.exists():
                conn.execute(f"ATTACH DATABASE ? AS {_sqlite_identifier(logical)}", (f"{path.as_uri()}?mode={mode}",))
        return conn

    return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)


def _schema_file(folder: Path, physical: str) -> Path:
    """``<folder>/<physical>.sqlite``; a name that is a path (``../x``, ``/etc/x``) is refused."""
    if not physical or "/" in physical or "\\" in physical or "\0" in physical or physical in (".", ".."):
        raise DatabaseError(f"SQLite database name {physical!r} is not a plain file name", kind="connection_error")
    return folder / f"{physical}.sqlite"


def _sqlite_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def classify(exc: BaseException, *, what: str) -> DatabaseError:
    """Turn a driver/SQLAlchemy error into a :class:`DatabaseError` with a kind and no secrets."""
    code = None
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        code = args[0]
    text = str(orig).lower()
    kind = _KIND_BY_CODE.get(code) if code is not None else None
    if kind is None:
        kind = next((k for k, needles in _KIND_BY_TEXT if any(n in text for n in needles)), None)
    client_side = code is None or 2000 <= code < 3000  # server errors (1xxx, 3xxx+) are about the query
    if kind is None and client_side and isinstance(exc, (sa.exc.OperationalError, OSError)):
        kind = "connection_error"
    if code == 2013 and "timed out" in text:  # read_timeout expired while waiting for a query
        kind = "timeout"
    messages = {
        "auth_error": "access denied (check the user and password)",
        # MariaDB/MySQL answer "denied", not "doesn't exist", for a table the user has no grant on
        "permission_denied": "absent or not granted (no such table, or no SELECT on it for this user: "
                             "see `usage-exporter grants`)",
        "missing": "does not exist",
        "timeout": "query timed out",
        "connection_error": f"cannot connect ({_first_line(orig)})",
    }
    kind = kind or "query_error"
    return DatabaseError(redact(f"{what}: {messages.get(kind, _first_line(orig))}"), kind=kind)


# Driver error codes first (a 1044 message also says "access denied for user"), then message text.
_KIND_BY_CODE = {
    1045: "auth_error", 1698: "auth_error",
    1142: "permission_denied", 1143: "permission_denied", 1044: "permission_denied",
    1146: "missing", 1049: "missing",
    3024: "timeout", 1969: "timeout", 1317: "timeout",
    2002: "connection_error", 2003: "connection_error", 2005: "connection_error", 2006: "connection_error",
    2013: "connection_error",
}
_KIND_BY_TEXT = (
    ("auth_error", ("access denied for user",)),
    ("permission_denied", ("command denied",)),
    ("missing", ("no such table", "doesn't exist", "unknown database")),
    ("timeout", ("timed out", "timeout", "interrupted")),
)


def _first_line(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(exc)  # PyMySQL (code, msg)
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return _scrub(line)[:300]


def _scrub(text: str) -> str:
    """Remove anything that looks like a password from a driver message."""
    for key, value in os.environ.items():
        if value and len(value) >= 4 and "PASSWORD" in key.upper() and value in text:
            text = text.replace(value, "***")
    return text
