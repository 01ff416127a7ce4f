"""HTTP basic auth for the live endpoint, with failed attempts logged and throttled per client address.

Guessing a password over HTTP must be slow: after ``free_failures`` failed attempts, an address is
refused (429 with Retry-After, without looking at its credentials) for 1 s, then 2, 4, ... up to
``max_lockout`` seconds after each further failure; a success forgets its failures. The table of
addresses holds at most ``max_addresses`` entries (the least recently failed are forgotten
first), so a flood of source addresses cannot grow memory. Failures are logged with the address
(never the user or password sent) at the first failure and whenever a lockout doubles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.errors import ConfigError

log = logging.getLogger("exporter.live")


class AuthThrottle:
    """Failed basic-auth attempts per client address (see the module docstring)."""

    def __init__(self, *, free_failures: int = 5, first_lockout: float = 1.0, max_lockout: float = 60.0,
                 max_addresses: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._free = free_failures
        self._first = first_lockout
        self._max = max_lockout
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (count, locked until)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, address: str) -> int:
        """Whole seconds ``address`` must still wait (0: its credentials may be checked)."""
        with self._lock:
            _, locked_until = self._failures.get(address, (0, 0.0))
        return max(0, math.ceil(locked_until - self._clock()))

    def failed(self, address: str) -> None:
        """Count a failed attempt; lock the address out once it is past its free failures."""
        with self._lock:
            count = self._failures.pop(address, (0, 0.0))[0] + 1
            lockout = 0.0 if count < self._free else min(self._max, self._first * 2 ** (count - self._free))
            self._failures[address] = (count, self._clock() + lockout)
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        if count == 1 or (count >= self._free and (count - self._free) & (count - self._free - 1) == 0):
            refused = f"; refusing it for {lockout:g} s" if lockout else ""
            log.warning("basic auth failed for client %s (%d failed attempt(s))%s", address, count, refused)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


@dataclass(frozen=True)
class BasicAuth:
    """One user and the SHA-256 of its password (the clear password is not kept), plus the throttle."""

    user: str
    password_sha256: bytes
    throttle: AuthThrottle = field(default_factory=AuthThrottle, compare=False, repr=False)

    @classmethod
    def from_password(cls, user: str, password: str, throttle: AuthThrottle | None = None) -> "BasicAuth":
        if not user or not password:
            raise ConfigError("basic auth needs a non-empty user and password")
        return cls(user, hashlib.sha256(password.encode()).digest(), throttle or AuthThrottle())

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

    def check(self, header: str | None, address: str) -> int | None:
        """None if allowed, else the HTTP status to answer: 401, or 429 while ``address`` is locked out."""
        if self.throttle.retry_after(address):
            return 429
        if self.allows(header):
            self.throttle.succeeded(address)
            return None
        self.throttle.failed(address)
        return 401
