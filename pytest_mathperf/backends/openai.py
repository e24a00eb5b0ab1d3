"""The ``openai`` backend: a model served behind an OpenAI-compatible API (vLLM, SGLang, TGI, llama.cpp).

Production services do not call ``model.generate`` in-process; this backend measures what their
users see: streamed chat completions over HTTP. One code path serves both the gate (``generate``,
synchronous, one generation at a time) and load profiles (``astream``, many concurrent streams
on one event loop), and one sans-IO reader (:class:`ChatStream`) parses every stream.

The API key (``MATHPERF_API_KEY``, else ``OPENAI_API_KEY``) goes into the ``Authorization`` header
and nowhere else: not into messages, reprs, ``LoadInfo`` or history.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pytest_mathperf.backends import (
    BackendError,
    BackendOptions,
    FinishReason,
    Generation,
    GenerationRequest,
    GenerationTimeout,
    LoadInfo,
    ModelLoadError,
)

if TYPE_CHECKING:  # httpx is imported when a backend is created, never by the plugin itself
    import ssl

    import httpx

API_KEY_VARIABLES: tuple[str, ...] = ("MATHPERF_API_KEY", "OPENAI_API_KEY")
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_SNIPPET_CHARS = 200
_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class OpenAISettings:
    """How patient the client is; every wait is bounded, and retries only happen before the first byte."""

    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0  # request sent -> first event of the stream
    read_timeout_s: float = 120.0  # longest silence between two events once streaming
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


class _Secret:
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


def _api_key_from_environment() -> _Secret | None:
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return _Secret(value, variable)
    return None


def _display_endpoint(endpoint: str) -> str:
    """The base URL as messages show it: trailing slash and any user:password@ removed."""
    scheme, sep, rest = endpoint.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}".rstrip("/")


def _is_loopback(endpoint: str) -> bool:
    host = _display_endpoint(endpoint).partition("://")[2].split("/", 1)[0]
    host = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", 1)[0] + "]"
    return host in ("127.0.0.1", "localhost", "[::1]") or host.startswith("127.")


def _one_line(text: str, limit: int = _SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_detail(body: bytes) -> str:
    """The useful part of an error body: OpenAI's ``error.message``, FastAPI's ``detail``, or the text."""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return _one_line(text) or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(error.get(key), str):
                    return _one_line(error[key])
        if isinstance(error, str):
            return _one_line(error)
        if "detail" in payload:
            return _one_line(str(payload["detail"]))
    return _one_line(text)


def _describe_transport_error(exc: Exception) -> str:
    """A short human phrase for an httpx transport error ('connection refused', 'connect timeout')."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx.PoolTimeout):
        return "no free connection in the client's pool"
    text = str(exc) or type(exc).__name__
    cause: BaseException | None = exc
    for _ in range(10):  # anyio wraps the OSError that names the reason a few levels down
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        cause = cause.__cause__ or cause.__context__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "unknown host"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"server closed the connection ({_one_line(text, 120)})"
    return _one_line(text, 120)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off
    return seconds if math.isfinite(seconds) else None


# --------------------------------------------------------------------------------------------
# The one SSE reader, used by the synchronous gate and by load profiles alike.
# --------------------------------------------------------------------------------------------

TokenCountSource = Literal["usage", "tokenizer", "chunks"]  # as Generation.token_count_source


@dataclass(frozen=True)
class StreamEvent:
    """One delta that carried text, with the time it reached us."""

    at: float  # perf_counter seconds
    kind: Literal["content", "reasoning"]
    text: str


class StreamCutOff(Exception):
    """Internal: the server ended the stream before saying it was finished."""


class ChatStream:
    """Sans-IO reader of one streamed chat completion: feed it SSE lines, ask it for the Generation.

    Knows nothing about sockets, so the sync and async paths share it, and tests and benchmarks
    can drive it directly. Reasoning arrives either as ``reasoning_content``/``reasoning`` deltas
    (vLLM, SGLang with a reasoning parser, transformers serve) or inline as ``<think>…</think>``.
    """

    __slots__ = (
        "started",
        "events",
        "data_events",
        "finish_reason",
        "usage",
        "done",
        "server_error",
        "first_event_at",
        "completed_at",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.events: list[StreamEvent] = []
        self.data_events = 0  # every `data:` event, including role-only and usage-only ones
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False  # `data: [DONE]` seen
        self.server_error: str | None = None
        self.first_event_at: float | None = None
        self.completed_at: float | None = None  # [DONE], or the end of the body

    @property
    def finished(self) -> bool:
        """The server said the generation is over (a finish_reason or [DONE]); EOF before this is a cut."""
        return self.done or self.finish_reason is not None

    def feed_line(self, line: str, now: float) -> bool:
        """Consume one line of the event stream; True once the stream is complete or failed."""
        if not line.startswith("data:"):
            return False  # blank separators, `:` keep-alive comments, `event:`/`id:` fields
        payload = line[5:].strip()
        if self.first_event_at is None:
            self.first_event_at = now
        self.data_events += 1
        if payload == "[DONE]":
            self.done = True
            self.completed_at = now
            return True
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.server_error = f"unparseable event: {_one_line(payload, 120)}"
            return True
        if not isinstance(chunk, dict):
            self.server_error = f"unexpected event: {_one_line(payload, 120)}"
            return True
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk)
            if isinstance(error, dict):
                error = error.get("message") or error.get("detail") or json.dumps(error)
            self.server_error = _one_line(str(error))
            return True
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a malformed choice is not ours to read, and must not abort a load run
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self.events.append(StreamEvent(now, "reasoning", reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.events.append(StreamEvent(now, "content", content))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return False

    @property
    def text_events(self) -> int:
        return len(self.events)

    def text(self) -> str:
        """The whole output, with separately streamed reasoning wrapped in ``<think>…</think>``.

        Answer extraction reads after ``</think>`` (SPEC 2.2), so reasoning streamed apart from
        the content must not be mistaken for the answer, nor dropped from the raw output.
        """
        reasoning = "".join(event.text for event in self.events if event.kind == "reasoning")
        content = "".join(event.text for event in self.events if event.kind == "content")
        if not reasoning:
            return content
        closed = THINK_CLOSE if (content or self.finish_reason != "length") else ""
        return f"{THINK_OPEN}{reasoning}{closed}{content}"

    def ttft_at(self) -> float | None:
        return self.events[0].at if self.events else None

    def answer_started_at(self) -> float | None:
        """When the first character of the answer (after the reasoning) arrived; None if it never did."""
        if any(event.kind == "reasoning" for event in self.events):
            for event in self.events:
                if event.kind == "content" and event.text.strip():
                    return event.at
            return None
        # Inline reasoning: the answer begins after the last </think>, or at once when there is none.
        content = "".join(event.text for event in self.events)
        close = content.rfind(THINK_CLOSE)
        if close >= 0:
            start = close + len(THINK_CLOSE)
        elif content.lstrip().startswith(THINK_OPEN):
            return None  # still inside <think> when the stream ended
        else:
            start = 0
        while start < len(content) and content[start].isspace():
            start += 1
        if start >= len(content):
            return None
        offset = 0
        for event in self.events:
            offset += len(event.text)
            if offset > start:
                return event.at
        return None


@dataclass(frozen=True)
class StreamResult:
    """One streamed generation and what it cost the client: load profiles keep all of it."""

    generation: Generation
    retries: int
    client_ms: float  # time spent in our own reading and bookkeeping, not waiting on the socket
    data_events: int


@dataclass
class _CallState:
    """What one generate call has seen so far, across its attempts (mutable, private)."""

    stream: ChatStream | None = None
    retries: int = 0
    client_s: float = 0.0


class _Retryable(Exception):
    """Internal: a failure before the first byte that a retry may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint, streamed.

    Sampling settings map onto the request; ``max_new_tokens`` becomes ``max_tokens``;
    ``repetition_penalty`` is sent as the extra field vLLM and SGLang accept, and only when set.
    """

    name: ClassVar[str] = "openai"
    in_process: ClassVar[bool] = False

    def __init__(self, options: BackendOptions, settings: OpenAISettings | None = None) -> None:
        if not options.endpoint:
            raise ModelLoadError(
                "--mathperf-backend openai needs --mathperf-endpoint URL, e.g. http://127.0.0.1:8000/v1"
            )
        if not options.endpoint.startswith(("http://", "https://")):
            raise ModelLoadError(
                f"--mathperf-endpoint {options.endpoint!r}: expected an http:// or https:// URL, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        self.options = options
        self.model = options.model
        self.settings = settings or OpenAISettings()
        self.endpoint = options.endpoint.rstrip("/")
        self.display_endpoint = _display_endpoint(self.endpoint)
        self._api_key = _api_key_from_environment()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._tokenizer: Any = None
        self._tokenizer_tried = False
        self.load_info: LoadInfo | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, endpoint={self.display_endpoint!r})"

    # ---- clients -----------------------------------------------------------------------------

    def new_async_client(self, max_connections: int = 1) -> httpx.AsyncClient:
        """An HTTP client for this endpoint, with the key in its headers; load profiles make one per user."""
        import httpx

        headers = {"Accept": "text/event-stream"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._ssl_context is None:
            # Built once: each client building its own costs ~20 ms of CPU, seconds for 500 users.
            self._ssl_context = httpx.create_ssl_context(trust_env=True)
        settings = self.settings
        return httpx.AsyncClient(
            headers=headers,
            verify=self._ssl_context,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.connect_timeout_s,
                pool=settings.generation_timeout_s,
            ),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # A proxy from the environment may be needed for a remote server, never for loopback.
            trust_env=not _is_loopback(self.endpoint),
        )

    def _run(self, coroutine: Any) -> Any:
        """Run one coroutine on this backend's private event loop (the gate is synchronous)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("OpenAIBackend.generate() is synchronous; from async code, await astream()")
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def _sync_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self.new_async_client(max_connections=1)
        return self._client

    # ---- load ----------------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Check that the server answers and serves this model; one clear error for the whole model."""
        self.load_info = self._run(self._aload())
        return self.load_info

    async def _aload(self) -> LoadInfo:
        import httpx

        client = self._sync_client()
        url = f"{self.endpoint}/models"
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                response = await asyncio.wait_for(
                    client.get(url, headers={"Accept": "application/json"}),
                    timeout=self.settings.load_check_timeout_s,
                )
                break
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                reason = (
                    f"no answer within {self.settings.load_check_timeout_s:g} s"
                    if isinstance(exc, (asyncio.TimeoutError, httpx.TimeoutException))
                    and not isinstance(exc, httpx.ConnectTimeout)
                    else _describe_transport_error(exc)
                )
                attempt += 1
                if attempt > self.settings.retries:
                    tries = f" (tried {attempt} times)" if attempt > 1 else ""
                    raise ModelLoadError(
                        f"cannot reach {self.display_endpoint}: {reason}{tries}; is the server running?"
                    ) from None
                await asyncio.sleep(self.settings.backoff(attempt))
        load_s = time.perf_counter() - started
        if response.status_code in (401, 403):
            raise ModelLoadError(
                f"{self.display_endpoint} rejected the request (HTTP {response.status_code}: "
                f"{self._scrub(_error_detail(response.content))}); {self._key_hint()}"
            )
        if response.status_code == 404:
            raise ModelLoadError(
                f"{self.display_endpoint}/models not found (HTTP 404); the endpoint should be the API base "
                "URL, usually ending in /v1"
            )
        if response.status_code != 200:
            raise ModelLoadError(
                f"{self.display_endpoint}/models answered HTTP {response.status_code}: "
                f"{self._scrub(_error_detail(response.content))}"
            )
        try:
            listing = response.json()
            entries = [entry for entry in listing["data"] if isinstance(entry, dict)]
            served = [str(entry["id"]) for entry in entries]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"{self.display_endpoint}/models did not answer with an OpenAI model list: "
                f"{self._scrub(_error_detail(response.content))}"
            ) from None
        if self.model not in served:
            raise ModelLoadError(
                f"model {self.model!r} is not served by {self.display_endpoint}; "
                f"it serves: {', '.join(served) or '(nothing)'} (pass one of them to --mathperf-model)"
            )
        entry = entries[served.index(self.model)]
        details = {
            "endpoint": self.display_endpoint,
            "served_models": ", ".join(served),
            "api_key": self._api_key.source if self._api_key else "none",
        }
        if response.headers.get("server"):
            details["server"] = response.headers["server"]
        for key in ("owned_by", "root", "max_model_len"):
            if entry.get(key) not in (None, ""):
                details[key] = self._scrub(str(entry[key]))
        return LoadInfo(
            model=self.model,
            source=self.display_endpoint,
            revision=None,
            dtype=self.options.dtype if self.options.dtype != "auto" else "server",
            device=None,
            load_s=load_s,
            details=details,
        )

    # ---- generation ----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        return self.stream(request).generation

    def stream(self, request: GenerationRequest) -> StreamResult:
        """``generate`` with what the call cost the client (retries, own time), for tests and benchmarks."""
        return self._run(self.astream(request, self._sync_client()))

    async def agenerate(self, request: GenerationRequest, client: httpx.AsyncClient) -> Generation:
        return (await self.astream(request, client)).generation

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": message.role, "content": message.content} for message in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.repetition_penalty is not None:
            body["repetition_penalty"] = request.repetition_penalty
        return body

    async def astream(self, request: GenerationRequest, client: httpx.AsyncClient) -> StreamResult:
        """Stream one chat completion on ``client``; raise BackendError/GenerationTimeout on failure.

        Connection errors and 429/5xx are retried with back-off until the first event arrives,
        never after: a retried half-answer would be measured twice.
        """
        started = time.perf_counter()
        limit_s = request.timeout_s or self.settings.generation_timeout_s
        state = _CallState()
        try:
            await asyncio.wait_for(self._attempts(request, client, started, state), timeout=limit_s)
        except asyncio.TimeoutError:
            chunks = state.stream.data_events if state.stream is not None else 0
            raise GenerationTimeout(
                f"generation on {self.display_endpoint} ran past {limit_s:g} s "
                f"(after {chunks} chunks, {state.retries} retries)"
            ) from None
        stream = state.stream
        assert stream is not None  # _attempts returns only after a complete stream
        bookkeeping_started = time.perf_counter()
        generation = self._generation(stream, request, started, stream.completed_at or bookkeeping_started)
        client_s = state.client_s + (time.perf_counter() - bookkeeping_started)
        return StreamResult(generation, state.retries, client_s * 1000.0, stream.data_events)

    async def _attempts(
        self, request: GenerationRequest, client: httpx.AsyncClient, started: float, state: _CallState
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._stream_once(request, client, started, state)
                return
            except _Retryable as failure:
                attempt += 1
                if attempt > self.settings.retries:
                    raise BackendError(f"{failure} (gave up after {attempt} attempts)") from None
                state.retries = attempt
                await asyncio.sleep(self.settings.backoff(attempt, failure.retry_after))

    async def _stream_once(
        self, request: GenerationRequest, client: httpx.AsyncClient, started: float, state: _CallState
    ) -> None:
        import httpx

        attempt_started = time.perf_counter()
        url = f"{self.endpoint}/chat/completions"
        where = f"{self.display_endpoint}/chat/completions"
        stream = ChatStream(started)
        state.stream = stream
        http_request = client.build_request("POST", url, json=self.request_body(request))
        first_byte_s = self.settings.first_byte_timeout_s
        try:
            response = await asyncio.wait_for(client.send(http_request, stream=True), timeout=first_byte_s)
        except asyncio.TimeoutError:
            raise GenerationTimeout(f"no first byte from {where} within {first_byte_s:g} s") from None
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise _Retryable(f"cannot reach {self.display_endpoint}: connect timed out") from None
            raise GenerationTimeout(f"no first byte from {where}: {_describe_transport_error(exc)}") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach {self.display_endpoint}: {_describe_transport_error(exc)}") from None
        try:
            if response.status_code != 200:
                await self._raise_for_status(response, where)
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                body = await self._read_error_body(response)
                raise BackendError(
                    f"{where} answered {content_type or 'no content type'}, not an event stream: "
                    f"{self._scrub(_error_detail(body))}"
                )
            first_byte_deadline = attempt_started + first_byte_s
            await self._read_events(response, stream, where, first_byte_deadline, state)
        finally:
            await response.aclose()

    async def _read_events(
        self,
        response: httpx.Response,
        stream: ChatStream,
        where: str,
        first_byte_deadline: float,
        state: _CallState,
    ) -> None:
        import httpx

        lines = response.aiter_lines()
        perf_counter = time.perf_counter
        client_s = 0.0
        try:
            # Before the first event a failure may be retried; the wait is the first-byte budget.
            first_byte_s = self.settings.first_byte_timeout_s
            remaining = first_byte_deadline - perf_counter()
            while stream.first_event_at is None:
                try:
                    line = await asyncio.wait_for(lines.__anext__(), timeout=max(remaining, 0.001))
                except StopAsyncIteration:
                    raise _Retryable(f"{where} closed the stream before sending anything") from None
                except asyncio.TimeoutError:
                    raise GenerationTimeout(f"no first byte from {where} within {first_byte_s:g} s") from None
                except httpx.TimeoutException:
                    raise GenerationTimeout(f"no first byte from {where} within {first_byte_s:g} s") from None
                except httpx.TransportError as exc:
                    raise _Retryable(f"{where}: {_describe_transport_error(exc)}") from None
                now = perf_counter()
                if stream.feed_line(line, now):
                    break
                client_s += perf_counter() - now
                remaining = first_byte_deadline - now
            # After it, every failure is final.
            if not (stream.done or stream.server_error):
                async for line in lines:
                    now = perf_counter()
                    if stream.feed_line(line, now):
                        break
                    client_s += perf_counter() - now
            if stream.completed_at is None:
                stream.completed_at = perf_counter()  # the server ended the body
            if stream.done:
                await self._drain(lines)
        except httpx.TimeoutException:
            raise GenerationTimeout(
                f"stream from {where} went silent for {self.settings.read_timeout_s:g} s "
                f"after {stream.data_events} chunks"
            ) from None
        except httpx.TransportError as exc:
            raise BackendError(
                f"stream from {where} cut off after {stream.data_events} chunks: {_describe_transport_error(exc)}"
            ) from None
        finally:
            state.client_s += client_s
            await lines.aclose()
        if stream.server_error is not None:
            raise BackendError(
                f"{where} reported an error after {stream.data_events} chunks: {self._scrub(stream.server_error)}"
            )
        if not stream.finished:
            raise BackendError(
                f"stream from {where} cut off after {stream.data_events} chunks: the server closed it "
                "without a finish_reason or [DONE]"
            )

    async def _drain(self, lines: Any) -> None:
        """Read what follows [DONE] (the body's end) so the connection can be kept alive for the next call."""
        import httpx

        async def read_rest() -> None:
            for _ in range(100):
                await lines.__anext__()

        try:
            await asyncio.wait_for(read_rest(), timeout=1.0)
        except (StopAsyncIteration, asyncio.TimeoutError, httpx.HTTPError):
            pass  # the answer is complete; a connection that cannot be reused is only closed

    async def _raise_for_status(self, response: httpx.Response, where: str) -> None:
        status = response.status_code
        detail = self._scrub(_error_detail(await self._read_error_body(response)))
        message = f"{where} answered HTTP {status}: {detail}"
        if status == 429 or status >= 500:
            raise _Retryable(message, _retry_after_s(response.headers))
        if status in (401, 403):
            message += f"; {self._key_hint()}"
        elif status == 404:
            message += f"; check --mathperf-model {self.model!r} against {self.display_endpoint}/models"
        raise BackendError(message)

    async def _read_error_body(self, response: httpx.Response) -> bytes:
        import httpx

        body = b""
        try:
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) >= _ERROR_BODY_BYTES:
                    break
        except httpx.HTTPError:
            pass  # the status line is the message; a body cut short only loses detail
        return body

    def _key_hint(self) -> str:
        if self._api_key is None:
            return f"set {' or '.join(API_KEY_VARIABLES)} to the server's API key"
        return f"check the API key in {self._api_key.source}"

    def _scrub(self, text: str) -> str:
        return self._api_key.scrub(text) if self._api_key is not None else text

    # ---- token counts ---------------------------------------------------------------------------

    def _generation(self, stream: ChatStream, request: GenerationRequest, started: float, ended: float) -> Generation:
        text = stream.text()
        ttft_at = stream.ttft_at()
        answer_at = stream.answer_started_at()
        finish: FinishReason = "length" if stream.finish_reason == "length" else "stop"
        prompt_tokens, output_tokens, reasoning_tokens, source = self._token_counts(stream, request, text)
        extra: dict[str, float] = {}
        if answer_at is not None:
            extra["ttfat_ms"] = (answer_at - started) * 1000.0
        return Generation(
            text=text,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            ttft_ms=(ttft_at - started) * 1000.0 if ttft_at is not None else None,
            e2e_ms=(ended - started) * 1000.0,
            finish_reason=finish,
            token_count_source=source,
            extra_metrics=extra,
        )

    def _token_counts(
        self, stream: ChatStream, request: GenerationRequest, text: str
    ) -> tuple[int, int, int, TokenCountSource]:
        """Counts from the server's usage; else the model's tokenizer if it is at hand; else chunks.

        Reasoning tokens come from ``completion_tokens_details`` when the server reports them,
        otherwise from the reasoning's share of the output text.
        """
        reasoning_text = _reasoning_text(stream, text)
        usage = stream.usage
        if usage is not None and isinstance(usage.get("completion_tokens"), int):
            output_tokens = int(usage["completion_tokens"])
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            details = usage.get("completion_tokens_details") or {}
            reported = details.get("reasoning_tokens") if isinstance(details, dict) else None
            if isinstance(reported, int):
                reasoning_tokens = reported
            elif reasoning_text:
                visible = len(text.replace(THINK_OPEN, "").replace(THINK_CLOSE, "")) or 1
                reasoning_tokens = round(output_tokens * len(reasoning_text) / visible)
            else:
                reasoning_tokens = 0
            return prompt_tokens, output_tokens, min(reasoning_tokens, output_tokens), "usage"
        tokenizer = self._local_tokenizer()
        if tokenizer is not None:
            output_tokens = len(tokenizer.encode(text, add_special_tokens=False))
            reasoning_tokens = len(tokenizer.encode(reasoning_text, add_special_tokens=False)) if reasoning_text else 0
            try:
                prompt_ids = tokenizer.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in request.messages],
                    add_generation_prompt=True,
                    tokenize=True,
                )
                prompt_tokens = len(prompt_ids["input_ids"] if isinstance(prompt_ids, Mapping) else prompt_ids)
            except Exception:  # no chat template: the prompt count is unknown, not fatal
                prompt_tokens = 0
            return prompt_tokens, output_tokens, min(reasoning_tokens, output_tokens), "tokenizer"
        # Most servers send one token per event; transformers serve may batch several.
        output_tokens = stream.text_events
        reasoning_tokens = sum(1 for event in stream.events if event.kind == "reasoning")
        return 0, output_tokens, reasoning_tokens, "chunks"

    def _local_tokenizer(self) -> Any:
        """The model's tokenizer from a local folder or the HF cache, offline; None when not at hand."""
        if not self._tokenizer_tried:
            self._tokenizer_tried = True
            if not _tokenizer_at_hand(self.model):
                return None  # importing transformers only to fail would cost seconds
            try:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
            except Exception:  # not a local model: fall back to counting chunks
                self._tokenizer = None
        return self._tokenizer

    # ---- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        self._client = None
        self._loop = None


def _tokenizer_at_hand(model: str) -> bool:
    """Whether ``model`` is a local folder or in the HF cache, where a tokenizer may be found offline."""
    if os.path.isdir(model):
        return True
    from huggingface_hub.constants import HF_HUB_CACHE

    return os.path.isdir(os.path.join(HF_HUB_CACHE, "models--" + model.replace("/", "--")))


def _reasoning_text(stream: ChatStream, text: str) -> str:
    separate = "".join(event.text for event in stream.events if event.kind == "reasoning")
    if separate:
        return separate
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[:close].replace(THINK_OPEN, "", 1)
    if text.lstrip().startswith(THINK_OPEN):
        return text.lstrip()[len(THINK_OPEN) :]
    return ""


__all__ = ["ChatStream", "OpenAIBackend", "OpenAISettings", "StreamResult"]
