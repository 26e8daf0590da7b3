"""The one seam for Google's HTTP: explicit timeouts, bounded retries, and emulator routing.

Every request vertex-env makes to Google (oauth2, sts, iamcredentials, metadata) goes through
`make_request()`. When `VERTEX_ENV_EMULATOR_HOST=HOST:PORT` is set, every Google host is rewritten to
`http://HOST:PORT` with the path kept, so google-auth runs unmodified against the emulator (its
authorized_user credentials ignore `token_uri`; rewriting here is the clean way in). A request to loopback (the
emulator) goes through a session that ignores HTTP(S)_PROXY (vertex_env.system.loopback.goes_direct); every
other one through a session that honours it (a corporate proxy may be the only way to Google).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import google.auth.exceptions
import google.auth.transport.requests
import requests

from vertex_env.config.routing import (
    EMULATOR_HOST_ENV,
    ORIGINAL_HOST_HEADER,
    emulator_host,
    is_google_host,
)
from vertex_env.system import diagnostics
from vertex_env.system.loopback import goes_direct

__all__ = [
    "EMULATOR_HOST_ENV",
    "RoutedRequest",
    "emulator_host",
    "is_google_host",
    "make_request",
    "route",
]

#: --debug / VERTEX_ENV_DEBUG: a DEBUG record per request (event `google_request`, its fields redacted), which the
#: CLI's handler shows as `vertex-env: debug: …` and `serve --log-format json` as a JSON record.
log = logging.getLogger(__name__)

#: Seconds per attempt when the caller did not choose (google-auth's own default is 120 s).
DEFAULT_TIMEOUT = 15.0
#: Extra attempts after a connection error or timeout (google-auth never retries those).
DEFAULT_RETRIES = 2
BACKOFF_SECONDS = 0.2


def route(url: str, emulator: str | None) -> tuple[str, str | None]:
    """The URL to actually call, and the original host when it was rewritten to the emulator."""
    if not emulator:
        return url, None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not is_google_host(host):
        return url, None
    return urlunsplit(("http", emulator, parts.path, parts.query, parts.fragment)), parts.netloc


class RoutedRequest(google.auth.transport.requests.Request):  # type: ignore[misc]
    """google-auth's requests transport with timeouts, retries and emulator routing."""

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        emulator: str | None = None,
        total: float | None = None,
        debug: bool = False,
    ) -> None:
        super().__init__(session=session)
        #: The same google-auth transport on a session that never reads HTTP(S)_PROXY, for loopback targets.
        self._direct = google.auth.transport.requests.Request(session=_session(direct=True))
        #: --debug / VERTEX_ENV_DEBUG: one line on stderr per request (method, URL, status, time), redacted.
        self.debug = debug
        if debug:
            diagnostics.show_debug()
        self.default_timeout = timeout
        self.retries = retries
        self.emulator = emulator
        self.total = total
        #: time.monotonic() after which no request starts and none waits longer (None: no overall limit).
        self.deadline = None if total is None else time.monotonic() + total
        #: The URL google-auth last asked for (before routing) and the last answer: (url, status, body).
        #: vertex_env.core.refusals reads them to tell "Google said no" from a local or network problem.
        self.last_url: str | None = None
        self.last_response: tuple[str, int, bytes] | None = None

    def __call__(  # type: ignore[override]
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        target, original = route(url, self.emulator)
        if original is not None:
            headers = dict(headers or {})
            headers[ORIGINAL_HOST_HEADER] = original
        if timeout is None or timeout == google.auth.transport.requests._DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        self.last_url = url
        send = self._direct if goes_direct(target) else super().__call__
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                attempt_timeout = self._within_deadline(timeout)
                # The deadline cuts the sockets when the time is up: a slow drip of bytes resets every
                # per-read timeout, never this one (vertex_env.core.deadline).
                with _deadline(self._left()):
                    response = send(
                        target,
                        method=method,
                        body=body,
                        headers=headers,
                        timeout=attempt_timeout,
                        **kwargs,
                    )
                self.last_response = (url, int(response.status), bytes(response.data or b""))
                if self.debug:
                    self._log(method, url, original, int(response.status), started)
                return response
            except google.auth.exceptions.TransportError as err:
                if self.debug:
                    self._log(method, url, original, f"no answer ({type(err).__name__})", started)
                backoff = BACKOFF_SECONDS * (2**attempt)
                if self._left() <= backoff:
                    raise self._timed_out() from err
                if attempt >= self.retries:
                    raise
                time.sleep(backoff)
                attempt += 1

    def _log(
        self, method: str, url: str, original: str | None, outcome: int | str, started: float
    ) -> None:
        """`vertex-env: debug: POST https://oauth2.googleapis.com/token -> 200 (12 ms)`, query secrets and
        anything token-shaped redacted (google-auth puts no secret in a URL, but a metadata or STS URL may
        carry one in its query); the record carries the same text and its fields for a JSON log."""
        from vertex_env.core.refusals import redact

        shown = redact(url)
        via = f" via emulator {self.emulator}" if original is not None else ""
        elapsed = (time.monotonic() - started) * 1000
        text = f"{method} {shown}{via} -> {outcome} ({elapsed:.0f} ms)"
        fields: dict[str, Any] = {"method": method, "url": shown}
        if original is not None:
            fields["emulator"] = self.emulator
        fields["status" if isinstance(outcome, int) else "error"] = outcome
        fields["duration_ms"] = round(elapsed, 1)
        # speaker: the line is vertex-env's own even in `serve`'s text log (as it always was)
        log.debug(
            text, extra={"speaker": "vertex-env", "event": "google_request", "fields": fields}
        )

    def _left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _timed_out(self) -> google.auth.exceptions.TransportError:
        return google.auth.exceptions.TransportError(
            f"no answer within the {self.total:g}s timeout (--timeout, VERTEX_ENV_TIMEOUT)"
        )

    def _within_deadline(self, timeout: Any) -> Any:
        """The attempt's timeout cut to what is left of the overall deadline (which also bounds google-auth's
        own retries of 5xx answers: every one of them comes through here)."""
        left = self._left()
        if left == float("inf"):
            return timeout
        if left <= 0:
            raise self._timed_out()
        if isinstance(timeout, tuple):
            return tuple(min(float(t), left) for t in timeout)
        return min(float(timeout), left)


def _deadline(seconds: float) -> contextlib.AbstractContextManager[object]:
    """The whole exchange's deadline (`--timeout`), or nothing when there is none."""
    if seconds == float("inf"):
        return contextlib.nullcontext()
    from vertex_env.core.deadline import deadline

    return deadline(seconds)


#: One requests session per (process, direct?): a forked child must not share sockets; `direct` ignores the
#: environment's proxies (loopback targets), the other honours them (Google).
_SESSIONS: dict[tuple[int, bool], requests.Session] = {}


def _session(*, direct: bool) -> requests.Session:
    key = (os.getpid(), direct)
    session = _SESSIONS.get(key)
    if session is None:
        if any(pid != key[0] for pid, _ in _SESSIONS):
            _SESSIONS.clear()  # inherited across fork: never used here
        from vertex_env.core.deadline import DeadlineAdapter

        session = requests.Session()
        session.trust_env = not direct
        for prefix in ("https://", "http://"):  # connections a --timeout deadline can cut
            session.mount(prefix, DeadlineAdapter())
        _SESSIONS[key] = session
    return session


def make_request(
    *,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    environ: Mapping[str, str] | None = None,
    total: float | None = None,
    debug: bool = False,
) -> RoutedRequest:
    """The transport every google-auth call in vertex-env uses (routing read from `environ`, default os.environ).

    `total` bounds the whole exchange, every attempt and retry included, from now; `debug` logs each request
    on stderr (the caller reads --debug / VERTEX_ENV_DEBUG through the option table)."""
    return RoutedRequest(
        _session(direct=False),
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        retries=retries,
        emulator=emulator_host(environ),
        total=total,
        debug=debug,
    )
