"""The ``openai`` backend against real servers on loopback: ``transformers serve`` and a scripted one.

No HTTP client is mocked: every test sends real requests over real sockets. The scripted server
(``tests/servers.py``) misbehaves on purpose to reach the error paths a healthy server never shows.
"""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from servers import BUNDLED_MODEL, SERVE_MODEL_VARIABLE, ScriptedServer, ServedModel

from pytest_mathperf.backends import (
    Backend,
    BackendError,
    BackendOptions,
    GenerationRequest,
    GenerationTimeout,
    Message,
    ModelLoadError,
    create_backend,
)
from pytest_mathperf.backends.openai import ChatStream, EventDecoder, OpenAIBackend, OpenAISettings

QUESTION = "What is 427 + 385?"
SENTINEL_KEY = "sk-mathperf-SENTINEL-3f9c1e7a"
#: Short waits so that the timeout and retry tests take a fraction of a second each.
QUICK = OpenAISettings(
    connect_timeout_s=2.0,
    first_byte_timeout_s=0.5,
    read_timeout_s=0.5,
    generation_timeout_s=10.0,
    retries=2,
    backoff_s=0.01,
    load_check_timeout_s=2.0,
)


#: For the tests of a silent server: each waits out one of these in full.
IMPATIENT = dataclasses.replace(QUICK, first_byte_timeout_s=0.2, read_timeout_s=0.2)


def ask(question: str = QUESTION, max_new_tokens: int = 64, **settings: object) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", question),), max_new_tokens=max_new_tokens, **settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide about the key themselves; a developer's real key must never reach them."""
    monkeypatch.delenv("MATHPERF_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


_OPENED: list[OpenAIBackend] = []


def backend_for(url: str, model: str = "scripted-model", settings: OpenAISettings = QUICK) -> OpenAIBackend:
    backend = OpenAIBackend(BackendOptions(model=model, endpoint=url), settings)
    _OPENED.append(backend)
    return backend


@pytest.fixture(autouse=True)
def close_backends():
    """Every backend a test opened is closed after it, so no session outlives its test."""
    yield
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def scripted_backend(scripted_server: ScriptedServer):
    backend = backend_for(scripted_server.base_url)
    yield backend
    backend.close()


# ---- transformers serve ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_backend(served_model: ServedModel):
    backend = create_backend("openai", BackendOptions(model=served_model.model, endpoint=served_model.base_url))
    assert isinstance(backend, Backend)
    backend.load()
    yield backend
    backend.close()


def test_load_checks_the_served_model(served_model: ServedModel, served_backend: OpenAIBackend) -> None:
    info = served_backend.load_info
    assert info is not None
    assert info.model == served_model.model
    assert info.source == served_model.base_url
    assert info.device is None
    assert info.load_s > 0
    assert served_model.model in info.details["served_models"]


def test_greedy_answer_through_transformers_serve(served_backend: OpenAIBackend) -> None:
    if os.environ.get(SERVE_MODEL_VARIABLE):
        pytest.skip(f"{SERVE_MODEL_VARIABLE} serves another model than the bundled demo model")
    generation = served_backend.generate(ask(max_new_tokens=96))
    assert "\\boxed{812}" in generation.text
    assert generation.text.rstrip().endswith("\\boxed{812}")
    assert generation.finish_reason == "stop"
    assert generation.output_tokens_source == "usage"
    assert generation.ttft_ms is not None and 0 < generation.ttft_ms <= generation.e2e_ms
    # The answer comes after the scratchpad's </think>, so it arrives after the first token.
    assert generation.ttft_ms <= generation.ttfat_ms <= generation.e2e_ms
    assert generation.output_tokens > 0 and generation.prompt_tokens > 0
    assert 0 < generation.reasoning_tokens < generation.output_tokens


def test_usage_counts_and_length_finish_through_transformers_serve(served_backend: OpenAIBackend) -> None:
    generation = served_backend.generate(ask(max_new_tokens=5))
    assert generation.finish_reason == "length"
    assert generation.output_tokens_source == "usage"
    assert generation.output_tokens == 5
    assert generation.ttft_ms is not None and generation.ttft_ms <= generation.e2e_ms


def test_wrong_model_name_names_what_is_served(served_model: ServedModel) -> None:
    backend = backend_for(served_model.base_url, model="deepseek-ai/not-served")
    with pytest.raises(ModelLoadError) as excinfo:
        backend.load()
    message = str(excinfo.value)
    assert message.startswith(f"model 'deepseek-ai/not-served' is not served by {served_model.base_url}")
    assert f"it serves: {served_model.model}" in message


def test_served_counts_and_first_chunk_match_the_in_process_backend(served_backend: OpenAIBackend) -> None:
    """transformers serve sends no chunk for the <think> the demo model generates first: detected,
    and its reasoning count, re-tokenized here, equals the in-process count from token ids."""
    if os.environ.get(SERVE_MODEL_VARIABLE):
        pytest.skip(f"{SERVE_MODEL_VARIABLE} serves another model than the bundled demo model")
    from pytest_mathperf.backends.hf import HFBackend

    served = served_backend.generate(ask(max_new_tokens=96))
    local = HFBackend(BackendOptions(model="mathperf-tiny", device="cpu"))
    local.load()
    try:
        in_process = local.generate(ask(max_new_tokens=96))
    finally:
        local.close()
    assert in_process.text.startswith("<think>")  # the model's first token is the tag itself
    assert served.first_chunk_late is True and in_process.first_chunk_late is False
    assert served.text == in_process.text
    assert (served.output_tokens, served.output_tokens_source) == (in_process.output_tokens, "usage")
    assert (served.reasoning_tokens, served.reasoning_tokens_source) == (in_process.reasoning_tokens, "tokenizer")
    assert not served.counts_are_estimates


# ---- the stream reader -------------------------------------------------------------------------


def test_reasoning_deltas_are_wrapped_in_think(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.reasoning = ("Add the units: ", "7+5=12.")
    generation = scripted_backend.generate(ask())
    assert generation.text.startswith("<think>Add the units: 7+5=12.</think>427 + 385")
    assert generation.reasoning_tokens > 0
    assert generation.ttft_ms is not None
    assert generation.ttft_ms <= generation.ttfat_ms <= generation.e2e_ms


def test_time_to_first_answer_token_follows_inline_think(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.pieces = ("<think>", "427+385", "</think>", "\\boxed{812}")
    scripted_server.script.delay_s = 0.05
    generation = scripted_backend.generate(ask())
    assert generation.text == "<think>427+385</think>\\boxed{812}"
    assert generation.ttft_ms is not None
    # Three pieces (and their delays) separate the first token from the first answer token.
    assert generation.ttfat_ms - generation.ttft_ms >= 3 * 0.05 * 1000 * 0.8


def test_no_ttfat_when_the_answer_never_left_think(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.pieces = ("<think>", "4", "2", "7", "+")
    generation = scripted_backend.generate(ask(max_new_tokens=4))
    assert generation.finish_reason == "length"
    assert generation.ttfat_ms is None and "ttfat_ms" not in generation.metrics()


def test_request_carries_the_sampling_settings(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_backend.generate(ask(max_new_tokens=48, temperature=0.6, top_p=0.95, seed=7))
    scripted_backend.generate(ask(repetition_penalty=1.1))
    first, second = (r.body for r in scripted_server.received if r.path.endswith("/chat/completions"))
    assert first is not None and second is not None
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert (first["max_tokens"], first["temperature"], first["top_p"], first["seed"]) == (48, 0.6, 0.95, 7)
    assert "repetition_penalty" not in first
    assert second["repetition_penalty"] == 1.1


def test_without_usage_tokens_are_counted_per_chunk(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.usage = False
    scripted_server.script.done_marker = False  # a finish_reason alone also ends a stream cleanly
    generation = scripted_backend.generate(ask())
    assert generation.output_tokens_source == "chunks"
    assert generation.output_tokens == len(scripted_server.script.pieces)


def test_stream_reader_ignores_comments_and_reads_usage_only_chunks() -> None:
    stream = ChatStream()
    lines = [
        ": keep-alive",
        "",
        'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
        'data: {"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}',
        'data: {"choices":[{"index":0,"delta":{"content":"\\\\boxed{1}"},"finish_reason":"stop"}]}',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        "data: [DONE]",
    ]
    decoder = EventDecoder()
    done = []
    for i, line in enumerate(lines):
        for data in decoder.feed(f"{line}\n\n".encode()):
            done.append(stream.feed(data, now=float(i)))
    assert done == [False] * 4 + [True]
    assert stream.text() == "<think>hmm</think>\\boxed{1}"
    assert stream.ttft_at() == 3.0 and stream.answer_started_at() == 4.0
    assert stream.usage == {"prompt_tokens": 3, "completion_tokens": 2}


def test_an_event_with_empty_data_is_not_dispatched() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data:\n\ndata: \n\n") == []  # as the SSE format says
    assert decoder.feed(b": ping\n\n") == [] and not decoder.carried_data  # a keep-alive is no progress
    assert decoder.feed(b"data: [DONE]\n\n") == [b"[DONE]"] and decoder.carried_data


def test_event_decoder_joins_multi_line_data_across_reads() -> None:
    """An event may span several ``data:`` lines and arrive cut anywhere, with any line ending."""
    body = (
        b": comment\r\n"
        b"event: message\r\n"
        b'data: {"choices":[{"index":0,\r\n'
        b'data:  "delta":{"content":"4"}}]}\r\n'
        b"\r\n"
        b'data: {"choices":[{"index":0,"delta":{"content":"2"},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\r\r"
    )
    for cut in range(1, len(body)):
        decoder = EventDecoder()
        events = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert events == [
            b'{"choices":[{"index":0,\n "delta":{"content":"4"}}]}',
            b'{"choices":[{"index":0,"delta":{"content":"2"},"finish_reason":"stop"}]}',
            b"[DONE]",
        ], cut
    stream = ChatStream()
    assert [stream.feed(data, now=0.0) for data in events] == [False, False, True]
    assert stream.text() == "42"


def test_multi_line_events_over_a_real_socket(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.multiline = True
    scripted_server.script.reasoning = ("Add: ", "7+5=12.")
    generation = scripted_backend.generate(ask())
    assert generation.text == "<think>Add: 7+5=12.</think>427 + 385 = 812. The answer is \\boxed{812}."
    assert generation.output_tokens == 7 and generation.output_tokens_source == "usage"


# ---- where each count came from ----------------------------------------------------------------


def test_reasoning_count_from_usage_details(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.reasoning = ("Add the units: ", "7+5=12.")
    scripted_server.script.usage_reasoning_tokens = 5
    generation = scripted_backend.generate(ask())
    assert (generation.output_tokens, generation.output_tokens_source) == (7, "usage")
    assert (generation.reasoning_tokens, generation.reasoning_tokens_source) == (5, "usage")
    assert not generation.counts_are_estimates


def test_reasoning_without_details_or_tokenizer_is_an_estimate(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.reasoning = ("Add the units: ", "7+5=12.")
    generation = scripted_backend.generate(ask())
    assert generation.output_tokens_source == "usage"
    assert (generation.reasoning_tokens, generation.reasoning_tokens_source) == (2, "chunks")
    assert generation.counts_are_estimates
    assert generation.estimated_metrics() == frozenset({"reasoning_tokens"})


def test_without_usage_or_tokenizer_every_token_metric_is_an_estimate(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.usage = False
    generation = scripted_backend.generate(ask())
    assert generation.output_tokens_source == "chunks" and generation.counts_are_estimates
    assert {"tokens_per_s", "tpot_ms", "decode_tokens_per_s", "output_tokens"} <= generation.estimated_metrics()
    assert generation.prompt_tokens == 0  # unknown, not guessed


def test_without_usage_the_local_tokenizer_recounts_the_text(scripted_server: ScriptedServer) -> None:
    """A model named by a local folder has its tokenizer here: the text is re-tokenized, not chunk-counted."""
    from transformers import AutoTokenizer

    model = str(BUNDLED_MODEL)
    scripted_server.script.models = (model,)
    scripted_server.script.usage = False
    scripted_server.script.pieces = ("<think>", "427+385", "</think>", "\\boxed{812}")
    backend = backend_for(scripted_server.base_url, model=model)
    try:
        generation = backend.generate(ask())
    finally:
        backend.close()
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert generation.output_tokens_source == generation.reasoning_tokens_source == "tokenizer"
    assert generation.output_tokens == len(tokenizer.encode(generation.text, add_special_tokens=False))
    assert generation.reasoning_tokens == len(tokenizer.encode("427+385", add_special_tokens=False))
    assert generation.prompt_tokens == len(tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=True)["input_ids"])
    assert generation.first_chunk_late is False  # the <think> tag came as the first chunk


# ---- the first chunk may be the second token ---------------------------------------------------


def test_first_chunk_is_the_first_token_when_think_streams_inline(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.pieces = ("<think>", "427+385", "</think>", "812")
    assert scripted_backend.generate(ask()).first_chunk_late is False


def test_first_chunk_late_when_a_reasoning_parser_swallowed_think(scripted_server: ScriptedServer) -> None:
    """Reasoning streamed apart, and the demo template does not open <think>: the model generated
    it and the server sent no chunk for it, so the first chunk is the second token."""
    model = str(BUNDLED_MODEL)
    scripted_server.script.models = (model,)
    scripted_server.script.reasoning = ("427+385", "=812")
    backend = backend_for(scripted_server.base_url, model=model)
    try:
        generation = backend.generate(ask())
    finally:
        backend.close()
    assert generation.first_chunk_late is True


def test_first_chunk_unknown_without_the_chat_template(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    scripted_server.script.reasoning = ("427+385", "=812")
    assert scripted_backend.generate(ask()).first_chunk_late is None


# ---- error paths on real sockets ---------------------------------------------------------------


def test_nothing_listening_is_one_clear_load_error(closed_port_url: str) -> None:
    backend = backend_for(closed_port_url)
    with pytest.raises(ModelLoadError) as excinfo:
        backend.load()
    assert str(excinfo.value) == (
        f"cannot reach {closed_port_url}: connection refused (tried 3 times); is the server running?"
    )


def test_nothing_listening_fails_a_generation_after_retries(closed_port_url: str) -> None:
    backend = backend_for(closed_port_url)
    with pytest.raises(BackendError, match=r"cannot reach .*: connection refused \(gave up after 3 attempts\)"):
        backend.generate(ask())


def test_missing_endpoint_names_the_option() -> None:
    with pytest.raises(ModelLoadError, match="--mathperf-endpoint"):
        OpenAIBackend(BackendOptions(model="m"))


def test_stream_dropped_mid_answer(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.mode = "drop"
    with pytest.raises(BackendError) as excinfo:
        scripted_backend.generate(ask())
    assert str(excinfo.value).startswith(
        f"stream from {scripted_server.base_url}/chat/completions cut off after 3 chunks"
    )
    assert scripted_server.chat_requests == 1  # a half answer is never retried


def test_stream_closed_without_finish_is_cut_off(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.mode = "no-finish"
    with pytest.raises(BackendError, match="cut off after 6 chunks: the server closed it without a finish_reason"):
        scripted_backend.generate(ask())


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_is_retried_before_the_first_byte(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend, status: int
) -> None:
    scripted_server.script.mode = "flaky"
    scripted_server.script.failure_status = status
    generation = scripted_backend.generate(ask())
    assert "\\boxed{812}" in generation.text
    assert generation.retries == 2 and scripted_server.chat_requests == 3


def test_retries_are_recorded_and_kept_out_of_the_latencies(
    scripted_server: ScriptedServer, scripted_backend: OpenAIBackend
) -> None:
    """Two 429s with Retry-After: 0.2 cost at least 0.4 s; that time is retry_wait_ms, not TTFT."""
    scripted_server.script.mode = "flaky"
    scripted_server.script.retry_after = "0.2"
    started = time.perf_counter()
    generation = scripted_backend.generate(ask())
    call_ms = (time.perf_counter() - started) * 1000.0
    assert scripted_server.chat_requests == 3
    assert generation.retries == 2 and generation.retry_wait_ms >= 2 * 200
    assert generation.ttft_ms is not None
    # The parts are disjoint: waiting, then the measured attempt, all inside the call.
    assert generation.retry_wait_ms + generation.e2e_ms <= call_ms
    metrics = generation.metrics()
    assert metrics["retries"] == 2.0 and metrics["retry_wait_ms"] == generation.retry_wait_ms


def test_no_retry_is_recorded_as_zero(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    generation = scripted_backend.generate(ask())
    assert (generation.retries, generation.retry_wait_ms) == (0, 0.0)
    assert generation.metrics()["retries"] == 0.0


def test_busy_server_gives_up_after_the_retries(scripted_server: ScriptedServer) -> None:
    scripted_server.script.mode = "flaky"
    scripted_server.script.failures = 10
    backend = backend_for(scripted_server.base_url)
    with pytest.raises(BackendError) as excinfo:
        backend.generate(ask())
    assert str(excinfo.value) == (
        f"{scripted_server.base_url}/chat/completions answered HTTP 429: busy, retry later (gave up after 3 attempts)"
    )


def test_first_byte_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.script.mode = "silent"
    started = time.perf_counter()
    with pytest.raises(GenerationTimeout, match=r"no first byte from http://127\.0\.0\.1:\d+/v1/chat/completions within 0\.2 s"):
        backend_for(scripted_server.base_url, settings=IMPATIENT).generate(ask())
    assert time.perf_counter() - started < 3
    assert scripted_server.chat_requests == 1  # a slow server is not hammered with retries


def test_first_byte_timeout_after_headers(scripted_server: ScriptedServer) -> None:
    scripted_server.script.mode = "headers-only"
    with pytest.raises(GenerationTimeout, match="no first byte from .* within 0.2 s"):
        backend_for(scripted_server.base_url, settings=IMPATIENT).generate(ask())


def test_silence_mid_stream_times_out(scripted_server: ScriptedServer) -> None:
    scripted_server.script.mode = "stall"
    with pytest.raises(GenerationTimeout, match="went silent for 0.2 s after 3 chunks"):
        backend_for(scripted_server.base_url, settings=IMPATIENT).generate(ask())


@pytest.mark.parametrize(("events_first", "message"), [(0, "no first byte from .* within 0.2 s"), (3, "went silent for 0.2 s after 3 chunks")])
def test_keep_alive_comments_are_no_progress(scripted_server: ScriptedServer, events_first: int, message: str) -> None:
    # a proxy that sends ": ping" while the model is queued or stuck must not hold off the timeouts
    scripted_server.script.mode, scripted_server.script.drop_after, scripted_server.script.keepalive_s = "stall", events_first, 0.05
    started = time.perf_counter()
    with pytest.raises(GenerationTimeout, match=message):
        backend_for(scripted_server.base_url, settings=IMPATIENT).generate(ask())
    assert time.perf_counter() - started < 3  # not the 10 s whole-generation limit


def test_a_body_kept_open_after_done_is_read_for_a_second_at_most(scripted_server: ScriptedServer) -> None:
    scripted_server.script.linger_s = 5.0
    started = time.perf_counter()
    patient = dataclasses.replace(QUICK, first_byte_timeout_s=10.0)  # the drain must not wait for this limit
    generation = backend_for(scripted_server.base_url, settings=patient).generate(ask())
    assert time.perf_counter() - started < 3 and "\\boxed{812}" in generation.text
    assert generation.e2e_ms < 1000  # the drain is no part of the generation


def test_a_character_split_into_surrogate_halves_is_rejoined(scripted_server: ScriptedServer) -> None:
    # a server counting in UTF-16 may escape each half of an emoji in its own chunk
    scripted_server.script.pieces = ("smile \ud83d", "\ude00 The answer is ", "\\boxed{812}")
    generation = backend_for(scripted_server.base_url).generate(ask())
    assert generation.text == "smile \U0001f600 The answer is \\boxed{812}"
    generation.text.encode("utf-8")  # nothing left that the history could not write


def test_whole_generation_timeout(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.delay_s = 0.1
    with pytest.raises(GenerationTimeout, match=r"ran past 0.25 s \(after [1-4] chunks, 0 retries\)"):
        scripted_backend.generate(ask(timeout_s=0.25))


def test_unknown_model_at_generation_is_a_clear_4xx(scripted_server: ScriptedServer) -> None:
    backend = backend_for(scripted_server.base_url, model="typo-model")
    with pytest.raises(BackendError) as excinfo:
        backend.generate(ask())
    assert str(excinfo.value) == (
        f"{scripted_server.base_url}/chat/completions answered HTTP 404: The model `typo-model` does not exist.; "
        f"check --mathperf-model 'typo-model' against {scripted_server.base_url}/models"
    )


# ---- the API key -------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["MATHPERF_API_KEY", "OPENAI_API_KEY"])
def test_api_key_is_sent_and_never_shown(
    scripted_server: ScriptedServer, closed_port_url: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, SENTINEL_KEY)
    shown: list[str] = []

    backend = backend_for(scripted_server.base_url)
    info = backend.load()
    shown += [repr(backend), str(backend), repr(info)]
    assert scripted_server.received[-1].had_authorization
    assert info.details["api_key"] == variable

    scripted_server.script.mode = "unauthorized"  # its 401 body quotes the key back
    for call in (backend.load, lambda: backend.generate(ask())):
        with pytest.raises((ModelLoadError, BackendError)) as excinfo:
            call()
        assert "HTTP 401: Incorrect API key provided: ***" in str(excinfo.value)
        assert f"check the API key in {variable}" in str(excinfo.value)
        shown += [str(excinfo.value), repr(excinfo.value), str(excinfo.getrepr(showlocals=True, style="long"))]

    scripted_server.script.mode = "drop"
    with pytest.raises(BackendError) as excinfo:
        backend.generate(ask())
    shown += [str(excinfo.value), str(excinfo.getrepr(showlocals=True, style="long"))]

    unreachable = backend_for(closed_port_url)
    with pytest.raises(ModelLoadError) as excinfo:
        unreachable.load()
    shown += [str(excinfo.value), repr(unreachable), str(excinfo.getrepr(showlocals=True, style="long"))]
    backend.close()

    assert all(SENTINEL_KEY not in text for text in shown), [t[max(0, t.find(SENTINEL_KEY) - 1500) : t.find(SENTINEL_KEY) + 100] for t in shown if SENTINEL_KEY in t][:1]
    assert all(SENTINEL_KEY[-8:] not in text for text in shown)  # not even the tail that some servers echo


def test_401_without_a_key_says_which_variables_to_set(scripted_server: ScriptedServer, scripted_backend: OpenAIBackend) -> None:
    scripted_server.script.mode = "unauthorized"
    with pytest.raises(ModelLoadError, match="HTTP 401: Incorrect API key provided\\); set MATHPERF_API_KEY or OPENAI_API_KEY"):
        scripted_backend.load()
