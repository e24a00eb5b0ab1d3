"""HTTP for the ``openai`` backend: settings, the API key, error wording, the one retry helper,
the event loop, and the watchdog that bounds every wait of a stream.

The stack was chosen by the client's CPU per request, because a load client shares its host with
the server it measures (``benchmarks/load_client_vs_locust.py`` runs it beside locust and a bare
httpx client): aiohttp instead of httpx cut it to about a third, uvloop instead of asyncio's own
loop by another sixth (figures in docs/openai-backend.md). Both are imported only when a backend
talks to a server, never by the plugin.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import ssl

    import aiohttp

API_KEY_VARIABLES: tuple[str, ...] = ("MATHPERF_API_KEY", "OPENAI_API_KEY")
_SNIPPET_CHARS = 200
ERROR_BODY_BYTES = 64 * 1024
#: After ``[DONE]``, how long the rest of the body may take before the connection is simply closed.
DRAIN_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class OpenAISettings:
    """How patient the client is; every wait is bounded, and retries only happen before the first byte."""

    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0  # request sent -> first event of the stream
    read_timeout_s: float = 120.0  # longest silence between two reads once streaming
    generation_timeout_s: float = 900.0  # the whole call, when the request sets no timeout_s
    retries: int = 3  # for connection errors and 429/5xx, before the first byte only
    backoff_s: float = 0.5  # doubled after each retry
    backoff_max_s: float = 8.0
    load_check_timeout_s: float = 10.0  # GET /models at load()

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "first_byte_timeout_s", "read_timeout_s", "generation_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OpenAISettings.{name} must be > 0, got {getattr(self, name)!r}")
        if self.retries < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("OpenAISettings: retries and back-off must be >= 0")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based); a server's Retry-After wins, capped."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_s)
        return min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)


class Secret:
    """Holds the API key so that no repr, traceback local or f-string ever shows it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return f"<API key from {self.source}>"

    __str__ = __repr__


def api_key_from_environment() -> Secret | None:
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return Secret(value, variable)
    return None


def display_endpoint(endpoint: str) -> str:
    """The base URL as messages show it: trailing slash and any user:password@ removed."""
    scheme, sep, rest = endpoint.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}".rstrip("/")


def is_loopback(endpoint: str) -> bool:
    host = display_endpoint(endpoint).partition("://")[2].split("/", 1)[0]
    host = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", 1)[0] + "]"
    return host in ("127.0.0.1", "localhost", "[::1]") or host.startswith("127.")


def one_line(text: str, limit: int = _SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_detail(body: bytes | str) -> str:
    """The useful part of an error body: OpenAI's ``error.message``, FastAPI's ``detail``, or the text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except ValueError:
        return one_line(text) or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(error.get(key), str):
                    return one_line(error[key])
        if isinstance(error, str):
            return one_line(error)
        if "detail" in payload:
            return one_line(str(payload["detail"]))
    return one_line(text)


def describe_transport_error(exc: BaseException) -> str:
    """A short human phrase for an aiohttp transport error ('connection refused', 'connect timed out')."""
    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "unknown host"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the server closed the connection before the body was complete"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    cause: BaseException | None = exc
    for _ in range(10):  # the OSError that names the reason may sit a few levels down
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        cause = getattr(cause, "os_error", None) or cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return one_line(text, 120)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off
    return seconds if math.isfinite(seconds) else None


# --------------------------------------------------------------------------------------------
# The one retry helper: GET /models at load and every streamed generation go through it.
# --------------------------------------------------------------------------------------------


class Retryable(Exception):
    """A failure before the first byte that a retry may fix (connection error, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Attempts:
    """How an operation got its result: the retries it needed and the time they cost."""

    retries: int
    wait_s: float  # first attempt started -> the successful attempt started (failures + back-off)


async def with_retries(
    attempt: Callable[[float], Awaitable[T]],
    settings: OpenAISettings,
    give_up: Callable[[Retryable, int], Exception],
    on_retry: Callable[[int], None] | None = None,
) -> tuple[T, Attempts]:
    """Run ``attempt(started)`` until it succeeds, at most ``1 + settings.retries`` times.

    Each attempt gets the perf_counter time it started, so that what it measures counts from
    there; only :class:`Retryable` failures are retried, with back-off (Retry-After wins);
    ``give_up(last_failure, attempts)`` makes the exception raised when they run out.
    """
    first_started: float | None = None
    for number in range(1, settings.retries + 2):
        started = time.perf_counter()
        if first_started is None:
            first_started = started
        try:
            value = await attempt(started)
        except Retryable as failure:
            if number > settings.retries:
                raise give_up(failure, number) from None
            if on_retry is not None:
                on_retry(number)
            await asyncio.sleep(settings.backoff(number, failure.retry_after))
            continue
        return value, Attempts(number - 1, started - first_started)
    raise AssertionError("unreachable: the last attempt either returns or gives up")


# --------------------------------------------------------------------------------------------
# Event loop, sessions and the watchdog
# --------------------------------------------------------------------------------------------


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (every platform but Windows), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()



def new_session(
    settings: OpenAISettings,
    endpoint: str,
    api_key: Secret | None,
    ssl_context: ssl.SSLContext | None,
    max_connections: int = 1,
) -> aiohttp.ClientSession:
    """An aiohttp session for ``endpoint``; call it inside the event loop that will use it.

    Silence is bounded by :class:`Watchdog`, not by aiohttp's read timeout: one timer per stream
    instead of one per read, and a first-byte wait that may differ from the silence between reads.
    """
    import aiohttp

    headers = {"Accept": "text/event-stream"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        ssl=ssl_context if ssl_context is not None else True,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout_s, sock_connect=settings.connect_timeout_s
        ),
        # A proxy from the environment may be needed for a remote server, never for loopback.
        trust_env=not is_loopback(endpoint),
        raise_for_status=False,
    )


class Watchdog:
    """Cancels the current task when the first event is late or the stream goes silent.

    Rescheduled only when its timer fires, so a stream of N chunks costs a handful of timer
    callbacks instead of N. ``fired`` says which limit ran out, so the canceller can tell its
    cancellation from any other.
    """

    __slots__ = ("_first_byte_s", "_silence_s", "_task", "_handle", "_loop", "last_read_at", "fired", "draining")

    def __init__(self, started: float, first_byte_s: float, silence_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._first_byte_s = first_byte_s
        self._silence_s = silence_s
        self.last_read_at: float | None = None  # perf_counter of the last read that carried an event
        self.fired: str | None = None  # "first byte" | "silence" | "drain"
        self.draining = False
        self._handle = self._loop.call_later(max(started + first_byte_s - time.perf_counter(), 0.0), self._check)

    def _check(self) -> None:
        now = time.perf_counter()
        if self.last_read_at is None:
            self.fired = "first byte"
        else:
            limit = DRAIN_S if self.draining else self._silence_s
            due = self.last_read_at + limit
            if now < due:
                self._handle = self._loop.call_later(due - now, self._check)
                return
            self.fired = "drain" if self.draining else "silence"
        if self._task is not None:
            self._task.cancel()

    def saw_data(self, now: float) -> None:
        """Event data arrived: the silence limit now counts from here."""
        first = self.last_read_at is None
        self.last_read_at = now
        if first:  # the timer was set for the first byte; a shorter silence limit is due sooner
            self._reschedule(now + self._silence_s)

    def drain(self, now: float) -> None:
        """The answer is complete: read on for at most ``DRAIN_S`` so the connection can be reused."""
        self.draining = True
        self.last_read_at = now
        self._reschedule(now + DRAIN_S)

    def _reschedule(self, due: float) -> None:
        self._handle.cancel()
        self._handle = self._loop.call_later(max(due - time.perf_counter(), 0.0), self._check)

    def stop(self) -> None:
        self._handle.cancel()

    def absorb_cancel(self) -> None:
        """After catching our own cancellation: let the task run on normally (Python 3.11+ counts them)."""
        uncancel = getattr(self._task, "uncancel", None)
        if uncancel is not None:
            uncancel()
