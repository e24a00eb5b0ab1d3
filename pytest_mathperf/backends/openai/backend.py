"""The ``openai`` backend: a model served behind an OpenAI-compatible API (vLLM, SGLang, TGI, llama.cpp).

Production services do not call ``model.generate`` in-process; this backend measures what their
users see: streamed chat completions over HTTP. One code path serves both the gate (``generate``,
synchronous, one generation at a time) and load profiles (``astream``, many concurrent streams
on one event loop).

The API key (``MATHPERF_API_KEY``, else ``OPENAI_API_KEY``) goes into the ``Authorization`` header
and nowhere else: not into messages, reprs, ``LoadInfo`` or history; a server that echoes it in its
output has it masked (``***``) before the text reaches any answer check, report or store.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar

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
from pytest_mathperf.backends.openai.sse import ChatStream, EventDecoder
from pytest_mathperf.backends.openai.tokens import (
    count_tokens,
    first_chunk_late,
    load_local_tokenizer,
    prompt_opens_think,
)
from pytest_mathperf.backends.openai.transport import (
    API_KEY_VARIABLES,
    ERROR_BODY_BYTES,
    Attempts,
    OpenAISettings,
    Retryable,
    Watchdog,
    api_key_from_environment,
    describe_transport_error,
    display_endpoint,
    error_detail,
    new_event_loop,
    new_session,
    retry_after_s,
    with_retries,
)

if TYPE_CHECKING:  # aiohttp is imported when a backend talks to a server, never by the plugin itself
    import ssl

    import aiohttp


class _Progress:
    """What one generate call has seen so far, across its attempts, for the timeout's message."""

    __slots__ = ("stream", "retries")

    def __init__(self) -> None:
        self.stream: ChatStream | None = None
        self.retries = 0


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
        self.settings = settings or OpenAISettings(retries=options.retries)
        self.endpoint = options.endpoint.rstrip("/")
        self.display_endpoint = display_endpoint(self.endpoint)
        self.chat_url = f"{self.endpoint}/chat/completions"
        self._where = f"{self.display_endpoint}/chat/completions"
        self._api_key = api_key_from_environment()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._tokenizer: Any = None
        self._tokenizer_tried = False
        self._prompt_opens_think: bool | None = None
        self._template_checked = False
        self.load_info: LoadInfo | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, endpoint={self.display_endpoint!r})"

    # ---- sessions ------------------------------------------------------------------------------

    def new_session(self, max_connections: int = 1) -> aiohttp.ClientSession:
        """An HTTP session for this endpoint, with the key in its headers; load profiles make one per user."""
        if self._ssl_context is None and self.endpoint.startswith("https://"):
            import ssl

            # Built once: each session building its own costs ~20 ms of CPU, seconds for 500 users.
            self._ssl_context = ssl.create_default_context()
        return new_session(self.settings, self.endpoint, self._api_key, self._ssl_context, max_connections)

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
            self._loop = new_event_loop()
        return self._loop.run_until_complete(coroutine)

    async def _gate_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self.new_session(max_connections=1)
        return self._session

    # ---- load ----------------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Check that the server answers and serves this model; one clear error for the whole model."""
        self.load_info = self._run(self._aload())
        self._counting_tokenizer()  # now, so that no measured generation waits for it
        return self.load_info

    async def _aload(self) -> LoadInfo:
        import aiohttp

        session = await self._gate_session()
        url = f"{self.endpoint}/models"
        limit_s = self.settings.load_check_timeout_s

        async def get_models(_started: float) -> tuple[int, str, str | None]:
            try:
                async with session.get(
                    url, headers={"Accept": "application/json"}, timeout=aiohttp.ClientTimeout(total=limit_s)
                ) as response:
                    # Scrubbed at once: a 401 body may quote the key, and tracebacks show locals.
                    text = self._scrub((await response.read()).decode("utf-8", "replace"))
                    return response.status, text, response.headers.get("server")
            except aiohttp.ConnectionTimeoutError as exc:
                raise Retryable(describe_transport_error(exc)) from None
            except asyncio.TimeoutError:
                raise Retryable(f"no answer within {limit_s:g} s") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise Retryable(describe_transport_error(exc)) from None

        def give_up(failure: Retryable, attempts: int) -> Exception:
            tries = f" (tried {attempts} times)" if attempts > 1 else ""
            return ModelLoadError(f"cannot reach {self.display_endpoint}: {failure}{tries}; is the server running?")

        started = time.perf_counter()
        (status, body, server), _attempts = await with_retries(get_models, self.settings, give_up)
        load_s = time.perf_counter() - started
        return self._load_info(status, body, server, load_s)

    def _load_info(self, status: int, body: str, server: str | None, load_s: float) -> LoadInfo:
        import json

        if status in (401, 403):
            raise ModelLoadError(
                f"{self.display_endpoint} rejected the request (HTTP {status}: "
                f"{error_detail(body)}); {self._key_hint()}"
            )
        if status == 404:
            raise ModelLoadError(
                f"{self.display_endpoint}/models not found (HTTP 404); the endpoint should be the API base "
                "URL, usually ending in /v1"
            )
        if status != 200:
            raise ModelLoadError(
                f"{self.display_endpoint}/models answered HTTP {status}: {error_detail(body)}"
            )
        try:
            listing = json.loads(body)
            entries = [entry for entry in listing["data"] if isinstance(entry, dict)]
            served = [str(entry["id"]) for entry in entries]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"{self.display_endpoint}/models did not answer with an OpenAI model list: "
                f"{error_detail(body)}"
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
        if server:
            details["server"] = server
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
        async def call() -> Generation:
            return await self.astream(request, await self._gate_session())

        return self._run(call())

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

    async def astream(self, request: GenerationRequest, session: aiohttp.ClientSession) -> Generation:
        """Stream one chat completion on ``session``; raise BackendError/GenerationTimeout on failure.

        Connection errors and 429/5xx are retried with back-off until the first byte arrives,
        never after: a retried half-answer would be measured twice. Timings count from the
        attempt that succeeded; the retries and the time they took are recorded beside them.
        """
        limit_s = request.timeout_s or self.settings.generation_timeout_s
        progress = _Progress()
        body = self.request_body(request)

        def give_up(failure: Retryable, attempts: int) -> Exception:
            return BackendError(f"{failure} (gave up after {attempts} attempts)")

        def note_retry(number: int) -> None:
            progress.retries = number

        try:
            (stream, started), attempts = await asyncio.wait_for(
                with_retries(
                    lambda started: self._stream_once(session, body, started, progress),
                    self.settings,
                    give_up,
                    note_retry,
                ),
                timeout=limit_s,
            )
        except asyncio.TimeoutError:
            chunks = progress.stream.data_events if progress.stream is not None else 0
            raise GenerationTimeout(
                f"generation on {self.display_endpoint} ran past {limit_s:g} s "
                f"(after {chunks} chunks, {progress.retries} retries)"
            ) from None
        return self._generation(stream, request, started, attempts)

    async def _stream_once(
        self, session: aiohttp.ClientSession, body: dict[str, Any], started: float, progress: _Progress
    ) -> tuple[ChatStream, float]:
        import aiohttp

        where = self._where
        stream = ChatStream()
        progress.stream = stream
        settings = self.settings
        watchdog = Watchdog(started, settings.first_byte_timeout_s, settings.read_timeout_s)
        try:
            try:
                response = await session.post(self.chat_url, json=body)
            except aiohttp.ConnectionTimeoutError:
                raise Retryable(f"cannot reach {self.display_endpoint}: connect timed out") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise Retryable(f"cannot reach {self.display_endpoint}: {describe_transport_error(exc)}") from None
            try:
                if response.status != 200:
                    await self._raise_for_status(response, where)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    detail = error_detail(await _read_error_body(response))
                    raise BackendError(
                        f"{where} answered {content_type or 'no content type'}, not an event stream: "
                        f"{self._scrub(detail)}"
                    )
                await self._read_events(response, stream, watchdog, where)
            finally:
                response.release()
        except asyncio.CancelledError:
            if watchdog.fired is None:
                raise
            watchdog.absorb_cancel()
            if watchdog.fired == "silence":
                raise GenerationTimeout(
                    f"stream from {where} went silent for {settings.read_timeout_s:g} s "
                    f"after {stream.data_events} chunks"
                ) from None
            raise GenerationTimeout(f"no first byte from {where} within {settings.first_byte_timeout_s:g} s") from None
        finally:
            watchdog.stop()
        if stream.server_error is not None:
            raise BackendError(
                f"{where} reported an error after {stream.data_events} chunks: {self._scrub(stream.server_error)}"
            )
        if not stream.finished:
            raise BackendError(
                f"stream from {where} cut off after {stream.data_events} chunks: the server closed it "
                "without a finish_reason or [DONE]"
            )
        return stream, started

    async def _read_events(
        self, response: aiohttp.ClientResponse, stream: ChatStream, watchdog: Watchdog, where: str
    ) -> None:
        """Feed the body to ``stream`` as it arrives; after ``[DONE]``, read on to the end so the
        connection can serve the next request (for at most a second)."""
        import aiohttp

        content = response.content
        decoder = EventDecoder()
        perf_counter = time.perf_counter
        feed = stream.feed
        complete = False
        try:
            while True:
                piece = await content.readany()
                if not piece:
                    break
                now = perf_counter()
                if complete:
                    continue
                events = decoder.feed(piece)
                if decoder.carried_data:  # keep-alive comments are no sign of progress
                    watchdog.saw_data(now)
                for data in events:
                    if feed(data, now):
                        complete = True
                        watchdog.drain(now)
                        break
                if stream.server_error is not None:
                    return
        except asyncio.CancelledError:
            if watchdog.fired != "drain":
                raise
            watchdog.absorb_cancel()
            response.close()  # the answer is complete; a connection that cannot be reused is only closed
        except (aiohttp.ClientError, OSError) as exc:
            if stream.first_event_at is None:
                raise Retryable(f"{where}: {describe_transport_error(exc)}") from None
            if not stream.finished:
                raise BackendError(
                    f"stream from {where} cut off after {stream.data_events} chunks: {describe_transport_error(exc)}"
                ) from None
        if stream.completed_at is None:
            stream.completed_at = perf_counter()  # the server ended the body
        if stream.first_event_at is None:
            raise Retryable(f"{where} closed the stream before sending anything")

    async def _raise_for_status(self, response: aiohttp.ClientResponse, where: str) -> None:
        status = response.status
        detail = self._scrub(error_detail(await _read_error_body(response)))
        message = f"{where} answered HTTP {status}: {detail}"
        if status == 429 or status >= 500:
            raise Retryable(message, retry_after_s(response.headers))
        if status in (401, 403):
            message += f"; {self._key_hint()}"
        elif status == 404:
            message += f"; check --mathperf-model {self.model!r} against {self.display_endpoint}/models"
        raise BackendError(message)

    def _key_hint(self) -> str:
        if self._api_key is None:
            return f"set {' or '.join(API_KEY_VARIABLES)} to the server's API key"
        return f"check the API key in {self._api_key.source}"

    def _scrub(self, text: str) -> str:
        return self._api_key.scrub(text) if self._api_key is not None else text

    # ---- what the stream measured --------------------------------------------------------------

    def _generation(self, stream: ChatStream, request: GenerationRequest, started: float, attempts: Attempts) -> Generation:
        ended = stream.completed_at if stream.completed_at is not None else time.perf_counter()
        ttft_at = stream.ttft_at()
        answer_at = stream.answer_started_at()
        tokenizer = self._counting_tokenizer() if (stream.usage is None or stream.reasoning_apart) else None
        counts = count_tokens(stream, request.messages, tokenizer)
        late = first_chunk_late(stream, self._template_opens_think(request) if stream.reasoning_apart else None)
        finish: FinishReason = "length" if stream.finish_reason == "length" else "stop"
        return Generation(
            text=self._scrub(stream.text()),  # a server that echoes the key must not put it in any output
            prompt_tokens=counts.prompt,
            output_tokens=counts.output,
            reasoning_tokens=counts.reasoning,
            ttft_ms=(ttft_at - started) * 1000.0 if ttft_at is not None else None,
            e2e_ms=(ended - started) * 1000.0,
            finish_reason=finish,
            output_tokens_source=counts.output_source,
            reasoning_tokens_source=counts.reasoning_source,
            ttfat_ms=(answer_at - started) * 1000.0 if answer_at is not None else None,
            retries=attempts.retries,
            retry_wait_ms=attempts.wait_s * 1000.0,
            first_chunk_late=late,
            served_model=self._scrub(stream.served_model) if stream.served_model else None,
        )

    def _counting_tokenizer(self) -> Any | None:
        """The model's tokenizer when it is on this machine (a local folder or the HF cache), offline."""
        if not self._tokenizer_tried:
            self._tokenizer_tried = True
            self._tokenizer = load_local_tokenizer(self.model)
        return self._tokenizer

    def _template_opens_think(self, request: GenerationRequest) -> bool | None:
        """Whether the chat template opens ``<think>`` itself; asked once, it is the template's habit."""
        if not self._template_checked:
            self._template_checked = True
            tokenizer = self._counting_tokenizer()
            self._prompt_opens_think = prompt_opens_think(tokenizer, request.messages) if tokenizer else None
        return self._prompt_opens_think

    # ---- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            if self._session is not None:
                self._loop.run_until_complete(self._session.close())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        self._session = None
        self._loop = None


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    import aiohttp

    body = b""
    try:
        while len(body) < ERROR_BODY_BYTES:
            piece = await response.content.readany()
            if not piece:
                break
            body += piece
    except (aiohttp.ClientError, OSError):
        pass  # the status line is the message; a body cut short only loses detail
    return body
